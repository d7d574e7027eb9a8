"""Barrier: GRPO groups carry no signal and training stalls; search + distillation crosses it.

Strings of ``length`` tokens, drawn token by token from a base in which the rewarded token is
rare (probability ``token_probs[-1]``); the verifier accepts strings with at least
``min_count`` of it. The accepted set has base mass ``p`` far below the accessible threshold
``1 - (1 - c)^(1/N)`` at the largest budget ``N = max(k)``: a barrier. The policy is a
per-position token table (``expand.sequence_policy``), shared by every string.

* **GRPO** (sampled, groups of ``group_size``): a group in which every sample fails has all
  advantages zero, with probability ``(1 - p)^G``; from the base no group ever succeeds within
  the budget (probability at most ``1 - (1 - p)^(G·steps)``), so the parameters never move.
* **Expert iteration** (``expand.expert_iteration``): tree search with the verifier's process
  check (discard a token once the prefix can no longer be accepted) finds accepted strings at a
  cost linear in the length; SFT on them moves the shared token tables; repeat.

GRPO gets as many complete samples (and verifier calls) as expert iteration spends generated
tokens, so it draws ``length`` times more tokens. Each round is diagnosed against the base:
behaviors gained and lost from the accessible support at ``N``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

import freeenergy as fe
from freeenergy import expand
from freeenergy import sequences as sq
from freeenergy import train as tr

CONFIG = {
    "seed": 0,
    "token_probs": [0.7, 0.2, 0.08, 0.02],
    "length": 6,
    "min_count": 5,
    "rounds": 3,
    "searches": 8,
    "sft_steps": 20,
    "learning_rate": 0.05,
    "group_size": 8,
    "grpo_beta": 0.04,
    "confidence": 0.5,
    "ks": [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
}

TINY = {"length": 5, "min_count": 4, "rounds": 2, "searches": 4}


def run(config: dict, key: jax.Array) -> dict:
    token_probs = np.asarray(config["token_probs"], dtype=np.float64)
    vocab, length = token_probs.size, int(config["length"])
    rare = vocab - 1
    base = sq.iid(jnp.log(jnp.asarray(token_probs)), length)
    verifier = sq.count_at_least(vocab, rare, int(config["min_count"]))
    accepted = np.asarray(sq.accepts(verifier, sq.strings(vocab, length)))
    ks = np.asarray(config["ks"], dtype=np.int64)
    budget = int(ks.max())
    c = float(config["confidence"])
    p = float(jnp.exp(sq.accept_logprob(base, verifier)))

    policy, to_model = expand.sequence_policy(base)
    logp0 = np.asarray(policy.logprobs(policy.init(key)))
    optimizer = optax.adam(float(config["learning_rate"]))
    key_ei, key_grpo = jax.random.split(key)

    # expert iteration: tree search with the process check, SFT on the successes
    sft_trainer = tr.make_trainer(policy, tr.sft(), optimizer, ks=(1, budget))
    _, record = expand.expert_iteration(
        key_ei,
        sft_trainer,
        to_model,
        verifier,
        rounds=int(config["rounds"]),
        searches=int(config["searches"]),
        sft_steps=int(config["sft_steps"]),
        budget=budget,
        confidence=c,
    )
    calls = int(np.sum(np.asarray(record.cost.verifier_calls)))
    tokens_ei = int(np.sum(np.asarray(record.cost.tokens)))

    # GRPO with as many complete samples as expert iteration spent generated tokens
    g = int(config["group_size"])
    steps = math.ceil(tokens_ei / g)
    grpo_trainer = tr.make_trainer(
        policy, tr.grpo(num_samples=g), optimizer, ks=(1, budget), correct=jnp.asarray(accepted)
    )
    batch = tr.Batch(jnp.asarray(accepted, jnp.float64), float(config["grpo_beta"]))
    state, info = tr.run(grpo_trainer, key_grpo, batch, steps)
    logq_grpo = np.asarray(policy.logprobs(state.params))
    diag_grpo = fe.diagnose(logp0, logq_grpo, budget, c)

    kf = jnp.asarray(ks, jnp.float64)
    logq_ei = np.asarray(record.logq)

    def pass_k(lq):
        return np.asarray(fe.pass_at_k(jnp.asarray(lq)[..., None, :], accepted, kf))

    d = record.diagnosis
    return {
        "config": {**config, "budget": budget, "logp0": logp0, "accepted": accepted},
        "k": ks,
        "pass_at_k": {
            "base": pass_k(logp0),
            "grpo": pass_k(logq_grpo),
            "expert_iteration": pass_k(logq_ei[-1]),
        },
        "success_mass": {
            "base": p,
            "grpo": float(np.exp(logq_grpo)[accepted].sum()),
            "expert_iteration": np.exp(logq_ei)[:, accepted].sum(-1),
        },
        "access_threshold": -math.expm1(math.log1p(-c) / budget),
        "expert_iteration": {
            "round": np.arange(1, int(config["rounds"]) + 1),
            "successes": np.asarray(record.successes),
            "tokens": np.asarray(record.cost.tokens),
            "verifier_calls": np.asarray(record.cost.verifier_calls),
            "gained": np.asarray(d.gained),
            "lost": np.asarray(d.lost),
            "kl": np.asarray(d.kl),
            "created_mass": np.asarray(d.created_mass),
            "accessible_after": np.asarray(d.accessible_after),
            "pass_at_k": pass_k(logq_ei),
        },
        "grpo": {
            "steps": steps,
            "samples": steps * g,
            "tokens": steps * g * length,
            "verifier_calls": steps * g,
            "zero_signal": np.asarray(info.zero_signal),
            "all_fail_probability": (1.0 - p) ** g,
            "success_seen_bound": -math.expm1(steps * g * math.log1p(-p)),
            "gained": int(diag_grpo.gained),
            "lost": int(diag_grpo.lost),
            "kl": float(diag_grpo.kl),
        },
        "logq": {"grpo": logq_grpo, "expert_iteration": logq_ei[-1]},
        "accessible_before": int(d.accessible_before[0]),
        "tokens_expert_iteration": tokens_ei,
        "verifier_calls_expert_iteration": calls,
    }


def plot(result: dict):
    from freeenergy.plotting import CYCLE, figure

    k = np.asarray(result["k"], dtype=float)
    pk = result["pass_at_k"]
    ei = result["expert_iteration"]
    gr = result["grpo"]
    fig, axes = figure(1, 3, width=4.6, height=3.7)

    ax = axes[0]
    ax.plot(k, pk["base"], "k-", lw=2.5, label="base")
    ax.plot(k, pk["grpo"], "--", color=CYCLE[1], lw=2, label=f"GRPO ({gr['samples']} samples)")
    rows = np.asarray(ei["pass_at_k"])
    for i, row in enumerate(rows[:-1]):
        label = f"expert iteration, rounds 1-{len(rows) - 1}" if i == 0 else None
        ax.plot(k, row, "-", lw=1, alpha=0.5, color=CYCLE[2], label=label)
    ax.plot(
        k, rows[-1], "o-", ms=3, lw=2, color=CYCLE[2], label=f"expert iteration, round {len(rows)}"
    )
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="k",
        ylabel="pass@k",
        title="(a) the barrier: GRPO stalls, search crosses",
    )
    ax.legend(loc="lower right")

    ax = axes[1]
    rounds = np.asarray(ei["round"])
    ax.bar(rounds - 0.2, ei["gained"], width=0.4, color=CYCLE[2], label="gained")
    ax.bar(rounds + 0.2, ei["lost"], width=0.4, color=CYCLE[3], label="lost")
    ax.set(
        xlabel="expert-iteration round (its search's generated tokens)",
        ylabel="behaviors",
        xticks=rounds,
        xticklabels=[f"{r}\n{int(t)} tokens" for r, t in zip(rounds, ei["tokens"], strict=True)],
        title=f"(b) accessible support at N = {result['config']['budget']}: "
        f"gained, lost\n(base: {result['accessible_before']} accessible; GRPO: "
        f"+{gr['gained']}, −{gr['lost']})",
    )
    ax.legend(loc="upper left")

    ax = axes[2]
    tokens = np.concatenate([[0], np.cumsum(ei["tokens"])])
    mass = np.concatenate(
        [[result["success_mass"]["base"]], result["success_mass"]["expert_iteration"]]
    )
    ax.plot(tokens, mass, "o-", color=CYCLE[2], label="expert iteration")
    ax.plot(
        [0, gr["tokens"]],
        [result["success_mass"]["grpo"]] * 2,
        "--",
        color=CYCLE[1],
        lw=2,
        label=f"GRPO: {gr['steps']} steps, all groups without signal",
    )
    ax.axhline(result["access_threshold"], color="k", ls=":", lw=1, label="accessible at N")
    ax.set(
        yscale="log",
        xlabel="generated tokens",
        ylabel="success mass p(accepted)",
        title=rf"(c) GRPO: P(any success) $\leq$ {gr['success_seen_bound']:.1e}",
    )
    ax.legend(loc="center right", fontsize=8)
    fig.tight_layout()
    return fig
