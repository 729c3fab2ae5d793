"""supervisord program: the thumbnailer (stored PDFs and photos -> PNG thumbnails)."""

from eva00 import keys
from eva00.config import load_or_exit
from eva00.replica.filestore import FileStore
from eva00.runtime.logging import setup_logging
from eva00.runtime.process import connect
from eva00.runtime.stage import Stage
from eva00.stages.thumbnailer import Thumbnailer

settings = load_or_exit()
setup_logging("thumbnailer", settings)
client, pool = connect(settings, "thumbnailer")
stage = Stage("thumbnailer", settings, client, pool, [(keys.STREAM_THUMBNAILS, keys.GROUP_THUMBNAILERS)],
              Thumbnailer(FileStore(settings.data_dir, min_free_ratio=settings.disk_free_min_ratio)))
stage.install_signal_handlers()
raise SystemExit(stage.run())
