r"""Search with a verifier on a flat behavior space: best-of-n, exactly.

**Best-of-n.** Draw ``n`` behaviors i.i.d. from the reference ``p0``, score each with the reward
(the verifier), output the one with the highest reward. Its output distribution is exact and
closed-form. Sort the distinct reward levels ``v`` and write

* $P_<(v) = p_0(r < v)$, $P_\le(v) = p_0(r \le v)$, $p_0(v) = P_\le(v) - P_<(v)$;
* the best of ``n`` draws has level ``v`` with probability $P_\le(v)^n - P_<(v)^n$;
* within a level the output is distributed as $p_0(\cdot \mid v)$ ("ties split in proportion
  to $p_0$"), so

$$q_n(y) = p_0(y)\,\frac{P_\le(v)^n - P_<(v)^n}{P_\le(v) - P_<(v)},\qquad v = r(y).$$

This is exactly what a real implementation samples when it keeps the **first** draw attaining
the maximum (``argmax``), or a **uniformly random** draw among those attaining it: by
exchangeability, the identity of any draw given its level is $p_0(\cdot\mid v)$, independently
of which positions attain the maximum. It is *not* the rule "choose among the distinct tied
behaviors that were drawn, with probability proportional to $p_0$" (that rule favours likely
behaviors twice: with $p_0 = (0.9, 0.1)$, equal rewards and $n = 2$ it outputs the first behavior
with probability $0.972 \ne 0.9$).

**Best-of-n is a tilt** (docs/theory.md T12): $q_n / p_0$ depends on $y$ only through its reward
level and is non-decreasing in it, so $q_n$ is the Gibbs tilt of $p_0$ at $\beta = 1$ with energy
$U(y) = -\log\frac{P_\le^n - P_<^n}{P_\le - P_<}$. It never leaves $\mathrm{supp}(p_0)$, and (for
finite ``n``) it keeps all of it. For a binary reward it is the tilt $q \propto
p_0\,e^{r/\beta}$ that moves the success mass from $p$ to $1 - (1-p)^n$
(``best_of_n_temperature`` gives that $\beta$).

Every search reports its compute as a ``SearchCost`` (behaviors sampled from the generator,
verifier/reward calls).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks
from ..distributions import _kl, _normalize
from ..support import _log1mexp, _log_set_mass

#: Largest number of draws a sampler holds in memory (n * num_samples * rows).
_MAX_DRAWS = 2**26
_WHY_DRAWS = "every draw is held in memory with its reward, 16 bytes each"

__all__ = [
    "SearchCost",
    "best_of_n",
    "best_of_n_cost",
    "best_of_n_kl",
    "best_of_n_kl_bound",
    "best_of_n_temperature",
    "sample_best_of_n",
    "win_rate",
]


class SearchCost(NamedTuple):
    """The compute a search spends, per output (arrays broadcast like the search's batch).

    * ``samples`` — behaviors drawn from the generator;
    * ``verifier_calls`` — evaluations of the reward / verifier.
    """

    samples: jax.Array
    verifier_calls: jax.Array


# ----------------------------------------------------------------------------- kernels (no checks)
def _levels(reward: jax.Array, *payload: jax.Array):
    """Sort one row by reward (stable) and label its distinct levels.

    Returns ``(order, level, *payload_sorted)``: ``reward[order]`` is ascending, ``level[i]`` is
    the index (0, 1, ...) of the distinct reward value at sorted position ``i`` (``-inf`` is a
    level like any other, the lowest), and each payload array is permuted along (gathered: on
    CPU that is cheaper than carrying it through the sort).
    """
    m = reward.shape[-1]
    r_sorted, order = jax.lax.sort((reward, jnp.arange(m)), num_keys=1, is_stable=True)
    new = jnp.concatenate([jnp.ones((1,), bool), r_sorted[1:] != r_sorted[:-1]])
    return (order, jnp.cumsum(new) - 1, *(x[order] for x in payload))


def _segment_logsumexp(values: jax.Array, segments: jax.Array, num_segments: int) -> jax.Array:
    """log Σ exp(values) per segment; ``-inf`` for empty or all-``-inf`` segments, never NaN."""
    peak = jax.ops.segment_max(values, segments, num_segments, indices_are_sorted=True)
    safe = jnp.where(jnp.isfinite(peak), peak, 0.0)
    total = jax.ops.segment_sum(
        jnp.exp(values - safe[segments]), segments, num_segments, indices_are_sorted=True
    )
    return jnp.where(total > 0, safe + jnp.log(jnp.where(total > 0, total, 1.0)), -jnp.inf)


def _log_cumulative(log_level: jax.Array, precise: bool):
    """(log P_<=, log P_>) per level, and whether the fast path underflowed.

    Fast path: cumulative sums of ``exp(log_level - max)`` (one shift for the row). It is exact
    to rounding unless a prefix, relative to the largest level, comes within a factor ``1/eps``
    of the subnormal range (below ~1e-292 in float64, ~1e-31 in float32), which it flags; the
    precise path uses ``lax.cumlogsumexp`` (an associative scan, slower).
    ``log P_>`` may underflow harmlessly: it is only used through ``log(1 - P_>)``.
    """
    if precise:
        below = jax.lax.cumlogsumexp(log_level)
        above_incl = jax.lax.cumlogsumexp(log_level, reverse=True)
        flag = jnp.zeros((), bool)
    else:
        peak = jnp.max(log_level)
        w = jnp.exp(log_level - peak)
        c_below = jnp.cumsum(w)
        c_above = jnp.cumsum(w[::-1])[::-1]
        below = jnp.log(c_below) + peak
        above_incl = jnp.log(c_above) + peak
        info = jnp.finfo(log_level.dtype)
        flag = jnp.any((log_level > -jnp.inf) & (c_below < info.tiny / info.eps))
    above = jnp.concatenate([above_incl[1:], jnp.full((1,), -jnp.inf, log_level.dtype)])
    return below, above, flag


def _log_one_minus_power(log_x: jax.Array, n: jax.Array) -> jax.Array:
    """log(1 - (1 - x)^n) for x = exp(log_x) in (0, 1] and n >= 1, never -inf for x > 0.

    With t = -n log(1 - x) it is log(1 - e^{-t}) = log(-expm1(-t)). Both steps are taken from
    logarithms: log(-log(1 - x)) is log x + x/2 (to O(x^2)) when x < 1e-13, where log1p(-x)
    would round to 0 (a level of mass e^-1000 next to one of mass 1), and
    log(1 - e^{-t}) is log t - t/2 when t < 1e-13; so n = 1 returns log x and every level of
    positive mass keeps positive probability at every n.
    """
    tiny = log_x < -30.0
    x = jnp.exp(jnp.where(tiny, log_x, -30.0))
    big_x = jnp.exp(jnp.where(tiny, -1.0, log_x))
    log_neg_log1m = jnp.where(
        tiny, log_x + 0.5 * x, jnp.log(-jnp.log1p(-jnp.where(tiny, 0.5, big_x)))
    )
    log_t = jnp.log(n) + log_neg_log1m
    small_t = log_t < -30.0
    t_small = jnp.exp(jnp.where(small_t, log_t, -30.0))
    t_big = jnp.exp(jnp.where(small_t, 0.0, log_t))
    return jnp.where(small_t, log_t - 0.5 * t_small, jnp.log(-jnp.expm1(-t_big)))


def _best_of_n_row(logp0: jax.Array, reward: jax.Array, n: jax.Array, precise: bool = False):
    """Exact best-of-n for one row (``logp0`` normalized, ``n`` a scalar): ``(logq, flag)``."""
    m = logp0.shape[-1]
    order, level, lp = _levels(reward, logp0)
    log_level = _segment_logsumexp(lp, level, m)  # log p0(v), per level index
    below, above, flag = _log_cumulative(log_level, precise)
    # log P_<=(v): accumulated from below, or as 1 - P_>(v) from above when P_> < 1/2
    # (the complement is then the accurate side).
    log_le = jnp.where(above < -jnp.log(2.0), _log1mexp(jnp.minimum(above, 0.0)), below)
    has = log_level > -jnp.inf
    # d = log(P_< / P_<=) = log(1 - p0(v) / P_<=(v)), accurate even when p0(v) << P_<=(v).
    ratio = jnp.where(has, jnp.minimum(log_level - jnp.where(has, log_le, 0.0), 0.0), -1.0)
    log_best = jnp.where(has, n * log_le + _log_one_minus_power(ratio, n), -jnp.inf)
    weight = jnp.where(has, log_best - jnp.where(has, log_level, 0.0), 0.0)  # log q/p0 on v
    logq_sorted = jnp.where(lp > -jnp.inf, lp + weight[level], -jnp.inf)
    return jnp.zeros_like(logq_sorted).at[order].set(logq_sorted), flag


def _rows(logp0, reward, n):
    m = logp0.shape[-1]
    return _normalize(logp0).reshape(-1, m), reward.reshape(-1, m), n.reshape(-1)


@jax.jit
def _best_of_n_fast(logp0, reward, n):
    """The fast path on every row: ``(logq, any row flagged)``."""
    logq, flags = jax.vmap(_best_of_n_row)(*_rows(logp0, reward, n))
    return logq.reshape(logp0.shape), jnp.any(flags)


@jax.jit
def _best_of_n_precise(logp0, reward, n):
    """The exact cumulative-logsumexp path on every row."""
    logq, _ = jax.vmap(partial(_best_of_n_row, precise=True))(*_rows(logp0, reward, n))
    return logq.reshape(logp0.shape)


def _best_of_n(logp0: jax.Array, reward: jax.Array, n: jax.Array) -> jax.Array:
    """Batched kernel: ``logp0``, ``reward`` of one shape ``(..., m)``, ``n`` of shape ``(...)``.

    Runs the fast path and, only if some row flagged an underflowing prefix sum, redoes the batch
    on the exact path. On concrete arrays the choice is made in Python (so the exact path is
    compiled only when needed); under tracing by ``lax.cond`` (one branch executes).
    """
    logq, flagged = _best_of_n_fast(logp0, reward, n)
    if _checks.is_traced(logq):
        return jax.lax.cond(flagged, lambda: _best_of_n_precise(logp0, reward, n), lambda: logq)
    return _best_of_n_precise(logp0, reward, n) if bool(flagged) else logq


@jax.jit
def _kl_to_base(logq, logp0):
    return _kl(logq, _normalize(logp0))


def _win_rate_row(logq: jax.Array, logp: jax.Array, reward: jax.Array) -> jax.Array:
    m = logq.shape[-1]
    _, level, lq, lp = _levels(reward, logq, logp)
    q_level = jax.ops.segment_sum(jnp.exp(lq), level, m, indices_are_sorted=True)
    p_level = jax.ops.segment_sum(jnp.exp(lp), level, m, indices_are_sorted=True)
    p_below = jnp.cumsum(p_level) - p_level
    return jnp.sum(q_level * (p_below + 0.5 * p_level))


@jax.jit
def _win_rate(logq, logp, reward):
    m = logq.shape[-1]
    batch = logq.shape[:-1]
    out = jax.vmap(_win_rate_row)(logq.reshape(-1, m), logp.reshape(-1, m), reward.reshape(-1, m))
    return out.reshape(batch)


@jax.jit
def _binary_inverse_temperature(logp0, correct, n):
    """λ = log[(1 − (1−p)^n) / (p (1−p)^(n−1))] = log Σ_{i<n} (1−p)^(−i); 0 when trivial.

    Success and failure masses are summed separately (each accurate on its own side).
    """
    log_success = _log_set_mass(logp0, correct)
    log_fail = _log_set_mass(logp0, ~correct)
    trivial = (log_success == -jnp.inf) | (log_fail == -jnp.inf) | (n == 1)
    ls = jnp.where(trivial, -1.0, log_success)
    lf = jnp.where(trivial, -1.0, log_fail)
    lam = _log1mexp(jnp.minimum(n * lf, 0.0)) - ls - (n - 1.0) * lf
    return jnp.where(trivial, 0.0, lam)


# ----------------------------------------------------------------------------- validation
def _prepare(logp0: Any, reward: Any, n: Any, *, reward_name: str = "reward"):
    """Validate (logp0, reward, n); return them broadcast to ``(..., m)`` and ``(...)``."""
    logp0 = _checks.logp(logp0, "logp0")
    reward = _checks.energy(reward, reward_name, sign=-1)
    if reward.ndim == 0:
        raise ValueError(
            f"`{reward_name}` must have one value per behavior (last axis), got a scalar; "
            f"pass an array of shape {tuple(logp0.shape[-1:])}."
        )
    shape = _checks.same_last_axis("logp0", logp0, reward_name, reward)
    n = _checks.at_least_one(n, "n", integer=True)
    batch = _checks.against_batch("n", n, shape[:-1])
    dtype = _checks._float_dtype(logp0, reward)
    full = (*batch, shape[-1])
    return (
        jnp.broadcast_to(logp0.astype(dtype), full),
        jnp.broadcast_to(reward.astype(dtype), full),
        jnp.broadcast_to(n.astype(dtype), batch),
    )


def _mask_as_reward(correct: Any) -> jax.Array:
    return jnp.where(_checks.mask(correct, "correct"), 1.0, 0.0)


# ----------------------------------------------------------------------------- public API
def best_of_n(logp0: Any, reward: Any, n: Any) -> jax.Array:
    r"""Exact output distribution of best-of-``n`` sampling with a verifier, as log-probabilities.

    Draw ``n`` behaviors i.i.d. from ``p0``, keep the one with the highest ``reward`` (ties split
    in proportion to ``p0``: the first, or a uniformly random, draw attaining the maximum):

    $$q_n(y) = p_0(y)\,\frac{P_\le(v)^n - P_<(v)^n}{P_\le(v) - P_<(v)},\quad v = r(y),$$

    with $P_\le(v) = p_0(r \le v)$ and $P_<(v) = p_0(r < v)$. Computed in log space by one sort:
    $\log(P_\le^n - P_<^n) = n\log P_\le + \operatorname{log1mexp}(n\,d)$ with
    $d = \log(P_</P_\le) = \log(1 - p_0(v)/P_\le)$ taken from the level mass itself, so a rare
    level next to a large one keeps full relative precision. $O(m \log m)$ per row for ``m``
    behaviors; independent of ``n`` (which may be huge).

    * ``logp0``: normalized log-probabilities ``(..., m)`` (renormalized internally to rounding).
    * ``reward``: one value per behavior, broadcasting against ``logp0``; ``-inf`` is legal (the
      worst level, e.g. "rejected by the verifier"), ``+inf`` and NaN are not.
    * ``n``: whole number(s) >= 1, broadcasting against the batch shape: with a ``(m,)`` base,
      ``n = jnp.arange(1, 101)`` returns the ``(100, m)`` family.

    Never leaves ``supp(p0)``, and keeps all of it (docs/theory.md T12). ``n = 1`` returns ``p0``.
    The cost of one output is ``best_of_n_cost(n)``.

    >>> import jax.numpy as jnp
    >>> q = best_of_n(jnp.log(jnp.array([0.5, 0.5])), jnp.array([0.0, 1.0]), 2)
    >>> jnp.exp(q).round(6).tolist()  # the better one wins unless both draws are the worse
    [0.25, 0.75]
    """
    logp0, reward, n = _prepare(logp0, reward, n)
    return _best_of_n(logp0, reward, n)


def best_of_n_cost(n: Any) -> SearchCost:
    """Compute of one best-of-``n`` output: ``n`` samples drawn and ``n`` verifier calls.

    >>> cost = best_of_n_cost(8)
    >>> int(cost.samples), int(cost.verifier_calls)
    (8, 8)
    """
    n = _checks.at_least_one(n, "n", integer=True)
    dtype = jnp.result_type(int)
    top = np.iinfo(dtype).max
    values = np.asarray(n)
    if np.any(values > top):
        raise ValueError(
            f"`n` = {values.max():.6g} is too large: the counts are {np.dtype(dtype).name}, at "
            f"most {top:,} (more samples than that are not drawn in practice)."
        )
    n = jnp.asarray(values, dtype=dtype)
    return SearchCost(samples=n, verifier_calls=n)


def best_of_n_kl(logp0: Any, reward: Any, n: Any) -> jax.Array:
    r"""Exact $\mathrm{KL}(q_n\|p_0)$ of the best-of-``n`` distribution (nats).

    It depends only on the masses of the reward levels (within a level $q_n/p_0$ is constant):
    $\mathrm{KL} = \sum_v w_v \log\frac{w_v}{p_0(v)}$, $w_v = P_\le(v)^n - P_<(v)^n$.

    **Against the common formula** $\log n - (n-1)/n$ (``best_of_n_kl_bound``; Beirami et al.
    2024 show it is only an upper bound): for every reference, reward and ``n``,

    $$\mathrm{KL}(q_n\|p_0) \le \log n - \frac{n-1}{n},$$

    with equality at ``n = 1`` (both zero) and **strict inequality for every** ``n >= 2`` on a
    finite space. Reason: with $u \sim \mathrm{Uniform}(0,1)$ mapped to levels by the quantile
    function of $p_0$, best-of-``n`` is the image of $\max(u_1..u_n)$ (density $n u^{n-1}$, whose
    KL to the uniform is exactly the formula); mapping to levels can only lose KL (data
    processing), and loses some unless $n u^{n-1}$ were constant on each level's interval. The
    gap closes only as the largest level mass goes to zero (many distinct rewards, none likely).
    With a binary reward of success mass $p$ the exact value is the Bernoulli divergence
    $\mathrm{KL}(1-(1-p)^n \,\|\, p) \le -\log p$, bounded in ``n`` while the formula grows.

    >>> import jax.numpy as jnp
    >>> round(float(best_of_n_kl(jnp.log(jnp.array([0.5, 0.5])), jnp.array([0.0, 1.0]), 2)), 6)
    0.130812
    """
    logp0, reward, n = _prepare(logp0, reward, n)
    return _kl_to_base(_best_of_n(logp0, reward, n), logp0)


def best_of_n_kl_bound(n: Any) -> jax.Array:
    r"""The common best-of-``n`` KL formula $\log n - (n-1)/n$: an upper bound, never attained for
    ``n >= 2`` on a finite space (see ``best_of_n_kl``).

    >>> round(float(best_of_n_kl_bound(2)), 6)
    0.193147
    """
    n = _checks.at_least_one(n, "n", integer=True)
    n = n.astype(_checks._float_dtype(n))
    return jnp.log(n) - (n - 1.0) / n


def best_of_n_temperature(logp0: Any, correct: Any, n: Any) -> jax.Array:
    r"""The temperature at which the RL tilt equals best-of-``n`` for a binary reward (T12).

    With reward $r = \mathbb{1}[y \in \mathcal{C}]$ and success mass $p = p_0(\mathcal{C})$,
    best-of-``n`` with the verifier is the tilt $q \propto p_0\,e^{r/\beta}$ that moves the
    success mass from $p$ to $1 - (1-p)^n$:

    $$\frac1\beta = \operatorname{logit}\bigl(1-(1-p)^n\bigr) - \operatorname{logit}(p)
      = \log\frac{1-(1-p)^n}{p\,(1-p)^{n-1}} = \log\sum_{i=0}^{n-1}(1-p)^{-i} \;\ge 0,$$

    so ``gibbs(logp0, -correct, beta)`` equals ``best_of_n(logp0, correct, n)``. Returns ``inf``
    (no tilt: best-of-``n`` is ``p0`` itself) when ``n = 1`` or when $p \in \{0, 1\}$.

    ``correct`` is a boolean mask over the behaviors; ``n`` broadcasts against the batch shape.

    >>> import jax.numpy as jnp
    >>> beta = best_of_n_temperature(jnp.log(jnp.array([0.5, 0.5])), jnp.array([False, True]), 2)
    >>> round(float(beta), 6)  # 1 / log 3
    0.910239
    """
    logp0, reward, n = _prepare(logp0, _mask_as_reward(correct), n, reward_name="correct")
    lam = _binary_inverse_temperature(_normalize(logp0), reward > 0, n)
    return jnp.where(lam > 0, 1.0 / jnp.where(lam > 0, lam, 1.0), jnp.inf)


def win_rate(logq: Any, logp: Any, reward: Any) -> jax.Array:
    r"""Probability that a sample of ``q`` beats an independent sample of ``p``, ties counting half.

    $\Pr_{y\sim q,\,y'\sim p}[r(y) > r(y')] + \tfrac12\Pr[r(y) = r(y')]$, exact, by one sort of
    the reward levels. ``win_rate(p, p, r) = 1/2``. For best-of-``n`` against its own base with
    all rewards distinct and every behavior rare it tends to $n/(n+1)$; ties pull it towards 1/2.
    ``-inf`` rewards are the lowest level (two of them tie). ``logq``, ``logp`` and ``reward``
    are ``(..., n)`` and broadcast; the result is a probability of shape ``(...)``.

    >>> import jax.numpy as jnp
    >>> logp, reward = jnp.log(jnp.array([0.5, 0.5])), jnp.array([0.0, 1.0])
    >>> round(float(win_rate(logp, logp, reward)), 6)
    0.5
    >>> round(float(win_rate(best_of_n(logp, reward, 2), logp, reward)), 6)  # 3/8 + 1/2 * 1/2
    0.625
    """
    logq = _checks.logp(logq, "logq")
    logp = _checks.logp(logp, "logp")
    reward = _checks.energy(reward, "reward", sign=-1)
    if reward.ndim == 0:
        raise ValueError("`reward` must have one value per behavior (last axis), got a scalar.")
    _checks.same_last_axis("logq", logq, "logp", logp)
    shape = _checks.same_last_axis("logq", logq, "reward", reward)
    shape = tuple(jnp.broadcast_shapes(shape, logp.shape))
    dtype = _checks._float_dtype(logq, logp, reward)
    return _win_rate(*(jnp.broadcast_to(a.astype(dtype), shape) for a in (logq, logp, reward)))


@partial(jax.jit, static_argnames=("n", "num_samples"))
def _sample_best_of_n(key, logp0, reward, n, num_samples):
    batch = logp0.shape[:-1]
    draws = jax.random.categorical(key, logp0, axis=-1, shape=(num_samples, n, *batch))
    draws = jnp.moveaxis(draws, (0, 1), (-2, -1))  # (..., num_samples, n)
    scores = jnp.take_along_axis(reward[..., None, :], draws, axis=-1)
    first_best = jnp.argmax(scores, axis=-1)  # first draw attaining the maximum
    return jnp.take_along_axis(draws, first_best[..., None], axis=-1)[..., 0]


def sample_best_of_n(
    key: jax.Array, logp0: Any, reward: Any, n: int, num_samples: int
) -> tuple[jax.Array, SearchCost]:
    """Run best-of-``n`` ``num_samples`` times: returns ``(behaviors, cost)``.

    Each output draws ``n`` behaviors i.i.d. from ``p0`` and keeps the **first** one attaining the
    highest reward (ties therefore split in proportion to ``p0``; its exact distribution is
    ``best_of_n``). ``behaviors`` has shape ``(*batch, num_samples)``; ``cost`` is the total
    ``SearchCost`` (``n * num_samples`` samples and verifier calls per row). ``logp0`` and
    ``reward`` are ``(..., n_behaviors)``; ``key`` is a ``jax.random.key``.

    >>> import jax, jax.numpy as jnp
    >>> logp0, reward = jnp.log(jnp.array([0.5, 0.5])), jnp.array([0.0, 1.0])
    >>> y, cost = sample_best_of_n(jax.random.key(0), logp0, reward, 4, 1000)
    >>> y.shape, int(cost.samples), int(cost.verifier_calls)
    ((1000,), 4000, 4000)
    >>> bool(abs(float(y.mean()) - 15 / 16) < 0.03)  # best-of-4 misses with prob 1/16
    True
    """
    key = _checks.key(key)
    n = _checks.integer(n, "n", minimum=1, maximum=_MAX_DRAWS, why=_WHY_DRAWS)
    num_samples = _checks.integer(
        num_samples, "num_samples", minimum=1, maximum=_MAX_DRAWS, why=_WHY_DRAWS
    )
    logp0, reward, _ = _prepare(logp0, reward, n)
    rows = math.prod(logp0.shape[:-1])
    if n * num_samples * rows > _MAX_DRAWS:
        raise ValueError(
            f"n * num_samples * rows = {n} * {num_samples} * {rows} = {n * num_samples * rows:,} "
            f"draws, above {_MAX_DRAWS:,} ({_WHY_DRAWS}); use fewer samples, or the exact "
            "`best_of_n` distribution."
        )
    total = jnp.asarray(n * num_samples)
    return _sample_best_of_n(key, logp0, reward, n, num_samples), SearchCost(total, total)
