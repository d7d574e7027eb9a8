"""freeenergy.expand on sequences: search, tools, interaction, expert iteration, the experiments.

Oracles are independent of the library's dynamic programs: strings are listed with
``itertools.product`` and walked token by token in plain Python (generator and automaton), the
searches and the retry protocol are re-derived from their definitions on those lists, and the
flat-space functions are applied to the result. Monte Carlo only for the samplers, with stated
bounds and fixed keys. Float64 throughout.
"""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from oracles import all_strings, string_logp

import freeenergy as fe
from freeenergy import expand
from freeenergy import sequences as sq
from freeenergy import train as tr

ATOL = 1e-12


# ----------------------------------------------------------------------------- the oracle


def oracle_p(model, ys):
    """p(y) of every string by walking the generator (plain Python)."""
    return np.exp(string_logp(model, ys))


def oracle_accepts(verifier, ys):
    trans, acc = np.asarray(verifier.transition), np.asarray(verifier.accepting)
    out = []
    for y in ys:
        a = int(verifier.initial)
        for tok in y:
            a = trans[a, tok]
        out.append(bool(acc[a]))
    return np.asarray(out)


class Space:
    """A tiny string space with p, the accepted set, and prefix sums by brute force."""

    def __init__(self, model, verifier):
        self.vocab, self.length = model.vocab, model.length
        self.ys = all_strings(self.vocab, self.length)
        self.p = oracle_p(model, self.ys)
        self.acc = oracle_accepts(verifier, self.ys)
        self.arr = np.asarray(self.ys)

    def block(self, prefix):
        k = len(prefix)
        if k == 0:
            return np.ones(len(self.ys), bool)
        return np.all(self.arr[:, :k] == np.asarray(prefix), axis=1)

    def mass(self, prefix):
        return float(self.p[self.block(prefix)].sum())

    def accepted_mass(self, prefix):
        return float(self.p[self.block(prefix) & self.acc].sum())

    def tree_search(self):
        """q(y) = prod_t p(y_t|P)/m(P) over viable children, E[draws] and Var[draws]."""
        q = np.zeros(len(self.ys))
        mean_draws, second = 0.0, 0.0
        for i, y in enumerate(self.ys):
            if not self.acc[i] or self.p[i] == 0:
                continue
            prob, e_d, v_d = 1.0, 0.0, 0.0
            for t in range(self.length):
                pre = y[:t]
                viable = sum(
                    self.mass(pre + (c,))
                    for c in range(self.vocab)
                    if self.accepted_mass(pre + (c,)) > 0
                )
                m = viable / self.mass(pre)
                prob *= self.mass(y[: t + 1]) / self.mass(pre) / m
                e_d += 1.0 / m
                v_d += (1.0 - m) / m**2  # geometric number of draws at this node
            q[i] = prob
            mean_draws += prob * e_d
            second += prob * (v_d + e_d**2)
        return q, mean_draws, second - mean_draws**2


def random_markov(seed, vocab, length, zeros=((0, 1),)):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(vocab, vocab))
    for a, b in zeros:
        logits[a, b] = -np.inf
    return sq.markov(fe.normalize(jnp.asarray(logits)), length, [vocab - 1])


V3, L4 = 3, 4
MODEL = random_markov(0, V3, L4)
VERIFIERS = {
    "count": sq.count_at_least(V3, 2, 2),
    "contains": sq.contains(V3, [2, 0]),
    "exact": sq.exact_match(V3, [2, 2, 0, 2]),
    "digits": sq.digit_sum_mod(V3, 4, 1),
}


@pytest.fixture(scope="module")
def spaces():
    return {name: Space(MODEL, v) for name, v in VERIFIERS.items()}


# ----------------------------------------------------------------------------- process check
@pytest.mark.parametrize("name", sorted(VERIFIERS))
def test_can_accept_is_the_brute_force_reachability_of_acceptance(name):
    verifier = VERIFIERS[name]
    alive = np.asarray(expand.can_accept(verifier, L4))
    trans, acc = np.asarray(verifier.transition), np.asarray(verifier.accepting)
    assert alive.shape == (L4 + 1, verifier.num_states)
    for t in range(L4 + 1):
        for a in range(verifier.num_states):
            reach = False
            for rest in itertools.product(range(V3), repeat=L4 - t):
                b = a
                for tok in rest:
                    b = trans[b, tok]
                reach |= bool(acc[b])
            assert alive[t, a] == reach


