"""A kind's delete signal: the one listing per poll that names the records deleted upstream.

Procore documents a list of deleted records for a few kinds (endpoints.py ``DeletedSignal``): the
recycle bins of RFIs and submittals, ``filters[include_deleted]=only`` on change events, change
order packages and PCOs, meetings' ``deleted_only``, the documents index's recycle-bin filter, and
the inactive lists of vendors and users. Asking it on every poll sees a delete within one poll
interval instead of at the daily full-list reconciliation, which stays as the backstop.

Cost: one request per poll. The listing takes the poll's own ``filters[updated_at]`` window where
the signal documents that filter (a deletion updates the record), so it is one page in practice;
the inactive lists and deleted meetings have no such filter and are listed whole.

Only a complete listing counts: a refused, failed or unreadable page, or pages that disagree with
``Total``, give ``complete=False`` and the caller soft-deletes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from eva00.messages import PollMode
from eva00.procore.endpoints import EndpointSpec, Scope
from eva00.procore.errors import ProcoreRequestFailed, ProcoreUnavailable
from eva00.procore.http import ProcoreClient
from eva00.procore.paging import Window

log = logging.getLogger(__name__)

# A deleted listing longer than this many pages is not finished in one poll: it is left
# incomplete (nothing deleted) and the daily reconciliation finds those deletes.
MAX_PAGES = 10
# Wrappers a deleted listing may come in: meetings' deleted_only answers {"meetings": [...]}, v2 {"data"}.
WRAPPERS = ("meetings", "data")


@dataclass(frozen=True)
class DeletedListing:
    ids: list[int] = field(default_factory=list)  # the records the listing names deleted
    complete: bool = False  # every page read and the count agrees with Total
    requests: int = 0
    reason: str = ""  # why it is incomplete


def asked_on(spec: EndpointSpec, mode: str) -> bool:
    """Whether a poll of ``spec`` in ``mode`` asks for the deleted listing after its last page.

    Incremental polls do; so do the polls of kinds listed whole every time (meetings, project
    users), where the listing is a second signal beside absence. A full or reconciling listing of
    a kind polled by updated_at finds deletes by absence already and spends nothing more.
    """
    if not spec.deleted.has_listing or spec.scope is Scope.PARENT or spec.date_window:
        return False
    return mode == PollMode.INCREMENTAL or (mode == PollMode.RECONCILE and not spec.supports_updated_at)


def deleted_request(spec: EndpointSpec, *, company_id: int, project_id: int | None,
                    window: Window | None) -> tuple[str, dict[str, str]]:
    """(path, query) of page 1 of the deleted listing, windowed where the signal takes updated_at."""
    signal = spec.deleted
    values: dict[str, object] = {"company_id": company_id, "project_id": project_id}
    query: dict[str, str] = {}
    if signal.listing_path is not None:
        path = signal.listing_path.format(**values)
    else:
        path, query = spec.list_request(company_id=company_id, project_id=project_id)
        query.update(signal.listing_query)
    if window is not None and signal.updated_at:
        query["filters[updated_at]"] = f"{window.start}...{window.end}"
    query["page"], query["per_page"] = "1", str(spec.max_per_page)
    return path, query


def list_deleted(client: ProcoreClient, spec: EndpointSpec, *, company_id: int, project_id: int | None,
                 window: Window | None, budget: str, deadline_s: float) -> DeletedListing:
    """Every id the deleted listing names, or an incomplete listing saying why."""
    path, query = deleted_request(spec, company_id=company_id, project_id=project_id, window=window)
    ids: list[int] = []
    total: int | None = None
    for page in range(1, MAX_PAGES + 1):
        query["page"] = str(page)
        try:
            body, response = client.get_json(path, budget=budget, params=query,
                                              endpoint=f"{spec.kind}:deleted", deadline_s=deadline_s)
        except (ProcoreRequestFailed, ProcoreUnavailable) as exc:
            return _incomplete(spec, project_id, ids, page, f"page {page}: {exc}")
        items = _items(body)
        page_ids = _ids(items) if items is not None else None
        if page_ids is None:
            return _incomplete(spec, project_id, ids, page, f"page {page} is not a list of records")
        ids += page_ids
        total = _int(response.headers.get("Total")) if page == 1 else total
        if _is_last(len(page_ids), int(query["per_page"]), total, len(ids), response.headers):
            if total is not None and total != len(ids):
                return _incomplete(spec, project_id, ids, page, f"{len(ids)} listed, Total said {total}")
            return DeletedListing(sorted(set(ids)), True, page)
    return _incomplete(spec, project_id, ids, MAX_PAGES, f"more than {MAX_PAGES} pages")


def _incomplete(spec: EndpointSpec, project_id: int | None, ids: list[int], requests: int,
                reason: str) -> DeletedListing:
    log.warning("%s project %s: deleted listing incomplete (%s); nothing is deleted by it",
                spec.kind, project_id, reason[:200])
    return DeletedListing([], False, requests, reason[:300])


def _items(body: Any) -> list[Any] | None:
    if isinstance(body, dict):
        wrapped = [body[name] for name in WRAPPERS if isinstance(body.get(name), list)]
        body = wrapped[0] if len(wrapped) == 1 else None
    return body if isinstance(body, list) else None


def _ids(items: list[Any]) -> list[int] | None:
    """The ids of one page; None if any item is not a record with an integer id (an answer we
    cannot read is no evidence of anything)."""
    ids = []
    for item in items:
        value = item.get("id") if isinstance(item, Mapping) else None
        if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).isdigit():
            return None
        ids.append(int(value))
    return ids


def _is_last(listed: int, per_page: int, total: int | None, seen: int, headers: Mapping[str, str]) -> bool:
    per_page = _int(headers.get("Per-Page")) or per_page
    link = headers.get("Link")
    return (listed < per_page or (total is not None and seen >= total)
            or (link is not None and 'rel="next"' not in link))


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
