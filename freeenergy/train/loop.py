r"""The training loop: factories returning ``(init, step)``, ``lax.scan`` over steps.

``make_trainer(policy, objective, optimizer)`` returns a ``Trainer`` whose

* ``init(key) -> TrainState`` starts the policy at its initial parameters, which are also kept
  frozen as the **reference** $p_0$ (KL penalties and DPO's implicit reward are taken against it);
* ``step(key, state, batch) -> (state, Info)`` runs one step: the objective's ``prepare`` (draws
  with ``key`` in sampled mode), then ``objective.epochs`` optimizer updates, then the metrics of
  the updated policy. It is jitted once per trainer and traces once per batch shape.

``run(trainer, key, batch, num_steps)`` validates the batch and scans the step; ``vmap`` it over
keys (seeds) or over ``Batch(reward, beta=betas)`` (temperatures).

``Info`` (one per step; ``lax.scan`` stacks them into a trajectory; every field is averaged over
prompts):

* ``loss`` — the objective's reported value at the first update (``+inf`` for an SFT or DPO
  target outside the policy's support);
* ``expected_reward`` — $\mathbb{E}_q[r]$;
* ``kl_reference`` — $\mathrm{KL}(q\|p_0)$ (nats);
* ``kl_target`` — $\mathrm{KL}(q^*\|q)$ to the objective's exact answer $q^*$ (``target``): the
  Gibbs tilt ``gibbs(p0, -r, beta)`` for RL and DPO, $d\,w/Z$ for SFT. ``+inf`` exactly when
  $q^*$ has mass the policy cannot reach (a singular target); nats;
* ``entropy`` — $H(q)$ (nats);
* ``pass_at_k`` — ``(len(ks),)`` exact pass@k, $1-(1-q(C))^k$, of the ``correct`` set (default:
  the behaviors of maximal reward on ``supp(p0)``);
* ``accessible`` — $|A_{N,1/2}(q)|$ at budget ``N`` (default ``max(ks)``);
* ``zero_signal`` — the fraction of the step's signal units that carried no gradient (GRPO groups
  with all-equal rewards, identical preference pairs, unreachable demonstrations); exact modes
  report its exact probability.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree
from jax.sharding import Mesh, PartitionSpec

from .. import _checks
from ..distributions import _expect, _kl
from .objectives import Batch, Objective, _prob, _reward_support, gibbs_target
from .policies import Policy, flat_policy

__all__ = [
    "TrainState",
    "Info",
    "Trainer",
    "TrainingDiverged",
    "make_trainer",
    "make_mirror_descent",
    "run",
    "run_seeds",
    "check_batch",
]


class TrainState(NamedTuple):
    """What the next step needs: parameters, the frozen reference parameters, the optimizer
    state, the objective's extra state (e.g. a running baseline) and the step count."""

    params: Any
    reference: Any
    opt_state: Any
    extra: Any
    count: jax.Array


class Info(NamedTuple):
    """Diagnostics of one step (see the module docstring); never fed back into training.

    Scalars per step (``pass_at_k``: ``(len(ks),)``); ``run`` stacks them along a leading steps
    axis. ``loss``, ``kl_reference``, ``kl_target`` and ``entropy`` are in nats.
    """

    loss: jax.Array
    expected_reward: jax.Array
    kl_reference: jax.Array
    kl_target: jax.Array
    entropy: jax.Array
    pass_at_k: jax.Array
    accessible: jax.Array
    zero_signal: jax.Array


class Trainer(NamedTuple):
    """``init(key) -> TrainState``, ``step(key, state, batch) -> (state, Info)``, and the policy
    (``trainer.policy.logprobs(state.params)`` is the trained distribution)."""

    init: Callable[[jax.Array], TrainState]
    step: Callable[[jax.Array, TrainState, Batch], tuple[TrainState, Info]]
    policy: Policy
    objective: Objective | None
    ks: tuple[int, ...]
    diagnose: Callable | None = None


class TrainingDiverged(ValueError):
    """Raised by ``run`` and ``run_seeds`` when training produced NaN (see ``run``).

    Attributes: ``step`` (0-based index of the first step whose ``Info`` holds NaN), ``seed``
    (index into ``keys`` for ``run_seeds``, else None), ``cause`` (one sentence), and the whole
    result as ``state`` and ``infos``, for inspection.
    """

    def __init__(self, message, *, step, seed, cause, state, infos):
        super().__init__(message)
        self.step = step
        self.seed = seed
        self.cause = cause
        self.state = state
        self.infos = infos