# ----------------------------------------------------------------------------- tree search
@pytest.mark.parametrize("name", ["count", "contains", "exact"])
def test_tree_search_equals_the_pruned_generator_enumerated(name, spaces):
    space = spaces[name]
    searched, cost = expand.tree_search(MODEL, VERIFIERS[name])
    q = np.exp(np.asarray(sq.enumerate(searched)))
    oracle_q, mean_draws, _ = space.tree_search()
    np.testing.assert_allclose(q, oracle_q, atol=ATOL)
    assert abs(q.sum() - 1.0) < 1e-12
    # every output is accepted and has positive probability under the generator
    assert np.all((q > 0) <= (space.acc & (space.p > 0)))
    assert abs(float(cost.tokens) - mean_draws) < 1e-9 * mean_draws
    assert float(cost.verifier_calls) == float(cost.tokens) and float(cost.samples) == 1.0
    # a reweighting of the generator inside its support, and not p( . | accepted)
    assert float(sq.kl(searched, MODEL)) < np.inf
    conditional = np.where(space.acc, space.p, 0.0) / space.accepted_mass(())
    assert np.max(np.abs(q - conditional)) > 1e-3 or name == "exact"


def test_tree_search_on_a_point_target_costs_the_sum_of_inverse_token_probabilities():
    probs = np.array([0.6, 0.3, 0.1])
    target = [2, 1, 2, 0, 2]
    base = sq.iid(jnp.log(jnp.asarray(probs)), len(target))
    searched, cost = expand.tree_search(base, sq.exact_match(3, target))
    assert abs(float(jnp.exp(sq.log_prob(searched, jnp.asarray(target)))) - 1.0) < 1e-12
    assert abs(float(cost.tokens) - sum(1 / probs[t] for t in target)) < 1e-9
    # flat best-of-n needs 1 / p(target) samples for one success on average
    assert 1 / np.prod(probs[target]) > 100 * float(cost.tokens)


def test_sample_tree_search_matches_the_exact_distribution_and_cost(spaces):
    """Frequencies within 5 sigma (+1/n) of the exact q; the total number of draws within
    5 sigma of n E[D], with Var[D] from the oracle (geometric draws per node)."""
    space = spaces["count"]
    n = 20_000
    tokens, cost = expand.sample_tree_search(jax.random.key(3), MODEL, VERIFIERS["count"], n)
    q, mean_draws, var_draws = space.tree_search()
    freq = np.bincount(np.asarray(expand.string_index(tokens, V3)), minlength=q.size) / n
    assert np.all(np.abs(freq - q) <= 5 * np.sqrt(q * (1 - q) / n) + 1.0 / n)
    assert np.all(np.asarray(sq.accepts(VERIFIERS["count"], tokens)))
    assert int(cost.samples) == n and int(cost.tokens) == int(cost.verifier_calls)
    assert abs(int(cost.tokens) - n * mean_draws) <= 5 * math.sqrt(n * var_draws)


def test_tree_search_raises_when_nothing_can_be_accepted():
    with pytest.raises(ValueError, match="accepts no string"):
        expand.tree_search(MODEL, sq.exact_match(V3, [0, 1, 0, 0]))  # 0 -> 1 has p = 0


# ----------------------------------------------------------------------------- beam search
@pytest.mark.parametrize("name", ["count", "contains"])
def test_beam_search_with_full_width_lists_the_most_probable_accepted_strings(name, spaces):
    space = spaces[name]
    width = V3 ** (L4 - 1)
    beams = expand.beam_search(MODEL, VERIFIERS[name], width)
    ok = space.acc & (space.p > 0)
    order = np.argsort(-np.where(ok, space.p, -1.0), kind="stable")[: min(width, ok.sum())]
    live = np.asarray(beams.logp) > -np.inf
    assert live.sum() == min(width, ok.sum())
    # best first (ties may come in either order), each beam's probability its own, and the same
    # set of strings whenever no tie straddles the cut
    probs = np.exp(np.asarray(beams.logp)[live])
    np.testing.assert_allclose(probs, space.p[order], rtol=1e-12)
    found = [tuple(y) for y in np.asarray(beams.tokens)[live]]
    np.testing.assert_allclose(oracle_p(MODEL, found), probs, rtol=1e-12)
    cut = np.sort(space.p[ok])[::-1]
    if len(cut) <= width or cut[width - 1] > cut[width] * (1 + 1e-12):
        assert set(found) == {tuple(y) for y in space.arr[order]}
    assert np.all(np.asarray(beams.accepted)[live])
    assert int(beams.cost.samples) == live.sum()


def test_beam_width_one_is_greedy_and_the_process_check_finds_what_outcome_checks_miss():
    model = random_markov(5, V3, L4)
    verifier = VERIFIERS["exact"]
    space = Space(model, verifier)

    def greedy(prune):
        prefix, scored = (), 0
        for _ in range(L4):
            scored += V3
            cands = [
                (space.mass(prefix + (c,)), c)
                for c in range(V3)
                if space.mass(prefix + (c,)) > 0
                and (not prune or space.accepted_mass(prefix + (c,)) > 0)
            ]
            prefix = prefix + (max(cands, key=lambda x: (x[0], -x[1]))[1],)
        return prefix, scored

    for prune in (True, False):
        beams = expand.beam_search(model, verifier, 1, prune=prune)
        expected, scored = greedy(prune)
        assert tuple(np.asarray(beams.tokens)[0]) == expected
        assert int(beams.cost.tokens) == scored
        assert bool(beams.accepted[0]) == bool(oracle_accepts(verifier, [expected])[0])
    assert bool(expand.beam_search(model, verifier, 1).accepted[0])
    assert not bool(expand.beam_search(model, verifier, 1, prune=False).accepted[0])


