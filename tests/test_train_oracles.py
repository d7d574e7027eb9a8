"""Sampled policy-gradient steps against hand computations, and T11 / T13 (docs/theory.md) as
properties over random instances.

The hand computations work on the tabular softmax, where the gradient of ``log q(y)`` with
respect to the logits is ``e_y - q``; draws are fixed by a ``Policy`` whose ``sample`` returns
given behaviors, so every number is known before the library runs.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import freeenergy as fe
from freeenergy import train as tr

KEY = jax.random.key(0)


def fixed_draws_policy(logp0, draws_for):
    """The tabular policy of ``logp0`` whose ``sample(key, params, num)`` returns
    ``draws_for(key)`` (a fixed array of behavior indices)."""
    base = tr.tabular(logp0)

    def sample(key, params, num):
        draws = draws_for(key)
        assert draws.shape[-1] == num
        return draws

    return base._replace(sample=sample)


def log_softmax(theta):
    theta = np.asarray(theta, np.float64)
    m = theta.max()
    return theta - m - np.log(np.sum(np.exp(theta - m)))


def score(y, q):
    """d log q(y) / d logits for the tabular softmax: e_y - q."""
    e = np.zeros_like(q)
    e[y] = 1.0
    return e - q


# ----------------------------------------------------------------------------- RLOO
def test_one_sampled_rloo_step_matches_hand_computed_leave_one_out_advantages():
    logp0 = np.log(np.array([0.3, 0.25, 0.2, 0.15, 0.1]))
    reward = np.array([0.2, 1.0, -0.4, 0.7, 0.0])
    draws = np.array([1, 3, 3, 0, 4])
    beta, lr = 0.3, 0.7
    theta = np.array([0.1, -0.4, 0.9, 0.0, -1.3])  # the current policy, away from p0
    policy = fixed_draws_policy(jnp.asarray(logp0), lambda key: jnp.asarray(draws))
    trainer = tr.make_trainer(policy, tr.rloo(num_samples=5, kl="k1"), optax.sgd(lr))
    state = trainer.init(KEY)
    state = state._replace(params=jnp.asarray(theta), opt_state=optax.sgd(lr).init(theta))
    new_state, info = trainer.step(KEY, state, tr.Batch(jnp.asarray(reward), beta))

    # By hand: k1 in the reward, r_i - β log(q(y_i)/p0(y_i)), then leave-one-out baselines.
    logq = log_softmax(theta)
    q = np.exp(logq)
    r = reward[draws] - beta * (logq[draws] - logp0[draws])
    g = len(draws)
    advantage = np.array([r[i] - np.mean(np.delete(r, i)) for i in range(g)])
    # Loss -mean_i ρ_i A_i with ρ_i = q(y_i)/q_old(y_i) = 1 at the current parameters.
    grad = -sum(advantage[i] * score(draws[i], q) for i in range(g)) / g
    np.testing.assert_allclose(new_state.params, theta - lr * grad, rtol=0, atol=1e-14)
    assert float(info.loss) == pytest.approx(-np.mean(advantage), abs=1e-14)
    # The step's metrics are those of the updated policy.
    new_q = np.exp(log_softmax(theta - lr * grad))
    assert float(info.expected_reward) == pytest.approx(new_q @ reward, abs=1e-14)


# ----------------------------------------------------------------------------- REINFORCE
def test_reinforce_running_baseline_follows_its_recursion():
    """b_0 = the first batch mean; b_t = b_{t-1} + (1 - decay)(mean_t - b_{t-1}); each step's
    advantage is r - b_{t-1} (the baseline before the step's own draws)."""
    logp0 = np.log(np.array([0.4, 0.3, 0.2, 0.1]))
    reward = np.array([1.0, -0.5, 2.0, 0.25])
    table = np.array([[0, 1, 1], [2, 2, 3], [3, 0, 1], [1, 1, 1], [0, 2, 3]])
    decay, lr, steps = 0.6, 0.4, 5

    def index(key):
        return jax.random.randint(key, (), 0, len(table))

    policy = fixed_draws_policy(jnp.asarray(logp0), lambda key: jnp.asarray(table)[index(key)])
    trainer = tr.make_trainer(
        policy, tr.reinforce(num_samples=3, baseline_decay=decay, kl=None), optax.sgd(lr)
    )
    state = trainer.init(KEY)
    theta = np.asarray(logp0).copy()
    baseline = None
    for t in range(steps):
        key = jax.random.fold_in(KEY, t)
        state, _ = trainer.step(key, state, tr.Batch(jnp.asarray(reward), 0.0))
        draws = table[int(index(key))]
        mean = reward[draws].mean()
        previous = mean if baseline is None else baseline
        baseline = previous + (1 - decay) * (mean - previous)
        q = np.exp(log_softmax(theta))
        grad = -sum((reward[y] - previous) * score(y, q) for y in draws) / len(draws)
        theta = theta - lr * grad
        assert float(state.extra) == pytest.approx(baseline, abs=1e-14), t
        np.testing.assert_allclose(state.params, theta, rtol=0, atol=1e-13)
    # The draws differed between steps, so the recursion was exercised (not a constant).
    assert len({int(index(jax.random.fold_in(KEY, t))) for t in range(steps)}) >= 3


# ----------------------------------------------------------------------------- T11
# Natural gradient with plain SGD converges to machine precision in a few hundred exact steps
# (for KL-RL it is mirror descent, contracting by 1 - ηβ per step); clipping the natural step to
# norm 1 keeps SFT's first steps (θ += η (t/q - 1), large where q << t) from overshooting. Adam
# does not suit a test at 1e-13: its per-coordinate normalization keeps it moving near an exact
# optimum.
N11 = 5
_UNIFORM = fe.normalize(jnp.zeros(N11))
_T11_OPTIMIZER = optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(0.5))
_SFT = tr.make_trainer(
    tr.tabular(_UNIFORM),
    tr.sft("exact", weighting="reward"),
    _T11_OPTIMIZER,
    natural_gradient=True,
)
_RL = tr.make_trainer(
    tr.tabular(_UNIFORM), tr.reinforce("exact", kl="exact"), _T11_OPTIMIZER, natural_gradient=True
)


