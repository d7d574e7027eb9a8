r"""Accessible support, pass@k, regimes, and the elicitation-vs-creation diagnosis.

Operational definitions (ours; docs/theory.md §2):

* reach probability of a behavior (or set) with probability $p$ under a budget of $N$ samples:
  $\rho_N = 1 - (1-p)^N$, computed as ``-expm1(N * log1p(-p))`` (with ``log(-expm1(log p))``
  for $p$ near one);
* accessible support $A_{N,c}(p) = \{y : \rho_N(y) \ge c\}$, confidence $c$ (default 0.5);
* regimes relative to $p_0$ at budget $N$: **basin** (accessible and in the nucleus, the smallest
  set of most-probable behaviors holding ``basin_mass`` = 0.9 of the mass), **tail** (accessible,
  outside the nucleus), **barrier** (in ``supp(p0)``, not accessible), **singular** (outside
  ``supp(p0)``).
"""

from __future__ import annotations

import dataclasses
import enum
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import _checks
from .distributions import _kl, _top_mass_mask

__all__ = [
    "reach_probability",
    "accessible_support",
    "pass_at_k",
    "pass_at_k_estimate",
    "Regime",
    "regimes",
    "regime_profile",
    "Diagnosis",
    "diagnose",
]


# ----------------------------------------------------------------------------- kernels
def _log1mexp(logp: jax.Array) -> jax.Array:
    """log(1 - e^logp) for logp <= 0, accurate on both sides of log 2 (Mächler 2012)."""
    near_one = logp > -math.log(2.0)
    a = jnp.where(near_one, logp, -1.0)
    b = jnp.where(near_one, -1.0, logp)
    return jnp.where(near_one, jnp.log(-jnp.expm1(a)), jnp.log1p(-jnp.exp(b)))


def _reach(logp: jax.Array, budget: jax.Array) -> jax.Array:
    log_miss = _log1mexp(jnp.minimum(logp, 0.0))
    return -jnp.expm1(budget * log_miss)


def _accessible(logp, budget, confidence):
    return _reach(logp, budget[..., None]) >= confidence


def _log_set_mass(logp: jax.Array, mask: jax.Array) -> jax.Array:
    return jax.nn.logsumexp(jnp.where(mask, logp, -jnp.inf), axis=-1)


_reach_jit = jax.jit(_reach)
_accessible_jit = jax.jit(_accessible)


@jax.jit
def _pass_at_k(logp, correct, k):
    return _reach(_log_set_mass(logp, correct), k)


def _budget(budget: Any, batch_shape: tuple[int, ...], dtype: Any) -> jax.Array:
    b = _checks.at_least_one(budget, "budget")
    _checks.against_batch("budget", b, batch_shape)
    return b.astype(dtype)


# ----------------------------------------------------------------------------- public API
def reach_probability(logp: Any, budget: Any) -> jax.Array:
    r"""Probability that ``budget`` i.i.d. samples hit a behavior (or set): $1-(1-p)^N$.

    ``logp`` holds log-probabilities of behaviors or sets (any shape, each at most 0; ``-inf``
    gives 0); ``budget`` ($N \ge 1$) broadcasts against it elementwise. Computed in log space as
    ``-expm1(N * log(1 - p))``, accurate for $p$ down to ``exp(-1e4)`` and up to one.

    >>> import jax.numpy as jnp
    >>> round(float(reach_probability(jnp.log(0.5), 2)), 6)
    0.75
    >>> reach_probability(jnp.array([-jnp.inf, 0.0]), 3).tolist()
    [0.0, 1.0]
    """
    logp = _checks.logp(logp, "logp", normalized=False, min_ndim=0, rows=False)
    if not _checks.is_traced(logp) and np.any(np.asarray(logp) > _checks.NORMALIZATION_ATOL):
        raise ValueError(
            f"`logp` must be at most 0 (a probability at most 1), got max {float(jnp.max(logp))}."
        )
    budget = _checks.at_least_one(budget, "budget")
    _checks.broadcast("logp", logp, "budget", budget)
    dtype = _checks._float_dtype(logp, budget)
    return _reach_jit(logp.astype(dtype), budget.astype(dtype))


