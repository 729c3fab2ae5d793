"""Our hook at Procore: create or update it and its triggers, report on it, remove it.

Everything lives in our namespace (``eva-sync``), so other integrations' hooks are never touched
and `register` is idempotent: it finds our company-level hook (creating it if missing, deleting
extra copies), sets its destination URL and Authorization value, creates the triggers we want
that are missing and deletes the ones we no longer want. A trigger Procore refuses (a resource or
event this account does not offer) is reported and skipped; a refused seed trigger is an error.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from eva00.webhooks.resources import SEED_TRIGGERS, wanted_triggers

log = logging.getLogger(__name__)

HOOKS = "/rest/v1.0/webhooks/hooks"
RESOURCES = "/rest/v1.0/webhooks/resources"
PAYLOAD_VERSIONS = ("v2.0", "v3.0", "v4.0")
# Procore recommends the newest payload format for new integrations; an existing hook keeps the
# format it has unless one is asked for (a switch changes every delivery's shape at once).
NEW_HOOK_PAYLOAD_VERSION = "v4.0"
DELIVERIES_PAGE_SIZE = 100  # Procore's documented default page_size
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class ApiError(Exception):
    """Procore answered a webhooks API call with an error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class ProcoreCall(Protocol):
    """One authenticated, rate-limited call; returns the decoded JSON body (None when empty) or
    raises ApiError for a 4xx/5xx answer."""

    def __call__(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                 json: Any = None) -> Any: ...


