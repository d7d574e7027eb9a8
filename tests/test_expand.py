"""freeenergy.expand: best-of-n (docs/theory.md T12) and new information, against oracles.

Best-of-n is checked against brute-force enumeration of every n-tuple of draws on tiny spaces
(n <= 4 draws, <= 5 behaviors, tied and -inf rewards included); closed forms for binary rewards
and for the KL; a Monte Carlo run of the sampler with a stated bound. The mixture and
distillation optima are checked against direct NumPy computation and their variational
identities.
"""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import freeenergy as fe
from freeenergy import expand


def _examples(at_ci: int) -> int:
    """Examples for this property: ``at_ci`` under the ``ci`` profile (30 examples), scaled with
    the active profile's ``max_examples`` (``thorough`` runs ~33x as many)."""
    return max(1, at_ci * settings.default.max_examples // 30)


# ----------------------------------------------------------------------------- strategies
REWARD_LEVELS = [-np.inf, 0.0, 1.0, 2.0]


@st.composite
def tiny_problem(draw, size=5, zeros=True):
    """(p0, reward) on ``size`` behaviors: zero masses, ties and -inf rewards likely.

    The size is fixed (zero-mass behaviors make the effective space smaller) so that the jitted
    functions compile once per test.
    """
    masses = [0.0, 0.1, 0.5, 1.0, 2.0, 3.7] if zeros else [0.1, 0.5, 1.0, 2.0, 3.7]
    weights = draw(st.lists(st.sampled_from(masses), min_size=size, max_size=size))
    if sum(weights) == 0:
        weights[draw(st.integers(0, size - 1))] = 1.0
    p0 = np.asarray(weights) / np.sum(weights)
    levels = st.sampled_from(REWARD_LEVELS)
    reward = np.asarray(draw(st.lists(levels, min_size=size, max_size=size)))
    return p0, reward


@st.composite
def binary_problem(draw, size=12):
    """(p0, correct): some zero-mass behaviors, success mass strictly between 0 and 1."""
    logits = np.asarray(draw(st.lists(st.floats(-6.0, 6.0), min_size=size, max_size=size)))
    absent = np.asarray(draw(st.lists(st.booleans(), min_size=size, max_size=size)))
    correct = np.asarray(draw(st.lists(st.booleans(), min_size=size, max_size=size)))
    i = draw(st.integers(0, size - 1))
    correct[i], correct[(i + 1) % size] = True, False
    absent[i] = absent[(i + 1) % size] = False
    logits = np.where(absent, -np.inf, logits)
    return np.exp(logits - np.logaddexp.reduce(logits)), correct


def _log(p):
    with np.errstate(divide="ignore"):
        return np.log(np.asarray(p, dtype=np.float64))


# ----------------------------------------------------------------------------- oracles
def _tuples(m: int, n: int):
    """Every n-tuple of behavior indices, shape (m^n, n)."""
    return np.asarray(list(itertools.product(range(m), repeat=n)), dtype=np.int64).reshape(-1, n)


def enumerate_best_of_n(p0, reward, n, rule):
    """Exact best-of-n by enumerating every tuple of n draws.

    Rules for the winner among draws attaining the maximal reward level ``v`` of the tuple:

    * ``"first"`` — the first such draw (``argmax``), what an implementation does;
    * ``"uniform_draw"`` — a uniformly random one of those draws (multiplicity counts);
    * ``"resample_level"`` — behavior ``y`` of level ``v`` with probability ``p0(y)/p0(v)``,
      sampled or not (the definition of "ties split in proportion to p0").

    All three give the formula (by exchangeability the identity of a draw given its level is
    ``p0(.|v)``, whatever positions attain the maximum). ``"p0_among_drawn"`` — choose among the
    *distinct* tied behaviors drawn, proportionally to ``p0`` — is a different rule.
    """
    m = len(p0)
    out = np.zeros(m)
    for t in _tuples(m, n):
        prob = float(np.prod(p0[t]))
        if prob == 0.0:
            continue
        scores = reward[t]
        best = scores.max()
        at_best = t[scores == best]
        if rule == "first":
            out[t[int(np.argmax(scores))]] += prob
        elif rule == "uniform_draw":
            for y in at_best:
                out[y] += prob / len(at_best)
        elif rule == "resample_level":
            level = (reward == best) & (p0 > 0)
            out[level] += prob * p0[level] / p0[level].sum()
        elif rule == "p0_among_drawn":
            drawn = np.unique(at_best)
            out[drawn] += prob * p0[drawn] / p0[drawn].sum()
        else:
            raise AssertionError(rule)
    return out


def level_masses(p0, reward):
    """Per distinct reward level (ascending): p0-mass, P_<=, P_<, by plain sums."""
    levels = np.unique(reward)
    mass = np.array([p0[reward == v].sum() for v in levels])
    le = np.array([p0[reward <= v].sum() for v in levels])
    lt = np.array([p0[reward < v].sum() for v in levels])
    return levels, mass, le, lt


# ----------------------------------------------------------------------------- T12: enumeration
@settings(max_examples=_examples(40))
@given(tiny_problem(), st.integers(1, 4))
def test_best_of_n_equals_enumeration_of_all_tuples(problem, n):
    p0, reward = problem
    q = np.exp(np.asarray(expand.best_of_n(_log(p0), reward, n)))
    for rule in ("first", "uniform_draw", "resample_level"):
        np.testing.assert_allclose(
            q, enumerate_best_of_n(p0, reward, n, rule), atol=1e-14, err_msg=rule
        )
    assert abs(q.sum() - 1.0) < 1e-13


def test_tie_rule_proportional_to_p0_among_drawn_behaviors_is_a_different_rule():
    """The docstring's counterexample: p0 = (0.9, 0.1), equal rewards, n = 2."""
    p0 = np.array([0.9, 0.1])
    reward = np.zeros(2)
    q = np.exp(np.asarray(expand.best_of_n(_log(p0), reward, 2)))
    np.testing.assert_allclose(q, p0, atol=1e-15)
    other = enumerate_best_of_n(p0, reward, 2, "p0_among_drawn")
    np.testing.assert_allclose(other, [0.81 + 0.18 * 0.9, 0.01 + 0.18 * 0.1], atol=1e-15)
    assert abs(other[0] - 0.972) < 1e-12


@settings(max_examples=_examples(30))
@given(tiny_problem(size=8), st.integers(1, 10**6))
def test_best_of_n_formula_by_levels_and_support(problem, n):
    """q(y) = p0(y) (P<=^n - P<^n) / p0(level); supp(q) = supp(p0) exactly (T12)."""
    p0, reward = problem
    q = np.exp(np.asarray(expand.best_of_n(_log(p0), reward, n)))
    levels, mass, le, lt = level_masses(p0, reward)
    expected = np.zeros_like(p0)
    for v, pv, a, b in zip(levels, mass, le, lt, strict=True):
        sel = reward == v
        if pv > 0:
            expected[sel] = p0[sel] * (a**n - b**n) / pv
    np.testing.assert_allclose(q, expected, rtol=1e-9, atol=1e-300)
    logq = np.asarray(expand.best_of_n(_log(p0), reward, n))  # support read in log space
    np.testing.assert_array_equal(np.isfinite(logq), p0 > 0)
    assert not np.any(np.isnan(logq))


def test_best_of_n_one_draw_is_the_base_and_batches_match_rows():
    rng = np.random.default_rng(3)
    logits = 2.0 * rng.normal(size=(4, 7))
    logp0 = logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)
    reward = np.round(rng.normal(size=(4, 7)))  # ties
    np.testing.assert_allclose(expand.best_of_n(logp0, reward, 1), logp0, atol=1e-14)
    n = jnp.array([1, 3, 17, 1000])
    batched = expand.best_of_n(logp0, reward, n)
    for i in range(4):
        np.testing.assert_allclose(
            batched[i], expand.best_of_n(logp0[i], reward[i], int(n[i])), atol=0, rtol=1e-14
        )
    family = expand.best_of_n(logp0[0], reward[0], jnp.arange(1, 5))
    assert family.shape == (4, 7)
    np.testing.assert_allclose(family[2], expand.best_of_n(logp0[0], reward[0], 3), rtol=1e-14)