# ----------------------------------------------------------------------------- metrics
def _metrics(logq, logp0, target, reward, correct, ks, budget):
    """Info fields computed from the full tables (each averaged over prompts).

    ``0·log 0 = 0`` by the double-``where`` rule; a KL is ``+inf`` when its first argument has
    mass where the second has none.
    """
    dtype = logq.dtype
    r = _reward_support(logp0, reward)
    if correct is None:
        rmax = jnp.max(jnp.where(logp0 > -jnp.inf, r, -jnp.inf), axis=-1, keepdims=True)
        correct = (r == rmax) & (logp0 > -jnp.inf)
    # NaN counts as "positive" so that a NaN policy gives NaN metrics (never a silent 0).
    pos_q = logq != -jnp.inf
    pos_t = target > -jnp.inf
    lq = jnp.where(pos_q, logq, 0.0)
    q = jnp.where(pos_q, jnp.exp(lq), 0.0)
    lt = jnp.where(pos_t, target, 0.0)
    t = jnp.where(pos_t, jnp.exp(lt), 0.0)
    # Accessible: 1 - (1 - q)^N >= 1/2  <=>  q >= 1 - 2^(-1/N)  (docs/theory.md §2).
    log_threshold = jnp.log(-jnp.expm1(-jnp.log(2.0) / jnp.asarray(budget, dtype)))

    def total(x):
        return jnp.mean(jnp.sum(x, axis=-1))

    mass_c = jnp.minimum(jnp.sum(jnp.where(correct, q, 0.0), axis=-1), 1.0)
    # pass@k = 1 - (1 - q(C))^k, as -expm1(k log1p(-q(C))).
    passk = -jnp.expm1(jnp.asarray(ks, dtype) * jnp.log1p(-mass_c)[..., None])
    return dict(
        expected_reward=total(q * r),
        kl_reference=total(jnp.where(pos_q, q * (lq - jnp.where(pos_q, logp0, 0.0)), 0.0)),
        kl_target=total(jnp.where(pos_t, t * (lt - jnp.where(pos_t, logq, 0.0)), 0.0)),
        entropy=total(-q * lq),
        pass_at_k=jnp.mean(passk.reshape(-1, len(ks)), axis=0),
        accessible=total((pos_q & (logq >= log_threshold)).astype(dtype)),
    )


def _natural(policy: Policy, params: Any, grads: Any, damping: float) -> Any:
    r"""Precondition ``grads`` by the pseudo-inverse of the exact Fisher matrix of the policy.

    $F = \frac1P\sum_{p}\sum_y q_p(y)\,\nabla\log q_p(y)\,\nabla\log q_p(y)^\top$ (averaged over
    prompts, as the losses are), natural gradient $(F + \lambda I)^{+} g$.
    """
    flat, unravel = ravel_pytree(params)
    g, _ = ravel_pytree(grads)

    def logq_of(f):
        return policy.logprobs(unravel(f))

    logq = logq_of(flat)
    jac = jax.jacfwd(logq_of)(flat)  # (..., n, d)
    q = _prob(logq)
    jac = jnp.where((q > 0)[..., None], jac, 0.0)
    prompts = max(int(np.prod(logq.shape[:-1])), 1)
    jac = jac.reshape(-1, jac.shape[-1])
    q = q.reshape(-1)
    fisher = (jac * q[:, None]).T @ jac / prompts
    if damping > 0:
        fisher = fisher + damping * jnp.eye(fisher.shape[0], dtype=fisher.dtype)
    step = jnp.linalg.pinv(fisher, hermitian=True) @ g
    return unravel(step)


# ----------------------------------------------------------------------------- validation
#: Largest ``num_steps`` of one run, and of all seeds of ``run_seeds`` together.
MAX_STEPS = 2**24
#: Largest number of pass@k budgets ``ks``.
MAX_KS = 1024
#: Largest ``batch_size`` of ``run_seeds``.
MAX_SEED_BATCH = 2**16
_STEPS_WHY = (
    "every step stores its Info record, about 100 bytes, and its PRNG key is split in advance"
)


def _ks(ks: Any) -> tuple[int, ...]:
    if isinstance(ks, (int, np.integer)) and not isinstance(ks, bool):
        ks = (ks,)
    if not isinstance(ks, (tuple, list)) or len(ks) == 0:
        raise TypeError(f"`ks` must be a non-empty tuple of whole numbers >= 1, got {ks!r}.")
    if len(ks) > MAX_KS:
        raise ValueError(
            f"`ks` has {len(ks)} entries; at most {MAX_KS} (every step stores pass@k for each)."
        )
    return tuple(
        _checks.integer(
            k, "ks", minimum=1, maximum=2**53, why="pass@k = 1 - (1 - q(C))^k takes k as a float"
        )
        for k in ks
    )


def _shape_of(policy: Policy) -> tuple[tuple[int, ...], Any]:
    out = jax.eval_shape(lambda k: policy.logprobs(policy.init(k)), jax.random.key(0))
    if (
        not hasattr(out, "shape")
        or len(out.shape) == 0
        or out.shape[-1] == 0
        or not jnp.issubdtype(out.dtype, jnp.floating)
    ):
        raise TypeError(
            "`policy.logprobs(policy.init(key))` must be a float array of shape (..., n) with "
            f"n >= 1 (log-probabilities over the behaviors), got {out}."
        )
    return tuple(out.shape), out.dtype


def _check_policy(policy: Any) -> Policy:
    if not isinstance(policy, Policy):
        raise TypeError(
            f"`policy` must be a freeenergy.train.Policy (e.g. `tabular(logp0)`), got "
            f"{type(policy).__name__}."
        )
    missing = [name for name, f in policy._asdict().items() if not callable(f)]
    if missing:
        raise TypeError(
            f"`policy` fields {missing} are not callables; a Policy holds the four functions "
            "init(key), logprobs(params), sample(key, params, num), log_prob(params, behaviors)."
        )
    return policy


