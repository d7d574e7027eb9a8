"""Distributions over a flat behavior space, stored as log-probabilities.

A model is an array ``logp`` of shape ``(..., n)``: the last axis holds the ``n`` behaviors, any
leading axes batch (prompts, seeds, temperatures). ``-inf`` is zero mass. Natural logarithms.
The ``0 * log 0 = 0`` rule is applied with the double-``where`` trick so values and gradients stay
finite at ``-inf``.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp

from . import _checks

__all__ = ["normalize", "kl", "entropy", "sample", "decode"]


# ----------------------------------------------------------------------------- kernels (no checks)
def _normalize(logits: jax.Array) -> jax.Array:
    """logits - logsumexp(logits), computed as (logits - max) - log(sum(exp(logits - max))).

    Subtracting the maximum first keeps huge logits exact: ``[1e308, 1e308]`` gives
    ``[-log 2, -log 2]``, where ``logits - (max + log 2)`` would round ``max + log 2`` back to
    ``max`` and return two log-probabilities of 0.
    """
    top = jnp.max(logits, axis=-1, keepdims=True)
    top = jax.lax.stop_gradient(jnp.where(jnp.isfinite(top), top, 0.0))
    shifted = logits - top
    return shifted - jnp.log(jnp.sum(jnp.exp(shifted), axis=-1, keepdims=True))


def _kl(logq: jax.Array, logp: jax.Array) -> jax.Array:
    """KL(q||p) as the sum of the non-negative terms q log(q/p) - q + p; +inf where q > 0 = p.

    On normalized q and p the extra terms sum to zero (sum q = sum p = 1), so this is
    sum_y q(y) (log q(y) - log p(y)); unlike that sum, every term is >= 0 (x log(x/y) - x + y >= 0
    for x, y >= 0), so the result is >= 0 by construction. A term computed below zero is rounding
    of a term whose exact value is in [0, eps * p(y)]; it counts as 0. Behaviors with q(y) = 0
    contribute p(y). ``q(y) > 0`` is read from ``logq > -inf``, not from ``exp(logq) > 0``: a
    behavior with ``logq = -1e4`` (mass that underflows) where ``p(y) = 0`` still makes the KL
    ``+inf``.
    """
    pos = logq > -jnp.inf
    singular = pos & (logp == -jnp.inf)
    ok = pos & ~singular
    safe_logq = jnp.where(ok, logq, 0.0)
    safe_logp = jnp.where(ok, logp, 0.0)
    q = jnp.exp(safe_logq)
    p = jnp.exp(safe_logp)
    inside = jnp.maximum(q * (safe_logq - safe_logp) - q + p, 0.0)
    outside = jnp.exp(jnp.where(pos, -jnp.inf, logp))  # q(y) = 0: the term is p(y)
    terms = jnp.where(ok, inside, outside)
    return jnp.where(jnp.any(singular, axis=-1), jnp.inf, jnp.sum(terms, axis=-1))


def _entropy(logp: jax.Array) -> jax.Array:
    pos = logp > -jnp.inf
    safe = jnp.where(pos, logp, 0.0)
    return -jnp.sum(jnp.where(pos, jnp.exp(safe) * safe, 0.0), axis=-1)


def _expect(logq: jax.Array, values: jax.Array) -> jax.Array:
    """E_q[values] with 0 * (+-inf) = 0 where q(y) = 0.

    An infinite value where ``q(y) > 0`` (``logq > -inf``, even if ``exp(logq)`` underflows)
    makes the expectation that infinity. ``values`` must not hold both ``+inf`` and ``-inf`` on
    the support of ``q``.
    """
    pos = logq > -jnp.inf
    infinite = pos & jnp.isinf(values)
    ok = pos & ~infinite
    safe_v = jnp.where(ok, values, 0.0)
    finite_part = jnp.sum(jnp.where(ok, jnp.exp(jnp.where(ok, logq, 0.0)) * safe_v, 0.0), axis=-1)
    inf_part = jnp.sum(jnp.where(infinite, values, 0.0), axis=-1)
    return jnp.where(jnp.any(infinite, axis=-1), inf_part, finite_part)


def _top_mass_mask(logp: jax.Array, mass: float | jax.Array) -> jax.Array:
    """The smallest set of most-probable behaviors holding at least ``mass`` of a distribution.

    Behaviors are ranked by probability, ties by index (stable sort); behavior ``y`` is in the
    set when the mass ranked strictly before it is below ``mass``. Zero-mass behaviors are never in
    it. ``logp`` needs to be normalized.
    """
    order = jnp.argsort(-logp, axis=-1, stable=True)
    sorted_p = jnp.exp(jnp.take_along_axis(logp, order, axis=-1))
    # the exclusive prefix sums (no subtraction: a mass that reaches ``mass`` exactly stays equal)
    total = jnp.cumsum(sorted_p, axis=-1)
    before = jnp.concatenate([jnp.zeros_like(total[..., :1]), total[..., :-1]], axis=-1)
    keep_sorted = (before < mass) & (sorted_p > 0)
    inverse = jnp.argsort(order, axis=-1)
    return jnp.take_along_axis(keep_sorted, inverse, axis=-1)


def _kl_fast(logq: jax.Array, logp: jax.Array) -> jax.Array:
    """``_kl`` with no per-entry select (XLA vectorizes it several times better): the same terms
    without the zero-mass conventions, correct whenever no log-probability is infinite, and
    otherwise NaN or infinite on that row, where the exact ``_kl`` is used instead."""
    q, p = jnp.exp(logq), jnp.exp(logp)
    div = jnp.sum(jnp.maximum(q * (logq - logp) - q + p, 0.0), axis=-1)
    return jax.lax.cond(jnp.all(jnp.isfinite(div)), lambda: div, lambda: _kl(logq, logp))


@jax.jit
def _kl_checked(logq: jax.Array, logp: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(KL, ok): ok when both arguments pass the value check of ``_checks.logp``."""
    return _kl_fast(logq, logp), _checks.mass_ok(logq) & _checks.mass_ok(logp)


