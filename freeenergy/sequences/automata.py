"""Verifiers: deterministic finite automata over tokens."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks
from ._kernels import _product_next, _sequence_energy_jit
from ._types import Automaton, _zero
from ._validate import (
    MAX_TOKENS,
    _concrete_array,
    _state,
    _table,
    _table_size,
    _token,
    _token_list,
    _tokens,
    _trust,
    _verifier,
    _vocab,
)

__all__ = [
    "Automaton",
    "automaton",
    "exact_match",
    "starts_with",
    "contains",
    "count_at_least",
    "digit_sum_mod",
    "intersect",
    "complement",
    "accepts",
]


def _required(verifier: Any, name: str, vocab: int = -1) -> Automaton:
    """An Automaton (``None`` refused) over ``vocab`` tokens (``-1``: its own)."""
    if verifier is None:
        raise TypeError(
            f"`{name}` must be a freeenergy.sequences.Automaton, got None; build one with "
            "sequences.exact_match, contains, count_at_least, digit_sum_mod or automaton."
        )
    return _verifier(verifier, vocab, name)


def automaton(transition: Any, accepting: Any, initial: int = 0) -> Automaton:
    r"""A validated :class:`Automaton`: ``transition`` ``(num_states, vocab)`` int with entries
    in ``[0, num_states)``, ``accepting`` a bool mask ``(num_states,)``, ``initial`` a state.
    It reads $a_{t+1} = \texttt{transition}[a_t, y_t]$ from $a_0 = $ ``initial`` and accepts
    when ``accepting[a_L]``.

    >>> import jax.numpy as jnp
    >>> even_ones = automaton([[0, 1], [1, 0]], [True, False])  # parity of the count of 1s
    >>> accepts(even_ones, jnp.array([[1, 0, 1], [1, 1, 1]])).tolist()
    [True, False]
    """
    trans = _table(transition, "transition", None, None)
    acc = _checks.mask(accepting, "accepting")
    if acc.shape != (trans.shape[0],):
        raise ValueError(
            f"`accepting` must have shape ({trans.shape[0]},) (one flag per state), got "
            f"{tuple(acc.shape)}."
        )
    return _trust(Automaton(trans, acc, _state(initial, "initial", trans.shape[0])))


def exact_match(vocab: int, target: Sequence[int], *, end: int | None = None) -> Automaton:
    """Accepts exactly the string ``target`` (followed only by ``end`` tokens, if ``end`` is
    given). States: ``0..m`` = number of target tokens matched, ``m + 1`` = mismatch (dead).

    >>> import jax.numpy as jnp
    >>> v = exact_match(3, [2, 0])
    >>> accepts(v, jnp.array([[2, 0], [2, 1]])).tolist()
    [True, False]
    >>> accepts(exact_match(3, [2], end=0), jnp.array([[2, 0, 0], [2, 0, 1]])).tolist()
    [True, False]
    """
    vocab = _vocab(vocab)
    tgt = _token_list(target, "target", vocab)
    if end is not None:
        end = _token(end, "end", vocab)
        if end in tgt:
            raise ValueError(f"`target` contains the end token {end}; an end token ends it.")
    m = len(tgt)
    _table_size(
        (m + 2) * vocab, "the transition table (len(target) + 2, vocab)", "`target` and `vocab`"
    )
    dead = m + 1
    trans = np.full((m + 2, vocab), dead, np.int32)
    for i in range(m):
        trans[i, tgt[i]] = i + 1
    if end is not None:
        trans[m, end] = m
    acc = np.arange(m + 2) == m
    return _trust(Automaton(jnp.asarray(trans), jnp.asarray(acc), _zero()))


def starts_with(vocab: int, prefix: Sequence[int]) -> Automaton:
    """Accepts every string that begins with ``prefix`` (a partial-answer check). States:
    ``0..m`` = matched so far (``m`` absorbing, accepting), ``m + 1`` = mismatch.

    >>> import jax.numpy as jnp
    >>> accepts(starts_with(2, [1, 0]), jnp.array([[1, 0, 1], [0, 1, 0]])).tolist()
    [True, False]
    """
    vocab = _vocab(vocab)
    pre = _token_list(prefix, "prefix", vocab)
    m = len(pre)
    _table_size(
        (m + 2) * vocab, "the transition table (len(prefix) + 2, vocab)", "`prefix` and `vocab`"
    )
    trans = np.full((m + 2, vocab), m + 1, np.int32)
    for i in range(m):
        trans[i, pre[i]] = i + 1
    trans[m, :] = m
    return _trust(Automaton(jnp.asarray(trans), jnp.asarray(np.arange(m + 2) == m), _zero()))


def contains(vocab: int, pattern: Sequence[int]) -> Automaton:
    """Accepts every string containing ``pattern`` as a contiguous substring (the
    Knuth–Morris–Pratt automaton: state ``j`` = longest prefix of the pattern that ends here;
    ``m`` absorbing and accepting).

    >>> import jax.numpy as jnp
    >>> accepts(contains(2, [1, 1]), jnp.array([[0, 1, 1, 0], [1, 0, 1, 0]])).tolist()
    [True, False]
    """
    vocab = _vocab(vocab)
    pat = _token_list(pattern, "pattern", vocab, allow_empty=False)
    m = len(pat)
    _table_size(
        (m + 1) * vocab, "the transition table (len(pattern) + 1, vocab)", "`pattern` and `vocab`"
    )
    # The KMP automaton row by row: row j copies the row of the state the pattern restarts from
    # after its first j tokens, then sends pattern[j] forward; O(m) NumPy row copies.
    trans = np.zeros((m + 1, vocab), np.int32)
    trans[0, pat[0]] = 1
    restart = 0
    for j in range(1, m):
        trans[j] = trans[restart]
        trans[j, pat[j]] = j + 1
        restart = int(trans[restart, pat[j]])
    trans[m, :] = m
    return _trust(Automaton(jnp.asarray(trans), jnp.asarray(np.arange(m + 1) == m), _zero()))


def count_at_least(vocab: int, token: int, m: int) -> Automaton:
    """Accepts strings with at least ``m`` occurrences of ``token`` (states ``0..m`` count the
    occurrences, saturating at ``m``, which is accepting).

    >>> import jax.numpy as jnp
    >>> accepts(count_at_least(3, 2, 2), jnp.array([[2, 0, 2], [2, 1, 1]])).tolist()
    [True, False]
    """
    vocab = _vocab(vocab)
    token = _token(token, "token", vocab)
    m = _checks.integer(m, "m", minimum=0, maximum=MAX_TOKENS, why="the automaton has m + 1 states")
    _table_size((m + 1) * vocab, "the transition table (m + 1, vocab)", "`m` and `vocab`")
    counts = np.arange(m + 1)
    trans = np.repeat(counts[:, None], vocab, axis=1)
    trans[:, token] = np.minimum(counts + 1, m)
    return _trust(Automaton(jnp.asarray(trans, jnp.int32), jnp.asarray(counts == m), _zero()))


def digit_sum_mod(
    vocab: int, modulus: int, residue: int, *, values: Sequence[int] | None = None
) -> Automaton:
    r"""Accepts strings whose digit sum is $\equiv$ ``residue`` (mod ``modulus``).

    Token ``y`` counts as the digit ``values[y]`` (default: ``y`` itself). States are the
    residues ``0..modulus-1`` of the running sum.

    >>> import jax.numpy as jnp
    >>> v = digit_sum_mod(10, 3, 0)  # decimal digits whose sum is divisible by 3
    >>> accepts(v, jnp.array([[1, 2], [4, 4]])).tolist()  # 3 and 8
    [True, False]
    """
    vocab = _vocab(vocab)
    mod = _checks.integer(
        modulus, "modulus", minimum=1, maximum=MAX_TOKENS, why="one automaton state per residue"
    )
    _table_size(mod * vocab, "the transition table (modulus, vocab)", "`modulus` and `vocab`")
    r = _checks.integer(residue, "residue", minimum=0)
    if r >= mod:
        raise ValueError(f"`residue` must lie in [0, modulus) = [0, {mod}), got {r}.")
    if values is None:
        vals = np.arange(vocab)
    else:
        vals = _concrete_array(values, "values", f"{vocab} integers")
        if vals.shape != (vocab,) or not np.issubdtype(vals.dtype, np.integer):
            raise ValueError(
                f"`values` must be {vocab} integers (one digit value per token), got "
                f"{_checks._describe(values)}."
            )
    trans = (np.arange(mod)[:, None] + vals[None, :]) % mod
    return _trust(
        Automaton(jnp.asarray(trans, jnp.int32), jnp.asarray(np.arange(mod) == r), _zero())
    )


def intersect(first: Automaton, second: Automaton) -> Automaton:
    """The product automaton accepting what both accept; state ``a * B + b`` for states
    ``a`` of ``first`` and ``b`` of ``second`` (``B`` = states of ``second``); both must
    read the same vocab.

    >>> import jax.numpy as jnp
    >>> both = intersect(starts_with(2, [1]), count_at_least(2, 0, 2))
    >>> accepts(both, jnp.array([[1, 0, 0], [0, 0, 1], [1, 1, 0]])).tolist()
    [True, False, False]
    """
    first = _required(first, "first")
    second = _required(second, "second", first.vocab)
    B = second.num_states
    _table_size(
        first.num_states * B * first.vocab,
        "the product automaton's transition table",
        "`first` and `second`",
    )
    trans = _product_next(first.transition, second.transition)
    acc = (first.accepting[:, None] & second.accepting[None, :]).reshape(-1)
    return _trust(Automaton(trans, acc, first.initial * B + second.initial))


def complement(verifier: Automaton) -> Automaton:
    """The same automaton accepting exactly the strings ``verifier`` rejects (same states and
    transitions, ``accepting`` negated).

    >>> import jax.numpy as jnp
    >>> accepts(complement(contains(2, [1])), jnp.array([[0, 0], [0, 1]])).tolist()
    [True, False]
    """
    verifier = _required(verifier, "verifier")
    return _trust(
        Automaton(verifier.transition, ~jnp.asarray(verifier.accepting), verifier.initial)
    )


def accepts(verifier: Automaton, tokens: Any) -> jax.Array:
    """Whether ``verifier`` accepts each string of ``tokens`` (``(..., length)`` int).

    Returns a bool array of shape ``tokens.shape[:-1]``.

    >>> import jax.numpy as jnp
    >>> accepts(contains(3, [2]), jnp.array([[0, 2], [1, 1]])).tolist()
    [True, False]
    """
    verifier = _required(verifier, "verifier")
    toks = _tokens(tokens, None, verifier.vocab)
    length = int(toks.shape[-1])
    _table_size(
        length * verifier.num_states * verifier.vocab,
        "the per-position table (length, states, vocab)",
        "`tokens` and `verifier`",
    )
    step = jnp.zeros((length, verifier.num_states, verifier.vocab), jnp.float32)
    final = jnp.zeros((verifier.num_states,), jnp.float32)
    last = _sequence_energy_jit(verifier.transition, verifier.initial, step, final, toks)[1]
    return jnp.asarray(verifier.accepting)[last]
