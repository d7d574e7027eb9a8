"""Lesson 6 — your own data: from samples to a verdict (``freeenergy.empirical``).

Run it: ``marimo run lessons/06_your_data.py``.
Headless at the test size: ``FREEENERGY_LESSON_TINY=1 python lessons/06_your_data.py``.
"""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="6 · Your own data: from samples to a verdict")

with app.setup:
    import tempfile
    from pathlib import Path

    import jax

    jax.config.update("jax_enable_x64", True)
    import lessonkit as kit  # noqa: I001 - freeenergy.empirical is first-party
    import marimo as mo
    import numpy as np

    from freeenergy import empirical as em
    from freeenergy.empirical import simulate


@app.cell(hide_code=True)
def _():
    mo.md(r"""
    # Lesson 6 · Your own data: from samples to a verdict

    The earlier lessons had the models themselves. With a real LLM you have **samples**: for
    each prompt, $n$ answers from the base model and $n$ from the post-trained one, each judged
    by a verifier. From those counts alone, `freeenergy.empirical` answers the theory's question
    — did training **elicit** (raise success on prompts the base already reaches at budget $N$)
    or **create** (make reachable prompts the base could not reach at $N$)? — with error bars.

    A prompt counts as *reachable* at budget $N$ when its success probability $p$ satisfies
    $1-(1-p)^N \ge c$, i.e. $p \ge \tau = 1-(1-c)^{1/N}$ (lesson 2). From $n$ samples we only
    know $p$ up to a confidence interval, so each prompt gets a verdict — `elicitation`,
    `creation`, `lost`, `unchanged` — or `undetermined` when its interval straddles $\tau$.

    **The data.** Two files, one per model, in either format `em.load` reads:

    * CSV, one row per prompt: `prompt,n,correct`;
    * JSONL, one line per sample: `{"prompt": "q17", "correct": true, "answer": "42"}`.

    Below, the files are **simulated** from exact models (so we also know the truth), written to
    disk and loaded back exactly as your own files would be. Upload your own pair to analyse it
    instead.
    """)
    return


@app.cell
def _():
    prompts_slider = mo.ui.slider(
        steps=[20, 50, 100, 200, 400], value=kit.size(100, 20), label="prompts", show_value=True
    )
    samples_slider = mo.ui.slider(
        steps=[16, 32, 64, 128, 256, 512, 1024],
        value=kit.size(128, 64),
        label="samples per prompt n",
        show_value=True,
    )
    training_select = mo.ui.dropdown(
        options=["per-prompt tilt (β = 0.5)", "shared sharpening (γ = 2)"],
        value="per-prompt tilt (β = 0.5)",
        label="how the trained model was made",
    )
    budget_slider = mo.ui.slider(
        steps=[1, 2, 4, 8, 16, 32, 64, 128, 256],
        value=16,
        label="budget N (the largest k you care about)",
        show_value=True,
    )
    upload_base = mo.ui.file(filetypes=[".csv", ".jsonl"], label="your base file")
    upload_trained = mo.ui.file(filetypes=[".csv", ".jsonl"], label="your trained file")
    mo.vstack(
        [
            mo.hstack([prompts_slider, samples_slider], justify="start"),
            mo.hstack([training_select, budget_slider], justify="start"),
            mo.md("Optional — **your own evaluation files** (both, same format):"),
            mo.hstack([upload_base, upload_trained], justify="start"),
        ]
    )
    return (
        budget_slider,
        prompts_slider,
        samples_slider,
        training_select,
        upload_base,
        upload_trained,
    )


@app.cell
def _(prompts_slider, samples_slider, training_select):
    # Ground truth: per-prompt success probabilities from a Beta(0.3, 3) law (many hard prompts),
    # and a trained model given by an exact transformation of them.
    num_prompts, n = int(prompts_slider.value), int(samples_slider.value)
    _key_p, _key_sim = jax.random.split(jax.random.key(0))
    p_base = simulate.beta_prompts(_key_p, num_prompts, 0.3, 3.0)
    if training_select.value.startswith("per-prompt"):
        p_trained = simulate.tilt_success(p_base, 0.5)
    else:
        p_trained = simulate.sharpen_success(p_base, 2.0)
    sim = simulate.flat(_key_sim, p_base, p_trained, n)
    # Written to disk and read back, exactly as your own files would be.
    data_dir = Path(tempfile.mkdtemp(prefix="freeenergy-lesson6-"))
    simulate.write_csv(data_dir / "base.csv", sim.base)
    simulate.write_csv(data_dir / "trained.csv", sim.trained)
    csv_head = "\n".join((data_dir / "base.csv").read_text().splitlines()[:5])
    return csv_head, data_dir, n, num_prompts, p_base, p_trained, sim