def test_best_of_n_rare_top_level_keeps_relative_precision():
    """A top level of mass 1e-12 next to mass 1 - 1e-12: q(top) = 1 - (1 - 1e-12)^n exactly."""
    eps = 1e-12
    logp0 = jnp.array([math.log1p(-eps), math.log(eps)])
    for n in (2, 1000, 10**9):
        logq = expand.best_of_n(logp0, jnp.array([0.0, 1.0]), n)
        exact = -math.expm1(n * math.log1p(-eps))
        assert abs(math.exp(float(logq[1])) / exact - 1.0) < 1e-12
        assert abs(float(logq[0]) - n * math.log1p(-eps)) < 1e-12 * max(1.0, n * eps)


def test_best_of_n_astronomically_small_levels_stay_exact_in_log_space():
    """Levels of mass e^-800 (below float64's range as probabilities): log q = n log P_<= etc.

    The bottom level's prefix sum underflows in probability space, so this exercises the exact
    (cumulative-logsumexp) path; a second row without underflow in the same batch must agree
    with its own single-row result.
    """
    n = 7
    logp0 = np.array(
        [
            [-800.0, -900.0, math.log1p(-math.exp(-800.0))],
            [math.log(0.2), math.log(0.3), math.log(0.5)],
        ]
    )
    reward = np.array([[1.0, 0.0, 2.0], [1.0, 0.0, 2.0]])
    logq = np.asarray(expand.best_of_n(logp0, reward, n))
    # row 0: the worst level (mass e^-900) wins only if all n draws land there
    assert abs(logq[0, 1] - n * -900.0) < 1e-9
    # the middle level: P_<=^n - P_<^n = e^{-800 n} (1 + e^-100)^n - e^{-900 n}
    assert abs(logq[0, 0] - (n * -800.0 + n * math.log1p(math.exp(-100.0)))) < 1e-9
    assert abs(logq[0, 2]) < 1e-15  # the top level: log(1 - P_<^n), P_< ~ e^-800
    np.testing.assert_allclose(logq[1], expand.best_of_n(logp0[1], reward[1], n), rtol=1e-14)


