"""supervisord program: the scheduler (enqueues poll jobs at each entity type's interval)."""

from eva00.config import load_or_exit
from eva00.runtime.logging import setup_logging
from eva00.runtime.process import connect, on_terminate
from eva00.stages.scheduler import Scheduler

settings = load_or_exit()
setup_logging("scheduler", settings)
client, pool = connect(settings, "scheduler", pool_size=2)
scheduler = Scheduler(settings, client, pool).build()
on_terminate(lambda: scheduler.shutdown(wait=False))  # type: ignore[attr-defined]
scheduler.start()  # type: ignore[attr-defined]
