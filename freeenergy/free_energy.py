r"""Free energy, Gibbs tilts and KL-constrained reweighting on a flat behavior space.

Conventions (docs/theory.md §1): energy $U$ (low is good; RL uses $U = -r$), temperature
$\beta > 0$, natural logarithms: log-probabilities, KL, entropy and $\log Z$ are in nats.

* free energy $F_\beta[q] = \mathbb{E}_q[U] + \beta\,\mathrm{KL}(q\|p_0)$;
* Gibbs tilt $q^*_\beta(y) = p_0(y)\,e^{-U(y)/\beta} / Z_\beta$,
  $Z_\beta = \sum_y p_0(y)\,e^{-U(y)/\beta}$, and $\min_q F_\beta[q] = -\beta\log Z_\beta$.

``beta`` broadcasts against the *batch* shape (all axes but the last): ``gibbs(logp0, energy,
jnp.array([0.1, 1.0]))`` with a ``(n,)`` base returns a ``(2, n)`` family.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import _checks
from .distributions import _expect, _kl, _normalize

__all__ = [
    "gibbs",
    "log_partition",
    "free_energy",
    "implied_energy",
    "tilt_for_kl",
    "frontier",
]


# ----------------------------------------------------------------------------- kernels (no checks)
def _reference_energy(logp0, energy):
    """The least live energy c = min{U(y) : p0(y) > 0, U(y) < inf} (keepdims); 0 if none.

    Shifting by it makes every (U - c)/beta >= 0, so a tiny beta can only overflow a scaled
    energy to +inf (zero mass, the right limit), never produce inf - inf.
    """
    live = (logp0 > -jnp.inf) & (energy < jnp.inf)
    floor = jnp.min(jnp.where(live, energy, jnp.inf), axis=-1, keepdims=True)
    return jnp.where(floor < jnp.inf, floor, 0.0)


def _over(x, beta):
    """x / beta for beta > 0, also where 1/beta is not a normal float.

    XLA computes a division by a broadcast beta as a product with 1/beta, which is subnormal,
    hence flushed to zero, for beta > 1/tiny (e.g. beta = 1e308): then x is multiplied by
    1/sqrt(beta) twice instead, each factor a normal float.
    """
    inv = 1.0 / beta
    root = 1.0 / jnp.sqrt(beta)
    normal = jnp.isfinite(inv) & (inv >= jnp.finfo(inv.dtype).tiny)
    return jnp.where(normal, x * inv, (x * root) * root)


def _shifted_tilt_logits(logp0, energy, beta, c):
    """log p0 - (U - c)/beta with c the least live energy (``_reference_energy``).

    Every logit is then at most log p0 <= 0 — no overflow of U/beta into inf - inf at any beta,
    and no loss of digits to a large common energy offset. log Z = logsumexp(logits) - c/beta.
    """
    # Halved (exactly) so that energies near the float limit cannot overflow U - c; excess == 0
    # is set explicitly so a subnormal beta (flushed to zero by XLA) gives 0, not 0 * inf.
    excess = 0.5 * energy - 0.5 * c
    scaled = jnp.where(
        energy == jnp.inf,
        jnp.inf,
        jnp.where(excess == 0, 0.0, _over(excess, beta[..., None]) * 2.0),
    )
    return jnp.where((logp0 == -jnp.inf) | (scaled == jnp.inf), -jnp.inf, logp0 - scaled)


#: Sums of exp(logits <= 0) at least this large are accurate without a max-shift: underflowed or
#: flushed terms lose at most n * 1e-38 of them.
_DIRECT_SUM_FLOOR = 1e-10


def _lse_nonpos(logits_fn):
    """logsumexp over the last axis of ``logits_fn()``, logits known to be <= 0 (up to the
    normalization rounding of log p0): the plain sum of exp when it is at least
    ``_DIRECT_SUM_FLOOR`` on every row, else the max-shifted logsumexp. The logits are recomputed
    inside each branch from a thunk so XLA fuses them into the sums instead of materializing them.
    """
    direct = jnp.sum(jnp.exp(logits_fn()), axis=-1)
    return jax.lax.cond(
        jnp.all(direct >= _DIRECT_SUM_FLOOR),
        lambda: jnp.log(direct),
        lambda: jax.nn.logsumexp(logits_fn(), axis=-1),
    )


def _log_partition_exact(logp0, energy, beta):
    c = _reference_energy(logp0, energy)
    log_z = _lse_nonpos(lambda: _shifted_tilt_logits(logp0, energy, beta, c))
    c = c[..., 0]
    return log_z - jnp.where(c == 0, 0.0, _over(c, beta))


def _gibbs_exact(logp0, energy, beta):
    c = _reference_energy(logp0, energy)
    log_z = _lse_nonpos(lambda: _shifted_tilt_logits(logp0, energy, beta, c))
    return _shifted_tilt_logits(logp0, energy, beta, c) - log_z[..., None]


# The fast paths below use only arithmetic, exp and plain min/sum reductions over the inputs (no
# compare-and-select per entry), which XLA compiles to vectorized loops several times faster than
# the exact kernels above. They rely on IEEE arithmetic for the conventions: with c = min U over
# every behavior (not only the live ones) every logit lp - (U - c)/beta is at most lp <= 0, and
# -inf - x = -inf, x - inf = -inf give zero mass to p0(y) = 0 and U(y) = +inf. Any input outside
# the conventions (NaN, a -inf energy, a +inf log-probability) or a case they do not cover (a
# subnormal beta, a sum too small for the unshifted form, no mass at all) makes the sum NaN,
# infinite or below the floor; the exact kernel then runs instead, under ``lax.cond``.
def _fast_logits(logp0, energy, c, inv2):
    """log p0 - (U - c) / beta as log p0 - (U/2 - c/2) * (2/beta): halving is exact and keeps
    U - c from overflowing for energies near the float limit."""
    return logp0 - (0.5 * energy - 0.5 * c) * inv2


def _fast_sum(logp0, energy, beta):
    """(s, c, inv2, fast): s = sum_y exp(log p0 - (U - c) / beta), c = min U, inv2 = 2 / beta.

    ``fast`` is False where this form is not exact: 2/beta not a normal float (beta subnormal,
    or so large that 2/beta would be flushed to zero), or a sum that is NaN, infinite or below
    ``_DIRECT_SUM_FLOOR``."""
    inv2 = 2.0 / beta[..., None]
    c = jnp.min(energy, axis=-1, keepdims=True)
    c = jnp.where(c < jnp.inf, c, 0.0)
    s = jnp.sum(jnp.exp(_fast_logits(logp0, energy, c, inv2)), axis=-1)
    normal = jnp.isfinite(inv2) & (inv2 >= jnp.finfo(inv2.dtype).tiny)
    fast = jnp.all(jnp.isfinite(s) & (s >= _DIRECT_SUM_FLOOR)) & jnp.all(normal)
    return s, c, inv2, fast


def _energy_ok(energy):
    """Traceable: no NaN and no -inf energy (the value check of ``_checks.energy``)."""
    return ~jnp.any(jnp.isnan(energy) | (energy == -jnp.inf))


def _rows_live(logp0, energy):
    return jnp.any((logp0 > -jnp.inf) & (energy < jnp.inf), axis=-1)


def _log_partition_flagged(logp0, energy, beta):
    """(log Z, ok): ok means the energies passed their value check (exact on the exact path;
    on the fast path a finite sum implies it)."""
    s, c, _, fast = _fast_sum(logp0, energy, beta)
    return jax.lax.cond(
        fast,
        lambda: (jnp.log(s) - c[..., 0] / beta, jnp.array(True)),
        lambda: (_log_partition_exact(logp0, energy, beta), _energy_ok(energy)),
    )


def _gibbs_flagged(logp0, energy, beta):
    """(log q*, ok): ok also requires some mass on every row (Z > 0)."""
    s, c, inv2, fast = _fast_sum(logp0, energy, beta)

    def exact():
        ok = _energy_ok(energy) & jnp.all(_rows_live(logp0, energy))
        return _gibbs_exact(logp0, energy, beta), ok

    return jax.lax.cond(
        fast,
        lambda: (_fast_logits(logp0, energy, c, inv2) - jnp.log(s)[..., None], jnp.array(True)),
        exact,
    )


def _log_partition(logp0, energy, beta):
    return _log_partition_flagged(logp0, energy, beta)[0]


def _gibbs(logp0, energy, beta):
    return _gibbs_flagged(logp0, energy, beta)[0]


def _free_energy_flagged(logq, logp0, energy, beta):
    """(F, ok). Fast path: with no infinity anywhere, F = sum_y [q U + beta (q log(q/p0) - q +
    p0)] needs no select (one fused sum); any infinity (zero mass, excluded behaviors) or NaN
    makes that sum non-finite and the exact kernel runs."""
    q = jnp.exp(logq)
    terms = q * energy + beta[..., None] * jnp.maximum(q * (logq - logp0) - q + jnp.exp(logp0), 0.0)
    value = jnp.sum(terms, axis=-1)
    return jax.lax.cond(
        jnp.all(jnp.isfinite(value)),
        lambda: (value, jnp.array(True)),
        lambda: (_expect(logq, energy) + beta * _kl(logq, logp0), _energy_ok(energy)),
    )


def _free_energy(logq, logp0, energy, beta):
    return _free_energy_flagged(logq, logp0, energy, beta)[0]


@jax.jit
def _log_partition_checked(logp0, energy, beta):
    log_z, ok = _log_partition_flagged(logp0, energy, beta)
    return log_z, ok & _checks.mass_ok(logp0)


@jax.jit
def _gibbs_checked(logp0, energy, beta):
    logq, ok = _gibbs_flagged(logp0, energy, beta)
    return logq, ok & _checks.mass_ok(logp0)


@jax.jit
def _free_energy_checked(logq, logp0, energy, beta):
    value, ok = _free_energy_flagged(logq, logp0, energy, beta)
    return value, ok & _checks.mass_ok(logq) & _checks.mass_ok(logp0)


_log_partition_jit = jax.jit(_log_partition)
_gibbs_jit = jax.jit(_gibbs)
_free_energy_jit = jax.jit(_free_energy)


def _prepare(logp0, energy, beta, *, energy_name="energy", beta_name="beta", sign=1):
    """Check types and shapes of (logp0, energy, beta) and bring them to one float dtype.

    The values of ``logp0`` and ``energy`` are not looked at here: the public functions check
    them inside their compiled kernel (one read of the inputs) and call ``_check_values`` only
    when that check fails. ``beta`` (one value per row) is checked here.
    """
    logp0 = _checks.logp(logp0, "logp0", values=False)
    energy = _checks.energy(energy, energy_name, sign=sign, values=False)
    if energy.ndim == 0:
        energy = energy[None]
        shape = _checks.broadcast("logp0", logp0, energy_name, energy)
    else:
        shape = _checks.same_last_axis("logp0", logp0, energy_name, energy)
    beta = _checks.positive(beta, beta_name)
    _checks.against_batch(beta_name, beta, shape[:-1])
    dtype = _checks._float_dtype(logp0, energy, beta)
    return logp0.astype(dtype), energy.astype(dtype), beta.astype(dtype)


def _check_values(logp0, energy, *, energy_name="energy", sign=1, some_mass=False):
    """The host-side value checks, run when a kernel's fused check failed: they raise the error
    that names the problem. If none raises (a float rounding at the edge of a tolerance), the
    input is valid and the kernel's result stands."""
    _checks.logp(logp0, "logp0")
    _checks.energy(energy if sign > 0 else -energy, energy_name, sign=sign)
    if some_mass:
        _check_some_mass(logp0, energy, energy_name)


