"""Property-based proofs of docs/theory.md T1-T9 on random instances, and their edge cases.

Every property is checked against an independent float64 computation: direct NumPy formulas
(log-sum-exp written out here), ``math.fsum`` sums, closed forms, or exact integer arithmetic
(``math.comb``, ``fractions``). Instances are drawn by hypothesis: log-probabilities with some
``-inf`` (zero mass) and some very negative entries (down to -1e4), energies with some ``+inf``
(excluded behaviors), temperatures log-uniform on [1e-3, 1e3]. The behavior axis has a fixed
length ``N`` (a drawn number of behaviors plus ``-inf`` padding is just another instance), so each
jitted function compiles once per test session.
"""

from __future__ import annotations

import math
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from oracles import np_kl, np_lse, np_normalize, np_tilt

import freeenergy as fe

N = 12
INF = np.inf


# ----------------------------------------------------------------------------- NumPy oracle


def np_expect(logq: np.ndarray, values: np.ndarray) -> float:
    pos = logq > -INF
    if np.any(np.isinf(values[pos])):
        return float(values[pos][np.isinf(values[pos])][0])
    return math.fsum(np.exp(logq[pos]) * values[pos])


def np_free_energy(logq, logp0, energy, beta) -> float:
    return np_expect(logq, energy) + beta * np_kl(logq, logp0)


