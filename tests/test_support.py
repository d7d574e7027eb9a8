"""support.py: reach probability, accessible support, pass@k, regimes, profiles and diagnoses.

References are independent: 400-digit decimal arithmetic for 1 - (1-p)^N, exact integers
(``math.comb``, ``fractions``) for the pass@k estimator, and a direct NumPy re-implementation
of the regime definitions (docs/theory.md §2): accessible means p >= 1 - (1-c)^(1/N); the nucleus is
the smallest set of most-probable behaviors holding ``basin_mass`` (ties ranked by index).
Random instances whose answer sits within rounding of a threshold are skipped (``assume``):
there the definition itself is decided by the last bit.
"""

from __future__ import annotations

import math
from decimal import Decimal, localcontext
from fractions import Fraction

import jax
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from oracles import np_lse, np_normalize

import freeenergy as fe
from freeenergy import Regime

INF = np.inf
N = 12


def exact_reach(log_p: float, budget: float) -> float:
    """1 - (1 - p)^N in 400-digit decimal arithmetic (enough for p down to 1e-330)."""
    if log_p == -INF:
        return 0.0
    with localcontext() as ctx:
        ctx.prec = 400
        p = Decimal(log_p).exp()
        return float(1 - (1 - p) ** Decimal(budget))


_logit = st.floats(-25.0, 3.0, allow_subnormal=False)


@st.composite
def log_dists(draw, n=N):
    entry = st.one_of(_logit, _logit, _logit, st.integers(-3, 0).map(float), st.just(-INF))
    x = np.array(draw(st.lists(entry, min_size=n, max_size=n)))
    if np.all(x == -INF):
        x[0] = 0.0
    return np_normalize(x)


# ----------------------------------------------------------------------------- reach probability
@pytest.mark.parametrize(
    "log_p,budget",
    [
        (math.log(0.5), 2),
        (math.log(1e-20), 10),  # 1e-19: the naive 1 - (1-p)^N would give 0
        (math.log(1e-300), 1e6),
        (math.log1p(-1e-12), 3),  # p near one
        (-1e-17, 2.5),
        (0.0, 1),
        (math.log(0.3), 1.0),  # N = 1: the probability itself
        (math.log(0.01), 68.9676),  # close to the c = 0.5 threshold
    ],
)
def test_reach_probability_against_decimal(log_p, budget):
    value = float(fe.reach_probability(log_p, budget))
    assert value == pytest.approx(exact_reach(log_p, budget), rel=1e-13, abs=1e-300)


@given(st.floats(-700.0, 0.0, allow_subnormal=False), st.floats(1.0, 1e9))
def test_reach_probability_random(log_p, budget):
    value = float(fe.reach_probability(log_p, budget))
    assert value == pytest.approx(exact_reach(log_p, budget), rel=1e-11, abs=1e-300)


def test_reach_probability_shapes():
    logp = np.log(np.array([0.5, 0.1, 0.0 + 1e-3]))
    out = np.asarray(fe.reach_probability(logp, np.array([1, 2, 3])))
    np.testing.assert_allclose(out, [0.5, 1 - 0.81, 1 - (1 - 1e-3) ** 3], rtol=1e-14)
    grid = np.asarray(fe.reach_probability(logp, np.array([[1.0], [10.0]])))
    assert grid.shape == (2, 3)
    np.testing.assert_allclose(grid[1], 1 - (1 - np.exp(logp)) ** 10, rtol=1e-13)
    np.testing.assert_array_equal(fe.reach_probability(np.array([-INF, 0.0]), 7), [0.0, 1.0])
    assert float(fe.reach_probability(np.log(0.5), 1e300)) == 1.0


# ----------------------------------------------------------------------------- accessible support
def np_accessible(logp, budget, confidence):
    """(mask, clear): p >= 1 - (1-c)^(1/N); `clear` where rounding cannot flip the answer."""
    log_threshold = math.log(-math.expm1(math.log1p(-confidence) / budget))
    return logp >= log_threshold, np.abs(logp - log_threshold) > 1e-9


@given(log_dists(), st.floats(1.0, 1e5), st.floats(0.01, 0.99))
def test_accessible_support_definition(logp, budget, confidence):
    mask, clear = np_accessible(logp, budget, confidence)
    out = np.asarray(fe.accessible_support(logp, budget, confidence))
    np.testing.assert_array_equal(out[clear], mask[clear])
    assert not np.any(out[logp == -INF])


