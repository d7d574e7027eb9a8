"""Compiled kernels of the dynamic programs (no argument checks: callers validate)."""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp

from ._types import SequenceModel

#: The temperatures :func:`tilt_for_kl` searches: beta in [1e-6, 1e6].
_BETA_MIN, _BETA_MAX = 1e-6, 1e6
_MAX_ROOT_STEPS = 100


def _scaled(energy: jax.Array, lam: jax.Array) -> jax.Array:
    """-lam * U for U >= 0, with U = +inf giving -inf for every lam >= 0 (excluded) and U = 0
    giving 0 also for lam = +inf (the beta -> 0 limit, reached by a subnormal beta)."""
    finite = jnp.where(energy == jnp.inf, 0.0, energy)
    return jnp.where(energy == jnp.inf, -jnp.inf, jnp.where(finite == 0, 0.0, -lam * finite))


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
    m_start = jnp.where(finite, m0[j0], 0.0)
    shift = jnp.where(m_start == 0, 0.0, lam * m_start)  # 0 also when lam = inf
    log_z = jnp.where(finite, c0[j0] - shift, -jnp.inf)
    return log_z, (k0[j0] if with_kl else None), out, nxt, j0, finite


@jax.jit
def _soft_jit(model: SequenceModel, t_auto, init_auto, step, final, lam):
    """(log Z, KL(q || p), tilted model, Z > 0): one compiled dynamic program per shape, shared by
    log_partition, accept_logprob, tilt and tilt_for_kl."""
    log_z, divergence, tables, nxt, j0, has_mass = _soft_pass(
        model, t_auto, init_auto, step, final, lam, tables=True, with_kl=True
    )
    return log_z, divergence, SequenceModel(tables, nxt, j0), has_mass


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


@jax.jit
def _enumerate_jit(model):
    lp = jnp.zeros((1,), model.logp.dtype)
    state = jnp.full((1,), model.initial, jnp.int32)
    for t in range(model.length):
        lp = (lp[:, None] + model.logp[t][state]).reshape(-1)
        state = model.transition[state].reshape(-1)
    return lp
