"""`eva00 search`: records (every string of the payload) and file text, live records only."""

from __future__ import annotations

import psycopg
import pytest
from psycopg.types.json import Jsonb

from eva00.cli.search import main
from eva00.ops.search import format_hit, search

SHA = "ab" * 32


def seed(conn: psycopg.Connection) -> None:
    for procore_id, subject, deleted in ((1, "Curtain wall anchor spacing", False),
                                         (2, "Curtain wall mockup", True), (3, "Paint colours", False)):
        conn.execute("INSERT INTO rfis (kind, procore_id, project_id, payload, payload_hash, fetched_at,"
                     " source, is_deleted) VALUES ('rfi', %s, 10, %s, 'h', now(), 'api', %s)",
                     (procore_id, Jsonb({"subject": subject, "number": str(procore_id)}),
                      deleted))
    conn.execute("INSERT INTO files (sha256, size_bytes, content_type, storage_path)"
                 " VALUES (%s, 10, 'application/pdf', 'x')", (SHA,))
    conn.execute("INSERT INTO record_files (kind, procore_id, project_id, url_field, sha256, status)"
                 " VALUES ('submittal', 7, 10, 'attachments[id=1].url', %s, 'downloaded')", (SHA,))
    conn.execute("INSERT INTO file_texts (sha256, text) VALUES (%s, %s)",
                 (SHA, "Anchors for the curtain wall are spaced at 600 mm."))


def test_search_finds_live_records_and_file_text_but_not_deleted_records(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        seed(conn)
        hits = search(conn, "curtain wall anchors")
    assert {(h.source, h.kind, h.procore_id) for h in hits} == {
        ("record", "rfi", 1), ("file", "submittal", 7)}
    file_hit = next(h for h in hits if h.source == "file")
    assert "<b>" in file_hit.snippet and "submittal 7" in format_hit(file_hit)


def test_the_command_prints_hits_and_exits_1_without_any(
        database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    with psycopg.connect(database_url) as conn:
        seed(conn)
    monkeypatch.setenv("DATABASE_URL", database_url)
    assert main(["paint"]) == 0
    assert "rfi 3 (project 10): Paint colours" in capsys.readouterr().out
    assert main(["zeppelin"]) == 1
