"""A realistic company: many projects, most of them quiet or closed, and time scaling.

A mid-size general contractor runs 50-300 projects; a few are busy, most see a change a week and
many are closed (Procore's ``active: false``; the project list hides them unless
``filters[by_status]`` asks for Inactive or All). ``--active-share`` of the projects get
``--active-churn-share`` of the background churn; ``--inactive-share`` are closed at start and
never change; the rest are open and quiet (the remaining churn). Defaults keep every project
open and alike, as the standard data set always was.

``--time-scale F`` runs Procore's clock F times faster for benchmarks: every rate-limit window
is F times shorter with the same number of requests, so every ratio between a poll interval
scaled by the client and a limit holds.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from eva00.simulator.options import OptionError, SimOptions, scaled_window
from eva00.simulator.store import Store


@dataclass(frozen=True)
class Activity:
    """Which projects are busy, quiet or closed, fixed at start."""

    active: tuple[int, ...]
    quiet: tuple[int, ...]
    closed: tuple[int, ...]
    active_churn_share: float

    def churn_project(self, rng: random.Random) -> int | None:
        """The project of the next background change (None: any, the default company)."""
        if not self.quiet and (not self.closed or not self.active):
            return None
        busy = bool(self.active) and (not self.quiet or rng.random() < self.active_churn_share)
        return rng.choice(self.active if busy else self.quiet)

    def figures(self) -> dict[str, object]:
        return {"active": len(self.active), "quiet": len(self.quiet), "closed": len(self.closed),
                "active_churn_share": self.active_churn_share, "active_ids": list(self.active),
                "quiet_ids": list(self.quiet), "closed_ids": list(self.closed)}


def check(options: SimOptions) -> None:
    for name in ("active_share", "inactive_share", "active_churn_share"):
        value = getattr(options, name)
        if not 0.0 <= value <= 1.0:
            raise OptionError(f"--{name.replace('_', '-')} must be between 0 and 1, got {value}")
    if options.active_share + options.inactive_share > 1.0:
        raise OptionError("--active-share and --inactive-share together must not exceed 1")
    if options.time_scale <= 0:
        raise OptionError(f"--time-scale must be positive, got {options.time_scale}")


def scale_time(options: SimOptions) -> None:
    """Every rate window F times shorter, same count: the limits as Procore's clock F times faster."""
    for name in ("rate_limit", "spike", "hourly"):
        setattr(options, name, scaled_window(getattr(options, name), options.time_scale))


def arrange(store: Store, options: SimOptions, now: int) -> Activity:
    """Split the generated projects into busy, quiet and closed ones (seeded, so reproducible),
    closing the closed ones as a deactivation does (their records stay readable)."""
    ids = [p.id for p in store.projects()]
    rng = random.Random(options.seed + 7)
    shuffled = rng.sample(ids, len(ids))
    active_n = round(options.active_share * len(ids)) if options.active_share < 1.0 else len(ids)
    closed_n = round(options.inactive_share * len(ids))
    active = tuple(sorted(shuffled[:active_n]))
    closed = tuple(sorted(shuffled[active_n:active_n + closed_n]))
    quiet = tuple(sorted(shuffled[active_n + closed_n:]))
    for project_id in closed:
        record = store.project(project_id)
        if record is not None:
            record.deleted_epoch = min(now, record.updated_epoch + 86400)
            store.changed(record)
    return Activity(active, quiet, closed, options.active_churn_share)
