"""The sample-based estimators of ``freeenergy.empirical`` against exact answers.

Data are simulated from exact models (``freeenergy.empirical.simulate``); every estimate is
compared with the quantity the library computes from the true probabilities: the expectation of
the pass@k estimator summed over the binomial (not Monte Carlo), bootstrap coverage against the
nominal level within Monte-Carlo error, verdicts against exact reachability as ``n`` grows, and
Good–Turing missing mass against the exact answer distribution of a sequence model. Also: the
simulator itself (its records against the models), the file writers round-tripped through
``em.load``, and the ``estimators_vs_truth`` experiment at tiny size, recomputed.
"""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import experiments
import freeenergy as fe
from experiments._io import to_jsonable
from freeenergy import empirical as em
from freeenergy import sequences as seq
from freeenergy.empirical import simulate


def binomial_pmf(n: int, p: float) -> np.ndarray:
    """P(C = c) for c = 0..n, C ~ Binomial(n, p), from log-gamma (independent of the library)."""
    c = np.arange(n + 1)
    if p == 0.0 or p == 1.0:
        return (c == (0 if p == 0.0 else n)).astype(np.float64)
    log_comb = np.array(
        [math.lgamma(n + 1) - math.lgamma(j + 1) - math.lgamma(n - j + 1) for j in c]
    )
    return np.exp(log_comb + c * math.log(p) + (n - c) * math.log1p(-p))


# ----------------------------------------------------------------------------- unbiasedness
@given(
    n=st.integers(1, 60),
    p=st.floats(1e-4, 1 - 1e-4),
    ks=st.lists(st.integers(1, 60), min_size=1, max_size=4),
)
def test_pass_at_k_estimator_is_exactly_unbiased(n, p, ks):
    # E[1 - C(n-C, k)/C(n, k)] over C ~ Binomial(n, p), summed over every c, is 1 - (1-p)^k.
    ks = sorted({min(k, n) for k in ks})
    every_c = em.Counts(np.full(n + 1, n), np.arange(n + 1))
    table = np.asarray(em.pass_at_k(every_c, ks))
    expectation = binomial_pmf(n, p) @ table
    exact = np.asarray(fe.reach_probability(jnp.log(p), jnp.asarray(ks, dtype=jnp.float64)))
    np.testing.assert_allclose(expectation, exact, rtol=1e-11, atol=1e-15)
    np.testing.assert_allclose(exact, 1 - (1 - p) ** np.asarray(ks), rtol=1e-12)


