"""The simulator's canonical payload hash, the one its ground truth (``/_sim/truth``) carries.

The rule, as the sync's eva00/hashing.py documents it: a payload is serialised by orjson with its keys sorted
at every level (so key order in an answer never makes an unchanged record look changed), and the
bytes are hashed with xxh3_128, written as 32 lowercase hex digits.

It is written here from that rule on purpose rather than imported from the sync: the checker
compares the sync's hashes with these, and a test compares the two implementations on awkward
payloads, so a mistake in either one shows as a disagreement instead of agreeing with itself.
"""

from __future__ import annotations

from typing import Any

import orjson
import xxhash


def truth_hash(payload: Any) -> str:
    return xxhash.xxh3_128(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()
