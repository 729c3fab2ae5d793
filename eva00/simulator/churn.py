"""Change over time: `--churn RATE` mutations per second in a background thread (creates,
updates, deletes, drawing revisions, new file versions across every kind but projects), each
announced to the webhooks like any other change. The rate can change at run time (0 pauses)."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from typing import Any

from eva00.simulator.catalogue import COMPANY_LEVEL_KINDS
from eva00.simulator.catalogue import KINDS as SERVED_KINDS
from eva00.simulator.mutations import MutationError, Mutator
from eva00.simulator.options import SimOptions

log = logging.getLogger("eva00.simulator")
ACTIONS = (("create", 40), ("update", 40), ("delete", 10), ("revise_drawing", 5), ("new_file_version", 5))
KINDS = tuple(k for k in SERVED_KINDS if k != "project")


class Churn:
    def __init__(self, mutator: Mutator, options: SimOptions, seed: int,
                 pick_project: Callable[[random.Random], int | None] | None = None) -> None:
        self.mutator = mutator
        self.pick_project = pick_project
        self.options = options
        self.rng = random.Random(seed)
        self.applied = 0
        self.refused = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="churn", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def step(self) -> None:
        """One random mutation (a refused one, e.g. nothing to delete, is counted and skipped)."""
        action = self.rng.choices([a for a, _ in ACTIONS], weights=[w for _, w in ACTIONS])[0]
        kind = self.rng.choice(KINDS)
        spec: dict[str, Any] = {"action": action, "kind": kind}
        if self.pick_project is not None and kind not in COMPANY_LEVEL_KINDS:
            # the company's busy projects get most of the change (company.py)
            spec["project_id"] = self.pick_project(self.rng)
        try:
            self.applied += len(self.mutator.apply(spec))
        except MutationError:
            self.refused += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            rate = self.options.churn_per_s
            if rate <= 0:
                self._stop.wait(0.2)
                continue
            try:
                self.step()
            except Exception:
                log.exception("churn step failed")
            self._stop.wait(1.0 / rate)

    def figures(self) -> dict[str, Any]:
        return {"rate_per_s": self.options.churn_per_s, "changes": self.applied, "refused": self.refused}
