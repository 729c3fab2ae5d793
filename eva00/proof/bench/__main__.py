"""`python -m eva00.proof.bench [NAME ...]`: run the benchmarks, write var/bench/report.{md,json}."""

from __future__ import annotations

import sys

from eva00.config import ROOT_DIR
from eva00.proof.bench.report import MODULES, run_all

names = sys.argv[1:] or list(MODULES)
figures = run_all(ROOT_DIR / "var" / "bench", names)
print((ROOT_DIR / "var" / "bench" / "report.md").read_text())
raise SystemExit(0 if all(f.met for f in figures) else 1)
