"""supervisord program: the text extractor (stored PDFs -> file_texts, full-text searchable)."""

from eva00 import keys
from eva00.config import load_or_exit
from eva00.replica.filestore import FileStore
from eva00.runtime.logging import setup_logging
from eva00.runtime.process import connect
from eva00.runtime.stage import Stage
from eva00.stages.text_extractor import TextExtractor

settings = load_or_exit()
setup_logging("text_extractor", settings)
client, pool = connect(settings, "text_extractor")
stage = Stage("text_extractor", settings, client, pool, [(keys.STREAM_TEXT, keys.GROUP_TEXT)],
              TextExtractor(FileStore(settings.data_dir, min_free_ratio=settings.disk_free_min_ratio)))
stage.install_signal_handlers()
raise SystemExit(stage.run())