# ----------------------------------------------------------------------------- best-of-n
@pytest.mark.parametrize("n", [1, 3, 50])
def test_best_of_n_sequence_is_flat_best_of_n_of_the_enumeration(n, spaces):
    space = spaces["contains"]
    tilted, cost = expand.best_of_n_sequence(MODEL, VERIFIERS["contains"], n)
    q = np.exp(np.asarray(sq.enumerate(tilted)))
    with np.errstate(divide="ignore"):
        logp = np.log(space.p)
    flat = np.exp(np.asarray(expand.best_of_n(logp, space.acc.astype(float), n)))
    np.testing.assert_allclose(q, flat, atol=ATOL)
    p = space.accepted_mass(())
    assert abs(q[space.acc].sum() - (1 - (1 - p) ** n)) < 1e-12
    assert (int(cost.samples), int(cost.tokens), int(cost.verifier_calls)) == (n, n * L4, n)


# ----------------------------------------------------------------------------- support
def test_search_and_interaction_stay_in_the_support_unless_the_generator_changes(spaces):
    space = spaces["count"]
    support = space.p > 0
    verifier = VERIFIERS["count"]
    outputs = {
        "tree": sq.enumerate(expand.tree_search(MODEL, verifier)[0]),
        "best_of_n": sq.enumerate(expand.best_of_n_sequence(MODEL, verifier, 7)[0]),
        "retry": expand.retry(MODEL, verifier, 3).logp_final,
    }
    logp0 = jnp.log(jnp.asarray(space.p))
    for name, logq in outputs.items():
        q = np.exp(np.asarray(logq))
        assert np.all(q[~support] == 0), name
        assert fe.diagnose(logp0, logq, 16).verdict != "new-support", name
    beams = expand.beam_search(MODEL, verifier, 5)
    assert np.all(np.isfinite(np.asarray(sq.log_prob(MODEL, beams.tokens))))
    # a tool that writes the token pair the model never emits changes the generator
    tool_model = expand.augment(MODEL, expand.macro(V3, [0, 1], 0.3))
    logq_tool = expand.tool_distribution(tool_model)
    assert float(jnp.sum(jnp.exp(logq_tool)[~support])) > 0
    assert fe.diagnose(logp0, logq_tool, 16).verdict == "new-support"
    # so does new information (a mixture with a teacher of full support)
    teacher = jnp.full(space.p.size, -math.log(space.p.size))
    assert fe.diagnose(logp0, expand.mix(logp0, teacher, 0.1), 16).verdict == "new-support"


# ----------------------------------------------------------------------------- tools
def oracle_tool_distribution(tool_model):
    """Scatter the enumerated augmented model onto the original strings (unmark)."""
    aug = tool_model.model
    vocab, length = tool_model.vocab, tool_model.length
    marked = all_strings(2 * vocab, length)
    p_aug = oracle_p(aug, marked)
    out = {}
    for y, p in zip(marked, p_aug, strict=True):
        key = tuple(t % vocab for t in y)
        out[key] = out.get(key, 0.0) + p
    calls = sum(p * sum(t >= vocab for t in y) for y, p in zip(marked, p_aug, strict=True))
    return np.asarray([out[y] for y in all_strings(vocab, length)]), calls / tool_model.width


TOOLS = {
    "macro2": expand.macro(V3, [2, 0], 0.3),
    "macro1": expand.macro(V3, [1], 0.5),
    "solver": expand.prefix_solver(V3, [2, 2, 0, 2], 2, np.array([0.5, 0.2, 0.9, 1.0])),
    "always": expand.macro(V3, [2, 2], 1.0),
}


@pytest.mark.parametrize("name", sorted(TOOLS))
def test_tool_outputs_mapped_back_are_the_enumeration_of_the_augmented_model(name):
    tool_model = expand.augment(MODEL, TOOLS[name])
    q = np.exp(np.asarray(expand.tool_distribution(tool_model)))
    oracle, calls = oracle_tool_distribution(tool_model)
    np.testing.assert_allclose(q, oracle, atol=ATOL)
    assert abs(q.sum() - 1.0) < 1e-12
    assert abs(float(expand.expected_calls(tool_model)) - calls) < 1e-12
    for verifier in (VERIFIERS["count"], VERIFIERS["exact"]):
        acc = oracle_accepts(verifier, all_strings(V3, L4))
        lifted = expand.lift(verifier, tool_model)
        p_acc = float(jnp.exp(sq.accept_logprob(tool_model.model, lifted)))
        assert abs(p_acc - q[acc].sum()) < 1e-12
    # tool_logprob of a batch = the same numbers
    ys = np.asarray(all_strings(V3, L4))[[0, 7, 40, 80]]
    np.testing.assert_allclose(
        np.exp(np.asarray(expand.tool_logprob(tool_model, ys))), oracle[[0, 7, 40, 80]], atol=ATOL
    )


