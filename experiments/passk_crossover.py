"""pass@k crossover: RL with parameters shared across prompts wins at small k and loses at large k.

Prompts have one correct answer each. On *easy* prompts it is the base's most likely answer; on
*hard* prompts it is rare but inside the accessible support at large k (a tail answer). The
policy shares one parameter across prompts: a sharpening exponent, ``log q_p = normalize((1 + θ)
log p0_p)`` (``freeenergy.train.shared`` with the feature ``log p0``, no per-prompt offsets). It
is trained on the KL-regularized objective ``E_q[r] - β KL(q || p0)``, exactly (expectations, not
samples: no finite-sample or truncation effect), to convergence. The gradient is dominated by the
easy prompts, where sharpening pays, so θ grows — and on the hard prompts sharpening drains the
rare correct answer: mean pass@1 rises, mean pass@k at large k falls below the base (Yue et al.
2025). The exact per-prompt tilt ``q_p ∝ p0_p exp(r_p / β_p)``, given on each prompt the same KL
the shared policy spent there, raises every prompt's success mass, so its pass@k is above the
base at every k: the crossover comes from the shared parameters.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

import freeenergy as fe
from freeenergy import train as tr

CONFIG = {
    "seed": 0,
    "num_easy": 6,
    "num_hard": 6,
    "num_behaviors": 16,
    "zipf_exponent": 1.5,
    "noise": 0.3,
    "hard_ranks": [10, 15],
    "beta": 0.3,
    "learning_rate": 0.1,
    "steps": 300,
    "ks": [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096],
}

TINY = {"num_easy": 3, "num_hard": 3, "num_behaviors": 10, "hard_ranks": [8, 9], "steps": 150}


def _prompts(config: dict, key: jax.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """References ``(P, n)``, correct masks ``(P, n)`` and the rank of each correct answer."""
    n = int(config["num_behaviors"])
    num_easy, num_hard = int(config["num_easy"]), int(config["num_hard"])
    p = num_easy + num_hard
    key_noise, key_rank = jax.random.split(key)
    logits = -float(config["zipf_exponent"]) * np.log1p(np.arange(n))[None, :]
    logits = logits + float(config["noise"]) * np.asarray(jax.random.normal(key_noise, (p, n)))
    logp0 = np.asarray(fe.normalize(jnp.asarray(logits)))
    order = np.argsort(-logp0, axis=-1, kind="stable")
    lo, hi = config["hard_ranks"]
    hard = np.asarray(jax.random.randint(key_rank, (num_hard,), int(lo), int(hi) + 1))
    ranks = np.concatenate([np.zeros(num_easy, np.int64), hard])
    correct = np.zeros((p, n), bool)
    correct[np.arange(p), order[np.arange(p), ranks]] = True
    return logp0, correct, ranks


@jax.jit
def _pass(logq, correct, ks):
    """pass@k per k and prompt: ``(len(ks), P)``."""
    return fe.pass_at_k(logq[None], correct[None], ks[:, None])


def run(config: dict, key: jax.Array) -> dict:
    logp0, correct, ranks = _prompts(config, key)
    beta = float(config["beta"])
    ks = np.asarray(config["ks"], dtype=np.int64)
    reward = correct.astype(np.float64)
    lp0 = jnp.asarray(logp0)

    # RL with one parameter shared by every prompt: the sharpening exponent
    policy = tr.shared(lp0, lp0[..., None], offsets=False)
    trainer = tr.make_trainer(
        policy,
        tr.reinforce("exact", kl="exact"),
        optax.adam(float(config["learning_rate"])),
        ks=(int(ks[0]), int(ks[-1])),
        correct=jnp.asarray(correct),
    )
    state, info = tr.run(trainer, key, tr.Batch(jnp.asarray(reward), beta), int(config["steps"]))
    logq_shared = np.asarray(policy.logprobs(state.params))
    kl_shared = np.asarray(fe.kl(logq_shared, lp0))

    # the exact per-prompt tilt spending the same KL on each prompt
    logq_tilt, beta_tilt = fe.tilt_for_kl(lp0, jnp.asarray(reward), jnp.asarray(kl_shared))
    logq_tilt = np.asarray(logq_tilt)

    ksf = jnp.asarray(ks, dtype=lp0.dtype)
    c = jnp.asarray(correct)
    base = np.asarray(_pass(lp0, c, ksf))
    shared = np.asarray(_pass(jnp.asarray(logq_shared), c, ksf))
    tilt = np.asarray(_pass(jnp.asarray(logq_tilt), c, ksf))

    def success(lq):
        return np.sum(np.where(correct, np.exp(lq), 0.0), axis=-1)

    return {
        "config": {**config, "logp0": logp0, "correct": correct, "correct_rank": ranks},
        "k": ks,
        "shared": {"base": base.mean(-1), "rl": shared.mean(-1)},
        "per_prompt": {"base": base.mean(-1), "rl": tilt.mean(-1)},
        "theta": float(np.asarray(state.params.theta)[0]),
        "beta": beta,
        "by_prompt": {
            "easy": np.arange(logp0.shape[0]) < int(config["num_easy"]),
            "success_base": success(logp0),
            "success_shared": success(logq_shared),
            "success_per_prompt": success(logq_tilt),
            "kl": kl_shared,
            "beta_per_prompt": np.asarray(beta_tilt),
            "pass_at_k_base": base.T,
            "pass_at_k_shared": shared.T,
            "pass_at_k_per_prompt": tilt.T,
        },
        "logq_shared": logq_shared,
        "training": {
            "step": np.arange(1, int(config["steps"]) + 1),
            "k": [int(ks[0]), int(ks[-1])],
            "pass_at_k": np.asarray(info.pass_at_k),
            "kl": np.asarray(info.kl_reference),
        },
    }


def plot(result: dict):
    from freeenergy.plotting import CYCLE, figure

    k = np.asarray(result["k"], dtype=float)
    fig, axes = figure(1, 3, width=4.6, height=3.7)

    ax = axes[0]
    ax.plot(k, result["shared"]["base"], "k-", lw=2, label="base")
    ax.plot(k, result["shared"]["rl"], "o-", ms=3, color=CYCLE[1], label="RL, shared parameter")
    ax.plot(
        k,
        result["per_prompt"]["rl"],
        "s--",
        ms=3,
        color=CYCLE[0],
        label="per-prompt tilt (same KL)",
    )
    ax.set(
        xscale="log",
        xlabel="k",
        ylabel="mean pass@k over prompts",
        title="(a) the crossover comes from sharing",
    )
    ax.legend(loc="lower right")

    ax = axes[1]
    bp = result["by_prompt"]
    easy = np.asarray(bp["easy"], bool)
    base = np.asarray(bp["success_base"])
    for mask, marker, name in ((easy, "o", "easy"), (~easy, "^", "hard")):
        ax.plot(
            base[mask],
            np.asarray(bp["success_shared"])[mask],
            marker,
            color=CYCLE[1],
            label=f"{name}: shared RL",
        )
        ax.plot(
            base[mask],
            np.asarray(bp["success_per_prompt"])[mask],
            marker,
            mfc="none",
            color=CYCLE[0],
            label=f"{name}: per-prompt tilt",
        )
    values = np.concatenate([base, bp["success_shared"], bp["success_per_prompt"]])
    lims = [float(np.min(values)) / 2, 1.0]
    ax.plot(lims, lims, "k:", lw=1)
    ax.set(
        xscale="log",
        yscale="log",
        xlabel=r"base success mass $p_0(C_p)$",
        ylabel=r"trained success mass $q(C_p)$",
        title="(b) sharpening drains the rare answers",
    )
    ax.legend(fontsize=7.5, loc="lower right")

    ax = axes[2]
    tr_ = result["training"]
    steps = np.asarray(tr_["step"])
    pk = np.asarray(tr_["pass_at_k"])
    k_lo, k_hi = tr_["k"]
    base_lo = result["shared"]["base"][0]
    base_hi = result["shared"]["base"][-1]
    ax.plot(steps, pk[:, 0], color=CYCLE[2], label=f"pass@{k_lo}")
    ax.axhline(base_lo, color=CYCLE[2], ls=":", lw=1)
    ax.plot(steps, pk[:, 1], color=CYCLE[3], label=f"pass@{k_hi}")
    ax.axhline(base_hi, color=CYCLE[3], ls=":", lw=1)
    ax.set(
        xlabel="training step",
        ylabel="mean pass@k (dotted: base)",
        title=rf"(c) shared RL, $\theta$ = {result['theta']:.2f}",
    )
    ax.legend()
    fig.tight_layout()
    return fig
