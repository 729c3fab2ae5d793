"""supervisord program: a fetcher (poll jobs -> pages; priority stream before scheduled work)."""

from eva00 import keys
from eva00.config import load_or_exit
from eva00.procore import build_client
from eva00.runtime.logging import setup_logging
from eva00.runtime.process import connect
from eva00.runtime.stage import Stage
from eva00.stages.fetcher import Fetcher

settings = load_or_exit()
setup_logging("fetcher", settings)
client, pool = connect(settings, "fetcher")
fetcher = Fetcher(settings, build_client(settings, client, pool), client)
inputs = [(keys.STREAM_SYNC_PRIORITY, keys.GROUP_FETCHERS), (keys.STREAM_SYNC_SCHEDULED, keys.GROUP_FETCHERS)]
stage = Stage("fetcher", settings, client, pool, inputs, fetcher)
fetcher.stop_requested = lambda: stage.stopping
stage.install_signal_handlers()
raise SystemExit(stage.run())
