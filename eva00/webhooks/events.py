"""Webhook payloads, parsed strictly into one WebhookEvent whatever the hook's payload format.

- v2.0 / v3.0: ``{"id": int, "ulid": str, "timestamp", "metadata", "user_id", "company_id": int,
  "project_id": int|null, "api_version": "v2.0", "event_type": "create|update|delete",
  "resource_name": "RFIs", "resource_id": int}``; v3.0 adds ``related_resources: [{id, name}]``.
- v4.0: ``{"id": "<ulid>", "timestamp", "reason", "company_id": "8", "project_id": "6778"|null,
  "user_id": "5447", "resource_type": "RFIs", "resource_id": "379913"}``: every id a string,
  ``reason`` may name events beyond create/update/delete (all but delete mean "re-fetch").

The event key (the dedup key) is the ulid (v2/v3 ``ulid``, v4 ``id``); a v2 payload without a ulid
falls back to ``id:<id>``. Company-level resources carry no project_id. Anything else is an
InvalidPayload: a field missing, of the wrong type, or out of range, or an unknown version; a
payload holding NUL characters (``\\u0000``, which PostgreSQL's jsonb and text refuse) is an
Unstorable one. The listener keeps such bodies raw and still answers 200 (server.py): Procore
pauses a hook that keeps failing, and one odd body must not stop every later delivery.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from eva00.webhooks.resources import ALL_EVENTS, DELETE, PARENT_RESOURCES, RESOURCE_KINDS

MAX_ID = 2**63 - 1  # bigint
MAX_KEY_LENGTH = 64
V2_VERSIONS = re.compile(r"v[23](\.\d+)?")
DIGITS = re.compile(r"[0-9]{1,19}")


class MalformedJson(ValueError):
    """The body is not JSON at all."""


class InvalidPayload(ValueError):
    """The body is JSON but not a webhook event of a format we speak."""


class Unstorable(InvalidPayload):
    """The body is JSON that PostgreSQL cannot store as jsonb (NUL characters)."""


@dataclass(frozen=True)
class WebhookEvent:
    event_key: str
    api_version: str  # "v2.0", "v3.0", "v4.0"
    company_id: int
    project_id: int | None
    resource_name: str
    resource_id: int | None  # None only for a non-numeric id of a resource we do not replicate
    event_type: str  # create | update | delete (v4: its reason)
    timestamp: str
    related: tuple[tuple[str, int], ...]  # v3.0 related_resources as (name, id)
    payload: Mapping[str, Any]

    @property
    def is_delete(self) -> bool:
        return self.event_type == DELETE


def parse_body(body: bytes) -> WebhookEvent:
    document = load_body(body)
    if holds_nul(document):
        raise Unstorable("the payload holds NUL characters (\\u0000), which PostgreSQL refuses")
    return parse(document)


def load_body(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedJson(f"not JSON: {exc}") from None


def holds_nul(document: Any) -> bool:
    """A NUL character in any string or key, at any depth (orjson nests 1024 deep at most)."""
    if isinstance(document, str):
        return "\x00" in document
    if isinstance(document, dict):
        return any("\x00" in key or holds_nul(value) for key, value in document.items())
    if isinstance(document, list):
        return any(holds_nul(item) for item in document)
    return False


def parse(document: Any) -> WebhookEvent:
    if not isinstance(document, dict):
        raise InvalidPayload("the payload is not a JSON object")
    if "reason" in document or "resource_type" in document:
        return _parse_v4(document)
    if "event_type" in document or "resource_name" in document:
        return _parse_v2(document)
    raise InvalidPayload("neither a v2/v3 (event_type, resource_name) nor a v4 (reason, "
                         "resource_type) payload")


# --- v2.0 / v3.0 ---

def _parse_v2(doc: dict[str, Any]) -> WebhookEvent:
    version = _text(doc, "api_version")
    if not V2_VERSIONS.fullmatch(version):
        raise InvalidPayload(f"api_version {version[:20]!r} is not v2.x or v3.x")
    event_type = _text(doc, "event_type")
    if event_type not in ALL_EVENTS:
        raise InvalidPayload(f"event_type {event_type[:20]!r} is not create, update or delete")
    number = _integer(doc, "id")
    ulid = _optional_text(doc, "ulid")
    resource_name = _text(doc, "resource_name")
    _optional_integer(doc, "user_id")
    if doc.get("metadata") is not None and not isinstance(doc["metadata"], dict):
        raise InvalidPayload("metadata is not an object")
    return WebhookEvent(
        event_key=_key(ulid) if ulid is not None else f"id:{number}",
        api_version=version,
        company_id=_integer(doc, "company_id"),
        project_id=_optional_integer(doc, "project_id"),
        resource_name=resource_name,
        resource_id=_integer(doc, "resource_id"),
        event_type=event_type,
        timestamp=_timestamp(doc),
        related=_related(doc.get("related_resources")),
        payload=doc,
    )


def _related(value: Any) -> tuple[tuple[str, int], ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidPayload("related_resources is not a list")
    related = []
    for item in value:
        if not isinstance(item, dict):
            raise InvalidPayload("a related resource is not an object")
        related.append((_text(item, "name"), _integer(item, "id")))
    return tuple(related)


def _integer(doc: Mapping[str, Any], name: str) -> int:
    value = doc.get(name)
    if value is None:
        raise InvalidPayload(f"{name} is missing")
    # bool is an int in Python, never in a payload.
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_ID:
        raise InvalidPayload(f"{name} is not a positive 64-bit integer")
    return value


def _optional_integer(doc: Mapping[str, Any], name: str) -> int | None:
    return None if doc.get(name) is None else _integer(doc, name)


# --- v4.0 ---

def _parse_v4(doc: dict[str, Any]) -> WebhookEvent:
    resource_name = _text(doc, "resource_type")
    raw_resource_id = _text(doc, "resource_id")
    known = resource_name in RESOURCE_KINDS or resource_name in PARENT_RESOURCES
    resource_id = _string_id(doc, "resource_id") if known or DIGITS.fullmatch(raw_resource_id) \
        else None
    _optional_string_id(doc, "user_id")
    return WebhookEvent(
        event_key=_key(_text(doc, "id")),
        api_version="v4.0",
        company_id=_string_id(doc, "company_id"),
        project_id=_optional_string_id(doc, "project_id"),
        resource_name=resource_name,
        resource_id=resource_id,
        event_type=_text(doc, "reason"),
        timestamp=_timestamp(doc),
        related=(),
        payload=doc,
    )


def _string_id(doc: Mapping[str, Any], name: str) -> int:
    value = _text(doc, name)
    if not DIGITS.fullmatch(value) or not 0 < int(value) <= MAX_ID:
        raise InvalidPayload(f"{name} is not a string of a positive 64-bit integer")
    return int(value)


def _optional_string_id(doc: Mapping[str, Any], name: str) -> int | None:
    return None if doc.get(name) is None else _string_id(doc, name)


# --- shared ---

def _text(doc: Mapping[str, Any], name: str) -> str:
    value = doc.get(name)
    if value is None:
        raise InvalidPayload(f"{name} is missing")
    if not isinstance(value, str) or not value or len(value) > 200:
        raise InvalidPayload(f"{name} is not a non-empty string")
    return value


def _optional_text(doc: Mapping[str, Any], name: str) -> str | None:
    return None if doc.get(name) is None else _text(doc, name)


def _key(value: str) -> str:
    if len(value) > MAX_KEY_LENGTH or not value.isascii() or not value.isprintable():
        raise InvalidPayload("the event id is not a short printable ASCII string")
    return value


def _timestamp(doc: Mapping[str, Any]) -> str:
    value = _text(doc, "timestamp")
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise InvalidPayload("timestamp is not ISO-8601") from None
    return value