def accessible_support(logp: Any, budget: Any, confidence: float = 0.5) -> jax.Array:
    r"""Accessible support $A_{N,c}(p) = \{y : 1-(1-p(y))^N \ge c\}$ as a boolean mask.

    Equivalently $p(y) \ge 1-(1-c)^{1/N}$: the behaviors a budget of $N$ samples produces with
    probability at least $c$. Monotone in $N$ and in $c$ (T9); the strict support is $N\to\infty$.
    ``budget`` is a scalar or broadcasts against the batch shape of ``logp`` (normalized).

    >>> import jax.numpy as jnp
    >>> accessible_support(jnp.log(jnp.array([0.9, 0.09, 0.01])), 10).tolist()  # p >= 0.067
    [True, True, False]
    """
    logp = _checks.logp(logp, "logp")
    c = _checks.probability_open(confidence, "confidence")
    budget = _budget(budget, logp.shape[:-1], logp.dtype)
    return _accessible_jit(logp, budget, c)


def pass_at_k(logp: Any, correct: Any, k: Any) -> jax.Array:
    r"""Exact pass@k: $1 - (1 - q(\mathcal{C}))^k$ with $q(\mathcal{C})$ the mass on ``correct``.

    ``correct`` is a boolean mask over the behaviors (broadcasts against ``logp``); ``k`` (whole
    numbers >= 1) broadcasts against the batch shape, e.g. ``k = jnp.array([1, 10, 100])`` with a
    single ``(n,)`` distribution gives three values. Equals ``reach_probability`` of the correct
    set (T9).

    >>> import jax.numpy as jnp
    >>> logp, correct = jnp.log(jnp.array([0.9, 0.1])), jnp.array([False, True])
    >>> [round(v, 6) for v in pass_at_k(logp, correct, jnp.array([1, 10])).tolist()]
    [0.1, 0.651322]
    """
    logp = _checks.logp(logp, "logp")
    correct = _checks.mask(correct, "correct")
    shape = _checks.same_last_axis("logp", logp, "correct", correct)
    k = _checks.at_least_one(k, "k", integer=True)
    _checks.against_batch("k", k, shape[:-1])
    return _pass_at_k(logp, correct, k.astype(logp.dtype))


#: ``pass_at_k_estimate`` multiplies out the ratio C(n-c, k)/C(n, k) term by term when it has at
#: most this many factors (min(k, c)); beyond, the log-gamma (Stirling) difference is used.
_PRODUCT_TERMS = 1024
#: Largest ``n`` accepted by ``pass_at_k_estimate`` (counts are exact in float64 below 2**53).
MAX_ESTIMATE_N = 1 << 40


def _log_ratio_product(n: np.ndarray, a: np.ndarray, m: np.ndarray) -> np.ndarray:
    """sum_{j < m} log1p(-a / (n - j)) per entry (m <= _PRODUCT_TERMS), vectorized over entries.

    ``C(n-c, k) / C(n, k) = prod_{j<k} (1 - c/(n-j)) = prod_{j<c} (1 - k/(n-j))``: with
    a = max(k, c) and m = min(k, c) this is the shorter product; every factor is in (0, 1].
    """
    out = np.zeros(n.shape, dtype=np.float64)
    for j in range(int(m.max(initial=0))):
        live = m > j
        out[live] += np.log1p(-a[live] / (n[live] - j))
    return out


def _stirling_tail(z: np.ndarray) -> np.ndarray:
    """lgamma(z) - [(z - 1/2) log z - z + log(2 pi)/2] for z >= 64 (Stirling; error < 1e-20)."""
    w = 1.0 / (z * z)
    return (1.0 / 12.0 - w * (1.0 / 360.0 - w * (1.0 / 1260.0 - w / 1680.0))) / z


