"""The listener's HTTP surface on a real waitress server (loopback), with an intake stand-in:
routes, status codes, body limit, read deadline, secrets never in answers or logs."""

from __future__ import annotations

import http.server
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests

from eva00.webhooks.auth import Authenticator, SecretFile, sign
from eva00.webhooks.events import WebhookEvent
from eva00.webhooks.intake import Outcome, Unavailable
from eva00.webhooks.options import MAX_BODY_BYTES, WebhookOptions
from eva00.webhooks.server import Listener
from tests.unit.test_webhook_events import v2

SECRET = "unit-test-secret-6f1d2c"
HMAC_KEY = "unit-test-hmac-key-99aa"


class RecordingIntake:
    def __init__(self, answer: Callable[[WebhookEvent], Outcome] | None = None) -> None:
        self.accepted: list[WebhookEvent] = []
        self.invalid: list[str] = []
        self.answer = answer or (lambda event: Outcome(202, "enqueued", "queued"))

    def accept(self, event: WebhookEvent) -> Outcome:
        self.accepted.append(event)
        return self.answer(event)

    def record_unreadable(self, body: bytes, problem: str) -> Outcome:
        self.invalid.append(problem)
        return Outcome(200, "kept_raw", problem)

    def requeue_received(self, older_than_s: float | None = None, limit: int = 500) -> int:
        return 0


class Served:
    def __init__(self, listener: Listener, intake: RecordingIntake) -> None:
        self.listener, self.intake = listener, intake
        self.url = f"http://127.0.0.1:{listener.port}"

    def post(self, body: bytes, headers: dict[str, str] | None = None) -> requests.Response:
        sent = {"Authorization": SECRET, "Content-Type": "application/json", **(headers or {})}
        return requests.post(self.url + "/webhooks/procore", data=body, headers=sent, timeout=5)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    started: list[tuple[Listener, threading.Thread]] = []

    def start(intake: RecordingIntake | None = None, *, hmac_secret: str = "",
              read_timeout_s: float = 10.0) -> Served:
        options = WebhookOptions(host="127.0.0.1", port=0, company_id=1357, secrets=(SECRET,),
                                 hmac_secret=hmac_secret, secrets_file=tmp_path / "secrets",
                                 threads=4, read_timeout_s=read_timeout_s)
        intake = intake or RecordingIntake()
        auth = Authenticator(options.secrets, SecretFile(options.secrets_file), hmac_secret)
        listener = Listener(options, auth, intake,  # type: ignore[arg-type]
                            lambda: {"postgres": True, "redis": True})
        thread = threading.Thread(target=listener.run, daemon=True)
        thread.start()
        started.append((listener, thread))
        return Served(listener, intake)

    yield start
    for listener, thread in started:
        listener.stop()
        thread.join(10)
        assert not thread.is_alive(), "the listener did not stop"


BODY = orjson.dumps(v2(company_id=1357))


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status"),
    [
        pytest.param("POST", "/webhooks/procore", {"Authorization": SECRET}, BODY, 202,
                     id="accepted"),
        pytest.param("GET", "/healthz", {}, b"", 200, id="health"),
        pytest.param("POST", "/webhooks/procore", {}, BODY, 401, id="no credentials"),
        pytest.param("POST", "/webhooks/procore", {"Authorization": "nope"}, BODY, 401,
                     id="wrong credentials"),
        pytest.param("POST", "/webhooks/procore", {"Authorization": SECRET.upper()}, BODY, 401,
                     id="wrong-case credentials"),
        pytest.param("POST", "/webhooks/procore", {"Authorization": "Bearer " + SECRET}, BODY,
                     401, id="padded credentials"),
        pytest.param("POST", "/webhooks/procore", {"Authorization": SECRET}, b"{not json", 200,
                     id="malformed JSON"),
        pytest.param("POST", "/webhooks/procore", {"Authorization": SECRET}, b'{"a": 1}', 200,
                     id="JSON that is no event"),
        pytest.param("GET", "/webhooks/procore", {"Authorization": SECRET}, b"", 405,
                     id="webhook path, wrong method"),
        pytest.param("POST", "/healthz", {}, b"", 405, id="health, wrong method"),
        pytest.param("POST", "/webhooks/procore/", {"Authorization": SECRET}, BODY, 404,
                     id="trailing slash"),
        pytest.param("GET", "/", {}, b"", 404, id="root"),
        pytest.param("GET", "/api/status", {}, b"", 404, id="a dashboard path"),
        pytest.param("POST", "/webhooks/other", {"Authorization": SECRET}, BODY, 404,
                     id="other webhook path"),
    ],
)
def test_each_request_gets_its_status(serve: Callable[..., Served], method: str, path: str,
                                      headers: dict[str, str], body: bytes, status: int) -> None:
    served = serve()
    answer = requests.request(method, served.url + path, data=body, headers=headers, timeout=5)
    assert answer.status_code == status
    assert answer.headers["Content-Type"] == "application/json"
    assert len(served.intake.accepted) == (1 if status == 202 else 0)


