r"""The report: every estimator of :mod:`freeenergy.empirical` on two evaluation files, written
as ``report.md``, ``report.json`` and figures.

``python -m freeenergy.empirical report BASE TRAINED --budget N --out DIR`` (see
:func:`main` and ``--help``). :func:`build` computes everything in memory from two
:class:`~freeenergy.empirical.Counts`; :func:`write` renders and writes it. Nothing in ``DIR``
is touched until every number and figure exists, and each file is then written atomically (a
temporary file in ``DIR`` renamed over the target), so a failed run never leaves a
half-written or mixed report.

What the report holds (all from the public estimators, with their definitions):

* pooled pass@k of both models on a grid of k with percentile-bootstrap bands over prompts,
  the paired trained − base difference, and the crossover (``em.pass_at_k_curve``,
  ``em.paired_difference``, ``em.crossover``);
* the support change at the budget (``em.support_change``) and the per-prompt verdicts with
  the created fraction (``em.diagnose``) — relative to the budget;
* Cover@τ: the fraction of prompts whose success rate ``correct/n`` is at least τ;
* answer statistics and answer-level support change when both files carry answers, and the KL
  estimates with the least KL the success change needs when the trained file carries
  log-probabilities under both models.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["build", "write", "main", "default_k_grid", "cover_curve", "FIGURES"]

#: The figure files the report writes, and what each shows.
FIGURES = {
    "pass_at_k.png": "pooled pass@k of both models with bootstrap bands; the crossover marked",
    "support.png": "support change at the budget, and the per-prompt verdicts",
    "scatter.png": "per-prompt success rate, base against trained, coloured by verdict",
    "cover.png": "Cover@τ: the fraction of prompts with success rate ≥ τ",
}
#: Largest accepted ``--bootstrap``.
MAX_BOOTSTRAP = 1_000_000
#: Thresholds τ of the Cover@τ curves.
COVER_TAUS = np.linspace(0.0, 1.0, 101)


class ReportError(ValueError):
    """A user error (bad input file or option): reported in one line, exit code 2."""


# ----------------------------------------------------------------------------- numbers
def default_k_grid(max_k: int) -> list[int]:
    """Powers of two up to ``max_k``, and ``max_k`` itself.

    >>> default_k_grid(10)
    [1, 2, 4, 8, 10]
    """
    out = [1 << j for j in range(max(int(max_k), 1).bit_length()) if (1 << j) <= max_k]
    if out[-1] != max_k:
        out.append(int(max_k))
    return out


def cover_curve(rate: Any, taus: Any = COVER_TAUS) -> np.ndarray:
    """Cover@τ: for each τ, the fraction of prompts whose success rate is at least τ.

    >>> cover_curve([0.0, 0.5, 1.0], [0.0, 0.5, 0.75]).tolist()
    [1.0, 0.6666666666666666, 0.3333333333333333]
    """
    r = np.asarray(rate, dtype=np.float64)
    t = np.asarray(taus, dtype=np.float64)
    return np.mean(r[None, :] >= t[:, None], axis=1)


class _Progress:
    """A plain progress bar on stderr over a known total of bootstrap resamples."""

    def __init__(self, total: int, enabled: bool, width: int = 30):
        self.total, self.enabled, self.width = max(int(total), 1), enabled, width
        self.done = 0
        self.start = time.perf_counter()
        self.tty = sys.stderr.isatty()
        self._last = -1

    def stage(self, label: str):
        base = self.done

        def callback(done: int, total: int) -> None:
            self.done = base + int(done)
            self.draw(label)

        return callback

    def draw(self, label: str) -> None:
        if not self.enabled:
            return
        frac = min(self.done / self.total, 1.0)
        filled = int(round(frac * self.width))
        step = int(frac * 20)
        if not self.tty and step == self._last and frac < 1.0:
            return  # not a terminal: a line every 5% at most
        self._last = step
        line = (
            f"bootstrap [{'#' * filled}{'.' * (self.width - filled)}] {self.done}/{self.total} "
            f"resamples ({label}, {time.perf_counter() - self.start:.1f}s)"
        )
        sys.stderr.write(("\r" + line) if self.tty else (line + "\n"))
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _floats(x: Any) -> list[float]:
    return [float(v) for v in np.asarray(x, dtype=np.float64).ravel()]


def _or_none(x: Any) -> Any:
    return None if x is None else _floats(x)


def build(
    base: Any,
    trained: Any,
    budget: int,
    *,
    ks: Any = None,
    num_bootstrap: int = 2000,
    seed: int = 0,
    confidence: float = 0.5,
    level: float = 0.95,
    progress: bool = False,
    interval: str = "percentile",
) -> dict:
    """Every estimate of the report, as a JSON-able dict (no files written).

    ``base`` and ``trained`` are :class:`~freeenergy.empirical.Counts` of the same prompts;
    ``ks`` the pass@k grid (default: powers of two up to the smallest ``n``, and that ``n``);
    the bootstrap draws ``num_bootstrap`` resamples from ``jax.random.key(seed)`` (split into
    one key per statistic, in the order base curve, trained curve, difference, crossover).
    ``interval="wilson"`` gives the two pooled curves Wilson score bands instead of bootstrap
    bands (no resampling; they keep their coverage where pass@k is near 1); the difference and
    the crossover are always bootstrapped. Raises ``ReportError`` for inconsistent options and
    data.
    """
    import jax

    from . import (
        align,
        answer_stats,
        answer_support_change,
        crossover,
        diagnose,
        kl_estimate,
        paired_difference,
        pass_at_k_curve,
        support_change,
    )

    try:
        base, trained = align(base, trained)
    except ValueError as err:
        raise ReportError(str(err)) from None
    n_min = int(min(base.n.min(), trained.n.min()))
    grid = default_k_grid(n_min) if ks is None else sorted({int(k) for k in ks})
    if grid[0] < 1 or grid[-1] > n_min:
        raise ReportError(
            f"--k values must lie in 1..{n_min} (the smallest number of samples per prompt in "
            f"either file), got {grid}."
        )
    if budget < 1:
        raise ReportError(f"--budget must be a whole number >= 1, got {budget}.")
    support_budget = min(budget, n_min)
    key = jax.random.key(seed)
    key_base, key_trained, key_diff, key_cross = jax.random.split(key, 4)
    if interval not in ("percentile", "wilson"):
        raise ReportError(f'--interval must be "percentile" or "wilson", got {interval!r}.')
    wilson = interval == "wilson"
    stages = (1 if wilson else 3) + (len(grid) >= 2)
    bar = _Progress(stages * num_bootstrap, progress and num_bootstrap > 0)
    common = {"num_bootstrap": num_bootstrap, "level": level}
    if wilson:
        curve_b = pass_at_k_curve(base, grid, level=level, interval="wilson")
        curve_t = pass_at_k_curve(trained, grid, level=level, interval="wilson")
    else:
        curve_b = pass_at_k_curve(base, grid, key=key_base, progress=bar.stage("base"), **common)
        curve_t = pass_at_k_curve(
            trained, grid, key=key_trained, progress=bar.stage("trained"), **common
        )
    diff = paired_difference(
        base, trained, grid, key=key_diff, progress=bar.stage("difference"), **common
    )
    cross = None
    if len(grid) >= 2:
        cross = crossover(
            base, trained, grid, key=key_cross, progress=bar.stage("crossover"), **common
        )
    bar.close()
    support = support_change(base, trained, support_budget, confidence)
    diag = diagnose(base, trained, budget, confidence, level)

    prompts = list(base.prompts) if base.prompts is not None else list(range(base.num_prompts))
    report: dict[str, Any] = {
        "settings": {
            "budget": int(budget),
            "support_budget": int(support_budget),
            "k": grid,
            "num_bootstrap": int(num_bootstrap),
            "seed": int(seed),
            "confidence": float(confidence),
            "level": float(level),
            "interval": interval,
            "reach_threshold": float(diag.threshold),
        },
        "data": {
            "num_prompts": base.num_prompts,
            "samples_base": int(base.n.sum()),
            "samples_trained": int(trained.n.sum()),
            "min_n": n_min,
            "max_n": int(max(base.n.max(), trained.n.max())),
        },
        "pass_at_k": {
            "k": grid,
            "base": {
                "mean": _floats(curve_b.mean),
                "low": _or_none(curve_b.low),
                "high": _or_none(curve_b.high),
            },
            "trained": {
                "mean": _floats(curve_t.mean),
                "low": _or_none(curve_t.low),
                "high": _or_none(curve_t.high),
            },
            "difference": {
                "mean": _floats(diff.mean),
                "low": _or_none(diff.low),
                "high": _or_none(diff.high),
            },
        },
        "crossover": None
        if cross is None
        else {"k": cross.k, "low": cross.low, "high": cross.high, "probability": cross.probability},
        "support_change": {
            "budget": support.budget,
            "both": support.both,
            "base_only": support.base_only,
            "trained_only": support.trained_only,
            "neither": support.neither,
            "srr": support.srr,
            "ndr": support.ndr,
            "sds": support.sds,
            "nscr": support.nscr,
        },
        "diagnosis": {
            "budget": diag.budget,
            "threshold": float(diag.threshold),
            "counts": dict(diag.counts),
            "created_fraction": float(diag.created_fraction),
            "created_low": float(diag.created_low),
            "created_high": float(diag.created_high),
        },
        "cover": {
            "tau": _floats(COVER_TAUS),
            "base": _floats(cover_curve(base.rate)),
            "trained": _floats(cover_curve(trained.rate)),
        },
        "per_prompt": {
            "prompt": prompts,
            "n_base": base.n.tolist(),
            "correct_base": base.correct.tolist(),
            "n_trained": trained.n.tolist(),
            "correct_trained": trained.correct.tolist(),
            "rate_base": _floats(base.rate),
            "rate_trained": _floats(trained.rate),
            "low_base": _floats(diag.base.low),
            "high_base": _floats(diag.base.high),
            "low_trained": _floats(diag.trained.low),
            "high_trained": _floats(diag.trained.high),
            "reachable_base": support.base_reachable.tolist(),
            "reachable_trained": support.trained_reachable.tolist(),
            "verdict": [str(v) for v in diag.verdict],
        },
        "answers": None,
        "kl": None,
    }
    report["summary"] = _summary(report)

    have_answers = (
        base.samples is not None
        and trained.samples is not None
        and base.samples.answer is not None
        and trained.samples.answer is not None
    )
    if have_answers:
        sb, st = answer_stats(base), answer_stats(trained)
        epsilon = 1.0 / n_min
        asc = answer_support_change(base, trained, epsilon)
        report["answers"] = {
            "epsilon": epsilon,
            "base": {
                "mean_distinct": float(np.mean(sb.num_distinct)),
                "mean_missing_mass": float(np.mean(sb.missing_mass)),
                "mean_entropy": float(np.mean(sb.entropy)),
            },
            "trained": {
                "mean_distinct": float(np.mean(st.num_distinct)),
                "mean_missing_mass": float(np.mean(st.missing_mass)),
                "mean_entropy": float(np.mean(st.entropy)),
            },
            "support_change": {
                name: int(np.sum(getattr(asc, name)))
                for name in (
                    "both",
                    "base_only",
                    "trained_only",
                    "correct_both",
                    "correct_base_only",
                    "correct_trained_only",
                )
            },
        }
    s = trained.samples
    if s is not None and s.logprob_base is not None and s.logprob_trained is not None:
        try:
            est = kl_estimate(base, trained)
        except ValueError as err:
            raise ReportError(str(err)) from None
        report["kl"] = {
            "k1": est.k1,
            "k1_se": est.k1_se,
            "k3": est.k3,
            "k3_se": est.k3_se,
            "least_kl": est.least_kl,
            "efficiency": est.efficiency,
        }
    return report


def _summary(report: dict) -> str:
    d = report["diagnosis"]
    c = d["counts"]
    p = report["data"]["num_prompts"]
    budget = d["budget"]
    if c["creation"] > 0:
        head = (
            f"creation at budget {budget}: {c['creation']} of {p} prompts the base does not "
            f"reach are reached after training"
        )
    elif c["elicitation"] > 0:
        head = (
            f"elicitation at budget {budget}: no prompt is confidently created; "
            f"{c['elicitation']} of {p} already-reached prompts gained"
        )
    else:
        head = f"no confident change at budget {budget}"
    tail = f" ({c['undetermined']} undetermined, {c['lost']} lost)."
    return head + tail


# ----------------------------------------------------------------------------- rendering
def _figures(report: dict) -> dict[str, bytes]:
    from ..plotting import CYCLE, figure

    out: dict[str, bytes] = {}

    def png(fig) -> bytes:
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        import matplotlib.pyplot as plt

        plt.close(fig)
        return buf.getvalue()

    pk = report["pass_at_k"]
    k = np.asarray(pk["k"], dtype=float)
    fig, (ax,) = figure(1, 1, width=5.0, height=3.8)
    for name, color in (("base", "k"), ("trained", CYCLE[1])):
        curve = pk[name]
        if curve["low"] is not None:
            ax.fill_between(k, curve["low"], curve["high"], color=color, alpha=0.15, lw=0)
        ax.plot(k, curve["mean"], "o-", ms=3, color=color, label=name)
    cross = report["crossover"]
    if cross is not None and cross["k"] is not None:
        ax.axvline(cross["k"], color=CYCLE[2], ls=":", lw=1.5, label=f"crossover k = {cross['k']}")
        lo, hi = cross["low"], cross["high"]
        if lo is not None:
            ax.axvspan(lo, hi if hi is not None else k[-1], color=CYCLE[2], alpha=0.08, lw=0)
    level = report["settings"]["level"]
    bands = "Wilson" if report["settings"]["interval"] == "wilson" else "bootstrap"
    ax.set(
        xscale="log" if k[-1] > k[0] else "linear",
        xlabel="k",
        ylabel="mean pass@k over prompts",
        title=f"pass@k ({100 * level:g}% {bands} bands)",
    )
    ax.legend(loc="lower right")
    out["pass_at_k.png"] = png(fig)

    sc = report["support_change"]
    dg = report["diagnosis"]
    fig, axes = figure(1, 2, width=4.2, height=3.6)
    names = ["both", "base_only", "trained_only", "neither"]
    axes[0].bar(range(4), [sc[n] for n in names], color=[CYCLE[0], CYCLE[1], CYCLE[2], "0.7"])
    axes[0].set_xticks(range(4), ["both", "base only", "trained only", "neither"], rotation=25)
    axes[0].set(ylabel="prompts", title=f"reached at budget {sc['budget']}")
    verdicts = list(dg["counts"])
    axes[1].bar(
        range(len(verdicts)), [dg["counts"][v] for v in verdicts], color=CYCLE[: len(verdicts)]
    )
    axes[1].set_xticks(range(len(verdicts)), verdicts, rotation=25)
    axes[1].set(ylabel="prompts", title=f"verdicts at budget {dg['budget']}")
    out["support.png"] = png(fig)

    pp = report["per_prompt"]
    fig, (ax,) = figure(1, 1, width=4.6, height=4.2)
    rb, rt = np.asarray(pp["rate_base"]), np.asarray(pp["rate_trained"])
    verdict = np.asarray(pp["verdict"])
    for j, v in enumerate(dg["counts"]):
        m = verdict == v
        if m.any():
            ax.plot(rb[m], rt[m], "o", ms=4, alpha=0.7, color=CYCLE[j], label=v)
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    tau = report["settings"]["reach_threshold"]
    ax.axvline(tau, color="0.5", lw=0.8, ls="--")
    ax.axhline(tau, color="0.5", lw=0.8, ls="--")
    ax.set(
        xlabel="base success rate",
        ylabel="trained success rate",
        title=f"per prompt (dashed: reach threshold {tau:.3g})",
    )
    # linear below 0.01 (so that 0 shows), logarithmic above: rare successes stay visible
    for axis in ("x", "y"):
        getattr(ax, f"set_{axis}scale")("symlog", linthresh=0.01, linscale=0.5)
    ax.set(xlim=(0, 1.05), ylim=(0, 1.05))
    ax.legend(fontsize=8, loc="lower right")
    out["scatter.png"] = png(fig)

    cv = report["cover"]
    fig, (ax,) = figure(1, 1, width=4.6, height=3.6)
    ax.step(cv["tau"], cv["base"], where="post", color="k", label="base")
    ax.step(cv["tau"], cv["trained"], where="post", color=CYCLE[1], label="trained")
    ax.set(xlabel="τ", ylabel="fraction of prompts with success rate ≥ τ", title="Cover@τ")
    ax.legend()
    out["cover.png"] = png(fig)
    return out


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}g}" if math.isfinite(x) else str(x)
    return str(x)


def _markdown(report: dict, base_path: str, trained_path: str) -> str:
    st, dt, pk = report["settings"], report["data"], report["pass_at_k"]
    lv = f"{100 * st['level']:g}%"
    samples = dt["min_n"] if dt["min_n"] == dt["max_n"] else f"{dt['min_n']}–{dt['max_n']}"
    lines = [
        "# Elicitation or creation: report",
        "",
        f"Base: `{base_path}`; trained: `{trained_path}`. {dt['num_prompts']} prompts, "
        f"{samples} samples per prompt. Budget N = {st['budget']}, "
        f"confidence {st['confidence']:g} (a prompt is reached when its success probability is "
        f"at least {st['reach_threshold']:.4g}), {lv} intervals, {st['num_bootstrap']} "
        f"bootstrap resamples over prompts (seed {st['seed']})"
        + (
            "; the two pooled curves with Wilson score bands."
            if st["interval"] == "wilson"
            else "."
        ),
        "",
        f"**Verdict: {report['summary']}**",
        "",
        "## pass@k",
        "",
        f"| k | base | trained | trained − base ({lv} paired) |",
        "|---|---|---|---|",
    ]

    def cell(d: dict, j: int) -> str:
        if d["low"] is None:
            return f"{d['mean'][j]:.4f}"
        return f"{d['mean'][j]:.4f} [{d['low'][j]:.4f}, {d['high'][j]:.4f}]"

    for j, k in enumerate(pk["k"]):
        lines.append(
            f"| {k} | {cell(pk['base'], j)} | {cell(pk['trained'], j)} | "
            f"{cell(pk['difference'], j)} |"
        )
    cr = report["crossover"]
    lines.append("")
    if cr is None:
        lines.append("Crossover: needs at least two values of k.")
    elif cr["k"] is None:
        lines.append("Crossover: none on this grid (the base never catches up after trailing).")
    else:
        prob = (
            "" if cr["probability"] is None else f", in {100 * cr['probability']:.0f}% of resamples"
        )
        lines.append(
            f"Crossover: the base catches up at k = {cr['k']} ({lv} range "
            f"{_fmt(cr['low'])}–{_fmt(cr['high'])}{prob})."
        )
    sc = report["support_change"]
    lines += [
        "",
        "![pass@k](pass_at_k.png)",
        "",
        f"## Support change at budget {sc['budget']}",
        "",
        "A model reaches a prompt when its estimated pass@budget is at least the confidence.",
        "",
        "| both | base only | trained only | neither | SRR | NDR | SDS | NSCR |",
        "|---|---|---|---|---|---|---|---|",
        f"| {sc['both']} | {sc['base_only']} | {sc['trained_only']} | {sc['neither']} | "
        f"{_fmt(sc['srr'])} | {_fmt(sc['ndr'])} | {_fmt(sc['sds'])} | {_fmt(sc['nscr'])} |",
        "",
    ]
    if sc["budget"] != st["budget"]:
        lines += [
            f"(The budget {st['budget']} exceeds the smallest number of samples per prompt, so "
            f"the support change is estimated at {sc['budget']}.)",
            "",
        ]
    dg = report["diagnosis"]
    lines += [
        f"## Verdicts per prompt at budget {dg['budget']}",
        "",
        f"From {lv} Clopper–Pearson intervals of each success probability against the reach "
        f"threshold {dg['threshold']:.4g}. The verdict is relative to the budget: a prompt the "
        "base solves rarely is unreachable at a small budget and reachable at a large one.",
        "",
        "| " + " | ".join(dg["counts"]) + " |",
        "|" + "---|" * len(dg["counts"]),
        "| " + " | ".join(str(v) for v in dg["counts"].values()) + " |",
        "",
        f"Created fraction: {dg['created_fraction']:.4f} ({lv} interval "
        f"[{dg['created_low']:.4f}, {dg['created_high']:.4f}]).",
        "",
        "![support change and verdicts](support.png)",
        "",
        "![per-prompt success rates](scatter.png)",
        "",
        "## Cover@τ",
        "",
        "The fraction of prompts whose success rate is at least τ.",
        "",
        "| τ | base | trained |",
        "|---|---|---|",
    ]
    cv = report["cover"]
    for tau in (0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0):
        j = int(round(tau * 100))
        lines.append(f"| {tau:g} | {cv['base'][j]:.3f} | {cv['trained'][j]:.3f} |")
    lines += ["", "![Cover@τ](cover.png)", ""]
    an = report["answers"]
    if an is not None:
        a = an["support_change"]
        lines += [
            "## Answers",
            "",
            "| | distinct answers | Good–Turing missing mass | entropy (nats) |",
            "|---|---|---|---|",
        ]
        for name in ("base", "trained"):
            m = an[name]
            lines.append(
                f"| {name} | {m['mean_distinct']:.3g} | {m['mean_missing_mass']:.4f} | "
                f"{m['mean_entropy']:.4f} |"
            )
        lines += [
            "",
            "(means over prompts.) Answers given with frequency at least "
            f"{an['epsilon']:.3g}, summed over prompts: {a['both']} kept, {a['base_only']} "
            f"dropped, {a['trained_only']} new; among accepted answers {a['correct_both']} kept, "
            f"{a['correct_base_only']} dropped, {a['correct_trained_only']} new.",
            "",
        ]
    kl = report["kl"]
    if kl is not None:
        lines += [
            "## KL(trained‖base)",
            "",
            f"k1 = {_fmt(kl['k1'])} ± {_fmt(kl['k1_se'])}, k3 = {_fmt(kl['k3'])} ± "
            f"{_fmt(kl['k3_se'])} nats (mean over prompts ± standard error). The least KL the "
            f"observed success change needs (Bernoulli divergence per prompt) is "
            f"{_fmt(kl['least_kl'])} nats: a KL efficiency of {_fmt(kl['efficiency'])}.",
            "",
        ]
    lines += ["All numbers are in `report.json`.", ""]
    return "\n".join(lines)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and math.isnan(obj):
        raise ValueError("refusing to write NaN into report.json")
    return obj


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write(report: dict, out: str | os.PathLike, base_path: str, trained_path: str) -> list[Path]:
    """Render the figures and ``report.md`` of ``report`` (from :func:`build`) and write them
    with ``report.json`` into ``out``, each file atomically. Everything is rendered before
    the first file is written. Returns the paths written."""
    files: dict[str, bytes] = dict(_figures(report))
    files["report.json"] = (json.dumps(_jsonable(report), indent=1, allow_nan=True) + "\n").encode()
    files["report.md"] = _markdown(report, base_path, trained_path).encode()
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ReportError(f"{out}: cannot create the output folder ({err.strerror}).") from None
    if not out.is_dir():
        raise ReportError(f"{out}: not a folder; pass --out a folder to write the report into.")
    written = []
    for name, data in files.items():  # report.md last: it refers to the others
        _atomic_write(out / name, data)
        written.append(out / name)
    return written


# ----------------------------------------------------------------------------- command line
_DESCRIPTION = """\
Did post-training elicit (raise success on prompts the base model already reaches at a
sampling budget N) or create (make prompts reachable that the base does not reach at N)?
This answers it from samples of your own models: per-prompt verifier results of a base and a
trained model on the same prompts.

