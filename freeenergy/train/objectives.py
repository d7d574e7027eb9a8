r"""Objectives: SFT, the RL family (REINFORCE, RLOO, GRPO, PPO-clip) and DPO, exact and sampled.

Every objective is written against the ``Policy`` interface and split the way the algorithms are
run in practice (TRL): ``prepare`` generates the step's data with the **current** parameters
(rollouts, their old and reference log-probabilities, advantages — all constants), then
``epochs`` optimizer updates minimize ``loss`` on that same data. With ``epochs > 1`` the
importance ratio $\rho = q_\theta(y)/q_{\mathrm{old}}(y)$ leaves 1 and PPO-style clipping acts.

Two modes:

* ``"sampled"`` — finite rollouts drawn with the step's key: ``num_samples`` behaviors per prompt
  (a GRPO *group*), demonstrations, or preference pairs;
* ``"exact"`` — the same objective with every sample average replaced by its expectation, which
  is computable because the distribution is explicit: a sum over all behaviors weighted by
  $q_{\mathrm{old}}$ (or by the data distribution). Group statistics become their
  infinite-group limits (mean and standard deviation under $q_{\mathrm{old}}$). Exact mode needs
  ``policy.logprobs``.

Sign conventions: the reward $r$ is maximized; with ``beta`` $= \beta > 0$ the KL-regularized
problem $\max_q \mathbb{E}_q[r] - \beta\,\mathrm{KL}(q\|p_0)$ has the Gibbs answer
$q^* = $ ``gibbs(logp0, -reward, beta)``. Losses are minimized.

KL penalty (``kl``, ``kl_in``): ``kl="exact"`` adds $\beta\,\mathrm{KL}(q_\theta\|p_0)$ computed
over the whole space and differentiated exactly (needs ``logprobs``); ``"k1"``, ``"k2"``,
``"k3"`` use the sample estimators of ``kl.py`` either subtracted from the reward
(``kl_in="reward"``, as a constant: $r - \beta k$) or added to the loss (``kl_in="loss"``,
differentiated through $\log q_\theta$ at fixed samples). In exact mode an estimator keeps its
placement and is averaged under $q_{\mathrm{old}}$, so the run shows what the estimator does *in
expectation*: ``k1`` in the reward and ``k2`` in the loss give the gradient of
$\mathrm{KL}(q\|p_0)$; ``k3`` in the loss gives the gradient of the *forward*
$\mathrm{KL}(p_0\|q)$; ``k1`` in the loss gives no gradient at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .. import _checks
from ..distributions import _expect, _normalize
from .kl import KL_ESTIMATORS, _kl_terms
from .policies import _gather, _sample_flat

__all__ = [
    "Batch",
    "Objective",
    "reinforce",
    "rloo",
    "grpo",
    "ppo",
    "sft",
    "dpo",
    "MODES",
]

#: The two ways to evaluate an objective.
MODES = ("exact", "sampled")


class Batch(NamedTuple):
    """What a training step consumes (arrays only, so it can be ``vmap``-ped, e.g. over ``beta``).

    * ``reward`` — ``(..., n)`` reward of every behavior (per prompt). RL and DPO (the
      Bradley–Terry reward) train on it; every objective uses it for the expected-reward and
      pass@k metrics. Must be finite.
    * ``beta`` — scalar KL coefficient / temperature $\\beta \\ge 0$ (``> 0`` for DPO and
      reward-weighted SFT). ``0`` means no KL penalty.
    * ``data`` — ``(..., n)`` normalized log-distribution: SFT's demonstration distribution
      ``d`` (required by ``sft`` unless ``samples`` is given); DPO's pair distribution
      (optional, default: the reference).
    * ``samples`` — ``(..., m)`` int behaviors: a stored demonstration set; sampled-mode SFT then
      uses all of it at every step instead of drawing from ``data``.
    """

    reward: Any
    beta: Any = 0.0
    data: Any = None
    samples: Any = None


class Objective(NamedTuple):
    """A training objective (see the module docstring).

    * ``prepare(key, policy, params, reference, batch, extra, count) -> (rollout, extra)`` —
      the step's constant data (no gradient flows through it) and the objective's updated
      extra state (e.g. a running baseline);
    * ``loss(policy, params, rollout) -> (surrogate, (reported_loss, zero_signal))`` — the
      differentiated surrogate; the reported loss is the objective's value (``+inf`` when a
      demonstration or preference lies outside the policy's support, while the surrogate keeps
      the finite part so gradients stay finite); ``zero_signal`` is the fraction of signal units
      (groups, pairs, demonstrations) that carry no gradient;
    * ``target(logp0, batch) -> logq*`` — the exact answer the objective should converge to;
    * ``init_extra(logp0) -> extra`` — the objective's state (``()`` when it has none);
    * ``requires`` — what the batch must hold beyond ``reward``: ``"data"`` (a demonstration
      distribution or stored samples), ``"positive_beta"`` (``beta > 0``).
    """

    name: str
    mode: str
    epochs: int
    prepare: Callable
    loss: Callable
    target: Callable
    init_extra: Callable
    requires: tuple[str, ...] = ()


# ----------------------------------------------------------------------------- helpers
def _sg(x):
    return jax.lax.stop_gradient(x)


def _prob(logq: jax.Array) -> jax.Array:
    pos = logq > -jnp.inf
    return jnp.where(pos, jnp.exp(jnp.where(pos, logq, 0.0)), 0.0)


def _mode(mode: Any) -> str:
    if not isinstance(mode, str) or mode not in MODES:
        raise ValueError(f"`mode` must be one of {MODES}, got {_checks._describe(mode)}.")
    return mode


#: Largest number of draws per prompt and step (sampled rollouts, demonstrations, pairs).
MAX_SAMPLES = 2**20
#: Largest number of optimizer updates on one step's data.
MAX_EPOCHS = 2**16


def _epochs(epochs: Any) -> int:
    return _checks.integer(
        epochs,
        "epochs",
        minimum=1,
        maximum=MAX_EPOCHS,
        why="every step runs that many optimizer updates and stores the loss of each",
    )


def _clip(clip: Any) -> float | None:
    if clip is None:
        return None
    c = _checks.scalar(clip, "clip")
    if not 0.0 < c < 1.0:
        raise ValueError(
            f"`clip` must lie strictly between 0 and 1 (the ratio is clipped to "
            f"[1 - clip, 1 + clip]), got {c!r}; pass None for no clipping."
        )
    return c


def _kl_options(kl: Any, kl_in: Any) -> tuple[str | None, str]:
    if kl is not None and (not isinstance(kl, str) or kl not in ("exact", *KL_ESTIMATORS)):
        raise ValueError(
            f"`kl` must be None, 'exact' or one of {KL_ESTIMATORS}, got {_checks._describe(kl)}."
        )
    if kl_in is None:
        kl_in = "loss" if kl in (None, "exact", "k2", "k3") else "reward"
    if not isinstance(kl_in, str) or kl_in not in ("reward", "loss"):
        raise ValueError(f"`kl_in` must be 'reward' or 'loss', got {_checks._describe(kl_in)}.")
    if kl == "exact" and kl_in == "reward":
        raise ValueError(
            "`kl='exact'` is the KL(q||p0) term of the loss, differentiated exactly; it has no "
            "per-sample reward form. Use kl='k1' with kl_in='reward' (its exact-mode gradient "
            "is the same), or kl_in='loss'."
        )
    return kl, kl_in


def _reward_support(logp0: jax.Array, reward: jax.Array) -> jax.Array:
    """Reward restricted to supp(p0) (0 elsewhere; those behaviors carry no mass)."""
    return jnp.where(logp0 > -jnp.inf, reward, 0.0)


def gibbs_target(logp0: jax.Array, reward: jax.Array, beta: jax.Array) -> jax.Array:
    """``gibbs(logp0, -reward, beta)``; at ``beta = 0`` the reward-maximizing limit
    ``p0(· | argmax_{supp p0} r)``."""
    beta = jnp.asarray(beta, logp0.dtype)
    support = logp0 > -jnp.inf
    r = jnp.where(support, reward, 0.0)
    positive = beta > 0
    rmax = jnp.max(jnp.where(support, r, -jnp.inf), axis=-1, keepdims=True)
    tilt = logp0 + r / jnp.where(positive, beta, 1.0)
    limit = jnp.where(r == rmax, logp0, -jnp.inf)
    return _normalize(jnp.where(support, jnp.where(positive, tilt, limit), -jnp.inf))


#: Up to this many behaviors the reward levels are found by an (n, n) comparison (one fused
#: kernel); beyond it by sorting.
_PAIRWISE_LEVELS = 512


def _level_mass(logq: jax.Array, reward: jax.Array) -> jax.Array:
    """For each behavior y, the q-mass of the behaviors with exactly the reward r(y): (..., n)."""
    n = logq.shape[-1]
    reward = jnp.broadcast_to(reward, logq.shape)
    q = _prob(logq)
    if n <= _PAIRWISE_LEVELS:
        same = reward[..., :, None] == reward[..., None, :]
        return jnp.sum(jnp.where(same, q[..., None, :], 0.0), axis=-1)

    def one(qq, r):
        order = jnp.argsort(r)
        rs = r[order]
        new = jnp.concatenate([jnp.ones((1,), bool), rs[1:] != rs[:-1]])
        level = jnp.cumsum(new) - 1
        mass = jax.ops.segment_sum(qq[order], level, num_segments=n)
        return jnp.zeros(n, qq.dtype).at[order].set(mass[level])

    flat = jax.vmap(one)(q.reshape(-1, n), reward.reshape(-1, n))
    return flat.reshape(logq.shape)


def all_equal_probability(logq: Any, reward: Any, group_size: int) -> jax.Array:
    r"""Exact probability that ``group_size`` i.i.d. draws from ``q`` all have the same reward:
    $\sum_v q(r = v)^G = \sum_y q(y)\,q(r = r(y))^{G-1}$ (per prompt) — the probability that a
    GRPO group carries no reward signal (for a binary reward with success mass $p$:
    $(1-p)^G + p^G$). ``logq`` and ``reward`` are ``(..., n)``; the result is ``(...)``.

    >>> import jax.numpy as jnp
    >>> logq = jnp.log(jnp.array([0.5, 0.5]))
    >>> round(float(all_equal_probability(logq, jnp.array([1.0, 0.0]), 4)), 6)  # 2 * 0.5^4
    0.125
    """
    group_size = _checks.integer(
        group_size,
        "group_size",
        minimum=1,
        maximum=2**53,
        why="the power q(r = v)^(G-1) takes G - 1 as a float, exact only up to 2^53",
    )
    if not _checks.is_traced(logq, reward):
        logq = _checks.logp(logq, "logq")
        reward = _checks.energy(reward, "reward", sign=-1)
        _checks.same_last_axis("logq", logq, "reward", reward)
    m = _level_mass(logq, reward)
    return jnp.sum(_prob(logq) * m ** float(group_size - 1), axis=-1)


def _group_all_equal(r: jax.Array) -> jax.Array:
    """1.0 where every sample of a group (last axis) has the same reward."""
    return jnp.all(r == r[..., :1], axis=-1).astype(r.dtype)


#: A standard deviation below this many units of rounding of the values it was computed from is
#: rounding noise: dividing by it would blow the noise up to advantages of order one.
_NOISE_ULPS = 64


def _scaled(centered: jax.Array, std: jax.Array, size: jax.Array) -> jax.Array:
    """``centered / std``, and 0 where ``std`` is 0 or at the rounding level of ``size`` (the
    magnitude of the inputs): such a group carries no signal, exactly as an all-equal one."""
    eps = jnp.finfo(centered.dtype).eps
    pos = std > _NOISE_ULPS * eps * size
    return jnp.where(pos, centered / jnp.where(pos, std, 1.0), 0.0)


def _clipped(ratio: jax.Array, adv: jax.Array, clip: float | None) -> jax.Array:
    """PPO surrogate min(ρA, clip(ρ, 1-ε, 1+ε)A); ρA without clipping."""
    if clip is None:
        return ratio * adv
    return jnp.minimum(ratio * adv, jnp.clip(ratio, 1.0 - clip, 1.0 + clip) * adv)


# ----------------------------------------------------------------------------- policy gradient
class _SampledRollout(NamedTuple):
    behaviors: jax.Array
    old_logp: jax.Array
    ref_logp: jax.Array
    advantage: jax.Array
    beta: jax.Array
    zero_signal: jax.Array
    ref_logq_full: Any  # full reference table when kl="exact" (else None)


class _ExactRollout(NamedTuple):
    old_logq: jax.Array
    ref_logq: jax.Array
    advantage: jax.Array
    beta: jax.Array
    zero_signal: jax.Array


def _policy_gradient(
    name: str,
    *,
    mode: str,
    num_samples: int,
    advantage: str,
    clip: float | None,
    epochs: int,
    kl: str | None,
    kl_in: str,
    scale_rewards: bool = False,
    whiten: bool = False,
    baseline_decay: float = 0.0,
    reward_fn: Callable | None = None,
) -> Objective:
    """The shared machinery of REINFORCE, RLOO, GRPO and PPO-clip."""

    def rewards_at(batch, behaviors, like):
        if reward_fn is not None:
            return _call_reward_fn(reward_fn, batch, behaviors, like)
        return _gather(jnp.asarray(batch.reward), behaviors)

    def init_extra(logp0):
        if advantage == "ema":
            return jnp.zeros(logp0.shape[:-1], logp0.dtype)
        return ()

    # -------- sampled
    def magnitude(r, old_logp, ref_logp, beta):
        """Per-entry size of what the effective reward was computed from: spreads below
        rounding of it are noise, not signal (see ``_scaled``)."""
        m = jnp.abs(r)
        if kl in KL_ESTIMATORS and kl_in == "reward":
            finite = (old_logp > -jnp.inf) & (ref_logp > -jnp.inf)
            logs = jnp.abs(jnp.where(finite, old_logp, 0.0)) + jnp.abs(
                jnp.where(finite, ref_logp, 0.0)
            )
            m = m + jnp.abs(beta) * logs
        return m

    def advantages_sampled(r, extra, count, size):
        mean = jnp.mean(r, axis=-1, keepdims=True)
        if advantage == "ema":
            batch_mean = mean[..., 0]
            base = jnp.where(count == 0, batch_mean, extra)
            new_extra = base + (1.0 - baseline_decay) * (batch_mean - base)
            return r - base[..., None], new_extra
        if advantage == "loo":
            g = r.shape[-1]
            return g / (g - 1) * (r - mean), extra
        centered = r - mean
        scaled = False
        if advantage == "group" and scale_rewards:
            std = jnp.std(r, axis=-1, keepdims=True, ddof=1)
            centered = _scaled(centered, std, jnp.max(size, axis=-1, keepdims=True))
            scaled = True
        if advantage == "batch" and whiten:
            centered = _scaled(centered, jnp.std(centered), jnp.max(size))
            scaled = True
        if scaled:
            # ``r - mean`` sums to zero only up to rounding of ``r``; dividing by a small standard
            # deviation scales that residue up with the signal. Centring again after the division
            # leaves a residue at the rounding of the advantages themselves, so behaviors that
            # were not drawn still move together (T13).
            centered = centered - jnp.mean(centered, axis=-1, keepdims=True)
        return centered, extra

    def prepare_sampled(key, policy, params, reference, batch, extra, count):
        beta = jnp.asarray(batch.beta)
        y = policy.sample(key, params, num_samples)
        old_logp = policy.log_prob(params, y)
        ref_logp = policy.log_prob(reference, y)
        r = rewards_at(batch, y, old_logp).astype(old_logp.dtype)
        zero = jnp.mean(_group_all_equal(r))
        r_eff = r
        if kl in KL_ESTIMATORS and kl_in == "reward":
            r_eff = r - beta * _kl_terms(old_logp, ref_logp, kl)
        size = magnitude(r, old_logp, ref_logp, beta)
        adv, extra = advantages_sampled(r_eff, extra, count, size)
        # A non-finite reward (from `reward_fn`) poisons its group's advantages with NaN instead
        # of being silently dropped by the zero-std rule, so `run` can report it.
        finite = jnp.all(jnp.isfinite(r), axis=-1, keepdims=True)
        adv = jnp.where(finite, adv, jnp.nan)
        zero = jnp.where(jnp.all(finite), zero, jnp.nan)
        ref_full = policy.logprobs(reference) if kl == "exact" else None
        rollout = _SampledRollout(y, old_logp, ref_logp, adv, beta, zero, ref_full)
        return _sg(rollout), extra

    def loss_sampled(policy, params, ro):
        logp = policy.log_prob(params, ro.behaviors)
        ratio = jnp.exp(logp - ro.old_logp)
        surrogate = -jnp.mean(_clipped(ratio, ro.advantage, clip))
        if kl == "exact":
            surrogate = surrogate + ro.beta * jnp.mean(
                _kl_full(policy.logprobs(params), ro.ref_logq_full)
            )
        elif kl in KL_ESTIMATORS and kl_in == "loss":
            surrogate = surrogate + ro.beta * jnp.mean(_kl_terms(logp, ro.ref_logp, kl))
        return surrogate, (surrogate, ro.zero_signal)

    # -------- exact
    def prepare_exact(key, policy, params, reference, batch, extra, count):
        del key, count
        beta = jnp.asarray(batch.beta)
        old = policy.logprobs(params)
        ref = policy.logprobs(reference)
        r = _reward_support(ref, jnp.asarray(batch.reward, old.dtype))
        zero = jnp.mean(all_equal_probability(old, r, num_samples))
        r_eff = r
        if kl in KL_ESTIMATORS and kl_in == "reward":
            r_eff = r - beta * _kl_terms(old, ref, kl)
            r_eff = jnp.where(old > -jnp.inf, r_eff, 0.0)
        mean = _expect(old, r_eff)[..., None]
        adv = r_eff - mean
        size = jnp.where(old > -jnp.inf, magnitude(r, old, ref, beta), 0.0)
        if advantage == "group" and scale_rewards:
            std = jnp.sqrt(_expect(old, jnp.square(adv)))[..., None]
            adv = _scaled(adv, std, jnp.max(size, axis=-1, keepdims=True))
        if advantage == "batch" and whiten:
            std = jnp.sqrt(jnp.mean(_expect(old, jnp.square(adv))))
            adv = _scaled(adv, std, jnp.max(size))
        adv = jnp.where(old > -jnp.inf, adv, 0.0)
        return _sg(_ExactRollout(old, ref, adv, beta, zero)), extra

    def loss_exact(policy, params, ro):
        logq = policy.logprobs(params)
        pos = ro.old_logq > -jnp.inf
        w = _prob(ro.old_logq)
        ratio = jnp.exp(jnp.where(pos, logq - jnp.where(pos, ro.old_logq, 0.0), 0.0))
        surrogate = -jnp.sum(w * _clipped(ratio, ro.advantage, clip), axis=-1)
        if kl == "exact":
            surrogate = surrogate + ro.beta * _kl_full(logq, ro.ref_logq)
        elif kl in KL_ESTIMATORS and kl_in == "loss":
            terms = _kl_terms(logq, ro.ref_logq, kl)
            surrogate = surrogate + ro.beta * jnp.sum(
                jnp.where(pos, w * jnp.where(pos, terms, 0.0), 0.0), axis=-1
            )
        value = jnp.mean(surrogate)
        return value, (value, ro.zero_signal)

    def target(logp0, batch):
        return gibbs_target(logp0, jnp.asarray(batch.reward, logp0.dtype), batch.beta)

    if mode == "exact":
        return Objective(name, mode, epochs, prepare_exact, loss_exact, target, init_extra)
    return Objective(name, mode, epochs, prepare_sampled, loss_sampled, target, init_extra)


def _kl_full(logq: jax.Array, logp0: jax.Array) -> jax.Array:
    """KL(q||p0) over the last axis, differentiable in logq with finite gradients at -inf."""
    pos = logq > -jnp.inf
    safe_q = jnp.where(pos, logq, 0.0)
    safe_p = jnp.where(pos, logp0, 0.0)
    return jnp.sum(jnp.where(pos, jnp.exp(safe_q) * (safe_q - safe_p), 0.0), axis=-1)


def _num_samples(num_samples: Any, minimum: int = 1) -> int:
    return _checks.integer(
        num_samples,
        "num_samples",
        minimum=minimum,
        maximum=MAX_SAMPLES,
        why="each step holds the draws of every prompt with their log-probabilities and "
        "advantages in memory, about 32 bytes a draw",
    )


def _call_reward_fn(reward_fn: Callable, batch: Any, behaviors: Any, like: jax.Array) -> jax.Array:
    """``reward_fn(batch, behaviors)``, checked to give one real reward per draw (shape of
    ``like``, the draws' log-probabilities). Shapes and dtypes are static: this raises under
    ``jit`` too."""
    r = reward_fn(batch, behaviors)
    try:
        r = jnp.asarray(r)
    except TypeError as err:
        raise TypeError(
            f"`reward_fn` must return an array of rewards, one per draw, got {type(r).__name__} "
            f"({err})."
        ) from None
    if not (jnp.issubdtype(r.dtype, jnp.floating) or jnp.issubdtype(r.dtype, jnp.integer)):
        raise TypeError(
            f"`reward_fn` must return real rewards, got dtype {r.dtype}; return a float array."
        )
    if r.shape != like.shape:
        raise ValueError(
            f"`reward_fn` returned rewards of shape {tuple(r.shape)} for draws whose "
            f"log-probabilities have shape {tuple(like.shape)}; return one reward per draw."
        )
    return r


def _reward_fn(reward_fn: Any) -> Callable | None:
    if reward_fn is not None and not callable(reward_fn):
        raise TypeError(
            f"`reward_fn` must be None or a callable (batch, behaviors) -> rewards, got "
            f"{reward_fn!r}."
        )
    return reward_fn


def reinforce(
    mode: str = "sampled",
    *,
    num_samples: int = 8,
    baseline_decay: float = 0.9,
    kl: str | None = "k1",
    kl_in: str | None = None,
    reward_fn: Callable | None = None,
) -> Objective:
    r"""REINFORCE with a baseline: $\nabla J = \mathbb{E}_{y\sim q}[(r(y) - b)\,\nabla\log q(y)]$.

    Sampled: ``num_samples`` draws per prompt; ``b`` is a running (exponential moving average)
    per-prompt baseline of past batch means, ``b ← b + (1 - baseline_decay)(mean r - b)`` (the
    first step uses the batch mean), independent of the current draws so the gradient is
    unbiased. Exact: $b = \mathbb{E}_q[r]$ and the gradient is exactly $\nabla\mathbb{E}_q[r]$.
    KL options as in the module docstring (default: ``k1`` subtracted from the reward).
    ``num_samples`` also sets the group size of the exact zero-signal probability. The fixed
    point of the KL-regularized objective is ``target(logp0, batch)`` =
    ``gibbs(logp0, -reward, beta)``, shape ``(..., n)`` (log-probabilities, nats).

    >>> import jax.numpy as jnp
    >>> from freeenergy.train import Batch
    >>> objective = reinforce("exact", kl="exact")
    >>> logp0 = jnp.log(jnp.array([0.5, 0.3, 0.2]))
    >>> target = objective.target(logp0, Batch(jnp.array([1.0, 0.0, 0.0]), 1.0))
    >>> [round(float(x), 4) for x in jnp.exp(target)]  # p0 e^r / Z, Z = 0.5 e + 0.5
    [0.7311, 0.1614, 0.1076]
    """
    mode = _mode(mode)
    n = _num_samples(num_samples)
    decay = _checks.scalar(baseline_decay, "baseline_decay")
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"`baseline_decay` must lie in [0, 1), got {decay!r}.")
    kl, kl_in = _kl_options(kl, kl_in)
    return _policy_gradient(
        "reinforce",
        mode=mode,
        num_samples=n,
        advantage="ema",
        clip=None,
        epochs=1,
        kl=kl,
        kl_in=kl_in,
        baseline_decay=decay,
        reward_fn=_reward_fn(reward_fn),
    )


def rloo(
    mode: str = "sampled",
    *,
    num_samples: int = 8,
    kl: str | None = "k1",
    kl_in: str | None = None,
    reward_fn: Callable | None = None,
) -> Objective:
    r"""REINFORCE leave-one-out (Ahmadian et al. 2024, TRL's RLOO).

    Sampled: ``num_samples`` $= G \ge 2$ draws per prompt, advantage
    $A_i = r_i - \frac{1}{G-1}\sum_{j\ne i} r_j$ (an unbiased baseline from the other draws).
    Exact: its expectation, $A = r - \mathbb{E}_q[r]$, i.e. the exact policy gradient. Default
    KL: ``k1`` in the reward (TRL). The target is ``gibbs(logp0, -reward, beta)``.

    >>> import jax.numpy as jnp
    >>> from freeenergy.train import Batch
    >>> objective = rloo(num_samples=4)
    >>> objective.name, objective.mode, objective.epochs
    ('rloo', 'sampled', 1)
    >>> logp0 = jnp.log(jnp.array([0.5, 0.5]))
    >>> target = objective.target(logp0, Batch(jnp.array([1.0, 0.0]), 1.0))
    >>> round(float(jnp.exp(target[0])), 4)  # e / (e + 1)
    0.7311
    """
    mode = _mode(mode)
    n = _num_samples(num_samples, minimum=2)
    kl, kl_in = _kl_options(kl, kl_in)
    return _policy_gradient(
        "rloo",
        mode=mode,
        num_samples=n,
        advantage="loo",
        clip=None,
        epochs=1,
        kl=kl,
        kl_in=kl_in,
        reward_fn=_reward_fn(reward_fn),
    )


def grpo(
    mode: str = "sampled",
    *,
    num_samples: int = 8,
    clip: float | None = 0.2,
    epochs: int = 1,
    scale_rewards: bool = True,
    kl: str | None = "k3",
    kl_in: str | None = "loss",
    reward_fn: Callable | None = None,
) -> Objective:
    r"""Group Relative Policy Optimization (Shao et al. 2024; TRL's GRPOTrainer).

    Sampled: for every prompt a group of ``num_samples`` $= G \ge 2$ draws; advantage
    $A_i = (r_i - \bar r)/s$ with the group mean $\bar r$ and standard deviation $s$ (``ddof=1``;
    with ``scale_rewards=False`` only the mean is subtracted, "Dr. GRPO"). A group whose rewards
    are all equal has $s = 0$ and carries **no signal**: its advantages are 0 (no epsilon is
    added), and the fraction of such groups is reported as ``zero_signal``. The loss is the
    PPO-clipped surrogate
    $-\mathrm{mean}_i \min(\rho_i A_i, \mathrm{clip}(\rho_i, 1\pm\epsilon) A_i)$ over ``epochs``
    updates per group, plus $\beta\,k_3$ (default) in the loss.

    Exact: group statistics are replaced by their infinite-group limits under $q_{old}$ and
    ``zero_signal`` is the exact probability $\sum_v q(r=v)^G$ that a group is all-equal. With
    ``scale_rewards=True`` the fixed point is the Gibbs tilt at the *effective* temperature
    $\beta\,\mathrm{std}_{q^*}(r)$, not at $\beta$.

    A short exact run (50 Adam steps) towards ``gibbs(logp0, -reward, beta)``; ``info`` holds one
    entry per step, ``kl_target`` = $\mathrm{KL}(q^*\|q_t)$ in nats:

    >>> import jax, jax.numpy as jnp, optax
    >>> from freeenergy.train import Batch, make_trainer, run, tabular
    >>> objective = grpo("exact", scale_rewards=False, kl="exact", kl_in="loss")
    >>> trainer = make_trainer(tabular(jnp.log(jnp.array([0.5, 0.3, 0.2]))), objective,
    ...                        optax.adam(0.1))
    >>> state, info = run(trainer, jax.random.key(0), Batch(jnp.array([1.0, 0.0, 0.0]), 1.0), 50)
    >>> info.kl_target.shape
    (50,)
    >>> round(float(info.kl_target[0]), 3), bool(info.kl_target[-1] < 1e-3)
    (0.07, True)
    """
    mode = _mode(mode)
    n = _num_samples(num_samples, minimum=2)
    if not isinstance(scale_rewards, bool):
        raise TypeError(f"`scale_rewards` must be a bool, got {scale_rewards!r}.")
    kl, kl_in = _kl_options(kl, kl_in)
    return _policy_gradient(
        "grpo",
        mode=mode,
        num_samples=n,
        advantage="group",
        clip=_clip(clip),
        epochs=_epochs(epochs),
        kl=kl,
        kl_in=kl_in,
        scale_rewards=scale_rewards,
        reward_fn=_reward_fn(reward_fn),
    )


def ppo(
    mode: str = "sampled",
    *,
    num_samples: int = 8,
    clip: float | None = 0.2,
    epochs: int = 4,
    whiten: bool = True,
    kl: str | None = "k1",
    kl_in: str | None = "reward",
    reward_fn: Callable | None = None,
) -> Objective:
    r"""PPO-clip for a one-step (bandit) task (Schulman et al. 2017; TRL's PPO defaults).

    ``num_samples`` rollouts per prompt; advantage $A = r - \bar r$ (per-prompt batch mean as the
    value baseline), whitened over the whole batch when ``whiten``; ``epochs`` updates on the
    clipped surrogate $\min(\rho A, \mathrm{clip}(\rho, 1\pm\epsilon)A)$; ``k1`` KL in the reward.
    Exact: $A = r - \mathbb{E}_{q_{old}}[r]$ whitened by the pooled standard deviation and the
    surrogate averaged under $q_{old}$. The target is ``gibbs(logp0, -reward, beta)``.

    >>> import jax.numpy as jnp
    >>> from freeenergy.train import Batch
    >>> objective = ppo("exact", whiten=False)
    >>> objective.name, objective.mode, objective.epochs
    ('ppo', 'exact', 4)
    >>> target = objective.target(jnp.log(jnp.array([0.5, 0.5])), Batch(jnp.array([1.0, 0.0]), 2.0))
    >>> round(float(jnp.exp(target[0])), 4)  # e^(1/2) / (e^(1/2) + 1)
    0.6225
    """
    mode = _mode(mode)
    n = _num_samples(num_samples, minimum=2)
    if not isinstance(whiten, bool):
        raise TypeError(f"`whiten` must be a bool, got {whiten!r}.")
    kl, kl_in = _kl_options(kl, kl_in)
    return _policy_gradient(
        "ppo",
        mode=mode,
        num_samples=n,
        advantage="batch",
        clip=_clip(clip),
        epochs=_epochs(epochs),
        kl=kl,
        kl_in=kl_in,
        whiten=whiten,
        reward_fn=_reward_fn(reward_fn),
    )


# ----------------------------------------------------------------------------- SFT
class _SFTRollout(NamedTuple):
    weight: jax.Array  # (..., n) exact target weights, or (..., m) per-sample weights
    behaviors: Any  # (..., m) samples, or None in exact mode
    zero_signal: jax.Array


def sft(
    mode: str = "sampled",
    *,
    num_samples: int = 64,
    weighting: str = "none",
) -> Objective:
    r"""Supervised fine-tuning: minimize the cross-entropy $-\mathbb{E}_{y\sim d}[w(y)\log q(y)]$.

    ``batch.data`` is the demonstration distribution ``d`` (``log d``).

    * ``weighting="none"``: $w = 1$; the optimum is ``d`` itself (the target view of
      docs/theory.md §1).
    * ``weighting="reward"``: $w(y) = e^{r(y)/\beta}$, self-normalized (reward-weighted
      regression). With ``d = p0`` the optimum is $d\,w/Z = q^*_\beta$: weighted SFT on reference
      samples is KL-regularized RL (T11).

    Exact: loss $= -\sum_y t(y)\log q(y)$ with $t \propto d\,w$ (its optimum is ``t``). Sampled:
    ``num_samples`` draws $y_i \sim d$ per prompt with self-normalized weights
    $\omega_i = w(y_i)/\sum_j w(y_j)$, loss $-\sum_i \omega_i \log q(y_i)$; if ``batch.samples``
    holds a stored set, all of it is used at every step instead, and the target is its weighted
    empirical distribution $\propto \mathrm{count}(y)\,w(y)$.

    **Singular targets**: demonstrations outside the policy's support have $\log q = -\infty$.
    The reported loss is then ``+inf`` (and the KL to the target too); the surrogate that is
    differentiated keeps only the reachable demonstrations, so training runs on, towards ``d``
    conditioned on the support, and parameters stay finite. ``zero_signal`` is the target mass
    (exact) or the fraction of demonstrations (sampled) outside the support. Losses are
    cross-entropies in nats.

    >>> import jax, jax.numpy as jnp, optax
    >>> from freeenergy.train import Batch, make_trainer, run, tabular
    >>> trainer = make_trainer(tabular(jnp.log(jnp.array([0.5, 0.3, 0.2]))), sft("exact"),
    ...                        optax.adam(0.1))
    >>> demos = jnp.log(jnp.array([0.1, 0.1, 0.8]))
    >>> state, info = run(trainer, jax.random.key(0), Batch(jnp.zeros(3), data=demos), 50)
    >>> round(float(info.kl_target[0]), 4)  # KL(d || q) after the first step, nats
    0.7216
    >>> [round(float(x), 2) for x in jnp.exp(trainer.policy.logprobs(state.params))]
    [0.09, 0.12, 0.79]
    """
    mode = _mode(mode)
    n = _num_samples(num_samples)
    if not isinstance(weighting, str) or weighting not in ("none", "reward"):
        raise ValueError(
            f"`weighting` must be 'none' or 'reward', got {_checks._describe(weighting)}."
        )

    def log_weights(reward, beta):
        if weighting == "none":
            return jnp.zeros_like(reward)
        beta = jnp.asarray(beta, reward.dtype)
        return reward / jnp.where(beta > 0, beta, 1.0)

    def target(logp0, batch):
        if mode == "sampled" and batch.samples is not None:
            # A stored set: its empirical distribution plays the role of d.
            onehot = jax.nn.one_hot(jnp.asarray(batch.samples), logp0.shape[-1], dtype=logp0.dtype)
            counts = jnp.sum(onehot, axis=-2)
            logd = jnp.where(counts > 0, jnp.log(jnp.where(counts > 0, counts, 1.0)), -jnp.inf)
        else:
            logd = jnp.asarray(batch.data, logp0.dtype)
        return _normalize(logd + log_weights(jnp.asarray(batch.reward, logp0.dtype), batch.beta))

    def prepare(key, policy, params, reference, batch, extra, count):
        del reference, count
        if mode == "exact":
            logq = policy.logprobs(params)
            t = target(logq, batch)
            weight = _prob(t)
            zero = jnp.mean(jnp.sum(jnp.where(logq == -jnp.inf, weight, 0.0), axis=-1))
            return _sg(_SFTRollout(weight, None, zero)), extra
        if batch.samples is not None:
            y = jnp.asarray(batch.samples).astype(jnp.int32)
        else:
            y = _sample_flat(key, jnp.asarray(batch.data), n)
        reward = jnp.asarray(batch.reward)
        lw = log_weights(_gather(reward, y), batch.beta)
        weight = jax.nn.softmax(lw, axis=-1)
        lq = policy.log_prob(params, y)
        zero = jnp.mean((lq == -jnp.inf).astype(lq.dtype))
        return _sg(_SFTRollout(weight, y, zero)), extra

    def loss(policy, params, ro):
        lq = policy.logprobs(params) if mode == "exact" else policy.log_prob(params, ro.behaviors)
        pos = lq > -jnp.inf
        active = ro.weight > 0
        safe = jnp.where(pos, lq, 0.0)
        surrogate = -jnp.sum(jnp.where(active & pos, ro.weight * safe, 0.0), axis=-1)
        singular = jnp.any(active & ~pos, axis=-1)
        reported = jnp.mean(jnp.where(singular, jnp.inf, surrogate))
        return jnp.mean(surrogate), (reported, ro.zero_signal)

    requires = ("data", "positive_beta") if weighting == "reward" else ("data",)
    return Objective("sft", mode, 1, prepare, loss, target, lambda logp0: (), requires)


# ----------------------------------------------------------------------------- DPO
class _DPORollout(NamedTuple):
    chosen: Any
    rejected: Any
    ref_chosen: Any
    ref_rejected: Any
    weight: Any  # exact: (..., n, n) pair weights π(y)π(y')σ(r_y - r_y')
    ref_logq: Any
    beta: jax.Array
    zero_signal: jax.Array


def dpo(
    mode: str = "sampled",
    *,
    num_samples: int = 64,
    reward_fn: Callable | None = None,
) -> Objective:
    r"""Direct Preference Optimization (Rafailov et al. 2023) on Bradley–Terry preferences.

    Preference data: pairs $(y, y')$ drawn i.i.d. from the pair distribution $\pi$
    (``batch.data``, default the reference $p_0$) and labelled by the Bradley–Terry model with
    reward $r$: $P(y \succ y') = \sigma(r(y) - r(y'))$. With $h = \log q - \log p_0$ (the
    implicit reward over $\beta$) the loss is

    $$ -\mathbb{E}\,\log\sigma\big(\beta\,[h(y_w) - h(y_l)]\big). $$

    Sampled: ``num_samples`` labelled pairs per prompt per step. Exact: the expectation over
    all pairs and labels, $\sum_{y,y'} \pi(y)\pi(y')\,\sigma(r_y - r_{y'})\,
    \mathrm{softplus}(-\beta[h_y - h_{y'}])$ (``O(n²)``). Every pair's term is minimized at
    $\beta(h_y - h_{y'}) = r_y - r_{y'}$, so when $\pi$ covers ``supp(p0)`` the optimum is the
    Gibbs tilt ``gibbs(logp0, -reward, beta)``. Identical pairs carry no signal (``zero_signal``:
    their fraction, exactly $\sum_y \pi(y)^2$ in exact mode). Pairs touching behaviors outside the
    policy's support make the reported loss ``+inf`` and are left out of the gradient. Losses in
    nats.

    >>> import jax, jax.numpy as jnp, optax
    >>> from freeenergy.train import Batch, make_trainer, run, tabular
    >>> trainer = make_trainer(tabular(jnp.log(jnp.array([0.5, 0.3, 0.2]))), dpo("exact"),
    ...                        optax.adam(0.1))
    >>> state, info = run(trainer, jax.random.key(0), Batch(jnp.array([1.0, 0.0, 0.0]), 1.0), 50)
    >>> round(float(info.kl_target[0]), 3), bool(info.kl_target[-1] < 1e-3)  # to the Gibbs tilt
    (0.07, True)
    """
    mode = _mode(mode)
    n = _num_samples(num_samples)
    reward_fn = _reward_fn(reward_fn)

    def target(logp0, batch):
        return gibbs_target(logp0, jnp.asarray(batch.reward, logp0.dtype), batch.beta)

    def prepare(key, policy, params, reference, batch, extra, count):
        del params, count
        beta = jnp.asarray(batch.beta)
        if mode == "exact":
            ref = policy.logprobs(reference)
            pair = ref if batch.data is None else jnp.asarray(batch.data, ref.dtype)
            pi = _prob(pair)
            r = jnp.asarray(batch.reward, ref.dtype)
            r = jnp.where(pair > -jnp.inf, r, 0.0)
            pref = jax.nn.sigmoid(r[..., :, None] - r[..., None, :])
            weight = pi[..., :, None] * pi[..., None, :] * pref
            zero = jnp.mean(jnp.sum(jnp.square(pi), axis=-1))
            ro = _DPORollout(None, None, None, None, weight, ref, beta, zero)
            return _sg(ro), extra
        key_pairs, key_label = jax.random.split(key)
        # 2n i.i.d. draws in one call, split into the two members of n pairs. The sample axis is
        # the last axis of the log-probabilities (behaviors may carry trailing axes, e.g. tokens).
        if batch.data is None:
            both = policy.sample(key_pairs, reference, 2 * n)
        else:
            both = _sample_flat(key_pairs, jnp.asarray(batch.data), 2 * n)
        ref_both = policy.log_prob(reference, both)
        axis = ref_both.ndim - 1
        y1, y2 = jnp.split(both, 2, axis=axis)
        ref1, ref2 = jnp.split(ref_both, 2, axis=-1)
        if reward_fn is not None:
            r1 = _call_reward_fn(reward_fn, batch, y1, ref1)
            r2 = _call_reward_fn(reward_fn, batch, y2, ref2)
        else:
            r1 = _gather(jnp.asarray(batch.reward), y1)
            r2 = _gather(jnp.asarray(batch.reward), y2)
        first = jax.random.uniform(key_label, r1.shape, dtype=r1.dtype) < jax.nn.sigmoid(r1 - r2)
        first_b = first.reshape(first.shape + (1,) * (y1.ndim - first.ndim))
        chosen = jnp.where(first_b, y1, y2)
        rejected = jnp.where(first_b, y2, y1)
        ref_c = jnp.where(first, ref1, ref2)
        ref_r = jnp.where(first, ref2, ref1)
        same = (y1 == y2).reshape(*first.shape, -1).all(axis=-1)
        zero = jnp.mean(same.astype(r1.dtype))
        # A non-finite reward (from `reward_fn`) makes the step's zero-signal fraction NaN, so
        # `run` reports it rather than training on labels drawn from sigmoid(NaN).
        finite = jnp.all(jnp.isfinite(r1)) & jnp.all(jnp.isfinite(r2))
        zero = jnp.where(finite, zero, jnp.nan)
        ro = _DPORollout(chosen, rejected, ref_c, ref_r, None, None, beta, zero)
        return _sg(ro), extra

    def loss(policy, params, ro):
        if mode == "exact":
            logq = policy.logprobs(params)
            ok = (logq > -jnp.inf) & (ro.ref_logq > -jnp.inf)
            h = jnp.where(ok, logq - jnp.where(ok, ro.ref_logq, 0.0), 0.0)
            margin = ro.beta * (h[..., :, None] - h[..., None, :])
            pair_ok = ok[..., :, None] & ok[..., None, :]
            active = ro.weight > 0
            terms = jnp.where(active & pair_ok, ro.weight * jax.nn.softplus(-margin), 0.0)
            surrogate = jnp.sum(terms, axis=(-2, -1))
            singular = jnp.any(active & ~pair_ok, axis=(-2, -1))
        else:
            lc = policy.log_prob(params, ro.chosen)
            lr = policy.log_prob(params, ro.rejected)
            ok = (lc > -jnp.inf) & (lr > -jnp.inf) & (ro.ref_chosen > -jnp.inf)
            ok = ok & (ro.ref_rejected > -jnp.inf)

            def safe(x):
                return jnp.where(ok, x, 0.0)

            h_chosen = safe(lc) - safe(ro.ref_chosen)
            h_rejected = safe(lr) - safe(ro.ref_rejected)
            margin = ro.beta * (h_chosen - h_rejected)
            terms = jnp.where(ok, jax.nn.softplus(-margin), 0.0)
            surrogate = jnp.mean(terms, axis=-1)
            singular = jnp.any(~ok, axis=-1)
        reported = jnp.mean(jnp.where(singular, jnp.inf, surrogate))
        return jnp.mean(surrogate), (reported, ro.zero_signal)

    return Objective("dpo", mode, 1, prepare, loss, target, lambda logp0: (), ("positive_beta",))
