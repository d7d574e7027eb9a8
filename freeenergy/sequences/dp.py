"""Exact dynamic programs over the strings of a model, scored by a verifier."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks
from ..support import _reach
from ._kernels import (
    _entropy_jit,
    _enumerate_jit,
    _expected_energy_jit,
    _kl_jit,
    _log_prob_jit,
    _sample_jit,
    _sequence_energy_jit,
    _soft_jit,
    _solve_kl,
)
from ._types import Automaton, SequenceModel, _zero
from ._validate import (
    MAX_TABLE,
    MAX_VOCAB,
    _beta,
    _energies,
    _length,
    _model,
    _space_size,
    _tokens,
    _trust,
    _verifier,
    _vocab,
)

__all__ = [
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
    "strings",
    "enumerate",
    "sequence_energy",
]


_ENERGY_DOC = """
    Energy keywords (docs/theory.md §1, $U = -r$): ``reward=`` or ``energy=`` — one terminal value
    per automaton state (shape ``(num_states,)``; default: reward 1 on accepting states, 0
    elsewhere; with ``verifier=None`` no terminal term); ``step_energy=`` — per-step additive
    energies, shape ``(vocab,)``, ``(length, vocab)`` or ``(length, automaton states, vocab)``,
    where ``step_energy[t, a, y]`` is charged for emitting ``y`` at position ``t`` in automaton
    state ``a``. ``+inf`` energies (``-inf`` rewards) exclude strings."""


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
    >>> from freeenergy.sequences import count_at_least, iid
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
    lam = _beta(beta, model.logp.dtype, inverse=True) * e.scale
    return _soft_jit(model, e.transition, e.initial, e.step, e.final, lam)[0]


def _check_mass(has_mass: jax.Array) -> None:
    """Refuse a tilt without mass: no string of positive probability has a finite energy (not
    ``log Z == -inf``, which also happens when Z is positive but below the float range)."""
    if not _checks.is_traced(has_mass) and not bool(has_mass):
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
    $U_2$ is tilt by $U_1 + U_2$, docs/theory.md T3). Tokens with ``p = 0`` stay at ``-inf``
    (support preservation). Product states that cannot reach a finite-energy end keep the base
    conditionals (they carry no mass under ``q``). Shapes: the result's ``logp`` is
    ``(length, num_states * A, vocab)`` for ``A`` automaton states (``A = 1`` without a
    verifier); its log-probabilities are in nats.

    >>> import jax.numpy as jnp
    >>> from freeenergy.sequences import count_at_least, iid
    >>> coin = iid(jnp.log(jnp.array([0.5, 0.5])), 3)
    >>> two_heads = count_at_least(2, 1, 2)  # p(S) = 1/2
    >>> q = tilt(coin, two_heads, 1.0)
    >>> q.logp.shape  # 1 model state x 3 automaton states
    (3, 3, 2)
    >>> round(float(accept_logprob(q, two_heads)), 4)  # q(S) = e / (1 + e)
    -0.3133
    """
    model = _model(model)
    verifier = _verifier(verifier, model.vocab)
    e = _energies(verifier, model, reward=reward, energy=energy, step_energy=step_energy)
    lam = _beta(beta, model.logp.dtype, inverse=True) * e.scale
    _, _, tilted, has_mass = _soft_jit(model, e.transition, e.initial, e.step, e.final, lam)
    _check_mass(has_mass)
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
    ``kl_budget``: the maximizer of $-\mathbb{E}_q[U]$ under that KL (docs/theory.md T4).

    Returns ``(tilted_model, beta)``. The KL is increasing in $1/\beta$; the root of
    $\log\mathrm{KL}(\beta) = \log\varepsilon$ is bracketed in $\beta \in [10^{-6}, 10^{6}]$
    and found by safeguarded regula falsi (Illinois) to a relative KL error below 1e-12 in
    float64, each evaluation one exact DP (typically ~10 of them). ``kl_budget = 0`` returns the
    base on the product states with ``beta = inf``; a budget at or above the KL at
    $\beta = 10^{-6}$ (the energy-minimizing limit, up to $e^{-10^6\cdot\text{gap}}$) returns
    that tilt; a budget below the KL at $\beta = 10^{6}$ returns the tilt at $\beta = 10^6$.
    ``kl_budget`` is a scalar in nats; ``beta`` is a scalar array of the model's float dtype.

    >>> import jax.numpy as jnp
    >>> from freeenergy.sequences import count_at_least, iid
    >>> coin = iid(jnp.log(jnp.array([0.5, 0.5])), 3)
    >>> two_heads = count_at_least(2, 1, 2)
    >>> q, beta = tilt_for_kl(coin, two_heads, 0.1)
    >>> round(float(kl(q, coin)), 6)  # the budget, in nats
    0.1
    >>> round(float(beta), 3)
    1.06
    """
    model = _model(model)
    verifier = _verifier(verifier, model.vocab)
    e = _energies(verifier, model, reward=reward, energy=energy, step_energy=step_energy)
    budget = _checks.scalar(kl_budget, "kl_budget")
    if not (0.0 <= budget < math.inf):
        raise ValueError(f"`kl_budget` must be finite and >= 0 (nats), got {budget!r}.")
    dtype = model.logp.dtype

    def run(lam):
        scaled = jnp.asarray(lam * e.scale, dtype)
        return _soft_jit(model, e.transition, e.initial, e.step, e.final, scaled)

    _check_mass(run(1.0)[3])
    lam = _solve_kl(lambda x: run(x)[1], budget, dtype)
    tilted = run(lam)[2]
    beta = jnp.asarray(1.0 / lam if lam > 0 else math.inf, dtype)
    return _trust(tilted), beta


def kl(model_q: SequenceModel, model_p: SequenceModel) -> jax.Array:
    r"""Sequence-level $\mathrm{KL}(q\|p) = \sum_y q(y)\log\frac{q(y)}{p(y)}$ in nats.

    Exact, by the backward recursion $K_t = \sum_y q(y\mid\cdot)\,[\log q - \log p + K_{t+1}]$
    on the product of the two generators' states. ``+inf`` when ``q`` gives positive
    probability to a string that ``p`` cannot produce. Both models need the same length and vocab.
    Returns a scalar (nats).

    >>> import jax.numpy as jnp
    >>> from freeenergy.sequences import count_at_least, iid
    >>> coin = iid(jnp.log(jnp.array([0.5, 0.5])), 3)
    >>> q = tilt(coin, count_at_least(2, 1, 2), 1.0)
    >>> round(float(kl(q, coin)), 4)  # a log(2a) + (1 - a) log(2(1 - a)), a = e / (1 + e)
    0.1109
    >>> float(kl(coin, coin))
    0.0
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
    by the backward recursion $H_t = \sum_y p(y\mid\cdot)\,[-\log p(y\mid\cdot) + H_{t+1}]$.
    Returns a scalar.

    >>> import jax.numpy as jnp
    >>> from freeenergy.sequences import iid
    >>> round(float(entropy(iid(jnp.log(jnp.array([0.5, 0.5])), 3))), 4)  # 3 log 2
    2.0794
    """
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

    ``+inf`` when the model gives positive probability to an infinite-energy string. Returns a
    scalar in the units of the energy (nats when $U$ is a log-likelihood ratio).

    >>> import jax.numpy as jnp
    >>> from freeenergy.sequences import count_at_least, iid
    >>> coin = iid(jnp.log(jnp.array([0.5, 0.5])), 3)
    >>> round(float(expected_energy(coin, count_at_least(2, 1, 2))), 4)  # -p(S)
    -0.5
    >>> round(float(expected_energy(coin, None, step_energy=jnp.array([0.0, 1.0]))), 4)  # 3 / 2
    1.5
    """
    model = _model(model)
    verifier = _verifier(verifier, model.vocab)
    e = _energies(verifier, model, reward=reward, energy=energy, step_energy=step_energy)
    return _expected_energy_jit(model, e.transition, e.initial, e.step, e.final) * e.scale


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
    ``base`` = $p_0$; at least $-\beta\log Z_\beta$, with equality at ``tilt(base, ...)``.
    Returns a scalar (nats for $\beta = 1$ and a reward in nats); ``+inf`` when the KL is.

    >>> import jax.numpy as jnp
    >>> from freeenergy.sequences import count_at_least, iid
    >>> coin = iid(jnp.log(jnp.array([0.5, 0.5])), 3)
    >>> two_heads = count_at_least(2, 1, 2)
    >>> round(float(free_energy(coin, coin, two_heads, 1.0)), 4)  # KL = 0: -p(S)
    -0.5
    >>> q = tilt(coin, two_heads, 1.0)
    >>> round(float(free_energy(q, coin, two_heads, 1.0)), 4)  # the minimum -log((1 + e) / 2)
    -0.6201
    """
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
    mean = _expected_energy_jit(q, e.transition, e.initial, e.step, e.final) * e.scale
    divergence = _kl_jit(q, p)
    return jnp.where(divergence == jnp.inf, jnp.inf, mean + b * divergence)


def log_prob(model: SequenceModel, tokens: Any) -> jax.Array:
    r"""$\log p(y) = \sum_t \texttt{logp}[t, s_t, y_t]$ for a batch of strings.

    ``tokens`` is an int array ``(..., length)``; returns shape ``(...)``. Differentiable in
    ``model.logp`` (the gradient counts how often each table entry is used), so a training loop
    can maximize it for a policy that parametrizes the tables (:func:`from_logits`). Nats.

    >>> import jax.numpy as jnp
    >>> from freeenergy.sequences import iid
    >>> m = iid(jnp.log(jnp.array([0.25, 0.75])), 2)
    >>> [round(float(x), 4) for x in log_prob(m, jnp.array([[0, 1], [1, 1]]))]  # log 3/16, 9/16
    [-1.674, -0.5754]
    """
    model = _model(model)
    toks = _tokens(tokens, model.length, model.vocab)
    return _log_prob_jit(model, toks)


def accept_logprob(model: SequenceModel, verifier: Automaton) -> jax.Array:
    r"""$\log p(S)$ for the set $S$ of strings ``verifier`` accepts (``-inf`` if none is
    producible). Exact: the forward-backward sum over the product states, in log space.
    Returns a scalar (nats).

    >>> import jax.numpy as jnp
    >>> from freeenergy.sequences import contains, iid
    >>> coin = iid(jnp.log(jnp.array([0.5, 0.5])), 3)
    >>> round(float(accept_logprob(coin, contains(2, [1, 1]))), 4)  # log(3/8): 011, 110, 111
    -0.9808
    """
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
    any shape), computed stably from ``accept_logprob`` (docs/theory.md T9). Returns a
    probability of the shape of ``k``.

    >>> import jax.numpy as jnp
    >>> from freeenergy.sequences import count_at_least, iid
    >>> coin = iid(jnp.log(jnp.array([0.5, 0.5])), 3)
    >>> print(jnp.round(pass_at_k(coin, count_at_least(2, 1, 2), jnp.array([1, 2, 3])), 4))
    [0.5   0.75  0.875]
    """
    k = _checks.at_least_one(k, "k", integer=True)
    log_s = accept_logprob(model, verifier)
    return _reach(log_s, k.astype(log_s.dtype))


