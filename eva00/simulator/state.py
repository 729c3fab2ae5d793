"""The simulator's state, shared by every request handler (api, control, login, storage, hooks)."""

from __future__ import annotations

import random
import secrets
import time
from email.utils import formatdate
from typing import Any

from eva00.simulator import company
from eva00.simulator.blobs import BlobRegistry, sign
from eva00.simulator.churn import Churn
from eva00.simulator.clock import today_epoch
from eva00.simulator.faults import Faults
from eva00.simulator.generator import generate
from eva00.simulator.ledger import Ledger
from eva00.simulator.mutations import Mutator
from eva00.simulator.oauth import OAuth
from eva00.simulator.options import SimOptions
from eva00.simulator.ratelimit import RateLimiter
from eva00.simulator.records import World
from eva00.simulator.store import Store
from eva00.simulator.tools import Tools, parse_spec
from eva00.simulator.webhooks import Webhooks


class SimState:
    """What the simulator holds: its options, the generated company, tokens, rate windows, faults,
    the request ledger, webhooks and churn. The request handlers take this; app.Simulator adds the
    gatekeepers every request passes."""

    def __init__(self, options: SimOptions, api_base: str, storage_base: str, file_base: str = "") -> None:
        self.options = options
        self.api_base = api_base
        self.storage_base = storage_base
        self.file_base = file_base or api_base
        self.started_at = time.time()
        self.last_modified = formatdate(self.started_at, usegmt=True)
        self.sign_key = secrets.token_bytes(32)
        self.blobs = BlobRegistry()
        self.store = Store(options.company_id, self.blobs)
        self.world = World(random.Random(options.seed), self.file_base, self.blobs, options.file_size_bytes,
                           options.company_id)
        # The data is generated in the server's time, like its Date headers: with a skewed clock
        # the newest daily log is the server's today, not the host's (they differ near midnight).
        server_now = self.now()
        generate(self.store, self.world, options.projects, options.items,
                 options.anchor_epoch or today_epoch(server_now), now=server_now)
        self.tools = Tools(parse_spec(options.tools_off, [p.id for p in self.store.projects()]))
        self.activity = company.arrange(self.store, options, int(server_now))
        self.oauth = OAuth(options)
        self.limiter = RateLimiter(options)
        self.faults = Faults(options.seed)
        self.ledger = Ledger()
        self.webhooks = Webhooks(options, seed=options.seed)
        self.mutator = Mutator(self.store, self.world, self.webhooks.emit, clock=self.now)
        self.churn = Churn(self.mutator, options, seed=options.seed + 1,
                           pick_project=self.activity.churn_project)

    def now(self) -> float:
        """The server's time (the host's, shifted by clock_offset_s)."""
        return time.time() + self.options.clock_offset_s

    def start(self) -> None:
        self.webhooks.start()
        self.churn.start()

    def stop(self) -> None:
        self.churn.stop()
        self.webhooks.stop()

    def signed_url(self, file_id: int) -> str:
        expires = int(self.now() + self.options.signed_url_ttl_s)
        return (f"{self.storage_base}/blobs/{file_id}?expires={expires}"
                f"&sig={sign(self.sign_key, file_id, expires)}")

    def figures(self) -> dict[str, Any]:
        return {**self.ledger.figures(), "violations": self.limiter.refused,
                "windows": self.limiter.figures(), "webhooks": self.webhooks.figures(),
                "tokens_issued": self.oauth.issued, "records": self.store.count(), "files": len(self.blobs),
                "churn": self.churn.figures(), "activity": self.activity.figures(),
                "uptime_s": round(time.time() - self.started_at, 3)}