def _log_ratio_gamma(n: np.ndarray, c: np.ndarray, k: np.ndarray) -> np.ndarray:
    """log C(n-c, k) - log C(n, k) from log-gamma functions, for n - c >= k.

    = lgamma(n-c+1) - lgamma(n-c-k+1) - lgamma(n+1) + lgamma(n-k+1). With z1..z4 those
    arguments, Stirling's (z - 1/2) log z - z terms are regrouped so that the large parts cancel
    analytically (the linear terms exactly), leaving three log1p terms of size about c k / n
    (below) plus the series tails. Where z2 < 64 (the ratio is then astronomically small) the
    plain lgamma difference is used.
    """
    from scipy.special import gammaln

    z1, z2, z3, z4 = n - c + 1.0, n - c - k + 1.0, n + 1.0, n - k + 1.0
    big = z2 >= 64.0
    b1, b2, b3, b4 = (np.where(big, z, 64.0) for z in (z1, z2, z3, z4))
    cs, ks = np.where(big, c, 0.0), np.where(big, k, 0.0)  # placeholders where not used
    # (z1 - 1/2) log1p(-c/z3) - (z2 - 1/2) log1p(-c/z4), regrouped with z1 - z2 = k and
    # z1 z4 - z2 z3 = c k, so that no two large terms cancel.
    stirling = (
        (b1 - 0.5) * np.log1p(cs * ks / (b2 * b3))
        + ks * np.log1p(-cs / b4)
        + cs * np.log1p(-ks / b3)
        + (_stirling_tail(b1) - _stirling_tail(b2))
        - (_stirling_tail(b3) - _stirling_tail(b4))
    )
    plain = gammaln(z1) - gammaln(z2) - gammaln(z3) + gammaln(z4)
    return np.where(big, stirling, plain)


def _whole(value: Any, name: str) -> np.ndarray:
    """A real array of whole numbers (ints, or floats with integral values) as int64."""
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(f"`{name}` must be whole numbers, got {_checks._describe(value)}.")
    try:
        a = np.asarray(value)
    except (TypeError, ValueError, OverflowError) as err:
        raise TypeError(f"`{name}` must be whole numbers, got {value!r} ({err}).") from None
    if a.dtype == object:  # Python ints too large for int64
        raise ValueError(
            f"`{name}` is too large: at most {MAX_ESTIMATE_N:,} (counts are exact in float64 "
            f"only below 2**53), got {value!r}."
        )
    if a.dtype == bool or not (
        np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)
    ):
        raise TypeError(f"`{name}` must be whole numbers, got {value!r}.")
    if a.size == 0:
        raise ValueError(f"`{name}` is empty; give at least one value.")
    if not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
        raise ValueError(f"`{name}` must be whole numbers, got {value!r}.")
    if np.any(np.abs(a) > MAX_ESTIMATE_N):
        raise ValueError(
            f"`{name}` is too large: at most {MAX_ESTIMATE_N:,} (counts are exact in float64 "
            f"only below 2**53), got {float(np.max(np.abs(a))):.6g}."
        )
    return a.astype(np.int64)


