"""Lesson 3 — SFT, RL and DPO land on one target (small live training runs, exact and sampled).

Run it: ``marimo run lessons/03_one_target.py``.
Headless at the test size: ``FREEENERGY_LESSON_TINY=1 python lessons/03_one_target.py``.
"""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="3 · SFT, RL and DPO land on one target")

with app.setup:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import lessonkit as kit
    import marimo as mo
    import numpy as np
    import optax

    import freeenergy as fe
    from freeenergy import train as tr


@app.cell(hide_code=True)
def _():
    mo.md(r"""
    # Lesson 3 · SFT, RL and DPO land on one target

    Three recipes, one answer. For a reward $r$ and a KL coefficient $\beta$:

    * **RL with a KL penalty** maximizes $\mathbb{E}_q[r] - \beta\,\mathrm{KL}(q\|p_0)$; its
      optimum is the Gibbs tilt $q^* \propto p_0\,e^{r/\beta}$ (lesson 1).
    * **SFT** on demonstrations drawn from $q^*$ minimizes cross-entropy, whose optimum is the
      demonstration distribution — $q^*$ again. **Reward-weighted SFT** on samples of $p_0$
      (weights $e^{r/\beta}$) has optimum $p_0 e^{r/\beta}/Z = q^*$ too (`docs/theory.md` T11).
    * **DPO** on Bradley–Terry preferences $P(y \succ y') = \sigma(r(y) - r(y'))$ is minimized
      where $\beta\log\frac{q(y)}{p_0(y)} - \beta\log\frac{q(y')}{p_0(y')} = r(y) - r(y')$ — the
      same tilt.

    Below, each method is trained **live** with `freeenergy.train` (a tabular policy over 8
    behaviors, optax Adam), either on exact expectations or on finite samples, and measured by
    $\mathrm{KL}(q^*\|q_t)$, its divergence from the exact answer `fe.gibbs(p0, -r, β)`.
    """)
    return


@app.cell
def _():
    p0 = jnp.array([0.28, 0.2, 0.16, 0.12, 0.1, 0.07, 0.05, 0.02])
    logp0 = jnp.log(p0)
    reward = jnp.array([0.1, -0.4, 0.8, 0.0, 0.5, 1.0, -0.2, 0.9])
    return logp0, reward


@app.cell
def _():
    beta_select = mo.ui.dropdown(
        options={"0.25": 0.25, "0.5": 0.5, "1.0": 1.0}, value="0.5", label="β"
    )
    steps_slider = mo.ui.slider(
        steps=[100, 200, 400, 800],
        value=kit.size(400, 100),
        label="training steps",
        show_value=True,
    )
    samples_slider = mo.ui.slider(
        steps=[4, 16, 64, 256],
        value=16,
        label="samples per step (sampled mode)",
        show_value=True,
    )
    mo.hstack([beta_select, steps_slider, samples_slider], justify="start")
    return beta_select, samples_slider, steps_slider


@app.cell
def _(beta_select, logp0, reward, samples_slider, steps_slider):
    beta = float(beta_select.value)
    steps = int(steps_slider.value)
    num_samples = int(samples_slider.value)
    qstar = fe.gibbs(logp0, -reward, beta)  # the exact answer every method should reach

    def make(name, mode):
        m = num_samples
        if name == "SFT on q* demos":
            objective = tr.sft(mode, num_samples=m)
        elif name == "weighted SFT on p0":
            objective = tr.sft(mode, num_samples=m, weighting="reward")
        elif name == "REINFORCE + KL":
            objective = tr.reinforce(mode, num_samples=m, kl="exact" if mode == "exact" else "k1")
        else:
            objective = tr.dpo(mode, num_samples=m)
        lr = 0.1 if mode == "exact" else optax.cosine_decay_schedule(0.05, steps, alpha=0.01)
        return tr.make_trainer(tr.tabular(logp0), objective, optax.adam(lr))

    methods = ["SFT on q* demos", "weighted SFT on p0", "REINFORCE + KL", "DPO"]
    runs = {}
    for _i, _name in enumerate(methods):
        _data = qstar if _name == "SFT on q* demos" else logp0
        _batch = tr.Batch(reward, beta, _data)
        for _mode in ("exact", "sampled"):
            if kit.tiny() and _mode == "sampled" and _name != "SFT on q* demos":
                continue  # the test size compiles one sampled run only
            _trainer = make(_name, _mode)
            _state, _info = tr.run(_trainer, jax.random.key(_i), _batch, steps)
            runs[(_name, _mode)] = (_trainer.policy.logprobs(_state.params), _info)
    final_kl = {k: float(fe.kl(qstar, v[0])) for k, v in runs.items()}
    return beta, final_kl, methods, num_samples, qstar, runs, steps


@app.cell(hide_code=True)
def _(beta, final_kl, methods, num_samples, runs, steps):
    _fig, (_ax1, _ax2) = kit.figure(1, 2, width=4.8, height=3.6)
    for _c, _name in enumerate(methods):
        for _ax, _mode in ((_ax1, "exact"), (_ax2, "sampled")):
            if (_name, _mode) not in runs:
                continue
            _curve = np.maximum(np.asarray(runs[(_name, _mode)][1].kl_target), 1e-16)
            _ax.plot(np.arange(1, steps + 1), _curve, color=kit.CYCLE[_c], label=_name)
    for _ax, _title in ((_ax1, "exact expectations"), (_ax2, f"sampled, {num_samples}/step")):
        _ax.set_yscale("log")
        _ax.set_xlabel("step")
        _ax.set_title(_title)
    _ax1.set_ylabel("KL(q* ‖ q_t)  (nats)")
    _ax1.legend(fontsize=8)
    _rows = "\n".join(
        f"| {n} | {final_kl[(n, 'exact')]:.2e} | {final_kl.get((n, 'sampled'), np.nan):.2e} |"
        for n in methods
    )
    mo.vstack(
        [
            _fig,
            mo.md(
                f"Final KL(q* ‖ q) after {steps} steps at β = {beta:g}:\n\n"
                "| method | exact | sampled |\n|---|---|---|\n" + _rows
            ),
        ]
    )
    return


