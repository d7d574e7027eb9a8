"""SFT, the RL family and DPO, exact and sampled, all converging on one Gibbs target.

On a random base ``p0`` and reward ``r`` over ``n`` behaviors, the practical algorithms (the ones
TRL ships: SFT, reward-weighted SFT, REINFORCE, RLOO, GRPO, PPO-clip, DPO) are trained with optax
from ``p0``, next to two exact references (mirror descent, one Gibbs tilt per step; natural
policy gradient). Every method's end point is compared with ``gibbs(p0, -r, β)``, the answer of
``max E_q[r] − β·KL(q‖p0)``:

* SFT on demonstrations from the target, weighted SFT on reference samples (T11), KL-regularized
  RL and DPO on Bradley–Terry preferences all reach it — exactly in exact mode, to sampling noise
  in sampled mode;
* GRPO's per-group standard-deviation scaling moves the answer to the tilt at the effective
  temperature β·std_q*(r) (recorded as ``effective_beta``);
* DPO's implicit reward recovers ``r`` up to a constant;
* weighted SFT on a stored sample set ``S`` pays the price ``β·log(1/q*(S))`` (T11).
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
    "n": 12,
    "base_scale": 1.5,
    "beta": 0.5,
    "steps": 2000,
    "learning_rate": 0.05,
    "sampled_learning_rate": 0.02,
    "num_samples": 16,
    "mirror_step": 0.5,
    "record_every": 20,
    "stored_sizes": [2, 4, 8, 16, 32, 64, 128, 256],
    "methods": [
        "sft",
        "weighted_sft",
        "reinforce",
        "rloo",
        "grpo",
        "grpo_std",
        "ppo",
        "dpo",
        "mirror_descent",
        "natural_pg",
        "sft_sampled",
        "weighted_sft_sampled",
        "reinforce_sampled",
        "rloo_sampled",
        "grpo_sampled",
        "ppo_sampled",
        "dpo_sampled",
    ],
}

TINY = {
    "n": 6,
    "steps": 600,
    "stored_sizes": [2, 8, 32],
    "methods": ["weighted_sft", "reinforce", "dpo", "grpo_sampled"],
}

#: Display names.
LABELS = {
    "sft": "SFT on q* demos",
    "weighted_sft": "weighted SFT on p0 (T11)",
    "reinforce": "REINFORCE + exact KL",
    "rloo": "RLOO (k1 in reward)",
    "grpo": "GRPO, mean-centred (k2 in loss)",
    "grpo_std": "GRPO, std-scaled (→ tilt at β·σ*)",
    "ppo": "PPO-clip (k1 in reward)",
    "dpo": "DPO (Bradley–Terry)",
    "mirror_descent": "mirror descent (tilt/step)",
    "natural_pg": "natural PG",
}


def _objective(name: str, num_samples: int):
    """(objective, optimizer kind, natural gradient?) for a method name."""
    base = name.removesuffix("_sampled")
    mode = "sampled" if name.endswith("_sampled") else "exact"
    m = num_samples
    if base == "sft":
        return tr.sft(mode, num_samples=4 * m)
    if base == "weighted_sft":
        return tr.sft(mode, num_samples=4 * m, weighting="reward")
    if base == "reinforce":
        return tr.reinforce(mode, num_samples=m, kl="exact" if mode == "exact" else "k1")
    if base == "rloo":
        return tr.rloo(mode, num_samples=m, kl="k1", kl_in="reward")
    if base == "grpo":
        return tr.grpo(mode, num_samples=m, scale_rewards=False, kl="k2", kl_in="loss", epochs=2)
    if base == "grpo_std":
        return tr.grpo(mode, num_samples=m, scale_rewards=True, kl="k2", kl_in="loss", epochs=2)
    if base == "ppo":
        return tr.ppo(mode, num_samples=m, whiten=False, kl="k1", kl_in="reward", epochs=4)
    if base == "dpo":
        return tr.dpo(mode, num_samples=4 * m)
    if base == "natural_pg":
        return tr.reinforce(mode, num_samples=m, kl="exact")
    raise ValueError(f"unknown method {name!r}")


def _trainer(name, config, logp0):
    if name == "mirror_descent":
        return tr.make_mirror_descent(logp0, config["mirror_step"])
    sampled = name.endswith("_sampled")
    lr = config["sampled_learning_rate"] if sampled else config["learning_rate"]
    natural = name == "natural_pg"
    objective = _objective(name, config["num_samples"])
    # Sampled methods and those taking several updates per batch (PPO/GRPO epochs) use Adam with
    # a cosine decay to 1% of the rate: with a constant rate Adam keeps stepping ~lr near the
    # optimum there (sampling noise; updates on a stale batch) and drifts off it again.
    if sampled or objective.epochs > 1:
        lr = optax.cosine_decay_schedule(lr, config["steps"], alpha=0.01)
    optimizer = optax.sgd(config["mirror_step"]) if natural else optax.adam(lr)
    return tr.make_trainer(tr.tabular(logp0), objective, optimizer, natural_gradient=natural)


def _record(name, config, trainer, state, info, beta, reward, qstar):
    every, steps = config["record_every"], config["steps"]
    logq = trainer.policy.logprobs(state.params)
    out = {
        "mode": "sampled" if name.endswith("_sampled") else "exact",
        "final_logq": logq,
        "step": np.arange(every, steps + 1, every),
        "kl_target": info.kl_target[every - 1 :: every],
        "expected_reward": info.expected_reward[every - 1 :: every],
        "kl_reference": info.kl_reference[every - 1 :: every],
        "final_kl_to_gibbs": fe.kl(qstar, logq),
    }
    if name.startswith("grpo_std"):
        q = jnp.exp(logq)
        mean = jnp.sum(q * reward)
        out["effective_beta"] = beta * jnp.sqrt(jnp.sum(q * (reward - mean) ** 2))
    return out


@jax.jit
def _stored_support(logp0, reward, beta, qstar, counts, trained):
    """T11 numbers for stored sets: the price, the stored-data optimum and the trained model."""
    stored = counts > 0
    log_mass = jax.nn.logsumexp(jnp.where(stored, qstar, -jnp.inf), axis=-1)
    best = beta * jax.nn.logsumexp(logp0 + reward / beta)

    def objective(logq):
        q = jnp.exp(logq)
        kl = jnp.sum(jnp.where(q > 0, q * (logq - logp0), 0.0), axis=-1)
        return jnp.sum(q * reward, axis=-1) - beta * kl

    # The best model on the stored data alone: q ∝ count·exp(r/β) (weighted empirical optimum).
    on_data = jax.nn.log_softmax(jnp.log(counts) + reward / beta, axis=-1)
    return {
        "distinct": jnp.sum(stored, axis=-1),
        "price": -beta * log_mass,
        "gap_on_data": best - objective(on_data),
        "gap_trained": best - objective(trained),
    }


def run(config: dict, key: jax.Array) -> dict:
    key_base, key_reward, key_train, key_stored = jax.random.split(key, 4)
    n, beta = config["n"], float(config["beta"])
    logp0 = fe.normalize(config["base_scale"] * jax.random.normal(key_base, (n,)))
    reward = jnp.round(jax.random.normal(key_reward, (n,)), 3)
    qstar = fe.gibbs(logp0, -reward, beta)
    steps = config["steps"]

    # Stored sets for T11: the first m of one stream of reference draws, as empirical
    # distributions (weighted SFT on a stored set, full batch, is exact SFT on its empirical
    # distribution). They are trained in one vmap together with the weighted_sft method
    # (data = p0, the infinite-sample limit).
    sizes = config["stored_sizes"]
    draws = tr.tabular(logp0).sample(key_stored, logp0, max(sizes))
    counts = np.stack([np.bincount(np.asarray(draws[:m]), minlength=n) for m in sizes])
    freq = counts / counts.sum(axis=-1, keepdims=True)
    empirical = np.where(counts > 0, np.log(np.where(counts > 0, freq, 1.0)), -np.inf)
    weighted = _trainer("weighted_sft", config, logp0)
    datas = jnp.concatenate([logp0[None], jnp.asarray(empirical)])
    states, infos = jax.vmap(
        lambda d: tr.run(weighted, key_train, tr.Batch(reward, beta, d), steps)
    )(datas)
    logqs = jax.vmap(weighted.policy.logprobs)(states.params)

    methods = {}
    for i, name in enumerate(config["methods"]):
        if name == "weighted_sft":
            state, info = jax.tree_util.tree_map(lambda x: x[0], (states, infos))
            trainer = weighted
        else:
            trainer = _trainer(name, config, logp0)
            batch = tr.Batch(reward, beta, qstar if name.startswith("sft") else logp0)
            state, info = tr.run(trainer, jax.random.fold_in(key_train, i), batch, steps)
        methods[name] = _record(name, config, trainer, state, info, beta, reward, qstar)

    # Implied energy of the DPO end points: -β log(q/p0), compared with -r up to a constant.
    implied = {}
    for name in ("dpo", "dpo_sampled"):
        if name in methods:
            energy = fe.implied_energy(methods[name]["final_logq"], logp0, beta)
            implied[name] = energy - jnp.mean(energy + reward)

    stored = _stored_support(
        logp0, reward, beta, qstar, jnp.asarray(counts, logp0.dtype), logqs[1:]
    )
    stored_result = {"size": sizes, "counts": counts, **stored}
    return {
        "config": {**config, "logp0": logp0, "reward": reward, "beta": beta, "stored_draws": draws},
        "gibbs_target": qstar,
        "methods": methods,
        "implied_energy": implied,
        "stored_support": stored_result,
    }


def _label(name):
    base = name.removesuffix("_sampled")
    return LABELS.get(base, base)


def plot(result: dict):
    cfg = result["config"]
    methods = result["methods"]
    fig, axes = plotting.figure(2, 2, width=5.2, height=3.9)

    # One colour per method in both panels (the cycle plus two more for the ten methods).
    palette = plotting.CYCLE + ["#999999", "#882255"]
    colors = {base: palette[i % len(palette)] for i, base in enumerate(LABELS)}
    for ax, mode in zip(axes[:2], ["exact", "sampled"], strict=True):
        for name, m in methods.items():
            if m["mode"] != mode:
                continue
            kl = np.maximum(np.asarray(m["kl_target"], float), 1e-17)
            base = name.removesuffix("_sampled")
            ls = "--" if base in ("mirror_descent", "natural_pg", "grpo_std") else "-"
            ax.semilogy(m["step"], kl, ls=ls, lw=1.4, color=colors[base], label=_label(name))
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("KL(q* || q)  [nats]  (floor 1e-17)")
        ax.set_title(f"{mode} mode: distance to gibbs(p0, −r, β={cfg['beta']:g})")
        ax.legend(fontsize=7, loc="upper right")

    ax = axes[2]
    reward = np.asarray(cfg["reward"])
    lim = [reward.min() - 0.2, reward.max() + 0.2]
    ax.plot(lim, lim, color="0.6", lw=1, label="y = x")
    for i, (name, energy) in enumerate(result["implied_energy"].items()):
        ax.scatter(
            reward,
            -np.asarray(energy),
            s=22,
            marker="o" if i == 0 else "x",
            color=plotting.CYCLE[i],
            label=f"{_label(name)} ({methods[name]['mode']})",
        )
    ax.set_xlabel("Bradley–Terry reward r(y)")
    ax.set_ylabel("implicit reward β·log(q/p0)  (centred)")
    ax.set_title("DPO recovers the reward (up to a constant)")
    ax.legend(fontsize=8)

    ax = axes[3]
    st = result["stored_support"]
    size = np.asarray(st["size"])
    ax.loglog(
        size,
        np.maximum(np.asarray(st["price"], float), 1e-17),
        marker="o",
        label="price β·log(1/q*(S))  (best S-supported model)",
    )
    ax.loglog(
        size,
        np.maximum(np.asarray(st["gap_on_data"], float), 1e-17),
        marker="s",
        label="best model on the stored data (count·e^{r/β})",
    )
    ax.loglog(
        size,
        np.maximum(np.asarray(st["gap_trained"], float), 1e-17),
        marker="x",
        ls="--",
        label="weighted SFT on the stored data, trained",
    )
    ax.set_xlabel("stored reference samples m")
    ax.set_ylabel("β·log Z − J_β(q)  [nats]")
    ax.set_title("T11: weighted SFT on stored samples, its price")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
