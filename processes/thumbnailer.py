"""supervisord program: the thumbnailer (stored PDFs and photos -> PNG thumbnails)."""

from eva00 import keys
from eva00.documents.isolated import DocumentSandbox
from eva00.messages import StoredFileJob
from eva00.replica.filestore import FileStore
from eva00.runtime.program import run_stage
from eva00.runtime.stage import accepting
from eva00.stages.thumbnailer import Thumbnailer

run_stage("thumbnailer", [(keys.STREAM_THUMBNAILS, keys.GROUP_THUMBNAILERS)],
          lambda program: accepting(StoredFileJob)(Thumbnailer(
              FileStore(program.settings.data_dir, min_free_ratio=program.settings.disk_free_min_ratio),
              sandbox=DocumentSandbox.from_settings(program.settings))))
