"""Flat-space core: the public ``log_partition``, ``gibbs``, ``kl``, ``free_energy`` and
``tilt_for_kl`` against plain NumPy, and against the memory-bandwidth floor.

Both sides compute the same thing on the same float32 arrays in the same process:

* ``log_partition``: ``logsumexp(logp0 - energy/beta)``;
* ``gibbs``: ``logits - logsumexp(logits)`` with ``logits = logp0 - energy/beta``;
* ``kl``: ``sum q (log q - log p)`` with ``0 log 0 = 0``;
* ``free_energy``: ``sum q U + beta sum q (log q - log p0)``, ``0 log 0 = 0``;
* ``tilt_for_kl``: the same algorithm as the library (bracket ``log λ`` from the small-λ guess by
  doubling steps, then Newton in ``log λ`` safeguarded by bisection), each iteration one pass of
  shifted moment sums.

JAX is timed through the public function, argument validation included (its value checks run in
the same compiled pass as the result), and for ``log_partition``/``gibbs`` also as the bare
jitted kernel. The NumPy side does no validation. Two memory-bandwidth floors are printed: the
time NumPy takes to *read* the input bytes once (one ``sum`` per input array) and to *copy* them
(read and write them once, STREAM's "copy"). Goals at n = 1e7: the public calls at least 1.3x
NumPy and within 2x of the copy floor; ``tilt_for_kl`` in less time than 30 ``gibbs`` calls.
Each value check needs one ``exp`` per entry (``sum(exp(logp))`` is the normalization check), so
the reductions stay a few times the read floor: they are bound by ``exp``, not by memory.
"""

from __future__ import annotations

import math
import os

import jax
import jax.numpy as jnp
import numpy as np

import freeenergy as fe
from freeenergy.free_energy import _gibbs_jit, _log_partition_jit

from . import median_time


# ----------------------------------------------------------------------------- NumPy baselines
def np_log_partition(logp0: np.ndarray, energy: np.ndarray, beta: float) -> float:
    logits = logp0 - energy / beta
    m = logits.max()
    return float(m + np.log(np.exp(logits - m).sum()))


def np_gibbs(logp0: np.ndarray, energy: np.ndarray, beta: float) -> np.ndarray:
    logits = logp0 - energy / beta
    m = logits.max()
    logits -= m
    logits -= np.log(np.exp(logits).sum())
    return logits


def np_tilt_for_kl(logp0: np.ndarray, reward: np.ndarray, eps: float) -> tuple[np.ndarray, float]:
    """The library's solver in NumPy (all rewards finite; budget below the limit's KL)."""
    p0 = np.exp(logp0)
    rc = reward - (p0 * reward).sum()

    def moments(lam):
        logits = logp0 + lam * rc
        m = logits.max()
        w = np.exp(logits - m)
        s0 = w.sum()
        mean = (w * rc).sum() / s0
        var = (w * (rc - mean) ** 2).sum() / s0
        return m + math.log(s0), mean, var

    def f(s):
        lam = math.exp(s)
        log_z, mean, var = moments(lam)
        return lam * mean - log_z - eps, lam * lam * var

    var0 = moments(0.0)[2]
    s0 = 0.5 * math.log(2 * eps / var0)
    f0, _ = f(s0)
    direction = 1.0 if f0 < 0 else -1.0
    a, b, fb, step = s0, s0, f0, 0.5
    while np.sign(fb) == np.sign(f0) and fb != 0:
        step *= 2
        a, b = b, s0 + direction * step
        fb, _ = f(b)
    lo, hi = (a, b) if direction > 0 else (b, a)
    s = 0.5 * (lo + hi)
    fs, ds = f(s)
    for _ in range(100):
        if abs(fs) <= 1e-6 * eps or hi - lo <= 4 * np.finfo(np.float32).eps * max(1, abs(s)):
            break
        if fs < 0:
            lo = s
        else:
            hi = s
        newton = s - fs / ds if ds > 0 else lo - 1
        s = newton if lo < newton < hi else 0.5 * (lo + hi)
        fs, ds = f(s)
    lam = math.exp(s)
    logits = logp0 + lam * rc
    logits -= logits.max()
    logits -= np.log(np.exp(logits).sum())
    return logits, 1.0 / lam


def np_kl(logq: np.ndarray, logp: np.ndarray) -> float:
    q = np.exp(logq)
    with np.errstate(invalid="ignore"):
        return float(np.sum(np.where(q > 0, q * (logq - logp), 0.0)))


def np_free_energy(logq: np.ndarray, logp0: np.ndarray, energy: np.ndarray, beta: float) -> float:
    q = np.exp(logq)
    with np.errstate(invalid="ignore"):
        mean = np.sum(np.where(q > 0, q * energy, 0.0))
        return float(mean + beta * np.sum(np.where(q > 0, q * (logq - logp0), 0.0)))