def _check_some_mass(logp0: jax.Array, energy: jax.Array, name: str = "energy") -> None:
    """Raise when some row has U = +inf on all of supp(p0) (Z = 0: the tilt has no mass)."""
    p0, u = np.asarray(logp0), np.asarray(energy)
    live = np.any((p0 > -np.inf) & (u < np.inf), axis=-1)
    if not np.all(live):
        what = "-inf" if name == "reward" else "+inf"
        raise ValueError(
            f"`{name}` is {what} on every behavior that `logp0` supports, so the tilt has no "
            f"mass (Z = 0). Leave at least one behavior of supp(p0) with a finite {name}."
        )


# ----------------------------------------------------------------------------- public API
def log_partition(logp0: Any, energy: Any, beta: Any) -> jax.Array:
    r"""Log partition function $\log Z_\beta = \log\sum_y p_0(y)\,e^{-U(y)/\beta}$ (nats).

    ``-inf`` in ``logp0`` and ``+inf`` in ``energy`` both contribute zero; ``-inf`` is returned
    when every behavior is excluded. ``-beta * log_partition(...)`` is the minimal free energy.
    ``logp0`` is ``(..., n)``, ``energy`` a scalar or ``(..., n)`` (same ``n``), ``beta`` a scalar
    or broadcasts against the batch shape; the result has the batch shape (nats).

    >>> import jax.numpy as jnp
    >>> float(log_partition(jnp.log(jnp.array([0.5, 0.5])), jnp.array([0.0, jnp.inf]), 1.0))
    -0.6931471...
    """
    logp0, energy, beta = _prepare(logp0, energy, beta)
    if _checks.is_traced(logp0, energy, beta):
        return _log_partition_jit(logp0, energy, beta)
    log_z, ok = _log_partition_checked(logp0, energy, beta)
    if not bool(ok):
        _check_values(logp0, energy)
    return log_z


