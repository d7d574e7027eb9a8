"""Bad input: every public function rejects it with a ValueError/TypeError naming the argument.

One test per kind of bad input, parametrized over the public functions that take such an
argument. Each case builds a valid call, replaces one argument by a bad value, and checks the
exception type and that the message names the argument in backticks (never a raw NumPy/XLA
error). Legal extremes (``-inf`` log-probabilities, ``+inf`` energies) are checked not to raise
and not to produce NaN. The docstring examples of the core modules are run as doctests here too.
"""

from __future__ import annotations

import importlib
import re

import jax
import numpy as np
import pytest

import freeenergy as fe
from freeenergy import _checks

INF = np.inf
LOGP = np.log(np.array([0.5, 0.25, 0.125, 0.125]))  # a normalized base, n = 4
LOGQ = np.log(np.array([0.1, 0.2, 0.3, 0.4]))
ENERGY = np.array([0.0, 1.0, -0.5, 2.0])
REWARD = np.array([1.0, 0.0, 2.0, -1.0])
CORRECT = np.array([False, True, True, False])

# name -> (function, valid keyword arguments)
CALLS = {
    "normalize": (fe.normalize, dict(logits=LOGP + 3.0)),
    "kl": (fe.kl, dict(logq=LOGQ, logp=LOGP)),
    "entropy": (fe.entropy, dict(logp=LOGP)),
    "sample": (fe.sample, dict(key=jax.random.key(0), logp=LOGP, num_samples=3)),
    "decode": (fe.decode, dict(logp=LOGP, temperature=0.7, top_k=3, top_p=0.9)),
    "gibbs": (fe.gibbs, dict(logp0=LOGP, energy=ENERGY, beta=0.5)),
    "log_partition": (fe.log_partition, dict(logp0=LOGP, energy=ENERGY, beta=0.5)),
    "free_energy": (fe.free_energy, dict(logq=LOGQ, logp0=LOGP, energy=ENERGY, beta=0.5)),
    "implied_energy": (fe.implied_energy, dict(logq=LOGQ, logp0=LOGP, beta=0.5)),
    "tilt_for_kl": (fe.tilt_for_kl, dict(logp0=LOGP, reward=REWARD, kl_budget=0.2)),
    "frontier": (fe.frontier, dict(logp0=LOGP, reward=REWARD, betas=np.array([0.5, 2.0]))),
    "reach_probability": (fe.reach_probability, dict(logp=LOGP, budget=4)),
    "accessible_support": (fe.accessible_support, dict(logp=LOGP, budget=4, confidence=0.5)),
    "pass_at_k": (fe.pass_at_k, dict(logp=LOGP, correct=CORRECT, k=4)),
    "pass_at_k_estimate": (fe.pass_at_k_estimate, dict(n=10, c=3, k=4)),
    "regimes": (fe.regimes, dict(logp0=LOGP, budget=4, confidence=0.5, basin_mass=0.9)),
    "regime_profile": (
        fe.regime_profile,
        dict(logp0=LOGP, target=LOGQ, budget=4, confidence=0.5, basin_mass=0.9),
    ),
    "diagnose": (fe.diagnose, dict(logp0=LOGP, logq=LOGQ, budget=4, confidence=0.5)),
}