def floor_times(*arrays: np.ndarray, repeat: int = 5) -> tuple[float, float]:
    """(read, copy): the time NumPy takes to read every input once (one ``sum`` each), and to
    copy every input into a new array (read and write the same bytes, STREAM's "copy")."""

    def read():
        for a in arrays:
            np.add.reduce(a)

    def copy():
        for a in arrays:
            np.copy(a)

    return median_time(read, repeat=repeat), median_time(copy, repeat=repeat)


# ----------------------------------------------------------------------------- the run
def _row(name, n, public, numpy, floor, kernel=None):
    read, copy = floor
    extra = f"   kernel {kernel * 1e3:8.2f} ms" if kernel is not None else " " * 21
    print(
        f"{name:14s} n={n:>9.0e}  public {public * 1e3:8.2f} ms{extra}   numpy "
        f"{numpy * 1e3:8.2f} ms   floor: read {read * 1e3:6.2f} ms, copy {copy * 1e3:6.2f} ms   "
        f"numpy/public {numpy / public:5.2f}x   public/copy {public / copy:5.2f}x   "
        f"public/read {public / read:5.2f}x",
        flush=True,
    )


def _bench_size(n: int, repeat: int, beta: float = 0.7, eps: float = 0.5) -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=n).astype(np.float32)
    logp0_np = (logits - np.logaddexp.reduce(logits.astype(np.float64))).astype(np.float32)
    energy_np = rng.normal(size=n).astype(np.float32)
    logp0, energy = jnp.asarray(logp0_np), jnp.asarray(energy_np)
    b = jnp.asarray(beta, jnp.float32)
    logq = fe.gibbs(logp0, energy, 2.0)
    logq_np = np.asarray(logq)
    floor1 = floor_times(logp0_np, energy_np, repeat=repeat)

    t_pub = median_time(lambda: fe.log_partition(logp0, energy, beta), repeat=repeat)
    t_ker = median_time(lambda: _log_partition_jit(logp0, energy, b), repeat=repeat)
    t_np = median_time(lambda: np_log_partition(logp0_np, energy_np, beta), repeat=repeat)
    _row("log_partition", n, t_pub, t_np, floor1, t_ker)

    g_pub = median_time(lambda: fe.gibbs(logp0, energy, beta), repeat=repeat)
    g_ker = median_time(lambda: _gibbs_jit(logp0, energy, b), repeat=repeat)
    g_np = median_time(lambda: np_gibbs(logp0_np, energy_np, beta), repeat=repeat)
    _row("gibbs", n, g_pub, g_np, floor1, g_ker)

    k_pub = median_time(lambda: fe.kl(logq, logp0), repeat=repeat)
    k_np = median_time(lambda: np_kl(logq_np, logp0_np), repeat=repeat)
    _row("kl", n, k_pub, k_np, floor1)

    f_pub = median_time(lambda: fe.free_energy(logq, logp0, energy, beta), repeat=repeat)
    f_np = median_time(lambda: np_free_energy(logq_np, logp0_np, energy_np, beta), repeat=repeat)
    floor3 = floor_times(logq_np, logp0_np, energy_np, repeat=repeat)
    _row("free_energy", n, f_pub, f_np, floor3)

    reward = -energy
    t_pub = median_time(lambda: fe.tilt_for_kl(logp0, reward, eps), repeat=repeat)
    logq, beta_found = fe.tilt_for_kl(logp0, reward, eps)
    achieved = float(fe.kl(logq, logp0))
    head = f"{'tilt_for_kl':14s} n={n:>9.0e}  public {t_pub * 1e3:8.2f} ms   "
    tail = f"= {t_pub / g_pub:4.1f} gibbs calls (goal < 30)   KL {achieved:.6f} (budget {eps})"
    if n <= 10**7:
        t_np = median_time(
            lambda: np_tilt_for_kl(logp0_np, -energy_np, eps), repeat=repeat, warmup=0
        )
        _, np_beta = np_tilt_for_kl(logp0_np, -energy_np, eps)
        print(
            f"{head}numpy {t_np * 1e3:8.2f} ms   numpy/public {t_np / t_pub:5.2f}x   {tail}; "
            f"beta jax {float(beta_found):.6f} numpy {np_beta:.6f}",
            flush=True,
        )
    else:
        print(f"{head}{tail}; numpy solver skipped at this size", flush=True)


def main(quick: bool = False) -> None:
    sizes = [10**5, 10**6] if quick else [10**5, 10**6, 10**7, 10**8]
    repeat = 3 if quick else 5
    malloc = os.environ.get("MALLOC_MMAP_THRESHOLD_", "glibc default")
    print(
        f"devices: {jax.devices()}  dtype float32  (median of {repeat} runs; 2 at n = 1e8)  "
        f"MALLOC_MMAP_THRESHOLD_={malloc}"
    )
    for n in sizes:
        _bench_size(n, repeat if n < 10**8 else 2)
