"""supervisord program: a downloader (file jobs -> content-addressed files; at most
EVA00_DOWNLOAD_CONCURRENCY transfers across every downloader process). One job per read, so a
batch of long downloads never delays a submittal that arrives meanwhile; between jobs, the
housekeeping re-enqueues lost links and purges stale temp files."""

from collections.abc import Callable

from eva00.runtime.program import Program, run_stage
from eva00.stages.downloader import DOWNLOAD_INPUTS, Downloader, Housekeeping, build_downloader


def _downloader(program: Program) -> Downloader:
    downloader = build_downloader(program.settings, program.redis, program.pool)
    # A transfer waiting for a slot, disk space or Procore gives up as soon as a stop is asked.
    downloader.should_stop = program.stopping
    return downloader


def _housekeeping(program: Program, downloader: Downloader) -> Callable[[], None]:
    settings = program.settings
    return Housekeeping(program.pool, program.redis, downloader.store,
                        interval_s=settings.download_housekeeping_s,
                        requeue_after_s=settings.download_requeue_after_s).maybe_run


run_stage("downloader", DOWNLOAD_INPUTS, _downloader, stream_batch=1, between_steps=_housekeeping)