# log-probability arguments: (function, argument, must it be normalized?)
LOGP_ARGS = [
    ("normalize", "logits", False),
    ("kl", "logq", True),
    ("kl", "logp", True),
    ("entropy", "logp", True),
    ("sample", "logp", True),
    ("decode", "logp", False),
    ("gibbs", "logp0", True),
    ("log_partition", "logp0", True),
    ("free_energy", "logq", True),
    ("free_energy", "logp0", True),
    ("implied_energy", "logq", True),
    ("implied_energy", "logp0", True),
    ("tilt_for_kl", "logp0", True),
    ("frontier", "logp0", True),
    ("reach_probability", "logp", False),
    ("accessible_support", "logp", True),
    ("pass_at_k", "logp", True),
    ("regimes", "logp0", True),
    ("regime_profile", "logp0", True),
    ("regime_profile", "target", True),
    ("diagnose", "logp0", True),
    ("diagnose", "logq", True),
]
NORMALIZED_ARGS = [(f, a) for f, a, normalized in LOGP_ARGS if normalized]
ENERGY_ARGS = [("gibbs", "energy"), ("log_partition", "energy"), ("free_energy", "energy")]
REWARD_ARGS = [("tilt_for_kl", "reward"), ("frontier", "reward")]
BETA_ARGS = [
    ("gibbs", "beta"),
    ("log_partition", "beta"),
    ("free_energy", "beta"),
    ("implied_energy", "beta"),
    ("frontier", "betas"),
]
BUDGET_ARGS = [
    ("reach_probability", "budget"),
    ("accessible_support", "budget"),
    ("regimes", "budget"),
    ("regime_profile", "budget"),
    ("diagnose", "budget"),
]
CONFIDENCE_ARGS = [
    ("accessible_support", "confidence"),
    ("regimes", "confidence"),
    ("regime_profile", "confidence"),
    ("diagnose", "confidence"),
]
# pairs of arguments that describe the same behavior space
SAME_SPACE = [
    ("kl", "logq", "logp"),
    ("gibbs", "logp0", "energy"),
    ("log_partition", "logp0", "energy"),
    ("free_energy", "logp0", "logq"),
    ("free_energy", "logp0", "energy"),
    ("implied_energy", "logq", "logp0"),
    ("tilt_for_kl", "logp0", "reward"),
    ("frontier", "logp0", "reward"),
    ("pass_at_k", "logp", "correct"),
    ("regime_profile", "logp0", "target"),
    ("diagnose", "logp0", "logq"),
]


def call(name, **overrides):
    fn, kwargs = CALLS[name]
    return fn(**{**kwargs, **overrides})


def rejects(name, arg, value, exc=ValueError, match=None):
    """Call with one bad argument; the error must be `exc` and name the argument."""
    with pytest.raises(exc) as info:
        call(name, **{arg: value})
    message = str(info.value)
    assert f"`{arg}`" in message, message
    if match is not None:
        assert re.search(match, message), message
    return message


def ids(cases):
    return ["-".join(str(x) for x in c) for c in cases]


def test_every_public_function_is_covered():
    core = ("distributions", "free_energy", "support")
    public = {n for m in core for n in importlib.import_module(f"freeenergy.{m}").__all__}
    assert public - {"Regime", "Diagnosis"} == set(CALLS)


@pytest.mark.parametrize("name", sorted(CALLS))
def test_valid_calls_give_finite_results(name):
    out = call(name)
    for leaf in jax.tree_util.tree_leaves(out):
        leaf = np.asarray(leaf)
        if np.issubdtype(leaf.dtype, np.floating):
            assert not np.any(np.isnan(leaf))


# ----------------------------------------------------------------------------- log-probabilities
@pytest.mark.parametrize("name,arg,_", LOGP_ARGS, ids=ids(LOGP_ARGS))
def test_nan_log_probability(name, arg, _):
    bad = LOGP.copy()
    bad[1] = np.nan
    rejects(name, arg, bad, match="NaN")


@pytest.mark.parametrize("name,arg,_", LOGP_ARGS, ids=ids(LOGP_ARGS))
def test_plus_inf_log_probability(name, arg, _):
    bad = LOGP.copy()
    bad[2] = INF
    rejects(name, arg, bad, match=r"\+inf")


@pytest.mark.parametrize("name,arg", NORMALIZED_ARGS, ids=ids(NORMALIZED_ARGS))
def test_not_normalized(name, arg):
    atol = _checks.NORMALIZATION_ATOL
    rejects(name, arg, LOGP + 3 * atol, match="does not normalize")
    rejects(name, arg, LOGP - 0.5, match="does not normalize")
    call(name, **{arg: LOGP + 0.5 * atol})  # within the tolerance: accepted


@pytest.mark.parametrize("name", ["normalize", "decode"])
def test_unnormalized_logits_accepted_where_documented(name):
    arg = "logits" if name == "normalize" else "logp"
    out = np.asarray(call(name, **{arg: LOGP * 3 + 100.0}))
    np.testing.assert_allclose(np.log(np.sum(np.exp(out))), 0.0, atol=1e-12)


