"""The Grafana board (docs/grafana/eva00.json) as tests see it: its PromQL queries, and the metric
names and labels each one uses, read by a small PromQL reader written for this check.

The reader knows enough PromQL for a dashboard: selectors with label matchers, functions,
aggregations with `by`/`without` before or after their arguments, `on`/`ignoring`, ranges,
numbers and strings. Anything it does not know (an unknown function, a `$variable` outside a string
or a range, a selector without a metric name) is an error rather than a silent pass, so the check
cannot be fooled by a query it failed to read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BOARD_PATH = Path(__file__).resolve().parents[1] / "docs" / "grafana" / "eva00.json"

AGGREGATIONS = frozenset({
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk",
    "quantile", "limitk", "limit_ratio"})
FUNCTIONS = frozenset({
    "abs", "absent", "absent_over_time", "acos", "acosh", "asin", "asinh", "atan", "atanh", "avg_over_time",
    "ceil", "changes", "clamp", "clamp_max", "clamp_min", "cos", "cosh", "count_over_time", "day_of_month",
    "day_of_week", "day_of_year", "days_in_month", "deg", "delta", "deriv", "double_exponential_smoothing",
    "exp", "floor", "histogram_avg", "histogram_count", "histogram_fraction", "histogram_quantile",
    "histogram_stddev", "histogram_stdvar", "histogram_sum", "holt_winters", "hour", "idelta", "increase",
    "irate", "label_join", "label_replace", "last_over_time", "ln", "log10", "log2", "mad_over_time",
    "max_over_time", "min_over_time", "minute", "month", "pi", "predict_linear", "present_over_time",
    "quantile_over_time", "rad", "rate", "resets", "round", "scalar", "sgn", "sin", "sinh", "sort",
    "sort_by_label", "sort_by_label_desc", "sort_desc", "sqrt", "stddev_over_time", "stdvar_over_time",
    "sum_over_time", "tan", "tanh", "time", "timestamp", "vector", "year"})
BINARY_KEYWORDS = frozenset({"and", "or", "unless", "atan2", "bool", "offset"})
GROUPING_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
NUMBER_WORDS = frozenset({"inf", "nan"})
# Prometheus attaches these to every series it scrapes; the collector never exports them itself.
TARGET_LABELS = frozenset({"instance", "job"})

_TOKEN = re.compile(r"""
    (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
  | (?P<range>\[[^\]]*\])
  | (?P<number>(?:0x[0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+)(?![\w:]))
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>=~|!~|!=|==|>=|<=|[-+*/%^=<>(){},@])
  | (?P<space>\s+)