_normalize_jit = jax.jit(_normalize)
_kl_jit = jax.jit(_kl_fast)
_entropy_jit = jax.jit(_entropy)


# ----------------------------------------------------------------------------- public API
def normalize(logits: Any) -> jax.Array:
    r"""Log-softmax over the last axis: $\log p_y = \ell_y - \log\sum_{y'} e^{\ell_{y'}}$.

    ``-inf`` logits stay ``-inf`` (zero mass). Every row needs at least one finite logit. The
    result has the shape ``(..., n)`` of the logits, log-probabilities in nats.

    >>> import jax.numpy as jnp
    >>> normalize(jnp.log(jnp.array([1.0, 3.0]))).tolist()  # doctest: +ELLIPSIS
    [-1.386..., -0.287...]
    """
    logits = _checks.logp(logits, "logits", normalized=False)
    return _normalize_jit(logits)


def kl(logq: Any, logp: Any) -> jax.Array:
    r"""Kullback–Leibler divergence $\mathrm{KL}(q\|p)=\sum_y q(y)\,[\log q(y)-\log p(y)]$ in nats.

    Reduces the last axis; leading axes broadcast. ``0·log 0 = 0``: behaviors with ``q(y) = 0``
    contribute nothing. Summed as $\sum_y [q\log(q/p) - q + p]$, whose terms are each
    $\ge 0$, so the result is $\ge 0$ by construction (equal to the KL on normalized inputs).
    The result is ``+inf`` when ``q`` puts mass where ``p`` has none (``q(y) > 0 = p(y)``).
    Both arguments must be normalized log-distributions.

    >>> import jax.numpy as jnp
    >>> float(kl(jnp.log(jnp.array([0.5, 0.5])), jnp.log(jnp.array([0.5, 0.5]))))
    0.0
    """
    logq = _checks.logp(logq, "logq", values=False)
    logp = _checks.logp(logp, "logp", values=False)
    _checks.same_last_axis("logq", logq, "logp", logp)
    dtype = _checks._float_dtype(logq, logp)
    logq, logp = logq.astype(dtype), logp.astype(dtype)
    if _checks.is_traced(logq, logp):
        return _kl_jit(logq, logp)
    value, ok = _kl_checked(logq, logp)
    if not bool(ok):  # name the problem (the host check is the authority at the boundary)
        _checks.logp(logq, "logq")
        _checks.logp(logp, "logp")
    return value


def entropy(logp: Any) -> jax.Array:
    r"""Shannon entropy $H(p) = -\sum_y p(y)\log p(y)$ in nats over the last axis (``0·log 0 = 0``).

    >>> import jax.numpy as jnp
    >>> round(float(entropy(jnp.log(jnp.array([0.25] * 4)))), 6)  # log 4
    1.386294
    """
    logp = _checks.logp(logp, "logp")
    return _entropy_jit(logp)


#: Most Gumbel noise values drawn at once by ``sample`` (its memory: 8 bytes each in float64).
_SAMPLE_CHUNK = 1 << 24
#: Largest number of draws ``sample`` returns in all (4 bytes each: 1 GiB).
MAX_DRAWS = 1 << 28
#: Largest number of Gumbel noise values ``sample`` draws in all (its time: one per behavior per
#: draw, about a minute at this many).
MAX_NOISE = 1 << 34


