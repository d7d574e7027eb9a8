"""Argument validation shared by every public function: one place, one style.

Two tiers (STYLE.md):

* **static** problems (wrong type, empty or mismatched shapes) raise eagerly from the shapes and
  dtypes alone, also under ``jit``;
* **value** problems (NaN, ``+inf`` log-probabilities, distributions that do not normalize,
  ``beta <= 0``, ...) are checked on concrete arrays at the public boundary. When a public function
  is called on traced values (inside a user's ``jit``/``grad``/``vmap``) the value checks are
  skipped, because there is nothing concrete to look at; the static checks still run.

Where checking the values would cost as much as the computation (one more pass over a large
array), a public function checks them inside its own compiled kernel instead (``mass_ok``; the
``values=False`` mode of ``logp`` and ``energy`` does the static part), and calls the host checks
below only when that fused check fails, so that the error still names the problem.

Every message names the argument, what it got and what it needs.

Conventions checked here:

* ``-inf`` log-probabilities are legal (zero mass); ``+inf`` and NaN are not.
* ``+inf`` energies are legal (the behavior is excluded); ``-inf`` energies and NaN are not.
* A log-distribution "normalizes" when ``|logsumexp(logp, axis=-1)| <= NORMALIZATION_ATOL``
  (``1e-4``, i.e. the total mass is within 0.01% of one; this admits float32 rounding at n = 1e8).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["NORMALIZATION_ATOL"]

#: Largest accepted ``|log sum p|`` for inputs that must be normalized distributions.
NORMALIZATION_ATOL = 1e-4


def _float_dtype(*arrays: Any) -> Any:
    """Common float dtype of the inputs, by JAX promotion (weak types respected), at least float32.

    Python scalars are weakly typed and do not widen: a float32 array with ``beta=0.5`` stays
    float32 even when x64 is on. Inputs without any float (all integers) get the default float
    dtype (float64 under x64, else float32).
    """
    out = jnp.result_type(*arrays) if arrays else jnp.result_type(float)
    if not jnp.issubdtype(out, jnp.floating):
        out = jnp.result_type(float)
    elif jnp.finfo(out).bits < 32:
        out = jnp.dtype(jnp.float32)
    return out


def _describe(x: Any) -> str:
    if isinstance(x, (jax.Array, np.ndarray)):
        return f"array of shape {tuple(x.shape)} and dtype {x.dtype}"
    r = repr(x)
    return r if len(r) <= 60 else r[:57] + "..."


def is_traced(*xs: Any) -> bool:
    """True when any argument is a JAX tracer (value checks are then impossible)."""
    return any(isinstance(x, jax.core.Tracer) for x in xs)


def to_array(x: Any, name: str, dtype: Any = None) -> jax.Array:
    """Convert ``x`` to a JAX array, raising a TypeError that names ``name`` when impossible."""
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"`{name}` must be an array of numbers, got {_describe(x)}.")
    if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        raise TypeError(f"`{name}` must be an array of numbers, got a PRNG key.")
    if isinstance(x, numbers.Real) and not isinstance(x, (bool, np.generic)):
        # A Python number: keep it weakly typed (it adopts the dtype of the arrays it meets).
        try:
            x = float(x) if dtype is None else x
        except OverflowError:
            raise ValueError(f"`{name}` = {_describe(x)} overflows a float.") from None
    try:
        arr = jnp.asarray(x)
    except (TypeError, ValueError, OverflowError) as err:
        raise TypeError(
            f"`{name}` must be an array of numbers, got {_describe(x)} ({err})."
        ) from None
    if arr.dtype == jnp.bool_ or not (
        jnp.issubdtype(arr.dtype, jnp.floating) or jnp.issubdtype(arr.dtype, jnp.integer)
    ):
        raise TypeError(
            f"`{name}` must hold real numbers, got dtype {arr.dtype}; "
            f"convert it with `jnp.asarray({name}, dtype=float)`."
        )
    if dtype is not None:
        arr = arr.astype(dtype)
    elif not jnp.issubdtype(arr.dtype, jnp.floating):
        arr = arr.astype(_float_dtype(arr))
    return arr


# Value checks run on the host in NumPy for small arrays: they are concrete here (tracers are
# skipped), and NumPy needs no compilation per input shape, which for small arrays costs far more
# than the check. Large arrays (at least _JIT_CHECK_SIZE entries) are checked by one fused jitted
# pass instead, which on big inputs is several times cheaper than NumPy's separate passes.
_JIT_CHECK_SIZE = 1 << 16


@jax.jit
def _value_flags_jit(x: jax.Array) -> jax.Array:
    ninf = x == -jnp.inf
    return jnp.stack(
        [
            jnp.any(jnp.isnan(x)),
            jnp.any(x == jnp.inf),
            jnp.any(ninf),
            jnp.any(jnp.all(ninf, axis=-1)),
        ]
    )


@jax.jit
def _log_mass_jit(x: jax.Array) -> jax.Array:
    return jax.nn.logsumexp(x, axis=-1)


@jax.jit
def _logp_stats_jit(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The value flags and the per-row log-mass of a large array in one fused pass."""
    return _value_flags_jit(x), _log_mass_jit(x)


