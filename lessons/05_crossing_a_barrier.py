"""Lesson 5 — crossing a barrier: search, tools, interaction, new information, and their costs.

Run it: ``marimo run lessons/05_crossing_a_barrier.py``.
Headless at the test size: ``FREEENERGY_LESSON_TINY=1 python lessons/05_crossing_a_barrier.py``.
"""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="5 · Crossing a barrier")

with app.setup:
    import math

    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import lessonkit as kit
    import marimo as mo
    import numpy as np

    import freeenergy as fe
    from freeenergy import expand
    from freeenergy import sequences as sq


@app.cell(hide_code=True)
def _():
    mo.md(r"""
    # Lesson 5 · Crossing a barrier — and what it costs

    A **barrier** behavior has $p_0(y) > 0$ but is not in the accessible support at your budget
    (lesson 2). A tilt could give it mass cheaply *in KL*, but on-policy training must first
    *sample* it, and it almost never does. A **singular** behavior ($p_0(y) = 0$) no tilt can
    reach at all. Getting there is **creation**, and it needs more than reweighting:

    | mechanism | what it adds | `freeenergy.expand` |
    |---|---|---|
    | search with a verifier | many samples, one check each | `best_of_n`, `tree_search` |
    | a tool | a macro-action that writes a snippet | `macro`, `augment`, `tool_distribution` |
    | interaction | feedback: where the attempt went wrong | `retry` |
    | new information | a teacher or data the reference never saw | `new_information`, `mix` |

    The task: strings of $L$ tokens from a 4-token vocabulary, emitted i.i.d. with probabilities
    (0.4, 0.3, 0.2, 0.1). The target is the one string that repeats the motif **2 3**
    (`2 3 2 3 …`), checked by an exact-match verifier. Every output distribution and every cost
    below is exact, computed over all $4^L$ strings.
    """)
    return


@app.cell
def _():
    length_select = mo.ui.dropdown(
        options={"4": 4, "6": 6, "8": 8}, value=kit.size("8", "4"), label="string length L"
    )
    budget_slider = mo.ui.slider(
        steps=[100, 1000, 10_000, 100_000, 1_000_000],
        value=kit.size(10_000, 1000),
        label="budget N",
        show_value=True,
    )
    mo.hstack([length_select, budget_slider], justify="start")
    return budget_slider, length_select


@app.cell
def _(budget_slider, length_select):
    length = int(length_select.value)
    budget = int(budget_slider.value)
    confidence = 0.5
    vocab, motif = 4, [2, 3]
    token_probs = jnp.array([0.4, 0.3, 0.2, 0.1])
    target = (motif * length)[:length]
    base = sq.iid(jnp.log(token_probs), length)
    verifier = sq.exact_match(vocab, target)
    logp0 = sq.enumerate(base)  # all 4^L strings
    index = int(expand.string_index(jnp.asarray(target), vocab))
    hit = jnp.arange(logp0.size) == index
    p_target = float(jnp.exp(logp0[index]))
    threshold = float(-jnp.expm1(jnp.log1p(-confidence) / budget))
    regime = fe.Regime(int(fe.regimes(logp0, budget, confidence)[index])).name.lower()
    return (
        base,
        budget,
        confidence,
        hit,
        index,
        length,
        logp0,
        motif,
        p_target,
        regime,
        target,
        threshold,
        verifier,
        vocab,
    )


@app.cell(hide_code=True)
def _(budget, length, p_target, regime, target, threshold):
    mo.md(f"""
    Target `{" ".join(map(str, target))}` (L = {length}): base probability
    **p0 = {p_target:.3e}**; at N = {budget} the access threshold is t* = {threshold:.3e}, so the
    target is a **{regime}**.
    """)
    return


@app.cell
def _():
    call_slider = mo.ui.slider(
        steps=[0.001, 0.003, 0.01, 0.03, 0.1, 0.3],
        value=kit.size(0.1, 0.03),
        label="tool: call probability π",
        show_value=True,
    )
    turns_slider = mo.ui.slider(
        1, 40, value=kit.size(20, 3), label="interaction: turns", show_value=True
    )
    weight_slider = mo.ui.slider(
        steps=[1e-6, 1e-5, 1e-4, 1e-3, 1e-2],
        value=1e-4,
        label="new information: mixing weight w",
        show_value=True,
    )
    mo.vstack([call_slider, turns_slider, weight_slider])
    return call_slider, turns_slider, weight_slider