@partial(jax.jit, static_argnames=("num_samples", "chunk"))
def _sample(key: jax.Array, logp: jax.Array, num_samples: int, chunk: int) -> jax.Array:
    batch = logp.shape[:-1]
    if chunk >= num_samples:
        draws = jax.random.categorical(key, logp, axis=-1, shape=(num_samples, *batch))
    else:
        # A few draws at a time, so the (draws, *batch, n) noise never has to fit in memory.
        rounds = -(-num_samples // chunk)
        keys = jax.random.split(key, rounds)
        draws = jax.lax.map(
            lambda k: jax.random.categorical(k, logp, axis=-1, shape=(chunk, *batch)), keys
        )
        draws = draws.reshape(rounds * chunk, *batch)[:num_samples]
    return jnp.moveaxis(draws, 0, -1)


def sample(key: jax.Array, logp: Any, num_samples: int) -> jax.Array:
    """Draw ``num_samples`` i.i.d. behavior indices from each distribution in ``logp``.

    Returns an int array of shape ``(*logp.shape[:-1], num_samples)``. Deterministic given
    ``key`` (one ``jax.random.key``). Behaviors with ``-inf`` log-probability are never drawn.
    Exact (Gumbel-max): every draw takes one noise value per behavior, so ``num_samples`` is
    bounded by the memory of the draws (at most 2**28 in all) and by the time of the noise (at
    most 2**34 values, ``num_samples * logp.size``).

    >>> import jax, jax.numpy as jnp
    >>> sample(jax.random.key(0), jnp.log(jnp.array([0.0, 1.0])), 3).tolist()
    [1, 1, 1]
    """
    key = _checks.key(key)
    logp = _checks.logp(logp, "logp")
    rows = max(1, logp.size // logp.shape[-1])
    by_memory = max(1, MAX_DRAWS // rows)
    by_time = max(1, MAX_NOISE // logp.size)
    limit = min(by_memory, by_time)
    why = (
        f"{rows:,} distributions of {logp.shape[-1]:,} behaviors: the draws are held in memory "
        "at 4 bytes each, at most 2**28 of them"
        if limit == by_memory
        else f"each draw takes one random value per behavior, {logp.size:,} here, and at most "
        "2**34 values are drawn in all (about a minute)"
    )
    num_samples = _checks.integer(num_samples, "num_samples", minimum=1, maximum=limit, why=why)
    chunk = max(1, _SAMPLE_CHUNK // logp.size)
    return _sample(key, logp, num_samples, min(chunk, num_samples))


@partial(jax.jit, static_argnames=("greedy", "use_top_k", "use_top_p"))
def _decode(logp, temperature, top_k, top_p, *, greedy, use_top_k, use_top_p):
    best = jnp.max(logp, axis=-1, keepdims=True)
    if greedy:
        logits = jnp.where(logp == best, 0.0, -jnp.inf)
    else:
        # Shift by the maximum first: (logp - max) / T is <= 0, so a tiny T or huge logits
        # give -inf (zero mass), never inf - inf; the maxima are set to 0 explicitly so that a
        # subnormal T (flushed to zero by XLA) cannot make them 0 / 0.
        logits = jnp.where(logp == best, 0.0, (logp - best) / temperature)
    logits = _normalize(logits)
    if use_top_k:
        # the k-th largest value, with k traced (no recompilation per k): sort ascending and
        # read position n - k
        ordered = jnp.sort(logits, axis=-1)
        kth = jnp.take(ordered, logits.shape[-1] - top_k, axis=-1)[..., None]
        logits = _normalize(jnp.where(logits >= kth, logits, -jnp.inf))
    if use_top_p:
        logits = _normalize(jnp.where(_top_mass_mask(logits, top_p), logits, -jnp.inf))
    return logits


def decode(
    logp: Any,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> jax.Array:
    r"""The exact distribution a decoding rule samples from, as normalized log-probabilities.

    Applied in the usual order (temperature, then top-k, then top-p), each step renormalizing:

    * temperature ``T > 0``: $q \propto p^{1/T}$ (a Gibbs tilt with energy $-\log p$);
      ``T = 0`` is greedy decoding, the uniform distribution over the most probable behaviors;
    * ``top_k``: keep behaviors whose probability is at least the ``k``-th largest (ties at the
      ``k``-th value are all kept); ``top_k >= n`` keeps everything;
    * ``top_p`` in (0, 1]: keep the smallest set of most-probable behaviors whose mass reaches
      ``top_p`` (ties ranked by index).

    Decoding never leaves the support of ``p``. ``logp`` may be unnormalized logits; the result
    has its shape ``(..., n)``, log-probabilities in nats.

    >>> import jax.numpy as jnp
    >>> decode(jnp.log(jnp.array([0.5, 0.3, 0.2])), top_k=1).tolist()
    [0.0, -inf, -inf]
    """
    logp = _checks.logp(logp, "logp", normalized=False)
    t = _checks.scalar(temperature, "temperature")
    if not (t >= 0 and t < float("inf")):
        raise ValueError(f"`temperature` must be finite and >= 0 (0 = greedy), got {t!r}.")
    k = None
    if top_k is not None:
        k = min(_checks.integer(top_k, "top_k", minimum=1), logp.shape[-1])
    p = 1.0
    if top_p is not None:
        p = _checks.probability_half_open(top_p, "top_p")
    return _decode(
        logp,
        t,
        k if k is not None else logp.shape[-1],
        p,
        greedy=(t == 0.0),
        use_top_k=k is not None,
        use_top_p=top_p is not None and p < 1.0,
    )
