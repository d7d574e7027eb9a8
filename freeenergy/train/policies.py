r"""Policies: parameters → log-probabilities over a behavior space.

A ``Policy`` is a small NamedTuple of four pure functions (optax-style: a factory returns it and
closes over its settings; arrays flow through the arguments):

* ``init(key) -> params`` — the initial parameters. Every policy built here starts **at its base
  distribution**, so the initial parameters are also the reference of KL-regularized training;
* ``logprobs(params) -> (..., n)`` — normalized log-probabilities over the whole flat space
  (leading axes: prompts). Exact-mode objectives and the training metrics use it;
* ``sample(key, params, num) -> (..., num)`` — ``num`` i.i.d. behaviors per prompt;
* ``log_prob(params, behaviors) -> (..., num)`` — the log-probability of sampled behaviors.

Sampled-mode objectives only use ``sample`` and ``log_prob``, so a policy over a space too large
to enumerate (e.g. strings from a finite-state generator, behaviors ``(..., num, length)``) plugs
in by supplying those two. Flat policies derive both from ``logprobs``.

Conventions: ``-inf`` is zero mass. A policy whose base has ``-inf`` entries keeps them ``-inf``
for every parameter value (support preservation: gradient training reweights, never creates
support), and gradients stay finite there (double ``where``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .. import _checks
from ..distributions import _normalize

__all__ = ["Policy", "SharedParams", "tabular", "log_linear", "shared", "flat_policy"]


class Policy(NamedTuple):
    """A parametric distribution over behaviors (see the module docstring for the contract)."""

    init: Callable[[jax.Array], Any]
    logprobs: Callable[[Any], jax.Array]
    sample: Callable[[jax.Array, Any, int], jax.Array]
    log_prob: Callable[[Any, jax.Array], jax.Array]


class SharedParams(NamedTuple):
    """Parameters of ``shared``: ``theta`` (d,) shared by all prompts, ``offsets`` (P, n)."""

    theta: jax.Array
    offsets: jax.Array


#: Largest number of draws per prompt in one call of a flat policy's ``sample``.
MAX_DRAWS = 2**26
#: Largest number of entries of the sampler's comparison table (rows × draws × width).
MAX_SAMPLER_ENTRIES = 2**28

# ----------------------------------------------------------------------------- flat kernels
#: Up to this many behaviors, one cumulative sum and one comparison of every draw with it;
#: beyond, two-level (block) inverse-CDF sampling.
_SMALL_SPACE = 256


def _count_below(cdf: jax.Array, u: jax.Array) -> jax.Array:
    """For cdf (..., m) and u (..., k): the number of cdf entries <= u, per u: (..., k)."""
    return jnp.sum(cdf[..., None, :] <= u[..., :, None], axis=-1)


def _last_positive(p: jax.Array) -> jax.Array:
    """Index of the last entry with positive mass along the last axis (a max-reduction)."""
    return jnp.max(jnp.where(p > 0, jnp.arange(p.shape[-1]), 0), axis=-1)


def _prefix_sum(x: jax.Array) -> jax.Array:
    """Cumulative sum over a short last axis as a chain of adds (XLA's CPU cumsum is a
    reduce-window, far slower for the short axes used here)."""
    if x.shape[-1] > 64:
        return jnp.cumsum(x, axis=-1)
    parts = [x[..., 0]]
    for i in range(1, x.shape[-1]):
        parts.append(parts[-1] + x[..., i])
    return jnp.stack(parts, axis=-1)


def _count_running(weights: jax.Array, u: jax.Array) -> jax.Array:
    """For weights (..., k, m) and u (..., k): the number of prefix sums <= u, by a running sum
    over the ``m`` entries (an unrolled loop: no prefix-sum array is built)."""

    def body(i, carry):
        acc, count = carry
        acc = acc + jax.lax.dynamic_index_in_dim(weights, i, axis=-1, keepdims=False)
        return acc, count + (acc <= u)

    init = (jnp.zeros(u.shape, u.dtype), jnp.zeros(u.shape, jnp.int32))
    m = weights.shape[-1]
    return jax.lax.fori_loop(0, m, body, init, unroll=min(m, 64))[1]


@partial(jax.jit, static_argnames=("num",))
def _sample_flat(key: jax.Array, logq: jax.Array, num: int) -> jax.Array:
    """``num`` i.i.d. draws per row of ``logq`` (..., n) by inverse-CDF sampling: (..., num).

    One uniform ``u`` per draw; the draw is the first behavior whose cumulative mass exceeds
    ``u · total`` (see ``_inverse_cdf``).
    """
    _check_sampler_size(logq.shape, num)
    uniform = jax.random.uniform(key, (*logq.shape[:-1], num), dtype=logq.dtype)
    return _inverse_cdf(logq, uniform)


def _check_sampler_size(shape: tuple[int, ...], num: int) -> None:
    """Refuse a sampling call whose comparison table would not fit in memory (static shapes, so
    this raises at trace time under ``jit`` too)."""
    n = shape[-1]
    rows = math.prod(shape[:-1])
    width = n if n <= _SMALL_SPACE else _block_size(n)
    entries = rows * num * width
    if entries > MAX_SAMPLER_ENTRIES:
        raise ValueError(
            f"drawing {num:,} samples (`num`, an objective's `num_samples`) for each of {rows:,} "
            f"rows of {n:,} behaviors compares every draw with {width:,} cumulative masses: "
            f"{entries:,} entries, more than the {MAX_SAMPLER_ENTRIES:,} allowed in memory. Draw "
            "fewer samples per call."
        )


@jax.custom_batching.custom_vmap
def _inverse_cdf(logq: jax.Array, uniform: jax.Array) -> jax.Array:
    """Inverse-CDF lookup of uniforms (..., k) in the distributions logq (..., n): (..., k).

    Small spaces compare every draw with the whole cumulative sum. Large ones use two levels —
    blocks of ``b ≈ √n`` behaviors: block masses, the block containing ``u``, then the running
    sum inside that block only — so a lookup costs one pass over the ``n`` probabilities plus
    ``O(k·√n)``. Zero-mass behaviors (and blocks) have zero width and are never drawn; every
    index is capped at the last entry with positive mass, so rounding can never select a
    zero-mass behavior. Written for any number of leading axes; under ``vmap`` it is called on
    the batched arrays directly (a gather batched by ``vmap`` is far slower on CPU).
    """
    n = logq.shape[-1]
    batch = logq.shape[:-1]
    num = uniform.shape[-1]
    if n <= _SMALL_SPACE:
        p = jnp.exp(logq)
        cdf = jnp.cumsum(p, axis=-1)
        idx = _count_below(cdf, uniform * cdf[..., -1:])
        return jnp.minimum(idx, _last_positive(p)[..., None]).astype(jnp.int32)
    b = _block_size(n)
    blocks = -(-n // b)
    if blocks * b != n:  # pad with zero mass (a copy, only when no divisor of n is near √n)
        logq = jnp.pad(
            logq, [(0, 0)] * len(batch) + [(0, blocks * b - n)], constant_values=-jnp.inf
        )
    # Block masses in one fused pass (the probabilities themselves are never stored).
    mass = jnp.sum(jnp.exp(logq.reshape(*batch, blocks, b)), axis=-1)  # (..., B)
    block_cdf = _prefix_sum(mass)
    u = uniform * block_cdf[..., -1:]
    # The block of each draw: the number of blocks that end at or before u (compared with the
    # blocks on the second-to-last axis, so the count reduces across the k draws at once).
    ends_before = block_cdf[..., :, None] <= u[..., None, :]  # (..., B, k)
    block = jnp.minimum(
        jnp.sum(ends_before, axis=-2, dtype=jnp.int32), _last_positive(mass)[..., None]
    )
    # The mass before that block (its cumulative mass minus its own; rounding can put this a
    # hair above u, hence the clamp below: a leading zero-mass behavior is never drawn).
    before = jnp.take_along_axis(block_cdf - mass, block, axis=-1)
    # The chosen blocks' probabilities (..., k, b), gathered from the flat array (a contiguous
    # slice per draw: much faster on CPU than a gather along the block axis).
    rows = jnp.arange(math.prod(batch)).reshape(*batch, 1, 1)
    flat = ((rows * blocks + block[..., None]) * b + jnp.arange(b)).reshape(-1)
    chosen = jnp.exp(jnp.take(logq.reshape(-1), flat, mode="clip")).reshape(*batch, num, b)
    inner = _count_running(chosen, jnp.maximum(u - before, 0.0))
    inner = jnp.minimum(inner, _last_positive(chosen))
    return (block * b + inner).astype(jnp.int32)


def _block_size(n: int) -> int:
    """A divisor of ``n`` within a factor 2 of √n when there is one (no padding), else ⌈√n⌉."""
    root = math.isqrt(n - 1) + 1
    for b in sorted(range(max(root // 2, 1), 2 * root + 1), key=lambda d: abs(d - root)):
        if n % b == 0:
            return b
    return root


@_inverse_cdf.def_vmap
def _inverse_cdf_vmap(axis_size, in_batched, logq, uniform):
    logq_batched, uniform_batched = in_batched
    if not logq_batched:
        logq = jnp.broadcast_to(logq, (axis_size, *logq.shape))
    if not uniform_batched:
        uniform = jnp.broadcast_to(uniform, (axis_size, *uniform.shape))
    return _inverse_cdf(logq, uniform), True


@jax.jit
def _gather(table: jax.Array, behaviors: jax.Array) -> jax.Array:
    """``table[..., behaviors]`` along the last axis, broadcasting the leading axes."""
    batch = jnp.broadcast_shapes(table.shape[:-1], behaviors.shape[:-1])
    table = jnp.broadcast_to(table, (*batch, table.shape[-1]))
    behaviors = jnp.broadcast_to(behaviors, (*batch, behaviors.shape[-1]))
    return jnp.take_along_axis(table, behaviors, axis=-1)


def flat_policy(init: Callable[[jax.Array], Any], logprobs: Callable[[Any], jax.Array]) -> Policy:
    """A ``Policy`` on a flat space from ``init`` and ``logprobs``: sampling and per-sample
    log-probabilities are derived from the full table (inverse-CDF sampling, a gather).

    ``logprobs(params)`` must return normalized log-probabilities (nats) of shape ``(..., n)``;
    then ``sample(key, params, num)`` is an int32 array ``(..., num)`` and
    ``log_prob(params, behaviors)`` gathers ``(..., m)`` log-probabilities.

    >>> import jax, jax.numpy as jnp
    >>> policy = flat_policy(lambda key: jnp.array([0.0, 1.0, 2.0]), jax.nn.log_softmax)
    >>> theta = policy.init(jax.random.key(0))
    >>> policy.sample(jax.random.key(1), theta, 5).shape
    (5,)
    >>> [round(float(x), 4) for x in policy.log_prob(theta, jnp.array([2, 0]))]  # 2 - lse, -lse
    [-0.4076, -2.4076]
    """
    if not callable(init) or not callable(logprobs):
        raise TypeError(
            "`init` and `logprobs` must be callables: init(key) -> params and "
            "logprobs(params) -> (..., n) log-probabilities."
        )

    def sample(key, params, num):
        num = _checks.integer(
            num,
            "num",
            minimum=1,
            maximum=MAX_DRAWS,
            why="the draws are held in memory, with one uniform each, for every prompt",
        )
        return _sample_flat(key, logprobs(params), num)

    def log_prob(params, behaviors):
        return _gather(logprobs(params), behaviors)

    return Policy(init=init, logprobs=logprobs, sample=sample, log_prob=log_prob)


# ----------------------------------------------------------------------------- factories
def _base(logp0: Any) -> jax.Array:
    logp0 = _checks.logp(logp0, "logp0")
    return logp0.astype(_checks._float_dtype(logp0))


def _features(features: Any, logp0: jax.Array, *, name: str = "features") -> jax.Array:
    feats = _checks.to_array(features, name)
    if feats.ndim < 2:
        raise ValueError(
            f"`{name}` must have shape (n, d) or (..., n, d) (one feature vector per behavior), "
            f"got shape {tuple(feats.shape)}."
        )
    if feats.shape[-2] != logp0.shape[-1]:
        raise ValueError(
            f"`{name}` has {feats.shape[-2]} behaviors (shape {tuple(feats.shape)}) but `logp0` "
            f"has {logp0.shape[-1]} (shape {tuple(logp0.shape)}); the axis before the last must "
            "index the behaviors."
        )
    try:
        jnp.broadcast_shapes(feats.shape[:-2], logp0.shape[:-1])
    except ValueError:
        raise ValueError(
            f"`{name}` has batch shape {tuple(feats.shape[:-2])}, which does not broadcast "
            f"against the batch shape {tuple(logp0.shape[:-1])} of `logp0`."
        ) from None
    if not _checks.is_traced(feats) and not bool(jnp.all(jnp.isfinite(feats))):
        raise ValueError(
            f"`{name}` must be finite (a feature value of ±inf or NaN makes every tilt "
            "degenerate); exclude behaviors through `logp0 = -inf` instead."
        )
    return feats.astype(logp0.dtype)


def tabular(logp0: Any) -> Policy:
    r"""A tabular softmax policy: $\log q = \mathrm{normalize}(\theta)$, one logit per behavior.

    ``params`` has the shape of ``logp0`` (``(n,)`` or ``(P, n)`` for ``P`` prompts) and starts
    at ``logp0`` (so the initial policy is the reference). Behaviors with ``logp0 = -inf`` are
    excluded for every ``θ``: their parameter is held at 0 and masked, so values and gradients
    stay finite.

    >>> import jax, jax.numpy as jnp
    >>> policy = tabular(jnp.log(jnp.array([0.25, 0.75])))
    >>> policy.logprobs(policy.init(jax.random.key(0))).tolist()  # doctest: +ELLIPSIS
    [-1.386..., -0.287...]
    """
    logp0 = _base(logp0)
    support = logp0 > -jnp.inf
    start = jnp.where(support, logp0, 0.0)

    def init(key):
        del key  # deterministic: the policy starts at the reference
        return start

    def logprobs(params):
        return _normalize(jnp.where(support, params, -jnp.inf))

    return flat_policy(init, logprobs)


def log_linear(logp0: Any, features: Any) -> Policy:
    r"""A log-linear residual policy: $\log q = \mathrm{normalize}(\log p_0 + \Phi\,\theta)$.

    A Gibbs tilt of ``p0`` with a learned energy $U_\theta = -\beta\,\Phi\theta$ restricted to the
    span of the ``features`` $\Phi$ (shape ``(n, d)``, or ``(..., n, d)`` per prompt).
    ``θ`` (shape ``(d,)``) starts at zero, i.e. at ``p0``. ``-inf`` entries of ``logp0`` stay
    ``-inf``. When the reward lies in the span of the features the Gibbs target is representable
    (``θ* = Φ⁺ r / β``). ``logprobs(θ)`` has the broadcast shape ``(..., n)`` (nats).

    >>> import jax, jax.numpy as jnp
    >>> policy = log_linear(jnp.log(jnp.ones(3) / 3), jnp.array([[1.0], [0.0], [0.0]]))
    >>> policy.init(jax.random.key(0)).tolist()  # theta = 0: the base
    [0.0]
    >>> [round(float(x), 4) for x in jnp.exp(policy.logprobs(jnp.array([jnp.log(2.0)])))]
    [0.5, 0.25, 0.25]
    """
    logp0 = _base(logp0)
    feats = _features(features, logp0)
    support = logp0 > -jnp.inf
    base = jnp.where(support, logp0, 0.0)
    start = jnp.zeros(feats.shape[-1], logp0.dtype)

    def init(key):
        del key
        return start

    def logprobs(theta):
        return _normalize(jnp.where(support, base + feats @ theta, -jnp.inf))

    return flat_policy(init, logprobs)


def shared(logp0: Any, features: Any, *, offsets: bool = True) -> Policy:
    r"""A policy shared across prompts: $\log q_p = \mathrm{normalize}(\log p_{0,p} + \Phi_p\theta
    + b_p)$.

    ``logp0`` is ``(P, n)`` (one reference per prompt), ``features`` ``(n, d)`` or ``(P, n, d)``.
    ``θ`` (``(d,)``) is shared by every prompt, so a gradient step on one prompt moves the others;
    the per-prompt offsets ``b`` (``(P, n)``, when ``offsets=True``) make each prompt fully
    expressive. Both start at zero (the reference). Parameters are a ``SharedParams``;
    ``logprobs(params)`` is ``(P, n)`` (nats).

    >>> import jax, jax.numpy as jnp
    >>> policy = shared(jnp.log(jnp.full((2, 3), 1 / 3)), jnp.array([[1.0], [0.0], [0.0]]))
    >>> params = policy.init(jax.random.key(0))
    >>> params.theta.shape, params.offsets.shape
    ((1,), (2, 3))
    >>> q = jnp.exp(policy.logprobs(params._replace(theta=jnp.array([jnp.log(2.0)]))))
    >>> [[round(float(x), 4) for x in row] for row in q]  # theta moves both prompts
    [[0.5, 0.25, 0.25], [0.5, 0.25, 0.25]]
    """
    logp0 = _base(logp0)
    if logp0.ndim < 2:
        raise ValueError(
            f"`logp0` must have shape (P, n) for a policy shared across P prompts, got shape "
            f"{tuple(logp0.shape)}; use `tabular` or `log_linear` for a single prompt."
        )
    feats = _features(features, logp0)
    if not isinstance(offsets, bool):
        raise TypeError(f"`offsets` must be a bool, got {offsets!r}.")
    support = logp0 > -jnp.inf
    base = jnp.where(support, logp0, 0.0)
    theta0 = jnp.zeros(feats.shape[-1], logp0.dtype)
    offsets0 = jnp.zeros(logp0.shape if offsets else (0,), logp0.dtype)

    def init(key):
        del key
        return SharedParams(theta=theta0, offsets=offsets0)

    def logprobs(params):
        logits = base + feats @ params.theta
        if offsets:
            logits = logits + params.offsets
        return _normalize(jnp.where(support, logits, -jnp.inf))

    return flat_policy(init, logprobs)
