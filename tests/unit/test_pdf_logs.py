"""Generated RFI and submittal logs of every variant parse into exactly the records written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from eva00.pdf_import import document, parse
from eva00.pdf_import.dates import DateFormat
from eva00.pdf_import.document import BadInput
from eva00.pdf_import.logs import QA_HEADING
from tests import pdf_fixtures as fx


def parse_file(path: Path, kind: str = "rfi", order: str = "auto") -> dict[str, Any]:
    pages = document.read_pages(document.open_pdf(path, 500))
    return parse.parse_log(kind, pages, DateFormat(order), path.name)


def assert_same_records(parsed: dict[str, Any], written: fx.WrittenLog) -> None:
    assert len(parsed["records"]) == len(written.records)
    for got, want in zip(parsed["records"], written.records, strict=True):
        assert got == want, f"record on page {want['_page']} differs"


def test_an_rfi_log_parses_into_exactly_the_records_written(tmp_path: Path) -> None:
    written = fx.write_rfi_log(tmp_path / "rfis.pdf", fx.make_rfis(60, drafts=3))
    parsed = parse_file(tmp_path / "rfis.pdf")
    assert written.pages > 1 and written.split_rows > 0  # rows wrap across page breaks
    assert parsed["pages"] == written.pages and parsed["date_format"] == "mdy"
    assert_same_records(parsed, written)
    assert parsed["warnings"] == []


def test_a_qa_log_keeps_every_question_and_response_across_page_breaks(tmp_path: Path) -> None:
    written = fx.write_rfi_log(tmp_path / "qa.pdf", fx.make_rfis(25, seed=3, qa=True, qa_sentences=(6, 12)),
                               qa=True)
    assert written.split_qa > 0  # some answers run across a page break
    parsed = parse_file(tmp_path / "qa.pdf")
    assert_same_records(parsed, written)
    responses = [r for record in parsed["records"] for q in record["questions"] for r in q["responses"]]
    assert sum(r["official"] for r in responses) == 25  # one official response per RFI
    assert all(r["author"] and r["date"] and r["body"] for r in responses)


@pytest.mark.parametrize("fields", [
    ["subject", "number", "status", "due_date"],
    ["status", "cost_impact", "subject", "date_initiated", "number", "schedule_impact", "location"],
    ["rfi_manager", "status", "spec_section", "date_initiated", "subject", "number", "sub_job", "private"],
    ["subject", "status", "date_initiated", "received_from"],  # no number column
    ["due_date", "subject", "cost_code"],  # neither number nor status
], ids=["few", "reordered", "unknown-column", "no-number", "dates-only"])
def test_columns_in_any_order_and_subset_are_mapped_from_the_header(tmp_path: Path,
                                                                    fields: list[str]) -> None:
    written = fx.write_rfi_log(tmp_path / "cols.pdf", fx.make_rfis(30, seed=5, drafts=1), fields, qa=True)
    assert_same_records(parse_file(tmp_path / "cols.pdf"), written)


def test_a_column_the_importer_does_not_know_is_kept_under_its_label(tmp_path: Path) -> None:
    fx.write_rfi_log(tmp_path / "extra.pdf", fx.make_rfis(3), ["number", "subject", "sub_job", "status"])
    record = parse_file(tmp_path / "extra.pdf")["records"][0]
    assert record["extra"] in ({"Sub Job": "Tower"}, {"Sub Job": "Podium"})


@pytest.mark.parametrize("prefix", ["RFI-", "", "C-"])
def test_rfi_numbers_with_and_without_prefix_are_split(tmp_path: Path, prefix: str) -> None:
    written = fx.write_rfi_log(tmp_path / "n.pdf", fx.make_rfis(12, prefix=prefix))
    parsed = parse_file(tmp_path / "n.pdf")
    assert_same_records(parsed, written)
    assert parsed["records"][11]["number"] == ("012" if prefix else "12")
    assert parsed["records"][11]["prefix"] == (prefix.rstrip("-") or None)


def test_drafts_without_a_number_are_records_with_no_number(tmp_path: Path) -> None:
    written = fx.write_rfi_log(tmp_path / "d.pdf", fx.make_rfis(10, drafts=4))
    drafts = [r for r in parse_file(tmp_path / "d.pdf")["records"] if r["status"] == "Draft"]
    assert len(drafts) == 4
    assert all(r["number"] is None and r["full_number"] is None for r in drafts)
    assert drafts == [r for r in written.records if r["status"] == "Draft"]


def test_a_draft_in_a_log_without_status_column_is_told_apart_by_the_gap_above_it(tmp_path: Path) -> None:
    fields = ["number", "subject", "responsible_contractor", "due_date", "cost_code"]
    written = fx.write_rfi_log(tmp_path / "gap.pdf", fx.make_rfis(12, seed=8, drafts=2), fields)
    parsed = parse_file(tmp_path / "gap.pdf")
    assert written.pages == 1
    assert [r["number"] for r in parsed["records"][-3:]] == ["010", None, None]
    assert_same_records(parsed, written)


def test_a_day_first_log_is_detected_and_read_day_first(tmp_path: Path) -> None:
    written = fx.write_rfi_log(tmp_path / "dmy.pdf", fx.make_rfis(30, seed=9, qa=True), order="dmy", qa=True)
    parsed = parse_file(tmp_path / "dmy.pdf")
    assert parsed["date_format"] == "dmy"
    assert_same_records(parsed, written)


def test_an_explicit_date_format_overrides_detection(tmp_path: Path) -> None:
    fx.write_rfi_log(tmp_path / "dmy.pdf", fx.make_rfis(30, seed=9), order="dmy")
    parsed = parse_file(tmp_path / "dmy.pdf", order="mdy")
    assert parsed["date_format"] == "mdy"
    assert any("is not a date" in w for w in parsed["warnings"])  # 25/03 read month-first


def test_a_log_whose_dates_settle_no_order_asks_for_the_date_format(tmp_path: Path) -> None:
    rfis = fx.make_rfis(1, seed=1)
    rfis[0].date_initiated, rfis[0].due_date, rfis[0].closed_date = (
        fx.date(2024, 1, 2), fx.date(2024, 2, 3), None)
    fx.write_rfi_log(tmp_path / "amb.pdf", rfis, ["number", "subject", "date_initiated", "due_date"])
    with pytest.raises(BadInput, match="ambiguous"):
        parse_file(tmp_path / "amb.pdf")
    assert parse_file(tmp_path / "amb.pdf", order="dmy")["records"][0]["due_date"] == "2024-03-02"


def test_accented_names_come_through_unchanged(tmp_path: Path) -> None:
    fx.write_rfi_log(tmp_path / "names.pdf", fx.make_rfis(40, seed=2, qa=True), qa=True)
    text = repr(parse_file(tmp_path / "names.pdf")["records"])
    for name in ("José Álvarez", "Zoë Müller", "Søren Ødegård", "Françoise Lefèvre", "Dmitri Šimek"):
        assert name in text


def test_page_headers_and_footers_never_leak_into_records(tmp_path: Path) -> None:
    written = fx.write_rfi_log(tmp_path / "f.pdf", fx.make_rfis(50, seed=4, qa=True), qa=True)
    text = repr(parse_file(tmp_path / "f.pdf")["records"])
    assert written.pages > 3
    for furniture in ("Page ", "Confidential", "Printed", "Keystone Builders, Inc. -", "River Road",
                      "Responsible Contractor"):
        assert furniture not in text


def test_a_log_with_the_column_header_on_its_first_page_only_reads_every_page(tmp_path: Path) -> None:
    style = fx.LogStyle(repeat_header=False)
    written = fx.write_rfi_log(tmp_path / "once.pdf", fx.make_rfis(40, seed=6, qa=True), qa=True, style=style)
    assert written.pages > 2
    assert_same_records(parse_file(tmp_path / "once.pdf"), written)


@pytest.mark.parametrize("spec_prefix", [True, False], ids=["spec-section-numbers", "plain-numbers"])
@pytest.mark.parametrize("order", ["mdy", "dmy"])
def test_a_submittal_log_parses_into_exactly_the_records_written(tmp_path: Path, spec_prefix: bool,
                                                                 order: str) -> None:
    written = fx.write_submittal_log(tmp_path / "s.pdf", fx.make_submittals(45, drafts=2), order=order,
                                     spec_prefix=spec_prefix)
    parsed = parse_file(tmp_path / "s.pdf", "submittal")
    assert parsed["date_format"] == order
    assert_same_records(parsed, written)


def test_submittal_columns_in_another_order_and_subset(tmp_path: Path) -> None:
    fields = ["title", "status", "number", "approvers", "received_from", "due_date", "revision"]
    written = fx.write_submittal_log(tmp_path / "s.pdf", fx.make_submittals(20, seed=3), fields)
    assert_same_records(parse_file(tmp_path / "s.pdf", "submittal"), written)


def test_an_rfi_log_imported_as_a_submittal_log_names_the_right_command(tmp_path: Path) -> None:
    fx.write_rfi_log(tmp_path / "rfis.pdf", fx.make_rfis(3))
    with pytest.raises(BadInput, match="this is a RFI log, not a submittal log; use `eva00 import rfi-log`"):
        parse_file(tmp_path / "rfis.pdf", "submittal")


def test_a_pdf_without_a_log_table_is_not_a_procore_export(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="no RFI log table header found"):
        parse_file(fx.write_letter(tmp_path / "letter.pdf"))


@pytest.mark.parametrize(("line", "kind", "official"), [
    ("Question from Ana Ruiz (Keystone) on 01/05/2024", "Question", False),
    ("Official Response from Bob Chen on 2024-01-08", "Response", True),
    ("Response from Bob Chen (Chen MEP) on Jan 8, 2024 (Official)", "Response", True),
    ("Response #2 by Zoë Müller - 08/01/2024", "Response", False),
])
def test_qa_headings_are_read_in_their_printed_forms(line: str, kind: str, official: bool) -> None:
    match = QA_HEADING.match(line)
    assert match is not None
    assert match["kind"] == kind
    assert bool(match["official"] or match["flag"]) is official


def test_the_benchmark_log_is_98_pages_of_133_rfis_parsed_exactly(tmp_path: Path) -> None:
    written = fx.write_benchmark_log(tmp_path / "bench.pdf")
    assert (written.pages, len(written.records)) == (fx.BENCH_PAGES, fx.BENCH_RFIS)
    assert_same_records(parse_file(tmp_path / "bench.pdf"), written)
