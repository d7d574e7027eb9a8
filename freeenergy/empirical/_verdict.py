"""Accessible support from samples: confidence intervals for success probabilities, the support
change at a budget, and the per-prompt elicitation-vs-creation verdict (the sample twin of
``freeenergy.diagnose``)."""

from __future__ import annotations

import dataclasses
import math
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import betainc, betaln, xlog1py, xlogy

from .. import _checks
from ._data import Counts
from ._passk import _k_grid, _table, align

__all__ = [
    "VERDICTS",
    "Interval",
    "SupportChange",
    "EmpiricalDiagnosis",
    "binomial_interval",
    "reach_threshold",
    "support_change",
    "diagnose",
]

#: The per-prompt verdicts of ``diagnose``, in the order of ``EmpiricalDiagnosis.counts``.
VERDICTS = ("elicitation", "creation", "lost", "unchanged", "undetermined")
_METHODS = ("clopper-pearson", "jeffreys")
# Most steps of the interval solver: Newton converges in well under 20, and even pure bisection
# would reach 2^-200 in this many.
_BISECTIONS = 200
# The interval solver works on blocks of this many distinct (c, n) pairs.
_BLOCK = 256


@partial(jax.jit, static_argnames=("iterations",))
def _beta_quantile(a, b, q, iterations):
    """x with ``I_x(a, b) = q``: Newton's method on the regularized incomplete beta function
    (increasing in x, derivative the Beta density), safeguarded by a bracket ``[lo, hi]`` that
    every evaluation narrows — a Newton step leaving the bracket is replaced by bisection — and
    stopped for all entries once each step is below ``1e-15·x`` (or after ``iterations``)."""
    log_norm = betaln(a, b)

    def cond(state):
        i, _, _, _, done = state
        return (i < iterations) & ~jnp.all(done)

    def body(state):
        i, x, lo, hi, done = state
        f = betainc(a, b, x) - q
        lo = jnp.where(f < 0, x, lo)
        hi = jnp.where(f < 0, hi, x)
        density = jnp.exp(xlogy(a - 1, x) + xlog1py(b - 1, -x) - log_norm)
        newton = x - f / density
        inside = (newton > lo) & (newton < hi)
        new = jnp.where(f == 0, x, jnp.where(inside, newton, 0.5 * (lo + hi)))
        converged = jnp.abs(new - x) <= 1e-15 * x
        x = jnp.where(done, x, new)
        return i + 1, x, lo, hi, done | converged

    x0 = a / (a + b)
    state = (0, x0, jnp.zeros_like(a), jnp.ones_like(a), jnp.zeros(a.shape, bool))
    return jax.lax.while_loop(cond, body, state)[1]


@dataclasses.dataclass(frozen=True)
class Interval:
    """Per-prompt success-probability estimates: ``rate = correct/n``, ``low``, ``high`` (each
    ``(P,)`` float64 NumPy), the ``level`` and the ``method``."""

    rate: np.ndarray
    low: np.ndarray
    high: np.ndarray
    level: float
    method: str