def check_destination(url: str) -> str:
    """https, or plain http on the loopback (a local simulator); no credentials in the URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("the destination must be an https:// URL")
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
        raise ValueError("the destination must be https:// (plain http only on the loopback)")
    if parts.username or parts.password:
        raise ValueError("the destination URL must not carry credentials")
    return url


@dataclass
class RegisterReport:
    hook_id: int
    created_hook: bool
    created: list[tuple[str, str]] = field(default_factory=list)
    kept: list[tuple[str, str]] = field(default_factory=list)
    removed: list[tuple[str, str]] = field(default_factory=list)
    refused: list[tuple[str, str, str]] = field(default_factory=list)  # (resource, event, why)
    removed_hooks: list[int] = field(default_factory=list)


class HooksApi:
    def __init__(self, call: ProcoreCall, company_id: int, namespace: str) -> None:
        self.call = call
        self.company_id = company_id
        self.namespace = namespace

    # --- hooks ---

    def hooks(self) -> list[dict[str, Any]]:
        found = self.call("GET", HOOKS, params={"company_id": self.company_id,
                                                "namespace": self.namespace})
        hooks = [h for h in _items(found) if h.get("namespace", self.namespace) == self.namespace]
        return sorted(hooks, key=lambda hook: int(hook["id"]))

    def create_hook(self, url: str, authorization: str, payload_version: str) -> dict[str, Any]:
        return dict(self.call("POST", HOOKS, json={"company_id": self.company_id,
                                                   "hook": self._hook(url, authorization,
                                                                      payload_version)}))

    def update_hook(self, hook_id: int, url: str, authorization: str,
                    payload_version: str) -> dict[str, Any]:
        return dict(self.call("PATCH", f"{HOOKS}/{hook_id}",
                              json={"company_id": self.company_id,
                                    "hook": self._hook(url, authorization, payload_version)}))

    def delete_hook(self, hook_id: int) -> None:
        self.call("DELETE", f"{HOOKS}/{hook_id}", params={"company_id": self.company_id})

    def _hook(self, url: str, authorization: str, payload_version: str) -> dict[str, Any]:
        return {"api_version": payload_version, "namespace": self.namespace,
                "destination_url": url, "destination_headers": {"Authorization": authorization}}

    # --- triggers and deliveries ---

    def triggers(self, hook_id: int) -> list[dict[str, Any]]:
        found = self.call("GET", f"{HOOKS}/{hook_id}/triggers",
                          params={"company_id": self.company_id})
        return _items(found)

    def create_trigger(self, hook_id: int, payload_version: str, resource_name: str,
                       event_type: str) -> None:
        self.call("POST", f"{HOOKS}/{hook_id}/triggers",
                  json={"company_id": self.company_id, "api_version": payload_version,
                        "trigger": {"resource_name": resource_name, "event_type": event_type}})

    def delete_trigger(self, hook_id: int, trigger_id: int) -> None:
        self.call("DELETE", f"{HOOKS}/{hook_id}/triggers/{trigger_id}",
                  params={"company_id": self.company_id})

    def deliveries(self, hook_id: int, limit: int = 20, status: str = "any") -> list[dict[str, Any]]:
        """The newest ``limit`` deliveries, newest first, paged as Procore documents it: up to
        ``page_size`` per page, then ``page_start`` = the ``event_id`` of the last one seen."""
        found: list[dict[str, Any]] = []
        params: dict[str, Any] = {"company_id": self.company_id, "filters[status]": status,
                                  "page_size": min(limit, DELIVERIES_PAGE_SIZE)}
        while len(found) < limit:
            page = _items(self.call("GET", f"{HOOKS}/{hook_id}/deliveries", params=params))
            found.extend(page[:limit - len(found)])
            last = page[-1].get("event_id") if page else None
            if len(page) < params["page_size"] or not isinstance(last, int) \
                    or last == params.get("page_start"):
                break
            params["page_start"] = last
        return found

    def offered(self) -> dict[str, set[str]] | None:
        """Resource name -> offered event types, from Procore's webhook resources list; None when
        this account does not answer it (then every trigger is simply tried)."""
        try:
            found = self.call("GET", RESOURCES, params={"company_id": self.company_id})
        except ApiError as exc:
            log.info("webhook resources list not available (%s); trying every trigger", exc)
            return None
        offered = parse_resources(found)
        if not offered:
            log.warning("webhook resources list answered no resource we can read; trying every trigger")
            return None
        return offered


def parse_resources(found: Any) -> dict[str, set[str]]:
    """Procore's WebhooksResource items: the resource name is ``tools``, ``except`` lists the event
    types that cannot be subscribed to, and ``create``/``update``/``delete`` name the events (an
    item may leave one out or null). Items without a name are skipped."""
    offered: dict[str, set[str]] = {}
    for item in _items(found):
        name = item.get("tools")
        if not isinstance(name, str) or not name.strip():
            continue
        excluded = {str(e).lower() for e in item.get("except") or () if isinstance(e, str)}
        named = {event for event in ("create", "update", "delete") if event in item}
        events = named or {"create", "update", "delete"}
        offered.setdefault(name.strip(), set()).update(events - excluded)
    return offered


def _items(found: Any) -> list[dict[str, Any]]:
    """A list answer, v1 style (a list) or v2 style (``{"data": [...]}``)."""
    if isinstance(found, dict) and isinstance(found.get("data"), list):
        found = found["data"]
    if not isinstance(found, list):
        return []
    return [item for item in found if isinstance(item, dict)]


# --- the three operations ---

def register(api: HooksApi, url: str, authorization: str, *, payload_version: str | None = None,
             wanted: Iterable[tuple[str, str]] | None = None) -> RegisterReport:
    """``payload_version`` None: a new hook gets NEW_HOOK_PAYLOAD_VERSION, an existing one keeps its
    own (its triggers are created in that format too)."""
    check_destination(url)
    hooks = api.hooks()
    if hooks:
        hook_id = int(hooks[0]["id"])
        kept = hooks[0].get("api_version")
        payload_version = payload_version or (kept if isinstance(kept, str) and kept
                                              else NEW_HOOK_PAYLOAD_VERSION)
        api.update_hook(hook_id, url, authorization, payload_version)
        report = RegisterReport(hook_id, created_hook=False)
        for extra in hooks[1:]:
            api.delete_hook(int(extra["id"]))
            report.removed_hooks.append(int(extra["id"]))
    else:
        payload_version = payload_version or NEW_HOOK_PAYLOAD_VERSION
        hook_id = int(api.create_hook(url, authorization, payload_version)["id"])
        report = RegisterReport(hook_id, created_hook=True)
    _sync_triggers(api, report, payload_version,
                   list(wanted) if wanted is not None else wanted_triggers())
    return report


def _sync_triggers(api: HooksApi, report: RegisterReport, payload_version: str,
                   wanted: list[tuple[str, str]]) -> None:
    # The spec's trigger event_type enum is uppercase; we subscribe in lowercase.
    existing = {(str(t.get("resource_name")), str(t.get("event_type")).lower()): int(t["id"])
                for t in api.triggers(report.hook_id)}
    offered = api.offered()
    for pair in wanted:
        if pair in existing:
            report.kept.append(pair)
            continue
        if offered is not None and pair[1] not in offered.get(pair[0], set()) \
                and pair not in SEED_TRIGGERS:
            report.refused.append((*pair, "not offered by this account"))
            continue
        try:
            api.create_trigger(report.hook_id, payload_version, *pair)
            report.created.append(pair)
        except ApiError as exc:
            if pair in SEED_TRIGGERS or exc.status >= 500 or exc.status in (401, 403, 429):
                raise
            report.refused.append((*pair, str(exc)))
    for pair, trigger_id in existing.items():
        if pair not in wanted:
            api.delete_trigger(report.hook_id, trigger_id)
            report.removed.append(pair)


def unregister(api: HooksApi) -> list[int]:
    removed = []
    for hook in api.hooks():
        api.delete_hook(int(hook["id"]))
        removed.append(int(hook["id"]))
    return removed


@dataclass
class HookStatus:
    hook: dict[str, Any]
    triggers: list[dict[str, Any]]
    deliveries: list[dict[str, Any]]


def status(api: HooksApi, deliveries: int = 20) -> list[HookStatus]:
    """Our hooks with their triggers and newest ``deliveries``."""
    return [HookStatus(hook, api.triggers(int(hook["id"])), api.deliveries(int(hook["id"]),
                                                                            deliveries))
            for hook in api.hooks()]