""", re.VERBOSE)
_LEGEND_LABEL = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_LABEL_VALUES = re.compile(r"^\s*label_values\((?P<expr>.*),\s*(?P<label>[A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$",
                           re.DOTALL)


@dataclass(frozen=True)
class Token:
    kind: str
    text: str


@dataclass(frozen=True)
class Selector:
    """`metric{label="v", ...}`: the metric and the labels its matchers name."""

    metric: str
    labels: frozenset[str]


@dataclass(frozen=True)
class Grouping:
    """`by (...)`, `without (...)`, `on (...)`, ...: its labels and the metrics they must be on."""

    clause: str
    labels: frozenset[str]
    metrics: frozenset[str]


@dataclass(frozen=True)
class Query:
    selectors: tuple[Selector, ...]
    groupings: tuple[Grouping, ...]

    @property
    def metrics(self) -> frozenset[str]:
        return frozenset(s.metric for s in self.selectors)


def tokenize(expr: str) -> list[Token]:
    tokens, pos = [], 0
    while pos < len(expr):
        match = _TOKEN.match(expr, pos)
        if match is None:
            raise ValueError(f"cannot read {expr[pos:pos + 20]!r} in {expr!r}")
        pos = match.end()
        kind = match.lastgroup or ""
        if kind != "space":
            tokens.append(Token(kind, match.group()))
    return tokens


def _closing(tokens: list[Token], start: int, opening: str, closing: str) -> int:
    depth = 0
    for i in range(start, len(tokens)):
        if tokens[i].kind == "op" and tokens[i].text == opening:
            depth += 1
        elif tokens[i].kind == "op" and tokens[i].text == closing:
            depth -= 1
            if depth == 0:
                return i
    raise ValueError(f"unbalanced {opening!r}")


def _is_op(tokens: list[Token], i: int, text: str) -> bool:
    return 0 <= i < len(tokens) and tokens[i].kind == "op" and tokens[i].text == text


def _label_list(tokens: list[Token], start: int, end: int) -> frozenset[str]:
    """Label names between '(' at start and ')' at end; any identifier is a label here, keywords too."""
    names = [t.text for t in tokens[start + 1:end] if not (t.kind == "op" and t.text == ",")]
    for name in names:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueError(f"{name!r} is not a label name")
    return frozenset(names)


def _matchers(tokens: list[Token], start: int, end: int) -> frozenset[str]:
    """Label names of `{a="x", b=~"y"}` between '{' at start and '}' at end."""
    labels, i = set(), start + 1
    while i < end:
        if i + 2 >= end:
            raise ValueError(f"not a label matcher: {' '.join(t.text for t in tokens[i:end])}")
        name, op, value = tokens[i], tokens[i + 1], tokens[i + 2]
        if name.kind != "ident" or op.text not in ("=", "!=", "=~", "!~") or value.kind != "string":
            raise ValueError(f"not a label matcher: {name.text} {op.text} {value.text}")
        labels.add(name.text)
        i += 4 if _is_op(tokens, i + 3, ",") else 3
    return frozenset(labels)


class _Reader:
    def __init__(self, expr: str) -> None:
        self.tokens = tokenize(expr)
        self.selectors: list[tuple[int, Selector]] = []
        self.groupings: list[tuple[str, frozenset[str], int, int]] = []  # clause, labels, scope span

    def read(self) -> Query:
        i = 0
        while i < len(self.tokens):
            i = self._step(i)
        groupings = tuple(
            Grouping(clause, labels, frozenset(s.metric for at, s in self.selectors if lo <= at <= hi))
            for clause, labels, lo, hi in self.groupings)
        return Query(tuple(s for _, s in self.selectors), groupings)

    def _step(self, i: int) -> int:
        token = self.tokens[i]
        if token.kind == "op" and token.text == "{":
            raise ValueError("a selector without a metric name")
        if token.kind != "ident":
            return i + 1
        word = token.text.lower()
        if word in GROUPING_KEYWORDS:
            return self._grouping(i)
        if word in BINARY_KEYWORDS or word in NUMBER_WORDS:
            return i + 1
        if token.text in AGGREGATIONS and (_is_op(self.tokens, i + 1, "(")
                                           or self._word(i + 1) in ("by", "without")):
            return i + 1
        if _is_op(self.tokens, i + 1, "("):
            if token.text not in FUNCTIONS:
                raise ValueError(f"unknown PromQL function {token.text!r}")
            return i + 1
        return self._selector(i)

    def _word(self, i: int) -> str:
        inside = 0 <= i < len(self.tokens)
        return self.tokens[i].text.lower() if inside and self.tokens[i].kind == "ident" else ""

    def _selector(self, i: int) -> int:
        labels: frozenset[str] = frozenset()
        end = i
        if _is_op(self.tokens, i + 1, "{"):
            end = _closing(self.tokens, i + 1, "{", "}")
            labels = _matchers(self.tokens, i + 1, end)
        self.selectors.append((i, Selector(self.tokens[i].text, labels)))
        return end + 1

    def _grouping(self, i: int) -> int:
        clause = self.tokens[i].text.lower()
        if not _is_op(self.tokens, i + 1, "("):
            if clause in ("group_left", "group_right"):
                return i + 1
            raise ValueError(f"{clause} without a label list")
        end = _closing(self.tokens, i + 1, "(", ")")
        labels = _label_list(self.tokens, i + 1, end)
        self.groupings.append((clause, labels, *self._scope(clause, i, end)))
        return end + 1

    def _scope(self, clause: str, at: int, end: int) -> tuple[int, int]:
        """Token span whose metrics must carry the clause's labels: the aggregation's argument for
        by/without, the whole expression for on/ignoring/group_left/group_right."""
        if clause not in ("by", "without"):
            return 0, len(self.tokens) - 1
        if self.tokens[at - 1].text in AGGREGATIONS:  # sum by (x) (args)
            return end + 1, _closing(self.tokens, end + 1, "(", ")")
        if _is_op(self.tokens, at - 1, ")"):  # sum (args) by (x)
            opening = self._opening(at - 1)
            if self.tokens[opening - 1].text in AGGREGATIONS:
                return opening, at - 1
        raise ValueError(f"{clause} not attached to an aggregation")

    def _opening(self, close: int) -> int:
        depth = 0
        for i in range(close, -1, -1):
            if _is_op(self.tokens, i, ")"):
                depth += 1
            elif _is_op(self.tokens, i, "("):
                depth -= 1
                if depth == 0:
                    return i
        raise ValueError("unbalanced ')'")


def read_promql(expr: str) -> Query:
    """The metric selectors and grouping clauses of one PromQL expression."""
    return _Reader(expr).read()


# --- the board ---

@dataclass(frozen=True)
class BoardQuery:
    where: str  # panel title and refId, or the template variable
    query: Query
    legend_labels: frozenset[str]


def load_board(path: Path = BOARD_PATH) -> dict[str, Any]:
    board: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return board


def panels(board: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside collapsed rows."""
    for panel in board.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def board_queries(board: Mapping[str, Any]) -> list[BoardQuery]:
    found = []
    for panel in panels(board):
        for target in panel.get("targets", []):
            legend = frozenset(_LEGEND_LABEL.findall(target.get("legendFormat", "")))
            found.append(BoardQuery(f"panel {panel['title']!r} {target['refId']}",
                                    read_promql(target["expr"]), legend))
    for variable in board.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            found.append(BoardQuery(f"variable ${variable['name']}", _variable_query(variable), frozenset()))
    return found


