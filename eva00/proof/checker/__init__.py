"""The replica checker: once the system is quiet, every figure of the replica against the truth.

``run`` takes one snapshot and assembles the report (records, duplicates, history, hard deletes);
``files`` checks the content-addressed store, ``streams`` what Redis still owes, ``ratelimit``
the simulator's ledger against its configured window.
"""
