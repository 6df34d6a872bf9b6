"""``tongdai bench``: speed figures as ratios against baselines measured in the same run.

Self-contained: it starts its own embedded Redis (append-only file, the config's default
fsync policy) and its own config in a temporary directory, spawns the processes it measures
and stops all of them at the end. See ``benchmarks/README.md`` for what each figure means.
"""
