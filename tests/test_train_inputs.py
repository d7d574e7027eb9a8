"""freeenergy.train on bad and extreme input: bounded sizes, clear errors, no silent NaN, and
KL-estimator moments that stay exact when probabilities are tiny (checked against a 60-digit
``decimal`` enumeration)."""

import subprocess
import sys
import textwrap
from decimal import Decimal, localcontext

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given
from hypothesis import strategies as st

import freeenergy as fe
from freeenergy import train as tr

KEY = jax.random.key(0)
LOGP0 = jnp.log(jnp.array([0.5, 0.3, 0.2]))
REWARD = jnp.array([1.0, 0.0, 0.0])
BATCH = tr.Batch(REWARD, 0.1)


# ----------------------------------------------------------------------------- sizes
def test_huge_sizes_are_refused_before_they_reach_xla():
    """Each of these used to reach XLA with an impossible static shape (the interpreter aborts)
    or a scan of 10^18 steps; they run in a subprocess so that an abort fails only this test."""
    code = textwrap.dedent(
        """
        import jax, jax.numpy as jnp, optax
        from freeenergy import train as tr
        logp0 = jnp.log(jnp.array([0.5, 0.3, 0.2]))
        batch = tr.Batch(jnp.array([1.0, 0.0, 0.0]), 0.1)
        trainer = tr.make_trainer(tr.tabular(logp0), tr.grpo(num_samples=4), optax.adam(0.1))
        keys = jax.random.split(jax.random.key(0), 2)
        params = trainer.init(jax.random.key(0)).params
        calls = {
            "num_steps": lambda: tr.run(trainer, jax.random.key(0), batch, 10**18),
            "seeds": lambda: tr.run_seeds(trainer, keys, batch, 10**18),
            "seeds_total": lambda: tr.run_seeds(trainer, keys, batch, 2**24),
            "batch_size": lambda: tr.run_seeds(trainer, keys, batch, 2, batch_size=10**18),
            "grpo": lambda: tr.grpo(num_samples=10**18),
            "rloo": lambda: tr.rloo(num_samples=2**70),
            "ppo": lambda: tr.ppo(num_samples=10**18),
            "reinforce": lambda: tr.reinforce(num_samples=10**18),
            "sft": lambda: tr.sft(num_samples=10**18),
            "dpo": lambda: tr.dpo(num_samples=10**18),
            "epochs": lambda: tr.grpo(epochs=10**18),
            "ppo_epochs": lambda: tr.ppo(epochs=10**18),
            "ks": lambda: tr.make_trainer(
                tr.tabular(logp0), tr.grpo(), optax.adam(0.1), ks=(1, 10**30)
            ),
            "many_ks": lambda: tr.make_trainer(
                tr.tabular(logp0), tr.grpo(), optax.adam(0.1), ks=tuple(range(1, 5000))
            ),
            "sample": lambda: trainer.policy.sample(jax.random.key(0), params, 10**18),
            "group_size": lambda: tr.all_equal_probability(logp0, batch.reward, 10**30),
        }
        for name, call in calls.items():
            try:
                call()
            except ValueError as err:
                print(name, "ValueError", str(err).replace(chr(10), " "))
            else:
                print(name, "accepted")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    lines = dict(line.split(" ", 1) for line in out.stdout.strip().splitlines())
    assert len(lines) == 16, out.stdout
    expected_name = {
        "num_steps": "num_steps",
        "seeds": "num_steps",
        "seeds_total": "num_steps",
        "batch_size": "batch_size",
        "epochs": "epochs",
        "ppo_epochs": "epochs",
        "ks": "ks",
        "many_ks": "ks",
        "sample": "num",
        "group_size": "group_size",
    }
    for name, line in lines.items():
        assert line.startswith("ValueError"), (name, line)
        arg = expected_name.get(name, "num_samples")
        assert f"`{arg}`" in line, (name, line)
        assert "at most" in line, (name, line)


def test_dense_per_step_arrays_are_bounded_by_memory():
    """Sizes that are each legal but whose product is a dense array beyond memory: the exact
    Fisher matrix of natural gradient, the pair table of exact DPO, the sampler's comparisons."""
    big = fe.normalize(jnp.zeros(20_000))
    with pytest.raises(ValueError, match=r"`natural_gradient=True`.*20,000 parameters"):
        tr.make_trainer(tr.tabular(big), tr.grpo("exact"), optax.sgd(0.1), natural_gradient=True)
    with pytest.raises(ValueError, match=r"exact-mode DPO.*dpo\('sampled'\)"):
        tr.make_trainer(tr.tabular(big), tr.dpo("exact"), optax.sgd(0.1))
    policy = tr.tabular(fe.normalize(jnp.zeros(100)))
    params = policy.init(KEY)
    with pytest.raises(ValueError, match=r"drawing 16,777,216 samples \(`num`"):
        policy.sample(KEY, params, 2**24)
    two = tr.tabular(fe.normalize(jnp.zeros((2, 256))))
    trainer = tr.make_trainer(two, tr.grpo(num_samples=2**20), optax.sgd(0.1))
    with pytest.raises(ValueError, match="`num_samples`"):  # 2 x 2^20 x 256 comparisons
        tr.run(trainer, KEY, tr.Batch(jnp.zeros((2, 256)), 0.1), 2)
    # Below the bounds the same constructions are accepted.
    small = fe.normalize(jnp.zeros(100))
    tr.make_trainer(tr.tabular(small), tr.dpo("exact"), optax.sgd(0.1), natural_gradient=True)


def test_sizes_at_their_bound_are_accepted():
    assert tr.all_equal_probability(LOGP0, REWARD, 2**53) == 0.0  # (1/2)^(2^53 - 1) underflows
    trainer = tr.make_trainer(tr.tabular(LOGP0), tr.grpo(num_samples=2**20), optax.sgd(0.0))
    assert trainer.policy.sample(KEY, trainer.init(KEY).params, 2**20).shape == (2**20,)


# ----------------------------------------------------------------------------- clear errors
def test_two_keys_to_run_are_refused():
    trainer = tr.make_trainer(tr.tabular(LOGP0), tr.grpo(num_samples=4), optax.adam(0.1))
    with pytest.raises(TypeError, match="single PRNG key.*vmap"):
        tr.run(trainer, jax.random.split(KEY, 2), BATCH, 3)
    with pytest.raises(TypeError, match="single PRNG key"):
        tr.run(trainer, jnp.zeros((2, 2), jnp.uint32), BATCH, 3)  # two legacy keys


@pytest.mark.parametrize(
    ("logq_y", "logp0_y", "name"),
    [
        ([0.5, 0.25], [-1.0, -2.0], "logq_y"),  # probabilities passed as logq
        ([-1.0, -2.0], [0.0, 1.0], "logp0_y"),  # non-negative values
        ([-0.5, 2.0], [-1.0, -1.0], "logq_y"),  # a log-probability above 0
    ],
)
def test_kl_estimate_refuses_probabilities(logq_y, logp0_y, name):
    with pytest.raises(ValueError, match=rf"`{name}`.*log-probabilit"):
        tr.kl_estimate(jnp.array(logq_y), jnp.array(logp0_y))
    # Log-probabilities of 0 (a behavior of probability one) are legal.
    assert float(tr.kl_estimate(jnp.zeros(2), jnp.log(jnp.array([0.5, 0.5])), "k1")[0]) == (
        pytest.approx(np.log(2.0), abs=1e-15)
    )


def test_kl_estimator_stats_refuses_probabilities():
    with pytest.raises(ValueError, match=r"`logq`.*look like probabilities.*jnp.log"):
        tr.kl_estimator_stats(jnp.array([0.2, 0.3, 0.5]), LOGP0)
    with pytest.raises(ValueError, match=r"`logp0`.*look like probabilities"):
        tr.kl_estimator_stats(LOGP0, jnp.array([0.2, 0.3, 0.5]))


def test_complex_and_float_inputs_are_refused_by_name():
    z = jnp.array([0.1 + 1j, 0.2, 0.3])
    with pytest.raises(TypeError, match="logp0"):
        tr.tabular(z)
    with pytest.raises(TypeError, match="logq_y"):
        tr.kl_estimate(z, LOGP0)
    with pytest.raises(TypeError, match="features"):
        tr.log_linear(LOGP0, jnp.ones((3, 2)) * 1j)
    trainer = tr.make_trainer(tr.tabular(LOGP0), tr.grpo(num_samples=4), optax.adam(0.1))
    with pytest.raises(TypeError, match="batch.reward"):
        tr.run(trainer, KEY, tr.Batch(z, 0.1), 3)
    with pytest.raises(TypeError, match="batch.beta"):
        tr.run(trainer, KEY, tr.Batch(REWARD, 0.1j), 3)
    sft = tr.make_trainer(tr.tabular(LOGP0), tr.sft(), optax.adam(0.1))
    with pytest.raises(TypeError, match="batch.samples"):
        tr.run(sft, KEY, tr.Batch(REWARD, 0.0, samples=jnp.array([0.0, 1.0, 2.0])), 3)
    with pytest.raises(TypeError, match="batch.samples"):
        tr.run(sft, KEY, tr.Batch(REWARD, 0.0, samples=jnp.array([0, 1]) * 1j), 3)
    # Counts must be whole numbers: a fractional count is never truncated.
    with pytest.raises(TypeError, match="num_samples"):
        tr.grpo(num_samples=4.5)
    with pytest.raises(TypeError, match="num_steps"):
        tr.run(trainer, KEY, BATCH, 2.5)
    with pytest.raises(TypeError, match="ks"):
        tr.make_trainer(tr.tabular(LOGP0), tr.grpo(), optax.adam(0.1), ks=(1, 2.5))
    with pytest.raises(TypeError, match="epochs"):
        tr.ppo(epochs=1.5)
    with pytest.raises(TypeError, match="damping"):
        tr.make_trainer(tr.tabular(LOGP0), tr.grpo(), optax.adam(0.1), damping=1j)


@pytest.mark.parametrize("bad", [np.zeros(0), np.zeros((2, 7)), None, 3, ["exact"]])
def test_option_strings_are_checked_to_be_strings(bad):
    """An array used to reach ``bad in MODES`` (NumPy: "truth value of an array is ambiguous")."""
    for make in (tr.sft, tr.reinforce, tr.rloo, tr.grpo, tr.ppo, tr.dpo):
        with pytest.raises(ValueError, match="`mode` must be one of"):
            make(mode=bad)
    with pytest.raises(ValueError, match="`kind` must be one of"):
        tr.kl_estimate(LOGP0, LOGP0, kind=bad)
    with pytest.raises(ValueError, match="`weighting` must be"):
        tr.sft(weighting=bad)
    with pytest.raises(ValueError, match="`kl_in` must be"):
        tr.grpo(kl_in=bad if bad is not None else 1.5)
    if bad is not None:
        with pytest.raises(ValueError, match="`kl` must be"):
            tr.grpo(kl=bad)


def test_malformed_policies_are_named():
    with pytest.raises(TypeError, match=r"`policy` fields \['init', 'logprobs'"):
        tr.make_trainer(tr.Policy(None, None, None, None), tr.grpo(), optax.adam(0.1))
    scalar = tr.flat_policy(lambda key: jnp.zeros(3), lambda params: jnp.sum(params))
    with pytest.raises(TypeError, match=r"`policy.logprobs\(policy.init\(key\)\)` must be"):
        tr.make_trainer(scalar, tr.grpo(), optax.adam(0.1))


def test_trainer_and_step_size_are_named():
    for bad in (None, 3, "abc", [[1, 2], [3]]):
        with pytest.raises(TypeError, match="`trainer` must be a Trainer"):
            tr.check_batch(bad, BATCH)
    with pytest.raises(TypeError, match="`step_size`"):
        tr.make_mirror_descent(LOGP0, step_size=np.array([0.5]))
    for bad in (0.0, -1.0, np.inf):
        with pytest.raises(ValueError, match="`step_size` must be finite and > 0"):
            tr.make_mirror_descent(LOGP0, step_size=bad)


def test_reward_fn_output_is_checked_by_shape_and_type():
    def short(batch, y):
        return jnp.ones(y.shape[:-1] + (2,))

    trainer = tr.make_trainer(
        tr.tabular(LOGP0), tr.grpo(num_samples=4, reward_fn=short), optax.adam(0.1)
    )
    with pytest.raises(ValueError, match=r"`reward_fn` returned rewards of shape \(2,\)"):
        tr.run(trainer, KEY, BATCH, 3)

    def complex_reward(batch, y):
        return y * 1j

    for objective in (tr.rloo(num_samples=4, reward_fn=complex_reward),):
        trainer = tr.make_trainer(tr.tabular(LOGP0), objective, optax.adam(0.1))
        with pytest.raises(TypeError, match="`reward_fn` must return real rewards"):
            tr.run(trainer, KEY, BATCH, 3)
    trainer = tr.make_trainer(
        tr.tabular(LOGP0), tr.dpo(num_samples=4, reward_fn=short), optax.adam(0.1)
    )
    with pytest.raises(ValueError, match="`reward_fn` returned rewards"):
        tr.run(trainer, KEY, BATCH, 3)


# ----------------------------------------------------------------------------- no silent NaN
def test_nan_learning_rate_is_refused_when_the_trainer_is_built():
    for optimizer in (
        optax.adam(float("nan")),
        optax.sgd(float("inf")),
        optax.inject_hyperparams(optax.adam)(learning_rate=jnp.nan),
    ):
        with pytest.raises(ValueError, match="`optimizer`.*learning rate"):
            tr.make_trainer(tr.tabular(LOGP0), tr.grpo(num_samples=4), optax.chain(optimizer))


def test_a_schedule_that_reaches_nan_is_reported_at_its_step():
    def schedule(count):
        return jnp.where(count < 3, 0.1, jnp.nan)

    trainer = tr.make_trainer(tr.tabular(LOGP0), tr.grpo(num_samples=4), optax.adam(schedule))
    with pytest.raises(tr.TrainingDiverged, match="step 3 of 10.*learning rate") as err:
        tr.run(trainer, KEY, BATCH, 10)
    assert err.value.step == 3 and err.value.seed is None
    assert isinstance(err.value, ValueError)
    # The attached result is the run itself: finite up to step 2, NaN from step 3.
    infos = err.value.infos
    assert infos.loss.shape == (10,)
    assert np.all(np.isfinite(np.asarray(infos.expected_reward[:3])))
    assert np.all(np.isnan(np.asarray(infos.expected_reward[3:])))


@pytest.mark.parametrize(
    ("make", "bad"),
    [(tr.grpo, jnp.nan), (tr.rloo, jnp.nan), (tr.reinforce, jnp.nan), (tr.ppo, jnp.nan)]
    + [(tr.dpo, jnp.nan), (tr.grpo, jnp.inf), (tr.dpo, -jnp.inf)],
)
def test_a_reward_fn_that_returns_a_non_finite_reward_is_reported(make, bad):
    """Such a group used to be silently dropped (GRPO: the std comparison with NaN is False, so
    the advantages became 0) or turned into biased labels (DPO: sigmoid(NaN))."""

    def reward_fn(batch, y):
        return jnp.where(y == 0, bad, 1.0)

    trainer = tr.make_trainer(
        tr.tabular(LOGP0), make(num_samples=8, reward_fn=reward_fn), optax.adam(0.1)
    )
    with pytest.raises(tr.TrainingDiverged, match="step 0 of 5.*`reward_fn` returned") as err:
        tr.run(trainer, KEY, BATCH, 5)
    assert err.value.step == 0


def test_run_seeds_names_the_first_seed_that_diverged():
    def reward_fn(batch, y):  # NaN only when the last behavior (p = 0.2) is drawn
        return jnp.where(y == 2, jnp.nan, jnp.asarray(batch.reward)[y])

    trainer = tr.make_trainer(
        tr.tabular(LOGP0), tr.grpo(num_samples=2, reward_fn=reward_fn), optax.adam(0.1)
    )
    keys = jax.random.split(KEY, 6)
    with pytest.raises(tr.TrainingDiverged) as err:
        tr.run_seeds(trainer, keys, BATCH, 4)
    seed, step = err.value.seed, err.value.step
    # Independently: the vmapped run's own NaN pattern.
    _, infos = jax.vmap(lambda k: tr.run(trainer, k, BATCH, 4))(keys)
    nan = np.isnan(np.asarray(infos.zero_signal))
    first_seed = int(np.flatnonzero(nan.any(axis=1))[0])
    assert (seed, step) == (first_seed, int(np.argmax(nan[first_seed])))
    assert f"seed {seed} of 6" in str(err.value)


def test_finite_runs_with_infinite_losses_are_not_errors():
    """+inf is a legal report (an SFT target outside the policy's support), not a divergence."""
    logp0 = jnp.log(jnp.array([0.5, 0.5, 0.0]))
    trainer = tr.make_trainer(tr.tabular(logp0), tr.sft("exact"), optax.adam(0.1))
    _, info = tr.run(trainer, KEY, tr.Batch(jnp.zeros(3), 0.0, LOGP0), 5)
    assert bool(jnp.all(info.loss == jnp.inf))


def test_rewards_too_large_to_square_are_refused_and_the_largest_accepted_train():
    """Rewards of 1e308 made GRPO's group variance and Adam's second moment overflow: the update
    silently became 0 (or NaN for r - E[r] past the float range)."""
    trainer = tr.make_trainer(tr.tabular(LOGP0), tr.grpo(num_samples=8), optax.adam(0.1))
    for reward in ([1e308, 0.0, 0.0], [1e200, -1e200, 0.0], [0.0, 0.0, 1e160]):
        with pytest.raises(ValueError, match=r"`batch.reward` reaches magnitude.*Rescale"):
            tr.run(trainer, KEY, tr.Batch(jnp.array(reward), 0.5), 3)
    for dtype, big in ((jnp.float64, 3e153), (jnp.float32, 4e18)):
        logp0 = LOGP0.astype(dtype)
        for objective in (tr.grpo(num_samples=8), tr.reinforce("exact", kl="exact")):
            trainer = tr.make_trainer(tr.tabular(logp0), objective, optax.adam(0.1))
            reward = jnp.array([0.0, -big, big], dtype)
            _, info = tr.run(trainer, KEY, tr.Batch(reward, 0.5), 5)
            # The policy moves towards the rewarded behavior (the update is not zeroed).
            assert float(info.kl_target[-1]) < float(info.kl_target[0]) - 0.1


# ----------------------------------------------------------------------------- KL estimator moments
def exact_moments(logq, logp0):
    """Means and variances of k1, k2, k3 under q by 60-digit decimal enumeration of the given
    float log-probabilities (exact inputs, exact formulas; no floating point), with the scales
    E|k| and E k^2 that bound their rounding."""
    with localcontext() as ctx:
        ctx.prec = 60
        rows = []
        for lq, lp in zip(np.asarray(logq, float), np.asarray(logp0, float), strict=True):
            if lq == -np.inf:
                continue
            assert lp > -np.inf
            ell = Decimal(float(lp)) - Decimal(float(lq))
            q = Decimal(float(lq)).exp()
            rows.append((q, [-ell, ell * ell / 2, ell.exp() - 1 - ell]))
        means = [sum(q * k[i] for q, k in rows) for i in range(3)]
        variances = [sum(q * (k[i] - means[i]) ** 2 for q, k in rows) for i in range(3)]
        abs_mean = [sum(q * abs(k[i]) for q, k in rows) for i in range(3)]
        second = [sum(q * k[i] * k[i] for q, k in rows) for i in range(3)]
        return means, variances, abs_mean, second


def assert_matches_exact(stats, logq, logp0, rtol):
    means, variances, abs_mean, second = exact_moments(logq, logp0)
    eps = Decimal(float(np.finfo(np.asarray(stats.variance).dtype).eps))
    big = Decimal(float(np.finfo(np.asarray(stats.variance).dtype).max))
    for i in range(3):
        got_mean, got_var = float(stats.mean[i]), float(stats.variance[i])
        assert not np.isnan(got_mean) and not np.isnan(got_var)
        tol = Decimal(rtol) * abs_mean[i] + 8 * eps
        assert abs(Decimal(got_mean) - means[i]) <= tol, (i, got_mean, means[i])
        if variances[i] > big:
            assert got_var == np.inf, (i, got_var, variances[i])
        else:
            tol = Decimal(rtol) * second[i] + 8 * eps * eps
            assert abs(Decimal(got_var) - variances[i]) <= tol, (i, got_var, variances[i])
    assert float(stats.kl) == float(stats.mean[0])


@pytest.mark.parametrize(
    "logq",
    [
        [0.0, -1e4, -1e4],  # q underflows: e^l overflows where q is tiny
        [0.0, -700.0, -720.0],  # the k3 variance ~ p0^2/q is huge but representable
        [0.0, -800.0, -30.0],
    ],
)
def test_kl_estimator_stats_with_tiny_probabilities_is_exact(logq):
    logq = fe.normalize(jnp.array(logq))
    logp0 = jnp.log(jnp.array([0.5, 0.25, 0.25]))
    stats = tr.kl_estimator_stats(logq, logp0)
    assert_matches_exact(stats, logq, logp0, 1e-12)
    # k3 is unbiased here (supp q = supp p0): E k3 = KL, which is ~ log 2 - ... and finite.
    assert float(stats.bias[2]) == pytest.approx(0.0, abs=1e-15)


def test_kl_estimator_stats_in_float32_overflows_to_inf_not_nan():
    logq = jnp.array([0.0, -100.0], jnp.float32)
    logp0 = jnp.log(jnp.array([0.5, 0.5], jnp.float32))
    stats = tr.kl_estimator_stats(logq, logp0)
    assert stats.mean.dtype == jnp.float32
    assert_matches_exact(stats, logq, logp0, 1e-6)
    assert float(stats.variance[2]) == np.inf  # 0.25 e^100 > 3.4e38
    assert float(stats.mean[2]) == pytest.approx(np.log(2.0), rel=1e-6)


@given(
    st.lists(st.floats(-1e4, 0.0), min_size=2, max_size=6),
    st.lists(st.floats(-50.0, 0.0), min_size=6, max_size=6),
)
def test_kl_estimator_stats_matches_decimal_enumeration(logits_q, logits_p):
    n = len(logits_q)
    logq = fe.normalize(jnp.array(logits_q))
    logp0 = fe.normalize(jnp.array(logits_p[:n]))
    stats = tr.kl_estimator_stats(logq, logp0)
    assert_matches_exact(stats, logq, logp0, 1e-10)
