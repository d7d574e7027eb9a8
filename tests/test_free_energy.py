"""free_energy.py: Gibbs tilts, partition functions, implied energies, tilt_for_kl and frontier.

Closed forms on small hand-built cases, NumPy re-computation, invariances (energy shifts, reward
scale), automatic differentiation as a second algorithm (d log Z / d(1/beta) = -E_q[U]), and the
edge cases of the KL-constrained tilt: zero budget, budgets at and above the limit, rewards with
``-inf``, infeasible budgets, constant rewards, near-ties, batches of budgets and bases.
"""

from __future__ import annotations

import importlib
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from oracles import np_kl, np_lse, np_normalize, np_tilt

import freeenergy as fe

INF = np.inf
N = 8


@pytest.fixture(scope="module")
def base():
    rng = np.random.default_rng(11)
    logits = rng.normal(size=N) * 1.5
    logits[5] = -INF
    reward = rng.uniform(-1, 1, size=N)
    return np_normalize(logits), reward


# ----------------------------------------------------------------------------- gibbs, log Z
def test_two_point_closed_form():
    """p0 = (1/2, 1/2), U = (0, u): q = (1, e^{-u/b}) / (1 + e^{-u/b}), Z = (1 + e^{-u/b}) / 2."""
    logp0 = np.log([0.5, 0.5])
    for u, beta in [(1.0, 1.0), (3.0, 0.25), (-2.0, 5.0)]:
        w = math.exp(-u / beta)
        logq = np.asarray(fe.gibbs(logp0, [0.0, u], beta))
        np.testing.assert_allclose(np.exp(logq), [1 / (1 + w), w / (1 + w)], rtol=1e-14)
        log_z = float(fe.log_partition(logp0, [0.0, u], beta))
        assert log_z == pytest.approx(math.log((1 + w) / 2), rel=1e-14)
        f = float(fe.free_energy(logq, logp0, [0.0, u], beta))
        assert f == pytest.approx(-beta * math.log((1 + w) / 2), rel=1e-13)


@given(st.floats(-50, 50), st.floats(-3, 3).map(lambda e: 10.0**e))
def test_energy_shift_invariance(shift, beta):
    rng = np.random.default_rng(0)
    logp0 = np_normalize(rng.normal(size=N))
    energy = rng.normal(size=N)
    energy[2] = INF
    a = np.asarray(fe.gibbs(logp0, energy, beta))
    b = np.asarray(fe.gibbs(logp0, energy + shift, beta))
    fin = a > -INF
    np.testing.assert_array_equal(fin, b > -INF)
    np.testing.assert_allclose(a[fin], b[fin], atol=1e-10 * (1 + np.max(np.abs(a[fin]))))
    log_z = float(fe.log_partition(logp0, energy, beta))
    shifted = float(fe.log_partition(logp0, energy + shift, beta))
    assert shifted == pytest.approx(log_z - shift / beta, rel=1e-11, abs=1e-11 * (1 + log_z))


def test_log_partition_derivative_is_mean_energy(base):
    """d log Z / d lambda = -E_q[U] (lambda = 1/beta), by autodiff through log_partition."""
    logp0, reward = base
    energy = -reward
    for beta in (0.1, 1.0, 10.0):
        grad = jax.grad(lambda lam: fe.log_partition(logp0, energy, 1.0 / lam))(1.0 / beta)
        q = np.exp(np_tilt(logp0, energy, beta))
        assert float(grad) == pytest.approx(-math.fsum(q * energy), rel=1e-10)


def test_gibbs_batched_temperatures(base):
    logp0, reward = base
    betas = np.array([0.01, 0.3, 1.0, 30.0])
    family = np.asarray(fe.gibbs(logp0, -reward, betas))
    assert family.shape == (4, N)
    for row, beta in zip(family, betas, strict=True):
        np.testing.assert_allclose(
            row[row > -INF], np_tilt(logp0, -reward, beta)[row > -INF], atol=1e-12
        )
    np.testing.assert_allclose(
        fe.log_partition(logp0, -reward, betas),
        [np_lse(logp0 + reward / b) for b in betas],
        rtol=1e-12,
    )