@app.cell
def _(data_dir, upload_base, upload_trained):
    own = bool(upload_base.value) and bool(upload_trained.value)
    if own:
        _paths = []
        for _name, _up in (("base", upload_base), ("trained", upload_trained)):
            _suffix = Path(_up.name()).suffix or ".csv"
            _path = data_dir / f"uploaded_{_name}{_suffix}"
            _path.write_bytes(_up.contents())
            _paths.append(_path)
        base, trained = em.load(_paths[0]), em.load(_paths[1])
    else:
        base, trained = em.load(data_dir / "base.csv"), em.load(data_dir / "trained.csv")
    base, trained = em.align(base, trained)
    return base, own, trained


@app.cell(hide_code=True)
def _(base, csv_head, own):
    mo.md(
        (
            f"Analysing **your files**: {base.num_prompts} prompts."
            if own
            else "The first lines of the simulated `base.csv`:"
        )
        + ("" if own else f"\n\n```\n{csv_head}\n```")
    )
    return


@app.cell
def _(base, budget_slider, trained):
    budget = int(budget_slider.value)
    _n_min = int(min(base.n.min(), trained.n.min()))
    ks = np.unique(np.clip(2 ** np.arange(0, 11), 1, _n_min))
    num_bootstrap = kit.size(1000, 100)
    _kb, _kt, _kd, _kc = jax.random.split(jax.random.key(1), 4)
    curve_base = em.pass_at_k_curve(base, ks, num_bootstrap=num_bootstrap, key=_kb)
    curve_trained = em.pass_at_k_curve(trained, ks, num_bootstrap=num_bootstrap, key=_kt)
    cross = em.crossover(base, trained, ks, num_bootstrap=num_bootstrap, key=_kc)
    support = em.support_change(base, trained, min(budget, _n_min))
    diagnosis = em.diagnose(base, trained, budget)
    return budget, cross, curve_base, curve_trained, diagnosis, ks, support


@app.cell(hide_code=True)
def _(
    budget,
    cross,
    curve_base,
    curve_trained,
    diagnosis,
    ks,
    own,
    p_base,
    p_trained,
    sim,
):
    _fig, (_ax1, _ax2) = kit.figure(1, 2, width=5.0, height=3.8)
    for _c, (_name, _curve) in enumerate((("base", curve_base), ("trained", curve_trained))):
        _ax1.plot(_curve.k, _curve.mean, "o-", ms=3, color=kit.CYCLE[_c], label=f"{_name}")
        _ax1.fill_between(_curve.k, _curve.low, _curve.high, color=kit.CYCLE[_c], alpha=0.2)
    if not own:  # the exact population curves the estimates target
        _k = np.asarray(ks, float)
        for _c, _p in enumerate((p_base, p_trained)):
            _exact = np.mean(1 - (1 - _p[:, None]) ** _k[None, :], axis=0)
            _ax1.plot(_k, _exact, ":", color=kit.CYCLE[_c], lw=1.5)
    if cross.k is not None:
        _ax1.axvline(cross.k, color="0.4", ls="--", lw=1)
    _ax1.set_xscale("log", base=2)
    _ax1.set_xlabel("k")
    _ax1.set_ylabel("pass@k (mean over prompts)")
    _ax1.set_title("pass@k, 95% bootstrap bands" + ("" if own else "; dotted = exact"))
    _ax1.legend(loc="lower right")
    _colors = {
        "elicitation": kit.CYCLE[2],
        "creation": kit.CYCLE[1],
        "lost": kit.CYCLE[3],
        "unchanged": "0.6",
        "undetermined": kit.CYCLE[4],
    }
    _rb, _rt = diagnosis.base.rate, diagnosis.trained.rate
    _floor = 0.5 / float(max(sim.base.n.max(), 1)) if not own else 1e-4
    for _v, _col in _colors.items():
        _m = diagnosis.verdict == _v
        if _m.any():
            _ax2.scatter(np.maximum(_rb[_m], _floor), np.maximum(_rt[_m], _floor), s=14,
                         color=_col, label=f"{_v} ({int(_m.sum())})")  # fmt: skip
    _ax2.axvline(diagnosis.threshold, color="k", ls="--", lw=1)
    _ax2.axhline(diagnosis.threshold, color="k", ls="--", lw=1)
    _ax2.plot([_floor, 1], [_floor, 1], color="0.8", lw=1)
    _ax2.set_xscale("log")
    _ax2.set_yscale("log")
    _ax2.set_xlabel("base success rate (zeros drawn at the left edge)")
    _ax2.set_ylabel("trained success rate")
    _ax2.set_title(f"per-prompt verdicts at N = {budget} (dashed: τ)")
    _ax2.legend(fontsize=7, loc="lower right")
    _fig  # noqa: B018 - the cell output
    return