def _correct(correct: Any, shape: tuple[int, ...]) -> jax.Array | None:
    if correct is None:
        return None
    c = _checks.mask(correct, "correct")
    try:
        jnp.broadcast_shapes(c.shape, shape)
    except ValueError:
        raise ValueError(
            f"`correct` has shape {tuple(c.shape)} but the policy's distributions have shape "
            f"{shape}; give one flag per behavior (and prompt)."
        ) from None
    if c.shape[-1] != shape[-1]:
        raise ValueError(f"`correct` has {c.shape[-1]} behaviors, the policy has {shape[-1]}.")
    return c


def _budget(budget: Any, ks: tuple[int, ...]) -> float:
    if budget is None:
        return float(max(ks))
    v = _checks.scalar(budget, "budget")
    if not (v >= 1 and np.isfinite(v)):
        raise ValueError(f"`budget` must be a finite number >= 1 (samples), got {v!r}.")
    return v


def check_batch(trainer: Trainer, batch: Any) -> Batch:
    """Validate a ``Batch`` for ``trainer`` (shapes always; values when concrete).

    ``batch.reward`` must be finite with one entry per behavior, shape ``(..., n)``
    broadcasting against the policy's ``(..., n)``; the other fields as the objective requires
    (see ``Batch``). Returns the checked ``Batch``; raises ``TypeError``/``ValueError``
    otherwise.

    >>> import jax.numpy as jnp, optax
    >>> from freeenergy.train import Batch, make_trainer, reinforce, tabular
    >>> trainer = make_trainer(tabular(jnp.log(jnp.array([0.5, 0.3, 0.2]))), reinforce(),
    ...                        optax.sgd(0.1))
    >>> type(check_batch(trainer, Batch(jnp.array([1.0, 0.0, 0.0]), 1.0))).__name__
    'Batch'
    >>> check_batch(trainer, Batch(jnp.zeros(4), 1.0))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: `batch.reward` has shape (4,) but the policy has 3 behaviors ...
    """
    if not isinstance(trainer, Trainer):
        raise TypeError(
            f"`trainer` must be a Trainer from make_trainer/make_mirror_descent, got "
            f"{type(trainer).__name__}."
        )
    if not isinstance(batch, Batch):
        raise TypeError(
            f"`batch` must be a freeenergy.train.Batch(reward, beta, data, samples), got "
            f"{type(batch).__name__}."
        )
    shape, dtype = _shape_of(trainer.policy)
    n = shape[-1]
    reward = _checks.energy(batch.reward, "batch.reward", sign=-1)
    if reward.ndim == 0 or reward.shape[-1] != n:
        raise ValueError(
            f"`batch.reward` has shape {tuple(reward.shape)} but the policy has {n} behaviors "
            f"(distributions of shape {shape}); give one reward per behavior on the last axis."
        )
    try:
        jnp.broadcast_shapes(reward.shape, shape)
    except ValueError:
        raise ValueError(
            f"`batch.reward` has shape {tuple(reward.shape)}, which does not broadcast against "
            f"the policy's distributions of shape {shape}."
        ) from None
    if not _checks.is_traced(reward) and not np.all(np.isfinite(np.asarray(reward))):
        raise ValueError(
            "`batch.reward` must be finite for gradient training (a policy cannot reach zero mass "
            "in finite steps, so a -inf reward makes the objective -inf). Exclude a behavior by "
            "giving it -inf in the policy's base `logp0` instead."
        )
    if not _checks.is_traced(reward):
        largest = float(np.max(np.abs(np.asarray(reward, dtype=np.float64))))
        limit = float(np.sqrt(np.finfo(dtype).max)) / 4
        if largest > limit:
            raise ValueError(
                f"`batch.reward` reaches magnitude {largest:.6g}, too large for training in "
                f"{np.dtype(dtype).name} (at most {limit:.6g}): squares of rewards and "
                "advantages (GRPO's group variance, Adam's second moment) would overflow and "
                "silently zero the update. Rescale the reward (r/c at beta/c has the same Gibbs "
                "target)."
            )
    beta = _checks.to_array(batch.beta, "batch.beta")
    if beta.ndim != 0:
        raise ValueError(
            f"`batch.beta` must be a scalar, got shape {tuple(beta.shape)}; to train at several "
            "temperatures, `jax.vmap` over the batch (see `run`)."
        )
    requires = trainer.objective.requires if trainer.objective is not None else ()
    if not _checks.is_traced(beta):
        b = float(beta)
        if not np.isfinite(b) or b < 0:
            raise ValueError(f"`batch.beta` must be finite and >= 0, got {b!r}.")
        if "positive_beta" in requires and b <= 0:
            name = trainer.objective.name
            raise ValueError(
                f"`batch.beta` must be > 0 for {name} (it is the temperature of the implicit "
                f"reward / of the weights exp(r/beta)), got {b!r}."
            )
    data = batch.data
    if data is not None:
        data = _checks.logp(data, "batch.data")
        _checks.same_last_axis("batch.data", data, "batch.reward", reward)
    samples = batch.samples
    if samples is not None:
        s = jnp.asarray(samples)
        if not jnp.issubdtype(s.dtype, jnp.integer):
            raise TypeError(f"`batch.samples` must hold integer behavior indices, got {s.dtype}.")
        if s.ndim == 0 or s.shape[-1] == 0:
            raise ValueError("`batch.samples` must have shape (..., m) with m >= 1 samples.")
        if not _checks.is_traced(s) and (np.any(np.asarray(s) < 0) or np.any(np.asarray(s) >= n)):
            raise ValueError(f"`batch.samples` must lie in [0, {n}), got values outside.")
    if (
        "data" in requires
        and data is None
        and not (samples is not None and trainer.objective.mode == "sampled")
    ):
        raise ValueError(
            f"{trainer.objective.name} ({trainer.objective.mode}) needs `batch.data`, the "
            "demonstration distribution (log d)"
            + (
                ", or `batch.samples`, a stored demonstration set."
                if trainer.objective.mode == "sampled"
                else "."
            )
        )
    return Batch(reward=reward, beta=beta, data=data, samples=samples)


