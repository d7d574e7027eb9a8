r"""Sequence spaces: finite-state generators, automaton verifiers and exact dynamic programs.

A behavior is a string $y = (y_0, \dots, y_{L-1})$ of ``length`` $L$ tokens from
``{0, ..., vocab - 1}``; there are ``vocab ** length`` of them (``4 ** 64`` ≈ 3.4·10^38).
Nothing here enumerates them: every exact quantity is a dynamic program over positions.

**Models.** A :class:`SequenceModel` is a finite-state generator: a start state $s_0$, a
transition table $s_{t+1} = T[s_t, y_t]$ and per-position next-token log-probabilities
``logp[t, s, y]`` (shape ``(length, num_states, vocab)``, each row normalized, ``-inf`` = the
token is never emitted there). Its distribution is

$$\log p(y) = \sum_{t=0}^{L-1} \texttt{logp}[t, s_t, y_t].$$

i.i.d. tokens (:func:`iid`), order-k Markov chains (:func:`markov`) and full prefix trees
(:func:`autoregressive`) are special cases; variable length is a fixed length with an absorbing
end token (:func:`with_end`). Every Gibbs tilt of a model by a verifier is again a model of this
kind, on the product states (:func:`tilt`).

**Verifiers and energies.** An :class:`Automaton` reads the string, $a_{t+1} = D[a_t, y_t]$
from $a_0$, and accepts when $a_L$ is an accepting state. The energy of a string is

$$U(y) = \sum_{t=0}^{L-1} E[t, a_t, y_t] + U_\mathrm{final}[a_L]$$

with per-step energies ``step_energy`` (token-level) and a terminal energy on the automaton's last
state (sequence-level). Unless told otherwise (keywords ``reward=``, ``energy=``,
``step_energy=``), the terminal term is the verifier's **reward 1 on accepted strings and 0
elsewhere**, i.e. $U = -\mathbb{1}[y \text{ accepted}]$; with ``verifier=None`` there is no
terminal term. Sign convention as in :func:`freeenergy.gibbs`: low energy is good, a reward
$r$ is the energy $-r$, ``+inf`` energy (``-inf`` reward) excludes a string.

**Exact dynamic programs.** With $\lambda = 1/\beta$, the soft Bellman (backward) recursion on
the product states $(s, a)$,

$$V_L(s, a) = -\lambda U_\mathrm{final}[a], \qquad
  V_t(s, a) = \log\sum_y \exp\big(\texttt{logp}[t,s,y] - \lambda E[t,a,y]
  + V_{t+1}(T[s,y], D[a,y])\big),$$

gives $\log Z_\beta = V_0(s_0, a_0) = \log\sum_y p(y)\,e^{-U(y)/\beta}$ and the tilted
conditionals $\log q[t,(s,a),y] = \texttt{logp}[t,s,y] - \lambda E[t,a,y] + V_{t+1}(\cdot) -
V_t(s,a)$: the exact Gibbs tilt $q \propto p\,e^{-U/\beta}$ (THEORY.md §1) as a
time-inhomogeneous generator. So that every $\beta$ from 1e-6 to 1e6 stays exact (also in
float32), the same backward pass carries the least energy-to-go $m_t$ (a min-plus recursion) and
works with $V_t = -\lambda m_t + c_t$, where $c_t$ sums only non-negative energy gaps and has the
size of a log-probability; $\log Z_\beta = c_0 - \lambda m_0$. KL, entropy and expected energy
are backward recursions for additive functionals. Cost $O(L\cdot|S|\cdot|A|\cdot V)$, linear
in the length. Everything is checked against enumeration (:func:`enumerate`, :func:`strings`)
on spaces small enough to list (THEORY.md T10).
"""

from __future__ import annotations

import dataclasses
import math
import weakref
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks
from ..support import _reach

__all__ = [
    # models
    "SequenceModel",
    "finite_state",
    "from_logits",
    "iid",
    "markov",
    "autoregressive",
    "with_end",
    # verifiers
    "Automaton",
    "automaton",
    "exact_match",
    "starts_with",
    "contains",
    "count_at_least",
    "digit_sum_mod",
    "intersect",
    "complement",
    # exact dynamic programs
    "log_partition",
    "tilt",
    "tilt_for_kl",
    "kl",
    "entropy",
    "expected_energy",
    "free_energy",
    "log_prob",
    "accept_logprob",
    "pass_at_k",
    "reach_probability",
    "sample",
    # small spaces
    "strings",
    "enumerate",
    "sequence_energy",
    "accepts",
]

#: Largest space ``vocab ** length`` that :func:`enumerate` / :func:`strings` will list.
MAX_ENUMERATE = 2**24
#: Largest number of states :func:`autoregressive` builds (one per prefix).
MAX_PREFIX_STATES = 2**20
#: The temperatures :func:`tilt_for_kl` searches: beta in [1e-6, 1e6].
_BETA_MIN, _BETA_MAX = 1e-6, 1e6
_MAX_ROOT_STEPS = 100


def _zero() -> jax.Array:
    return jnp.asarray(0, jnp.int32)


# ============================================================================ types
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
    :func:`autoregressive`; those validate, the bare constructor does not.
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


# ============================================================================ validation
def _table(x: Any, name: str, num_states: int | None, vocab: int | None) -> jax.Array:
    """An int transition table ``(states, vocab)`` with entries in ``[0, states)``."""
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"`{name}` must be an integer array (states, vocab), got {x!r}.")
    arr = jnp.asarray(x)
    if not jnp.issubdtype(arr.dtype, jnp.integer) or arr.dtype == jnp.bool_:
        raise TypeError(
            f"`{name}` must hold integer state indices, got dtype {arr.dtype}; "
            f"pass `jnp.asarray({name}, dtype=jnp.int32)`."
        )
    if arr.ndim != 2:
        raise ValueError(
            f"`{name}` must have shape (num_states, vocab), got shape {tuple(arr.shape)}."
        )
    if num_states is not None and arr.shape[0] != num_states:
        raise ValueError(
            f"`{name}` has {arr.shape[0]} rows but there are {num_states} states; "
            "give one row per state."
        )
    if vocab is not None and arr.shape[1] != vocab:
        raise ValueError(
            f"`{name}` has {arr.shape[1]} columns but vocab = {vocab}; give one per token."
        )
    if arr.size == 0:
        raise ValueError(f"`{name}` is empty (shape {tuple(arr.shape)}); need >= 1 state/token.")
    if not _checks.is_traced(arr):
        v = np.asarray(arr)
        bad = (v < 0) | (v >= arr.shape[0])
        if np.any(bad):
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"`{name}` sends state {idx[0]} on token {idx[1]} to {int(v[idx])}, outside "
                f"[0, {arr.shape[0]}); every entry must name an existing state."
            )
    return arr.astype(jnp.int32)


