"""The common start of every supervisord program, so each processes/<name>.py only names its parts.

In order: settings (a bad value exits 78 before anything else), logging under the program's name,
PostgreSQL (waited for, schema applied) and Redis, then SIGTERM/SIGINT handlers, then the program's
own loop. Signals are caught only once the services are reachable: a program still waiting for
PostgreSQL is ended by SIGTERM's default action, as it has nothing to finish.

Runtime knows no stage, client or dashboard: a program passes what it runs as callables.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import NoReturn, TypeVar

import redis
from psycopg_pool import ConnectionPool

from eva00.config import Settings, load_or_exit
from eva00.runtime.logging import setup_logging
from eva00.runtime.middleware import Middleware
from eva00.runtime.process import connect, on_terminate
from eva00.runtime.stage import FetchThenRecord, Handler, Stage

log = logging.getLogger(__name__)

H = TypeVar("H", bound=Handler | FetchThenRecord)

# What a stage reads, in priority order: fixed, or chosen by a setting.
Inputs = Sequence[tuple[str, str]] | Callable[[Settings], Sequence[tuple[str, str]]]


class Program:
    """A started program: its settings and clients, and the stop request SIGTERM or SIGINT makes.

    A loop either waits on ``stop`` (an Event) or registers a callback with ``on_stop`` that tells
    it to end."""

    def __init__(self, name: str, settings: Settings, client: redis.Redis, pool: ConnectionPool) -> None:
        self.name = name
        self.settings = settings
        self.redis = client
        self.pool = pool
        self.stop = threading.Event()
        self._callbacks: list[Callable[[], None]] = []

    def stopping(self) -> bool:
        return self.stop.is_set()

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when a stop is requested. A stop requested before the loop could be
        told means nothing has started yet, so the program ends here with 0."""
        if self.stop.is_set():
            raise SystemExit(0)
        self._callbacks.append(callback)

    def request_stop(self) -> None:
        log.info("%s: stop requested, finishing the work in hand", self.name)
        self.stop.set()
        for callback in self._callbacks:
            callback()

    def close(self) -> None:
        self.pool.close()
        self.redis.close()


def start_program(name: str) -> Settings:
    """Settings (exit 78 on a bad value) and logging under ``name``: for programs that open no pool."""
    settings = load_or_exit()
    setup_logging(name, settings)
    return settings


def _connected(name: str, pool_size: int) -> Program:
    settings = start_program(name)
    client, pool = connect(settings, name, pool_size=pool_size)
    return Program(name, settings, client, pool)


def run_stage(name: str, inputs: Inputs, build_handler: Callable[[Program], H], *,
              pool_size: int = 4, stream_batch: int | None = None,
              middleware: Callable[[Program, H], Sequence[Middleware]] | None = None,
              between_steps: Callable[[Program, H], Callable[[], None]] | None = None) -> NoReturn:
    """Run a Stage over ``inputs`` with the handler ``build_handler`` makes; exit with its code.

    ``stream_batch`` overrides EVA00_STREAM_BATCH for this stage (1: a long job never holds others
    it read with it); ``between_steps`` makes, from the program and its handler, work to do after
    every step (periodic housekeeping that needs the handler's collaborators); ``middleware`` makes,
    from the program and its handler, what runs around each message (runtime/middleware.py)."""
    program = _connected(name, pool_size)
    handler = build_handler(program)
    streams = inputs(program.settings) if callable(inputs) else inputs
    settings = (program.settings if stream_batch is None
                else program.settings.replace(stream_batch=stream_batch))
    around = middleware(program, handler) if middleware is not None else ()
    stage = Stage(name, settings, program.redis, program.pool, streams, handler, middleware=around)
    after_step = between_steps(program, handler) if between_steps is not None else None

    def stop_stage() -> None:
        stage.stopping = True

    program.on_stop(stop_stage)
    on_terminate(program.request_stop)
    raise SystemExit(stage.run(after_step))


def run_program(name: str, main: Callable[[Program], None], *, pool_size: int = 2) -> NoReturn:
    """Run a loop that is not a Stage (a scheduler, a server, a timer) until it returns; exit 0."""
    program = _connected(name, pool_size)
    on_terminate(program.request_stop)
    main(program)
    program.close()
    raise SystemExit(0)
