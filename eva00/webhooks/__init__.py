"""Procore webhooks: the listener (authenticated, deduplicated, debounced, durable) and the hook
registration commands. A webhook is only a hint to re-fetch one record; polling stays the truth."""