# ----------------------------------------------------------------------------- T12: binary tilt
@settings(max_examples=_examples(30))
@given(binary_problem(), st.integers(2, 5000))
def test_binary_best_of_n_is_the_tilt_moving_p_to_one_minus_one_minus_p_to_the_n(problem, n):
    p0, correct = problem
    logp0 = _log(p0)
    logq = expand.best_of_n(logp0, correct.astype(float), n)
    p = p0[correct].sum()
    success = float(np.exp(np.asarray(logq))[correct].sum())
    exact = -math.expm1(n * math.log1p(-p))
    assert abs(success - exact) < 1e-12
    np.testing.assert_allclose(success, fe.reach_probability(np.log(p), n), rtol=1e-12)
    beta = float(expand.best_of_n_temperature(logp0, correct, n))
    # independent closed form: 1/beta = logit(1 - (1-p)^n) - logit(p)
    log_fail_n = n * math.log1p(-p)  # log(1 - exact), exact even when exact rounds to 1
    lam = (math.log(exact) - log_fail_n) - (math.log(p) - math.log1p(-p))
    if lam > 1e-6:
        assert abs(1.0 / beta - lam) < 1e-9 * max(1.0, lam)
    tilt = fe.gibbs(logp0, -correct.astype(float), beta)
    np.testing.assert_allclose(np.exp(tilt), np.exp(logq), atol=1e-12)


def test_best_of_n_temperature_edge_cases():
    logp0 = jnp.log(jnp.array([0.25, 0.75]))
    assert float(expand.best_of_n_temperature(logp0, jnp.array([True, False]), 1)) == np.inf
    assert float(expand.best_of_n_temperature(logp0, jnp.array([False, False]), 5)) == np.inf
    assert float(expand.best_of_n_temperature(logp0, jnp.array([True, True]), 5)) == np.inf
    betas = expand.best_of_n_temperature(logp0, jnp.array([True, False]), jnp.array([2, 3]))
    # 1/beta = log sum_{i<n} (1-p)^(-i) with 1 - p = 0.75
    np.testing.assert_allclose(
        1.0 / betas, [math.log(1 + 4 / 3), math.log(1 + 4 / 3 + 16 / 9)], rtol=1e-13
    )


@settings(max_examples=_examples(30))
@given(tiny_problem(size=8, zeros=False), st.integers(2, 200))
def test_best_of_n_is_a_tilt_with_energy_monotone_in_the_reward(problem, n):
    """T12 for any reward: the implied energy is constant on a level, non-increasing in r."""
    p0, reward = problem
    logq = expand.best_of_n(_log(p0), reward, n)
    energy = np.asarray(fe.implied_energy(logq, _log(p0), 1.0))
    for v in np.unique(reward):
        e = energy[reward == v]
        assert np.ptp(e) < 1e-10
    order = np.argsort(reward, kind="stable")
    assert np.all(np.diff(energy[order]) <= 1e-10)
    np.testing.assert_allclose(fe.gibbs(_log(p0), energy, 1.0), logq, atol=1e-10)


# ----------------------------------------------------------------------------- KL of best-of-n
def _kl_by_levels(p0, reward, n):
    _, mass, le, lt = level_masses(p0, reward)
    w = le**n - lt**n
    keep = w > 0
    return float(np.sum(w[keep] * np.log(w[keep] / mass[keep])))


@settings(max_examples=_examples(30))
@given(tiny_problem(size=8), st.integers(1, 500))
def test_best_of_n_kl_exact_and_below_the_common_formula(problem, n):
    """KL = sum_v w_v log(w_v / p0(v)) <= log n - (n-1)/n, strictly for n >= 2."""
    p0, reward = problem
    kl = float(expand.best_of_n_kl(_log(p0), reward, n))
    assert abs(kl - _kl_by_levels(p0, reward, n)) < 1e-10
    assert abs(kl - float(fe.kl(expand.best_of_n(_log(p0), reward, n), _log(p0)))) < 1e-13
    bound = float(expand.best_of_n_kl_bound(n))
    assert abs(bound - (math.log(n) - (n - 1) / n)) < 1e-15
    if n == 1:
        assert abs(kl) < 1e-14 and bound == 0.0
    else:
        assert kl < bound


