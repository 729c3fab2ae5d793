"""Procore's paging rules, as pure functions plus one iterator over ProcoreClient.

- Each page's query is built from our own parameters (page N+1 of the same filters), never from
  the Link header, whose URLs may drop filters.
- A page shorter than per_page is the last; so is a page that brings the count to ``Total``, or a
  Link header without rel="next". An empty page is never read as "everything was deleted".
- At the end the count is checked against ``Total``; a mismatch (records moved during paging)
  makes the whole enumeration incomplete, and the caller re-runs it.
- v2 answers come as {"data": [...]} with string ids: they are unwrapped and ids become ints;
  grouped and wrapped lists are read as shapes.py says.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from eva00.procore.endpoints import EndpointSpec
from eva00.procore.shapes import list_records


@dataclass(frozen=True)
class Window:
    """An incremental window: ISO-8601 bounds for filters[updated_at], or dates for a date window."""

    start: str
    end: str


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    page: int
    per_page: int
    total: int | None
    is_last: bool
    server_date: str | None  # the answer's Date: the fetch time on the server's clock


def page_params(spec: EndpointSpec, fixed: Mapping[str, str], *, page: int, per_page: int | None = None,
                window: Window | None = None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The full query of one page, from our own parameters."""
    params = dict(fixed)
    if window is not None:
        if spec.date_window:
            params["start_date"], params["end_date"] = window.start[:10], window.end[:10]
        elif spec.supports_updated_at:
            params["filters[updated_at]"] = f"{window.start}...{window.end}"
        else:
            raise ValueError(f"{spec.kind} has no updated_at filter or date window")
    if spec.paged:
        params["page"] = str(page)
        params["per_page"] = str(min(per_page or spec.max_per_page, spec.max_per_page))
    params.update(extra or {})
    return params


def unwrap(spec: EndpointSpec, body: Any) -> list[dict[str, Any]]:
    """The records of an answer in any form the spec declares (shapes.py), string ids made ints.
    An answer of another shape raises UnexpectedShape (never retried within a run)."""
    return [normalise_ids(item) for item in list_records(body, endpoint=f"GET {spec.path}")]


def every_id(get: Callable[[dict[str, str]], tuple[Any, Mapping[str, str]]], fixed: Mapping[str, str], *,
             endpoint: str, per_page: int = 1000) -> list[int]:
    """The ids of every page of a small list (the parents listed before their children); ``get``
    answers one page's (body, headers) for its query."""
    ids: list[int] = []
    page = 1
    while True:
        body, headers = get({**fixed, "page": str(page), "per_page": str(per_page)})
        records = list_records(body, endpoint=endpoint)
        ids += [int(record["id"]) for record in records]
        total = _int(headers.get("Total"))
        size = _int(headers.get("Per-Page")) or per_page
        if (len(records) < size or (total is not None and len(ids) >= total)
                or 'rel="next"' not in headers.get("Link", 'rel="next"')):
            return ids
        page += 1


def normalise_ids(record: dict[str, Any]) -> dict[str, Any]:
    """'id' and '*_id' values that are numeric strings become ints (v2 uses strings), nested too."""
    result: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, dict):
            value = normalise_ids(value)
        elif isinstance(value, list):
            value = [normalise_ids(v) if isinstance(v, dict) else v for v in value]
        elif (key == "id" or key.endswith("_id")) and isinstance(value, str) and value.isdigit():
            value = int(value)
        result[key] = value
    return result


def parse_page(spec: EndpointSpec, body: Any, headers: Mapping[str, str], *, page: int,
               per_page: int, seen_before: int) -> Page:
    items = unwrap(spec, body)
    total = _int(headers.get("Total"))
    if not spec.paged:
        return Page(items, 1, len(items), total, True, headers.get("Date"))
    per_page = _int(headers.get("Per-Page")) or per_page
    link = headers.get("Link")
    is_last = (len(items) < per_page
               or (total is not None and seen_before + len(items) >= total)
               or (link is not None and 'rel="next"' not in link))
    return Page(items, page, per_page, total, is_last, headers.get("Date"))


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
