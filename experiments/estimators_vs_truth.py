"""Estimators vs truth: the sample-based estimators of ``freeenergy.empirical`` on data simulated
from exact models, against the exact quantities.

Prompts get success probabilities from a Beta law; the trained model is either one sharpening
exponent shared by every prompt (``q = p^γ / (p^γ + (1-p)^γ)``, the shared-parameter policy that
wins pass@1 and loses pass@k at large k) or the exact per-prompt Gibbs tilt by the verifier
reward (``q = p e^{1/β} / (1 - p + p e^{1/β})``, which can lift prompts across the reachability
threshold: creation at a finite budget). Each model draws ``n`` samples per prompt
(``freeenergy.empirical.simulate``), and every estimate is set against the truth the library
computes from the probabilities themselves:

(a) pooled pass@k with its bootstrap band over prompts, against the exact mean
    ``1 − (1 − p_i)^k`` (``fe.reach_probability``), for the base and the sharpened model, with
    the estimated crossover;
(b) coverage of the bootstrap intervals (pooled pass@k and the paired trained − base
    difference) and of the Wilson score band of pooled pass@k against the nominal level, over
    replicate data sets whose prompts are drawn from a fixed finite population, whose exact
    mean is the estimand;
(c) the per-prompt verdicts of ``em.diagnose`` against the exact verdicts (reachability by
    ``fe.accessible_support``) as the number of samples grows, at a fixed budget.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import freeenergy as fe
from freeenergy import empirical as em
from freeenergy.empirical import simulate

CONFIG = {
    "seed": 0,
    # (a) and (b): a Beta law of prompt difficulty and one shared sharpening exponent
    "num_prompts": 200,
    "beta_a": 1.5,
    "beta_b": 0.6,
    "exponent": 2.0,
    "num_samples": 64,
    "ks": [1, 2, 4, 8, 16, 32, 64],
    "num_bootstrap": 1000,
    "level": 0.95,
    # (b) replicate data sets of `coverage_prompts` prompts drawn from the (a) population
    "coverage_replicates": 100,
    "coverage_prompts": 100,
    "coverage_samples": 16,
    "coverage_ks": [1, 16],
    "coverage_levels": [0.5, 0.8, 0.95],
    "coverage_bootstrap": 250,
    # (c) verdicts of the per-prompt tilt at a fixed budget as n grows
    "verdict_prompts": 200,
    "verdict_beta_a": 0.3,
    "verdict_beta_b": 3.0,
    "tilt_beta": 0.5,
    "budget": 32,
    "confidence": 0.5,
    "verdict_samples": [8, 32, 128, 512, 2048, 8192],
    "verdict_replicates": 2,
}

TINY = {
    "num_prompts": 30,
    "num_samples": 16,
    "ks": [1, 4, 16],
    "num_bootstrap": 200,
    "coverage_replicates": 20,
    "coverage_prompts": 30,
    "coverage_samples": 8,
    "coverage_ks": [1, 8],
    "coverage_levels": [0.8, 0.95],
    "coverage_bootstrap": 100,
    "verdict_prompts": 30,
    "verdict_samples": [8, 128, 2048],
    "verdict_replicates": 2,
}


def exact_pass_at_k(p: np.ndarray, ks) -> np.ndarray:
    """``(P, K)`` exact pass@k ``1 − (1 − p_i)^k`` of each prompt (``fe.reach_probability``)."""
    with np.errstate(divide="ignore"):
        logp = jnp.asarray(np.log(np.asarray(p, dtype=np.float64)))
    ks = jnp.asarray(np.asarray(ks, dtype=np.float64))
    return np.asarray(fe.reach_probability(logp[:, None], ks[None, :]))


def _curves(config: dict, key: jax.Array, p_base: np.ndarray, p_trained: np.ndarray) -> dict:
    ks = np.asarray(config["ks"], dtype=np.int64)
    key_sim, key_base, key_trained, key_cross = jax.random.split(key, 4)
    sim = simulate.flat(key_sim, p_base, p_trained, int(config["num_samples"]))
    nb, level = int(config["num_bootstrap"]), float(config["level"])
    out = {"k": ks, "correct_base": sim.base.correct, "correct_trained": sim.trained.correct}
    for name, counts, k in (("base", sim.base, key_base), ("trained", sim.trained, key_trained)):
        curve = em.pass_at_k_curve(counts, ks, num_bootstrap=nb, key=k, level=level)
        out[name] = {
            "mean": np.asarray(curve.mean),
            "low": np.asarray(curve.low),
            "high": np.asarray(curve.high),
        }
    out["exact_base"] = exact_pass_at_k(p_base, ks).mean(0)
    out["exact_trained"] = exact_pass_at_k(p_trained, ks).mean(0)
    cross = em.crossover(sim.base, sim.trained, ks, num_bootstrap=nb, key=key_cross, level=level)
    # the exact curves' crossover on the same grid, by the definition of `em.crossover`
    b, t = out["exact_base"], out["exact_trained"]
    later = np.flatnonzero(b[1:] >= t[1:])
    out["exact_crossover"] = int(ks[1 + later[0]]) if t[0] > b[0] and later.size else None
    out["crossover"] = {
        "k": cross.k,
        "low": cross.low,
        "high": cross.high,
        "probability": cross.probability,
    }
    return out


def _coverage(config: dict, key: jax.Array, p_base: np.ndarray, p_trained: np.ndarray) -> dict:
    ks = np.asarray(config["coverage_ks"], dtype=np.int64)
    levels = np.asarray(config["coverage_levels"], dtype=np.float64)
    reps, num, n = (
        int(config[k]) for k in ("coverage_replicates", "coverage_prompts", "coverage_samples")
    )
    nb = int(config["coverage_bootstrap"])
    truth_base = exact_pass_at_k(p_base, ks).mean(0)
    truth_diff = exact_pass_at_k(p_trained, ks).mean(0) - truth_base
    hit_base = np.zeros((levels.size, ks.size), np.int64)
    hit_diff = np.zeros((levels.size, ks.size), np.int64)
    hit_wilson = np.zeros((levels.size, ks.size), np.int64)
    for key_r in jax.random.split(key, reps):
        key_draw, key_sim, key_boot = jax.random.split(key_r, 3)
        idx = np.asarray(jax.random.randint(key_draw, (num,), 0, p_base.size))
        sim = simulate.flat(key_sim, p_base[idx], p_trained[idx], n)
        for j, level in enumerate(levels):
            c = em.pass_at_k_curve(sim.base, ks, num_bootstrap=nb, key=key_boot, level=level)
            d = em.paired_difference(
                sim.base, sim.trained, ks, num_bootstrap=nb, key=key_boot, level=level
            )
            hit_base[j] += (np.asarray(c.low) <= truth_base) & (truth_base <= np.asarray(c.high))
            hit_diff[j] += (np.asarray(d.low) <= truth_diff) & (truth_diff <= np.asarray(d.high))
            w = em.pass_at_k_curve(sim.base, ks, level=level, interval="wilson")
            hit_wilson[j] += (np.asarray(w.low) <= truth_base) & (truth_base <= np.asarray(w.high))
    return {
        "k": ks,
        "levels": levels,
        "replicates": reps,
        "truth_base": truth_base,
        "truth_difference": truth_diff,
        "covered_base": hit_base,
        "covered_difference": hit_diff,
        "covered_wilson": hit_wilson,
        "coverage_base": hit_base / reps,
        "coverage_difference": hit_diff / reps,
        "coverage_wilson": hit_wilson / reps,
        # the Monte-Carlo standard error of a coverage estimate at the nominal level
        "standard_error": np.sqrt(levels * (1 - levels) / reps),
    }


def _verdicts(config: dict, key: jax.Array, p_base: np.ndarray, p_trained: np.ndarray) -> dict:
    budget, conf = int(config["budget"]), float(config["confidence"])
    level = float(config["level"])
    truth = simulate.true_verdicts(p_base, p_trained, budget, conf)
    grid = np.asarray(config["verdict_samples"], dtype=np.int64)
    reps = int(config["verdict_replicates"])
    wrong = np.zeros((grid.size, reps))
    undetermined = np.zeros((grid.size, reps))
    created = np.zeros((grid.size, reps))
    for i, n in enumerate(grid):
        for r, key_r in enumerate(jax.random.split(jax.random.fold_in(key, int(n)), reps)):
            sim = simulate.flat(key_r, p_base, p_trained, int(n))
            d = em.diagnose(sim.base, sim.trained, budget, conf, level)
            v = np.asarray(d.verdict)
            undetermined[i, r] = np.mean(v == "undetermined")
            wrong[i, r] = np.mean((v != "undetermined") & (v != truth))
            created[i, r] = d.created_fraction
    return {
        "num_samples": grid,
        "budget": budget,
        "threshold": float(em.reach_threshold(budget, conf)),
        "true_counts": {v: int(np.sum(truth == v)) for v in em.VERDICTS},
        "true_created_fraction": float(np.mean(truth == "creation")),
        "wrong": wrong.mean(1),
        "undetermined": undetermined.mean(1),
        "error": (wrong + undetermined).mean(1),
        "created_fraction": created.mean(1),
    }


def run(config: dict, key: jax.Array) -> dict:
    key_p, key_a, key_b, key_vp, key_c = jax.random.split(key, 5)
    p_base = simulate.beta_prompts(
        key_p, int(config["num_prompts"]), config["beta_a"], config["beta_b"]
    )
    p_trained = simulate.sharpen_success(p_base, config["exponent"])
    v_base = simulate.beta_prompts(
        key_vp, int(config["verdict_prompts"]), config["verdict_beta_a"], config["verdict_beta_b"]
    )
    v_trained = simulate.tilt_success(v_base, config["tilt_beta"])
    return {
        "config": {
            **config,
            "p_base": p_base,
            "p_trained": p_trained,
            "verdict_p_base": v_base,
            "verdict_p_trained": v_trained,
        },
        "curves": _curves(config, key_a, p_base, p_trained),
        "coverage": _coverage(config, key_b, p_base, p_trained),
        "verdicts": _verdicts(config, key_c, v_base, v_trained),
    }


def plot(result: dict):
    from freeenergy.plotting import CYCLE, figure

    fig, axes = figure(1, 3, width=4.6, height=3.7)

    ax = axes[0]
    cv = result["curves"]
    k = np.asarray(cv["k"], dtype=float)
    for name, color, label in (("base", "k", "base"), ("trained", CYCLE[1], "shared sharpening")):
        ax.fill_between(k, cv[name]["low"], cv[name]["high"], color=color, alpha=0.15, lw=0)
        ax.plot(k, cv[name]["mean"], "o", ms=3, color=color, label=f"{label}: estimate")
        ax.plot(k, cv[f"exact_{name}"], "-", lw=1.5, color=color, label=f"{label}: exact")
    if cv["crossover"]["k"] is not None:
        ax.axvline(cv["crossover"]["k"], color=CYCLE[2], ls=":", lw=1.2, label="est. crossover")
    ax.set(
        xscale="log",
        xlabel="k",
        ylabel="mean pass@k over prompts",
        title=f"(a) pass@k, {len(result['config']['p_base'])} prompts × "
        f"{result['config']['num_samples']} samples",
    )
    ax.legend(fontsize=7.5, loc="lower right")

    ax = axes[1]
    cov = result["coverage"]
    levels = np.asarray(cov["levels"])
    se = np.asarray(cov["standard_error"])
    ax.fill_between(levels, levels - 2 * se, levels + 2 * se, color="0.85", lw=0, label="±2 s.e.")
    ax.plot([levels.min(), levels.max()], [levels.min(), levels.max()], "k:", lw=1)
    markers = ["o", "s", "^", "D"]
    for j, kk in enumerate(cov["k"]):
        ax.plot(
            levels,
            np.asarray(cov["coverage_base"])[:, j],
            markers[j % 4] + "-",
            ms=4,
            color=CYCLE[0],
            alpha=1.0 - 0.35 * j,
            label=f"pass@{kk}",
        )
        ax.plot(
            levels,
            np.asarray(cov["coverage_difference"])[:, j],
            markers[j % 4] + "--",
            ms=4,
            color=CYCLE[1],
            alpha=1.0 - 0.35 * j,
            label=f"Δ pass@{kk} (paired)",
        )
        ax.plot(
            levels,
            np.asarray(cov["coverage_wilson"])[:, j],
            markers[j % 4] + ":",
            ms=4,
            color=CYCLE[2],
            alpha=1.0 - 0.35 * j,
            label=f"pass@{kk}, Wilson",
        )
    ax.set(
        xlabel="nominal level",
        ylabel="coverage",
        title=f"(b) interval coverage, {cov['replicates']} data sets",
    )
    ax.legend(fontsize=7.5, loc="upper left")

    ax = axes[2]
    vd = result["verdicts"]
    n = np.asarray(vd["num_samples"], dtype=float)
    ax.plot(n, vd["error"], "o-", color="k", label="not the exact verdict")
    ax.plot(n, vd["undetermined"], "s--", color=CYCLE[0], ms=4, label="undetermined")
    ax.plot(n, vd["wrong"], "^--", color=CYCLE[1], ms=4, label="decided and wrong")
    ax.set(
        xscale="log",
        xlabel="samples per prompt n",
        ylabel="fraction of prompts",
        ylim=(-0.02, 1.02),
        title=f"(c) verdicts at budget {vd['budget']}",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
