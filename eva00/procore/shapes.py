"""The top-level forms Procore's published API declares, read into records (a list of objects with ids).

Written from the spec digest (shared/procore-oas.md, "Shapes a client must handle"):

- a bare array of records (most v1.x lists);
- the v2 envelope ``{"data": [...]}`` (string ids become ints, see paging.normalise_ids);
- grouped lists ``[{"group_title": ..., "meetings": [...]}]`` (meetings v1.0, and v1.1's first
  oneOf alternative): the groups' records, in order;
- the ungrouped wrapper ``{"meetings": [...]}`` (v1.1's second alternative, and what
  ``deleted_only`` answers);
- a list declared as ONE object (prime change orders: oneOf Default | Extended): one record.

Anything else (a bare number where a record should be, an object without an id, a string) is an
:class:`UnexpectedShape`: the caller fails that (project, kind) for the run instead of retrying.
The spec marks no response field as required, so only ``id`` is demanded of a record.
"""

from __future__ import annotations

from typing import Any

import orjson

from eva00.procore.errors import UnexpectedShape

GROUP_KEYS = ("meetings",)  # the key under which a grouped list holds its records
SAMPLE_CHARS = 200


def list_records(body: Any, *, endpoint: str) -> list[dict[str, Any]]:
    """The records of a list answer in any declared form (ids not yet normalised)."""
    if isinstance(body, dict):
        body = _unwrap_object(body, endpoint)
    if not isinstance(body, list):
        raise _unexpected(f"expected a list, got {type(body).__name__}", body, endpoint)
    records: list[dict[str, Any]] = []
    for element in body:
        group = _group_records(element)
        records.extend(group if group is not None else [element])
    for record in records:
        if not (isinstance(record, dict) and _is_id(record.get("id"))):
            raise _unexpected("an element is not a record with an id", record, endpoint)
    return records


def show_record(body: Any, *, endpoint: str) -> dict[str, Any]:
    """The record of a show answer: an object with an id (v2: inside ``data``)."""
    if isinstance(body, dict) and isinstance(body.get("data"), dict):
        body = body["data"]
    if not (isinstance(body, dict) and _is_id(body.get("id"))):
        raise _unexpected("expected one record with an id", body, endpoint)
    return body


def sample(body: Any) -> str:
    """A short excerpt of a body for the log (never the whole answer)."""
    try:
        text = orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        text = repr(body)
    return text if len(text) <= SAMPLE_CHARS else text[:SAMPLE_CHARS] + "..."


def _unwrap_object(body: dict[str, Any], endpoint: str) -> Any:
    if isinstance(body.get("data"), list):
        return body["data"]
    for key in GROUP_KEYS:
        if isinstance(body.get(key), list) and "id" not in body:
            return body[key]
    if _is_id(body.get("id")):
        return [body]
    raise _unexpected("an object that is neither a record nor a known wrapper", body, endpoint)


def _group_records(element: Any) -> list[Any] | None:
    if not isinstance(element, dict) or "id" in element:
        return None
    for key in GROUP_KEYS:
        if isinstance(element.get(key), list):
            return list(element[key])
    return None


def _is_id(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, str) and value.isdigit())


def _unexpected(problem: str, body: Any, endpoint: str) -> UnexpectedShape:
    return UnexpectedShape(f"unreadable answer from {endpoint}: {problem}", endpoint=endpoint,
                           sample=sample(body))