def pass_at_k_estimate(n: Any, c: Any, k: Any) -> jax.Array:
    r"""Unbiased pass@k estimator, ``n`` samples, ``c`` correct: $1-\binom{n-c}{k}/\binom{n}{k}$.

    (Chen et al. 2021; Yue et al. 2025.) Computed in float64, vectorized, in time independent of
    ``n``, ``c`` and ``k`` beyond a bounded product: it is exactly 1 when ``n - c < k``, and
    otherwise $-\mathrm{expm1}$ of $\log\binom{n-c}{k}-\log\binom{n}{k}$, summed as
    $\sum_{j<m}\log(1-a/(n-j))$ with $m=\min(k,c)$, $a=\max(k,c)$ when $m \le 1024$ (exact to
    rounding), else from a log-gamma (Stirling) difference whose large terms cancel analytically
    (a relative error of a few units of rounding). Requires whole numbers with ``1 <= n <= 2**40``,
    ``0 <= c <= n`` and ``1 <= k <= n``; arguments broadcast. Its expectation over
    ``c ~ Binomial(n, p)`` is exactly $1-(1-p)^k$.

    >>> round(float(pass_at_k_estimate(10, 3, 2)), 6)  # 1 - C(7, 2) / C(10, 2) = 1 - 21/45
    0.533333
    """
    arrays = {name: _whole(value, name) for name, value in (("n", n), ("c", c), ("k", k))}
    try:
        nn, cc, kk = np.broadcast_arrays(arrays["n"], arrays["c"], arrays["k"])
    except ValueError:
        raise ValueError(
            f"`n`, `c` and `k` must broadcast, got shapes {arrays['n'].shape}, "
            f"{arrays['c'].shape} and {arrays['k'].shape}."
        ) from None
    if np.any(nn < 1):
        raise ValueError(f"`n` (samples drawn) must be >= 1, got {int(nn.min())}.")
    if np.any(cc < 0) or np.any(cc > nn):
        i = int(np.argmax(((cc < 0) | (cc > nn)).ravel()))
        raise ValueError(
            f"`c` (correct samples) must satisfy 0 <= c <= n, got c = {int(cc.ravel()[i])} with "
            f"n = {int(nn.ravel()[i])}."
        )
    if np.any(kk < 1) or np.any(kk > nn):
        i = int(np.argmax(((kk < 1) | (kk > nn)).ravel()))
        raise ValueError(
            f"`k` must satisfy 1 <= k <= n (the estimator needs n >= k samples), got "
            f"k = {int(kk.ravel()[i])} with n = {int(nn.ravel()[i])}."
        )
    n64, c64, k64 = (x.astype(np.float64).ravel() for x in (nn, cc, kk))
    certain = n64 - c64 < k64  # every k-subset holds a correct sample
    m = np.where(certain, 0.0, np.minimum(k64, c64))
    short = m <= _PRODUCT_TERMS
    log_ratio = np.zeros_like(n64)
    idx = np.flatnonzero(short & ~certain)
    if idx.size:
        log_ratio[idx] = _log_ratio_product(n64[idx], np.maximum(k64, c64)[idx], m[idx])
    idx = np.flatnonzero(~short)
    if idx.size:
        log_ratio[idx] = _log_ratio_gamma(n64[idx], c64[idx], k64[idx])
    out = np.where(certain, 1.0, -np.expm1(log_ratio)).reshape(nn.shape)
    return jnp.asarray(out)


class Regime(enum.IntEnum):
    """Regime of a behavior relative to a reference ``p0`` and a budget (docs/theory.md §2).

    The integer codes returned by ``regimes`` and the indices of ``regime_profile``.

    >>> [r.name for r in Regime], int(Regime.BARRIER)
    (['BASIN', 'TAIL', 'BARRIER', 'SINGULAR'], 2)
    """

    BASIN = 0
    TAIL = 1
    BARRIER = 2
    SINGULAR = 3


@jax.jit
def _regimes(logp0, budget, confidence, basin_mass):
    accessible = _accessible(logp0, budget, confidence)
    nucleus = _top_mass_mask(logp0, basin_mass)
    support = logp0 > -jnp.inf
    return jnp.where(
        ~support,
        int(Regime.SINGULAR),
        jnp.where(
            accessible,
            jnp.where(nucleus, int(Regime.BASIN), int(Regime.TAIL)),
            int(Regime.BARRIER),
        ),
    ).astype(jnp.int32)


def _regime_args(logp0, budget, confidence, basin_mass):
    logp0 = _checks.logp(logp0, "logp0")
    c = _checks.probability_open(confidence, "confidence")
    m = _checks.probability_half_open(basin_mass, "basin_mass")
    budget = _budget(budget, logp0.shape[:-1], logp0.dtype)
    return logp0, budget, c, m