# ----------------------------------------------------------------------------- trainers
def make_trainer(
    policy: Policy,
    objective: Objective,
    optimizer: Any,
    *,
    ks: Any = (1, 8, 64),
    budget: Any = None,
    correct: Any = None,
    natural_gradient: bool = False,
    damping: float = 0.0,
) -> Trainer:
    r"""Build ``(init, step)`` for gradient post-training of ``policy`` on ``objective``.

    ``optimizer`` is an ``optax.GradientTransformation`` (e.g. ``optax.adam(0.05)``;
    ``optax.sgd(lr)`` is plain gradient descent — "vanilla policy gradient").
    ``natural_gradient=True`` preconditions every gradient by the pseudo-inverse of the policy's
    **exact** Fisher matrix (plus ``damping``·I) before the optimizer: natural policy gradient.
    On a tabular softmax the natural gradient of $\mathbb{E}_q[r]-\beta\,\mathrm{KL}(q\|p_0)$ is
    the centred $r - \beta\log(q/p_0)$, so ``optax.sgd(η)`` then takes exactly the mirror-descent
    step of ``make_mirror_descent(η)``. ``ks``, ``budget`` and ``correct`` configure the
    pass@k and accessible-support metrics (see the module docstring).

    >>> import jax, jax.numpy as jnp, optax
    >>> from freeenergy.train import tabular, reinforce, make_trainer, run, Batch
    >>> logp0 = jnp.log(jnp.array([0.5, 0.3, 0.2]))
    >>> trainer = make_trainer(tabular(logp0), reinforce("exact", kl="exact"), optax.adam(0.1))
    >>> state, info = run(trainer, jax.random.key(0), Batch(jnp.array([1.0, 0.0, 0.0]), 1.0), 300)
    >>> bool(info.kl_target[-1] < 1e-4)
    True
    """
    policy = _check_policy(policy)
    if not isinstance(objective, Objective):
        raise TypeError(
            f"`objective` must be a freeenergy.train.Objective (e.g. `grpo()`), got "
            f"{type(objective).__name__}."
        )
    if not (hasattr(optimizer, "init") and hasattr(optimizer, "update")):
        raise TypeError(
            f"`optimizer` must be an optax.GradientTransformation (e.g. `optax.adam(1e-2)`), got "
            f"{type(optimizer).__name__}."
        )
    ks = _ks(ks)
    budget = _budget(budget, ks)
    shape, _ = _shape_of(policy)
    correct = _correct(correct, shape)
    if not isinstance(natural_gradient, bool):
        raise TypeError(f"`natural_gradient` must be a bool, got {natural_gradient!r}.")
    damping = _checks.scalar(damping, "damping")
    if damping < 0:
        raise ValueError(f"`damping` must be >= 0, got {damping!r}.")
    _check_memory(policy, objective, shape, natural_gradient)
    _probe_optimizer(optimizer, policy)

    def init(key):
        params = policy.init(key)
        logq = policy.logprobs(params)
        return TrainState(
            params=params,
            reference=params,
            opt_state=optimizer.init(params),
            extra=objective.init_extra(logq),
            count=jnp.zeros((), jnp.int32),
        )

    def step(key, state, batch):
        rollout, extra = objective.prepare(
            key, policy, state.params, state.reference, batch, state.extra, state.count
        )

        def update(carry, _):
            params, opt_state = carry
            grad_fn = jax.value_and_grad(lambda p: objective.loss(policy, p, rollout), has_aux=True)
            (_, (reported, zero)), grads = grad_fn(params)
            if natural_gradient:
                grads = _natural(policy, params, grads, damping)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
            return (params, opt_state), (reported, zero)

        if objective.epochs == 1:
            (params, opt_state), (losses, zeros) = update((state.params, state.opt_state), None)
            losses, zeros = losses[None], zeros[None]
        else:
            (params, opt_state), (losses, zeros) = jax.lax.scan(
                update, (state.params, state.opt_state), None, length=objective.epochs
            )
        logq = policy.logprobs(params)
        logp0 = policy.logprobs(state.reference)
        target = objective.target(logp0, batch)
        reward = jnp.asarray(batch.reward, logq.dtype)
        info = Info(
            loss=losses[0],
            zero_signal=zeros[0],
            **_metrics(logq, logp0, target, reward, correct, ks, budget),
        )
        new_state = TrainState(params, state.reference, opt_state, extra, state.count + 1)
        return new_state, info

    def diagnose(key, state, batch):
        """Which stage of one step (from a finite ``state``) first produces NaN or inf."""
        rollout, _ = objective.prepare(
            key, policy, state.params, state.reference, batch, state.extra, state.count
        )
        fields = rollout._asdict() if hasattr(rollout, "_asdict") else {"rollout": rollout}
        grad_fn = jax.grad(lambda p: objective.loss(policy, p, rollout), has_aux=True)
        grads, _ = grad_fn(state.params)
        if natural_gradient:
            grads = _natural(policy, state.params, grads, damping)
        updates, _ = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return dict(
            rollout={k: _has_nan(v) for k, v in fields.items() if v is not None},
            gradient=_has_nonfinite(grads),
            update=_has_nonfinite(updates),
            params=_has_nan(params) | _has_nan(policy.logprobs(params)),
        )

    return Trainer(jax.jit(init), jax.jit(step), policy, objective, ks, jax.jit(diagnose))


