r"""Tools: macro-actions that emit several tokens at once, and their exact effect on behaviors.

A **tool** is called at a position with an explicit probability and writes a whole subsequence of
tokens into the answer: a fixed snippet (``macro``), or the correct next piece of an answer that
it computes from what has been written so far (``prefix_solver``; in general, ``tool``: a small
automaton reads the prefix and its state chooses the output). The augmented generator
(``augment``) is this: at a free position $t$ in generator state $s$, with tool state $b$,

* with probability $\pi_t$ — if the tool is available in $b$ and its $k$ tokens still fit
  ($t + k \le L$) — call the tool: the next $k$ tokens are ``outputs[b]``;
* otherwise emit a token of the model, $y \sim p_t(\cdot\mid s)$ (with total probability
  $1 - \pi_t$ when the tool was available, $1$ when not);

and the generator's state runs through every token, its own or the tool's, so the model continues
from the tool's output. So that this is again a finite-state :class:`SequenceModel` (the next
state a function of the emitted token), tool-written tokens are **marked**: the augmented
vocabulary has ``2 * vocab`` tokens, ``y`` written by the model and ``vocab + y`` written by the
tool, and the states are $(s, b, i)$ — generator state, tool state, position inside a running
call. Everything the sequence dynamic programs do applies to it (``sequences.sample``,
``accept_logprob`` with ``lift(verifier)``, ``kl``, ``enumerate`` on small spaces).

**Back to the original behaviors.** A string $y$ of the original vocabulary can come out with
or without tool calls; its probability is the sum over the markings,
$q(y) = \sum_{c \in \{0,1\}^L} p_{\rm aug}(c \cdot V + y)$, computed by a forward recursion over
the augmented states (``tool_logprob``, ``tool_distribution``). That flat ``q`` is a
distribution over the same behaviors as the base, so every exact comparison applies — ``kl``,
``regimes``, ``diagnose``, ``pass_at_k``. A tool **changes the generator**: where it writes a
token the model never emits, $q$ has mass outside ``supp(p0)`` (``diagnose`` reports new
support); otherwise it moves mass within ``supp(p0)``, and can move a barrier behavior into the
accessible support at no training cost.
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

__all__ = [
    "Tool",
    "tool",
    "macro",
    "prefix_solver",
    "ToolModel",
    "augment",
    "lift",
    "unmark",
    "tool_logprob",
    "tool_distribution",
    "expected_calls",
]


@partial(
    jax.tree_util.register_dataclass,
    data_fields=["transition", "outputs", "available", "initial", "call_prob"],
    meta_fields=[],
)
@dataclasses.dataclass(frozen=True, eq=False)
class Tool:
    r"""A macro-action: what it writes, when it can be called, and how often it is.

    * ``transition`` — ``(num_states, vocab)`` int: the automaton through which the tool reads the
      prefix (one state for a fixed macro);
    * ``outputs`` — ``(num_states, width)`` int: the ``width`` tokens a call writes in each state;
    * ``available`` — ``(num_states,)`` bool: whether the tool can be called in that state;
    * ``initial`` — the start state (int32 scalar);
    * ``call_prob`` — the probability $\pi$ of calling it at a position where it is available: a
      scalar, or one value per position.

    Build one with :func:`tool`, :func:`macro` or :func:`prefix_solver`.
    """

    transition: jax.Array
    outputs: jax.Array
    available: jax.Array
    initial: jax.Array
    call_prob: jax.Array

    @property
    def num_states(self) -> int:
        return int(self.transition.shape[0])

    @property
    def vocab(self) -> int:
        return int(self.transition.shape[1])

    @property
    def width(self) -> int:
        return int(self.outputs.shape[1])


@partial(jax.tree_util.register_dataclass, data_fields=["model"], meta_fields=["vocab", "width"])
@dataclasses.dataclass(frozen=True, eq=False)
class ToolModel:
    """A tool-augmented generator: ``model`` over ``2 * vocab`` marked tokens (``y`` written by the
    model, ``vocab + y`` by the tool), the original ``vocab`` and the tool's ``width`` (tokens
    per call)."""

    model: sq.SequenceModel
    vocab: int
    width: int

    @property
    def length(self) -> int:
        return self.model.length


def _vocab(x: Any) -> int:
    return _checks.integer(
        x, "vocab", minimum=1, maximum=2**24, why="the tool's tables hold states * vocab entries"
    )


# ----------------------------------------------------------------------------- constructors
def _call_prob(call_prob: Any) -> jax.Array:
    arr = _checks.to_array(call_prob, "call_prob")
    if arr.ndim > 1 or arr.size == 0:
        raise ValueError(
            f"`call_prob` must be a scalar or one probability per position (1-D), got shape "
            f"{tuple(arr.shape)}."
        )
    v = np.asarray(arr, dtype=np.float64)
    if np.any(~np.isfinite(v) | (v < 0) | (v > 1)):
        raise ValueError(
            f"`call_prob` must lie in [0, 1] (the probability of calling the tool), got {v!r}."
        )
    return arr


def tool(
    transition: Any, outputs: Any, call_prob: Any, *, available: Any = None, initial: int = 0
) -> Tool:
    """A validated :class:`Tool` from its automaton, its outputs per state and its calling
    probability (``available`` defaults to every state).

    ``transition`` is ``(num_states, vocab)`` int (the tool's automaton reading the prefix),
    ``outputs`` ``(num_states, width)`` int (what a call writes in each state), ``available`` a
    bool mask ``(num_states,)``, ``call_prob`` in ``[0, 1]`` (scalar or one per position).

    >>> t = tool([[0, 0]], [[1]], 0.5)  # one state: every call writes token 1
    >>> t.width, t.num_states
    (1, 1)
    """
    try:
        shape = np.shape(transition)
    except ValueError:  # a ragged list
        shape = ()
    if len(shape) != 2:
        raise ValueError(
            "`transition` must be an integer array of shape (num_states, vocab), got "
            f"{_checks._describe(transition)}."
        )
    trans = sq.automaton(transition, np.zeros(shape[0], bool), initial)
    out = sq.check_tokens(outputs, trans.vocab, name="outputs")
    if out.ndim != 2:
        raise TypeError(
            f"`outputs` must be an int array (num_states, width), got {_checks._describe(outputs)}."
        )
    if out.shape[0] != trans.num_states or out.shape[1] == 0:
        raise ValueError(
            f"`outputs` must have shape (num_states, width) = ({trans.num_states}, width >= 1), "
            f"got {tuple(out.shape)}."
        )
    if np.any((np.asarray(out) < 0) | (np.asarray(out) >= trans.vocab)):
        raise ValueError(f"`outputs` must hold tokens in [0, {trans.vocab}).")
    avail = (
        jnp.ones(trans.num_states, bool)
        if available is None
        else _checks.mask(available, "available")
    )
    if avail.shape != (trans.num_states,):
        raise ValueError(
            f"`available` must have shape ({trans.num_states},), got {tuple(avail.shape)}."
        )
    return Tool(
        trans.transition, out.astype(jnp.int32), avail, trans.initial, _call_prob(call_prob)
    )


def macro(vocab: int, tokens: Any, call_prob: Any) -> Tool:
    """A fixed macro-action: every call writes ``tokens`` (a snippet, a skill), wherever it fits.

    >>> m = macro(4, [2, 3], 0.25)
    >>> m.width, m.num_states
    (2, 1)
    """
    vocab = _vocab(vocab)
    toks = np.asarray(sq.check_tokens(tokens, vocab))
    if toks.ndim != 1:
        raise TypeError(f"`tokens` must be a non-empty 1-D list of token ids, got {tokens!r}.")
    return tool(np.zeros((1, vocab), np.int32), toks[None, :], call_prob)


def prefix_solver(vocab: int, answer: Any, width: int, call_prob: Any) -> Tool:
    """A tool that computes the correct next ``width`` tokens of ``answer`` from a correct prefix.

    Its automaton tracks how many leading tokens of ``answer`` the prefix matches (states
    ``0..m``; ``m + 1`` = the prefix went wrong). In state ``j`` it writes
    ``answer[j : j + width]`` and is available when that piece exists (``j + width <= m``); after
    a wrong prefix it is unavailable (it cannot continue a wrong derivation).

    >>> import jax.numpy as jnp
    >>> from freeenergy import sequences as sq
    >>> solver = prefix_solver(2, [1, 1], 1, 0.5)
    >>> solver.width, solver.num_states  # matched 0, 1, 2 tokens; wrong prefix
    (1, 4)
    >>> zeros = sq.iid(jnp.log(jnp.array([1.0, 0.0])), 2)  # the model only writes 0
    >>> q = jnp.exp(tool_distribution(augment(zeros, solver)))
    >>> [round(float(x), 4) for x in q]  # 00, 01, 10, 11
    [0.5, 0.0, 0.25, 0.25]
    """
    vocab = _vocab(vocab)
    arr = np.asarray(sq.check_tokens(answer, vocab, name="answer"))
    if arr.ndim != 1:
        raise ValueError(f"`answer` must be a 1-D list of token ids, got shape {arr.shape}.")
    ans = [int(a) for a in arr]
    m = len(ans)
    if (m + 2) * vocab > sq.MAX_TABLE:
        raise ValueError(
            f"`answer` and `vocab`: the tool's automaton would hold (len(answer) + 2) * vocab = "
            f"{(m + 2) * vocab:,} "
            f"transitions, above {sq.MAX_TABLE:,}; use a shorter answer or a smaller vocab."
        )
    width = _checks.integer(
        width, "width", minimum=1, maximum=m, why=f"the answer has {m} tokens to write"
    )
    dead = m + 1
    trans = np.full((m + 2, vocab), dead, np.int32)
    for j in range(m):
        trans[j, ans[j]] = j + 1
    trans[m, :] = dead
    outputs = np.zeros((m + 2, width), np.int32)
    available = np.zeros(m + 2, bool)
    for j in range(m - width + 1):
        outputs[j] = ans[j : j + width]
        available[j] = True
    return tool(trans, outputs, call_prob, available=available)


# ----------------------------------------------------------------------------- augmentation
def _augment_tables(logp, trans_s, initial_s, tool_trans, outputs, available, initial_b, call):
    """NumPy construction of the augmented tables (concrete inputs)."""
    length, num_s, vocab = logp.shape
    num_b, width = outputs.shape
    free = num_s * num_b
    num = free * width  # free states, then (k - 1) in-call offsets per (s, b)

    def free_id(s, b):
        return s * num_b + b

    def call_id(s, b, i):  # i = 1..width-1 tokens written so far
        return free + (s * num_b + b) * (width - 1) + (i - 1)

    # the tool state after reading a whole output, and the generator state along it
    def run(table, state, toks):
        for y in toks:
            state = table[state, y]
        return state

    out_logp = np.full((length, num, 2 * vocab), -np.inf)
    out_trans = np.zeros((num, 2 * vocab), np.int32)
    s_idx, b_idx = np.meshgrid(np.arange(num_s), np.arange(num_b), indexing="ij")
    s_idx, b_idx = s_idx.reshape(-1), b_idx.reshape(-1)
    rows = free_id(s_idx, b_idx)
    positions = np.arange(length)
    fits = positions + width <= length  # (L,)
    can = available[b_idx][None, :] & fits[:, None] & (call[:, None] > 0)  # (L, free)
    log_call = np.log(np.where(can, call[:, None], 1.0))
    with np.errstate(divide="ignore"):
        log_keep = np.where(can, np.log1p(-np.where(can, call[:, None], 0.0)), 0.0)
    # the model's own tokens
    out_logp[:, rows, :vocab] = log_keep[:, :, None] + logp[:, s_idx, :]
    out_trans[rows, :vocab] = free_id(trans_s[s_idx], tool_trans[b_idx])
    # the first token of a call
    first = outputs[b_idx, 0]
    out_logp[:, rows, vocab + first] = np.where(can, log_call, -np.inf)
    for r, s, b in zip(rows, s_idx, b_idx, strict=True):
        toks = outputs[b]
        if width == 1:
            out_trans[r, vocab + toks[0]] = free_id(trans_s[s, toks[0]], run(tool_trans, b, toks))
        else:
            out_trans[r, vocab + toks[0]] = call_id(trans_s[s, toks[0]], b, 1)
        for i in range(1, width):  # inside a call: the next output token, with probability 1
            c = call_id(s, b, i)
            y = toks[i]
            out_logp[:, c, vocab + y] = 0.0
            nxt_s = trans_s[s, y]
            out_trans[c, vocab + y] = (
                call_id(nxt_s, b, i + 1)
                if i + 1 < width
                else free_id(nxt_s, run(tool_trans, b, toks))
            )
    return out_logp, out_trans, free_id(initial_s, initial_b)


def augment(model: Any, tool_: Tool) -> ToolModel:
    r"""The generator augmented with a tool, as a :class:`ToolModel` (see the module docstring).

    ``model`` is a :class:`~freeenergy.sequences.SequenceModel` over ``vocab`` tokens,
    ``tool_`` a :class:`Tool` over the same vocabulary; its ``call_prob`` is a scalar or has one
    entry per position. The result has ``num_states * tool_states * width`` states and ``2 *
    vocab`` marked tokens. Concrete (non-traced) inputs only.

    >>> import jax.numpy as jnp
    >>> from freeenergy import sequences as sq
    >>> zeros = sq.iid(jnp.log(jnp.array([1.0, 0.0])), 2)  # the model only writes 0
    >>> tm = augment(zeros, macro(2, [1], 0.5))
    >>> tm.model.vocab, tm.vocab, tm.length  # marked tokens 2, 3 stand for 0, 1
    (4, 2, 2)
    """
    model = sq.check_model(model)
    if not isinstance(tool_, Tool):
        raise TypeError(f"`tool_` must be a Tool (see tool, macro), got {type(tool_).__name__}.")
    if tool_.vocab != model.vocab:
        raise ValueError(
            f"the tool reads {tool_.vocab} tokens but the model has vocab = {model.vocab}."
        )
    if tool_.width > model.length:
        raise ValueError(
            f"the tool writes {tool_.width} tokens, more than the length {model.length}."
        )
    call = np.asarray(tool_.call_prob, np.float64)
    if call.ndim == 1 and call.shape[0] != model.length:
        raise ValueError(
            f"`call_prob` has {call.shape[0]} entries but the model has length {model.length}; "
            "give a scalar or one probability per position."
        )
    call = np.broadcast_to(call, (model.length,))
    states = model.num_states * tool_.num_states * tool_.width
    entries = model.length * states * 2 * model.vocab
    if entries > sq.MAX_TABLE:
        raise ValueError(
            f"`model` and `tool_`: the augmented model would hold length * states * 2 vocab = "
            f"{model.length} * "
            f"{states:,} * {2 * model.vocab} = {entries:,} log-probabilities, above "
            f"sequences.MAX_TABLE = {sq.MAX_TABLE:,} (8 bytes each); use a smaller model or tool."
        )
    dtype = model.logp.dtype
    logp, trans, init = _augment_tables(
        np.asarray(model.logp, np.float64),
        np.asarray(model.transition),
        int(model.initial),
        np.asarray(tool_.transition),
        np.asarray(tool_.outputs),
        np.asarray(tool_.available),
        int(tool_.initial),
        call,
    )
    aug = sq.finite_state(jnp.asarray(logp, dtype), jnp.asarray(trans), init)
    return ToolModel(aug, model.vocab, tool_.width)


def _tool_model(x: Any, name: str = "tool_model") -> ToolModel:
    if not isinstance(x, ToolModel):
        raise TypeError(
            f"`{name}` must be a ToolModel (build one with expand.augment(model, tool)), got "
            f"{_checks._describe(x)}."
        )
    return x


def lift(verifier: Any, tool_model: ToolModel) -> sq.Automaton:
    """The verifier reading marked tokens as the tokens they stand for (``y`` and ``vocab + y``
    alike): ``accept_logprob(tool_model.model, lift(verifier, tool_model))`` is the exact
    probability that the tool-augmented generator's output is accepted.

    >>> import jax.numpy as jnp
    >>> from freeenergy import sequences as sq
    >>> tm = augment(sq.iid(jnp.log(jnp.array([1.0, 0.0])), 2), macro(2, [1], 0.5))
    >>> v = lift(sq.exact_match(2, [1, 1]), tm)
    >>> round(float(sq.accept_logprob(tm.model, v)), 4)  # log(0.5 * 0.5): two tool calls
    -1.3863
    """
    tm = _tool_model(tool_model)
    verifier = sq.check_verifier(verifier, tm.vocab)
    trans = jnp.concatenate([verifier.transition, verifier.transition], axis=1)
    return sq.automaton(trans, verifier.accepting, int(verifier.initial))


def unmark(tokens: Any, vocab: int) -> jax.Array:
    """Marked tokens back to the original ones: ``tokens % vocab`` (same shape, int32).

    >>> import jax.numpy as jnp
    >>> unmark(jnp.array([0, 3, 1, 2]), 2).tolist()
    [0, 1, 1, 0]
    """
    vocab = _vocab(vocab)
    return sq.check_tokens(tokens, 2 * vocab) % vocab


def _segment_logsumexp(values, segments, num_segments):
    peak = jax.ops.segment_max(values, segments, num_segments)
    safe = jnp.where(jnp.isfinite(peak), peak, 0.0)
    total = jax.ops.segment_sum(jnp.exp(values - safe[segments]), segments, num_segments)
    return jnp.where(total > 0, safe + jnp.log(jnp.where(total > 0, total, 1.0)), -jnp.inf)


def _forward_one(logp, transition, initial, vocab, tokens):
    """log sum over markings of p_aug(marked string), one string (forward recursion)."""
    num = transition.shape[0]
    alpha0 = jnp.full((num,), -jnp.inf, logp.dtype).at[initial].set(0.0)
    states = jnp.arange(num)

    def body(alpha, x):
        logp_t, y = x
        marked = jnp.stack([y, y + vocab])  # the two ways the token can be written
        values = (alpha[:, None] + logp_t[states[:, None], marked[None, :]]).reshape(-1)
        nxt = transition[states[:, None], marked[None, :]].reshape(-1)
        return _segment_logsumexp(values, nxt, num), None

    alpha, _ = jax.lax.scan(body, alpha0, (logp, tokens))
    return jax.nn.logsumexp(alpha)


@partial(jax.jit, static_argnums=1)
def _tool_logprob_jit(model, vocab, tokens):
    flat = tokens.reshape(-1, tokens.shape[-1])
    out = jax.vmap(lambda y: _forward_one(model.logp, model.transition, model.initial, vocab, y))(
        flat
    )
    return out.reshape(tokens.shape[:-1])


def tool_logprob(tool_model: ToolModel, tokens: Any) -> jax.Array:
    r"""$\log q(y)$ of original strings under the tool-augmented generator, summed over every
    way of writing them (each token by the model or by a tool call):
    $q(y) = \sum_{c\in\{0,1\}^L} p_{\rm aug}(c\cdot V + y)$, by a forward recursion over the
    augmented states. ``tokens`` is ``(..., length)`` over the original vocabulary; returns
    shape ``(...)``, in nats.

    >>> import jax.numpy as jnp
    >>> from freeenergy import sequences as sq
    >>> tm = augment(sq.iid(jnp.log(jnp.array([1.0, 0.0])), 2), macro(2, [1], 0.5))
    >>> [round(float(x), 4) for x in tool_logprob(tm, jnp.array([[1, 1], [0, 1]]))]  # log 1/4
    [-1.3863, -1.3863]
    """
    tm = _tool_model(tool_model)
    toks = sq.check_tokens(tokens, tm.vocab, tm.length)
    return _tool_logprob_jit(tm.model, tm.vocab, toks)


def tool_distribution(tool_model: ToolModel) -> jax.Array:
    """The tool-augmented generator as a flat distribution over the ``vocab ** length`` original
    strings, in the order of ``sequences.strings`` (small spaces only): ``tool_logprob`` of
    every string. It sums to one (every augmented string maps to exactly one original string).
    Shape ``(vocab ** length,)``, log-probabilities in nats.

    >>> import jax.numpy as jnp
    >>> from freeenergy import sequences as sq
    >>> zeros = sq.iid(jnp.log(jnp.array([1.0, 0.0])), 2)  # supp(p0) = {00}
    >>> q = jnp.exp(tool_distribution(augment(zeros, macro(2, [1], 0.5))))
    >>> [round(float(x), 4) for x in q]  # the tool creates support: each token 1 w.p. 1/2
    [0.25, 0.25, 0.25, 0.25]
    """
    tm = _tool_model(tool_model)
    return _tool_logprob_jit(tm.model, tm.vocab, sq.strings(tm.vocab, tm.length))


def expected_calls(tool_model: ToolModel) -> jax.Array:
    r"""Expected number of tool calls per output: $\mathbb{E}[\#\text{tool-written tokens}] /
    \text{width}$ (every call writes its whole output), by the sequence expected-energy recursion
    with energy $-1$ on marked tokens. Returns a scalar (calls per output string).

    >>> import jax.numpy as jnp
    >>> from freeenergy import sequences as sq
    >>> tm = augment(sq.iid(jnp.log(jnp.array([1.0, 0.0])), 2), macro(2, [1], 0.5))
    >>> round(float(expected_calls(tm)), 4)  # 2 positions * 0.5
    1.0
    """
    tm = _tool_model(tool_model)
    vocab = tm.vocab
    step = jnp.concatenate(
        [jnp.zeros(vocab, tm.model.logp.dtype), -jnp.ones(vocab, tm.model.logp.dtype)]
    )
    marked = -sq.expected_energy(tm.model, None, step_energy=step)
    return marked / tm.width