@app.cell
def _(base, budget, confidence, hit, logp0, p_target, verifier):
    # Reweighting: the least KL that makes the target accessible (docs/theory.md T6), and the
    # samples on-policy training draws, on average, before it sees the target once.
    cost_reweight = expand.elicitation_cost(logp0, hit, budget, confidence)
    # Best-of-n with the verifier: the least n that succeeds with probability >= confidence.
    n_best = math.ceil(math.log1p(-confidence) / math.log1p(-p_target))
    logq_bon = expand.best_of_n(logp0, hit.astype(logp0.dtype), n_best)
    bon_kl = float(expand.best_of_n_kl(logp0, hit.astype(logp0.dtype), n_best))
    bon_bound = float(expand.best_of_n_kl_bound(n_best))
    bon_success = float(jnp.exp(logq_bon[hit.argmax()]))
    # Tree search with the verifier's prefix check as a process reward.
    searched, tree_cost = expand.tree_search(base, verifier)
    tree_kl = float(sq.kl(searched, base))
    return (bon_bound, bon_kl, bon_success, cost_reweight, n_best, tree_cost, tree_kl)


@app.cell
def _(base, budget, call_slider, confidence, index, logp0, motif, verifier, vocab):
    # A tool: a macro that writes the motif, called with probability π wherever it fits.
    call_prob = float(call_slider.value)
    tool_model = expand.augment(base, expand.macro(vocab, motif, call_prob))
    logq_tool = expand.tool_distribution(tool_model)  # back on the original strings
    p_tool = float(jnp.exp(logq_tool[index]))
    tool_regime = fe.Regime(int(fe.regimes(logq_tool, budget, confidence)[index])).name.lower()
    tool_kl = float(fe.kl(logq_tool, logp0))
    tool_calls = float(expand.expected_calls(tool_model))
    tool_verdict = fe.diagnose(logp0, logq_tool, budget, confidence).verdict
    del verifier
    return call_prob, p_tool, tool_calls, tool_kl, tool_regime, tool_verdict


@app.cell
def _(base, confidence, turns_slider, verifier):
    # Interaction: retry with feedback (the first wrong position is revealed).
    turns = int(turns_slider.value)
    retry = expand.retry(base, verifier, turns)
    retry_success = float(retry.success[-1])
    retry_tokens = float(retry.cost.tokens[-1])
    retry_calls = float(retry.cost.verifier_calls[-1])
    retry_samples = float(retry.cost.samples[-1])
    retry_kl = float(fe.kl(retry.logp_final, sq.enumerate(base)))
    _enough = np.flatnonzero(np.asarray(retry.success) >= confidence)
    turns_needed = int(_enough[0]) + 1 if _enough.size else None
    return retry_calls, retry_kl, retry_samples, retry_success, retry_tokens, turns, turns_needed


@app.cell
def _(budget, confidence, hit, index, length, motif, vocab, weight_slider):
    # New information: a base that never emits token 3 makes the target singular; mixing in a
    # teacher that alternates 2 and 3 (weight w) changes the reference's support.
    weight = float(weight_slider.value)
    with np.errstate(divide="ignore"):
        _poor = sq.iid(jnp.log(jnp.array([0.45, 0.35, 0.2, 0.0])), length)
    logp0_poor = sq.enumerate(_poor)
    _table = np.full((vocab, vocab), 1.0 / vocab)
    for _cur, _nxt in ((motif[0], motif[1]), (motif[1], motif[0])):
        _table[_cur] = 0.1 / (vocab - 1)
        _table[_cur, _nxt] = 0.9
    _teacher = sq.markov(jnp.log(jnp.asarray(_table)), length, [0])
    info = expand.new_information(
        logp0_poor, sq.enumerate(_teacher), weight, hit, budget, confidence
    )
    info_before = info.before.status
    info_after = info.after.status
    info_kl_forgetting = float(info.kl_forgetting)
    info_kl_to_access = float(info.after.kl_to_access)
    info_mass = float(jnp.exp(info.logp_reference[index]))
    poor_bon_mass = float(
        jnp.exp(expand.best_of_n(logp0_poor, hit.astype(logp0_poor.dtype), 10**6)[index])
    )
    return (
        info_after,
        info_before,
        info_kl_forgetting,
        info_kl_to_access,
        info_mass,
        poor_bon_mass,
        weight,
    )


