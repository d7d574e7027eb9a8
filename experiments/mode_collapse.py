"""Equal rewards keep reference ratios under the tilt; vanilla softmax policy gradient collapses.

Several correct answers share the same reward but not the same base probability. Every Gibbs tilt
``q ∝ p0·exp(r/β)`` keeps their ``p0`` ratios (docs/theory.md T8), and so do exact natural policy
gradient and mirror descent (one tilt per step). Vanilla softmax policy gradient (plain gradient
descent on the logits) pushes each answer in proportion to its current probability, so the
likelier correct answer takes over; sampled RLOO with plain SGD does the same. Adam, whose step is
close to the sign of each logit's gradient, happens to move equal-reward answers together. At the
same success probability (hence the same pass@k on the correct set), the collapsed
policy finds fewer *distinct* correct answers in k samples and rarely reaches the rare one.
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
    "correct_mass": [0.12, 0.05, 0.015],
    "num_wrong": 9,
    "steps": 600,
    "pg_learning_rate": 1.0,
    "adam_learning_rate": 0.02,
    "natural_step": 0.02,
    "match_success": 0.9,
    "ks": [1, 2, 4, 8, 16, 32, 64, 128, 256],
    "num_samples": 8,
    "methods": ["vanilla_pg", "rloo_sampled", "adam_pg", "natural_pg", "tilt"],
}

TINY = {"num_wrong": 5, "steps": 300, "methods": ["vanilla_pg", "natural_pg", "tilt"]}

LABELS = {
    "vanilla_pg": "vanilla softmax PG (SGD)",
    "rloo_sampled": "RLOO, sampled (SGD)",
    "adam_pg": "softmax PG with Adam",
    "natural_pg": "natural PG",
    "tilt": "Gibbs tilt (mirror descent)",
}


def _trainer(name, config, logp0):
    objective = tr.reinforce("exact", kl=None)
    if name == "vanilla_pg":
        return tr.make_trainer(tr.tabular(logp0), objective, optax.sgd(config["pg_learning_rate"]))
    if name == "rloo_sampled":
        return tr.make_trainer(
            tr.tabular(logp0),
            tr.rloo(num_samples=config["num_samples"], kl=None),
            optax.sgd(config["pg_learning_rate"]),
        )
    if name == "adam_pg":
        return tr.make_trainer(
            tr.tabular(logp0), objective, optax.adam(config["adam_learning_rate"])
        )
    if name == "natural_pg":
        return tr.make_trainer(
            tr.tabular(logp0), objective, optax.sgd(config["natural_step"]), natural_gradient=True
        )
    if name == "tilt":
        return tr.make_mirror_descent(logp0, config["natural_step"])
    raise ValueError(f"unknown method {name!r}")


def _trajectory(trainer, key, batch, steps):
    """The log-probabilities after every step (the Info trajectory does not hold them)."""

    @jax.jit
    def go(key):
        def body(state, k):
            state, _ = trainer.step(k, state, batch)
            return state, trainer.policy.logprobs(state.params)

        return jax.lax.scan(body, trainer.init(key), jax.random.split(key, steps))[1]

    return go(key)


@jax.jit
def _summaries(logq, correct, ks):
    """Success mass, ratio likeliest/rarest correct answer, distinct correct answers in k draws."""
    q = jnp.exp(logq)
    success = jnp.sum(jnp.where(correct, q, 0.0), axis=-1)
    reach = -jnp.expm1(ks[:, None] * jnp.log1p(-jnp.minimum(q, 1.0))[..., None, :])
    distinct = jnp.sum(jnp.where(correct, reach, 0.0), axis=-1)
    return success, distinct


def run(config: dict, key: jax.Array) -> dict:
    key_wrong, key_train = jax.random.split(key)
    correct_mass = np.asarray(config["correct_mass"], float)
    wrong = np.asarray(
        jax.random.uniform(key_wrong, (config["num_wrong"],), minval=0.5, maxval=1.5)
    )
    wrong = wrong / wrong.sum() * (1.0 - correct_mass.sum())
    p0 = np.concatenate([correct_mass, wrong])
    logp0 = jnp.log(jnp.asarray(p0))
    n = p0.size
    correct = np.arange(n) < correct_mass.size
    reward = jnp.asarray(correct, logp0.dtype)
    batch = tr.Batch(reward, 0.0)
    ks = jnp.asarray(config["ks"], logp0.dtype)
    likeliest, rarest = 0, correct_mass.size - 1

    methods = {}
    for i, name in enumerate(config["methods"]):
        trainer = _trainer(name, config, logp0)
        logqs = _trajectory(trainer, jax.random.fold_in(key_train, i), batch, config["steps"])
        success, _ = _summaries(logqs, jnp.asarray(correct), ks)
        reached = np.flatnonzero(np.asarray(success) >= config["match_success"])
        matched = int(reached[0]) if reached.size else config["steps"] - 1
        logq_m = logqs[matched]
        _, distinct = _summaries(logq_m, jnp.asarray(correct), ks)
        methods[name] = {
            "success": success,
            "log_ratio": logqs[:, likeliest] - logqs[:, rarest],
            "matched_step": matched + 1,
            "matched_success": success[matched],
            "matched_logq": logq_m,
            "matched_distinct": distinct,
            "matched_rare_pass": fe.reach_probability(logq_m[rarest], ks),
            "final_logq": logqs[-1],
        }

    _, distinct0 = _summaries(logp0, jnp.asarray(correct), ks)
    betas = jnp.asarray([10.0, 1.0, 0.3, 0.1, 0.03])
    tilts = fe.gibbs(logp0, -reward, betas)
    return {
        "config": {
            **config,
            "logp0": logp0,
            "reward": reward,
            "correct": correct,
            "likeliest": likeliest,
            "rarest": rarest,
        },
        "methods": methods,
        "base": {
            "log_ratio": logp0[likeliest] - logp0[rarest],
            "distinct": distinct0,
            "rare_pass": fe.reach_probability(logp0[rarest], ks),
        },
        "tilts": {
            "beta": betas,
            "log_ratio": tilts[:, likeliest] - tilts[:, rarest],
            "success": jnp.sum(jnp.where(jnp.asarray(correct), jnp.exp(tilts), 0.0), -1),
        },
    }


def plot(result: dict):
    cfg = result["config"]
    methods = result["methods"]
    base = result["base"]
    ks = np.asarray(cfg["ks"])
    colors = {name: plotting.CYCLE[i] for i, name in enumerate(LABELS)}
    # Natural PG, the tilt and Adam coincide here: draw them with distinct dashes.
    styles = {"natural_pg": (0, (4, 2)), "tilt": (0, (1, 2)), "rloo_sampled": (0, (6, 2))}
    fig, axes = plotting.figure(2, 2, width=5.0, height=3.7)

    ax = axes[0]
    for name, m in methods.items():
        ax.plot(
            m["success"],
            np.exp(np.asarray(m["log_ratio"])),
            color=colors[name],
            ls=styles.get(name, "-"),
            lw=1.6,
            label=LABELS[name],
        )
    ax.scatter(
        result["tilts"]["success"],
        np.exp(np.asarray(result["tilts"]["log_ratio"])),
        color="k",
        zorder=5,
        s=18,
        label="exact tilts (β = 10 … 0.03)",
    )
    ax.axhline(np.exp(base["log_ratio"]), color="0.5", ls=":", lw=1, label="reference ratio")
    ax.set_yscale("log")
    ax.set_xlabel("success probability q(correct)")
    ax.set_ylabel("q(likeliest) / q(rarest correct answer)")
    ax.set_title("equal rewards: who keeps the p0 ratio")
    ax.legend(fontsize=7)

    ax = axes[1]
    correct = np.asarray(cfg["correct"])
    idx = np.flatnonzero(correct)
    p0 = np.exp(np.asarray(cfg["logp0"]))[idx]
    width = 0.8 / (len(methods) + 1)
    ax.bar(
        np.arange(idx.size) - 0.4 + width / 2,
        p0 / p0.sum(),
        width,
        color="0.6",
        label="p0 (conditioned on correct)",
    )
    for j, (name, m) in enumerate(methods.items(), 1):
        q = np.exp(np.asarray(m["matched_logq"]))[idx]
        ax.bar(
            np.arange(idx.size) - 0.4 + width * (j + 0.5),
            q / q.sum(),
            width,
            color=colors[name],
            label=f"{LABELS[name]} (step {m['matched_step']})",
        )
    ax.set_xticks(
        np.arange(idx.size),
        [
            f"answer {i}\np0={v:.3g}"
            for i, v in zip(idx, np.exp(np.asarray(cfg["logp0"]))[idx], strict=True)
        ],
    )
    ax.set_xlabel("correct answer (base probability)")
    ax.set_ylabel("share of the correct mass")
    ax.set_title(f"at equal success q(correct) ≈ {cfg['match_success']:g}")
    ax.legend(fontsize=7)

    panels = [
        (
            "distinct",
            "expected distinct correct answers",
            "diversity among correct answers in k samples",
        ),
        ("rare_pass", "P(rarest correct answer found)", "pass@k of the rare correct answer"),
    ]
    for ax, (field, ylabel, title) in zip(axes[2:], panels, strict=True):
        ax.plot(ks, base[field], color="0.5", ls=":", marker=".", label="p0")
        for name, m in methods.items():
            ax.plot(
                ks,
                m[f"matched_{field}"],
                marker=".",
                color=colors[name],
                ls=styles.get(name, "-"),
                label=LABELS[name],
            )
        ax.set_xscale("log", base=2)
        ax.set_xlabel("samples k")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