@app.cell(hide_code=True)
def _(budget, cross, diagnosis, support):
    _counts = " · ".join(f"**{k}**: {v}" for k, v in diagnosis.counts.items())
    _cross = (
        f"the base catches up at **k = {cross.k}** (bootstrap range {cross.low}–{cross.high})"
        if cross.k is not None
        else "the base never catches up on this grid"
    )
    mo.md(f"""
    **Verdicts at N = {budget}** (τ = {diagnosis.threshold:.4g}): {_counts}.
    Created fraction: {diagnosis.created_fraction:.3f}
    (95% interval {diagnosis.created_low:.3f}–{diagnosis.created_high:.3f}).

    **Support change** at the budget: both reach {support.both}, base only
    {support.base_only}, trained only {support.trained_only}, neither {support.neither}.
    **Crossover:** {_cross}.
    """)
    return


@app.cell(hide_code=True)
def _():
    mo.md(r"""
    ## Predict, then check

    **Question 1.** Keep the per-prompt tilt. If you raise the budget from N = 16 to
    **N = 256**, will the number of prompts judged `creation` go up or down?
    """)
    return


@app.cell
def _():
    q1 = mo.ui.dropdown(options=["up", "down", "stay the same"], label="my prediction")
    q1_reveal = mo.ui.checkbox(label="reveal")
    mo.hstack([q1, q1_reveal], justify="start")
    return q1, q1_reveal


@app.cell
def _(base, trained):
    creation_by_budget = {b: em.diagnose(base, trained, b).counts["creation"] for b in (16, 256)}
    return (creation_by_budget,)


@app.cell(hide_code=True)
def _(creation_by_budget, q1, q1_reveal):
    kit.reveal(
        mo,
        q1_reveal.value,
        q1.value,
        f"`creation` prompts: {creation_by_budget[16]} at N = 16, {creation_by_budget[256]} at "
        "N = 256. A larger budget lowers τ, so more prompts count as already reachable by the "
        "base, and what looked like creation becomes elicitation: **the verdict is relative to "
        "the budget** — diagnose at the largest k you will actually use.",
    )
    return


@app.cell(hide_code=True)
def _():
    mo.md(r"""
    **Question 2.** Switch to the **shared sharpening** model (γ = 2: each prompt's success
    probability becomes $p^2/(p^2 + (1-p)^2)$, which raises prompts with $p > 1/2$ and drains
    those below). Does the trained model beat the base at **pass@1**?
    """)
    return


@app.cell
def _():
    q2 = mo.ui.dropdown(options=["yes, it beats the base", "no, it loses"], label="my prediction")
    q2_reveal = mo.ui.checkbox(label="reveal")
    mo.hstack([q2, q2_reveal], justify="start")
    return q2, q2_reveal


@app.cell
def _(n, p_base):
    _p_sharp = simulate.sharpen_success(p_base, 2.0)
    _sim = simulate.flat(jax.random.key(5), p_base, _p_sharp, n)
    sharp_pass1 = {
        "exact base": float(np.mean(p_base)),
        "exact trained": float(np.mean(_p_sharp)),
        "estimated base": float(np.mean(em.pass_at_k(_sim.base, 1))),
        "estimated trained": float(np.mean(em.pass_at_k(_sim.trained, 1))),
        "prompts above 1/2": int(np.sum(p_base > 0.5)),
    }
    return (sharp_pass1,)