@pytest.mark.parametrize(("n", "p"), [(2000, 1e-3), (5000, 0.3), (3000, 1 - 1e-4)])
def test_pass_at_k_estimator_is_unbiased_at_large_n(n, p):
    ks = [1, 7, 100, n // 2, n]
    every_c = em.Counts(np.full(n + 1, n), np.arange(n + 1))
    expectation = binomial_pmf(n, p) @ np.asarray(em.pass_at_k(every_c, ks))
    exact = np.asarray(fe.reach_probability(jnp.log(p), jnp.asarray(ks, dtype=jnp.float64)))
    np.testing.assert_allclose(expectation, exact, rtol=1e-9, atol=1e-13)


# ----------------------------------------------------------------------------- coverage
REPLICATES = 200
LEVEL = 0.95
# Coverage of R intervals at level L has Monte-Carlo standard deviation sqrt(L(1-L)/R).
BAND = 4 * math.sqrt(LEVEL * (1 - LEVEL) / REPLICATES)


def beta_population_pass_at_k(a: float, b: float, k: np.ndarray) -> np.ndarray:
    """E[1 - (1-p)^k] for p ~ Beta(a, b): 1 - B(a, b+k)/B(a, b)."""
    lb = [math.lgamma(b + kk) - math.lgamma(a + b + kk) for kk in k]
    return 1 - np.exp(np.asarray(lb) - math.lgamma(b) + math.lgamma(a + b))


def test_beta_population_pass_at_k_closed_form():
    # the closed form against a Riemann sum of the Beta density (a check of the test's truth)
    from scipy import integrate, stats

    for k in (1, 5, 40):
        val = integrate.quad(
            lambda x, k=k: (1 - (1 - x) ** k) * stats.beta.pdf(x, 0.7, 1.6), 0, 1, limit=200
        )[0]
        assert beta_population_pass_at_k(0.7, 1.6, np.array([k]))[0] == pytest.approx(val, rel=1e-8)


def test_bootstrap_covers_the_population_pass_at_k():
    # Prompts drawn from Beta(a, b), n samples each: the percentile bootstrap over prompts covers
    # the population pass@k 1 - B(a, b+k)/B(a, b) at the nominal rate.
    a, b, num, n, ks = 0.7, 1.6, 100, 16, np.array([1, 4, 16])
    truth = beta_population_pass_at_k(a, b, ks)
    covered = np.zeros(ks.size)
    for key in jax.random.split(jax.random.key(11), REPLICATES):
        key_p, key_sim, key_boot = jax.random.split(key, 3)
        p = simulate.beta_prompts(key_p, num, a, b)
        sim = simulate.flat(key_sim, p, p, n)
        curve = em.pass_at_k_curve(sim.base, ks, num_bootstrap=300, key=key_boot, level=LEVEL)
        covered += (np.asarray(curve.low) <= truth) & (truth <= np.asarray(curve.high))
    coverage = covered / REPLICATES
    assert np.all(np.abs(coverage - LEVEL) <= BAND), coverage


def test_paired_bootstrap_covers_the_population_difference():
    # A finite population of prompts with known probabilities, base and the exact per-prompt
    # tilt; each data set draws its prompts uniformly from it, so the estimand is the population
    # mean of (1 - (1-q)^k) - (1 - (1-p)^k).
    population = simulate.beta_prompts(jax.random.key(5), 40, 0.5, 1.5)
    tilted = simulate.tilt_success(population, 1.0)
    ks = np.array([1, 8])
    truth = np.mean((1 - population[:, None]) ** ks - (1 - tilted[:, None]) ** ks, axis=0)
    covered = np.zeros(ks.size)
    for key in jax.random.split(jax.random.key(12), REPLICATES):
        key_idx, key_sim, key_boot = jax.random.split(key, 3)
        idx = np.asarray(jax.random.randint(key_idx, (80,), 0, population.size))
        sim = simulate.flat(key_sim, population[idx], tilted[idx], 8)
        d = em.paired_difference(
            sim.base, sim.trained, ks, num_bootstrap=300, key=key_boot, level=LEVEL
        )
        covered += (np.asarray(d.low) <= truth) & (truth <= np.asarray(d.high))
    coverage = covered / REPLICATES
    assert np.all(np.abs(coverage - LEVEL) <= BAND), coverage


# ----------------------------------------------------------------------------- verdicts
def test_true_verdicts_are_exact_reachability():
    p = simulate.beta_prompts(jax.random.key(3), 300, 0.3, 2.0)
    q = simulate.tilt_success(p, 0.4)
    budget, c = 20, 0.5
    tau = 1 - (1 - c) ** (1 / budget)
    np.testing.assert_array_equal(simulate.true_reachable(p, budget, c), p >= tau)
    v = simulate.true_verdicts(p, q, budget, c)
    expected = np.where(
        (p < tau) & (q >= tau),
        "creation",
        np.where((p >= tau) & (q < tau), "lost", np.where(p >= tau, "elicitation", "unchanged")),
    )
    np.testing.assert_array_equal(v, expected)  # the tilt raises every prompt: q > p
    # the creation count is the number of correct outcomes fe.diagnose sees entering A_N
    logp0 = jnp.log(jnp.stack([1 - p, p], -1))
    logq = jnp.log(jnp.stack([1 - q, q], -1))
    d = fe.diagnose(logp0, logq, budget, c)
    gained_correct = (
        np.asarray(fe.accessible_support(logq, budget, c))[:, 1]
        & ~np.asarray(fe.accessible_support(logp0, budget, c))[:, 1]
    )
    assert int(np.sum(v == "creation")) == int(gained_correct.sum())
    assert np.all(np.asarray(d.gained) >= gained_correct)


def test_verdict_errors_fall_as_samples_grow():
    p = simulate.beta_prompts(jax.random.key(21), 150, 0.3, 3.0)
    q = simulate.tilt_success(p, 0.5)
    budget = 32
    truth = simulate.true_verdicts(p, q, budget)
    assert {"creation", "elicitation"} <= set(truth.tolist())
    grid = [8, 64, 512, 4096]
    not_right, wrong = [], []
    for n in grid:
        rates = []
        for key in jax.random.split(jax.random.fold_in(jax.random.key(22), n), 4):
            sim = simulate.flat(key, p, q, n)
            v = np.asarray(em.diagnose(sim.base, sim.trained, budget).verdict)
            rates.append((np.mean(v != truth), np.mean((v != "undetermined") & (v != truth))))
        not_right.append(np.mean([r[0] for r in rates]))
        wrong.append(np.mean([r[1] for r in rates]))
    # each step of 8x more samples removes undetermined prompts; decided verdicts stay right
    assert all(b < a for a, b in zip(not_right, not_right[1:], strict=False)), not_right
    assert not_right[-1] < 0.25 * not_right[0], not_right
    assert max(wrong) <= 0.05, wrong


# ----------------------------------------------------------------------------- answers
@pytest.fixture(scope="module")
def sequence_sim():
    # Five prompts, i.i.d. tokens over 3 symbols and length 6 (729 answers), verifier "token 2 at
    # least twice"; R = 40 replicate data sets of n = 25 samples drawn as one batch of R * n.
    token_p = np.array(
        [[0.5, 0.3, 0.2], [0.6, 0.3, 0.1], [0.4, 0.4, 0.2], [0.7, 0.2, 0.1], [0.34, 0.33, 0.33]]
    )
    verifier = seq.count_at_least(3, 2, 2)
    sim = simulate.sequences(jax.random.key(7), jnp.log(token_p), 6, verifier, 0.5, 40 * 25)
    return sim, token_p, verifier


def test_sequence_simulation_matches_its_models(sequence_sim):
    sim, token_p, verifier = sequence_sim
    # success probability: P(Binomial(6, p2) >= 2), and the same from the listed distribution
    p2 = token_p[:, 2]
    exact = 1 - (1 - p2) ** 6 - 6 * p2 * (1 - p2) ** 5
    np.testing.assert_allclose(sim.p_base, exact, rtol=1e-12)
    listed = np.sum(np.where(sim.answer_correct, np.exp(sim.answer_logp_base), 0.0), -1)
    np.testing.assert_allclose(listed, sim.p_base, rtol=1e-12)
    listed_t = np.sum(np.where(sim.answer_correct, np.exp(sim.answer_logp_trained), 0.0), -1)
    np.testing.assert_allclose(listed_t, sim.p_trained, rtol=1e-10)
    np.testing.assert_allclose(
        sim.p_trained, np.asarray(simulate.tilt_success(sim.p_base, 0.5)), rtol=1e-10
    )
    # every record: the verifier's judgement and both log-probabilities of its answer string
    s = sim.trained.samples
    index = {a: j for j, a in enumerate(sim.answers.tolist())}
    cols = np.array([index[a] for a in s.answer])
    np.testing.assert_array_equal(s.correct, sim.answer_correct[s.prompt_index, cols])
    np.testing.assert_allclose(s.logprob_base, sim.answer_logp_base[s.prompt_index, cols])
    np.testing.assert_allclose(
        s.logprob_trained, sim.answer_logp_trained[s.prompt_index, cols], rtol=1e-12
    )


def _split(counts: em.Counts, r: int, n: int) -> em.Counts:
    """Replicate ``r`` of ``n`` samples per prompt out of a simulation drawn as one batch."""
    s = counts.samples
    within = np.arange(s.size) % (counts.n[0])
    keep = (within >= r * n) & (within < (r + 1) * n)
    sub = em.Samples(
        s.prompt_index[keep], s.correct[keep], answer=tuple(np.asarray(s.answer)[keep].tolist())
    )
    return em.Counts.from_samples(counts.prompts, sub)


def test_good_turing_missing_mass_against_the_exact_answer_distribution(sequence_sim):
    sim, _, _ = sequence_sim
    reps, n = 40, 25
    p = np.exp(sim.answer_logp_base)  # (prompts, 729)
    labels = {a: j for j, a in enumerate(sim.answers.tolist())}
    gt, actual = [], []
    for r in range(reps):
        counts = _split(sim.base, r, n)
        stats = em.answer_stats(counts)
        gt.append(stats.missing_mass)
        seen = np.zeros_like(p, dtype=bool)
        for i, answers in enumerate(stats.answers):
            seen[i, [labels[a] for a in answers]] = True
        actual.append(np.sum(np.where(seen, 0.0, p), -1))
    gt, actual = np.asarray(gt), np.asarray(actual)
    # Good–Turing N1/n is unbiased for the expected missing mass after n - 1 draws,
    # sum_y p(y) (1 - p(y))^(n-1); the realized missing mass after n draws has mean
    # sum_y p(y) (1 - p(y))^n.
    e_gt = np.sum(p * (1 - p) ** (n - 1), -1)
    e_missing = np.sum(p * (1 - p) ** n, -1)
    se_gt = gt.std(0, ddof=1) / math.sqrt(reps)
    se_missing = actual.std(0, ddof=1) / math.sqrt(reps)
    assert np.all(np.abs(gt.mean(0) - e_gt) <= 4 * se_gt + 1e-12), (gt.mean(0), e_gt)
    assert np.all(np.abs(actual.mean(0) - e_missing) <= 4 * se_missing + 1e-12)
    # and it tracks the exact missing mass of each data set: their gap has mean
    # sum_y p^2 (1-p)^(n-1), small next to the missing mass itself
    gap = (gt - actual).mean(0)
    assert np.all(
        np.abs(gap - np.sum(p**2 * (1 - p) ** (n - 1), -1))
        <= 4 * ((gt - actual).std(0, ddof=1) / math.sqrt(reps))
    )


# ----------------------------------------------------------------------------- simulator
def test_flat_simulation_is_deterministic_and_binomial():
    p = np.array([0.0, 0.05, 0.5, 0.97, 1.0])
    a = simulate.flat(jax.random.key(0), p, p, 4000)
    b = simulate.flat(jax.random.key(0), p, p, 4000)
    c = simulate.flat(jax.random.key(1), p, p, 4000)
    np.testing.assert_array_equal(a.base.correct, b.base.correct)
    assert not np.array_equal(a.base.correct, c.base.correct)
    assert a.base.correct[0] == 0 and a.base.correct[-1] == 4000
    sd = np.sqrt(4000 * p * (1 - p))
    assert np.all(np.abs(a.base.correct - 4000 * p) <= 5 * sd)
    r = simulate.flat(jax.random.key(2), p, p, 50, records=True)
    np.testing.assert_array_equal(
        np.bincount(r.base.samples.prompt_index, weights=r.base.samples.correct), r.base.correct
    )


def test_tilt_and_sharpen_are_the_exact_two_outcome_maps():
    p = np.array([0.0, 1e-9, 0.2, 0.5, 0.9, 1.0])
    lam = 1 / 0.3
    np.testing.assert_allclose(
        simulate.tilt_success(p, 0.3), p * math.exp(lam) / (1 - p + p * math.exp(lam)), rtol=1e-12
    )
    g = 2.5
    with np.errstate(divide="ignore", invalid="ignore"):
        sharp = p**g / (p**g + (1 - p) ** g)
    np.testing.assert_allclose(simulate.sharpen_success(p, g), sharp, rtol=1e-12)


def test_passk_crossover_simulation_reuses_the_experiment():
    sim, result = simulate.passk_crossover(
        jax.random.key(0), 24, dict(experiments.config_for("passk_crossover", tiny=True))
    )
    cfg = result["config"]
    logp0, correct = np.asarray(cfg["logp0"]), np.asarray(cfg["correct"])
    np.testing.assert_allclose(sim.p_base, np.sum(np.where(correct, np.exp(logp0), 0), -1))
    np.testing.assert_allclose(sim.p_base, result["by_prompt"]["success_base"], rtol=1e-12)
    np.testing.assert_allclose(sim.p_trained, result["by_prompt"]["success_shared"], rtol=1e-12)
    s = sim.trained.samples
    idx = np.array([int(a[1:]) for a in s.answer])
    np.testing.assert_array_equal(s.correct, correct[s.prompt_index, idx])
    np.testing.assert_allclose(s.logprob_base, logp0[s.prompt_index, idx])


def test_writers_round_trip_through_load(tmp_path, sequence_sim):
    sim = simulate.flat(jax.random.key(4), np.array([0.1, 0.6]), np.array([0.3, 0.9]), 30)
    simulate.write_csv(tmp_path / "c.csv", sim.trained)
    back = em.load(tmp_path / "c.csv")
    assert back.prompts == sim.trained.prompts
    np.testing.assert_array_equal(back.correct, sim.trained.correct)
    seq_sim = sequence_sim[0]
    simulate.write_jsonl(tmp_path / "t.jsonl", seq_sim.trained)
    back = em.load(tmp_path / "t.jsonl")
    s, t = back.samples, seq_sim.trained.samples
    np.testing.assert_array_equal(back.correct, seq_sim.trained.correct)
    assert s.answer == t.answer
    np.testing.assert_array_equal(s.logprob_base, t.logprob_base)  # exact: repr round-trips
    np.testing.assert_array_equal(s.logprob_trained, t.logprob_trained)
    first = json.loads((tmp_path / "t.jsonl").read_text().splitlines()[0])
    assert set(first) == {"prompt", "correct", "answer", "logprob_base", "logprob_trained"}


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: simulate.flat(jax.random.key(0), [0.5, 1.5], [0.5, 0.5], 4), "p_base"),
        (lambda: simulate.flat(jax.random.key(0), [0.5], [0.5, 0.5], 4), "p_trained"),
        (lambda: simulate.flat(jax.random.key(0), [0.5], [0.5], 0), "num_samples"),
        (lambda: simulate.flat(jax.random.key(0), [0.5], [0.5], 10**7), "MAX_SAMPLES"),
        (lambda: simulate.flat(0, [0.5], [0.5], 4), "key"),
        (lambda: simulate.beta_prompts(jax.random.key(0), 3, -1.0, 1.0), "`a`"),
        (lambda: simulate.tilt_success([0.5], 0.0), "beta"),
        (lambda: simulate.sharpen_success([float("nan")], 2.0), "`p`"),
        (
            lambda: simulate.sequences(
                jax.random.key(0),
                jnp.log(jnp.array([[0.5, 0.5]])),
                3,
                seq.count_at_least(3, 1, 1),
                1.0,
                4,
            ),
            "vocab",
        ),
        (lambda: simulate.write_csv("x.csv", [1, 2]), "Counts"),
        (
            lambda: simulate.sequences(
                jax.random.key(0),
                jnp.log(jnp.array([[0.5, 0.5]])),
                10**6,
                seq.count_at_least(2, 1, 1),
                1.0,
                4,
            ),
            "MAX_LENGTH",
        ),
        (lambda: simulate.passk_crossover(jax.random.key(0), 4, {"no_such": 1}), "unknown"),
        (lambda: simulate.passk_crossover(jax.random.key(0), 4, [1]), "config"),
        (
            lambda: simulate.categorical(
                jax.random.key(0), jnp.zeros((1, 1)), jnp.zeros((1, 1)), [[True, False]], 3
            ),
            "correct",
        ),
        (lambda: simulate.true_verdicts([0.1, 0.2], [0.3], 8), "same shape"),
    ],
)
def test_simulator_rejects_bad_arguments(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_simulate_doctests():
    import doctest

    result = doctest.testmod(simulate, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted > 0 and result.failed == 0


# ----------------------------------------------------------------------------- experiment
@pytest.fixture(scope="module")
def experiment_result():
    return to_jsonable(experiments.run("estimators_vs_truth", tiny=True))


def test_experiment_curves_recompute(experiment_result):
    res = experiment_result
    cfg, cv = res["config"], res["curves"]
    ks = np.asarray(cv["k"])
    pb, pt = np.asarray(cfg["p_base"]), np.asarray(cfg["p_trained"])
    with np.errstate(divide="ignore", invalid="ignore"):
        sharp = pb ** cfg["exponent"] / (pb ** cfg["exponent"] + (1 - pb) ** cfg["exponent"])
    np.testing.assert_allclose(pt, sharp, rtol=1e-12)
    np.testing.assert_allclose(cv["exact_base"], np.mean(1 - (1 - pb[:, None]) ** ks, 0))
    np.testing.assert_allclose(cv["exact_trained"], np.mean(1 - (1 - pt[:, None]) ** ks, 0))
    n = np.full(pb.size, cfg["num_samples"])
    for name in ("base", "trained"):
        counts = em.Counts(n, np.asarray(cv[f"correct_{name}"]))
        np.testing.assert_allclose(cv[name]["mean"], np.asarray(em.pass_at_k(counts, ks)).mean(0))
        assert np.all(np.asarray(cv[name]["low"]) <= np.asarray(cv[name]["mean"]) + 1e-12)
        assert np.all(np.asarray(cv[name]["mean"]) <= np.asarray(cv[name]["high"]) + 1e-12)
    b, t = np.asarray(cv["exact_base"]), np.asarray(cv["exact_trained"])
    later = [int(k) for k, x, y in zip(ks[1:], b[1:], t[1:], strict=True) if x >= y]
    assert cv["exact_crossover"] == (later[0] if t[0] > b[0] and later else None)


def test_experiment_coverage_and_verdicts_recompute(experiment_result):
    res = experiment_result
    cfg, cov, vd = res["config"], res["coverage"], res["verdicts"]
    pb, pt = np.asarray(cfg["p_base"]), np.asarray(cfg["p_trained"])
    ks = np.asarray(cov["k"])
    np.testing.assert_allclose(cov["truth_base"], np.mean(1 - (1 - pb[:, None]) ** ks, 0))
    np.testing.assert_allclose(
        cov["truth_difference"],
        np.mean((1 - pb[:, None]) ** ks - (1 - pt[:, None]) ** ks, 0),
        atol=1e-12,
    )
    np.testing.assert_allclose(
        cov["coverage_base"], np.asarray(cov["covered_base"]) / cov["replicates"]
    )
    # the Wilson coverage recomputed through the API, with the experiment's keys
    key_b = jax.random.split(jax.random.key(cfg["seed"]), 5)[2]
    hits = np.zeros((len(cov["levels"]), ks.size))
    for key_r in jax.random.split(key_b, cov["replicates"]):
        key_draw, key_sim, _ = jax.random.split(key_r, 3)
        idx = np.asarray(jax.random.randint(key_draw, (cfg["coverage_prompts"],), 0, pb.size))
        sim = simulate.flat(key_sim, pb[idx], pt[idx], cfg["coverage_samples"])
        for j, level in enumerate(cov["levels"]):
            w = em.pass_at_k_curve(sim.base, ks, level=level, interval="wilson")
            truth = np.asarray(cov["truth_base"])
            hits[j] += (np.asarray(w.low) <= truth) & (truth <= np.asarray(w.high))
    np.testing.assert_array_equal(cov["covered_wilson"], hits)
    vb, vt = np.asarray(cfg["verdict_p_base"]), np.asarray(cfg["verdict_p_trained"])
    tau = 1 - (1 - cfg["confidence"]) ** (1 / cfg["budget"])
    assert vd["threshold"] == pytest.approx(tau, rel=1e-12)
    creation = int(np.sum((vb < tau) & (vt >= tau)))
    assert vd["true_counts"]["creation"] == creation
    assert vd["true_created_fraction"] == pytest.approx(creation / vb.size)
    np.testing.assert_allclose(
        vd["error"], np.asarray(vd["wrong"]) + np.asarray(vd["undetermined"]), atol=1e-12
    )
    # the verdict error rates recomputed through the API, with the experiment's keys
    truth = simulate.true_verdicts(vb, vt, cfg["budget"], cfg["confidence"])
    key_c = jax.random.split(jax.random.key(cfg["seed"]), 5)[4]
    for i, n in enumerate(vd["num_samples"]):
        wrong, undetermined = [], []
        keys = jax.random.split(jax.random.fold_in(key_c, int(n)), cfg["verdict_replicates"])
        for key in keys:
            sim = simulate.flat(key, vb, vt, int(n))
            d = em.diagnose(sim.base, sim.trained, cfg["budget"], cfg["confidence"], cfg["level"])
            v = np.asarray(d.verdict)
            undetermined.append(np.mean(v == "undetermined"))
            wrong.append(np.mean((v != "undetermined") & (v != truth)))
        assert vd["wrong"][i] == pytest.approx(np.mean(wrong), abs=1e-12)
        assert vd["undetermined"][i] == pytest.approx(np.mean(undetermined), abs=1e-12)
    assert vd["error"][-1] < vd["error"][0]


def test_experiment_plots(experiment_result):
    from experiments import estimators_vs_truth

    fig = estimators_vs_truth.plot(experiment_result)
    assert len(fig.axes) == 3
