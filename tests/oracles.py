"""Plain NumPy float64 reference formulas the tests compare the library against.

Written out directly from THEORY.md's definitions, sharing no code with ``freeenergy``.
"""

from __future__ import annotations

import math

import numpy as np

INF = np.inf


def np_lse(x: np.ndarray) -> np.ndarray:
    """log(sum(exp(x))) over the last axis; -inf for an all -inf row."""
    x = np.asarray(x, dtype=np.float64)
    m = np.max(x, axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return (m + np.log(np.sum(np.exp(x - m), axis=-1, keepdims=True)))[..., 0]


def np_normalize(x: np.ndarray) -> np.ndarray:
    return x - np_lse(x)[..., None]


def np_tilt(logp0: np.ndarray, energy: np.ndarray, beta: float) -> np.ndarray:
    """log q*, q* ∝ p0 exp(-U/beta), written out directly."""
    with np.errstate(invalid="ignore"):
        a = np.where((logp0 == -INF) | (energy == INF), -INF, logp0 - energy / beta)
    return np_normalize(a)


def np_kl(logq: np.ndarray, logp: np.ndarray) -> float:
    """KL(q || p) with 0 log 0 = 0 and +inf where q > 0 = p (compensated sum)."""
    pos = logq > -INF
    if np.any(pos & (logp == -INF)):
        return INF
    return math.fsum(np.exp(logq[pos]) * (logq[pos] - logp[pos]))
