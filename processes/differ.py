"""supervisord program: the differ (fetched pages -> replica rows, history, cursors, deletes)."""

from eva00 import keys
from eva00.config import load_or_exit
from eva00.runtime.logging import setup_logging
from eva00.runtime.process import connect
from eva00.runtime.stage import Stage
from eva00.stages.differ import Differ

settings = load_or_exit()
setup_logging("differ", settings)
client, pool = connect(settings, "differ")
stage = Stage("differ", settings, client, pool, [(keys.STREAM_PAGES, keys.GROUP_DIFFERS)],
              Differ(settings.mass_delete_ratio, client))
stage.install_signal_handlers()
raise SystemExit(stage.run())