def test_accessible_support_hand_case_and_batches():
    logp = np.log(np.array([0.9, 0.09, 0.009, 0.001]))
    # threshold 1 - 0.5^(1/N): N=1 -> 0.5, N=10 -> 0.067, N=100 -> 0.0069, N=1000 -> 0.00069
    expected = [[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]]
    out = np.asarray(fe.accessible_support(logp, np.array([1, 10, 100, 1000])))
    np.testing.assert_array_equal(out, np.array(expected, bool))
    # confidence 0.99 at N = 100 needs p >= 0.045
    np.testing.assert_array_equal(fe.accessible_support(logp, 100, 0.99), [1, 1, 0, 0])
    rows = np.stack([logp, logp[::-1]])
    np.testing.assert_array_equal(
        fe.accessible_support(rows, np.array([10, 1])), [[1, 1, 0, 0], [0, 0, 0, 1]]
    )


# ----------------------------------------------------------------------------- pass@k
@given(log_dists(), st.lists(st.booleans(), min_size=N, max_size=N), st.integers(1, 10**4))
def test_pass_at_k_exact(logp, correct, k):
    correct = np.array(correct)
    value = float(fe.pass_at_k(logp, correct, k))
    assert value == pytest.approx(
        exact_reach(float(np_lse(np.where(correct, logp, -INF))), k), rel=1e-11, abs=1e-300
    )


def test_pass_at_k_batched():
    logp = np.log(np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]]))
    correct = np.array([False, True, True])
    out = np.asarray(fe.pass_at_k(logp, correct, 3))
    np.testing.assert_allclose(out, [1 - 0.5**3, 1 - 0.1**3], rtol=1e-14)
    ks = np.array([1, 2, 16])
    out = np.asarray(fe.pass_at_k(logp[0], correct, ks))
    np.testing.assert_allclose(out, 1 - 0.5**ks, rtol=1e-14)
    out = np.asarray(fe.pass_at_k(logp, correct, np.array([[1], [4]])))
    np.testing.assert_allclose(out, [[0.5, 0.9], [1 - 0.5**4, 1 - 0.1**4]], rtol=1e-14)
    assert float(fe.pass_at_k(logp[0], np.zeros(3, bool), 100)) == 0.0


# ----------------------------------------------------------------------------- estimator
def exact_estimate(n, c, k):
    return float(1 - Fraction(math.comb(n - c, k), math.comb(n, k)))


def test_pass_at_k_estimate_exact_small_integers():
    for n in range(1, 13):
        for c in range(n + 1):
            for k in range(1, n + 1):
                value = float(fe.pass_at_k_estimate(n, c, k))
                assert value == pytest.approx(exact_estimate(n, c, k), rel=1e-14, abs=1e-16)


@pytest.mark.parametrize("n,c,k", [(1000, 10, 100), (5000, 1, 4999), (200, 0, 50), (64, 64, 1)])
def test_pass_at_k_estimate_large(n, c, k):
    assert float(fe.pass_at_k_estimate(n, c, k)) == pytest.approx(
        exact_estimate(n, c, k), rel=1e-12, abs=1e-300
    )


def test_pass_at_k_estimate_broadcasts():
    out = np.asarray(fe.pass_at_k_estimate(10, np.arange(11), np.array([[1], [5]])))
    assert out.shape == (2, 11)
    for i, k in enumerate((1, 5)):
        np.testing.assert_allclose(
            out[i], [exact_estimate(10, c, k) for c in range(11)], rtol=1e-14, atol=1e-16
        )
    assert float(fe.pass_at_k_estimate(10.0, 3.0, 2.0)) == pytest.approx(exact_estimate(10, 3, 2))