def test_best_of_n_kl_approaches_the_formula_only_as_every_level_becomes_rare():
    """Uniform base, m distinct rewards: the gap is positive and shrinks towards 0 as m grows."""
    n, sizes, width = 16, (4, 40, 400, 4000), 4000
    bound = float(expand.best_of_n_kl_bound(n))
    # one batched call: row i is uniform on its first sizes[i] behaviors (the rest zero mass)
    logp0 = np.stack([np.where(np.arange(width) < m, -math.log(m), -np.inf) for m in sizes])
    kls = np.asarray(expand.best_of_n_kl(logp0, np.arange(width, dtype=float), n))
    gaps = []
    for m, kl in zip(sizes, kls, strict=True):
        f = np.arange(m + 1) / m
        w = f[1:] ** n - f[:-1] ** n
        assert abs(kl - float(np.sum(w * np.log(w * m)))) < 1e-11
        gaps.append(bound - kl)
    assert all(g > 0 for g in gaps)
    assert all(a > b for a, b in zip(gaps, gaps[1:], strict=False))
    assert gaps[-1] < 1e-2 * gaps[0]
    # binary reward: the exact KL is the Bernoulli divergence, bounded by -log p in n
    p, n = 0.3, 50
    t = -math.expm1(n * math.log1p(-p))
    bern = t * math.log(t / p) + (1 - t) * math.log((1 - t) / (1 - p))
    kl = float(expand.best_of_n_kl(jnp.log(jnp.array([p, 1 - p])), jnp.array([1.0, 0.0]), n))
    assert abs(kl - bern) < 1e-12 and kl < -math.log(p) < float(expand.best_of_n_kl_bound(n))


# ----------------------------------------------------------------------------- win rate
@settings(max_examples=_examples(30))
@given(tiny_problem(size=8), st.integers(1, 50))
def test_win_rate_equals_the_double_sum(problem, n):
    p0, r = problem
    q = np.exp(np.asarray(expand.best_of_n(_log(p0), r, n)))
    beats = (r[:, None] > r[None, :]) + 0.5 * (r[:, None] == r[None, :])
    direct = float(q @ beats @ p0)
    assert abs(float(expand.win_rate(_log(q), _log(p0), r)) - direct) < 1e-13
    assert abs(float(expand.win_rate(_log(p0), _log(p0), r)) - 0.5) < 1e-13


def test_win_rate_of_best_of_n_tends_to_n_over_n_plus_one_without_ties():
    m, n = 4000, 7
    logp0 = jnp.full(m, -math.log(m))
    r = jnp.arange(m, dtype=float)
    win = float(expand.win_rate(expand.best_of_n(logp0, r, n), logp0, r))
    assert abs(win - n / (n + 1)) < 1e-3
    # exact discrete value: sum_i (F_i^n - F_{i-1}^n) (F_i + F_{i-1}) / 2
    f = np.arange(m + 1) / m
    assert abs(win - float(np.sum((f[1:] ** n - f[:-1] ** n) * (f[1:] + f[:-1]) / 2))) < 1e-12


# ----------------------------------------------------------------------------- sampler and cost
def test_sampler_matches_the_exact_distribution_within_five_sigma():
    """Monte Carlo sanity check, fixed key: |freq - q| <= 5 sqrt(q(1-q)/M) + 1/M per behavior."""
    p0 = np.array([0.05, 0.2, 0.3, 0.15, 0.3])
    reward = np.array([2.0, 1.0, 1.0, -np.inf, 0.0])
    n, num = 3, 40000
    draws, cost = expand.sample_best_of_n(jax.random.key(7), _log(p0), reward, n, num)
    assert draws.shape == (num,)
    freq = np.bincount(np.asarray(draws), minlength=5) / num
    q = np.exp(np.asarray(expand.best_of_n(_log(p0), reward, n)))
    assert np.all(np.abs(freq - q) <= 5 * np.sqrt(q * (1 - q) / num) + 1.0 / num)
    assert int(cost.samples) == n * num and int(cost.verifier_calls) == n * num
    one = expand.best_of_n_cost(n)
    assert (int(one.samples), int(one.verifier_calls)) == (n, n)
    batched, _ = expand.sample_best_of_n(jax.random.key(8), np.stack([_log(p0)] * 2), reward, 2, 5)
    assert batched.shape == (2, 5)
    assert np.all(p0[np.asarray(batched)] > 0)