def regimes(logp0: Any, budget: Any, confidence: float = 0.5, basin_mass: float = 0.9):
    """Per-behavior regime codes (``int32``, values of ``Regime``) of ``p0`` at ``budget``.

    * ``Regime.BASIN``: accessible ($\\rho_N \\ge c$) and in the nucleus — the smallest set of
      most-probable behaviors holding ``basin_mass`` of the mass (ties ranked by index);
    * ``Regime.TAIL``: accessible, outside the nucleus;
    * ``Regime.BARRIER``: ``p0 > 0`` but not accessible at this budget;
    * ``Regime.SINGULAR``: ``p0 = 0`` (outside the support; no reweighting reaches it).

    >>> import jax.numpy as jnp
    >>> logp0 = jnp.log(jnp.array([0.5, 0.3, 0.12, 0.07, 0.01, 0.0]))
    >>> regimes(logp0, 10).tolist()  # accessible at N = 10: p >= 0.067
    [0, 0, 0, 1, 2, 3]
    """
    return _regimes(*_regime_args(logp0, budget, confidence, basin_mass))


def regime_profile(
    logp0: Any,
    target: Any,
    budget: Any,
    confidence: float = 0.5,
    basin_mass: float = 0.9,
) -> jax.Array:
    """Mass of a target in each regime of ``p0``: an array ``(..., 4)`` indexed by ``Regime``.

    ``target`` is either a normalized log-distribution over the behaviors (its mass in each
    regime is returned) or a boolean mask, read as the uniform distribution over the masked
    behaviors — i.e. the fraction of the target set in each regime. The four entries sum to one.

    >>> import jax.numpy as jnp
    >>> logp0 = jnp.log(jnp.array([0.5, 0.3, 0.12, 0.07, 0.01, 0.0]))
    >>> target = jnp.array([False, False, False, True, True, True])
    >>> [round(m, 4) for m in regime_profile(logp0, target, 10).tolist()]
    [0.0, 0.3333, 0.3333, 0.3333]
    """
    logp0, budget, c, m = _regime_args(logp0, budget, confidence, basin_mass)
    if isinstance(target, (list, tuple)):
        try:
            as_array = np.asarray(target)
        except ValueError:  # ragged: let the log-probability check name it
            as_array = None
        if as_array is not None and as_array.dtype == bool:
            target = as_array
    if isinstance(target, (jax.Array, np.ndarray)) and target.dtype == bool:
        t = _checks.mask(target, "target")
        if not _checks.is_traced(t) and not np.all(np.any(np.asarray(t), axis=-1)):
            raise ValueError("`target` mask selects no behavior on some row; select at least one.")
        logt = jnp.where(t, 0.0, -jnp.inf).astype(logp0.dtype)
        logt = logt - jax.nn.logsumexp(logt, axis=-1, keepdims=True)
    else:
        logt = _checks.logp(target, "target")
    _checks.same_last_axis("logp0", logp0, "target", logt)
    return _profile(logp0, logt.astype(logp0.dtype), budget, c, m)


