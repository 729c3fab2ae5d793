"""The initial full sync: the seed's four phases run through the everyday streams and stages.

``run`` plans and carries a run (phases, reopening, lost jobs), ``ledger`` is its durable job ledger
in PostgreSQL (every job recorded before it reaches a stream), ``status`` its progress as plain data,
``reasons`` why a run is incomplete aggregated per (kind, reason), and ``progress`` its rendering
(bars on a terminal, plain or JSON lines elsewhere).

Imports the base modules, runtime, replica and procore (the endpoint registry); never a stage, ops,
proof or the simulator.
"""