def _state(x: Any, name: str, num_states: int) -> jax.Array:
    """A start state: an int in ``[0, num_states)``, returned as an int32 scalar array."""
    if _checks.is_traced(x):
        if jnp.ndim(x) != 0 or not jnp.issubdtype(jnp.result_type(x), jnp.integer):
            raise TypeError(f"`{name}` must be an integer scalar, got {_checks._describe(x)}.")
        return jnp.asarray(x, jnp.int32)
    s = _checks.integer(x, name, minimum=0)
    if s >= num_states:
        raise ValueError(
            f"`{name}` = {s} but there are only {num_states} states (0..{num_states - 1})."
        )
    return jnp.asarray(s, jnp.int32)


def _token(x: Any, name: str, vocab: int) -> int:
    y = _checks.integer(x, name, minimum=0)
    if y >= vocab:
        raise ValueError(f"`{name}` = {y} is not a token: vocab = {vocab} (tokens 0..{vocab - 1}).")
    return y


def _token_list(x: Any, name: str, vocab: int, *, allow_empty: bool = True) -> list[int]:
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"`{name}` must be a sequence of token ids, got {x!r}.")
    arr = np.asarray(x)
    if arr.ndim != 1 or not (np.issubdtype(arr.dtype, np.integer) or arr.size == 0):
        raise TypeError(
            f"`{name}` must be a 1-D sequence of integer token ids, got {_checks._describe(x)}."
        )
    if arr.size == 0 and not allow_empty:
        raise ValueError(f"`{name}` is empty; give at least one token.")
    bad = (arr < 0) | (arr >= vocab)
    if np.any(bad):
        i = int(np.argmax(bad))
        raise ValueError(
            f"`{name}`[{i}] = {int(arr[i])} is not a token: vocab = {vocab} "
            f"(tokens 0..{vocab - 1})."
        )
    return [int(v) for v in arr]


def _vocab(x: Any, name: str = "vocab") -> int:
    return _checks.integer(x, name, minimum=1)


#: Models and automata this module built (by a validated constructor or an exact dynamic
#: program) from concrete, immutable JAX arrays: they need no re-validation. Keyed by id, holding
#: the object weakly, so an entry disappears with its object.
_TRUSTED: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def _trust(obj):
    leaves = jax.tree_util.tree_leaves(obj)
    if all(isinstance(x, jax.Array) and not _checks.is_traced(x) for x in leaves):
        _TRUSTED[id(obj)] = obj
    return obj


def _is_trusted(obj) -> bool:
    return _TRUSTED.get(id(obj)) is obj


def _model(model: Any, name: str = "model") -> SequenceModel:
    """Check a SequenceModel's type, shapes and (on concrete arrays) values."""
    if not isinstance(model, SequenceModel):
        raise TypeError(
            f"`{name}` must be a freeenergy.sequences.SequenceModel, got {_checks._describe(model)}"
            "; build one with sequences.iid / markov / autoregressive / finite_state."
        )
    if _is_trusted(model):
        return model
    logp = _checks.logp(model.logp, f"{name}.logp")
    if logp.ndim != 3:
        raise ValueError(
            f"`{name}.logp` must have shape (length, num_states, vocab), got {tuple(logp.shape)}."
        )
    _table(model.transition, f"{name}.transition", logp.shape[1], logp.shape[2])
    _state(model.initial, f"{name}.initial", logp.shape[1])
    return _trust(model)


def _verifier(verifier: Any, vocab: int, name: str = "verifier") -> Automaton | None:
    if verifier is None:
        return None
    if not isinstance(verifier, Automaton):
        raise TypeError(
            f"`{name}` must be a freeenergy.sequences.Automaton or None, got "
            f"{_checks._describe(verifier)}; build one with sequences.exact_match, contains, "
            "count_at_least, digit_sum_mod or automaton."
        )
    if verifier.vocab != vocab:
        raise ValueError(
            f"`{name}` reads {verifier.vocab} tokens but the model has vocab = {vocab}; "
            "build the verifier with the model's vocab."
        )
    if _is_trusted(verifier):
        return verifier
    _table(verifier.transition, f"{name}.transition", None, vocab)
    acc = jnp.asarray(verifier.accepting)
    if acc.dtype != jnp.bool_ or acc.shape != (verifier.num_states,):
        raise TypeError(
            f"`{name}.accepting` must be a bool array of shape ({verifier.num_states},), got "
            f"{_checks._describe(acc)}."
        )
    _state(verifier.initial, f"{name}.initial", verifier.num_states)
    return _trust(verifier)


def _beta(beta: Any, dtype: Any, *, inverse: bool = False) -> jax.Array:
    """A finite scalar temperature > 0, or with ``inverse`` its inverse lam = 1/beta (Python
    numbers are checked and inverted without a device round trip)."""
    if isinstance(beta, (int, float)) and not isinstance(beta, bool):
        b = _checks.scalar(beta, "beta")
        if not (0.0 < b < math.inf):
            raise ValueError(f"`beta` must be finite and > 0, got {b!r}.")
        return jnp.asarray(1.0 / b if inverse else b, dtype)
    arr = _checks.positive(beta, "beta")
    if arr.ndim != 0:
        raise ValueError(
            f"`beta` must be a scalar here, got shape {tuple(arr.shape)}; for a family of "
            "temperatures use `jax.vmap` over a scalar beta or loop."
        )
    arr = arr.astype(dtype)
    return 1.0 / arr if inverse else arr


class _Energies:
    """The automaton and energy tables one call works with (internal)."""

    def __init__(self, transition, initial, step, final):
        self.transition = transition  # (A, V) int32
        self.initial = initial  # int32 scalar
        self.step = step  # (L, A, V), real or +inf
        self.final = final  # (A,), real or +inf


