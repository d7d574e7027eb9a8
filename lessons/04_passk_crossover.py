"""Lesson 4 — why pass@k curves cross: shared parameters versus per-prompt tilts.

Run it: ``marimo run lessons/04_passk_crossover.py``.
Headless at the test size: ``FREEENERGY_LESSON_TINY=1 python lessons/04_passk_crossover.py``.
"""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="4 · Why pass@k curves cross")

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
    # Lesson 4 · Why pass@k curves cross

    A much-discussed observation: after RL with a verifier, a model's **pass@1** goes up but its
    **pass@k at large k** can fall *below* the base model's. If RL were a Gibbs tilt per prompt,
    that could not happen: for one prompt with a binary reward, the tilt raises the success mass
    $p \to p' > p$, and $\text{pass@}k = 1 - (1-p')^k$ is then above the base at **every** $k$.

    The crossing comes from **sharing**. A real model moves one set of parameters for all
    prompts. Here the shared policy is a single *sharpening exponent* $\theta$:
    $\log q_p = \mathrm{normalize}\big((1+\theta)\log p_{0,p}\big)$ for every prompt $p$
    (`freeenergy.train.shared` with the feature $\log p_0$). Sharpening helps prompts whose
    correct answer is the base's favourite (**easy**) and drains prompts whose correct answer is
    rare (**hard**).
    """)
    return


@app.cell
def _():
    num_easy_slider = mo.ui.slider(1, 12, value=6, label="easy prompts", show_value=True)
    num_hard_slider = mo.ui.slider(1, 12, value=6, label="hard prompts", show_value=True)
    theta_slider = mo.ui.slider(
        start=-0.5,
        stop=3.0,
        step=0.1,
        value=1.0,
        label="sharpening θ (try it by hand)",
        show_value=True,
    )
    mo.vstack([mo.hstack([num_easy_slider, num_hard_slider]), theta_slider])
    return num_easy_slider, num_hard_slider, theta_slider


@app.cell
def _(num_easy_slider, num_hard_slider):
    # Prompts over 16 answers with Zipf-like bases. The correct answer is the base's top answer
    # on easy prompts and a rare one (rank 10-15) on hard prompts.
    num_easy, num_hard, n = int(num_easy_slider.value), int(num_hard_slider.value), 16
    num_prompts = num_easy + num_hard
    _key_noise, _key_rank = jax.random.split(jax.random.key(0))
    _logits = -1.5 * np.log1p(np.arange(n))[None, :]
    _logits = _logits + 0.3 * np.asarray(jax.random.normal(_key_noise, (12 + 12, n)))[:num_prompts]
    logp0 = fe.normalize(jnp.asarray(_logits))
    _order = np.argsort(-np.asarray(logp0), axis=-1, kind="stable")
    _hard_ranks = np.asarray(jax.random.randint(_key_rank, (12,), 10, 16))[:num_hard]
    _ranks = np.concatenate([np.zeros(num_easy, np.int64), _hard_ranks])
    correct = np.zeros((num_prompts, n), bool)
    correct[np.arange(num_prompts), _order[np.arange(num_prompts), _ranks]] = True
    correct = jnp.asarray(correct)
    reward = correct.astype(logp0.dtype)
    ks = jnp.asarray([1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096], logp0.dtype)
    return correct, ks, logp0, num_easy, num_hard, reward


@app.cell
def _(correct, ks, logp0, theta_slider):
    theta = float(theta_slider.value)
    logq_hand = fe.normalize((1 + theta) * logp0)
    passk_base = np.asarray(fe.pass_at_k(logp0[None], correct[None], ks[:, None])).mean(-1)
    passk_hand = np.asarray(fe.pass_at_k(logq_hand[None], correct[None], ks[:, None])).mean(-1)
    return passk_base, passk_hand, theta


@app.cell
def _(correct, ks, logp0, reward):
    # RL through the shared parameter (exact REINFORCE with an exact KL penalty, β = 0.3) ...
    beta = 0.3
    _policy = tr.shared(logp0, logp0[..., None], offsets=False)
    _trainer = tr.make_trainer(
        _policy, tr.reinforce("exact", kl="exact"), optax.adam(0.1), correct=correct
    )
    _state, _ = tr.run(_trainer, jax.random.key(0), tr.Batch(reward, beta), kit.size(300, 150))
    theta_rl = float(_state.params.theta[0])
    logq_shared = _policy.logprobs(_state.params)
    kl_shared = fe.kl(logq_shared, logp0)  # the KL RL spent on each prompt
    # ... and the exact per-prompt tilt that spends the same KL on each prompt.
    logq_tilt, _ = fe.tilt_for_kl(logp0, reward, kl_shared)
    passk_shared = np.asarray(fe.pass_at_k(logq_shared[None], correct[None], ks[:, None])).mean(-1)
    passk_tilt = np.asarray(fe.pass_at_k(logq_tilt[None], correct[None], ks[:, None])).mean(-1)
    return beta, kl_shared, logq_shared, logq_tilt, passk_shared, passk_tilt, theta_rl


@app.cell(hide_code=True)
def _(ks, passk_base, passk_hand, passk_shared, passk_tilt, theta, theta_rl):
    _fig, (_ax,) = kit.figure(1, 1, width=7.0, height=4.0)
    _k = np.asarray(ks)
    _ax.plot(_k, passk_base, "k-", lw=2, label="base p0")
    _ax.plot(_k, passk_hand, ":", color=kit.CYCLE[4], lw=2, label=f"shared, θ = {theta:g} (slider)")
    _ax.plot(
        _k,
        passk_shared,
        "o-",
        ms=3,
        color=kit.CYCLE[1],
        label=f"RL, shared θ (trained: {theta_rl:.2f})",
    )
    _ax.plot(_k, passk_tilt, "s--", ms=3, color=kit.CYCLE[0], label="per-prompt tilt, same KL")
    _ax.set_xscale("log", base=2)
    _ax.set_xlabel("k")
    _ax.set_ylabel("mean pass@k over prompts")
    _ax.set_ylim(0, 1.02)
    _ax.legend(loc="lower right")
    _fig  # noqa: B018 - the cell output
    return


@app.cell(hide_code=True)
def _():
    mo.md(r"""
    ## Predict, then check

    **Question 1.** With the default mix (6 easy, 6 hard), is the RL model with the shared
    parameter **above** or **below** the base at $k = 4096$? And the per-prompt tilt?
    """)
    return


@app.cell
def _():
    q1 = mo.ui.dropdown(
        options=[
            "shared below, tilt above",
            "both above",
            "both below",
            "shared above, tilt below",
        ],
        label="my prediction",
    )
    q1_reveal = mo.ui.checkbox(label="reveal")
    mo.hstack([q1, q1_reveal], justify="start")
    return q1, q1_reveal


@app.cell(hide_code=True)
def _(passk_base, passk_shared, passk_tilt, q1, q1_reveal):
    kit.reveal(
        mo,
        q1_reveal.value,
        q1.value,
        f"At k = 1: base {passk_base[0]:.3f}, shared RL {passk_shared[0]:.3f}, per-prompt tilt "
        f"{passk_tilt[0]:.3f}. At k = 4096: base {passk_base[-1]:.4f}, shared RL "
        f"**{passk_shared[-1]:.4f}**, per-prompt tilt **{passk_tilt[-1]:.4f}**. The shared "
        "parameter trades the hard prompts for the easy ones; the tilt never loses.",
    )
    return


@app.cell(hide_code=True)
def _():
    mo.md(r"""
    **Question 2.** Move the *easy prompts* slider to 1 and *hard prompts* to 12. Compared with
    the default mix, what will the θ that RL trains be?
    """)
    return


@app.cell
def _():
    q2 = mo.ui.dropdown(
        options=["larger", "smaller but still positive", "negative (flattening)"],
        label="my prediction",
    )
    q2_reveal = mo.ui.checkbox(label="reveal")
    mo.hstack([q2, q2_reveal], justify="start")
    return q2, q2_reveal


@app.cell(hide_code=True)
def _(num_easy, num_hard, q2, q2_reveal, theta_rl):
    kit.reveal(
        mo,
        q2_reveal.value,
        q2.value,
        f"With {num_easy} easy and {num_hard} hard prompts RL trained θ = **{theta_rl:.3f}** "
        "(with 6 and 6 it is about 0.94). Twelve hard prompts pull toward flattening, yet θ "
        f"{'stays positive' if theta_rl > 0 else 'turns negative'}: a rare correct answer "
        "carries a gradient proportional to its tiny mass, so one easy prompt outweighs many "
        "hard ones. The shared parameter follows the prompts where reward is already likely.",
    )
    return


@app.cell(hide_code=True)
def _():
    mo.md(r"""
    ## Exercises

    1. Prove that for one prompt with a binary reward the tilt beats the base at every $k$.
    2. Which prompts lose success mass under the trained shared policy? Check it per prompt.
    3. Where do the base and the shared-RL curves cross? (Find the first $k$ at which shared RL
       falls below the base.)
    """)
    return


@app.cell
def _(correct, ks, logp0, logq_shared, logq_tilt, num_easy, passk_base, passk_shared):
    def success(lq):
        return np.asarray(jnp.sum(jnp.where(correct, jnp.exp(lq), 0.0), axis=-1))

    success_base, success_shared, success_tilt = (
        success(logp0),
        success(logq_shared),
        success(logq_tilt),
    )
    losers = [int(i) for i in np.nonzero(success_shared < success_base)[0]]
    _below = np.nonzero(passk_shared < passk_base)[0]
    crossing_k = int(np.asarray(ks)[_below[0]]) if _below.size else None
    easy_losers = [i for i in losers if i < num_easy]
    return crossing_k, easy_losers, losers, success_base, success_tilt


@app.cell(hide_code=True)
def _(crossing_k, easy_losers, losers, success_base, success_tilt):
    mo.accordion(
        {
            "Solution 1": mo.md(
                "The tilt multiplies correct answers by $e^{1/\\beta}$ and the rest by 1, so "
                "$p' = p e^{1/\\beta}/(p e^{1/\\beta} + 1 - p) > p$ whenever $0 < p < 1$; and "
                "$1-(1-p')^k > 1-(1-p)^k$ for every $k \\ge 1$. Here every prompt's success mass "
                f"rose under the tilt: {bool(np.all(success_tilt >= success_base))}."
            ),
            "Solution 2": mo.md(
                f"Prompts losing success mass under shared RL: {losers} (easy ones among them: "
                f"{easy_losers}) — the hard prompts, whose correct answer is rare."
            ),
            "Solution 3": mo.md(
                f"The first k at which shared RL is below the base: **{crossing_k}**."
                if crossing_k is not None
                else "With this mix the shared-RL curve never falls below the base."
            ),
        }
    )
    return


@app.cell
def _(
    beta,
    crossing_k,
    kl_shared,
    losers,
    num_easy,
    num_hard,
    passk_base,
    passk_shared,
    passk_tilt,
    theta,
    theta_rl,
):
    key_numbers = {
        "num_easy": num_easy,
        "num_hard": num_hard,
        "beta": beta,
        "theta_hand": theta,
        "theta_rl": theta_rl,
        "kl_shared": [float(x) for x in kl_shared],
        "pass_at_1": {"base": passk_base[0], "shared": passk_shared[0], "tilt": passk_tilt[0]},
        "pass_at_4096": {
            "base": passk_base[-1],
            "shared": passk_shared[-1],
            "tilt": passk_tilt[-1],
        },
        "crossing_k": crossing_k,
        "losers": losers,
    }
    return (key_numbers,)


if __name__ == "__main__":
    app.run()