@jax.jit
def _train_t11(logp0, batch, on_stored, stored_batch):
    """300 steps of weighted SFT and of KL-RL from ``logp0`` (also the reference), and of
    weighted SFT from ``on_stored``. The trainers' placeholder base is replaced by the instance's,
    so one compilation serves every instance."""

    def train(trainer, start, b):
        opt_state = _T11_OPTIMIZER.init(start)
        state = trainer.init(KEY)._replace(params=start, reference=start, opt_state=opt_state)
        state, _ = jax.lax.scan(lambda s, _: trainer.step(KEY, s, b), state, None, length=300)
        return trainer.policy.logprobs(state.params)

    return train(_SFT, logp0, batch), train(_RL, logp0, batch), train(_SFT, on_stored, stored_batch)


instances = st.tuples(
    st.lists(st.floats(-3.0, 3.0), min_size=N11, max_size=N11),
    st.lists(st.floats(-1.0, 1.0), min_size=N11, max_size=N11),
    st.floats(0.5, 3.0),
    st.lists(st.booleans(), min_size=N11, max_size=N11).filter(any),
)


@given(instances)
# The natural SFT step used to overshoot from p0 when q* puts much more mass than p0 somewhere.
@example(([0.0, 0.0, 0.0, -1.0, 2.0], [0.0, 0.0, -1.0, 1.0, -1.0], 0.5, [False] * 4 + [True]))
def test_t11_weighted_sft_is_kl_rl_and_the_stored_set_costs_its_log_mass(instance):
    """T11: weighted SFT on reference samples (w = e^{r/β}) and KL-regularized RL reach the same
    q* = gibbs(p0, -r, β); restricted to a stored set S, the best reachable KL-RL objective is
    J* - β log(1/q*(S)), attained by q* conditioned on S."""
    logits, reward, beta, stored = instance
    logp0 = fe.normalize(jnp.array(logits))
    reward, stored = jnp.array(reward), jnp.array(stored)
    qstar = fe.gibbs(logp0, -reward, beta)
    batch = tr.Batch(reward, beta, logp0)
    on_stored = fe.normalize(jnp.where(stored, logp0, -jnp.inf))
    sft, rl, restricted = _train_t11(logp0, batch, on_stored, tr.Batch(reward, beta, on_stored))
    assert float(fe.kl(qstar, sft)) < 1e-13
    assert float(fe.kl(qstar, rl)) < 1e-13
    np.testing.assert_allclose(sft, rl, atol=1e-9)

    def objective(lq):
        return float(jnp.sum(jnp.exp(lq) * reward) - beta * fe.kl(lq, logp0))

    best = beta * float(fe.log_partition(logp0, -reward, beta))
    assert objective(qstar) == pytest.approx(best, abs=1e-12)
    # The stored set: p0|S is the data and the start, and the model stays on S.
    assert bool(jnp.all(jnp.isneginf(restricted) == ~stored))
    conditioned = fe.normalize(jnp.where(stored, qstar, -jnp.inf))
    assert float(fe.kl(conditioned, restricted)) < 1e-13
    price = -beta * float(jax.nn.logsumexp(jnp.where(stored, qstar, -jnp.inf)))
    assert price >= -1e-12  # q*(S) <= 1 (up to rounding when S is everything)
    assert objective(restricted) == pytest.approx(best - price, abs=1e-10)
    # Any other S-supported model is worse (the variational principle on S).
    assert objective(on_stored) <= best - price + 1e-12