@app.cell(hide_code=True)
def _(num_prompts, q2, q2_reveal, sharp_pass1):
    kit.reveal(
        mo,
        q2_reveal.value,
        q2.value,
        f"Exact pass@1: base {sharp_pass1['exact base']:.4f}, sharpened "
        f"**{sharp_pass1['exact trained']:.4f}**; estimated from the samples: "
        f"{sharp_pass1['estimated base']:.4f} and {sharp_pass1['estimated trained']:.4f}. "
        f"Only {sharp_pass1['prompts above 1/2']} of the {num_prompts} prompts have p > 1/2 in "
        "this Beta(0.3, 3) population, so one shared sharpening drains almost all of them and "
        "**loses even at k = 1**. On a population of mostly easy prompts the same γ wins at "
        "k = 1 and loses at large k (lesson 4): a shared parameter's effect depends on the "
        "prompts.",
    )
    return


@app.cell(hide_code=True)
def _():
    mo.md(r"""
    ## Exercises

    1. How fast does the fraction of `undetermined` prompts at N = 16 fall as the number of
       samples per prompt grows? Try the *samples per prompt* slider, then open the solution.
    2. For simulated data we know the truth. What fraction of the determined verdicts agree
       with the exact verdicts computed from the true probabilities?
    3. Why can a prompt with 0 correct base samples out of $n$ still be judged reachable by the
       base, or `undetermined`, rather than `creation`?
    """)
    return


@app.cell
def _(p_base, p_trained):
    undetermined_by_n = {}
    for _n in (16, 64, 256, 1024):
        _s = simulate.flat(jax.random.key(3), p_base, p_trained, _n)
        _d = em.diagnose(_s.base, _s.trained, 16)
        undetermined_by_n[_n] = _d.counts["undetermined"] / p_base.size
    return (undetermined_by_n,)


@app.cell
def _(budget, diagnosis, own, p_base, p_trained):
    if own:
        agreement = None
    else:
        _truth = simulate.true_verdicts(p_base, p_trained, budget)
        _determined = diagnosis.verdict != "undetermined"
        agreement = (
            float(np.mean(diagnosis.verdict[_determined] == _truth[_determined]))
            if _determined.any()
            else None
        )
    return (agreement,)


@app.cell(hide_code=True)
def _(agreement, undetermined_by_n):
    mo.accordion(
        {
            "Solution 1": mo.md(
                "Fraction `undetermined` at N = 16 for the same true probabilities: "
                + ", ".join(f"n = {k}: {v:.0%}" for k, v in undetermined_by_n.items())
                + ". The interval of each success rate shrinks like 1/√n."
            ),
            "Solution 2": mo.md(
                f"Agreement with the exact verdicts among the determined prompts: "
                f"**{agreement:.1%}**."
                if agreement is not None
                else "Not available for uploaded data: the truth is unknown."
            ),
            "Solution 3": mo.md(
                "Zero successes in n samples only bounds p from above (roughly p ≲ 3/n at 95%). "
                "If that bound is above τ, the data cannot rule out that the base reaches the "
                "prompt at budget N: the verdict is `undetermined` until n is large enough."
            ),
        }
    )
    return


@app.cell
def _(
    agreement,
    budget,
    cross,
    curve_base,
    curve_trained,
    diagnosis,
    ks,
    n,
    num_prompts,
    own,
    support,
):
    key_numbers = {
        "own_data": own,
        "num_prompts": num_prompts,
        "n": n,
        "budget": budget,
        "ks": [int(k) for k in ks],
        "pass_at_k_base": [float(x) for x in curve_base.mean],
        "pass_at_k_trained": [float(x) for x in curve_trained.mean],
        "crossover": cross.k,
        "support": {
            "both": support.both,
            "base_only": support.base_only,
            "trained_only": support.trained_only,
            "neither": support.neither,
        },
        "verdicts": dict(diagnosis.counts),
        "threshold": float(diagnosis.threshold),
        "agreement": agreement,
    }
    return (key_numbers,)


if __name__ == "__main__":
    app.run()