def _variable_query(variable: Mapping[str, Any]) -> Query:
    raw = variable["query"]
    text = raw["query"] if isinstance(raw, Mapping) else raw
    match = _LABEL_VALUES.match(text)
    if match is None:
        raise ValueError(f"variable ${variable['name']}: only label_values(metric, label) is read: {text!r}")
    query = read_promql(match["expr"])
    return Query(query.selectors, (*query.groupings,
                                   Grouping("label_values", frozenset({match["label"]}), query.metrics)))


def problems(queries: list[BoardQuery], exported: Mapping[str, frozenset[str]]) -> list[str]:
    """Sentences naming every metric the board queries that is not exported, and every label used
    on a metric that does not carry it; `exported` maps sample names to their label names."""
    found = []
    for q in queries:
        if not q.query.selectors:
            found.append(f"{q.where}: queries no metric")
        for sel in q.query.selectors:
            if sel.metric not in exported:
                found.append(f"{q.where}: {sel.metric} is not exported")
            else:
                found += _missing(q.where, sel.metric, sel.labels, exported)
        for group in q.query.groupings:
            for metric in sorted(group.metrics & exported.keys()):
                found += _missing(f"{q.where} {group.clause}", metric, group.labels, exported)
        known = set().union(*(exported.get(m, frozenset()) for m in q.query.metrics)) | TARGET_LABELS
        found += [f"{q.where}: legend label {label} is on none of its metrics"
                  for label in sorted(q.legend_labels - known)]
    return found


def _missing(where: str, metric: str, labels: frozenset[str],
             exported: Mapping[str, frozenset[str]]) -> list[str]:
    return [f"{where}: {metric} has no label {label}"
            for label in sorted(labels - exported[metric] - TARGET_LABELS)]
