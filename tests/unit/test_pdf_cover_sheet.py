"""Submittal cover sheets: metadata and every attachment link, found without fetching anything."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pymupdf
import pytest

from eva00.pdf_import import cover_sheet, document
from eva00.pdf_import.dates import DateFormat
from eva00.pdf_import.document import BadInput
from tests import pdf_fixtures as fx


def parse_sheet(path: Path, order: str = "mdy") -> dict[str, Any]:
    doc = document.open_pdf(path, 50)
    links = [[{**link, "from": tuple(link["from"])} for link in page.get_links()] for page in doc]
    return cover_sheet.parse_cover_sheet(document.read_pages(doc), links, DateFormat(order), path.name)


def attachments(count: int) -> list[fx.Attachment]:
    return [fx.Attachment(f"Mix design {i:02d} - Müller.pdf",
                          f"https://storage.procore.com/api/v5/files/{i}?companyId=1&sig=s3cr3t{i}")
            for i in range(count)]


@pytest.mark.parametrize("count", [0, 1, 5])
def test_a_cover_sheet_yields_its_metadata_and_every_attachment_link(tmp_path: Path, count: int) -> None:
    item = fx.make_submittals(3, seed=4)[2]
    expected = fx.write_cover_sheet(tmp_path / "sheet.pdf", item, attachments(count))
    parsed = parse_sheet(tmp_path / "sheet.pdf")
    assert parsed["submittal"] == expected
    assert [(a["name"], a["url"]) for a in parsed["attachments"]] == [
        (a.name, a.url) for a in attachments(count)]


def test_attachments_running_onto_a_second_page_are_all_found(tmp_path: Path) -> None:
    item = fx.make_submittals(1)[0]
    fx.write_cover_sheet(tmp_path / "long.pdf", item, attachments(60))
    parsed = parse_sheet(tmp_path / "long.pdf")
    assert parsed["pages"] == 2
    assert len(parsed["attachments"]) == 60 and parsed["attachments"][-1]["page"] == 2


def test_printed_urls_count_and_links_above_the_attachments_do_not(tmp_path: Path) -> None:
    item = fx.make_submittals(1)[0]
    fx.write_cover_sheet(tmp_path / "mixed.pdf", item, attachments(1),
                         printed_urls=["https://storage.procore.com/f/printed?sig=abc"],
                         header_link="https://app.procore.com/1001/project/submittals/7")
    urls = [a["url"] for a in parse_sheet(tmp_path / "mixed.pdf")["attachments"]]
    assert urls == [attachments(1)[0].url, "https://storage.procore.com/f/printed?sig=abc"]


def test_a_day_first_sheet_reads_its_dates_day_first(tmp_path: Path) -> None:
    item = fx.make_submittals(1)[0]
    expected = fx.write_cover_sheet(tmp_path / "dmy.pdf", item, [], order="dmy")
    assert parse_sheet(tmp_path / "dmy.pdf", "dmy")["submittal"]["issue_date"] == expected["issue_date"]


def test_a_numbered_sheet_without_spec_section_prefix(tmp_path: Path) -> None:
    item = fx.make_submittals(1)[0]
    expected = fx.write_cover_sheet(tmp_path / "plain.pdf", item, [], spec_prefix=False)
    submittal = parse_sheet(tmp_path / "plain.pdf")["submittal"]
    assert (submittal["number"], submittal["formatted_number"], submittal["spec_section_number"]) == (
        expected["number"], f"{item.number}.{int(item.revision):02d}", None)


def test_a_pdf_without_a_submittal_title_is_not_a_cover_sheet(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"no 'Submittal #\.\.\.' title"):
        parse_sheet(fx.write_letter(tmp_path / "letter.pdf"))


def test_a_launch_link_to_a_local_file_is_reported_as_a_file_url(tmp_path: Path) -> None:
    item = fx.make_submittals(1)[0]
    fx.write_cover_sheet(tmp_path / "launch.pdf", item, [])
    doc = pymupdf.open(tmp_path / "launch.pdf")
    doc[0].insert_link({"kind": pymupdf.LINK_LAUNCH, "from": pymupdf.Rect(40, 400, 200, 412),
                        "file": "/etc/passwd"})
    doc.save(tmp_path / "launch2.pdf")
    assert [a["url"] for a in parse_sheet(tmp_path / "launch2.pdf")["attachments"]] == ["file:///etc/passwd"]