def assert_logp_close(actual, expected, rtol=1e-10):
    """Same zero-mass pattern; finite entries equal up to rtol times the scale of the logits."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert not np.any(np.isnan(actual)), actual
    np.testing.assert_array_equal(actual == -INF, expected == -INF)
    fin = expected > -INF
    scale = 1.0 + np.max(np.abs(expected[fin]), initial=0.0)
    np.testing.assert_allclose(actual[fin], expected[fin], rtol=0, atol=rtol * scale)


# ----------------------------------------------------------------------------- strategies
# XLA on CPU flushes subnormal floats to zero, so the instances avoid them, and values below
# 1e-200 in size are drawn as 0: separating rewards that differ by 1e-308 would take a
# temperature beyond the float range, which no implementation can return.
def floats(low, high):
    return st.floats(low, high, allow_subnormal=False).map(lambda x: x if abs(x) > 1e-200 else 0.0)


_logit = floats(-30.0, 5.0)
_entry = st.one_of(_logit, _logit, _logit, _logit, st.just(-INF), floats(-1e4, -1e3))


@st.composite
def log_dists(draw, n=N, zeros=True):
    """A normalized float64 log-distribution of length n (some -inf and deep entries)."""
    entry = _entry if zeros else st.one_of(_logit, _logit, _logit, floats(-1e4, -1e3))
    x = np.array(draw(st.lists(entry, min_size=n, max_size=n)), dtype=np.float64)
    if np.all(x == -INF):
        x[draw(st.integers(0, n - 1))] = 0.0
    return np_normalize(x)


@st.composite
def energies(draw, logp0, low=-10.0, high=10.0):
    """Energies in [low, high] with some +inf, finite on at least one behavior of supp(p0)."""
    e = st.one_of(floats(low, high), floats(low, high), floats(low, high), st.just(INF))
    u = np.array(draw(st.lists(e, min_size=len(logp0), max_size=len(logp0))), dtype=np.float64)
    if not np.any((logp0 > -INF) & (u < INF)):
        u[int(np.argmax(logp0))] = draw(floats(low, high))
    return u


betas = st.floats(-3.0, 3.0).map(lambda e: float(10.0**e))


def feasible_rewards(draw, logp0, low=-5.0, high=5.0):
    return -draw(energies(logp0, -high, -low))


# ----------------------------------------------------------------------------- T1
@given(st.data())
def test_t1_variational_principle(data):
    """F[q] - F[q*] = beta KL(q||q*) >= 0 for random q; min F = F[q*] = -beta log Z."""
    logp0 = data.draw(log_dists())
    energy = data.draw(energies(logp0))
    beta = data.draw(betas)
    logq = data.draw(log_dists())

    star = fe.gibbs(logp0, energy, beta)
    assert_logp_close(star, np_tilt(logp0, energy, beta))
    f_star = float(fe.free_energy(star, logp0, energy, beta))
    log_z = float(fe.log_partition(logp0, energy, beta))
    scale = 1.0 + abs(f_star)
    assert f_star == pytest.approx(-beta * log_z, rel=1e-10, abs=1e-10 * scale)
    assert f_star == pytest.approx(
        np_free_energy(np.asarray(star), logp0, energy, beta), rel=1e-10, abs=1e-10 * scale
    )

    f_q = float(fe.free_energy(logq, logp0, energy, beta))
    gap = beta * np_kl(logq, np.asarray(star))
    assert not math.isnan(f_q)
    if math.isinf(gap):
        assert f_q == INF
    else:
        assert f_q == pytest.approx(
            np_free_energy(logq, logp0, energy, beta), rel=1e-10, abs=1e-10 * (1.0 + abs(f_q))
        )
        assert f_q - f_star == pytest.approx(gap, abs=1e-9 * (1.0 + abs(f_q) + abs(f_star)))
        assert f_q >= f_star - 1e-9 * (1.0 + abs(f_star))


@given(st.data())
def test_t1_gap_identity_inside_the_support(data):
    """F[q] - F[q*] = beta KL(q||q*) on every draw: q is built inside supp(q*) (a random
    log-distribution restricted to it and renormalized), so the gap is always finite."""
    logp0 = data.draw(log_dists())
    energy = data.draw(energies(logp0))
    beta = data.draw(betas)
    star = np.asarray(fe.gibbs(logp0, energy, beta))
    raw = data.draw(log_dists(zeros=False))
    logq = np_normalize(np.where(star > -INF, raw, -INF))
    gap = beta * np_kl(logq, star)
    assert math.isfinite(gap)  # (the plain NumPy sum may round a zero KL to -4e-16)
    f_star = float(fe.free_energy(star, logp0, energy, beta))
    f_q = float(fe.free_energy(logq, logp0, energy, beta))
    assert math.isfinite(f_q)
    assert f_q == pytest.approx(
        np_free_energy(logq, logp0, energy, beta), rel=1e-10, abs=1e-10 * (1.0 + abs(f_q))
    )
    assert f_q - f_star == pytest.approx(gap, abs=1e-9 * (1.0 + abs(f_q) + abs(f_star)))
    assert f_q >= f_star - 1e-9 * (1.0 + abs(f_star))


# ----------------------------------------------------------------------------- T2
@given(st.data())
def test_t2_support_preservation(data):
    """supp(q*) ⊆ supp(p0), with equality exactly where U is finite on supp(p0)."""
    logp0 = data.draw(log_dists())
    energy = data.draw(energies(logp0))
    beta = data.draw(betas)
    logq = np.asarray(fe.gibbs(logp0, energy, beta))
    assert not np.any(np.isnan(logq))
    np.testing.assert_array_equal(logq > -INF, (logp0 > -INF) & (energy < INF))
    finite_energy = np.where(energy < INF, energy, 0.0)
    logq = np.asarray(fe.gibbs(logp0, finite_energy, beta))
    np.testing.assert_array_equal(logq > -INF, logp0 > -INF)


# ----------------------------------------------------------------------------- T3
@given(st.data())
def test_t3_composition_of_tilts(data):
    """Tilting by U1 then U2 (same beta) is tilting by U1 + U2."""
    logp0 = data.draw(log_dists())
    u1 = data.draw(energies(logp0))
    u2 = data.draw(energies(logp0))
    keep = int(np.argmax(np.where(u1 < INF, logp0, -INF)))
    u2[keep] = min(u2[keep], 10.0)  # U1 + U2 keeps some mass
    beta = data.draw(betas)
    twice = fe.gibbs(fe.gibbs(logp0, u1, beta), u2, beta)
    once = fe.gibbs(logp0, u1 + u2, beta)
    assert_logp_close(twice, once, rtol=1e-9)
    assert_logp_close(once, np_tilt(logp0, u1 + u2, beta), rtol=1e-9)


@given(st.data())
def test_t3_mirror_descent_rounds(data):
    """T rounds of KL-anchored RL with the anchor refreshed equal one tilt at beta / T."""
    logp0 = data.draw(log_dists())
    energy = data.draw(energies(logp0))
    beta = data.draw(betas)
    rounds = data.draw(st.integers(1, 6))
    logq = logp0
    for _ in range(rounds):
        logq = fe.gibbs(logq, energy, beta)
    assert_logp_close(logq, fe.gibbs(logp0, energy, beta / rounds), rtol=1e-9)
    assert_logp_close(logq, np_tilt(logp0, energy, beta / rounds), rtol=1e-9)


# ----------------------------------------------------------------------------- T4
@given(st.data())
def test_t4_frontier_monotone(data):
    """Along the Gibbs family E_q[r] and KL(q||p0) both increase as beta decreases."""
    logp0 = data.draw(log_dists())
    reward = feasible_rewards(data.draw, logp0)
    grid = np.sort(np.array(data.draw(st.lists(betas, min_size=9, max_size=9))))
    expected, divergence = (np.asarray(a) for a in fe.frontier(logp0, reward, grid))
    assert expected.shape == divergence.shape == (9,)
    for i, b in enumerate(grid):
        lq = np_tilt(logp0, -reward, b)
        assert expected[i] == pytest.approx(np_expect(lq, reward), rel=1e-9, abs=1e-9)
        assert divergence[i] == pytest.approx(np_kl(lq, logp0), rel=1e-9, abs=1e-12)
    scale = 1.0 + np.max(np.abs(reward[reward > -INF]))
    assert np.all(np.diff(expected) <= 1e-10 * scale)
    assert np.all(np.diff(divergence) <= 1e-10 * (1.0 + divergence[0]))
    assert np.all(divergence >= 0.0)  # non-negative by construction, not up to rounding


def _limit_kls(logp0, reward):
    """(KL of p0 restricted to finite rewards, KL of the reward-maximizing limit), in NumPy."""
    feasible = (logp0 > -INF) & (reward > -INF)
    rmax = np.max(reward[feasible])
    top = feasible & (reward == rmax)
    kl_min = -np_lse(np.where(feasible, logp0, -INF))
    kl_lim = -np_lse(np.where(top, logp0, -INF))
    return max(kl_min, 0.0), max(kl_lim, 0.0)


def _mix_to_budget(logp0, logr, eps):
    """Largest mixture (1-t) p0 + t r with KL <= eps (KL is convex and 0 at t = 0)."""

    def mix(t):
        with np.errstate(divide="ignore"):
            return np.logaddexp(np.log1p(-t) + logp0, np.log(t) + logr) if t < 1 else logr

    if np_kl(logr, logp0) <= eps:
        return logr
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if np_kl(mix(mid), logp0) <= eps else (lo, mid)
    return mix(lo) if lo > 0 else logp0


@given(st.data())
def test_t4_kl_constrained_optimum(data):
    """tilt_for_kl: KL = budget, the best E_q[r] of the family and of random q within budget."""
    logp0 = data.draw(log_dists())
    reward = feasible_rewards(data.draw, logp0)
    kl_min, kl_lim = _limit_kls(logp0, reward)
    assume(kl_lim - kl_min > 1e-6)
    frac = data.draw(st.floats(1e-3, 0.999))
    eps = float(kl_min + frac * (kl_lim - kl_min))

    logq, beta = fe.tilt_for_kl(logp0, reward, eps)
    logq, beta = np.asarray(logq), float(beta)
    assert 0.0 < beta < INF
    assert np_kl(logq, logp0) == pytest.approx(eps, rel=1e-6)
    assert_logp_close(logq, fe.gibbs(logp0, -reward, beta), rtol=1e-9)
    best = np_expect(logq, reward)
    span = np.ptp(reward[(logp0 > -INF) & (reward > -INF)])
    tol = 1e-9 * (1.0 + np.max(np.abs(reward[reward > -INF])))

    # A dense scan of the Gibbs family: no member within the budget does better.
    for b in span * np.logspace(-4, 4, 161):
        lq = np_tilt(logp0, -reward, b)
        if np_kl(lq, logp0) <= eps:
            assert np_expect(lq, reward) <= best + tol

    # Random q pulled back inside the budget (mixtures with p0): none does better either.
    for _ in range(8):
        logr = data.draw(log_dists())
        q = _mix_to_budget(logp0, logr, eps)
        assert np_kl(q, logp0) <= eps * (1 + 1e-12)
        assert np_expect(q, reward) <= best + tol


@given(st.data())
def test_t4_tilt_for_kl_above_the_limit(data):
    """A budget above the limit's KL returns the limit p0(. | argmax r) with beta = 0."""
    logp0 = data.draw(log_dists())
    reward = feasible_rewards(data.draw, logp0)
    kl_min, kl_lim = _limit_kls(logp0, reward)
    feasible = (logp0 > -INF) & (reward > -INF)
    limit = np_normalize(np.where(feasible & (reward == np.max(reward[feasible])), logp0, -INF))
    eps = kl_lim * data.draw(st.floats(1.0 + 1e-9, 3.0)) + data.draw(st.floats(0.0, 2.0))
    logq, beta = fe.tilt_for_kl(logp0, reward, eps)
    assert float(beta) == 0.0
    assert_logp_close(logq, limit)
    assert np_kl(np.asarray(logq), logp0) == pytest.approx(kl_lim, rel=1e-9, abs=1e-12)
    # exactly at the limit's KL (up to rounding): the limit, to rounding (beta = 0, or a beta so
    # small that the remaining mass off the argmax is below rounding of the KL)
    logq, beta = fe.tilt_for_kl(logp0, reward, kl_lim)
    assert 0.0 <= float(beta) < INF
    np.testing.assert_allclose(np.exp(np.asarray(logq)), np.exp(limit), atol=1e-9)