# ----------------------------------------------------------------------------- free energy
def test_free_energy_cases(base):
    logp0, reward = base
    energy = -reward
    p = np.exp(logp0)
    # at q = p0 the KL vanishes: F = E_p0[U]
    assert float(fe.free_energy(logp0, logp0, energy, 2.0)) == pytest.approx(
        math.fsum(p[p > 0] * energy[p > 0]), rel=1e-12
    )
    # a point mass at y costs U(y) - beta log p0(y)
    point = np.where(np.arange(N) == 1, 0.0, -INF)
    assert float(fe.free_energy(point, logp0, energy, 2.0)) == pytest.approx(
        energy[1] - 2.0 * logp0[1], rel=1e-12
    )
    # mass outside supp(p0) or on an infinite energy: +inf, never NaN
    outside = np.where(np.arange(N) == 5, 0.0, -INF)
    assert float(fe.free_energy(outside, logp0, energy, 2.0)) == INF
    excluded = energy.copy()
    excluded[1] = INF
    assert float(fe.free_energy(point, logp0, excluded, 2.0)) == INF
    assert np.isfinite(float(fe.free_energy(logp0, logp0, np.where(p > 0, energy, INF), 2.0)))


def test_free_energy_batched(base):
    logp0, reward = base
    logq = np.asarray(fe.gibbs(logp0, -reward, np.array([0.5, 2.0])))
    f = np.asarray(fe.free_energy(logq, logp0, -reward, np.array([0.5, 2.0])))
    np.testing.assert_allclose(
        f,
        -np.array([0.5, 2.0]) * np.asarray(fe.log_partition(logp0, -reward, np.array([0.5, 2.0]))),
        rtol=1e-12,
    )


# ----------------------------------------------------------------------------- implied energy
def test_implied_energy_cases():
    logp0 = np.array([np.log(0.5), np.log(0.5), -INF, -INF])
    logq = np.array([np.log(0.8), -INF, np.log(0.2), -INF])
    energy, singular = fe.implied_energy(logq, logp0, 2.0, return_singular=True)
    energy = np.asarray(energy)
    assert energy[0] == pytest.approx(-2.0 * math.log(0.8 / 0.5))
    assert energy[1] == INF  # q = 0: excluded
    assert energy[2] == -INF  # q > 0 = p0: singular
    assert energy[3] == INF  # q = p0 = 0
    np.testing.assert_array_equal(singular, [False, False, True, False])
    betas = np.array([1.0, 3.0])  # broadcasts against the batch shape: a (2, n) result
    batched = np.asarray(fe.implied_energy(np.log([0.8, 0.2]), np.log([0.5, 0.5]), betas))
    np.testing.assert_allclose(batched, -betas[:, None] * np.log([1.6, 0.4]), rtol=1e-14)


def test_dpo_implicit_reward_recovers_the_reward_up_to_a_constant(base):
    logp0, reward = base
    beta = 0.7
    logq = fe.gibbs(logp0, -reward, beta)
    implicit = -np.asarray(fe.implied_energy(logq, logp0, beta))
    sup = logp0 > -INF
    np.testing.assert_allclose(
        implicit[sup] - reward[sup], np.full(sup.sum(), implicit[0] - reward[0]), atol=1e-12
    )


# ----------------------------------------------------------------------------- tilt_for_kl
def limit_kl(logp0, reward):
    feasible = (logp0 > -INF) & (reward > -INF)
    top = feasible & (reward == np.max(reward[feasible]))
    return -np_lse(np.where(top, logp0, -INF))


def test_tilt_budget_zero_is_the_base(base):
    logp0, reward = base
    logq, beta = fe.tilt_for_kl(logp0, reward, 0.0)
    np.testing.assert_allclose(logq, logp0, atol=1e-15)
    assert float(beta) == INF


