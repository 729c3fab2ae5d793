"""What the operator runs and reads: status, dashboard, alerts and their notices, sync_log
archive, search, the first-run doctor, the supervisord wrapper and the embedded PostgreSQL and
Redis (localstack).

May import the base modules, runtime, procore, replica, fullsync and webhooks (the doctor reads
our hook through its registration API); never stages, proof or the simulator.
"""