# ----------------------------------------------------------------------------- regimes
def np_regimes(logp0, budget, confidence, basin_mass):
    """(codes, clear) from the definitions; `clear` is False when rounding could decide."""
    accessible, clear = np_accessible(logp0, budget, confidence)
    order = np.argsort(-logp0, kind="stable")
    p_sorted = np.exp(logp0[order])
    before = np.concatenate([[0.0], np.cumsum(p_sorted)[:-1]])
    nucleus = np.zeros(len(logp0), bool)
    nucleus[order] = (before < basin_mass) & (p_sorted > 0)
    near = np.zeros(len(logp0), bool)
    near[order] = np.abs(before - basin_mass) < 1e-9
    codes = np.where(
        logp0 == -INF,
        Regime.SINGULAR,
        np.where(accessible, np.where(nucleus, Regime.BASIN, Regime.TAIL), Regime.BARRIER),
    )
    return codes, clear & ~near


@given(
    log_dists(),
    st.floats(1.0, 1e4),
    st.sampled_from([0.1, 0.5, 0.9]),
    st.sampled_from([0.5, 0.9, 0.99, 1.0]),
)
def test_regimes_match_definitions(logp0, budget, confidence, basin_mass):
    codes, clear = np_regimes(logp0, budget, confidence, basin_mass)
    assume(np.all(clear[logp0 > -INF]))
    out = np.asarray(fe.regimes(logp0, budget, confidence, basin_mass))
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, codes)


def test_regimes_hand_case_ties_and_batches():
    # ties at 0.2: the nucleus of 0.55 takes 0.4, then the first 0.2 by index (0.4 < 0.55)
    # and stops (0.6 >= 0.55)
    logp0 = np.log(np.array([0.2, 0.4, 0.2, 0.15, 0.05]))
    out = np.asarray(fe.regimes(logp0, 1000, basin_mass=0.55))
    np.testing.assert_array_equal(
        out, [Regime.BASIN, Regime.BASIN, Regime.TAIL, Regime.TAIL, Regime.TAIL]
    )
    # at N = 2 only p >= 0.293 is accessible
    out = np.asarray(fe.regimes(logp0, 2, basin_mass=0.55))
    np.testing.assert_array_equal(out, [Regime.BARRIER, Regime.BASIN] + [Regime.BARRIER] * 3)
    grid = np.asarray(fe.regimes(np.append(logp0, -INF), np.array([2, 1000]), basin_mass=0.55))
    assert grid.shape == (2, 6)
    assert np.all(grid[:, 5] == Regime.SINGULAR)
    np.testing.assert_array_equal(
        grid[:, :5],
        [fe.regimes(logp0, 2, basin_mass=0.55), fe.regimes(logp0, 1000, basin_mass=0.55)],
    )


# ----------------------------------------------------------------------------- regime profile
@given(
    log_dists(), log_dists(), st.lists(st.booleans(), min_size=N, max_size=N), st.floats(1.0, 1e4)
)
def test_regime_profile_sums(logp0, logt, mask, budget):
    codes = np.asarray(fe.regimes(logp0, budget))
    profile = np.asarray(fe.regime_profile(logp0, logt, budget))
    assert profile.shape == (4,)
    t = np.exp(logt)
    expected = [math.fsum(t[codes == r]) for r in Regime]
    np.testing.assert_allclose(profile, expected, atol=1e-14)
    assert math.fsum(profile) == pytest.approx(1.0, abs=1e-12)
    mask = np.array(mask)
    assume(mask.any())
    profile = np.asarray(fe.regime_profile(logp0, mask, budget))
    np.testing.assert_allclose(
        profile, [np.sum(mask & (codes == r)) / mask.sum() for r in Regime], atol=1e-14
    )


def test_regime_profile_batched():
    logp0 = np.log(np.array([0.6, 0.3, 0.09, 0.01]))
    targets = np.log(np.array([[0.25] * 4, [1e-300, 0.5, 0.5, 1e-300]]))
    targets[1, [0, 3]] = -INF
    out = np.asarray(fe.regime_profile(logp0, targets, 10, basin_mass=0.85))
    # N = 10: 0.6, 0.3, 0.09 accessible; nucleus of 0.85 = {0.6, 0.3}; 0.01 barrier
    np.testing.assert_allclose(out, [[0.5, 0.25, 0.25, 0.0], [0.5, 0.5, 0.0, 0.0]], atol=1e-15)


