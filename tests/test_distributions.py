"""distributions.py: normalize, kl, entropy, sample and decode against independent computations.

Closed forms for KL and entropy, a plain NumPy re-implementation of decoding with the Hugging
Face semantics (temperature, then top-k keeping ties at the k-th value, then top-p keeping the
smallest most-probable set reaching p, each step renormalizing), and sampling frequencies
against exact probabilities with a stated bound under fixed keys.
"""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from oracles import np_lse, np_normalize

import freeenergy as fe

INF = np.inf
N = 10


# ----------------------------------------------------------------------------- normalize
@given(st.lists(st.one_of(st.floats(-50, 50), st.just(-INF)), min_size=N, max_size=N))
def test_normalize_is_log_softmax(logits):
    logits = np.array(logits)
    assume(np.any(logits > -INF))
    out = np.asarray(fe.normalize(logits))
    np.testing.assert_array_equal(out == -INF, logits == -INF)
    fin = logits > -INF
    np.testing.assert_allclose(out[fin], (logits - np_lse(logits))[fin], rtol=0, atol=1e-12)
    assert math.fsum(np.exp(out)) == pytest.approx(1.0, abs=1e-13)
    np.testing.assert_allclose(fe.normalize(out), out, atol=1e-13)  # idempotent


def test_normalize_batched_and_offsets():
    logits = np.array([[1.0, 2.0, -INF], [1e4, 1e4 + 1, 1e4 - 2]])
    out = np.asarray(fe.normalize(logits))
    np.testing.assert_allclose(out[0, :2], [-math.log1p(math.e), -math.log1p(1 / math.e)])
    assert out[0, 2] == -INF
    np.testing.assert_allclose(out[1], np_normalize(np.array([0.0, 1.0, -2.0])), atol=1e-12)


# ----------------------------------------------------------------------------- kl
def bernoulli_kl(a, b):
    return a * math.log(a / b) + (1 - a) * math.log((1 - a) / (1 - b))


