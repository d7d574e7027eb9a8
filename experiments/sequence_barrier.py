"""Sequences: a target's base probability decays exponentially with its length (tail -> barrier).

The base is an order-1 Markov chain over ``vocab`` tokens producing strings of ``length`` tokens
(4^64 ≈ 3.4·10^38 strings by default); the target answer is a string drawn from it, and "the
first l tokens are the target's" is the behavior whose elicitation we price, for l = 1..length.
Everything is exact, by dynamic programming over the product of the Markov state and a small
automaton that counts how many leading target tokens have been matched; nothing is enumerated.

* **tail -> barrier**: log p0(target[:l]) falls linearly in l, so the target crosses from
  accessible to barrier at the budget threshold p0 = 1 - (1 - c)^(1/N) (docs/theory.md §2);
* **exact tilts beyond enumeration**: the KL of the Gibbs tilt that raises the target to half the
  mass, from the DP, against the Bernoulli divergence d(1/2 || p0) of docs/theory.md T6;
* **token-level vs sequence-level reward at the same KL**: a dense per-token reward (fraction of
  target tokens matched) against the verifier's sequence-level reward (all matched), each tilted
  to the same KL budgets: the sequence-level tilt puts the most mass on the exact target
  (T6 says it is the cheapest way to), the token-level tilt raises per-token accuracy more.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

import freeenergy as fe
from freeenergy import plotting
from freeenergy import sequences as sq

CONFIG = {
    "seed": 0,
    "vocab": 4,
    "length": 64,
    "context": [0],
    "budgets": [100, 10_000, 1_000_000],
    "confidence": 0.5,
    "elicit_mass": 0.5,
    "compare_length": 16,
    "compare_budget": 10_000,
    "kl_fractions": {"start": -5.5, "stop": -0.02, "num": 10},
}

TINY = {
    "length": 16,
    "compare_length": 6,
    "budgets": [100, 10_000],
    "kl_fractions": {"start": -4.0, "stop": -0.05, "num": 4},
}


def base_model(logp_table: np.ndarray, length: int, context: list[int]) -> sq.SequenceModel:
    """The order-1 Markov base: p(y_t | y_{t-1}) = exp(logp_table[y_{t-1}, y_t])."""
    return sq.markov(jnp.asarray(logp_table), length, context)


def match_counter(vocab: int, target: list[int]) -> tuple[sq.Automaton, np.ndarray]:
    """An automaton counting the leading tokens that match ``target``, and the count per state.

    States ``j`` (0..m): the first ``j`` tokens matched and nothing has failed yet; states
    ``m + 1 + j`` (0..m-1): the first ``j`` matched, then a mismatch (absorbing). The reward
    ``matched >= l`` of this one automaton is the verifier "starts with target[:l]" for every l.
    """
    m = len(target)
    trans = np.zeros((2 * m + 1, vocab), np.int32)
    for j in range(m):
        trans[j, :] = m + 1 + j
        trans[j, target[j]] = j + 1
        trans[m + 1 + j, :] = m + 1 + j
    trans[m, :] = m
    matched = np.concatenate([np.arange(m + 1), np.arange(m)])
    return sq.automaton(trans, matched == m), matched


def bernoulli_kl(t: float, log_p: float) -> float:
    """d(t || p) = t log(t/p) + (1-t) log((1-t)/(1-p)): the least KL moving a set from p to t
    (docs/theory.md T6), with p = exp(log_p)."""
    out = t * (math.log(t) - log_p)
    if t < 1.0:
        out += (1 - t) * (math.log1p(-t) - math.log1p(-math.exp(log_p)))
    return out


def mass_at_kl(eps: float, log_p: float) -> float:
    """log t of the largest mass t >= p with d(t || p) <= eps (the T6 frontier), by bisection
    on log t (d is increasing in t on [p, 1], where it reaches -log p)."""
    if eps >= -log_p:
        return 0.0
    lo, hi = log_p, 0.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if bernoulli_kl(math.exp(mid), log_p) < eps:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def run(config: dict, key: jax.Array) -> dict:
    vocab, length = int(config["vocab"]), int(config["length"])
    key_base, key_target = jax.random.split(key)
    # rows uniform on the simplex (Dirichlet(1, ..., 1)): normalized Exp(1) variables
    weights = np.asarray(jax.random.exponential(key_base, (vocab, vocab)), np.float64)
    logp_table = np.log(weights / weights.sum(axis=1, keepdims=True))
    base = base_model(logp_table, length, config["context"])
    target = [int(v) for v in np.asarray(sq.sample(key_target, base, 1))[0]]
    counter, matched = match_counter(vocab, target)
    lengths = np.arange(1, length + 1)

    def on_prefix(ell: int) -> np.ndarray:
        """Terminal energy of the indicator "starts with target[:ell]": 0 on it, +inf off."""
        return np.where(matched >= ell, 0.0, np.inf)

    def reward_prefix(ell: int) -> np.ndarray:
        return (matched >= ell).astype(np.float64)

    # ---------------------------------------------------------------- tail -> barrier
    log_p = np.array(
        [float(sq.log_partition(base, counter, 1.0, energy=on_prefix(ell))) for ell in lengths]
    )
    c = float(config["confidence"])
    thresholds, crossing = {}, {}
    for budget in config["budgets"]:
        thr = -math.expm1(math.log1p(-c) / budget)  # 1 - (1 - c)^(1/N)
        thresholds[str(budget)] = thr
        below = np.flatnonzero(log_p < math.log(thr))
        crossing[str(budget)] = int(lengths[below[0]]) if below.size else None

    # ---------------------------------------------------------------- exact tilts to mass t
    t = float(config["elicit_mass"])
    elicit = {
        "length": [],
        "beta": [],
        "log_partition": [],
        "kl": [],
        "kl_bernoulli": [],
        "kl_all_mass": [],
    }
    for ell, lp in zip(lengths, log_p, strict=True):
        if lp >= math.log(t):
            continue  # already at mass >= t: nothing to elicit
        lam = (math.log(t) - math.log1p(-t)) - (lp - math.log1p(-math.exp(lp)))
        beta = 1.0 / lam
        tilted = sq.tilt(base, counter, beta, reward=reward_prefix(ell))
        elicit["length"].append(int(ell))
        elicit["beta"].append(beta)
        elicit["log_partition"].append(
            float(sq.log_partition(base, counter, beta, reward=reward_prefix(ell)))
        )
        elicit["kl"].append(float(sq.kl(tilted, base)))
        elicit["kl_bernoulli"].append(bernoulli_kl(t, lp))
        elicit["kl_all_mass"].append(-lp)

    # ---------------------------------------------------------------- token vs sequence reward
    ell = int(config["compare_length"])
    log_p_ell = float(log_p[ell - 1])
    step_reward = np.zeros((length, vocab))
    step_reward[np.arange(ell), target[:ell]] = 1.0 / ell  # fraction of target tokens matched
    g = config["kl_fractions"]  # KL budgets as fractions of -log p0(target), the limit's KL
    kls = np.logspace(g["start"], g["stop"], g["num"]) * (-log_p_ell)
    compare = {"kl_budget": kls.tolist()}
    # Both rewards are exactly 1 on the target set S (all l tokens matched) and below 1 off it,
    # so for either tilt q(S) = p0(S) e^{1/beta} / Z_beta: two exact DP outputs.
    rewards = {
        "sequence": {"reward": reward_prefix(ell)},
        "token": {"reward": np.zeros(len(matched)), "step_energy": -step_reward},
    }
    for name, kwargs in rewards.items():
        out = {
            "beta": [],
            "kl": [],
            "log_partition": [],
            "log_target_mass": [],
            "token_accuracy": [],
        }
        for eps in kls:
            tilted, beta = sq.tilt_for_kl(base, counter, float(eps), **kwargs)
            log_z = float(sq.log_partition(base, counter, beta, **kwargs))
            out["beta"].append(float(beta))
            out["kl"].append(float(sq.kl(tilted, base)))
            out["log_partition"].append(log_z)
            out["log_target_mass"].append(log_p_ell + 1.0 / float(beta) - log_z)
            out["token_accuracy"].append(
                -float(sq.expected_energy(tilted, None, step_energy=-step_reward))
            )
        compare[name] = out
    compare["log_target_mass_frontier"] = [mass_at_kl(float(e), log_p_ell) for e in kls]
    compare["base_token_accuracy"] = -float(
        sq.expected_energy(base, None, step_energy=-step_reward)
    )
    budget = int(config["compare_budget"])
    compare["threshold"] = -math.expm1(math.log1p(-c) / budget)

    return {
        "config": {**config, "logp_table": logp_table, "target": target},
        "num_strings": float(vocab) ** length,
        "lengths": lengths,
        "log_p_target": log_p,
        "thresholds": thresholds,
        "crossing_length": crossing,
        "elicit": elicit,
        "compare": compare,
    }


def plot(result: dict):
    cfg = result["config"]
    fig, axes = plotting.figure(2, 2, width=5.2, height=3.8)
    lengths = np.asarray(result["lengths"])
    log10_p = np.asarray(result["log_p_target"]) / math.log(10)
    space = f"{cfg['vocab']}^{cfg['length']} ≈ {result['num_strings']:.2g} strings"

    ax = axes[0]
    budgets = cfg["budgets"]
    top = str(budgets[-1])
    accessible = log10_p >= math.log10(result["thresholds"][top])
    ax.scatter(
        lengths[accessible],
        log10_p[accessible],
        s=12,
        color=plotting.REGIME_COLORS[fe.Regime.TAIL],
        label=f"accessible at N = {int(top):.0e}",
    )
    ax.scatter(
        lengths[~accessible],
        log10_p[~accessible],
        s=12,
        color=plotting.REGIME_COLORS[fe.Regime.BARRIER],
        label=f"barrier at N = {int(top):.0e}",
    )
    for i, b in enumerate(budgets):
        thr = math.log10(result["thresholds"][str(b)])
        cross = result["crossing_length"][str(b)]
        ax.axhline(
            thr,
            color=plotting.CYCLE[i],
            ls="--",
            lw=1,
            label=f"1-(1-c)^(1/N), N = {int(b):.0e}: barrier from l = {cross}",
        )
    ax.set_xlabel("target length l (tokens that must match)")
    ax.set_ylabel("log10 p0(target[:l])")
    ax.set_title("tail -> barrier: base probability decays exponentially")
    ax.legend(fontsize=7, loc="lower left")

    ax = axes[1]
    el = result["elicit"]
    ax.plot(
        el["length"],
        el["kl"],
        "o",
        ms=4,
        color=plotting.CYCLE[0],
        label="KL(q||p0) of the exact tilt (DP)",
    )
    ax.plot(
        el["length"],
        el["kl_bernoulli"],
        "-",
        color=plotting.CYCLE[1],
        label=f"T6: d({cfg['elicit_mass']:g} || p0) (closed form)",
    )
    ax.plot(
        el["length"],
        el["kl_all_mass"],
        ":",
        color=plotting.CYCLE[2],
        label="-log p0(target): all the mass",
    )
    ax.set_xlabel("target length l")
    ax.set_ylabel("KL (nats)")
    ax.set_title(f"cost to raise the target to mass {cfg['elicit_mass']:g}\n(exact, over {space})")
    ax.legend(fontsize=7)

    comp = result["compare"]
    kls = np.asarray(comp["kl_budget"])
    ell = cfg["compare_length"]
    ax = axes[2]
    for i, name in enumerate(["sequence", "token"]):
        label = {
            "sequence": "sequence-level reward 1[all l matched]",
            "token": "token-level reward (fraction matched)",
        }[name]
        ax.plot(
            comp[name]["kl"],
            np.asarray(comp[name]["log_target_mass"]) / math.log(10),
            "o-",
            ms=4,
            color=plotting.CYCLE[i],
            label=label,
        )
    ax.plot(
        kls,
        np.asarray(comp["log_target_mass_frontier"]) / math.log(10),
        ":",
        color="k",
        lw=1,
        label="T6 frontier: largest mass at this KL",
    )
    ax.axhline(
        math.log10(comp["threshold"]),
        color=plotting.REGIME_COLORS[fe.Regime.BARRIER],
        ls="--",
        lw=1,
        label=f"accessible above: 1-(1-c)^(1/N), N = {int(cfg['compare_budget']):.0e}",
    )
    ax.set_xscale("log")
    ax.set_xlabel("KL(q || p0) budget (nats)")
    ax.set_ylabel(f"log10 q(target[:{ell}])")
    ax.set_title(f"same KL, two rewards: mass on the exact target (l = {ell})")
    ax.legend(fontsize=7)

    ax = axes[3]
    for i, name in enumerate(["sequence", "token"]):
        ax.plot(
            comp[name]["kl"],
            comp[name]["token_accuracy"],
            "o-",
            ms=4,
            color=plotting.CYCLE[i],
            label=f"{name}-level tilt",
        )
    ax.axhline(comp["base_token_accuracy"], color="grey", ls=":", lw=1, label="base p0")
    ax.set_xscale("log")
    ax.set_xlabel("KL(q || p0) budget (nats)")
    ax.set_ylabel(f"E_q[fraction of the {ell} target tokens matched]")
    ax.set_title("same KL, two rewards: per-token accuracy")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