@app.cell(hide_code=True)
def _():
    mo.md(r"""
    ## Predict, then check

    **Question 1.** Train SFT on $q^*$'s demonstrations and RL with the KL penalty, both in exact
    mode. How far apart (KL between the two trained models, in nats) do you expect them to end?
    """)
    return


@app.cell
def _():
    q1 = mo.ui.dropdown(
        options=["about 1 nat", "about 0.1 nat", "about 0.01 nat", "below 1e-6 nat"],
        label="my prediction",
    )
    q1_reveal = mo.ui.checkbox(label="reveal")
    mo.hstack([q1, q1_reveal], justify="start")
    return q1, q1_reveal


@app.cell
def _(runs):
    sft_vs_rl = float(
        fe.kl(runs[("SFT on q* demos", "exact")][0], runs[("REINFORCE + KL", "exact")][0])
    )
    return (sft_vs_rl,)


@app.cell(hide_code=True)
def _(q1, q1_reveal, sft_vs_rl, steps):
    kit.reveal(
        mo,
        q1_reveal.value,
        q1.value,
        f"After {steps} exact steps, KL(SFT ‖ RL) = **{sft_vs_rl:.3e} nats**: they land on the "
        "same model, the Gibbs tilt, to the accuracy the optimizer has reached.",
    )
    return


@app.cell(hide_code=True)
def _():
    mo.md(r"""
    **Question 2.** Sampled methods see only a few draws per step. With more samples per step,
    does the final KL to $q^*$ of sampled SFT (demonstrations drawn from $q^*$) go **down**,
    **up**, or **stay the same**? Predict, then move the *samples per step* slider and tick
    reveal.
    """)
    return


@app.cell
def _():
    q2 = mo.ui.dropdown(options=["down", "up", "stays the same"], label="my prediction")
    q2_reveal = mo.ui.checkbox(label="reveal")
    mo.hstack([q2, q2_reveal], justify="start")
    return q2, q2_reveal


@app.cell(hide_code=True)
def _(final_kl, num_samples, q2, q2_reveal):
    kit.reveal(
        mo,
        q2_reveal.value,
        q2.value,
        f"At {num_samples} samples per step, sampled SFT ends at KL = "
        f"{final_kl[('SFT on q* demos', 'sampled')]:.3e} nats (exact mode: "
        f"{final_kl[('SFT on q* demos', 'exact')]:.3e}). The sampled run stalls at a **noise "
        "floor** set by the finite demonstrations of each step, which falls as the number of "
        "samples per step grows (and as the learning rate decays): the target does not move, "
        "only the noise around it.",
    )
    return


@app.cell(hide_code=True)
def _():
    mo.md(r"""
    ## Exercises

    1. DPO never sees $r$, only preferences. Recover $r$ from the trained DPO model, up to a
       constant, through its implicit reward $\beta\log(q/p_0)$.
    2. Weighted SFT on a *stored* set $S$ of reference samples can only put mass on $S$. What
       does that cost against the best model, as a function of $q^*(S)$?
    3. Why does reward-weighted SFT on $p_0$ need $\beta > 0$, while plain RL can run at
       $\beta = 0$?
    """)
    return


@app.cell
def _(beta, logp0, qstar, reward, runs):
    _logq_dpo = runs[("DPO", "exact")][0]
    implied = beta * (_logq_dpo - logp0)
    implied_reward_error = float(
        jnp.max(jnp.abs((implied - implied.mean()) - (reward - reward.mean())))
    )
    _draws = fe.sample(jax.random.key(7), logp0, 6)
    stored = np.unique(np.asarray(_draws))
    stored_mass = float(jnp.sum(jnp.exp(qstar[stored])))
    stored_price = float(-beta * jnp.log(stored_mass))
    return implied_reward_error, stored, stored_mass, stored_price


@app.cell(hide_code=True)
def _(beta, implied_reward_error, stored, stored_mass, stored_price):
    mo.accordion(
        {
            "Solution 1": mo.md(
                "The DPO optimum satisfies β·log(q/p0) = r + const, so centre both: the largest "
                f"difference between the centred implicit reward and the centred r is "
                f"{implied_reward_error:.2e} after the exact run."
            ),
            "Solution 2": mo.md(
                "A stored set of 6 draws of p0 here holds the distinct behaviors "
                f"{stored.tolist()}, with q*(S) = {stored_mass:.4f}. Any model supported "
                f"on S scores at least β·log(1/q*(S)) = {stored_price:.4f} below the best "
                f"value of E[r] − β·KL (β = {beta:g}); the best S-supported model, q* "
                "restricted to S, pays exactly that (`docs/theory.md` T11)."
            ),
            "Solution 3": mo.md(
                "The weights are e^{r/β}: at β = 0 they are infinite. β = 0 RL has no KL anchor "
                "and its optimum is the limit of the tilt, p0 conditioned on the best reward."
            ),
        }
    )
    return


@app.cell
def _(beta, final_kl, num_samples, sft_vs_rl, steps, stored_price):
    key_numbers = {
        "beta": beta,
        "steps": steps,
        "num_samples": num_samples,
        "final_kl": {f"{name} / {mode}": v for (name, mode), v in final_kl.items()},
        "sft_vs_rl": sft_vs_rl,
        "stored_price": stored_price,
    }
    return (key_numbers,)


if __name__ == "__main__":
    app.run()