@pytest.mark.parametrize("name,arg,_", LOGP_ARGS, ids=ids(LOGP_ARGS))
def test_empty_log_probability(name, arg, _):
    rejects(name, arg, np.zeros((0,)), match="empty")
    rejects(name, arg, np.zeros((3, 0)), match="empty")


@pytest.mark.parametrize("name,arg,_", LOGP_ARGS, ids=ids(LOGP_ARGS))
def test_wrong_type_log_probability(name, arg, _):
    rejects(name, arg, "0.5", exc=TypeError)
    rejects(name, arg, None, exc=TypeError)
    if arg != "target":  # a boolean target is a mask (tested in test_support.py)
        rejects(name, arg, np.array([True, False, True, True]), exc=TypeError)
    rejects(name, arg, [[0.0, -1.0], [-2.0]], exc=TypeError)  # ragged


LOGP_DISTRIBUTION_ARGS = [c for c in LOGP_ARGS if c[0] != "reach_probability"]


@pytest.mark.parametrize("name,arg,_", LOGP_DISTRIBUTION_ARGS, ids=ids(LOGP_DISTRIBUTION_ARGS))
def test_no_distribution(name, arg, _):
    rejects(name, arg, np.full(4, -INF), match="-inf everywhere")
    rejects(name, arg, np.float64(0.0), match="scalar")


def test_reach_probability_log_probability_range():
    rejects("reach_probability", "logp", np.array([0.5, -1.0]), match="at most 0")
    np.testing.assert_array_equal(fe.reach_probability(np.full(3, -INF), 5), np.zeros(3))
    assert float(fe.reach_probability(0.0, 5)) == 1.0


@pytest.mark.parametrize("name,a,b", SAME_SPACE, ids=ids(SAME_SPACE))
def test_mismatched_behavior_axis(name, a, b):
    fn, kwargs = CALLS[name]
    value = kwargs[b]
    if b in ("logp", "logp0", "logq", "target"):
        longer = np.log(np.full(5, 0.2))  # a valid distribution over 5 behaviors
    else:
        longer = np.concatenate([value, value[:1]])
    with pytest.raises(ValueError) as info:
        fn(**{**kwargs, b: longer})
    message = str(info.value)
    assert f"`{a}`" in message and f"`{b}`" in message, message
    assert "(4,)" in message and "(5,)" in message, message


def _partner(name, arg):
    """Another behavior-space array argument of the same call, if any."""
    kwargs = CALLS[name][1]
    return next(
        (
            k
            for k, v in kwargs.items()
            if k != arg and isinstance(v, np.ndarray) and v.shape == (4,)
        ),
        None,
    )


BATCH_PAIRS = [(f, a, _partner(f, a)) for f, a, _ in LOGP_DISTRIBUTION_ARGS if _partner(f, a)]


@pytest.mark.parametrize("name,arg,other", BATCH_PAIRS, ids=ids(BATCH_PAIRS))
def test_mismatched_batch_shapes(name, arg, other):
    fn, kwargs = CALLS[name]
    batched = {arg: np.stack([kwargs[arg]] * 3), other: np.stack([kwargs[other]] * 2)}
    with pytest.raises(ValueError) as info:
        fn(**{**kwargs, **batched})
    message = str(info.value)
    assert "(3, 4)" in message and "(2, 4)" in message, message


# ----------------------------------------------------------------------------- energies, rewards
@pytest.mark.parametrize("name,arg", ENERGY_ARGS, ids=ids(ENERGY_ARGS))
def test_bad_energy(name, arg):
    for bad, match in [(np.nan, "NaN"), (-INF, "-inf")]:
        u = ENERGY.copy()
        u[1] = bad
        rejects(name, arg, u, match=match)
    rejects(name, arg, np.zeros(0), match="empty")
    rejects(name, arg, "x", exc=TypeError)
    out = call(name, **{arg: np.array([0.0, INF, 1.0, INF])})  # +inf: excluded, legal
    assert not np.any(np.isnan(np.asarray(out)))


