"""Procore list semantics: page/per_page with per-endpoint maxima, Total/Per-Page/Link headers,
filters[updated_at]=FROM...TO, date windows, deleted views, ids-only views and the v2 envelope.

Past the last page the answer is 200 ``[]``. Link URLs drop ``filters[...]`` unless
``link_keeps_filters`` is on (the reference says a client must not rely on them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from urllib.parse import parse_qsl, urlencode

import orjson

from eva00.simulator.clock import days_between, parse_day, parse_instant
from eva00.simulator.options import SimOptions
from eva00.simulator.store import SIGNALLED_KINDS, Record, Store, v2_object
from eva00.simulator.web import HttpError, Request, Response

VIEWS = ("live", "deleted", "all")


@dataclass(frozen=True)
class ListSpec:
    kind: str
    max_per_page: int = 1000
    default_per_page: int = 100
    paged: bool = True
    updated_filter: bool = True
    # query parameter that switches to a deleted view: (name, {value: view})
    deleted_param: tuple[str, dict[str, str]] | None = None
    v2: bool = False
    dated: bool = False  # daily logs: start_date/end_date window, today when absent
    hides_obsolete: bool = False  # drawing revisions: those of obsolete drawings only with with_obsolete=true
    grouped: bool = False  # meetings: [{"group_title", "meetings": [...]}]
    extra_where: tuple[str, ...] = field(default_factory=tuple)


def stamp(record: Record) -> int:
    """The updated_at a list shows for the record (a deletion with a view is an update there)."""
    if record.deleted_epoch is not None and record.kind in SIGNALLED_KINDS:
        return record.deleted_epoch
    return record.updated_epoch


def positive_int(req: Request, name: str, default: int) -> int:
    text = req.q(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise HttpError(400, f"{name} must be a positive integer") from None
    if value < 1:
        raise HttpError(400, f"{name} must be a positive integer")
    return value


def updated_window(req: Request, options: SimOptions) -> Callable[[int], bool] | None:
    text = req.q("filters[updated_at]")
    if text is None:
        return None
    first, sep, last = text.partition("...")
    try:
        if not sep or not first or not last:
            raise ValueError
        low, high = parse_instant(first), parse_instant(last, end_of_day=True)
    except ValueError:
        raise HttpError(400, "filters[updated_at] must be a range such as "
                             "2024-01-01T00:00:00Z...2024-01-31T23:59:59Z") from None
    bounds = options.updated_at_bounds
    low_open = bounds in ("start_exclusive", "exclusive")
    high_open = bounds in ("end_exclusive", "exclusive")
    return lambda t: (t > low if low_open else t >= low) and (t < high if high_open else t <= high)


def date_window(req: Request, options: SimOptions, today: date) -> tuple[str, str]:
    start, end = req.q("start_date"), req.q("end_date")
    if not start and not end:
        return today.isoformat(), today.isoformat()
    if not start or not end:
        raise HttpError(400, "start_date and end_date must be given together")
    try:
        first, last = parse_day(start), parse_day(end)
    except ValueError:
        raise HttpError(400, "start_date and end_date must be dates such as 2024-01-31") from None
    if last < first:
        raise HttpError(400, "end_date is before start_date")
    if days_between(first, last) + 1 > options.daily_log_max_days:
        raise HttpError(422, f"the date range may span at most {options.daily_log_max_days} days")
    return first.isoformat(), last.isoformat()


def select(store: Store, spec: ListSpec, req: Request, scope: int | None, view: str) -> list[Record]:
    if spec.deleted_param is not None:
        name, mapping = spec.deleted_param
        value = req.q(name)
        if value is not None and value.lower() in mapping:
            view = mapping[value.lower()]
    if view == "live":
        return store.live(spec.kind, scope)
    if view == "deleted":
        return store.deleted(spec.kind, scope)
    return store.bucket(spec.kind, scope)


def sort_records(records: list[Record], req: Request) -> list[Record]:
    attribute = req.q("sort[attribute]")
    direction = req.q("sort[direction]")
    text = req.q("sort")
    if attribute is None and text:
        attribute, direction = text.lstrip("-"), "desc" if text.startswith("-") else "asc"
    keys: dict[str, Callable[[Record], int]] = {"updated_at": stamp, "created_at": lambda r: r.created_epoch,
                                                "id": lambda r: r.id}
    if attribute not in keys:
        return records
    return sorted(records, key=keys[attribute], reverse=direction == "desc")


def list_response(store: Store, options: SimOptions, api_base: str, req: Request, spec: ListSpec,
                  scope: int | None, view: str = "live",
                  where: Callable[[Record], bool] | None = None, today: date | None = None) -> Response:
    records = select(store, spec, req, scope, view)
    if where is not None:
        records = [r for r in records if where(r)]
    if spec.hides_obsolete and (req.q("with_obsolete") or "").lower() != "true":
        records = [r for r in records if not _of_obsolete_drawing(store, r)]
    if spec.dated:
        first, last = date_window(req, options, today or date.today())
        records = [r for r in records if r.day is not None and first <= r.day <= last]
    window = updated_window(req, options) if spec.updated_filter else None
    if window is not None:
        records = [r for r in records if window(stamp(r))]
    records = sort_records(records, req)
    headers: list[tuple[str, str]] = []
    if spec.paged:
        page = positive_int(req, "page", 1)
        per_page = positive_int(req, "per_page", spec.default_per_page)
        if per_page > spec.max_per_page:
            if options.per_page_over_max == "error":
                raise HttpError(422, f"per_page may be at most {spec.max_per_page}")
            per_page = spec.max_per_page
        total = len(records)
        chosen = records[(page - 1) * per_page:page * per_page]
        headers = [("Total", str(total)), ("Per-Page", str(per_page))]
        link = links(api_base, req, page, per_page, total, options.link_keeps_filters)
        if link:
            headers.append(("Link", link))
    else:
        chosen = records
    if spec.grouped and req.q("view") != "ids":
        return Response(200, render_grouped(chosen), headers)
    if spec.kind == "project" and req.q("view") == "compact":  # v1.1's Compact2 alternative
        return Response(200, orjson.dumps([{"id": r.id, "name": r.payload.get("name")} for r in chosen]),
                        headers)
    return Response(200, render(chosen, spec, req.q("view") == "ids"), headers)


def _of_obsolete_drawing(store: Store, record: Record) -> bool:
    drawing = store.get("drawing", record.parent_id) if record.parent_id is not None else None
    return drawing is not None and bool(drawing.payload.get("obsolete"))


def render_grouped(records: list[Record]) -> bytes:
    """Meetings as the spec declares them: grouped by series (first appearance order); paging
    counts meetings, not groups. (``deleted_only=true`` answers the ungrouped wrapper: deleted.py.)"""
    groups: dict[str, list[bytes]] = {}
    for record in records:
        groups.setdefault(group_title(record), []).append(record.list_bytes())
    return b"[" + b",".join(orjson.dumps({"group_title": title})[:-1] + b',"meetings":['
                            + b",".join(items) + b"]}" for title, items in groups.items()) + b"]"


def group_title(record: Record) -> str:
    """The meeting's series: its title before " meeting" ("OAC meeting 12" is in "OAC")."""
    title = str(record.payload.get("title") or "")
    return title.split(" meeting")[0] or "Meetings"


def render(records: list[Record], spec: ListSpec, ids_only: bool) -> bytes:
    if ids_only:
        return orjson.dumps([r.id if not spec.v2 else str(r.id) for r in records])
    if spec.v2:
        return orjson.dumps({"data": [v2_object(r.list_object()) for r in records]})
    return b"[" + b",".join(r.list_bytes() for r in records) + b"]"


def links(api_base: str, req: Request, page: int, per_page: int, total: int, keep_filters: bool) -> str:
    last = max(1, -(-total // per_page))
    kept = [(k, v) for k, v in parse_qsl(req.raw_query, keep_blank_values=True)
            if k not in ("page", "per_page") and (keep_filters or not k.startswith("filters["))]

    def url(number: int) -> str:
        query = urlencode([*kept, ("page", str(number)), ("per_page", str(per_page))])
        return f"<{api_base}{req.path}?{query}>"

    parts = [f'{url(1)}; rel="first"']
    if 1 < page <= last + 1:
        parts.append(f'{url(min(page - 1, last))}; rel="prev"')
    if page < last:
        parts.append(f'{url(page + 1)}; rel="next"')
    parts.append(f'{url(last)}; rel="last"')
    return ", ".join(parts)
