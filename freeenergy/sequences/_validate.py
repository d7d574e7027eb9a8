"""Argument checks shared by the sequence models, verifiers and dynamic programs."""

from __future__ import annotations

import math
import weakref
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks
from ._types import Automaton, SequenceModel, _zero  # noqa: F401

#: Largest space ``vocab ** length`` that :func:`enumerate` / :func:`strings` will list.
MAX_ENUMERATE = 2**24
#: Largest vocabulary: transition tables hold ``num_states * vocab`` entries.
MAX_VOCAB = 2**24
#: Largest number of positions of a string.
MAX_LENGTH = 2**20
#: Largest number of entries of one table (a model's ``length * num_states * vocab``
#: log-probabilities, an automaton's ``num_states * vocab`` transitions, a product of them).
MAX_TABLE = 2**27
#: Largest number of tokens or states given as a list (a pattern, a target, a prompt).
MAX_TOKENS = 2**20

_WHY_VOCAB = "transition tables hold num_states * vocab entries, 4 bytes each"
_WHY_LENGTH = "the dynamic programs run one step per position"


def _concrete_array(x: Any, name: str, what: str) -> np.ndarray:
    """``x`` as a NumPy array, with a clear error for ragged lists, strings, None and objects."""
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"`{name}` must be {what}, got {_checks._describe(x)}.")
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError, OverflowError) as err:
        raise TypeError(f"`{name}` must be {what}, got {_checks._describe(x)} ({err}).") from None
    if arr.dtype == object or arr.dtype.kind in "USV":
        raise TypeError(
            f"`{name}` must be {what}, got {_checks._describe(x)} (not an array of numbers; "
            "integers beyond 64 bits are not token or state ids)."
        )
    return arr


def _int_values(arr: np.ndarray, name: str, what: str) -> np.ndarray:
    """Refuse bool, float and complex arrays: ids are integers, never truncated."""
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(
            f"`{name}` must hold integer {what}, got dtype {arr.dtype}; floats are not "
            f"truncated to ids: pass `np.asarray({name}, dtype=np.int32)` if the values are whole."
        )
    return arr


def _table(x: Any, name: str, num_states: int | None, vocab: int | None) -> jax.Array:
    """An int transition table ``(states, vocab)`` with entries in ``[0, states)``."""
    if _checks.is_traced(x):
        arr = jnp.asarray(x)
        if not jnp.issubdtype(arr.dtype, jnp.integer) or arr.dtype == jnp.bool_:
            raise TypeError(f"`{name}` must hold integer state indices, got dtype {arr.dtype}.")
        if arr.ndim != 2:
            raise ValueError(
                f"`{name}` must have shape (num_states, vocab), got shape {tuple(arr.shape)}."
            )
        v = None
    else:
        v = _int_values(
            _concrete_array(x, name, "an integer array (num_states, vocab)"),
            name,
            "state indices",
        )
        if v.ndim != 2:
            raise ValueError(
                f"`{name}` must have shape (num_states, vocab), got shape {tuple(v.shape)}."
            )
        arr = v
    if num_states is not None and arr.shape[0] != num_states:
        raise ValueError(
            f"`{name}` has {arr.shape[0]} rows but there are {num_states} states; "
            "give one row per state."
        )
    if vocab is not None and arr.shape[1] != vocab:
        raise ValueError(
            f"`{name}` has {arr.shape[1]} columns but vocab = {vocab}; give one per token."
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"`{name}` is empty (shape {tuple(arr.shape)}); need >= 1 state/token.")
    _table_size(arr.shape[0] * arr.shape[1], "the table", f"`{name}`")
    if v is not None:
        bad = (v < 0) | (v >= v.shape[0])
        if np.any(bad):
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"`{name}` sends state {idx[0]} on token {idx[1]} to {int(v[idx])}, outside "
                f"[0, {v.shape[0]}); every entry must name an existing state."
            )
        return jnp.asarray(v.astype(np.int32))
    return arr.astype(jnp.int32)


