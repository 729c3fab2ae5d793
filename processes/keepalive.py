"""supervisord program: the OAuth keepalive (eva00/stages/keepalive.py). Renews the grant every
EVA00_KEEPALIVE_INTERVAL_S regardless of sync activity and ahead of expiry; SIGTERM exits 0."""

import threading

from eva00.config import load_or_exit
from eva00.procore import build_authenticator
from eva00.runtime.logging import setup_logging
from eva00.runtime.process import connect, on_terminate
from eva00.stages.keepalive import Keepalive

settings = load_or_exit()
setup_logging("keepalive", settings)
client, pool = connect(settings, "keepalive", pool_size=2)
stop = threading.Event()
on_terminate(stop.set)
Keepalive(build_authenticator(settings, client, pool), interval_s=settings.keepalive_interval_s,
          ahead_s=min(300.0, settings.keepalive_interval_s)).run(stop)
pool.close()
client.close()