# ----------------------------------------------------------------------------- T5
@given(st.data())
def test_t5_large_beta_expansion(data):
    """KL = Var(r)/(2 beta^2) + kappa3/(3 beta^3) + O(beta^-4); q/p0 = 1 + (r - Er)/beta + ..."""
    logp0 = data.draw(log_dists())
    reward = np.array(data.draw(st.lists(floats(0.0, 1.0), min_size=N, max_size=N)))
    beta = data.draw(st.floats(100.0, 1000.0))
    p = np.exp(logp0)
    mean = math.fsum(p * reward)
    d = reward - mean
    var, k3 = math.fsum(p * d**2), math.fsum(p * d**3)
    k4 = math.fsum(p * d**4) - 3 * var**2

    logq = np.asarray(fe.gibbs(logp0, -reward, beta))
    divergence = float(fe.kl(logq, logp0))
    remainder = (divergence - var / (2 * beta**2)) * beta**3
    # Next term of KL = sum_j (j-1)/j! kappa_j / beta^j is kappa4 / (8 beta^4); |r| <= 1 bounds
    # the rest by 1/beta^5 terms, so the slack below is generous and still decisive.
    assert abs(remainder - k3 / 3) <= (abs(k4) / 8 + 0.01) / beta + 1e-4
    assert abs(divergence * beta**2 - var / 2) <= 1.0 / beta

    sup = logp0 > -INF
    ratio = np.exp(logq[sup] - logp0[sup])
    second = (ratio - 1 - d[sup] / beta) * beta**2
    np.testing.assert_allclose(second, (d[sup] ** 2 - var) / 2, atol=1.0 / beta)


