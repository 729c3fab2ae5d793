"""The dashboard process in a real browser: headless Debian chromium (driven by Playwright) loads
the page from `processes/dashboard.py` against seeded PostgreSQL and Redis, sees the per-family
summary, the heat map coloured by lateness, a cell's drill-down and the live chart, and a screenshot
is kept under var/test-artifacts/."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from eva00.config import ROOT_DIR, Settings
from tests.integration.test_dashboard import seed_stack

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT_DIR / "var" / "test-artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"dashboard exited early: {process.stderr.read().decode()}")  # type: ignore[union-attr]
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"dashboard did not listen on {port} within {timeout_s} s")


@pytest.fixture
def dashboard(settings: Settings, redis_client: redis.Redis, tmp_path: Path) -> Iterator[str]:
    seed_stack(settings.effective_database_url, redis_client)
    port = free_port()
    env = {**os.environ, "DATABASE_URL": settings.effective_database_url, "REDIS_URL": settings.redis_url,
           "EVA00_DATA_DIR": str(tmp_path / "data"), "EVA00_VAR_DIR": str(tmp_path / "var"),
           "EVA00_DASHBOARD_PORT": str(port)}
    process = subprocess.Popen([sys.executable, str(ROOT_DIR / "processes" / "dashboard.py")], env=env,
                               cwd=ROOT_DIR, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0, "SIGTERM must end the dashboard cleanly"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def cell_colours(page: Any) -> dict[str, str]:
    """level -> the computed background of a heat-map cell of that level."""
    return dict(page.evaluate(
        "[...document.querySelectorAll('#heatmap td.cell[data-level]')].map("
        "td => [td.dataset.level, getComputedStyle(td).backgroundColor])"))


def test_browser_sees_the_summary_heat_map_drill_down_and_rate_chart(dashboard: str) -> None:
    assert CHROMIUM.exists(), "Debian's chromium is required: apt-get install -y chromium (see .ci/run)"
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.goto(dashboard + "/", wait_until="domcontentloaded")
            page.wait_for_function("document.querySelectorAll('#heatmap td.cell[data-level]').length >= 4",
                                   timeout=15000)
            page.wait_for_function("Number(document.getElementById('rate-chart').dataset.points) >= 2",
                                   timeout=15000)
            summary = page.locator("#summary tbody tr").all_inner_texts()
            assert len(summary) == 13 and any(r.startswith("submittals") and "submittal @ 7" in r
                                              for r in summary), summary
            assert page.locator("#summary td.level-stale").count() >= 1
            levels = sorted(page.locator("#heatmap td.cell[data-level]").evaluate_all(
                "cells => cells.map(c => [c.dataset.family, c.dataset.project, c.dataset.level].join(':'))"))
            assert levels == ["documents:8:ok", "projects:0:stale", "rfis:7:ok", "submittals:7:late"]
            colours = cell_colours(page)
            assert len({colours["ok"], colours["late"], colours["stale"]}) == 3, colours
            assert _hue_order(colours["ok"]) > _hue_order(colours["late"]) > _hue_order(colours["stale"])
            schedule = page.locator("#schedule tbody tr").all_inner_texts()
            assert len(schedule) == 2 and any(r.startswith("documents") and "40 min" in r
                                              for r in schedule), schedule
            alert_rows = page.locator("#alerts tbody tr").all_inner_texts()
            assert len(alert_rows) == 2 and "sync-late:submittal:*" in alert_rows[1], alert_rows
            painted = page.evaluate(
                "(() => { const c = document.getElementById('rate-chart');"
                " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
                " let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; })()")
            assert painted > 500, "the chart canvas is drawn"
            page.click("#heatmap td[data-family='submittals'][data-project='7']")
            page.wait_for_function("document.getElementById('pair-detail').dataset.pair === 'submittals:7'",
                                   timeout=15000)
            detail = page.locator("#pair-detail").inner_text()
            assert "submittals @ project 7" in detail and "submittal" in detail
            assert "Recent polls" in detail and "incremental" in detail and "next_poll_at" in detail
            assert "Recent errors" in detail
            page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
        finally:
            browser.close()
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000


def _hue_order(rgb: str) -> float:
    """Greener is larger: green minus red of ``rgb(r, g, b)``."""
    r, g, _ = (int(v) for v in rgb.removeprefix("rgb(").removesuffix(")").split(","))
    return g - r
