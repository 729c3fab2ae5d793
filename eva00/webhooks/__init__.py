"""Procore webhooks: the listener (authenticated, deduplicated, debounced, durable) and hook
registration (`eva00 webhooks ...` lives in cli/webhooks.py). A webhook is only a hint to re-fetch
one record; polling stays the truth.

Imports the base modules, runtime, procore and replica; never a stage, ops, proof or the simulator.
"""
