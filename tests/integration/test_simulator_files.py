"""Files over real HTTP: the authenticated API-host link redirecting to a signed storage URL, and a
storage host with Range, If-Range, strong ETags, HEAD, expiry and no tolerance for tokens."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pymupdf
import pytest
import requests

from eva00.simulator.testing import SimHandle, running_simulator


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimHandle]:
    with running_simulator(
        tmp_path_factory.mktemp("sim"), projects=1, items=300, rate_limit="off", file_size_bytes=200_000
    ) as handle:
        yield handle


@pytest.fixture(scope="module")
def headers(shared: SimHandle) -> dict[str, str]:
    return shared.headers()


def first_project(sim: SimHandle, headers: dict[str, str]) -> int:
    found = requests.get(
        sim.api_base + "/rest/v1.1/projects",
        params={"company_id": sim.company_id},
        headers=headers,
        timeout=30,
    ).json()
    return int(found[0]["id"])


def signed(sim: SimHandle, headers: dict[str, str], url: str) -> str:
    answer = requests.get(url, headers=headers, allow_redirects=False, timeout=30)
    assert answer.status_code == 302
    return str(answer.headers["Location"])


def any_file_url(sim: SimHandle, headers: dict[str, str]) -> str:
    project = first_project(sim, headers)
    revisions = requests.get(
        f"{sim.api_base}/rest/v1.0/projects/{project}/drawing_revisions", headers=headers, timeout=30
    ).json()
    return str(revisions[0]["pdf_url"])


def test_a_file_link_redirects_to_a_signed_url_on_another_host(
    shared: SimHandle, headers: dict[str, str]
) -> None:
    link = any_file_url(shared, headers)
    location = signed(shared, headers, link)
    assert urlsplit(location).hostname != urlsplit(link).hostname
    assert location.startswith(shared.storage_base) and "sig=" in location and "expires=" in location


def test_following_the_redirect_with_requests_never_leaks_the_token(
    shared: SimHandle, headers: dict[str, str]
) -> None:
    before = shared.stats()["token_leaks"]
    answer = requests.get(any_file_url(shared, headers), headers=headers, timeout=30)
    assert answer.status_code == 200 and answer.content.startswith(b"%PDF-")
    assert shared.stats()["token_leaks"] == before


def test_the_storage_host_refuses_any_authorization_header_and_counts_the_leak(
    shared: SimHandle, headers: dict[str, str]
) -> None:
    location = signed(shared, headers, any_file_url(shared, headers))
    before = shared.stats()["token_leaks"]
    answer = requests.get(location, headers={"Authorization": headers["Authorization"]}, timeout=30)
    assert answer.status_code == 400 and b"<Code>InvalidArgument</Code>" in answer.content
    assert shared.stats()["token_leaks"] == before + 1
    entry = [e for e in shared.ledger() if e["host"] == "storage"][-1]
    assert entry["authorization_present"] and "REDACTED" in entry["query"]


def test_the_file_link_needs_the_bearer_token(shared: SimHandle, headers: dict[str, str]) -> None:
    answer = requests.get(
        any_file_url(shared, headers),
        allow_redirects=False,
        timeout=30,
        headers={"Procore-Company-Id": headers["Procore-Company-Id"]},
    )
    assert answer.status_code == 401


def test_every_file_is_a_valid_document_whose_sha256_the_truth_knows(
    shared: SimHandle, headers: dict[str, str]
) -> None:
    truth = shared.truth(["drawing_revision", "image", "document", "rfi"])
    kinds = {}
    sample: dict[str, list[dict[str, Any]]] = {}
    for row in truth["files"]:
        sample.setdefault(row["content_type"], []).append(row)
    for row in [row for rows in sample.values() for row in rows[:12]]:
        body = requests.get(row["url"], headers=headers, timeout=30).content
        assert hashlib.sha256(body).hexdigest() == row["sha256"] and len(body) == row["size_bytes"]
        kind = {"application/pdf": "pdf", "image/jpeg": "jpeg", "image/png": "png"}[row["content_type"]]
        assert pymupdf.open(stream=body, filetype=kind).page_count == 1
        kinds[kind] = kinds.get(kind, 0) + 1
    assert set(kinds) == {"pdf", "jpeg", "png"}


def test_truth_names_file_fields_like_the_replica_does(shared: SimHandle) -> None:
    fields = {
        (r["kind_of_parent"], r["url_field"].split("[")[0].split(".")[0]) for r in shared.truth()["files"]
    }
    assert {
        ("drawing_revision", "pdf_url"),
        ("image", "url"),
        ("image", "thumbnail_url"),
        ("document", "file"),
        ("spec_section_revision", "url"),
    } <= fields
    assert any(kind == "rfi" and field == "questions" for kind, field in fields)


@pytest.mark.parametrize(
    ("range_header", "status", "expected"),
    [
        ("bytes=0-99", 206, (0, 100)),
        ("bytes=100-", 206, (100, None)),
        ("bytes=-50", 206, (-50, None)),
        ("bytes=5-5", 206, (5, 6)),
        ("bytes=999999999-", 416, None),
        ("bytes=0-1,5-9", 200, (0, None)),
    ],
)
def test_storage_answers_single_ranges(
    shared: SimHandle,
    headers: dict[str, str],
    range_header: str,
    status: int,
    expected: tuple[int, int | None] | None,
) -> None:
    location = signed(shared, headers, any_file_url(shared, headers))
    whole = requests.get(location, timeout=30).content
    answer = requests.get(location, headers={"Range": range_header}, timeout=30)
    assert answer.status_code == status
    if expected is None:
        assert answer.headers["Content-Range"] == f"bytes */{len(whole)}"
        return
    assert answer.content == whole[expected[0] : expected[1]]
    if status == 206:
        first = expected[0] % len(whole)
        assert (
            answer.headers["Content-Range"] == f"bytes {first}-{first + len(answer.content) - 1}/{len(whole)}"
        )


def test_if_range_with_the_current_etag_resumes_and_with_another_sends_everything(
    shared: SimHandle, headers: dict[str, str]
) -> None:
    location = signed(shared, headers, any_file_url(shared, headers))
    head = requests.head(location, timeout=30)
    etag, size = head.headers["ETag"], int(head.headers["Content-Length"])
    assert etag.startswith('"') and head.headers["Accept-Ranges"] == "bytes" and not head.content
    resumed = requests.get(location, headers={"Range": "bytes=10-", "If-Range": etag}, timeout=30)
    assert resumed.status_code == 206 and len(resumed.content) == size - 10
    changed = requests.get(location, headers={"Range": "bytes=10-", "If-Range": '"other"'}, timeout=30)
    assert changed.status_code == 200 and len(changed.content) == size


@pytest.mark.parametrize(
    ("mangle", "code"),
    [
        (lambda url: url.replace("sig=", "sig=0"), "SignatureDoesNotMatch"),
        (lambda url: url.split("&sig=")[0], "AccessDenied"),
    ],
)
def test_a_tampered_signed_url_is_refused(
    shared: SimHandle, headers: dict[str, str], mangle: Any, code: str
) -> None:
    answer = requests.get(mangle(signed(shared, headers, any_file_url(shared, headers))), timeout=30)
    assert answer.status_code == 403 and f"<Code>{code}</Code>".encode() in answer.content


def test_signed_urls_expire(sim: SimHandle) -> None:
    sim.configure(signed_url_ttl_s=60)
    headers = sim.headers()
    location = signed(sim, headers, any_file_url(sim, headers))
    assert requests.head(location, timeout=30).status_code == 200
    sim.configure(clock_offset_s=61)  # the server's clock passes the expiry, whatever the host's speed
    expired = requests.get(location, timeout=30)
    assert expired.status_code == 403 and b"Request has expired" in expired.content


def test_a_new_file_version_has_new_content_and_the_old_one_stays_downloadable(sim: SimHandle) -> None:
    headers = sim.headers()
    project = first_project(sim, headers)
    before = {
        d["id"]: d
        for d in requests.get(
            f"{sim.api_base}/rest/v1.0/projects/{project}/documents",
            headers=headers,
            params={"per_page": 1000},
            timeout=30,
        ).json()
    }
    changed = sim.mutate("new_file_version", project_id=project)[0]
    after = requests.get(
        f"{sim.api_base}/rest/v1.0/projects/{project}/documents",
        headers=headers,
        params={"per_page": 1000},
        timeout=30,
    ).json()
    new = next(d for d in after if d["id"] == changed["id"])
    old_url = before[new["id"]]["file"]["current_version"]["url"]
    new_url = new["file"]["current_version"]["url"]
    assert new_url != old_url and new["updated_at"] == changed["updated_at"]
    old_body, new_body = (requests.get(u, headers=headers, timeout=30).content for u in (old_url, new_url))
    assert old_body.startswith(b"%PDF") and new_body.startswith(b"%PDF") and old_body != new_body
    tree = requests.get(
        f"{sim.api_base}/rest/v1.0/folders/{new['parent_id']}",
        headers=headers,
        params={"project_id": project},
        timeout=30,
    )
    if tree.status_code == 404:
        tree = requests.get(
            f"{sim.api_base}/rest/v1.0/folders", headers=headers, params={"project_id": project}, timeout=30
        )
    listed = next(f for f in tree.json()["files"] if f["id"] == new["id"])
    assert [v["url"] for v in listed["file_versions"]] == [old_url, new_url]


@pytest.mark.parametrize("fmt", ["pdf", "jpeg", "png"])
def test_large_files_stream_with_exact_length_and_hash(sim: SimHandle, fmt: str) -> None:
    made = sim.new_file(8 * 1024 * 1024 + 3, fmt)
    digest, size = hashlib.sha256(), 0
    with requests.get(made["storage_url"], stream=True, timeout=60) as answer:
        for chunk in answer.iter_content(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    info = requests.get(f"{sim.api_base}/_sim/files/{made['file_id']}", timeout=60).json()
    assert size == made["size_bytes"] == info["size_bytes"] and digest.hexdigest() == info["sha256"]


def test_storage_faults_ignore_range_lie_about_length_and_change_the_etag(sim: SimHandle) -> None:
    made = sim.new_file(300_000)
    url = made["storage_url"]
    sim.set_faults("ignore_range", count=1)
    assert requests.get(url, headers={"Range": "bytes=0-9"}, timeout=30).status_code == 200
    sim.set_faults("wrong_length", count=1)
    with pytest.raises(requests.exceptions.RequestException):
        requests.get(url, timeout=30).content  # noqa: B018
    etag = requests.head(url, timeout=30).headers["ETag"]
    sim.set_faults("etag_change", count=1)
    changed = requests.get(url, headers={"Range": "bytes=0-9", "If-Range": etag}, timeout=30)
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
