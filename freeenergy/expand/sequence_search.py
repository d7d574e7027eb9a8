r"""Search with a verifier over sequence models: tree search with a process check, beam search,
best-of-n — exact output distributions and their compute.

A generator is a :class:`freeenergy.sequences.SequenceModel` ($s_{t+1} = T[s_t, y_t]$, tables
``logp[t, s, y]``) and the verifier an :class:`freeenergy.sequences.Automaton`
($a_{t+1} = D[a_t, y_t]$, accept when $a_L$ is accepting). A search reads the verifier's
**partial state** after every token: that is its *process check*.

**Can a prefix still be accepted?** Two tables, both exact backward recursions over positions:

* ``can_accept(verifier, length)[t, a]`` — some string of the remaining ``length - t`` tokens
  leads the automaton from ``a`` to acceptance (the verifier's own knowledge,
  $\mathrm{alive}_L = \mathrm{accepting}$, $\mathrm{alive}_t(a) = \bigvee_y
  \mathrm{alive}_{t+1}(D[a, y])$);
* the *viability* of a product state $(s, a)$ — some continuation **the generator can produce**
  (positive probability) is accepted: $v_L(s, a) = \mathrm{accepting}[a]$,
  $v_t(s, a) = \bigvee_{y:\,p_t(y\mid s) > 0} v_{t+1}(T[s,y], D[a,y])$. When every token has
  positive probability the two coincide.

**Tree search with a process check** (``tree_search``, ``sample_tree_search``): generate token
by token; after each drawn token check the prefix, and if it can no longer be accepted discard
the token and draw again at the same position (a depth-first search that backtracks one step).
The accepted token is distributed as $p_t(\cdot\mid s)$ restricted to viable tokens, so the
output is the locally renormalized generator

$$q(y) = \prod_t \frac{p_t(y_t\mid s_t)\,\mathbb{1}[v_{t+1}(j_{t+1})]}{m_t(j_t)},\qquad
  m_t(j) = \sum_{y:\,v_{t+1}(j')} p_t(y\mid s),$$

a :class:`~freeenergy.sequences.SequenceModel` on the product states ($j = s\cdot A + a$). Every
output is accepted, $q/p = \prod_t 1/m_t$ is a reweighting of the generator — the search never
leaves ``supp(p)`` — and it is **not** $p(\cdot\mid\text{accepted})$ (that would weight each
token by the accepted mass below it, which a process check does not know). The number of draws
at a node is geometric with mean $1/m_t(j)$, independently of the token it ends with; each draw
is one generated token and one verifier call, so the expected compute per output is
$C_0(j_0)$ with $C_t(j) = 1/m_t(j) + \sum_y q_t(y\mid j)\,C_{t+1}(j')$ — linear in the length
where flat sampling needs $1/p(\text{accepted})$ complete strings.

**Beam search** (``beam_search``): keep the ``width`` most probable prefixes, extend each by every
token, drop candidates that fail the process check (``prune=True``), keep the best ``width``.
Deterministic: its output distribution is a point mass on the best surviving beam (with a width
of at least the number of prefixes it is the most probable accepted string).

**Best-of-n** (``best_of_n_sequence``): ``n`` complete samples, keep an accepted one. For the
binary verifier this is the Gibbs tilt $q \propto p\,e^{r/\beta}$ with $1/\beta = \log
\sum_{i<n}(1-p(S))^{-i}$ (docs/theory.md T12), computed exactly by the sequence dynamic
program on any length.

Every search reports a :class:`SequenceCost` (complete strings, generated tokens, verifier calls).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks
from .. import sequences as sq
from ..support import _log1mexp
from .search import best_of_n_temperature

__all__ = [
    "SequenceCost",
    "can_accept",
    "tree_search",
    "sample_tree_search",
    "Beams",
    "beam_search",
    "best_of_n_sequence",
    "string_index",
]


class SequenceCost(NamedTuple):
    """The compute a search over sequences spends (per output for exact expectations, totals for
    sampled runs).

    * ``samples`` — complete strings produced (outputs, or candidates of a best-of-n);
    * ``tokens`` — tokens generated (drawn from, or scored by, the generator), rejected ones
      included;
    * ``verifier_calls`` — checks of a prefix (process) or of a complete string (outcome).
    """

    samples: jax.Array
    tokens: jax.Array
    verifier_calls: jax.Array


# ----------------------------------------------------------------------------- kernels
def _product(model: sq.SequenceModel, t_auto: jax.Array):
    """Product next-state table ``(S*A, V)`` (index ``s * A + a``) and the row of each state."""
    num_a = t_auto.shape[0]
    nxt = (model.transition[:, None, :] * num_a + t_auto[None, :, :]).reshape(
        -1, model.transition.shape[1]
    )
    rows = jnp.arange(nxt.shape[0]) // num_a
    return nxt, rows


def _alive(t_auto: jax.Array, accepting: jax.Array, length: int) -> jax.Array:
    """``(length + 1, A)``: alive[t, a] = some string of length - t tokens leads a to accepting."""

    def body(alive_next, _):
        alive = jnp.any(alive_next[t_auto], axis=-1)
        return alive, alive

    _, stacked = jax.lax.scan(body, accepting, None, length=length, reverse=True)
    return jnp.concatenate([stacked, accepting[None, :]], axis=0)


_alive_jit = jax.jit(_alive, static_argnums=2)


def _tree(model: sq.SequenceModel, t_auto, accepting, init_auto):
    """Pruned conditionals, log viable mass and viability of every product state, per position.

    Returns ``(cond (L, J, V), log_m (L, J), viable (L + 1, J), nxt (J, V), j0)``. Rows of
    non-viable states keep the generator's conditionals (they carry no mass under the search).
    """
    nxt, rows = _product(model, t_auto)
    num_s = model.transition.shape[0]
    v_last = jnp.tile(accepting, num_s)

    def body(v_next, logp_t):
        lp = logp_t[rows]
        ok = (lp > -jnp.inf) & v_next[nxt]
        viable = jnp.any(ok, axis=-1)
        masked = jnp.where(ok, lp, -jnp.inf)
        log_m = jnp.where(
            viable, jax.nn.logsumexp(jnp.where(viable[:, None], masked, 0.0), -1), -jnp.inf
        )
        cond = jnp.where(
            viable[:, None],
            jnp.where(ok, masked - jnp.where(viable, log_m, 0.0)[:, None], -jnp.inf),
            lp,
        )
        return viable, (cond, log_m, viable)

    _, (cond, log_m, viable) = jax.lax.scan(body, v_last, model.logp, reverse=True)
    viable = jnp.concatenate([viable, v_last[None, :]], axis=0)
    j0 = model.initial * t_auto.shape[0] + init_auto
    return cond, log_m, viable, nxt, j0


def _expected_draws(cond, log_m, nxt, j0):
    """E_q[sum_t 1/m_t]: C_t(j) = 1/m_t(j) + sum_y q_t(y|j) C_{t+1}(j'), 0 on dead states.

    Carried twice: directly (exact to rounding while every term is finite) and as log C, so
    that a rare token (q ~ e^-1e4, which underflows to 0) leading to an expensive subtree
    (1/m ~ e^1e4, which overflows) contributes its finite product instead of 0 * inf = NaN.
    The direct value is used when it is finite (no infinite subtree; a term dropped by an
    underflowing q is then below 1e-13 of C >= 1), the logarithmic one otherwise; ``inf``
    only when the expected count exceeds the float range.
    """

    def body(carry, x):
        c_next, log_c_next = carry
        cond_t, log_m_t = x
        live = log_m_t > -jnp.inf
        pos = cond_t > -jnp.inf
        q = jnp.where(pos, jnp.exp(jnp.where(pos, cond_t, 0.0)), 0.0)
        inv_m = jnp.where(live, jnp.exp(-jnp.where(live, log_m_t, 0.0)), 0.0)
        ahead = c_next[nxt]
        c = inv_m + jnp.sum(jnp.where(q > 0, q * ahead, 0.0), axis=-1)
        c = jnp.where(jnp.any(pos & (ahead == jnp.inf), axis=-1), jnp.inf, c)  # log C decides
        here = jnp.where(live, -jnp.where(live, log_m_t, 0.0), -jnp.inf)
        terms = jnp.where(pos, cond_t + log_c_next[nxt], -jnp.inf)
        log_c = jnp.logaddexp(here, jax.nn.logsumexp(terms, axis=-1))
        return (c, log_c), None

    zero = jnp.zeros(nxt.shape[0], cond.dtype)
    (c0, log_c0), _ = jax.lax.scan(
        body, (zero, jnp.full_like(zero, -jnp.inf)), (cond, log_m), reverse=True
    )
    return jnp.where(jnp.isfinite(c0[j0]), c0[j0], jnp.exp(log_c0[j0]))


@jax.jit
def _tree_search_jit(model, t_auto, accepting, init_auto):
    cond, log_m, viable, nxt, j0 = _tree(model, t_auto, accepting, init_auto)
    draws = _expected_draws(cond, log_m, nxt, j0)
    return sq.SequenceModel(cond, nxt, j0), log_m, draws, viable[0, j0]


def _path(transition, initial, tokens):
    """States before every token of each string: ``(num, L)``."""

    def body(j, y):
        return transition[j, y], j

    j0 = jnp.full(tokens.shape[:1], initial, jnp.int32)
    _, states = jax.lax.scan(body, j0, tokens.T)
    return states.T


@jax.jit
def _draw_counts(key, log_m, nxt, j0, tokens):
    """Draws spent at every position of sampled searches: geometric with success probability
    ``m_t(j_t)`` (>= 1 draw), by the inverse CDF ``1 + floor(log U / log(1 - m))`` — exact also
    for ``m -> 0`` (``log(1 - m)`` from ``log m`` without cancellation)."""
    states = _path(nxt, j0, tokens)  # (num, L)
    log_m_path = log_m[jnp.arange(tokens.shape[1])[None, :], states]
    u = jax.random.uniform(key, states.shape, log_m.dtype)
    log_u = jnp.log(jnp.where(u > 0, u, 1.0))
    log_miss = _log1mexp(jnp.minimum(log_m_path, 0.0))
    sure = log_miss == -jnp.inf  # m = 1: exactly one draw
    draws = jnp.where(sure, 1.0, 1.0 + jnp.floor(log_u / jnp.where(sure, -1.0, log_miss)))
    return jnp.sum(draws)


def _beam(model, t_auto, accepting, init_auto, width: int, prune: bool):
    """Beam search kernel: ``(tokens (W, L), scores (W,), accepted (W,), scored, checks)``."""
    cond, _, viable, nxt, j0 = _tree(model, t_auto, accepting, init_auto)
    del cond
    length, vocab = model.length, model.vocab
    num_a = t_auto.shape[0]
    rows = jnp.arange(nxt.shape[0]) // num_a
    dtype = model.logp.dtype
    tokens0 = jnp.zeros((width, length), jnp.int32)
    scores0 = jnp.full((width,), -jnp.inf, dtype).at[0].set(0.0)
    states0 = jnp.full((width,), j0, jnp.int32)

    def body(carry, x):
        tokens, scores, states = carry
        logp_t, viable_next, t = x
        live = scores > -jnp.inf
        lp = logp_t[rows[states]]  # (W, V)
        ok = live[:, None] & (lp > -jnp.inf)
        if prune:
            ok = ok & viable_next[nxt[states]]
        cand = jnp.where(ok, scores[:, None] + jnp.where(ok, lp, 0.0), -jnp.inf).reshape(-1)
        best, idx = jax.lax.top_k(cand, width)
        parent, token = idx // vocab, (idx % vocab).astype(jnp.int32)
        tokens = tokens[parent].at[:, t].set(token)
        states = nxt[states[parent], token]
        scored = jnp.sum(live) * vocab  # every live beam scores every token
        return (tokens, best, states), scored

    xs = (model.logp, viable[1:], jnp.arange(length))
    (tokens, scores, states), scored = jax.lax.scan(body, (tokens0, scores0, states0), xs)
    live = scores > -jnp.inf
    accepted = live & jnp.tile(accepting, model.transition.shape[0])[states]
    checks = jnp.sum(scored) if prune else jnp.sum(live)
    return tokens, scores, accepted, jnp.sum(scored), checks


_beam_jit = jax.jit(_beam, static_argnums=(4, 5))


# ----------------------------------------------------------------------------- validation
def _inputs(model: Any, verifier: Any):
    model = sq.check_model(model)
    verifier = sq.check_verifier(verifier, model.vocab)
    return (
        model,
        jnp.asarray(verifier.transition, jnp.int32),
        jnp.asarray(verifier.accepting, bool),
        jnp.asarray(verifier.initial, jnp.int32),
    )


def _int_dtype():
    return jnp.result_type(int)


def _no_success(model) -> ValueError:
    return ValueError(
        "`verifier` accepts no string `model` can produce (every string of positive "
        "probability is rejected), so no search can succeed; check the verifier, the length "
        f"({model.length}) and the model's zero-probability tokens."
    )


# ----------------------------------------------------------------------------- public API
def can_accept(verifier: Any, length: Any) -> jax.Array:
    r"""The verifier's process check: ``(length + 1, num_states)`` bool table.

    ``can_accept(verifier, L)[t, a]`` is true when some string of the remaining ``L - t`` tokens
    takes the automaton from state ``a`` to an accepting state: $\mathrm{alive}_L =
    \mathrm{accepting}$, $\mathrm{alive}_t(a) = \bigvee_y \mathrm{alive}_{t+1}(D[a, y])$. A
    prefix of ``t`` tokens that leaves the automaton in a state with ``alive[t, a]`` false can
    be discarded: no completion is accepted.

    >>> from freeenergy import sequences as sq
    >>> alive = can_accept(sq.exact_match(2, [1, 0]), 2)
    >>> alive[1].tolist()  # states: 0 or 1 tokens matched, 2 matched, mismatch
    [False, True, False, False]
    """
    verifier = sq.check_verifier(verifier)
    length = _checks.integer(
        length,
        "length",
        minimum=1,
        maximum=max(1, sq.MAX_TABLE // verifier.num_states),
        why=f"the table holds (length + 1) * {verifier.num_states} flags",
    )
    return _alive_jit(
        jnp.asarray(verifier.transition, jnp.int32), jnp.asarray(verifier.accepting, bool), length
    )


def tree_search(model: Any, verifier: Any) -> tuple[sq.SequenceModel, SequenceCost]:
    r"""Exact output distribution and expected compute of tree search with a process check.

    Returns ``(searched, cost)``: ``searched`` is a :class:`~freeenergy.sequences.SequenceModel`
    on the product states ``s * A + a`` with the pruned conditionals
    $q_t(y\mid j) = p_t(y\mid s)\,\mathbb{1}[v_{t+1}(j')]/m_t(j)$ (see the module docstring): every
    string it produces is accepted, and it produces only strings of positive probability under
    ``model``. ``cost`` is the expected compute of one output: ``samples = 1``, ``tokens`` =
    ``verifier_calls`` $= \mathbb{E}_q[\sum_t 1/m_t]$ (each draw is one token and one prefix
    check). Raises when no accepted string has positive probability.

    >>> import jax.numpy as jnp
    >>> from freeenergy import sequences as sq
    >>> base = sq.iid(jnp.log(jnp.array([0.9, 0.1])), 3)
    >>> searched, cost = tree_search(base, sq.exact_match(2, [1, 1, 1]))
    >>> round(float(jnp.exp(sq.log_prob(searched, jnp.array([1, 1, 1])))), 6)
    1.0
    >>> round(float(cost.tokens), 6)  # 1 / 0.1 draws per position
    30.0
    """
    model, t_auto, accepting, init_auto = _inputs(model, verifier)
    searched, _, draws, ok = _tree_search_jit(model, t_auto, accepting, init_auto)
    if not _checks.is_traced(ok) and not bool(ok):
        raise _no_success(model)
    one = jnp.ones((), draws.dtype)
    return sq.check_model(searched, "searched"), SequenceCost(one, draws, draws)


def sample_tree_search(
    key: Any, model: Any, verifier: Any, num_samples: int
) -> tuple[jax.Array, SequenceCost]:
    """Run tree search with a process check ``num_samples`` times: ``(tokens, cost)``.

    ``tokens`` is ``(num_samples, length)`` int, i.i.d. from ``tree_search(model, verifier)[0]``
    (every row accepted). ``cost`` holds the totals of the runs: ``samples = num_samples``,
    ``tokens`` = ``verifier_calls`` = the draws spent, rejected ones included. At a node whose
    viable tokens carry mass ``m`` the draws until the first viable token are geometric with
    mean ``1/m`` and independent of the token accepted, so they are drawn as such (one uniform
    per position) rather than by looping.

    >>> import jax, jax.numpy as jnp
    >>> from freeenergy import sequences as sq
    >>> coin, v = sq.iid(jnp.log(jnp.array([0.5, 0.5])), 3), sq.count_at_least(2, 1, 2)
    >>> tokens, cost = sample_tree_search(jax.random.key(0), coin, v, 5)
    >>> tokens.shape, bool(sq.accepts(v, tokens).all()), int(cost.samples)
    ((5, 3), True, 5)
    >>> bool(cost.tokens >= 15) and bool(cost.verifier_calls == cost.tokens)
    True
    """
    key = _checks.key(key)
    model, t_auto, accepting, init_auto = _inputs(model, verifier)
    num_samples = _checks.integer(
        num_samples,
        "num_samples",
        minimum=1,
        maximum=max(1, sq.MAX_TABLE // model.length),
        why=f"the runs hold num_samples * length = num_samples * {model.length} tokens",
    )
    searched, log_m, _, ok = _tree_search_jit(model, t_auto, accepting, init_auto)
    if not bool(ok):
        raise _no_success(model)
    key_tokens, key_draws = jax.random.split(key)
    tokens = sq.sample(key_tokens, searched, num_samples)
    draws = _draw_counts(key_draws, log_m, searched.transition, searched.initial, tokens)
    draws = draws.astype(_int_dtype())
    return tokens, SequenceCost(jnp.asarray(num_samples, _int_dtype()), draws, draws)


class Beams(NamedTuple):
    """The result of ``beam_search``: the surviving beams, best first.

    * ``tokens`` — ``(width, length)`` int;
    * ``logp`` — ``(width,)`` log-probability of each beam under the model (``-inf`` marks an
      empty slot: fewer than ``width`` prefixes survived);
    * ``accepted`` — ``(width,)`` bool, whether the verifier accepts the beam;
    * ``cost`` — ``SequenceCost``: ``samples`` = complete beams, ``tokens`` = token extensions
      scored (every live beam times the vocabulary, per position), ``verifier_calls`` = prefix
      checks (one per scored extension) with ``prune``, else one outcome check per final beam.
    """

    tokens: jax.Array
    logp: jax.Array
    accepted: jax.Array
    cost: SequenceCost


def beam_search(model: Any, verifier: Any, width: int, *, prune: bool = True) -> Beams:
    r"""Beam search for the most probable accepted string.

    Keeps the ``width`` most probable prefixes; at every position extends each by every token of
    positive probability and keeps the best ``width`` extensions. With ``prune`` (the process
    check) an extension is dropped as soon as no continuation the model can produce is accepted
    (the viability of the module docstring), so every surviving beam is accepted; without it the
    verifier only checks the final beams. Deterministic (ties go to the lower beam, then the
    lower token): the output — ``tokens[0]`` — has a point-mass distribution inside
    ``supp(p)``. With ``width`` at least ``vocab ** (length - 1)`` nothing is cut and the beams are
    the ``width`` most probable accepted strings. ``Beams.logp`` is in nats.

    >>> import jax.numpy as jnp
    >>> from freeenergy import sequences as sq
    >>> base = sq.iid(jnp.log(jnp.array([0.6, 0.4])), 3)
    >>> beams = beam_search(base, sq.count_at_least(2, 1, 2), 2)
    >>> beams.tokens.tolist(), beams.accepted.tolist()
    ([[0, 1, 1], [1, 0, 1]], [True, True])
    >>> [round(float(x), 4) for x in beams.logp]  # log(0.6 * 0.4 * 0.4), a three-way tie
    [-2.3434, -2.3434]
    >>> int(beams.cost.tokens), int(beams.cost.verifier_calls)  # 2 + 4 + 4 extensions scored
    (10, 10)
    """
    if not isinstance(prune, bool):
        raise TypeError(f"`prune` must be a bool, got {prune!r}.")
    model, t_auto, accepting, init_auto = _inputs(model, verifier)
    width = _checks.integer(
        width,
        "width",
        minimum=1,
        maximum=max(1, sq.MAX_TABLE // (model.vocab * model.length)),
        why=f"each step scores width * vocab = width * {model.vocab} extensions of beams of "
        f"{model.length} tokens",
    )
    tokens, scores, accepted, scored, checks = _beam_jit(
        model, t_auto, accepting, init_auto, width, prune
    )
    live = jnp.sum(scores > -jnp.inf).astype(_int_dtype())
    cost = SequenceCost(live, scored.astype(_int_dtype()), checks.astype(_int_dtype()))
    return Beams(tokens, scores, accepted, cost)


def best_of_n_sequence(model: Any, verifier: Any, n: Any) -> tuple[sq.SequenceModel, SequenceCost]:
    r"""Exact best-of-``n`` over sequences with a binary verifier, as a model; and its cost.

    Draw ``n`` complete strings, output an accepted one if any (the first), else the first draw.
    Its distribution is the Gibbs tilt of the model by the verifier's reward,
    $q \propto p\,e^{\mathbb{1}[\text{accepted}]/\beta}$ with
    $1/\beta = \log\sum_{i<n}(1-p(S))^{-i}$ (``best_of_n_temperature`` on the two-level space
    {accepted, rejected}; docs/theory.md T12), computed by ``sequences.tilt`` — exact on any length.
    Returns the model itself when nothing changes (``n = 1``, or $p(S) \in \{0, 1\}$).
    ``cost``: ``n`` samples, ``n * length`` tokens, ``n`` verifier calls.

    >>> import jax.numpy as jnp
    >>> from freeenergy import sequences as sq
    >>> coin, v = sq.iid(jnp.log(jnp.array([0.5, 0.5])), 3), sq.count_at_least(2, 1, 2)
    >>> searched, cost = best_of_n_sequence(coin, v, 2)
    >>> round(float(jnp.exp(sq.accept_logprob(searched, v))), 6)  # 1 - (1 - 1/2)^2
    0.75
    >>> int(cost.samples), int(cost.tokens), int(cost.verifier_calls)
    (2, 6, 2)
    """
    n = _checks.integer(
        n, "n", minimum=1, maximum=2**62 // (1 + 2**20), why="the token count n * length is int64"
    )
    model, *_ = _inputs(model, verifier)
    log_s = sq.accept_logprob(model, verifier)
    log_two = jnp.stack([log_s, jnp.log(-jnp.expm1(jnp.minimum(log_s, 0.0)))])
    if bool(log_s == 0.0):
        log_two = jnp.asarray([0.0, -jnp.inf], log_s.dtype)
    beta = best_of_n_temperature(log_two, jnp.asarray([True, False]), n)
    dtype = _int_dtype()
    cost = SequenceCost(
        jnp.asarray(n, dtype), jnp.asarray(n * model.length, dtype), jnp.asarray(n, dtype)
    )
    if not bool(jnp.isfinite(beta)):
        return model, cost
    return sq.tilt(model, verifier, beta), cost


def string_index(tokens: Any, vocab: int) -> jax.Array:
    r"""Index of each string ``(..., length)`` in ``sequences.strings(vocab, length)`` (the order of
    ``sequences.enumerate``): $\sum_t y_t\,V^{L-1-t}$.

    >>> string_index([[0, 1, 1], [1, 0, 0]], 2).tolist()
    [3, 4]
    """
    vocab = _checks.integer(
        vocab, "vocab", minimum=1, maximum=2**31, why="indices are int64: vocab ** length < 2^63"
    )
    toks = sq.check_tokens(tokens, vocab)
    length = int(toks.shape[-1])
    top = np.iinfo(_int_dtype()).max
    if length * math.log2(max(vocab, 2)) >= math.log2(top) and vocab > 1:
        raise ValueError(
            f"vocab ** length = {vocab}^{length} strings do not fit an index of dtype "
            f"{np.dtype(_int_dtype()).name}; use a shorter length or a smaller vocab."
        )
    weights = jnp.asarray(vocab ** np.arange(length - 1, -1, -1), _int_dtype())
    return jnp.sum(jnp.asarray(toks).astype(_int_dtype()) * weights, axis=-1)