def gibbs(logp0: Any, energy: Any, beta: Any) -> jax.Array:
    r"""Gibbs tilt $\log q^*_\beta = \log p_0 - U/\beta - \log Z_\beta$ (log-probs, nats).

    The minimizer of $F_\beta[q] = \mathbb{E}_q[U] + \beta\,\mathrm{KL}(q\|p_0)$. ``energy = +inf``
    excludes a behavior; behaviors outside ``supp(p0)`` stay at ``-inf`` for every finite energy
    (support preservation). For RL with reward ``r`` pass ``energy = -r``. Shapes as in
    ``log_partition``; the result has the broadcast shape ``(..., n)``.

    >>> import jax.numpy as jnp
    >>> gibbs(jnp.log(jnp.array([0.5, 0.5])), jnp.array([0.0, jnp.log(3.0)]), 1.0).tolist()
    [-0.2876..., -1.3862...]
    """
    logp0, energy, beta = _prepare(logp0, energy, beta)
    if _checks.is_traced(logp0, energy, beta):
        return _gibbs_jit(logp0, energy, beta)
    logq, ok = _gibbs_checked(logp0, energy, beta)
    if not bool(ok):
        _check_values(logp0, energy, some_mass=True)
    return logq


def free_energy(logq: Any, logp0: Any, energy: Any, beta: Any) -> jax.Array:
    r"""Free energy $F_\beta[q] = \mathbb{E}_q[U] + \beta\,\mathrm{KL}(q\|p_0)$ (nats).

    ``+inf`` when ``q`` puts mass on a behavior with infinite energy or outside ``supp(p0)``.
    By the Gibbs variational principle it is at least ``-beta * log_partition(logp0, energy,
    beta)``, with equality exactly at ``q = gibbs(logp0, energy, beta)``. The KL term is computed
    as in ``kl`` (non-negative by construction).

    >>> import jax.numpy as jnp
    >>> logp0, energy = jnp.log(jnp.array([0.5, 0.5])), jnp.array([0.0, 1.0])
    >>> q = gibbs(logp0, energy, 1.0)
    >>> round(float(free_energy(q, logp0, energy, 1.0)), 5)  # the minimum, -log Z
    0.37989
    >>> round(float(-log_partition(logp0, energy, 1.0)), 5)
    0.37989
    """
    logq = _checks.logp(logq, "logq", values=False)
    logp0, energy, beta = _prepare(logp0, energy, beta)
    _checks.same_last_axis("logq", logq, "logp0", logp0)
    _checks.broadcast("logq", logq, "energy", energy)
    shape = jnp.broadcast_shapes(logq.shape, logp0.shape, energy.shape)
    _checks.against_batch("beta", beta, shape[:-1])
    dtype = _checks._float_dtype(logq, logp0)
    logq = logq.astype(dtype)
    if _checks.is_traced(logq, logp0, energy, beta):
        return _free_energy_jit(logq, logp0, energy, beta)
    value, ok = _free_energy_checked(logq, logp0, energy, beta)
    if not bool(ok):
        _checks.logp(logq, "logq")
        _check_values(logp0, energy)
    return value


