"""Sequence spaces: every dynamic program equals enumeration (docs/theory.md T10).

The oracle is independent of the library's dynamic programs: it lists every string with
``itertools.product`` and walks the generator and the automaton token by token in plain Python,
then applies the flat-space functions (``gibbs``, ``kl``, ``entropy``). Float64 throughout.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oracles import all_strings, string_logp

import freeenergy as fe
from freeenergy import sequences as sq
from freeenergy.sequences import _kernels

ATOL = 1e-10


def _examples(at_ci: int) -> int:
    """Examples for this property: ``at_ci`` under the ``ci`` profile (30 examples), scaled with
    the active profile's ``max_examples`` (``thorough`` runs ~33x as many)."""
    return max(1, at_ci * settings.default.max_examples // 30)


# ----------------------------------------------------------------------------- the oracle


def oracle_walk(verifier: sq.Automaton, y) -> list[int]:
    trans = np.asarray(verifier.transition)
    states = [int(verifier.initial)]
    for tok in y:
        states.append(int(trans[states[-1], tok]))
    return states


def oracle_energy(verifier, ys, final, step=None) -> np.ndarray:
    """U(y) = sum_t step[t, a_t, y_t] + final[a_L] by walking the automaton."""
    out = []
    for y in ys:
        states = oracle_walk(verifier, y)
        u = final[states[-1]]
        if step is not None:
            u = u + sum(step[t, states[t], tok] for t, tok in enumerate(y))
        out.append(u)
    return np.asarray(out, dtype=np.float64)


def flat_log_partition(lp: np.ndarray, energy: np.ndarray, beta: float) -> float:
    keep = np.isfinite(lp) & np.isfinite(energy)
    if not keep.any():
        return -math.inf
    x = lp[keep] - energy[keep] / beta
    m = x.max()
    return float(m + np.log(np.sum(np.exp(x - m))))


def assert_logs_close(a, b, atol=ATOL, rtol=1e-9):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape
    assert not np.any(np.isnan(a)), "NaN in the dynamic program's output"
    np.testing.assert_array_equal(np.isneginf(a), np.isneginf(b))
    np.testing.assert_array_equal(np.isposinf(a), np.isposinf(b))
    fin = np.isfinite(b)
    np.testing.assert_allclose(a[fin], b[fin], atol=atol, rtol=rtol)


# ----------------------------------------------------------------------------- random instances
# Hypothesis draws the instance (kind of model, tables with -inf holes, automaton, energies, beta)
# and the space from a fixed list of (vocab, length) pairs that covers vocab 1..3 and length 1..6.
# Models are padded to a fixed number of states per space and automata to 4 states (the extra
# states are unreachable, so they change no probability but check that nothing leaks from them);
# fixed shapes let every jitted dynamic program compile once per space, not once per example.
SPACES = [(1, 3), (2, 1), (2, 6), (3, 4)]
MAX_AUTOMATON_STATES = 4


def padded_states(vocab: int, length: int) -> int:
    prefix = sum(vocab**t for t in range(length)) if length <= 4 else 0
    return max(9, prefix)


def random_rows(rng, shape, holes: float) -> np.ndarray:
    """Normalized log-probability rows with some -inf entries (each row keeps one token)."""
    logits = rng.normal(size=shape) * 1.5
    drop = rng.random(shape) < holes
    keep = rng.integers(0, shape[-1], size=shape[:-1])
    np.put_along_axis(drop, keep[..., None], False, axis=-1)
    logits = np.where(drop, -np.inf, logits)
    return np.asarray(fe.normalize(jnp.asarray(logits)))


def random_model(rng, kind: str, vocab: int, length: int) -> sq.SequenceModel:
    if kind == "iid":
        return sq.iid(random_rows(rng, (vocab,), 0.2), length)
    if kind == "markov":
        order = int(rng.integers(0, 3))
        table = random_rows(rng, (vocab,) * (order + 1), 0.25)
        return sq.markov(table, length, rng.integers(0, vocab, size=order).tolist())
    if kind == "prefix" and length <= 4:
        num = sum(vocab**t for t in range(length))
        return sq.autoregressive(random_rows(rng, (num, vocab), 0.25), vocab, length)
    states = int(rng.integers(1, 4))
    trans = rng.integers(0, states, size=(states, vocab))
    return sq.finite_state(
        random_rows(rng, (length, states, vocab), 0.25), trans, int(rng.integers(0, states))
    )


def pad_model(rng, model: sq.SequenceModel, states: int) -> sq.SequenceModel:
    """The same distribution on ``states`` states: extra states are unreachable."""
    L, S, V = model.logp.shape
    extra = states - S
    if extra == 0:
        return model
    logp = np.concatenate([np.asarray(model.logp), random_rows(rng, (L, extra, V), 0.3)], axis=1)
    trans = np.concatenate(
        [np.asarray(model.transition), rng.integers(0, states, size=(extra, V))], axis=0
    )
    return sq.finite_state(logp, trans, int(model.initial))


def random_automaton(rng, vocab: int) -> sq.Automaton:
    """At most 4 reachable states, padded with unreachable ones to exactly 4."""
    states = int(rng.integers(1, MAX_AUTOMATON_STATES + 1))
    trans = np.concatenate(
        [
            rng.integers(0, states, size=(states, vocab)),
            rng.integers(0, MAX_AUTOMATON_STATES, size=(MAX_AUTOMATON_STATES - states, vocab)),
        ]
    )
    accepting = rng.random(MAX_AUTOMATON_STATES) < 0.5
    return sq.automaton(trans, accepting, int(rng.integers(0, states)))


def instance_from(seed, kind, space):
    vocab, length = space
    rng = np.random.default_rng(seed)
    model = pad_model(rng, random_model(rng, kind, vocab, length), padded_states(vocab, length))
    return rng, model, random_automaton(rng, vocab)


instances = st.tuples(
    st.integers(0, 2**31 - 1),
    st.sampled_from(["iid", "markov", "prefix", "finite_state"]),
    st.sampled_from(SPACES),
    st.floats(-3.0, 3.0),
    st.sampled_from(["default", "reward", "step", "reward+step"]),
)


def energies_for(rng, verifier, mode, vocab, length):
    """Keyword energies for a mode, and the (final, step) tables the oracle uses."""
    A = verifier.num_states
    final = -np.asarray(verifier.accepting, np.float64)
    kwargs, step = {}, None
    if "reward" in mode:
        reward = rng.normal(size=A)
        reward[rng.random(A) < 0.2] = -np.inf
        kwargs["reward"] = reward
        final = -reward
    if "step" in mode:
        step = rng.normal(size=(length, A, vocab))
        step[rng.random(step.shape) < 0.1] = np.inf
        kwargs["step_energy"] = step
    return kwargs, final, step


# ----------------------------------------------------------------------------- T10 property tests
@settings(max_examples=_examples(20))
@given(instances)
def test_dynamic_programs_equal_enumeration(instance):
    seed, kind, (vocab, length), log10_beta, mode = instance
    beta = 10.0**log10_beta
    rng, model, verifier = instance_from(seed, kind, (vocab, length))
    kwargs, final, step = energies_for(rng, verifier, mode, vocab, length)

    ys = all_strings(vocab, length)
    lp = string_logp(model, ys)
    energy = oracle_energy(verifier, ys, final, step)
    accepted = np.array([bool(verifier.accepting[oracle_walk(verifier, y)[-1]]) for y in ys])

    assert_logs_close(sq.enumerate(model), lp)

    # the accepted set and its reachability
    with np.errstate(divide="ignore"):
        log_s = np.log(np.sum(np.exp(lp[accepted]))) if accepted.any() else -np.inf
    assert_logs_close(sq.accept_logprob(model, verifier), log_s)
    k = np.array([1, 3, 50])
    np.testing.assert_allclose(
        sq.pass_at_k(model, verifier, k), 1.0 - (1.0 - np.exp(log_s)) ** k, atol=1e-12
    )

    # log-partition, tilt, KL, entropy, expected energy, free energy
    log_z = flat_log_partition(lp, energy, beta)
    assert_logs_close(sq.log_partition(model, verifier, beta, **kwargs), log_z)
    assert_logs_close(sq.entropy(model), fe.entropy(jnp.asarray(lp)))
    if log_z == -math.inf:
        with pytest.raises(ValueError, match="no mass"):
            sq.tilt(model, verifier, beta, **kwargs)
        return
    tilted = sq.tilt(model, verifier, beta, **kwargs)
    flat_q = fe.gibbs(jnp.asarray(lp), jnp.asarray(energy), beta)
    assert_logs_close(sq.enumerate(tilted), flat_q)
    assert np.all(np.isneginf(np.asarray(sq.enumerate(tilted))[np.isneginf(lp)]))  # T2
    assert_logs_close(sq.kl(tilted, model), fe.kl(flat_q, jnp.asarray(lp)))
    assert_logs_close(sq.kl(model, tilted), fe.kl(jnp.asarray(lp), flat_q))  # may be +inf
    assert_logs_close(sq.entropy(tilted), fe.entropy(flat_q))
    q = np.exp(np.asarray(flat_q))
    mean_u = float(np.sum(np.where(q > 0, q * np.where(q > 0, energy, 0.0), 0.0)))
    assert_logs_close(sq.expected_energy(tilted, verifier, **kwargs), mean_u)
    # Gibbs variational principle: F[q*] = -beta log Z (T1)
    assert_logs_close(
        sq.free_energy(tilted, model, verifier, beta, **kwargs), -beta * log_z, atol=1e-9
    )


@settings(max_examples=_examples(8))
@given(instances, st.integers(0, 2**31 - 1))
def test_tilt_composition_and_kl_between_models(instance, seed2):
    """T3 for sequence models: tilting by U1 then U2 (same beta) is tilting by U1 + U2, as a
    tilt of a tilt and as one tilt by the intersection automaton with the summed reward."""
    seed, kind, _, log10_beta, _ = instance
    space = (2, 4) if seed % 2 else (3, 3)
    vocab, length = space
    beta = 10.0**log10_beta
    rng, model, first = instance_from(seed, kind, space)
    second = random_automaton(rng, vocab)
    r1, r2 = rng.normal(size=first.num_states), rng.normal(size=second.num_states)
    step = rng.normal(size=(length, vocab))

    twice = sq.tilt(
        sq.tilt(model, first, beta, reward=r1, step_energy=step), second, beta, reward=r2
    )
    both = sq.intersect(first, second)
    once = sq.tilt(
        model, both, beta, reward=(r1[:, None] + r2[None, :]).reshape(-1), step_energy=step
    )
    ys = all_strings(vocab, length)
    lp = string_logp(model, ys)
    tokens_energy = np.array([sum(step[t, y[t]] for t in range(length)) for y in ys])
    energy = oracle_energy(first, ys, -r1) + tokens_energy + oracle_energy(second, ys, -r2)
    flat = fe.gibbs(jnp.asarray(lp), jnp.asarray(energy), beta)
    assert_logs_close(sq.enumerate(twice), flat)
    assert_logs_close(sq.enumerate(once), flat)

    # KL between two unrelated generators (different state spaces), +inf included
    other = pad_model(
        rng, random_model(np.random.default_rng(seed2), "finite_state", vocab, length), 3
    )
    lp_other = string_logp(other, ys)
    assert_logs_close(sq.kl(model, other), fe.kl(jnp.asarray(lp), jnp.asarray(lp_other)))
    assert_logs_close(sq.kl(twice, other), fe.kl(flat, jnp.asarray(lp_other)))


# ----------------------------------------------------------------------------- scoring strings
def test_log_prob_energy_and_acceptance_of_strings_match_the_oracle():
    vocab, length = 3, 4
    ys = all_strings(vocab, length)
    tokens = jnp.asarray(ys)
    np.testing.assert_array_equal(np.asarray(sq.strings(vocab, length)), np.asarray(ys))
    for seed in range(4):
        rng, model, verifier = instance_from(
            seed, ["iid", "markov", "prefix", "fs"][seed], (vocab, length)
        )
        kwargs, final, step = energies_for(rng, verifier, "reward+step", vocab, length)
        assert_logs_close(sq.log_prob(model, tokens), string_logp(model, ys))
        assert_logs_close(
            sq.log_prob(model, tokens.reshape(9, 9, length)), string_logp(model, ys).reshape(9, 9)
        )
        assert_logs_close(
            sq.sequence_energy(verifier, tokens, **kwargs), oracle_energy(verifier, ys, final, step)
        )
        accepted = [bool(verifier.accepting[oracle_walk(verifier, y)[-1]]) for y in ys]
        np.testing.assert_array_equal(np.asarray(sq.accepts(verifier, tokens)), accepted)


def test_verifier_constructors_accept_what_they_say():
    vocab, length = 3, 5
    ys = all_strings(vocab, length)
    tokens = jnp.asarray(ys)
    cases = {
        "exact_match": (sq.exact_match(vocab, [2, 0, 1, 1, 0]), lambda y: y == (2, 0, 1, 1, 0)),
        "starts_with": (sq.starts_with(vocab, [1, 2]), lambda y: y[:2] == (1, 2)),
        "contains": (
            sq.contains(vocab, [1, 1, 2]),
            lambda y: any(y[i : i + 3] == (1, 1, 2) for i in range(length - 2)),
        ),
        "contains_self_overlap": (
            sq.contains(vocab, [0, 1, 0, 1]),
            lambda y: any(y[i : i + 4] == (0, 1, 0, 1) for i in range(2)),
        ),
        "count_at_least": (sq.count_at_least(vocab, 2, 3), lambda y: y.count(2) >= 3),
        "count_at_least_0": (sq.count_at_least(vocab, 2, 0), lambda y: True),
        "digit_sum_mod": (sq.digit_sum_mod(vocab, 4, 3), lambda y: sum(y) % 4 == 3),
        "digit_sum_values": (
            sq.digit_sum_mod(vocab, 3, 1, values=[5, 0, 7]),
            lambda y: sum([5, 0, 7][t] for t in y) % 3 == 1,
        ),
        "intersect": (
            sq.intersect(sq.count_at_least(vocab, 0, 2), sq.contains(vocab, [2, 2])),
            lambda y: y.count(0) >= 2 and any(y[i : i + 2] == (2, 2) for i in range(4)),
        ),
        "complement": (sq.complement(sq.starts_with(vocab, [0])), lambda y: y[0] != 0),
    }
    for name, (verifier, rule) in cases.items():
        got = np.asarray(sq.accepts(verifier, tokens))
        want = np.array([rule(y) for y in ys])
        np.testing.assert_array_equal(got, want, err_msg=name)
    # variable length: an absorbing end token
    end = 2
    exact = sq.exact_match(vocab, [1, 0], end=end)
    want = np.array([y[:2] == (1, 0) and all(t == end for t in y[2:]) for y in ys])
    np.testing.assert_array_equal(np.asarray(sq.accepts(exact, tokens)), want)


def test_with_end_is_stopping_at_the_end_token():
    """iid tokens with a stop token: P(stop after k content tokens) = (1 - e)^k e, and strings
    that continue after the end token have zero probability."""
    vocab, length, end = 3, 5, 2
    token_logp = np.log(np.array([0.5, 0.3, 0.2]))
    model = sq.iid(token_logp, length, end=end)
    lp = np.asarray(sq.enumerate(model))
    ys = all_strings(vocab, length)
    for y, value in zip(ys, lp, strict=True):
        k = y.index(end) if end in y else length
        if all(t == end for t in y[k:]):
            want = sum(token_logp[t] for t in y[:k]) + (token_logp[end] if k < length else 0.0)
            assert value == pytest.approx(want, abs=1e-12)
        else:
            assert value == -np.inf
    assert float(jax.nn.logsumexp(jnp.asarray(lp))) == pytest.approx(0.0, abs=1e-12)


def test_markov_and_autoregressive_constructors_match_their_definitions():
    rng = np.random.default_rng(5)
    vocab, length = 3, 4
    table = random_rows(rng, (vocab, vocab, vocab), 0.0)
    model = sq.markov(table, length, [2, 1])
    ys = all_strings(vocab, length)
    want = []
    for y in ys:
        ctx = [2, 1] + list(y)
        want.append(sum(table[ctx[t], ctx[t + 1], ctx[t + 2]] for t in range(length)))
    assert_logs_close(sq.enumerate(model), np.asarray(want))

    def conditional(prefix, t):  # depends on the whole prefix: a genuine prefix tree
        weights = jnp.arange(1, length + 1) * (jnp.arange(length) < t)
        return jax.nn.log_softmax(jnp.sin(jnp.sum(weights * prefix) + t + jnp.arange(vocab)))

    tree = sq.autoregressive(conditional, vocab, length)
    want = [
        sum(
            float(conditional(jnp.asarray(list(y[:t]) + [0] * (length - t)), t)[y[t]])
            for t in range(length)
        )
        for y in ys
    ]
    assert_logs_close(sq.enumerate(tree), np.asarray(want), atol=1e-12)


# ----------------------------------------------------------------------------- sampling
def test_sampling_frequencies_match_exact_probabilities():
    """Monte Carlo, fixed key. Bound: every string's frequency within 5 binomial standard
    deviations (+ 1/n) of its exact probability; with 27 strings the chance that a correct
    sampler violates this is below 27 * 6e-7."""
    vocab, length, n = 3, 3, 60_000
    rng = np.random.default_rng(11)
    model = sq.markov(random_rows(rng, (vocab, vocab), 0.2), length, [0])
    tilted = sq.tilt(model, sq.count_at_least(vocab, 1, 2), 0.5)
    p = np.exp(np.asarray(sq.enumerate(tilted)))
    draws = np.asarray(sq.sample(jax.random.key(3), tilted, n))
    assert draws.shape == (n, length) and draws.dtype == np.int32
    index = draws @ (vocab ** np.arange(length - 1, -1, -1))
    freq = np.bincount(index, minlength=vocab**length) / n
    assert np.all(freq[p == 0] == 0)  # -inf tokens are never drawn
    assert np.all(np.abs(freq - p) <= 5 * np.sqrt(p * (1 - p) / n) + 1 / n)
    # the same key gives the same strings; another key different ones
    np.testing.assert_array_equal(draws, np.asarray(sq.sample(jax.random.key(3), tilted, n)))
    assert not np.array_equal(draws[:50], np.asarray(sq.sample(jax.random.key(4), tilted, 50)))


# ----------------------------------------------------------------------------- -inf and extremes
def test_minus_inf_entries_are_kept_and_never_produce_nan():
    with np.errstate(divide="ignore"):
        logp = np.log(np.array([[[0.5, 0.5, 0.0]], [[0.0, 0.0, 1.0]], [[0.2, 0.0, 0.8]]]))
    model = sq.finite_state(logp, np.zeros((1, 3), int))
    verifier = sq.contains(3, [0])
    tilted = sq.tilt(model, verifier, 0.3)
    lq = np.asarray(tilted.logp)
    rows = np.arange(tilted.num_states) // verifier.num_states
    assert not np.any(np.isnan(lq))
    np.testing.assert_array_equal(np.isneginf(lq), np.isneginf(logp[:, rows, :]))
    lp = np.asarray(sq.enumerate(model))
    assert_logs_close(
        sq.enumerate(tilted),
        fe.gibbs(jnp.asarray(lp), sq.sequence_energy(verifier, sq.strings(3, 3)), 0.3),
    )
    # excluding every producible string with +inf energy: log Z = -inf, tilt refuses
    impossible = sq.exact_match(3, [1, 1, 1])
    assert float(sq.accept_logprob(model, impossible)) == -np.inf
    only_match = np.array([np.inf, np.inf, np.inf, 0.0, np.inf])  # finite on "matched" only
    assert float(sq.log_partition(model, impossible, 1.0, energy=only_match)) == -np.inf
    with pytest.raises(ValueError, match="no mass"):
        sq.tilt(model, impossible, 1.0, reward=np.array([-np.inf] * 3 + [0.0, -np.inf]))
    assert float(sq.pass_at_k(model, impossible, 10)) == 0.0


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_stable_from_beta_1e_minus_6_to_1e6(dtype):
    """Closed form for a binary reward: log Z = log(1 - p + p e^{1/beta}), and the tilt's
    accepted mass is p e^{1/beta} / (1 - p + p e^{1/beta})."""
    vocab, length = 4, 64
    model = sq.iid(jnp.log(jnp.array([0.4, 0.3, 0.2, 0.1], dtype)), length)
    verifier = sq.count_at_least(vocab, 3, 12)
    log_p = float(
        sq.accept_logprob(sq.iid(jnp.log(jnp.array([0.4, 0.3, 0.2, 0.1])), length), verifier)
    )
    p = math.exp(log_p)
    tol = 1e-12 if dtype == jnp.float64 else 2e-5
    for beta in [1e-6, 1e-3, 0.1, 1.0, 10.0, 1e3, 1e6]:
        lam = 1.0 / beta
        # log(1 - p + p e^lam) = lam + log(p + (1 - p) e^-lam) = log1p(p expm1(lam))
        want = (
            lam + math.log(p + (1 - p) * math.exp(-lam))
            if lam > 1
            else math.log1p(p * math.expm1(lam))
        )
        got = float(sq.log_partition(model, verifier, beta))
        assert got == pytest.approx(want, rel=tol, abs=tol)
        tilted = sq.tilt(model, verifier, beta)
        assert not np.any(np.isnan(np.asarray(tilted.logp)))
        log_q = -math.log1p((1 - p) / p * math.exp(-lam))
        assert float(sq.accept_logprob(tilted, verifier)) == pytest.approx(
            log_q, rel=tol, abs=tol * 10
        )


def test_tilt_for_kl_hits_the_budget_and_matches_the_bernoulli_cost():
    """T4/T6: the tilt with KL = eps by the indicator of S moves p(S) to t with
    d(t || p) = eps."""
    vocab, length = 4, 32
    model = sq.markov(np.log(np.full((vocab, vocab), 0.25) + np.eye(vocab) * 0.0), length, [0])
    verifier = sq.count_at_least(vocab, 3, 14)
    p = math.exp(float(sq.accept_logprob(model, verifier)))
    for eps in [0.01, 0.5, 2.0]:
        tilted, beta = sq.tilt_for_kl(model, verifier, eps)
        assert float(sq.kl(tilted, model)) == pytest.approx(eps, rel=1e-9)
        t = math.exp(float(sq.accept_logprob(tilted, verifier)))
        bern = t * math.log(t / p) + (1 - t) * math.log((1 - t) / (1 - p))
        assert bern == pytest.approx(eps, rel=1e-8)
        same = sq.tilt(model, verifier, float(beta))
        assert float(sq.kl(same, tilted)) == pytest.approx(0.0, abs=1e-10)
    base, beta = sq.tilt_for_kl(model, verifier, 0.0)
    assert float(beta) == np.inf and float(sq.kl(base, model)) == pytest.approx(0.0, abs=1e-12)
    # beyond the KL of the limit q = p(. | S), which is -log p(S): the limit
    limit, beta = sq.tilt_for_kl(model, verifier, -math.log(p) + 1.0)
    assert float(beta) == pytest.approx(1e-6)
    assert float(sq.accept_logprob(limit, verifier)) == pytest.approx(0.0, abs=1e-12)
    assert float(sq.kl(limit, model)) == pytest.approx(-math.log(p), rel=1e-10)


# ----------------------------------------------------------------------------- training hooks
def test_log_prob_gradient_counts_table_uses_and_compiles_once():
    rng = np.random.default_rng(2)
    vocab, length = 3, 4
    _, model, _ = instance_from(7, "finite_state", (vocab, length))
    tokens = jnp.asarray(rng.integers(0, vocab, size=(16, length)))
    grad = jax.grad(
        lambda t: jnp.sum(
            jnp.where(
                jnp.isfinite(
                    sq.log_prob(sq.SequenceModel(t, model.transition, model.initial), tokens)
                ),
                sq.log_prob(sq.SequenceModel(t, model.transition, model.initial), tokens),
                0.0,
            )
        )
    )(model.logp)
    counts = np.zeros(model.logp.shape)
    lp = string_logp(model, [tuple(int(v) for v in y) for y in np.asarray(tokens)])
    trans = np.asarray(model.transition)
    for y, value in zip(np.asarray(tokens), lp, strict=True):
        if not np.isfinite(value):
            continue
        s = int(model.initial)
        for t, tok in enumerate(y):
            counts[t, s, tok] += 1
            s = trans[s, tok]
    np.testing.assert_array_equal(np.asarray(grad), counts)

    # a policy: tables = log-softmax(logits), -inf logits stay out, gradients finite
    logits = jnp.asarray(rng.normal(size=(length, 2, vocab))).at[:, :, 0].set(-jnp.inf)
    trans = jnp.asarray([[1, 0, 1], [0, 1, 1]])
    good = jnp.asarray(rng.integers(1, vocab, size=(8, length)))

    @jax.jit
    def loss(logits):
        return -jnp.mean(sq.log_prob(sq.from_logits(logits, trans), good))

    g = jax.grad(loss)(logits)
    assert np.all(np.isfinite(np.asarray(g)[:, :, 1:])) and np.all(np.asarray(g)[:, :, 0] == 0)
    eager = -jnp.mean(sq.log_prob(sq.from_logits(logits, trans), good))
    assert float(loss(logits)) == pytest.approx(float(eager), rel=1e-12)

    # d log Z / d logp[t, s, y] = q(state s at t, token y) under the tilt: the occupancy a
    # policy gradient needs, checked against enumeration; and a batch of prompts is a vmap
    table = jnp.log(jnp.array([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3], [0.3, 0.3, 0.4]]))
    m = sq.markov(table, 3, [2])
    v = sq.count_at_least(3, 1, 2)
    occupancy = jax.grad(
        lambda lp: sq.log_partition(sq.SequenceModel(lp, m.transition, m.initial), v, 0.5)
    )(m.logp)
    ys = all_strings(3, 3)
    q = np.exp(np.asarray(sq.enumerate(sq.tilt(m, v, 0.5))))
    want = np.zeros(m.logp.shape)
    for y, qy in zip(ys, q, strict=True):
        s = int(m.initial)
        for t, tok in enumerate(y):
            want[t, s, tok] += qy
            s = int(m.transition[s, tok])
    np.testing.assert_allclose(np.asarray(occupancy), want, atol=1e-12)
    batched = jax.vmap(
        lambda s0: sq.log_partition(sq.SequenceModel(m.logp, m.transition, s0), v, 0.5)
    )(jnp.arange(3))
    singles = [float(sq.log_partition(sq.markov(table, 3, [c]), v, 0.5)) for c in range(3)]
    np.testing.assert_allclose(np.asarray(batched), singles, rtol=1e-12)

    # the dynamic program traces once per shape: new temperatures reuse the compiled program
    m = sq.iid(jnp.log(jnp.array([0.5, 0.25, 0.25])), 7)
    v = sq.digit_sum_mod(3, 5, 2)
    sq.log_partition(m, v, 1.0)
    before = _kernels._soft_jit._cache_size()
    for beta in [0.1, 0.5, 2.0]:
        sq.log_partition(m, v, beta)
    assert _kernels._soft_jit._cache_size() == before


