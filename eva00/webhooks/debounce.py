"""The fetcher's half of the webhook debounce contract (the intake's half: webhooks/intake.py).

The key ``keys.webhook_debounce_key(kind, project, item)`` exists while a webhook fetch of that item
is queued and not started: the intake adds the job only while the key is absent
(Bus.publish_unless_key). This middleware deletes the key when a fetcher starts an ITEM job, in the
short transaction before the fetch (``before_handle``), so before the first request. Cleared before
fetching, not after: an update that arrives while the fetch runs then queues a fresh job instead of
being swallowed by a fetch that may already have read the old state. A redelivered job deletes it
again, which is harmless; a job that is dead-lettered has deleted it already.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
import redis

from eva00 import keys
from eva00.messages import Message, PollJob, PollMode
from eva00.runtime.bus import Delivery, Outgoing
from eva00.runtime.middleware import Middleware


class DebounceRelease(Middleware):
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def before_handle(self, conn: psycopg.Connection, message: Message,
                      delivery: Delivery) -> Sequence[Outgoing] | None:
        if isinstance(message, PollJob) and message.mode == PollMode.ITEM and message.item_id is not None:
            self.redis.delete(keys.webhook_debounce_key(message.kind, message.project_id,
                                                        message.item_id))
        return None
