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
import numpy as np

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
    if not isinstance(kind, str) or kind not in KL_ESTIMATORS:
        raise ValueError(f"`{name}` must be one of {KL_ESTIMATORS}, got {_checks._describe(kind)}.")
    return kind


def _log_probabilities(x: Any, name: str, *, normalized: bool) -> jax.Array:
    """``_checks.logp`` that also refuses positive entries (a log-probability is at most 0, up to
    ``NORMALIZATION_ATOL`` of rounding), recognizing probabilities passed by mistake."""
    if not normalized:
        arr = _checks.logp(x, name, normalized=False, min_ndim=0)
        _refuse_positive(arr, name, None)
        return arr
    try:
        return _checks.logp(x, name)
    except ValueError as err:
        if "does not normalize" in str(err):
            _refuse_positive(_checks.to_array(x, name), name, err)
        raise


def _refuse_positive(arr: jax.Array, name: str, err: Exception | None) -> None:
    if _checks.is_traced(arr):
        return
    v = np.asarray(arr, dtype=np.float64)
    if not np.any(v > _checks.NORMALIZATION_ATOL):
        return
    if np.all((v >= 0) & (v <= 1)):
        raise ValueError(
            f"`{name}` holds values in [0, 1] ({_checks._describe(arr)}) that look like "
            f"probabilities; pass log-probabilities instead: `jnp.log({name})`."
        ) from err
    raise ValueError(
        f"`{name}` contains {float(np.max(v)):.6g} > 0, but a log-probability is at most 0; "
        "pass log-probabilities (e.g. `jnp.log(q)`, or `freeenergy.normalize(logits)`)."
    ) from err


def kl_estimate(logq_y: Any, logp0_y: Any, kind: str = "k3") -> jax.Array:
    r"""Per-sample KL estimator values from the log-probabilities of sampled behaviors.

    ``logq_y`` and ``logp0_y`` are $\log q(y_i)$ and $\log p_0(y_i)$ at draws $y_i \sim q$
    (same shape; they broadcast). ``kind`` is ``"k1"`` ($-\ell$), ``"k2"`` ($\ell^2/2$) or
    ``"k3"`` ($e^\ell - 1 - \ell$), with $\ell = \log p_0(y) - \log q(y)$. Average them to estimate
    $\mathrm{KL}(q\|p_0)$ (nats). The result has the broadcast shape of the inputs; ``k1`` is
    unbiased but can be negative, ``k2`` is biased, ``k3`` is unbiased and non-negative.
    Entries above 0 (beyond ``1e-4`` of rounding) are refused: a log-probability is at
    most 0, and values in ``[0, 1]`` are probabilities passed by mistake.

    >>> import jax.numpy as jnp
    >>> round(float(kl_estimate(jnp.log(0.5), jnp.log(0.25), "k3")), 6)  # e^-ln2 - 1 + ln 2
    0.193147
    """
    kind = _check_kind(kind)
    logq_y = _log_probabilities(logq_y, "logq_y", normalized=False)
    logp0_y = _log_probabilities(logp0_y, "logp0_y", normalized=False)
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


def _signed_sum(logq: jax.Array, x: jax.Array, where: jax.Array) -> jax.Array:
    r"""$\sum_y q(y)\,x(y)$ over ``where`` (last axis), each term as
    $\mathrm{sign}(x)\,e^{\log q + \log|x|}$: a probability that underflows never meets a
    value that overflows (no ``0 · inf``), so a term is 0, finite or ``+inf``, never NaN."""
    lq = jnp.where(where, logq, -jnp.inf)
    ax = jnp.abs(x)
    log_abs = jnp.log(jnp.where(where & (ax > 0), ax, 1.0))
    log_abs = jnp.where(where & (ax > 0), log_abs, -jnp.inf)
    return jnp.sum(jnp.sign(x) * jnp.exp(lq + log_abs), axis=-1)


def _log_abs_k3_deviation(log_ratio: jax.Array, mean: jax.Array) -> jax.Array:
    r"""$\log|k_3 - m|$ with $k_3 = e^{\ell} - 1 - \ell$, without overflow.

    Write $k_3 - m = e^{\ell} - c$ with $c = 1 + \ell + m$. Where $e^{\ell}$ dominates
    ($\ell > \log c + 2$) the logarithm is $\ell + \mathrm{log1p}(-c\,e^{-\ell})$; elsewhere
    $\ell$ is at most a few units above $\log c$, so $e^{\ell}$ is representable and the
    deviation is formed directly.
    """
    c = 1.0 + log_ratio + mean
    big = log_ratio > jnp.log(jnp.maximum(c, 1.0)) + 2.0
    ell_big = jnp.where(big, log_ratio, 0.0)
    log_big = ell_big + jnp.log1p(-jnp.where(big, c, 0.0) * jnp.exp(-ell_big))
    ell_small = jnp.where(big, 0.0, log_ratio)
    d = jnp.abs(jnp.expm1(ell_small) - ell_small - mean)
    log_small = jnp.where(d > 0, jnp.log(jnp.where(d > 0, d, 1.0)), -jnp.inf)
    return jnp.where(big, log_big, log_small)


