"""EVA-00 Sync: a complete, always-fresh local replica of Procore in PostgreSQL."""

__version__ = "0.1.0"
