"""docs/grafana/eva00.json imports into any Grafana, and the PromQL reader behind the check that the
board queries only exported metrics (tests/integration/test_grafana_board.py) reads what it must."""

from __future__ import annotations

from itertools import combinations
from typing import Any

import pytest

from tests.grafana_board import (
    BoardQuery,
    Grouping,
    Selector,
    board_queries,
    load_board,
    panels,
    problems,
    read_promql,
)

DS = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}


@pytest.fixture(scope="module")
def board() -> dict[str, Any]:
    return load_board()


def test_the_board_is_a_grafana_export_with_a_prometheus_data_source_input(board: dict[str, Any]) -> None:
    assert board["schemaVersion"] >= 36
    assert board["id"] is None and board["uid"] and board["title"]
    assert board["__inputs"] == [{
        "name": "DS_PROMETHEUS", "label": "Prometheus", "description": board["__inputs"][0]["description"],
        "type": "datasource", "pluginId": "prometheus", "pluginName": "Prometheus"}]
    required = {(r["type"], r["id"]) for r in board["__requires"]}
    assert {("grafana", "grafana"), ("datasource", "prometheus")} <= required


def test_requires_lists_every_panel_type_the_board_uses(board: dict[str, Any]) -> None:
    used = {p["type"] for p in panels(board) if p["type"] != "row"}
    assert used == {r["id"] for r in board["__requires"] if r["type"] == "panel"}


def test_every_panel_query_and_variable_asks_the_imported_prometheus(board: dict[str, Any]) -> None:
    queried = [p for p in panels(board) if p["type"] != "row"]
    assert queried
    for panel in queried:
        assert panel["datasource"] == DS, panel["title"]
        assert panel["targets"], panel["title"]
        assert all(t["datasource"] == DS for t in panel["targets"]), panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
    for variable in board["templating"]["list"]:
        assert variable["datasource"] == DS, variable["name"]


def test_panels_have_unique_ids_and_do_not_overlap_on_the_24_column_grid(board: dict[str, Any]) -> None:
    laid_out = list(panels(board))
    assert len({p["id"] for p in laid_out}) == len(laid_out)
    boxes = [(p["title"], p["gridPos"]) for p in laid_out]
    for title, g in boxes:
        assert g["x"] >= 0 and g["w"] > 0 and g["h"] > 0 and g["x"] + g["w"] <= 24, title
    for (a, ga), (b, gb) in combinations(boxes, 2):
        apart = (ga["x"] + ga["w"] <= gb["x"] or gb["x"] + gb["w"] <= ga["x"]
                 or ga["y"] + ga["h"] <= gb["y"] or gb["y"] + gb["h"] <= ga["y"])
        assert apart, f"{a!r} overlaps {b!r}"


def test_the_board_shows_what_the_issue_asks_for(board: dict[str, Any]) -> None:
    metrics = set().union(*(q.query.metrics for q in board_queries(board)))
    assert {"eva00_poll_lag_intervals", "eva00_limiter_requests_last_minute",
            "eva00_limiter_budget_requests_per_minute", "eva00_limiter_limit_requests_per_minute",
            "eva00_stream_lag", "eva00_downloads", "eva00_download_bytes", "eva00_alerts_open",
            "eva00_source_up"} <= metrics
    freshness = [q for q in board_queries(board) if "eva00_poll_lag_intervals" in q.query.metrics]
    assert any(g.clause == "by" and g.labels == {"family"} for q in freshness for g in q.query.groupings)


@pytest.mark.parametrize(("expr", "selectors", "groupings"), [
    ('sum by (stream, group) (eva00_stream_lag{instance=~"$instance"})',
     {Selector("eva00_stream_lag", frozenset({"instance"}))},
     {Grouping("by", frozenset({"stream", "group"}), frozenset({"eva00_stream_lag"}))}),
    ("histogram_quantile(0.95, sum by (le, budget_class) (rate(x_seconds_bucket[$__rate_interval])))",
     {Selector("x_seconds_bucket", frozenset())},
     {Grouping("by", frozenset({"le", "budget_class"}), frozenset({"x_seconds_bucket"}))}),
    ("sum(rate(a_total[5m])) without (status) * 60 + b",
     {Selector("a_total", frozenset()), Selector("b", frozenset())},
     {Grouping("without", frozenset({"status"}), frozenset({"a_total"}))}),
    ('count(a{family=~"$family", kind!="rfi"} >= 2) or vector(0) > bool Inf',
     {Selector("a", frozenset({"family", "kind"}))}, set()),
    ('label_replace(a, "dst", "eva00_not_a_metric", "src", "(.*)")', {Selector("a", frozenset())}, set()),
    ("a / on (x) group_left (y) max by (x) (b)",
     {Selector("a", frozenset()), Selector("b", frozenset())},
     {Grouping("on", frozenset({"x"}), frozenset({"a", "b"})),
      Grouping("group_left", frozenset({"y"}), frozenset({"a", "b"})),
      Grouping("by", frozenset({"x"}), frozenset({"b"}))}),
    ("topk(25, 1e3 * ns:a:rate5m)", {Selector("ns:a:rate5m", frozenset())}, set()),
])
def test_the_reader_finds_metrics_and_labels_and_skips_functions_keywords_and_strings(
        expr: str, selectors: set[Selector], groupings: set[Grouping]) -> None:
    query = read_promql(expr)
    assert set(query.selectors) == selectors
    assert set(query.groupings) == groupings


@pytest.mark.parametrize("expr", [
    "rat(a[5m])",  # a misspelled function is not a metric
    '{__name__="a"}',  # no metric name to check
    "a offset 5m",  # a duration outside a range
    "a * $factor",  # a variable outside a string or range
    "sum by (a)",  # an aggregation without arguments
    'a{b}',  # a matcher without an operator and a value
])
def test_the_reader_refuses_what_it_cannot_read(expr: str) -> None:
    with pytest.raises(ValueError):
        read_promql(expr)


def test_problems_name_a_missing_metric_a_missing_label_and_a_legend_label() -> None:
    exported = {"a": frozenset({"x"}), "b_bucket": frozenset({"le", "x"})}
    queries = [BoardQuery("panel 1", read_promql('sum by (y) (a{z="1", instance=~"$i"})'), frozenset({"x"})),
               BoardQuery("panel 2", read_promql("histogram_quantile(0.9, sum by (le) (rate(b_buckt[5m])))"),
                          frozenset({"w"})),
               BoardQuery("panel 3", read_promql("sum by (le, x) (b_bucket)"), frozenset({"x", "job"}))]
    assert problems(queries, exported) == [
        "panel 1: a has no label z", "panel 1 by: a has no label y",
        "panel 2: b_buckt is not exported", "panel 2: legend label w is on none of its metrics"]
