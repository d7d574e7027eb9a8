"""The two pytrees of the sequence package: :class:`SequenceModel` and :class:`Automaton`."""

from __future__ import annotations

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp

__all__ = ["SequenceModel", "Automaton"]


def _zero() -> jax.Array:
    return jnp.asarray(0, jnp.int32)


@partial(
    jax.tree_util.register_dataclass, data_fields=["logp", "transition", "initial"], meta_fields=[]
)
@dataclasses.dataclass(frozen=True, eq=False)
class SequenceModel:
    r"""A finite-state generator of strings of fixed length.

    * ``logp`` — ``(length, num_states, vocab)`` next-token log-probabilities: at position
      ``t`` in state ``s`` the token ``y`` is emitted with probability ``exp(logp[t, s, y])``;
    * ``transition`` — ``(num_states, vocab)`` int: the state after emitting ``y`` in ``s``;
    * ``initial`` — the start state, an int32 scalar array.

    $\log p(y) = \sum_t \texttt{logp}[t, s_t, y_t]$ with $s_{t+1} = T[s_t, y_t]$. A pytree: the
    three arrays are leaves (a policy parametrizes ``logp``; a batch of prompts is a ``vmap``
    over ``initial``); the sizes are static, read from the shapes. Build one with
    :func:`finite_state`, :func:`from_logits`, :func:`iid`, :func:`markov` or
    :func:`autoregressive`; those validate, the bare constructor does not. Log-probabilities
    are in nats.

    >>> import jax.numpy as jnp
    >>> from freeenergy.sequences import iid
    >>> m = iid(jnp.log(jnp.array([0.25, 0.75])), 4)
    >>> m.length, m.num_states, m.vocab, m.logp.shape
    (4, 1, 2, (4, 1, 2))
    """

    logp: jax.Array
    transition: jax.Array
    initial: jax.Array

    @property
    def length(self) -> int:
        return int(self.logp.shape[0])

    @property
    def num_states(self) -> int:
        return int(self.logp.shape[1])

    @property
    def vocab(self) -> int:
        return int(self.logp.shape[2])


@partial(
    jax.tree_util.register_dataclass,
    data_fields=["transition", "accepting", "initial"],
    meta_fields=[],
)
@dataclasses.dataclass(frozen=True, eq=False)
class Automaton:
    r"""A deterministic finite automaton over tokens (a verifier).

    * ``transition`` — ``(num_states, vocab)`` int: $a_{t+1} = D[a_t, y_t]$;
    * ``accepting`` — ``(num_states,)`` bool: the string is accepted when $a_L$ is accepting;
    * ``initial`` — the start state, an int32 scalar array.

    Terminal energies/rewards and per-step energies are attached per call (keywords ``reward=``,
    ``energy=``, ``step_energy=`` of the dynamic programs), indexed by these states. Build one
    with :func:`automaton`, :func:`exact_match`, :func:`starts_with`, :func:`contains`,
    :func:`count_at_least`, :func:`digit_sum_mod`, :func:`intersect`, :func:`complement`.

    >>> from freeenergy.sequences import contains
    >>> v = contains(3, [1, 2])  # states: nothing matched, "1" matched, "12" seen
    >>> v.num_states, v.vocab, v.accepting.tolist()
    (3, 3, [False, False, True])
    """

    transition: jax.Array
    accepting: jax.Array
    initial: jax.Array

    @property
    def num_states(self) -> int:
        return int(self.transition.shape[0])

    @property
    def vocab(self) -> int:
        return int(self.transition.shape[1])