@app.cell(hide_code=True)
def _(
    bon_kl,
    bon_success,
    call_prob,
    cost_reweight,
    info_after,
    info_before,
    info_kl_forgetting,
    info_kl_to_access,
    info_mass,
    length,
    n_best,
    p_target,
    p_tool,
    retry_calls,
    retry_kl,
    retry_samples,
    retry_success,
    retry_tokens,
    tool_calls,
    tool_kl,
    tool_regime,
    tool_verdict,
    tree_cost,
    tree_kl,
    turns,
    weight,
):
    _rows = [
        (
            "reweighting (SFT/RL)",
            float(cost_reweight.kl_to_access),
            1 / p_target,
            length / p_target,
            1 / p_target,
            "needs to sample it first",
        ),
        (
            f"best-of-{n_best}",
            bon_kl,
            n_best,
            n_best * length,
            n_best,
            f"success {bon_success:.3f}",
        ),
        (
            "tree search (process check)",
            tree_kl,
            1,
            float(tree_cost.tokens),
            float(tree_cost.verifier_calls),
            "success 1",
        ),
        (
            f"retry, {turns} turns",
            retry_kl,
            retry_samples,
            retry_tokens,
            retry_calls,
            f"success {retry_success:.3f}",
        ),
        (
            f"tool, π = {call_prob:g}",
            tool_kl,
            1 / p_tool,
            length / p_tool,
            1 / p_tool,
            f"target mass {p_tool:.2e}: {tool_regime} ({tool_verdict})",
        ),
    ]

    def _fmt(x):
        return "–" if x != x else f"{x:.3g}"

    _table = "\n".join(
        f"| {m} | {_fmt(k)} | {_fmt(s)} | {_fmt(t)} | {_fmt(v)} | {note} |"
        for m, k, s, t, v, note in _rows
    )
    _fig, (_ax,) = kit.figure(1, 1, width=7.0, height=3.4)
    _names = [r[0] for r in _rows]
    _ax.barh(_names, [r[3] for r in _rows], color=kit.CYCLE[: len(_rows)])
    _ax.set_xscale("log")
    _ax.set_xlabel("tokens generated per success (log scale)")
    _ax.invert_yaxis()
    mo.vstack(
        [
            mo.md(
                "**Costs on the barrier target** (per success; KL in nats to the base):\n\n"
                "| mechanism | KL | samples | tokens | verifier calls | outcome |\n"
                "|---|---|---|---|---|---|\n" + _table
            ),
            _fig,
            mo.md(
                f"**New information** (a base that never emits token 3): target {info_before} "
                f"before, **{info_after}** after mixing in the teacher at w = {weight:g}; its mass "
                f"is now {info_mass:.2e}, the old behavior is disturbed by KL(p0‖p1) = "
                f"{info_kl_forgetting:.2e} nats, and making it accessible then costs "
                f"{info_kl_to_access:.3g} nats of reweighting."
            ),
        ]
    )
    return


@app.cell(hide_code=True)
def _():
    mo.md(r"""
    ## Predict, then check

    **Question 1.** At the current length, how many samples $n$ must best-of-$n$ draw so that
    the verifier finds the target with probability at least 1/2?
    """)
    return


@app.cell
def _():
    q1 = mo.ui.number(start=1, stop=10**9, step=1, value=1, label="n")
    q1_reveal = mo.ui.checkbox(label="reveal")
    mo.hstack([q1, q1_reveal], justify="start")
    return q1, q1_reveal


@app.cell(hide_code=True)
def _(n_best, p_target, q1, q1_reveal):
    kit.reveal(
        mo,
        q1_reveal.value,
        q1.value,
        f"n = ⌈log(1/2) / log(1 − p0)⌉ = **{n_best}** (≈ log 2 / p0 = "
        f"{math.log(2) / p_target:.4g}).",
        kit.close_enough(q1.value, n_best, rel=0.1),
    )
    return


