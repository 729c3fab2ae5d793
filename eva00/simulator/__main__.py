"""`python -m eva00.simulator ...`: the same as `eva00 sim ...`."""

from eva00.simulator.cli import main

raise SystemExit(main(None))