@pytest.mark.parametrize("name,arg", REWARD_ARGS, ids=ids(REWARD_ARGS))
def test_bad_reward(name, arg):
    for bad, match in [(np.nan, "NaN"), (INF, r"\+inf")]:
        r = REWARD.copy()
        r[1] = bad
        rejects(name, arg, r, match=match)
    rejects(name, arg, np.zeros(0), match="empty")
    rejects(name, arg, None, exc=TypeError)
    out = call(name, **{arg: np.array([0.0, 1.0, 2.0, -INF])})  # -inf: excluded, legal
    for leaf in jax.tree_util.tree_leaves(out):
        assert not np.any(np.isnan(np.asarray(leaf)))


def test_everything_excluded():
    """U = +inf (r = -inf) on all of supp(p0): no tilt exists; log Z = -inf is reported."""
    rejects("gibbs", "energy", np.full(4, INF), match="every behavior")
    rejects("frontier", "reward", np.full(4, -INF), match="every behavior")
    rejects("tilt_for_kl", "reward", np.full(4, -INF), match="every behavior")
    assert float(fe.log_partition(LOGP, np.full(4, INF), 1.0)) == -INF
    # only supp(p0) matters: +inf energy off the support and a finite one on it is fine
    logp0 = np.array([-INF, 0.0])
    np.testing.assert_array_equal(fe.gibbs(logp0, np.array([INF, 3.0]), 1.0), [-INF, 0.0])
    with pytest.raises(ValueError, match="`energy`"):
        fe.gibbs(logp0, np.array([0.0, INF]), 1.0)


# ----------------------------------------------------------------------------- temperatures
@pytest.mark.parametrize("name,arg", BETA_ARGS, ids=ids(BETA_ARGS))
@pytest.mark.parametrize("bad", [0.0, -1.0, np.nan, INF, -INF, np.array([1.0, 0.0])])
def test_bad_beta(name, arg, bad):
    if name != "frontier" and np.ndim(bad):
        bad = np.array([[1.0], [0.0]])  # a column of temperatures with one bad entry
    rejects(name, arg, bad, match="finite and > 0")


@pytest.mark.parametrize("name,arg", BETA_ARGS, ids=ids(BETA_ARGS))
def test_beta_wrong_type_or_shape(name, arg):
    rejects(name, arg, "hot", exc=TypeError)
    rejects(name, arg, True, exc=TypeError)
    rejects(name, arg, np.zeros(0), match="empty")
    fn, kwargs = CALLS[name]
    batched = {
        k: np.stack([v] * 3) if isinstance(v, np.ndarray) and v.shape == (4,) else v
        for k, v in kwargs.items()
    }
    with pytest.raises(ValueError, match=f"`{arg}` has shape \\(2,\\)"):
        fn(**{**batched, arg: np.array([0.5, 1.0])})


# ----------------------------------------------------------------------------- budgets, k, c
@pytest.mark.parametrize("name,arg", BUDGET_ARGS, ids=ids(BUDGET_ARGS))
@pytest.mark.parametrize("bad", [0, 0.5, -3, np.nan, INF, np.array([4.0, 0.0])])
def test_bad_budget(name, arg, bad):
    if name == "reach_probability" and np.ndim(bad):
        bad = np.array([[4.0], [0.0]])
    rejects(name, arg, bad, match=">= 1")


@pytest.mark.parametrize("name,arg", BUDGET_ARGS, ids=ids(BUDGET_ARGS))
def test_budget_wrong_type_or_shape(name, arg):
    rejects(name, arg, "many", exc=TypeError)
    rejects(name, arg, np.zeros(0), match="empty")
    fn, kwargs = CALLS[name]
    # budgets broadcast against the batch shape (elementwise for reach_probability)
    batched = {
        k: np.stack([v] * 2) if isinstance(v, np.ndarray) and v.shape == (4,) else v
        for k, v in kwargs.items()
    }
    with pytest.raises(ValueError, match=f"`{arg}`.*broadcast"):
        fn(**{**batched, arg: np.array([4.0, 8.0, 2.0])})


