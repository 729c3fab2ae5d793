"""A small real stage program for the process tests (tests/process/test_stage_process.py).

It runs eva00.runtime.stage.Stage over one test stream: each message inserts one effect row keyed on the
message's item id (idempotent: ON CONFLICT DO NOTHING), logs one row per committed handling
(not idempotent, on purpose: it counts commits) and forwards the item to a downstream stream.

Environment (besides DATABASE_URL, REDIS_URL, SUPERVISOR_PROCESS_NAME and EVA00_* settings):
  STAGE_IN, STAGE_GROUP, STAGE_OUT  the input stream, its group and the downstream stream
  STAGE_READY                       a file written once the group exists and the loop starts
  STAGE_MARKER                      a file written (with the item id) just before the pause
  STAGE_SLEEP_S                     how long the pause lasts (0: none)
  STAGE_SLEEP_AT                    "handler": after the insert, before COMMIT;
                                    "forward": after COMMIT, before the MULTI that acknowledges
  STAGE_SLEEP_ONCE                  "1": pause only for the first message of this process
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import psycopg
import redis
from psycopg import sql
from psycopg_pool import ConnectionPool

from eva00.config import Settings
from eva00.messages import Message, message
from eva00.runtime import db
from eva00.runtime.bus import Delivery, Outgoing
from eva00.runtime.stage import Stage, accepting


@message("test.process.item")
@dataclasses.dataclass(frozen=True)
class Item(Message):
    item_id: str


TABLES = """
CREATE TABLE IF NOT EXISTS stage_effects (
    item_id text PRIMARY KEY,
    entry_id text NOT NULL
);
CREATE TABLE IF NOT EXISTS stage_commits (
    item_id text NOT NULL,
    pid int NOT NULL
);
"""


class Pause:
    """Writes the marker, then sleeps: the moment a test kills or signals the process."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.at = os.environ.get("STAGE_SLEEP_AT", "handler")
        self.seconds = float(os.environ.get("STAGE_SLEEP_S", "0"))
        self.once = os.environ.get("STAGE_SLEEP_ONCE", "") == "1"
        self.marker = os.environ.get("STAGE_MARKER", "")
        self.done = False

    def __call__(self, item_id: str) -> None:
        if self.at != self.where or self.seconds <= 0 or (self.once and self.done):
            return
        self.done = True
        if self.marker:
            Path(self.marker).write_text(item_id)
        time.sleep(self.seconds)


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s fixture %(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env(os.environ, dotenv=None)
    inbound = os.environ.get("STAGE_IN", "test:in")
    group = os.environ.get("STAGE_GROUP", "test-group")
    outbound = os.environ.get("STAGE_OUT", "test:out")
    in_handler, before_forward = Pause("handler"), Pause("forward")

    @accepting(Item)
    def handle(conn: psycopg.Connection[Any], msg: Message,
               delivery: Delivery) -> Sequence[Outgoing]:
        assert isinstance(msg, Item)
        conn.execute("INSERT INTO stage_effects (item_id, entry_id) VALUES (%s, %s)"
                      " ON CONFLICT (item_id) DO NOTHING", (msg.item_id, delivery.entry_id))
        conn.execute("INSERT INTO stage_commits (item_id, pid) VALUES (%s, %s)",
                     (msg.item_id, os.getpid()))
        in_handler(msg.item_id)
        return [(outbound, Item(msg.item_id))]

    # The test's own tables, made by the schema's owner like every table (the app role creates none).
    with psycopg.connect(settings.effective_owner_url, autocommit=True) as conn:
        conn.execute(TABLES)
        conn.execute(sql.SQL("GRANT ALL ON stage_effects, stage_commits TO {}").format(
            sql.Identifier(db.role_of(settings.database_url))))
    client = redis.Redis.from_url(settings.redis_url)
    with ConnectionPool(settings.database_url, min_size=1, max_size=2, open=True,
                        check=ConnectionPool.check_connection) as pool:
        stage = Stage("fixture", settings, client, pool, [(inbound, group)], handle)
        forward = stage.bus.forward

        def paused_forward(delivery: Delivery | None, outgoing: Iterable[Outgoing]) -> None:
            outgoing = list(outgoing)
            if delivery is not None:
                before_forward(delivery.entry_id)
            forward(delivery, outgoing)

        stage.bus.forward = paused_forward
        stage.install_signal_handlers()
        stage.bus.ensure_group(inbound, group)
        if ready := os.environ.get("STAGE_READY"):
            Path(ready).write_text(str(os.getpid()))
        return stage.run()


if __name__ == "__main__":
    raise SystemExit(main())
