"""supervisord program: the dashboard (page, /api/status, /metrics) on 127.0.0.1:EVA00_DASHBOARD_PORT.
Reads only; SIGTERM closes the socket and exits 0."""

import threading

from eva00.config import load_or_exit
from eva00.ops.dashboard.app import DashboardApp, make_dashboard_server, serve
from eva00.ops.status import StatusReader, supervisor_lister
from eva00.runtime.logging import setup_logging
from eva00.runtime.process import connect, on_terminate

settings = load_or_exit()
setup_logging("dashboard", settings)
client, pool = connect(settings, "dashboard", pool_size=2)
reader = StatusReader(settings, client, pool, processes=supervisor_lister(settings))
server = make_dashboard_server(DashboardApp(reader), settings.dashboard_port)
stop = threading.Event()
on_terminate(stop.set)
serve(server, stop)
pool.close()
client.close()