# ----------------------------------------------------------------------------- no crossover
@settings(max_examples=_examples(40))
@given(
    st.floats(1e-6, 1 - 1e-6),
    st.floats(-3.0, 3.0),
    st.integers(1, 10**6),
)
def test_exact_kl_rl_tilt_beats_the_base_at_every_k(p, log10_beta, k):
    """Single prompt, binary reward: pass@k of q* ∝ p0 e^{r/β} >= pass@k of p0 for every k.

    Proof: the tilt raises the success mass to p e^{1/β} / (p e^{1/β} + 1 - p) >= p, and
    pass@k = 1 - (1 - mass)^k is increasing in the mass. So no pass@k crossover is possible for
    the exact per-prompt tilt.
    """
    beta = 10.0**log10_beta
    m = 4
    p0 = np.concatenate([[p], np.full(m - 1, (1 - p) / (m - 1))])
    correct = np.arange(m) == 0
    logq = fe.gibbs(_log(p0), -correct.astype(float), beta)
    mass_q = math.exp(float(logq[0]))
    closed = p * math.exp(1 / beta) / (p * math.exp(1 / beta) + 1 - p) if beta > 0.01 else None
    if closed is not None:
        assert abs(mass_q - closed) < 1e-12
    assert mass_q >= p * (1 - 1e-12)
    base = float(fe.pass_at_k(_log(p0), correct, k))
    tilted = float(fe.pass_at_k(logq, correct, k))
    assert tilted >= base - 1e-12
    assert abs(base - (-math.expm1(k * math.log1p(-p)))) < 1e-12


# ----------------------------------------------------------------------------- new information
P0 = np.array([0.5, 0.3, 0.2, 0.0, 0.0])
TEACHER = np.array([0.0, 0.1, 0.1, 0.5, 0.3])
TARGET = np.array([False, False, False, True, True])


@settings(max_examples=30)
@given(st.floats(0.0, 1.0))
def test_mix_is_the_mixture_with_union_support(w):
    logq = expand.mix(_log(P0), _log(TEACHER), w)
    np.testing.assert_allclose(np.exp(logq), (1 - w) * P0 + w * TEACHER, atol=1e-15)
    if 0 < w < 1:
        np.testing.assert_array_equal(np.isfinite(logq), (P0 > 0) | (TEACHER > 0))
        assert float(fe.kl(logq, _log(P0))) == np.inf
        assert float(fe.kl(_log(P0), logq)) <= -math.log1p(-w) + 1e-15
    np.testing.assert_allclose(expand.distill(_log(P0), _log(TEACHER), w), logq, rtol=0)


def test_forward_distillation_minimizes_the_mixed_cross_entropy():
    """(1-w) CE(p0, q) + w CE(t, q) = H(p1) + KL(p1 || q): the mixture p1 is the optimum."""
    w = 0.3
    p1 = np.exp(np.asarray(expand.distill(_log(P0), _log(TEACHER), w)))
    h1 = -np.sum(p1 * _log(p1), where=p1 > 0)
    rng = np.random.default_rng(0)
    for _ in range(20):
        q = rng.dirichlet(np.ones(5))
        objective = -(1 - w) * np.sum(P0 * np.log(q)) - w * np.sum(TEACHER * np.log(q))
        assert abs(objective - (h1 + float(fe.kl(_log(p1), np.log(q))))) < 1e-12
        assert objective > h1


@settings(max_examples=30)
@given(st.floats(0.01, 0.99))
def test_reverse_distillation_is_a_tilt_on_the_intersection(w):
    logq = expand.distill(_log(P0), _log(TEACHER), w, direction="reverse")
    np.testing.assert_array_equal(np.isfinite(logq), (P0 > 0) & (TEACHER > 0))
    # q ∝ p0^(1-w) t^w, computed directly
    both = (P0 > 0) & (TEACHER > 0)
    direct = np.where(both, P0 ** (1 - w) * TEACHER**w, 0.0)
    np.testing.assert_allclose(np.exp(logq), direct / direct.sum(), atol=1e-15)
    # the same as the Gibbs tilt of p0 with energy -log(t/p0) at beta = 1/w
    energy = np.where(both, -(_log(TEACHER) - np.where(both, _log(P0), 0.0)), np.inf)
    np.testing.assert_allclose(fe.gibbs(_log(P0), energy, 1.0 / w), logq, atol=1e-14)
    # variational identity: w KL(q'||t) + (1-w) KL(q'||p0) = -log Z + KL(q'||q)
    log_z = math.log(direct.sum())
    rng = np.random.default_rng(1)
    for _ in range(5):
        qq = np.zeros(5)
        qq[both] = rng.dirichlet(np.ones(both.sum()))
        lq = _log(qq)
        lhs = w * float(fe.kl(lq, _log(TEACHER))) + (1 - w) * float(fe.kl(lq, _log(P0)))
        assert abs(lhs - (-log_z + float(fe.kl(lq, logq)))) < 1e-12
    # it never reaches the new target: no mass outside supp(p0)
    assert float(np.exp(np.asarray(logq))[TARGET].sum()) == 0.0