@pytest.mark.parametrize("name,arg", CONFIDENCE_ARGS, ids=ids(CONFIDENCE_ARGS))
@pytest.mark.parametrize("bad", [0.0, 1.0, -0.2, 1.5, np.nan])
def test_bad_confidence(name, arg, bad):
    rejects(name, arg, bad)


@pytest.mark.parametrize("name,arg", CONFIDENCE_ARGS, ids=ids(CONFIDENCE_ARGS))
def test_confidence_wrong_type(name, arg):
    rejects(name, arg, "half", exc=TypeError)
    rejects(name, arg, np.array([0.5, 0.6]), exc=TypeError)
    rejects(name, arg, True, exc=TypeError)


@pytest.mark.parametrize("name", ["regimes", "regime_profile"])
@pytest.mark.parametrize("bad", [0.0, -0.1, 1.0001, np.nan])
def test_bad_basin_mass(name, bad):
    rejects(name, "basin_mass", bad)
    call(name, basin_mass=1.0)  # (0, 1]: one is allowed


@pytest.mark.parametrize("bad", [0, -1, 1.5, np.nan, INF, np.array([1, 0])])
def test_bad_k(bad):
    rejects("pass_at_k", "k", bad, match=">= 1")


def test_k_wrong_type_or_shape():
    rejects("pass_at_k", "k", "ten", exc=TypeError)
    with pytest.raises(ValueError, match="`k`.*broadcast"):  # (3,) against the batch (2,)
        fe.pass_at_k(np.stack([LOGP, LOGQ]), CORRECT, np.array([1, 2, 3]))
    assert fe.pass_at_k(LOGP, CORRECT, np.array([1, 2, 3])).shape == (3,)


@pytest.mark.parametrize(
    "n,c,k,arg",
    [
        (10, 11, 2, "c"),
        (10, -1, 2, "c"),
        (10, 3, 0, "k"),
        (10, 3, 11, "k"),
        (0, 0, 1, "n"),
        (10, 2.5, 1, "c"),
        (10.5, 2, 1, "n"),
        (10, 2, np.nan, "k"),
        (np.array([10, 10]), np.array([1, 2, 3]), 1, "c"),
        (10, np.zeros(0), 1, "c"),
    ],
)
def test_bad_estimator_arguments(n, c, k, arg):
    with pytest.raises(ValueError) as info:
        fe.pass_at_k_estimate(n, c, k)
    assert f"`{arg}`" in str(info.value), str(info.value)


@pytest.mark.parametrize("arg", ["n", "c", "k"])
@pytest.mark.parametrize("bad", ["3", None, True, np.array([True])])
def test_estimator_wrong_types(arg, bad):
    rejects("pass_at_k_estimate", arg, bad, exc=TypeError)


def test_bad_correct_mask():
    rejects("pass_at_k", "correct", np.array([0.0, 0.5, 1.0, 0.0]), exc=TypeError)
    rejects("pass_at_k", "correct", "yes", exc=TypeError)
    rejects("pass_at_k", "correct", np.zeros(0, bool), match="empty")
    # 0/1 numbers are a mask
    assert float(call("pass_at_k", correct=np.array([0, 1, 1, 0]))) == pytest.approx(
        float(call("pass_at_k"))
    )


def test_bad_target_mask():
    rejects("regime_profile", "target", np.zeros(4, bool), match="no behavior")
    out = call("regime_profile", target=[True, False, False, True])  # a list of bools is a mask
    np.testing.assert_allclose(np.sum(np.asarray(out)), 1.0)


# ----------------------------------------------------------------------------- sampling, decoding
@pytest.mark.parametrize(
    "bad",
    [
        0,
        1.5,
        None,
        "key",
        np.array([1.0, 2.0]),
        np.zeros(3, np.uint32),
        jax.random.split(jax.random.key(0), 2),
    ],
)
def test_bad_key(bad):
    rejects("sample", "key", bad, exc=TypeError)


def test_legacy_key_accepted():
    draws = fe.sample(jax.random.PRNGKey(3), LOGP, 5)
    assert draws.shape == (5,)


