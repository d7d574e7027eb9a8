r"""Interaction: retrying with verifier feedback, and the exact distribution of the final answer.

**The protocol** (``turns`` attempts at most). Attempt 1 is a sample $y \sim p$ of the generator.
If the verifier accepts it, it is the final answer. Otherwise the verifier reveals the **first
wrong position** — the first $d$ such that the prefix $y_{\le d}$ can no longer be completed to
an accepted string (``can_accept``; for ``exact_match`` the first mismatch) — and the next
attempt keeps the correct prefix $y_{<d}$, redraws position $d$ **avoiding the token just
revealed wrong** (``exclude=True``; if the generator can emit nothing else there it repeats it),
and continues from the generator: with $P = y_{<d}$, $e = y_d$,

$$r(y' \mid P, e) = \mathbb{1}[y'_{<d} = P]\;\frac{\mathbb{1}[y'_d \ne e]}{1 - p(e\mid P)}\;
  p(y'_{\ge d} \mid P).$$

After the last turn the final answer is the last attempt. With ``exclude=False`` the retry is
$p(\cdot\mid P)$ (the feedback only saves the prefix).

**Exactly, on small spaces** (``retry``): the attempt distribution $\pi_k$ over the
``vocab ** length`` strings evolves by $\pi_{k+1}(y') = \sum_d \sum_{e} M_{k,d}(P_d(y'), e)\,
r(y' \mid P_d(y'), e)$, where $M_{k,d}(P, e)$ is the mass of attempts $k$ that fail first at
position $d$ with prefix $P$ and wrong token $e$; accepted attempts are absorbed into the final
answer. Every prefix of ``length - d`` tokens is a contiguous block of the lexicographic order of
``sequences.strings``, so each turn is ``length`` segment sums over the flat arrays. Retrying
only redraws from the generator's own conditionals, so the final answer never leaves
``supp(p)``; what the feedback adds is information (which position is wrong), and it turns a
success mass $p(S)$ that is exponentially small in the length into one reached in a number of
turns linear in it.

Compute (``SequenceCost``, exact expectations): ``samples`` = attempts, ``tokens`` = tokens
generated (``length`` for the first attempt, ``length - d`` for a retry from position ``d``),
``verifier_calls`` = attempts (each attempt is checked once; the feedback is the check's answer).
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks
from .. import sequences as sq
from ..support import _log1mexp
from .sequence_search import SequenceCost, _alive, _inputs, _int_dtype

#: Largest number of turns of the retry protocol.
MAX_TURNS = 2**16

__all__ = ["first_error", "Retry", "retry", "sample_retry"]


# ----------------------------------------------------------------------------- kernels
def _walk(t_auto, init_auto, tokens):
    """Automaton states after every token: ``(num, L)`` (state a_{t+1} in column t)."""

    def body(a, y):
        a = t_auto[a, y]
        return a, a

    a0 = jnp.full(tokens.shape[:1], init_auto, jnp.int32)
    _, states = jax.lax.scan(body, a0, tokens.T)
    return states.T


def _first_error(t_auto, accepting, init_auto, tokens):
    """First position whose prefix cannot be accepted any more; ``L`` for accepted strings."""
    length = tokens.shape[-1]
    alive = _alive(t_auto, accepting, length)  # (L + 1, A)
    states = _walk(t_auto, init_auto, tokens)
    ok = alive[jnp.arange(1, length + 1)[None, :], states]  # (num, L)
    return jnp.where(jnp.all(ok, axis=-1), length, jnp.argmin(ok, axis=-1)).astype(jnp.int32)


def _blocks(x, vocab, length, d):
    """logsumexp of a flat ``(vocab ** length,)`` array over each block of strings sharing their
    first ``d`` tokens (contiguous in lexicographic order): ``(vocab ** d,)``."""
    return jax.nn.logsumexp(x.reshape(vocab**d, -1), axis=-1)


def _spread(x, vocab, length, d):
    """A per-prefix array ``(vocab ** d,)`` repeated over the strings of each block."""
    return jnp.broadcast_to(x[:, None], (x.shape[0], vocab ** (length - d))).reshape(-1)


@partial(jax.jit, static_argnums=(2, 3, 4))
def _retry_jit(lp, dead, vocab, length, turns, exclude):
    """The exact turn recursion on the flat space (see the module docstring).

    Strings are in the lexicographic order of ``sequences.strings``, so the strings sharing a
    prefix of ``d`` tokens are a contiguous block: every sum over a prefix is a reshape.
    Returns ``(final, attempts (turns, n), fails (turns, length))``: the final answer, the
    (sub-normalized) distribution of every attempt, and the mass of attempt ``k`` failing first
    at position ``d``.
    """
    accepted = dead == length
    same = jnp.eye(vocab, dtype=bool)  # [y, e]: the redrawn token equals the wrong one
    # per position d, per node (prefix P of d tokens, token e): log p(e | P), whether the retry
    # avoids e (with `exclude`, unless e is the only token that can follow P: then it repeats
    # it), and the retry weight 1 / (1 - p(e | P)) of a failure there when it does; per string:
    # log p(y_{>=d} | P)
    levels = []
    for d in range(length):
        log_prefix = _blocks(lp, vocab, length, d)
        log_node = _blocks(lp, vocab, length, d + 1).reshape(-1, vocab)
        has = log_prefix > -jnp.inf
        cond = jnp.where(has[:, None], log_node - jnp.where(has, log_prefix, 0.0)[:, None], -1.0)
        cond = jnp.where(has[:, None], jnp.minimum(cond, 0.0), -jnp.inf)  # rounding kept <= 0
        avoid = exclude & (cond < 0.0)  # e is avoided unless nothing else can follow P
        weight = jnp.where(avoid, -_log1mexp(jnp.where(avoid, cond, -1.0)), 0.0)
        # [P, y, e]: may a failure on e at P be followed by y at position d?
        allowed = ~same[None, :, :] | ~avoid[:, None, :]
        lpref = _spread(log_prefix, vocab, length, d)
        positive = (lpref > -jnp.inf) & (lp > -jnp.inf)
        rest = jnp.where(positive, lp - jnp.where(positive, lpref, 0.0), -jnp.inf)
        levels.append((weight, allowed, rest))

    def turn(attempt, _):
        parts, fails = [], []
        for d in range(length):
            weight, allowed, rest = levels[d]
            failing = jnp.where(dead == d, attempt, -jnp.inf)
            mass = _blocks(failing, vocab, length, d + 1).reshape(-1, vocab)  # M_d(P, e)
            fails.append(jax.nn.logsumexp(mass))
            source = jnp.where(mass > -jnp.inf, mass + weight, -jnp.inf)
            terms = jnp.where(allowed, source[:, None, :], -jnp.inf)  # [P, y, e]
            inflow = jax.nn.logsumexp(terms, axis=-1).reshape(-1)  # per node (P, y)
            parts.append(_spread(inflow, vocab, length, d + 1) + rest)
        nxt = jax.nn.logsumexp(jnp.stack(parts), axis=0)
        return nxt, (attempt, jnp.stack(fails))

    _, (attempts, fails) = jax.lax.scan(turn, lp, None, length=turns)
    absorbed = jax.nn.logsumexp(jnp.where(accepted, attempts[:-1], -jnp.inf), axis=0)
    final = jnp.logaddexp(absorbed, attempts[-1]) if turns > 1 else attempts[-1]
    return final, attempts, fails


# ----------------------------------------------------------------------------- public API


def first_error(verifier: Any, tokens: Any) -> jax.Array:
    """The verifier's feedback: the first position ``d`` at which the prefix ``tokens[:d + 1]``
    can no longer be completed to an accepted string (``length`` when the string is accepted).

    ``tokens`` is ``(..., length)``; returns an int array of shape ``tokens.shape[:-1]``.

    >>> from freeenergy import sequences as sq
    >>> first_error(sq.exact_match(3, [0, 1, 2]), [[0, 1, 2], [0, 2, 2], [1, 1, 2]]).tolist()
    [3, 1, 0]
    """
    verifier = sq.check_verifier(verifier)
    toks = sq.check_tokens(tokens, verifier.vocab)
    flat = toks.reshape(-1, toks.shape[-1])
    out = _first_error_jit(
        jnp.asarray(verifier.transition, jnp.int32),
        jnp.asarray(verifier.accepting, bool),
        jnp.asarray(verifier.initial, jnp.int32),
        flat,
    )
    return out.reshape(toks.shape[:-1])


_first_error_jit = jax.jit(_first_error)


@partial(
    jax.tree_util.register_dataclass,
    data_fields=["logp_final", "logp_attempts", "success", "cost"],
    meta_fields=[],
)
@dataclasses.dataclass(frozen=True, eq=False)
class Retry:
    r"""The exact outcome of ``retry`` (flat arrays over ``sequences.strings(vocab, length)``).

    * ``logp_final`` — ``(vocab ** length,)`` log-distribution of the final answer (sums to 1);
    * ``logp_attempts`` — ``(turns, vocab ** length)`` log-masses of attempt ``k`` (attempt
      ``k`` happens with probability ``exp(logsumexp(logp_attempts[k]))``);
    * ``success`` — ``(turns,)`` probability that an accepted answer was found within ``k + 1``
      turns (non-decreasing; ``success[0]`` is $p(S)$);
    * ``cost`` — expected ``SequenceCost`` of one interaction, as ``(turns,)`` arrays: entry
      ``k`` is the protocol stopped after ``k + 1`` turns (attempts, generated tokens, verifier
      calls); the last entry is the full protocol.
    """

    logp_final: jax.Array
    logp_attempts: jax.Array
    success: jax.Array
    cost: SequenceCost


def retry(model: Any, verifier: Any, turns: int, *, exclude: bool = True) -> Retry:
    r"""Exact distribution of the final answer after up to ``turns`` attempts with feedback.

    See the module docstring for the protocol (the first wrong position is revealed, the next
    attempt keeps the correct prefix and, with ``exclude``, avoids the revealed token). Small
    spaces only (``vocab ** length <= sequences.MAX_ENUMERATE``).

    >>> import jax.numpy as jnp
    >>> from freeenergy import sequences as sq
    >>> base = sq.iid(jnp.log(jnp.array([0.5, 0.5])), 3)
    >>> out = retry(base, sq.exact_match(2, [1, 1, 1]), 4)
    >>> [round(float(s), 6) for s in out.success]  # each retry fixes at least one position
    [0.125, 0.5, 0.875, 1.0]
    """
    turns = _checks.integer(
        turns, "turns", minimum=1, maximum=MAX_TURNS, why="one pass over every string per turn"
    )
    if not isinstance(exclude, bool):
        raise TypeError(f"`exclude` must be a bool, got {exclude!r}.")
    model, t_auto, accepting, init_auto = _inputs(model, verifier)
    size = sq.space_size(model.vocab, model.length)
    if turns * size > sq.MAX_ENUMERATE * 16:
        raise ValueError(
            f"`turns` = {turns} over {size:,} strings: the per-turn distributions would hold "
            f"{turns * size:,} log-probabilities, above {sq.MAX_ENUMERATE * 16:,} (8 bytes "
            "each); use fewer turns or sample_retry."
        )
    lp = sq.enumerate(model)
    strings = sq.strings(model.vocab, model.length)
    dead = _first_error_jit(t_auto, accepting, init_auto, strings)
    final, attempts, fails = _retry_jit(
        lp, dead, model.vocab, model.length, turns, jnp.asarray(exclude)
    )
    accepted = dead == model.length
    per_turn = jax.nn.logsumexp(jnp.where(accepted, attempts, -jnp.inf), axis=-1)
    success = jnp.exp(jax.lax.cumlogsumexp(per_turn))
    happen = jnp.exp(jax.nn.logsumexp(attempts, axis=-1))  # P(attempt k happens)
    regenerated = jnp.asarray(model.length - np.arange(model.length), lp.dtype)
    retried = jnp.concatenate([jnp.zeros((1,), lp.dtype), jnp.exp(fails[:-1]) @ regenerated])
    tokens = model.length + jnp.cumsum(retried)  # attempt k + 1 regenerates from where k failed
    attempts_expected = jnp.cumsum(happen)
    cost = SequenceCost(attempts_expected, tokens, attempts_expected)
    return Retry(final, attempts, success, cost)


@partial(jax.jit, static_argnums=(5, 6, 7))
def _sample_retry_jit(key, model, t_auto, accepting, init_auto, num, turns, exclude):
    logp, transition = model.logp, model.transition
    length, _, vocab = logp.shape
    alive = _alive(t_auto, accepting, length)

    def errors(tokens):
        states = _walk(t_auto, init_auto, tokens)
        ok = alive[jnp.arange(1, length + 1)[None, :], states]
        return jnp.where(jnp.all(ok, axis=-1), length, jnp.argmin(ok, axis=-1))

    def regenerate(key, tokens, dead):
        """Keep the tokens before ``dead``; redraw from there, avoiding the revealed token at
        ``dead`` (unless it is the only one the generator can emit). Gumbel-max draws."""
        gumbel = jax.random.gumbel(key, (length, tokens.shape[0], vocab), logp.dtype)

        def body(s, x):
            logp_t, g, t = x
            row = logp_t[s]  # (num, V)
            avoid = (t == dead)[:, None] & (jnp.arange(vocab)[None, :] == tokens[:, t][:, None])
            others = jnp.any((row > -jnp.inf) & ~avoid, axis=-1)
            if exclude:
                row = jnp.where(avoid & others[:, None], -jnp.inf, row)
            drawn = jnp.argmax(row + g, axis=-1).astype(jnp.int32)
            y = jnp.where(t < dead, tokens[:, t], drawn)
            return transition[s, y], y

        s0 = jnp.full((tokens.shape[0],), model.initial, jnp.int32)
        _, ys = jax.lax.scan(body, s0, (logp, gumbel, jnp.arange(length)))
        return ys.T

    keys = jax.random.split(key, turns)
    start = jnp.zeros((num, length), jnp.int32)
    first = regenerate(keys[0], start, jnp.full((num,), -1))

    def turn(carry, key):
        tokens, attempts, generated = carry
        dead = errors(tokens)
        again = dead < length
        tokens = regenerate(key, tokens, dead)
        attempts = attempts + jnp.sum(again)
        generated = generated + jnp.sum(jnp.where(again, length - dead, 0))
        return (tokens, attempts, generated), None

    zero = jnp.zeros((), _int_dtype())
    carry0 = (first, zero + num, zero + num * length)
    (tokens, attempts, generated), _ = jax.lax.scan(turn, carry0, keys[1:])
    return tokens, attempts, generated


def sample_retry(
    key: Any, model: Any, verifier: Any, turns: int, num_samples: int, *, exclude: bool = True
) -> tuple[jax.Array, SequenceCost]:
    """Run the retry protocol ``num_samples`` times: ``(final_tokens, cost)``.

    ``final_tokens`` is ``(num_samples, length)``, i.i.d. from ``retry(...).logp_final`` (any
    length: nothing is enumerated). ``cost`` holds totals: attempts, generated tokens, verifier
    calls (= attempts).

    >>> import jax, jax.numpy as jnp
    >>> from freeenergy import sequences as sq
    >>> base = sq.iid(jnp.log(jnp.array([0.5, 0.5])), 3)
    >>> final, cost = sample_retry(jax.random.key(0), base, sq.exact_match(2, [1, 1, 1]), 4, 6)
    >>> final.shape, bool(cost.samples >= 6), bool(cost.verifier_calls == cost.samples)
    ((6, 3), True, True)
    """
    key = _checks.key(key)
    turns = _checks.integer(
        turns, "turns", minimum=1, maximum=MAX_TURNS, why="each turn is one step of a scan"
    )
    if not isinstance(exclude, bool):
        raise TypeError(f"`exclude` must be a bool, got {exclude!r}.")
    model, t_auto, accepting, init_auto = _inputs(model, verifier)
    num_samples = _checks.integer(
        num_samples,
        "num_samples",
        minimum=1,
        maximum=max(1, sq.MAX_TABLE // model.length),
        why=f"the runs hold num_samples * length = num_samples * {model.length} tokens",
    )
    tokens, attempts, generated = _sample_retry_jit(
        key, model, t_auto, accepting, init_auto, num_samples, turns, exclude
    )
    return tokens, SequenceCost(attempts, generated, attempts)
