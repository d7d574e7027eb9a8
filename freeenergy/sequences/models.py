"""Sequence models: finite-state generators of strings of fixed length."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks
from ._types import SequenceModel
from ._validate import (
    _length,
    _model,
    _state,
    _table,
    _table_size,
    _token,
    _token_list,
    _trust,
    _vocab,
)

__all__ = [
    "SequenceModel",
    "finite_state",
    "from_logits",
    "iid",
    "markov",
    "autoregressive",
    "with_end",
    "MAX_PREFIX_STATES",
]

#: Largest number of states :func:`autoregressive` builds (one per prefix).
MAX_PREFIX_STATES = 2**20


def finite_state(
    logp: Any, transition: Any, initial: int = 0, *, length: int | None = None
) -> SequenceModel:
    r"""A validated :class:`SequenceModel` from its tables.

    ``logp`` is ``(length, num_states, vocab)`` (per-position tables) or ``(num_states, vocab)``
    with ``length`` given (the same table at every position); every row is a normalized
    log-distribution over the next token (``-inf`` = never emitted). ``transition`` is
    ``(num_states, vocab)`` int, ``initial`` the start state.

    >>> import jax.numpy as jnp
    >>> m = finite_state(jnp.log(jnp.array([[0.5, 0.5]])), jnp.zeros((1, 2), int), length=3)
    >>> m.logp.shape
    (3, 1, 2)
    """
    return _build(_checks.logp(logp, "logp"), transition, initial, length, "logp")


def _build(table: jax.Array, transition: Any, initial: Any, length: Any, name: str):
    """The shape checks of :func:`finite_state` on a checked table called ``name``."""
    if table.ndim == 2:
        if length is None:
            raise ValueError(
                f"`{name}` has shape (num_states, vocab): also pass `length` (the number of "
                "tokens), or give per-position tables of shape (length, num_states, vocab)."
            )
        n = _length(length)
        if min(table.shape) == 0:
            raise ValueError(f"`{name}` is empty (shape {tuple(table.shape)}).")
        _table_size(
            n * table.shape[0] * table.shape[1],
            f"{name} repeated at every position",
            f"`length` and `{name}`",
        )
        table = jnp.broadcast_to(table, (n, *table.shape))
    elif table.ndim == 3:
        if length is not None and _length(length) != table.shape[0]:
            raise ValueError(
                f"`length` = {length} but `{name}` has per-position tables for "
                f"{table.shape[0]} positions."
            )
        if min(table.shape) == 0:
            raise ValueError(
                f"`{name}` is empty (shape {tuple(table.shape)}); a string needs length >= 1, "
                "and a model at least one state and one token."
            )
    else:
        raise ValueError(
            f"`{name}` must have shape (length, num_states, vocab) or (num_states, vocab), got "
            f"{tuple(table.shape)}."
        )
    trans = _table(transition, "transition", table.shape[1], table.shape[2])
    init = _state(initial, "initial", table.shape[1])
    return _trust(SequenceModel(table, trans, init))


def from_logits(
    logits: Any, transition: Any, initial: int = 0, *, length: int | None = None
) -> SequenceModel:
    r"""A model whose tables are the log-softmax of ``logits`` over the vocab axis.

    The parametrization a policy trains: ``logp = logits - logsumexp(logits, axis=-1)``,
    differentiable in ``logits`` (``-inf`` logits stay ``-inf``). Shapes as in
    :func:`finite_state`. Works on traced ``logits`` (inside ``jit``/``grad``). The tables are
    log-probabilities in nats.

    >>> import jax.numpy as jnp
    >>> from freeenergy.sequences import log_prob
    >>> m = from_logits(jnp.array([[0.0, jnp.log(3.0)]]), jnp.zeros((1, 2), int), length=2)
    >>> print(jnp.round(jnp.exp(m.logp[0, 0]), 4))  # softmax of (0, log 3) = (1/4, 3/4)
    [0.25 0.75]
    >>> round(float(log_prob(m, jnp.array([1, 1]))), 4)  # 2 log(3/4)
    -0.5754
    """
    arr = _checks.logp(logits, "logits", normalized=False)
    arr = arr - jax.nn.logsumexp(arr, axis=-1, keepdims=True)
    if _checks.is_traced(arr):
        if arr.ndim not in (2, 3):
            raise ValueError(
                "`logits` must have shape (length, num_states, vocab) or (num_states, vocab), "
                f"got {tuple(arr.shape)}."
            )
        if arr.ndim == 2:
            arr = jnp.broadcast_to(arr, (_length(length), *arr.shape))
        trans = _table(transition, "transition", arr.shape[1], arr.shape[2])
        return _trust(SequenceModel(arr, trans, _state(initial, "initial", arr.shape[1])))
    return _build(arr, transition, initial, length, "logits")


def with_end(model: SequenceModel, end: int) -> SequenceModel:
    r"""Variable length by an absorbing end token.

    Adds one state, entered from every state on token ``end``, which emits ``end`` with
    probability one: a string ``(y_0..y_{k-1}, end, end, ...)`` is the variable-length string
    ``y_0..y_{k-1}`` stopped at step ``k`` with the model's probability of emitting ``end``
    there. Strings that emit ``end`` then anything else get probability zero. The result has
    ``num_states + 1`` states and the same ``(length, vocab)``.

    >>> import jax.numpy as jnp
    >>> from freeenergy.sequences import iid, log_prob
    >>> m = with_end(iid(jnp.log(jnp.array([0.5, 0.25, 0.25])), 3), end=2)
    >>> round(float(log_prob(m, jnp.array([0, 2, 2]))), 4)  # log(0.5 * 0.25), then end forever
    -2.0794
    >>> float(log_prob(m, jnp.array([2, 0, 2])))  # a token after the end: impossible
    -inf
    """
    model = _model(model)
    end = _token(end, "end", model.vocab)
    L, S, V = model.logp.shape
    stop_row = jnp.where(jnp.arange(V) == end, 0.0, -jnp.inf).astype(model.logp.dtype)
    logp = jnp.concatenate([model.logp, jnp.broadcast_to(stop_row, (L, 1, V))], axis=1)
    trans = jnp.concatenate([model.transition, jnp.full((1, V), S, jnp.int32)], axis=0)
    trans = trans.at[:, end].set(S)
    return _trust(SequenceModel(logp, trans, jnp.asarray(model.initial, jnp.int32)))


def iid(token_logp: Any, length: int, *, end: int | None = None) -> SequenceModel:
    r"""Tokens drawn i.i.d. from ``token_logp`` (shape ``(vocab,)``): $\log p(y) = \sum_t
    \texttt{token\_logp}[y_t]$. One state. With ``end``, variable length (:func:`with_end`).

    >>> import jax.numpy as jnp
    >>> from freeenergy.sequences import log_prob
    >>> m = iid(jnp.log(jnp.array([0.25, 0.75])), 3)
    >>> round(float(log_prob(m, jnp.array([1, 1, 0]))), 4)  # log(0.75 * 0.75 * 0.25)
    -1.9617
    """
    table = _checks.logp(token_logp, "token_logp")
    if table.ndim != 1:
        raise ValueError(
            f"`token_logp` must have shape (vocab,), got {tuple(table.shape)}; for "
            "position-dependent tokens use finite_state with (length, 1, vocab) tables."
        )
    n = _length(length)
    if table.shape[0] == 0:
        raise ValueError("`token_logp` is empty; give one log-probability per token.")
    _vocab(table.shape[0], "token_logp.shape[0]")
    _table_size(
        n * table.shape[0], "token_logp repeated at every position", "`length` and `token_logp`"
    )
    model = SequenceModel(
        jnp.broadcast_to(table, (n, 1, table.shape[0])),
        jnp.zeros((1, table.shape[0]), jnp.int32),
        jnp.asarray(0, jnp.int32),
    )
    return _trust(model) if end is None else with_end(model, end)


def markov(
    logp: Any, length: int, context: Sequence[int], *, end: int | None = None
) -> SequenceModel:
    r"""An order-k Markov chain: $p(y_t \mid y_{t-k..t-1}) = \exp \texttt{logp}[y_{t-k}, \dots,
    y_{t-1}, y_t]$.

    ``logp`` has shape ``(vocab,) * (k + 1)`` (the last axis is the next token, normalized);
    ``context`` holds the ``k`` tokens that precede the string (a prompt), oldest first. The
    states are the ``vocab ** k`` contexts. ``k = 0`` is :func:`iid`. Returns a model of shape
    ``(length, vocab ** k, vocab)``; log-probabilities in nats.

    >>> import jax.numpy as jnp
    >>> from freeenergy.sequences import log_prob
    >>> m = markov(jnp.log(jnp.array([[0.9, 0.1], [0.2, 0.8]])), 3, context=[0])
    >>> m.num_states
    2
    >>> round(float(log_prob(m, jnp.array([0, 1, 1]))), 4)  # log(0.9 * 0.1 * 0.8)
    -2.6311
    """
    table = _checks.logp(logp, "logp")
    vocab = table.shape[-1]
    if any(d != vocab for d in table.shape):
        raise ValueError(
            f"`logp` must have shape (vocab,) * (order + 1), all axes equal; got "
            f"{tuple(table.shape)}."
        )
    k = table.ndim - 1
    ctx = _token_list(context, "context", vocab)
    if len(ctx) != k:
        raise ValueError(
            f"`context` must hold exactly order = {k} tokens (the prompt before the string), "
            f"got {len(ctx)}."
        )
    n = _length(length)
    num_s = vocab**k
    _table_size(n * num_s * vocab, "logp repeated at every position", "`length` and `logp`")
    code = np.arange(num_s)
    trans = (code[:, None] * vocab + np.arange(vocab)[None, :]) % num_s
    init = 0
    for y in ctx:
        init = (init * vocab + y) % num_s
    rows = table.reshape(num_s, vocab)
    model = SequenceModel(
        jnp.broadcast_to(rows, (n, num_s, vocab)),
        jnp.asarray(trans, jnp.int32),
        jnp.asarray(init, jnp.int32),
    )
    return _trust(model) if end is None else with_end(model, end)


def _prefix_layout(vocab: int, length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(level offsets, per-state prefix tokens padded with 0, per-state level)."""
    counts = [vocab**t for t in range(length)]
    offsets = np.concatenate([[0], np.cumsum(counts)])
    num_s = int(offsets[-1])
    prefixes = np.zeros((num_s, length), np.int32)
    levels = np.zeros(num_s, np.int32)
    for t in range(length):
        codes = np.arange(vocab**t)
        sl = slice(int(offsets[t]), int(offsets[t + 1]))
        levels[sl] = t
        for i in range(t):
            prefixes[sl, i] = (codes // vocab ** (t - 1 - i)) % vocab
    return offsets, prefixes, levels


def autoregressive(
    conditional: Callable[[jax.Array, jax.Array], jax.Array] | Any,
    vocab: int,
    length: int,
    *,
    end: int | None = None,
) -> SequenceModel:
    r"""A full autoregressive model as a prefix tree: one state per prefix (small lengths only).

    ``conditional`` gives $\log p(y_t \mid y_{<t})$ either as a function ``conditional(prefix,
    t) -> (vocab,)`` log-probabilities (``prefix`` is an int array of shape ``(length,)`` whose
    entries from ``t`` on are 0; it is ``vmap``-ed over all prefixes) or as an array of shape
    ``(num_prefixes, vocab)`` with prefixes ordered by length, then lexicographically (first
    token most significant). There are $\sum_{t<L} V^t$ states (at most ``MAX_PREFIX_STATES``);
    the model's tables have shape ``(length, num_prefixes, vocab)``.

    >>> import jax.numpy as jnp
    >>> from freeenergy.sequences import log_prob
    >>> def cond(prefix, t):  # first token fair; then repeat the previous token w.p. 0.9
    ...     rep = jnp.where(jnp.arange(2) == prefix[jnp.maximum(t - 1, 0)], 0.9, 0.1)
    ...     return jnp.where(t == 0, jnp.log(0.5), jnp.log(rep))
    >>> m = autoregressive(cond, vocab=2, length=3)
    >>> m.num_states  # 1 + 2 + 4 prefixes
    7
    >>> round(float(log_prob(m, jnp.array([1, 1, 0]))), 4)  # log(0.5 * 0.9 * 0.1)
    -3.1011
    """
    vocab = _vocab(vocab)
    n = _length(length)
    too_many = (n - 1) * math.log2(vocab) > math.log2(MAX_PREFIX_STATES)  # V^(L-1) < states
    num_s = math.inf if too_many else sum(vocab**t for t in range(n))
    if num_s > MAX_PREFIX_STATES or num_s * vocab > 2**26:
        raise ValueError(
            f"a prefix tree over `vocab` = {vocab}, `length` = {n} has "
            f"{'more than 2^20' if too_many else f'{num_s:,}'} states (times {vocab} tokens), "
            f"above MAX_PREFIX_STATES = {MAX_PREFIX_STATES:,} or 2^26 table entries; use a "
            "Markov or finite-state model."
        )
    offsets, prefixes, levels = _prefix_layout(vocab, n)
    if callable(conditional):
        table = jax.vmap(conditional)(jnp.asarray(prefixes), jnp.asarray(levels))
        name = "conditional(prefix, t)"
    else:
        table, name = conditional, "conditional"
    table = _checks.logp(table, name)
    if table.shape != (num_s, vocab):
        raise ValueError(
            f"`{name}` must give shape (num_prefixes, vocab) = ({num_s}, {vocab}), got "
            f"{tuple(table.shape)}."
        )
    state = np.arange(num_s)
    codes = state - offsets[levels]
    nxt = (
        offsets[np.minimum(levels + 1, n - 1)][:, None] + codes[:, None] * vocab + np.arange(vocab)
    )
    nxt = np.where((levels == n - 1)[:, None], 0, nxt)  # after the last token: unused
    model = SequenceModel(
        jnp.broadcast_to(table, (n, num_s, vocab)),
        jnp.asarray(nxt, jnp.int32),
        jnp.asarray(0, jnp.int32),
    )
    return _trust(model) if end is None else with_end(model, end)
