"""Phase diagram over (base mass of a target, budget): reweighting, search, or new information.

A family of references: one target behavior with base mass ``p`` and ``num_others`` behaviors
sharing ``1 - p`` in Zipf proportions. For every ``(p, N)`` on a grid the target's regime is read
off ``freeenergy.regimes`` (basin / tail: already accessible, so **reweighting suffices**;
barrier: positive mass but not accessible; singular: ``p = 0``), and the barrier is split by
what a verifier-guided search buys: ``freeenergy.expand.best_of_n`` with a verifier that accepts
only the target, run with ``search_multiple * N`` samples, outputs the target with probability
``1 - (1-p)^(search_multiple*N)``; where that reaches the confidence ``c`` **search** crosses the
barrier, elsewhere it takes more (tools, interaction, more search). At ``p = 0`` only **new
information** works: a mixture with a teacher (``expand.mix``) moves the target to base mass
``w * teacher_success``, marked on the map. The boundaries are the computed regimes; the curves
``p = 1-(1-c)^(1/N)`` and ``p = 1-(1-c)^(1/(s N))`` are drawn over them as a check. A slice at
``N = slice_budget`` prices each mechanism.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import freeenergy as fe
from freeenergy import expand

CONFIG = {
    "seed": 0,
    "log10_mass_range": [-9.0, 0.0],
    "num_mass": 181,
    "log10_budget_range": [0.0, 6.0],
    "num_budget": 121,
    "num_others": 20,
    "zipf_exponent": 1.0,
    "confidence": 0.5,
    "basin_mass": 0.9,
    "search_multiple": 100,
    "teacher_success": 0.5,
    "mixture_weights": [1e-1, 1e-3, 1e-5],
    "slice_budget": 1000,
}

TINY = {"num_mass": 19, "num_budget": 13}

#: Map classes, in the order of the colour map.
REGIONS = ("basin", "tail", "search", "beyond search", "singular")
BASIN, TAIL, SEARCH, BEYOND, SINGULAR = range(5)


def _family(log_mass: np.ndarray, log_zipf: np.ndarray) -> np.ndarray:
    """References ``(len(log_mass), 1 + num_others)``: the target first, then the others."""
    log_mass = np.asarray(log_mass, dtype=np.float64)[:, None]
    with np.errstate(divide="ignore"):
        log_rest = np.log1p(-np.exp(log_mass))  # log(1 - p); -inf at p = 1
    return np.concatenate([log_mass, log_rest + log_zipf[None, :]], axis=1)


def _regions(codes: np.ndarray, search_mass: np.ndarray, confidence: float) -> np.ndarray:
    """Map classes from the target's regime code and the search's output mass on the target."""
    out = np.full(codes.shape, BEYOND, dtype=np.int64)
    out[codes == int(fe.Regime.BASIN)] = BASIN
    out[codes == int(fe.Regime.TAIL)] = TAIL
    out[(codes == int(fe.Regime.BARRIER)) & (search_mass >= confidence)] = SEARCH
    out[codes == int(fe.Regime.SINGULAR)] = SINGULAR
    return out


def _map(logp0: jax.Array, budgets: np.ndarray, config: dict):
    """Regime codes and best-of-(s N) target mass for references ``(..., m)`` x budgets ``(B,)``."""
    c = float(config["confidence"])
    shape = (len(budgets), *logp0.shape)
    grid = jnp.broadcast_to(logp0, shape)
    budget = jnp.asarray(budgets, dtype=grid.dtype).reshape(-1, *([1] * (logp0.ndim - 1)))
    codes = fe.regimes(grid, budget, confidence=c, basin_mass=float(config["basin_mass"]))
    verifier = jnp.zeros(logp0.shape[-1]).at[0].set(1.0)  # accepts the target only
    search_n = int(config["search_multiple"]) * jnp.asarray(budgets)
    logq = expand.best_of_n(grid, verifier, search_n.reshape(budget.shape))
    return np.asarray(codes[..., 0]), np.exp(np.asarray(logq[..., 0]))


def run(config: dict, key: jax.Array) -> dict:
    del key  # deterministic: no sampling
    c = float(config["confidence"])
    s = int(config["search_multiple"])
    k = int(config["num_others"])
    zipf = np.arange(1, k + 1, dtype=np.float64) ** -float(config["zipf_exponent"])
    log_zipf = np.log(zipf / zipf.sum())
    lo, hi = config["log10_mass_range"]
    log10_mass = np.linspace(lo, hi, int(config["num_mass"]))
    blo, bhi = config["log10_budget_range"]
    budgets = np.unique(np.round(np.logspace(blo, bhi, int(config["num_budget"])))).astype(int)

    # row 0 is the singular reference (p = 0); rows 1.. are the grid
    log_mass = np.concatenate([[-np.inf], log10_mass * np.log(10.0)])
    family = _family(log_mass, log_zipf)  # (1 + num_mass, m)
    codes, search_mass = _map(jnp.asarray(family), budgets, config)
    regions = _regions(codes, search_mass, c)

    # the threshold curves drawn over the computed map
    fine = np.logspace(blo, bhi, 400)
    threshold_access = -np.expm1(np.log1p(-c) / fine)
    threshold_search = -np.expm1(np.log1p(-c) / (s * fine))

    # new information: mix a teacher that solves the target into the singular reference
    target = np.zeros(k + 1, dtype=bool)
    target[0] = True
    ts = float(config["teacher_success"])
    teacher = np.concatenate([[np.log(ts)], np.log1p(-ts) + log_zipf])
    n0 = int(config["slice_budget"])
    weights = np.asarray(config["mixture_weights"], dtype=np.float64)
    info = expand.new_information(family[0], teacher, weights, jnp.asarray(target), n0, c)
    mixtures = {
        "weight": weights,
        "log10_mass_after": np.asarray(info.after.log_mass) / np.log(10.0),
        "status_before": info.before.status,
        "status_after": info.after.status,
        "verdict_of_mixing": info.step.verdict,
        "kl_to_target_before": info.before.kl_to_target,
        "kl_to_target_after": info.after.kl_to_target,
        "kl_to_access_after": info.after.kl_to_access,
        "kl_forgetting": info.kl_forgetting,
    }

    # the slice at N = slice_budget: what each mechanism costs
    cost = expand.elicitation_cost(jnp.asarray(family[1:]), jnp.asarray(target), n0, c)
    p = np.exp(log10_mass * np.log(10.0))
    # the fewest verified samples whose best-of-n outputs the target with probability >= c
    safe = np.where(p < 1, p, 0.5)
    needed = np.where(p < 1, np.ceil(np.log1p(-c) / np.log1p(-safe)), 1.0)
    slice_ = {
        "budget": n0,
        "search_budget": s * n0,
        "log10_mass": log10_mass,
        "kl_to_access": cost.kl_to_access,
        "status": cost.status,
        "search_samples_needed": needed,
    }
    return {
        "config": {
            **config,
            "budgets": budgets,
            "log10_mass": log10_mass,
            "others_log_mass": log_zipf,
            "target_index": 0,
            "teacher_logp": teacher,
        },
        "regions": list(REGIONS),
        "regime_code": codes[:, 1:],
        "search_mass": search_mass[:, 1:],
        "region": regions[:, 1:],
        "singular_region": regions[:, 0],
        "threshold": {
            "budget": fine,
            "access_mass": threshold_access,
            "search_mass": threshold_search,
        },
        "mixtures": mixtures,
        "slice": slice_,
    }


def plot(result: dict):
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.patches import Patch

    from freeenergy.plotting import CYCLE, REGIME_COLORS, figure

    cfg = result["config"]
    colors = [
        REGIME_COLORS[fe.Regime.BASIN],
        REGIME_COLORS[fe.Regime.TAIL],
        REGIME_COLORS[fe.Regime.BARRIER],
        "#8c510a",
        REGIME_COLORS[fe.Regime.SINGULAR],
    ]
    cmap = ListedColormap(colors)
    norm = BoundaryNorm(np.arange(-0.5, len(REGIONS)), len(REGIONS))
    log10_n = np.log10(np.asarray(cfg["budgets"], dtype=float))
    y_edges = np.concatenate(
        [[log10_n[0] - 0.02], 0.5 * (log10_n[1:] + log10_n[:-1]), [log10_n[-1] + 0.02]]
    )
    x = np.asarray(cfg["log10_mass"], dtype=float)
    dx = x[1] - x[0]
    x_edges = np.concatenate([[x[0] - dx / 2], 0.5 * (x[1:] + x[:-1]), [x[-1] + dx / 2]])

    fig, axes = figure(
        1,
        4,
        width=3.0,
        height=4.6,
        gridspec_kw={"width_ratios": [0.3, 4.0, 0.7, 3.6], "wspace": 0.06},
    )
    ax0, ax, spacer, axs = axes
    spacer.set_axis_off()

    ax0.pcolormesh(
        [0, 1], y_edges, np.asarray(result["singular_region"])[:, None], cmap=cmap, norm=norm
    )
    ax0.set(
        xticks=[0.5],
        xticklabels=["p = 0"],
        ylabel=r"$\log_{10}$ budget $N$",
        ylim=(y_edges[0], y_edges[-1]),
    )
    ax0.grid(False)

    ax.pcolormesh(x_edges, y_edges, np.asarray(result["region"]), cmap=cmap, norm=norm)
    th = result["threshold"]
    tb = np.log10(np.asarray(th["budget"], dtype=float))
    c = cfg["confidence"]
    s = cfg["search_multiple"]
    ax.plot(
        np.log10(th["access_mass"]), tb, "w-", lw=1.6, label=rf"$p = 1-(1-c)^{{1/N}}$  (c = {c:g})"
    )
    ax.plot(
        np.log10(th["search_mass"]),
        tb,
        "w--",
        lw=1.6,
        label=rf"$p = 1-(1-c)^{{1/(sN)}}$  (s = {s:g})",
    )
    mixtures = result["mixtures"]
    for w, xm in zip(mixtures["weight"], mixtures["log10_mass_after"], strict=True):
        ax.axvline(xm, color="k", ls=":", lw=1.2)
        ax.text(
            xm,
            y_edges[-1] - 0.1,
            f"p = 0 after mixing, w = {w:g}",
            fontsize=7.5,
            rotation=90,
            va="top",
            ha="center",
            bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1.5},
        )
    ax.set(
        xlim=(x_edges[0], x_edges[-1]),
        ylim=(y_edges[0], y_edges[-1]),
        yticklabels=[],
        xlabel=r"$\log_{10}$ base mass $p$ of the target",
        title="(a) reweighting / search / new information",
    )
    ax.grid(False)
    handles = [
        Patch(color=colors[0], label="basin: reweighting suffices"),
        Patch(color=colors[1], label="tail: reweighting suffices"),
        Patch(color=colors[2], label=f"barrier: search ({s:g}N verified samples)"),
        Patch(color=colors[3], label="barrier beyond that search"),
        Patch(color=colors[4], label="singular: new information only"),
    ]
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.02), ncol=5, fontsize=8)
    ax.legend(loc="lower right", fontsize=7.5, frameon=True, facecolor="0.85")

    sl = result["slice"]
    xs = np.asarray(sl["log10_mass"], dtype=float)
    axs.plot(
        xs,
        np.log10(np.asarray(sl["search_samples_needed"], dtype=float)),
        color=CYCLE[1],
        lw=2,
        label="verified samples a search needs",
    )
    axs.axhline(
        np.log10(sl["budget"]), color="k", ls="-", lw=1, label=f"budget N = {sl['budget']:g}"
    )
    axs.axhline(
        np.log10(sl["search_budget"]),
        color="k",
        ls="--",
        lw=1,
        label=f"search budget sN = {sl['search_budget']:g}",
    )
    axs.set(
        xlabel=r"$\log_{10}$ base mass $p$ of the target",
        ylabel=r"$\log_{10}$ samples",
        title=f"(b) costs at N = {sl['budget']:g}",
    )
    twin = axs.twinx()
    twin.plot(
        xs,
        np.asarray(sl["kl_to_access"], dtype=float),
        color=CYCLE[0],
        lw=2,
        label="KL of the cheapest tilt making it accessible",
    )
    twin.set_ylabel("KL to make accessible [nats]", color=CYCLE[0])
    twin.tick_params(axis="y", colors=CYCLE[0])
    twin.spines["right"].set_visible(True)
    twin.grid(False)
    h1, l1 = axs.get_legend_handles_labels()
    h2, l2 = twin.get_legend_handles_labels()
    axs.legend(h1 + h2, l1 + l2, loc="upper right", fontsize=7.5)
    return fig