Input files (BASE and TRAINED), one of two formats, chosen by the suffix:
  *.csv    one row per prompt, header  prompt,n,correct  (n samples, correct accepted)
  *.jsonl  one JSON object per sample: {"prompt": ..., "correct": true|false} with optional
           "answer" (a string: enables the answer statistics) and "logprob_base",
           "logprob_trained" (the sample's log-probability in nats under each model; in the
           TRAINED file they enable the KL estimates).
Prompts are matched by id; both files must hold the same prompts.

Writes into DIR: report.md (the verdict, tables and figures), report.json (every number),
pass_at_k.png, support.png, scatter.png and cover.png. Each file is written atomically
and only after everything is computed, so a failed run leaves an existing report intact.
Bad input gives a one-line error naming the file, line and field, and exit code 2.
"""

_EXAMPLE = """\
example:
  python -m freeenergy.empirical report examples/base.jsonl examples/trained.jsonl \\
      --budget 64 --out report/
"""


def _k_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected whole numbers separated by commas (e.g. 1,4,16), got {text!r}"
        ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected whole numbers >= 1, got {text!r}")
    return values


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m freeenergy.empirical",
        description="Sample-based estimates of the free-energy theory's quantities on your own "
        "evaluation data.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    rp = sub.add_parser(
        "report",
        help="elicitation or creation, from a base and a trained model's samples",
        description=_DESCRIPTION,
        epilog=_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rp.add_argument("base", metavar="BASE", help="the base model's results (.csv or .jsonl)")
    rp.add_argument(
        "trained", metavar="TRAINED", help="the post-trained model's results (.csv or .jsonl)"
    )
    rp.add_argument(
        "--budget",
        type=int,
        required=True,
        metavar="N",
        help="the sampling budget the verdict is relative to: a prompt is reached when N "
        "samples solve it with probability >= --confidence. Choose the largest k you care "
        "about (e.g. the k of your largest pass@k). May exceed the samples per prompt for the "
        "verdicts; the support change then uses the smallest n.",
    )
    rp.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    rp.add_argument(
        "--bootstrap",
        type=int,
        default=2000,
        metavar="B",
        help="bootstrap resamples over prompts for every interval (default 2000; 0 = no "
        f"intervals; at most {MAX_BOOTSTRAP})",
    )
    rp.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="S",
        help="seed of the bootstrap's random key (default 0); the same seed gives the same report",
    )
    rp.add_argument(
        "--k",
        type=_k_list,
        default=None,
        metavar="K1,K2,...",
        help="the pass@k grid (default: powers of two up to the smallest number of samples per "
        "prompt, and that number); each k at most that number",
    )
    rp.add_argument(
        "--confidence",
        type=float,
        default=0.5,
        metavar="C",
        help="reach confidence in (0, 1) (default 0.5): a prompt with success probability p is "
        "reached at budget N when 1 - (1 - p)^N >= C",
    )
    rp.add_argument(
        "--level",
        type=float,
        default=0.95,
        metavar="L",
        help="confidence level in (0, 1) of every interval (default 0.95)",
    )
    rp.add_argument(
        "--interval",
        choices=("percentile", "wilson"),
        default="percentile",
        help="band of the two pooled pass@k curves: 'percentile' (default), the percentile "
        "bootstrap over prompts; or 'wilson', the Wilson score interval of the pooled mean, "
        "conservative, and the one to use when pass@k is near 1 (the bootstrap band then "
        "collapses to [1, 1]). The difference and the crossover are always bootstrapped.",
    )
    rp.add_argument(
        "--quiet", action="store_true", help="no progress bar and no summary on the terminal"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """The command line (``python -m freeenergy.empirical``); returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    for name, value in (("--confidence", args.confidence), ("--level", args.level)):
        if not 0.0 < value < 1.0:
            parser.error(f"{name} must lie strictly between 0 and 1, got {value}")
    if not 0 <= args.bootstrap <= MAX_BOOTSTRAP:
        parser.error(f"--bootstrap must be between 0 and {MAX_BOOTSTRAP}, got {args.bootstrap}")
    if args.budget < 1 or args.budget > 10**12:
        parser.error(f"--budget must be a whole number between 1 and 1e12, got {args.budget}")

    import jax

    jax.config.update("jax_enable_x64", True)
    from . import load

    try:
        base = load(args.base)
        trained = load(args.trained)
        report = build(
            base,
            trained,
            args.budget,
            ks=args.k,
            num_bootstrap=args.bootstrap,
            seed=args.seed,
            confidence=args.confidence,
            level=args.level,
            progress=not args.quiet,
            interval=args.interval,
        )
        report["settings"]["base"] = str(args.base)
        report["settings"]["trained"] = str(args.trained)
        written = write(report, args.out, str(args.base), str(args.trained))
    except ValueError as err:  # bad input files and options: one line, exit code 2
        message = " ".join(str(err).split())
        print(f"error: {message}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(f"verdict: {report['summary']}")
        print(f"wrote {', '.join(str(p) for p in written)}")
    return 0
