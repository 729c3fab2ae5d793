"""supervisord program: the scheduler (enqueues poll jobs at each entity type's interval)."""

from eva00.runtime.program import Program, run_program
from eva00.stages.scheduler import Scheduler


def main(program: Program) -> None:
    scheduler = Scheduler(program.settings, program.redis, program.pool).build()
    program.on_stop(lambda: scheduler.shutdown(wait=False))  # type: ignore[attr-defined]
    scheduler.start()  # type: ignore[attr-defined]


run_program("scheduler", main)