def test_a_tool_never_called_is_the_base_and_the_solver_writes_the_answer():
    space = Space(MODEL, VERIFIERS["exact"])
    never = expand.augment(MODEL, expand.macro(V3, [2, 0], 0.0))
    np.testing.assert_allclose(
        np.exp(np.asarray(expand.tool_distribution(never))), space.p, atol=ATOL
    )
    assert float(expand.expected_calls(never)) == 0.0
    # a solver called with probability one from the start writes the whole answer
    answer = [2, 2, 0, 2]
    solver = expand.augment(MODEL, expand.prefix_solver(V3, answer, 2, 1.0))
    q = np.exp(np.asarray(expand.tool_distribution(solver)))
    assert abs(q[int(expand.string_index(np.asarray(answer), V3))] - 1.0) < 1e-12
    assert abs(float(expand.expected_calls(solver)) - 2.0) < 1e-12


def test_tool_arguments_are_validated():
    with pytest.raises(ValueError, match="call_prob"):
        expand.macro(V3, [1, 2], 1.5)
    with pytest.raises(ValueError, match="vocab"):
        expand.augment(MODEL, expand.macro(4, [1], 0.5))
    with pytest.raises(ValueError, match="length"):
        expand.augment(MODEL, expand.macro(V3, [1, 1, 1, 1, 1], 0.5))
    with pytest.raises(ValueError, match="entries"):
        expand.augment(MODEL, expand.macro(V3, [1], np.array([0.1, 0.2])))


# ----------------------------------------------------------------------------- interaction
def oracle_retry(model, verifier, turns, exclude):
    """Brute force over every sequence of attempts; returns (final, E[attempts], E[tokens])."""
    vocab, length = model.vocab, model.length
    ys = all_strings(vocab, length)
    p = dict(zip(ys, oracle_p(model, ys), strict=True))
    acc = dict(zip(ys, oracle_accepts(verifier, ys), strict=True))
    alive = np.asarray(expand.can_accept(verifier, length))  # checked against brute force above
    trans = np.asarray(verifier.transition)

    def first_wrong(y):
        a = int(verifier.initial)
        for t, tok in enumerate(y):
            a = trans[a, tok]
            if not alive[t + 1, a]:
                return t
        return length

    def pref(prefix):
        return sum(v for y, v in p.items() if y[: len(prefix)] == prefix)

    final = dict.fromkeys(ys, 0.0)
    totals = {"attempts": 0.0, "tokens": 0.0}

    def go(y, prob, k, tokens):
        totals["attempts"] += prob  # attempt k happened
        if acc[y] or k == turns:
            final[y] += prob
            totals["tokens"] += prob * tokens
            return
        d = first_wrong(y)
        prefix, wrong = y[:d], y[d]
        pe = pref(prefix + (wrong,)) / pref(prefix)
        avoid = exclude and pe < 1.0
        for y2 in ys:
            if y2[:d] != prefix or (avoid and y2[d] == wrong):
                continue
            r = p[y2] / pref(prefix) / ((1.0 - pe) if avoid else 1.0)
            if r > 0:
                go(y2, prob * r, k + 1, tokens + length - d)

    for y in ys:
        if p[y] > 0:
            go(y, p[y], 1, length)
    return np.asarray([final[y] for y in ys]), totals["attempts"], totals["tokens"]


@pytest.mark.parametrize("exclude", [True, False])
@pytest.mark.parametrize(
    "vocab,length,verifier",
    [
        (2, 3, sq.exact_match(2, [1, 1, 0])),
        (3, 2, sq.count_at_least(3, 0, 2)),
        (3, 2, sq.digit_sum_mod(3, 3, 1)),
    ],
)
def test_retry_final_distribution_equals_brute_force_over_turns(vocab, length, verifier, exclude):
    model = random_markov(vocab * 10 + length, vocab, length)
    turns = 3
    out = expand.retry(model, verifier, turns, exclude=exclude)
    final, attempts, tokens = oracle_retry(model, verifier, turns, exclude)
    q = np.exp(np.asarray(out.logp_final))
    np.testing.assert_allclose(q, final, atol=ATOL)
    assert abs(q.sum() - 1.0) < 1e-12
    assert abs(float(out.cost.samples[-1]) - attempts) < 1e-12
    assert abs(float(out.cost.tokens[-1]) - tokens) < 1e-12
    acc = oracle_accepts(verifier, all_strings(vocab, length))
    p = oracle_p(model, all_strings(vocab, length))
    success = np.asarray(out.success)
    assert abs(success[0] - p[acc].sum()) < 1e-12
    assert abs(success[-1] - final[acc].sum()) < 1e-12
    assert np.all(np.diff(success) >= -1e-15)
    assert np.all(q[p == 0] == 0)  # never leaves the generator's support


