"""supervisord eventlistener: PROCESS_STATE_FATAL opens a critical alert, RUNNING resolves it
(eva00/stages/supervisor_listener.py). stdout is the protocol channel: logs go to stderr only."""

import sys

import psycopg

from eva00.config import load_or_exit
from eva00.runtime.logging import setup_logging
from eva00.stages.supervisor_listener import listen

settings = load_or_exit()
setup_logging("supervisor-listener", settings)
listen(sys.stdin, sys.stdout, lambda: psycopg.connect(settings.effective_database_url, connect_timeout=5))