# ----------------------------------------------------------------------------- T6
@st.composite
def set_instances(draw):
    """(logp0, mask S, t): S and its complement both hold mass, t in (0, 1)."""
    logp0 = draw(log_dists())
    sup = np.flatnonzero(logp0 > -INF)
    assume(len(sup) >= 2)
    mask = np.array(draw(st.lists(st.booleans(), min_size=N, max_size=N)))
    mask[sup[0]], mask[sup[-1]] = True, False
    t = draw(st.floats(0.01, 0.99))
    return logp0, mask, t


def bernoulli_divergence(t, log_p, log_1mp):
    return t * (math.log(t) - log_p) + (1 - t) * (math.log1p(-t) - log_1mp)


@given(set_instances(), st.data())
def test_t6_minimal_cost_of_a_capability(inst, data):
    """Raising p0(S) = p to t costs at least d(t||p), attained by a tilt on the indicator of S."""
    logp0, mask, t = inst
    log_p = float(np_lse(np.where(mask, logp0, -INF)))
    log_1mp = float(np_lse(np.where(mask, -INF, logp0)))
    cost = bernoulli_divergence(t, log_p, log_1mp)

    a = math.log(t) - math.log1p(-t) - log_p + log_1mp
    logq = np.asarray(fe.gibbs(logp0, np.where(mask, -a, 0.0), 1.0))
    assert math.exp(np_lse(np.where(mask, logq, -INF))) == pytest.approx(t, rel=1e-9)
    assert float(fe.kl(logq, logp0)) == pytest.approx(cost, rel=1e-9, abs=1e-12)

    for _ in range(5):  # any q with q(S) = t costs at least as much
        inside = data.draw(log_dists())
        outside = data.draw(log_dists())
        assume(np.any(mask & (inside > -INF)) and np.any(~mask & (outside > -INF)))
        q_in = np_normalize(np.where(mask, inside, -INF))
        q_out = np_normalize(np.where(mask, -INF, outside))
        with np.errstate(divide="ignore"):
            q = np.logaddexp(math.log(t) + q_in, math.log1p(-t) + q_out)
        assert np_kl(q, logp0) >= cost - 1e-12 * (1 + cost)

    if t > math.exp(log_p):  # the KL-constrained optimum for r = 1_S at budget d(t||p) is it
        logq, _ = fe.tilt_for_kl(logp0, mask.astype(float), cost)
        assert math.exp(np_lse(np.where(mask, np.asarray(logq), -INF))) == pytest.approx(
            t, rel=1e-5
        )

    # Putting all the mass on S costs -log p0(S), by a tilt with U = +inf off S.
    logq = fe.gibbs(logp0, np.where(mask, 0.0, INF), data.draw(betas))
    assert float(fe.kl(logq, logp0)) == pytest.approx(-log_p, rel=1e-10, abs=1e-12)
    assert_logp_close(logq, np_normalize(np.where(mask, logp0, -INF)))
    logq, beta = fe.tilt_for_kl(logp0, mask.astype(float), -log_p * (1 + 1e-9) + 1e-12)
    assert float(beta) == 0.0
    assert math.exp(np_lse(np.where(mask, np.asarray(logq), -INF))) == pytest.approx(1.0)