@pytest.mark.parametrize(
    "bad,exc",
    [(0, ValueError), (-2, ValueError), (1.5, TypeError), ("3", TypeError), (True, TypeError)],
)
def test_bad_num_samples(bad, exc):
    rejects("sample", "num_samples", bad, exc=exc)


@pytest.mark.parametrize(
    "arg,bad,exc",
    [
        ("temperature", -0.1, ValueError),
        ("temperature", np.nan, ValueError),
        ("temperature", INF, ValueError),
        ("temperature", "warm", TypeError),
        ("temperature", np.array([0.5, 1.0]), TypeError),
        ("top_k", 0, ValueError),
        ("top_k", -3, ValueError),
        ("top_k", 2.5, TypeError),
        ("top_k", "2", TypeError),
        ("top_p", 0.0, ValueError),
        ("top_p", 1.2, ValueError),
        ("top_p", -0.5, ValueError),
        ("top_p", np.nan, ValueError),
        ("top_p", "0.9", TypeError),
    ],
)
def test_bad_decoding_settings(arg, bad, exc):
    rejects("decode", arg, bad, exc=exc)


# ----------------------------------------------------------------------------- KL budgets
@pytest.mark.parametrize("bad", [-0.1, np.nan, INF, -INF, np.array([0.1, -0.2])])
def test_bad_kl_budget(bad):
    rejects("tilt_for_kl", "kl_budget", bad, match="finite and >= 0")


def test_kl_budget_type_shape_and_feasibility():
    rejects("tilt_for_kl", "kl_budget", "big", exc=TypeError)
    with pytest.raises(ValueError, match="`kl_budget`.*broadcast"):  # (2,) against batch (3,)
        fe.tilt_for_kl(np.stack([LOGP] * 3), REWARD, np.array([0.1, 0.2]))
    reward = np.array([1.0, -INF, 0.0, -INF])  # excluding mass 0.375 costs -log(0.625)
    cost = -np.log(0.625)
    with pytest.raises(ValueError, match="`kl_budget`.*infeasible") as info:
        fe.tilt_for_kl(LOGP, reward, 0.9 * cost)
    assert f"{cost:.6g}" in str(info.value)
    logq, beta = fe.tilt_for_kl(LOGP, reward, cost)  # exactly the cost: feasible
    np.testing.assert_allclose(np.exp(logq), [0.8, 0.0, 0.2, 0.0], atol=1e-12)


# ----------------------------------------------------------------------------- never NaN
@pytest.mark.parametrize("name", sorted(set(CALLS) - {"pass_at_k_estimate"}))
def test_legal_extremes_never_nan(name):
    """-inf log-probabilities, +inf energies, -1e4 log-probs, extreme temperatures: no NaN."""
    extreme = np.array([0.0, -INF, -1e4, -INF])
    fn, kwargs = CALLS[name]
    for overrides in (
        {k: extreme for k in kwargs if k in ("logits", "logp", "logp0", "logq", "target")},
        {k: np.array([1e3, INF, -1e3, INF]) for k in kwargs if k == "energy"}
        | {k: np.array([-1e3, -INF, 1e3, -INF]) for k in kwargs if k == "reward"}
        | {k: 1e-300 for k in kwargs if k in ("beta", "betas")}
        | {k: 1.0 for k in kwargs if k == "kl_budget"},
        {k: 1e300 for k in kwargs if k in ("beta", "budget")},
    ):
        out = fn(**{**kwargs, **overrides})
        for leaf in jax.tree_util.tree_leaves(out):
            leaf = np.asarray(leaf)
            if np.issubdtype(leaf.dtype, np.floating):
                assert not np.any(np.isnan(leaf)), (overrides, leaf)