def test_retry_with_exclusion_on_a_binary_alphabet_needs_one_turn_per_wrong_position():
    """V = 2, exact match, exclusion: the redrawn token at the revealed position is the right one
    and the tokens after it are fresh draws, so the retries needed are the wrong positions of a
    left-to-right scan of fresh tokens: Binomial(L, 1 - p1). P(success within k + 1 turns) =
    P(Binomial(L, 1 - p1) <= k); without exclusion a retry can repeat its mistake."""
    length, p1 = 3, 0.2
    base = sq.iid(jnp.log(jnp.array([1 - p1, p1])), length)
    verifier = sq.exact_match(2, [1] * length)
    out = expand.retry(base, verifier, 3)
    binom = np.cumsum(
        [math.comb(length, j) * (1 - p1) ** j * p1 ** (length - j) for j in range(length + 1)]
    )
    np.testing.assert_allclose(np.asarray(out.success), binom[:3], atol=1e-15)
    plain = expand.retry(base, verifier, 3, exclude=False)
    assert np.all(np.asarray(plain.success)[1:] < binom[1:3])


def test_sample_retry_matches_the_exact_final_distribution():
    """Frequencies within 5 sigma (+1/n) of the exact final distribution; totals within
    5 sigma of n times the expected cost (attempts <= turns and tokens <= turns * length bound
    the variance: Var <= E[X^2] <= max(X) E[X])."""
    model = random_markov(31, 3, 3)
    verifier = sq.count_at_least(3, 0, 2)
    turns, n = 3, 30_000
    out = expand.retry(model, verifier, turns)
    tokens, cost = expand.sample_retry(jax.random.key(5), model, verifier, turns, n)
    q = np.exp(np.asarray(out.logp_final))
    freq = np.bincount(np.asarray(expand.string_index(tokens, 3)), minlength=q.size) / n
    assert np.all(np.abs(freq - q) <= 5 * np.sqrt(q * (1 - q) / n) + 1.0 / n)
    for total, mean, top in (
        (cost.samples, out.cost.samples[-1], turns),
        (cost.tokens, out.cost.tokens[-1], turns * 3),
    ):
        assert abs(int(total) - n * float(mean)) <= 5 * math.sqrt(n * top * float(mean))


def test_first_error_is_the_first_dead_prefix():
    verifier = sq.count_at_least(3, 2, 2)
    ys = np.asarray(all_strings(3, 3))
    out = np.asarray(expand.first_error(verifier, ys))
    for y, d in zip(ys, out, strict=True):
        count, expected = 0, 3
        for t, tok in enumerate(y):
            count += tok == 2
            if count + (3 - t - 1) < 2:
                expected = t
                break
        assert d == expected


# ----------------------------------------------------------------------------- expert iteration
@pytest.fixture(scope="module")
def barrier_result():
    """The barrier experiment at its TINY size: the accepted set is "at least 4 of the rare token
    (probability 0.02) in 5", expert iteration and GRPO with the same sample budget."""
    from experiments import barrier_search as module

    config = {**module.CONFIG, **module.TINY}
    return module, module.run(config, jax.random.key(config["seed"]))


def test_expert_iteration_crosses_a_barrier_while_grpo_with_the_same_samples_gains_nothing(
    barrier_result,
):
    """The accepted set has base mass p = 5 * 0.02^4 * 0.98 + 0.02^5 ~ 7.9e-7. GRPO from the
    base moves only after some group contains a success; it draws as many complete samples M as
    expert iteration spends generated tokens, so P(it ever sees a success) <= 1 - (1 - p)^M,
    which is <= 1e-3 here. With these fixed keys it sees none: every group has zero signal, the
    parameters stay exactly at the base (Adam's update of a zero gradient is zero), nothing is
    gained or lost. Expert iteration (tree search with the process check, then SFT) makes
    accepted strings accessible at the budget."""
    result = barrier_result[1]
    cfg = result["config"]
    assert (cfg["length"], cfg["min_count"], cfg["token_probs"][-1]) == (5, 4, 0.02)
    p = 5 * 0.02**4 * 0.98 + 0.02**5
    logp0 = np.asarray(cfg["logp0"])
    accepted = np.asarray(cfg["accepted"], bool)
    budget = cfg["budget"]
    assert abs(np.exp(logp0)[accepted].sum() - p) < 1e-18
    gr = result["grpo"]
    bound = -math.expm1(gr["samples"] * math.log1p(-p))
    assert gr["samples"] >= result["tokens_expert_iteration"] and bound <= 1e-3
    assert np.all(np.asarray(gr["zero_signal"]) == 1.0)
    logq_grpo = np.asarray(result["logq"]["grpo"])
    np.testing.assert_array_equal(logq_grpo, logp0)
    d_grpo = fe.diagnose(logp0, logq_grpo, budget)
    assert int(d_grpo.gained) == 0 and int(d_grpo.lost) == 0
    ei = result["expert_iteration"]
    assert np.all(np.asarray(ei["successes"]) == cfg["searches"])  # every search succeeds
    logq = np.asarray(result["logq"]["expert_iteration"])
    check = fe.diagnose(logp0, logq, budget)
    assert int(ei["gained"][-1]) == int(check.gained) > 0
    assert int(ei["lost"][-1]) == int(check.lost)
    gained = np.asarray(fe.accessible_support(logq, budget)) & ~np.asarray(
        fe.accessible_support(logp0, budget)
    )
    assert np.any(gained & accepted)  # accepted strings crossed the barrier
    assert float(fe.pass_at_k(logp0, accepted, budget)) < 1e-3
    assert float(fe.pass_at_k(logq, accepted, budget)) > 0.5
    assert result["tokens_expert_iteration"] < 1e-3 / p  # far below the 1 / p of sampling
    _check_barrier_experiment(*barrier_result)