def _table_size(size: int, what: str, culprits: str) -> None:
    """Refuse a table of more than MAX_TABLE entries; ``culprits`` names the arguments (in
    backticks) whose sizes make it."""
    if size > MAX_TABLE:
        raise ValueError(
            f"{culprits}: {what} would hold {size:,} entries, above MAX_TABLE = {MAX_TABLE:,} "
            "(each entry costs 4-8 bytes of memory and one step of every dynamic program); use "
            "fewer states, a smaller vocab or a shorter length."
        )


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
    arr = _concrete_array(x, name, "a sequence of integer token ids")
    if arr.size == 0:
        if not allow_empty:
            raise ValueError(f"`{name}` is empty; give at least one token.")
        return []
    if arr.ndim != 1:
        raise TypeError(
            f"`{name}` must be a 1-D sequence of integer token ids, got {_checks._describe(x)}."
        )
    _int_values(arr, name, "token ids")
    if arr.size > MAX_TOKENS:
        raise ValueError(
            f"`{name}` has {arr.size:,} tokens, above {MAX_TOKENS:,} (the automaton it builds has "
            "one state per token, times vocab transitions); use a shorter sequence."
        )
    bad = (arr < 0) | (arr >= vocab)
    if np.any(bad):
        i = int(np.argmax(bad))
        raise ValueError(
            f"`{name}`[{i}] = {int(arr[i])} is not a token: vocab = {vocab} "
            f"(tokens 0..{vocab - 1})."
        )
    return [int(v) for v in arr]


def _vocab(x: Any, name: str = "vocab") -> int:
    return _checks.integer(x, name, minimum=1, maximum=MAX_VOCAB, why=_WHY_VOCAB)


def _length(x: Any, name: str = "length") -> int:
    return _checks.integer(x, name, minimum=1, maximum=MAX_LENGTH, why=_WHY_LENGTH)


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
    if model.logp is None or isinstance(model.logp, (str, bytes)):
        raise TypeError(
            f"`{name}.logp` must be a float array (length, num_states, vocab), got "
            f"{_checks._describe(model.logp)}."
        )
    if jnp.ndim(model.logp) != 3:
        raise ValueError(
            f"`{name}.logp` must have shape (length, num_states, vocab), got "
            f"{tuple(jnp.shape(model.logp))}."
        )
    logp = _checks.logp(model.logp, f"{name}.logp")
    if min(logp.shape) == 0:
        raise ValueError(f"`{name}.logp` is empty (shape {tuple(logp.shape)}).")
    _table(model.transition, f"{name}.transition", logp.shape[1], logp.shape[2])
    _state(model.initial, f"{name}.initial", logp.shape[1])
    return _trust(model)