# ----------------------------------------------------------------------------- bad inputs
def test_bad_inputs_raise_clear_errors():
    model = sq.iid(jnp.log(jnp.array([0.5, 0.5])), 3)
    verifier = sq.count_at_least(2, 1, 2)
    with pytest.raises(TypeError, match="SequenceModel"):
        sq.log_partition(jnp.zeros((3, 2)), verifier, 1.0)
    with pytest.raises(ValueError, match="vocab"):
        sq.log_partition(model, sq.count_at_least(3, 1, 2), 1.0)
    with pytest.raises(ValueError, match="beta"):
        sq.tilt(model, verifier, 0.0)
    with pytest.raises(ValueError, match="does not normalize"):
        sq.iid(jnp.array([0.0, 0.0]), 3)
    with pytest.raises(ValueError, match="transition"):
        sq.finite_state(jnp.log(jnp.full((2, 2), 0.5)), jnp.array([[0, 2], [1, 1]]), length=3)
    with pytest.raises(ValueError, match="reward"):
        sq.log_partition(model, verifier, 1.0, reward=jnp.ones(2))
    with pytest.raises(ValueError, match="step_energy"):
        sq.log_partition(model, verifier, 1.0, step_energy=jnp.ones((2, 2)))
    with pytest.raises(ValueError, match="at most one"):
        sq.tilt(model, verifier, 1.0, reward=jnp.ones(3), energy=jnp.ones(3))
    with pytest.raises(ValueError, match="-inf"):
        sq.log_partition(model, verifier, 1.0, energy=jnp.array([0.0, -jnp.inf, 0.0]))
    with pytest.raises(ValueError, match="MAX_ENUMERATE"):
        sq.enumerate(sq.iid(jnp.log(jnp.array([0.5, 0.5])), 40))
    with pytest.raises(ValueError, match="not a token"):
        sq.log_prob(model, jnp.array([0, 2, 1]))
    with pytest.raises(ValueError, match="length"):
        sq.log_prob(model, jnp.array([0, 1]))
    with pytest.raises(TypeError, match="PRNG key"):
        sq.sample(0, model, 3)
    with pytest.raises(ValueError, match="not a token"):
        sq.count_at_least(2, 5, 1)
    with pytest.raises(ValueError, match="context"):
        sq.markov(jnp.log(jnp.full((2, 2), 0.5)), 3, [])
    with pytest.raises(ValueError, match="kl_budget"):
        sq.tilt_for_kl(model, verifier, -1.0)
    with pytest.raises(ValueError, match="length"):
        sq.kl(model, sq.iid(jnp.log(jnp.array([0.5, 0.5])), 4))


