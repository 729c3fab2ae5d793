"""Benchmarks: each module exposes run(tmp_dir) -> list of {"name","value","unit","goal","met"}."""