@jax.jit
def _profile(logp0, logt, budget, confidence, basin_mass):
    codes = _regimes(logp0, budget, confidence, basin_mass)
    t = jnp.exp(logt)
    return jnp.stack([jnp.sum(jnp.where(codes == r, t, 0.0), axis=-1) for r in Regime], axis=-1)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Diagnosis:
    """Elicitation-vs-creation report of a post-training step ``p0 -> q`` at a budget.

    Fields (arrays with the batch shape of the inputs):

    * ``elicited_mass`` — q-mass on $A_N(p_0)$ (moved within what was already accessible);
    * ``created_mass`` — q-mass on $\\mathrm{supp}(p_0) \\setminus A_N(p_0)$ (barrier mass);
    * ``singular_mass`` — q-mass outside $\\mathrm{supp}(p_0)$ (new support);
    * ``gained`` / ``lost`` — numbers of behaviors entering / leaving the accessible support
      ($|A_N(q)\\setminus A_N(p_0)|$, $|A_N(p_0)\\setminus A_N(q)|$);
    * ``accessible_before`` / ``accessible_after`` — $|A_N(p_0)|$, $|A_N(q)|$;
    * ``kl`` — $\\mathrm{KL}(q\\|p_0)$ in nats, ``+inf`` when singular.

    ``verdict``: ``"new-support"`` if ``q`` has mass outside ``supp(p0)`` (``singular_mass > 0``,
    or ``kl = +inf``, which also catches mass too small to show in float), else ``"creation"`` if
    ``gained > 0``, else ``"elicitation"`` (a string, or a NumPy array of strings when batched).

    >>> import jax.numpy as jnp
    >>> d = diagnose(jnp.log(jnp.array([0.5, 0.5, 0.0])), jnp.log(jnp.array([0.25, 0.25, 0.5])), 4)
    >>> d.verdict, float(d.singular_mass), float(d.kl)
    ('new-support', 0.5, inf)
    """

    elicited_mass: jax.Array
    created_mass: jax.Array
    singular_mass: jax.Array
    gained: jax.Array
    lost: jax.Array
    accessible_before: jax.Array
    accessible_after: jax.Array
    kl: jax.Array

    @property
    def verdict(self):
        singular = (np.asarray(self.singular_mass) > 0) | (np.asarray(self.kl) == np.inf)
        gained = np.asarray(self.gained) > 0
        out = np.where(singular, "new-support", np.where(gained, "creation", "elicitation"))
        return str(out) if out.ndim == 0 else out


@jax.jit
def _diagnose(logp0, logq, budget, confidence):
    a0 = _accessible(logp0, budget, confidence)
    aq = _accessible(logq, budget, confidence)
    support = logp0 > -jnp.inf
    q = jnp.exp(logq)

    def mass(mask):
        return jnp.sum(jnp.where(mask, q, 0.0), axis=-1)

    return Diagnosis(
        elicited_mass=mass(a0),
        created_mass=mass(support & ~a0),
        singular_mass=mass(~support),
        gained=jnp.sum(aq & ~a0, axis=-1),
        lost=jnp.sum(a0 & ~aq, axis=-1),
        accessible_before=jnp.sum(a0, axis=-1),
        accessible_after=jnp.sum(aq, axis=-1),
        kl=_kl(logq, logp0),
    )


def diagnose(logp0: Any, logq: Any, budget: Any, confidence: float = 0.5) -> Diagnosis:
    """Diagnose a step ``p0 -> q`` at ``budget``: elicitation, creation or new support.

    See ``Diagnosis`` for the fields. Choose ``budget`` as the largest budget you evaluate at
    (e.g. the largest ``k`` of your pass@k): at too small a budget, ordinary RL on rare but
    sampled behaviors looks like creation (docs/theory.md §2).

    >>> import jax.numpy as jnp
    >>> logp0 = jnp.log(jnp.array([0.6, 0.3, 0.09, 0.01]))
    >>> d = diagnose(logp0, jnp.log(jnp.array([0.2, 0.2, 0.1, 0.5])), 10)
    >>> d.verdict, int(d.gained), int(d.lost)  # behavior 3 was a barrier at N = 10
    ('creation', 1, 0)
    """
    logp0 = _checks.logp(logp0, "logp0")
    logq = _checks.logp(logq, "logq")
    shape = _checks.same_last_axis("logp0", logp0, "logq", logq)
    c = _checks.probability_open(confidence, "confidence")
    dtype = _checks._float_dtype(logp0, logq)
    budget = _budget(budget, shape[:-1], dtype)
    # every field has the full batch shape (a single base against a batch of steps, too)
    logp0 = jnp.broadcast_to(logp0.astype(dtype), shape)
    logq = jnp.broadcast_to(logq.astype(dtype), shape)
    return _diagnose(logp0, logq, budget, c)