@jax.jit
def _implied(logq, logp0, beta):
    b = beta[..., None]
    q_pos = logq > -jnp.inf
    p_pos = logp0 > -jnp.inf
    finite = q_pos & p_pos
    value = -b * (jnp.where(finite, logq, 0.0) - jnp.where(finite, logp0, 0.0))
    energy = jnp.where(finite, value, jnp.where(q_pos, -jnp.inf, jnp.inf))
    return energy, q_pos & ~p_pos


def implied_energy(logq: Any, logp0: Any, beta: Any, *, return_singular: bool = False):
    r"""Implied energy (implicit reward up to sign) of a model: $U_q = -\beta\log(q/p_0)$.

    Defined up to an additive constant; the constant chosen here is zero, so that
    ``gibbs(logp0, implied_energy(logq, logp0, beta), beta) == logq`` whenever
    ``supp(q) ⊆ supp(p0)`` (docs/theory.md T7). The cases at the edge of the supports:

    * ``q(y) = 0``: ``+inf`` (the behavior is excluded), whatever ``p0(y)`` is;
    * ``q(y) > 0 = p0(y)``: the **singular** case. The energy diverges to ``-inf`` — no finite
      energy, so no reweighting of ``p0``, puts mass there. It is reported as ``-inf``, never NaN;
      with ``return_singular=True`` the call returns ``(energy, singular_mask)``.

    ``logq`` and ``logp0`` are ``(..., n)`` log-probabilities (nats), ``beta`` a scalar or
    broadcasting against the batch shape; the energy has the broadcast shape ``(..., n)`` and the
    units of ``beta`` times nats (nats at ``beta = 1``).

    The implicit reward of DPO is ``-implied_energy(logq, logp0, beta)``.

    >>> import jax.numpy as jnp
    >>> logp0 = jnp.log(jnp.array([0.5, 0.5]))
    >>> [round(u, 4) for u in implied_energy(jnp.log(jnp.array([0.8, 0.2])), logp0, 1.0).tolist()]
    [-0.47, 0.9163]
    >>> energy, singular = implied_energy(logp0, jnp.array([0.0, -jnp.inf]), 1.0,
    ...                                   return_singular=True)
    >>> energy.tolist(), singular.tolist()
    ([0.693..., -inf], [False, True])
    """
    logq = _checks.logp(logq, "logq")
    logp0 = _checks.logp(logp0, "logp0")
    shape = _checks.same_last_axis("logq", logq, "logp0", logp0)
    beta = _checks.positive(beta, "beta")
    _checks.against_batch("beta", beta, shape[:-1])
    dtype = _checks._float_dtype(logq, logp0, beta)
    energy, singular = _implied(logq.astype(dtype), logp0.astype(dtype), beta.astype(dtype))
    return (energy, singular) if return_singular else energy


