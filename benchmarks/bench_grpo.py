"""GRPO on a tabular policy: ``freeenergy.train`` (jit + scan, seeds spread over the CPU cores
with ``jax.sharding``) against NumPy.

The task: ``P`` prompts, ``n`` behaviors each, a random reward table; a tabular softmax policy
starting at a random base ``p0``. One GRPO step per prompt draws a group of ``G`` behaviors,
takes group-normalized advantages ``(r - mean)/std`` (``ddof=1``, zero for all-equal groups),
and minimizes the clipped surrogate plus ``β·k3`` (one update per group, so the ratio is 1), then
an Adam step; after the step the Info metrics (expected reward, KL to the reference and to the
Gibbs target, entropy, pass@k, accessible-support size, zero-signal fraction) are computed. All
sides compute all of it, in float32.

* JAX: ``freeenergy.train.run_seeds`` — ``run`` (``lax.scan`` over steps) for every seed, the
  seeds split over one CPU device per core by ``jax.shard_map``. Its rate on a single device is
  printed too.
* NumPy, two implementations of the same algorithm, each one seed at a time on one core:
  - **loop** — the straightforward one: per step, a loop over prompts (softmax, ``rng.choice``,
    group statistics, the closed-form gradient of the surrogate), then Adam and the metrics on
    the whole table;
  - **vectorized** — the same step rewritten without the prompt loop (one binary search for all
    groups, ``bincount`` for the gradient): a stronger baseline than the issue asks for.
  Both are timed on fewer steps and seeds and extrapolated per seed-step (stated in the output).

Before timing, every side takes a step on the *same* sampled groups and the gradients and Info
metrics are compared, so they really are the same algorithm.
Goal: JAX at least 20x the NumPy loop per seed-step.
"""

from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from freeenergy import train as tr

BETA = 0.04  # KL coefficient (TRL's historical GRPO default)
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


class LoopGRPO(NumpyGRPO):
    """The straightforward NumPy GRPO: rollouts and gradients prompt by prompt (Adam and the
    metrics, which act on the whole table, are shared with ``NumpyGRPO``)."""

    def sample(self, rng, theta):
        y = np.empty((self.p, self.g), np.int64)
        for p in range(self.p):
            q = np.exp(_log_softmax(theta[p]))
            y[p] = rng.choice(self.n, size=self.g, p=q / q.sum())
        return y

    def gradient(self, theta, y):
        grad = np.zeros_like(theta)
        loss, zero_groups = 0.0, 0
        for p in range(self.p):
            logq = _log_softmax(theta[p])
            r = self.reward[p, y[p]]
            std = r.std(ddof=1)
            if std > 0:
                adv = (r - r.mean()) / std
            else:
                adv = np.zeros_like(r)
                zero_groups += 1
            log_ratio = self.logp0[p, y[p]] - logq[y[p]]
            loss += float(-adv.mean() + self.beta * (np.expm1(log_ratio) - log_ratio).mean())
            # d loss / d log q(y_i); then d log q(y_i) / d theta = e_{y_i} - q.
            coef = (-adv - self.beta * np.expm1(log_ratio)) / (self.p * self.g)
            np.add.at(grad[p], y[p], coef)
            grad[p] -= coef.sum() * np.exp(logq)
        return grad, loss / self.p, zero_groups / self.p


# ----------------------------------------------------------------------------- the run
def _problem(prompts, n, seed=0):
    rng = np.random.default_rng(seed)
    logp0 = _log_softmax(1.5 * rng.normal(size=(prompts, n))).astype(np.float32)
    reward = np.round(rng.normal(size=(prompts, n)), 1).astype(np.float32)
    return logp0, reward


def _same_algorithm_check(logp0, reward, group_size):
    """Every side on identical groups: the gradient (one plain gradient step of size 1 from a
    policy that has moved away from p0), the loss and the Info metrics of the result must agree.
    Returns ``{baseline: (gradient, metrics, loss) max relative differences to JAX}``."""
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
    out = {}
    for name, cls in (("loop", LoopGRPO), ("vectorized", NumpyGRPO)):
        reference = cls(logp0, reward, group_size)
        grad_np, loss_np, _ = reference.gradient(np.asarray(state.params), y)
        grad_error = float(np.max(np.abs(grad_jax - grad_np)) / np.max(np.abs(grad_np)))
        metrics_np = reference.metrics(np.asarray(new_state.params))
        metric_error = max(
            abs(float(getattr(info, m)) - metrics_np[m]) / max(abs(metrics_np[m]), 1e-6)
            for m in ("expected_reward", "kl_reference", "kl_target", "entropy", "accessible")
        )
        out[name] = (grad_error, metric_error, abs(float(info.loss) - loss_np))
    return out


