"""The replica's database core: every SQL statement on the replica's record tables, one module
per table group.

- ``records``: the entity tables' rows (upsert: lock, decide, write).
- ``versions``: ``record_versions``, the history of every payload.
- ``deletes``: soft deletes, ``delete_pending`` and the mass-delete guard.
- ``cursors``: ``sync_cursors``.
- ``synclog``: ``sync_log``.
- ``files``: ``record_files`` and ``files``, with the links' ``FileState``.
- ``polls``: the poll bookkeeping, ``poll_pages``, ``reconcile_seen`` and ``list_hashes`` (the
  reports that join ``poll_pages`` to other tables, in ops, monitor and fullsync, keep their SQL).
- ``unavailable``: ``unavailable_tools``, the (project, kind) pairs whose tool Procore refuses.
- ``scope``: what they share (a kind's table, identity matching); ``filestore``: the bytes on disk.

Every write here keeps three promises. Nothing is hard-deleted (a delete sets ``is_deleted``).
Every distinct payload ever seen is in ``record_versions``: the schema's statement triggers copy
what the entity tables store, and ``versions`` adds the payloads a stale fetch brought, which the
tables never store. A row is never overwritten by a fetch older than the one that produced it:
``fetched_at`` is Procore's own Date header, so our clock's skew does not matter.

Locking order: existing rows are locked (``FOR NO KEY UPDATE``) by table, then key, before
anything is decided; new rows are inserted ``ON CONFLICT DO NOTHING`` in the same order, so
concurrent differs decide on what the other committed and never deadlock. The caller owns the
transaction: nothing here commits, except on an autocommit connection, where one statement group
gets its own transaction.

This package sits below every process: it imports only eva00's base modules (kinds, hashing) and
must not import stages, procore, ops, proof, simulator or cli. Callers import the module they
need (``from eva00.replica import records, cursors``); nothing is re-exported here.
"""