# ----------------------------------------------------------------------------- diagnose
def check_diagnosis(d, logp0, logq, budget, confidence=0.5):
    """Every field against a direct NumPy computation."""
    a0, _ = np_accessible(logp0, budget, confidence)
    aq, _ = np_accessible(logq, budget, confidence)
    q = np.exp(logq)
    sup = logp0 > -INF
    assert float(d.elicited_mass) == pytest.approx(math.fsum(q[a0]), abs=1e-14)
    assert float(d.created_mass) == pytest.approx(math.fsum(q[sup & ~a0]), abs=1e-14)
    assert float(d.singular_mass) == pytest.approx(math.fsum(q[~sup]), abs=1e-14)
    assert int(d.gained) == np.sum(aq & ~a0) and int(d.lost) == np.sum(a0 & ~aq)
    assert int(d.accessible_before) == a0.sum() and int(d.accessible_after) == aq.sum()
    assert float(d.kl) == pytest.approx(float(fe.kl(logq, logp0)), rel=1e-14)


def test_diagnose_pure_elicitation():
    logp0 = np.log(np.array([0.5, 0.3, 0.2, 1e-300]))
    logp0[3] = -INF
    logq = np.log(np.array([0.2, 0.3, 0.5, 1e-300]))
    logq[3] = -INF
    d = fe.diagnose(logp0, logq, 10)
    check_diagnosis(d, logp0, logq, 10)
    assert d.verdict == "elicitation"
    assert float(d.elicited_mass) == pytest.approx(1.0)
    assert int(d.gained) == 0 and int(d.lost) == 0
    kl = 0.2 * math.log(0.4) + 0.5 * math.log(2.5)
    assert float(d.kl) == pytest.approx(kl, rel=1e-13)


def test_diagnose_barrier_crossed_is_creation():
    logp0 = np.log(np.array([0.6, 0.3, 0.09, 0.01]))
    logq = np.log(np.array([0.2, 0.2, 0.1, 0.5]))
    d = fe.diagnose(logp0, logq, 10)  # behavior 3 (p0 = 0.01 < 0.067) was a barrier
    check_diagnosis(d, logp0, logq, 10)
    assert d.verdict == "creation"
    assert int(d.gained) == 1 and float(d.created_mass) == pytest.approx(0.5)
    # at a budget where 0.01 is already accessible the same step is elicitation
    d = fe.diagnose(logp0, logq, 1000)
    assert d.verdict == "elicitation" and float(d.created_mass) == 0.0


def test_diagnose_singular_is_new_support():
    logp0 = np.array([math.log(0.5), math.log(0.5), -INF])
    logq = np.log(np.array([0.4, 0.4, 0.2]))
    d = fe.diagnose(logp0, logq, 10)
    check_diagnosis(d, logp0, logq, 10)
    assert d.verdict == "new-support"
    assert float(d.singular_mass) == pytest.approx(0.2) and float(d.kl) == INF
    # mass e^-1e4 (zero in float) outside supp(p0) is still new support
    logq = np_normalize(np.array([0.0, 0.0, -1e4]))
    d = fe.diagnose(logp0, logq, 10)
    assert d.verdict == "new-support" and float(d.kl) == INF
    assert float(d.singular_mass) == 0.0  # the mass underflows; the KL does not


def test_diagnose_shrinkage_counted_in_lost():
    logp0 = np.log(np.array([0.5, 0.3, 0.2]))
    logq = np.log(np.array([0.98, 0.01, 0.01]))
    d = fe.diagnose(logp0, logq, 10)
    check_diagnosis(d, logp0, logq, 10)
    assert d.verdict == "elicitation"
    assert int(d.lost) == 2 and int(d.accessible_after) == 1 and int(d.gained) == 0


def test_diagnose_batched_verdicts_and_pytree():
    logp0 = np.log(np.array([0.6, 0.3, 0.09, 0.01]))
    logq = np.log(np.array([[0.2, 0.2, 0.1, 0.5], [0.5, 0.4, 0.09, 0.01]]))
    d = fe.diagnose(logp0, logq, 10)
    np.testing.assert_array_equal(d.verdict, ["creation", "elicitation"])
    for i in range(2):
        check_diagnosis(jax.tree_util.tree_map(lambda x, i=i: x[i], d), logp0, logq[i], 10)
    assert len(jax.tree_util.tree_leaves(d)) == 8