def test_a_wrong_method_names_the_allowed_one(serve: Callable[..., Served]) -> None:
    answer = requests.get(serve().url + "/webhooks/procore", timeout=5)
    assert answer.headers["Allow"] == "POST"


def test_unreadable_payloads_are_kept_for_the_operator_and_answered_200(serve: Callable[..., Served]) -> None:
    served = serve()
    assert served.post(b'{"resource_name": "RFIs"}').status_code == 200
    assert served.post(b"[1, 2").status_code == 200
    assert served.intake.invalid[0] == "api_version is missing"
    assert served.intake.invalid[1].startswith("not JSON")
    assert served.intake.accepted == []


def padded_event(size: int) -> bytes:
    base = v2(company_id=1357, metadata={"pad": ""})
    overhead = len(orjson.dumps(base))
    base["metadata"]["pad"] = "x" * (size - overhead)
    body = orjson.dumps(base)
    assert len(body) == size
    return body


@pytest.mark.parametrize(
    ("size", "status"),
    [(MAX_BODY_BYTES - 1, 202), (MAX_BODY_BYTES, 202), (MAX_BODY_BYTES + 1, 413),
     (10 * MAX_BODY_BYTES, 413)],
)
def test_bodies_up_to_64_kib_are_read_and_larger_ones_refused(
        serve: Callable[..., Served], size: int, status: int) -> None:
    served = serve()
    assert served.post(padded_event(size)).status_code == status


def test_a_chunked_body_over_the_limit_is_refused(serve: Callable[..., Served]) -> None:
    served = serve()

    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b"x" * 8192

    answer = requests.post(served.url + "/webhooks/procore", data=chunks(),
                           headers={"Authorization": SECRET}, timeout=5)
    assert answer.status_code == 413
    assert served.intake.accepted == []


def raw_exchange(port: int, data: bytes, read_timeout_s: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout_s) as sock:
        sock.sendall(data)
        return sock.recv(65536)


def test_an_oversize_declared_body_is_refused_before_it_is_sent(
        serve: Callable[..., Served]) -> None:
    served = serve()
    head = (f"POST /webhooks/procore HTTP/1.1\r\nHost: x\r\nAuthorization: {SECRET}\r\n"
            f"Content-Length: {100 * MAX_BODY_BYTES}\r\n\r\n").encode()
    answer = raw_exchange(served.listener.port, head)  # no body follows
    assert answer.startswith(b"HTTP/1.1 413")


@pytest.fixture
def dashboard() -> Iterator[int]:
    """Something listening where the dashboard would, answering a marker nobody may see."""

    class Marker(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"DASHBOARD-MARKER")

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Marker)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    "request_line",
    [
        pytest.param("GET http://127.0.0.1:{port}/ HTTP/1.1", id="absolute URI to the dashboard"),
        pytest.param("GET http://127.0.0.1:{port}/api/status HTTP/1.1", id="dashboard API"),
        pytest.param("CONNECT 127.0.0.1:{port} HTTP/1.1", id="CONNECT tunnel"),
        pytest.param("GET / HTTP/1.1", id="Host header naming the dashboard"),
    ],
)
def test_the_dashboard_is_not_reachable_through_the_webhook_port(
        serve: Callable[..., Served], dashboard: int, request_line: str) -> None:
    served = serve()
    line = request_line.format(port=dashboard)
    answer = raw_exchange(served.listener.port,
                          f"{line}\r\nHost: 127.0.0.1:{dashboard}\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 404")
    assert b"DASHBOARD-MARKER" not in answer
    assert requests.get(f"http://127.0.0.1:{dashboard}/", timeout=5).text == "DASHBOARD-MARKER"


