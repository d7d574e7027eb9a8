"""One figure style for every experiment (imported by ``experiments`` only, never by the core).

Matplotlib is imported lazily with the non-interactive Agg backend, so the library itself never
needs a display and importing ``freeenergy`` does not import matplotlib.
"""

from __future__ import annotations

from typing import Any

from .support import Regime

#: Colours of the four regimes, used by every figure that shows them.
REGIME_COLORS = {
    Regime.BASIN: "#1b7837",
    Regime.TAIL: "#a6dba0",
    Regime.BARRIER: "#e08214",
    Regime.SINGULAR: "#762a83",
}

#: A qualitative cycle for methods/curves (colour-blind safe, Okabe–Ito).
CYCLE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]


def pyplot() -> Any:
    """Matplotlib's pyplot with the Agg backend and the project style applied."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    from cycler import cycler

    plt.rcParams.update(
        {
            "figure.dpi": 110,
            "savefig.dpi": 110,
            "savefig.bbox": "tight",
            "font.size": 10,
            "axes.titlesize": 11,
            "axes.labelsize": 10,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "legend.frameon": False,
            "legend.fontsize": 9,
            "axes.prop_cycle": cycler(color=CYCLE),
        }
    )
    return plt


def figure(nrows: int = 1, ncols: int = 1, *, width: float = 4.2, height: float = 3.4, **kw):
    """A ``(fig, axes)`` pair sized per panel; ``axes`` is always a flat list."""
    plt = pyplot()
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, **kw
    )
    return fig, [ax for row in axes for ax in row]


def regime_legend(ax: Any, **kw) -> None:
    """Add a legend with one patch per regime."""
    from matplotlib.patches import Patch

    handles = [Patch(color=c, label=r.name.lower()) for r, c in REGIME_COLORS.items()]
    ax.legend(handles=handles, **kw)
