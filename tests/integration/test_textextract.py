"""The text-extraction stage: PDF text into file_texts (searchable); corrupt PDFs quarantined."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from psycopg_pool import ConnectionPool

from eva00 import keys
from eva00.config import Settings
from eva00.messages import StoredFileJob
from eva00.replica.filestore import FileStore
from eva00.runtime.stage import Stage, accepting
from eva00.stages.text_extractor import TextExtractor
from tests.integration.test_thumbnails import drain, pdf_bytes, put


@pytest.fixture
def pool(database_url: str) -> Iterator[ConnectionPool]:
    with ConnectionPool(database_url, min_size=1, max_size=2, open=True) as opened:
        yield opened


def test_pdf_text_becomes_searchable_and_a_corrupt_pdf_is_quarantined(
        settings: Settings, redis_client: redis.Redis, pool: ConnectionPool) -> None:
    store = FileStore(settings.data_dir)
    stage = Stage("text", settings, redis_client, pool, [(keys.STREAM_TEXT, keys.GROUP_TEXT)],
                  accepting(StoredFileJob)(TextExtractor(store, max_chars=10_000)), consumer="text-test")
    corrupt = put(store, pool, redis_client, keys.STREAM_TEXT, b"%PDF-1.4 broken", "application/pdf")
    good = put(store, pool, redis_client, keys.STREAM_TEXT, pdf_bytes("Waterproofing membrane at grid C4"),
               "application/pdf")
    drain(stage)
    assert stage.stats.dead_lettered == 0
    with pool.connection() as conn:
        found = conn.execute("SELECT sha256 FROM file_texts WHERE tsv @@ websearch_to_tsquery('english',"
                             " 'waterproofing membranes')").fetchall()
        quarantined = conn.execute("SELECT sha256, error FROM file_quarantine"
                                   " WHERE stage = 'text'").fetchall()
    assert found == [(good,)]
    assert [sha for sha, _error in quarantined] == [corrupt]
