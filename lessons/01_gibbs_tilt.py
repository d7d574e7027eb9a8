"""Lesson 1 — the Gibbs tilt and the free energy (β, reward, the frontier).

Run it: ``marimo run lessons/01_gibbs_tilt.py`` (or ``marimo edit`` to change the code).
Headless at the test size: ``FREEENERGY_LESSON_TINY=1 python lessons/01_gibbs_tilt.py``.
"""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="1 · The Gibbs tilt and the free energy")

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
    # Lesson 1 · The Gibbs tilt and the free energy

    Post-training (SFT, RL with a KL penalty, DPO) changes a pretrained **reference**
    distribution $p_0$ over behaviors into a new model $q$. The free-energy view says all of them
    solve one problem: minimize the **free energy**

    $$F_\beta[q] \;=\; \mathbb{E}_q[U] \;+\; \beta\,\mathrm{KL}(q\,\|\,p_0),$$

    with an energy $U$ (low is good; for RL, $U = -r$ with reward $r$) and a temperature
    $\beta > 0$ that prices every nat of divergence from $p_0$. The minimizer is the
    **Gibbs tilt**

    $$q^*_\beta(y) \;=\; \frac{p_0(y)\,e^{-U(y)/\beta}}{Z_\beta},\qquad
    Z_\beta = \sum_y p_0(y)\,e^{-U(y)/\beta},\qquad \min_q F_\beta[q] = -\beta\log Z_\beta .$$

    You will move $\beta$, watch where the mass goes, and see that the tilts trace the best
    reward reachable at every KL — the **frontier**. Every number on this page is computed
    exactly by `freeenergy` (natural logarithms, KL in nats; the theory is in `docs/theory.md`).
    """)
    return


@app.cell
def _():
    # The reference model: eight answers to one prompt, and a graded reward in [0, 1].
    answers = ["A", "B", "C", "D", "E", "F", "G", "H"]
    p0 = jnp.array([0.30, 0.22, 0.16, 0.12, 0.09, 0.06, 0.04, 0.01])
    logp0 = jnp.log(p0)
    reward = jnp.array([0.0, 0.2, 1.0, 0.0, 0.5, 1.0, 0.3, 1.0])
    return answers, logp0, p0, reward


@app.cell(hide_code=True)
def _(answers, p0, reward):
    _rows = [
        "| answer | " + " | ".join(answers) + " |",
        "|---|" + "---|" * len(answers),
        "| $p_0$ | " + " | ".join(f"{float(v):.2f}" for v in p0) + " |",
        "| $r$ | " + " | ".join(f"{float(v):.1f}" for v in reward) + " |",
    ]
    mo.md(
        "**The reference and the reward.** Mean reward under $p_0$: "
        f"{float(jnp.sum(p0 * reward)):.3f}.\n\n" + "\n".join(_rows)
    )
    return


@app.cell
def _():
    beta_slider = mo.ui.slider(
        steps=[0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0],
        value=0.5,
        label="temperature β",
        show_value=True,
        full_width=True,
    )
    beta_slider  # noqa: B018 - the cell output
    return (beta_slider,)


@app.cell
def _(beta_slider, logp0, reward):
    beta = float(beta_slider.value)
    logq = fe.gibbs(logp0, -reward, beta)  # the tilt q ∝ p0·exp(r/β)
    kl_now = float(fe.kl(logq, logp0))
    reward_now = float(jnp.sum(jnp.exp(logq) * reward))
    free_energy_now = float(fe.free_energy(logq, logp0, -reward, beta))
    min_free_energy = float(-beta * fe.log_partition(logp0, -reward, beta))
    return beta, free_energy_now, kl_now, logq, min_free_energy, reward_now


@app.cell(hide_code=True)
def _(beta, free_energy_now, kl_now, min_free_energy, reward_now):
    mo.md(f"""
    At **β = {beta:.12g}** the tilt has

    * **KL(q‖p0) = {kl_now:.12f} nats**
    * expected reward E_q[r] = {reward_now:.6f}
    * free energy F_β[q*] = E_q[−r] + β·KL = {free_energy_now:.9f}, which equals
      −β log Z_β = {min_free_energy:.9f}
    """)
    return


@app.cell(hide_code=True)
def _(answers, beta, logq, p0, reward):
    _fig, (_ax1, _ax2) = kit.figure(1, 2, width=4.4, height=3.2)
    _x = np.arange(len(answers))
    _ax1.bar(_x - 0.2, np.asarray(p0), width=0.4, label="reference $p_0$", color=kit.CYCLE[5])
    _ax1.bar(
        _x + 0.2,
        np.exp(np.asarray(logq)),
        width=0.4,
        label=f"tilt, β = {beta:g}",
        color=kit.CYCLE[0],
    )
    _ax1.set_xticks(_x, answers)
    _ax1.set_ylabel("probability")
    _ax1.set_title("where the mass goes")
    _ax1.legend()
    _ratio = np.asarray(logq) - np.log(np.asarray(p0))
    _ax2.plot(np.asarray(reward), _ratio, "o", color=kit.CYCLE[0])
    # answers with equal reward share one point (the tilt scales them alike): one label each
    for _r in sorted(set(np.asarray(reward).tolist())):
        _idx = [i for i, v in enumerate(np.asarray(reward).tolist()) if v == _r]
        _ax2.annotate(
            ",".join(answers[i] for i in _idx),
            (_r, float(_ratio[_idx[0]])),
            textcoords="offset points",
            xytext=(5, -10),
            fontsize=8,
        )
    _ax2.set_xlabel("reward r")
    _ax2.set_ylabel("log q/p0")
    _ax2.set_title("every tilt is a straight line")
    _fig  # noqa: B018 - the cell output
    return


@app.cell(hide_code=True)
def _():
    mo.md(r"""
    ## Predict, then check

    **Question 1.** The slider starts at β = 0.5. If you cool the model to **β = 0.1**, what
    happens to KL(q‖p0)?
    """)
    return


@app.cell
def _():
    q1 = mo.ui.dropdown(
        options=["it increases", "it decreases", "it stays the same"], label="my prediction"
    )
    q1_reveal = mo.ui.checkbox(label="reveal")
    mo.hstack([q1, q1_reveal], justify="start")
    return q1, q1_reveal


@app.cell
def _(logp0, reward):
    q1_kl = {b: float(fe.kl(fe.gibbs(logp0, -reward, b), logp0)) for b in (0.5, 0.1)}
    return (q1_kl,)


@app.cell(hide_code=True)
def _(q1, q1_kl, q1_reveal):
    kit.reveal(
        mo,
        q1_reveal.value,
        q1.value,
        f"KL at β = 0.5 is {q1_kl[0.5]:.4f} nats; at β = 0.1 it is {q1_kl[0.1]:.4f} nats: "
        "**it increases**. A lower temperature makes each nat of divergence cheaper relative "
        "to the reward, so the tilt moves further from $p_0$ (the KL of the Gibbs family "
        "grows monotonically as β falls).",
    )
    return


@app.cell(hide_code=True)
def _():
    mo.md(r"""
    **Question 2.** For a large temperature the tilt is a small perturbation of $p_0$, and
    $\mathrm{KL}(q_\beta\|p_0) \approx \mathrm{Var}_{p_0}(r)/(2\beta^2)$. Predict the exact KL at
    **β = 5** (in nats; the variance of $r$ under $p_0$ is printed in the reveal).
    """)
    return


@app.cell
def _():
    q2 = mo.ui.number(start=0.0, stop=1.0, step=0.0001, value=0.0, label="KL at β = 5 (nats)")
    q2_reveal = mo.ui.checkbox(label="reveal")
    mo.hstack([q2, q2_reveal], justify="start")
    return q2, q2_reveal


@app.cell
def _(logp0, p0, reward):
    var0 = float(jnp.sum(p0 * (reward - jnp.sum(p0 * reward)) ** 2))
    q2_exact = float(fe.kl(fe.gibbs(logp0, -reward, 5.0), logp0))
    q2_local = var0 / (2 * 5.0**2)
    return q2_exact, q2_local, var0


@app.cell(hide_code=True)
def _(q2, q2_exact, q2_local, q2_reveal, var0):
    kit.reveal(
        mo,
        q2_reveal.value,
        q2.value,
        f"Var_p0(r) = {var0:.5f}, so the local formula gives {q2_local:.6f} nats; the exact KL "
        f"of the tilt is **{q2_exact:.6f} nats** (relative gap "
        f"{abs(q2_exact - q2_local) / q2_exact:.2%}, which shrinks like 1/β).",
        kit.close_enough(q2.value, q2_exact),
    )
    return


@app.cell(hide_code=True)
def _():
    mo.md(r"""
    ## The frontier

    For each β the tilt gives one point (KL, expected reward). The curve of these points is the
    **reward–KL frontier**: no model $q$ — tilt or not — earns more reward at the same KL
    (Lagrangian duality). Below, random reweightings of $p_0$ (grey) all fall under it, and
    `fe.tilt_for_kl` solves for the temperature that spends a given KL budget exactly.
    """)
    return


@app.cell
def _():
    budget_slider = mo.ui.slider(
        start=0.05, stop=1.5, step=0.05, value=0.3, label="KL budget ε (nats)", show_value=True
    )
    budget_slider  # noqa: B018 - the cell output
    return (budget_slider,)


@app.cell
def _(budget_slider, logp0, reward):
    num_random = kit.size(400, 40)
    betas = jnp.logspace(-2, 2, kit.size(121, 25))
    frontier_reward, frontier_kl = fe.frontier(logp0, reward, betas)
    budget = float(budget_slider.value)
    logq_budget, beta_budget = fe.tilt_for_kl(logp0, reward, budget)
    budget_kl = float(fe.kl(logq_budget, logp0))
    budget_reward = float(jnp.sum(jnp.exp(logq_budget) * reward))
    # Random reweightings log q = log p0 + s·noise: none beats the frontier at its own KL.
    _noise = jax.random.normal(jax.random.key(1), (num_random, logp0.size))
    _scale = jnp.exp(jax.random.uniform(jax.random.key(2), (num_random, 1), minval=-3, maxval=1))
    random_logq = fe.normalize(logp0 + _scale * _noise)
    random_kl = fe.kl(random_logq, logp0)
    random_reward = jnp.sum(jnp.exp(random_logq) * reward, axis=-1)
    # the frontier reward at each random model's KL, by interpolation along the exact curve
    _order = jnp.argsort(frontier_kl)
    frontier_at_random = jnp.interp(random_kl, frontier_kl[_order], frontier_reward[_order])
    random_below = float(jnp.mean(random_reward <= frontier_at_random + 1e-9))
    return (
        beta_budget,
        budget,
        budget_kl,
        budget_reward,
        frontier_kl,
        frontier_reward,
        random_below,
        random_kl,
        random_reward,
    )


@app.cell(hide_code=True)
def _(
    beta,
    beta_budget,
    budget,
    budget_kl,
    budget_reward,
    frontier_kl,
    frontier_reward,
    kl_now,
    random_below,
    random_kl,
    random_reward,
    reward_now,
):
    _fig, (_ax,) = kit.figure(1, 1, width=6.0, height=3.8)
    _ax.scatter(
        np.asarray(random_kl),
        np.asarray(random_reward),
        s=6,
        color="0.7",
        label="random reweightings",
    )
    _ax.plot(
        np.asarray(frontier_kl),
        np.asarray(frontier_reward),
        color=kit.CYCLE[0],
        label="Gibbs tilts (frontier)",
    )
    _ax.plot([kl_now], [reward_now], "o", color=kit.CYCLE[1], label=f"slider: β = {beta:g}")
    _ax.plot(
        [budget_kl], [budget_reward], "s", color=kit.CYCLE[2], label=f"tilt_for_kl(ε = {budget:g})"
    )
    _ax.axvline(budget, color=kit.CYCLE[2], lw=0.8, ls=":")
    _ax.set_xlim(0, max(1.6, budget + 0.1))
    _ax.set_xlabel("KL(q‖p0)  (nats)")
    _ax.set_ylabel("expected reward")
    _ax.legend(loc="lower right")
    mo.vstack(
        [
            _fig,
            mo.md(
                f"`tilt_for_kl` at ε = {budget:g}: β = {float(beta_budget):.6f}, KL = "
                f"{budget_kl:.8f} nats, E[r] = {budget_reward:.6f}. "
                f"{100 * random_below:.0f}% of the random reweightings lie on or below the "
                "frontier."
            ),
        ]
    )
    return


@app.cell(hide_code=True)
def _():
    mo.md(r"""
    ## Exercises

    1. Show that $\log q_\beta(y)/p_0(y) = r(y)/\beta - \log Z_\beta$ — the right-hand plot above
       is a line of slope $1/\beta$. Read the slope off the plot at two temperatures.
    2. What does the tilt become as $\beta \to 0$? How much KL does that limit cost here?
    3. Answers C, F and H have the same reward. Does the tilt change their *ratio*?
    4. Check the variational principle: compute $F_\beta[q]$ for $q = p_0$ and for the model that
       puts all mass on answer C; both must be above $-\beta\log Z_\beta$.
    """)
    return


@app.cell
def _(logp0, reward):
    # Solutions, computed (used in the folded answers below).
    limit_kl = float(-jnp.log(jnp.sum(jnp.where(reward == reward.max(), jnp.exp(logp0), 0.0))))
    _cold = fe.gibbs(logp0, -reward, 1e-4)
    cold_kl = float(fe.kl(_cold, logp0))
    ratio_cf = [
        float(r)
        for r in (
            jnp.exp(logp0[2] - logp0[5]),
            jnp.exp(fe.gibbs(logp0, -reward, 0.1)[2] - fe.gibbs(logp0, -reward, 0.1)[5]),
        )
    ]
    _only_c = jnp.log(jnp.eye(8)[2])
    f_checks = {
        "p0": float(fe.free_energy(logp0, logp0, -reward, 0.5)),
        "only C": float(fe.free_energy(_only_c, logp0, -reward, 0.5)),
        "min": float(-0.5 * fe.log_partition(logp0, -reward, 0.5)),
    }
    return cold_kl, f_checks, limit_kl, ratio_cf


@app.cell(hide_code=True)
def _(cold_kl, f_checks, limit_kl, ratio_cf):
    mo.accordion(
        {
            "Solution 1": mo.md(r"""
        $\log q_\beta = \log p_0 + r/\beta - \log Z_\beta$, so $\log(q/p_0)$ is affine in $r$
        with slope $1/\beta$ and intercept $-\log Z_\beta$ (the same for every answer).
        """),
            "Solution 2": mo.md(f"""
        The tilt concentrates on the best-reward answers *in proportion to p0*:
        $q_0 = p_0(\\cdot\\mid r = \\max r)$. Its KL is $-\\log p_0(\\arg\\max r)$ =
        {limit_kl:.6f} nats (at β = 1e-4 the tilt's KL is already {cold_kl:.6f}).
        """),
            "Solution 3": mo.md(f"""
        No: equal rewards get equal factors $e^{{r/\\beta}}$, so $q(C)/q(F) = p_0(C)/p_0(F)$ =
        {ratio_cf[0]:.6f} at every β (at β = 0.1: {ratio_cf[1]:.6f}).
        """),
            "Solution 4": mo.md(f"""
        At β = 0.5: $F[p_0]$ = {f_checks["p0"]:.6f}, $F[\\text{{only C}}]$ =
        {f_checks["only C"]:.6f}, and the minimum $-\\beta\\log Z$ = {f_checks["min"]:.6f}.
        """),
        }
    )
    return


@app.cell
def _(
    beta,
    beta_budget,
    budget,
    budget_kl,
    free_energy_now,
    kl_now,
    limit_kl,
    min_free_energy,
    q1_kl,
    q2_exact,
    random_below,
    reward_now,
):
    # The lesson's key numbers, checked against the library by the test suite.
    key_numbers = {
        "beta": beta,
        "kl": kl_now,
        "expected_reward": reward_now,
        "free_energy": free_energy_now,
        "min_free_energy": min_free_energy,
        "kl_beta_0.1": q1_kl[0.1],
        "kl_beta_5": q2_exact,
        "budget": budget,
        "budget_kl": budget_kl,
        "budget_beta": float(beta_budget),
        "limit_kl": limit_kl,
        "random_below_frontier": random_below,
    }
    return (key_numbers,)


if __name__ == "__main__":
    app.run()
