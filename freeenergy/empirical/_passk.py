"""pass@k from samples: the unbiased estimator, pooled curves, the paired bootstrap over prompts,
and the crossover of two curves.

The per-prompt table ``pass_at_k(counts, k)`` (shape ``(P, K)``) is computed once, in float64 on
the host (it is small and must be exact); every bootstrap resample is then one row of a
resample-count matrix ``W`` (``W[b, i]`` = how often prompt ``i`` was drawn in resample ``b``),
and the resampled pooled means are ``W @ table / P`` — one jitted matrix product per chunk of
resamples, no Python loop over resamples.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import statistics
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks
from ._data import MAX_PROMPTS, Counts

__all__ = [
    "MAX_BOOTSTRAP",
    "Curve",
    "Difference",
    "Crossover",
    "pass_at_k",
    "pass_at_k_curve",
    "paired_difference",
    "crossover",
    "bootstrap_indices",
    "align",
    "wilson_interval",
]

#: Largest accepted ``num_bootstrap``.
MAX_BOOTSTRAP = 10**6
#: Largest k grid (number of k values).
MAX_GRID = 10**5
#: Largest per-prompt table (prompts × k values) and largest bootstrap output (resamples × k
#: values), in entries (8e8 bytes in float64).
MAX_ENTRIES = 10**8
# Entries with min(k, c) up to this many terms use the direct sum of log1p (relative accuracy a
# few ulp per term); beyond it the log-gamma difference, whose absolute error ~ 1e-16·lnΓ(n+1) is
# then far below |log ratio| >= min(k,c)^2/n.
_DIRECT_TERMS = 4096
# Up to this many entries (prompts × largest k) the table is one cumulative sum over k.
_CUMSUM_ENTRIES = 1 << 24
# Resample-count matrices are built in chunks of at most this many entries (chunk × P).
_CHUNK_ENTRIES = 1 << 20


def _counts(x: Any, name: str) -> Counts:
    if not isinstance(x, Counts):
        raise TypeError(
            f"`{name}` must be freeenergy.empirical.Counts (e.g. from `em.load(path)` or "
            f"`em.Counts(n, correct)`), got {type(x).__name__}."
        )
    return x


def _k_grid(k: Any, counts: Counts, name: str = "k", *, increasing: bool = False) -> np.ndarray:
    """``k`` as a 1-D int64 array (a scalar becomes length 1), each in ``1..min(n)``."""
    if isinstance(k, (str, bytes)) or k is None or isinstance(k, bool):
        raise TypeError(f"`{name}` must be an integer or a 1-D array of integers, got {k!r}.")
    try:
        arr = np.asarray(k)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be an integer or a 1-D array of integers.") from None
    if arr.dtype == np.bool_ or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise TypeError(f"`{name}` must hold integers, got dtype {arr.dtype}.")
    if arr.ndim > 1:
        raise ValueError(f"`{name}` must be a scalar or 1-D, got shape {arr.shape}.")
    arr = arr.reshape(-1)
    if arr.size == 0:
        raise ValueError(f"`{name}` is empty; give at least one k.")
    if arr.size > MAX_GRID:
        raise ValueError(f"`{name}` has {arr.size} values, above the limit of {MAX_GRID}.")
    bad = ~np.isfinite(arr) | (arr != np.round(arr)) | (arr < 1)
    if bad.any():
        raise ValueError(
            f"`{name}` must hold whole numbers >= 1, got {arr[int(np.argmax(bad))].item()!r}."
        )
    arr = arr.astype(np.int64)
    n_min = int(counts.n.min())
    if arr.max() > n_min:
        i = int(np.argmin(counts.n))
        where = f" (prompt {counts.prompts[i]!r})" if counts.prompts is not None else f" ({i})"
        raise ValueError(
            f"`{name}` = {int(arr.max())} exceeds the samples of the smallest prompt, "
            f"n = {n_min}{where}; pass@k is only estimable for k <= n. Drop the larger k or "
            "draw more samples."
        )
    if increasing and arr.size > 1 and np.any(np.diff(arr) <= 0):
        raise ValueError(f"`{name}` must be strictly increasing, got {arr.tolist()[:10]}...")
    return arr


def _log_fail_ratio(n: np.ndarray, c: np.ndarray, k: np.ndarray) -> np.ndarray:
    """``log C(n−c, k) / C(n, k)`` in float64 for broadcast int64 arrays (``-inf`` if n−c < k).

    The ratio is ``Π_{j<m} (1 − M/(n−j))`` with ``m = min(k, c)``, ``M = max(k, c)`` (the two
    products ``Π_{i<k}(n−c−i)/(n−i)`` and ``Π_{j<c}(n−k−j)/(n−j)`` are equal), so its log is a
    sum of ``m`` terms ``log1p(−M/(n−j))`` of one sign: accurate to a few ulp relative.
    """
    n, c, k = np.broadcast_arrays(n, c, k)
    out = np.zeros(n.shape, dtype=np.float64)
    zero = n - c < k
    out[zero] = -np.inf
    m = np.minimum(k, c)
    big = np.maximum(k, c)
    live = ~zero & (m > 0)
    direct = live & (m <= _DIRECT_TERMS)
    if direct.any():
        flat = np.flatnonzero(direct)
        order = flat[np.argsort(-m.flat[flat], kind="stable")]
        mm, bb = m.flat[order], big.flat[order].astype(np.float64)
        nn = n.flat[order].astype(np.float64)
        acc = np.zeros(order.size)
        active = order.size
        for j in range(int(mm[0])):
            while active and mm[active - 1] <= j:
                active -= 1
            acc[:active] += np.log1p(-bb[:active] / (nn[:active] - j))
        out.flat[order] = acc
    gamma = live & (m > _DIRECT_TERMS)
    if gamma.any():
        lg = np.vectorize(math.lgamma, otypes=[np.float64])
        nn, cc, kk = (x[gamma].astype(np.float64) for x in (n, c, k))
        out[gamma] = lg(nn - cc + 1) - lg(nn - cc - kk + 1) - lg(nn + 1) + lg(nn - kk + 1)
    return out


def _table(counts: Counts, k: np.ndarray) -> np.ndarray:
    """(P, K) float64 pass@k estimates."""
    if counts.num_prompts * k.size > MAX_ENTRIES:
        raise ValueError(
            f"{counts.num_prompts} prompts × {k.size} values of k = "
            f"{counts.num_prompts * k.size} estimates, above the limit of {MAX_ENTRIES}; "
            "use a coarser k grid (e.g. powers of two)."
        )
    kmax = int(k.max())
    if kmax <= _DIRECT_TERMS and counts.num_prompts * kmax <= _CUMSUM_ENTRIES:
        # The k-form Π_{i<k} (1 − c/(n−i)) for every k up to kmax at once: a cumulative sum of
        # log1p terms of one sign (relative error below kmax·ulp), -inf from i = n−c on.
        i = np.arange(kmax)
        n = counts.n[:, None].astype(np.float64)
        c = counts.correct[:, None].astype(np.float64)
        valid = i[None, :] < n - c
        ratio = np.where(valid, c / np.where(valid, n - i, 1.0), 0.0)  # in [0, 1) where valid
        terms = np.where(valid, np.log1p(-ratio), -np.inf)
        lr = np.cumsum(terms, axis=1)[:, k - 1]
    else:
        lr = _log_fail_ratio(counts.n[:, None], counts.correct[:, None], k[None, :])
    table = 0.0 - np.expm1(lr)  # 0.0 - x: no negative zeros
    _exact_entries(table, counts.n, counts.correct, k)
    return table


# Binomial coefficients C(m, j) for m <= this, as float64 (exact while below 2^53).
_PASCAL_MAX = 1000


@functools.cache
def _pascal() -> np.ndarray:
    """``(M+1, M+1)`` float64 Pascal triangle, ``M = _PASCAL_MAX``: entries below 2^53 are the
    exact integers (sums of exact integers stay exact there); the largest, C(1000, 500) ≈ 3e299,
    stays finite."""
    t = np.zeros((_PASCAL_MAX + 1, _PASCAL_MAX + 1))
    t[:, 0] = 1.0
    for m in range(1, _PASCAL_MAX + 1):
        t[m, 1 : m + 1] = t[m - 1, 0:m] + t[m - 1, 1 : m + 1]
    t.flags.writeable = False
    return t


def _exact_entries(table: np.ndarray, n: np.ndarray, c: np.ndarray, k: np.ndarray) -> None:
    """Overwrite, in place, the entries of the ``(P, K)`` table that integer arithmetic gives
    correctly rounded: ``k = 1`` (``c/n``), and ``n <= 1000`` with ``C(n, k) < 2^53``, where
    ``(C(n,k) − C(n−c,k)) / C(n,k)`` is one division of exact integers. So e.g. pass@16 of 1
    correct in 32 samples is exactly 0.5, and a threshold test on it is decided exactly."""
    table[:, k == 1] = (c / n)[:, None]
    small = n <= _PASCAL_MAX
    if not small.any():
        return
    pascal = _pascal()
    rows = np.flatnonzero(small)
    nn = n[rows][:, None]
    cols = np.broadcast_to(k[None, :], (rows.size, k.size))
    total = pascal[nn, np.minimum(cols, nn)]
    fail = pascal[nn - c[rows][:, None], np.minimum(cols, nn)]
    fail = np.where(cols <= nn - c[rows][:, None], fail, 0.0)  # C(m, j) = 0 for j > m
    exact = total < 2.0**53
    sub = table[rows]
    table[rows] = np.where(exact, (total - fail) / np.where(exact, total, 1.0), sub)


def pass_at_k(counts: Counts, k: Any) -> jax.Array:
    """Unbiased per-prompt pass@k estimates ``1 − C(n−c, k) / C(n, k)`` (Chen et al. 2021).

    ``counts`` holds ``n`` samples per prompt with ``c`` correct; ``k`` is an integer or a 1-D
    grid with ``1 <= k <= min(n)`` (``k > n`` is an error: nothing estimates pass@k from fewer
    than k samples). Returns shape ``(P, len(k))`` (``(P,)`` for a scalar ``k``), in the default
    float dtype.

    Its expectation over ``c ~ Binomial(n, p)`` is exactly ``1 − (1 − p)^k``. Computed in
    float64 as ``−expm1(Σ_{j<m} log1p(−M/(n−j)))`` with ``m = min(k, c)``, ``M = max(k, c)``
    (exactly 1 when ``n − c < k``), accurate to a few ulp relative for ``n`` up to 1e9; only
    when ``min(k, c) > 4096`` a log-gamma difference is used, where the ratio is below
    ``exp(−min(k,c)²/n)`` and that difference is equally accurate. Exact (correctly rounded)
    for small integers: ``k = 1`` gives ``c/n``, and for ``n <= 1000`` with ``C(n, k) < 2^53``
    the value is ``(C(n,k) − C(n−c,k)) / C(n,k)`` in exact integer arithmetic — so pass@16 of
    1 correct in 32 samples is exactly 0.5, and threshold decisions on it are exact.

    >>> from freeenergy import empirical as em
    >>> c = em.Counts([10, 10], [3, 0])
    >>> em.pass_at_k(c, [1, 2, 8]).round(12).tolist()  # 1 - C(7,2)/C(10,2) = 1 - 21/45
    [[0.3, 0.533333333333, 1.0], [0.0, 0.0, 0.0]]
    """
    counts = _counts(counts, "counts")
    scalar = np.ndim(k) == 0 and not isinstance(k, (str, bytes))
    grid = _k_grid(k, counts)
    table = _table(counts, grid)
    return jnp.asarray(table[:, 0] if scalar else table, dtype=_checks._float_dtype())


# ----------------------------------------------------------------------------- bootstrap
def _bootstrap_args(num_bootstrap: Any, key: Any, level: Any, *, required: bool = False):
    nb = _checks.integer(num_bootstrap, "num_bootstrap", minimum=1 if required else 0)
    if nb > MAX_BOOTSTRAP:
        raise ValueError(
            f"`num_bootstrap` = {nb} is above the limit of {MAX_BOOTSTRAP}; 10,000 resamples "
            "already fix a 95% interval to about ±0.5% of its width."
        )
    lv = _checks.probability_open(level, "level")
    if nb > 0:
        if key is None:
            raise TypeError(
                "`key` is required when `num_bootstrap` > 0: pass `key=jax.random.key(seed)`."
            )
        key = _checks.key(key, "key")
    return nb, key, lv


def _chunk_rows(num_bootstrap: int, num_prompts: int) -> int:
    return max(1, min(num_bootstrap, _CHUNK_ENTRIES // num_prompts))


def _draw(key, chunk: int, num_prompts: int) -> jax.Array:
    """``(chunk, num_prompts)`` int32 uniform prompt indices.

    Below 2^16 prompts: one 32-bit word per index, mapped by the multiply-shift
    ``floor(bits · P / 2^32)`` (done exactly in 16-bit halves, so no 64-bit integers are needed);
    each index then has probability within ``P / 2^32 < 1.6e-5`` (relative) of ``1/P``, at half
    the random bits of ``jax.random.randint``. Above: ``jax.random.randint``.
    """
    if num_prompts >= 1 << 16:
        return jax.random.randint(key, (chunk, num_prompts), 0, num_prompts)
    bits = jax.random.bits(key, (chunk, num_prompts), jnp.uint32)
    p = jnp.uint32(num_prompts)
    hi, lo = bits >> 16, bits & jnp.uint32(0xFFFF)
    return ((hi * p + ((lo * p) >> 16)) >> 16).astype(jnp.int32)


@partial(jax.jit, static_argnames=("num_bootstrap", "num_prompts", "chunk"))
def _indices(key, num_bootstrap, num_prompts, chunk):
    num_chunks = -(-num_bootstrap // chunk)
    keys = jax.random.split(key, num_chunks)
    idx = jax.lax.map(lambda k: _draw(k, chunk, num_prompts), keys)
    return idx.reshape(num_chunks * chunk, num_prompts)[:num_bootstrap]


def bootstrap_indices(key: Any, num_bootstrap: int, num_prompts: int) -> jax.Array:
    """The prompt indices the bootstrap draws: ``(num_bootstrap, num_prompts)`` int32, row ``b``
    the prompts of resample ``b`` (uniform with replacement, up to a relative non-uniformity
    below ``P / 2^32``).

    Every bootstrap in this module draws exactly these indices from ``key`` (in chunks of
    resamples, each chunk from its own split of ``key``), so an outside reimplementation can
    reproduce its numbers.

    >>> import jax
    >>> bootstrap_indices(jax.random.key(0), 3, 5).shape
    (3, 5)
    """
    nb, key, _ = _bootstrap_args(num_bootstrap, key, 0.5, required=True)
    p = _checks.integer(num_prompts, "num_prompts", minimum=1)
    if p > MAX_PROMPTS or nb * p > 10 * MAX_ENTRIES:
        raise ValueError(
            f"`num_bootstrap` × `num_prompts` = {nb} × {p} indices is above the limit of "
            f"{10 * MAX_ENTRIES} (and `num_prompts` at most {MAX_PROMPTS})."
        )
    return _indices(key, nb, p, _chunk_rows(nb, p))


@partial(jax.jit, static_argnames=("chunk",))
def _chunk_means(key, table, chunk):
    """(chunk, K) pooled means of ``table`` (P, K) over ``chunk`` resamples drawn from ``key``:
    ``W @ table / P`` with ``W[b, i]`` the number of draws of prompt ``i`` in resample ``b``."""
    p = table.shape[0]
    flat = (_draw(key, chunk, p) + p * jnp.arange(chunk, dtype=jnp.int32)[:, None]).reshape(-1)
    w = jnp.zeros(chunk * p, table.dtype).at[flat].add(1.0).reshape(chunk, p)  # 1-D: faster
    return w @ table / p


def _progress_arg(progress: Any) -> Any:
    if progress is not None and not callable(progress):
        raise TypeError(
            f"`progress` must be None or a callable progress(done, total), got {progress!r}."
        )
    return progress


def _resampled_means(key, table: np.ndarray, num_bootstrap: int, progress=None) -> jax.Array:
    """(num_bootstrap, K) pooled means over resampled prompts: chunk ``j`` of resamples is drawn
    from ``split(key, num_chunks)[j]`` (the rows of ``bootstrap_indices``); ``progress(done,
    total)`` is called after each chunk."""
    if num_bootstrap * table.shape[1] > MAX_ENTRIES:
        raise ValueError(
            f"`num_bootstrap` = {num_bootstrap} resamples × {table.shape[1]} values of k is above "
            f"the limit of {MAX_ENTRIES} resampled means; use fewer resamples or a coarser grid."
        )
    if num_bootstrap * table.shape[0] > 10 * MAX_ENTRIES:
        raise ValueError(
            f"`num_bootstrap` = {num_bootstrap} resamples × {table.shape[0]} prompts is above the "
            f"limit of {10 * MAX_ENTRIES} draws; use fewer resamples."
        )
    dtype = _checks._float_dtype()
    t = jnp.asarray(table, dtype=dtype)
    chunk = _chunk_rows(num_bootstrap, table.shape[0])
    num_chunks = -(-num_bootstrap // chunk)
    keys = jax.random.split(key, num_chunks)
    parts = []
    for j in range(num_chunks):
        parts.append(_chunk_means(keys[j], t, chunk))
        if progress is not None:
            jax.block_until_ready(parts[-1])
            progress(min((j + 1) * chunk, num_bootstrap), num_bootstrap)
    out = parts[0] if num_chunks == 1 else jnp.concatenate(parts)
    return out[:num_bootstrap]


def _quantiles(samples: np.ndarray, probs: tuple[float, ...]) -> list[np.ndarray]:
    """Quantiles over axis 0 of a ``(B, K)`` array, as ``np.quantile(..., method="linear")``
    (the ``h = (B−1)·q`` order-statistic interpolation, same formula), but selecting only the
    needed order statistics with one ``np.partition`` of a contiguous ``(K, B)`` copy."""
    x = np.ascontiguousarray(np.asarray(samples, dtype=np.float64).T)
    size = x.shape[1]
    spots = []
    for q in probs:
        h = (size - 1) * q
        lo = int(math.floor(h))
        spots.append((h - lo, lo, min(lo + 1, size - 1)))
    x = np.partition(x, sorted({j for _, lo, hi in spots for j in (lo, hi)}), axis=1)
    out = []
    for t, lo, hi in spots:
        a, b = x[:, lo], x[:, hi]
        diff = b - a
        out.append(b - diff * (1 - t) if t >= 0.5 else a + diff * t)
    return out


def _interval(samples: jax.Array, level: float) -> tuple[jax.Array, jax.Array]:
    """The ``(1∓level)/2`` quantiles over resamples (axis 0), linear interpolation between order
    statistics. Taken on the host: NumPy's selection (``partition``) is several times faster
    than a full sort of every column under XLA on a CPU."""
    a = (1.0 - level) / 2.0
    low, high = _quantiles(np.asarray(samples), (a, 1.0 - a))
    dtype = samples.dtype
    return jnp.asarray(low, dtype=dtype), jnp.asarray(high, dtype=dtype)


def _alignment(base: Counts, trained: Counts) -> np.ndarray | None:
    """Indices of ``trained``'s prompts in ``base``'s order (``None``: already aligned), or a
    ValueError naming the prompts that differ."""
    if base.prompts is None or trained.prompts is None:
        if base.num_prompts != trained.num_prompts:
            raise ValueError(
                f"`base` has {base.num_prompts} prompts but `trained` has "
                f"{trained.num_prompts}; paired estimates need the same prompts (give prompt "
                "ids to align them by id)."
            )
        return None
    if base.prompts == trained.prompts:
        return None
    pos = {p: i for i, p in enumerate(trained.prompts)}
    if any(p not in pos for p in base.prompts):
        # A CSV gives string ids, a JSONL file may give ints: match "7" with 7 when that pairs
        # every prompt (string forms unique on both sides).
        as_str = {str(p): i for i, p in enumerate(trained.prompts)}
        base_str = {str(p) for p in base.prompts}
        if (
            base.num_prompts == trained.num_prompts
            and len(as_str) == trained.num_prompts
            and len(base_str) == base.num_prompts
            and base_str == set(as_str)
        ):
            pos = {p: as_str[str(p)] for p in base.prompts}
    missing = [p for p in base.prompts if p not in pos]
    matched = {pos[p] for p in base.prompts if p in pos}
    extra = [p for i, p in enumerate(trained.prompts) if i not in matched]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} only in `base` (e.g. {missing[:3]})")
        if extra:
            parts.append(f"{len(extra)} only in `trained` (e.g. {extra[:3]})")
        raise ValueError(
            "`base` and `trained` must cover the same prompts: " + "; ".join(parts) + ". "
            "Evaluate both models on the same prompts, or drop the unmatched ones."
        )
    return np.array([pos[p] for p in base.prompts], dtype=np.int64)


def align(base: Counts, trained: Counts) -> tuple[Counts, Counts]:
    """``trained`` reordered to ``base``'s prompt order (by id when both carry ids, else by
    position), or a ValueError naming the prompts that differ. Ids match exactly, or by their
    string form when that pairs every prompt (``"7"`` from a CSV with ``7`` from JSONL). The
    reordered ``trained`` carries ``base``'s ids and no per-sample records.

    >>> a = Counts([4, 4], [1, 2], prompts=["x", "y"])
    >>> b = Counts([4, 4], [3, 0], prompts=["y", "x"])
    >>> align(a, b)[1].correct.tolist()
    [0, 3]
    """
    base = _counts(base, "base")
    trained = _counts(trained, "trained")
    order = _alignment(base, trained)
    if order is None:
        return base, trained
    return base, Counts(trained.n[order], trained.correct[order], prompts=base.prompts)


# ----------------------------------------------------------------------------- records
@dataclasses.dataclass(frozen=True)
class Curve:
    """A pooled pass@k curve.

    * ``k`` — ``(K,)`` int64, the grid;
    * ``mean`` — ``(K,)`` mean over prompts of the unbiased per-prompt estimates;
    * ``low`` / ``high`` — ``(K,)`` percentile-bootstrap interval over prompts at ``level``
      (``None`` without bootstrap);
    * ``per_prompt`` — ``(P, K)`` per-prompt estimates (``pass_at_k``);
    * ``interval`` — ``"percentile"`` (bootstrap) or ``"wilson"`` (see ``pass_at_k_curve``).
    """

    k: np.ndarray
    mean: jax.Array
    low: jax.Array | None
    high: jax.Array | None
    per_prompt: jax.Array
    level: float = 0.95
    num_bootstrap: int = 0
    interval: str = "percentile"


def pass_at_k_curve(
    counts: Counts,
    k: Any,
    *,
    num_bootstrap: int = 0,
    key: Any = None,
    level: float = 0.95,
    progress: Any = None,
    interval: str = "percentile",
) -> Curve:
    """Pooled pass@k ``mean_i pass@k_i`` over prompts, with a band over prompts.

    ``interval="percentile"`` (default): the band resamples prompts with replacement
    ``num_bootstrap`` times (``key`` required then) and takes the ``(1−level)/2`` and
    ``(1+level)/2`` quantiles of the resampled means; it reflects the prompt-sampling
    uncertainty, and through each prompt's estimate also the finite ``n``. ``progress``, if
    given, is called as ``progress(done, total)`` (in resamples) after each chunk of resamples;
    the numbers do not depend on it.

    ``interval="wilson"`` (no resampling, ``num_bootstrap = 0``): the Wilson score interval of
    the pooled mean ``m`` over ``P`` prompts, ``(m + z²/2P ± z·sqrt(m(1−m)/P + z²/4P²)) /
    (1 + z²/P)``, ``z`` the normal ``(1+level)/2`` quantile. Per-prompt estimates lie in
    [0, 1], so their variance is at most ``m(1−m)`` and the interval is conservative; it is
    exact in the Bernoulli case ``k = n`` (each estimate 0 or 1). Near pass@k = 1 it stays
    honest where the percentile bootstrap collapses: when every prompt succeeded the resampled
    means are all 1 and the percentile band is ``[1, 1]``.

    Shapes: ``k``, ``mean``, ``low``, ``high`` ``(K,)``; ``per_prompt`` ``(P, K)``.

    >>> import jax
    >>> from freeenergy import empirical as em
    >>> c = em.Counts([4, 4, 4], [0, 2, 4])
    >>> curve = em.pass_at_k_curve(c, [1, 2], num_bootstrap=200, key=jax.random.key(0))
    >>> curve.mean.tolist()  # (0 + 1/2 + 1)/3, (0 + 5/6 + 1)/3
    [0.5, 0.6111111111111112]
    >>> bool((curve.low <= curve.mean).all() and (curve.mean <= curve.high).all())
    True
    """
    counts = _counts(counts, "counts")
    grid = _k_grid(k, counts)
    nb, key, lv = _bootstrap_args(num_bootstrap, key, level)
    progress = _progress_arg(progress)
    if interval not in ("percentile", "wilson"):
        raise ValueError(f'`interval` must be "percentile" or "wilson", got {interval!r}.')
    if interval == "wilson" and nb:
        raise ValueError(
            '`interval="wilson"` is a closed form and draws no resamples; pass `num_bootstrap=0`.'
        )
    table = _table(counts, grid)
    dtype = _checks._float_dtype()
    mean = table.mean(axis=0)
    low = high = None
    if nb:
        low, high = _interval(_resampled_means(key, table, nb, progress), lv)
    elif interval == "wilson":
        lo, hi = wilson_interval(mean, counts.num_prompts, lv)
        low, high = jnp.asarray(lo, dtype=dtype), jnp.asarray(hi, dtype=dtype)
    return Curve(
        k=grid,
        mean=jnp.asarray(mean, dtype=dtype),
        low=low,
        high=high,
        per_prompt=jnp.asarray(table, dtype=dtype),
        level=lv,
        num_bootstrap=nb,
        interval=interval,
    )


def wilson_interval(mean: Any, trials: int, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval ``(low, high)`` for a proportion ``mean`` observed over ``trials``:
    ``(m + z²/2T ± z·sqrt(m(1−m)/T + z²/4T²)) / (1 + z²/T)`` with ``z`` the standard normal
    ``(1+level)/2`` quantile; float64 NumPy arrays of ``mean``'s shape.

    >>> lo, hi = wilson_interval(1.0, 100)
    >>> round(float(lo), 4), float(hi)  # all 100 succeeded: 100 / (100 + 1.96²)
    (0.963, 1.0)
    """
    m = np.asarray(mean, dtype=np.float64)
    if np.any(np.isnan(m)) or np.any((m < 0) | (m > 1)):
        raise ValueError(f"`mean` must hold proportions in [0, 1], got {mean!r}.")
    t = _checks.integer(trials, "trials", minimum=1)
    lv = _checks.probability_open(level, "level")
    z = statistics.NormalDist().inv_cdf(0.5 + lv / 2)
    z2 = z * z
    center = (m + z2 / (2 * t)) / (1 + z2 / t)
    half = z / (1 + z2 / t) * np.sqrt(m * (1 - m) / t + z2 / (4 * t * t))
    return np.clip(center - half, 0.0, 1.0), np.clip(center + half, 0.0, 1.0)