# ----------------------------------------------------------------------------- the experiment
def test_sequence_barrier_experiment_numbers_match_the_api():
    from experiments import sequence_barrier as exp

    config = {**exp.CONFIG, **exp.TINY}
    result = exp.run(config, jax.random.key(config["seed"]))
    cfg = result["config"]
    vocab, length, target = cfg["vocab"], cfg["length"], cfg["target"]
    table = np.asarray(cfg["logp_table"])
    base = sq.markov(table, length, cfg["context"])  # rebuilt from the JSON inputs alone

    # log p0(target[:l]): a running sum of Markov conditionals (independent of any DP)
    prev = [cfg["context"][-1], *target]
    want = np.cumsum([table[prev[t], target[t]] for t in range(length)])
    np.testing.assert_allclose(result["log_p_target"], want, rtol=1e-12, atol=1e-12)

    # tail -> barrier exactly at the budget threshold 1 - (1 - c)^(1/N)
    c = cfg["confidence"]
    for i, budget in enumerate(cfg["budgets"]):
        thr = result["thresholds"][str(budget)]
        assert thr == pytest.approx(1.0 - (1.0 - c) ** (1.0 / budget), rel=1e-12)
        ell = result["crossing_length"][str(budget)]
        assert 1 < ell <= length
        assert want[ell - 1] < math.log(thr) <= want[ell - 2]
        if i == 0:  # and by the DP over all strings, with the library's prefix verifier
            crossed = sq.starts_with(vocab, target[:ell])
            before = sq.starts_with(vocab, target[: ell - 1])
            assert float(sq.reach_probability(base, crossed, budget)) < c
            assert float(sq.reach_probability(base, before, budget)) >= c

    # a plotted log-partition recomputed with the library verifier for "starts with target[:l]"
    el = result["elicit"]
    np.testing.assert_allclose(el["kl"], el["kl_bernoulli"], rtol=1e-9)  # T6
    for i in (el["length"].index(cfg["compare_length"]),):
        ell, beta = el["length"][i], el["beta"][i]
        answer = sq.starts_with(vocab, target[:ell])
        assert el["log_partition"][i] == pytest.approx(
            float(sq.log_partition(base, answer, beta)), rel=1e-12, abs=1e-12
        )
        tilted = sq.tilt(base, answer, beta)
        assert float(sq.accept_logprob(tilted, answer)) == pytest.approx(
            math.log(cfg["elicit_mass"]), rel=1e-10
        )

    # token- vs sequence-level at the same KL: the plotted target mass by a DP on the tilt
    comp = result["compare"]
    ell = cfg["compare_length"]
    answer = sq.starts_with(vocab, target[:ell])
    step_reward = np.zeros((length, vocab))
    step_reward[np.arange(ell), target[:ell]] = 1.0 / ell
    for name in ("sequence", "token"):
        out = comp[name]
        np.testing.assert_allclose(out["kl"], comp["kl_budget"], rtol=1e-9)
        j = len(out["beta"]) // 2
        if name == "sequence":
            tilted = sq.tilt(base, answer, out["beta"][j])
        else:
            tilted = sq.tilt(base, None, out["beta"][j], step_energy=-step_reward)
        assert out["log_target_mass"][j] == pytest.approx(
            float(sq.accept_logprob(tilted, answer)), rel=1e-9
        )
    # T6: the sequence-level tilt is the cheapest way to put mass on the target
    assert np.all(
        np.asarray(comp["sequence"]["log_target_mass"])
        >= np.asarray(comp["token"]["log_target_mass"]) - 1e-12
    )
    np.testing.assert_allclose(
        comp["sequence"]["log_target_mass"], comp["log_target_mass_frontier"], rtol=1e-8
    )
    fig = exp.plot(result)
    assert len(fig.axes) == 4 and all(ax.get_title() for ax in fig.axes)