def _use_every_core() -> None:
    """One JAX CPU device per core (must run before JAX initializes its backend)."""
    try:
        jax.config.update("jax_num_cpu_devices", os.cpu_count() or 1)
    except RuntimeError:  # the backend is already up (e.g. imported by a test): keep it
        pass


def _time_numpy(cls, logp0, reward, group, steps, seeds):
    """Seed-steps per second of a NumPy implementation, and its last Info."""
    reference = cls(logp0, reward, group)
    reference.run(123, 2)  # warm-up
    start = time.perf_counter()
    for seed in range(seeds):
        _, infos = reference.run(seed, steps)
    return seeds * steps / (time.perf_counter() - start), infos[-1]


def main(quick: bool = False) -> None:
    _use_every_core()
    if quick:
        n, prompts, group, steps, seeds, np_steps, np_seeds = 200, 8, 8, 200, 4, 20, 2
    else:
        n, prompts, group, steps, seeds, np_steps, np_seeds = 1000, 64, 16, 1000, 64, 50, 2
    devices = jax.devices()
    print(f"devices: {devices}  dtype {jnp.zeros(()).dtype}")
    print(
        f"GRPO, tabular policy: n = {n} behaviors, {prompts} prompts, group size {group}, "
        f"beta = {BETA}, Adam lr = {LEARNING_RATE}"
    )
    logp0, reward = _problem(prompts, n)

    for name, (grad_error, metric_error, loss_error) in _same_algorithm_check(
        logp0, reward, group
    ).items():
        print(
            f"same-algorithm check vs numpy {name} on identical groups: gradient max rel. "
            f"difference {grad_error:.1e}, Info metrics {metric_error:.1e}, loss "
            f"{loss_error:.1e} (float32)"
        )

    trainer = tr.make_trainer(
        tr.tabular(logp0), tr.grpo(num_samples=group, kl="k3"), optax.adam(LEARNING_RATE), ks=KS
    )
    batch = tr.Batch(jnp.asarray(reward), BETA)
    keys = jax.random.split(jax.random.key(0), seeds)

    start = time.perf_counter()
    out = jax.block_until_ready(tr.run_seeds(trainer, keys, batch, steps))
    first = time.perf_counter() - start
    start = time.perf_counter()
    out = jax.block_until_ready(tr.run_seeds(trainer, keys, batch, steps))
    jax_time = time.perf_counter() - start
    _, infos = out
    jax_rate = seeds * steps / jax_time
    print(
        f"jax:   {seeds} seeds x {steps} steps in {jax_time:.3f} s on {len(devices)} device(s) "
        f"(first call incl. compile {first:.2f} s): {steps / jax_time:,.1f} steps/s for all "
        f"seeds, {jax_rate:,.0f} seed-steps/s"
    )
    one_steps = max(steps // 10, 1)
    if len(devices) > 1:
        one = [devices[0]]
        jax.block_until_ready(tr.run_seeds(trainer, keys, batch, one_steps, devices=one))
        start = time.perf_counter()
        jax.block_until_ready(tr.run_seeds(trainer, keys, batch, one_steps, devices=one))
        one_rate = seeds * one_steps / (time.perf_counter() - start)
        print(
            f"       (on a single device, timed on {one_steps} steps: {one_rate:,.0f} seed-steps/s)"
        )

    rates = {}
    for name, cls in (("loop", LoopGRPO), ("vectorized", NumpyGRPO)):
        rate, last_np = _time_numpy(cls, logp0, reward, group, np_steps, np_seeds)
        rates[name] = rate
        print(
            f"numpy {name}: {np_seeds} seeds x {np_steps} steps: {rate:,.1f} seed-steps/s, one "
            f"core (timed on fewer steps and seeds, extrapolated per seed-step: {seeds} x "
            f"{steps} would take {seeds * steps / rate:.1f} s)"
        )
    print(
        f"ratio jax/numpy per seed-step: {jax_rate / rates['loop']:.1f}x the loop (goal >= 20x), "
        f"{jax_rate / rates['vectorized']:.1f}x the vectorized rewrite"
    )
    last = jax.tree_util.tree_map(lambda x: np.asarray(x)[:, -1], infos)
    print(
        f"after {steps} steps (mean over seeds): E[r] {last.expected_reward.mean():.4f}, "
        f"KL(q||p0) {last.kl_reference.mean():.4f}, KL(q*||q) {last.kl_target.mean():.4f}, "
        f"zero-signal groups {last.zero_signal.mean():.3f}; numpy after {np_steps} steps: "
        f"KL(q*||q) {last_np['kl_target']:.4f} (jax at that step "
        f"{np.asarray(infos.kl_target)[:, np_steps - 1].mean():.4f})"
    )
