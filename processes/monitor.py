"""supervisord program: the monitor (eva00/stages/monitor.py): evaluates the alert conditions every
interval, resolves cleared ones and delivers owed notifications. SIGTERM exits 0."""

import os
import sys

from eva00.config import EXIT_CONFIG
from eva00.ops.notify import Notifier, NotifyConfig, build_sinks
from eva00.ops.status import supervisor_lister
from eva00.runtime.program import Program, run_program
from eva00.stages.monitor import Monitor


def main(program: Program) -> None:
    try:
        config = NotifyConfig.from_env(os.environ)
    except ValueError as exc:  # EVA00_ALERT_SMTP_TLS or _PORT malformed
        print(f"eva00: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None
    notifier = Notifier(program.pool, build_sinks(config))
    Monitor(program.settings, program.redis, program.pool, notifier,
            processes=supervisor_lister(program.settings)).run(program.stop)


run_program("monitor", main)