@settings(max_examples=30)
@given(
    st.lists(st.floats(-20.0, 20.0), min_size=5, max_size=5),
    st.floats(1e-3, 1e3),
)
def test_no_tilt_of_the_old_reference_reaches_a_singular_target(energy, beta):
    """T2: every finite energy keeps the target's mass at zero; the target is singular."""
    logq = fe.gibbs(_log(P0), np.asarray(energy), beta)
    assert float(np.exp(np.asarray(logq))[TARGET].sum()) == 0.0
    logd = _log(np.where(TARGET, 0.5, 0.0))
    assert float(fe.kl(logd, _log(P0))) == np.inf
    implied, singular = fe.implied_energy(logd, _log(P0), beta, return_singular=True)
    np.testing.assert_array_equal(singular, TARGET)
    assert np.all(np.asarray(implied)[TARGET] == -np.inf)
    assert fe.diagnose(_log(P0), logd, 10).verdict == "new-support"


def test_new_information_prices_the_target_before_and_after():
    w, budget, c = 0.02, 100, 0.5
    info = expand.new_information(_log(P0), _log(TEACHER), w, TARGET, budget, c)
    p1 = (1 - w) * P0 + w * TEACHER
    np.testing.assert_allclose(np.exp(info.logp_reference), p1, atol=1e-15)
    # before: singular, every cost infinite
    assert info.before.status == "singular"
    assert float(info.before.kl_to_target) == np.inf
    assert float(info.before.kl_to_access) == np.inf
    assert float(info.before.singular_mass) == 1.0
    # the mixing step itself is new support
    assert info.step.verdict == "new-support"
    assert (
        abs(float(info.kl_forgetting) - np.sum(P0[P0 > 0] * np.log(P0[P0 > 0] / p1[P0 > 0])))
        < 1e-15
    )
    # after: an ordinary elicitation problem with finite costs, computed directly
    s = p1[TARGET].sum()
    assert abs(float(info.after.log_mass) - math.log(s)) < 1e-14
    assert float(info.after.singular_mass) == 0.0
    d = np.where(TARGET, 0.5, 0.0)
    kl_d = float(np.sum(d[TARGET] * np.log(d[TARGET] / p1[TARGET])))
    assert abs(float(info.after.kl_to_target) - kl_d) < 1e-13
    assert abs(float(info.after.kl_to_saturate) + math.log(s)) < 1e-14
    assert abs(float(info.after.reach) - (1 - (1 - s) ** budget)) < 1e-13
    assert info.after.status == ("accessible" if 1 - (1 - s) ** budget >= c else "barrier")
    # and SFT on the target from the new reference is elicitation, not new support
    assert fe.diagnose(info.logp_reference, _log(d), budget).verdict != "new-support"


@settings(max_examples=30)
@given(st.floats(-12.0, -0.05), st.integers(1, 10**5), st.floats(0.05, 0.95))
def test_elicitation_cost_is_the_bernoulli_divergence_attained_by_a_tilt(log10_p, budget, c):
    """T6: the least KL making the set accessible, attained by the tilt with energy -1_S."""
    p = 10.0**log10_p
    p0 = np.array([p, (1 - p) * 0.25, (1 - p) * 0.75])
    target = np.array([True, False, False])
    cost = expand.elicitation_cost(_log(p0), target, budget, c)
    t = -math.expm1(math.log1p(-c) / budget)  # the mass an accessible set needs
    assert bool(cost.accessible) == (-math.expm1(budget * math.log1p(-p)) >= c)
    if bool(cost.accessible):
        assert float(cost.kl_to_access) == 0.0
        return
    bern = t * math.log(t / p) + (1 - t) * math.log((1 - t) / (1 - p))
    assert abs(float(cost.kl_to_access) - bern) < 1e-12 * max(1.0, bern)
    beta = 1.0 / (math.log(t / (1 - t)) - math.log(p / (1 - p)))
    tilt = fe.gibbs(_log(p0), -target.astype(float), beta)
    assert abs(math.exp(float(tilt[0])) - t) < 1e-12
    assert abs(float(fe.kl(tilt, _log(p0))) - bern) < 1e-11 * max(1.0, bern)
    assert bool(fe.accessible_support(tilt, budget, c * (1 - 1e-9))[0])
    assert cost.status == "barrier"


