"""freeenergy.expand on bad and extreme input: bounded sizes, clear errors, exact numbers.

Best-of-n is checked against exact enumeration of the n-tuples of draws (docs/theory.md, T12)
on references with masses down to e^-1000.
"""

from __future__ import annotations

import decimal
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp

import freeenergy as fe
from freeenergy import expand
from freeenergy import sequences as sq


def _examples(at_ci: int) -> int:
    """``at_ci`` examples under the ``ci`` profile, scaled with the active profile."""
    return max(1, at_ci * settings.default.max_examples // 30)


def _base():
    return sq.iid(jnp.log(jnp.array([0.5, 0.5])), 3)


# ----------------------------------------------------------------------------- best-of-n
def test_best_of_n_at_n1_is_p0_with_tiny_masses():
    logp0 = fe.normalize(jnp.array([0.0, -1000.0]))
    got = expand.best_of_n(logp0, jnp.array([0.0, 1.0]), n=1)
    np.testing.assert_allclose(np.asarray(got), np.asarray(logp0), rtol=1e-12)


def _tuples_oracle(logp0: np.ndarray, reward: np.ndarray, n: int) -> np.ndarray:
    """log q_n by listing every n-tuple of draws (first draw attaining the max wins)."""
    m = len(logp0)
    out = [[] for _ in range(m)]
    for tup in itertools.product(range(m), repeat=n):
        if any(logp0[i] == -np.inf for i in tup):
            continue
        best = max(reward[i] for i in tup)
        winner = next(i for i in tup if reward[i] == best)
        out[winner].append(sum(logp0[i] for i in tup))
    return np.array([logsumexp(v) if v else -np.inf for v in out])


@settings(max_examples=_examples(30))
@given(
    st.lists(st.sampled_from([0.0, -1.0, -40.0, -700.0, -1000.0, -np.inf]), min_size=4, max_size=4),
    st.lists(st.sampled_from([-np.inf, 0.0, 1.0, 2.0]), min_size=4, max_size=4),
    st.integers(1, 4),
)
def test_best_of_n_equals_tuple_enumeration_with_tiny_masses(logits, reward, n):
    if all(x == -np.inf for x in logits):
        logits[0] = 0.0
    logp0 = np.asarray(fe.normalize(jnp.asarray(logits)))
    reward = np.asarray(reward)
    got = np.asarray(expand.best_of_n(jnp.asarray(logp0), jnp.asarray(reward), n))
    want = _tuples_oracle(logp0, reward, n)
    assert np.array_equal(got > -np.inf, logp0 > -np.inf)  # supp(q_n) = supp(p0)
    finite = want > -np.inf
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-10, atol=1e-10)


@settings(max_examples=_examples(30))
@given(st.floats(-1000.0, -1e-3), st.integers(1, 10**12))
def test_best_of_n_binary_closed_form_with_tiny_success(log_p, n):
    """q_n(correct) = 1 - (1 - p)^n (T12), in log space for p down to e^-1000."""
    logp0 = fe.normalize(jnp.array([log_p, np.log(-np.expm1(log_p))]))
    got = expand.best_of_n(logp0, jnp.array([1.0, 0.0]), n)
    with decimal.localcontext() as ctx:  # 1200 digits: 1 - p is exact for p >= e^-1000
        ctx.prec = 1200
        p = decimal.Decimal(float(logp0[0])).exp()
        want = float((1 - (1 - p) ** n).ln())
    assert np.isfinite(float(got[0]))
    np.testing.assert_allclose(float(got[0]), want, rtol=1e-9, atol=1e-14)


def test_best_of_n_cost_refuses_counts_beyond_the_integer_type():
    with pytest.raises(ValueError, match="`n`"):
        expand.best_of_n_cost(10**19)
    assert int(expand.best_of_n_cost(2**40).samples) == 2**40


# ----------------------------------------------------------------------------- tree search
def test_tree_search_cost_is_finite_for_log_probs_of_minus_1e4():
    """A rare token (e^-1e4) into a subtree whose check passes with mass e^-1e4: the expected
    draws are 1/m0 + q(0) + q(1)/eps = 3 (to rounding), not 0 * inf = NaN."""
    lp = jnp.array([0.0, -1e4, -1e4])
    model = sq.iid(lp - jax.nn.logsumexp(lp), 2)
    dead, done = 4, 3
    trans = [[1, 2, dead], [done] * 3, [dead, dead, done], [done] * 3, [dead] * 3]
    verifier = sq.automaton(jnp.array(trans), jnp.array([False, False, False, True, False]))
    _, cost = expand.tree_search(model, verifier)
    assert not np.isnan(float(cost.tokens))
    np.testing.assert_allclose(float(cost.tokens), 3.0, rtol=1e-12)


# ----------------------------------------------------------------------------- sizes
@pytest.mark.parametrize("size", [10**18, 2**70])
def test_huge_sizes_are_refused(size):
    model, verifier = _base(), sq.exact_match(2, [1, 1, 1])
    key = jax.random.key(0)
    calls = {
        "turns": lambda: expand.retry(model, verifier, size),
        "turns ": lambda: expand.sample_retry(key, model, verifier, size, 2),
        "num_samples": lambda: expand.sample_retry(key, model, verifier, 2, size),
        "width": lambda: expand.beam_search(model, verifier, size),
        "n": lambda: expand.best_of_n_sequence(model, verifier, size),
        "length": lambda: expand.can_accept(verifier, size),
        "num_samples ": lambda: expand.sample_tree_search(key, model, verifier, size),
        "vocab": lambda: expand.macro(size, [0], 0.5),
        "n ": lambda: expand.sample_best_of_n(
            key, jnp.log(jnp.array([0.5, 0.5])), jnp.array([0.0, 1.0]), size, 3
        ),
    }
    for name, call in calls.items():
        with pytest.raises(ValueError, match=f"`{name.strip()}`"):
            call()


