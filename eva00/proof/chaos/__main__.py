"""`python -m eva00.proof.chaos [--scale full|ci] [--scenario N ...]`: run the scenarios, print each
one's checker table, write var/chaos/report.{md,json}; exit 1 if any scenario failed."""

from __future__ import annotations

import argparse
import sys

from eva00.config import ROOT_DIR
from eva00.proof.chaos.report import write_report
from eva00.proof.chaos.scenarios import SCENARIOS, run_scenario
from eva00.proof.chaos.stack import SCALES


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m eva00.proof.chaos", description=__doc__)
    parser.add_argument("--scale", choices=sorted(SCALES), default="full")
    parser.add_argument("--scenario", type=int, action="append", choices=sorted(SCENARIOS),
                        help="only these scenarios (repeatable; default: all)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    outcomes = []
    for number in args.scenario or sorted(SCENARIOS):
        print(f"== scenario {number}: {SCENARIOS[number][0]} ({args.scale} scale)", flush=True)
        outcome = run_scenario(number, SCALES[args.scale], seed=args.seed)
        outcomes.append(outcome)
        for note in outcome.notes:
            print(f"   {note}")
        if outcome.report is not None:
            print(outcome.report.table())
        for problem in outcome.problems:
            print(f"   PROBLEM: {problem}")
        print(f"   {'PASS' if outcome.passed else 'FAIL'} in {outcome.seconds:.0f} s", flush=True)
    out_dir = ROOT_DIR / "var" / "chaos"
    write_report(out_dir, SCALES[args.scale], outcomes)
    passed = sum(o.passed for o in outcomes)
    print(f"{passed} of {len(outcomes)} scenarios passed; report in {out_dir / 'report.md'}")
    return 0 if passed == len(outcomes) else 1


raise SystemExit(main(sys.argv[1:]))