def _verifier(verifier: Any, vocab: int, name: str = "verifier") -> Automaton | None:
    """Check an Automaton (or None) over ``vocab`` tokens; ``vocab = -1``: its own vocab."""
    if verifier is None:
        return None
    if not isinstance(verifier, Automaton):
        raise TypeError(
            f"`{name}` must be a freeenergy.sequences.Automaton or None, got "
            f"{_checks._describe(verifier)}; build one with sequences.exact_match, contains, "
            "count_at_least, digit_sum_mod or automaton."
        )
    trusted = _is_trusted(verifier)
    if not trusted:  # the table first: `verifier.vocab` reads its shape
        _table(verifier.transition, f"{name}.transition", None, None)
    if vocab != -1 and verifier.vocab != vocab:
        raise ValueError(
            f"`{name}` reads {verifier.vocab} tokens but the model has vocab = {vocab}; "
            "build the verifier with the model's vocab."
        )
    if trusted:
        return verifier
    acc = verifier.accepting
    if _checks.is_traced(acc):
        ok = jnp.result_type(acc) == jnp.bool_ and jnp.shape(acc) == (verifier.num_states,)
    else:
        try:
            arr = np.asarray(acc)
        except (ValueError, TypeError):
            arr = np.asarray(None)
        ok = arr.dtype == np.bool_ and arr.shape == (verifier.num_states,)
    if not ok:
        raise TypeError(
            f"`{name}.accepting` must be a bool array of shape ({verifier.num_states},) (one flag "
            f"per state), got {_checks._describe(acc)}."
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
    """The automaton and energy tables one call works with (internal).

    ``step`` and ``final`` are the energies divided by ``scale`` (a power of two, 1 unless the
    energies are so large that a sum along a string would overflow the float type): a dynamic
    program runs on them with ``lam * scale`` and multiplies an energy it returns by ``scale``.
    """

    def __init__(self, transition, initial, step, final, scale=1.0):
        self.transition = transition  # (A, V) int32
        self.initial = initial  # int32 scalar
        self.step = step  # (L, A, V), real or +inf
        self.final = final  # (A,), real or +inf
        self.scale = scale  # Python float, a power of two


def _energy_scale(length: int, dtype: Any, *tables: np.ndarray) -> float:
    """A power of two ``s`` with ``(length + 1) * max|finite energy| / s`` at most a quarter of
    the largest float of ``dtype``, so no sum of energies along a string overflows."""
    peak = 0.0
    for t in tables:
        finite = np.abs(t[np.isfinite(t)]) if t.size else t
        if finite.size:
            peak = max(peak, float(np.max(finite)))
    if peak == 0.0:
        return 1.0
    excess = math.log2(peak) + math.log2(length + 1) + 2 - math.log2(float(np.finfo(dtype).max))
    return 2.0 ** math.ceil(excess) if excess > 0 else 1.0


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
    wide = dtype if xp is jnp else np.float64  # concrete tables: scale before the cast
    if verifier is None:
        transition = xp.zeros((1, V), np.int32)
        initial, num_a = xp.asarray(0, np.int32), 1
        final = xp.zeros((1,), wide)
    else:
        transition = xp.asarray(verifier.transition).astype(np.int32)
        initial, num_a = xp.asarray(verifier.initial).astype(np.int32), verifier.num_states
        final = -xp.asarray(verifier.accepting).astype(wide)
    _table_size(
        L * model.num_states * num_a * V,
        "the dynamic program's table (length, model states * verifier states, vocab)",
        f"`model` (length {L}, {model.num_states} states, vocab {V}) and `verifier` "
        f"({num_a} states)",
    )
    for arr, name, sign in given:
        if arr.shape != (num_a,):
            raise ValueError(
                f"`{name}` must hold one terminal value per automaton state, shape ({num_a},), "
                f"got {tuple(arr.shape)}"
                + (" (verifier=None has a single state)." if verifier is None else ".")
            )
        final = sign * xp.asarray(arr).astype(wide)
    if step_arr is None:
        step = xp.zeros((L, num_a, V), wide)
    else:
        shapes = {(V,): (1, 1, V), (L, V): (L, 1, V), (L, num_a, V): (L, num_a, V)}
        if tuple(step_arr.shape) not in shapes:
            raise ValueError(
                f"`step_energy` must have shape (vocab,) = ({V},), (length, vocab) = ({L}, {V}) "
                f"or (length, automaton states, vocab) = ({L}, {num_a}, {V}); got "
                f"{tuple(step_arr.shape)}."
            )
        shaped = xp.asarray(step_arr).astype(wide).reshape(shapes[tuple(step_arr.shape)])
        step = xp.broadcast_to(shaped, (L, num_a, V))
    scale = 1.0
    if xp is np:
        scale = _energy_scale(L, dtype, final, shaped if step_arr is not None else final)
        step = (step / scale if scale != 1.0 else step).astype(dtype)
        final = (final / scale if scale != 1.0 else final).astype(dtype)
    return _Energies(transition, initial, step, final, scale)


def _tokens(tokens: Any, length: int | None, vocab: int, name: str = "tokens") -> jax.Array:
    """An int32 array ``(..., length)`` of token ids in ``[0, vocab)`` (``length = None``: any
    length >= 1). Floats (also whole ones), bools and complex numbers are refused."""
    what = "an integer array of token ids (..., length)"
    if _checks.is_traced(tokens):
        arr = jnp.asarray(tokens)
        if not jnp.issubdtype(arr.dtype, jnp.integer) or arr.dtype == jnp.bool_:
            raise TypeError(f"`{name}` must hold integer token ids, got dtype {arr.dtype}.")
    else:
        arr = _concrete_array(tokens, name, what)
        if arr.ndim >= 1 and arr.shape[-1] == 0:
            raise ValueError(
                f"`{name}` is empty (shape {tuple(arr.shape)}): a string has at least one token."
            )
        if arr.size == 0 and arr.dtype == np.float64:  # [] or [[]]: no dtype to judge
            arr = arr.astype(np.int32)
        _int_values(arr, name, "token ids")
    if arr.ndim < 1:
        raise ValueError(
            f"`{name}` must have shape (..., length), got a scalar; wrap one string in a list."
        )
    if length is not None and arr.shape[-1] != length:
        raise ValueError(
            f"`{name}` must have shape (..., length) with length = {length}, got "
            f"{tuple(arr.shape)}."
        )
    if isinstance(arr, np.ndarray):
        if arr.size:
            bad = (arr < 0) | (arr >= vocab)
            if np.any(bad):
                idx = tuple(int(i) for i in np.argwhere(bad)[0])
                raise ValueError(
                    f"`{name}`{list(idx)} = {int(arr[idx])} is not a token "
                    f"(vocab = {vocab}: tokens 0..{vocab - 1})."
                )
        return jnp.asarray(arr.astype(np.int32))
    return arr.astype(jnp.int32)


def _space_size(vocab: int, length: Any) -> int:
    """``vocab ** length`` after checking it against MAX_ENUMERATE in log space."""
    n = _length(length)
    if vocab > 1 and n * math.log2(vocab) > math.log2(MAX_ENUMERATE):
        raise ValueError(
            f"`vocab` ** `length` = {vocab}^{n} (about 10^{n * math.log10(vocab):.1f}) strings is "
            f"above MAX_ENUMERATE = {MAX_ENUMERATE:,}; use the dynamic programs (log_partition, "
            "tilt, kl, ...) instead."
        )
    return vocab**n