def test_value_checks_are_skipped_under_jit():
    """Under jit the static checks still run, the value checks cannot (tracers), results agree."""
    jitted = jax.jit(lambda lp, u, b: fe.gibbs(lp, u, b))
    np.testing.assert_allclose(jitted(LOGP, ENERGY, 0.5), fe.gibbs(LOGP, ENERGY, 0.5), rtol=1e-12)
    with pytest.raises(ValueError, match="`energy`"):
        jitted(LOGP, ENERGY[:3], 0.5)
    q, b = jax.jit(fe.tilt_for_kl)(LOGP, REWARD, 0.2)
    q1, b1 = fe.tilt_for_kl(LOGP, REWARD, 0.2)
    np.testing.assert_allclose(q, q1, rtol=1e-12)
    assert float(b) == pytest.approx(float(b1))
    grad = jax.grad(lambda b: fe.log_partition(LOGP, ENERGY, b))(0.5)
    q = np.exp(np.asarray(fe.gibbs(LOGP, ENERGY, 0.5)))
    # d log Z / d beta = E_q[U] / beta^2
    assert float(grad) == pytest.approx(float(np.sum(q * ENERGY)) / 0.25, rel=1e-10)


# ----------------------------------------------------------------------------- doctests


def test_public_docstrings_have_examples():
    for name in fe.__all__:
        obj = getattr(fe, name)
        if callable(obj) and name not in ("Regime", "Diagnosis"):
            assert ">>>" in (obj.__doc__ or ""), name


# ----------------------------------------------------------------------------- hardening
@pytest.mark.parametrize("huge", [10**18, 2**70, 2**28 + 1])
def test_sample_size_is_bounded(huge):
    """A size past the bound is refused with its cost, before XLA sees an impossible shape."""
    message = rejects("sample", "num_samples", huge, match="too large")
    assert "4 bytes" in message


def test_sample_size_bound_counts_the_behaviors():
    """The bound also covers the noise: one random value per behavior per draw."""
    logp = np.full(2**20, -20 * np.log(2.0))
    with pytest.raises(ValueError, match="`num_samples`.*one random value per behavior"):
        fe.sample(jax.random.key(0), logp, 2**15)


def test_sample_refuses_several_keys():
    keys = jax.random.split(jax.random.key(0), 3)
    with pytest.raises(TypeError, match="`key` must be a single PRNG key"):
        fe.sample(keys, LOGP, 4)
    with pytest.raises(TypeError, match="`key` must be a single PRNG key"):
        fe.sample(jax.random.key_data(keys), LOGP, 4)  # legacy uint32 keys, stacked


COMPLEX_MASKS = [
    ("pass_at_k", "correct", CORRECT.astype(complex)),
    ("regime_profile", "target", np.array([1, 0, 1j, 0])),
]


@pytest.mark.parametrize("name,arg,bad", COMPLEX_MASKS, ids=[c[0] for c in COMPLEX_MASKS])
def test_complex_masks_are_refused(name, arg, bad):
    rejects(name, arg, bad, exc=TypeError)


COMPLEX_ARGS = [
    ("kl", "logq", LOGQ.astype(complex)),
    ("gibbs", "energy", ENERGY + 0j),
    ("gibbs", "beta", 0.5 + 0j),
    ("gibbs", "beta", np.array(0.5 + 1j)),
    ("tilt_for_kl", "kl_budget", np.array(0.2 + 0j)),
    ("frontier", "betas", np.array([0.5 + 0j, 2.0])),
    ("decode", "temperature", np.array(0.7 + 0j)),
    ("decode", "top_p", 0.9 + 0j),
    ("accessible_support", "confidence", np.array(0.5 + 0j)),
    ("reach_probability", "budget", 4 + 0j),
    ("pass_at_k_estimate", "c", np.array([3 + 0j])),
    ("sample", "num_samples", 3 + 0j),
]


@pytest.mark.parametrize("name,arg,bad", COMPLEX_ARGS, ids=[f"{c[0]}-{c[1]}" for c in COMPLEX_ARGS])
def test_complex_numbers_are_refused(name, arg, bad):
    rejects(name, arg, bad, exc=TypeError)