def _large(x: Any) -> bool:
    return isinstance(x, jax.Array) and x.size >= _JIT_CHECK_SIZE


def _value_flags(x: Any) -> tuple[bool, bool, bool, bool]:
    """(any NaN, any +inf, any -inf, any row that is all -inf) of a concrete array (ndim >= 1)."""
    if _large(x):
        return tuple(bool(f) for f in np.asarray(_value_flags_jit(x)))
    v = np.asarray(x)
    ninf_mask = v == -np.inf
    return (
        bool(np.isnan(v).any()),
        bool((v == np.inf).any()),
        bool(ninf_mask.any()),
        bool(ninf_mask.all(axis=-1).any()),
    )


def _log_mass(x: Any) -> np.ndarray:
    """log(sum(exp(x))) over the last axis (rows have a finite entry): float64 NumPy for small
    arrays, a jitted logsumexp in the input's dtype for large ones."""
    if _large(x):
        return np.asarray(_log_mass_jit(x), dtype=np.float64)
    v = np.asarray(x, dtype=np.float64)
    m = np.max(v, axis=-1, keepdims=True)
    return m[..., 0] + np.log(np.sum(np.exp(v - m), axis=-1))


def mass_ok(x: jax.Array) -> jax.Array:
    """Traceable: True when every row of ``x`` is a valid normalized log-distribution.

    One fused reduction ``sum(exp(x))`` per row, for use inside a caller's compiled kernel: NaN
    makes the sum NaN, ``+inf`` makes it infinite, an all ``-inf`` row makes it 0, so each fails
    ``|log(sum)| <= NORMALIZATION_ATOL`` just as an unnormalized row does. The sum needs no max
    shift: it is near one exactly when the check passes. When this is False the caller runs
    ``logp`` on the host, which names the problem (and is the authority at the boundary).
    """
    # The barrier keeps XLA from sharing exp(x) with the caller's own use of it: a shared exp
    # would be written out to memory in full, which costs more than computing it twice.
    x = jax.lax.optimization_barrier(x)
    mass = jnp.sum(jnp.exp(x), axis=-1)
    return jnp.all(jnp.abs(jnp.log(mass)) <= NORMALIZATION_ATOL)


def _first_index(mask: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argwhere(mask)[0])


