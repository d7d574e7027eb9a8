"""A tool turns a barrier into a tail; new information turns a singular target into a tail; costs.

Strings of ``length`` tokens; the target answer repeats a two-token ``motif``.

* **Tool** (``expand.macro``): the base emits tokens i.i.d. (``token_probs``) and the target is a
  barrier at budget ``N``. Augmented with a macro that writes the motif, called with probability
  ``π`` wherever it fits (``expand.augment``), the generator's outputs mapped back to the original
  strings (``expand.tool_distribution``) put the target in the accessible support once ``π`` is
  large enough — the tail — with no training at all. The sweep over ``π`` is exact.
* **New information** (``expand.new_information``): a base that never emits the motif's second
  token (``info_token_probs``) makes the target singular — no reweighting reaches it (KL = ∞).
  Mixing in a teacher that writes the motif (an order-1 Markov chain that alternates the motif's
  tokens with probability ``teacher_stay``) at weight ``w`` changes the reference's support; the
  target becomes an ordinary tilt target, accessible for ``w`` large enough.
* **Costs side by side** for the barrier target: the KL of the cheapest reweighting that makes it
  accessible (docs/theory.md T6) and the samples on-policy training needs to see it once; best-of-n
  with an outcome verifier; tree search with the process check (``expand.tree_search``);
  retrying with feedback (``expand.retry``); the tool — in KL to the base, complete samples,
  verifier calls and generated tokens. For the singular target: reweighting (∞) against the
  mixture (the forgetting KL(p0 || p1), finite, and the KL then needed to make it accessible).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

import freeenergy as fe
from freeenergy import expand
from freeenergy import sequences as sq

CONFIG = {
    "seed": 0,
    "length": 8,
    "token_probs": [0.4, 0.3, 0.2, 0.1],
    "motif": [2, 3],
    "call_probs": {"start": -3.0, "stop": -0.3, "num": 25},
    "call_prob": 0.02,
    "budget": 1_000_000,
    "confidence": 0.5,
    "turns": 40,
    "info_token_probs": [0.45, 0.35, 0.2, 0.0],
    "teacher_stay": 0.9,
    "weights": {"start": -7.0, "stop": -1.0, "num": 13},
    "weight": 3e-5,
}

TINY = {
    "length": 6,
    "budget": 10_000,
    "call_probs": {"start": -3.0, "stop": -0.3, "num": 8},
    "call_prob": 0.05,
    "turns": 30,
    "weights": {"start": -7.0, "stop": -1.0, "num": 5},
    "weight": 1e-3,
}

MECHANISMS = ("reweighting", "best-of-n", "tree search", "retry", "tool")


def _grid(spec: dict) -> np.ndarray:
    return np.logspace(float(spec["start"]), float(spec["stop"]), int(spec["num"]))


def _teacher(vocab: int, length: int, motif: list[int], stay: float) -> sq.SequenceModel:
    """An order-1 chain that alternates the motif's tokens: after motif[i] it emits
    motif[(i + 1) % 2] with probability ``stay``; elsewhere (and at the start) uniformly."""
    table = np.full((vocab, vocab), 1.0 / vocab)
    a, b = motif
    for cur, nxt in ((a, b), (b, a)):
        table[cur] = (1.0 - stay) / (vocab - 1)
        table[cur, nxt] = stay
    return sq.markov(jnp.log(jnp.asarray(table)), length, [vocab - 1 if b != vocab - 1 else 0])


def _reach(p: float, n: float) -> float:
    return -math.expm1(n * math.log1p(-p)) if p < 1 else 1.0


def run(config: dict, key: jax.Array) -> dict:
    del key  # deterministic: every number is exact
    length = int(config["length"])
    probs = np.asarray(config["token_probs"], dtype=np.float64)
    vocab = probs.size
    motif = [int(t) for t in config["motif"]]
    target = np.asarray((motif * length)[:length], np.int32)
    n_budget, c = int(config["budget"]), float(config["confidence"])
    threshold = -math.expm1(math.log1p(-c) / n_budget)
    index = int(expand.string_index(target, vocab))
    verifier = sq.exact_match(vocab, target.tolist())

    # ---- the barrier and the tool
    base = sq.iid(jnp.log(jnp.asarray(probs)), length)
    logp0 = np.asarray(sq.enumerate(base))
    p_target = float(np.exp(logp0[index]))
    call_probs = _grid(config["call_probs"])
    mass_tool = np.asarray(
        [
            float(
                jnp.exp(
                    expand.tool_logprob(
                        expand.augment(base, expand.macro(vocab, motif, pi)), target
                    )
                )
            )
            for pi in call_probs
        ]
    )
    pi0 = float(config["call_prob"])
    tool_model = expand.augment(base, expand.macro(vocab, motif, pi0))
    logq_tool = np.asarray(expand.tool_distribution(tool_model))
    regime_before = int(fe.regimes(logp0, n_budget, c)[index])
    regime_tool = int(fe.regimes(logq_tool, n_budget, c)[index])
    diag_tool = fe.diagnose(logp0, logq_tool, n_budget, c)
    p_tool = float(np.exp(logq_tool[index]))
    calls_tool = float(expand.expected_calls(tool_model))
    accept_tool = float(
        jnp.exp(sq.accept_logprob(tool_model.model, expand.lift(verifier, tool_model)))
    )

    # ---- what each mechanism costs on the barrier target
    cost0 = expand.elicitation_cost(logp0, jnp.asarray(np.arange(logp0.size) == index), n_budget, c)
    n_best = math.ceil(math.log1p(-c) / math.log1p(-p_target))  # best-of-n reaching success c
    searched, tree_cost = expand.tree_search(base, verifier)
    kl_tree = float(sq.kl(searched, base))
    retry = expand.retry(base, verifier, int(config["turns"]))
    success_turns = np.asarray(retry.success)
    enough = np.flatnonzero(success_turns >= c)
    stop = int(enough[0]) if enough.size else success_turns.size - 1  # fewest turns reaching c
    # the protocol stopped after stop + 1 turns: accepted earlier attempts, else the last one
    attempts = np.asarray(retry.logp_attempts)
    accepted = np.arange(logp0.size) == index
    absorbed = np.logaddexp.reduce(np.where(accepted, attempts[:stop], -np.inf), axis=0)
    final_retry = np.logaddexp(absorbed, attempts[stop]) if stop else attempts[0]
    kl_retry = float(fe.kl(final_retry, logp0))
    retry_cost = [float(np.asarray(x)[stop]) for x in retry.cost]
    hit = (np.arange(logp0.size) == index).astype(np.float64)  # the outcome verifier's reward
    costs = {
        "mechanism": list(MECHANISMS),
        "kl": [
            float(cost0.kl_to_access),
            float(expand.best_of_n_kl(logp0, hit, n_best)),
            kl_tree,
            kl_retry,
            float(fe.kl(logq_tool, logp0)),
        ],
        # complete strings generated per success (reweighting: samples until the first success,
        # the least on-policy training needs before any signal)
        "samples": [
            1.0 / p_target,
            n_best,
            1.0,
            retry_cost[0],
            1.0 / max(p_tool, 1e-300),
        ],
        "verifier_calls": [
            1.0 / p_target,
            n_best,
            float(tree_cost.verifier_calls),
            retry_cost[2],
            1.0 / p_tool,
        ],
        "tokens": [
            length / p_target,
            n_best * length,
            float(tree_cost.tokens),
            retry_cost[1],
            length / p_tool,
        ],
        "success": [
            float(fe.reach_probability(logp0[index] + 0.0, 1.0 / p_target)),
            float(np.exp(expand.best_of_n(logp0, hit, n_best)[index])),
            1.0,
            float(success_turns[stop]),
            _reach(p_tool, 1.0 / p_tool),
        ],
    }

    # ---- the singular target and new information
    info_probs = np.asarray(config["info_token_probs"], dtype=np.float64)
    with np.errstate(divide="ignore"):
        info_base = sq.iid(jnp.log(jnp.asarray(info_probs)), length)
    logp0_info = np.asarray(sq.enumerate(info_base))
    teacher = _teacher(vocab, length, motif, float(config["teacher_stay"]))
    logp_teacher = np.asarray(sq.enumerate(teacher))
    target_mask = np.arange(logp0_info.size) == index
    w0 = float(config["weight"])
    weights = np.append(_grid(config["weights"]), w0)  # the chosen weight last (one call)
    both = expand.new_information(
        logp0_info, logp_teacher, weights, jnp.asarray(target_mask), n_budget, c
    )
    info = jax.tree_util.tree_map(lambda x: x[:-1], both)
    info0 = jax.tree_util.tree_map(lambda x: x[-1], both)
    weights = weights[:-1]
    logp1 = np.asarray(info0.logp_reference)
    return {
        "config": {
            **config,
            "target": target,
            "target_index": index,
            "threshold": threshold,
            "logp0": logp0,
            "logp0_singular_base": logp0_info,
            "logp_teacher": logp_teacher,
        },
        "tool": {
            "call_prob": call_probs,
            "target_mass": mass_tool,
            "accessible": mass_tool >= threshold,
            "base_mass": p_target,
            "chosen_call_prob": pi0,
            "chosen_mass": p_tool,
            "regime_before": fe.Regime(regime_before).name.lower(),
            "regime_after": fe.Regime(regime_tool).name.lower(),
            "verdict": diag_tool.verdict,
            "gained": int(diag_tool.gained),
            "lost": int(diag_tool.lost),
            "kl_to_base": float(diag_tool.kl),
            "expected_calls": calls_tool,
            "accept_probability": accept_tool,
        },
        "information": {
            "weight": weights,
            "target_mass": np.exp(np.asarray(info.after.log_mass)),
            "kl_to_target_before": float(info0.before.kl_to_target),
            "kl_to_target_after": np.asarray(info.after.kl_to_target),
            "kl_to_access_after": np.asarray(info.after.kl_to_access),
            "kl_forgetting": np.asarray(info.kl_forgetting),
            "status_before": info0.before.status,
            "status_after": info.after.status,
            "chosen_weight": w0,
            "chosen_mass": float(np.exp(logp1[index])),
            "chosen_kl_forgetting": float(info0.kl_forgetting),
            "chosen_kl_to_access": float(info0.after.kl_to_access),
            "chosen_regime": fe.Regime(int(fe.regimes(logp1, n_budget, c)[index])).name.lower(),
            "verdict_of_mixing": info0.step.verdict,
            "teacher_mass": float(np.exp(logp_teacher[index])),
        },
        "retry_success": success_turns,
        "turns_needed": stop + 1 if enough.size else None,  # None: not within `turns`
        "costs": costs,
    }


def plot(result: dict):
    from freeenergy.plotting import CYCLE, REGIME_COLORS, figure

    cfg = result["config"]
    thr = cfg["threshold"]
    fig, axes = figure(1, 4, width=4.0, height=3.8)

    ax = axes[0]
    t = result["tool"]
    pis = np.asarray(t["call_prob"])
    mass = np.asarray(t["target_mass"])
    acc = np.asarray(t["accessible"], bool)
    ax.plot(pis, mass, "-", color="0.5", lw=1)
    ax.plot(
        pis[~acc], mass[~acc], "o", ms=4, color=REGIME_COLORS[fe.Regime.BARRIER], label="barrier"
    )
    ax.plot(pis[acc], mass[acc], "o", ms=4, color=REGIME_COLORS[fe.Regime.TAIL], label="accessible")
    ax.axhline(thr, color="k", ls=":", lw=1, label=f"accessible at N = {cfg['budget']}")
    ax.axhline(t["base_mass"], color="k", ls="--", lw=1, label="base (no tool)")
    ax.plot(
        [t["chosen_call_prob"]],
        [t["chosen_mass"]],
        "*",
        ms=11,
        color=CYCLE[0],
        label=f"π = {t['chosen_call_prob']:g}: {t['regime_after']}",
    )
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="tool calling probability π",
        ylabel="target mass (outputs mapped back)",
        title="(a) a macro turns a barrier into a tail",
    )
    ax.legend(fontsize=7.5, loc="upper left")

    ax = axes[1]
    info = result["information"]
    w = np.asarray(info["weight"])
    mass = np.asarray(info["target_mass"])
    acc = np.asarray(info["status_after"]) == "accessible"
    ax.plot(w, mass, "-", color="0.5", lw=1)
    ax.plot(w[~acc], mass[~acc], "o", ms=4, color=REGIME_COLORS[fe.Regime.BARRIER], label="barrier")
    ax.plot(w[acc], mass[acc], "o", ms=4, color=REGIME_COLORS[fe.Regime.TAIL], label="accessible")
    ax.axhline(thr, color="k", ls=":", lw=1, label=f"accessible at N = {cfg['budget']}")
    ax.plot(
        [info["chosen_weight"]],
        [info["chosen_mass"]],
        "*",
        ms=11,
        color=CYCLE[0],
        label=f"w = {info['chosen_weight']:g}: {info['chosen_regime']}",
    )
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="teacher weight w in the mixture",
        ylabel="target mass (base: 0, singular)",
        title="(b) new information: singular → tail",
    )
    ax.legend(fontsize=7.5, loc="upper left")

    costs = result["costs"]
    names = costs["mechanism"]
    y = np.arange(len(names))
    ax = axes[2]
    for j, (field, label) in enumerate(
        (
            ("samples", "complete samples"),
            ("verifier_calls", "verifier calls"),
            ("tokens", "generated tokens"),
        )
    ):
        ax.barh(y + (j - 1) * 0.27, costs[field], height=0.27, color=CYCLE[j], label=label)
    ax.set(
        xscale="log",
        yticks=y,
        yticklabels=names,
        xlabel="per success",
        title="(c) compute for the barrier target",
    )
    ax.invert_yaxis()
    ax.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3)

    ax = axes[3]
    kls = list(costs["kl"]) + [info["kl_to_target_before"], info["chosen_kl_forgetting"]]
    labels = list(names) + ["reweighting\n(singular)", "mixture\n(singular, forgetting)"]
    finite = np.asarray([k for k in kls if np.isfinite(k)])
    low, top = finite.min() / 3, finite.max() * 30
    yy = np.arange(len(kls))
    for i, k in enumerate(kls):
        color = CYCLE[0] if i < len(names) else CYCLE[2]
        if np.isfinite(k):
            ax.barh(yy[i], k - low, left=low, color=color)
            ax.text(k * 1.2, yy[i], f"{k:.2g}", va="center", fontsize=8)
        else:
            ax.barh(yy[i], top - low, left=low, color="none", edgecolor=CYCLE[3], hatch="//")
            ax.text(top, yy[i], " ∞", va="center", fontsize=12, color=CYCLE[3])
    ax.set(
        xscale="log",
        xlim=(low, top * 3),
        yticks=yy,
        yticklabels=labels,
        xlabel="KL(output || base) [nats]",
        title="(d) what each output costs in KL",
    )
    ax.invert_yaxis()
    fig.tight_layout()
    return fig
