r"""Sample estimators of $\mathrm{KL}(q\|p_0)$ (Schulman 2020) and their exact moments.

For a behavior $y \sim q$ write the log-ratio $\ell(y) = \log p_0(y) - \log q(y)$. Then

* ``k1`` $= -\ell$: unbiased, $\mathbb{E}_q[k_1] = \mathrm{KL}(q\|p_0)$, high variance, can be
  negative;
* ``k2`` $= \ell^2/2$: biased (its mean is not the KL in general), low variance, non-negative;
* ``k3`` $= (e^{\ell} - 1) - \ell$: non-negative, and
  $\mathbb{E}_q[k_3] = p_0(\mathrm{supp}\,q) - 1 + \mathrm{KL}(q\|p_0)$ — unbiased exactly when
  the sampler's support covers the reference's, and **biased downward by the reference mass
  the sampler misses** otherwise.

Where $p_0(y) = 0 < q(y)$ every estimator is ``+inf`` (so is the KL).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .. import _checks

__all__ = ["KL_ESTIMATORS", "kl_estimate", "KLEstimatorStats", "kl_estimator_stats"]

#: Names of the sample estimators of KL(q‖p0).
KL_ESTIMATORS = ("k1", "k2", "k3")


def _kl_terms(logq_y: jax.Array, logp0_y: jax.Array, kind: str) -> jax.Array:
    """Per-sample estimator values; ``+inf`` where ``p0(y) = 0`` (and 0 where ``q(y) = 0``).

    Differentiable in ``logq_y`` wherever both log-probabilities are finite.
    """
    q_pos = logq_y > -jnp.inf
    p_pos = logp0_y > -jnp.inf
    finite = q_pos & p_pos
    log_ratio = jnp.where(finite, logp0_y, 0.0) - jnp.where(finite, logq_y, 0.0)
    if kind == "k1":
        value = -log_ratio
    elif kind == "k2":
        value = 0.5 * jnp.square(log_ratio)
    elif kind == "k3":
        value = jnp.expm1(log_ratio) - log_ratio
    else:  # pragma: no cover - validated by callers
        raise ValueError(kind)
    return jnp.where(finite, value, jnp.where(q_pos, jnp.inf, 0.0))


def _check_kind(kind: Any, name: str = "kind") -> str:
    if kind not in KL_ESTIMATORS:
        raise ValueError(f"`{name}` must be one of {KL_ESTIMATORS}, got {kind!r}.")
    return kind


def kl_estimate(logq_y: Any, logp0_y: Any, kind: str = "k3") -> jax.Array:
    r"""Per-sample KL estimator values from the log-probabilities of sampled behaviors.

    ``logq_y`` and ``logp0_y`` are $\log q(y_i)$ and $\log p_0(y_i)$ at draws $y_i \sim q$
    (same shape; they broadcast). ``kind`` is ``"k1"`` ($-\ell$), ``"k2"`` ($\ell^2/2$) or
    ``"k3"`` ($e^\ell - 1 - \ell$), with $\ell = \log p_0(y) - \log q(y)$. Average them to estimate
    $\mathrm{KL}(q\|p_0)$.

    >>> import jax.numpy as jnp
    >>> round(float(kl_estimate(jnp.log(0.5), jnp.log(0.25), "k3")), 6)  # e^-ln2 - 1 + ln 2
    0.193147
    """
    kind = _check_kind(kind)
    logq_y = _checks.logp(logq_y, "logq_y", normalized=False, min_ndim=0)
    logp0_y = _checks.logp(logp0_y, "logp0_y", normalized=False, min_ndim=0)
    _checks.broadcast("logq_y", logq_y, "logp0_y", logp0_y)
    dtype = _checks._float_dtype(logq_y, logp0_y)
    return _kl_terms(logq_y.astype(dtype), logp0_y.astype(dtype), kind)


class KLEstimatorStats(NamedTuple):
    """Exact moments of the three estimators under ``y ~ q``; arrays ``(..., 3)`` in the order
    ``("k1", "k2", "k3")``; ``kl`` is the true ``KL(q‖p0)`` (``(...)``)."""

    mean: jax.Array
    variance: jax.Array
    bias: jax.Array
    kl: jax.Array


@jax.jit
def _stats(logq: jax.Array, logp0: jax.Array) -> KLEstimatorStats:
    q_pos = logq > -jnp.inf
    q = jnp.where(q_pos, jnp.exp(jnp.where(q_pos, logq, 0.0)), 0.0)
    singular = jnp.any(q_pos & (logp0 == -jnp.inf), axis=-1)
    terms = jnp.stack([_kl_terms(logq, logp0, k) for k in KL_ESTIMATORS], axis=-1)  # (..., n, 3)
    safe = jnp.where(jnp.isfinite(terms), terms, 0.0)
    mean = jnp.sum(q[..., None] * safe, axis=-2)
    var = jnp.sum(q[..., None] * jnp.square(safe - mean[..., None, :]), axis=-2)
    kl = mean[..., 0]
    mean = jnp.where(singular[..., None], jnp.inf, mean)
    var = jnp.where(singular[..., None], jnp.inf, var)
    kl = jnp.where(singular, jnp.inf, kl)
    bias = jnp.where(singular[..., None], 0.0, mean - kl[..., None])
    return KLEstimatorStats(mean=mean, variance=var, bias=bias, kl=kl)


def kl_estimator_stats(logq: Any, logp0: Any) -> KLEstimatorStats:
    r"""Exact mean, variance and bias of ``k1``, ``k2``, ``k3`` under sampling from ``q``.

    Computed by enumeration over the behaviors (no Monte Carlo):
    $\mathbb{E}_q[k] = \sum_y q(y)\,k(y)$,
    $\mathrm{Var}_q[k] = \sum_y q(y)\,(k(y) - \mathbb{E}_q k)^2$ and the bias
    $\mathbb{E}_q[k] - \mathrm{KL}(q\|p_0)$ (per sample; an average of ``m`` draws has the same bias
    and ``1/m`` of the variance). When ``q`` has mass outside ``supp(p0)`` the KL and
    every mean and variance are ``+inf`` and the bias is reported as 0.
    """
    logq = _checks.logp(logq, "logq")
    logp0 = _checks.logp(logp0, "logp0")
    _checks.same_last_axis("logq", logq, "logp0", logp0)
    dtype = _checks._float_dtype(logq, logp0)
    shape = jnp.broadcast_shapes(logq.shape, logp0.shape)
    return _stats(
        jnp.broadcast_to(logq.astype(dtype), shape), jnp.broadcast_to(logp0.astype(dtype), shape)
    )