@given(log_dists(), log_dists(), st.floats(1.0, 1e4), st.sampled_from([0.2, 0.5, 0.8]))
def test_diagnose_fields_random(logp0, logq, budget, confidence):
    _, clear0 = np_accessible(logp0, budget, confidence)
    _, clearq = np_accessible(logq, budget, confidence)
    assume(clear0.all() and clearq.all())
    d = fe.diagnose(logp0, logq, budget, confidence)
    check_diagnosis(d, logp0, logq, budget, confidence)
    q_outside = np.any((logq > -INF) & (logp0 == -INF))
    gained = np.any(
        np_accessible(logq, budget, confidence)[0] & ~np_accessible(logp0, budget, confidence)[0]
    )
    expected = "new-support" if q_outside else ("creation" if gained else "elicitation")
    assert d.verdict == expected
    total = float(d.elicited_mass) + float(d.created_mass) + float(d.singular_mass)
    assert total == pytest.approx(1.0, abs=1e-12)


# ----------------------------------------------------------------------------- hardening
def test_pass_at_k_estimate_is_vectorized_over_many_entries():
    """1e5 entries with n = 1e6 (the per-entry loop over c took minutes): every value against
    exact rational arithmetic on a sample of entries, including c = 0, c = n and n - c < k."""
    rng = np.random.default_rng(0)
    n = 10**6
    c = rng.integers(0, n + 1, size=10**5)
    c[:4] = [0, n, n - 50, 1]
    for k in (1, 100, 2000):
        out = np.asarray(fe.pass_at_k_estimate(n, c, k))
        assert out.shape == c.shape
        for i in [0, 1, 2, 3, *rng.integers(4, c.size, size=6)]:
            ci = int(c[i])
            assert out[i] == pytest.approx(exact_estimate(n, ci, k), rel=1e-13, abs=1e-300)


@pytest.mark.parametrize(
    "n,c,k",
    [
        (10**9, 2000, 1500),  # the Stirling difference (min(k, c) > 1024), estimate 3e-3
        (10**7, 3000, 1100),
        (2**40, 5000, 3000),  # estimate 1.4e-5
        (3000, 1030, 1940),  # n - c < k: exactly 1
        (20000, 1100, 1100),
        (5000, 1025, 1025),
    ],
)
def test_pass_at_k_estimate_log_gamma_path_is_exact(n, c, k):
    exact = exact_estimate(n, c, k) if n - c >= k else 1.0
    assert float(fe.pass_at_k_estimate(n, c, k)) == pytest.approx(exact, rel=1e-13, abs=1e-300)


@pytest.mark.parametrize("bad", [2**41, 10**18, 2**70])
def test_pass_at_k_estimate_sizes_are_bounded(bad):
    with pytest.raises(ValueError, match="`n` is too large"):
        fe.pass_at_k_estimate(bad, 1, 1)


def test_reach_probability_equal_to_the_confidence_is_accessible():
    """A behavior whose reach probability equals c exactly is accessible (>=): p = 0.5 at
    N = 1 with c = 0.5, and p = 0.75 (reach 1 - 0.25^2 = 0.9375) at N = 2 with c = 0.9375."""
    logp = np.log([0.5, 0.5])
    np.testing.assert_array_equal(fe.accessible_support(logp, 1, 0.5), [True, True])
    logp = np.log([0.75, 0.25])
    assert float(fe.reach_probability(np.log(0.75), 2)) == 0.9375
    np.testing.assert_array_equal(fe.accessible_support(logp, 2, 0.9375), [True, False])
    np.testing.assert_array_equal(
        fe.regimes(np.log([0.5, 0.5]), 1, confidence=0.5), [Regime.BASIN, Regime.BASIN]
    )


@pytest.mark.parametrize("basin_mass,basin", [(0.75, 2), (0.5, 1), (1.0, 3), (0.76, 3)])
def test_basin_mass_reached_exactly_is_inclusive(basin_mass, basin):
    """The nucleus is the smallest most-probable set whose mass reaches basin_mass (>=): with
    p = (.5, .25, .25) a cumulative mass exactly equal to basin_mass stops there."""
    codes = np.asarray(fe.regimes(np.log([0.5, 0.25, 0.25]), 10, basin_mass=basin_mass))
    expected = [Regime.BASIN] * basin + [Regime.TAIL] * (3 - basin)
    np.testing.assert_array_equal(codes, expected)
