"""Paired bootstrap of pass@k over prompts: ``freeenergy.empirical`` against NumPy.

The task: 500 prompts, 256 samples per prompt for a base and a trained model (success rates
from two Beta laws), pass@k for every k in 1..128, and a paired percentile bootstrap of the
pooled difference trained − base with 10,000 resamples of the prompts. Every side computes the
per-prompt pass@k table, the 10,000 resampled means for each of the 128 k, and the 2.5% / 97.5%
quantiles.

* JAX: ``em.paired_difference`` (the public call: validation, the float64 host table, then the
  jitted resampling ``W @ table / P`` with ``W`` the resample-count matrix). Float32, as a user
  gets it by default.
* NumPy, two implementations, float64:
  - **loop** — the straightforward one: the table by the product
    ``Π_{i<k} (n−c−i)/(n−i)`` (a cumulative product), then a loop over resamples, each
    ``rng.integers`` + a fancy-indexed mean;
  - **vectorized** — the table likewise; all indices at once, the resample counts by one
    ``bincount``, then one matrix product (a stronger baseline than the loop).

Before timing, NumPy is run on the *same* resample indices as JAX (``em.bootstrap_indices``)
and the intervals are compared, so they compute the same thing.
Wall times are medians; CPU times (all threads, ``time.process_time``) are printed beside them
because on a shared machine the wall time grows with the load average, which is printed too.
Goal: the JAX paired bootstrap well under one second on this CPU (judged as < 0.5 s CPU time).
"""

from __future__ import annotations

import os
import statistics
import time

import jax
import numpy as np

from freeenergy import empirical as em

from . import median_time


# ----------------------------------------------------------------------------- NumPy baselines
def np_pass_table(n: np.ndarray, c: np.ndarray, kmax: int) -> np.ndarray:
    """(P, kmax) pass@k for k = 1..kmax: ``1 − Π_{i<k} (n−c−i)/(n−i)`` (factors clipped at 0)."""
    i = np.arange(kmax)[None, :]
    factors = np.clip((n[:, None] - c[:, None] - i) / (n[:, None] - i), 0.0, None)
    return 1.0 - np.cumprod(factors, axis=1)


def np_bootstrap_loop(
    table: np.ndarray, num_bootstrap: int, seed: int = 0, idx: np.ndarray | None = None
) -> np.ndarray:
    """(num_bootstrap, K) resampled means, one resample at a time (prompt indices drawn by
    ``rng.integers``, or row ``b`` of ``idx`` when given)."""
    rng = np.random.default_rng(seed)
    p = table.shape[0]
    out = np.empty((num_bootstrap, table.shape[1]))
    for b in range(num_bootstrap):
        rows = rng.integers(0, p, p) if idx is None else idx[b]
        out[b] = table[rows].mean(axis=0)
    return out


