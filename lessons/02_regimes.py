"""Lesson 2 — accessible support and the four regimes (budget N, confidence, basin mass).

Run it: ``marimo run lessons/02_regimes.py``.
Headless at the test size: ``FREEENERGY_LESSON_TINY=1 python lessons/02_regimes.py``.
"""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="2 · Accessible support and the four regimes")

with app.setup:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import lessonkit as kit
    import marimo as mo
    import numpy as np

    import freeenergy as fe


@app.cell(hide_code=True)
def _():
    mo.md(r"""
    # Lesson 2 · Accessible support and the four regimes

    Lesson 1 showed that every tilt keeps $q(y) = 0$ wherever $p_0(y) = 0$. But being in the
    support is not what matters in practice: a behavior of probability $10^{-9}$ is never
    *sampled*, so no gradient ever sees it. The operational notion is the **accessible
    support** under a budget
    of $N$ samples at confidence $c$:

    $$\rho_N(y) = 1 - (1 - p(y))^N, \qquad
    A_{N,c}(p) = \{y : \rho_N(y) \ge c\} = \{y : p(y) \ge t^*\},\quad t^* = 1 - (1-c)^{1/N}.$$

    Relative to $p_0$ at budget $N$ every behavior falls in one of **four regimes**:

    * **basin** — accessible and in the *nucleus* (the most probable behaviors holding
      `basin_mass` of the mass, 90% by default);
    * **tail** — accessible, outside the nucleus;
    * **barrier** — $p_0(y) > 0$ but not accessible at this budget;
    * **singular** — $p_0(y) = 0$: outside the support, unreachable by any reweighting.

    Reweighting (SFT, RL) *elicits* within the accessible support; crossing a barrier or the
    singular set is *creation* and needs something else (lesson 5). See `docs/theory.md` §2.
    """)
    return


@app.cell
def _():
    # A 1-D landscape of 60 behaviors: a basin around 12, a long tail, a low plateau far away
    # (reachable in principle, never in practice), and a stretch the model cannot produce.
    n = 60
    _y = np.arange(n)
    _log_w = -0.5 * ((_y - 12) / 4.0) ** 2  # the basin
    _log_w = np.maximum(_log_w, -3.0 - 0.25 * (_y - 12))  # the tail, decaying
    _log_w = np.where((_y >= 38) & (_y < 48), -16.0, _log_w)  # a plateau of rare behaviors
    _log_w = np.where(_y >= 48, -np.inf, _log_w)  # the singular stretch
    logp0 = fe.normalize(jnp.asarray(_log_w))
    return logp0, n


@app.cell
def _():
    budget_slider = mo.ui.slider(
        steps=[1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096, 16384, 10**6, 10**8],
        value=64,
        label="budget N (samples)",
        show_value=True,
        full_width=True,
    )
    confidence_slider = mo.ui.slider(
        start=0.05, stop=0.95, step=0.05, value=0.5, label="confidence c", show_value=True
    )
    basin_slider = mo.ui.slider(
        start=0.5, stop=0.99, step=0.01, value=0.9, label="basin mass", show_value=True
    )
    mo.vstack([budget_slider, mo.hstack([confidence_slider, basin_slider])])
    return basin_slider, budget_slider, confidence_slider


@app.cell
def _(basin_slider, budget_slider, confidence_slider, logp0):
    budget = int(budget_slider.value)
    confidence = float(confidence_slider.value)
    basin_mass = float(basin_slider.value)
    codes = np.asarray(fe.regimes(logp0, budget, confidence=confidence, basin_mass=basin_mass))
    counts = {r.name.lower(): int(np.sum(codes == r)) for r in fe.Regime}
    threshold = float(-jnp.expm1(jnp.log1p(-confidence) / budget))  # t* = 1 - (1 - c)^(1/N)
    accessible = np.asarray(fe.accessible_support(logp0, budget, confidence))
    return accessible, basin_mass, budget, codes, confidence, counts, threshold