def logp(
    x: Any,
    name: str,
    *,
    normalized: bool = True,
    dtype: Any = None,
    min_ndim: int = 1,
    rows: bool = True,
    values: bool = True,
) -> jax.Array:
    """Validate a log-probability array over the last axis.

    ``-inf`` is legal (zero mass). NaN and ``+inf`` are errors; so is a row that is ``-inf``
    everywhere (no distribution), an empty last axis, and, when ``normalized``, a row whose mass
    is not one within ``NORMALIZATION_ATOL``. With ``rows=False`` the entries are independent
    log-probabilities (of behaviors or sets), not rows of distributions: an all ``-inf`` array
    is legal and nothing has to normalize. With ``values=False`` only the type and shape are
    checked: for callers that check the values inside their own compiled pass (``mass_ok``)
    and call this again, with ``values=True``, only when that check fails.
    """
    arr = to_array(x, name, dtype)
    if arr.ndim < min_ndim:
        raise ValueError(
            f"`{name}` must have at least {min_ndim} axis (behaviors on the last axis), "
            f"got a scalar; pass a 1-D array of log-probabilities."
        )
    if arr.ndim >= 1 and arr.shape[-1] == 0:
        raise ValueError(f"`{name}` is empty (shape {arr.shape}); a behavior space needs n >= 1.")
    if arr.size == 0:
        raise ValueError(f"`{name}` is empty (shape {arr.shape}); nothing to compute on.")
    if is_traced(arr) or not values:
        return arr
    mass = None
    if normalized and rows and _large(arr):
        flags, mass = _logp_stats_jit(arr)
        nan, pinf, _, empty_row = (bool(f) for f in np.asarray(flags))
        mass = np.asarray(mass, dtype=np.float64)
    else:
        nan, pinf, _, empty_row = _value_flags(arr if arr.ndim else arr.reshape(1))
    if nan:
        idx = _first_index(np.isnan(np.asarray(arr)))
        raise ValueError(
            f"`{name}` contains NaN (first at index {idx}); log-probabilities must "
            "be real numbers or -inf (zero mass)."
        )
    if pinf:
        idx = _first_index(np.asarray(arr) == np.inf)
        raise ValueError(
            f"`{name}` contains +inf (first at index {idx}); a log-probability is "
            "at most 0. Use -inf for zero mass."
        )
    if rows and empty_row:
        raise ValueError(
            f"`{name}` is -inf everywhere on some row: that is no distribution. "
            "Give at least one behavior finite log-probability."
        )
    if normalized and rows:
        if mass is None:
            mass = _log_mass(arr)
        bad = np.abs(mass) > NORMALIZATION_ATOL
        if np.any(bad):
            worst = float(mass.flat[int(np.argmax(np.abs(mass)))])
            raise ValueError(
                f"`{name}` does not normalize: log(sum(exp({name}))) = {worst:.6g}, but it must be "
                f"within {NORMALIZATION_ATOL:g} of 0. Pass `freeenergy.normalize({name})` if these "
                "are unnormalized logits."
            )
    return arr


def energy(
    x: Any, name: str, *, dtype: Any = None, sign: int = 1, values: bool = True
) -> jax.Array:
    """Validate an energy (``sign=1``, ``+inf`` legal) or a reward (``sign=-1``, ``-inf`` legal).

    ``values=False`` checks the type and shape only (see ``logp``)."""
    arr = to_array(x, name, dtype)
    if arr.size == 0:
        raise ValueError(f"`{name}` is empty (shape {arr.shape}); give one value per behavior.")
    if is_traced(arr) or not values:
        return arr
    nan, pinf, ninf, _ = _value_flags(arr if arr.ndim else arr.reshape(1))
    if nan:
        idx = _first_index(np.isnan(np.asarray(arr)).reshape(arr.shape or (1,)))
        raise ValueError(
            f"`{name}` contains NaN (first at index {idx}); use "
            f"{'+inf' if sign > 0 else '-inf'} to exclude a behavior."
        )
    if sign > 0 and ninf:
        raise ValueError(
            f"`{name}` contains -inf: an energy of -inf would carry infinite weight. "
            "Energies are real or +inf (+inf excludes a behavior). A -inf energy is "
            "what `implied_energy` reports for a singular target (mass where the "
            "reference has none), which no tilt of the reference can reach."
        )
    if sign < 0 and pinf:
        raise ValueError(
            f"`{name}` contains +inf: a reward of +inf would carry infinite weight. "
            "Rewards are real or -inf (-inf excludes a behavior)."
        )
    return arr


def broadcast(name_a: str, a: jax.Array, name_b: str, b: jax.Array) -> tuple[int, ...]:
    """Broadcast shape of ``a`` and ``b`` or a ValueError naming both."""
    try:
        return tuple(jnp.broadcast_shapes(a.shape, b.shape))
    except ValueError:
        raise ValueError(
            f"`{name_a}` has shape {tuple(a.shape)} but `{name_b}` has shape {tuple(b.shape)}; "
            "they must broadcast (same number of behaviors on the last axis)."
        ) from None


