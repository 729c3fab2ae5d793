"""The documents sandbox on its own: limits reach the child, a child that outlives its parent
dies by itself, and nothing a child answers is trusted."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from eva00.config import Settings
from eva00.documents.isolated import DEFAULT_SANDBOX, DocumentSandbox
from eva00.documents.sandbox import Limits, SandboxFailed


def test_the_default_sandbox_is_the_one_production_settings_build() -> None:
    assert DocumentSandbox.from_settings(Settings()) == DEFAULT_SANDBOX
    limits = DocumentSandbox.from_settings(Settings.from_env({
        "EVA00_DOCUMENT_SANDBOX_MEMORY_BYTES": "300000000", "EVA00_DOCUMENT_SANDBOX_CPU_S": "3",
        "EVA00_DOCUMENT_SANDBOX_TIMEOUT_S": "4.5", "EVA00_IMAGE_MAX_PIXELS": "1000"}, dotenv=None))
    assert limits.limits == Limits(cpu_s=3, wall_s=4.5, memory_bytes=300_000_000)
    assert limits.max_pixels == 1000


def test_a_child_blocked_without_cpu_dies_by_its_own_alarm_when_no_parent_kills_it() -> None:
    code = ("import argparse, sys, time; from eva00.documents.child import add_limit_arguments, serve;"
            " parser = argparse.ArgumentParser(); add_limit_arguments(parser);"
            " args = parser.parse_args(sys.argv[1:]);"
            " sys.exit(serve(lambda: time.sleep(60) or {}, args, 'oom', (ValueError,)))")
    root = str(Path(__file__).resolve().parents[2])
    done = subprocess.run([sys.executable, "-c", code, *Limits(wall_s=0.2).argv()], cwd=root,
                          env={"PYTHONPATH": root}, capture_output=True, timeout=30, check=False)
    assert done.returncode == -signal.SIGALRM


def _answering(text: str) -> tuple[str, ...]:
    return (sys.executable, "-c", f"print({text!r})")


@pytest.mark.parametrize(("answer", "reason"), [
    ('{"ok": true, "result": {}}', "the renderer answered without its png"),
    ('{"ok": true, "result": {"png": 5}}', "the renderer answered without its png"),
    ('{"ok": true, "result": {"png": "not base64!"}}', "the renderer answered with a thumbnail that is not"),
    ("garbage", r"the renderer failed \(exit code 0"),
])
def test_a_child_answering_nonsense_fails_the_file_with_a_reason(tmp_path: Path, answer: str,
                                                                 reason: str) -> None:
    sandbox = DocumentSandbox(worker=_answering(answer))
    with pytest.raises(SandboxFailed, match=reason):
        sandbox.thumbnail(tmp_path / "x.png", "image/png", 64)


def test_a_type_without_a_renderer_is_refused_without_starting_a_child(tmp_path: Path) -> None:
    sandbox = DocumentSandbox(worker=(sys.executable, "-c", "raise SystemExit('must not run')"))
    with pytest.raises(SandboxFailed, match="no thumbnail for 'application/zip'"):
        sandbox.thumbnail(tmp_path / "x.zip", "application/zip", 64)


def test_text_longer_than_asked_is_cut_to_the_limit(tmp_path: Path) -> None:
    sandbox = DocumentSandbox(worker=_answering('{"ok": true, "result": {"text": "' + "a" * 50 + '"}}'))
    assert sandbox.text(tmp_path / "x.pdf", 10) == "a" * 10


def test_the_child_gets_none_of_the_parents_environment(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://eva00:hunter2@127.0.0.1/eva00")
    monkeypatch.setenv("PROCORE_CLIENT_SECRET", "s3cret")
    dump = ("import json, os;"
            " print(json.dumps({'ok': True, 'result': {'text': json.dumps(dict(os.environ))}}))")
    seen = DocumentSandbox(worker=(sys.executable, "-c", dump)).text(tmp_path / "x.pdf", 10_000)
    assert "hunter2" not in seen and "s3cret" not in seen
    assert set(json.loads(seen)) <= {"PATH", "LC_ALL", "LC_CTYPE"}
