"""Best-of-n as a tilt: exact KL vs log n - (n-1)/n, win rate, and the matched-KL Gibbs tilt.

For one reference ``p0`` and three reward structures on the same behaviors — distinct rewards,
a few tied levels, and a binary verifier (the top ``num_correct`` behaviors are correct) — this
computes, for every ``n = 1 .. n_max``, the exact best-of-``n`` distribution
(``freeenergy.expand.best_of_n``), its KL to ``p0`` against the common formula
``log n - (n-1)/n`` (an upper bound, strict for ``n >= 2``), its win rate against a base sample
(ties count half) against the continuous-limit ``n/(n+1)``, and, on the reward–KL plane, the
Gibbs tilt with the same KL (``tilt_for_kl``): the KL-optimal policy, which best-of-``n`` matches
exactly for the binary reward (there best-of-``n`` *is* a Gibbs tilt) and trails slightly
otherwise.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import freeenergy as fe
from freeenergy import expand

CONFIG = {
    "seed": 0,
    "num_behaviors": 60,
    "base_scale": 1.5,
    "num_levels": 4,
    "num_correct": 3,
    "n_max": 1000,
    "num_matched": 30,
    "num_betas": 200,
    "log10_beta_range": [-2.5, 2.0],
}

TINY = {"num_behaviors": 12, "n_max": 40, "num_matched": 6, "num_betas": 40}

STRUCTURES = ("distinct", "tied", "binary")


def _inputs(config: dict, key: jax.Array) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The reference and the three rewards (distinct, tied levels, binary) as NumPy arrays."""
    m = int(config["num_behaviors"])
    key_base, key_reward = jax.random.split(key)
    logits = float(config["base_scale"]) * jax.random.normal(key_base, (m,))
    logp0 = np.asarray(fe.normalize(logits))
    distinct = np.asarray(jax.random.normal(key_reward, (m,)))
    rank = np.argsort(np.argsort(distinct))  # 0 = worst
    levels = int(config["num_levels"])
    tied = (rank * levels // m) / (levels - 1)
    binary = (rank >= m - int(config["num_correct"])).astype(np.float64)
    return logp0, {"distinct": distinct, "tied": tied, "binary": binary}


def _bernoulli_kl(t: np.ndarray, p: float) -> np.ndarray:
    """KL(Bern(t) || Bern(p)) with 0 log 0 = 0 (closed form of best-of-n's KL, binary reward)."""
    t = np.asarray(t, dtype=np.float64)
    first = t * np.log(np.where(t > 0, t, 1.0) / p)
    rest = 1.0 - t
    second = rest * np.log(np.where(rest > 0, rest, 1.0) / (1.0 - p))
    return first + second


@jax.jit
def _curves(logp0, reward, ns, matched_n, betas):
    """Every curve of one reward structure, traced once (the public calls skip value checks)."""
    logq = expand.best_of_n(logp0, reward, ns)  # (n_max, m)
    kl = fe.kl(logq, logp0)
    expected = jnp.sum(jnp.exp(logq) * reward, axis=-1)
    win = expand.win_rate(logq, logp0, reward)
    # the Gibbs tilt with the same KL: the best expected reward any policy gets at that KL
    kl_m = kl[matched_n - 1]
    logq_g, beta_g = fe.tilt_for_kl(logp0, reward, kl_m)
    frontier_reward, frontier_kl = fe.frontier(logp0, reward, betas)
    gibbs_reward = jnp.sum(jnp.exp(logq_g) * reward, axis=-1)
    return kl, expected, win, kl_m, gibbs_reward, beta_g, frontier_reward, frontier_kl


def run(config: dict, key: jax.Array) -> dict:
    logp0, rewards = _inputs(config, key)
    n_max = int(config["n_max"])
    ns = np.arange(1, n_max + 1)
    # n = 1 is the base itself on both sides (KL 0), so the matched comparison starts at n = 2
    matched_n = np.round(np.logspace(np.log10(2), np.log10(n_max), int(config["num_matched"])))
    matched_n = np.unique(matched_n).astype(np.int64)
    lo, hi = config["log10_beta_range"]
    betas = np.logspace(hi, lo, int(config["num_betas"]))

    curves = {}
    for name in STRUCTURES:
        out = _curves(jnp.asarray(logp0), jnp.asarray(rewards[name]), ns, matched_n, betas)
        kl, expected, win, kl_m, gibbs_reward, beta_g, frontier_reward, frontier_kl = out
        curves[name] = {
            "kl": kl,
            "expected_reward": expected,
            "win_rate": win,
            "matched": {
                "n": matched_n,
                "kl": kl_m,
                "best_of_n_reward": expected[matched_n - 1],
                "gibbs_reward": gibbs_reward,
                "gibbs_beta": beta_g,
            },
            "frontier": {"beta": betas, "expected_reward": frontier_reward, "kl": frontier_kl},
        }

    correct = rewards["binary"] > 0
    p = float(np.exp(np.logaddexp.reduce(logp0[correct])))
    success = -np.expm1(ns * np.log1p(-p))
    curves["binary"]["closed_form"] = {
        "success_mass": p,
        "best_of_n_success": success,
        "kl": _bernoulli_kl(success, p),
    }
    return {
        "config": {**config, "logp0": logp0, "rewards": rewards},
        "n": ns,
        "kl_bound": np.log(ns) - (ns - 1.0) / ns,  # the common formula (an upper bound)
        "win_rate_continuous": ns / (ns + 1.0),
        "structures": curves,
    }


def plot(result: dict):
    from freeenergy.plotting import CYCLE, figure

    n = np.asarray(result["n"], dtype=float)
    s = result["structures"]
    colors = dict(zip(STRUCTURES, CYCLE, strict=False))
    labels = {"distinct": "distinct rewards", "tied": "tied levels", "binary": "binary verifier"}
    fig, axes = figure(2, 3, width=4.6, height=3.6)

    ax = axes[0]
    ax.plot(n, result["kl_bound"], "k--", label=r"$\log n - (n-1)/n$")
    for name in STRUCTURES:
        ax.plot(n, s[name]["kl"], color=colors[name], label=labels[name])
    p = s["binary"]["closed_form"]["success_mass"]
    ax.axhline(-np.log(p), color=colors["binary"], ls=":", lw=1, label=r"$-\log p$ (binary limit)")
    ax.set(
        xscale="log",
        xlabel="n",
        ylabel=r"KL$(q_n \| p_0)$ [nats]",
        title="(a) exact KL: the formula is only an upper bound",
    )
    ax.legend(loc="upper left")

    ax = axes[1]
    ax.plot(n, result["win_rate_continuous"], "k--", label=r"$n/(n+1)$ (continuous limit)")
    for name in STRUCTURES:
        ax.plot(n, s[name]["win_rate"], color=colors[name], label=labels[name])
    ax.set(
        xscale="log",
        xlabel="n",
        ylabel="P(best-of-n beats a base sample)",
        title="(b) win rate vs the base (ties half)",
    )
    ax.legend(loc="lower right")

    ax = axes[2]
    for name in STRUCTURES:
        m = s[name]["matched"]
        gap = np.asarray(m["gibbs_reward"]) - np.asarray(m["best_of_n_reward"])
        ax.plot(m["n"], gap, "o-", ms=3, color=colors[name], label=labels[name])
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set(
        xscale="log",
        xlabel="n",
        ylabel=r"$E_{\rm Gibbs}[r] - E_{q_n}[r]$ at equal KL",
        title="(c) the KL-optimal tilt vs best-of-n",
    )
    ax.legend()

    for ax, name, tag in zip(axes[3:], STRUCTURES, "def", strict=True):
        f = s[name]["frontier"]
        ax.plot(f["kl"], f["expected_reward"], color="0.4", lw=2, label="Gibbs frontier")
        ax.plot(
            s[name]["kl"],
            s[name]["expected_reward"],
            color=colors[name],
            lw=1,
            label=f"best-of-n, n = 1..{int(n[-1])}",
        )
        m = s[name]["matched"]
        ax.plot(m["kl"], m["best_of_n_reward"], "o", ms=4, color=colors[name])
        ax.plot(m["kl"], m["gibbs_reward"], "x", ms=5, color="k", label="Gibbs at matched KL")
        ax.set(
            xlabel=r"KL$(q \| p_0)$ [nats]",
            ylabel=r"$E_q[r]$",
            title=f"({tag}) reward–KL plane: {labels[name]}",
        )
        ax.legend(loc="lower right")
    fig.tight_layout()
    return fig
