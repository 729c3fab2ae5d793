"""The canonical payload hash shared by the differ, the checker and the simulator's ground truth.

A payload is hashed as orjson with sorted keys, so key order in Procore's answer never makes an
unchanged record look changed. xxh3_128 is fast enough that the differ is never CPU bound on it;
it is not a security boundary (file bytes use SHA-256).
"""

from __future__ import annotations

from typing import Any

import orjson
import xxhash


def canonical_json(payload: Any) -> bytes:
    return orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)


def payload_hash(payload: Any) -> str:
    return xxhash.xxh3_128_hexdigest(canonical_json(payload))
