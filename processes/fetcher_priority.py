"""supervisord program: the priority fetcher. It reads only webhook and on-demand jobs, so they
never wait behind a scheduled job that is itself waiting for the rate limiter."""

from eva00 import keys
from eva00.config import load_or_exit
from eva00.procore import build_client
from eva00.runtime.logging import setup_logging
from eva00.runtime.process import connect
from eva00.runtime.stage import Stage
from eva00.stages.fetcher import Fetcher

settings = load_or_exit()
setup_logging("fetcher_priority", settings)
client, pool = connect(settings, "fetcher_priority")
fetcher = Fetcher(settings, build_client(settings, client, pool), client)
stage = Stage("fetcher_priority", settings, client, pool,
              [(keys.STREAM_SYNC_PRIORITY, keys.GROUP_FETCHERS)], fetcher)
fetcher.stop_requested = lambda: stage.stopping
stage.install_signal_handlers()
raise SystemExit(stage.run())