def _check_barrier_experiment(module, result):
    """The barrier experiment's numbers against closed forms and the API."""
    cfg = result["config"]
    probs = np.asarray(cfg["token_probs"])
    length, m = cfg["length"], cfg["min_count"]
    r = probs[-1]
    p = sum(math.comb(length, j) * r**j * (1 - r) ** (length - j) for j in range(m, length + 1))
    k = np.asarray(result["k"], dtype=float)
    pk = result["pass_at_k"]
    np.testing.assert_allclose(pk["base"], -np.expm1(k * math.log1p(-p)), rtol=1e-9)
    np.testing.assert_allclose(pk["grpo"], pk["base"], rtol=1e-12)  # GRPO never moved
    accepted = np.asarray(cfg["accepted"], bool)
    logq_ei = np.asarray(result["logq"]["expert_iteration"])
    np.testing.assert_allclose(
        pk["expert_iteration"], np.asarray(fe.pass_at_k(logq_ei, accepted, k)), atol=1e-12
    )
    assert pk["expert_iteration"][-1] > 0.5 > pk["base"][-1]
    gr = result["grpo"]
    assert gr["steps"] == math.ceil(result["tokens_expert_iteration"] / cfg["group_size"])
    assert np.all(np.asarray(gr["zero_signal"]) == 1.0)
    assert abs(gr["all_fail_probability"] - (1 - p) ** cfg["group_size"]) < 1e-15
    assert abs(gr["success_seen_bound"] - (-math.expm1(gr["samples"] * math.log1p(-p)))) < 1e-15
    assert gr["gained"] == 0 and gr["lost"] == 0
    ei = result["expert_iteration"]
    d = fe.diagnose(cfg["logp0"], logq_ei, cfg["budget"], cfg["confidence"])
    assert ei["gained"][-1] == int(d.gained) > 0 and ei["lost"][-1] == int(d.lost)
    assert sum(ei["tokens"]) == result["tokens_expert_iteration"]
    fig = module.plot({"experiment": "barrier_search", **result})
    assert len(fig.axes) == 3


def test_sequence_policy_is_the_enumerated_model():
    base = sq.iid(jnp.log(jnp.asarray([0.7, 0.2, 0.08, 0.02])), 3)
    policy, to_model = expand.sequence_policy(base)
    params = policy.init(jax.random.key(0))
    np.testing.assert_allclose(
        np.asarray(policy.logprobs(params)), np.asarray(sq.enumerate(base)), atol=ATOL
    )
    moved = params.at[0, 0, 3].add(1.0)
    ys = sq.strings(4, 3)
    np.testing.assert_allclose(
        np.asarray(policy.logprobs(moved)),
        np.asarray(sq.log_prob(to_model(moved), ys)),
        atol=ATOL,
    )
    grpo = tr.make_trainer(policy, tr.grpo(num_samples=4), optax.adam(0.1))
    with pytest.raises(ValueError, match="SFT"):
        expand.expert_iteration(
            jax.random.key(0),
            grpo,
            to_model,
            sq.count_at_least(4, 3, 2),
            rounds=1,
            searches=1,
            sft_steps=1,
            budget=8,
        )


# ----------------------------------------------------------------------------- pass@k crossover
@pytest.fixture(scope="module")
def crossover_result():
    from experiments import passk_crossover as module

    config = {**module.CONFIG, **module.TINY}
    return module, module.run(config, jax.random.key(config["seed"]))


def _shared_objective(theta, logp0, reward, beta):
    """mean over prompts of E_q[r] - beta KL(q || p0) with q ∝ p0^(1 + theta) (NumPy)."""
    logits = (1.0 + theta) * logp0
    logq = logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)
    q = np.exp(logq)
    return np.mean(np.sum(q * reward, -1) - beta * np.sum(q * (logq - logp0), -1)), logq