def _energies(
    verifier: Automaton | None,
    model: SequenceModel,
    *,
    reward: Any = None,
    energy: Any = None,
    step_energy: Any = None,
) -> _Energies:
    """Resolve the keywords into ``(L, A, V)`` step and ``(A,)`` terminal energy tables.

    Built with NumPy when everything is concrete (no device round trips per call), with
    ``jax.numpy`` when something is traced.
    """
    L, V = model.length, model.vocab
    dtype = model.logp.dtype
    if reward is not None and energy is not None:
        raise ValueError(
            "give at most one of `reward` and `energy` (the terminal term, energy = -reward)."
        )
    given = [
        (_checks.energy(value, name, sign=sign), name, sign)
        for value, name, sign in ((reward, "reward", -1), (energy, "energy", 1))
        if value is not None
    ]
    step_arr = None if step_energy is None else _checks.energy(step_energy, "step_energy")
    leaves = [a for a, _, _ in given] + ([] if step_arr is None else [step_arr])
    if verifier is not None:
        leaves += jax.tree_util.tree_leaves(verifier)
    xp = jnp if _checks.is_traced(*leaves) else np
    if verifier is None:
        transition = xp.zeros((1, V), np.int32)
        initial, num_a = xp.asarray(0, np.int32), 1
        final = xp.zeros((1,), dtype)
    else:
        transition = xp.asarray(verifier.transition).astype(np.int32)
        initial, num_a = xp.asarray(verifier.initial).astype(np.int32), verifier.num_states
        final = -xp.asarray(verifier.accepting).astype(dtype)
    for arr, name, sign in given:
        if arr.shape != (num_a,):
            raise ValueError(
                f"`{name}` must hold one terminal value per automaton state, shape ({num_a},), "
                f"got {tuple(arr.shape)}"
                + (" (verifier=None has a single state)." if verifier is None else ".")
            )
        final = sign * xp.asarray(arr).astype(dtype)
    if step_arr is None:
        step = xp.zeros((L, num_a, V), dtype)
    else:
        shapes = {(V,): (1, 1, V), (L, V): (L, 1, V), (L, num_a, V): (L, num_a, V)}
        if tuple(step_arr.shape) not in shapes:
            raise ValueError(
                f"`step_energy` must have shape (vocab,) = ({V},), (length, vocab) = ({L}, {V}) "
                f"or (length, automaton states, vocab) = ({L}, {num_a}, {V}); got "
                f"{tuple(step_arr.shape)}."
            )
        shaped = xp.asarray(step_arr).astype(dtype).reshape(shapes[tuple(step_arr.shape)])
        step = xp.broadcast_to(shaped, (L, num_a, V))
    return _Energies(transition, initial, step, final)


def _tokens(tokens: Any, model_length: int, vocab: int, name: str = "tokens") -> jax.Array:
    if isinstance(tokens, (str, bytes)) or tokens is None:
        raise TypeError(f"`{name}` must be an integer array (..., length), got {tokens!r}.")
    arr = jnp.asarray(tokens)
    if not jnp.issubdtype(arr.dtype, jnp.integer) or arr.dtype == jnp.bool_:
        raise TypeError(f"`{name}` must hold integer token ids, got dtype {arr.dtype}.")
    if arr.ndim < 1 or arr.shape[-1] != model_length:
        raise ValueError(
            f"`{name}` must have shape (..., length) with length = {model_length}, got "
            f"{tuple(arr.shape)}."
        )
    if not _checks.is_traced(arr) and arr.size:
        v = np.asarray(arr)
        bad = (v < 0) | (v >= vocab)
        if np.any(bad):
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"`{name}`{list(idx)} = {int(v[idx])} is not a token (vocab = {vocab})."
            )
    return arr.astype(jnp.int32)


# ============================================================================ kernels (no checks)
def _scaled(energy: jax.Array, lam: jax.Array) -> jax.Array:
    """-lam * U, with U = +inf giving -inf for every lam >= 0 (excluded)."""
    return jnp.where(energy == jnp.inf, -jnp.inf, -lam * jnp.where(energy == jnp.inf, 0.0, energy))


def _product_next(t_model: jax.Array, t_auto: jax.Array) -> jax.Array:
    """Transition of the product (s, a) -> index s * A + a."""
    num_a = t_auto.shape[0]
    return (t_model[:, None, :] * num_a + t_auto[None, :, :]).reshape(-1, t_model.shape[1])


def _expect_terms(logq: jax.Array, values: jax.Array) -> jax.Array:
    """q * values with 0 * anything = 0 where q = 0 and q * (+inf) = +inf where q > 0."""
    pos = logq > -jnp.inf
    v = jnp.where(pos, values, 0.0)
    hit_inf = pos & (v == jnp.inf)
    finite_v = jnp.where(hit_inf, 0.0, v)
    out = jnp.exp(jnp.where(pos, logq, -jnp.inf)) * finite_v
    return jnp.where(hit_inf, jnp.inf, out)


def _mean_backward(logq_fn, cost_fn, xs, nxt, final, init):
    """E_q[sum_t cost_t + final] by the backward recursion G_t = sum_y q (cost + G_{t+1})."""

    def body(g_next, x):
        g = jnp.sum(_expect_terms(logq_fn(x), cost_fn(x) + g_next[nxt]), axis=-1)
        return g, None

    g0, _ = jax.lax.scan(body, final, xs, reverse=True)
    return g0[init]


def _kl_kernel(lq, q_rows, lr, r_rows, nxt, init):
    """KL(q || r) over joint states j whose q-row is q_rows[j] and r-row r_rows[j]."""

    def logq_fn(x):
        return x[0][q_rows]

    def cost_fn(x):
        a, b = x[0][q_rows], x[1][r_rows]
        pos = a > -jnp.inf
        return jnp.where(pos, jnp.where(pos, a, 0.0) - b, 0.0)

    final = jnp.zeros(nxt.shape[0], lq.dtype)
    return _mean_backward(logq_fn, cost_fn, (lq, lr), nxt, final, init)


