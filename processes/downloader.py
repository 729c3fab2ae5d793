"""supervisord program: a downloader (file jobs -> content-addressed files; at most
EVA00_DOWNLOAD_CONCURRENCY transfers across every downloader process)."""

from eva00.config import load_or_exit
from eva00.runtime.logging import setup_logging
from eva00.runtime.process import connect, on_terminate
from eva00.runtime.stage import Stage
from eva00.stages.downloader import DOWNLOAD_INPUTS, ROUTE_INPUTS, Housekeeping, build_downloader

settings = load_or_exit()
setup_logging("downloader", settings)
client, pool = connect(settings, "downloader")
downloader = build_downloader(settings, client, pool)
# Routing takes big batches and barely blocks; downloading takes one job per read, so a batch of
# long downloads never delays a submittal that arrives meanwhile.
router = Stage("downloader-router", settings.replace(stream_block_ms=100, stream_batch=100), client, pool,
               ROUTE_INPUTS, downloader)
stage = Stage("downloader", settings.replace(stream_batch=1), client, pool, DOWNLOAD_INPUTS, downloader)
downloader.should_stop = lambda: stage.stopping
housekeeping = Housekeeping(pool, client, downloader.store, interval_s=settings.download_housekeeping_s,
                            requeue_after_s=settings.download_requeue_after_s)


def stop() -> None:
    # Both loops must see the signal: a router left running would wait out a stopped Redis forever.
    stage.stopping = router.stopping = True


on_terminate(stop)
while not stage.stopping:
    router.step()
    stage.step()
    housekeeping.maybe_run()
raise SystemExit(0)