@app.cell(hide_code=True)
def _():
    mo.md(r"""
    **Question 2.** The usual formula for the KL of best-of-$n$ is $\log n - (n-1)/n$. For this
    binary verifier, is the exact KL **equal**, **smaller**, or **larger**?
    """)
    return


@app.cell
def _():
    q2 = mo.ui.dropdown(options=["equal", "smaller", "larger"], label="my prediction")
    q2_reveal = mo.ui.checkbox(label="reveal")
    mo.hstack([q2, q2_reveal], justify="start")
    return q2, q2_reveal


@app.cell(hide_code=True)
def _(bon_bound, bon_kl, n_best, p_target, q2, q2_reveal):
    kit.reveal(
        mo,
        q2_reveal.value,
        q2.value,
        f"Exact KL of best-of-{n_best}: **{bon_kl:.4f} nats**; the formula gives "
        f"{bon_bound:.4f}: **smaller**. The formula is only an upper bound; with a binary "
        f"reward the exact KL is a Bernoulli divergence, at most −log p0 = "
        f"{-math.log(p_target):.4f} nats however large n grows.",
    )
    return


@app.cell(hide_code=True)
def _():
    mo.md(r"""
    ## Exercises

    1. Best-of-$n$ can cross a barrier. Can it cross the singular set? Try it on the base that
       never emits token 3.
    2. Find the smallest tool call probability $\pi$ (on the slider) that makes the target
       accessible at N = 10 000. Does the tool's output distribution leave the support of $p_0$?
    3. Tree search succeeds every time. Where does its cost go?
    """)
    return


@app.cell
def _(base, budget, confidence, index, motif, vocab):
    tool_regimes = {}
    for _pi in (0.001, 0.003, 0.01, 0.03, 0.1, 0.3):
        _lq = expand.tool_distribution(expand.augment(base, expand.macro(vocab, motif, _pi)))
        tool_regimes[_pi] = fe.Regime(int(fe.regimes(_lq, budget, confidence)[index])).name
    return (tool_regimes,)


@app.cell(hide_code=True)
def _(budget, poor_bon_mass, tool_regimes, tree_cost):
    mo.accordion(
        {
            "Solution 1": mo.md(
                "No. Best-of-n only reweights p0's samples: with token 3 impossible, best-of-10⁶ "
                f"puts mass {poor_bon_mass:.1f} on the target. Only new information (the mixture) "
                "moves the support."
            ),
            "Solution 2": mo.md(
                f"Regime of the target at N = {budget} for each π: "
                + ", ".join(f"π = {k:g}: {v.lower()}" for k, v in tool_regimes.items())
                + ". The tool's strings are ordinary strings, so its distribution stays inside "
                "supp(p0) (the diagnosis says creation, never new-support)."
            ),
            "Solution 3": mo.md(
                f"Into verifier calls on prefixes: {float(tree_cost.verifier_calls):.3g} prefix "
                f"checks and {float(tree_cost.tokens):.3g} tokens per success — a process verifier "
                "is far more informative than one check of a finished string."
            ),
        }
    )
    return


@app.cell
def _(
    bon_bound,
    bon_kl,
    budget,
    call_prob,
    cost_reweight,
    info_after,
    info_before,
    info_kl_forgetting,
    length,
    n_best,
    p_target,
    p_tool,
    poor_bon_mass,
    regime,
    retry_success,
    tool_regime,
    tool_verdict,
    tree_cost,
    tree_kl,
    turns,
    turns_needed,
    weight,
):
    key_numbers = {
        "length": length,
        "budget": budget,
        "p_target": p_target,
        "regime": regime,
        "kl_to_access": float(cost_reweight.kl_to_access),
        "n_best": n_best,
        "best_of_n_kl": bon_kl,
        "best_of_n_bound": bon_bound,
        "tree_kl": tree_kl,
        "tree_tokens": float(tree_cost.tokens),
        "turns": turns,
        "retry_success": retry_success,
        "turns_needed": turns_needed,
        "call_prob": call_prob,
        "tool_mass": p_tool,
        "tool_regime": tool_regime,
        "tool_verdict": tool_verdict,
        "weight": weight,
        "info_before": info_before,
        "info_after": info_after,
        "kl_forgetting": info_kl_forgetting,
        "singular_best_of_n_mass": poor_bon_mass,
    }
    return (key_numbers,)


if __name__ == "__main__":
    app.run()