def test_passk_crossover_comes_from_the_shared_parameters(crossover_result):
    """Where the crossover comes from, exactly. The same objective E_q[r] - beta KL(q||p0), with
    exact expectations (no finite-sample or truncation effect), solved two ways:

    * per prompt (each prompt its own parameters): the optimum is the Gibbs tilt per prompt,
      which raises every prompt's success mass, so pass@k >= base at every k and prompt (also
      checked by training a fully expressive policy to it);
    * with one parameter shared by all prompts (q_p ∝ p0_p^(1+theta)): the trained theta is the
      stationary point of the objective (checked independently in NumPy), sharpening is driven
      by the easy prompts, and on the hard prompts it lowers the rare correct answer's mass for
      every theta > 0 — mean pass@1 rises, mean pass@k at the largest k falls below the base.
    """
    module, result = crossover_result
    cfg = result["config"]
    logp0 = np.asarray(cfg["logp0"])
    correct = np.asarray(cfg["correct"], bool)
    reward = correct.astype(float)
    beta = result["beta"]
    theta = result["theta"]
    k = np.asarray(result["k"], dtype=float)

    # the shared optimum, recomputed: q = normalize((1 + theta) log p0), stationary in theta
    value, logq = _shared_objective(theta, logp0, reward, beta)
    np.testing.assert_allclose(logq, np.asarray(result["logq_shared"]), atol=1e-10)

    def slope(t, h=1e-5):
        up = _shared_objective(t + h, logp0, reward, beta)[0]
        return (up - _shared_objective(t - h, logp0, reward, beta)[0]) / (2 * h)

    lo, hi = theta - 0.5, theta + 0.5  # bisection for the stationary point near theta
    assert slope(lo) > 0 > slope(hi)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if slope(mid) > 0 else (lo, mid)
    assert abs(theta - lo) < 2e-3  # the trained parameter is the shared optimum
    assert value >= max(_shared_objective(t, logp0, reward, beta)[0] for t in (0.0, theta / 2))
    # on hard prompts the correct mass falls monotonically as theta grows from 0
    easy = np.asarray(result["by_prompt"]["easy"], bool)
    grid = np.linspace(0.0, theta, 30)
    hard_mass = np.asarray(
        [np.exp(_shared_objective(t, logp0, reward, beta)[1])[~easy][correct[~easy]] for t in grid]
    )
    assert np.all(np.diff(hard_mass, axis=0) < 0)

    def mean_pass(lq):
        s = np.sum(np.where(correct, np.exp(lq), 0.0), -1)
        return np.mean(-np.expm1(k[:, None] * np.log1p(-s[None, :])), axis=-1)

    np.testing.assert_allclose(result["shared"]["rl"], mean_pass(logq), atol=1e-12)
    np.testing.assert_allclose(result["shared"]["base"], mean_pass(logp0), atol=1e-12)
    shared, base = np.asarray(result["shared"]["rl"]), np.asarray(result["shared"]["base"])
    assert shared[0] > base[0] and shared[-1] < base[-1]  # the curves cross

    # per prompt: the exact tilt at the same KL never crosses, on any prompt
    per_prompt = np.asarray(result["by_prompt"]["pass_at_k_per_prompt"])
    per_base = np.asarray(result["by_prompt"]["pass_at_k_base"])
    assert np.all(per_prompt >= per_base - 1e-12)
    assert np.all(np.asarray(result["per_prompt"]["rl"]) >= base - 1e-12)
    betas = np.asarray(result["by_prompt"]["beta_per_prompt"])
    tilt = logp0 + reward / betas[:, None]
    tilt = tilt - np.logaddexp.reduce(tilt, axis=-1, keepdims=True)
    np.testing.assert_allclose(mean_pass(tilt), result["per_prompt"]["rl"], atol=1e-10)
    kl_tilt = np.sum(np.exp(tilt) * (tilt - logp0), -1)
    np.testing.assert_allclose(kl_tilt, result["by_prompt"]["kl"], rtol=1e-8)

    # the same objective, trained with parameters that are not shared (fully expressive per
    # prompt: shared theta plus per-prompt offsets), converges to the per-prompt Gibbs tilt
    lp0 = jnp.asarray(logp0)
    policy = tr.shared(lp0, lp0[..., None], offsets=True)
    trainer = tr.make_trainer(policy, tr.reinforce("exact", kl="exact"), optax.adam(0.1))
    state, _ = tr.run(trainer, jax.random.key(0), tr.Batch(jnp.asarray(reward), beta), 600)
    trained = np.asarray(policy.logprobs(state.params))
    gibbs = np.asarray(fe.gibbs(lp0, -jnp.asarray(reward), beta))
    assert float(np.max(np.asarray(fe.kl(gibbs, trained)))) < 1e-4
    assert np.all(mean_pass(trained) >= base - 1e-6)
    fig = module.plot({"experiment": "passk_crossover", **result})
    assert len(fig.axes) == 3


# ----------------------------------------------------------------------------- experiments
@pytest.fixture(scope="module")
def tools_result():
    from experiments import tools_and_information as module

    config = {**module.CONFIG, **module.TINY}
    return module, module.run(config, jax.random.key(config["seed"]))