@dataclasses.dataclass(frozen=True)
class Difference:
    """Trained − base pooled pass@k: ``k`` ``(K,)``; ``mean``, ``low``, ``high`` ``(K,)``
    (``low``/``high`` ``None`` without bootstrap); ``per_prompt`` ``(P, K)`` differences;
    ``base`` and ``trained`` the two pooled means ``(K,)``."""

    k: np.ndarray
    mean: jax.Array
    low: jax.Array | None
    high: jax.Array | None
    per_prompt: jax.Array
    base: jax.Array
    trained: jax.Array
    level: float = 0.95
    num_bootstrap: int = 0


def paired_difference(
    base: Counts,
    trained: Counts,
    k: Any,
    *,
    num_bootstrap: int,
    key: Any,
    level: float = 0.95,
    progress: Any = None,
) -> Difference:
    """Trained − base pooled pass@k with a *paired* bootstrap over prompts.

    ``mean[j] = mean_i (pass@k_j(trained_i) − pass@k_j(base_i))``; each resample draws one set
    of prompts and uses it for both models, so the shared prompt difficulty cancels and the
    interval is much tighter than two independent bands. ``base`` and ``trained`` must cover
    the same prompts (aligned by id when both carry ids, else by position); ``k`` must not
    exceed the smallest ``n`` of either. ``num_bootstrap = 0`` gives the mean only;
    ``progress`` as in ``pass_at_k_curve``.

    >>> import jax
    >>> from freeenergy import empirical as em
    >>> b = em.Counts([4, 4], [1, 0], prompts=["p", "q"])
    >>> t = em.Counts([4, 4], [0, 2], prompts=["q", "p"])
    >>> d = em.paired_difference(b, t, [1], num_bootstrap=100, key=jax.random.key(1))
    >>> d.mean.tolist()  # ((2/4 - 1/4) + (0 - 0)) / 2
    [0.125]
    """
    base, trained = align(base, trained)
    grid = _k_grid(k, base)
    _k_grid(grid, trained)
    nb, key, lv = _bootstrap_args(num_bootstrap, key, level)
    progress = _progress_arg(progress)
    tb, tt = _table(base, grid), _table(trained, grid)
    diff = tt - tb
    dtype = _checks._float_dtype()
    low = high = None
    if nb:
        low, high = _interval(_resampled_means(key, diff, nb, progress), lv)
    return Difference(
        k=grid,
        mean=jnp.asarray(diff.mean(axis=0), dtype=dtype),
        low=low,
        high=high,
        per_prompt=jnp.asarray(diff, dtype=dtype),
        base=jnp.asarray(tb.mean(axis=0), dtype=dtype),
        trained=jnp.asarray(tt.mean(axis=0), dtype=dtype),
        level=lv,
        num_bootstrap=nb,
    )


