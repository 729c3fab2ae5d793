"""Issue 16, finding 5: one odd webhook body used to pause every delivery.

The listener answered 400 to a body it could not parse and 500 to one holding ``\\u0000``; Procore
treats anything but 2xx as a failure, retries for hours and pauses the hook. Over real HTTP against
the real listener (PostgreSQL, Redis): every authenticated body within the size limit is answered
200 and kept raw (escaped, truncated) with its reason; only a failed authentication gets 401 and an
oversize body 413, and those leave nothing behind."""

from __future__ import annotations

import codecs
import dataclasses
import threading
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import redis
import requests
from psycopg_pool import ConnectionPool

from eva00 import keys
from eva00.config import SIM_COMPANY_ID, Settings
from eva00.webhooks.auth import Authenticator, SecretFile
from eva00.webhooks.intake import RAW_BODY_MAX_BYTES, Intake
from eva00.webhooks.options import MAX_BODY_BYTES, WebhookOptions
from eva00.webhooks.server import Listener, health_checks, listener_redis

SECRET = "flood-and-bodies-secret-value"


def v2(**changes: Any) -> dict[str, Any]:
    return {"id": 7, "ulid": "01JBODYTEST0000000000000000"[:26], "timestamp": "2026-11-01T10:00:00Z",
            "metadata": {}, "user_id": 5, "company_id": SIM_COMPANY_ID, "project_id": 2468,
            "api_version": "v2.0", "event_type": "update", "resource_name": "RFIs",
            "resource_id": 54321, **changes}


class Served:
    def __init__(self, listener: Listener, pool: ConnectionPool, client: redis.Redis) -> None:
        self.listener, self.pool, self.redis = listener, pool, client
        self.url = f"http://127.0.0.1:{listener.port}/webhooks/procore"

    def post(self, body: bytes, authorization: str | None = SECRET) -> requests.Response:
        headers = {"Content-Type": "application/json"}
        if authorization is not None:
            headers["Authorization"] = authorization
        return requests.post(self.url, data=body, headers=headers, timeout=10)

    def rows(self) -> list[dict[str, Any]]:
        with self.pool.connection() as conn:
            cursor = conn.execute("SELECT event_key, status, payload, raw_body, detail FROM webhook_events"
                                  " ORDER BY id")
            names = [column.name for column in cursor.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def jobs(self) -> int:
        return int(self.redis.xlen(keys.STREAM_SYNC_PRIORITY))


@pytest.fixture
def served(settings: Settings, redis_client: redis.Redis) -> Iterator[Served]:
    options = dataclasses.replace(WebhookOptions.from_settings(settings), port=0, secrets=(SECRET,))
    with ConnectionPool(settings.effective_database_url, min_size=1, max_size=4, open=True) as pool:
        intake = Intake(options, listener_redis(settings.effective_redis_url), pool)
        auth = Authenticator(options.secrets, SecretFile(options.secrets_file), options.hmac_secret)
        listener = Listener(options, auth, intake, health_checks(pool, redis_client))
        thread = threading.Thread(target=listener.run, daemon=True)
        thread.start()
        yield Served(listener, pool, redis_client)
        listener.stop()
        thread.join(10)


@pytest.mark.parametrize(("body", "reason"), [
    pytest.param(b'{"id": 1, "ulid": "01', "not JSON", id="truncated JSON"),
    pytest.param(b"", "not JSON", id="empty body"),
    pytest.param(b"\xff\xfe{not even utf-8}", "not JSON", id="invalid UTF-8"),
    pytest.param(b'{"a": "raw NUL \x00 byte"}', "not JSON", id="a raw NUL byte"),
    pytest.param(orjson.dumps(v2(metadata={"note": "nul \u0000 here"})), "NUL characters",
                 id="an escaped NUL in the metadata"),
    pytest.param(orjson.dumps(v2(resource_name="RFIs\u0000")), "NUL characters",
                 id="an escaped NUL in the resource name"),
    pytest.param(orjson.dumps(v2(api_version="v9.0")), "api_version 'v9.0' is not v2.x or v3.x",
                 id="an unknown payload version"),
    pytest.param(orjson.dumps({"event": "something else"}), "neither a v2/v3", id="JSON that is no event"),
    pytest.param(orjson.dumps([v2()]), "not a JSON object", id="a list of events"),
])
def test_an_authenticated_body_that_cannot_be_read_is_answered_200_and_kept_raw(
        served: Served, body: bytes, reason: str) -> None:
    answer = served.post(body)
    assert answer.status_code == 200 and answer.json()["result"] == "kept_raw"
    [row] = served.rows()
    assert row["status"] == "ignored" and reason in row["detail"]
    assert codecs.escape_decode(row["raw_body"].encode())[0] == body  # escaped, nothing lost
    assert "\x00" not in row["raw_body"]
    assert served.jobs() == 0
    assert served.post(body).status_code == 200 and len(served.rows()) == 1  # Procore's retry: no copy


def test_a_body_holding_nul_keeps_no_json_but_a_readable_one_keeps_its_json(served: Served) -> None:
    served.post(orjson.dumps(v2(metadata={"note": "\u0000"})))
    served.post(orjson.dumps(v2(api_version="v9.0")))
    nul, unknown = served.rows()
    assert nul["payload"] is None
    assert unknown["payload"]["api_version"] == "v9.0"


def test_a_large_unreadable_body_is_kept_truncated_with_its_size(served: Served) -> None:
    body = b"[" + b"1," * 30_000  # 60 KiB of JSON that never ends
    assert served.post(body).status_code == 200
    [row] = served.rows()
    assert codecs.escape_decode(row["raw_body"].encode())[0] == body[:RAW_BODY_MAX_BYTES]
    assert f"({len(body)} bytes, kept the first {RAW_BODY_MAX_BYTES})" in row["detail"]


@pytest.mark.parametrize("authorization", [
    pytest.param(None, id="missing"), pytest.param("wrong", id="wrong"),
    pytest.param("Bearer " + SECRET, id="with a scheme"),
])
def test_a_body_with_wrong_authorization_is_refused_401_and_leaves_nothing(
        served: Served, authorization: str | None) -> None:
    for body in (orjson.dumps(v2()), b"{not json", orjson.dumps(v2(metadata={"x": "\u0000"}))):
        assert served.post(body, authorization).status_code == 401
    assert served.rows() == [] and served.jobs() == 0


def test_an_oversize_body_is_refused_413_and_leaves_nothing(served: Served) -> None:
    assert served.post(b"x" * (MAX_BODY_BYTES + 1)).status_code == 413
    assert served.post(orjson.dumps(v2(metadata={"pad": "y" * MAX_BODY_BYTES}))).status_code == 413
    assert served.rows() == [] and served.jobs() == 0


def test_a_readable_event_after_odd_bodies_is_still_accepted(served: Served) -> None:
    for body in (b"{", orjson.dumps(v2(metadata={"x": "\u0000"}))):
        assert served.post(body).status_code == 200
    answer = served.post(orjson.dumps(v2(ulid="01JBODYTESTREADABLE0000000", project_id=None,
                                         resource_name="Company Vendors", resource_id=9)))
    assert answer.status_code == 202 and answer.json()["result"] == "enqueued"
    assert served.jobs() == 1
