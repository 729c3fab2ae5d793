"""The chaos and fault suite (issue 11): seven scenarios against a real supervisord stack, each
judged by the checker (eva00/proof/checker/run.py). `python -m eva00.proof.chaos` runs them;
`make chaos` at full scale, tests/chaos at the reduced CI scale."""