# ----------------------------------------------------------------------------- T13
N13, G13 = 12, 4
_T13 = {
    "grpo": tr.grpo(num_samples=G13, kl="k1", kl_in="reward"),
    "dr_grpo": tr.grpo(num_samples=G13, scale_rewards=False, kl="k2", kl_in="reward"),
    "rloo": tr.rloo(num_samples=G13, kl="k3", kl_in="reward"),
    "rloo_no_kl": tr.rloo(num_samples=G13, kl=None),
}
_T13_TRAINERS = {
    name: tr.make_trainer(tr.tabular(fe.normalize(jnp.zeros(N13))), objective, optax.sgd(0.5))
    for name, objective in _T13.items()
}


@jax.jit
def _t13_step(key, params, reference, reward, beta):
    out = {}
    for name, trainer in _T13_TRAINERS.items():
        state = trainer.init(key)._replace(params=params, reference=reference)
        drawn = trainer.policy.sample(key, params, G13)
        new, _ = trainer.step(key, state, tr.Batch(reward, beta))
        change = trainer.policy.logprobs(new.params) - trainer.policy.logprobs(params)
        out[name] = (jnp.zeros(N13, bool).at[drawn].set(True), change)
    return out


@given(
    st.lists(st.floats(-2.0, 2.0), min_size=N13, max_size=N13),
    st.lists(st.floats(-2.0, 2.0), min_size=N13, max_size=N13),
    st.lists(st.floats(-1.0, 1.0), min_size=N13, max_size=N13),
    st.floats(0.0, 2.0),
    st.integers(0, 2**31 - 1),
)
# Equal effective rewards up to rounding (the drawn behaviors share one log-ratio q/p0): GRPO
# divided the rounding noise by its own standard deviation (~1e-17) and moved every behavior.
@example(
    reference=[0.0] * 4 + [1.0] + [0.0] * 6 + [2.0],
    current=[0.0] * 4 + [1.0] + [0.0] * 6 + [-1.0],
    reward=[0.0] * 12,
    beta=0.75,
    seed=0,
)
# Effective rewards that differ by 1e-12 (a reference perturbed by 1e-12): the group's std is
# signal, but the rounding residue of ``r - mean`` divided by it moved undrawn behaviors apart.
@example(
    reference=[0.0] * 11 + [1e-12],
    current=[0.0] * 9 + [1.0, 2.0, 2.0],
    reward=[0.0] * 12,
    beta=0.6875,
    seed=66,
)
def test_t13_a_sampled_step_keeps_the_ratio_of_unsampled_behaviors(
    reference, current, reward, beta, seed
):
    """T13: with advantages that sum to zero over the draws (group-centred GRPO, Dr. GRPO, RLOO,
    a KL estimator in the reward) and a stateless optimizer, a sampled step moves only the logits
    of the drawn behaviors: every undrawn behavior's log-probability shifts by the same amount,
    so the ratio of any two of them is unchanged."""
    logp0 = fe.normalize(jnp.array(reference))
    params = jnp.array(current)
    out = _t13_step(jax.random.key(seed), params, logp0, jnp.array(reward), beta)
    for name, (drawn, change) in out.items():
        drawn, change = np.asarray(drawn), np.asarray(change)
        assert drawn.sum() <= G13 and (~drawn).sum() >= N13 - G13
        undrawn = change[~drawn]
        assert np.ptp(undrawn) < 1e-12, name
        assert np.all(np.isfinite(change)), name
        # Without a KL term, draws with different rewards get non-zero advantages: the drawn
        # behaviors then do move relative to the undrawn ones (the property is not vacuous).
        if name == "rloo_no_kl" and np.ptp(np.asarray(reward)[drawn]) > 0.01:
            assert np.ptp(change) > 1e-5


def test_t13_fails_for_an_uncentred_baseline():
    """The converse: REINFORCE's running baseline is not the draws' mean (after the first step),
    so the advantages do not sum to zero and undrawn behaviors move by amounts ∝ their q."""
    logp0 = fe.normalize(jax.random.normal(jax.random.key(3), (N13,)))
    reward = jax.random.normal(jax.random.key(4), (N13,))
    trainer = tr.make_trainer(tr.tabular(logp0), tr.reinforce(num_samples=G13), optax.sgd(0.5))
    state = trainer.init(KEY)
    batch = tr.Batch(reward, 0.1)
    state, _ = trainer.step(jax.random.fold_in(KEY, 0), state, batch)
    key = jax.random.fold_in(KEY, 1)
    drawn = np.zeros(N13, bool)
    drawn[np.asarray(trainer.policy.sample(key, state.params, G13))] = True
    before = trainer.policy.logprobs(state.params)
    state, _ = trainer.step(key, state, batch)
    change = np.asarray(trainer.policy.logprobs(state.params) - before)
    assert np.ptp(change[~drawn]) > 1e-6
