"""k1/k2/k3 KL estimators: exact bias and variance, k3's blind spot, and where each one trains to.

For samples ``y ~ q`` with log-ratio ``ℓ = log p0(y) − log q(y)`` the estimators of KL(q‖p0) are
``k1 = −ℓ``, ``k2 = ℓ²/2`` and ``k3 = e^ℓ − 1 − ℓ`` (Schulman 2020). On explicit distributions
their means and variances are sums over the behaviors — no Monte Carlo:

* along the Gibbs family ``q_β ∝ p0·e^{r/β}``, k1 and k3 are unbiased and k2 is not;
* when the sampler's support misses reference mass ``m``, k3 is biased downward by exactly ``m``
  (``E_q[k3] = p0(supp q) − 1 + KL``): the estimator cannot see what is never sampled;
* used as a penalty in training (exact mode, so the expected gradient of each placement), k1 in
  the reward and k2 in the loss follow ∇KL(q‖p0) and reach the Gibbs target; k3 in the loss
  follows ∇KL(p0‖q) and lands on the forward-KL optimum ``q = β p0 / (λ − r)`` instead; k1 in the
  loss has zero expected gradient and does not regularize at all.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

import freeenergy as fe
from freeenergy import plotting
from freeenergy import train as tr

CONFIG = {
    "seed": 0,
    "n": 40,
    "base_scale": 1.5,
    "betas": {"start": -0.7, "stop": 1.5, "num": 40},
    "missing_beta": 1.0,
    "beta_train": 0.5,
    "steps": 2000,
    "learning_rate": 0.05,
    "placements": ["exact_loss", "k1_reward", "k2_loss", "k3_loss", "k3_reward", "k1_loss"],
}

TINY = {
    "n": 12,
    "betas": {"start": -0.5, "stop": 1.0, "num": 8},
    "steps": 800,
    "placements": ["k1_reward", "k3_loss"],
}

LABELS = {
    "exact_loss": "exact KL in loss",
    "k1_reward": "k1 in reward",
    "k2_loss": "k2 in loss",
    "k3_loss": "k3 in loss (GRPO)",
    "k3_reward": "k3 in reward",
    "k1_loss": "k1 in loss",
}


def forward_kl_optimum(logp0: np.ndarray, reward: np.ndarray, beta: float) -> np.ndarray:
    """argmax_q E_q[r] − β·KL(p0‖q): q = β·p0/(λ − r), with λ > max r found by bisection."""
    p0 = np.exp(np.asarray(logp0, float))
    r = np.asarray(reward, float)
    lo, hi = r.max(), r.max() + beta * 2.0  # sum(q) > 1 near lo, <= 1/2 at hi
    for _ in range(200):
        lam = 0.5 * (lo + hi)
        if np.sum(beta * p0 / (lam - r)) > 1.0:
            lo = lam
        else:
            hi = lam
    q = beta * p0 / (0.5 * (lo + hi) - r)
    return np.log(q / q.sum())


def run(config: dict, key: jax.Array) -> dict:
    key_base, key_reward = jax.random.split(key)
    n = config["n"]
    logp0 = fe.normalize(config["base_scale"] * jax.random.normal(key_base, (n,)))
    reward = jnp.round(jax.random.normal(key_reward, (n,)), 3)

    b = config["betas"]
    betas = jnp.logspace(b["start"], b["stop"], b["num"])
    family = fe.gibbs(logp0, -reward, betas)
    stats = tr.kl_estimator_stats(family, logp0)

    # Samplers that miss reference mass: the tilt at missing_beta with the j least likely
    # behaviors of p0 removed, j = 0 .. n - 2.
    base = fe.gibbs(logp0, -reward, config["missing_beta"])
    order = np.argsort(np.asarray(logp0), kind="stable")
    drop = np.zeros((n - 1, n), bool)
    for j in range(1, n - 1):
        drop[j, order[:j]] = True
    samplers = fe.normalize(jnp.where(jnp.asarray(drop), -jnp.inf, base))
    missing_stats = tr.kl_estimator_stats(samplers, logp0)
    missing_mass = jnp.sum(jnp.where(jnp.asarray(drop), jnp.exp(logp0), 0.0), axis=-1)

    beta = float(config["beta_train"])
    target = fe.gibbs(logp0, -reward, beta)
    forward = forward_kl_optimum(np.asarray(logp0), np.asarray(reward), beta)
    placements = {}
    for name in config["placements"]:
        kind, where = name.split("_")
        objective = tr.rloo("exact", kl=kind, kl_in=where)
        trainer = tr.make_trainer(tr.tabular(logp0), objective, optax.adam(config["learning_rate"]))
        state, info = tr.run(trainer, key, tr.Batch(reward, beta), config["steps"])
        logq = trainer.policy.logprobs(state.params)
        placements[name] = {
            "final_logq": logq,
            "kl_to_gibbs": fe.kl(target, logq),
            "kl_to_forward_optimum": fe.kl(jnp.asarray(forward), logq),
            "kl_reference": info.kl_reference[-1],
            "expected_reward": info.expected_reward[-1],
        }

    return {
        "config": {**config, "logp0": logp0, "reward": reward},
        "family": {
            "beta": betas,
            "kl": stats.kl,
            "mean": stats.mean,
            "variance": stats.variance,
            "bias": stats.bias,
        },
        "missing": {
            "mass": missing_mass,
            "dropped": drop,
            "kl": missing_stats.kl,
            "mean": missing_stats.mean,
            "bias": missing_stats.bias,
        },
        "training": {
            "beta": beta,
            "gibbs_target": target,
            "forward_optimum": forward,
            "placements": placements,
        },
    }


def plot(result: dict):
    fam = result["family"]
    names = ["k1", "k2", "k3"]
    fig, axes = plotting.figure(2, 2, width=5.0, height=3.7)

    ax = axes[0]
    kl = np.asarray(fam["kl"])
    bias = np.asarray(fam["bias"])
    for i, k in enumerate(names):
        ax.plot(kl, bias[:, i], marker=".", ms=4, color=plotting.CYCLE[i], label=k)
    ax.axhline(0.0, color="0.5", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("KL(q_β || p0)  [nats]")
    ax.set_ylabel("bias  E_q[k] − KL  [nats]")
    ax.set_title("bias along the Gibbs family (exact)")
    ax.legend()

    ax = axes[1]
    var = np.asarray(fam["variance"])
    for i, k in enumerate(names):
        ax.loglog(kl, np.sqrt(var[:, i]), marker=".", ms=4, color=plotting.CYCLE[i], label=k)
    ax.loglog(kl, kl, color="0.5", ls=":", label="KL itself")
    ax.set_xlabel("KL(q_β || p0)  [nats]")
    ax.set_ylabel("per-sample std of the estimator")
    ax.set_title("spread of one sample (exact)")
    ax.legend()

    ax = axes[2]
    miss = result["missing"]
    mass = np.asarray(miss["mass"])
    mbias = np.asarray(miss["bias"])
    for i, k in enumerate(names):
        ax.plot(mass, mbias[:, i], marker=".", ms=4, color=plotting.CYCLE[i], label=k)
    ax.plot(mass, -mass, color="k", ls="--", lw=1, label="−(missed reference mass)")
    ax.set_xlabel("reference mass the sampler never draws, 1 − p0(supp q)")
    ax.set_ylabel("bias  E_q[k] − KL  [nats]")
    ax.set_title("k3 is blind to unsampled reference mass")
    ax.legend()

    ax = axes[3]
    pl = result["training"]["placements"]
    labels = [LABELS[n] for n in pl]
    x = np.arange(len(pl))
    to_gibbs = [max(float(v["kl_to_gibbs"]), 1e-17) for v in pl.values()]
    to_forward = [max(float(v["kl_to_forward_optimum"]), 1e-17) for v in pl.values()]
    ax.bar(
        x - 0.2,
        to_gibbs,
        0.4,
        color=plotting.CYCLE[0],
        label="to the Gibbs target (reverse-KL optimum)",
    )
    ax.bar(x + 0.2, to_forward, 0.4, color=plotting.CYCLE[1], label="to the forward-KL optimum")
    ax.set_yscale("log")
    ax.set_xticks(x, labels, rotation=25, ha="right", fontsize=8)
    ax.set_xlabel("KL penalty: estimator and placement")
    ax.set_ylabel("KL(optimum || trained q)")
    ax.set_title(f"where each placement trains to (exact, β = {result['training']['beta']:g})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
