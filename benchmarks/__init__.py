"""Benchmarks: JAX against a plain-NumPy baseline of the same computation, in one run.

Each ``benchmarks/bench_NAME.py`` defines ``main(quick: bool) -> None`` that prints medians and
ratios. Speed goals are checked here, by printed ratios, never by timed assertions in tests.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import jax

#: Registered benchmark modules, in the order ``python -m benchmarks`` runs them.
NAMES: list[str] = ["flat", "sequences", "grpo", "expand", "empirical"]


def median_time(fn: Callable[[], object], *, repeat: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds; JAX results are waited for."""
    for _ in range(warmup):
        jax.block_until_ready(fn())
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)
