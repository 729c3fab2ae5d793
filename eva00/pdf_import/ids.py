"""Synthetic ids for records imported from PDF logs, which carry no Procore id.

``synthetic_id`` is ``-(xxh64(key) & 0x7fff_ffff_ffff_ffff) - 1``: deterministic (a re-import
finds its rows again), always negative (Procore's ids are positive, so the two never collide)
and within PostgreSQL's bigint. The key is ``kind|project_id|number`` with the number as printed
(``RFI-012``, ``03 30 00-007.01``: items numbered per spec section stay apart). A draft without a
number is keyed ``kind|project_id|draft|subject-or-title|first date`` (the date initiated or
issued). A key met twice in one file (two drafts with one subject on one day) gets ``|2``, ``|3``
... in file order, so re-importing the same file gives every row the same id again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import xxhash

DRAFT_DATE_FIELDS = ("date_initiated", "issue_date", "received_date", "due_date", "submit_by")


def synthetic_id(key: str) -> int:
    return -(xxhash.xxh64_intdigest(key.encode()) & 0x7FFF_FFFF_FFFF_FFFF) - 1


def record_key(kind: str, project_id: int, record: Mapping[str, Any]) -> str:
    printed = record.get("full_number") or record.get("formatted_number") or record.get("number")
    if printed:
        return f"{kind}|{project_id}|{printed}"
    text = record.get("subject") or record.get("title") or ""
    first_date = next((record[f] for f in DRAFT_DATE_FIELDS if record.get(f)), "")
    return f"{kind}|{project_id}|draft|{' '.join(str(text).split()).lower()}|{first_date}"


def assign_ids(kind: str, project_id: int, records: Sequence[Mapping[str, Any]]) -> list[int]:
    """One synthetic id per record, in order (see the module docstring for duplicates)."""
    seen: Counter[str] = Counter()
    ids = []
    for record in records:
        key = record_key(kind, project_id, record)
        seen[key] += 1
        ids.append(synthetic_id(key if seen[key] == 1 else f"{key}|{seen[key]}"))
    return ids
