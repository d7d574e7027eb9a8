"""Plain NumPy float64 reference formulas the tests compare the library against.

Written out directly from the definitions of docs/theory.md, sharing no code with ``freeenergy``.
"""

from __future__ import annotations

import itertools
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


def all_strings(vocab: int, length: int) -> list[tuple[int, ...]]:
    """Every string of ``length`` tokens over ``vocab`` tokens, in lexicographic order."""
    return list(itertools.product(range(vocab), repeat=length))


def string_logp(model, ys) -> np.ndarray:
    """log p(y) of each string by walking a sequence model's generator in plain Python:
    log p(y) = sum_t logp[t, s_t, y_t] with s_{t+1} = transition[s_t, y_t]."""
    logp, trans = np.asarray(model.logp), np.asarray(model.transition)
    out = []
    for y in ys:
        s, total = int(model.initial), 0.0
        for t, tok in enumerate(y):
            total += logp[t, s, tok]
            s = trans[s, tok]
        out.append(total)
    return np.asarray(out)
