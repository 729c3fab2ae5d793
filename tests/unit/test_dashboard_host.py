"""The dashboard answers only requests that name it in their Host header (DNS rebinding: a page
whose name is rebound to 127.0.0.1 sends its own name)."""

from __future__ import annotations

from typing import Any

import pytest

from eva00.ops.dashboard.app import HostGuard, host_allowed, split_host

PROXY = frozenset({"eva.example.com"})


@pytest.mark.parametrize(("host", "allowed"), [
    ("127.0.0.1:8403", True),
    ("localhost:8403", True),
    ("LOCALHOST:8403", True),
    ("[::1]:8403", True),
    ("eva.example.com", True),
    ("eva.example.com:443", True),
    ("127.0.0.1:9999", False),
    ("localhost", False),
    ("attacker.example:8403", False),
    ("127.0.0.1.attacker.example:8403", False),
    ("localhost.:8403", False),
    ("[::1]", False),
    ("", False),
])
def test_only_loopback_names_with_the_port_or_configured_names_are_allowed(host: str, allowed: bool) -> None:
    assert host_allowed(host, "8403", PROXY) is allowed


def test_a_bracketed_ipv6_host_splits_into_name_and_port() -> None:
    assert split_host("[::1]:8403") == ("[::1]", "8403")
    assert split_host("Example.COM") == ("example.com", "")


def _call(guard: HostGuard, host: str | None) -> tuple[str, bytes]:
    seen: dict[str, Any] = {}
    environ = {"PATH_INFO": "/api/status", "REQUEST_METHOD": "GET", "SERVER_PORT": "8403"}
    if host is not None:
        environ["HTTP_HOST"] = host
    body = b"".join(guard(environ, lambda status, headers: seen.update(status=status)))
    return seen["status"], body


def _inner(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [])
    return [b"status"]


@pytest.mark.parametrize(("host", "status"), [
    ("127.0.0.1:8403", "200 OK"), ("rebound.attacker.example:8403", "421 Misdirected Request"),
    (None, "421 Misdirected Request"), ("eva.example.com", "200 OK")])
def test_the_guard_answers_421_without_calling_the_dashboard_for_a_foreign_host(
        host: str | None, status: str) -> None:
    guard = HostGuard(_inner, ["eva.example.com"])
    answer, body = _call(guard, host)
    assert answer == status
    assert (body == b"status") is (status == "200 OK")