def _float_leaves(tree: Any) -> list:
    return [
        x
        for x in jax.tree_util.tree_leaves(tree)
        if hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.inexact)
    ]


def _has_nan(tree: Any) -> jax.Array:
    return jnp.any(jnp.array([jnp.any(jnp.isnan(x)) for x in _float_leaves(tree)] + [False]))


def _has_nonfinite(tree: Any) -> jax.Array:
    return jnp.any(jnp.array([jnp.any(~jnp.isfinite(x)) for x in _float_leaves(tree)] + [False]))


#: Largest number of entries of the dense arrays a training step builds: the exact Fisher matrix
#: and Jacobian of ``natural_gradient`` and the pair table of exact DPO.
MAX_STEP_ENTRIES = 2**28


def _check_memory(policy, objective, shape, natural_gradient) -> None:
    """Refuse a trainer whose dense per-step arrays would not fit in memory (8 bytes an entry)."""
    rows, n = math.prod(shape[:-1]), shape[-1]
    if natural_gradient:
        params = jax.eval_shape(policy.init, jax.random.key(0))
        d = sum(math.prod(x.shape) for x in jax.tree_util.tree_leaves(params))
        entries = d * d + rows * n * d
        if entries > MAX_STEP_ENTRIES:
            raise ValueError(
                f"`natural_gradient=True` builds the exact d × d Fisher matrix and the "
                f"(prompts · n) × d Jacobian: d = {d:,} parameters, {rows:,} × {n:,} "
                f"log-probabilities, {entries:,} entries, more than {MAX_STEP_ENTRIES:,} "
                "(8 bytes each). Use natural_gradient=False or a policy with fewer parameters."
            )
    if objective.name == "dpo" and objective.mode == "exact" and rows * n * n > MAX_STEP_ENTRIES:
        raise ValueError(
            f"exact-mode DPO sums over all {n:,} × {n:,} pairs of behaviors for {rows:,} prompts: "
            f"{rows * n * n:,} entries, more than {MAX_STEP_ENTRIES:,} (8 bytes each). Use "
            "`dpo('sampled')` on a space this large."
        )


def _probe_optimizer(optimizer: Any, policy: Policy) -> None:
    """Refuse an optimizer whose first update of a gradient of ones is not finite: a NaN or
    infinite learning rate (or schedule value) would otherwise turn training into NaN."""
    try:
        params = policy.init(jax.random.key(0))
        ones = jax.tree_util.tree_map(jnp.ones_like, params)
        updates, _ = optimizer.update(ones, optimizer.init(params), params)
    except TypeError:  # an optimizer that needs extra arguments: nothing to probe
        return
    if bool(_has_nonfinite(updates)):
        raise ValueError(
            "`optimizer` turns a finite gradient into a NaN or infinite update at its first step: "
            "its learning rate (or another hyperparameter) is NaN or infinite. Give a finite "
            "learning rate, e.g. `optax.adam(1e-2)`."
        )