# ----------------------------------------------------------------------------- T7
@given(st.data())
def test_t7_implied_energy_round_trip(data):
    """gibbs(p0, implied_energy(q, p0, beta), beta) = q whenever supp(q) ⊆ supp(p0)."""
    logp0 = data.draw(log_dists())
    raw = data.draw(log_dists())
    assume(np.any((raw > -INF) & (logp0 > -INF)))
    logq = np_normalize(np.where(logp0 > -INF, raw, -INF))
    beta = data.draw(betas)
    energy, singular = fe.implied_energy(logq, logp0, beta, return_singular=True)
    energy = np.asarray(energy)
    assert not np.any(singular)
    both = logq > -INF
    np.testing.assert_array_equal(energy == INF, ~both)
    np.testing.assert_allclose(energy[both], -beta * (logq[both] - logp0[both]), rtol=1e-12)
    assert_logp_close(fe.gibbs(logp0, energy, beta), logq, rtol=1e-9)


@given(st.data())
def test_t7_singular_target_is_reported(data):
    """Mass where p0 has none: implied energy -inf plus the mask, KL +inf, never NaN."""
    logp0 = data.draw(log_dists())
    assume(np.any(logp0 == -INF))
    logq = data.draw(log_dists(zeros=False))
    beta = data.draw(betas)
    energy, singular = fe.implied_energy(logq, logp0, beta, return_singular=True)
    energy, singular = np.asarray(energy), np.asarray(singular)
    assert not np.any(np.isnan(energy))
    np.testing.assert_array_equal(singular, (logq > -INF) & (logp0 == -INF))
    np.testing.assert_array_equal(energy == -INF, singular)
    assert float(fe.kl(logq, logp0)) == INF
    assert float(fe.free_energy(logq, logp0, np.zeros(N), beta)) == INF
    with pytest.raises(ValueError, match="`energy`"):
        fe.gibbs(logp0, energy, beta)


# ----------------------------------------------------------------------------- T8
@given(st.data())
def test_t8_equal_rewards_keep_reference_ratios(data):
    """Behaviors with equal reward keep their p0 ratio at every beta (and in tilt_for_kl)."""
    logp0 = data.draw(log_dists())
    levels = st.sampled_from([-1.0, 0.0, 0.5, 2.0, -INF])
    reward = np.array(data.draw(st.lists(levels, min_size=N, max_size=N)))
    if not np.any((logp0 > -INF) & (reward > -INF)):
        reward[int(np.argmax(logp0))] = 0.0
    beta = data.draw(betas)
    tilts = [np.asarray(fe.gibbs(logp0, -reward, beta))]
    kl_min, kl_lim = _limit_kls(logp0, reward)
    if kl_lim - kl_min > 1e-6:
        eps = kl_min + data.draw(st.floats(0.01, 0.99)) * (kl_lim - kl_min)
        tilts.append(np.asarray(fe.tilt_for_kl(logp0, reward, eps)[0]))
    live = np.flatnonzero((logp0 > -INF) & (reward > -INF))
    for logq in tilts:
        scale = 1.0 + np.max(np.abs(logq[live]))
        for i in live:
            for j in live:
                if i < j and reward[i] == reward[j]:
                    assert logq[i] - logq[j] == pytest.approx(logp0[i] - logp0[j], abs=1e-9 * scale)


