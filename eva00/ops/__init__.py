"""What the operator runs and reads: status, dashboard, alerts and their notices, sync_log
archive, search, the supervisord wrapper and the embedded PostgreSQL and Redis (localstack).

May import the base modules, runtime, procore, replica and fullsync; never stages, proof or the
simulator.
"""