def make_mirror_descent(
    logp0: Any,
    step_size: Any,
    *,
    ks: Any = (1, 8, 64),
    budget: Any = None,
    correct: Any = None,
) -> Trainer:
    r"""Exact mirror descent on $J(q) = \mathbb{E}_q[r] - \beta\,\mathrm{KL}(q\|p_0)$: one Gibbs
    tilt per step (the reference method).

    $$ q_{t+1} = \mathrm{gibbs}\big(q_t,\; -[r - \beta\log(q_t/p_0)],\; 1/\eta\big)
       \;\propto\; q_t^{1-\eta\beta}\,p_0^{\eta\beta}\,e^{\eta r}. $$

    The log-ratio to the target contracts by $(1 - \eta\beta)$ per step (converges for
    $0 < \eta\beta < 2$; $\eta\beta = 1$ lands on ``gibbs(p0, -r, β)`` in one step). With
    ``beta = 0`` ``T`` steps equal one tilt at temperature $1/(T\eta)$ (docs/theory.md T3). The
    state's ``params`` are the log-probabilities themselves (nats, shape of ``logp0``); the batch
    is ``Batch(reward, beta)``.

    >>> import jax, jax.numpy as jnp
    >>> from freeenergy.train import Batch, run
    >>> trainer = make_mirror_descent(jnp.log(jnp.array([0.5, 0.3, 0.2])), step_size=1.0)
    >>> state, info = run(trainer, jax.random.key(0), Batch(jnp.array([1.0, 0.0, 0.0]), 1.0), 1)
    >>> [round(float(x), 4) for x in jnp.exp(state.params)]  # eta * beta = 1: the Gibbs tilt
    [0.7311, 0.1614, 0.1076]
    >>> abs(float(info.kl_target[-1])) < 1e-6
    True
    """
    logp0 = _checks.logp(logp0, "logp0")
    logp0 = logp0.astype(_checks._float_dtype(logp0))
    eta = _checks.scalar(step_size, "step_size")
    if not (np.isfinite(eta) and eta > 0):
        raise ValueError(f"`step_size` must be finite and > 0, got {eta!r}.")
    ks = _ks(ks)
    budget = _budget(budget, ks)
    correct = _correct(correct, tuple(logp0.shape))
    policy = flat_policy(lambda key: logp0, lambda params: params)
    objective = Objective(
        "mirror_descent",
        "exact",
        1,
        None,
        None,
        lambda lp0, batch: gibbs_target(lp0, jnp.asarray(batch.reward, lp0.dtype), batch.beta),
        lambda lp0: (),
    )

    def init(key):
        del key
        return TrainState(logp0, logp0, (), (), jnp.zeros((), jnp.int32))

    def step(key, state, batch):
        del key
        logq, ref = state.params, state.reference
        beta = jnp.asarray(batch.beta, logq.dtype)
        r = _reward_support(ref, jnp.asarray(batch.reward, logq.dtype))
        pos = logq > -jnp.inf
        log_ratio = jnp.where(pos, logq - jnp.where(pos, ref, 0.0), 0.0)
        signal = jnp.where(pos, r - beta * log_ratio, 0.0)
        loss = jnp.mean(-_expect(logq, r) + beta * _kl(logq, ref))
        new = _tilted(logq, signal, eta)
        target = objective.target(ref, batch)
        info = Info(
            loss=loss,
            zero_signal=jnp.zeros((), logq.dtype),
            **_metrics(new, ref, target, r, correct, ks, budget),
        )
        return TrainState(new, ref, (), (), state.count + 1), info

    return Trainer(jax.jit(init), jax.jit(step), policy, objective, ks)


def _tilted(logq, signal, eta):
    """gibbs(q, -signal, 1/eta) = normalize(log q + eta * signal), -inf kept."""
    from ..free_energy import _gibbs

    return _gibbs(logq, -signal, jnp.asarray(1.0 / eta, logq.dtype))


# ----------------------------------------------------------------------------- the loop
@partial(jax.jit, static_argnames=("trainer", "num_steps"))
def _run(trainer, key, batch, num_steps):
    if trainer.objective.mode == "exact":  # deterministic: no keys to draw (compiles faster)
        state = trainer.init(key)
        return jax.lax.scan(lambda s, _: trainer.step(key, s, batch), state, None, length=num_steps)
    keys = jax.random.split(key, num_steps + 1)
    state = trainer.init(keys[0])
    return jax.lax.scan(lambda s, k: trainer.step(k, s, batch), state, keys[1:])


def run(trainer: Trainer, key: jax.Array, batch: Batch, num_steps: int):
    """Train for ``num_steps`` steps from ``trainer.init``: ``(final_state, infos)``.

    ``infos`` is the ``Info`` trajectory stacked by ``lax.scan`` (leading axis: steps). The key
    is split into ``num_steps + 1`` keys: the first initializes, the others drive the steps
    (exact-mode objectives draw nothing and get ``key`` unchanged). Pure and jit-compiled (once
    per trainer, batch shape and ``num_steps``), so it can be batched::

        seeds = jax.random.split(jax.random.key(0), 8)
        jax.vmap(lambda k: run(trainer, k, batch, 100))(seeds)                # over seeds
        jax.vmap(lambda b: run(trainer, key, Batch(reward, b), 100))(betas)  # over beta

    ``num_steps`` is at most ``MAX_STEPS`` (``2**24``).

    **NaN is an error.** When the result holds NaN (in any ``Info`` field or the parameters) —
    a NaN learning-rate schedule, a ``reward_fn`` returning NaN or ``±inf``, an update too large
    for the reward's scale — ``run`` raises ``TrainingDiverged`` naming the first step whose
    ``Info`` is NaN and the stage of that step that produced it (the rewards, the gradient, the
    optimizer's update, or the updated policy), found by replaying the run up to that step. The
    result is attached to the error (``err.state``, ``err.infos``). ``+inf`` is not an error: it
    is the reported loss and KL of a target outside the policy's support. Under a caller's
    ``jit``/``vmap`` nothing is concrete and the check is skipped.

    The ``Info`` fields are ``(num_steps,)`` arrays (``pass_at_k``: ``(num_steps, len(ks))``);
    losses, KLs and entropies are in nats.

    >>> import jax, jax.numpy as jnp, optax
    >>> from freeenergy.train import Batch, make_trainer, rloo, tabular
    >>> trainer = make_trainer(tabular(jnp.log(jnp.array([0.5, 0.5]))), rloo(num_samples=4),
    ...                        optax.sgd(0.5))
    >>> state, infos = run(trainer, jax.random.key(0), Batch(jnp.array([1.0, 0.0]), 0.0), 20)
    >>> infos.loss.shape, infos.pass_at_k.shape
    ((20,), (20, 3))
    >>> bool(infos.expected_reward[-1] > 0.5)  # more mass on the rewarded behavior
    True
    """
    num_steps, batch = _run_arguments(trainer, num_steps, batch)
    key = _checks.key(key)
    out = _run(trainer, key, batch, num_steps)
    _check_finite(trainer, key, batch, num_steps, out, seed=None)
    return out


