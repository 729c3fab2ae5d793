"""supervisord program: the monitor (eva00/stages/monitor.py): evaluates the alert conditions every
interval, resolves cleared ones and delivers owed notifications. SIGTERM exits 0."""

import os
import threading

from eva00.config import load_or_exit
from eva00.ops.notify import Notifier, NotifyConfig, build_sinks
from eva00.ops.status import supervisor_lister
from eva00.runtime.logging import setup_logging
from eva00.runtime.process import connect, on_terminate
from eva00.stages.monitor import Monitor

settings = load_or_exit()
setup_logging("monitor", settings)
client, pool = connect(settings, "monitor", pool_size=2)
notifier = Notifier(pool, build_sinks(NotifyConfig.from_env(os.environ)))
monitor = Monitor(settings, client, pool, notifier, processes=supervisor_lister(settings))
stop = threading.Event()
on_terminate(stop.set)
monitor.run(stop)
pool.close()
client.close()