def test_augment_refuses_a_table_beyond_the_bound():
    """2^16 tool states x width 2 x 1024 positions x 4 marked tokens = 2^29 log-probabilities."""
    states = 2**16
    big = expand.tool(np.zeros((states, 2), np.int32), np.zeros((states, 2), np.int32), 0.5)
    with pytest.raises(ValueError, match="augmented model"):
        expand.augment(sq.iid(jnp.log(jnp.array([0.5, 0.5])), 1024), big)


def test_expert_iteration_bounds_its_rounds():
    optax = pytest.importorskip("optax")
    from freeenergy import train

    policy, to_model = expand.sequence_policy(_base())
    trainer = train.make_trainer(policy, train.sft(), optax.sgd(0.1))
    with pytest.raises(ValueError, match="`rounds`"):
        expand.expert_iteration(
            jax.random.key(0),
            trainer,
            to_model,
            sq.exact_match(2, [1, 1, 1]),
            rounds=10**18,
            searches=2,
            sft_steps=1,
            budget=4,
        )


# ----------------------------------------------------------------------------- clear errors
def test_none_and_malformed_verifiers_raise_clear_errors():
    model = _base()
    bad = sq.Automaton(jnp.array([0, 1]), jnp.array([True]), jnp.asarray(0))
    for verifier in (None, bad, "abc"):
        for call in (
            lambda v=verifier: expand.tree_search(model, v),
            lambda v=verifier: expand.first_error(v, [[0, 1, 1]]),
            lambda v=verifier: expand.can_accept(v, 3),
            lambda v=verifier: expand.retry(model, v, 2),
        ):
            with pytest.raises((TypeError, ValueError), match="verifier"):
                call()


def test_several_keys_are_refused_by_the_samplers():
    keys = jax.random.split(jax.random.key(0), 2)
    model, verifier = _base(), sq.exact_match(2, [1, 1, 1])
    with pytest.raises(TypeError, match="single PRNG key"):
        expand.sample_tree_search(keys, model, verifier, 2)
    with pytest.raises(TypeError, match="single PRNG key"):
        expand.sample_retry(keys, model, verifier, 2, 2)
    with pytest.raises(TypeError, match="single PRNG key"):
        expand.sample_best_of_n(keys, jnp.log(jnp.array([0.5, 0.5])), jnp.array([0.0, 1.0]), 2, 2)


@pytest.mark.parametrize("transition", [None, [[0, 0], [0]], [0, 0], [[0.5, 0.0]]])
def test_malformed_tool_tables_raise_clear_errors(transition):
    with pytest.raises((TypeError, ValueError), match="`transition`"):
        expand.tool(transition, [[0]], 0.5)


def test_tool_model_arguments_are_named():
    verifier = sq.exact_match(2, [1])
    for call in (
        lambda: expand.lift(verifier, None),
        lambda: expand.tool_logprob(None, [[0]]),
        lambda: expand.tool_distribution("abc"),
        lambda: expand.expected_calls(3),
    ):
        with pytest.raises(TypeError, match="`tool_model`"):
            call()


def test_tree_search_without_success_names_its_arguments():
    with pytest.raises(ValueError, match="`verifier`.*`model`"):
        expand.tree_search(sq.iid(jnp.log(jnp.full(3, 1 / 3)), 1), sq.count_at_least(3, 2, 2))


def test_non_integral_tokens_are_refused():
    verifier = sq.exact_match(2, [1, 1])
    with pytest.raises(TypeError, match="`tokens`"):
        expand.first_error(verifier, [[1.7, 0.0]])
    with pytest.raises(TypeError, match="`tokens`"):
        expand.unmark(jnp.array([1.7, 3.0]), 2)
    with pytest.raises(TypeError, match="`tokens`"):
        expand.string_index([[0.0, 1.0]], 2)
    with pytest.raises(TypeError, match="`answer`"):
        expand.prefix_solver(3, [0.0, 1.7], 1, 0.5)
    with pytest.raises(ValueError, match="empty"):
        expand.first_error(verifier, [])


@pytest.mark.parametrize("weight", [2.2250738585072014e-309, 5e-324, 1e-300])
def test_mix_keeps_the_new_support_at_a_subnormal_weight(weight):
    """(1-w) p0 + w p_new has the union support for every w > 0, subnormal weights included
    (XLA's CPU runtime flushes subnormal inputs to zero, so log w is taken on the host)."""
    logp0 = jnp.log(jnp.array([0.5, 0.5, 0.0, 0.0]))
    logp_new = jnp.log(jnp.array([0.0, 0.0, 0.25, 0.75]))
    for out in (
        expand.mix(logp0, logp_new, weight),
        expand.distill(logp0, logp_new, weight),
        expand.new_information(logp0, logp_new, weight, logp_new, budget=4).logp_reference,
    ):
        out = np.asarray(out)
        # log((1-w)/2) = log(1/2) to rounding; log(w p_new) computed exactly in NumPy
        np.testing.assert_allclose(out[:2], np.log(0.5), rtol=1e-15)
        np.testing.assert_allclose(out[2:], np.log(weight) + np.log([0.25, 0.75]), rtol=1e-13)