def reach_probability(model: SequenceModel, verifier: Automaton, budget: Any) -> jax.Array:
    r"""Probability that ``budget`` i.i.d. samples hit the accepted set: $1-(1-p(S))^N$
    (``budget`` >= 1, any shape). The set is accessible at confidence ``c`` when this is
    at least ``c``, i.e. $p(S) \ge 1-(1-c)^{1/N}$ (docs/theory.md §2). ``budget`` may be
    fractional (a continuous interpolation); the result has its shape.

    >>> import jax.numpy as jnp
    >>> from freeenergy.sequences import count_at_least, iid
    >>> coin = iid(jnp.log(jnp.array([0.5, 0.5])), 3)
    >>> v = count_at_least(2, 1, 2)  # p(S) = 1/2
    >>> print(jnp.round(reach_probability(coin, v, jnp.array([1.0, 2.5])), 4))  # 1 - 2^-N
    [0.5    0.8232]
    """
    budget = _checks.at_least_one(budget, "budget")
    log_s = accept_logprob(model, verifier)
    return _reach(log_s, budget.astype(log_s.dtype))


def sample(key: jax.Array, model: SequenceModel, num_samples: int) -> jax.Array:
    """Ancestral sampling: ``num_samples`` i.i.d. strings, an int array ``(num_samples, length)``.

    One ``lax.scan`` over positions, the batch drawn together at each step; deterministic given
    ``key`` (a ``jax.random.key``). Tokens with ``-inf`` log-probability are never drawn.

    >>> import jax, jax.numpy as jnp
    >>> from freeenergy.sequences import accepts, count_at_least, iid
    >>> coin = iid(jnp.log(jnp.array([0.5, 0.5])), 3)
    >>> v = count_at_least(2, 1, 2)
    >>> y = sample(jax.random.key(0), tilt(coin, v, 1e-3), 100)
    >>> y.shape, y.dtype
    ((100, 3), dtype('int32'))
    >>> bool(accepts(v, y).all())  # beta -> 0: all mass on accepted strings
    True
    """
    key = _checks.key(key)
    model = _model(model)
    n = _checks.integer(
        num_samples,
        "num_samples",
        minimum=1,
        maximum=max(1, MAX_TABLE // model.length),
        why=f"the samples hold num_samples * length = num_samples * {model.length} tokens and as "
        "many uniforms in memory",
    )
    return _sample_jit(key, model, n)


def strings(vocab: int, length: int) -> jax.Array:
    """All ``vocab ** length`` strings, ``(vocab ** length, length)`` int32, in lexicographic order
    (the first token most significant): row ``i`` is ``i`` written in base ``vocab``. The order
    of :func:`enumerate`.

    >>> strings(2, 2).tolist()
    [[0, 0], [0, 1], [1, 0], [1, 1]]
    """
    vocab = _vocab(vocab)
    n = _length(length)
    size = _space_size(vocab, n)
    idx = np.arange(size)[:, None]
    digits = (idx // vocab ** np.arange(n - 1, -1, -1)[None, :]) % vocab
    return jnp.asarray(digits, jnp.int32)


def enumerate(model: SequenceModel) -> jax.Array:  # noqa: A001 - the name of the operation
    """The model as a flat distribution: ``log p`` of every string, shape ``(vocab ** length,)``,
    in the order of :func:`strings`, so every flat-space function (``gibbs``, ``kl``,
    ``regimes``, ...) applies. Small spaces only (``vocab ** length <= MAX_ENUMERATE``).
    Log-probabilities in nats; they sum (``logsumexp``) to 0.

    >>> import jax.numpy as jnp
    >>> from freeenergy.sequences import iid
    >>> m = iid(jnp.log(jnp.array([0.25, 0.75])), 2)
    >>> print(jnp.round(jnp.exp(enumerate(m)), 4))  # 00, 01, 10, 11
    [0.0625 0.1875 0.1875 0.5625]
    """
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
    dynamic programs. ``sequence_energy(v, strings(V, L))`` is the flat energy over the space.
    Returns shape ``tokens.shape[:-1]``.

    >>> import jax.numpy as jnp
    >>> from freeenergy.sequences import count_at_least
    >>> v = count_at_least(2, 1, 2)
    >>> sequence_energy(v, jnp.array([[0, 1, 1], [0, 0, 1]])).tolist()  # -1 on accepted
    [-1.0, 0.0]
    >>> sequence_energy(None, jnp.array([0, 1, 1]), step_energy=jnp.array([0.0, 0.5])).tolist()
    1.0
    """
    if verifier is None:
        if step_energy is None:  # no verifier, no step energy: U = 0
            toks = _tokens(tokens, None, MAX_VOCAB)
            return jnp.zeros(toks.shape[:-1], _checks._float_dtype(jnp.zeros(())))
        shape = jnp.shape(step_energy) if hasattr(step_energy, "shape") else np.shape(step_energy)
        if len(shape) < 1:
            raise ValueError(
                "`step_energy` must have shape (vocab,), (length, vocab) or (length, automaton "
                f"states, vocab), got {_checks._describe(step_energy)}."
            )
        vocab = _vocab(shape[-1], "step_energy.shape[-1]")
    else:
        verifier = _verifier(verifier, -1)
        vocab = verifier.vocab
    toks = _tokens(tokens, None, vocab)
    length = _length(toks.shape[-1], "tokens.shape[-1]")
    given = [jnp.asarray(x) for x in (reward, energy, step_energy) if x is not None]
    dtype = _checks._float_dtype(jnp.zeros(()), *given)
    dummy = SequenceModel(
        jnp.zeros((length, 1, vocab), dtype), jnp.zeros((1, vocab), jnp.int32), _zero()
    )
    e = _energies(verifier, dummy, reward=reward, energy=energy, step_energy=step_energy)
    return _sequence_energy_jit(e.transition, e.initial, e.step, e.final, toks)[0] * e.scale


for _f in (log_partition, tilt, tilt_for_kl, expected_energy, free_energy):
    _f.__doc__ = (_f.__doc__ or "") + "\n" + _ENERGY_DOC + "\n"
del _f
