"""GRPO on a tabular policy: ``freeenergy.train`` (jit + scan + vmap over seeds) against NumPy.

The task: ``P`` prompts, ``n`` behaviors each, a random reward table; a tabular softmax policy
starting at a random base ``p0``. One GRPO step per prompt draws a group of ``G`` behaviors by
inverse-CDF sampling, takes group-normalized advantages ``(r - mean)/std`` (``ddof=1``, zero for
all-equal groups), and minimizes the clipped surrogate plus ``β·k3`` (one update per group, so the
ratio is 1), then an Adam step; after the step the Info metrics (expected reward, KL to the
reference and to the Gibbs target, entropy, pass@k, accessible-support size, zero-signal
fraction) are computed. Both sides compute all of it, in float32.

* JAX: ``freeenergy.train.run`` (``lax.scan`` over steps) ``vmap``-ped over seeds, one program
  (the vmap runs ``CHUNK`` seeds at a time inside ``lax.map`` to stay in cache; the rate of one
  vmap over all seeds is printed too).
* NumPy: the same algorithm written directly (closed-form gradient of the surrogate, the same
  Adam), one seed at a time, vectorized over prompts. It is timed on fewer steps and seeds and
  extrapolated per seed-step (stated in the output).

Before timing, both sides take a step on the *same* sampled groups and their gradients and Info
metrics are compared, so the two really are the same algorithm.
Goal: JAX at least 20x the NumPy loop per seed-step.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from freeenergy import train as tr

BETA = 0.04  # KL coefficient (TRL's historical GRPO default)
CHUNK = 4  # seeds per vmap chunk
LEARNING_RATE = 1e-2
KS = (1, 8, 64)


# ----------------------------------------------------------------------------- NumPy baseline
def _log_softmax(x):
    m = x.max(axis=-1, keepdims=True)
    z = x - m
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


class NumpyGRPO:
    """The same GRPO step as ``freeenergy.train`` (tabular policy, exact Info metrics)."""

    def __init__(self, logp0, reward, group_size, beta=BETA, lr=LEARNING_RATE, ks=KS):
        self.logp0 = logp0.astype(np.float32)
        self.reward = reward.astype(np.float32)
        self.p, self.n = logp0.shape
        self.g = group_size
        self.beta = np.float32(beta)
        self.lr = np.float32(lr)
        self.ks = np.asarray(ks, np.float32)
        logt = _log_softmax(self.logp0 + self.reward / self.beta)
        self.logt, self.t = logt, np.exp(logt)
        rmax = self.reward.max(axis=1, keepdims=True)
        self.correct = self.reward == rmax
        self.log_threshold = np.log(-np.expm1(-np.log(2.0) / max(ks)))
        self.rows = np.arange(self.p)[:, None]
        self.offsets = (np.arange(self.p) * self.n)[:, None]

    def init(self):
        zeros = np.zeros_like(self.logp0)
        return self.logp0.copy(), zeros, zeros.copy(), 0

    def sample(self, rng, theta):
        q = np.exp(_log_softmax(theta))
        cdf = np.cumsum(q, axis=1)
        u = rng.random((self.p, self.g), dtype=np.float32) * cdf[:, -1:]
        # One binary search over all prompts: shift each row's CDF by its row index.
        flat = (cdf / cdf[:, -1:] + np.arange(self.p)[:, None]).ravel()
        idx = (
            np.searchsorted(
                flat, (u / cdf[:, -1:] + np.arange(self.p)[:, None]).ravel(), side="right"
            ).reshape(self.p, self.g)
            - self.offsets
        )
        return np.minimum(idx, self.n - 1)

    def gradient(self, theta, y):
        """(gradient of the loss w.r.t. the logits, loss, zero-signal fraction) for groups y."""
        logq = _log_softmax(theta)
        q = np.exp(logq)
        r = self.reward[self.rows, y]
        mean = r.mean(axis=1, keepdims=True)
        std = r.std(axis=1, ddof=1, keepdims=True)
        zero_signal = float(np.mean(std[:, 0] == 0))
        adv = np.where(std > 0, (r - mean) / np.where(std > 0, std, 1), 0).astype(np.float32)
        log_ratio = self.logp0[self.rows, y] - logq[self.rows, y]
        k3 = np.expm1(log_ratio) - log_ratio
        loss = float(-adv.mean() + self.beta * k3.mean())
        # d loss / d log q(y_i); then d log q(y_i) / d theta = e_{y_i} - q.
        coef = (-adv + self.beta * (-np.expm1(log_ratio))) / (self.p * self.g)
        grad = (
            np.bincount((y + self.offsets).ravel(), weights=coef.ravel(), minlength=self.p * self.n)
            .reshape(self.p, self.n)
            .astype(np.float32)
        )
        grad -= coef.sum(axis=1, keepdims=True) * q
        return grad, loss, zero_signal

    def step(self, state, y):
        theta, m, v, t = state
        grad, loss, zero_signal = self.gradient(theta, y)
        t += 1
        m = 0.9 * m + 0.1 * grad
        v = 0.999 * v + 0.001 * grad * grad
        mhat = m / np.float32(1 - 0.9**t)
        vhat = v / np.float32(1 - 0.999**t)
        theta = theta - self.lr * mhat / (np.sqrt(vhat) + np.float32(1e-8))
        info = self.metrics(theta)
        info.update(loss=loss, zero_signal=zero_signal)
        return (theta, m, v, t), info

    def metrics(self, theta):
        logq = _log_softmax(theta)
        q = np.exp(logq)
        mass_c = np.minimum((q * self.correct).sum(axis=1), 1.0)
        return dict(
            expected_reward=float((q * self.reward).sum(axis=1).mean()),
            kl_reference=float((q * (logq - self.logp0)).sum(axis=1).mean()),
            kl_target=float((self.t * (self.logt - logq)).sum(axis=1).mean()),
            entropy=float(-(q * logq).sum(axis=1).mean()),
            pass_at_k=(-np.expm1(self.ks[None, :] * np.log1p(-mass_c)[:, None])).mean(axis=0),
            accessible=float((logq >= self.log_threshold).sum(axis=1).mean()),
        )

    def run(self, seed, steps):
        rng = np.random.default_rng(seed)
        state = self.init()
        infos = []
        for _ in range(steps):
            state, info = self.step(state, self.sample(rng, state[0]))
            infos.append(info)
        return state, infos


# ----------------------------------------------------------------------------- the run
def _problem(prompts, n, seed=0):
    rng = np.random.default_rng(seed)
    logp0 = _log_softmax(1.5 * rng.normal(size=(prompts, n))).astype(np.float32)
    reward = np.round(rng.normal(size=(prompts, n)), 1).astype(np.float32)
    return logp0, reward


def _same_algorithm_check(logp0, reward, group_size):
    """Both sides on identical groups: the gradient (one plain gradient step of size 1 from a
    policy that has moved away from p0) and the Info metrics of the result must agree."""
    batch = tr.Batch(jnp.asarray(reward), BETA)
    objective = tr.grpo(num_samples=group_size, kl="k3")
    key = jax.random.key(1)
    warm = tr.make_trainer(tr.tabular(logp0), objective, optax.adam(LEARNING_RATE), ks=KS)
    state, _ = tr.run(warm, key, batch, 5)  # move away from p0: k3 and the ratios are non-trivial
    sgd = tr.make_trainer(tr.tabular(logp0), objective, optax.sgd(1.0), ks=KS)
    state = sgd.init(key)._replace(params=state.params)
    y = np.asarray(sgd.policy.sample(key, state.params, group_size))
    new_state, info = sgd.step(key, state, batch)
    grad_jax = np.asarray(state.params) - np.asarray(new_state.params)
    reference = NumpyGRPO(logp0, reward, group_size)
    grad_np, loss_np, _ = reference.gradient(np.asarray(state.params), y)
    grad_error = float(np.max(np.abs(grad_jax - grad_np)) / np.max(np.abs(grad_np)))
    metrics_np = reference.metrics(np.asarray(new_state.params))
    metric_error = max(
        abs(float(getattr(info, name)) - metrics_np[name]) / max(abs(metrics_np[name]), 1e-6)
        for name in ("expected_reward", "kl_reference", "kl_target", "entropy", "accessible")
    )
    return grad_error, metric_error, abs(float(info.loss) - loss_np)


def main(quick: bool = False) -> None:
    if quick:
        n, prompts, group, steps, seeds, np_steps, np_seeds = 200, 8, 8, 200, 4, 50, 2
    else:
        n, prompts, group, steps, seeds, np_steps, np_seeds = 1000, 64, 16, 1000, 64, 50, 2
    dtype = jnp.zeros(()).dtype
    print(f"devices: {jax.devices()}  dtype {dtype}")
    print(
        f"GRPO, tabular policy: n = {n} behaviors, {prompts} prompts, group size {group}, "
        f"beta = {BETA}, Adam lr = {LEARNING_RATE}"
    )
    logp0, reward = _problem(prompts, n)

    grad_error, metric_error, loss_error = _same_algorithm_check(logp0, reward, group)
    print(
        f"same-algorithm check on identical groups: gradient max rel. difference "
        f"{grad_error:.1e}, Info metrics max rel. difference {metric_error:.1e}, loss "
        f"difference {loss_error:.1e} (float32)"
    )

    trainer = tr.make_trainer(
        tr.tabular(logp0), tr.grpo(num_samples=group, kl="k3"), optax.adam(LEARNING_RATE), ks=KS
    )
    batch = tr.Batch(jnp.asarray(reward), BETA)
    keys = jax.random.split(jax.random.key(0), seeds)

    def one_seed(key):
        return tr.run(trainer, key, batch, steps)

    # vmap over the seeds, CHUNK seeds at a time (lax.map with batch_size: a vmap inside a
    # loop) so each chunk's parameters and Adam state stay in cache; all 64 at once would
    # stream ~50 MB of state through memory at every step.
    many = jax.jit(lambda ks: jax.lax.map(one_seed, ks, batch_size=CHUNK))
    start = time.perf_counter()
    out = jax.block_until_ready(many(keys))
    first = time.perf_counter() - start
    start = time.perf_counter()
    out = jax.block_until_ready(many(keys))
    jax_time = time.perf_counter() - start
    _, infos = out
    jax_rate = seeds * steps / jax_time
    print(
        f"jax:   {seeds} seeds x {steps} steps in {jax_time:.3f} s (vmap over {CHUNK} seeds at "
        f"a time; first call incl. compile {first:.2f} s): {steps / jax_time:,.1f} steps/s "
        f"for all seeds, {jax_rate:,.0f} seed-steps/s"
    )
    flat_steps = max(steps // 10, 1)
    flat = jax.jit(jax.vmap(lambda k: tr.run(trainer, k, batch, flat_steps)))
    jax.block_until_ready(flat(keys))
    start = time.perf_counter()
    jax.block_until_ready(flat(keys))
    flat_rate = seeds * flat_steps / (time.perf_counter() - start)
    print(
        f"       (one vmap over all {seeds} seeds, timed on {flat_steps} steps: "
        f"{flat_rate:,.0f} seed-steps/s)"
    )

    reference = NumpyGRPO(logp0, reward, group)
    reference.run(123, 2)  # warm-up
    start = time.perf_counter()
    for seed in range(np_seeds):
        _, np_infos = reference.run(seed, np_steps)
    np_time = time.perf_counter() - start
    np_rate = np_seeds * np_steps / np_time
    print(
        f"numpy: {np_seeds} seeds x {np_steps} steps in {np_time:.3f} s: {np_rate:,.1f} "
        f"seed-steps/s (timed on fewer steps and seeds, extrapolated per seed-step: "
        f"{seeds} x {steps} would take {seeds * steps / np_rate:.1f} s)"
    )
    print(f"ratio jax/numpy per seed-step: {jax_rate / np_rate:.1f}x  (goal >= 20x)")
    last = jax.tree_util.tree_map(lambda x: np.asarray(x)[:, -1], infos)
    print(
        f"after {steps} steps (mean over seeds): E[r] {last.expected_reward.mean():.4f}, "
        f"KL(q||p0) {last.kl_reference.mean():.4f}, KL(q*||q) {last.kl_target.mean():.4f}, "
        f"zero-signal groups {last.zero_signal.mean():.3f}; numpy after {np_steps} steps: "
        f"KL(q*||q) {np_infos[-1]['kl_target']:.4f} (jax at that step "
        f"{np.asarray(infos.kl_target)[:, np_steps - 1].mean():.4f})"
    )
