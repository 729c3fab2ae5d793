"""How we prove the replica right: the checker (replica against the simulator's ground truth),
the benchmarks (``make bench``), the chaos suite (``make chaos``) and the in-process pipeline
harness that tests and benchmarks step by hand.

The only package besides the CLI that may import the simulator; nothing in the product imports it.
"""
