"""supervisord program: the text extractor (stored PDFs -> file_texts, full-text searchable)."""

from eva00 import keys
from eva00.documents.isolated import DocumentSandbox
from eva00.messages import StoredFileJob
from eva00.replica.filestore import FileStore
from eva00.runtime.program import run_stage
from eva00.runtime.stage import accepting
from eva00.stages.text_extractor import TextExtractor

run_stage("text_extractor", [(keys.STREAM_TEXT, keys.GROUP_TEXT)],
          lambda program: accepting(StoredFileJob)(TextExtractor(
              FileStore(program.settings.data_dir, min_free_ratio=program.settings.disk_free_min_ratio),
              sandbox=DocumentSandbox.from_settings(program.settings))))