@app.cell(hide_code=True)
def _(budget, codes, confidence, counts, logp0, n, threshold):
    _fig, (_ax,) = kit.figure(1, 1, width=9.0, height=3.6)
    _p = np.exp(np.asarray(logp0))
    _floor = 1e-12
    for _r in fe.Regime:
        _m = codes == _r
        if _r == fe.Regime.SINGULAR:  # zero mass: marked along the floor
            _ax.plot(
                np.arange(n)[_m],
                np.full(_m.sum(), 3 * _floor),
                "x",
                ms=5,
                color=kit.REGIME_COLORS[_r],
            )
            continue
        _ax.bar(np.arange(n)[_m], _p[_m], color=kit.REGIME_COLORS[_r], width=0.9)
    _ax.axhline(threshold, color="k", ls="--", lw=1)
    _ax.text(n - 1, threshold * 2.0, f"access threshold t* = {threshold:.3g}", ha="right")
    _ax.set_yscale("log")
    _ax.set_ylim(_floor, 1)
    _ax.set_xlabel("behavior")
    _ax.set_ylabel("p0 (log scale; × = zero mass)")
    _ax.set_title(f"regimes at N = {budget}, c = {confidence:g}")
    from freeenergy.plotting import regime_legend

    regime_legend(_ax, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    mo.vstack(
        [
            _fig,
            mo.md(
                " · ".join(f"**{k}**: {v}" for k, v in counts.items())
                + f" — a behavior is accessible when p0 ≥ t* = {threshold:.6g}."
            ),
        ]
    )
    return


@app.cell(hide_code=True)
def _():
    mo.md(r"""
    ## Predict, then check

    **Question 1.** Keep $c = 0.5$. What is the access threshold $t^*$ at a budget of
    **N = 1024** samples? (Hint: for large $N$, $1-(1-c)^{1/N} \approx \log\frac{1}{1-c}/N$.)
    """)
    return


@app.cell
def _():
    q1 = mo.ui.number(start=0.0, stop=1.0, step=1e-6, value=0.0, label="t* at N = 1024")
    q1_reveal = mo.ui.checkbox(label="reveal")
    mo.hstack([q1, q1_reveal], justify="start")
    return q1, q1_reveal


@app.cell
def _(logp0):
    q1_exact = float(-jnp.expm1(jnp.log1p(-0.5) / 1024))
    # the smallest-probability behavior accessible at N = 1024: its reach is at least 1/2
    _acc = fe.accessible_support(logp0, 1024, 0.5)
    q1_weakest = float(jnp.min(jnp.where(_acc, jnp.exp(logp0), 1.0)))
    q1_weakest_reach = float(fe.reach_probability(jnp.log(q1_weakest), 1024))
    return q1_exact, q1_weakest, q1_weakest_reach


@app.cell(hide_code=True)
def _(q1, q1_exact, q1_reveal, q1_weakest, q1_weakest_reach):
    kit.reveal(
        mo,
        q1_reveal.value,
        q1.value,
        f"t* = 1 − 0.5^(1/1024) = **{q1_exact:.6e}** (the approximation log 2 / 1024 = "
        f"{np.log(2) / 1024:.6e}). The least probable accessible behavior at N = 1024 has "
        f"p0 = {q1_weakest:.3e} and reach probability {q1_weakest_reach:.4f} ≥ 0.5.",
        kit.close_enough(q1.value, q1_exact, rel=0.05),
    )
    return


@app.cell(hide_code=True)
def _():
    mo.md(r"""
    **Question 2.** The plateau (behaviors 38–47) has $p_0 \approx 9\cdot 10^{-9}$ each. Which
    budget (among the slider's values) is the first at which the plateau becomes accessible?
    """)
    return


@app.cell
def _():
    q2 = mo.ui.dropdown(
        options=["1024", "16384", "1000000", "100000000", "never"], label="my prediction"
    )
    q2_reveal = mo.ui.checkbox(label="reveal")
    mo.hstack([q2, q2_reveal], justify="start")
    return q2, q2_reveal


@app.cell
def _(logp0):
    plateau_p = float(jnp.exp(logp0[40]))
    _budgets = [1024, 16384, 10**6, 10**8]
    _acc = [bool(fe.accessible_support(logp0, b, 0.5)[40]) for b in _budgets]
    plateau_first = next((str(b) for b, a in zip(_budgets, _acc, strict=True) if a), "never")
    return plateau_first, plateau_p


@app.cell(hide_code=True)
def _(plateau_first, plateau_p, q2, q2_reveal):
    kit.reveal(
        mo,
        q2_reveal.value,
        q2.value,
        f"Each plateau behavior has p0 = {plateau_p:.3e}, so it needs N ≳ log 2 / p0 ≈ "
        f"{np.log(2) / plateau_p:.3g} samples: the first slider budget that reaches it is "
        f"**{plateau_first}**. The singular stretch (48–59) never becomes accessible, at any N.",
    )
    return


@app.cell(hide_code=True)
def _():
    mo.md(r"""
    ## Elicitation or creation? It depends on the budget

    Take an RL step that tilts $p_0$ toward a reward on behaviors 20–27 (the tail). At a small
    budget some of those behaviors were barriers, and the step makes them accessible: that reads
    as **creation**. At the budget you actually evaluate at (say the largest $k$ of pass@k),
    they were accessible all along: **elicitation**. `fe.diagnose` reports both; always diagnose
    at the largest budget you evaluate at.
    """)
    return


@app.cell
def _(logp0, n):
    step_reward = jnp.where((jnp.arange(n) >= 20) & (jnp.arange(n) < 28), 1.0, 0.0)
    logq_step = fe.gibbs(logp0, -step_reward, 0.25)
    step_budgets = [16, 256, 4096, 65536]
    diagnoses = {b: fe.diagnose(logp0, logq_step, b) for b in step_budgets}
    step_table = [
        (b, d.verdict, int(d.gained), int(d.lost), float(d.elicited_mass), float(d.created_mass))
        for b, d in diagnoses.items()
    ]
    step_kl = float(fe.kl(logq_step, logp0))
    return step_kl, step_table


@app.cell(hide_code=True)
def _(step_kl, step_table):
    _rows = "\n".join(
        f"| {b} | {v} | {g} | {lo} | {e:.4f} | {c:.4f} |" for b, v, g, lo, e, c in step_table
    )
    mo.md(
        f"The step costs KL = {step_kl:.4f} nats.\n\n"
        "| budget N | verdict | gained | lost | elicited mass | created mass |\n"
        "|---|---|---|---|---|---|\n" + _rows
    )
    return


@app.cell(hide_code=True)
def _():
    mo.md(r"""
    ## Exercises

    1. Set the basin mass to 0.5, then 0.99. Which regimes change, and which cannot change
       whatever the basin mass is? Why?
    2. What is the least KL a reweighting of $p_0$ must pay to make plateau behavior 40
       accessible at $N = 1024$? (It is a Bernoulli divergence, `docs/theory.md` T6;
       `fe.expand.elicitation_cost` computes it.)
    3. Does raising the confidence $c$ grow or shrink the accessible support at fixed $N$?
    """)
    return


@app.cell
def _(logp0, n):
    _target = jnp.arange(n) == 40
    cost40 = fe.expand.elicitation_cost(logp0, _target, 1024)
    _t = float(-jnp.expm1(jnp.log1p(-0.5) / 1024))
    _p = float(jnp.exp(logp0[40]))
    bernoulli_by_hand = _t * np.log(_t / _p) + (1 - _t) * np.log((1 - _t) / (1 - _p))
    support_by_c = {c: int(jnp.sum(fe.accessible_support(logp0, 64, c))) for c in (0.1, 0.5, 0.9)}
    return bernoulli_by_hand, cost40, support_by_c


@app.cell(hide_code=True)
def _(bernoulli_by_hand, cost40, support_by_c):
    mo.accordion(
        {
            "Solution 1": mo.md(
                "The basin mass only moves the line between **basin** and **tail** (both are "
                "accessible). Barrier and singular depend on N and c alone (and singular on the "
                "support of p0 alone)."
            ),
            "Solution 2": mo.md(
                f"`elicitation_cost(...).kl_to_access` = {float(cost40.kl_to_access):.6f} nats; "
                f"by hand, d(t* ‖ p0(40)) = {bernoulli_by_hand:.6f} nats — tiny. A barrier "
                "is cheap in KL, but a policy must *sample* the behavior before a gradient "
                "can move it."
            ),
            "Solution 3": mo.md(
                "It shrinks (t* grows with c). At N = 64: "
                + ", ".join(f"c = {c}: {k} accessible" for c, k in support_by_c.items())
                + "."
            ),
        }
    )
    return


@app.cell
def _(
    basin_mass,
    bernoulli_by_hand,
    budget,
    confidence,
    cost40,
    counts,
    plateau_first,
    q1_exact,
    step_table,
    threshold,
):
    key_numbers = {
        "budget": budget,
        "confidence": confidence,
        "basin_mass": basin_mass,
        "threshold": threshold,
        "counts": counts,
        "threshold_1024": q1_exact,
        "plateau_first_budget": plateau_first,
        "verdicts": {b: v for b, v, *_ in step_table},
        "kl_to_access_40": float(cost40.kl_to_access),
        "bernoulli_by_hand": float(bernoulli_by_hand),
    }
    return (key_numbers,)


if __name__ == "__main__":
    app.run()