def test_tilt_budget_at_and_above_the_limit(base):
    logp0, reward = base
    lim = limit_kl(logp0, reward)
    top = int(np.argmax(np.where(logp0 > -INF, reward, -INF)))
    for eps in (lim, lim * 1.5, 1e6):
        logq, beta = fe.tilt_for_kl(logp0, reward, eps)
        assert float(beta) == pytest.approx(0.0, abs=1e-3)
        np.testing.assert_allclose(np.exp(logq), np.arange(N) == top, atol=1e-9)
    below = fe.tilt_for_kl(logp0, reward, lim * (1 - 1e-6))
    assert 0 < float(below[1]) < INF
    assert float(fe.kl(below[0], logp0)) == pytest.approx(lim * (1 - 1e-6), rel=1e-9)


@pytest.mark.parametrize("frac", [1e-6, 1e-3, 0.1, 0.5, 0.9, 0.999])
def test_tilt_hits_the_budget_and_matches_frontier(base, frac):
    logp0, reward = base
    eps = frac * limit_kl(logp0, reward)
    logq, beta = fe.tilt_for_kl(logp0, reward, eps)
    assert np_kl(np.asarray(logq), logp0) == pytest.approx(eps, rel=1e-6)
    expected, divergence = fe.frontier(logp0, reward, beta)
    assert float(divergence) == pytest.approx(eps, rel=1e-6)
    q = np.exp(np.asarray(logq))
    assert float(expected) == pytest.approx(math.fsum(q[q > 0] * reward[q > 0]), rel=1e-10)


def test_tilt_reward_with_minus_inf(base):
    """r = -inf excludes behaviors; the exclusion alone costs -log p0(feasible)."""
    logp0, reward = base
    r = reward.copy()
    r[[0, 3]] = -INF
    feasible = (logp0 > -INF) & (r > -INF)
    cost = -np_lse(np.where(feasible, logp0, -INF))
    restricted = np_normalize(np.where(feasible, logp0, -INF))
    logq, beta = fe.tilt_for_kl(logp0, r, cost)  # exactly the cost: the restricted base
    np.testing.assert_allclose(np.exp(logq), np.exp(restricted), atol=1e-12)
    assert float(beta) > 1e6  # inf, or huge when the budget rounds just above the cost
    eps = cost + 0.3 * (limit_kl(logp0, r) - cost)
    logq, beta = fe.tilt_for_kl(logp0, r, eps)
    assert np_kl(np.asarray(logq), logp0) == pytest.approx(eps, rel=1e-6)
    assert np.all(np.asarray(logq)[~feasible] == -INF)
    np.testing.assert_allclose(logq, fe.gibbs(logp0, -r, beta), atol=1e-10)
    with pytest.raises(ValueError, match="`kl_budget`.*infeasible"):
        fe.tilt_for_kl(logp0, r, 0.5 * cost)


def test_tilt_constant_reward(base):
    logp0, _ = base
    for eps in (0.0, 0.5):
        logq, beta = fe.tilt_for_kl(logp0, np.full(N, 2.0), eps)
        np.testing.assert_allclose(logq, logp0, atol=1e-15)
        assert float(beta) == 0.0  # the limit: reached at no cost


def test_tilt_scale_and_shift_invariance(base):
    logp0, reward = base
    logq, beta = fe.tilt_for_kl(logp0, reward, 0.2)
    for scale, shift in [(1e-8, 0.0), (1e8, 0.0), (1e200, 0.0), (1.0, 1e3), (3.0, -7.0)]:
        lq, b = fe.tilt_for_kl(logp0, scale * reward + shift, 0.2)
        np.testing.assert_allclose(lq, logq, atol=1e-9)
        assert float(b) == pytest.approx(scale * float(beta), rel=1e-7)


def test_tilt_near_tie_at_the_top():
    """Rewards 0 and -1e-30 tie to within rounding of their spread; the tilt still separates them.

    KL climbs to log(7/3) (the mass leaves the r = -1 behaviors) at lambda ~ 1, then to log 7
    only at lambda ~ 1e30; a budget between needs that second stage.
    """
    logp0 = np.full(7, -math.log(7))
    reward = np.array([-1.0, -1e-30, 0.0, -1.0, -1.0, -1.0, -1.0])
    for eps in (0.3, 1.0, 1.4, 1.9):
        logq, beta = fe.tilt_for_kl(logp0, reward, eps)
        assert np_kl(np.asarray(logq), logp0) == pytest.approx(eps, rel=1e-6)
    q = np.exp(np.asarray(logq))
    # at 1.9 nats the tie is split: q(y2)/q(y1) = e^{1e-30 / beta}
    assert q[2] / q[1] == pytest.approx(math.exp(1e-30 / float(beta)), rel=1e-6)