@given(st.floats(1e-6, 1 - 1e-6), st.floats(1e-6, 1 - 1e-6))
def test_kl_bernoulli_closed_form(a, b):
    logq = np.log([a, 1 - a])
    logp = np.log([b, 1 - b])
    assert float(fe.kl(logq, logp)) == pytest.approx(bernoulli_kl(a, b), rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("k", [1, 3, 7])
def test_kl_uniform_subset(k):
    """KL(uniform on k of n || uniform on n) = log(n / k); the reverse direction is +inf."""
    n = 7
    sub = np.where(np.arange(n) < k, -math.log(k), -INF)
    full = np.full(n, -math.log(n))
    assert float(fe.kl(sub, full)) == pytest.approx(math.log(n / k), abs=1e-14)
    assert float(fe.kl(full, sub)) == (INF if k < n else 0.0)


@given(st.data())
def test_kl_gibbs_inequality(data):
    draw = st.lists(st.one_of(st.floats(-20, 3), st.just(-INF)), min_size=N, max_size=N)
    q = np.array(data.draw(draw))
    p = np.array(data.draw(draw))
    assume(np.any(q > -INF) and np.any(p > -INF))
    logq, logp = np_normalize(q), np_normalize(p)
    value = float(fe.kl(logq, logp))
    pos = logq > -INF
    if np.any(pos & (logp == -INF)):
        assert value == INF
    else:
        expected = math.fsum(np.exp(logq[pos]) * (logq[pos] - logp[pos]))
        assert value == pytest.approx(expected, rel=1e-10, abs=1e-13)
        assert value >= -1e-13
    assert abs(float(fe.kl(logq, logq))) <= 1e-14


def test_kl_batched_broadcast():
    logp = np.log([0.5, 0.25, 0.25])
    logq = np.log([[0.5, 0.25, 0.25], [0.25, 0.25, 0.5], [1.0, 1e-300, 1e-300]])
    logq[2, 1:] = -INF
    out = np.asarray(fe.kl(logq, logp))
    np.testing.assert_allclose(
        out, [0.0, 0.25 * math.log(0.5) + 0.5 * math.log(2), math.log(2)], atol=1e-15
    )


# ----------------------------------------------------------------------------- entropy
@pytest.mark.parametrize("n", [1, 2, 5, 40])
def test_entropy_uniform(n):
    assert float(fe.entropy(np.full(n, -math.log(n)))) == pytest.approx(math.log(n), abs=1e-13)


@given(st.floats(0.0, 1.0))
def test_entropy_bernoulli(a):
    with np.errstate(divide="ignore"):
        logp = np.log([a, 1 - a])
    expected = -sum(x * math.log(x) for x in (a, 1 - a) if x > 0)
    assert float(fe.entropy(logp)) == pytest.approx(expected, abs=1e-15)


def test_entropy_geometric_truncated():
    """p(i) ∝ r^i, i < n: H = log Z - E[i] log r, with Z and E[i] in closed form."""
    r, n = 0.6, 30
    z = (1 - r**n) / (1 - r)
    mean = r / (1 - r) - n * r**n / (1 - r**n)
    logp = np.arange(n) * math.log(r) - math.log(z)
    expected = math.log(z) - mean * math.log(r)
    assert float(fe.entropy(logp)) == pytest.approx(expected, rel=1e-13)
    batch = np.stack([logp, np.where(np.arange(n) == 0, 0.0, -INF)])
    np.testing.assert_allclose(fe.entropy(batch), [expected, 0.0], rtol=1e-13)


# ----------------------------------------------------------------------------- sample
def test_sample_frequencies_match_probabilities():
    """Counts of 40 000 draws (fixed key) are within 5 standard deviations of M p(y)."""
    p = np.array([0.4, 0.25, 0.0, 0.15, 0.1, 0.06, 0.04, 0.0])
    with np.errstate(divide="ignore"):
        logp = np.log(p)
    m = 40_000
    draws = np.asarray(fe.sample(jax.random.key(1234), logp, m))
    assert draws.shape == (m,) and draws.dtype.kind == "i"
    counts = np.bincount(draws, minlength=len(p))
    sd = np.sqrt(m * p * (1 - p))
    assert np.all(np.abs(counts - m * p) <= 5 * sd), (counts, m * p)
    assert np.all(counts[p == 0] == 0)  # zero-mass behaviors are never drawn


def test_sample_batched_deterministic_and_independent_rows():
    with np.errstate(divide="ignore"):
        logp = np.log(np.array([[0.9, 0.1, 0.0, 0.0], [0.0, 0.0, 0.5, 0.5], [0.25] * 4]))
    key = jax.random.key(7)
    a = np.asarray(fe.sample(key, logp, 2000))
    b = np.asarray(fe.sample(key, logp, 2000))
    assert a.shape == (3, 2000)
    np.testing.assert_array_equal(a, b)  # same key, same draws
    assert not np.array_equal(a, np.asarray(fe.sample(jax.random.key(8), logp, 2000)))
    assert set(np.unique(a[0])) <= {0, 1} and set(np.unique(a[1])) <= {2, 3}
    for row, probs in zip(a, np.exp(logp), strict=True):
        freq = np.bincount(row, minlength=4) / 2000
        assert np.all(np.abs(freq - probs) <= 5 * np.sqrt(probs * (1 - probs) / 2000) + 1e-12)


# ----------------------------------------------------------------------------- decode
def np_decode(logp, temperature, top_k, top_p):
    """Reference decoding rule, written from the Hugging Face warpers' definitions."""
    x = np.asarray(logp, dtype=np.float64)
    if temperature == 0:
        x = np.where(x == np.max(x), 0.0, -INF)
    else:
        x = x / temperature
    x = np_normalize(x)
    if top_k is not None:
        kth = np.sort(x)[::-1][min(top_k, len(x)) - 1]
        x = np_normalize(np.where(x >= kth, x, -INF))
    if top_p is not None and top_p < 1:
        order = np.argsort(-x, kind="stable")
        probs = np.exp(x[order])
        before = np.concatenate([[0.0], np.cumsum(probs)[:-1]])
        keep_sorted = (before < top_p) & (probs > 0)
        keep = np.zeros(len(x), bool)
        keep[order] = keep_sorted
        x = np_normalize(np.where(keep, x, -INF))
    return x


def _top_p_margin(x, top_p):
    """Distance of the mass ranked before each behavior from top_p (ambiguous when tiny)."""
    probs = np.sort(np.exp(x))[::-1]
    before = np.concatenate([[0.0], np.cumsum(probs)[:-1]])
    return np.min(np.abs(before - top_p))


@given(
    st.lists(
        st.one_of(
            st.integers(-4, 2).map(float), st.floats(-8, 3, allow_subnormal=False), st.just(-INF)
        ),
        min_size=N,
        max_size=N,
    ),
    st.sampled_from([0.0, 0.3, 1.0, 2.5]),
    st.sampled_from([None, 1, 2, 3, N, 50]),
    st.sampled_from([None, 0.2, 0.5, 0.9, 1.0]),
)
def test_decode_matches_reference(logits, temperature, top_k, top_p):
    logits = np.array(logits)
    assume(np.any(logits > -INF))
    if top_p is not None:
        after_k = np_decode(logits, temperature, top_k, None)
        assume(_top_p_margin(after_k, top_p) > 1e-9)
    out = np.asarray(fe.decode(logits, temperature, top_k, top_p))
    expected = np_decode(logits, temperature, top_k, top_p)
    np.testing.assert_array_equal(out == -INF, expected == -INF)
    fin = expected > -INF
    np.testing.assert_allclose(out[fin], expected[fin], atol=1e-12)
    assert np.all(out[logits == -INF] == -INF)  # never leaves the support


def test_decode_hand_cases():
    logp = np.log(np.array([0.4, 0.2, 0.2, 0.1, 0.1]))
    # top-k keeps ties at the k-th value: k = 2 keeps 0.4 and both 0.2
    np.testing.assert_allclose(np.exp(fe.decode(logp, top_k=2)), [0.5, 0.25, 0.25, 0, 0])
    # top-p = 0.5: 0.4 alone does not reach it, 0.4 + 0.2 (first by index) does
    np.testing.assert_allclose(np.exp(fe.decode(logp, top_p=0.5)), [2 / 3, 1 / 3, 0, 0, 0])
    # greedy: the most probable behavior; with ties, uniform over them
    np.testing.assert_allclose(np.exp(fe.decode(logp, 0.0)), [1, 0, 0, 0, 0])
    np.testing.assert_allclose(np.exp(fe.decode(logp[1:], 0.0)), [0.5, 0.5, 0, 0])
    # temperature 2 = square root of the probabilities, renormalized
    root = np.sqrt([0.4, 0.2, 0.2, 0.1, 0.1])
    np.testing.assert_allclose(np.exp(fe.decode(logp, 2.0)), root / root.sum(), rtol=1e-13)
    # temperature 1 with no filter is just normalization; top_p = 1 and top_k >= n change nothing
    np.testing.assert_allclose(fe.decode(logp + 7, 1.0, top_k=9, top_p=1.0), logp, atol=1e-14)


def test_decode_small_temperature_is_greedy_and_never_nan():
    logp = np.array([-1.0, -1.0, -2.0, -INF])  # unnormalized logits with a tie at the top
    for t in (1e-3, 1e-100, 1e-310):
        out = np.asarray(fe.decode(logp, t))
        np.testing.assert_allclose(np.exp(out), [0.5, 0.5, 0, 0], atol=1e-300)
    huge = np.array([1e308, 1e308, -1e308])
    np.testing.assert_allclose(np.exp(fe.decode(huge, 0.5)), [0.5, 0.5, 0.0])


def test_decode_batched_equals_loop():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(4, N)) * 2
    logits[2, :3] = -INF
    out = np.asarray(fe.decode(logits, 0.8, 4, 0.7))
    for row, expected in zip(out, logits, strict=True):
        np.testing.assert_allclose(row, fe.decode(expected, 0.8, 4, 0.7), atol=1e-14)


