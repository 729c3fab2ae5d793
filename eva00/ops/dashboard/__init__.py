"""The operator's dashboard: a page, /api/status (eva00/ops/status.py's snapshot) and /metrics
(Prometheus text), served on 127.0.0.1 only by its own process (processes/dashboard.py)."""
