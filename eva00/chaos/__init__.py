"""The chaos and fault suite (issue 11): seven scenarios against a real supervisord stack, each
judged by the checker (eva00/checker.py). `python -m eva00.chaos` runs them; `make chaos` at full
scale, tests/chaos at the reduced CI scale."""