def test_batched_information_and_weights():
    weights = jnp.array([0.0, 1e-3, 0.5, 1.0])
    info = expand.new_information(_log(P0), _log(TEACHER), weights, TARGET, 50)
    assert info.after.log_mass.shape == (4,)
    np.testing.assert_array_equal(
        info.after.status, ["singular", "barrier", "accessible", "accessible"]
    )
    assert list(info.step.verdict) == ["elicitation", "new-support", "new-support", "new-support"]
    assert float(info.kl_forgetting[-1]) == np.inf  # w = 1 drops the old reference entirely


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: expand.best_of_n(jnp.log(jnp.array([0.5, 0.5])), jnp.zeros(2), 0), "`n`"),
        (lambda: expand.best_of_n(jnp.log(jnp.array([0.5, 0.5])), jnp.zeros(2), 1.5), "`n`"),
        (lambda: expand.best_of_n(jnp.log(jnp.array([0.5, 0.5])), jnp.zeros(3), 2), "`reward`"),
        (lambda: expand.best_of_n(jnp.log(jnp.array([0.5, 0.5])), 1.0, 2), "`reward`"),
        (
            lambda: expand.best_of_n(jnp.log(jnp.array([0.5, 0.5])), jnp.array([0.0, jnp.inf]), 2),
            "`reward`",
        ),
        (lambda: expand.best_of_n(jnp.log(jnp.array([0.5, 0.6])), jnp.zeros(2), 2), "`logp0`"),
        (lambda: expand.best_of_n(jnp.zeros((2, 1)), jnp.zeros(1), jnp.array([1, 2, 3])), "`n`"),
        (lambda: expand.best_of_n_temperature(jnp.zeros(1), jnp.array([0.5]), 2), "`correct`"),
        (lambda: expand.mix(jnp.zeros(1), jnp.zeros(1), 1.5), "`weight`"),
        (lambda: expand.mix(jnp.zeros(1), jnp.zeros(2) - math.log(2), 0.5), "`logp_new`"),
        (lambda: expand.distill(jnp.zeros(1), jnp.zeros(1), 1.0, direction="reverse"), "`weight`"),
        (
            lambda: expand.distill(jnp.zeros(1), jnp.zeros(1), 0.5, direction="sideways"),
            "`direction`",
        ),
        (
            lambda: expand.distill(
                _log(P0), _log(np.array([0, 0, 0, 0.5, 0.5])), 0.5, direction="reverse"
            ),
            "disjoint",
        ),
        (lambda: expand.elicitation_cost(_log(P0), np.zeros(5, bool), 10), "`target`"),
        (lambda: expand.elicitation_cost(_log(P0), TARGET, 0), "`budget`"),
        (
            lambda: expand.new_information(_log(P0), _log(TEACHER), 0.5, TARGET, 10, 1.0),
            "`confidence`",
        ),
        (
            lambda: expand.sample_best_of_n(jax.random.key(0), jnp.zeros(1), jnp.zeros(1), 0, 2),
            "`n`",
        ),
        (lambda: expand.win_rate(jnp.zeros(1), jnp.zeros(2) - math.log(2), jnp.zeros(2)), "`logq`"),
    ],
)
def test_invalid_arguments_raise_errors_naming_the_argument(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_infinite_and_zero_mass_inputs_never_produce_nan():
    logp0 = _log(np.array([0.0, 0.5, 0.5, 0.0]))
    reward = np.array([np.inf * -1, -np.inf, 3.0, 3.0])
    for n in (1, 2, 10**12):
        logq = np.asarray(expand.best_of_n(logp0, reward, n))
        assert not np.any(np.isnan(logq))
        assert np.all(logq[[0, 3]] == -np.inf)
    win = expand.win_rate(logp0, logp0, reward)
    assert abs(float(win) - 0.5) < 1e-15


def test_best_of_n_under_jit_and_float32():
    logp0 = jnp.log(jnp.array([0.1, 0.2, 0.7], dtype=jnp.float32))
    reward = jnp.array([2.0, 1.0, 0.0], dtype=jnp.float32)
    q32 = expand.best_of_n(logp0, reward, 5)
    assert q32.dtype == jnp.float32
    q_jit = jax.jit(expand.best_of_n)(logp0, reward, 5)
    q64 = expand.best_of_n(logp0.astype(jnp.float64), reward.astype(jnp.float64), 5)
    np.testing.assert_allclose(q_jit, q32, atol=1e-6)
    np.testing.assert_allclose(np.exp(q32), np.exp(q64), atol=1e-6)
    # a level of mass e^-110 underflows float32 probabilities: the exact path keeps its log
    tiny = jnp.array([-100.0, -110.0, 0.0], dtype=jnp.float32)
    for fn in (expand.best_of_n, jax.jit(expand.best_of_n)):
        logq = np.asarray(fn(tiny, jnp.array([1.0, 0.0, 2.0], dtype=jnp.float32), 3))
        assert logq.dtype == np.float32
        np.testing.assert_allclose(logq[:2], [-300.0, -330.0], rtol=1e-6)


# ----------------------------------------------------------------------------- experiments
@pytest.fixture(scope="module")
def best_of_n_result():
    from experiments import best_of_n as module

    config = {**module.CONFIG, **module.TINY}
    return module, module.run(config, jax.random.key(config["seed"]))


def test_best_of_n_experiment_numbers_match_the_api(best_of_n_result):
    module, result = best_of_n_result
    cfg = result["config"]
    logp0 = np.asarray(cfg["logp0"])
    n = np.asarray(result["n"])
    assert n[0] == 1 and n[-1] == cfg["n_max"]
    np.testing.assert_allclose(result["kl_bound"], expand.best_of_n_kl_bound(n), rtol=1e-14)
    p0 = np.exp(logp0)
    for name in module.STRUCTURES:
        r = np.asarray(cfg["rewards"][name])
        s = result["structures"][name]
        beats = (r[:, None] > r[None, :]) + 0.5 * (r[:, None] == r[None, :])
        for i in (0, 4, len(n) - 1):
            assert abs(float(s["kl"][i]) - _kl_by_levels(p0, r, int(n[i]))) < 1e-10
            q = np.exp(np.asarray(expand.best_of_n(logp0, r, int(n[i]))))
            assert abs(float(s["win_rate"][i]) - float(q @ beats @ p0)) < 1e-12
            assert abs(float(s["expected_reward"][i]) - float(q @ r)) < 1e-12
        assert np.all(np.asarray(s["kl"])[1:] < np.asarray(result["kl_bound"])[1:])
        m = s["matched"]
        # Gibbs at matched KL is KL-optimal, so it is never below best-of-n
        assert np.all(np.asarray(m["gibbs_reward"]) >= np.asarray(m["best_of_n_reward"]) - 1e-7)
    b = result["structures"]["binary"]
    np.testing.assert_allclose(b["kl"], b["closed_form"]["kl"], atol=1e-11)
    np.testing.assert_allclose(
        b["matched"]["gibbs_reward"], b["matched"]["best_of_n_reward"], atol=1e-6
    )
    fig = module.plot({"experiment": "best_of_n", **result})
    assert len(fig.axes) == 6


@pytest.fixture(scope="module")
def phase_result():
    from experiments import phase_diagram as module

    config = {**module.CONFIG, **module.TINY}
    return module, module.run(config, jax.random.key(config["seed"]))


def test_phase_diagram_regions_follow_the_definitions(phase_result):
    module, result = phase_result
    cfg = result["config"]
    c, s = cfg["confidence"], cfg["search_multiple"]
    budgets = np.asarray(cfg["budgets"], dtype=np.float64)[:, None]
    p = 10.0 ** np.asarray(cfg["log10_mass"])[None, :]
    accessible = -np.expm1(budgets * np.log1p(-np.minimum(p, 1 - 1e-16))) >= c
    accessible |= p >= 1.0
    searchable = -np.expm1(s * budgets * np.log1p(-np.minimum(p, 1 - 1e-16))) >= c
    region = np.asarray(result["region"])
    np.testing.assert_array_equal(region <= module.TAIL, accessible)
    np.testing.assert_array_equal(region == module.SEARCH, searchable & ~accessible)
    np.testing.assert_array_equal(region == module.BEYOND, ~searchable)
    assert np.all(np.asarray(result["singular_region"]) == module.SINGULAR)
    # basin vs tail straight from the core, on a few references of the family
    logz = np.asarray(cfg["others_log_mass"])
    for j in (0, len(p[0]) // 2, len(p[0]) - 1):
        pj = p[0, j]
        logp0 = np.concatenate([[math.log(pj)], _log(1 - pj) + logz])
        codes = np.asarray(fe.regimes(logp0, float(budgets[-1, 0]), c, cfg["basin_mass"]))
        assert int(np.asarray(result["regime_code"])[-1, j]) == int(codes[0])
    # the mixture puts the singular target at base mass w * teacher_success
    mixtures = result["mixtures"]
    np.testing.assert_allclose(
        10.0 ** np.asarray(mixtures["log10_mass_after"]),
        np.asarray(mixtures["weight"]) * cfg["teacher_success"],
        rtol=1e-12,
    )
    assert list(mixtures["status_before"]) == ["singular"] * len(mixtures["weight"])
    assert list(mixtures["verdict_of_mixing"]) == ["new-support"] * len(mixtures["weight"])
    # the slice: the search with the stated number of samples reaches c, one fewer does not
    sl = result["slice"]
    for j in range(0, len(p[0]) - 1, 3):
        need = int(sl["search_samples_needed"][j])
        hit = np.exp(
            np.asarray(
                expand.best_of_n(
                    np.array([math.log(p[0, j]), math.log1p(-p[0, j])]),
                    np.array([1.0, 0.0]),
                    np.array([need, max(need - 1, 1)]),
                )[:, 0]
            )
        )
        assert hit[0] >= c * (1 - 1e-12)
        if need > 1:
            assert hit[1] < c
    fig = module.plot({"experiment": "phase_diagram", **result})
    assert len(fig.axes) >= 4
