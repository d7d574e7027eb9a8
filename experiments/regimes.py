"""The four regimes of a base model over a 1-D behavior landscape, and what eliciting each costs.

A base distribution over ``n`` behaviors on a line: a broad basin, a secondary mode, a long
exponentially decaying tail, and a stretch the base never produces (``p0 = 0``). For a few
sampling budgets each behavior is coloured by its regime (basin / tail / barrier / singular);
the mass of ``p0`` in each regime is traced over budgets; and one target behavior per regime is
priced: the least KL that makes it accessible at the budget, and the least KL that gives it half
the mass (both the Bernoulli divergence of docs/theory.md T6, attained by a Gibbs tilt, and checked
against the tilt's KL).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

import freeenergy as fe
from freeenergy import plotting

CONFIG = {
    "seed": 0,
    "n": 400,
    "budgets": [16, 256, 4096],
    "target_budget": 4096,
    "confidence": 0.5,
    "basin_mass": 0.9,
    "profile_budgets": {"start": 0, "stop": 7, "num": 57},
    "singular_fraction": 0.12,
    "tail_decay": 12.0,
}

TINY = {"n": 60, "budgets": [16, 4096], "profile_budgets": {"start": 0, "stop": 5, "num": 9}}


def landscape(n: int, singular_fraction: float, tail_decay: float) -> np.ndarray:
    """log p0 on x in [0, 1): a basin (mass 0.78), a narrow mode (0.10), an exponential tail
    (0.12, rate ``tail_decay``) from x = 0.45, and ``p0 = 0`` on the last ``singular_fraction``."""
    x = (np.arange(n) + 0.5) / n

    def bump(mu: float, width: float, mass: float) -> np.ndarray:
        return (
            math.log(mass)
            - 0.5 * ((x - mu) / width) ** 2
            - math.log(width * math.sqrt(2.0 * math.pi) * n)
        )

    tail = np.where(x > 0.45, math.log(0.12 * tail_decay / n) - tail_decay * (x - 0.45), -np.inf)
    logits = np.logaddexp(np.logaddexp(bump(0.15, 0.02, 0.78), bump(0.38, 0.012, 0.10)), tail)
    logits[x >= 1.0 - singular_fraction] = -np.inf
    return np.asarray(fe.normalize(jnp.asarray(logits)))


def bernoulli_kl(t: float, p: float) -> float:
    """Least KL raising a set's mass from p to t (docs/theory.md T6): d(t || p)."""
    if p == 0.0:
        return math.inf
    if t <= p:
        return 0.0
    out = t * math.log(t / p)
    if t < 1.0:
        out += (1.0 - t) * math.log((1.0 - t) / (1.0 - p))
    return out


def tilt_to_mass(logp0: jax.Array, target: int, t: float) -> tuple[jax.Array, float]:
    """The Gibbs tilt by the indicator of ``target`` that gives it mass ``t``, and its beta."""
    p = float(jnp.exp(logp0[target]))
    lam = math.log(t / (1.0 - t)) - math.log(p / (1.0 - p))
    energy = -jnp.zeros_like(logp0).at[target].set(1.0)
    return fe.gibbs(logp0, energy, 1.0 / lam), 1.0 / lam