def test_tilt_batched_budgets_and_bases(base):
    logp0, reward = base
    budgets = np.array([0.0, 0.05, 0.4, 10.0])
    logq, beta = fe.tilt_for_kl(logp0, reward, budgets)
    assert logq.shape == (4, N) and beta.shape == (4,)
    for i, eps in enumerate(budgets):
        one_q, one_b = fe.tilt_for_kl(logp0, reward, eps)
        np.testing.assert_allclose(logq[i], one_q, atol=1e-12)
        assert float(beta[i]) == pytest.approx(float(one_b), rel=1e-9)
    rng = np.random.default_rng(5)
    bases = np_normalize(rng.normal(size=(3, N)))
    column = np.array([[0.1], [0.3]])
    logq, beta = fe.tilt_for_kl(bases, reward, column)
    assert logq.shape == (2, 3, N) and beta.shape == (2, 3)
    for a in range(2):
        for i in range(3):
            assert np_kl(np.asarray(logq[a, i]), bases[i]) == pytest.approx(column[a, 0], rel=1e-6)


def test_tilt_float32():
    logp0 = jnp.log(jnp.array([0.5, 0.3, 0.15, 0.05], jnp.float32))
    reward = jnp.array([0.0, 1.0, 2.0, 3.0], jnp.float32)
    logq, beta = fe.tilt_for_kl(logp0, reward, 0.5)
    assert logq.dtype == jnp.float32 and beta.dtype == jnp.float32
    assert np_kl(np.asarray(logq, np.float64), np.asarray(logp0, np.float64)) == pytest.approx(
        0.5, rel=1e-4
    )


# ----------------------------------------------------------------------------- frontier
def test_frontier_shapes_and_values(base):
    logp0, reward = base
    e, d = fe.frontier(logp0, reward, 0.5)
    assert e.shape == d.shape == ()
    betas = np.array([0.1, 1.0, 10.0])
    e, d = fe.frontier(logp0, reward, betas)
    assert e.shape == d.shape == (3,)
    for i, b in enumerate(betas):
        q = np_tilt(logp0, -reward, b)
        assert float(e[i]) == pytest.approx(math.fsum(np.exp(q[q > -INF]) * reward[q > -INF]))
        assert float(d[i]) == pytest.approx(np_kl(q, logp0), rel=1e-10)
    bases = np.stack([logp0, np_normalize(np.arange(N, dtype=float))])
    e, d = fe.frontier(bases, reward, np.array([0.5, 2.0]))
    assert e.shape == (2,)
    assert float(d[1]) == pytest.approx(np_kl(np_tilt(bases[1], -reward, 2.0), bases[1]))
    e, d = fe.frontier(bases, reward, np.array([[0.5], [1.0], [2.0]]))
    assert e.shape == d.shape == (3, 2)
    e32, d32 = fe.frontier(
        logp0.astype(np.float32), reward.astype(np.float32), np.array([0.5, 2.0], np.float32)
    )
    assert e32.dtype == d32.dtype == jnp.float32
    np.testing.assert_allclose(d32, fe.frontier(logp0, reward, np.array([0.5, 2.0]))[1], rtol=1e-4)


def test_frontier_limits(base):
    logp0, reward = base
    e, d = fe.frontier(logp0, reward, np.array([1e-6, 1e6]))
    top = int(np.argmax(np.where(logp0 > -INF, reward, -INF)))
    assert float(e[0]) == pytest.approx(reward[top])
    assert float(d[0]) == pytest.approx(-logp0[top])
    p = np.exp(logp0)
    assert float(e[1]) == pytest.approx(math.fsum(p * reward), abs=1e-5)
    assert 0 <= float(d[1]) < 1e-11


