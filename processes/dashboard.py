"""supervisord program: the dashboard (page, /api/status, /metrics) on 127.0.0.1:EVA00_DASHBOARD_PORT.
Reads only; SIGTERM closes the socket and exits 0."""

from eva00.ops.dashboard.app import DashboardApp, make_dashboard_server, serve
from eva00.ops.status import StatusReader, supervisor_lister
from eva00.runtime.program import Program, run_program


def main(program: Program) -> None:
    reader = StatusReader(program.settings, program.redis, program.pool,
                          processes=supervisor_lister(program.settings))
    server = make_dashboard_server(DashboardApp(reader), program.settings.dashboard_port,
                                   program.settings.dashboard_hosts)
    serve(server, program.stop)


run_program("dashboard", main)
