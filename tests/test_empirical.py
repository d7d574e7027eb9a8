"""freeenergy.empirical: every estimate against an independent computation (exact rationals,
binomial sums, NumPy reimplementations with the same resample indices, hand-built cases), and
every bad input against its error message."""

from __future__ import annotations

import doctest
import math
from fractions import Fraction

import jax
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import freeenergy as fe
from freeenergy import empirical as em
from freeenergy.empirical import _answers, _data, _passk, _verdict


def exact_pass(n: int, c: int, k: int) -> Fraction:
    return 1 - Fraction(math.comb(n - c, k), math.comb(n, k))


def binom_pmf(n: int, p: float, c: int) -> float:
    return math.comb(n, c) * p**c * (1 - p) ** (n - c)


# ----------------------------------------------------------------------------- pass@k
def test_pass_at_k_equals_exact_rationals_for_every_small_case():
    # correctly rounded: identical to float(Fraction) wherever C(n, k) < 2^53 (all n <= 56)
    for n in range(1, 57):
        c = np.arange(n + 1)
        counts = em.Counts(np.full(n + 1, n), c)
        got = np.asarray(em.pass_at_k(counts, np.arange(1, n + 1)))
        want = np.array([[float(exact_pass(n, ci, k)) for k in range(1, n + 1)] for ci in c])
        np.testing.assert_array_equal(got, want)


def test_pass_at_k_is_exact_at_a_reachability_threshold():
    # 1 - C(31,16)/C(32,16) = 1/2 exactly: at confidence 0.5 the prompt is reachable at 16
    c = em.Counts([32], [1])
    assert float(em.pass_at_k(c, 16)[0]) == 0.5
    assert em.support_change(c, c, 16, confidence=0.5).both == 1
    # k = 1 is c / n, correctly rounded, at any n
    big = em.Counts([10**6 + 7, 3 * 10**8], [12_345, 10**8])
    np.testing.assert_array_equal(em.pass_at_k(big, 1), [12_345 / (10**6 + 7), 1 / 3])


@given(
    n=st.integers(1, 10**6),
    c_frac=st.floats(0, 1),
    k_frac=st.floats(0, 1),
)
def test_pass_at_k_matches_exact_rationals_up_to_a_million_samples(n, c_frac, k_frac):
    c = round(c_frac * n)
    k = 1 + round(k_frac * (min(n, 300) - 1))
    got = float(em.pass_at_k(em.Counts([n], [c]), k)[0])
    want = float(exact_pass(n, c, k))
    # relative accuracy also for tiny pass@k (e.g. c = 1, k = 1, n = 1e6: 1e-6)
    assert got == pytest.approx(want, rel=1e-12, abs=0)


@pytest.mark.parametrize(
    "n,c,k",
    [(10**6, 5000, 5000), (10**6, 4097, 20_000), (200_000, 150_000, 4500), (10**6, 1, 10**6)],
)
def test_pass_at_k_large_min_k_c_uses_an_accurate_form(n, c, k):
    got = float(em.pass_at_k(em.Counts([n], [c]), k)[0])
    assert got == pytest.approx(float(exact_pass(n, c, k)), rel=1e-12)


@given(n=st.integers(1, 40), p=st.floats(0, 1), k_frac=st.floats(0, 1))
def test_pass_at_k_is_unbiased_exact_expectation_over_the_binomial(n, p, k_frac):
    k = 1 + round(k_frac * (n - 1))
    counts = em.Counts(np.full(n + 1, n), np.arange(n + 1))
    est = np.asarray(em.pass_at_k(counts, k))
    pmf = np.array([binom_pmf(n, p, c) for c in range(n + 1)])
    expectation = float(pmf @ est)
    assert expectation == pytest.approx(
        -math.expm1(k * math.log1p(-p)) if p < 1 else 1.0, abs=1e-13
    )


@given(n=st.integers(1, 500), c_frac=st.floats(0, 1))
def test_pass_at_k_properties(n, c_frac):
    c = round(c_frac * n)
    counts = em.Counts([n, n], [c, min(c + 1, n)])
    table = np.asarray(em.pass_at_k(counts, np.arange(1, n + 1)))
    assert table[0, 0] == pytest.approx(c / n, rel=1e-14)
    assert table[0, -1] == (1.0 if c > 0 else 0.0)
    assert np.all(np.diff(table, axis=1) >= -1e-15)  # non-decreasing in k
    assert np.all(table[1] >= table[0] - 1e-15)  # non-decreasing in c
    assert np.all((table >= 0) & (table <= 1))


def test_pass_at_k_shapes_and_dtype():
    counts = em.Counts([5, 6, 7], [1, 2, 3])
    assert em.pass_at_k(counts, 2).shape == (3,)
    assert em.pass_at_k(counts, [1, 2, 5]).shape == (3, 3)
    assert em.pass_at_k(counts, np.array([3])).shape == (3, 1)
    assert em.pass_at_k(counts, 2.0).dtype == np.float64  # x64 in the tests
    assert float(em.pass_at_k(counts, 5)[0]) == float(exact_pass(5, 1, 5))


@pytest.mark.parametrize(
    "k,exc,match",
    [
        (8, ValueError, r"`k` = 8 exceeds .* n = 5"),
        (0, ValueError, r"`k` must hold whole numbers >= 1, got 0"),
        (1.5, ValueError, r"`k` must hold whole numbers >= 1, got 1.5"),
        ([[1, 2]], ValueError, r"`k` must be a scalar or 1-D"),
        ([], ValueError, r"`k` is empty"),
        ("3", TypeError, r"`k` must be an integer"),
        (True, TypeError, r"`k` must be an integer"),
        (None, TypeError, r"`k` must be an integer"),
        (np.array([float("nan")]), ValueError, r"`k` must hold whole numbers"),
    ],
)
def test_pass_at_k_bad_k(k, exc, match):
    with pytest.raises(exc, match=match):
        em.pass_at_k(em.Counts([5, 9], [1, 2]), k)


def test_pass_at_k_names_the_smallest_prompt_when_k_exceeds_n():
    with pytest.raises(ValueError, match=r"n = 3 \(prompt 'b'\)"):
        em.pass_at_k(em.Counts([5, 3], [1, 2], prompts=["a", "b"]), 4)
    with pytest.raises(TypeError, match="`counts` must be freeenergy.empirical.Counts"):
        em.pass_at_k(np.array([[5, 1]]), 1)


