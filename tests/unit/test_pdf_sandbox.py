"""Parsing in a child process: bad PDFs give one clear line, hostile ones are stopped by limits."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from eva00.pdf_import.sandbox import Limits, ParseFailed, parse_in_child
from tests import pdf_fixtures as fx


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fx.write_text_bomb(tmp_path_factory.mktemp("bomb") / "bomb.pdf")


def test_a_log_parsed_in_the_child_comes_back_whole(tmp_path: Path) -> None:
    written = fx.write_rfi_log(tmp_path / "rfis.pdf", fx.make_rfis(20, qa=True), qa=True)
    result = parse_in_child("rfi", tmp_path / "rfis.pdf")
    assert result["records"] == written.records and result["file"] == "rfis.pdf"


def _bad_input(tmp_path: Path, kind: str) -> Path:
    good = tmp_path / "good.pdf"
    fx.write_rfi_log(good, fx.make_rfis(5))
    path = tmp_path / f"{kind}.pdf"
    if kind == "zero-byte":
        path.write_bytes(b"")
    elif kind == "corrupt":
        fx.write_corrupt(path, good)
    elif kind == "not-a-pdf":
        path.write_bytes(b"PK\x03\x04 this is a zip file, not a PDF" * 20)
    elif kind == "encrypted":
        fx.write_encrypted(path)
    elif kind == "image-only":
        fx.write_image_only(path)
    elif kind == "not-procore":
        fx.write_letter(path)
    elif kind == "missing":
        return tmp_path / "nowhere.pdf"
    return path


@pytest.mark.parametrize(("kind", "reason"), [
    ("zero-byte", r"the file is empty \(0 bytes\)"),
    ("corrupt", r"the PDF is damaged \(its structure had to be repaired\)"),
    ("not-a-pdf", "not a readable PDF"),
    ("encrypted", "the PDF is encrypted"),
    ("image-only", "no text layer"),
    ("not-procore", "no RFI log table header found"),
    ("missing", "cannot read the file"),
])
def test_bad_input_fails_with_one_line_naming_the_reason(tmp_path: Path, kind: str, reason: str) -> None:
    with pytest.raises(ParseFailed, match=reason) as failure:
        parse_in_child("rfi", _bad_input(tmp_path, kind))
    assert "\n" not in str(failure.value)


def test_a_truncated_pdf_is_refused_although_its_first_pages_could_be_read(tmp_path: Path) -> None:
    good = tmp_path / "good.pdf"
    fx.write_rfi_log(good, fx.make_rfis(80))
    cut = tmp_path / "cut.pdf"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size * 3 // 4])
    with pytest.raises(ParseFailed, match="had to be repaired"):
        parse_in_child("rfi", cut)


def test_more_pages_than_the_limit_are_refused_before_parsing(tmp_path: Path) -> None:
    fx.write_rfi_log(tmp_path / "long.pdf", fx.make_rfis(60))
    with pytest.raises(ParseFailed, match=r"has \d+ pages, more than the limit of 2"):
        parse_in_child("rfi", tmp_path / "long.pdf", limits=Limits(max_pages=2))


def test_a_parse_past_its_wall_clock_limit_is_stopped(bomb: Path) -> None:
    with pytest.raises(ParseFailed, match=r"longer than 0\.3 s and was stopped"):
        parse_in_child("rfi", bomb, limits=Limits(wall_s=0.3))


def test_a_parse_past_its_cpu_limit_is_stopped(bomb: Path) -> None:
    with pytest.raises(ParseFailed, match="more than 1 s of CPU time"):
        parse_in_child("rfi", bomb, limits=Limits(cpu_s=1))


def test_a_parse_past_its_memory_limit_is_stopped(bomb: Path) -> None:
    with pytest.raises(ParseFailed, match=r"ran out of memory \(limit 250 MB\)"):
        parse_in_child("rfi", bomb, limits=Limits(memory_mb=250))


def test_a_crashing_parser_is_reported_by_its_signal(tmp_path: Path) -> None:
    crash = (sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")
    with pytest.raises(ParseFailed, match=r"the parser crashed \(SIGSEGV\)"):
        parse_in_child("rfi", tmp_path / "x.pdf", worker=crash)


def test_a_parser_writing_garbage_is_reported_with_its_last_words(tmp_path: Path) -> None:
    garbage = (sys.executable, "-c", "import sys; print('not json'); sys.exit('boom')")
    with pytest.raises(ParseFailed, match=r"the parser failed \(exit code 1: boom\)"):
        parse_in_child("rfi", tmp_path / "x.pdf", worker=garbage)


def test_processes_the_parser_leaves_behind_are_killed_with_it(tmp_path: Path) -> None:
    spawn = (sys.executable, "-c", "import subprocess, sys; p = subprocess.Popen(['sleep', '30'],"
             " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); sys.exit(str(p.pid))")
    with pytest.raises(ParseFailed) as failure:
        parse_in_child("rfi", tmp_path / "x.pdf", worker=spawn)
    pid = int(str(failure.value).rsplit(": ", 1)[1].rstrip(")"))
    fx.wait_for(lambda: not _alive(pid))


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as status:
            return "\nState:\tZ" not in status.read()
    except FileNotFoundError:
        return False


def test_the_worker_starts_isolated_from_the_environment() -> None:
    from eva00.pdf_import.sandbox import WORKER

    assert WORKER[1] == "-I" and os.path.basename(WORKER[0]).startswith("python")
