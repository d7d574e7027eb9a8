"""freeenergy.sequences on bad and extreme input: clear errors, bounded sizes, no silent NaN.

Each test reproduces an input that used to abort the interpreter, hang, return NaN or raise a
raw exception, and checks the clear error or the right number (against enumeration and the
flat functions; docs/theory.md, T10).
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import freeenergy as fe
from freeenergy import sequences as sq

COIN = jnp.log(jnp.array([0.5, 0.5]))


def _auto(transition, accepting, initial=0):
    return sq.Automaton(jnp.asarray(transition), jnp.asarray(accepting), jnp.asarray(initial))


def _model():
    return sq.iid(jnp.log(jnp.array([0.2, 0.3, 0.5])), 3)


# ----------------------------------------------------------------------------- sizes
@pytest.mark.parametrize("size", [10**18, 2**70])
def test_huge_lengths_are_refused_before_allocating(size):
    for call in (
        lambda: sq.iid(COIN, size),
        lambda: sq.finite_state(jnp.zeros((1, 1)), jnp.zeros((1, 1), int), length=size),
        lambda: sq.markov(jnp.log(jnp.full((2, 2), 0.5)), size, [0]),
        lambda: sq.autoregressive(jnp.zeros((1, 2)), 2, size),
        lambda: sq.strings(2, size),
    ):
        with pytest.raises(ValueError, match="length"):
            call()


@pytest.mark.parametrize("size", [10**18, 2**70])
def test_huge_counts_are_refused(size):
    with pytest.raises(ValueError, match="num_samples"):
        sq.sample(jax.random.key(0), _model(), size)
    with pytest.raises(ValueError, match="`m`"):
        sq.count_at_least(2, 1, size)
    with pytest.raises(ValueError, match="modulus"):
        sq.digit_sum_mod(2, size, 0)
    with pytest.raises(ValueError, match="vocab"):
        sq.exact_match(size, [0])


def test_strings_checks_the_space_in_log_space():
    start = time.perf_counter()
    with pytest.raises(ValueError, match="MAX_ENUMERATE"):
        sq.strings(2, 10**6)
    with pytest.raises(ValueError, match="MAX_ENUMERATE"):
        sq.enumerate(sq.iid(COIN, 10**5))
    assert time.perf_counter() - start < 5.0  # 2**(10**6) is never formed


def test_contains_on_a_large_vocab_is_vectorized_and_bounded():
    with pytest.raises(ValueError, match="vocab"):
        sq.contains(10**8, [0, 1])
    start = time.perf_counter()
    big = sq.contains(2**20, [5, 7, 5])
    assert time.perf_counter() - start < 5.0
    toks = np.array([[1, 5, 7, 5], [5, 7, 7, 5], [5, 7, 5, 5], [5, 5, 7, 5]])
    assert sq.accepts(big, toks).tolist() == [True, False, True, True]


@pytest.mark.parametrize(
    "pattern", [[0], [1, 0], [0, 0, 1], [0, 1, 0, 1, 1], [2, 2, 2], [1, 2, 1, 2]]
)
def test_contains_equals_substring_search(pattern):
    """The KMP automaton accepts exactly the strings containing the pattern (all strings)."""
    v = sq.contains(3, pattern)
    for length in (len(pattern), len(pattern) + 2):
        strings = np.asarray(sq.strings(3, length))
        want = [
            any(list(s[i : i + len(pattern)]) == pattern for i in range(length)) for s in strings
        ]
        assert sq.accepts(v, strings).tolist() == want


# ----------------------------------------------------------------------------- numbers
def _flat(model, verifier, energy, beta):
    strings = sq.strings(model.vocab, model.length)
    u = sq.sequence_energy(verifier, strings, energy=energy)
    return sq.enumerate(model), u


@pytest.mark.parametrize("beta", [5e-324, 1e-310])
def test_subnormal_beta_matches_flat_gibbs(beta):
    model, verifier = _model(), sq.count_at_least(3, 2, 2)
    energy = jnp.array([0.5, 0.25, 0.0])
    logp, u = _flat(model, verifier, energy, beta)
    want = fe.gibbs(logp, u, beta)
    got = sq.enumerate(sq.tilt(model, verifier, beta, energy=energy))
    assert not np.any(np.isnan(np.asarray(got)))
    np.testing.assert_allclose(np.exp(got), np.exp(want), atol=1e-12)
    log_z = sq.log_partition(model, verifier, beta, energy=energy)
    np.testing.assert_allclose(float(log_z), float(fe.log_partition(logp, u, beta)), rtol=1e-12)


@pytest.mark.parametrize(
    "energy", [[1e308, -1e308, 1e308], [1e308, 1e308, 1e308], [-1e308, -1e308, -1e308]]
)
@pytest.mark.parametrize("beta", [0.5, 1.0, 3.0])
def test_energies_near_the_float_limit_match_flat_gibbs(energy, beta):
    model, verifier = _model(), sq.count_at_least(3, 2, 2)
    energy = jnp.asarray(energy)
    logp, u = _flat(model, verifier, energy, beta)
    got = sq.enumerate(sq.tilt(model, verifier, beta, energy=energy))
    assert not np.any(np.isnan(np.asarray(got)))
    np.testing.assert_allclose(np.exp(got), np.exp(fe.gibbs(logp, u, beta)), atol=1e-12)
    log_z = sq.log_partition(model, verifier, beta, energy=energy)
    want = fe.log_partition(logp, u, beta)
    assert not np.isnan(float(log_z))
    np.testing.assert_allclose(float(log_z), float(want), rtol=1e-12)
    mean = sq.expected_energy(model, verifier, energy=energy)
    np.testing.assert_allclose(float(mean), float(jnp.sum(jnp.exp(logp) * u)), rtol=1e-12)


def test_step_energies_near_the_float_limit():
    model = sq.iid(COIN, 3)
    step = jnp.array([1e308, -1e308])
    tilted = sq.tilt(model, None, 1.0, step_energy=step)
    assert float(sq.log_prob(tilted, jnp.array([1, 1, 1]))) == 0.0
    assert float(sq.expected_energy(model, None, step_energy=step)) == 0.0
    assert not np.isnan(float(sq.log_partition(model, None, 1.0, step_energy=step)))


# ----------------------------------------------------------------------------- clear errors
@pytest.mark.parametrize(
    "verifier, match",
    [
        (sq.Automaton(jnp.array([0, 1]), jnp.array([True]), jnp.asarray(0)), "shape"),
        (_auto([[0, 5, 0]], [True], 0), "outside"),
        (_auto([[0.0, 0.0, 0.0]], [True], 0), "integer"),
        (
            _auto([[0, 0, 0]], [True, False], 0),
            "accepting",
        ),
        (_auto([[0, 0, 0]], [1], 0), "accepting"),
        (_auto([[0, 0, 0]], [True], 3), "initial"),
        (sq.Automaton(None, None, None), "transition"),
        (sq.Automaton([[0, 0], [0]], [True], 0), "transition"),
        (sq.Automaton(np.array([[2**70]], dtype=object), [True], 0), "transition"),
        (sq.Automaton(jnp.zeros((0, 3), int), jnp.zeros((0,), bool), jnp.asarray(0)), "empty"),
    ],
)
def test_malformed_automata_raise_clear_errors(verifier, match):
    model = _model()
    for call in (
        lambda: sq.log_partition(model, verifier, 1.0),
        lambda: sq.accept_logprob(model, verifier),
        lambda: sq.accepts(verifier, [[0, 1, 2]]),
        lambda: sq.complement(verifier),
    ):
        with pytest.raises((TypeError, ValueError), match=match):
            call()


def test_none_is_refused_where_an_automaton_is_required():
    v = sq.exact_match(2, [1])
    with pytest.raises(TypeError, match="`first`"):
        sq.intersect(None, v)
    with pytest.raises(TypeError, match="`second`"):
        sq.intersect(v, None)
    with pytest.raises(TypeError, match="`verifier`"):
        sq.complement(None)
    with pytest.raises(TypeError, match="`verifier`"):
        sq.accepts(None, [[1]])
    with pytest.raises(TypeError, match="`verifier`"):
        sq.accept_logprob(sq.iid(COIN, 1), None)


def test_malformed_models_raise_clear_errors():
    with pytest.raises(TypeError, match="model.transition"):
        sq.entropy(sq.SequenceModel(jnp.zeros((2, 1, 1)), None, jnp.asarray(0)))
    with pytest.raises(TypeError, match="model.logp"):
        sq.entropy(sq.SequenceModel(None, jnp.zeros((1, 1), int), jnp.asarray(0)))
    with pytest.raises(ValueError, match="model.logp"):
        sq.entropy(sq.SequenceModel(jnp.zeros((1, 1)), jnp.zeros((1, 1), int), jnp.asarray(0)))
    with pytest.raises(TypeError, match="SequenceModel"):
        sq.entropy(None)


def test_from_logits_names_its_own_argument():
    with pytest.raises(ValueError, match="`logits`"):
        sq.from_logits(jnp.zeros((2, 2)), jnp.zeros((2, 2), int))
    with pytest.raises(ValueError, match="`logits`"):
        sq.from_logits(jnp.zeros((2,)), jnp.zeros((1, 2), int), length=2)


def test_several_keys_are_refused():
    keys = jax.random.split(jax.random.key(0), 2)
    with pytest.raises(TypeError, match="single PRNG key"):
        sq.sample(keys, _model(), 3)


@pytest.mark.parametrize("tokens", [[1.7, 0, 0], [1.0, 0.0, 0.0], [1j, 0, 0], [True, False, True]])
def test_non_integral_tokens_are_refused(tokens):
    with pytest.raises(TypeError, match="`tokens`"):
        sq.log_prob(_model(), jnp.asarray(tokens))
    with pytest.raises(TypeError, match="`tokens`"):
        sq.accepts(sq.exact_match(3, [0, 1, 2]), np.asarray(tokens))


def test_non_integral_token_lists_are_refused():
    with pytest.raises(TypeError, match="`target`"):
        sq.exact_match(3, [1.7])
    with pytest.raises(TypeError, match="`pattern`"):
        sq.contains(3, [0.0, 1.0])
    with pytest.raises(TypeError, match="`context`"):
        sq.markov(jnp.log(jnp.full((2, 2), 0.5)), 3, [1.7])
    with pytest.raises(TypeError, match="`end`"):
        sq.iid(COIN, 3, end=1.7)


@pytest.mark.parametrize("tokens", [[], [[]], np.zeros((2, 0), int)])
def test_empty_token_arrays_raise_clear_errors(tokens):
    with pytest.raises(ValueError, match="empty"):
        sq.accepts(sq.exact_match(2, [1]), tokens)
    with pytest.raises(ValueError, match="`tokens`"):
        sq.sequence_energy(sq.exact_match(2, [1]), tokens)


def test_ragged_and_oversized_token_values_raise_clear_errors():
    with pytest.raises(TypeError, match="`tokens`"):
        sq.accepts(sq.exact_match(2, [1, 1]), [[0, 1], [0]])
    with pytest.raises(TypeError, match="`tokens`"):
        sq.accepts(sq.exact_match(2, [1]), np.array([[2**70]], dtype=object))
    with pytest.raises(ValueError, match="not a token"):
        sq.log_prob(sq.iid(COIN, 1), np.array([2**40]))


@pytest.mark.parametrize("length", [np.zeros(0), np.zeros((2, 7)), 1.5, None])
def test_check_tokens_validates_length(length):
    if length is None:
        assert sq.check_tokens([[0, 1]], 2, length).shape == (1, 2)
        return
    with pytest.raises(TypeError, match="`length`"):
        sq.check_tokens([[0, 1]], 2, length)


def test_size_messages_name_the_arguments():
    with pytest.raises(ValueError, match="`vocab` \\*\\* `length`"):
        sq.space_size(2, 25)
    with pytest.raises(ValueError, match="`vocab`.*`length`"):
        sq.autoregressive(jnp.zeros((1, 2)), 2, 21)


def test_public_checks_are_the_package_checks():
    model = _model()
    assert sq.check_model(model) is model
    assert sq.check_verifier(None, 3, optional=True) is None
    with pytest.raises(TypeError, match="`verifier`"):
        sq.check_verifier(None, 3)
    assert sq.check_tokens([[0, 2]], 3).dtype == jnp.int32
    assert sq.space_size(3, 4) == 81
