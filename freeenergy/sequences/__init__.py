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
V_t(s,a)$: the exact Gibbs tilt $q \propto p\,e^{-U/\beta}$ (docs/theory.md §1) as a
time-inhomogeneous generator. So that every $\beta$ from 1e-6 to 1e6 stays exact (also in
float32), the same backward pass carries the least energy-to-go $m_t$ (a min-plus recursion) and
works with $V_t = -\lambda m_t + c_t$, where $c_t$ sums only non-negative energy gaps and has the
size of a log-probability; $\log Z_\beta = c_0 - \lambda m_0$. KL, entropy and expected energy
are backward recursions for additive functionals. Cost $O(L\cdot|S|\cdot|A|\cdot V)$, linear
in the length. Everything is checked against enumeration (:func:`enumerate`, :func:`strings`)
on spaces small enough to list (docs/theory.md T10).

**Extreme input.** Energies whose sums along a string would overflow the float type (up to
±1.8e308) are divided by a power of two before the recursion and the results scaled back, so the
tilt matches flat :func:`freeenergy.gibbs` and only a quantity beyond the float range (a
$\log Z$ of $-2\cdot10^{308}$) comes out infinite; a subnormal $\beta$ gives the
$\beta \to 0$ limit. Sizes are bounded before anything is allocated: ``MAX_LENGTH`` positions,
``MAX_VOCAB`` tokens, ``MAX_TABLE`` entries per table (a model's ``length * states * vocab``,
an automaton's ``states * vocab``, a dynamic program's product table), ``MAX_ENUMERATE``
strings listed.

**Layout.** ``models`` (the generators), ``automata`` (the verifiers), ``dp`` (the dynamic
programs, sampling and the small-space listings) and ``checks`` (:func:`check_model`,
:func:`check_verifier`, :func:`check_tokens`, :func:`space_size`: the argument checks of this
package, public so that modules built on it — :mod:`freeenergy.expand` — raise the same errors).
Everything public is importable from ``freeenergy.sequences``.
"""

from __future__ import annotations

from ._validate import MAX_ENUMERATE, MAX_LENGTH, MAX_TABLE, MAX_VOCAB
from .automata import (
    Automaton,
    accepts,
    automaton,
    complement,
    contains,
    count_at_least,
    digit_sum_mod,
    exact_match,
    intersect,
    starts_with,
)
from .checks import check_model, check_tokens, check_verifier, space_size
from .dp import (
    accept_logprob,
    entropy,
    enumerate,
    expected_energy,
    free_energy,
    kl,
    log_partition,
    log_prob,
    pass_at_k,
    reach_probability,
    sample,
    sequence_energy,
    strings,
    tilt,
    tilt_for_kl,
)
from .models import (
    MAX_PREFIX_STATES,
    SequenceModel,
    autoregressive,
    finite_state,
    from_logits,
    iid,
    markov,
    with_end,
)

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
    # checks other modules build on
    "check_model",
    "check_verifier",
    "check_tokens",
    "space_size",
    # limits
    "MAX_ENUMERATE",
    "MAX_PREFIX_STATES",
    "MAX_LENGTH",
    "MAX_TABLE",
    "MAX_VOCAB",
]
