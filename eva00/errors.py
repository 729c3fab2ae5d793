"""Errors sorted by what the loop must do with the message that raised them.

- Retryable: a transient cause (timeout, 5xx, 429); leave the message pending, it comes back.
- Fatal: this item cannot succeed now (403 on a project, 404); record it and acknowledge.
- Skip: nothing to do (a duplicate, an unknown resource); acknowledge silently.
- Poison: the message itself is bad (undecodable, wrong version); dead-letter it at once.
- Unreadable (a Fatal): Procore answered in a shape the client cannot read. Asking again within
  the run gets the same answer: that (project, kind) fails for the run with the reason, every
  other kind goes on, and a later run (or a fixed client) asks again.
Outages of Redis or PostgreSQL are not errors of a message: the stage waits them out in-process.
"""

from __future__ import annotations

import psycopg


class StageError(Exception):
    """Base of the errors a handler raises on purpose."""


class Retryable(StageError):
    def __init__(self, message: str, delay_s: float = 0.0) -> None:
        super().__init__(message)
        self.delay_s = delay_s


class Fatal(StageError):
    pass


class Unreadable(Fatal):
    """An answer of an unexpected shape: never retried within the run, never dead-lettered."""


class Skip(StageError):
    pass


class Poison(StageError):
    pass


def is_pg_outage(exc: BaseException) -> bool:
    """A PostgreSQL error that means the server is unreachable, not that our statement is wrong."""
    if isinstance(exc, psycopg.OperationalError | psycopg.errors.AdminShutdown):
        return True
    return isinstance(exc, psycopg.InterfaceError) and "closed" in str(exc)
