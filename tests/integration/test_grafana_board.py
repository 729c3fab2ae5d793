"""The Grafana board queries only what /metrics exports: every metric name and every label it uses is
checked against a real scrape of the dashboard, served over HTTP from real PostgreSQL and Redis
seeded mid-sync, so renaming a metric or a label in the collector fails here."""

from __future__ import annotations

import json

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.grafana_board import BOARD_PATH, board_queries, load_board, problems
from tests.integration.test_dashboard import base_url, pool, seed_stack  # noqa: F401 - fixtures


@pytest.fixture
def exported(base_url: str) -> dict[str, frozenset[str]]:  # noqa: F811
    """Sample names of one scrape (`_total`, `_bucket`, ... as PromQL sees them) and their labels."""
    text = requests.get(base_url + "/metrics", timeout=10).text
    labels: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels.setdefault(sample.name, set()).update(sample.labels)
    return {name: frozenset(names) for name, names in labels.items()}


def test_every_metric_the_board_queries_is_one_a_real_scrape_exports(
        exported: dict[str, frozenset[str]]) -> None:
    assert "eva00_source_up" in exported and len(exported) > 20
    missing = [p for p in problems(board_queries(load_board()), exported) if "is not exported" in p]
    assert missing == []


def test_every_label_the_board_filters_or_groups_by_is_on_its_metric(
        exported: dict[str, frozenset[str]]) -> None:
    assert problems(board_queries(load_board()), exported) == []


def test_a_metric_or_label_renamed_on_the_board_is_caught_by_the_same_check(
        exported: dict[str, frozenset[str]]) -> None:
    text = BOARD_PATH.read_text(encoding="utf-8")
    renamed = json.loads(text.replace("eva00_stream_lag{", "eva00_stream_lags{")
                         .replace("by (budget_class, status)", "by (budget, status)"))
    found = problems(board_queries(renamed), exported)
    assert any("eva00_stream_lags is not exported" in p for p in found)
    assert any("eva00_procore_requests_total has no label budget" in p for p in found)