def frontier(logp0: Any, reward: Any, betas: Any) -> tuple[jax.Array, jax.Array]:
    r"""The reward–KL frontier of the Gibbs family $q_\beta \propto p_0\,e^{r/\beta}$.

    Returns ``(expected_reward, kl)`` with $\mathbb{E}_{q_\beta}[r]$ and
    $\mathrm{KL}(q_\beta\|p_0)$ for every ``beta`` in ``betas`` (shape: ``betas`` broadcast
    against the batch shape). Both increase as ``beta`` decreases (docs/theory.md T4); each point
    is the best expected reward reachable at its KL. ``logp0`` is ``(..., n)`` and ``reward``
    broadcasts against it; ``kl`` is in nats, ``expected_reward`` in the reward's units.

    >>> import jax.numpy as jnp
    >>> expected, divergence = frontier(jnp.log(jnp.array([0.5, 0.5])), jnp.array([0.0, 1.0]),
    ...                                 jnp.array([10.0, 1.0, 0.1]))
    >>> [round(x, 3) for x in expected.tolist()], [round(x, 3) for x in divergence.tolist()]
    ([0.525, 0.731, 1.0], [0.001, 0.111, 0.693])
    """
    reward = _checks.energy(reward, "reward", sign=-1, values=False)
    logp0, energy, betas = _prepare(logp0, -reward, betas, energy_name="reward", beta_name="betas")
    if _checks.is_traced(logp0, energy, betas):
        return _frontier(logp0, energy, betas)
    expected, divergence, ok = _frontier_checked(logp0, energy, betas)
    if not bool(ok):
        _check_values(logp0, energy, energy_name="reward", sign=-1, some_mass=True)
    return expected, divergence


def _frontier_flagged(logp0, energy, betas):
    logq, ok = _gibbs_flagged(logp0, energy, betas)
    return -_expect(logq, energy), _kl(logq, logp0), ok


@jax.jit
def _frontier(logp0, energy, betas):
    return _frontier_flagged(logp0, energy, betas)[:2]


@jax.jit
def _frontier_checked(logp0, energy, betas):
    expected, divergence, ok = _frontier_flagged(logp0, energy, betas)
    return expected, divergence, ok & _checks.mass_ok(logp0)


# ----------------------------------------------------------------------------- tilt_for_kl
_MAX_NEWTON_STEPS = 200