ONE_BEHAVIOR_BASE = [
    ("frontier", dict(logp0=np.array([0.0]), reward=REWARD), "reward"),
    ("gibbs", dict(logp0=np.array([0.0]), energy=ENERGY), "energy"),
    ("log_partition", dict(logp0=np.array([0.0]), energy=ENERGY), "energy"),
    ("tilt_for_kl", dict(logp0=np.array([0.0]), reward=REWARD), "reward"),
    ("free_energy", dict(logq=np.array([0.0]), logp0=np.array([0.0]), energy=ENERGY), "energy"),
]


@pytest.mark.parametrize(
    "name,kwargs,other", ONE_BEHAVIOR_BASE, ids=[c[0] for c in ONE_BEHAVIOR_BASE]
)
def test_a_base_never_broadcasts_over_the_behaviors(name, kwargs, other):
    """A one-behavior base against four rewards is a mistake, not a four-behavior base with
    total mass 4 (which gave a negative KL)."""
    with pytest.raises(ValueError, match=f"`logp0` has 1 behaviors but `{other}` has 4"):
        call(name, **kwargs)


def test_a_scalar_energy_still_broadcasts():
    np.testing.assert_allclose(fe.gibbs(LOGP, 3.0, 0.5), LOGP, atol=1e-12)
    assert float(fe.log_partition(LOGP, 3.0, 0.5)) == pytest.approx(-6.0)


# The public log_partition, gibbs, kl, free_energy and frontier check the values inside their
# compiled kernel and name the problem on the host only when that check fails: the messages are
# the same at every size, on the fast path (no infinities) and on the exact one.
BIG = 2**17


def _big_case(with_zeros):
    rng = np.random.default_rng(5)
    logits = rng.normal(size=BIG)
    if with_zeros:
        logits[::7] = -INF
    logp = logits - np.logaddexp.reduce(logits[logits > -INF])
    energy = rng.normal(size=BIG)
    if with_zeros:
        energy[::5] = INF
    return logp, energy


FUSED = ["gibbs", "log_partition", "free_energy", "frontier", "kl"]


def _fused_call(name, logp, energy, **bad):
    args = {
        "gibbs": dict(logp0=logp, energy=energy, beta=0.5),
        "log_partition": dict(logp0=logp, energy=energy, beta=0.5),
        "free_energy": dict(logq=logp, logp0=logp, energy=energy, beta=0.5),
        "frontier": dict(logp0=logp, reward=-energy, betas=np.array([0.5, 2.0])),
        "kl": dict(logq=logp, logp=logp),
    }[name]
    fn = {"frontier": fe.frontier, "kl": fe.kl}.get(name) or getattr(fe, name)
    return fn(**{**args, **bad})


@pytest.mark.parametrize("with_zeros", [False, True], ids=["finite", "zeros"])
@pytest.mark.parametrize("name", FUSED)
def test_fused_value_checks_name_the_problem(name, with_zeros):
    logp, energy = _big_case(with_zeros)
    first = "logq" if name in ("kl", "free_energy") else "logp0"
    out = _fused_call(name, logp, energy)
    outs = out if isinstance(out, tuple) else (out,)
    assert not np.any(np.isnan(np.concatenate([np.ravel(np.asarray(o)) for o in outs])))
    for value, match in [
        (np.nan, "contains NaN"),
        (INF, r"contains \+inf"),
    ]:
        bad = logp.copy()
        bad[1234] = value
        with pytest.raises(ValueError, match=f"`{first}` {match}"):
            _fused_call(name, logp, energy, **{first: bad})
    with pytest.raises(ValueError, match=f"`{first}` does not normalize"):
        _fused_call(name, logp, energy, **{first: logp + 1e-3})
    if name == "kl":
        return
    other = "reward" if name == "frontier" else "energy"
    bad = energy.copy()
    bad[99] = np.nan
    with pytest.raises(ValueError, match=f"`{other}` contains NaN"):
        _fused_call(name, logp, bad)
    bad[99] = -INF  # an energy of -inf (a reward of +inf)
    with pytest.raises(ValueError, match=f"`{other}` contains"):
        _fused_call(name, logp, bad)
    if name in ("gibbs", "frontier"):
        with pytest.raises(ValueError, match="Z = 0"):
            _fused_call(name, logp, np.where(logp > -INF, INF, 0.0))