def test_a_trickling_client_is_cut_while_others_are_served(serve: Callable[..., Served]) -> None:
    served = serve(read_timeout_s=1.0)
    sock = socket.create_connection(("127.0.0.1", served.listener.port), timeout=5)
    sock.sendall(b"POST /webhooks/procore HTTP/1.1\r\nHost: x\r\n")
    started = time.monotonic()
    closed_after = None
    while time.monotonic() - started < 6:
        answer = requests.get(served.url + "/healthz", timeout=2)
        assert answer.status_code == 200  # the trickle holds no worker
        try:
            sock.sendall(b"X-Trickle: 1\r\n")  # never idle, never complete
            sock.settimeout(0.3)
            if sock.recv(1) == b"":
                closed_after = time.monotonic() - started
                break
        except TimeoutError:
            continue
        except OSError:
            closed_after = time.monotonic() - started
            break
    sock.close()
    assert closed_after is not None and closed_after < 4.0


def test_concurrent_deliveries_are_answered_in_parallel(serve: Callable[..., Served]) -> None:
    gate = threading.Barrier(4, timeout=5)

    def slow(event: WebhookEvent) -> Outcome:
        gate.wait()  # only passes once four requests are inside the handler at once
        return Outcome(202, "enqueued")

    served = serve(RecordingIntake(slow))
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(served.post(BODY).status_code))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert results == [202, 202, 202, 202]


@pytest.mark.parametrize(
    ("signature", "status"),
    [(None, 401), ("sha256=" + "0" * 64, 401), (sign(HMAC_KEY, BODY), 202)],
)
def test_a_configured_hmac_is_checked_over_the_raw_body(
        serve: Callable[..., Served], signature: str | None, status: int) -> None:
    served = serve(hmac_secret=HMAC_KEY)
    headers = {"X-Procore-Signature": signature} if signature else {}
    assert served.post(BODY, headers).status_code == status


def test_an_unavailable_database_answers_503_so_procore_retries(
        serve: Callable[..., Served]) -> None:
    def down(event: WebhookEvent) -> Outcome:
        raise Unavailable("PostgreSQL: OperationalError")

    answer = serve(RecordingIntake(down)).post(BODY)
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "5"


def test_a_failure_answers_500_without_a_stack_trace_or_secret(
        serve: Callable[..., Served], caplog: pytest.LogCaptureFixture) -> None:
    def broken(event: WebhookEvent) -> Outcome:
        raise RuntimeError("boom")

    caplog.set_level(logging.DEBUG)
    answer = serve(RecordingIntake(broken)).post(BODY)
    assert answer.status_code == 500
    assert answer.json() == {"error": "internal error"}
    assert "Traceback" not in answer.text and SECRET not in answer.text


def test_no_log_line_reveals_a_secret(serve: Callable[..., Served],
                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    served = serve(hmac_secret=HMAC_KEY)
    served.post(BODY)
    served.post(BODY, {"Authorization": SECRET + "x", "X-Procore-Signature": "bad"})
    served.post(BODY, {"X-Procore-Signature": sign(HMAC_KEY, BODY)})
    served.post(b"{broken", {"X-Procore-Signature": sign(HMAC_KEY, b"{broken")})
    text = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert "401" in text
    assert SECRET not in text and HMAC_KEY not in text


def test_stopping_twice_or_after_the_end_is_harmless(serve: Callable[..., Served]) -> None:
    served = serve()
    served.listener.stop()
    served.listener.stop()  # a second signal while stopping
    deadline = time.monotonic() + 5
    while served.listener.server._map and time.monotonic() < deadline:
        time.sleep(0.05)
    assert served.listener.server._map == {}
    served.listener.stop()  # after the loop ended (the fixture stops it once more, too)
    with pytest.raises(requests.ConnectionError):
        requests.get(served.url + "/healthz", timeout=2)