def test_tools_and_information_numbers_match_independent_computations(tools_result):
    module, result = tools_result
    cfg = result["config"]
    probs = np.asarray(cfg["token_probs"])
    target = [int(t) for t in cfg["target"]]
    motif = [int(t) for t in cfg["motif"]]
    length, width = len(target), len(motif)
    p_target = float(np.prod(probs[target]))
    thr = -math.expm1(math.log1p(-cfg["confidence"]) / cfg["budget"])

    def macro_mass(pi):
        """P(the macro-augmented i.i.d. generator writes the target): recursion over free
        positions t (a call writes the motif when it fits)."""
        f = [0.0] * (length + 1)
        f[length] = 1.0
        for t in range(length - 1, -1, -1):
            fits = t + width <= length
            call = pi if fits else 0.0
            f[t] = (1 - call) * probs[target[t]] * f[t + 1]
            if fits and target[t : t + width] == motif:
                f[t] += call * f[t + width]
        return f[0]

    tool = result["tool"]
    expected = [macro_mass(pi) for pi in tool["call_prob"]]
    np.testing.assert_allclose(tool["target_mass"], expected, rtol=1e-10)
    assert abs(tool["base_mass"] - p_target) < 1e-15
    assert tool["regime_before"] == "barrier" and tool["regime_after"] in ("tail", "basin")
    assert np.array_equal(tool["accessible"], np.asarray(expected) >= thr)
    assert abs(tool["accept_probability"] - tool["chosen_mass"]) < 1e-12
    # new information: the target's mass after mixing is w * teacher(target)
    info = result["information"]
    stay = cfg["teacher_stay"]
    vocab = probs.size
    teacher = 1.0 / vocab
    for prev, tok in zip(target[:-1], target[1:], strict=True):
        teacher *= stay if tok == motif[(motif.index(prev) + 1) % 2] else (1 - stay) / (vocab - 1)
    assert abs(info["teacher_mass"] - teacher) < 1e-12
    np.testing.assert_allclose(info["target_mass"], np.asarray(info["weight"]) * teacher, rtol=1e-9)
    assert info["status_before"] == "singular" and info["kl_to_target_before"] == math.inf
    assert info["verdict_of_mixing"] == "new-support"
    w = np.asarray(info["weight"])
    assert np.all(np.asarray(info["kl_forgetting"]) <= -np.log1p(-w) + 1e-15)
    # costs: tree search on a point target, best-of-n samples, the cheapest tilt (T6)
    costs = result["costs"]
    at = {name: i for i, name in enumerate(costs["mechanism"])}
    tree = at["tree search"]
    assert abs(costs["tokens"][tree] - sum(1 / probs[t] for t in target)) < 1e-9
    assert abs(costs["kl"][tree] - (-math.log(p_target))) < 1e-9  # a point mass on the target
    n_best = costs["samples"][at["best-of-n"]]
    assert n_best == math.ceil(math.log1p(-cfg["confidence"]) / math.log1p(-p_target))
    bern = thr * math.log(thr / p_target) + (1 - thr) * math.log((1 - thr) / (1 - p_target))
    assert abs(costs["kl"][at["reweighting"]] - bern) < 1e-9 * bern
    success = np.asarray(result["retry_success"])
    assert abs(success[0] - p_target) < 1e-15 and np.all(np.diff(success) >= -1e-15)
    fig = module.plot({"experiment": "tools_and_information", **result})
    assert len(fig.axes) >= 4


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda: expand.beam_search(MODEL, VERIFIERS["count"], 0), ValueError, "width"),
        (lambda: expand.beam_search(MODEL, None, 2), TypeError, "verifier"),
        (lambda: expand.tree_search(MODEL, sq.exact_match(4, [1])), ValueError, "vocab"),
        (lambda: expand.tree_search("model", VERIFIERS["count"]), TypeError, "SequenceModel"),
        (lambda: expand.sample_tree_search(0, MODEL, VERIFIERS["count"], 3), TypeError, "key"),
        (lambda: expand.best_of_n_sequence(MODEL, VERIFIERS["count"], 0), ValueError, "n"),
        (lambda: expand.retry(MODEL, VERIFIERS["count"], 0), ValueError, "turns"),
        (lambda: expand.retry(MODEL, VERIFIERS["count"], 2, exclude=1), TypeError, "exclude"),
        (lambda: expand.can_accept(VERIFIERS["count"], 0), ValueError, "length"),
        (lambda: expand.string_index([[0, 3]], 3), ValueError, "tokens"),
        (lambda: expand.first_error(VERIFIERS["count"], [[0, 5, 1, 1]]), ValueError, "token"),
        (lambda: expand.prefix_solver(3, [1, 2], 3, 0.5), ValueError, "width"),
        (lambda: expand.tool_logprob("x", [[0, 1, 2, 0]]), TypeError, "ToolModel"),
    ],
)
def test_invalid_arguments_raise_errors_naming_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()