# ----------------------------------------------------------------------------- T9
@given(st.data())
def test_t9_accessible_support_monotone(data):
    """A_{N,c} grows with N and shrinks with c; it is {y : p(y) >= 1 - (1-c)^(1/N)}."""
    logp = data.draw(log_dists())
    n1, n2 = sorted(data.draw(st.lists(st.floats(1.0, 1e6), min_size=2, max_size=2)))
    c1, c2 = sorted(data.draw(st.lists(st.floats(0.01, 0.99), min_size=2, max_size=2)))
    a = {(n, c): np.asarray(fe.accessible_support(logp, n, c)) for n in (n1, n2) for c in (c1, c2)}
    for c in (c1, c2):
        assert np.all(a[(n2, c)] | ~a[(n1, c)])
    for n in (n1, n2):
        assert np.all(a[(n, c1)] | ~a[(n, c2)])
    for (n, c), mask in a.items():
        log_threshold = math.log(-math.expm1(math.log1p(-c) / n))
        clear = np.abs(logp - log_threshold) > 1e-9
        np.testing.assert_array_equal(mask[clear], (logp >= log_threshold)[clear])


@given(st.data())
def test_t9_pass_at_k_is_reach_probability_of_the_correct_set(data):
    """pass@k = rho_k(correct) = 1 - (1 - q(C))^k (checked in 400-digit decimal arithmetic)."""
    from decimal import Decimal, localcontext

    logp = data.draw(log_dists())
    correct = np.array(data.draw(st.lists(st.booleans(), min_size=N, max_size=N)))
    k = data.draw(st.integers(1, 10**6))
    value = float(fe.pass_at_k(logp, correct, k))
    log_mass = float(np_lse(np.where(correct, logp, -INF)))
    assert value == pytest.approx(float(fe.reach_probability(log_mass, k)), rel=1e-12, abs=0)
    with localcontext() as ctx:
        ctx.prec = 400
        mass = Decimal(math.exp(log_mass)) if log_mass > -INF else Decimal(0)
        exact = float(1 - (1 - mass) ** k)
    assert value == pytest.approx(exact, rel=1e-9, abs=1e-300)


@given(st.integers(1, 40), st.data())
def test_t9_pass_at_k_estimate_is_unbiased(n, data):
    """E_{c ~ Binomial(n, p)}[1 - C(n-c,k)/C(n,k)] = 1 - (1-p)^k, and each value is exact."""
    k = data.draw(st.integers(1, n))
    p = data.draw(st.floats(0.0, 1.0))
    c = np.arange(n + 1)
    est = np.asarray(fe.pass_at_k_estimate(n, c, k))
    exact = [1 - Fraction(math.comb(n - ci, k), math.comb(n, k)) for ci in c]
    np.testing.assert_allclose(est, [float(x) for x in exact], rtol=1e-13, atol=1e-15)
    pmf = [math.comb(n, ci) * p**ci * (1 - p) ** (n - ci) for ci in c]
    assert math.fsum(w * e for w, e in zip(pmf, est, strict=True)) == pytest.approx(
        1 - (1 - p) ** k, rel=1e-12, abs=1e-14
    )