def _moments(lp, rc, lam):
    """Per row: (KL(q||p'), Var_q[rc]) for q ∝ p' e^{lam rc}, in two fused passes.

    ``lp``, ``rc``: ``(B, n)`` with ``rc <= 0`` (reward minus its maximum, exact near the top);
    ``lam``: ``(B,)``. Pass one takes the mean m = E_q[rc] (a same-sign sum, no cancellation);
    pass two works with d = rc - m: KL = lam E_q[d] - log sum p' e^{lam d} and
    Var = E[d^2] - E[d]^2. Neither cancels: not at small lam (KL ~ lam^2 Var / 2, where
    lam E_q[rc] and log Z agree to first order), not at large lam (where both are large).
    """

    def weights(x):
        logits = jnp.where(lp == -jnp.inf, -jnp.inf, lp + lam[:, None] * x)
        top = jnp.max(logits, axis=-1, keepdims=True)
        w = jnp.exp(logits - top)
        return w, jnp.sum(w, axis=-1), top[:, 0]

    w, s0, _ = weights(rc)
    mean = jnp.sum(w * rc, axis=-1) / s0
    d = rc - mean[:, None]
    w, s0, top = weights(d)
    s1 = jnp.sum(w * d, axis=-1) / s0
    s2 = jnp.sum(w * d * d, axis=-1) / s0
    kl = lam * s1 - (top + jnp.log(s0))
    return kl, jnp.maximum(s2 - s1 * s1, 0.0)


def _solve(lp, rc, eps, active, rtol):
    """Find s = log(lambda) with KL(q_lambda || p') = eps for every active row.

    KL(lambda) = lambda E_q[rc] - log Z(lambda) is increasing in lambda with
    dKL/ds = lambda^2 Var_q(rc). With ``rc`` in [-1, 0] (the reward minus its maximum, in units
    of its spread), Var_q(rc) <= 1/4, so KL(lambda) <= lambda^2 / 8 and
    s_lo = log(8 eps)/2 - 1 is below the root; the upper end s_hi is where lambda stops being
    representable. From the small-lambda guess lambda0 = sqrt(2 eps / Var_p') the root is refined
    by safeguarded Newton steps in s (bisection of the bracket when Newton leaves it), in one
    ``while_loop`` over all rows (finished rows are frozen with ``where``). A budget that rounds
    above every representable KL below the limit ends at s_hi, within rounding of the limit.
    """
    dtype = lp.dtype
    tiny = jnp.finfo(dtype).eps
    s_lo = 0.5 * jnp.log(8.0 * eps) - 1.0
    s_hi = jnp.full_like(eps, math.log(float(jnp.finfo(dtype).max)) - 2.0)

    def f(s):
        lam = jnp.exp(s)
        kl, var = _moments(lp, rc, lam)
        return kl - eps, lam * lam * var

    _, var0 = _moments(lp, rc, jnp.zeros_like(eps))
    s0 = jnp.clip(0.5 * jnp.log(2.0 * eps / jnp.where(var0 > 0, var0, 1.0)), s_lo, s_hi)
    f0, d0 = f(s0)

    def refining(lo, hi, s, fs):
        scale = jnp.maximum(1.0, jnp.abs(s))
        return active & (jnp.abs(fs) > rtol * eps) & (hi - lo > 4 * tiny * scale)

    def cond(c):
        lo, hi, s, fs, ds, it = c
        return jnp.any(refining(lo, hi, s, fs)) & (it < _MAX_NEWTON_STEPS)

    def body(c):
        lo, hi, s, fs, ds, it = c
        go = refining(lo, hi, s, fs)
        lo = jnp.where(go & (fs < 0), s, lo)
        hi = jnp.where(go & (fs > 0), s, hi)
        newton = s - fs / jnp.where(ds > 0, ds, 1.0)
        ok = (ds > 0) & (newton > lo) & (newton < hi)
        s_new = jnp.where(go, jnp.where(ok, newton, 0.5 * (lo + hi)), s)
        f_new, d_new = f(s_new)
        return lo, hi, s_new, jnp.where(go, f_new, fs), jnp.where(go, d_new, ds), it + 1

    _, _, s, _, _, _ = jax.lax.while_loop(cond, body, (s_lo, s_hi, s0, f0, d0, 0))
    return s


