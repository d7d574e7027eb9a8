"""The Gibbs family: its reward–KL frontier, the exact KL-constrained optimum, the local expansion.

For a random base ``p0`` and reward ``r`` over ``n`` behaviors, the family
``q_β ∝ p0·exp(r/β)`` traces the frontier (KL(q_β‖p0), E_q[r]) as β sweeps from hot to cold;
``tilt_for_kl`` lands exactly on it at each KL budget; random non-Gibbs reweightings of ``p0``
all sit below it (docs/theory.md T1/T4); and for large β the exact KL approaches the local expansion
``Var_p0(r) / (2β²)`` with an ``O(β⁻³)`` remainder (T5).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import freeenergy as fe
from freeenergy import plotting

CONFIG = {
    "seed": 0,
    "n": 120,
    "base_scale": 1.5,
    "betas": {"start": -2.0, "stop": 3.0, "num": 101},
    "kl_budgets": [0.02, 0.1, 0.3, 0.6, 1.0, 1.5, 100.0],
    "num_random": 400,
    "show_betas": [10.0, 1.0, 0.3, 0.1],
}

TINY = {
    "n": 20,
    "betas": {"start": -1.0, "stop": 2.0, "num": 13},
    "num_random": 20,
    "kl_budgets": [0.05, 0.3, 100.0],
}


def run(config: dict, key: jax.Array) -> dict:
    key_base, key_reward, key_random, key_scale = jax.random.split(key, 4)
    n = config["n"]
    logp0 = fe.normalize(config["base_scale"] * jax.random.normal(key_base, (n,)))
    reward = jnp.round(jax.random.normal(key_reward, (n,)), 3)

    b = config["betas"]
    betas = jnp.logspace(b["start"], b["stop"], b["num"])
    expected, kl = fe.frontier(logp0, reward, betas)

    p0 = jnp.exp(logp0)
    mean0 = jnp.sum(p0 * reward)
    var0 = jnp.sum(p0 * (reward - mean0) ** 2)
    local_kl = var0 / (2.0 * betas**2)

    budgets = jnp.asarray(config["kl_budgets"])
    opt_logq, opt_beta = fe.tilt_for_kl(jnp.broadcast_to(logp0, (budgets.size, n)), reward, budgets)
    opt_kl = fe.kl(opt_logq, logp0)
    opt_reward = jnp.sum(jnp.exp(opt_logq) * reward, axis=-1)
    kl_max = -jnp.log(jnp.sum(jnp.where(reward == jnp.max(reward), p0, 0.0)))

    # Random non-Gibbs reweightings of p0: log q = log p0 + s·noise, renormalized.
    scales = jnp.exp(
        jax.random.uniform(key_scale, (config["num_random"], 1), minval=-3.0, maxval=1.5)
    )
    noise = jax.random.normal(key_random, (config["num_random"], n))
    random_logq = fe.normalize(logp0 + scales * noise)
    random_kl = fe.kl(random_logq, logp0)
    random_reward = jnp.sum(jnp.exp(random_logq) * reward, axis=-1)
    # The frontier's reward at each random point's KL (exact, by tilt_for_kl).
    front_logq, _ = fe.tilt_for_kl(jnp.broadcast_to(logp0, random_logq.shape), reward, random_kl)
    random_frontier = jnp.sum(jnp.exp(front_logq) * reward, axis=-1)

    show = jnp.asarray(config["show_betas"])
    shown = fe.gibbs(logp0, -reward, show)

    return {
        "config": {**config, "logp0": logp0, "reward": reward},
        "frontier": {"beta": betas, "expected_reward": expected, "kl": kl, "local_kl": local_kl},
        "var_p0": var0,
        "mean_p0": mean0,
        "kl_max": kl_max,
        "optimum": {
            "kl_budget": budgets,
            "beta": opt_beta,
            "kl": opt_kl,
            "expected_reward": opt_reward,
        },
        "random": {
            "kl": random_kl,
            "expected_reward": random_reward,
            "frontier_reward": random_frontier,
        },
        "shown": {"beta": show, "logq": shown},
    }


def plot(result: dict):
    cfg = result["config"]
    fr = result["frontier"]
    opt = result["optimum"]
    rnd = result["random"]
    fig, axes = plotting.figure(1, 3, width=4.5, height=3.6)

    ax = axes[0]
    ax.scatter(
        rnd["kl"], rnd["expected_reward"], s=6, color="0.6", lw=0, label="random reweightings of p0"
    )
    ax.plot(
        fr["kl"],
        fr["expected_reward"],
        color=plotting.CYCLE[0],
        lw=2,
        label="Gibbs family q_β ∝ p0·exp(r/β)",
    )
    ax.scatter(
        opt["kl"],
        opt["expected_reward"],
        color=plotting.CYCLE[1],
        zorder=5,
        s=25,
        label="tilt_for_kl at each budget",
    )
    ax.axvline(result["kl_max"], color="0.3", ls=":", lw=1)
    ax.text(
        result["kl_max"], ax.get_ylim()[0], " KL of the\n reward-max limit", fontsize=8, va="bottom"
    )
    ax.set_xscale("log")
    ax.set_xlim(1e-3, None)
    ax.set_xlabel("KL(q || p0)  [nats]")
    ax.set_ylabel("E_q[r]")
    ax.set_title("reward–KL frontier")
    ax.legend(fontsize=8, loc="lower right")

    ax = axes[1]
    beta = np.asarray(fr["beta"])
    ax.loglog(beta, fr["kl"], color=plotting.CYCLE[0], lw=2, label="exact KL(q_β || p0)")
    ax.loglog(
        beta, fr["local_kl"], color=plotting.CYCLE[1], ls="--", label="local expansion Var(r)/(2β²)"
    )
    ax.set_xlabel("β")
    ax.set_ylabel("KL  [nats]")
    ax.set_title("large β: a small local reweighting")
    ax.legend(fontsize=8)

    ax = axes[2]
    reward = np.asarray(cfg["reward"])
    order = np.argsort(reward, kind="stable")
    logp0 = np.asarray(cfg["logp0"])
    for b, logq in zip(result["shown"]["beta"], result["shown"]["logq"], strict=True):
        ax.plot(
            reward[order],
            (np.asarray(logq) - logp0)[order],
            lw=1.5,
            marker=".",
            ms=3,
            label=f"β = {b:g}  (slope 1/β = {1 / b:.3g})",
        )
    ax.set_xlabel("reward r(y)")
    ax.set_ylabel("log q_β(y) / p0(y)")
    ax.set_title("a tilt is a straight line: r/β − log Z")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
