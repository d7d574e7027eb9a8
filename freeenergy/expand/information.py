r"""New information: changing the reference itself, and what a target costs before and after.

Reweighting — SFT, RL, DPO, best-of-n — maps $p_0$ to a Gibbs tilt $q \propto p_0\,e^{-U/\beta}$,
and for every finite energy $\mathrm{supp}(q) \subseteq \mathrm{supp}(p_0)$ (docs/theory.md T2). A
*singular* target $d$ (mass where $p_0$ has none) is therefore out of reach of every tilt:
$\mathrm{KL}(d\|p_0) = +\infty$, its implied energy is $-\infty$ there, and
``diagnose(logp0, logd, ...).verdict == "new-support"``. Only new information changes that: a
data mixture or a distillation that changes the reference's **support**,

$$p_1 = (1-w)\,p_0 + w\,p_{\rm new},\qquad \mathrm{supp}(p_1) = \mathrm{supp}(p_0)\cup
  \mathrm{supp}(p_{\rm new})\quad (0 < w < 1),$$

after which the same target is an ordinary tilt of $p_1$ with finite cost. Which distillation
does this matters:

* **forward** (off-policy: train on the teacher's samples, replaying the reference's data):
  $\arg\min_q\,(1-w)\,\mathrm{CE}(p_0, q) + w\,\mathrm{CE}(p_t, q)$ is the mixture above — new
  support;
* **reverse** (on-policy: the student samples, the teacher scores, anchored to $p_0$):
  $\arg\min_q\,w\,\mathrm{KL}(q\|p_t) + (1-w)\,\mathrm{KL}(q\|p_0) \propto p_0^{1-w}p_t^{\,w}$ is a
  Gibbs tilt of $p_0$ (energy $-\log(p_t/p_0)$ at $\beta = 1/w$) — support
  $\mathrm{supp}(p_0)\cap\mathrm{supp}(p_t)$: it elicits, it cannot create.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks
from ..distributions import _kl, _normalize
from ..support import Diagnosis, _diagnose, _log1mexp, _log_set_mass, _reach

__all__ = [
    "mix",
    "distill",
    "ElicitationCost",
    "elicitation_cost",
    "NewInformation",
    "new_information",
]


# ----------------------------------------------------------------------------- kernels (no checks)
def _mix_logs(weight):
    """``(log(1-w), log w)`` of mixture weights, ``-inf`` at ``w = 1`` and ``w = 0``.

    Concrete weights are taken to log space in NumPy: XLA's CPU runtime flushes subnormal inputs
    to zero, so a weight of 1e-310 would become ``log 0`` there and the mixture would lose the
    new support. Traced weights (inside a user's ``jit``) are converted in JAX.
    """
    if not _checks.is_traced(weight):
        w = np.asarray(weight, dtype=np.float64)
        with np.errstate(divide="ignore"):
            log_keep, log_w = np.log1p(-w), np.log(w)
        dtype = jnp.result_type(weight)
        return jnp.asarray(log_keep, dtype), jnp.asarray(log_w, dtype)
    w = weight
    log_keep = jnp.where(w < 1, jnp.log1p(-jnp.where(w < 1, w, 0.0)), -jnp.inf)
    log_w = jnp.where(w > 0, jnp.log(jnp.where(w > 0, w, 1.0)), -jnp.inf)
    return log_keep, log_w


def _mix(logp0, logp_new, log_keep, log_w):
    """log((1-w) p0 + w p_new) with logaddexp, from ``log(1-w)`` and ``log w`` (``_mix_logs``)."""
    return _normalize(jnp.logaddexp(log_keep[..., None] + logp0, log_w[..., None] + logp_new))


def _geometric(logp0, logp_teacher, weight):
    """normalize((1-w) log p0 + w log p_t) for 0 <= w < 1; -inf where either factor is zero."""
    w = weight[..., None]
    out = jnp.isneginf(logp0) | (jnp.isneginf(logp_teacher) & (w > 0))
    safe0 = jnp.where(out, 0.0, logp0)
    safe_t = jnp.where(out, 0.0, logp_teacher)
    return _normalize(jnp.where(out, -jnp.inf, (1.0 - w) * safe0 + w * safe_t))


_mix_jit = jax.jit(_mix)
_geometric_jit = jax.jit(_geometric)


def _bernoulli_kl(log_t, log_1mt, log_p, log_1mp):
    """KL(Bern(t) || Bern(p)) from logs of t, 1-t, p, 1-p (0 log 0 = 0)."""
    t = jnp.exp(log_t)
    s = jnp.exp(log_1mt)
    first = jnp.where(t > 0, t * (log_t - log_p), 0.0)
    second = jnp.where(s > 0, s * (log_1mt - log_1mp), 0.0)
    return first + second


# ----------------------------------------------------------------------------- validation
def _weight(x: Any, batch: tuple[int, ...], dtype: Any, *, upper_open: bool) -> jax.Array:
    w = _checks.to_array(x, "weight")
    if w.size == 0:
        raise ValueError("`weight` is empty; give the mixture weight of the new distribution.")
    if not _checks.is_traced(w):
        v = np.asarray(w, dtype=np.float64)
        bad = ~np.isfinite(v) | (v < 0) | ((v >= 1) if upper_open else (v > 1))
        if np.any(bad):
            need = "0 <= weight < 1" if upper_open else "0 <= weight <= 1"
            raise ValueError(
                f"`weight` must satisfy {need} (the fraction given to the new distribution), "
                f"got {v.flat[int(np.argmax(bad.ravel()))]!r}."
            )
    _checks.against_batch("weight", w, batch)
    return w.astype(dtype)


def _pair(logp0: Any, logp_new: Any, name_new: str):
    logp0 = _checks.logp(logp0, "logp0")
    logp_new = _checks.logp(logp_new, name_new)
    shape = _checks.same_last_axis("logp0", logp0, name_new, logp_new)
    dtype = _checks._float_dtype(logp0, logp_new)
    return logp0.astype(dtype), logp_new.astype(dtype), shape, dtype


def _target(target: Any, shape: tuple[int, ...], dtype: Any, ref_name: str) -> jax.Array:
    """A target as a normalized log-distribution: a mask is read as uniform on the set."""
    if isinstance(target, (jax.Array, np.ndarray)) and target.dtype == bool:
        t = _checks.mask(target, "target")
        if not _checks.is_traced(t) and not bool(jnp.all(jnp.any(t, axis=-1))):
            raise ValueError("`target` mask selects no behavior on some row; select at least one.")
        logt = _normalize(jnp.where(t, 0.0, -jnp.inf).astype(dtype))
    else:
        logt = _checks.logp(target, "target").astype(dtype)
    _checks.same_last_axis(ref_name, jax.ShapeDtypeStruct(shape, bool), "target", logt)
    return logt


# ----------------------------------------------------------------------------- public API
def mix(logp0: Any, logp_new: Any, weight: Any) -> jax.Array:
    r"""A data mixture as a new reference: $\log\bigl((1-w)\,p_0 + w\,p_{\rm new}\bigr)$.

    Computed with ``logaddexp`` (``-inf`` is zero mass on either side). For $0 < w < 1$ the
    support is the **union** $\mathrm{supp}(p_0)\cup\mathrm{supp}(p_{\rm new})$ — the one
    operation here that puts mass where the old reference had none. The price on the old
    behaviors is finite, $\mathrm{KL}(p_0\|p_1) \le -\log(1-w)$, while
    $\mathrm{KL}(p_1\|p_0) = +\infty$ as soon as $p_{\rm new}$ has mass outside
    $\mathrm{supp}(p_0)$ (no reweighting of $p_0$ produces $p_1$).

    ``weight`` in [0, 1] broadcasts against the batch shape; ``0`` returns ``p0``, ``1`` returns
    ``p_new``.

    >>> import jax.numpy as jnp
    >>> q = jnp.exp(mix(jnp.log(jnp.array([1.0, 0.0])), jnp.log(jnp.array([0.0, 1.0])), 0.25))
    >>> [round(float(x), 6) for x in q]
    [0.75, 0.25]
    """
    logp0, logp_new, shape, dtype = _pair(logp0, logp_new, "logp_new")
    w = _weight(weight, shape[:-1], dtype, upper_open=False)
    batch = tuple(jnp.broadcast_shapes(w.shape, shape[:-1]))
    full = (*batch, shape[-1])
    return _mix_jit(
        jnp.broadcast_to(logp0, full),
        jnp.broadcast_to(logp_new, full),
        *_mix_logs(jnp.broadcast_to(w, batch)),
    )


def distill(logp0: Any, logp_teacher: Any, weight: Any, *, direction: str = "forward"):
    r"""The exact optimum of distilling a teacher into a student anchored to the reference ``p0``.

    * ``direction="forward"`` (off-policy: maximum likelihood on a corpus that is a fraction
      ``w`` teacher samples and ``1 - w`` reference data): the minimizer over all distributions
      of $(1-w)\,\mathrm{CE}(p_0, q) + w\,\mathrm{CE}(p_t, q) = \mathrm{CE}(p_1, q)$ is the
      mixture $p_1 = (1-w)\,p_0 + w\,p_t$ (``mix``); support = union. ``0 <= w <= 1``.
    * ``direction="reverse"`` (on-policy: student samples scored by the teacher, KL-anchored):
      the minimizer of $w\,\mathrm{KL}(q\|p_t) + (1-w)\,\mathrm{KL}(q\|p_0)$ is
      $q \propto p_0^{1-w}\,p_t^{\,w}$ — the Gibbs tilt of $p_0$ with energy
      $-\log(p_t/p_0)$ at $\beta = 1/w$; support = intersection, never new. ``0 <= w < 1``
      (at ``w = 1`` the anchor is gone and the answer jumps to $p_t$ itself); the supports must
      overlap.

    Returns the student's normalized log-probabilities (nats), of the broadcast shape
    ``(..., n)`` of ``logp0``, ``logp_teacher`` and ``weight`` (batch axes).

    >>> import jax.numpy as jnp
    >>> p0, teacher = jnp.log(jnp.array([0.5, 0.5, 0.0])), jnp.log(jnp.array([0.0, 0.5, 0.5]))
    >>> [round(float(x), 4) for x in jnp.exp(distill(p0, teacher, 0.5))]  # the mixture
    [0.25, 0.5, 0.25]
    >>> [round(float(x), 4) for x in jnp.exp(distill(p0, teacher, 0.5, direction="reverse"))]
    [0.0, 1.0, 0.0]
    """
    if direction not in ("forward", "reverse"):
        raise ValueError(
            f"`direction` must be 'forward' (teacher samples: a mixture, union support) or "
            f"'reverse' (student samples scored by the teacher: a tilt), got {direction!r}."
        )
    logp0, logp_t, shape, dtype = _pair(logp0, logp_teacher, "logp_teacher")
    w = _weight(weight, shape[:-1], dtype, upper_open=direction == "reverse")
    batch = tuple(jnp.broadcast_shapes(w.shape, shape[:-1]))
    full = (*batch, shape[-1])
    args = (
        jnp.broadcast_to(logp0, full),
        jnp.broadcast_to(logp_t, full),
        jnp.broadcast_to(w, batch),
    )
    if direction == "forward":
        return _mix_jit(args[0], args[1], *_mix_logs(args[2]))
    if not _checks.is_traced(*args):
        overlap = jnp.any(
            (args[0] > -jnp.inf) & ((args[1] > -jnp.inf) | (args[2][..., None] == 0)), axis=-1
        )
        if not bool(jnp.all(overlap)):
            raise ValueError(
                "`logp0` and `logp_teacher` have disjoint supports on some row: reverse "
                "distillation keeps only their intersection, which is empty. Use "
                "direction='forward' (a mixture) to bring in the teacher's new support."
            )
    return _geometric_jit(*args)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class ElicitationCost:
    r"""What reaching a target costs by reweighting a reference ``p`` (arrays, batch shape).

    ``S`` is the target's support (the set of behaviors it puts mass on), ``d`` the target
    distribution, ``N`` the budget, ``c`` the confidence and $t^* = 1-(1-c)^{1/N}$ the mass a set
    needs to be accessible.

    * ``log_mass`` — $\log p(S)$;
    * ``reach`` — $1 - (1-p(S))^N$, the chance that ``N`` samples of ``p`` hit ``S``;
    * ``accessible`` — ``reach >= c``;
    * ``kl_to_access`` — the least $\mathrm{KL}(q\|p)$ over all ``q`` with $q(S) \ge t^*$: ``0``
      when accessible, the Bernoulli divergence $\mathrm{KL}(t^*\|p(S))$ otherwise (docs/theory.md
      T6; attained by the tilt with energy $-\mathbb{1}_S$), ``+inf`` when $p(S) = 0$;
    * ``kl_to_saturate`` — $-\log p(S)$, the least KL putting all mass on ``S``;
    * ``kl_to_target`` — $\mathrm{KL}(d\|p)$, the cost of reaching ``d`` itself (SFT's target
      view: ``d`` is the tilt of ``p`` with the implied energy $-\log(d/p)$); ``+inf`` iff
      singular;
    * ``singular_mass`` — $d$-mass outside $\mathrm{supp}(p)$ (where the implied energy is
      $-\infty$).

    ``status``: ``"singular"`` if ``singular_mass > 0`` (no reweighting reaches ``d``), else
    ``"accessible"`` or ``"barrier"`` (a string, or a NumPy array of strings when batched).
    """

    log_mass: jax.Array
    reach: jax.Array
    accessible: jax.Array
    kl_to_access: jax.Array
    kl_to_saturate: jax.Array
    kl_to_target: jax.Array
    singular_mass: jax.Array

    @property
    def status(self):
        singular = np.asarray(self.singular_mass) > 0
        accessible = np.asarray(self.accessible)
        out = np.where(singular, "singular", np.where(accessible, "accessible", "barrier"))
        return str(out) if out.ndim == 0 else out


def _elicitation_cost(logp, logt, budget, confidence):
    support_t = logt > -jnp.inf
    log_mass = _log_set_mass(logp, support_t)
    log_rest = _log1mexp(jnp.minimum(log_mass, 0.0))
    reach = _reach(log_mass, budget)
    accessible = reach >= confidence
    log_miss_needed = jnp.log1p(-confidence) / budget  # log(1 - t*)
    log_needed = _log1mexp(log_miss_needed)  # log t*
    barrier = ~accessible & (log_mass > -jnp.inf)
    bern = _bernoulli_kl(
        log_needed,
        log_miss_needed,
        jnp.where(barrier, log_mass, -1.0),
        jnp.where(barrier, log_rest, -1.0),
    )
    kl_access = jnp.where(accessible, 0.0, jnp.where(barrier, bern, jnp.inf))
    singular = support_t & (logp == -jnp.inf)
    return ElicitationCost(
        log_mass=log_mass,
        reach=reach,
        accessible=accessible,
        kl_to_access=kl_access,
        kl_to_saturate=-log_mass,
        kl_to_target=_kl(logt, logp),
        singular_mass=jnp.sum(jnp.where(singular, jnp.exp(logt), 0.0), axis=-1),
    )


_elicitation_cost_jit = jax.jit(_elicitation_cost)


def _budget_and_confidence(budget, confidence, batch, dtype):
    c = _checks.probability_open(confidence, "confidence")
    b = _checks.at_least_one(budget, "budget")
    batch = _checks.against_batch("budget", b, batch)
    return jnp.broadcast_to(b.astype(dtype), batch), c, batch


def elicitation_cost(logp: Any, target: Any, budget: Any, confidence: float = 0.5):
    """What reaching ``target`` by reweighting ``logp`` costs at ``budget`` (``ElicitationCost``).

    ``target`` is a normalized log-distribution over the behaviors, or a boolean mask (read as the
    uniform distribution on the set). ``budget`` (``N >= 1``) broadcasts against the batch shape.

    >>> import jax.numpy as jnp
    >>> cost = elicitation_cost(jnp.log(jnp.array([0.5, 0.5, 0.0])), jnp.array([0, 0, 1]) > 0, 8)
    >>> cost.status, float(cost.kl_to_target)
    ('singular', inf)
    """
    logp = _checks.logp(logp, "logp")
    dtype = _checks._float_dtype(logp)
    logt = _target(target, logp.shape, dtype, "logp")
    shape = tuple(jnp.broadcast_shapes(logp.shape, logt.shape))
    budget, c, batch = _budget_and_confidence(budget, confidence, shape[:-1], dtype)
    full = (*batch, shape[-1])
    return _elicitation_cost_jit(
        jnp.broadcast_to(logp.astype(dtype), full), jnp.broadcast_to(logt, full), budget, c
    )


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class NewInformation:
    r"""A target before and after new information changed the reference (see ``new_information``).

    * ``logp_reference`` — the new reference $p_1 = (1-w)\,p_0 + w\,p_{\rm new}$;
    * ``before`` / ``after`` — ``ElicitationCost`` of the target under $p_0$ and under $p_1$;
    * ``step`` — ``Diagnosis`` of the reference change $p_0 \to p_1$ (its verdict is
      ``"new-support"`` when $p_{\rm new}$ has mass outside $\mathrm{supp}(p_0)$);
    * ``kl_forgetting`` — $\mathrm{KL}(p_0\|p_1) \le -\log(1-w)$: how much the old reference's
      own behavior is disturbed (finite, unlike $\mathrm{KL}(p_1\|p_0)$).
    """

    logp_reference: jax.Array
    before: ElicitationCost
    after: ElicitationCost
    step: Diagnosis
    kl_forgetting: jax.Array


@jax.jit
def _new_information(logp0, logp_new, log_keep, log_w, logt, budget, confidence):
    logp1 = _mix(logp0, logp_new, log_keep, log_w)
    return NewInformation(
        logp_reference=logp1,
        before=_elicitation_cost(logp0, logt, budget, confidence),
        after=_elicitation_cost(logp1, logt, budget, confidence),
        step=_diagnose(logp0, logp1, budget, confidence),
        kl_forgetting=_kl(logp0, logp1),
    )


def new_information(
    logp0: Any,
    logp_new: Any,
    weight: Any,
    target: Any,
    budget: Any,
    confidence: float = 0.5,
) -> NewInformation:
    r"""Mix new information into the reference and price ``target`` before and after.

    The new reference is ``mix(logp0, logp_new, weight)``. For a target singular under
    ``p0`` (mass outside its support) ``before.kl_to_target`` is ``+inf`` and
    ``before.status == "singular"`` — no Gibbs tilt of ``p0`` reaches it — while, once
    $p_{\rm new}$ covers the target's support and $0 < w$, ``after`` is finite: the target has
    become an ordinary elicitation problem on $p_1$, whose regime (accessible or barrier at
    ``budget``) ``after.status`` reports. ``target`` is a log-distribution or a boolean mask;
    ``weight`` and ``budget`` broadcast against the batch shape. KLs are in nats.

    >>> import jax.numpy as jnp
    >>> p0, new = jnp.log(jnp.array([0.5, 0.5, 0.0])), jnp.log(jnp.array([0.0, 0.5, 0.5]))
    >>> info = new_information(p0, new, 0.5, jnp.array([False, False, True]), 8)
    >>> info.before.status, float(info.before.kl_to_target)
    ('singular', inf)
    >>> info.after.status, round(float(info.after.kl_to_target), 4)  # log(1 / p1(2)) = log 4
    ('accessible', 1.3863)
    >>> round(float(info.kl_forgetting), 4)  # 0.5 log 2 <= -log(1 - w)
    0.3466
    """
    logp0, logp_new, shape, dtype = _pair(logp0, logp_new, "logp_new")
    logt = _target(target, shape, dtype, "logp0")
    shape = tuple(jnp.broadcast_shapes(shape, logt.shape))
    w = _weight(weight, shape[:-1], dtype, upper_open=False)
    budget, c, batch = _budget_and_confidence(
        budget, confidence, tuple(jnp.broadcast_shapes(w.shape, shape[:-1])), dtype
    )
    full = (*batch, shape[-1])
    return _new_information(
        jnp.broadcast_to(logp0, full),
        jnp.broadcast_to(logp_new, full),
        *_mix_logs(jnp.broadcast_to(w, batch)),
        jnp.broadcast_to(logt, full),
        budget,
        c,
    )
