"""supervisord eventlistener: PROCESS_STATE_FATAL opens a critical alert, RUNNING resolves it
(eva00/stages/supervisor_listener.py). stdout is the protocol channel: logs go to stderr only.
SIGTERM keeps its default action: the loop blocks on stdin and has nothing to finish."""

import sys

import psycopg

from eva00.runtime.program import start_program
from eva00.stages.supervisor_listener import listen

settings = start_program("supervisor-listener")
listen(sys.stdin, sys.stdout, lambda: psycopg.connect(settings.effective_database_url, connect_timeout=5))
