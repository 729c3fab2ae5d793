"""The SSRF guard: only https, only allowlisted storage hosts, no private targets, every hop checked,
and a canary listener that never hears a request the guard refused."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from eva00.pdf_import import links, urlguard
from eva00.pdf_import.urlguard import Allowlist, UrlRefused, check_url, probe, redact
from tests import pdf_fixtures as fx

PUBLIC = "52.216.0.10"  # an address outside every private, loopback and reserved range


def resolver(table: dict[str, list[str]]) -> urlguard.Resolver:
    """getaddrinfo over a fixed table: tests never depend on real DNS."""

    def resolve(host: str, port: int, **_kw: Any) -> list[tuple[Any, ...]]:
        if host not in table:
            raise socket.gaierror(f"unknown host {host}")
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                for a in table[host]]

    return resolve


DNS = resolver({"storage.procore.com": [PUBLIC], "files.procore.com": [PUBLIC],
                "evil.procore.com": ["127.0.0.1"], "meta.procore.com": ["169.254.169.254"],
                "mixed.procore.com": [PUBLIC, "10.1.2.3"], "v6.procore.com": ["::ffff:192.168.0.1"]})
ALLOW = ["storage.procore.com", "*.procore.com"]


@pytest.fixture
def canary() -> Iterator[fx.Canary]:
    with fx.Canary() as listener:
        yield listener


def test_an_allowlisted_https_url_passes_with_the_addresses_to_connect_to() -> None:
    safe = check_url("https://storage.procore.com/api/v5/files/1?sig=abc", ALLOW, DNS)
    assert (safe.host, safe.port, safe.addresses) == ("storage.procore.com", 443, (PUBLIC,))
    assert safe.target == "/api/v5/files/1?sig=abc"


@pytest.mark.parametrize(("url", "reason"), [
    ("http://storage.procore.com/f", "scheme 'http' is not https"),
    ("file:///etc/passwd", "scheme 'file' is not https"),
    ("ftp://storage.procore.com/f", "scheme 'ftp' is not https"),
    ("gopher://127.0.0.1:6379/_FLUSHALL", "scheme 'gopher' is not https"),
    ("//storage.procore.com/f", "scheme '(none)' is not https"),
    ("https://example.com/f", "host example.com:443 is not an allowed storage host"),
    ("https://storage.procore.com.evil.com/f", "is not an allowed storage host"),
    ("https://storage.procore.com:8443/f", "host storage.procore.com:8443 is not an allowed"),
    ("https://procore.com/f", "host procore.com:443 is not an allowed"),
    ("https://127.0.0.1/f", "host 127.0.0.1:443 is not an allowed"),
    ("https://169.254.169.254/latest/meta-data/", "host 169.254.169.254:443 is not an allowed"),
    ("https://10.0.0.5/f", "host 10.0.0.5:443 is not an allowed"),
    ("https://[::1]/f", "host ::1:443 is not an allowed"),
    ("https://2130706433/f", "is not an allowed storage host"),
    ("https://0x7f.1/f", "is not an allowed storage host"),
    ("https://storage.procore.com@127.0.0.1/f", "credentials in the URL"),
    ("https://user:pw@storage.procore.com/f", "credentials in the URL"),
    ("https://127.0.0.1\\@storage.procore.com/f", "malformed URL"),
    ("https://storage.procore.com/f\r\nHost: x", "malformed URL"),
    ("https://evil.procore.com/f", "resolves to a non-public address 127.0.0.1"),
    ("https://meta.procore.com/f", "resolves to a non-public address 169.254.169.254"),
    ("https://mixed.procore.com/f", "resolves to a non-public address 10.1.2.3"),
    ("https://v6.procore.com/f", "resolves to a non-public address ::ffff:192.168.0.1"),
    ("https://unknown.procore.com/f", "does not resolve"),
])
def test_unsafe_urls_are_refused_with_the_reason(url: str, reason: str) -> None:
    with pytest.raises(UrlRefused, match=reason.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        check_url(url, ALLOW, DNS)


def test_an_exactly_allowlisted_host_may_be_loopback_but_only_on_its_port() -> None:
    assert check_url("https://127.0.0.1:8443/f", ["127.0.0.1:8443"]).addresses == ("127.0.0.1",)
    with pytest.raises(UrlRefused):
        check_url("https://127.0.0.1:8444/f", ["127.0.0.1:8443"])


def test_an_exactly_allowlisted_name_is_trusted_wherever_it_resolves_a_wildcard_match_is_not() -> None:
    table = resolver({"cdn.procore.com": ["10.9.9.9"]})
    assert check_url("https://cdn.procore.com/f", ["cdn.procore.com"], table).addresses == ("10.9.9.9",)
    with pytest.raises(UrlRefused, match="non-public"):
        check_url("https://cdn.procore.com/f", ["*.procore.com"], table)


def test_allowlist_entries_are_case_and_trailing_dot_insensitive() -> None:
    allow = Allowlist(["Storage.Procore.COM."])
    assert check_url("https://STORAGE.procore.com./f", allow, DNS).host == "storage.procore.com"


@pytest.mark.parametrize(("url", "shown"), [
    ("https://s.procore.com/f?companyId=1&sig=abc123&x=1", "https://s.procore.com/f?companyId=1&sig=REDACTED&x=1"),
    ("https://b.s3.amazonaws.com/k?X-Amz-Credential=AK%2F1&X-Amz-Signature=f00d",
     "https://b.s3.amazonaws.com/k?X-Amz-Credential=REDACTED&X-Amz-Signature=REDACTED"),
    ("https://h/f?Signature=zz&Expires=1&token=t0k", "https://h/f?Signature=REDACTED&Expires=1&token=REDACTED"),
    ("https://user:secret@h/f", "https://user:REDACTED@h/f"),
])
def test_signatures_and_passwords_are_redacted_for_logs(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_the_canary_hears_a_direct_connection(canary: fx.Canary) -> None:
    socket.create_connection(("127.0.0.1", canary.port), timeout=2).close()
    fx.wait_for(lambda: canary.hits == 1)


@pytest.mark.parametrize("target", [
    "http://127.0.0.1:{port}/", "https://127.0.0.1:{port}/", "https://[::1]:{port}/",
    "https://localhost:{port}/", "file:///etc/passwd", "https://169.254.169.254/latest/meta-data/",
])
def test_a_refused_url_never_reaches_the_canary(canary: fx.Canary, target: str) -> None:
    with pytest.raises(UrlRefused):
        probe(target.format(port=canary.port), ["storage.procore.com"], resolver=DNS, timeout_s=2)
    assert canary.hits == 0


@pytest.mark.parametrize("location", [
    "http://127.0.0.1:{port}/steal", "https://127.0.0.1:{port}/steal", "https://169.254.169.254/x",
    "https://10.0.0.1/x", "https://[::1]:{port}/x", "file:///etc/passwd", "//127.0.0.1:{port}/x",
])
def test_a_redirect_leaving_the_allowlist_is_refused_before_it_is_followed(canary: fx.Canary,
                                                                            location: str) -> None:
    routes = {"/f": (302, {"Location": location.format(port=canary.port)})}
    with fx.StorageServer(routes) as storage:
        with pytest.raises(UrlRefused):
            probe(storage.url("/f?sig=abc"), [storage.host], context=fx.storage_client_context(), timeout_s=5)
        assert [path for path, _ in storage.requests] == ["/f?sig=abc"]
    assert canary.hits == 0


def test_redirects_within_the_allowlist_are_followed_without_credentials() -> None:
    routes = {"/a": (302, {"Location": "/b"}), "/b": (307, {"Location": "/c?sig=2"}), "/c": (206, {})}
    with fx.StorageServer(routes) as storage:
        result = probe(storage.url("/a?sig=1"), [storage.host], context=fx.storage_client_context())
    assert (result.status, result.hops, result.ok) == (206, 2, True)
    assert [path for path, _ in storage.requests] == ["/a?sig=1", "/b", "/c?sig=2"]
    assert all("Authorization" not in headers and headers["Range"] == "bytes=0-0"
               for _, headers in storage.requests)


def test_a_redirect_loop_is_refused() -> None:
    with fx.StorageServer({"/loop": (302, {"Location": "/loop"})}) as storage, \
            pytest.raises(UrlRefused, match="more than 5 redirects"):
        probe(storage.url("/loop"), [storage.host], context=fx.storage_client_context())


def test_a_certificate_not_trusted_for_the_host_fails_the_probe() -> None:
    with fx.StorageServer({"/f": (200, {})}) as storage, pytest.raises(OSError):
        probe(storage.url("/f"), [storage.host], timeout_s=5)  # the system store lacks the test CA


@pytest.mark.parametrize(("status", "verdict"), [
    (200, links.LinkStatus.QUEUED), (206, links.LinkStatus.QUEUED), (403, links.LinkStatus.EXPIRED),
    (401, links.LinkStatus.EXPIRED), (410, links.LinkStatus.EXPIRED), (404, links.LinkStatus.UNAVAILABLE),
    (503, links.LinkStatus.QUEUED),
])
def test_links_are_judged_by_what_storage_answers(status: int, verdict: links.LinkStatus) -> None:
    with fx.StorageServer({"/f": (status, {})}) as storage:
        [judged] = links.judge_links([{"name": "a.pdf", "url": storage.url("/f?sig=s")}], [storage.host],
                                     context=fx.storage_client_context())
    assert judged.status is verdict
    assert judged.redacted_url.endswith("/f?sig=REDACTED")


def test_a_signed_url_past_its_own_expiry_is_expired_without_asking_storage(canary: fx.Canary) -> None:
    url = (f"https://127.0.0.1:{canary.port}/f?X-Amz-Date=20240101T000000Z&X-Amz-Expires=3600"
           "&X-Amz-Signature=abc")
    [judged] = links.judge_links([{"name": "old.pdf", "url": url}], [f"127.0.0.1:{canary.port}"],
                                 now=lambda: 1704070800.0)  # 2024-01-01T01:00:00Z
    assert judged.status is links.LinkStatus.EXPIRED and "2024-01-01T01:00:00Z" in judged.reason
    assert canary.hits == 0


def test_signed_expiry_reads_aws_and_epoch_forms_and_nothing_else() -> None:
    assert links.signed_expiry("https://h/f?X-Amz-Date=20240101T000000Z&X-Amz-Expires=60") == 1704067260
    assert links.signed_expiry("https://h/f?Expires=1704067200&Signature=x") == 1704067200
    assert links.signed_expiry("https://h/f?sig=abc&expires=soon") is None


def test_unreachable_storage_leaves_the_link_to_the_downloader() -> None:
    with fx.Canary() as closed:
        port = closed.port
    [judged] = links.judge_links([{"name": "a.pdf", "url": f"https://127.0.0.1:{port}/f"}],
                                 [f"127.0.0.1:{port}"], timeout_s=2)
    assert judged.status is links.LinkStatus.QUEUED and judged.reason.startswith("not verified")


def test_without_probing_links_are_judged_offline(canary: fx.Canary) -> None:
    verdicts = links.judge_links(
        [{"name": "ok", "url": f"https://127.0.0.1:{canary.port}/f"}, {"name": "bad", "url": "file:///x"}],
        [f"127.0.0.1:{canary.port}"], probe_links=False)
    assert [v.status for v in verdicts] == [links.LinkStatus.QUEUED, links.LinkStatus.REFUSED]
    assert canary.hits == 0