def np_bootstrap_matrix(table: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """(B, K) resampled means for given indices ``idx`` (B, P): counts by one bincount, then
    ``W @ table / P``."""
    b, p = idx.shape
    flat = idx + p * np.arange(b)[:, None]
    w = np.bincount(flat.ravel(), minlength=b * p).reshape(b, p).astype(table.dtype)
    return w @ table / p


def np_interval(means: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    a = (1 - level) / 2
    return np.quantile(means, a, axis=0), np.quantile(means, 1 - a, axis=0)


def np_paired_loop(base, trained, kmax, num_bootstrap, seed=0):
    diff = np_pass_table(trained.n, trained.correct, kmax) - np_pass_table(
        base.n, base.correct, kmax
    )
    return np_interval(np_bootstrap_loop(diff, num_bootstrap, seed))


def np_paired_vectorized(base, trained, kmax, num_bootstrap, seed=0):
    diff = np_pass_table(trained.n, trained.correct, kmax) - np_pass_table(
        base.n, base.correct, kmax
    )
    p = diff.shape[0]
    idx = np.random.default_rng(seed).integers(0, p, (num_bootstrap, p))
    return np_interval(np_bootstrap_matrix(diff, idx))


def problem(prompts: int = 500, n: int = 256, seed: int = 0) -> tuple[em.Counts, em.Counts]:
    rng = np.random.default_rng(seed)
    ids = [f"q{i}" for i in range(prompts)]
    base = em.Counts(np.full(prompts, n), rng.binomial(n, rng.beta(0.3, 2.0, prompts)), ids)
    trained = em.Counts(np.full(prompts, n), rng.binomial(n, rng.beta(0.6, 1.5, prompts)), ids)
    return base, trained


def same_numbers_check(base, trained, kmax, num_bootstrap, key) -> float:
    """Max abs difference of the intervals of JAX and NumPy on the same resample indices."""
    d = em.paired_difference(
        base, trained, np.arange(1, kmax + 1), num_bootstrap=num_bootstrap, key=key
    )
    diff = np_pass_table(trained.n, trained.correct, kmax) - np_pass_table(
        base.n, base.correct, kmax
    )
    idx = np.asarray(em.bootstrap_indices(key, num_bootstrap, base.num_prompts))
    low, high = np_interval(np_bootstrap_matrix(diff, idx))
    return float(
        max(np.abs(np.asarray(d.low) - low).max(), np.abs(np.asarray(d.high) - high).max())
    )


# ----------------------------------------------------------------------------- the run
def main(quick: bool = False) -> None:
    prompts, n, kmax = 500, 256, 128
    num_bootstrap = 1000 if quick else 10_000
    repeat = 3 if quick else 5
    base, trained = problem(prompts, n)
    k = np.arange(1, kmax + 1)
    key = jax.random.key(0)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"devices: {jax.devices()}  dtype {jax.numpy.zeros(()).dtype} (NumPy: float64)  "
        f"cores {os.cpu_count()}, load average {load} (timings scale with it)"
    )
    print(
        f"paired bootstrap: {prompts} prompts x {n} samples, k = 1..{kmax}, "
        f"{num_bootstrap} resamples, 95% percentile interval of trained - base"
    )
    err = same_numbers_check(base, trained, kmax, num_bootstrap, key)
    print(
        f"same-numbers check vs numpy on identical resample indices: max |interval diff| {err:.1e}"
    )

    def run_jax():
        d = em.paired_difference(base, trained, k, num_bootstrap=num_bootstrap, key=key)
        return d.low, d.high

    t_jax, c_jax = median_time(run_jax, repeat=repeat), cpu_time(run_jax)
    vec = lambda: np_paired_vectorized(base, trained, kmax, num_bootstrap)  # noqa: E731
    t_vec, c_vec = median_time(vec, repeat=repeat), cpu_time(vec)
    loop_b = num_bootstrap if quick else 2000
    t_loop = median_time(lambda: np_paired_loop(base, trained, kmax, loop_b), repeat=3, warmup=0)
    t_loop *= num_bootstrap / loop_b
    # The goal is judged on CPU time: on a shared machine the wall time grows with the load.
    goal = "met" if c_jax < 0.5 else "NOT met"
    print(
        f"jax   em.paired_difference    {t_jax * 1e3:9.1f} ms   (CPU {c_jax * 1e3:7.1f} ms)   "
        f"goal well under 1 s (CPU < 0.5 s): {goal}"
    )
    print(
        f"numpy vectorized (bincount @) {t_vec * 1e3:9.1f} ms   (CPU {c_vec * 1e3:7.1f} ms)   "
        f"numpy/jax {t_vec / t_jax:6.2f}x"
    )
    note = "" if loop_b == num_bootstrap else f" (timed on {loop_b} resamples, scaled)"
    print(
        f"numpy loop over resamples     {t_loop * 1e3:9.1f} ms   numpy/jax {t_loop / t_jax:6.2f}x"
        f"{note}"
    )


def cpu_time(fn, repeat: int = 3) -> float:
    """Median process CPU time (all threads) of ``fn()`` in seconds: the work itself, which on a
    shared machine is steadier than the wall time."""
    jax.block_until_ready(fn())
    times = []
    for _ in range(repeat):
        start = time.process_time()
        jax.block_until_ready(fn())
        times.append(time.process_time() - start)
    return statistics.median(times)