@dataclasses.dataclass(frozen=True)
class Crossover:
    """Where the base's pooled pass@k catches up with the trained model's.

    * ``k`` — the first grid value where ``base ≥ trained`` after trained led at the smallest
      k, or ``None`` (trained never led, or never lost the lead on the grid);
    * ``low`` / ``high`` — grid values bounding the crossover over bootstrap resamples (lower
      and upper ``(1∓level)/2`` quantiles of the resampled crossover, with "no crossover"
      ranked after the last grid point and reported as ``None``); ``None`` without bootstrap;
    * ``probability`` — fraction of resamples with a crossover on the grid (``None`` without
      bootstrap);
    * ``grid``, ``base``, ``trained`` — the grid and the two pooled curves ``(K,)``.
    """

    k: int | None
    low: int | None
    high: int | None
    probability: float | None
    grid: np.ndarray
    base: jax.Array
    trained: jax.Array
    level: float = 0.95
    num_bootstrap: int = 0


def _first_cross(b: jax.Array, t: jax.Array) -> jax.Array:
    """Index of the crossover on the last axis, ``K`` when none (see ``crossover``)."""
    kk = b.shape[-1]
    led = t[..., 0] > b[..., 0]
    cross = (b >= t).at[..., 0].set(False)
    pos = jnp.where(cross.any(axis=-1), jnp.argmax(cross, axis=-1), kk)
    return jnp.where(led, pos, kk)


