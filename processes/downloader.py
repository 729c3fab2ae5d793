"""supervisord program: a downloader (file jobs -> content-addressed files; at most
EVA00_DOWNLOAD_CONCURRENCY transfers across every downloader process). One job per read, so a
batch of long downloads never delays a submittal that arrives meanwhile; between jobs, the
housekeeping re-enqueues lost links and purges stale temp files."""

from eva00.runtime.program import run_stage
from eva00.stages.downloader import DOWNLOAD_INPUTS, program_downloader, program_housekeeping

run_stage("downloader", DOWNLOAD_INPUTS, program_downloader, stream_batch=1,
          between_steps=program_housekeeping)