@jax.jit
def _stats(logq: jax.Array, logp0: jax.Array) -> KLEstimatorStats:
    """Moments by enumeration, every term in log space (see ``kl_estimator_stats``)."""
    q_pos = logq > -jnp.inf
    singular = jnp.any(q_pos & (logp0 == -jnp.inf), axis=-1)
    both = q_pos & (logp0 > -jnp.inf)
    lr = jnp.where(both, logp0, 0.0) - jnp.where(both, logq, 0.0)  # log p0/q on supp q ∩ supp p0
    # Means: E k1 = -E l, E k2 = E l^2/2, and E k3 = sum_{supp q}(p0 - q) - E l, because
    # q (e^l - 1) = p0 - q term by term (no e^l is ever formed).
    mean1 = -_signed_sum(logq, lr, both)
    mean2 = _signed_sum(logq, 0.5 * jnp.square(lr), both)
    p0 = jnp.exp(jnp.where(both, logp0, -jnp.inf))
    q = jnp.exp(jnp.where(both, logq, -jnp.inf))
    missed = jnp.sum(p0 - q, axis=-1)  # p0(supp q) - q(supp q): the bias of k3
    mean3 = missed + mean1
    # Variances sum_y q (k - m)^2, each term exp(log q + 2 log|k - m|).
    var1 = _signed_sum(logq, jnp.square(-lr - mean1[..., None]), both)
    var2 = _signed_sum(logq, jnp.square(0.5 * jnp.square(lr) - mean2[..., None]), both)
    log_dev3 = _log_abs_k3_deviation(lr, mean3[..., None])
    var3 = jnp.sum(jnp.exp(jnp.where(both, logq + 2.0 * log_dev3, -jnp.inf)), axis=-1)
    mean = jnp.stack([mean1, mean2, mean3], axis=-1)
    var = jnp.stack([var1, var2, var3], axis=-1)
    kl = mean1
    bias = jnp.stack([jnp.zeros_like(kl), mean2 - kl, missed], axis=-1)
    mean = jnp.where(singular[..., None], jnp.inf, mean)
    var = jnp.where(singular[..., None], jnp.inf, var)
    kl = jnp.where(singular, jnp.inf, kl)
    bias = jnp.where(singular[..., None], 0.0, bias)
    return KLEstimatorStats(mean=mean, variance=var, bias=bias, kl=kl)


def kl_estimator_stats(logq: Any, logp0: Any) -> KLEstimatorStats:
    r"""Exact mean, variance and bias of ``k1``, ``k2``, ``k3`` under sampling from ``q``.

    Computed by enumeration over the behaviors (no Monte Carlo):
    $\mathbb{E}_q[k] = \sum_y q(y)\,k(y)$,
    $\mathrm{Var}_q[k] = \sum_y q(y)\,(k(y) - \mathbb{E}_q k)^2$ and the bias
    $\mathbb{E}_q[k] - \mathrm{KL}(q\|p_0)$ (per sample; an average of ``m`` draws has the same bias
    and ``1/m`` of the variance). When ``q`` has mass outside ``supp(p0)`` the KL and
    every mean and variance are ``+inf`` and the bias is reported as 0.

    ``logq`` and ``logp0`` are ``(..., n)`` normalized log-probabilities (probabilities are
    refused with a hint to take their log). Every term is formed in log space —
    $q\,(e^{\ell}-1) = p_0 - q$ for the mean of ``k3``, $e^{\log q + 2\log|k - m|}$ for the
    variances — so a probability that underflows (``logq`` down to -1e4) never meets an
    $e^{\ell}$ that overflows: no term is NaN, and a variance beyond the float range is ``+inf``.

    ``mean``, ``variance`` and ``bias`` are ``(..., 3)``, ``kl`` is ``(...)`` (nats; variances in
    nats²).

    >>> import jax.numpy as jnp
    >>> s = kl_estimator_stats(jnp.log(jnp.array([0.5, 0.5])), jnp.log(jnp.array([0.25, 0.75])))
    >>> round(float(s.kl), 4)  # 0.5 log 2 + 0.5 log(2/3)
    0.1438
    >>> [round(float(x), 4) for x in s.bias]  # k1, k3 unbiased; k2 is not
    [0.0, 0.0174, 0.0]
    >>> stats = kl_estimator_stats(jnp.array([0.0, -1e4]), jnp.log(jnp.array([0.5, 0.5])))
    >>> [round(float(m), 6) for m in stats.mean], float(stats.variance[2])  # k3 unbiased
    ([0.693147, 0.240227, 0.693147], inf)
    """
    logq = _log_probabilities(logq, "logq", normalized=True)
    logp0 = _log_probabilities(logp0, "logp0", normalized=True)
    _checks.same_last_axis("logq", logq, "logp0", logp0)
    dtype = _checks._float_dtype(logq, logp0)
    shape = jnp.broadcast_shapes(logq.shape, logp0.shape)
    return _stats(
        jnp.broadcast_to(logq.astype(dtype), shape), jnp.broadcast_to(logp0.astype(dtype), shape)
    )