def against_batch(name: str, arr: jax.Array, batch_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Broadcast shape of a per-row parameter (``beta``, a budget, ``k``, ...) and the batch shape
    (all axes of the distributions but the behaviors), or a ValueError naming the parameter."""
    try:
        return tuple(jnp.broadcast_shapes(arr.shape, tuple(batch_shape)))
    except ValueError:
        raise ValueError(
            f"`{name}` has shape {tuple(arr.shape)}, which does not broadcast against the batch "
            f"shape {tuple(batch_shape)} (all axes but the behaviors); give a scalar, one value "
            f"per row, or add trailing axes to `{name}` (e.g. `{name}[:, None]`)."
        ) from None


def same_last_axis(name_a: str, a: jax.Array, name_b: str, b: jax.Array) -> tuple[int, ...]:
    """Like ``broadcast`` but the behavior axis must match exactly (no broadcasting over it)."""
    shape = broadcast(name_a, a, name_b, b)
    if a.ndim >= 1 and b.ndim >= 1 and a.shape[-1] != b.shape[-1]:
        raise ValueError(
            f"`{name_a}` has {a.shape[-1]} behaviors but `{name_b}` has {b.shape[-1]} "
            f"(shapes {tuple(a.shape)} and {tuple(b.shape)}); both describe the same behavior "
            "space, so their last axes must be equal."
        )
    return shape


def positive(x: Any, name: str, *, what: str = "", dtype: Any = None) -> jax.Array:
    """A finite, strictly positive scalar or array (e.g. a temperature ``beta``)."""
    arr = to_array(x, name, dtype)
    if arr.size == 0:
        raise ValueError(f"`{name}` is empty; give at least one value.")
    if is_traced(arr):
        return arr
    v = np.asarray(arr)
    if not np.all(np.isfinite(v)) or np.any(v <= 0):
        bad = v.flat[int(np.argmax(~np.isfinite(v.ravel()) | (v.ravel() <= 0)))]
        raise ValueError(
            f"`{name}` must be finite and > 0{what}, got {float(bad)!r}"
            f"{'' if v.ndim == 0 else ' (in ' + _describe(v) + ')'}."
        )
    return arr


def at_least_one(x: Any, name: str, *, integer: bool = False, dtype: Any = None) -> jax.Array:
    """A finite value >= 1 (a sampling budget ``N`` or ``k``); integral when ``integer``."""
    arr = to_array(x, name, dtype)
    if arr.size == 0:
        raise ValueError(f"`{name}` is empty; give at least one value.")
    if is_traced(arr):
        return arr
    v = np.asarray(arr, dtype=np.float64)
    bad = ~np.isfinite(v) | (v < 1)
    if integer:
        bad |= v != np.round(v)
    if np.any(bad):
        got = v.flat[int(np.argmax(bad.ravel()))]
        need = "a whole number >= 1" if integer else "a finite number >= 1"
        raise ValueError(f"`{name}` must be {need} (a number of samples), got {float(got)!r}.")
    return arr


def probability_open(x: Any, name: str) -> float:
    """A Python float in the open interval (0, 1)."""
    v = scalar(x, name)
    if not 0.0 < v < 1.0:
        raise ValueError(f"`{name}` must lie strictly between 0 and 1, got {v!r}.")
    return v


def probability_half_open(x: Any, name: str) -> float:
    """A Python float in (0, 1]."""
    v = scalar(x, name)
    if not 0.0 < v <= 1.0:
        raise ValueError(f"`{name}` must lie in (0, 1], got {v!r}.")
    return v


def scalar(x: Any, name: str) -> float:
    """A real Python scalar (int/float or a 0-d array)."""
    if isinstance(x, bool):
        raise TypeError(f"`{name}` must be a real number, got the bool {x!r}.")
    if isinstance(x, numbers.Real):
        v = float(x)
    elif (
        isinstance(x, (np.ndarray, jax.Array))
        and x.ndim == 0
        and not is_traced(x)
        and (jnp.issubdtype(x.dtype, jnp.floating) or jnp.issubdtype(x.dtype, jnp.integer))
    ):
        v = float(x)
    else:
        raise TypeError(f"`{name}` must be a real number, got {_describe(x)}.")
    if math.isnan(v):
        raise ValueError(f"`{name}` must be a real number, got NaN.")
    return v


def integer(
    x: Any,
    name: str,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    why: str = "",
) -> int:
    """A Python int (or integral 0-d array) with ``minimum <= x <= maximum``.

    Every size argument (a count, a length, a number of samples or steps) passes a ``maximum``,
    so that no input reaches XLA with an impossible static shape (which aborts the interpreter)
    or starts a loop that cannot finish; ``why`` says what a value past it would cost.
    """
    if isinstance(x, bool):
        raise TypeError(f"`{name}` must be an integer, got the bool {x!r}.")
    if isinstance(x, numbers.Integral):
        v = int(x)
    elif (
        isinstance(x, (np.ndarray, jax.Array))
        and x.ndim == 0
        and not is_traced(x)
        and (jnp.issubdtype(x.dtype, jnp.integer))
    ):
        v = int(x)
    elif isinstance(x, float) and x.is_integer():
        v = int(x)
    else:
        raise TypeError(f"`{name}` must be an integer, got {_describe(x)}.")
    if minimum is not None and v < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {v}.")
    if maximum is not None and v > maximum:
        cost = f" ({why})" if why else ""
        raise ValueError(
            f"`{name}` = {v} is too large: at most {maximum:,}{cost}. Use a smaller `{name}`."
        )
    return v


def mask(x: Any, name: str) -> jax.Array:
    """A boolean mask; numeric 0/1 arrays are accepted and converted."""
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"`{name}` must be a boolean mask, got {_describe(x)}.")
    try:
        arr = jnp.asarray(x)
    except (TypeError, ValueError, OverflowError) as err:
        raise TypeError(f"`{name}` must be a boolean mask, got {_describe(x)} ({err}).") from None
    if arr.size == 0:
        raise ValueError(f"`{name}` is empty (shape {arr.shape}); give one flag per behavior.")
    if arr.dtype == jnp.bool_:
        return arr
    if not (jnp.issubdtype(arr.dtype, jnp.integer) or jnp.issubdtype(arr.dtype, jnp.floating)):
        raise TypeError(
            f"`{name}` must be a boolean mask (True = behavior in the set), got dtype {arr.dtype}; "
            f"pass a bool array (e.g. `{name} != 0` of a real array)."
        )
    if is_traced(arr):
        raise TypeError(f"`{name}` must have dtype bool, got {arr.dtype}; use `{name} > 0`.")
    v = np.asarray(arr)
    if not np.all((v == 0) | (v == 1)):
        raise TypeError(
            f"`{name}` must be a boolean mask (True = behavior in the set), got an array of dtype "
            f"{arr.dtype} with values other than 0 and 1; pass `{name}.astype(bool)` explicitly."
        )
    return arr.astype(bool)


def key(x: Any, name: str = "key", *, single: bool = True) -> jax.Array:
    """A JAX PRNG key (new-style ``jax.random.key`` or a legacy uint32 ``(2,)`` key).

    With ``single=True`` (the default) a batch of keys is refused with a message that says how to
    split one key or how to run over several (``jax.vmap``).
    """
    if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        batch = x.shape
    elif isinstance(x, (jax.Array, np.ndarray)) and x.dtype == np.uint32 and x.shape[-1:] == (2,):
        batch = x.shape[:-1]
    else:
        raise TypeError(
            f"`{name}` must be a JAX PRNG key, got {_describe(x)}; create one with "
            "`jax.random.key(seed)` and split it for each use."
        )
    if single and batch != ():
        raise TypeError(
            f"`{name}` must be a single PRNG key, got a batch of keys of shape {batch}; pass one "
            f"key (e.g. `{name}[0]`), or `jax.vmap` over the keys to run once per key."
        )
    return x