# ----------------------------------------------------------------------------- hardening
def test_frontier_kl_is_never_negative():
    """A reward constant on supp(p0): q = p0 up to rounding, and the KL is 0, not -1.8e-15
    (the terms q log(q/p) - q + p are each >= 0)."""
    logp0 = np_normalize(np.array([-INF, -INF, 0.0, -3.0] + [-INF] * 8))
    reward = np.array([-INF] + [0.0] * 11)
    expected, divergence = fe.frontier(logp0, reward, np.ones(9))
    assert np.all(np.asarray(divergence) >= 0.0)
    np.testing.assert_allclose(divergence, 0.0, atol=1e-15)
    np.testing.assert_allclose(expected, 0.0, atol=0)


@given(st.integers(0, 10**6), st.sampled_from([1e-3, 1e-6, 1e-9, 1e-12, 0.0]))
def test_kl_of_nearly_equal_distributions_is_non_negative(seed, scale):
    rng = np.random.default_rng(seed)
    logp = np_normalize(rng.normal(size=N) * 3)
    logq = np_normalize(logp + scale * rng.normal(size=N))
    for dtype in (np.float64, np.float32):
        value = float(fe.kl(logq.astype(dtype), logp.astype(dtype)))
        assert value >= 0.0
    assert float(fe.kl(logq, logp)) == pytest.approx(np_kl(logq, logp), rel=1e-6, abs=1e-15)


def test_rewards_and_energies_near_the_float_limit():
    """±1e308: no overflow of U - c or of the reward spread into NaN or a wrong limit."""
    logp0 = np.log([0.5, 0.25, 0.25])
    for r in ([1e308, -1e308, 0.0], [1.7e308, -1.7e308, 1e308], [1e308, 1e308, -1e308]):
        r = np.array(r)
        logq, beta = fe.tilt_for_kl(logp0, r, 0.1)
        logq = np.asarray(logq)
        assert not np.any(np.isnan(logq))
        assert np_kl(logq, logp0) == pytest.approx(0.1, rel=1e-6)
        if float(beta) < INF:  # the same tilt, computed on rewards scaled by 1/4 (exact)
            np.testing.assert_allclose(logq, np_tilt(logp0, -r / 4, float(beta) / 4), atol=1e-9)
    energy = np.array([-1e308, 1e308, 0.0])
    for beta in (1.0, 1e300, 1e308):
        with np.errstate(over="ignore"):
            expected = np_tilt(logp0, energy / 4, beta / 4)
        np.testing.assert_allclose(fe.gibbs(logp0, energy, beta), expected, atol=1e-12)
        log_z = float(fe.log_partition(logp0, energy, beta))
        with np.errstate(over="ignore"):
            reference = np_lse(logp0 - energy / 4 / (beta / 4))
        assert log_z == pytest.approx(reference, rel=1e-12)
    np.testing.assert_allclose(fe.normalize(np.array([1e308, 1e308])), np.log([0.5, 0.5]))
    np.testing.assert_array_equal(fe.normalize(np.array([1.7e308, -1.7e308])), [0.0, -INF])


def test_tilt_for_kl_at_the_limit_with_mass_below_the_float_range():
    """The non-top behavior has relative log-mass -983 (below the float range): at a budget
    equal to the limit's KL the answer is the limit with beta = 0 (its docstring), not p0 with
    beta = inf, also when excluding behaviors makes that KL large (its rounding grows)."""
    for shift in (0.0, 30.0, 700.0, 5000.0, 9999.0):
        logp0 = np_normalize(np.array([-shift, -shift - 983.0, 0.0, -3.0]))
        reward = np.array([1.0, 0.0, -INF, -INF])
        kl_lim = max(-float(np_lse(logp0[:1])), 0.0)
        for budget in (kl_lim, np.nextafter(kl_lim, 0.0), kl_lim * (1 + 1e-15)):
            logq, beta = fe.tilt_for_kl(logp0, reward, budget)
            assert float(beta) == 0.0
            np.testing.assert_array_equal(np.asarray(logq), [0.0, -INF, -INF, -INF])


# The public functions take a fast path (no compare-and-select per entry) when its arithmetic
# reproduces the conventions, and the exact kernels otherwise. Both must give the same numbers.
_values = st.one_of(
    st.floats(-30, 5), st.floats(-30, 5), st.floats(-30, 5), st.just(-INF), st.floats(-1e4, -1e3)
)


