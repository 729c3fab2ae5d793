"""PostgreSQL full-text search over live records and the text of files (`eva00 search`).

Records match on every string in their payload (a GIN index per entity table on
jsonb_to_tsvector); files match on `file_texts` (filled by the text-extraction stage) and are
shown with the records that link them. The query is web-search syntax: words, "a phrase", -not, or.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg


@dataclass(frozen=True)
class Hit:
    source: str  # "record" | "file"
    rank: float
    kind: str
    procore_id: int | None
    project_id: int | None
    title: str
    sha256: str = ""
    snippet: str = ""


# Each branch of replica_records gets the query pushed down, so each table's GIN index serves it.
_RECORDS = """
SELECT kind, procore_id, project_id,
       coalesce(payload->>'title', payload->>'name', payload->>'subject', payload->>'number', '') AS title,
       ts_rank(jsonb_to_tsvector('english', payload, '["string"]'), websearch_to_tsquery('english', %(q)s))
  FROM replica_records
 WHERE NOT is_deleted
   AND jsonb_to_tsvector('english', payload, '["string"]') @@ websearch_to_tsquery('english', %(q)s)
 ORDER BY 5 DESC, kind, procore_id
 LIMIT %(limit)s
"""

_FILES = """
SELECT t.sha256, ts_rank(t.tsv, websearch_to_tsquery('english', %(q)s)),
       ts_headline('english', left(t.text, 200000), websearch_to_tsquery('english', %(q)s),
                   'MaxWords=20, MinWords=8'),
       l.kind, l.procore_id, l.project_id, l.url_field
  FROM file_texts t
  LEFT JOIN LATERAL (SELECT kind, procore_id, project_id, url_field FROM record_files r
                      WHERE r.sha256 = t.sha256 ORDER BY r.id LIMIT 1) l ON true
 WHERE t.tsv @@ websearch_to_tsquery('english', %(q)s)
 ORDER BY 2 DESC, t.sha256
 LIMIT %(limit)s
"""


def search(conn: psycopg.Connection, query: str, *, limit: int = 20) -> list[Hit]:
    """Record and file hits, best first (ranks of the two kinds are comparable enough to merge)."""
    params = {"q": query, "limit": limit}
    hits = [Hit("record", float(rank), kind, pid, project, title)
            for kind, pid, project, title, rank in conn.execute(_RECORDS, params).fetchall()]
    for sha256, rank, snippet, kind, pid, project, url_field in conn.execute(_FILES, params).fetchall():
        hits.append(Hit("file", float(rank), kind or "", pid, project, url_field or "", sha256,
                        " ".join(snippet.split())))
    return sorted(hits, key=lambda hit: -hit.rank)[:limit]


def format_hit(hit: Hit) -> str:
    where = f"project {hit.project_id}" if hit.project_id else "company"
    if hit.source == "record":
        return f"{hit.kind} {hit.procore_id} ({where}): {hit.title}"
    owner = f"{hit.kind} {hit.procore_id} {hit.title}" if hit.kind else "no record"
    return f"file {hit.sha256[:12]} ({owner}, {where}): {hit.snippet}"
