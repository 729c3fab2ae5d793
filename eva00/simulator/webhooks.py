"""Procore webhooks: the hooks/triggers/deliveries API and the deliverer.

Every change the mutation engine makes becomes one event per hook whose scope (company, or one
project) and triggers (resource name, event type) match, in the payload format of the hook's
api_version (v2.0/v3.0 with integer ids and a ulid; v4.0 with string ids, reason and
resource_type). Delivery is at least once: a background thread POSTs each event with the hook's
destination headers (and, when configured, an X-Procore-Signature HMAC), may duplicate, delay,
reorder or drop events as configured, and retries failures (non-2xx, timeout, refused) with
exponential backoff until ``discard_after_s``. Deliveries are recorded and listed by the API.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import http.client
import itertools
import random
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson

from eva00.simulator.catalogue import RESOURCE_NAMES
from eva00.simulator.clock import iso
from eva00.simulator.mutations import Change
from eva00.simulator.options import SimOptions

# Procore's own example creates a hook with "v2": the short form is accepted and kept as given.
VERSIONS = ("v2.0", "v3.0", "v4.0", "v2", "v3", "v4")
EVENT_TYPES = ("create", "update", "delete")
# Resources offering only some events (the rest offer create, update and delete).
OFFERED = {"Projects": ("create", "update"), "Company Vendors": ("create", "update"),
           "Company Users": ("create", "update"), "Specification Sections": ("create", "update"),
           "Weather Logs": ("create", "update")}
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def ulid(now: float) -> str:
    value = (int(now * 1000) << 80) | secrets.randbits(80)
    return "".join(CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


# Procore groups its webhook resources by product; the grouping only labels the list.
CATEGORIES = {"Projects": "Portfolio", "Company Vendors": "Directory", "Company Users": "Directory",
              "Project Users": "Directory", "Change Events": "Construction Financials",
              "Change Order Packages": "Construction Financials",
              "Potential Change Orders": "Construction Financials",
              "Prime Change Orders": "Construction Financials"}


def offered_resources() -> list[dict[str, Any]]:
    """The resources list as Procore documents it (WebhooksResource): the resource name is
    ``tools``, ``except`` lists the event types that cannot be subscribed to, and ``create``,
    ``update`` and ``delete`` name the events."""
    names = sorted(set(RESOURCE_NAMES.values()) | {"RFI Replies"})
    return [{"api_version": "v2", "product_category": CATEGORIES.get(name, "Project Management"),
             "tools": name, "except": [e for e in EVENT_TYPES if e not in OFFERED.get(name, EVENT_TYPES)],
             "create": "create", "update": "update", "delete": "delete"} for name in names]


def offered_events() -> dict[str, tuple[str, ...]]:
    return {r["tools"]: tuple(e for e in EVENT_TYPES if e not in r["except"]) for r in offered_resources()}


@dataclass
class Hook:
    id: int
    company_id: int
    project_id: int | None
    namespace: str
    api_version: str
    destination_url: str
    destination_headers: dict[str, str]
    created_at: float
    updated_at: float
    triggers: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """WebhooksHook, the fields the spec declares."""
        return {"id": self.id, "namespace": self.namespace, "api_version": self.api_version,
                "destination_url": self.destination_url, "destination_headers": self.destination_headers,
                "owned_by_company_id": self.company_id, "owned_by_project_id": self.project_id,
                "owned_by_user_id": 300_001}


# Delivery.status -> the documented ``outcome`` and ``filters[status]`` value (two vocabularies);
# pending (not attempted yet) has neither.
OUTCOMES = {"successful": "ok", "retrying": "retried", "discarded": "discarded"}
STATUS_FILTERS = {"successful": "successful", "retrying": "failing", "discarded": "discarded"}


@dataclass
class Delivery:
    id: int  # the audited event id of this delivery (``event_id``), the paging cursor
    hook_id: int
    event: dict[str, Any]
    status: str = "pending"  # pending -> successful | retrying -> ... -> successful | discarded
    attempts: int = 0
    response_status: int | None = None
    response_error: str | None = None
    created_at: float = 0.0
    started_at: float | None = None
    completed_at: float | None = None
    next_attempt_at: float | None = None

    @property
    def outcome(self) -> str | None:
        return OUTCOMES.get(self.status)

    @property
    def status_filter(self) -> str | None:
        return STATUS_FILTERS.get(self.status)

    def to_json(self) -> dict[str, Any]:
        """WebhooksDelivery: no id of its own; ``event_id`` and the event identify it."""
        return {"event": self.event, "event_id": self.id, "outcome": self.outcome,
                "response_body": None, "response_error": self.response_error,
                "started_at": _maybe_iso(self.started_at), "completed_at": _maybe_iso(self.completed_at),
                "response_status": self.response_status, "response_headers": {}}


def _matches(trigger: dict[str, Any], resource_name: Any, event_type: Any) -> bool:
    return bool(trigger["resource_name"] == resource_name
                and trigger["event_type"] == str(event_type).upper())


def _maybe_iso(epoch: float | None) -> str | None:
    return None if epoch is None else iso(epoch)


class Webhooks:
    def __init__(self, options: SimOptions, clock: Callable[[], float] = time.time, seed: int = 0) -> None:
        self.options = options
        self.clock = clock
        self.rng = random.Random(seed)
        self.lock = threading.Condition()
        self.hooks: dict[int, Hook] = {}
        self.deliveries: list[Delivery] = []
        self._queue: list[tuple[float, int, Delivery]] = []
        self._ids = itertools.count(1)
        self._event_ids = itertools.count(10_000_001)
        self._stop = False
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="webhook-deliverer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self.lock:
            self._stop = True
            self.lock.notify_all()

    # --- hooks and triggers ---

    def add_hook(self, company_id: int, project_id: int | None, spec: dict[str, Any]) -> Hook:
        now = self.clock()
        hook = Hook(next(self._ids), company_id, project_id, "", "v2.0", "", {}, now, now)
        self.update_hook(hook, spec, creating=True)
        with self.lock:
            self.hooks[hook.id] = hook
        return hook

    def update_hook(self, hook: Hook, spec: dict[str, Any], creating: bool = False) -> None:
        version = spec.get("api_version", hook.api_version)
        url = spec.get("destination_url", hook.destination_url)
        headers = spec.get("destination_headers", hook.destination_headers)
        if version not in VERSIONS:
            raise ValueError(f"api_version must be one of {list(VERSIONS)}")
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("destination_url must be an http(s) URL")
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise ValueError("destination_headers must be an object of strings")
        hook.api_version, hook.destination_url, hook.destination_headers = version, url, dict(headers)
        hook.namespace = str(spec.get("namespace", hook.namespace) or "")
        hook.updated_at = self.clock()

    def add_trigger(self, hook: Hook, spec: dict[str, Any]) -> dict[str, Any]:
        name, event = spec.get("resource_name"), spec.get("event_type")
        offered = offered_events()
        if name not in offered or event not in offered[name]:
            raise ValueError(f"{name!r} does not offer the {event!r} event")
        if any(_matches(t, name, event) for t in hook.triggers):
            raise ValueError("this trigger already exists")
        # WebhooksTrigger: created with a lowercase event type, listed with the spec's uppercase enum.
        trigger = {"id": next(self._ids), "webhook_hook_id": hook.id, "resource_name": name,
                   "resource_id": None, "event_type": str(event).upper(),
                   "company_id": hook.company_id, "project_id": hook.project_id, "user_id": 300_001}
        hook.triggers.append(trigger)
        return trigger

    # --- events ---

    def emit(self, changes: list[Change]) -> None:
        with self.lock:
            hooks = list(self.hooks.values())
        for change in changes:
            name = RESOURCE_NAMES[change.kind]
            resource_id = change.id
            if change.kind == "drawing_revision":
                continue  # announced by the drawing's own update
            for hook in hooks:
                if hook.project_id is not None and hook.project_id != change.project_id:
                    continue
                if any(_matches(t, name, change.event_type) for t in hook.triggers):
                    self._enqueue(hook, self._event(hook, change, name, resource_id))

    def _event(self, hook: Hook, change: Change, name: str, resource_id: int) -> dict[str, Any]:
        now = self.clock()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"
        user = 300_001
        meta = {"source_user_id": user, "source_project_id": change.project_id,
                "source_company_id": hook.company_id, "source_operation_id": None,
                "source_application_id": None}
        if hook.api_version.startswith("v4"):
            return {"id": ulid(now), "timestamp": stamp, "reason": change.event_type,
                    "company_id": str(hook.company_id),
                    "project_id": None if change.project_id is None else str(change.project_id),
                    "user_id": str(user), "resource_type": name, "resource_id": str(resource_id),
                    "api_version": "v4.0",
                    "metadata": {k: None if v is None else str(v) for k, v in meta.items()}}
        event = {"id": next(self._event_ids), "ulid": ulid(now), "timestamp": stamp, "metadata": meta,
                 "user_id": user, "company_id": hook.company_id, "project_id": change.project_id,
                 "api_version": hook.api_version, "event_type": change.event_type,
                 "resource_name": name, "resource_id": resource_id}
        if hook.api_version.startswith("v3"):
            event["related_resources"] = []
        return event

    def _enqueue(self, hook: Hook, event: dict[str, Any]) -> None:
        opts = self.options.webhooks
        if self.rng.random() < opts.drop_ratio:
            self.dropped += 1
            return
        copies = 2 if self.rng.random() < opts.duplicate_ratio else 1
        with self.lock:
            for _ in range(copies):
                delivery = Delivery(next(self._ids), hook.id, event, created_at=self.clock())
                due = self.clock() + opts.delay_s + self.rng.uniform(0, opts.reorder_window_s)
                delivery.next_attempt_at = due
                self.deliveries.append(delivery)
                heapq.heappush(self._queue, (due, delivery.id, delivery))
            self.lock.notify_all()

    # --- the deliverer ---

    def _run(self) -> None:
        while True:
            with self.lock:
                while not self._stop and (not self._queue or self._queue[0][0] > self.clock()):
                    wait = self._queue[0][0] - self.clock() if self._queue else None
                    self.lock.wait(timeout=None if wait is None else max(0.0, min(wait, 1.0)))
                if self._stop:
                    return
                _, _, delivery = heapq.heappop(self._queue)
                hook = self.hooks.get(delivery.hook_id)
            if hook is None:
                delivery.status = "discarded"
                continue
            self._attempt(hook, delivery)

    def _attempt(self, hook: Hook, delivery: Delivery) -> None:
        opts = self.options.webhooks
        delivery.attempts += 1
        delivery.started_at = delivery.started_at or self.clock()
        body = orjson.dumps(delivery.event)
        status, problem = post(hook.destination_url, body, self._headers(hook, body), opts.timeout_s)
        delivery.response_status, delivery.response_error = status, problem
        if status is not None and 200 <= status < 300:
            delivery.status, delivery.completed_at = "successful", self.clock()
            delivery.next_attempt_at = None
            return
        if self.clock() - delivery.created_at >= opts.discard_after_s:
            delivery.status, delivery.completed_at, delivery.next_attempt_at = "discarded", self.clock(), None
            return
        wait = min(opts.retry_cap_s, opts.retry_base_s * 2 ** (delivery.attempts - 1))
        delivery.status, delivery.next_attempt_at = "retrying", self.clock() + wait
        with self.lock:
            heapq.heappush(self._queue, (delivery.next_attempt_at, delivery.id, delivery))
            self.lock.notify_all()

    def _headers(self, hook: Hook, body: bytes) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "User-Agent": "Procore-Webhooks/eva00-sim",
                   **hook.destination_headers}
        secret = self.options.webhooks.hmac_secret
        if secret:
            digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            headers["X-Procore-Signature"] = "sha256=" + digest
        return headers

    def figures(self) -> dict[str, Any]:
        with self.lock:
            by_status: dict[str, int] = {}
            for delivery in self.deliveries:
                by_status[delivery.status] = by_status.get(delivery.status, 0) + 1
            return {"hooks": len(self.hooks), "deliveries": by_status, "dropped": self.dropped,
                    "queued": len(self._queue)}


def post(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> tuple[int | None, str | None]:
    """One delivery attempt: (status, None) when answered, (None, why) when not."""
    parts = urlsplit(url)
    factory = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = factory(parts.hostname or "", parts.port, timeout=timeout_s)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request("POST", target, body=body, headers=headers)
        answer = connection.getresponse()
        answer.read(65536)
        return answer.status, None if answer.status < 300 else f"HTTP {answer.status}"
    except (OSError, http.client.HTTPException) as exc:
        return None, type(exc).__name__
    finally:
        connection.close()