def binomial_interval(
    correct: Any, n: Any, level: float = 0.95, method: str = "clopper-pearson"
) -> Interval:
    """Two-sided confidence interval for a success probability from ``correct`` of ``n``.

    * ``"clopper-pearson"`` (exact, conservative): ``low`` = the ``α/2`` quantile of
      ``Beta(c, n−c+1)``, ``high`` = the ``1−α/2`` quantile of ``Beta(c+1, n−c)``, ``α = 1 −
      level``; equivalently ``P(X ≥ c | low) = α/2`` and ``P(X ≤ c | high) = α/2`` for
      ``X ~ Binomial(n, p)``. At ``c = 0``: ``low = 0``, ``high = 1 − (α/2)^(1/n)``; at ``c = n``
      symmetrically.
    * ``"jeffreys"``: the ``α/2`` and ``1−α/2`` quantiles of ``Beta(c+½, n−c+½)``, with
      ``low = 0`` at ``c = 0`` and ``high = 1`` at ``c = n``.

    ``correct`` and ``n`` are integer arrays of one shape (or a ``Counts`` as ``correct`` with
    ``n=None``). Quantiles are found by safeguarded Newton steps on the regularized incomplete
    beta function, once per distinct ``(c, n)`` pair, always in float64 (whatever JAX's default
    dtype), with the closed forms at ``c = 0`` and ``c = n``. The accuracy is that of JAX's
    incomplete beta function: about 1e-13 relative for ``n`` up to 1e3, 1e-8 up to 1e6, and
    only 1e-4 near ``n`` = 1e9.

    >>> iv = binomial_interval([0], [10], level=0.9)
    >>> round(float(iv.high[0]), 12) == round(1 - 0.05 ** (1 / 10), 12)
    True
    """
    if isinstance(correct, Counts) and n is None:
        counts = correct
    else:
        c_arr, n_arr = np.asarray(correct), np.asarray(n)
        if c_arr.shape != n_arr.shape:
            raise ValueError(
                f"`correct` has shape {c_arr.shape} but `n` has shape {n_arr.shape}; give one "
                "count of each per prompt."
            )
        counts = Counts(n_arr.reshape(-1), c_arr.reshape(-1))
    lv = _checks.probability_open(level, "level")
    if method not in _METHODS:
        raise ValueError(f"`method` must be one of {_METHODS}, got {method!r}.")
    c, nn = counts.correct, counts.n
    alpha = 1.0 - lv
    pairs, inverse = np.unique(np.stack([c, nn], axis=1), axis=0, return_inverse=True)
    pc, pn = pairs[:, 0].astype(np.float64), pairs[:, 1].astype(np.float64)
    if method == "clopper-pearson":
        a_lo, b_lo, a_hi, b_hi = pc, pn - pc + 1, pc + 1, pn - pc
    else:
        a_lo = a_hi = pc + 0.5
        b_lo = b_hi = pn - pc + 0.5

    def quantile(a, b, q, skip):
        # Entries where the bound is closed-form get harmless parameters (1, 1). The solver runs
        # on blocks of a fixed size, so it compiles once, whatever the number of pairs.
        size = -(-a.size // _BLOCK) * _BLOCK
        a = np.pad(np.where(skip, 1.0, a), (0, size - a.size), constant_values=1.0)
        b = np.pad(np.where(skip, 1.0, b), (0, size - b.size), constant_values=1.0)
        # Always float64 (also when the user runs JAX in float32): near p = 0 the incomplete beta
        # of Beta(1, 1e6) depends on 1 - x, which float32 rounds to 1 below 6e-8.
        out = []
        with jax.enable_x64(True):
            f64 = jnp.float64
            qa = jnp.full(_BLOCK, q, f64)
            for j in range(0, size, _BLOCK):
                aj, bj = jnp.asarray(a[j : j + _BLOCK], f64), jnp.asarray(b[j : j + _BLOCK], f64)
                out.append(np.asarray(_beta_quantile(aj, bj, qa, _BISECTIONS), dtype=np.float64))
        return np.concatenate(out)[: pc.size]

    lo = quantile(a_lo, b_lo, alpha / 2, pc == 0)
    hi = quantile(a_hi, b_hi, 1 - alpha / 2, pc == pn)
    lo = np.where(pc == 0, 0.0, lo)
    hi = np.where(pc == pn, 1.0, hi)
    if method == "clopper-pearson":
        edge = -np.expm1(math.log(alpha / 2) / pn)  # 1 - (α/2)^(1/n)
        hi = np.where(pc == 0, edge, hi)
        lo = np.where(pc == pn, 1.0 - edge, lo)
    rate = c / nn
    return Interval(rate=rate, low=lo[inverse], high=hi[inverse], level=lv, method=method)


def reach_threshold(budget: Any, confidence: float = 0.5) -> float:
    """The least success probability reachable at ``budget`` samples with ``confidence``:
    ``1 − (1−confidence)^(1/budget)``, computed as ``−expm1(log1p(−confidence)/budget)``.

    A prompt is reachable at budget N when ``1 − (1−p)^N ≥ confidence``, i.e. ``p`` is at
    least this threshold.

    >>> round(reach_threshold(1, 0.5), 12), round(reach_threshold(16), 6)
    (0.5, 0.042397)
    """
    b = float(_checks.at_least_one(budget, "budget", integer=True))
    if b > 1e12:
        raise ValueError(f"`budget` = {b:g} is above the limit of 1e12 samples.")
    conf = _checks.probability_open(confidence, "confidence")
    return float(-math.expm1(math.log1p(-conf) / b))


@dataclasses.dataclass(frozen=True)
class SupportChange:
    """Which prompts each model reaches at ``budget`` (estimated pass@budget ≥ ``confidence``).

    Integer counts ``both``, ``base_only``, ``trained_only``, ``neither``; ratios (``None`` when
    their denominator is 0):

    * ``srr = both / (both + base_only)`` — support retention: of what the base reached, the
      share the trained model still reaches;
    * ``ndr = trained_only / (both + trained_only)`` — new discovery: of what the trained model
      reaches, the share the base did not;
    * ``sds`` — harmonic mean of ``srr`` and ``ndr`` (0 when both are 0);
    * ``nscr = (trained_only − base_only) / (both + trained_only + base_only)`` — net change.

    Masks ``base_reachable``, ``trained_reachable`` ``(P,)`` bool; ``base_pass``,
    ``trained_pass`` ``(P,)`` the estimated pass@budget; ``prompts`` the ids (or ``None``).
    """

    both: int
    base_only: int
    trained_only: int
    neither: int
    srr: float | None
    ndr: float | None
    sds: float | None
    nscr: float | None
    base_reachable: np.ndarray
    trained_reachable: np.ndarray
    base_pass: np.ndarray
    trained_pass: np.ndarray
    budget: int
    confidence: float
    prompts: tuple | None


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def support_change(
    base: Counts, trained: Counts, budget: Any, confidence: float = 0.5
) -> SupportChange:
    """Support change between two models at ``budget`` samples (see ``SupportChange``).

    A prompt is reachable by a model when its unbiased pass@budget estimate is at least
    ``confidence``; at ``budget = n`` this is "at least one correct sample". ``budget`` must not
    exceed either model's smallest ``n``. Prompts are aligned by id (or position).

    >>> from freeenergy import empirical as em
    >>> b = em.Counts([4, 4, 4, 4], [1, 1, 0, 0])
    >>> t = em.Counts([4, 4, 4, 4], [2, 0, 3, 0])
    >>> s = em.support_change(b, t, budget=4)
    >>> (s.both, s.base_only, s.trained_only, s.neither), s.srr, s.ndr, s.nscr
    ((1, 1, 1, 1), 0.5, 0.5, 0.0)
    """
    base, trained = align(base, trained)
    grid = _k_grid(budget, base, "budget")
    _k_grid(grid, trained, "budget")
    if grid.size != 1:
        raise ValueError(f"`budget` must be one number of samples, got {grid.tolist()}.")
    conf = _checks.probability_open(confidence, "confidence")
    pb = _table(base, grid)[:, 0]
    pt = _table(trained, grid)[:, 0]
    rb, rt = pb >= conf, pt >= conf
    both = int(np.sum(rb & rt))
    b_only = int(np.sum(rb & ~rt))
    t_only = int(np.sum(~rb & rt))
    neither = int(np.sum(~rb & ~rt))
    srr = _ratio(both, both + b_only)
    ndr = _ratio(t_only, both + t_only)
    if srr is None or ndr is None:
        sds = None
    else:
        sds = 0.0 if srr + ndr == 0 else 2 * srr * ndr / (srr + ndr)
    for arr in (rb, rt, pb, pt):
        arr.flags.writeable = False
    return SupportChange(
        both=both,
        base_only=b_only,
        trained_only=t_only,
        neither=neither,
        srr=srr,
        ndr=ndr,
        sds=sds,
        nscr=_ratio(t_only - b_only, both + t_only + b_only),
        base_reachable=rb,
        trained_reachable=rt,
        base_pass=pb,
        trained_pass=pt,
        budget=int(grid[0]),
        confidence=conf,
        prompts=base.prompts,
    )


@dataclasses.dataclass(frozen=True)
class EmpiricalDiagnosis:
    """Per-prompt elicitation-vs-creation verdicts at a budget, with intervals.

    * ``verdict`` — ``(P,)`` NumPy strings from ``VERDICTS``;
    * ``counts`` — ``{verdict: number of prompts}`` for every verdict in ``VERDICTS``;
    * ``created_fraction`` — ``counts["creation"] / P``; ``created_low`` / ``created_high`` — a
      ``level`` interval for it: the Clopper–Pearson lower bound of ``creation`` out of ``P``
      and the upper bound of ``creation + could_be_created`` out of ``P`` (undetermined prompts
      whose intervals allow creation), so both the prompt sample and the undecided prompts are
      covered;
    * ``threshold`` — the reachable success probability ``1 − (1−confidence)^(1/budget)``;
    * ``base`` / ``trained`` — the per-prompt ``Interval`` of each model;
    * ``budget``, ``confidence``, ``level``, ``prompts``.
    """

    verdict: np.ndarray
    counts: dict
    created_fraction: float
    created_low: float
    created_high: float
    threshold: float
    base: Interval
    trained: Interval
    budget: int
    confidence: float
    level: float
    prompts: tuple | None


def diagnose(
    base: Counts,
    trained: Counts,
    budget: Any,
    confidence: float = 0.5,
    level: float = 0.95,
    *,
    method: str = "clopper-pearson",
) -> EmpiricalDiagnosis:
    """Elicitation or creation, per prompt, from samples: the sample twin of
    ``freeenergy.diagnose``.

    A model reaches a prompt at ``budget`` N when its success probability ``p`` satisfies
    ``1 − (1−p)^N ≥ confidence``, i.e. ``p ≥ τ = 1 − (1−confidence)^(1/N)``. Each model's ``p``
    is known only through a ``level`` confidence interval (``method``: Clopper–Pearson or
    Jeffreys); a model *surely reaches* a prompt when the whole interval is ``≥ τ`` and *surely
    misses* it when the whole interval is ``< τ``. Verdicts:

    * ``undetermined`` — either interval straddles ``τ`` (more samples would decide it);
    * ``elicitation`` — both reach it and the trained success rate is higher;
    * ``creation`` — the base surely misses it, the trained model surely reaches it;
    * ``lost`` — the base surely reaches it, the trained model surely misses it;
    * ``unchanged`` — both miss it, or both reach it without a higher trained rate.

    The verdict is relative to the budget: a prompt the base solves once in 100 samples is
    unreachable at N = 8 (raising it is creation there) and reachable at N = 1000 (raising it
    is elicitation). Choose N as the largest budget you care about, e.g. the k of your largest
    pass@k. ``budget`` may exceed the number of samples. Prompts are aligned by id (or
    position).

    >>> from freeenergy import empirical as em
    >>> b = em.Counts([200, 200, 200], [100, 0, 0])
    >>> t = em.Counts([200, 200, 200], [180, 150, 0])
    >>> em.diagnose(b, t, budget=4).verdict.tolist()
    ['elicitation', 'creation', 'unchanged']
    """
    base, trained = align(base, trained)
    tau = reach_threshold(budget, confidence)
    conf = _checks.probability_open(confidence, "confidence")
    lv = _checks.probability_open(level, "level")
    if method not in _METHODS:
        raise ValueError(f"`method` must be one of {_METHODS}, got {method!r}.")
    ib = binomial_interval(base, None, lv, method)
    it = binomial_interval(trained, None, lv, method)
    b_in, b_out = ib.low >= tau, ib.high < tau
    t_in, t_out = it.low >= tau, it.high < tau
    decided = (b_in | b_out) & (t_in | t_out)
    verdict = np.full(base.num_prompts, "undetermined", dtype="<U12")
    higher = it.rate > ib.rate
    verdict[decided & b_in & t_in & higher] = "elicitation"
    verdict[decided & b_in & t_in & ~higher] = "unchanged"
    verdict[decided & b_out & t_out] = "unchanged"
    verdict[decided & b_out & t_in] = "creation"
    verdict[decided & b_in & t_out] = "lost"
    verdict.flags.writeable = False
    counts = {v: int(np.sum(verdict == v)) for v in VERDICTS}
    p = base.num_prompts
    created = counts["creation"]
    could = int(np.sum(~decided & ~b_in & ~t_out))
    lo = binomial_interval([created], [p], lv).low[0]
    hi = binomial_interval([created + could], [p], lv).high[0]
    return EmpiricalDiagnosis(
        verdict=verdict,
        counts=counts,
        created_fraction=created / p,
        created_low=float(lo),
        created_high=float(hi),
        threshold=tau,
        base=ib,
        trained=it,
        budget=int(_checks.at_least_one(budget, "budget", integer=True)),
        confidence=conf,
        level=lv,
        prompts=base.prompts,
    )