def _run_arguments(trainer: Any, num_steps: Any, batch: Any) -> tuple[int, Batch]:
    """The checks ``run`` and ``run_seeds`` share: the trainer, the step count, the batch."""
    if not isinstance(trainer, Trainer):
        raise TypeError(
            f"`trainer` must be a Trainer from make_trainer/make_mirror_descent, got "
            f"{type(trainer).__name__}."
        )
    num_steps = _checks.integer(
        num_steps, "num_steps", minimum=1, maximum=MAX_STEPS, why=_STEPS_WHY
    )
    return num_steps, check_batch(trainer, batch)


@partial(jax.jit, static_argnames=("trainer", "num_steps", "steps"))
def _replay(trainer, key, batch, num_steps, steps):
    """The state after the first ``steps`` steps of ``_run(trainer, key, batch, num_steps)``
    and the key of the next step."""
    if trainer.objective.mode == "exact":
        state = trainer.init(key)
        state, _ = jax.lax.scan(lambda s, _: trainer.step(key, s, batch), state, None, length=steps)
        return state, key
    keys = jax.random.split(key, num_steps + 1)
    state = trainer.init(keys[0])
    state, _ = jax.lax.scan(lambda s, k: trainer.step(k, s, batch), state, keys[1 : steps + 1])
    return state, keys[steps + 1]


_REWARD_FIELDS = ("advantage", "zero_signal")


def _cause(trainer: Trainer, key: jax.Array, batch: Batch, num_steps: int, step: int) -> str:
    """One sentence on which stage of step ``step`` turned a finite state into NaN."""
    if trainer.diagnose is None:
        return (
            "the mirror-descent step overflowed (reward / step_size too large for the "
            "floating-point range); use a smaller `step_size`"
        )
    state, step_key = _replay(trainer, key, batch, num_steps, step)
    if bool(_has_nan(state.params)):
        return "the replayed run was already NaN before that step; replay it with `trainer.step`"
    found = jax.tree_util.tree_map(bool, trainer.diagnose(step_key, state, batch))
    bad = [name for name, nan in found["rollout"].items() if nan]
    if any(name in _REWARD_FIELDS for name in bad):
        return (
            "the rewards or advantages of that step's draws are not finite: a `reward_fn` "
            "returned NaN or ±inf (rewards must be finite real numbers), or the rewards are too "
            "large for r - E[r] (rescale them)"
        )
    if bad:
        return (
            f"the step's data ({', '.join(bad)}) holds NaN although the parameters are finite: "
            "the policy's `sample`/`log_prob` returned NaN"
        )
    if found["gradient"]:
        return (
            f"the gradient of the {trainer.objective.name} loss is not finite although the "
            "parameters and the step's data are (the loss overflowed: rescale the reward or "
            "raise `batch.beta`)"
        )
    if found["update"]:
        return (
            "the optimizer turned a finite gradient into a NaN or infinite update: check its "
            "learning rate (NaN or infinite, or a schedule that reaches such a value)"
        )
    if found["params"]:
        return (
            "a finite update made the parameters or the policy's log-probabilities NaN (the "
            "learning rate is too large for the reward's scale, or `logprobs` overflows)"
        )
    return "the replayed step stayed finite; replay the run step by step with `trainer.step`"


def _check_finite(trainer, key, batch, num_steps, out, *, seed):
    """Raise ``TrainingDiverged`` when ``out = (state, infos)`` holds NaN (concrete values only).

    ``infos`` leaves have a leading step axis (and a seed axis before it when ``seed`` is
    ``"all"``: then ``key`` is the array of keys)."""
    state, infos = out
    leaves = _float_leaves(infos) + _float_leaves(state.params)
    if _checks.is_traced(*leaves):
        return
    many = seed == "all"
    shape = (len(key), num_steps) if many else (num_steps,)
    nan = np.zeros(shape, bool)
    fields = []
    for name, value in infos._asdict().items():
        v = np.isnan(np.asarray(value)).reshape(*shape, -1).any(axis=-1)
        if v.any():
            fields.append(name)
        nan |= v
    params_nan = np.zeros(shape[:-1], bool)
    for leaf in _float_leaves(state.params):
        params_nan |= np.isnan(np.asarray(leaf)).reshape(*shape[:-1], -1).any(axis=-1)
    nan[..., -1] |= params_nan
    if not nan.any():
        return
    if many:
        seeds_bad = np.flatnonzero(nan.any(axis=-1))
        seed_index = int(seeds_bad[0])
        step = int(np.argmax(nan[seed_index]))
        run_key = key[seed_index]
        where = f" (seed {seed_index} of {len(key)}; {len(seeds_bad)} seeds diverged)"
    else:
        seed_index = None
        step = int(np.argmax(nan))
        run_key = key
        where = ""
    try:
        cause = _cause(trainer, run_key, batch, num_steps, step)
    except Exception as err:  # the diagnosis must never hide the divergence itself
        cause = f"not isolated (replaying the step raised {type(err).__name__}: {err})"
    what = f"NaN in Info.{', Info.'.join(fields)}" if fields else "NaN parameters"
    raise TrainingDiverged(
        f"training produced NaN at step {step} of {num_steps}{where}: {what}. Cause: {cause}. "
        "The result is attached to this error as `.state` and `.infos`.",
        step=step,
        seed=seed_index,
        cause=cause,
        state=state,
        infos=infos,
    )