def run(config: dict, key: jax.Array) -> dict:
    del key  # deterministic: no sampling
    logp0 = jnp.asarray(landscape(config["n"], config["singular_fraction"], config["tail_decay"]))
    c, m = config["confidence"], config["basin_mass"]
    codes = {str(b): np.asarray(fe.regimes(logp0, b, c, m)).tolist() for b in config["budgets"]}

    pb = config["profile_budgets"]
    grid = np.logspace(pb["start"], pb["stop"], pb["num"])
    profile = np.asarray(fe.regime_profile(logp0, logp0, grid, c, m))
    counts = np.stack(
        [np.bincount(np.asarray(r), minlength=4) for r in fe.regimes(logp0, grid, c, m)]
    )

    budget = config["target_budget"]
    regime_at = np.asarray(fe.regimes(logp0, budget, c, m))
    threshold = 1.0 - (1.0 - c) ** (1.0 / budget)
    targets = {}
    for regime in fe.Regime:
        members = np.flatnonzero(regime_at == int(regime))
        if members.size == 0:
            continue
        by_mass = members[np.argsort(np.asarray(logp0)[members], kind="stable")]
        y = int(by_mass[by_mass.size // 2])  # the member of median probability
        p = float(np.exp(logp0[y]))
        entry = {
            "index": y,
            "p0": p,
            "kl_accessible": bernoulli_kl(threshold, p),
            "kl_half": bernoulli_kl(0.5, p),
            "kl_all": -math.log(p) if p > 0 else math.inf,
        }
        if 0.0 < p < threshold:
            logq, beta = tilt_to_mass(logp0, y, threshold)
            entry["tilt_beta_accessible"] = beta
            entry["tilt_kl_accessible"] = float(fe.kl(logq, logp0))
            entry["tilt_reach_after"] = float(fe.reach_probability(logq[y : y + 1], budget)[0])
        targets[regime.name.lower()] = entry

    return {
        "config": {**config, "logp0": logp0},
        "threshold": threshold,
        "regimes": codes,
        "profile": {"budgets": grid, "mass": profile, "count": counts},
        "targets": targets,
    }


def plot(result: dict):
    cfg = result["config"]
    logp0 = np.asarray(cfg["logp0"], dtype=float)
    n = len(logp0)
    x = (np.arange(n) + 0.5) / n
    budgets = cfg["budgets"]
    fig, axes = plotting.figure(2, max(3, len(budgets)), width=4.4, height=3.3)

    finite = np.isfinite(logp0)
    floor = np.min(logp0[finite]) - 1.5
    for ax, b in zip(axes, budgets, strict=False):
        codes = np.asarray(result["regimes"][str(b)])
        for regime, color in plotting.REGIME_COLORS.items():
            sel = codes == int(regime)
            ax.scatter(
                x[sel],
                np.where(finite, logp0, floor)[sel],
                color=color,
                s=7,
                lw=0,
                label=regime.name.lower(),
            )
        t = 1.0 - (1.0 - cfg["confidence"]) ** (1.0 / b)
        ax.axhline(math.log(t), color="grey", lw=0.8, ls=":")
        ax.set_title(f"budget N = {b}")
        ax.set_xlabel("behavior (position on the landscape)")
        ax.set_ylabel("log p0  (p0 = 0 drawn at the floor)")
    plotting.regime_legend(axes[0], loc="lower left", fontsize=8)
    for ax in axes[len(budgets) : len(axes) // 2]:
        ax.set_visible(False)

    row = axes[len(axes) // 2 :]
    prof = result["profile"]
    ax = row[0]
    ax.stackplot(
        prof["budgets"],
        np.asarray(prof["mass"]).T,
        colors=[plotting.REGIME_COLORS[r] for r in fe.Regime],
        labels=[r.name.lower() for r in fe.Regime],
    )
    ax.set_xscale("log")
    ax.set_ylim(0, 1)
    ax.set_xlabel("sampling budget N")
    ax.set_ylabel("mass of p0")
    ax.set_title("where p0's mass sits, by budget")

    ax = row[1]
    counts = np.asarray(prof["count"])
    for regime in fe.Regime:
        ax.plot(
            prof["budgets"],
            counts[:, int(regime)],
            color=plotting.REGIME_COLORS[regime],
            lw=2,
            label=regime.name.lower(),
        )
    ax.set_xscale("log")
    ax.set_xlabel("sampling budget N")
    ax.set_ylabel("number of behaviors")
    ax.set_title("accessible support grows with the budget")
    ax.legend(fontsize=8)

    ax = row[2]
    names = list(result["targets"])
    fields = [
        ("kl_accessible", f"make accessible at N={cfg['target_budget']}"),
        ("kl_half", "raise to half the mass"),
        ("kl_all", "put all mass on it"),
    ]
    finite_vals = [
        t[f] for t in result["targets"].values() for f, _ in fields if math.isfinite(t[f])
    ]
    cap = max(finite_vals + [1.0]) * 1.2
    width = 0.27
    pos = np.arange(len(names))
    for j, (field, label) in enumerate(fields):
        vals = [result["targets"][k][field] for k in names]
        bars = ax.bar(
            pos + (j - 1) * width,
            [v if math.isfinite(v) else cap for v in vals],
            width,
            label=label,
            color=plotting.CYCLE[j],
            hatch=None,
        )
        for bar, v in zip(bars, vals, strict=True):
            ax.text(
                bar.get_x() + bar.get_width() / 2,
                bar.get_height(),
                "∞" if not math.isfinite(v) else f"{v:.2g}",
                ha="center",
                va="bottom",
                fontsize=7,
            )
    ax.set_xticks(pos, names)
    ax.set_ylim(0, cap * 1.25)
    ax.set_ylabel("least KL(q || p0)  [nats]")
    ax.set_title("cost of eliciting one target per regime")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig
