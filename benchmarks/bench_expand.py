"""Exact best-of-n on a flat space: ``expand.best_of_n`` (JAX) against the same algorithm in NumPy.

Both sort the rewards, sum the reference's mass per distinct level, accumulate ``log P_<=`` and
evaluate ``n log P_<= + log1mexp(n log(P_</P_<=))`` per level — O(m log m) per row. The two are
checked to agree before timing. On CPU the sort dominates a single large row (XLA's comparator
sort is slower than NumPy's); batches of small rows — a family over ``n``, many prompts — are
where the vmapped kernel wins.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import median_time
from freeenergy import expand


def _log1mexp(x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    near = x > -math.log(2.0)
    with np.errstate(divide="ignore"):
        out[near] = np.log(-np.expm1(x[near]))
        out[~near] = np.log1p(-np.exp(x[~near]))
    return out


def best_of_n_numpy(logp0: np.ndarray, reward: np.ndarray, n: float) -> np.ndarray:
    """One row: the same level-wise log-space formula as ``expand.best_of_n``."""
    order = np.argsort(reward, kind="stable")
    lp = logp0[order]
    _, start, level = np.unique(reward[order], return_index=True, return_inverse=True)
    peak = np.maximum.reduceat(lp, start)
    safe = np.where(np.isfinite(peak), peak, 0.0)
    with np.errstate(divide="ignore"):
        log_level = safe + np.log(np.add.reduceat(np.exp(lp - safe[level]), start))
    below = np.logaddexp.accumulate(log_level)
    above = np.concatenate([np.logaddexp.accumulate(log_level[::-1])[::-1][1:], [-np.inf]])
    log_le = np.where(above < -math.log(2.0), _log1mexp(np.minimum(above, 0.0)), below)
    has = log_level > -np.inf
    ratio = np.where(has, np.minimum(log_level - np.where(has, log_le, 0.0), 0.0), -1.0)
    d = _log1mexp(ratio)
    log_best = np.where(has, n * log_le + _log1mexp(n * d), -np.inf)
    weight = np.where(has, log_best - np.where(has, log_level, 0.0), 0.0)
    out = np.empty_like(lp)
    out[order] = np.where(lp > -np.inf, lp + weight[level], -np.inf)
    return out


def main(quick: bool) -> None:
    jax.config.update("jax_enable_x64", True)
    rng = np.random.default_rng(0)
    # (batch, behaviors): one large space; many rows; the n = 1..1000 family of a small space
    cases = [(1, 10_000), (100, 1_000)] if quick else [(1, 100_000), (1, 1_000_000), (200, 5_000)]
    cases.append((1000, 60))
    n = 1000
    print(f"best_of_n, n = {n} draws, float64, ties (rewards rounded to 1e-3), ms per call")
    print(f"{'batch x behaviors':>20} {'jax':>10} {'numpy':>10} {'numpy/jax':>10}")
    for batch, m in cases:
        logits = rng.normal(size=(batch, m)) * 2.0
        logp0 = logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)
        reward = np.round(rng.normal(size=(batch, m)), 3)
        lp_j, r_j = jnp.asarray(logp0), jnp.asarray(reward)
        ref = np.stack([best_of_n_numpy(logp0[i], reward[i], n) for i in range(batch)])
        got = np.asarray(expand.best_of_n(lp_j, r_j, n))
        assert not np.any(np.isnan(got))
        assert np.allclose(got, ref, rtol=1e-9, atol=1e-12), "JAX and NumPy disagree"
        repeat = 3 if quick else 5
        t_jax = median_time(lambda lp=lp_j, r=r_j: expand.best_of_n(lp, r, n), repeat=repeat)
        t_np = median_time(
            lambda lp=logp0, r=reward: [best_of_n_numpy(lp[i], r[i], n) for i in range(len(lp))],
            repeat=repeat,
        )
        print(f"{f'{batch} x {m}':>20} {1e3 * t_jax:10.2f} {1e3 * t_np:10.2f} {t_np / t_jax:10.2f}")
