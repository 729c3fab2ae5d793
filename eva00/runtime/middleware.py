"""Stage middleware: what a stage does around every message, outside its handler.

A handler does the message's own work; duties that ride along with a message (releasing a marker
the message holds, recording a full-sync job in its run's ledger) are middleware, run by the
Stage at fixed points of the message's way (dramatiq's broker middleware is the model). The hooks,
in the order a Stage calls them:

1. ``before_handle(conn, message, delivery)``: inside the message's PostgreSQL transaction,
   before the handler. Returning outgoing entries finishes the message with them instead of the
   handler (its result is already committed); the later middleware's ``before_handle`` and every
   later hook but ``after_commit`` are then skipped.
2. ``before_record(conn, message, delivery)``: only for a handler that fetches before it records
   (runtime/stage.py, FetchThenRecord). Its ``before_handle`` ran in a short transaction of its
   own, committed before the fetch; this runs in the transaction that records what was fetched,
   before the record, and may answer like ``before_handle`` (a peer recorded the message while
   this one fetched: the fetched result is dropped).
3. ``after_handle(conn, message, delivery, outgoing)``: inside the transaction that ran the
   handler (or recorded what it fetched), after it returned; a write here commits or rolls back
   with the handler's.
4. ``after_commit(message, delivery, outgoing)``: after COMMIT and the MULTI that added the
   outgoing entries and acknowledged the message. Not called for a message the handler skipped
   (``Skip``: nothing committed) nor for one that failed.
5. ``after_dead_letter(message, delivery, error)``: once the message is in the dead letters
   (``message`` is None when the entry could not be decoded).

Hooks 1 to 3 fail the message like the handler would (retried, then dead-lettered). Hooks 4 and
5 come after the message is acknowledged: an exception there is logged and the stage goes on.
A middleware instance serves one Stage, which handles one message at a time; state one hook
leaves for a later hook must name the delivery it belongs to, since a failed message never
reaches ``after_commit``.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from eva00.messages import Message
from eva00.runtime.bus import Delivery, Outgoing


class Middleware:
    """Every hook does nothing until a subclass overrides it."""

    def before_handle(self, conn: psycopg.Connection, message: Message,
                      delivery: Delivery) -> Sequence[Outgoing] | None:
        return None

    def before_record(self, conn: psycopg.Connection, message: Message,
                      delivery: Delivery) -> Sequence[Outgoing] | None:
        return None

    def after_handle(self, conn: psycopg.Connection, message: Message, delivery: Delivery,
                     outgoing: Sequence[Outgoing]) -> None:
        return None

    def after_commit(self, message: Message, delivery: Delivery, outgoing: Sequence[Outgoing]) -> None:
        return None

    def after_dead_letter(self, message: Message | None, delivery: Delivery, error: str) -> None:
        return None