@jax.jit
def _tilt_for_kl(logp0, reward, kl_budget):
    """Batched solver over rows of (logp0, reward) with per-row budgets; see tilt_for_kl."""
    dtype = logp0.dtype
    rtol = jnp.asarray(1e-12 if dtype == jnp.float64 else 1e-6, dtype)
    n = logp0.shape[-1]
    batch = logp0.shape[:-1]
    lp0 = logp0.reshape(-1, n)
    r = reward.reshape(-1, n)
    eps = kl_budget.reshape(-1)

    def lse(x):
        return jax.nn.logsumexp(x, axis=-1, keepdims=True)

    feasible = (lp0 > -jnp.inf) & (r > -jnp.inf)
    log_mass_f = lse(jnp.where(feasible, lp0, -jnp.inf))
    # -log p0(feasible), relative to the total mass (so exactly 0 when nothing is excluded,
    # whatever the rounding of the normalization of logp0)
    kl_min = jnp.maximum(lse(lp0)[:, 0] - log_mass_f[:, 0], 0.0)
    lp = jnp.where(feasible, lp0 - log_mass_f, -jnp.inf)
    r_f = jnp.where(feasible, r, 0.0)
    rmax = jnp.max(jnp.where(feasible, r, -jnp.inf), axis=-1, keepdims=True)
    top = feasible & (r == rmax)
    kl_max = -lse(jnp.where(top, lp, -jnp.inf))[:, 0]
    # Rewards relative to their maximum (exact near the top, where the differences that matter
    # at large lambda live), in units of their spread so that rc is in [-1, 0] whatever the
    # reward's scale (the solver squares it). The solver's lambda is spread / beta. Rewards near
    # the float limit are first scaled by 1/4 (exact), so r - max r cannot overflow.
    big = jnp.max(jnp.abs(r_f), axis=-1, keepdims=True) > jnp.finfo(dtype).max / 4
    halve = jnp.where(big, 0.25, 1.0).astype(dtype)
    diff = jnp.where(feasible, r_f * halve - rmax * halve, 0.0)
    spread = jnp.max(-diff, axis=-1)
    unit = jnp.where(spread > 0, spread, 1.0)
    rc = _over(diff, unit[:, None])
    eps_f = eps - kl_min
    # A reward constant on the feasible set makes the limit the base itself (kl_max = 0 up to
    # rounding): every feasible budget returns it, with beta = 0, whatever the rounding of eps_f.
    # A budget within rounding of the limit's KL is the limit too, also when the limit differs
    # from the base only by mass below the float range (kl_max = 0): the limit, beta = 0, wins
    # over the base, beta = inf. The rounding of eps_f grows with eps and kl_min.
    constant = jnp.all(top == feasible, axis=-1)
    slack = 16 * jnp.finfo(dtype).eps * (1.0 + jnp.abs(eps) + kl_min + kl_max)
    is_limit = (eps_f >= kl_max - slack) | constant
    is_base = (eps_f <= 0) & ~is_limit
    active = ~is_limit & ~is_base
    s = _solve(lp, rc, jnp.where(active, eps_f, 1.0), active, rtol)
    lam = jnp.exp(s)
    tilted = _normalize(jnp.where(feasible, lp + lam[:, None] * rc, -jnp.inf))
    limit = _normalize(jnp.where(top, lp, -jnp.inf))
    logq = jnp.where(is_limit[:, None], limit, jnp.where(is_base[:, None], lp, tilted))
    beta = jnp.where(is_limit, 0.0, jnp.where(is_base, jnp.inf, _over(unit, lam) / halve[:, 0]))
    return logq.reshape(*batch, n), beta.reshape(batch), kl_min.reshape(batch)


