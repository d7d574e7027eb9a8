"""Gradient post-training against exact oracles (float64, fixed keys).

Every check compares a trained or estimated number with an independent computation: the Gibbs
tilt, a closed form, an enumeration, or a second algorithm (natural gradient vs mirror descent).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import freeenergy as fe
from freeenergy import train as tr

KEY = jax.random.key(0)
LOGP0 = jnp.log(jnp.array([0.4, 0.25, 0.15, 0.1, 0.06, 0.04]))
REWARD = jnp.array([0.0, 1.0, 0.3, -0.5, 2.0, 0.8])
BETA = 0.7


def final_logq(trainer, state):
    return trainer.policy.logprobs(state.params)


def gibbs_rl(logp0=LOGP0, reward=REWARD, beta=BETA):
    return fe.gibbs(logp0, -reward, beta)


# ----------------------------------------------------------------------------- exact convergence
@pytest.fixture(scope="module")
def exact_rl():
    trainer = tr.make_trainer(
        tr.tabular(LOGP0), tr.reinforce("exact", kl="exact"), optax.adam(0.05)
    )
    state, info = tr.run(trainer, KEY, tr.Batch(REWARD, BETA), 1500)
    return trainer, state, info


def test_exact_kl_regularized_reinforce_converges_to_gibbs(exact_rl):
    trainer, state, info = exact_rl
    logq = final_logq(trainer, state)
    target = gibbs_rl()
    assert float(fe.kl(logq, target)) < 1e-5
    assert float(fe.kl(target, logq)) < 1e-5
    np.testing.assert_allclose(float(info.kl_target[-1]), float(fe.kl(target, logq)), atol=1e-14)
    # The Info trajectory is the exact metrics of the trained distributions.
    assert float(info.expected_reward[-1]) == pytest.approx(
        float(jnp.sum(jnp.exp(logq) * REWARD)), abs=1e-12
    )
    assert float(info.kl_reference[-1]) == pytest.approx(float(fe.kl(logq, LOGP0)), abs=1e-12)
    assert float(info.entropy[-1]) == pytest.approx(float(fe.entropy(logq)), abs=1e-12)
    correct = REWARD == REWARD.max()
    np.testing.assert_allclose(
        info.pass_at_k[-1], fe.pass_at_k(logq, correct, jnp.array(trainer.ks)), atol=1e-12
    )
    assert float(info.accessible[-1]) == float(
        jnp.sum(fe.accessible_support(logq, max(trainer.ks)))
    )
    # The regularized objective never decreases much and ends at its maximum beta*log Z.
    objective = info.expected_reward - BETA * info.kl_reference
    best = BETA * float(fe.log_partition(LOGP0, -REWARD, BETA))
    assert float(objective[-1]) == pytest.approx(best, abs=1e-6)


def effective_temperature_roots(logp0, reward, beta):
    """The fixed points σ > 0 of σ = std_{q_σ}(r), q_σ = gibbs(p0, -r, β·σ), in plain NumPy
    float64: sign changes of std(σ) - σ on a log grid, each refined by 200 bisection steps."""
    p0, r = np.exp(np.asarray(logp0, np.float64)), np.asarray(reward, np.float64)

    def gap(sigma):
        logits = np.log(p0) + r / (beta * sigma)
        q = np.exp(logits - logits.max())
        q /= q.sum()
        return np.sqrt(q @ (r - q @ r) ** 2) - sigma

    grid = np.geomspace(1e-4, 10 * (r.max() - r.min()), 4000)
    values = np.array([gap(s) for s in grid])
    roots = []
    for i in np.flatnonzero(np.sign(values[:-1]) != np.sign(values[1:])):
        lo, hi = grid[i], grid[i + 1]
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if np.sign(gap(mid)) == np.sign(gap(lo)) else (lo, mid)
        roots.append(0.5 * (lo + hi))
    return roots


def test_std_scaled_grpo_lands_on_the_tilt_at_an_effective_temperature():
    """GRPO's division by the reward's standard deviation rescales it: the exact stationarity
    condition of ``-E_q[(r - E_q r)/σ_q] + β KL(q‖p0)`` is ``q = gibbs(p0, -r, β·σ)`` with
    ``σ = std_q(r)``, a scalar fixed point solved here independently of the library.

    Besides the collapsed σ = 0, fixed points come in pairs (std(σ) - σ is negative near 0 and
    at infinity): here two. Training starts at p0 (σ = ∞, the hot end) and stops at the first
    one it meets, the larger, whose std(σ) crosses σ from above (the attracting one)."""
    roots = effective_temperature_roots(LOGP0, REWARD, BETA)
    assert len(roots) == 2
    sigma = roots[1]
    trainer = tr.make_trainer(tr.tabular(LOGP0), tr.grpo("exact", kl="exact"), optax.adam(0.05))
    state, _ = tr.run(trainer, KEY, tr.Batch(REWARD, BETA), 1500)
    logq = final_logq(trainer, state)
    assert float(fe.kl(fe.gibbs(LOGP0, -REWARD, BETA * sigma), logq)) < 1e-10
    # The other fixed points (the repelling root, the collapsed policy) and the tilt at β
    # itself are far from where training ends.
    assert float(fe.kl(fe.gibbs(LOGP0, -REWARD, BETA * roots[0]), logq)) > 1e-4
    collapsed = jnp.where(REWARD == REWARD.max(), 0.0, -jnp.inf)
    assert float(fe.kl(logq, collapsed)) == np.inf
    assert float(fe.kl(gibbs_rl(), logq)) > 1e-2


def test_vmap_over_beta_lands_on_each_gibbs_tilt():
    betas = jnp.array([0.5, 1.0, 3.0])
    trainer = tr.make_trainer(tr.tabular(LOGP0), tr.rloo("exact", kl="k1"), optax.adam(0.05))
    states, _ = jax.vmap(lambda b: tr.run(trainer, KEY, tr.Batch(REWARD, b), 1500))(betas)
    logq = jax.vmap(trainer.policy.logprobs)(states.params)
    kls = fe.kl(fe.gibbs(LOGP0, -REWARD, betas), logq)
    assert float(jnp.max(kls)) < 1e-6


def test_dpo_optimum_is_the_gibbs_tilt_of_the_bradley_terry_reward():
    objective = tr.dpo("exact")
    trainer = tr.make_trainer(tr.tabular(LOGP0), objective, optax.adam(0.05))
    batch = tr.Batch(REWARD, BETA)
    state, info = tr.run(trainer, KEY, batch, 2000)
    logq = final_logq(trainer, state)
    target = gibbs_rl()
    assert float(fe.kl(logq, target)) < 1e-8
    # Independent of training: the exact DPO loss is stationary at the tilt ...
    policy = trainer.policy
    ro, _ = objective.prepare(KEY, policy, state.reference, state.reference, batch, (), 0)
    grad = jax.grad(lambda p: objective.loss(policy, p, ro)[0])(target)
    assert float(jnp.max(jnp.abs(grad))) < 1e-12
    # ... and the implied energy (DPO's implicit reward, negated) recovers -r up to a constant.
    energy = fe.implied_energy(logq, LOGP0, BETA)
    shift = energy + REWARD
    np.testing.assert_allclose(shift, shift[0], atol=2e-4)
    # The exact loss at the optimum is the Bradley-Terry cross-entropy of the pair distribution.
    p0 = jnp.exp(LOGP0)
    s = jax.nn.sigmoid(REWARD[:, None] - REWARD[None, :])
    entropy_bt = -jnp.sum(p0[:, None] * p0[None, :] * s * jnp.log(s))
    assert float(info.loss[-1]) == pytest.approx(float(entropy_bt), abs=1e-6)
    assert float(info.zero_signal[-1]) == pytest.approx(float(jnp.sum(p0**2)), abs=1e-14)


def test_exact_sft_converges_to_the_demonstrations():
    d = jnp.log(jnp.array([0.05, 0.1, 0.2, 0.3, 0.25, 0.1]))
    trainer = tr.make_trainer(tr.tabular(LOGP0), tr.sft("exact"), optax.adam(0.05))
    state, info = tr.run(trainer, KEY, tr.Batch(REWARD, 0.0, d), 1500)
    logq = final_logq(trainer, state)
    assert float(fe.kl(d, logq)) < 1e-8
    # The loss is the cross-entropy H(d, q) -> H(d).
    assert float(info.loss[-1]) == pytest.approx(float(fe.entropy(d)), abs=1e-8)
    assert float(info.zero_signal[-1]) == 0.0


@pytest.mark.parametrize("mode", ["exact", "sampled"])
def test_singular_sft_reports_infinity_and_stays_finite(mode):
    logp0 = jnp.log(jnp.array([0.5, 0.3, 0.2, 0.0]))
    d = jnp.log(jnp.array([0.1, 0.2, 0.3, 0.4]))  # 0.4 of the target is outside supp(p0)
    trainer = tr.make_trainer(tr.tabular(logp0), tr.sft(mode, num_samples=64), optax.adam(0.05))
    state, info = tr.run(trainer, KEY, tr.Batch(jnp.zeros(4), 0.0, d), 600)
    assert bool(jnp.all(jnp.isfinite(state.params)))
    assert not bool(jnp.any(jnp.isnan(info.loss)))
    assert bool(jnp.all(info.loss == jnp.inf)) and bool(jnp.all(info.kl_target == jnp.inf))
    logq = final_logq(trainer, state)
    assert float(logq[3]) == -np.inf
    # Training still goes towards d conditioned on the support.
    conditioned = jnp.log(jnp.array([1 / 6, 2 / 6, 3 / 6, 0.0]))
    tol = 1e-8 if mode == "exact" else 2e-2
    assert float(fe.kl(conditioned, logq)) < tol
    if mode == "exact":
        assert float(info.zero_signal[-1]) == pytest.approx(0.4, abs=1e-12)
    else:  # fraction of demonstrations outside the support ~ 0.4 (64 draws a step)
        assert abs(float(jnp.mean(info.zero_signal)) - 0.4) < 0.02


# ----------------------------------------------------------------------------- T11
# T11 (weighted SFT = KL-RL, and the price of a stored sample set) and T13 (a sampled step keeps
# the ratio of undrawn behaviors) are properties over random instances in test_train_oracles.py.


def test_sft_on_a_stored_sample_set_reaches_the_weighted_empirical_optimum():
    """Sampled-mode SFT with ``batch.samples`` uses the whole stored set at every step: reward
    weighting makes its optimum q ∝ count(y)·e^{r(y)/β} (self-normalized weights)."""
    samples = jnp.array([0, 0, 1, 3, 3, 3, 5, 5])
    stored = jnp.zeros(6, bool).at[samples].set(True)
    model = fe.normalize(jnp.where(stored, LOGP0, -jnp.inf))  # a model supported on the set
    trainer = tr.make_trainer(tr.tabular(model), tr.sft(weighting="reward"), optax.adam(0.05))
    state, info = tr.run(trainer, KEY, tr.Batch(REWARD, BETA, samples=samples), 1500)
    counts = jnp.bincount(samples, length=6)
    expected = fe.normalize(jnp.where(stored, jnp.log(counts) + REWARD / BETA, -jnp.inf))
    assert float(fe.kl(expected, final_logq(trainer, state))) < 1e-9
    assert float(info.zero_signal[-1]) == 0.0


# ----------------------------------------------------------------------------- T8
def test_equal_rewards_vanilla_pg_collapses_natural_pg_and_tilt_keep_the_ratio():
    """T8: a and b have equal reward and p0(a) = 2 p0(b). Vanilla softmax PG (plain gradient
    descent) lets a take over; natural PG, mirror descent and every Gibbs tilt keep the ratio 2."""
    logp0 = jnp.log(jnp.array([0.2, 0.1, 0.4, 0.3]))
    reward = jnp.array([1.0, 1.0, 0.0, 0.0])
    batch = tr.Batch(reward, 0.0)
    steps = 300

    def ratio(trainer):
        chunk = jax.jit(
            lambda s, keys: jax.lax.scan(lambda c, k: trainer.step(k, c, batch), s, keys)
        )
        state = trainer.init(KEY)
        ratios = []
        for i in range(3):
            state, _ = chunk(state, jax.random.split(jax.random.fold_in(KEY, i), steps))
            lq = final_logq(trainer, state)
            ratios.append(float(jnp.exp(lq[0] - lq[1])))
        return ratios, final_logq(trainer, state)

    vanilla, lq_vanilla = ratio(
        tr.make_trainer(tr.tabular(logp0), tr.reinforce("exact", kl=None), optax.sgd(1.0))
    )
    assert vanilla[0] > 2.3 and vanilla[2] > vanilla[1] > vanilla[0]
    assert float(jnp.exp(lq_vanilla[0]) + jnp.exp(lq_vanilla[1])) > 0.99
    natural, lq_nat = ratio(
        tr.make_trainer(
            tr.tabular(logp0),
            tr.reinforce("exact", kl=None),
            optax.sgd(0.05),
            natural_gradient=True,
        )
    )
    np.testing.assert_allclose(natural, 2.0, rtol=1e-10)
    assert float(jnp.exp(lq_nat[0]) + jnp.exp(lq_nat[1])) > 0.99
    mirror, _ = ratio(tr.make_mirror_descent(logp0, 0.05))
    np.testing.assert_allclose(mirror, 2.0, rtol=1e-10)
    for beta in [3.0, 0.3, 0.03]:
        tilt = fe.gibbs(logp0, -reward, beta)
        assert float(jnp.exp(tilt[0] - tilt[1])) == pytest.approx(2.0, rel=1e-12)


def test_natural_gradient_on_a_tabular_policy_is_mirror_descent():
    batch = tr.Batch(REWARD, BETA)
    md = tr.make_mirror_descent(LOGP0, 0.4)
    npg = tr.make_trainer(
        tr.tabular(LOGP0), tr.reinforce("exact", kl="exact"), optax.sgd(0.4), natural_gradient=True
    )
    s1, i1 = tr.run(md, KEY, batch, 40)
    s2, i2 = tr.run(npg, KEY, batch, 40)
    np.testing.assert_allclose(final_logq(md, s1), final_logq(npg, s2), atol=1e-10)
    # Mirror descent contracts the log-ratio to the target by (1 - ηβ) per step.
    gap = final_logq(md, s1) - gibbs_rl()
    gap0 = LOGP0 - gibbs_rl()
    expected = (1 - 0.4 * BETA) ** 40 * (gap0 - gap0[0])
    np.testing.assert_allclose(gap - gap[0], expected, atol=1e-12)


def test_mirror_descent_without_kl_composes_tilts():
    """T3: T steps of size η with β = 0 equal one tilt at temperature 1/(Tη)."""
    md = tr.make_mirror_descent(LOGP0, 0.25)
    state, _ = tr.run(md, KEY, tr.Batch(REWARD, 0.0), 12)
    np.testing.assert_allclose(final_logq(md, state), fe.gibbs(LOGP0, -REWARD, 1 / 3.0), atol=1e-12)


# ----------------------------------------------------------------------------- KL estimators
def test_kl_estimator_moments_by_enumeration():
    logq = fe.gibbs(LOGP0, -REWARD, 0.8)
    stats = tr.kl_estimator_stats(logq, LOGP0)
    q, lr = np.exp(np.asarray(logq)), np.asarray(LOGP0 - logq)
    values = {"k1": -lr, "k2": 0.5 * lr**2, "k3": np.expm1(lr) - lr}
    true_kl = float(fe.kl(logq, LOGP0))
    for i, k in enumerate(tr.KL_ESTIMATORS):
        mean = np.sum(q * values[k])
        assert float(stats.mean[i]) == pytest.approx(mean, abs=1e-14)
        assert float(stats.variance[i]) == pytest.approx(
            np.sum(q * (values[k] - mean) ** 2), abs=1e-13
        )
        np.testing.assert_allclose(tr.kl_estimate(logq, LOGP0, k), values[k], atol=1e-14)
    assert float(stats.kl) == pytest.approx(true_kl, abs=1e-14)
    # k1 and k3 unbiased, k2 biased (here by a clearly non-zero amount).
    assert abs(float(stats.bias[0])) < 1e-14 and abs(float(stats.bias[2])) < 1e-14
    assert abs(float(stats.bias[1])) > 1e-3
    # k3 and k2 are non-negative per sample, k1 is not.
    assert float(jnp.min(tr.kl_estimate(logq, LOGP0, "k3"))) >= 0
    assert float(jnp.min(tr.kl_estimate(logq, LOGP0, "k1"))) < 0


def test_k3_bias_is_the_reference_mass_the_sampler_misses():
    keep = jnp.array([True, True, False, True, False, True])
    logq = fe.normalize(jnp.where(keep, LOGP0 + REWARD, -jnp.inf))
    stats = tr.kl_estimator_stats(logq, LOGP0)
    missing = float(jnp.sum(jnp.where(keep, 0.0, jnp.exp(LOGP0))))
    assert float(stats.bias[2]) == pytest.approx(-missing, abs=1e-14)
    assert abs(float(stats.bias[0])) < 1e-14
    # Singular sampler: everything infinite, never NaN.
    singular = tr.kl_estimator_stats(LOGP0, fe.normalize(jnp.where(keep, LOGP0, -jnp.inf)))
    assert bool(jnp.all(singular.mean == jnp.inf)) and not bool(jnp.any(jnp.isnan(singular.bias)))


def test_exact_mode_kl_placements_reach_their_own_optima():
    """In expectation, k1 in the reward and k2 in the loss follow ∇KL(q‖p0) (→ the Gibbs tilt);
    k3 in the loss follows ∇KL(p0‖q), whose optimum q = β p0 / (λ - r) is found by bisection."""
    batch = tr.Batch(REWARD, BETA)
    ends = {}
    for kl, kl_in in [("k1", "reward"), ("k2", "loss"), ("k3", "loss")]:
        trainer = tr.make_trainer(
            tr.tabular(LOGP0), tr.rloo("exact", kl=kl, kl_in=kl_in), optax.adam(0.05)
        )
        state, _ = tr.run(trainer, KEY, batch, 2000)
        ends[kl] = final_logq(trainer, state)
    assert float(fe.kl(gibbs_rl(), ends["k1"])) < 1e-8
    assert float(fe.kl(gibbs_rl(), ends["k2"])) < 1e-8
    p0, r = np.exp(np.asarray(LOGP0)), np.asarray(REWARD)
    lo, hi = r.max() + 1e-12, r.max() + BETA * 10
    for _ in range(200):
        lam = 0.5 * (lo + hi)
        lo, hi = (lam, hi) if np.sum(BETA * p0 / (lam - r)) > 1 else (lo, lam)
    forward = BETA * p0 / (lam - r)
    np.testing.assert_allclose(np.exp(np.asarray(ends["k3"])), forward, atol=1e-7)
    assert float(fe.kl(gibbs_rl(), ends["k3"])) > 1e-3


# ----------------------------------------------------------------------------- sampled modes
def test_sampled_grpo_counts_zero_signal_groups_and_approaches_the_target():
    # Binary reward, rare success: many groups have all-equal rewards.
    logp0 = jnp.log(jnp.array([0.05, 0.45, 0.3, 0.2]))
    reward = jnp.array([1.0, 0.0, 0.0, 0.0])
    objective = tr.grpo(num_samples=4, scale_rewards=False, kl="k1", kl_in="reward", epochs=2)
    trainer = tr.make_trainer(tr.tabular(logp0), objective, optax.adam(0.02))
    keys = jax.random.split(KEY, 4)
    states, infos = jax.vmap(lambda k: tr.run(trainer, k, tr.Batch(reward, 0.5), 800))(keys)
    # First step: zero-signal fraction is an unbiased estimate of (1-p)^G + p^G per group.
    exact0 = float(tr.all_equal_probability(logp0, reward, 4))
    assert exact0 == pytest.approx(0.95**4 + 0.05**4, rel=1e-12)
    assert set(np.unique(np.asarray(infos.zero_signal))) <= {0.0, 1.0}
    logq = jax.vmap(trainer.policy.logprobs)(states.params)
    target = fe.gibbs(logp0, -reward, 0.5)
    assert float(jnp.max(fe.kl(target, logq))) < 1e-3
    # The seeds really differ along the way (k1 in the reward makes the gradient noise vanish
    # at the optimum, so they all end on the target).
    assert float(jnp.std(infos.kl_target[:, 20])) > 1e-4


def test_multi_prompt_sampled_grpo_fraction_matches_exact_probability():
    logp0 = jnp.log(jnp.array([[0.05, 0.45, 0.3, 0.2], [0.5, 0.2, 0.2, 0.1]]))
    reward = jnp.array([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    trainer = tr.make_trainer(tr.tabular(logp0), tr.grpo(num_samples=3), optax.sgd(0.0))
    state = trainer.init(KEY)
    keys = jax.random.split(KEY, 4000)
    _, infos = jax.lax.scan(lambda s, k: trainer.step(k, s, tr.Batch(reward, 0.1)), state, keys)
    exact = float(jnp.mean(tr.all_equal_probability(logp0, reward, 3)))
    # 4000 steps x 2 groups: standard error < 0.006; 5 sigma bound.
    assert abs(float(jnp.mean(infos.zero_signal)) - exact) < 0.03


def test_sampled_methods_settle_near_the_gibbs_target():
    batch = tr.Batch(REWARD, BETA, LOGP0)
    objectives = {
        "reinforce": tr.reinforce(num_samples=16),
        "ppo": tr.ppo(num_samples=16, whiten=False),
        "dpo": tr.dpo(num_samples=64),
        "weighted_sft": tr.sft(num_samples=64, weighting="reward"),
    }
    for name, objective in objectives.items():
        trainer = tr.make_trainer(tr.tabular(LOGP0), objective, optax.adam(0.02))
        _, info = tr.run(trainer, KEY, batch, 1500)
        assert float(jnp.mean(info.kl_target[-100:])) < 1e-2, name
        assert float(info.kl_target[-1]) < float(info.kl_target[0]), name


# ----------------------------------------------------------------------------- policies
def test_policies_keep_excluded_behaviors_and_finite_gradients():
    logp0 = jnp.log(jnp.array([[0.5, 0.0, 0.3, 0.2], [0.0, 0.6, 0.4, 0.0]]))
    feats = jax.random.normal(jax.random.key(7), (4, 3))
    reward = jnp.array([[1.0, 5.0, 0.0, 0.0], [0.0, 0.0, 1.0, 9.0]])
    for policy in [tr.tabular(logp0), tr.log_linear(logp0, feats), tr.shared(logp0, feats)]:
        trainer = tr.make_trainer(policy, tr.grpo("exact", kl="exact"), optax.adam(0.1))
        state, info = tr.run(trainer, KEY, tr.Batch(reward, 0.5), 50)
        lq = policy.logprobs(state.params)
        assert bool(jnp.all(jnp.isneginf(lq) == jnp.isneginf(logp0)))
        leaves = jax.tree_util.tree_leaves(state.params)
        assert all(bool(jnp.all(jnp.isfinite(x))) for x in leaves)
        assert bool(jnp.all(jnp.isfinite(info.kl_target)))
        ys = policy.sample(KEY, state.params, 2000)
        assert bool(jnp.all(jnp.isfinite(policy.log_prob(state.params, ys))))


def test_log_linear_reaches_the_tilt_when_the_reward_is_in_the_feature_span():
    feats = jnp.stack([REWARD, jnp.arange(6.0) ** 2], axis=-1)
    trainer = tr.make_trainer(
        tr.log_linear(LOGP0, feats), tr.reinforce("exact", kl="exact"), optax.adam(0.05)
    )
    state, _ = tr.run(trainer, KEY, tr.Batch(REWARD, BETA), 1500)
    np.testing.assert_allclose(state.params, [1 / BETA, 0.0], atol=1e-5)
    assert float(fe.kl(gibbs_rl(), final_logq(trainer, state))) < 1e-9


def test_shared_policy_moves_prompts_that_got_no_signal():
    logp0 = jnp.log(jnp.array([[0.4, 0.3, 0.3], [0.2, 0.5, 0.3]]))
    reward = jnp.array([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])  # prompt 1: constant reward
    feats = jnp.eye(3)
    batch = tr.Batch(reward, 0.0)
    moved = {}
    for name, policy in [("shared", tr.shared(logp0, feats)), ("tabular", tr.tabular(logp0))]:
        trainer = tr.make_trainer(policy, tr.reinforce("exact", kl=None), optax.sgd(1.0))
        state, _ = tr.run(trainer, KEY, batch, 20)
        moved[name] = float(fe.kl(policy.logprobs(state.params)[1], logp0[1]))
    assert moved["tabular"] == 0.0
    assert moved["shared"] > 1e-3


def test_flat_sampler_matches_the_distribution():
    logq = jnp.log(jnp.array([0.0, 0.5, 0.0, 0.3, 0.2, 0.0]))
    draws = tr.tabular(logq).sample(KEY, logq, 200_000)
    freq = np.bincount(np.asarray(draws), minlength=6) / 200_000
    assert freq[0] == freq[2] == freq[5] == 0.0
    # Binomial standard error <= 0.0012; 5 sigma.
    np.testing.assert_allclose(freq, np.exp(np.asarray(logq)), atol=6e-3)


def test_block_sampler_never_draws_zero_mass_and_matches_the_distribution():
    # n > 256 takes the two-level path (blocks of 25). Zero mass everywhere the pattern says:
    # whole blocks, the first entries of blocks (a draw landing on a block boundary must skip
    # them) and the last entries of the space.
    n = 1000
    rng = np.random.default_rng(5)
    p = rng.gamma(0.3, size=n)
    p[rng.random(n) < 0.4] = 0.0
    p[::25] = 0.0
    p[100:150] = 0.0
    p[-7:] = 0.0
    p /= p.sum()
    logq = jnp.log(jnp.asarray(p))
    m = 400_000
    draws = np.asarray(tr.tabular(logq).sample(KEY, logq, m))
    assert draws.min() >= 0 and draws.max() < n
    assert not np.any(p[draws] == 0.0)
    freq = np.bincount(draws, minlength=n) / m
    # Binomial standard error <= sqrt(0.25 / m) = 8e-4; 5 sigma.
    np.testing.assert_allclose(freq, p, atol=4e-3)
    # Batched rows (vmap and leading axes) draw from their own rows.
    two = jnp.stack([logq, logq[::-1]])
    draws = np.asarray(
        jax.vmap(lambda k: tr.tabular(two).sample(k, two, 2000))(jax.random.split(KEY, 3))
    )
    assert draws.shape == (3, 2, 2000)
    assert not np.any(p[draws[:, 0]] == 0.0) and not np.any(p[::-1][draws[:, 1]] == 0.0)


# ----------------------------------------------------------------------------- many seeds
def test_run_seeds_spreads_seeds_over_devices_and_equals_the_vmapped_run():
    cpus = jax.devices("cpu")
    assert len(cpus) == 2  # tests/conftest.py: two CPU devices
    logp0 = jnp.log(jnp.array([[0.4, 0.3, 0.2, 0.1], [0.1, 0.2, 0.3, 0.4]]))
    reward = jnp.array([[1.0, 0.0, 0.5, 0.0], [0.0, 1.0, 0.0, 0.3]])
    trainer = tr.make_trainer(tr.tabular(logp0), tr.grpo(num_samples=4), optax.adam(0.05))
    batch = tr.Batch(reward, 0.1)
    keys = jax.random.split(KEY, 5)  # not a multiple of the two devices
    want = jax.vmap(lambda k: tr.run(trainer, k, batch, 30))(keys)
    settings = ({}, {"devices": cpus}, {"devices": cpus, "batch_size": 2})
    for kwargs in (*settings, {"devices": cpus[:1], "batch_size": 5}):
        got = tr.run_seeds(trainer, keys, batch, 30, **kwargs)
        leaves = zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want), strict=True)
        for a, b in leaves:
            assert a.shape == b.shape
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    # Different seeds really train differently.
    assert not np.allclose(want[1].loss[0], want[1].loss[1])


def test_run_seeds_rejects_bad_arguments():
    trainer = tr.make_trainer(tr.tabular(LOGP0), tr.grpo(num_samples=4), optax.adam(0.1))
    batch = tr.Batch(REWARD, 0.1)
    keys = jax.random.split(KEY, 2)
    with pytest.raises(TypeError, match="keys"):
        tr.run_seeds(trainer, np.arange(4), batch, 2)
    with pytest.raises(ValueError, match="keys"):
        tr.run_seeds(trainer, KEY, batch, 2)
    with pytest.raises(ValueError, match="batch_size"):
        tr.run_seeds(trainer, keys, batch, 2, batch_size=0)
    with pytest.raises(TypeError, match="devices"):
        tr.run_seeds(trainer, keys, batch, 2, devices=["cpu"])
    with pytest.raises(TypeError, match="devices"):
        tr.run_seeds(trainer, keys, batch, 2, devices=[])
    with pytest.raises(ValueError, match="num_steps"):
        tr.run_seeds(trainer, keys, batch, 0)
    with pytest.raises(TypeError, match="trainer"):
        tr.run_seeds(trainer.step, keys, batch, 2)
    with pytest.raises(ValueError, match="batch.beta"):
        tr.run_seeds(trainer, keys, tr.Batch(REWARD, -1.0), 2)


# ----------------------------------------------------------------------------- compile once
def test_training_step_traces_once_per_shape():
    calls = {"n": 0}
    base = tr.grpo(num_samples=4)

    def counting_loss(policy, params, rollout):
        calls["n"] += 1
        return base.loss(policy, params, rollout)

    objective = base._replace(loss=counting_loss)
    trainer = tr.make_trainer(tr.tabular(LOGP0), objective, optax.adam(0.1))
    state = trainer.init(KEY)
    state, _ = trainer.step(KEY, state, tr.Batch(REWARD, 0.1))
    traced = calls["n"]
    assert traced >= 1
    for i in range(3):
        batch = tr.Batch(REWARD * (i + 2), 0.05 * (i + 1))
        state, _ = trainer.step(jax.random.fold_in(KEY, i), state, batch)
    assert calls["n"] == traced
    # The scanned loop compiles once per trainer, batch shape and length.
    tr.run(trainer, KEY, tr.Batch(REWARD, 0.1), 5)
    after_run = calls["n"]
    tr.run(trainer, jax.random.key(9), tr.Batch(-REWARD, 0.3), 5)
    assert calls["n"] == after_run


# ----------------------------------------------------------------------------- bad inputs
def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="logp0"):
        tr.tabular(jnp.array([0.5, jnp.nan]))
    with pytest.raises(ValueError, match="features"):
        tr.log_linear(LOGP0, jnp.ones((5, 2)))
    with pytest.raises(ValueError, match="logp0"):
        tr.shared(LOGP0, jnp.ones((6, 2)))
    with pytest.raises(ValueError, match="num_samples"):
        tr.grpo(num_samples=1)
    with pytest.raises(ValueError, match="clip"):
        tr.ppo(clip=1.5)
    with pytest.raises(ValueError, match="mode"):
        tr.sft("approximate")
    with pytest.raises(ValueError, match="kl"):
        tr.reinforce(kl="k4")
    with pytest.raises(ValueError, match="kl_in"):
        tr.grpo(kl="exact", kl_in="reward")
    with pytest.raises(ValueError, match="kind"):
        tr.kl_estimate(LOGP0, LOGP0, "k5")
    with pytest.raises(TypeError, match="policy"):
        tr.make_trainer(LOGP0, tr.grpo(), optax.adam(0.1))
    with pytest.raises(TypeError, match="optimizer"):
        tr.make_trainer(tr.tabular(LOGP0), tr.grpo(), 0.1)
    with pytest.raises(ValueError, match="step_size"):
        tr.make_mirror_descent(LOGP0, -1.0)
    trainer = tr.make_trainer(tr.tabular(LOGP0), tr.sft("exact"), optax.adam(0.1))
    with pytest.raises(ValueError, match="batch.reward"):
        tr.run(trainer, KEY, tr.Batch(jnp.zeros(5), 0.0, LOGP0), 2)
    with pytest.raises(ValueError, match="batch.data"):
        tr.run(trainer, KEY, tr.Batch(REWARD, 0.0), 2)
    with pytest.raises(ValueError, match="batch.beta"):
        tr.run(trainer, KEY, tr.Batch(REWARD, -1.0, LOGP0), 2)
    with pytest.raises(ValueError, match="batch.reward"):
        tr.run(trainer, KEY, tr.Batch(REWARD.at[0].set(-jnp.inf), 0.0, LOGP0), 2)
    with pytest.raises(TypeError, match="key"):
        tr.run(trainer, 0, tr.Batch(REWARD, 0.0, LOGP0), 2)
    dpo = tr.make_trainer(tr.tabular(LOGP0), tr.dpo("exact"), optax.adam(0.1))
    with pytest.raises(ValueError, match="batch.beta"):
        tr.run(dpo, KEY, tr.Batch(REWARD, 0.0), 2)
