"""Public argument checks for code built on the sequence package.

Every function of :mod:`freeenergy.sequences` validates its arguments with these; a module that
takes a :class:`SequenceModel`, an :class:`Automaton` or an array of tokens from a user (the
search and tool models of :mod:`freeenergy.expand`, for instance) calls them too, so that the
same input gets the same clear error everywhere. Each raises ``TypeError`` / ``ValueError``
naming the argument (``name``), the value received and the fix.
"""

from __future__ import annotations

from typing import Any

import jax

from ._types import Automaton, SequenceModel
from ._validate import _length, _model, _space_size, _tokens, _verifier, _vocab

__all__ = ["check_model", "check_verifier", "check_tokens", "space_size"]


def check_model(model: Any, name: str = "model") -> SequenceModel:
    """``model`` checked as a :class:`SequenceModel`: its type, the shapes of its tables, that
    every ``logp`` row is a normalized log-distribution (``-inf`` allowed), that every
    transition names an existing state and that ``initial`` is a state. Returns the model.

    A model built by this package's constructors or dynamic programs is checked once and then
    remembered (it is immutable), so checking it again is free.

    >>> import jax.numpy as jnp
    >>> from freeenergy import sequences as sq
    >>> check_model(sq.iid(jnp.log(jnp.array([0.5, 0.5])), 3)).length
    3
    >>> check_model("abc")
    Traceback (most recent call last):
    ...
    TypeError: `model` must be a freeenergy.sequences.SequenceModel, got ...
    """
    return _model(model, name)


def check_verifier(
    verifier: Any, vocab: int | None = None, name: str = "verifier", *, optional: bool = False
) -> Automaton | None:
    """``verifier`` checked as an :class:`Automaton` over ``vocab`` tokens (its own vocab when
    ``vocab`` is None): the type, a ``(num_states, vocab)`` integer transition table whose entries
    are states, a bool ``accepting`` of shape ``(num_states,)`` and a start state. ``None`` is
    returned as is when ``optional`` (the dynamic programs' "no verifier"), refused otherwise.

    >>> from freeenergy import sequences as sq
    >>> check_verifier(sq.contains(3, [1, 2]), 3).num_states
    3
    >>> check_verifier(sq.contains(3, [1, 2]), 4)
    Traceback (most recent call last):
    ...
    ValueError: `verifier` reads 3 tokens but the model has vocab = 4; ...
    """
    if verifier is None:
        if optional:
            return None
        raise TypeError(
            f"`{name}` must be a freeenergy.sequences.Automaton (the check that accepts a "
            "string), got None; build one with sequences.exact_match, contains, count_at_least, "
            "digit_sum_mod or automaton."
        )
    return _verifier(verifier, -1 if vocab is None else _vocab(vocab), name)


def check_tokens(
    tokens: Any, vocab: int, length: int | None = None, name: str = "tokens"
) -> jax.Array:
    """``tokens`` checked as an integer array ``(..., length)`` of token ids in
    ``[0, vocab)`` (any length when ``length`` is None, but at least one position); returned as
    int32. Floats are refused, also integral ones (``1.0``), so a probability or a log-probability
    passed by mistake is not truncated to a token id.

    >>> check_tokens([[0, 1], [1, 1]], 2).tolist()
    [[0, 1], [1, 1]]
    >>> check_tokens([0.0, 1.7], 2)
    Traceback (most recent call last):
    ...
    TypeError: `tokens` must hold integer token ids, got dtype float...
    """
    return _tokens(tokens, None if length is None else _length(length), _vocab(vocab), name)


def space_size(vocab: int, length: int) -> int:
    """The number ``vocab ** length`` of strings, checked against ``MAX_ENUMERATE``: what a
    function that lists every string (``enumerate``, ``strings``, a policy over all strings)
    needs before it allocates. Raises ``ValueError`` above the limit (computed in log space, so
    a huge ``length`` costs nothing).

    >>> space_size(2, 10)
    1024
    """
    return _space_size(_vocab(vocab), length)