# ----------------------------------------------------------------------------- edge cases
def _separated_instance(seed):
    """p0 with a -inf entry, energies with +inf and a minimum shared by two behaviors."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=N) * 3
    logits[2] = -INF
    logp0 = np_normalize(logits)
    energy = rng.uniform(1.0, 5.0, size=N)
    energy[[3, 7]] = 0.5  # the argmin set (ties kept)
    energy[2] = 0.0  # below the minimum but outside supp(p0): no effect
    energy[5] = INF
    return logp0, energy


@pytest.mark.parametrize("seed", [0, 1])
def test_small_beta_limit_is_argmin_restriction(seed):
    logp0, energy = _separated_instance(seed)
    for beta in (1e-6, 1e-9):
        logq = np.asarray(fe.gibbs(logp0, energy, beta))
        assert not np.any(np.isnan(logq)) and abs(np_lse(logq)) < 1e-12
        argmin = np.zeros(N, bool)
        argmin[[3, 7]] = True
        np.testing.assert_allclose(
            np.exp(logq), np.exp(np_normalize(np.where(argmin, logp0, -INF))), atol=1e-14
        )
        np.testing.assert_array_equal(logq > -INF, (logp0 > -INF) & (energy < INF))
        log_z = float(fe.log_partition(logp0, energy, beta))
        assert log_z == pytest.approx(-0.5 / beta + np_lse(logp0[[3, 7]]), rel=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_large_beta_limit_is_the_reference(seed):
    logp0, energy = _separated_instance(seed)
    live = energy < INF
    restricted = np_normalize(np.where(live, logp0, -INF))
    for beta in (1e6, 1e9):
        logq = np.asarray(fe.gibbs(logp0, energy, beta))
        assert abs(np_lse(logq)) < 1e-12
        fin = logq > -INF
        np.testing.assert_allclose(logq[fin], restricted[fin], atol=10.0 / beta)
        assert float(fe.kl(logq, restricted)) < 100.0 / beta**2


def test_extreme_temperatures_never_nan():
    """Energies of size 1e10 at beta = 1e-300: the limits come out, not inf - inf."""
    logp0 = np.log(np.array([0.25, 0.25, 0.5]))
    energy = np.array([-1e10, 0.0, 1e10])
    logq = np.asarray(fe.gibbs(logp0, energy, 1e-300))
    np.testing.assert_array_equal(logq, [0.0, -INF, -INF])
    assert float(fe.log_partition(logp0, energy, 1e-300)) == INF
    logq = np.asarray(fe.gibbs(logp0, energy, 1e300))
    np.testing.assert_allclose(logq, logp0, atol=1e-12)


def test_deep_log_probabilities():
    """Log-probabilities down to -1e4 (mass that underflows) stay exact in log space."""
    logp0 = np_normalize(np.array([0.0, -1e4, -5e3, -INF, -2.0]))
    energy = np.array([0.0, -3.0, 1.0, 0.0, 2.0])
    for beta in (1e-3, 1.0, 1e3):
        logq = np.asarray(fe.gibbs(logp0, energy, beta))
        assert_logp_close(logq, np_tilt(logp0, energy, beta))
        assert np.all(np.isfinite(logq[[0, 1, 2, 4]])) and logq[3] == -INF
    logq = np_normalize(np.array([-1e4, 0.0, -INF, -INF, -3.0]))
    assert float(fe.kl(logq, logp0)) == pytest.approx(np_kl(logq, logp0), rel=1e-12)
    assert float(fe.entropy(logp0)) == pytest.approx(
        -math.fsum(np.exp(logp0[[0, 4]]) * logp0[[0, 4]]), rel=1e-12
    )
    # Mass e^-1e4 outside supp(p) is still mass: the KL is +inf, not 0 * inf = NaN.
    assert float(fe.kl(np.array([0.0, -1e4]), np.array([0.0, -INF]))) == INF
    assert float(fe.free_energy(np.array([0.0, -1e4]), np.log([0.5, 0.5]), [0.0, INF], 1.0)) == INF
    energy_q = np.asarray(fe.implied_energy(logq, logp0, 2.0))
    assert_logp_close(fe.gibbs(logp0, energy_q, 2.0), logq)
    logq, beta = fe.tilt_for_kl(logp0, -energy, 2.0)
    assert float(fe.kl(logq, logp0)) == pytest.approx(2.0, rel=1e-6)
    assert not np.any(np.isnan(np.asarray(logq)))


def test_one_behavior_space():
    logp = np.array([0.0])
    np.testing.assert_array_equal(fe.normalize(np.array([3.7])), [0.0])
    assert float(fe.kl(logp, logp)) == 0.0 and float(fe.entropy(logp)) == 0.0
    np.testing.assert_array_equal(fe.gibbs(logp, [2.0], 0.5), [0.0])
    assert float(fe.log_partition(logp, [2.0], 0.5)) == pytest.approx(-4.0)
    assert float(fe.free_energy(logp, logp, [2.0], 0.5)) == pytest.approx(2.0)
    np.testing.assert_array_equal(fe.implied_energy(logp, logp, 3.0), [0.0])
    logq, beta = fe.tilt_for_kl(logp, [1.0], 0.3)
    np.testing.assert_array_equal(logq, [0.0])
    assert float(beta) == 0.0  # a constant reward: the limit, reached at no cost
    expected, divergence = fe.frontier(logp, [1.0], np.array([0.1, 10.0]))
    np.testing.assert_allclose(expected, [1.0, 1.0])
    np.testing.assert_allclose(divergence, 0.0)
    assert float(fe.pass_at_k(logp, [True], 3)) == 1.0
    np.testing.assert_array_equal(fe.accessible_support(logp, 1), [True])
    np.testing.assert_array_equal(fe.regimes(logp, 1), [int(fe.Regime.BASIN)])
    np.testing.assert_array_equal(fe.decode(logp, 0.0), [0.0])
    np.testing.assert_array_equal(fe.sample(jax.random.key(0), logp, 4), [0, 0, 0, 0])
    assert fe.diagnose(logp, logp, 5).verdict == "elicitation"


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(7)
    logits = rng.normal(size=(3, N)) * 2
    logits[1, 4] = -INF
    logp0 = np_normalize(logits)
    energy = rng.normal(size=(3, N))
    energy[2, 0] = INF
    return logp0, energy, np.array([0.3, 1.0, 4.0])


def test_batched_equals_loop(batch):
    logp0, energy, beta = batch
    logq = np.asarray(fe.gibbs(logp0, energy, beta))
    log_z = np.asarray(fe.log_partition(logp0, energy, beta))
    f = np.asarray(fe.free_energy(logq, logp0, energy, beta))
    u = np.asarray(fe.implied_energy(logq, logp0, beta))
    reward = -np.where(energy < INF, energy, -5.0)
    budgets = np.array([0.05, 0.2, 0.5])
    tq, tb = (np.asarray(a) for a in fe.tilt_for_kl(logp0, reward, budgets))
    fr = [np.asarray(a) for a in fe.frontier(logp0, reward, beta)]
    for i in range(3):
        assert_logp_close(logq[i], fe.gibbs(logp0[i], energy[i], beta[i]), rtol=1e-12)
        assert log_z[i] == pytest.approx(float(fe.log_partition(logp0[i], energy[i], beta[i])))
        assert f[i] == pytest.approx(float(fe.free_energy(logq[i], logp0[i], energy[i], beta[i])))
        np.testing.assert_allclose(u[i], fe.implied_energy(logq[i], logp0[i], beta[i]))
        one_q, one_b = fe.tilt_for_kl(logp0[i], reward[i], budgets[i])
        assert_logp_close(tq[i], one_q, rtol=1e-9)
        assert tb[i] == pytest.approx(float(one_b), rel=1e-7)
        e, d = fe.frontier(logp0[i], reward[i], beta[i])
        assert fr[0][i] == pytest.approx(float(e)) and fr[1][i] == pytest.approx(float(d))
    # a column of temperatures against a batch of bases: every pair
    grid = np.array([[0.5], [2.0]])
    family = np.asarray(fe.gibbs(logp0, energy, grid))
    assert family.shape == (2, 3, N)
    for a in range(2):
        for i in range(3):
            assert_logp_close(family[a, i], np_tilt(logp0[i], energy[i], grid[a, 0]))


def test_float32_stays_float32(batch):
    logp0, energy, beta = batch
    lp, u = logp0.astype(np.float32), energy.astype(np.float32)
    reward = -np.where(u < INF, u, np.float32(-5.0))
    outs = {
        "gibbs": fe.gibbs(lp, u, 0.5),
        "gibbs_small": fe.gibbs(lp, u, 1e-6),
        "gibbs_large": fe.gibbs(lp, u, 1e6),
        "tilt": fe.tilt_for_kl(lp, reward, 0.3)[0],
        "decode": fe.decode(lp, 0.7, 5, 0.9),
        "normalize": fe.normalize(lp + 3),
    }
    for name, logq in outs.items():
        assert logq.dtype == jnp.float32, name
        logq = np.asarray(logq, dtype=np.float64)
        assert not np.any(np.isnan(logq)), name
        np.testing.assert_allclose(np_lse(logq), 0.0, atol=1e-5, err_msg=name)
    scalars = [
        fe.log_partition(lp, u, 0.5),
        fe.kl(lp, lp[::-1]),
        fe.entropy(lp),
        fe.free_energy(lp, lp, u, 0.5),
        fe.implied_energy(lp, lp, 0.5),
        fe.tilt_for_kl(lp, reward, 0.3)[1],
        *fe.frontier(lp, reward, 0.5),
        fe.reach_probability(lp, 3),
        fe.pass_at_k(lp, lp > -2, 4),
    ]
    for v in scalars:
        assert v.dtype == jnp.float32
        assert not np.any(np.isnan(np.asarray(v)))
    logq = np.asarray(outs["tilt"], dtype=np.float64)
    np.testing.assert_allclose(
        [np_kl(row, p) for row, p in zip(logq, logp0, strict=True)], 0.3, rtol=1e-3
    )