@jax.jit
def _cross_positions(means):
    kk = means.shape[-1] // 2
    return _first_cross(means[:, :kk], means[:, kk:])


def crossover(
    base: Counts,
    trained: Counts,
    k: Any,
    *,
    num_bootstrap: int = 0,
    key: Any = None,
    level: float = 0.95,
    progress: Any = None,
) -> Crossover:
    """The pass@k crossover: the first ``k`` of an increasing grid where the base's pooled
    pass@k is at least the trained model's, after the trained model led at the smallest ``k``.

    This is the signature of RL that sharpens without creating (Yue et al. 2025): trained wins
    at pass@1, the base wins at large k. ``k`` needs at least two strictly increasing values.
    With ``num_bootstrap > 0`` a paired bootstrap over prompts gives a range of grid points
    (see ``Crossover``); ``progress`` as in ``pass_at_k_curve``.

    >>> from freeenergy import empirical as em
    >>> b = em.Counts([8, 8, 8, 8], [1, 1, 1, 0])   # rare successes on many prompts
    >>> t = em.Counts([8, 8, 8, 8], [6, 0, 0, 0])   # sure on one prompt, lost the others
    >>> em.crossover(b, t, [1, 2, 4, 8]).k  # pass@4: base 0.375, trained 0.25
    4
    """
    base, trained = align(base, trained)
    grid = _k_grid(k, base, increasing=True)
    _k_grid(grid, trained)
    if grid.size < 2:
        raise ValueError(f"`k` needs at least two values for a crossover, got {grid.tolist()}.")
    nb, key, lv = _bootstrap_args(num_bootstrap, key, level)
    progress = _progress_arg(progress)
    tb, tt = _table(base, grid), _table(trained, grid)
    mb, mt = tb.mean(axis=0), tt.mean(axis=0)
    kk = grid.size
    pos = int(_first_cross(jnp.asarray(mb), jnp.asarray(mt)))
    low = high = prob = None
    if nb:
        positions = np.asarray(
            _cross_positions(_resampled_means(key, np.concatenate([tb, tt], axis=1), nb, progress))
        )
        a = (1.0 - lv) / 2.0
        lo = int(np.quantile(positions, a, method="lower"))
        hi = int(np.quantile(positions, 1.0 - a, method="higher"))
        low = int(grid[lo]) if lo < kk else None
        high = int(grid[hi]) if hi < kk else None
        prob = float(np.mean(positions < kk))
    dtype = _checks._float_dtype()
    return Crossover(
        k=int(grid[pos]) if pos < kk else None,
        low=low,
        high=high,
        probability=prob,
        grid=grid,
        base=jnp.asarray(mb, dtype=dtype),
        trained=jnp.asarray(mt, dtype=dtype),
        level=lv,
        num_bootstrap=nb,
    )
