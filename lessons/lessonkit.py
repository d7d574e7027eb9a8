"""Small helpers shared by the lessons: run size, figures, and predict-then-check reveals.

The lessons are marimo notebooks (``marimo run lessons/``). Set ``FREEENERGY_LESSON_TINY=1``
to run them at a tiny size (the test suite does, running each one as a plain script).
"""

from __future__ import annotations

import os

from freeenergy import plotting

#: The environment variable that selects the tiny size.
TINY_VARIABLE = "FREEENERGY_LESSON_TINY"

REGIME_COLORS = plotting.REGIME_COLORS
CYCLE = plotting.CYCLE


def tiny() -> bool:
    """True when the lessons run at the tiny size used by the test suite."""
    return os.environ.get(TINY_VARIABLE, "").strip() not in ("", "0")


def size(full, small):
    """``small`` when the lessons run at the test size, else ``full``."""
    return small if tiny() else full


def figure(nrows: int = 1, ncols: int = 1, *, width: float = 4.6, height: float = 3.4):
    """A ``(fig, axes)`` pair in the project's figure style (``axes`` is a flat list).

    The figure is detached from pyplot's registry, so re-running a cell never piles figures up.
    """
    plt = plotting.pyplot()
    fig, axes = plotting.figure(nrows, ncols, width=width, height=height)
    fig.set_layout_engine("constrained")
    plt.close(fig)
    return fig, axes


def reveal(mo, committed: bool, prediction, answer_md: str, verdict: str | None = None):
    """The folded answer of a predict-then-check question.

    Until the student ticks the reveal box it only asks for a prediction; then it shows the
    student's prediction next to the exact answer computed by the library.
    """
    if not committed:
        return mo.callout(
            mo.md("Commit a prediction above, then tick **reveal** to check it."), kind="neutral"
        )
    text = f"**Your prediction:** {prediction}\n\n{answer_md}"
    if verdict is not None:
        text += f"\n\n{verdict}"
    return mo.callout(mo.md(text), kind="success")


def close_enough(prediction: float, exact: float, rel: float = 0.25) -> str:
    """A one-line judgement of a numeric prediction (within ``rel`` relative error)."""
    if prediction is None:
        return "You left the prediction empty."
    err = abs(prediction - exact) / max(abs(exact), 1e-12)
    if err <= rel:
        return f"Within {100 * err:.0f}% of the exact value: well predicted."
    return f"Off by {100 * err:.0f}% — work through why before moving on."
