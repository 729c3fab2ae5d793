"""The runtime every stage process shares: the Redis Streams seam and the stage loop.

Owns: ``bus`` (the only way onto a stream: groups, reading own pending first, reclaiming,
forward = XADD downstream + XACK upstream in one MULTI, dead letters, trimming), ``stage`` (the
read -> handle in one PostgreSQL transaction -> forward loop), ``middleware`` (the hooks a stage
runs around each message: before and after the handler, after COMMIT, after a dead letter),
``program`` (the common start of every supervisord program), ``db`` (the pool, schema,
readiness), ``process`` (a program's clients and signals), ``logging`` (redacted logs),
``backoff`` and ``alerts`` (the alerts table, raised by any layer).

Imports only the base modules (config, keys, errors, messages); never procore, stages, replica,
fullsync, ops, webhooks, proof or the simulator.
"""