# ----------------------------------------------------------------------------- hardening
def test_sample_in_chunks_is_exact_and_deterministic(monkeypatch):
    """Past the noise held at once, draws are made a few at a time: same law, same key, same
    draws; the small-size path is unchanged."""
    from freeenergy import distributions

    p = np.array([0.4, 0.25, 0.0, 0.15, 0.1, 0.06, 0.04, 0.0])
    with np.errstate(divide="ignore"):
        logp = np.log(p)
    whole = np.asarray(fe.sample(jax.random.key(3), logp, 999))
    monkeypatch.setattr(distributions, "_SAMPLE_CHUNK", 8 * 64)  # 64 draws per round
    m = 40_000
    draws = np.asarray(fe.sample(jax.random.key(1234), logp, m))
    assert draws.shape == (m,)
    np.testing.assert_array_equal(draws, np.asarray(fe.sample(jax.random.key(1234), logp, m)))
    counts = np.bincount(draws, minlength=len(p))
    sd = np.sqrt(m * p * (1 - p))
    assert np.all(np.abs(counts - m * p) <= 5 * sd), (counts, m * p)
    assert np.all(counts[p == 0] == 0)
    batch = np.asarray(fe.sample(jax.random.key(5), np.stack([logp, logp[::-1]]), 1001))
    assert batch.shape == (2, 1001)
    assert np.all(p[batch[0]] > 0) and np.all(p[::-1][batch[1]] > 0)
    monkeypatch.undo()
    np.testing.assert_array_equal(whole, np.asarray(fe.sample(jax.random.key(3), logp, 999)))


@pytest.mark.parametrize("top_p,kept", [(0.75, 2), (0.5, 1), (0.25 + 0.5, 2), (1.0, 3)])
def test_decode_top_p_reached_exactly_is_inclusive(top_p, kept):
    """The kept set is the smallest whose mass reaches top_p (>=): with p = (.5, .25, .25) a
    cumulative mass exactly equal to top_p stops there."""
    logp = np.log([0.5, 0.25, 0.25])
    out = np.asarray(fe.decode(logp, top_p=top_p))
    assert int(np.sum(out > -INF)) == kept
    np.testing.assert_allclose(
        np.exp(out[:kept]), np.array([0.5, 0.25, 0.25])[:kept] / ([0.5, 0.75, 1.0][kept - 1])
    )