def _kl_models(q: SequenceModel, r: SequenceModel) -> jax.Array:
    sq, sr = q.num_states, r.num_states
    j = jnp.arange(sq * sr)
    nxt = _product_next(q.transition, r.transition)
    return _kl_kernel(q.logp, j // sr, r.logp, j % sr, nxt, q.initial * sr + r.initial)


def _entropy_kernel(model: SequenceModel) -> jax.Array:
    def cost_fn(x):
        pos = x > -jnp.inf
        return -jnp.where(pos, x, 0.0)

    final = jnp.zeros(model.num_states, model.logp.dtype)
    return _mean_backward(lambda x: x, cost_fn, model.logp, model.transition, final, model.initial)


def _expected_energy_kernel(model: SequenceModel, t_auto, init_auto, step, final):
    S, A = model.num_states, t_auto.shape[0]
    nxt = _product_next(model.transition, t_auto)
    j = jnp.arange(S * A)
    s_rows, a_rows = j // A, j % A
    return _mean_backward(
        lambda x: x[0][s_rows],
        lambda x: x[1][a_rows],
        (model.logp, step),
        nxt,
        jnp.tile(final, S),
        model.initial * A + init_auto,
    )


def _soft_pass(model: SequenceModel, t_auto, init_auto, step, final, lam, *, tables, with_kl):
    """The soft Bellman recursion on the product states (s, a), one backward scan, exact for
    every beta.

    Carried backwards with it: the least energy-to-go m_t(j) over continuations of positive
    probability (+inf if none). With the gaps g = E[t,a,y] + m_{t+1}(j') - m_t(j) >= 0 (j' the
    next product state), c_t(j) = log sum_y p(y|s) exp(-lam g + c_{t+1}(j')), so
    V_t = -lam m_t + c_t with c_t of the size of a log-probability whatever lam is, and
    log Z = c_0(j0) - lam m_0(j0). The tilted conditionals are the row-wise log-softmax of the
    same terms. With ``with_kl``, KL(q || p) is carried too:
    K_t(j) = sum_y q(y|j) [log q(y|j) - log p(y|s) + K_{t+1}(j')].
    Returns (log Z, KL or None, tables (L, S*A, V) or None, product next-state table, j0).
    """
    S, V = model.num_states, model.vocab
    A = t_auto.shape[0]
    nxt = _product_next(model.transition, t_auto)
    m_last = jnp.tile(final, S)
    c_last = jnp.where(m_last < jnp.inf, 0.0, -jnp.inf).astype(model.logp.dtype)

    def body(carry, x):
        m_next, c_next, k_next = carry
        logp_t, step_t = x
        lp = jnp.broadcast_to(logp_t[:, None, :], (S, A, V)).reshape(S * A, V)
        e = jnp.broadcast_to(step_t[None, :, :], (S, A, V)).reshape(S * A, V)
        togo = jnp.where(lp == -jnp.inf, jnp.inf, e + m_next[nxt])
        m = jnp.min(togo, axis=-1)
        hope = m < jnp.inf
        gap = togo - jnp.where(hope, m, 0.0)[:, None]
        terms = jnp.where(hope[:, None], lp + _scaled(gap, lam) + c_next[nxt], 0.0)
        c = jnp.where(hope, jax.nn.logsumexp(terms, axis=-1), -jnp.inf)
        if not (tables or with_kl):
            return (m, c, k_next), None
        cond = jnp.where(hope[:, None], jax.nn.log_softmax(terms, axis=-1), lp)
        if with_kl:
            pos = cond > -jnp.inf
            ratio = jnp.where(pos, jnp.where(pos, cond, 0.0) - jnp.where(pos, lp, 0.0), 0.0)
            k_next = jnp.sum(_expect_terms(cond, ratio + k_next[nxt]), axis=-1)
        return (m, c, k_next), (cond if tables else None)

    carry0 = (m_last, c_last, jnp.zeros_like(c_last))
    (m0, c0, k0), out = jax.lax.scan(body, carry0, (model.logp, step), reverse=True)
    j0 = model.initial * A + init_auto
    finite = m0[j0] < jnp.inf
    log_z = jnp.where(finite, c0[j0] - lam * jnp.where(finite, m0[j0], 0.0), -jnp.inf)
    return log_z, (k0[j0] if with_kl else None), out, nxt, j0


@jax.jit
def _soft_jit(model: SequenceModel, t_auto, init_auto, step, final, lam):
    """(log Z, KL(q || p), tilted model): one compiled dynamic program per shape, shared by
    log_partition, accept_logprob, tilt and tilt_for_kl."""
    log_z, divergence, tables, nxt, j0 = _soft_pass(
        model, t_auto, init_auto, step, final, lam, tables=True, with_kl=True
    )
    return log_z, divergence, SequenceModel(tables, nxt, j0)


_kl_jit = jax.jit(_kl_models)
_entropy_jit = jax.jit(_entropy_kernel)
_expected_energy_jit = jax.jit(_expected_energy_kernel)


def _solve_kl(run, budget: float, dtype) -> float:
    """1/beta with KL(q_beta || p) = budget, for ``run(lam) -> KL``, lam in [1e-6, 1e6].

    g(s) = log KL(e^s) - log budget is increasing in s = log(1/beta) (T4) and close to linear
    where the KL is small (KL ~ Var/(2 beta^2)). The Illinois variant of regula falsi keeps a
    bracket, halves the value of an endpoint kept twice, and bisects when a value is infinite;
    it stops at |g| <= 1e-12 (float64; 1e-6 in float32), when the bracket reaches float
    resolution, or after _MAX_ROOT_STEPS evaluations. Budgets outside [KL(lam_min), KL(lam_max)]
    return the nearer end.
    """
    if budget <= 0.0:
        return 0.0
    log_budget = math.log(budget)

    def g(s):
        value = float(run(math.exp(s)))
        return math.log(value) - log_budget if value > 0 else -math.inf

    a, b = math.log(1.0 / _BETA_MAX), math.log(1.0 / _BETA_MIN)
    ga, gb = g(a), g(b)
    if gb <= 0:
        return math.exp(b)
    if ga >= 0:
        return math.exp(a)
    tol = 1e-12 if dtype == jnp.float64 else 1e-6
    eps = float(jnp.finfo(dtype).eps)
    s, side = a, 0
    for _ in range(_MAX_ROOT_STEPS):
        secant = b - gb * (b - a) / (gb - ga) if math.isfinite(ga) and math.isfinite(gb) else a
        s = secant if a < secant < b else 0.5 * (a + b)
        gs = g(s)
        if abs(gs) <= tol or b - a <= 4 * eps * max(1.0, abs(s)):
            break
        if gs < 0:  # the root lies right of s
            a, ga = s, gs
            gb = 0.5 * gb if side == -1 else gb
            side = -1
        else:
            b, gb = s, gs
            ga = 0.5 * ga if side == 1 else ga
            side = 1
    return math.exp(s)


def _log_prob_one(logp, transition, initial, tokens):
    def body(s, x):
        logp_t, y = x
        return transition[s, y], logp_t[s, y]

    _, terms = jax.lax.scan(body, jnp.asarray(initial, jnp.int32), (logp, tokens))
    return jnp.sum(terms)


@jax.jit
def _log_prob_jit(model, tokens):
    flat = tokens.reshape(-1, model.length)
    out = jax.vmap(_log_prob_one, in_axes=(None, None, None, 0))(
        model.logp, model.transition, model.initial, flat
    )
    return out.reshape(tokens.shape[:-1])


def _energy_one(t_auto, init_auto, step, final, tokens):
    def body(a, x):
        step_t, y = x
        return t_auto[a, y], step_t[a, y]

    a_last, terms = jax.lax.scan(body, jnp.asarray(init_auto, jnp.int32), (step, tokens))
    return jnp.sum(terms) + final[a_last], a_last


@jax.jit
def _sequence_energy_jit(t_auto, init_auto, step, final, tokens):
    flat = tokens.reshape(-1, tokens.shape[-1])
    energy, last = jax.vmap(_energy_one, in_axes=(None, None, None, None, 0))(
        t_auto, init_auto, step, final, flat
    )
    return energy.reshape(tokens.shape[:-1]), last.reshape(tokens.shape[:-1])


@partial(jax.jit, static_argnums=2)
def _sample_jit(key, model, num_samples):
    """Inverse-CDF ancestral sampling with uniforms drawn up front: token = first y with
    cdf(y) >= (1 - u) * cdf(V - 1), so a token of probability zero is never chosen."""
    uniforms = jax.random.uniform(key, (model.length, num_samples), model.logp.dtype)

    def body(s, x):
        logp_t, u = x
        cdf = jnp.cumsum(jnp.exp(logp_t[s]), axis=-1)
        y = jnp.argmax(cdf >= (1.0 - u)[:, None] * cdf[:, -1:], axis=-1).astype(jnp.int32)
        return model.transition[s, y], y

    s0 = jnp.full((num_samples,), model.initial, jnp.int32)
    _, ys = jax.lax.scan(body, s0, (model.logp, uniforms))
    return ys.T


# ============================================================================ model constructors
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
    table = _checks.logp(logp, "logp")
    if table.ndim == 2:
        if length is None:
            raise ValueError(
                "`logp` has shape (num_states, vocab): also pass `length` (the number of "
                "tokens), or give per-position tables of shape (length, num_states, vocab)."
            )
        n = _checks.integer(length, "length", minimum=1)
        table = jnp.broadcast_to(table, (n, *table.shape))
    elif table.ndim == 3:
        if length is not None and _checks.integer(length, "length", minimum=1) != table.shape[0]:
            raise ValueError(
                f"`length` = {length} but `logp` has per-position tables for "
                f"{table.shape[0]} positions."
            )
        if table.shape[0] == 0:
            raise ValueError("`logp` has no positions (length 0); a string needs length >= 1.")
    else:
        raise ValueError(
            "`logp` must have shape (length, num_states, vocab) or (num_states, vocab), got "
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
    :func:`finite_state`. Works on traced ``logits`` (inside ``jit``/``grad``).
    """
    arr = _checks.logp(logits, "logits", normalized=False)
    arr = arr - jax.nn.logsumexp(arr, axis=-1, keepdims=True)
    if _checks.is_traced(arr):
        if arr.ndim == 2:
            arr = jnp.broadcast_to(arr, (_checks.integer(length, "length", minimum=1), *arr.shape))
        trans = _table(transition, "transition", arr.shape[1], arr.shape[2])
        return _trust(SequenceModel(arr, trans, _state(initial, "initial", arr.shape[1])))
    return finite_state(arr, transition, initial, length=length)


def with_end(model: SequenceModel, end: int) -> SequenceModel:
    r"""Variable length by an absorbing end token.

    Adds one state, entered from every state on token ``end``, which emits ``end`` with
    probability one: a string ``(y_0..y_{k-1}, end, end, ...)`` is the variable-length string
    ``y_0..y_{k-1}`` stopped at step ``k`` with the model's probability of emitting ``end``
    there. Strings that emit ``end`` then anything else get probability zero.
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
    n = _checks.integer(length, "length", minimum=1)
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
    states are the ``vocab ** k`` contexts. ``k = 0`` is :func:`iid`.
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
    n = _checks.integer(length, "length", minimum=1)
    num_s = vocab**k
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
    token most significant). There are $\sum_{t<L} V^t$ states (at most ``MAX_PREFIX_STATES``).
    """
    vocab = _vocab(vocab)
    n = _checks.integer(length, "length", minimum=1)
    num_s = sum(vocab**t for t in range(n))
    if num_s > MAX_PREFIX_STATES:
        raise ValueError(
            f"a prefix tree over vocab = {vocab}, length = {n} has {num_s} states, above "
            f"MAX_PREFIX_STATES = {MAX_PREFIX_STATES}; use a Markov or finite-state model."
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


# ============================================================================ verifiers
def automaton(transition: Any, accepting: Any, initial: int = 0) -> Automaton:
    """A validated :class:`Automaton`: ``transition`` ``(num_states, vocab)`` int with entries
    in ``[0, num_states)``, ``accepting`` a bool mask ``(num_states,)``, ``initial`` a state."""
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
    given). States: ``0..m`` = number of target tokens matched, ``m + 1`` = mismatch (dead)."""
    vocab = _vocab(vocab)
    tgt = _token_list(target, "target", vocab)
    if end is not None:
        end = _token(end, "end", vocab)
        if end in tgt:
            raise ValueError(f"`target` contains the end token {end}; an end token ends it.")
    m = len(tgt)
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
    ``0..m`` = matched so far (``m`` absorbing, accepting), ``m + 1`` = mismatch."""
    vocab = _vocab(vocab)
    pre = _token_list(prefix, "prefix", vocab)
    m = len(pre)
    trans = np.full((m + 2, vocab), m + 1, np.int32)
    for i in range(m):
        trans[i, pre[i]] = i + 1
    trans[m, :] = m
    return _trust(Automaton(jnp.asarray(trans), jnp.asarray(np.arange(m + 2) == m), _zero()))


def contains(vocab: int, pattern: Sequence[int]) -> Automaton:
    """Accepts every string containing ``pattern`` as a contiguous substring (the
    Knuth–Morris–Pratt automaton: state ``j`` = longest prefix of the pattern that ends here;
    ``m`` absorbing and accepting)."""
    vocab = _vocab(vocab)
    pat = _token_list(pattern, "pattern", vocab, allow_empty=False)
    m = len(pat)
    trans = np.zeros((m + 1, vocab), np.int32)
    for j in range(m):
        for y in range(vocab):
            seen = pat[:j] + [y]
            k = min(m, j + 1)
            while k > 0 and seen[len(seen) - k :] != pat[:k]:
                k -= 1
            trans[j, y] = k
    trans[m, :] = m
    return _trust(Automaton(jnp.asarray(trans), jnp.asarray(np.arange(m + 1) == m), _zero()))


def count_at_least(vocab: int, token: int, m: int) -> Automaton:
    """Accepts strings with at least ``m`` occurrences of ``token`` (states ``0..m`` count the
    occurrences, saturating at ``m``, which is accepting)."""
    vocab = _vocab(vocab)
    token = _token(token, "token", vocab)
    m = _checks.integer(m, "m", minimum=0)
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
    """
    vocab = _vocab(vocab)
    mod = _checks.integer(modulus, "modulus", minimum=1)
    r = _checks.integer(residue, "residue", minimum=0)
    if r >= mod:
        raise ValueError(f"`residue` must lie in [0, modulus) = [0, {mod}), got {r}.")
    if values is None:
        vals = np.arange(vocab)
    else:
        vals = np.asarray(values)
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
    ``a`` of ``first`` and ``b`` of ``second`` (``B`` = states of ``second``)."""
    first = _verifier(first, getattr(first, "vocab", -1), "first")
    second = _verifier(second, first.vocab, "second")
    B = second.num_states
    trans = _product_next(first.transition, second.transition)
    acc = (first.accepting[:, None] & second.accepting[None, :]).reshape(-1)
    return _trust(Automaton(trans, acc, first.initial * B + second.initial))


def complement(verifier: Automaton) -> Automaton:
    """The same automaton accepting exactly the strings ``verifier`` rejects."""
    verifier = _verifier(verifier, getattr(verifier, "vocab", -1))
    return _trust(
        Automaton(verifier.transition, ~jnp.asarray(verifier.accepting), verifier.initial)
    )


# ========================================================================== exact dynamic programs
_ENERGY_DOC = """
    Energy keywords (THEORY.md §1, $U = -r$): ``reward=`` or ``energy=`` — one terminal value per
    automaton state (shape ``(num_states,)``; default: reward 1 on accepting states, 0 elsewhere;
    with ``verifier=None`` no terminal term); ``step_energy=`` — per-step additive energies,
    shape ``(vocab,)``, ``(length, vocab)`` or ``(length, automaton states, vocab)``, where
    ``step_energy[t, a, y]`` is charged for emitting ``y`` at position ``t`` in automaton state
    ``a``. ``+inf`` energies (``-inf`` rewards) exclude strings."""


def log_partition(
    model: SequenceModel,
    verifier: Automaton | None,
    beta: Any,
    *,
    reward: Any = None,
    energy: Any = None,
    step_energy: Any = None,
) -> jax.Array:
    r"""Exact $\log Z_\beta = \log\sum_y p(y)\,e^{-U(y)/\beta}$ by the soft Bellman recursion.

    With the default reward (1 on strings the verifier accepts) this is
    $\log\big(1 - p(S) + p(S)\,e^{1/\beta}\big)$ for the accepted set $S$. ``-inf`` when every
    string of positive probability has infinite energy. $-\beta\log Z_\beta$ is the minimal free
    energy over all distributions on the ``vocab ** length`` strings.

    >>> import jax.numpy as jnp
    >>> coin = iid(jnp.log(jnp.array([0.5, 0.5])), 3)
    >>> two_heads = count_at_least(2, 1, 2)  # p(S) = 1/2
    >>> round(float(log_partition(coin, two_heads, 1.0)), 4)  # log(1/2 + e/2)
    0.6201
    >>> round(float(accept_logprob(tilt(coin, two_heads, 1.0), two_heads)), 4)  # log(e / (1 + e))
    -0.3133
    """
    model = _model(model)
    verifier = _verifier(verifier, model.vocab)
    e = _energies(verifier, model, reward=reward, energy=energy, step_energy=step_energy)
    lam = _beta(beta, model.logp.dtype, inverse=True)
    return _soft_jit(model, e.transition, e.initial, e.step, e.final, lam)[0]


def _check_mass(log_z: jax.Array) -> None:
    if not _checks.is_traced(log_z) and float(log_z) == -math.inf:
        raise ValueError(
            "every string the model can produce has infinite energy, so the tilt has no mass "
            "(Z = 0); leave at least one string of positive probability with a finite energy."
        )


def tilt(
    model: SequenceModel,
    verifier: Automaton | None,
    beta: Any,
    *,
    reward: Any = None,
    energy: Any = None,
    step_energy: Any = None,
) -> SequenceModel:
    r"""The exact Gibbs tilt $q_\beta(y) = p(y)\,e^{-U(y)/\beta} / Z_\beta$ as a new model.

    The result is a :class:`SequenceModel` on the product states $(s, a)$ (index
    ``s * A + a``) whose per-position conditionals are the soft-Bellman tilts
    $q[t,(s,a),y] = p[t,s,y]\,e^{-E[t,a,y]/\beta}\,e^{V_{t+1}(s',a')} / e^{V_t(s,a)}$; it samples,
    scores and enumerates like any model, and tilting it again composes (tilt by $U_1$ then
    $U_2$ is tilt by $U_1 + U_2$, THEORY.md T3). Tokens with ``p = 0`` stay at ``-inf``
    (support preservation). Product states that cannot reach a finite-energy end keep the base
    conditionals (they carry no mass under ``q``).
    """
    model = _model(model)
    verifier = _verifier(verifier, model.vocab)
    e = _energies(verifier, model, reward=reward, energy=energy, step_energy=step_energy)
    lam = _beta(beta, model.logp.dtype, inverse=True)
    log_z, _, tilted = _soft_jit(model, e.transition, e.initial, e.step, e.final, lam)
    _check_mass(log_z)
    return _trust(tilted)


def tilt_for_kl(
    model: SequenceModel,
    verifier: Automaton | None,
    kl_budget: Any,
    *,
    reward: Any = None,
    energy: Any = None,
    step_energy: Any = None,
) -> tuple[SequenceModel, jax.Array]:
    r"""The tilt $q_\beta \propto p\,e^{-U/\beta}$ whose $\mathrm{KL}(q_\beta\|p)$ equals
    ``kl_budget``: the maximizer of $-\mathbb{E}_q[U]$ under that KL (THEORY.md T4).

    Returns ``(tilted_model, beta)``. The KL is increasing in $1/\beta$; the root of
    $\log\mathrm{KL}(\beta) = \log\varepsilon$ is bracketed in $\beta \in [10^{-6}, 10^{6}]$
    and found by safeguarded regula falsi (Illinois) to a relative KL error below 1e-12 in
    float64, each evaluation one exact DP (typically ~10 of them). ``kl_budget = 0`` returns the
    base on the product states with ``beta = inf``; a budget at or above the KL at
    $\beta = 10^{-6}$ (the energy-minimizing limit, up to $e^{-10^6\cdot\text{gap}}$) returns
    that tilt; a budget below the KL at $\beta = 10^{6}$ returns the tilt at $\beta = 10^6$.
    """
    model = _model(model)
    verifier = _verifier(verifier, model.vocab)
    e = _energies(verifier, model, reward=reward, energy=energy, step_energy=step_energy)
    budget = _checks.scalar(kl_budget, "kl_budget")
    if not (0.0 <= budget < math.inf):
        raise ValueError(f"`kl_budget` must be finite and >= 0 (nats), got {budget!r}.")
    dtype = model.logp.dtype

    def run(lam):
        return _soft_jit(model, e.transition, e.initial, e.step, e.final, jnp.asarray(lam, dtype))

    _check_mass(run(1.0)[0])
    lam = _solve_kl(lambda x: run(x)[1], budget, dtype)
    _, _, tilted = run(lam)
    beta = jnp.asarray(1.0 / lam if lam > 0 else math.inf, dtype)
    return _trust(tilted), beta


def kl(model_q: SequenceModel, model_p: SequenceModel) -> jax.Array:
    r"""Sequence-level $\mathrm{KL}(q\|p) = \sum_y q(y)\log\frac{q(y)}{p(y)}$ in nats.

    Exact, by the backward recursion $K_t = \sum_y q(y\mid\cdot)\,[\log q - \log p + K_{t+1}]$
    on the product of the two generators' states. ``+inf`` when ``q`` gives positive
    probability to a string that ``p`` cannot produce. Both models need the same length and vocab.
    """
    q = _model(model_q, "model_q")
    p = _model(model_p, "model_p")
    if (q.length, q.vocab) != (p.length, p.vocab):
        raise ValueError(
            f"`model_q` has (length, vocab) = ({q.length}, {q.vocab}) but `model_p` has "
            f"({p.length}, {p.vocab}); KL compares distributions over the same strings."
        )
    dtype = _checks._float_dtype(q.logp, p.logp)
    q = SequenceModel(q.logp.astype(dtype), q.transition, q.initial)
    p = SequenceModel(p.logp.astype(dtype), p.transition, p.initial)
    return _kl_jit(q, p)


def entropy(model: SequenceModel) -> jax.Array:
    r"""Shannon entropy $H(p) = -\sum_y p(y)\log p(y)$ of the string distribution (nats),
    by the backward recursion $H_t = \sum_y p(y\mid\cdot)\,[-\log p(y\mid\cdot) + H_{t+1}]$."""
    return _entropy_jit(_model(model))


def expected_energy(
    model: SequenceModel,
    verifier: Automaton | None,
    *,
    reward: Any = None,
    energy: Any = None,
    step_energy: Any = None,
) -> jax.Array:
    r"""$\mathbb{E}_{y\sim p}[U(y)]$ (with the default reward, $-p(\text{accepted})$).

    ``+inf`` when the model gives positive probability to an infinite-energy string.
    """
    model = _model(model)
    verifier = _verifier(verifier, model.vocab)
    e = _energies(verifier, model, reward=reward, energy=energy, step_energy=step_energy)
    return _expected_energy_jit(model, e.transition, e.initial, e.step, e.final)


def free_energy(
    model: SequenceModel,
    base: SequenceModel,
    verifier: Automaton | None,
    beta: Any,
    *,
    reward: Any = None,
    energy: Any = None,
    step_energy: Any = None,
) -> jax.Array:
    r"""$F_\beta[q] = \mathbb{E}_q[U] + \beta\,\mathrm{KL}(q\|p_0)$ for ``model`` = q and
    ``base`` = $p_0$; at least $-\beta\log Z_\beta$, with equality at ``tilt(base, ...)``."""
    q = _model(model)
    p = _model(base, "base")
    if (q.length, q.vocab) != (p.length, p.vocab):
        raise ValueError(
            f"`model` has (length, vocab) = ({q.length}, {q.vocab}) but `base` has "
            f"({p.length}, {p.vocab})."
        )
    verifier = _verifier(verifier, q.vocab)
    e = _energies(verifier, q, reward=reward, energy=energy, step_energy=step_energy)
    b = _beta(beta, q.logp.dtype)
    p = SequenceModel(p.logp.astype(q.logp.dtype), p.transition, p.initial)
    mean = _expected_energy_jit(q, e.transition, e.initial, e.step, e.final)
    divergence = _kl_jit(q, p)
    return jnp.where(divergence == jnp.inf, jnp.inf, mean + b * divergence)


def log_prob(model: SequenceModel, tokens: Any) -> jax.Array:
    r"""$\log p(y) = \sum_t \texttt{logp}[t, s_t, y_t]$ for a batch of strings.

    ``tokens`` is an int array ``(..., length)``; returns shape ``(...)``. Differentiable in
    ``model.logp`` (the gradient counts how often each table entry is used), so a training loop
    can maximize it for a policy that parametrizes the tables (:func:`from_logits`).
    """
    model = _model(model)
    toks = _tokens(tokens, model.length, model.vocab)
    return _log_prob_jit(model, toks)


def accept_logprob(model: SequenceModel, verifier: Automaton) -> jax.Array:
    r"""$\log p(S)$ for the set $S$ of strings ``verifier`` accepts (``-inf`` if none is
    producible). Exact: the forward-backward sum over the product states, in log space."""
    model = _model(model)
    if verifier is None:
        raise TypeError("`verifier` must be an Automaton (the set whose probability is wanted).")
    verifier = _verifier(verifier, model.vocab)
    e = _energies(verifier, model)
    xp = np if isinstance(e.step, np.ndarray) else jnp
    final = xp.where(xp.asarray(verifier.accepting), 0.0, np.inf).astype(model.logp.dtype)
    one = jnp.asarray(1.0, model.logp.dtype)
    return _soft_jit(model, e.transition, e.initial, e.step, final, one)[0]


def pass_at_k(model: SequenceModel, verifier: Automaton, k: Any) -> jax.Array:
    r"""Exact pass@k of the accepted set: $1 - (1 - p(S))^k$ (``k`` whole numbers >= 1,
    any shape), computed stably from ``accept_logprob`` (THEORY.md T9)."""
    k = _checks.at_least_one(k, "k", integer=True)
    log_s = accept_logprob(model, verifier)
    return _reach(log_s, k.astype(log_s.dtype))


def reach_probability(model: SequenceModel, verifier: Automaton, budget: Any) -> jax.Array:
    r"""Probability that ``budget`` i.i.d. samples hit the accepted set: $1-(1-p(S))^N$
    (``budget`` >= 1, any shape). The set is accessible at confidence ``c`` when this is
    at least ``c``, i.e. $p(S) \ge 1-(1-c)^{1/N}$ (THEORY.md §2)."""
    budget = _checks.at_least_one(budget, "budget")
    log_s = accept_logprob(model, verifier)
    return _reach(log_s, budget.astype(log_s.dtype))


def sample(key: jax.Array, model: SequenceModel, num_samples: int) -> jax.Array:
    """Ancestral sampling: ``num_samples`` i.i.d. strings, an int array ``(num_samples, length)``.

    One ``lax.scan`` over positions, the batch drawn together at each step; deterministic given
    ``key`` (a ``jax.random.key``). Tokens with ``-inf`` log-probability are never drawn.
    """
    key = _checks.key(key)
    model = _model(model)
    n = _checks.integer(num_samples, "num_samples", minimum=1)
    return _sample_jit(key, model, n)


# ============================================================================ small spaces
def _space_size(vocab: int, length: int) -> int:
    size = vocab**length
    if size > MAX_ENUMERATE:
        raise ValueError(
            f"vocab ** length = {vocab}^{length} = {size:.3g} strings is above MAX_ENUMERATE = "
            f"{MAX_ENUMERATE}; use the dynamic programs (log_partition, tilt, kl, ...) instead."
        )
    return size


def strings(vocab: int, length: int) -> jax.Array:
    """All ``vocab ** length`` strings, ``(vocab ** length, length)`` int32, in lexicographic order
    (the first token most significant): row ``i`` is ``i`` written in base ``vocab``. The order
    of :func:`enumerate`."""
    vocab = _vocab(vocab)
    n = _checks.integer(length, "length", minimum=1)
    size = _space_size(vocab, n)
    idx = np.arange(size)[:, None]
    digits = (idx // vocab ** np.arange(n - 1, -1, -1)[None, :]) % vocab
    return jnp.asarray(digits, jnp.int32)


@jax.jit
def _enumerate_jit(model):
    lp = jnp.zeros((1,), model.logp.dtype)
    state = jnp.full((1,), model.initial, jnp.int32)
    for t in range(model.length):
        lp = (lp[:, None] + model.logp[t][state]).reshape(-1)
        state = model.transition[state].reshape(-1)
    return lp


def enumerate(model: SequenceModel) -> jax.Array:  # noqa: A001 - the name of the operation
    """The model as a flat distribution: ``log p`` of every string, shape ``(vocab ** length,)``,
    in the order of :func:`strings`, so every flat-space function (``gibbs``, ``kl``,
    ``regimes``, ...) applies. Small spaces only (``vocab ** length <= MAX_ENUMERATE``)."""
    model = _model(model)
    _space_size(model.vocab, model.length)
    return _enumerate_jit(model)


def sequence_energy(
    verifier: Automaton | None,
    tokens: Any,
    *,
    reward: Any = None,
    energy: Any = None,
    step_energy: Any = None,
) -> jax.Array:
    r"""$U(y) = \sum_t E[t, a_t, y_t] + U_\mathrm{final}[a_L]$ for each string in ``tokens``
    (``(..., length)`` int), by running the automaton; the same keywords and defaults as the
    dynamic programs. ``sequence_energy(v, strings(V, L))`` is the flat energy over the space."""
    toks = (
        jnp.asarray(tokens)
        if not isinstance(tokens, (str, bytes)) and tokens is not None
        else tokens
    )
    if not hasattr(toks, "ndim") or toks.ndim < 1:
        raise TypeError(f"`tokens` must be an int array (..., length), got {tokens!r}.")
    length = int(toks.shape[-1])
    if verifier is None:
        if step_energy is None:  # no verifier, no step energy: U = 0
            return jnp.zeros(toks.shape[:-1], _checks._float_dtype(jnp.zeros(())))
        vocab = int(jnp.shape(step_energy)[-1])
    else:
        vocab = getattr(verifier, "vocab", None)
        if not isinstance(verifier, Automaton):
            _verifier(verifier, -1)
    toks = _tokens(toks, length, vocab)
    verifier = _verifier(verifier, vocab)
    given = [jnp.asarray(x) for x in (reward, energy, step_energy) if x is not None]
    dtype = _checks._float_dtype(jnp.zeros(()), *given)
    dummy = SequenceModel(
        jnp.zeros((length, 1, vocab), dtype), jnp.zeros((1, vocab), jnp.int32), _zero()
    )
    e = _energies(verifier, dummy, reward=reward, energy=energy, step_energy=step_energy)
    return _sequence_energy_jit(e.transition, e.initial, e.step, e.final, toks)[0]


def accepts(verifier: Automaton, tokens: Any) -> jax.Array:
    """Whether ``verifier`` accepts each string of ``tokens`` (``(..., length)`` int).

    Returns a bool array of shape ``tokens.shape[:-1]``."""
    if not isinstance(verifier, Automaton):
        _verifier(verifier, -1)
    toks = jnp.asarray(tokens)
    if toks.ndim < 1:
        raise ValueError(f"`tokens` must have shape (..., length), got {tuple(toks.shape)}.")
    toks = _tokens(toks, int(toks.shape[-1]), verifier.vocab)
    verifier = _verifier(verifier, verifier.vocab)
    length = int(toks.shape[-1])
    step = jnp.zeros((length, verifier.num_states, verifier.vocab), jnp.float32)
    final = jnp.zeros((verifier.num_states,), jnp.float32)
    last = _sequence_energy_jit(verifier.transition, verifier.initial, step, final, toks)[1]
    return jnp.asarray(verifier.accepting)[last]


for _f in (log_partition, tilt, tilt_for_kl, expected_energy, free_energy):
    _f.__doc__ = (_f.__doc__ or "") + "\n" + _ENERGY_DOC + "\n"
del _f