def _seed_keys(keys: Any) -> jax.Array:
    """A batch of PRNG keys: typed keys of shape ``(S,)`` or legacy uint32 keys ``(S, 2)``."""
    keys = _checks.key(keys, "keys", single=False)
    typed = jax.dtypes.issubdtype(keys.dtype, jax.dtypes.prng_key)
    if keys.ndim != (1 if typed else 2) or keys.shape[0] == 0:
        raise ValueError(
            f"`keys` must hold one PRNG key per seed, shape (S,) (S >= 1), got shape "
            f"{tuple(keys.shape)}; make them with `jax.random.split(jax.random.key(0), S)`."
        )
    return keys


@partial(jax.jit, static_argnames=("trainer", "num_steps", "batch_size", "mesh"))
def _run_seeds(trainer, keys, batch, num_steps, batch_size, mesh):
    def share(local_keys):
        return jax.lax.map(
            lambda k: _run(trainer, k, batch, num_steps), local_keys, batch_size=batch_size
        )

    spec = PartitionSpec("seeds")
    return jax.shard_map(share, mesh=mesh, in_specs=spec, out_specs=spec, check_vma=False)(keys)


def run_seeds(
    trainer: Trainer,
    keys: jax.Array,
    batch: Batch,
    num_steps: int,
    *,
    batch_size: int = 1,
    devices: Any = None,
):
    """Train once per key of ``keys``, the seeds spread over ``devices``: ``(states, infos)``.

    The result equals ``jax.vmap(lambda k: run(trainer, k, batch, num_steps))(keys)``: every
    leaf gains a leading seed axis of length ``S = len(keys)``. The seeds are split evenly over
    a one-axis ``jax.sharding.Mesh`` of ``devices`` (default: all of ``jax.devices()``) by
    ``jax.shard_map``, so each device trains its share independently; on each device
    ``lax.map`` runs ``batch_size`` seeds at a time as one ``vmap`` (larger batches amortize
    per-kernel overhead; smaller ones keep a batch's parameters and optimizer state in cache —
    on a CPU, 1 is usually fastest). When ``S`` is not a multiple of the number of devices the
    last key is repeated to fill the mesh and the extra runs are dropped. ``S · num_steps`` is at
    most ``MAX_STEPS``; a seed that produces NaN raises ``TrainingDiverged`` as in ``run`` (its
    ``seed`` attribute is the index of the first such key).

    JAX sees a CPU as one device unless told otherwise: to use every core, call
    ``jax.config.update("jax_num_cpu_devices", os.cpu_count())`` before JAX first runs
    anything. The same call spreads seeds over GPUs or TPUs unchanged.

    >>> import jax, jax.numpy as jnp, optax
    >>> from freeenergy.train import tabular, grpo, make_trainer, run_seeds, Batch
    >>> logp0 = jnp.log(jnp.array([0.5, 0.3, 0.2]))
    >>> trainer = make_trainer(tabular(logp0), grpo(num_samples=4), optax.adam(0.1))
    >>> keys = jax.random.split(jax.random.key(0), 3)
    >>> states, infos = run_seeds(trainer, keys, Batch(jnp.array([1.0, 0.0, 0.0]), 0.1), 50)
    >>> infos.expected_reward.shape  # (seeds, steps)
    (3, 50)
    """
    num_steps, batch = _run_arguments(trainer, num_steps, batch)
    keys = _seed_keys(keys)
    if keys.shape[0] * num_steps > MAX_STEPS:
        raise ValueError(
            f"`num_steps` = {num_steps} for each of {keys.shape[0]} keys is too large: "
            f"len(keys) * num_steps must be at most {MAX_STEPS:,} ({_STEPS_WHY}). Use fewer "
            "steps or fewer keys."
        )
    batch_size = _checks.integer(
        batch_size,
        "batch_size",
        minimum=1,
        maximum=MAX_SEED_BATCH,
        why="that many runs are vectorized at once, each with its own parameters and optimizer "
        "state in memory",
    )
    devices = jax.devices() if devices is None else devices
    if not isinstance(devices, (list, tuple)) or not devices:
        raise TypeError(
            f"`devices` must be a non-empty list of JAX devices (e.g. `jax.devices()`), got "
            f"{devices!r}."
        )
    if not all(isinstance(d, jax.Device) for d in devices):
        raise TypeError(
            "`devices` must hold JAX devices (from `jax.devices()`), got "
            f"{[type(d).__name__ for d in devices]}."
        )
    seeds = keys.shape[0]
    count = len(devices)
    padded = -(-seeds // count) * count
    if padded != seeds:
        keys = jnp.concatenate([keys, jnp.repeat(keys[-1:], padded - seeds, axis=0)])
    mesh = Mesh(np.asarray(devices), ("seeds",))
    out = _run_seeds(trainer, keys, batch, num_steps, min(batch_size, padded // count), mesh)
    if padded != seeds:
        out = jax.tree_util.tree_map(lambda x: x[:seeds], out)
    _check_finite(trainer, keys[:seeds], batch, num_steps, out, seed="all")
    return out