# ----------------------------------------------------------------------------- Counts
def test_counts_stores_read_only_int_arrays_and_accepts_integral_floats():
    c = em.Counts(np.array([4.0, 8.0]), [1, 8], prompts=("a", 7))
    assert c.n.dtype == np.int64 and c.correct.tolist() == [1, 8]
    assert c.prompts == ("a", 7) and c.num_prompts == 2
    np.testing.assert_array_equal(c.rate, [0.25, 1.0])
    with pytest.raises(ValueError):
        c.n[0] = 3


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(n=[4, 4], correct=[5, 0]), ValueError, r"`correct` must satisfy 0 <= correct <= n"),
        (dict(n=[4, 4], correct=[-1, 0]), ValueError, r"`correct` must satisfy"),
        (dict(n=[0, 4], correct=[0, 0]), ValueError, r"`n` must be between 1 and"),
        (dict(n=[4, 4.5], correct=[0, 0]), ValueError, r"`n` must hold whole numbers.*4.5"),
        (dict(n=[4, 4], correct=[0.5, 0]), ValueError, r"`correct` must hold whole numbers"),
        (dict(n=[4, 4], correct=[0]), ValueError, r"`correct` has 1 prompts but `n` has 2"),
        (dict(n=[[4, 4]], correct=[[0, 0]]), ValueError, r"`n` must be 1-D"),
        (dict(n=[], correct=[]), ValueError, r"`n` is empty"),
        (dict(n=[True], correct=[0]), TypeError, r"`n` must hold integer counts"),
        (dict(n="44", correct=[0]), TypeError, r"`n` must be a 1-D array of integers"),
        (dict(n=[4, 4], correct=[0, 0], prompts=["a"]), ValueError, r"`prompts` has 1 ids"),
        (dict(n=[4, 4], correct=[0, 0], prompts=["a", "a"]), ValueError, r"id 'a' twice"),
        (dict(n=[4], correct=[0], prompts="a"), TypeError, r"single string"),
        (dict(n=[4], correct=[0], prompts=[1.5]), TypeError, r"strings or ints"),
        (dict(n=[2e9], correct=[0]), ValueError, r"exceeds the limit"),
        (dict(n=[4], correct=[0], samples=[1]), TypeError, r"Samples record"),
    ],
)
def test_counts_bad_input(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        em.Counts(**kwargs)


def test_samples_validation_and_agreement_with_counts():
    s = em.Samples([0, 0, 1], [True, False, True], answer=["1", "2", "1"])
    c = em.Counts.from_samples(["x", "y"], s)
    assert c.n.tolist() == [2, 1] and c.correct.tolist() == [1, 1] and s.size == 3
    with pytest.raises(ValueError, match="do not agree"):
        em.Counts([2, 2], [1, 1], prompts=["x", "y"], samples=s)
    with pytest.raises(ValueError, match="has no samples"):
        em.Counts.from_samples(["x", "y", "z"], s)
    with pytest.raises(ValueError, match="refers to prompt 1"):
        em.Counts.from_samples(["x"], s)
    with pytest.raises(ValueError, match="`answer` has 1 entries"):
        em.Samples([0, 0], [True, False], answer=["1"])
    with pytest.raises(TypeError, match="`answer` must hold strings"):
        em.Samples([0], [True], answer=[3])
    with pytest.raises(ValueError, match=r"`logprob_base` must hold log-probabilities.*0.5"):
        em.Samples([0], [True], logprob_base=[0.5])
    with pytest.raises(ValueError, match=r"`logprob_trained` must hold"):
        em.Samples([0], [True], logprob_trained=[float("nan")])
    with pytest.raises(TypeError, match="`correct` must be booleans"):
        em.Samples([0], [2])
    assert em.Samples([0], [True], logprob_base=[-np.inf]).logprob_base[0] == -np.inf


# ----------------------------------------------------------------------------- bootstrap
@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(7)
    p = 60
    base = em.Counts(
        np.full(p, 32),
        rng.binomial(32, rng.beta(0.4, 2.0, p)),
        prompts=[f"q{i}" for i in range(p)],
    )
    trained = em.Counts(
        np.full(p, 40),
        rng.binomial(40, rng.beta(0.8, 1.5, p)),
        prompts=[f"q{i}" for i in range(p)],
    )
    return base, trained


def np_bootstrap_means(table: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return table[idx].mean(axis=1)


def test_bootstrap_indices_are_uniform_and_use_the_multiply_shift_of_the_bits():
    key = jax.random.key(3)
    idx = np.asarray(em.bootstrap_indices(key, 4000, 50))
    assert idx.shape == (4000, 50) and idx.min() == 0 and idx.max() == 49
    counts = np.bincount(idx.ravel(), minlength=50)
    expected = 4000  # 4000 * 50 draws over 50 prompts
    assert np.all(np.abs(counts - expected) < 6 * math.sqrt(expected))
    # One chunk: the indices are floor(bits * P / 2^32) of the chunk key's 32-bit words.
    chunk_key = jax.random.split(key, 1)[0]
    bits = np.asarray(jax.random.bits(chunk_key, (4000, 50), np.uint32)).astype(np.uint64)
    np.testing.assert_array_equal(idx, (bits * 50) >> 32)


def test_bootstrap_indices_chunks_and_large_prompt_sets(monkeypatch):
    monkeypatch.setattr(_passk, "_CHUNK_ENTRIES", 64)
    idx = np.asarray(em.bootstrap_indices(jax.random.key(0), 10, 16))  # chunks of 4 rows
    keys = jax.random.split(jax.random.key(0), 3)
    want = np.concatenate([np.asarray(_passk._draw(k, 4, 16)) for k in keys])[:10]
    np.testing.assert_array_equal(idx, want)
    big = np.asarray(em.bootstrap_indices(jax.random.key(0), 2, 70_000))
    assert big.min() >= 0 and big.max() < 70_000 and len(np.unique(big[0])) > 40_000


def test_curve_mean_is_the_plain_mean_and_the_band_matches_numpy(pair):
    base, _ = pair
    k = np.array([1, 2, 4, 8, 16, 32])
    key = jax.random.key(11)
    curve = em.pass_at_k_curve(base, k, num_bootstrap=500, key=key, level=0.9)
    table = np.array([[float(exact_pass(32, int(c), int(j))) for j in k] for c in base.correct])
    np.testing.assert_allclose(curve.mean, table.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(curve.per_prompt, table, rtol=1e-13)
    idx = np.asarray(em.bootstrap_indices(key, 500, base.num_prompts))
    means = np_bootstrap_means(table, idx)
    np.testing.assert_allclose(curve.low, np.quantile(means, 0.05, axis=0), atol=1e-13)
    np.testing.assert_allclose(curve.high, np.quantile(means, 0.95, axis=0), atol=1e-13)
    assert curve.level == 0.9 and curve.num_bootstrap == 500
    assert np.array_equal(curve.k, k)
    # deterministic given the key; another key gives another band
    again = em.pass_at_k_curve(base, k, num_bootstrap=500, key=key, level=0.9)
    np.testing.assert_array_equal(again.low, curve.low)
    other = em.pass_at_k_curve(base, k, num_bootstrap=500, key=jax.random.key(12), level=0.9)
    assert not np.array_equal(other.low, curve.low)
    plain = em.pass_at_k_curve(base, k)
    assert plain.low is None and plain.high is None
    np.testing.assert_array_equal(plain.mean, curve.mean)


def test_paired_difference_matches_numpy_with_the_same_indices(pair):
    base, trained = pair
    k = [1, 3, 9, 27]
    key = jax.random.key(5)
    seen = []
    d = em.paired_difference(
        base, trained, k, num_bootstrap=300, key=key, progress=lambda a, b: seen.append((a, b))
    )
    tb = np.asarray(em.pass_at_k(base, k))
    tt = np.asarray(em.pass_at_k(trained, k))
    np.testing.assert_allclose(d.mean, (tt - tb).mean(axis=0), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(d.base, tb.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(d.trained, tt.mean(axis=0), rtol=1e-13)
    idx = np.asarray(em.bootstrap_indices(key, 300, base.num_prompts))
    means = np_bootstrap_means(tt - tb, idx)
    np.testing.assert_allclose(d.low, np.quantile(means, 0.025, axis=0), atol=1e-13)
    np.testing.assert_allclose(d.high, np.quantile(means, 0.975, axis=0), atol=1e-13)
    assert seen and seen[-1] == (300, 300)
    # the pairing matters: the paired band is narrower than the difference of unpaired bands
    assert np.all(np.asarray(d.low) <= np.asarray(d.mean))


def test_paired_difference_aligns_prompts_by_id(pair):
    base, trained = pair
    perm = np.random.default_rng(0).permutation(base.num_prompts)
    shuffled = em.Counts(
        trained.n[perm], trained.correct[perm], prompts=[trained.prompts[i] for i in perm]
    )
    key = jax.random.key(1)
    a = em.paired_difference(base, trained, [1, 4], num_bootstrap=100, key=key)
    b = em.paired_difference(base, shuffled, [1, 4], num_bootstrap=100, key=key)
    np.testing.assert_allclose(a.low, b.low, rtol=1e-14)
    np.testing.assert_allclose(a.mean, b.mean, rtol=1e-14)
    # without ids: by position
    nb = em.Counts(base.n, base.correct)
    nt = em.Counts(trained.n, trained.correct)
    c = em.paired_difference(nb, nt, [1, 4], num_bootstrap=100, key=key)
    np.testing.assert_allclose(a.high, c.high, rtol=1e-14)


def test_paired_inputs_must_cover_the_same_prompts():
    a = em.Counts([4, 4], [1, 2], prompts=["x", "y"])
    b = em.Counts([4, 4], [1, 2], prompts=["x", "z"])
    with pytest.raises(ValueError, match=r"1 only in `base` \(e.g. \['y'\]\).*1 only in `trained`"):
        em.paired_difference(a, b, 1, num_bootstrap=0, key=None)
    with pytest.raises(ValueError, match=r"`base` has 2 prompts but `trained` has 3"):
        em.support_change(em.Counts([4, 4], [1, 1]), em.Counts([4, 4, 4], [1, 1, 1]), 2)
    with pytest.raises(ValueError, match=r"`k` = 5 exceeds"):
        em.paired_difference(em.Counts([8], [1]), em.Counts([4], [1]), 5, num_bootstrap=0, key=None)


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(num_bootstrap=10), TypeError, r"`key` is required when `num_bootstrap` > 0"),
        (dict(num_bootstrap=10, key=0), TypeError, r"`key` must be a JAX PRNG key"),
        (dict(num_bootstrap=-1), ValueError, r"`num_bootstrap` must be an integer >= 0"),
        (dict(num_bootstrap=2.5), TypeError, r"`num_bootstrap` must be an integer"),
        (dict(num_bootstrap=10**7, key=jax.random.key(0)), ValueError, r"above the limit"),
        (dict(level=1.0), ValueError, r"`level` must lie strictly between 0 and 1"),
        (dict(level=0), ValueError, r"`level` must lie strictly between 0 and 1"),
        (dict(progress=3), TypeError, r"`progress` must be None or a callable"),
    ],
)
def test_bootstrap_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        em.pass_at_k_curve(em.Counts([4, 4], [1, 2]), [1, 2], **kwargs)


# ----------------------------------------------------------------------------- crossover
def test_crossover_on_hand_built_curves():
    b = em.Counts([8, 8, 8, 8], [1, 1, 1, 0])
    t = em.Counts([8, 8, 8, 8], [6, 0, 0, 0])
    # pass@k, exactly: base (3/4)·(1 − C(7,k)/C(8,k)) = 3k/32; trained (1 − C(2,k)/C(8,k))/4
    for k in (1, 2, 4, 8):
        assert float(em.pass_at_k_curve(b, k).mean[0]) == pytest.approx(3 * k / 32, rel=1e-14)
    x = em.crossover(b, t, [1, 2, 4, 8])
    assert x.k == 4 and x.low is None and x.probability is None
    assert em.crossover(b, t, [1, 2]).k is None  # trained still leads at 2
    assert em.crossover(t, b, [1, 2, 4, 8]).k is None  # "trained" never led
    same = em.Counts([8, 8], [3, 1])
    assert em.crossover(same, same, [1, 8]).k is None  # a tie at k = 1 is no lead


def test_crossover_bootstrap_matches_numpy(pair):
    base, trained = pair
    grid = np.array([1, 2, 4, 8, 16, 32])
    key = jax.random.key(2)
    # a trained model sharper on few prompts: crossover likely
    sharp = em.Counts(
        trained.n,
        np.where(trained.correct > 20, trained.n, 0),
        prompts=trained.prompts,
    )
    x = em.crossover(base, sharp, grid, num_bootstrap=400, key=key, level=0.8)
    tb, tt = np.asarray(em.pass_at_k(base, grid)), np.asarray(em.pass_at_k(sharp, grid))
    idx = np.asarray(em.bootstrap_indices(key, 400, base.num_prompts))
    mb, mt = np_bootstrap_means(tb, idx), np_bootstrap_means(tt, idx)
    pos = []
    for b_row, t_row in zip(mb, mt, strict=True):
        p = len(grid)
        if t_row[0] > b_row[0]:
            for j in range(1, len(grid)):
                if b_row[j] >= t_row[j]:
                    p = j
                    break
        pos.append(p)
    pos = np.array(pos)
    assert x.probability == pytest.approx(np.mean(pos < len(grid)))
    lo, hi = np.quantile(pos, 0.1, method="lower"), np.quantile(pos, 0.9, method="higher")
    assert x.low == (grid[lo] if lo < len(grid) else None)
    assert x.high == (grid[hi] if hi < len(grid) else None)
    assert x.k is not None and (x.low is None or x.low <= x.k)


def test_crossover_bad_grid():
    c = em.Counts([8], [1])
    with pytest.raises(ValueError, match="strictly increasing"):
        em.crossover(c, c, [1, 4, 2])
    with pytest.raises(ValueError, match="at least two values"):
        em.crossover(c, c, [2])


# ----------------------------------------------------------------------------- support change
def test_support_change_counts_ratios_and_masks():
    b = em.Counts([4] * 6, [1, 1, 0, 0, 3, 2], prompts=list("abcdef"))
    t = em.Counts([4] * 6, [2, 0, 3, 0, 4, 0], prompts=list("abcdef"))
    s = em.support_change(b, t, budget=4)
    assert (s.both, s.base_only, s.trained_only, s.neither) == (2, 2, 1, 1)
    assert s.srr == pytest.approx(2 / 4) and s.ndr == pytest.approx(1 / 3)
    assert s.sds == pytest.approx(2 * (1 / 2) * (1 / 3) / (1 / 2 + 1 / 3))
    assert s.nscr == pytest.approx((1 - 2) / 5)
    np.testing.assert_array_equal(s.base_reachable, b.correct > 0)  # budget = n
    np.testing.assert_array_equal(s.trained_reachable, t.correct > 0)
    # budget 1, confidence 0.5: reachable when c/n >= 1/2
    s1 = em.support_change(b, t, budget=1, confidence=0.5)
    np.testing.assert_array_equal(s1.base_reachable, b.correct >= 2)
    np.testing.assert_allclose(s1.trained_pass, t.correct / 4)
    # budget 2: pass@2 = 1 - C(4-c,2)/6 >= 0.8 needs c >= 2 (c = 2: 5/6)
    s2 = em.support_change(b, t, budget=2, confidence=0.8)
    np.testing.assert_array_equal(s2.base_reachable, b.correct >= 2)


def test_support_change_undefined_ratios_are_none():
    none = em.Counts([4, 4], [0, 0])
    s = em.support_change(none, none, 4)
    assert (s.neither, s.srr, s.ndr, s.sds, s.nscr) == (2, None, None, None, None)
    some = em.Counts([4, 4], [1, 0])
    s = em.support_change(some, some, 4)
    assert (s.srr, s.ndr, s.sds, s.nscr) == (1.0, 0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match=r"`budget` = 5 exceeds"):
        em.support_change(some, some, 5)
    with pytest.raises(ValueError, match="`confidence` must lie strictly between"):
        em.support_change(some, some, 4, confidence=1.0)
    with pytest.raises(ValueError, match="one number of samples"):
        em.support_change(some, some, [1, 2])


# ----------------------------------------------------------------------------- intervals
def binom_tail_ge(n, c, p):
    return sum(binom_pmf(n, p, j) for j in range(c, n + 1))


def binom_tail_le(n, c, p):
    return sum(binom_pmf(n, p, j) for j in range(0, c + 1))


@pytest.mark.parametrize("level", [0.8, 0.95])
def test_clopper_pearson_solves_the_binomial_tail_equations(level):
    alpha = 1 - level
    for n in (1, 2, 5, 13, 30):
        c = np.arange(n + 1)
        iv = em.binomial_interval(c, np.full(n + 1, n), level)
        for ci, lo, hi in zip(c, iv.low, iv.high, strict=True):
            if ci > 0:
                assert binom_tail_ge(n, int(ci), lo) == pytest.approx(alpha / 2, abs=1e-11)
            else:
                assert lo == 0.0
            if ci < n:
                assert binom_tail_le(n, int(ci), hi) == pytest.approx(alpha / 2, abs=1e-11)
            else:
                assert hi == 1.0
            assert lo <= ci / n <= hi


@given(n=st.integers(1, 10**6), level=st.floats(0.5, 0.999))
def test_clopper_pearson_closed_forms_at_zero_and_n(n, level):
    a = (1 - level) / 2
    iv = em.binomial_interval([0, n], [n, n], level)
    assert iv.high[0] == pytest.approx(1 - a ** (1 / n), rel=1e-12)
    assert iv.low[1] == pytest.approx(a ** (1 / n), rel=1e-12)
    assert iv.low[0] == 0.0 and iv.high[1] == 1.0


def test_clopper_pearson_at_large_n_and_jeffreys_against_scipy():
    special = pytest.importorskip("scipy.special")
    c = np.array([1, 30, 500, 999_000, 0, 7])
    n = np.array([10**6, 10**6, 10**6, 10**6, 40, 7])
    iv = em.binomial_interval(c, n, 0.95)
    with np.errstate(all="ignore"):
        lo = np.where(c > 0, special.betaincinv(c, n - c + 1, 0.025), 0.0)
        hi = np.where(c < n, special.betaincinv(c + 1, n - c, 0.975), 1.0)
    np.testing.assert_allclose(iv.low, lo, rtol=1e-8)
    np.testing.assert_allclose(iv.high, hi, rtol=1e-8)
    jf = em.binomial_interval(c, n, 0.9, method="jeffreys")
    with np.errstate(all="ignore"):
        jlo = np.where(c > 0, special.betaincinv(c + 0.5, n - c + 0.5, 0.05), 0.0)
        jhi = np.where(c < n, special.betaincinv(c + 0.5, n - c + 0.5, 0.95), 1.0)
    np.testing.assert_allclose(jf.low, jlo, rtol=1e-8)
    np.testing.assert_allclose(jf.high, jhi, rtol=1e-8)
    assert np.all(jf.high - jf.low <= iv.high - iv.low + 1e-12)  # Jeffreys is the narrower


def test_binomial_interval_bad_input():
    with pytest.raises(ValueError, match=r"`correct` has shape \(2,\) but `n` has shape \(1,\)"):
        em.binomial_interval([1, 2], [3])
    with pytest.raises(ValueError, match="`method` must be one of"):
        em.binomial_interval([1], [3], method="wald")
    with pytest.raises(ValueError, match="`correct` must satisfy"):
        em.binomial_interval([4], [3])


@given(budget=st.integers(1, 10**12), confidence=st.floats(1e-6, 1 - 1e-6))
def test_reach_threshold_is_the_least_reachable_probability(budget, confidence):
    tau = em.reach_threshold(budget, confidence)
    assert 0 < tau < 1
    # (1 - tau)^N = 1 - confidence, in logs
    assert budget * math.log1p(-tau) == pytest.approx(math.log1p(-confidence), rel=1e-12)


def test_reach_threshold_bad_input():
    with pytest.raises(ValueError, match="`budget` must be a whole number >= 1"):
        em.reach_threshold(0)
    with pytest.raises(ValueError, match="`budget` must be a whole number >= 1"):
        em.reach_threshold(2.5)
    with pytest.raises(ValueError, match="above the limit"):
        em.reach_threshold(1e13)
    with pytest.raises(ValueError, match="`confidence` must lie strictly between 0 and 1"):
        em.reach_threshold(4, 0.0)


# ----------------------------------------------------------------------------- diagnose
def test_diagnose_verdicts_on_constructed_cases():
    # budget 4, confidence 0.5: tau = 1 - 0.5^(1/4) = 0.159; n = 400 makes the intervals tight
    names = ["elicit", "create", "lost", "both-miss", "both-reach-lower", "straddle", "t-straddle"]
    n = np.full(7, 400)
    b = em.Counts(n, [200, 0, 200, 4, 300, 64, 200], prompts=names)
    t = em.Counts(n, [300, 200, 0, 8, 250, 300, 64], prompts=names)
    d = em.diagnose(b, t, budget=4)
    assert d.threshold == pytest.approx(1 - 0.5**0.25, rel=1e-14)
    assert d.verdict.tolist() == [
        "elicitation",
        "creation",
        "lost",
        "unchanged",
        "unchanged",
        "undetermined",
        "undetermined",
    ]
    assert d.counts == {
        "elicitation": 1,
        "creation": 1,
        "lost": 1,
        "unchanged": 2,
        "undetermined": 2,
    }
    assert d.created_fraction == pytest.approx(1 / 7)
    # created interval: CP lower of 1/7; upper of (1 + 1)/7 (the base straddles on prompt 5 and
    # the trained model surely reaches it: it could be creation)
    assert d.created_low == pytest.approx(float(em.binomial_interval([1], [7]).low[0]))
    assert d.created_high == pytest.approx(float(em.binomial_interval([2], [7]).high[0]))
    iv = em.binomial_interval(b, None)
    np.testing.assert_allclose(d.base.low, iv.low)
    assert d.prompts == tuple(names) and d.budget == 4


def test_diagnose_verdict_depends_on_the_budget():
    # base solves 1 in 100: unreachable at budget 8, reachable at budget 1000
    b = em.Counts([20_000], [200])
    t = em.Counts([20_000], [10_000])
    assert em.diagnose(b, t, budget=8).verdict.tolist() == ["creation"]
    assert em.diagnose(b, t, budget=1000).verdict.tolist() == ["elicitation"]
    assert em.diagnose(b, t, budget=8, method="jeffreys").verdict.tolist() == ["creation"]


def test_diagnose_bad_input():
    c = em.Counts([4], [1])
    with pytest.raises(ValueError, match="`budget` must be a whole number >= 1"):
        em.diagnose(c, c, 0)
    with pytest.raises(ValueError, match="`level` must lie strictly between"):
        em.diagnose(c, c, 4, level=1.5)
    with pytest.raises(ValueError, match="`method` must be one of"):
        em.diagnose(c, c, 4, method="exact")
    with pytest.raises(TypeError, match="`trained` must be freeenergy.empirical.Counts"):
        em.diagnose(c, [1], 4)


# ----------------------------------------------------------------------------- answers
def test_answer_stats_good_turing_and_entropy():
    s = em.Samples(
        [0] * 6 + [1] * 3,
        [True, True, True, False, False, False, False, False, False],
        answer=["42", "42", "42", "41", "7", "7", "x", "y", "z"],
    )
    st_ = em.answer_stats(em.Counts.from_samples(["p", "q"], s))
    assert st_.answers[0] == {"42": 3, "41": 1, "7": 2}
    assert st_.accepted == (frozenset({"42"}), frozenset())
    assert st_.num_distinct.tolist() == [3, 3] and st_.singletons.tolist() == [1, 3]
    np.testing.assert_allclose(st_.missing_mass, [1 / 6, 1.0])
    h0 = -(0.5 * math.log(0.5) + (1 / 6) * math.log(1 / 6) + (1 / 3) * math.log(1 / 3))
    np.testing.assert_allclose(st_.entropy, [h0, math.log(3)], rtol=1e-14)
    one = em.answer_stats(em.Counts.from_samples(["p"], em.Samples([0, 0], [1, 1], ["a", "a"])))
    assert one.entropy.tolist() == [0.0] and one.missing_mass.tolist() == [0.0]


def test_good_turing_is_unbiased_for_the_missing_mass_of_n_minus_1_draws():
    # Exact expectation over every sample of size n from a 3-answer distribution.
    import itertools

    probs = {"a": 0.6, "b": 0.3, "c": 0.1}
    n = 5
    gt = 0.0
    missing = 0.0
    for seq in itertools.product(probs, repeat=n):
        w = math.prod(probs[a] for a in seq)
        s = em.Samples([0] * n, [False] * n, answer=list(seq))
        gt += w * float(em.answer_stats(em.Counts.from_samples(["q"], s)).missing_mass[0])
        seen = set(seq[:-1])
        missing += w * sum(p for a, p in probs.items() if a not in seen)
    assert gt == pytest.approx(missing, rel=1e-12)


def test_answer_support_change_at_a_threshold():
    b = em.Counts.from_samples(
        ["q", "r"],
        em.Samples([0] * 4 + [1] * 2, [1, 0, 0, 0, 0, 0], ["7", "3", "3", "9", "a", "b"]),
    )
    t = em.Counts.from_samples(
        ["r", "q"],
        em.Samples([1] * 4 + [0] * 2, [1, 1, 1, 0, 0, 1], ["7", "7", "7", "2", "a", "c"]),
    )
    c = em.answer_support_change(b, t, epsilon=0.25)
    # q: base {7, 3, 9}, trained {7, 2}; r: base {a, b}, trained {a, c}
    assert c.both.tolist() == [1, 1]
    assert c.base_only.tolist() == [2, 1] and c.trained_only.tolist() == [1, 1]
    # accepted answers: q: {7}; r: {c}
    assert c.correct_both.tolist() == [1, 0] and c.correct_trained_only.tolist() == [0, 1]
    assert c.correct_base_only.tolist() == [0, 0]
    c2 = em.answer_support_change(b, t, epsilon=0.5)  # q: base {3}, trained {7}
    assert c2.both.tolist() == [0, 1] and c2.base_only.tolist() == [1, 1]
    with pytest.raises(ValueError, match="`base` carries no answers"):
        em.answer_support_change(em.Counts([4], [1]), t, 0.5)
    with pytest.raises(ValueError, match="`epsilon` must lie in"):
        em.answer_support_change(b, t, 0.0)


# ----------------------------------------------------------------------------- KL
def test_bernoulli_kl_against_the_formula_and_edges():
    for t, p in [(0.3, 0.1), (0.1, 0.3), (0.5, 0.5), (0.999, 0.001)]:
        want = t * math.log(t / p) + (1 - t) * math.log((1 - t) / (1 - p))
        assert float(em.bernoulli_kl(t, p)) == pytest.approx(want, rel=1e-13)
    assert float(em.bernoulli_kl(0.0, 0.25)) == pytest.approx(-math.log(0.75))
    assert float(em.bernoulli_kl(1.0, 0.25)) == pytest.approx(-math.log(0.25))
    assert float(em.bernoulli_kl(0.5, 0.0)) == math.inf
    assert float(em.bernoulli_kl(0.0, 0.0)) == 0.0
    with pytest.raises(ValueError, match="`t` must hold probabilities"):
        em.bernoulli_kl(1.5, 0.5)


def test_kl_estimate_against_direct_formulas():
    lb = np.array([-2.0, -1.0, -3.0, -0.5, -1.2])
    lt = np.array([-1.0, -1.5, -1.0, -0.7, -1.0])
    s = em.Samples([0, 0, 0, 1, 1], [True, False, True, False, True], None, lb, lt)
    trained = em.Counts.from_samples(["a", "b"], s)
    base = em.Counts([10, 10], [1, 5], prompts=["b", "a"])  # aligned by id
    est = em.kl_estimate(base, trained)
    r = lb - lt
    k1, k3 = -r, np.expm1(r) - r
    for j, rows in enumerate([slice(3, 5), slice(0, 3)]):  # base order: b, a
        assert est.per_prompt_k1[j] == pytest.approx(k1[rows].mean(), rel=1e-14)
        assert est.per_prompt_k3[j] == pytest.approx(k3[rows].mean(), rel=1e-14)
        m = rows.stop - rows.start
        assert est.per_prompt_k1_se[j] == pytest.approx(k1[rows].std(ddof=1) / math.sqrt(m))
        assert est.per_prompt_k3_se[j] == pytest.approx(k3[rows].std(ddof=1) / math.sqrt(m))
    means = est.per_prompt_k3
    assert est.k3 == pytest.approx(means.mean()) and est.k3_se == pytest.approx(
        means.std(ddof=1) / math.sqrt(2)
    )
    # base order is (b, a): base rates 0.1 for b, 0.5 for a; trained a: 2/3, b: 1/2
    least = [float(em.bernoulli_kl(2 / 3, 0.5)), float(em.bernoulli_kl(0.5, 0.1))]
    np.testing.assert_allclose(est.per_prompt_least_kl, least[::-1], rtol=1e-13)
    assert est.prompts == ("b", "a")
    np.testing.assert_allclose(est.per_prompt_k1, [k1[3:].mean(), k1[:3].mean()])
    assert est.efficiency == pytest.approx(np.mean(least) / est.k3)
    assert est.num_samples.tolist() == [2, 3]


def test_kl_estimates_are_unbiased_on_an_explicit_model():
    rng = np.random.default_rng(0)
    logp0 = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    logq = np.log(np.array([0.2, 0.3, 0.3, 0.2]))
    exact = float(fe.kl(logq, logp0))
    m, p = 400, 50
    y = rng.choice(4, size=(p, m), p=np.exp(logq))
    s = em.Samples(
        np.repeat(np.arange(p), m), (y >= 2).ravel(), None, logp0[y].ravel(), logq[y].ravel()
    )
    trained = em.Counts.from_samples(list(range(p)), s)
    est = em.kl_estimate(em.Counts(np.full(p, m), np.full(p, m // 5)), trained)
    assert abs(est.k1 - exact) < 4 * est.k1_se
    assert abs(est.k3 - exact) < 4 * est.k3_se
    # the success mass moves 0.2 -> 0.5 at least costs d(0.5 || 0.2) <= KL (T6)
    assert float(em.bernoulli_kl(0.5, 0.2)) <= exact


def test_kl_estimate_infinities_and_errors():
    s = em.Samples([0, 0], [True, False], None, [-np.inf, -1.0], [-1.0, -1.0])
    trained = em.Counts.from_samples(["a"], s)
    est = em.kl_estimate(em.Counts([2], [0]), trained)
    assert est.k1 == math.inf and est.k3 == math.inf and est.per_prompt_least_kl[0] == math.inf
    assert not np.isnan(est.per_prompt_k1).any()
    single = em.Counts.from_samples(["a"], em.Samples([0], [True], None, [-1.0], [-0.5]))
    assert em.kl_estimate(em.Counts([3], [1]), single).per_prompt_k1_se[0] == math.inf
    with pytest.raises(ValueError, match="`trained` carries no log-probabilities"):
        em.kl_estimate(em.Counts([2], [1]), em.Counts([2], [1]))
    bad = em.Counts.from_samples(["a"], em.Samples([0], [True], None, [-1.0], [-np.inf]))
    with pytest.raises(ValueError, match="logprob_trained` is -inf at sample 0"):
        em.kl_estimate(em.Counts([2], [1]), bad)


# ----------------------------------------------------------------------------- load
def write(tmp_path, name, text, encoding="utf-8"):
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return p


def test_load_csv(tmp_path):
    c = em.load(write(tmp_path, "a.csv", "prompt,n,correct\nq1,8,3\nq2, 8 ,0\n\n"))
    assert c.prompts == ("q1", "q2") and c.n.tolist() == [8, 8] and c.correct.tolist() == [3, 0]
    # BOM, CRLF, reordered columns
    c2 = em.load(write(tmp_path, "b.csv", "\ufeffcorrect,prompt,n\r\n3,q1,8\r\n0,q2,8\r\n"))
    assert c2.prompts == c.prompts and c2.correct.tolist() == [3, 0]
    c3 = em.load(write(tmp_path, "c.txt", "prompt,n,correct\nq,2,1\n"), format="csv")
    assert c3.n.tolist() == [2]


@pytest.mark.parametrize(
    "text,match",
    [
        ("", r"the file is empty"),
        ("prompt,n,correct\n", r"no data rows"),
        ("prompt,samples,correct\nq,2,1\n", r"line 1: the header must name"),
        (
            "prompt,n,correct\nq1,8,3\nq1,8,2\n",
            r'line 3: prompt "q1" appears again \(first on line 2\)',
        ),
        ("prompt,n,correct\nq1,8,x\n", r'line 2: field "correct" must be a whole number, got "x"'),
        ("prompt,n,correct\nq1,8,-1\n", r'line 2: field "correct" must be between 0 and n = 8'),
        ("prompt,n,correct\nq1,8,9\n", r'line 2: field "correct" must be between 0 and n = 8'),
        ("prompt,n,correct\nq1,0,0\n", r'line 2: field "n" must be between 1'),
        ("prompt,n,correct\nq1,8\n", r"line 2: expected 3 fields"),
        ("prompt,n,correct\n,8,1\n", r'line 2: field "prompt" is empty'),
    ],
)
def test_load_bad_csv(tmp_path, text, match):
    path = write(tmp_path, "bad.csv", text)
    with pytest.raises(ValueError, match=match) as info:
        em.load(path)
    assert str(path) in str(info.value)


def test_load_jsonl_with_answers_and_logprobs(tmp_path):
    lines = [
        '{"prompt": "q1", "correct": true, "answer": "4", "logprob_base": -1.5, '
        '"logprob_trained": -0.5, "extra": 1}',
        '{"prompt": 7, "correct": false, "answer": "5", "logprob_base": -Infinity, '
        '"logprob_trained": -2}',
        "",
        '{"prompt": "q1", "correct": false, "answer": "3", "logprob_base": -2.0, '
        '"logprob_trained": -3.0}',
    ]
    c = em.load(write(tmp_path, "s.jsonl", "\ufeff" + "\r\n".join(lines) + "\r\n"))
    assert c.prompts == ("q1", 7) and c.n.tolist() == [2, 1] and c.correct.tolist() == [1, 0]
    s = c.samples
    assert s.prompt_index.tolist() == [0, 1, 0] and s.answer == ("4", "5", "3")
    assert s.logprob_base.tolist() == [-1.5, -np.inf, -2.0]
    assert s.logprob_trained.tolist() == [-0.5, -2.0, -3.0]
    plain = em.load(write(tmp_path, "p.ndjson", '{"prompt": "a", "correct": true}\n'))
    assert plain.samples.answer is None and plain.samples.logprob_base is None


@pytest.mark.parametrize(
    "text,match",
    [
        ("", r"no samples"),
        ("\n\n", r"no samples"),
        (
            '{"prompt": "a", "correct": true}\n{"prompt": "a", "correct": tru}\n',
            r"line 2: not valid JSON",
        ),
        ('{"correct": true}\n', r'line 1: missing field "prompt"'),
        ('{"prompt": "a"}\n', r'line 1: missing field "correct"'),
        (
            '{"prompt": "a", "correct": "yes"}\n',
            r'line 1: field "correct" must be true or false, got "yes"',
        ),
        (
            '{"prompt": "a", "correct": 1}\n',
            r'line 1: field "correct" must be true or false, got 1',
        ),
        (
            '{"prompt": true, "correct": true}\n',
            r'line 1: field "prompt" must be a string or an integer',
        ),
        ('{"prompt": "", "correct": true}\n', r'line 1: field "prompt" is empty'),
        ("[1, 2]\n", r"line 1: expected a JSON object"),
        (
            '{"prompt": "a", "correct": true, "answer": 4}\n',
            r'line 1: field "answer" must be a string',
        ),
        (
            '{"prompt": "a", "correct": true, "logprob_base": 0.3}\n',
            r'line 1: field "logprob_base" must be a log-probability',
        ),
        (
            '{"prompt": "a", "correct": true, "logprob_trained": "x"}\n',
            r'line 1: field "logprob_trained" must be a number, got "x"',
        ),
        (
            '{"prompt": "a", "correct": true, "answer": "1"}\n{"prompt": "a", "correct": true}\n',
            r'line 2: field "answer" is missing here but present on line 1',
        ),
        (
            '{"prompt": "a", "correct": true}\n{"prompt": "a", "correct": true, "answer": "1"}\n',
            r'line 2: field "answer" is present here but missing on line 1',
        ),
    ],
)
def test_load_bad_jsonl(tmp_path, text, match):
    path = write(tmp_path, "runs.jsonl", text)
    with pytest.raises(ValueError, match=match) as info:
        em.load(path)
    assert str(path) in str(info.value)


def test_load_file_problems(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="cannot tell the format"):
        em.load(write(tmp_path, "x.txt", "prompt,n,correct\n"))
    with pytest.raises(ValueError, match='`format` must be "csv" or "jsonl"'):
        em.load(write(tmp_path, "x.csv", "prompt,n,correct\n"), format="xml")
    with pytest.raises(ValueError, match="no such file"):
        em.load(tmp_path / "missing.csv")
    with pytest.raises(TypeError, match="`path` must be a file path"):
        em.load(3)
    with pytest.raises(ValueError, match="line 2: the file is not valid UTF-8"):
        p = tmp_path / "bin.csv"
        p.write_bytes(b"prompt,n,correct\n\xff\xfe,1,1\n")
        em.load(p)
    big = write(
        tmp_path, "big.csv", "prompt,n,correct\n" + "".join(f"q{i},2,1\n" for i in range(50))
    )
    monkeypatch.setattr(_data, "MAX_FILE_BYTES", 100)
    with pytest.raises(ValueError, match="above the limit of 100"):
        em.load(big)
    monkeypatch.setattr(_data, "MAX_FILE_BYTES", 1 << 30)
    monkeypatch.setattr(_data, "MAX_RECORDS", 10)
    with pytest.raises(ValueError, match="above the limit of 10 records"):
        em.load(big)
    lines = "".join('{"prompt": "a", "correct": true}\n' for _ in range(10)) + "\n"
    with pytest.raises(ValueError, match="line 10: more than 9 samples"):
        monkeypatch.setattr(_data, "MAX_RECORDS", 9)
        em.load(write(tmp_path, "many.jsonl", lines[:-1]))


def test_loaded_files_feed_the_estimators(tmp_path):
    b = em.load(write(tmp_path, "b.csv", "prompt,n,correct\nx,4,1\ny,4,0\n"))
    rows = [("y", True), ("y", True), ("x", False), ("x", True), ("y", False), ("x", False)]
    t = em.load(
        write(
            tmp_path,
            "t.jsonl",
            "".join(f'{{"prompt": "{p}", "correct": {str(ok).lower()}}}\n' for p, ok in rows),
        )
    )
    s = em.support_change(b, t, budget=3)
    # x: base 1/4 -> pass@3 = 3/4 reachable; trained 1/3 -> pass@3 = 1; y: base 0, trained 2/3
    assert (s.both, s.base_only, s.trained_only, s.neither) == (1, 0, 1, 0)


# ----------------------------------------------------------------------------- doctests
@pytest.mark.parametrize("mod", [_data, _passk, _verdict, _answers])
def test_docstring_examples_run(mod):
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted > 0 and result.failed == 0


# ----------------------------------------------------------------------------- alignment, files
def test_alignment_by_string_form_and_supersets(tmp_path):
    b = em.load(write(tmp_path, "b.csv", "prompt,n,correct\n7,4,1\n8,4,0\n"))
    t = em.load(
        write(
            tmp_path, "t.jsonl", '{"prompt": 8, "correct": true}\n{"prompt": 7, "correct": false}\n'
        )
    )
    _, aligned = em.align(b, t)
    assert aligned.prompts == ("7", "8") and aligned.correct.tolist() == [0, 1]
    superset = em.Counts([4, 4, 4], [1, 0, 2], prompts=["7", "8", "9"])
    with pytest.raises(ValueError, match=r"1 only in `trained` \(e.g. \['9'\]\)"):
        em.align(b, superset)
    ambiguous = em.Counts([4, 4], [1, 0], prompts=[7, "7"])
    with pytest.raises(ValueError, match="must cover the same prompts"):
        em.align(em.Counts([4, 4], [1, 0], prompts=["7", "x"]), ambiguous)


def test_answer_support_change_aligns_by_id():
    b = em.Counts.from_samples(["q", "r"], em.Samples([0, 1], [1, 0], ["7", "a"]))
    t = em.Counts.from_samples(["r", "q"], em.Samples([0, 1], [0, 1], ["a", "7"]))
    c = em.answer_support_change(b, t, epsilon=1.0)
    assert c.both.tolist() == [1, 1] and c.base_only.tolist() == [0, 0]


@given(
    n=st.lists(st.integers(1, 10**6), min_size=1, max_size=20),
    fracs=st.lists(st.floats(0, 1), min_size=20, max_size=20),
)
def test_csv_round_trip(tmp_path_factory, n, fracs):
    c = [round(f * m) for f, m in zip(fracs, n, strict=False)]
    path = tmp_path_factory.mktemp("rt") / "r.csv"
    rows = "".join(f"p{i},{m},{k}\n" for i, (m, k) in enumerate(zip(n, c, strict=True)))
    path.write_text("prompt,n,correct\n" + rows)
    loaded = em.load(path)
    assert loaded.n.tolist() == n and loaded.correct.tolist() == c
    assert loaded.prompts == tuple(f"p{i}" for i in range(len(n)))


@given(records=st.lists(st.tuples(st.integers(0, 6), st.booleans()), min_size=1, max_size=40))
def test_jsonl_aggregates_samples_per_prompt_in_first_seen_order(tmp_path_factory, records):
    path = tmp_path_factory.mktemp("rt") / "r.jsonl"
    path.write_text(
        "".join(f'{{"prompt": "p{p}", "correct": {str(ok).lower()}}}\n' for p, ok in records)
    )
    loaded = em.load(path)
    order = list(dict.fromkeys(f"p{p}" for p, _ in records))
    assert loaded.prompts == tuple(order)
    for i, pid in enumerate(order):
        mine = [ok for p, ok in records if f"p{p}" == pid]
        assert loaded.n[i] == len(mine) and loaded.correct[i] == sum(mine)


def test_size_limits_and_bad_probabilities(monkeypatch):
    monkeypatch.setattr(_passk, "MAX_ENTRIES", 100)
    c = em.Counts(np.full(30, 8), np.zeros(30))
    with pytest.raises(ValueError, match="above the limit of 100; use a coarser k grid"):
        em.pass_at_k(c, np.arange(1, 5))
    small = em.Counts([8, 8], [1, 2])
    with pytest.raises(ValueError, match=r"`num_bootstrap` = 60 resamples × 2 values of k"):
        em.pass_at_k_curve(small, [1, 2], num_bootstrap=60, key=jax.random.key(0))
    with pytest.raises(ValueError, match="indices is above the limit"):
        em.bootstrap_indices(jax.random.key(0), 100, 20)
    many = em.Counts(np.full(30, 8), np.zeros(30))
    with pytest.raises(ValueError, match=r"40 resamples × 30 prompts is above the limit of 1000"):
        em.pass_at_k_curve(many, [1], num_bootstrap=40, key=jax.random.key(0))
    with pytest.raises(TypeError, match="`p` must be probabilities"):
        em.bernoulli_kl(0.5, "x")
    with pytest.raises(ValueError, match="must broadcast"):
        em.bernoulli_kl([0.1, 0.2], [0.1, 0.2, 0.3])


def test_identical_models_have_a_zero_difference_and_no_change():
    c = em.Counts([16, 16, 16], [0, 5, 16])
    d = em.paired_difference(c, c, [1, 4, 16], num_bootstrap=50, key=jax.random.key(0))
    assert np.all(np.asarray(d.mean) == 0) and np.all(np.asarray(d.low) == 0)
    assert np.all(np.asarray(d.high) == 0)
    s = em.support_change(c, c, 16)
    assert (s.base_only, s.trained_only, s.nscr) == (0, 0, 0.0)
    v = em.diagnose(c, c, 16).verdict.tolist()
    assert "creation" not in v and "lost" not in v and "elicitation" not in v


def test_interval_solver_compiles_once_for_any_number_of_pairs():
    em.binomial_interval([1], [5])
    before = _verdict._beta_quantile._cache_size()
    for n in (7, 40, 300, 1000):
        em.binomial_interval(np.arange(n + 1), np.full(n + 1, n))
    assert _verdict._beta_quantile._cache_size() == before


@given(n=st.integers(1, 3000), c_frac=st.floats(0, 1), k_frac=st.floats(0, 1))
def test_both_table_algorithms_match_exact_rationals(n, c_frac, k_frac):
    # the cumulative sum over k (small grids) and the min(k, c)-term sum (any grid)
    c = round(c_frac * n)
    k = 1 + round(k_frac * (n - 1))
    want = float(exact_pass(n, c, k))
    counts = em.Counts([n], [c])
    cumsum = _passk._table(counts, np.array([k]))[0, 0]
    direct = 0.0 - math.expm1(float(_passk._log_fail_ratio(np.array(n), np.array(c), np.array(k))))
    assert cumsum == pytest.approx(want, rel=1e-12, abs=0)
    assert direct == pytest.approx(want, rel=1e-12, abs=0)


def cp_by_bisection(c: int, n: int, level: float) -> tuple[float, float]:
    """Clopper–Pearson from the binomial tails (math.comb), by bisection in Python floats."""
    a = (1 - level) / 2

    def solve(f):  # f increasing in p, root in [0, 1]
        lo, hi = 0.0, 1.0
        for _ in range(100):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if f(mid) < 0 else (lo, mid)
        return 0.5 * (lo + hi)

    low = 0.0 if c == 0 else solve(lambda p: binom_tail_ge(n, c, p) - a)
    high = 1.0 if c == n else solve(lambda p: a - binom_tail_le(n, c, p))
    return low, high


@given(
    n=st.integers(2, 30),
    cb=st.lists(st.floats(0, 1), min_size=6, max_size=6),
    ct=st.lists(st.floats(0, 1), min_size=6, max_size=6),
    budget=st.integers(1, 64),
    confidence=st.sampled_from([0.25, 0.5, 0.9]),
)
def test_diagnose_equals_the_rule_on_independent_intervals(n, cb, ct, budget, confidence):
    b = [round(f * n) for f in cb]
    t = [round(f * n) for f in ct]
    d = em.diagnose(em.Counts([n] * 6, b), em.Counts([n] * 6, t), budget, confidence)
    tau = 1 - (1 - confidence) ** (1 / budget)
    for i in range(6):
        (bl, bh), (tl, th) = cp_by_bisection(b[i], n, 0.95), cp_by_bisection(t[i], n, 0.95)
        if min(abs(x - tau) for x in (bl, bh, tl, th)) < 1e-9:
            continue  # a bound on the threshold itself: rounding decides
        b_in, b_out, t_in, t_out = bl >= tau, bh < tau, tl >= tau, th < tau
        if not ((b_in or b_out) and (t_in or t_out)):
            want = "undetermined"
        elif b_out and t_in:
            want = "creation"
        elif b_in and t_out:
            want = "lost"
        elif b_in and t_in and t[i] > b[i]:
            want = "elicitation"
        else:
            want = "unchanged"
        assert d.verdict[i] == want


def test_exact_parts_stay_float64_when_jax_runs_float32():
    with jax.enable_x64(False):
        c = em.Counts([10**6, 10**6], [1, 30])
        assert em.pass_at_k(c, 1).dtype == np.float32
        iv = em.binomial_interval(c, None)
        curve = em.pass_at_k_curve(c, [1, 2], num_bootstrap=20, key=jax.random.key(0))
        assert curve.low.dtype == np.float32
    # c = 1 of 1e6: low = the 2.5% quantile of Beta(1, 1e6) = 1 - 0.975^(1/1e6), below float32's
    # resolution of 1 - x
    assert iv.low[0] == pytest.approx(-math.expm1(math.log(0.975) / 10**6), rel=1e-8)


def test_public_functions_have_examples():
    records = {
        "Curve",
        "Difference",
        "Crossover",
        "Interval",
        "SupportChange",
        "EmpiricalDiagnosis",
        "AnswerStats",
        "AnswerSupportChange",
        "KLEstimate",
    }
    for name in em.__all__:
        obj = getattr(em, name)
        if callable(obj) and name not in records:
            assert ">>>" in (obj.__doc__ or ""), name
        elif name in records:
            assert obj.__doc__ and len(obj.__doc__) > 100, name


def test_wilson_interval_closed_form_and_exact_coverage_near_one():
    z = 1.959963984540054
    for m, t in [(0.3, 50), (0.0, 10), (1.0, 100), (0.988, 100)]:
        center = (m + z * z / (2 * t)) / (1 + z * z / t)
        half = z / (1 + z * z / t) * math.sqrt(m * (1 - m) / t + z * z / (4 * t * t))
        lo, hi = em.wilson_interval(m, t)
        assert float(lo) == pytest.approx(max(center - half, 0), abs=1e-14)
        assert float(hi) == pytest.approx(min(center + half, 1), abs=1e-14)
    # k = n: each prompt's estimate is 0 or 1, so the pooled mean is Binomial(P, pi) / P.
    # Exact coverage over that binomial at pass@k = 0.988 (where all 100 prompts succeed 30% of
    # the time, and a percentile bootstrap then gives [1, 1]):
    p, pi = 100, 0.988
    cover = 0.0
    for x in range(p + 1):
        lo, hi = em.wilson_interval(x / p, p)
        if lo <= pi <= hi:
            cover += binom_pmf(p, pi, x)
    assert cover > 0.9
    assert binom_pmf(p, pi, p) > 0.29
    # through the curve: n = k = 16 per prompt, all succeeded
    curve = em.pass_at_k_curve(em.Counts([16] * p, [3] * p), [1, 16], interval="wilson")
    assert curve.interval == "wilson" and curve.num_bootstrap == 0
    assert float(curve.low[1]) == pytest.approx(p / (p + z * z), rel=1e-12)
    assert float(curve.high[1]) == 1.0


def test_wilson_bad_input():
    c = em.Counts([4, 4], [1, 2])
    with pytest.raises(ValueError, match='`interval` must be "percentile" or "wilson"'):
        em.pass_at_k_curve(c, 1, interval="bca")
    with pytest.raises(ValueError, match="pass `num_bootstrap=0`"):
        em.pass_at_k_curve(c, 1, interval="wilson", num_bootstrap=10, key=jax.random.key(0))
    with pytest.raises(ValueError, match="`mean` must hold proportions"):
        em.wilson_interval(1.5, 10)
    with pytest.raises(ValueError, match="`trials` must be an integer >= 1"):
        em.wilson_interval(0.5, 0)
    with pytest.raises(ValueError, match="`level` must lie strictly between"):
        em.wilson_interval(0.5, 10, level=1.0)
