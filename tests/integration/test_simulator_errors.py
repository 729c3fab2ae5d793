"""Bad input over real HTTP: every malformed request gets Procore's status and a body in Procore's
shape, never a stack trace."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests

from eva00.simulator.testing import SimHandle, running_simulator


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimHandle]:
    with running_simulator(tmp_path_factory.mktemp("sim"), projects=2, items=100, rate_limit="off") as handle:
        yield handle


@pytest.fixture(scope="module")
def headers(shared: SimHandle) -> dict[str, str]:
    return shared.headers()


@pytest.fixture(scope="module")
def project(shared: SimHandle, headers: dict[str, str]) -> int:
    return int(
        requests.get(
            shared.api_base + "/rest/v1.1/projects",
            params={"company_id": shared.company_id},
            headers=headers,
            timeout=30,
        ).json()[0]["id"]
    )


CASES = [
    # (method, path, extra headers, drop headers, status)
    ("GET", "/rest/v1.0/projects/{p}/rfis?per_page=abc", {}, (), 400),
    ("GET", "/rest/v1.0/projects/{p}/rfis?per_page=0", {}, (), 400),
    ("GET", "/rest/v1.0/projects/{p}/rfis?page=-1", {}, (), 400),
    ("GET", "/rest/v1.0/projects/{p}/rfis?filters[updated_at]=yesterday", {}, (), 400),
    ("GET", "/rest/v1.0/images", {}, (), 400),
    ("GET", "/rest/v1.0/images?project_id=abc", {}, (), 400),
    ("GET", "/rest/v1.1/projects", {}, (), 400),
    ("GET", "/rest/v1.0/projects/{p}/daily_log_headers/index?start_date=2024-01-01", {}, (), 400),
    ("GET", "/rest/v1.0/projects/{p}/daily_log_headers/index?start_date=x&end_date=y", {}, (), 400),
    ("GET", "/rest/v1.0/projects/{p}/rfis", {}, ("Procore-Company-Id",), 400),
    ("GET", "/rest/v1.0/projects/{p}/rfis", {}, ("Authorization",), 401),
    ("GET", "/rest/v1.0/projects/{p}/rfis", {"Authorization": "Bearer expired-or-made-up"}, (), 401),
    ("GET", "/rest/v1.0/projects/{p}/rfis", {"Procore-Company-Id": "1"}, (), 403),
    ("GET", "/rest/v1.1/projects?company_id=1", {}, (), 403),
    ("GET", "/rest/v1.0/projects/999999/rfis", {}, (), 404),
    ("GET", "/rest/v1.0/projects/{p}/rfis/1", {}, (), 404),
    ("GET", "/rest/v1.0/no/such/thing", {}, (), 404),
    ("GET", "/rest/v1.0/files/1/download", {}, (), 404),
    ("DELETE", "/rest/v1.0/projects/{p}/rfis", {}, (), 405),
    ("GET", "/rest/v1.0/projects/{p}/rfis", {"Accept": "text/html"}, (), 406),
    (
        "GET",
        "/rest/v1.0/projects/{p}/daily_log_headers/index?start_date=2024-01-01&end_date=2024-06-01",
        {},
        (),
        422,
    ),
    ("POST", "/rest/v1.0/webhooks/hooks?company_id={c}", {"Content-Type": "application/json"}, (), 400),
]


@pytest.mark.parametrize(("method", "path", "extra", "drop", "status"), CASES)
def test_malformed_requests_get_procores_status_and_error_shape(
    shared: SimHandle,
    headers: dict[str, str],
    project: int,
    method: str,
    path: str,
    extra: dict[str, str],
    drop: tuple[str, ...],
    status: int,
) -> None:
    sent = {k: v for k, v in {**headers, **extra}.items() if k not in drop}
    answer = requests.request(
        method,
        shared.api_base + path.format(p=project, c=shared.company_id),
        headers=sent,
        data=b"{not json" if method == "POST" else None,
        timeout=30,
    )
    assert answer.status_code == status
    body = answer.json()
    assert isinstance(body, dict) and isinstance(body["errors"], str) and body["errors"]
    assert "Traceback" not in answer.text


def test_a_broken_request_line_gets_a_json_400(shared: SimHandle) -> None:
    parts = urlsplit(shared.api_base)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as conn:
        conn.sendall(b"THIS IS NOT HTTP\r\n\r\n")
        answer = conn.recv(65536)
    assert answer.startswith(b"HTTP/1.1 400") and b'{"errors"' in answer and b"Traceback" not in answer


def test_unknown_control_and_storage_paths_are_404_in_their_hosts_shapes(shared: SimHandle) -> None:
    control = requests.get(shared.api_base + "/_sim/nothing", timeout=30)
    assert control.status_code == 404 and "errors" in control.json()
    storage = requests.get(shared.storage_base + "/nothing", timeout=30)
    assert storage.status_code == 404 and b"<Code>NoSuchKey</Code>" in storage.content
    post = requests.post(shared.storage_base + "/blobs/1", timeout=30)
    assert post.status_code == 405


def test_bad_control_requests_are_refused_with_reasons(shared: SimHandle) -> None:
    cases = [
        ("POST", "/_sim/mutate", {"action": "explode"}, 422),
        ("POST", "/_sim/mutate", {"action": "update", "kind": "rfi", "id": 1}, 422),
        ("POST", "/_sim/faults", {"mode": "gremlins"}, 422),
        ("POST", "/_sim/config", {"no_such_option": 1}, 422),
        ("POST", "/_sim/config", {"port": 1}, 422),
        ("GET", "/_sim/truth?kinds=unicorn", None, 400),
        ("DELETE", "/_sim/stats", None, 405),
    ]
    for method, path, body, status in cases:
        answer = requests.request(method, shared.api_base + path, json=body, timeout=30)
        assert answer.status_code == status, path
        assert answer.json()["errors"]