def tilt_for_kl(logp0: Any, reward: Any, kl_budget: Any) -> tuple[jax.Array, jax.Array]:
    r"""The KL-constrained optimum: $\max_q \mathbb{E}_q[r]$, $\mathrm{KL}(q\|p_0)\le\varepsilon$.

    By Lagrangian duality the answer is a Gibbs tilt $q_\beta \propto p_0\,e^{r/\beta}$ whose KL
    equals the budget (docs/theory.md T4). This solves the one-dimensional dual exactly: it brackets
    $\lambda = 1/\beta$ and refines it by safeguarded Newton steps in $\log\lambda$
    ($d\mathrm{KL}/d\log\lambda = \lambda^2\,\mathrm{Var}_{q_\lambda}(r)$), to a relative KL error
    below 1e-6 in float64 (in float32 to float32 rounding of the KL itself).

    Returns ``(logq, beta)``. Edge cases:

    * ``kl_budget`` at least the KL of the **reward-maximizing limit** $q_\infty = p_0(\cdot \mid
      \arg\max r)$, i.e. $\varepsilon \ge -\log p_0(\arg\max r)$: returns that limit and
      ``beta = 0`` (no finite temperature is needed; the constraint is slack).
    * ``kl_budget = 0`` (or a reward constant on ``supp(p0)``): returns ``p0`` (``beta = inf``,
      or the limit with ``beta = 0`` if the reward is constant).
    * ``reward = -inf`` excludes behaviors; excluding mass ``m`` costs ``-log(1 - m)`` of KL up
      front, and a budget below that is infeasible (ValueError).
    * rewards that differ by less than about 1e-300 (absolutely, or relative to their spread)
      cannot be told apart by any representable ``beta``; the answer is then the tilt at the
      extreme representable temperature (a KL at most the budget, the best reachable).
    * rewards spread across nearly the whole float range (e.g. ``±1e308``): ``logq`` is exact,
      and ``beta`` overflows to ``inf`` only when the temperature itself exceeds the float range.

    ``logp0`` is ``(..., n)``; ``reward`` broadcasts against it; ``kl_budget`` (nats) is a scalar
    or broadcasts against the batch shape. ``logq`` is ``(..., n)`` normalized log-probabilities
    (nats) and ``beta`` has the batch shape (in the reward's units).

    >>> import jax.numpy as jnp
    >>> from freeenergy import kl
    >>> logp0, reward = jnp.log(jnp.array([0.5, 0.25, 0.25])), jnp.array([0.0, 0.0, 1.0])
    >>> logq, beta = tilt_for_kl(logp0, reward, 0.1)
    >>> round(float(kl(logq, logp0)), 5)
    0.1
    >>> logq, beta = tilt_for_kl(logp0, reward, 2.0)  # above log 4: the limit, beta = 0
    >>> logq.tolist(), float(beta)
    ([-inf, -inf, 0.0], 0.0)
    """
    logp0 = _checks.logp(logp0, "logp0")
    reward = _checks.energy(reward, "reward", sign=-1)
    if reward.ndim == 0:
        reward = reward[None]
        shape = _checks.broadcast("logp0", logp0, "reward", reward)
    else:
        shape = _checks.same_last_axis("logp0", logp0, "reward", reward)
    budget = _checks.to_array(kl_budget, "kl_budget")
    if not _checks.is_traced(budget):
        v = np.asarray(budget)
        if v.size == 0 or not np.all(np.isfinite(v)) or np.any(v < 0):
            raise ValueError(f"`kl_budget` must be finite and >= 0 (nats), got {kl_budget!r}.")
    budget_shape = _checks.against_batch("kl_budget", budget, shape[:-1])
    full = (*budget_shape, shape[-1])
    dtype = _checks._float_dtype(logp0, reward, budget)
    lp0 = jnp.broadcast_to(logp0.astype(dtype), full)
    r = jnp.broadcast_to(reward.astype(dtype), full)
    eps = jnp.broadcast_to(budget.astype(dtype), budget_shape)
    if not _checks.is_traced(lp0, r):
        feasible = (np.asarray(lp0) > -np.inf) & (np.asarray(r) > -np.inf)
        if not np.all(np.any(feasible, axis=-1)):
            raise ValueError(
                "`reward` is -inf on every behavior that `logp0` supports: every q with finite "
                "KL has expected reward -inf. Give some behavior of supp(p0) a finite reward."
            )
    logq, beta, kl_min = _tilt_for_kl(lp0, r, eps)
    beta = beta.astype(dtype)
    if not _checks.is_traced(logq):
        slack = np.asarray(eps) - np.asarray(kl_min)
        tol = 1e-6 * np.asarray(kl_min) + 16 * np.finfo(np.asarray(kl_min).dtype).eps
        if np.any(slack < -tol):
            i = int(np.argmin(slack.ravel()))
            raise ValueError(
                f"`kl_budget` = {float(np.asarray(eps).ravel()[i]):.6g} is infeasible: excluding "
                f"the behaviors with reward -inf alone costs KL = "
                f"{float(np.asarray(kl_min).ravel()[i]):.6g}. Raise the budget above it or give "
                "those behaviors a finite reward."
            )
    return logq, beta