def _jitted_kernels():
    d = importlib.import_module("freeenergy.distributions")
    f = importlib.import_module("freeenergy.free_energy")  # the module, not `fe.free_energy`

    kernels = (
        d._kl,
        d._kl_fast,
        f._free_energy,
        f._gibbs,
        f._gibbs_exact,
        f._log_partition,
        f._log_partition_exact,
    )
    return tuple(jax.jit(k) for k in kernels)


_KERNELS = _jitted_kernels()


@given(
    st.lists(_values, min_size=N, max_size=N),
    st.lists(st.one_of(st.floats(-50, 50), st.just(INF)), min_size=N, max_size=N),
    st.floats(-6.0, 6.0).map(lambda e: 10.0**e),
)
def test_fast_and_exact_kernels_agree(logits, energy, beta):
    # Each kernel is compiled once for the whole property (every example has the same shapes).
    _kl, _kl_fast, _free_energy, _gibbs, _gibbs_exact, _log_partition, _log_partition_exact = (
        _KERNELS
    )

    logp0, energy = np.array(logits), np.array(energy)
    if np.all(logp0 == -INF):
        logp0[0] = 0.0
    logp0 = np_normalize(logp0)
    if not np.any((logp0 > -INF) & (energy < INF)):
        energy[int(np.argmax(logp0))] = 0.0
    lp, u, b = jnp.asarray(logp0), jnp.asarray(energy), jnp.asarray(beta)
    fast, exact = np.asarray(_gibbs(lp, u, b)), np.asarray(_gibbs_exact(lp, u, b))
    np.testing.assert_array_equal(fast == -INF, exact == -INF)
    fin = exact > -INF
    scale = 1.0 + np.max(np.abs(exact[fin]))
    np.testing.assert_allclose(fast[fin], exact[fin], rtol=0, atol=1e-10 * scale)
    assert float(_log_partition(lp, u, b)) == pytest.approx(
        float(_log_partition_exact(lp, u, b)), rel=1e-12, abs=1e-12
    )
    np.testing.assert_allclose(fast[fin], np_tilt(logp0, energy, beta)[fin], atol=1e-9 * scale)
    logq = jnp.asarray(np_normalize(np.where(fin, logp0 * 0.5, -INF)))
    assert float(_kl_fast(logq, lp)) == pytest.approx(float(_kl(logq, lp)), rel=1e-12, abs=1e-15)
    finite_u = jnp.where(u < INF, u, 0.0)
    value = float(_free_energy(logq, lp, finite_u, b))
    reference = float(fe.distributions._expect(logq, finite_u) + b * _kl(logq, lp))
    assert value == pytest.approx(reference, rel=1e-12, abs=1e-12)


def test_fast_path_falls_back_where_it_would_be_wrong():
    """Where the select-free form is not exact, the exact kernel answers: a subnormal beta, a
    beta whose reciprocal is subnormal, a minimum energy outside supp(p0) far below the live
    ones (the unshifted sum underflows), and every behavior excluded."""
    with np.errstate(divide="ignore"):
        logp0 = np.log([0.5, 0.25, 0.25, 0.0])
    energy = np.array([1.0, 2.0, 3.0, -1e6])  # the global minimum is outside supp(p0)
    for beta in (5e-324, 1e-310, 1e308, 1e-3, 1.0):
        logq = np.asarray(fe.gibbs(logp0, energy, beta))
        assert not np.any(np.isnan(logq))
        if 1e-300 < beta < 1e300:
            np.testing.assert_allclose(logq, np_tilt(logp0, energy, beta), atol=1e-12)
    np.testing.assert_array_equal(fe.gibbs(logp0, energy, 5e-324), [0.0, -INF, -INF, -INF])
    assert float(fe.log_partition(logp0, [INF, INF, INF, 0.0], 1.0)) == -INF
    assert float(fe.log_partition(logp0, energy, 1e-3)) == pytest.approx(
        np_lse(logp0 - energy / 1e-3), rel=1e-12
    )
