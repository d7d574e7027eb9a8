"""One fuzz entry per public name of freeenergy: a legal call, a strategy of legal-but-extreme
calls, and the bad values every argument is tried with.

* ``ENTRIES`` — public functions: ``example()`` builds a fixed legal call (keyword arguments),
  ``legal`` is a hypothesis strategy of legal calls at the extremes (``-inf`` log-probabilities,
  ``+inf`` energies, log-probabilities down to ``-1e4``, ``beta`` from subnormal to ``1e6``,
  energies of ``±1e308``, one-behavior spaces), ``inf`` the infinities the output may hold.
* ``TYPES`` — public classes and constants: the function whose result (or attribute) must be an
  instance of it, checked on that function's example call.
* ``BAD`` — bad values tried in this process for every argument; ``HUGE`` — sizes tried in a
  child process (they could abort the interpreter if they reached XLA).
* ``REGRESSIONS`` — the defects the library was seen to have, each an explicit case.

``run_case(case_id)`` runs one named case; it is how the child process of
``fuzzing.run_isolated`` reconstructs a call from its id.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from fuzzing import Outcome, call
from hypothesis import strategies as st

import freeenergy as fe
from freeenergy import expand, train
from freeenergy import sequences as sq

INF = math.inf
NAN = math.nan


def _log(p) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(np.asarray(p, dtype=np.float64))


def _normalized(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    m = np.max(x, axis=-1, keepdims=True)
    return x - (m + np.log(np.sum(np.exp(x - m), axis=-1, keepdims=True)))


# --------------------------------------------------------------------------- legal inputs
LOGP = _log([0.5, 0.25, 0.125, 0.125])
LOGQ = _log([0.1, 0.2, 0.3, 0.4])
ENERGY = np.array([0.0, 1.0, -0.5, 2.0])
REWARD = np.array([1.0, 0.0, 2.0, -1.0])
CORRECT = np.array([False, True, True, False])
LOGP3 = _log([0.6, 0.3, 0.1])


def key(seed: int = 0) -> jax.Array:
    return jax.random.key(seed)


def model() -> sq.SequenceModel:
    return sq.iid(LOGP3, 3)


def verifier() -> sq.Automaton:
    return sq.count_at_least(3, 2, 1)


def trainer() -> train.Trainer:
    return train.make_trainer(
        train.tabular(LOGP), train.reinforce("exact", kl="exact"), optax.sgd(0.1)
    )


def batch() -> train.Batch:
    return train.Batch(REWARD, beta=0.5)


def tool_model() -> expand.ToolModel:
    return expand.augment(model(), expand.macro(3, [2, 2], 0.3))


def seq_policy():
    return expand.sequence_policy(sq.iid(LOGP3, 1))


def ei_trainer():
    policy, to_model = seq_policy()
    return train.make_trainer(policy, train.sft(num_samples=4), optax.adam(0.1)), to_model


# --------------------------------------------------------------------------- strategies
LOGP_ATOMS = [0.0, -1.0, -3.0, -30.0, -700.0, -1e4, -INF]
BETAS = st.one_of(
    st.sampled_from([1e-6, 1e6, 5e-324, 2.2e-308, 1.0, 0.5]),
    st.floats(1e-6, 1e6),
)


@st.composite
def logps(draw, n=None, min_n=1, max_n=4):
    """A normalized log-distribution with -inf entries and entries down to -1e4."""
    n = draw(st.integers(min_n, max_n)) if n is None else n
    x = draw(
        st.lists(
            st.one_of(st.sampled_from(LOGP_ATOMS), st.floats(-1e4, 0.0)), min_size=n, max_size=n
        )
    )
    if all(v == -INF for v in x):
        x[draw(st.integers(0, n - 1))] = 0.0
    return _normalized(x)


def energies(n, *, sign=1):
    """Energies (``sign=1``: ``+inf`` legal) or rewards (``sign=-1``: ``-inf`` legal)."""
    atom = st.one_of(
        st.sampled_from([0.0, 1.0, -1.0, 1e308, -1e308, 1e3, -1e3, sign * INF]),
        st.floats(-1e6, 1e6),
    )
    return st.lists(atom, min_size=n, max_size=n).map(lambda v: np.asarray(v, dtype=np.float64))


def finite_rewards(n):
    atom = st.one_of(st.sampled_from([0.0, 1.0, -1.0, 1e3, -1e3]), st.floats(-1e3, 1e3))
    return st.lists(atom, min_size=n, max_size=n).map(np.asarray)


def masks(n):
    return st.lists(st.booleans(), min_size=n, max_size=n).map(np.asarray)


BUDGETS = st.one_of(st.sampled_from([1, 2, 16, 10**6, 1e9, 1.5]), st.integers(1, 1000))
CONFIDENCES = st.one_of(st.sampled_from([1e-12, 0.5, 1 - 1e-12]), st.floats(1e-6, 1 - 1e-6))


@st.composite
def flat(draw, *names, min_n=1, max_n=4):
    """A dict with a common n: ``logp*``-like names get distributions, the rest by their name."""
    n = draw(st.integers(min_n, max_n))
    out = {}
    for name in names:
        if name in ("logp", "logq", "logp0", "logp_new", "logp_teacher", "target_logp"):
            out[name] = draw(logps(n))
        elif name == "logits":
            out[name] = draw(logps(n)) + draw(st.sampled_from([0.0, 1e3, -1e3, 700.0]))
        elif name == "energy":
            out[name] = draw(energies(n))
        elif name == "reward":
            out[name] = draw(energies(n, sign=-1))
        elif name == "finite_reward":
            out["reward"] = draw(finite_rewards(n))
        elif name in ("correct", "target"):
            out[name] = draw(masks(n))
        else:
            raise KeyError(name)
    return out


@st.composite
def seq_models(draw):
    vocab = draw(st.integers(1, 3))
    length = draw(st.integers(1, 3))
    kind = draw(st.sampled_from(["iid", "markov"]))
    if kind == "iid":
        return sq.iid(draw(logps(vocab)), length)
    rows = np.stack([draw(logps(vocab)) for _ in range(vocab)])
    return sq.markov(rows, length, [draw(st.integers(0, vocab - 1))])


@st.composite
def seq_verifiers(draw, vocab):
    kind = draw(st.sampled_from(["count", "contains", "exact", "starts", "digits"]))
    token = draw(st.integers(0, vocab - 1))
    if kind == "count":
        return sq.count_at_least(vocab, token, draw(st.integers(0, 3)))
    if kind == "contains":
        return sq.contains(vocab, [token] * draw(st.integers(1, 2)))
    if kind == "exact":
        return sq.exact_match(
            vocab, draw(st.lists(st.integers(0, vocab - 1), min_size=1, max_size=3))
        )
    if kind == "starts":
        return sq.starts_with(vocab, [token])
    return sq.digit_sum_mod(vocab, draw(st.integers(1, 3)), 0)


@st.composite
def model_and_verifier(draw):
    m = draw(seq_models())
    return m, draw(seq_verifiers(m.vocab))


# --------------------------------------------------------------------------- entries
@dataclasses.dataclass
class Entry:
    fn: Callable
    example: Callable[[], dict]
    legal: Any = None  # a strategy of legal keyword arguments (None: the example only)
    inf: str = "any"
    post: Callable[[Any], Any] | None = None
    names: tuple[str, ...] = ()  # more names a message may cite (fields of an argument)
    slow: bool = False  # compiles a training loop: fewer fuzz examples

    def call(self, kwargs: dict) -> Outcome:
        from fuzzing import parameter_names

        return call(
            self.fn,
            kwargs,
            inf=self.inf,
            post=self.post,
            names=parameter_names(self.fn) + list(self.names),
        )


def _legal_seq(*, extra=None):
    @st.composite
    def strategy(draw):
        m, v = draw(model_and_verifier())
        kw = {"model": m, "verifier": v}
        if extra:
            kw.update(draw(extra(m, v)))
        return kw

    return strategy()


def _beta_kw(m, v):
    return st.fixed_dictionaries({"beta": BETAS})


def _tilt_post(out):
    return out.logp


def _enumerate_post(out):
    m = out[0] if isinstance(out, tuple) else out
    return (sq.enumerate(m),) + (tuple(out[1:]) if isinstance(out, tuple) else ())


E: dict[str, Entry] = {}

# ---- flat core (freeenergy.*)
E["fe.normalize"] = Entry(fe.normalize, lambda: dict(logits=LOGP + 3.0), flat("logits"), inf="-")
E["fe.kl"] = Entry(fe.kl, lambda: dict(logq=LOGQ, logp=LOGP), flat("logq", "logp"), inf="+")
E["fe.entropy"] = Entry(fe.entropy, lambda: dict(logp=LOGP), flat("logp"), inf="none")
E["fe.sample"] = Entry(
    fe.sample,
    lambda: dict(key=key(), logp=LOGP, num_samples=3),
    flat("logp").map(lambda d: {**d, "key": key(1), "num_samples": 5}),
)
E["fe.decode"] = Entry(
    fe.decode,
    lambda: dict(logp=LOGP, temperature=0.7, top_k=3, top_p=0.9),
    st.tuples(
        flat("logp"),
        st.sampled_from([1e-6, 1.0, 1e6]),
        st.sampled_from([None, 1, 2]),
        st.sampled_from([None, 1e-9, 0.5, 1.0]),
    ).map(lambda t: {**t[0], "temperature": t[1], "top_k": t[2], "top_p": t[3]}),
    inf="-",
)
E["fe.gibbs"] = Entry(
    fe.gibbs,
    lambda: dict(logp0=LOGP, energy=ENERGY, beta=0.5),
    st.tuples(flat("logp0", "energy"), BETAS).map(lambda t: {**t[0], "beta": t[1]}),
    inf="-",
)
E["fe.log_partition"] = Entry(
    fe.log_partition,
    lambda: dict(logp0=LOGP, energy=ENERGY, beta=0.5),
    st.tuples(flat("logp0", "energy"), BETAS).map(lambda t: {**t[0], "beta": t[1]}),
)
E["fe.free_energy"] = Entry(
    fe.free_energy,
    lambda: dict(logq=LOGQ, logp0=LOGP, energy=ENERGY, beta=0.5),
    st.tuples(flat("logq", "logp0", "energy"), BETAS).map(lambda t: {**t[0], "beta": t[1]}),
)
E["fe.implied_energy"] = Entry(
    fe.implied_energy,
    lambda: dict(logq=LOGQ, logp0=LOGP, beta=0.5),
    st.tuples(flat("logq", "logp0"), BETAS, st.booleans()).map(
        lambda t: {**t[0], "beta": t[1], "return_singular": t[2]}
    ),
)
E["fe.tilt_for_kl"] = Entry(
    fe.tilt_for_kl,
    lambda: dict(logp0=LOGP, reward=REWARD, kl_budget=0.2),
    st.tuples(flat("logp0", "reward"), st.sampled_from([0.0, 1e-12, 0.2, 5.0, 1e4, INF])).map(
        lambda t: {**t[0], "kl_budget": t[1]}
    ),
)
E["fe.frontier"] = Entry(
    fe.frontier,
    lambda: dict(logp0=LOGP, reward=REWARD, betas=np.array([0.5, 2.0])),
    st.tuples(flat("logp0", "reward"), st.lists(BETAS, min_size=1, max_size=3)).map(
        lambda t: {**t[0], "betas": np.asarray(t[1])}
    ),
)
E["fe.reach_probability"] = Entry(
    fe.reach_probability,
    lambda: dict(logp=LOGP, budget=4),
    st.tuples(flat("logp"), BUDGETS).map(lambda t: {**t[0], "budget": t[1]}),
    inf="none",
)
E["fe.accessible_support"] = Entry(
    fe.accessible_support,
    lambda: dict(logp=LOGP, budget=4, confidence=0.5),
    st.tuples(flat("logp"), BUDGETS, CONFIDENCES).map(
        lambda t: {**t[0], "budget": t[1], "confidence": t[2]}
    ),
)
E["fe.pass_at_k"] = Entry(
    fe.pass_at_k,
    lambda: dict(logp=LOGP, correct=CORRECT, k=4),
    st.tuples(flat("logp", "correct"), BUDGETS).map(lambda t: {**t[0], "k": t[1]}),
    inf="none",
)
E["fe.pass_at_k_estimate"] = Entry(
    fe.pass_at_k_estimate,
    lambda: dict(n=10, c=3, k=4),
    st.integers(1, 10**6).flatmap(
        lambda n: st.tuples(st.integers(0, n), st.integers(1, n)).map(
            lambda ck: dict(n=n, c=ck[0], k=ck[1])
        )
    ),
    inf="none",
)
E["fe.regimes"] = Entry(
    fe.regimes,
    lambda: dict(logp0=LOGP, budget=4, confidence=0.5, basin_mass=0.9),
    st.tuples(flat("logp0"), BUDGETS, CONFIDENCES, st.sampled_from([1e-9, 0.5, 0.9, 1.0])).map(
        lambda t: {**t[0], "budget": t[1], "confidence": t[2], "basin_mass": t[3]}
    ),
)
E["fe.regime_profile"] = Entry(
    fe.regime_profile,
    lambda: dict(logp0=LOGP, target=CORRECT, budget=4, confidence=0.5, basin_mass=0.9),
    st.tuples(flat("logp0", "target"), BUDGETS, CONFIDENCES).map(
        lambda t: {**t[0], "budget": t[1], "confidence": t[2]}
    ),
)
E["fe.diagnose"] = Entry(
    fe.diagnose,
    lambda: dict(logp0=LOGP, logq=LOGQ, budget=4, confidence=0.5),
    st.tuples(flat("logp0", "logq"), BUDGETS, CONFIDENCES).map(
        lambda t: {**t[0], "budget": t[1], "confidence": t[2]}
    ),
)
E["fe.best_of_n"] = Entry(
    fe.best_of_n,
    lambda: dict(logp0=LOGP, reward=REWARD, n=4),
    st.tuples(flat("logp0", "finite_reward"), BUDGETS).map(lambda t: {**t[0], "n": t[1]}),
    inf="-",
)

# ---- sequences
E["sequences.finite_state"] = Entry(
    sq.finite_state,
    lambda: dict(
        logp=np.stack([LOGP3] * 2)[None].repeat(2, 0),
        transition=np.array([[0, 1, 1], [1, 0, 0]]),
        initial=0,
    ),
    st.tuples(logps(3), logps(3), st.integers(1, 3)).map(
        lambda t: dict(
            logp=np.stack([t[0], t[1]]),
            transition=np.array([[0, 1, 1], [1, 0, 0]]),
            initial=1,
            length=t[2],
        )
    ),
)
E["sequences.from_logits"] = Entry(
    sq.from_logits,
    lambda: dict(
        logits=np.zeros((2, 2, 3)), transition=np.array([[0, 1, 1], [1, 0, 0]]), initial=0
    ),
    st.lists(st.sampled_from([0.0, 1e3, -1e3, 1e300, -INF]), min_size=6, max_size=6)
    .filter(lambda v: any(x > -INF for x in v[:3]) and any(x > -INF for x in v[3:]))
    .map(
        lambda v: dict(
            logits=np.asarray(v).reshape(2, 3),
            transition=np.array([[0, 1, 1], [1, 0, 0]]),
            length=2,
        )
    ),
    post=_tilt_post,
)
E["sequences.iid"] = Entry(
    sq.iid,
    lambda: dict(token_logp=LOGP3, length=3),
    st.tuples(logps(), st.integers(1, 6)).map(lambda t: dict(token_logp=t[0], length=t[1])),
)
E["sequences.markov"] = Entry(
    sq.markov,
    lambda: dict(logp=np.stack([LOGP3] * 3), length=3, context=[0]),
    st.tuples(logps(3), logps(3), logps(3), st.integers(1, 4), st.integers(0, 2)).map(
        lambda t: dict(logp=np.stack(t[:3]), length=t[3], context=[t[4]])
    ),
)
E["sequences.autoregressive"] = Entry(
    sq.autoregressive,
    lambda: dict(conditional=lambda prefix, t: jnp.asarray(LOGP3), vocab=3, length=2),
    st.tuples(logps(3), st.integers(1, 3)).map(
        lambda t: dict(conditional=lambda prefix, i, lp=t[0]: jnp.asarray(lp), vocab=3, length=t[1])
    ),
)
E["sequences.with_end"] = Entry(
    sq.with_end,
    lambda: dict(model=model(), end=2),
    st.tuples(seq_models(), st.integers(0, 2))
    .filter(lambda t: t[1] < t[0].vocab)
    .map(lambda t: dict(model=t[0], end=t[1])),
)
E["sequences.automaton"] = Entry(
    sq.automaton,
    lambda: dict(
        transition=np.array([[0, 1], [1, 1]]), accepting=np.array([False, True]), initial=0
    ),
    st.tuples(masks(2), st.integers(0, 1)).map(
        lambda t: dict(transition=np.array([[0, 1], [1, 0]]), accepting=t[0], initial=t[1])
    ),
)
E["sequences.exact_match"] = Entry(
    sq.exact_match,
    lambda: dict(vocab=3, target=[0, 2]),
    st.lists(st.integers(0, 2), min_size=1, max_size=4).map(lambda t: dict(vocab=3, target=t)),
)
E["sequences.starts_with"] = Entry(
    sq.starts_with,
    lambda: dict(vocab=3, prefix=[1]),
    st.lists(st.integers(0, 2), min_size=0, max_size=4).map(lambda t: dict(vocab=3, prefix=t)),
)
E["sequences.contains"] = Entry(
    sq.contains,
    lambda: dict(vocab=3, pattern=[1, 2]),
    st.lists(st.integers(0, 2), min_size=1, max_size=4).map(lambda t: dict(vocab=3, pattern=t)),
)
E["sequences.count_at_least"] = Entry(
    sq.count_at_least,
    lambda: dict(vocab=3, token=1, m=2),
    st.tuples(st.integers(1, 4), st.integers(0, 5)).map(
        lambda t: dict(vocab=t[0], token=t[0] - 1, m=t[1])
    ),
)
E["sequences.digit_sum_mod"] = Entry(
    sq.digit_sum_mod,
    lambda: dict(vocab=3, modulus=4, residue=1),
    st.tuples(st.integers(1, 4), st.integers(1, 5)).map(
        lambda t: dict(vocab=t[0], modulus=t[1], residue=t[1] - 1)
    ),
)
E["sequences.intersect"] = Entry(
    sq.intersect,
    lambda: dict(first=verifier(), second=sq.contains(3, [0])),
    st.tuples(seq_verifiers(3), seq_verifiers(3)).map(lambda t: dict(first=t[0], second=t[1])),
)
E["sequences.complement"] = Entry(
    sq.complement,
    lambda: dict(verifier=verifier()),
    seq_verifiers(3).map(lambda v: dict(verifier=v)),
)
E["sequences.log_partition"] = Entry(
    sq.log_partition,
    lambda: dict(model=model(), verifier=verifier(), beta=0.5),
    _legal_seq(extra=_beta_kw),
)
E["sequences.tilt"] = Entry(
    sq.tilt,
    lambda: dict(model=model(), verifier=verifier(), beta=0.5),
    _legal_seq(extra=_beta_kw),
    post=_tilt_post,
)
E["sequences.tilt_for_kl"] = Entry(
    sq.tilt_for_kl,
    lambda: dict(model=model(), verifier=verifier(), kl_budget=0.1),
    _legal_seq(
        extra=lambda m, v: st.fixed_dictionaries(
            {"kl_budget": st.sampled_from([0.0, 1e-12, 0.1, 3.0, 1e4])}
        )
    ),
    post=lambda out: (out[0].logp, out[1]),
)
E["sequences.kl"] = Entry(
    sq.kl,
    lambda: dict(model_q=sq.tilt(model(), verifier(), 0.5), model_p=model()),
    _legal_seq(extra=_beta_kw).map(
        lambda d: dict(model_q=sq.tilt(d["model"], d["verifier"], d["beta"]), model_p=d["model"])
    ),
    inf="+",
)
E["sequences.entropy"] = Entry(
    sq.entropy,
    lambda: dict(model=model()),
    seq_models().map(lambda m: dict(model=m)),
    inf="none",
)
E["sequences.expected_energy"] = Entry(
    sq.expected_energy,
    lambda: dict(model=model(), verifier=verifier()),
    _legal_seq(),
)
E["sequences.free_energy"] = Entry(
    sq.free_energy,
    lambda: dict(
        model=sq.tilt(model(), verifier(), 0.5), base=model(), verifier=verifier(), beta=0.5
    ),
    _legal_seq(extra=_beta_kw).map(lambda d: {**d, "base": d["model"]}),
)
E["sequences.log_prob"] = Entry(
    sq.log_prob,
    lambda: dict(model=model(), tokens=np.array([[0, 1, 2], [2, 2, 2]])),
    seq_models().flatmap(
        lambda m: st.lists(
            st.lists(st.integers(0, m.vocab - 1), min_size=m.length, max_size=m.length),
            min_size=1,
            max_size=3,
        ).map(lambda t: dict(model=m, tokens=np.asarray(t)))
    ),
    inf="-",
)
E["sequences.accept_logprob"] = Entry(
    sq.accept_logprob,
    lambda: dict(model=model(), verifier=verifier()),
    _legal_seq(),
    inf="-",
)
E["sequences.pass_at_k"] = Entry(
    sq.pass_at_k,
    lambda: dict(model=model(), verifier=verifier(), k=4),
    _legal_seq(extra=lambda m, v: st.fixed_dictionaries({"k": BUDGETS})),
    inf="none",
)
E["sequences.reach_probability"] = Entry(
    sq.reach_probability,
    lambda: dict(model=model(), verifier=verifier(), budget=4),
    _legal_seq(extra=lambda m, v: st.fixed_dictionaries({"budget": BUDGETS})),
    inf="none",
)
E["sequences.sample"] = Entry(
    sq.sample,
    lambda: dict(key=key(), model=model(), num_samples=5),
    seq_models().map(lambda m: dict(key=key(2), model=m, num_samples=4)),
)
E["sequences.strings"] = Entry(
    sq.strings,
    lambda: dict(vocab=3, length=2),
    st.tuples(st.integers(1, 4), st.integers(0, 4)).map(lambda t: dict(vocab=t[0], length=t[1])),
)
E["sequences.enumerate"] = Entry(
    sq.enumerate,
    lambda: dict(model=model()),
    seq_models().map(lambda m: dict(model=m)),
    inf="-",
)
E["sequences.sequence_energy"] = Entry(
    sq.sequence_energy,
    lambda: dict(verifier=verifier(), tokens=np.array([[0, 1, 2], [2, 2, 2]])),
    model_and_verifier().map(
        lambda mv: dict(verifier=mv[1], tokens=np.asarray(sq.strings(mv[0].vocab, mv[0].length)))
    ),
)
E["sequences.accepts"] = Entry(
    sq.accepts,
    lambda: dict(verifier=verifier(), tokens=np.array([[0, 1, 2], [2, 2, 2]])),
    model_and_verifier().map(
        lambda mv: dict(verifier=mv[1], tokens=np.asarray(sq.strings(mv[0].vocab, mv[0].length)))
    ),
)

# ---- train
E["train.tabular"] = Entry(train.tabular, lambda: dict(logp0=LOGP), flat("logp0"))
E["train.log_linear"] = Entry(
    train.log_linear,
    lambda: dict(logp0=LOGP, features=np.eye(4)[:, :2]),
    flat("logp0").map(lambda d: {**d, "features": np.ones((d["logp0"].shape[-1], 2))}),
)
E["train.shared"] = Entry(
    train.shared,
    lambda: dict(logp0=np.stack([LOGP, LOGQ]), features=np.eye(4)[:, :2]),
    flat("logp0").map(
        lambda d: {"logp0": d["logp0"][None], "features": np.ones((d["logp0"].shape[-1], 2))}
    ),
)
E["train.flat_policy"] = Entry(
    train.flat_policy,
    lambda: dict(init=lambda k: jnp.asarray(LOGP), logprobs=jax.nn.log_softmax),
)
_OBJ_MODES = st.sampled_from(["exact", "sampled"])
E["train.sft"] = Entry(
    train.sft,
    lambda: dict(mode="exact"),
    st.tuples(_OBJ_MODES, st.integers(1, 64), st.sampled_from(["none", "reward"])).map(
        lambda t: dict(mode=t[0], num_samples=t[1], weighting=t[2])
    ),
)
for _name in ("reinforce", "rloo", "grpo", "ppo", "dpo"):
    E[f"train.{_name}"] = Entry(
        getattr(train, _name),
        lambda: dict(mode="sampled", num_samples=4),
        st.tuples(_OBJ_MODES, st.integers(2, 64)).map(lambda t: dict(mode=t[0], num_samples=t[1])),
    )
E["train.all_equal_probability"] = Entry(
    train.all_equal_probability,
    lambda: dict(logq=LOGQ, reward=REWARD, group_size=4),
    st.tuples(flat("logq", "finite_reward"), st.integers(1, 64)).map(
        lambda t: {**t[0], "group_size": t[1]}
    ),
    inf="none",
)
E["train.kl_estimate"] = Entry(
    train.kl_estimate,
    lambda: dict(logq_y=LOGQ, logp0_y=LOGP, kind="k3"),
    st.tuples(flat("logq", "logp0"), st.sampled_from(["k1", "k2", "k3"])).map(
        lambda t: dict(logq_y=t[0]["logq"], logp0_y=t[0]["logp0"], kind=t[1])
    ),
)
E["train.kl_estimator_stats"] = Entry(
    train.kl_estimator_stats,
    lambda: dict(logq=LOGQ, logp0=LOGP),
    flat("logq", "logp0"),
)
E["train.make_trainer"] = Entry(
    train.make_trainer,
    lambda: dict(
        policy=train.tabular(LOGP), objective=train.rloo("exact"), optimizer=optax.sgd(0.1)
    ),
)
E["train.make_mirror_descent"] = Entry(
    train.make_mirror_descent,
    lambda: dict(logp0=LOGP, step_size=0.5),
    st.tuples(flat("logp0"), st.sampled_from([1e-6, 0.5, 1e6])).map(
        lambda t: {**t[0], "step_size": t[1]}
    ),
)
E["train.run"] = Entry(
    train.run,
    lambda: dict(trainer=trainer(), key=key(), batch=batch(), num_steps=3),
    st.sampled_from([1e-6, 0.5, 1e6]).map(
        lambda b: dict(trainer=trainer(), key=key(), batch=train.Batch(REWARD, beta=b), num_steps=2)
    ),
    names=("reward", "beta", "data", "samples"),
    slow=True,
)
E["train.run_seeds"] = Entry(
    train.run_seeds,
    lambda: dict(trainer=trainer(), keys=jax.random.split(key(), 2), batch=batch(), num_steps=2),
    names=("reward", "beta", "data", "samples"),
    slow=True,
)
E["train.check_batch"] = Entry(
    train.check_batch,
    lambda: dict(trainer=trainer(), batch=batch()),
    flat("finite_reward", min_n=4, max_n=4).flatmap(
        lambda d: BETAS.map(
            lambda b: dict(trainer=trainer(), batch=train.Batch(d["reward"], beta=b))
        )
    ),
    names=("reward", "beta", "data", "samples"),
)

# ---- expand
E["expand.best_of_n"] = dataclasses.replace(E["fe.best_of_n"], fn=expand.best_of_n)
E["expand.best_of_n_cost"] = Entry(
    expand.best_of_n_cost,
    lambda: dict(n=4),
    st.one_of(st.integers(1, 10**6), st.sampled_from([1, 2**31, 10**9])).map(lambda n: dict(n=n)),
    inf="none",
)
E["expand.best_of_n_kl"] = Entry(
    expand.best_of_n_kl,
    lambda: dict(logp0=LOGP, reward=REWARD, n=4),
    st.tuples(flat("logp0", "finite_reward"), BUDGETS).map(lambda t: {**t[0], "n": t[1]}),
)
E["expand.best_of_n_kl_bound"] = Entry(
    expand.best_of_n_kl_bound,
    lambda: dict(n=4),
    BUDGETS.map(lambda n: dict(n=n)),
    inf="none",
)
E["expand.best_of_n_temperature"] = Entry(
    expand.best_of_n_temperature,
    lambda: dict(logp0=LOGP, correct=CORRECT, n=4),
    st.tuples(flat("logp0", "correct"), BUDGETS).map(lambda t: {**t[0], "n": t[1]}),
)
E["expand.sample_best_of_n"] = Entry(
    expand.sample_best_of_n,
    lambda: dict(key=key(), logp0=LOGP, reward=REWARD, n=4, num_samples=5),
    st.tuples(flat("logp0", "finite_reward"), st.integers(1, 8)).map(
        lambda t: {**t[0], "key": key(3), "n": t[1], "num_samples": 4}
    ),
)
E["expand.win_rate"] = Entry(
    expand.win_rate,
    lambda: dict(logq=LOGQ, logp=LOGP, reward=REWARD),
    flat("logq", "logp", "finite_reward"),
    inf="none",
)
E["expand.can_accept"] = Entry(
    expand.can_accept,
    lambda: dict(verifier=verifier(), length=3),
    st.tuples(seq_verifiers(3), st.integers(0, 6)).map(lambda t: dict(verifier=t[0], length=t[1])),
)
E["expand.tree_search"] = Entry(
    expand.tree_search,
    lambda: dict(model=model(), verifier=verifier()),
    _legal_seq(),
    post=_enumerate_post,
)
E["expand.sample_tree_search"] = Entry(
    expand.sample_tree_search,
    lambda: dict(key=key(), model=model(), verifier=verifier(), num_samples=4),
)
E["expand.beam_search"] = Entry(
    expand.beam_search,
    lambda: dict(model=model(), verifier=verifier(), width=2),
    _legal_seq(
        extra=lambda m, v: st.fixed_dictionaries(
            {"width": st.integers(1, 4), "prune": st.booleans()}
        )
    ),
)
E["expand.best_of_n_sequence"] = Entry(
    expand.best_of_n_sequence,
    lambda: dict(model=model(), verifier=verifier(), n=3),
    _legal_seq(extra=lambda m, v: st.fixed_dictionaries({"n": st.sampled_from([1, 2, 7, 10**6])})),
    post=_enumerate_post,
)
E["expand.string_index"] = Entry(
    expand.string_index,
    lambda: dict(tokens=np.array([[0, 1, 2], [2, 2, 2]]), vocab=3),
    st.tuples(st.integers(1, 4), st.integers(1, 4)).map(
        lambda t: dict(tokens=np.asarray(sq.strings(t[0], t[1])), vocab=t[0])
    ),
)
E["expand.tool"] = Entry(
    expand.tool,
    lambda: dict(transition=np.array([[0, 0, 0]]), outputs=np.array([[2, 2]]), call_prob=0.3),
    st.sampled_from([0.0, 1e-300, 0.3, 1.0]).map(
        lambda p: dict(transition=np.array([[0, 0, 0]]), outputs=np.array([[2, 2]]), call_prob=p)
    ),
)
E["expand.macro"] = Entry(
    expand.macro,
    lambda: dict(vocab=3, tokens=[2, 2], call_prob=0.3),
    st.tuples(
        st.lists(st.integers(0, 2), min_size=1, max_size=3), st.sampled_from([0.0, 1e-300, 1.0])
    ).map(lambda t: dict(vocab=3, tokens=t[0], call_prob=t[1])),
)
E["expand.prefix_solver"] = Entry(
    expand.prefix_solver,
    lambda: dict(vocab=3, answer=[2, 2, 0], width=2, call_prob=0.5),
    st.tuples(st.integers(1, 3), st.sampled_from([0.0, 0.5, 1.0])).map(
        lambda t: dict(vocab=3, answer=[2, 2, 0], width=t[0], call_prob=t[1])
    ),
)
E["expand.augment"] = Entry(
    expand.augment,
    lambda: dict(model=model(), tool_=expand.macro(3, [2, 2], 0.3)),
    st.tuples(seq_models(), st.sampled_from([0.0, 0.3, 1.0]))
    .filter(lambda t: t[0].vocab == 3)
    .map(lambda t: dict(model=t[0], tool_=expand.macro(3, [2], t[1]))),
)
E["expand.lift"] = Entry(expand.lift, lambda: dict(verifier=verifier(), tool_model=tool_model()))
E["expand.unmark"] = Entry(
    expand.unmark,
    lambda: dict(tokens=np.array([[0, 3, 2], [2, 2, 2]]), vocab=3),
)
E["expand.tool_logprob"] = Entry(
    expand.tool_logprob,
    lambda: dict(tool_model=tool_model(), tokens=np.array([[0, 1, 2], [2, 2, 2]])),
    inf="-",
)
E["expand.tool_distribution"] = Entry(
    expand.tool_distribution,
    lambda: dict(tool_model=tool_model()),
    inf="-",
)
E["expand.expected_calls"] = Entry(
    expand.expected_calls,
    lambda: dict(tool_model=tool_model()),
    inf="none",
)
E["expand.first_error"] = Entry(
    expand.first_error,
    lambda: dict(verifier=sq.exact_match(3, [0, 1, 2]), tokens=np.array([[0, 1, 2], [0, 2, 2]])),
    model_and_verifier().map(
        lambda mv: dict(verifier=mv[1], tokens=np.asarray(sq.strings(mv[0].vocab, mv[0].length)))
    ),
)
E["expand.retry"] = Entry(
    expand.retry,
    lambda: dict(model=model(), verifier=verifier(), turns=2),
    _legal_seq(
        extra=lambda m, v: st.fixed_dictionaries(
            {"turns": st.integers(1, 3), "exclude": st.booleans()}
        )
    ),
)
E["expand.sample_retry"] = Entry(
    expand.sample_retry,
    lambda: dict(key=key(), model=model(), verifier=verifier(), turns=2, num_samples=4),
)
E["expand.mix"] = Entry(
    expand.mix,
    lambda: dict(logp0=LOGP, logp_new=LOGQ, weight=0.3),
    st.tuples(flat("logp0", "logp_new"), st.sampled_from([0.0, 1e-300, 0.3, 1.0])).map(
        lambda t: {**t[0], "weight": t[1]}
    ),
    inf="-",
)
E["expand.distill"] = Entry(
    expand.distill,
    lambda: dict(logp0=LOGP, logp_teacher=LOGQ, weight=0.3),
    st.tuples(flat("logp0", "logp_teacher"), st.sampled_from([0.0, 1e-300, 0.3, 1.0])).map(
        lambda t: {**t[0], "weight": t[1]}
    ),
    inf="-",
)
E["expand.elicitation_cost"] = Entry(
    expand.elicitation_cost,
    lambda: dict(logp=LOGP, target=CORRECT, budget=4),
    st.tuples(flat("logp", "target"), BUDGETS, CONFIDENCES)
    .filter(lambda t: t[0]["target"].any())
    .map(lambda t: {**t[0], "budget": t[1], "confidence": t[2]}),
)
E["expand.new_information"] = Entry(
    expand.new_information,
    lambda: dict(logp0=LOGP, logp_new=LOGQ, weight=0.3, target=CORRECT, budget=4),
    st.tuples(flat("logp0", "logp_new", "target"), BUDGETS, st.sampled_from([0.0, 0.3, 1.0]))
    .filter(lambda t: t[0]["target"].any())
    .map(lambda t: {**t[0], "budget": t[1], "weight": t[2]}),
)
E["expand.sequence_policy"] = Entry(
    expand.sequence_policy,
    lambda: dict(model=model()),
    post=lambda out: out[0].logprobs(out[0].init(key())),
)


def _ei_example():
    tr, to_model = ei_trainer()
    return dict(
        key=key(),
        trainer=tr,
        to_model=to_model,
        verifier=sq.count_at_least(3, 2, 1),
        rounds=1,
        searches=1,
        sft_steps=1,
        budget=8,
    )


E["expand.expert_iteration"] = Entry(expand.expert_iteration, _ei_example, slow=True)

if hasattr(sq, "check_model"):
    E["sequences.check_model"] = Entry(
        sq.check_model,
        lambda: dict(model=model()),
        seq_models().map(lambda m: dict(model=m)),
    )
    E["sequences.check_verifier"] = Entry(
        sq.check_verifier,
        lambda: dict(verifier=verifier(), vocab=3),
        seq_verifiers(3).map(lambda v: dict(verifier=v, vocab=3)),
    )
    E["sequences.check_tokens"] = Entry(
        sq.check_tokens,
        lambda: dict(tokens=np.array([[0, 1, 2]]), vocab=3, length=3),
    )
    E["sequences.space_size"] = Entry(
        sq.space_size,
        lambda: dict(vocab=3, length=2),
        st.tuples(st.integers(1, 10**9), st.integers(0, 64)).map(
            lambda t: dict(vocab=t[0], length=t[1])
        ),
    )

ENTRIES = E

# --------------------------------------------------------------------------- types and constants
TYPES: dict[str, tuple[Any, str, Callable[[Any], Any]]] = {
    # name: (the public object, the entry whose result holds it, how to get it from the result)
    "fe.Regime": (fe.Regime, "fe.regimes", lambda out: fe.Regime(int(np.asarray(out).ravel()[0]))),
    "fe.Diagnosis": (fe.Diagnosis, "fe.diagnose", lambda out: out),
    "sequences.SequenceModel": (sq.SequenceModel, "sequences.iid", lambda out: out),
    "sequences.Automaton": (sq.Automaton, "sequences.automaton", lambda out: out),
    "train.Policy": (train.Policy, "train.tabular", lambda out: out),
    "train.SharedParams": (train.SharedParams, "train.shared", lambda out: out.init(key())),
    "train.Batch": (train.Batch, "train.check_batch", lambda out: out),
    "train.Objective": (train.Objective, "train.rloo", lambda out: out),
    "train.MODES": (train.MODES, "train.rloo", lambda out: out.mode),
    "train.KL_ESTIMATORS": (train.KL_ESTIMATORS, "train.kl_estimate", lambda out: "k3"),
    "train.KLEstimatorStats": (train.KLEstimatorStats, "train.kl_estimator_stats", lambda out: out),
    "train.TrainState": (train.TrainState, "train.run", lambda out: out[0]),
    "train.Info": (train.Info, "train.run", lambda out: out[1]),
    "train.Trainer": (train.Trainer, "train.make_trainer", lambda out: out),
    "expand.SearchCost": (expand.SearchCost, "expand.best_of_n_cost", lambda out: out),
    "expand.SequenceCost": (expand.SequenceCost, "expand.tree_search", lambda out: out[1]),
    "expand.Beams": (expand.Beams, "expand.beam_search", lambda out: out),
    "expand.Tool": (expand.Tool, "expand.macro", lambda out: out),
    "expand.ToolModel": (expand.ToolModel, "expand.augment", lambda out: out),
    "expand.Retry": (expand.Retry, "expand.retry", lambda out: out),
    "expand.ElicitationCost": (expand.ElicitationCost, "expand.elicitation_cost", lambda out: out),
    "expand.NewInformation": (expand.NewInformation, "expand.new_information", lambda out: out),
    "expand.ExpertIteration": (
        expand.ExpertIteration,
        "expand.expert_iteration",
        lambda out: out[1],
    ),
}
if hasattr(train, "TrainingDiverged"):
    # an exception: what ``run`` raises when training produces NaN
    TYPES["train.TrainingDiverged"] = (train.TrainingDiverged, None, lambda: _diverged())


def _refuses(fn, kwargs) -> Outcome:
    outcome = call(fn, kwargs)
    return Outcome("wrong", "accepted a size past the limit") if outcome.kind == "ok" else outcome


#: public constants: name -> a check that the limit is enforced where it is documented
CONSTANTS: dict[str, Callable[[], Outcome]] = {
    "sequences.MAX_ENUMERATE": lambda: _refuses(
        sq.strings, dict(vocab=2, length=int(math.log2(sq.MAX_ENUMERATE)) + 1)
    ),
    "sequences.MAX_PREFIX_STATES": lambda: _refuses(
        sq.autoregressive,
        dict(
            conditional=lambda prefix, t: jnp.zeros(2) - math.log(2),
            vocab=2,
            length=int(math.log2(sq.MAX_PREFIX_STATES)) + 1,
        ),
    ),
}


for _name, _call in {
    "MAX_VOCAB": lambda: _refuses(sq.count_at_least, dict(vocab=sq.MAX_VOCAB + 1, token=0, m=1)),
    "MAX_LENGTH": lambda: _refuses(sq.iid, dict(token_logp=LOGP3, length=sq.MAX_LENGTH + 1)),
    # (m + 1) * vocab table entries, each factor within its own limit
    "MAX_TABLE": lambda: _refuses(sq.count_at_least, dict(vocab=2**12, token=0, m=2**16)),
}.items():
    if hasattr(sq, _name):
        CONSTANTS[f"sequences.{_name}"] = _call


def public_names() -> set[str]:
    """Every public name of the library (modules excluded), as ``module.NAME``."""
    import inspect

    out = set()
    for prefix, module in (("fe", fe), ("sequences", sq), ("train", train), ("expand", expand)):
        for name in module.__all__:
            if not inspect.ismodule(getattr(module, name)):
                out.add(f"{prefix}.{name}")
    return out


# --------------------------------------------------------------------------- bad values
def _nan_like(value):
    arr = np.array(value, dtype=np.float64, copy=True)
    if arr.size == 0:
        return np.array([NAN])
    arr.flat[0] = NAN
    return arr


def _array_like(value) -> bool:
    return isinstance(value, (np.ndarray, jax.Array, list)) and not (
        isinstance(value, jax.Array) and jax.dtypes.issubdtype(value.dtype, jax.dtypes.prng_key)
    )


#: label -> value (or a function of the legal value it replaces). Tried in this process.
BAD: dict[str, Any] = {
    "None": None,
    "str": "abc",
    "complex": 1 + 2j,
    "bool": True,
    "nan": NAN,
    "inf": INF,
    "-inf": -INF,
    "-1": -1,
    "0": 0,
    "2.5": 2.5,
    "1e300": 1e300,
    "empty": np.zeros(0),
    "nan-array": _nan_like,
    "complex-array": lambda v: (
        np.asarray(v, dtype=np.float64) + 1j if _array_like(v) else np.array([1j])
    ),
    "mismatched": np.zeros((2, 7)),
    "float-tokens": lambda v: np.asarray(v) + 0.5 if _array_like(v) else np.array([0.5]),
    "keys": jax.random.split(key(), 3),
    "object": object(),
    "ragged": [[1, 2], [3]],
}
#: The bad values tried under the quick ``ci`` profile: one of each kind (a type that is no
#: number, a non-finite number, a negative or fractional size, empty and mismatched arrays, a
#: batch of keys). Longer profiles try every value of ``BAD``.
CI_LABELS = (
    "None",
    "str",
    "complex",
    "nan",
    "-1",
    "2.5",
    "empty",
    "nan-array",
    "mismatched",
    "keys",
)

#: label -> size, tried in a child process for every argument whose legal value is an int.
HUGE: dict[str, int] = {"1e18": 10**18, "2^70": 2**70, "-1e18": -(10**18)}
#: Under the quick ``ci`` profile: the sizes that abort (a static shape XLA cannot hold) and
#: overflow (past int64); negative sizes are tried in process (``-1``).
CI_HUGE = ("1e18", "2^70")


def bad_value(label: str, legal: Any) -> Any:
    value = BAD[label]
    try:
        if callable(value) and not isinstance(value, type) and label != "object":
            return value(legal)
    except (TypeError, ValueError):
        return None
    return value


def grid_cases(entry_name: str, labels=None) -> list[tuple[str, str]]:
    """(argument, bad label) pairs tried in this process for one entry."""
    entry = ENTRIES[entry_name]
    return [(arg, label) for arg in entry.example() for label in (labels or BAD)]


def huge_cases(labels=None) -> list[str]:
    out = []
    for name, entry in ENTRIES.items():
        for arg, value in entry.example().items():
            if isinstance(value, int) and not isinstance(value, bool):
                out += [f"huge:{name}:{arg}:{label}" for label in (labels or HUGE)]
    return out


def run_grid(entry_name: str, arg: str, label: str) -> Outcome:
    entry = ENTRIES[entry_name]
    kwargs = entry.example()
    kwargs[arg] = bad_value(label, kwargs[arg])
    return entry.call(kwargs)


# --------------------------------------------------------------------------- regressions
def _close(out, expected, atol=1e-12) -> Outcome:
    got = np.asarray(out, dtype=np.float64)
    if got.shape != np.shape(expected) or not np.allclose(got, expected, rtol=1e-9, atol=atol):
        return Outcome("wrong", f"got {got.tolist()}, expected {np.asarray(expected).tolist()}")
    return Outcome("ok")


def _expect(fn, kwargs, *, check=None, inf="any", names=None) -> Outcome:
    """Run a call by the contract, then, when it returned, compare with the right answer."""
    result: dict = {}

    def keep(out):
        result["out"] = out
        return out

    outcome = call(fn, kwargs, inf=inf, post=keep, names=names)
    if outcome.kind == "ok" and check is not None:
        return check(result["out"])
    return outcome


def _must_refuse(fn, kwargs, names=None) -> Outcome:
    """A call whose input is invalid: it must raise a clear error, not return."""
    outcome = _expect(fn, kwargs, names=names)
    if outcome.kind == "ok":
        return Outcome("wrong", "accepted an invalid input instead of raising")
    return outcome


def _nan_reward(logq):
    return jnp.full(logq.shape[-1:], jnp.nan)


def _bon_p0():
    logp0 = np.asarray(fe.normalize(np.array([0.0, -1000.0])))
    return _expect(
        fe.best_of_n,
        dict(logp0=logp0, reward=np.array([0.0, 1.0]), n=1),
        check=lambda out: _close(out, logp0),
    )


def _kl_stats_tiny():
    logq = _normalized([0.0, -700.0, -1e4])
    logp0 = _normalized([0.0, -1e4, -700.0])
    return _expect(train.kl_estimator_stats, dict(logq=logq, logp0=logp0))


def _frontier_one_behavior():
    def check(out):
        kl = np.asarray(out[1] if len(out) == 2 else out)
        return Outcome("ok") if np.all(kl >= 0) else Outcome("wrong", f"negative KL {kl.tolist()}")

    return _expect(
        fe.frontier,
        dict(logp0=np.array([0.0]), reward=np.array([1.0, 2.0, 3.0, 4.0]), betas=np.array([0.5])),
        check=check,
    )


def _tilt_for_kl_limit():
    # thorough-profile failure: at kl_budget equal to the limit KL, beta must stay finite
    logp0 = _normalized([0.0, -983.0])
    reward = np.array([0.0, 1.0])
    limit = float(fe.kl(_normalized([-INF, 0.0]), logp0))

    def check(out):
        beta = float(np.asarray(out[1]))
        return (
            Outcome("ok") if np.isfinite(beta) or beta == 0 else Outcome("wrong", f"beta = {beta}")
        )

    return _expect(fe.tilt_for_kl, dict(logp0=logp0, reward=reward, kl_budget=limit), check=check)


def _pass_at_k_estimate_big():
    n = np.full(100_000, 10**6)
    c = np.arange(100_000) * 10
    return _expect(fe.pass_at_k_estimate, dict(n=n, c=c, k=10), inf="none")


def _raised(fn):
    try:
        fn()
    except Exception as err:  # the exception itself is what is checked
        return err
    return None


def _train_with(learning_rate=0.1, reward_fn=None):
    """Build a trainer and run it: what a user does, NaN learning rate or reward included."""
    mode = "exact" if reward_fn is None else "sampled"
    objective = train.reinforce(
        mode, kl="exact" if reward_fn is None else "k1", reward_fn=reward_fn
    )
    tr = train.make_trainer(train.tabular(LOGP), objective, optax.sgd(learning_rate))
    return train.run(tr, key(), batch(), 3)


def _run_nan_lr_call():
    return _train_with(learning_rate=NAN)


def _diverged():
    return _raised(lambda: _train_with(reward_fn=lambda y, r: r * NAN))


def _run_nan_lr():
    return _expect(_train_with, dict(learning_rate=NAN), names=["learning_rate", "optimizer"])


def _run_nan_reward_fn():
    return _expect(_train_with, dict(reward_fn=lambda y, r: r * NAN), names=["reward_fn"])


R: dict[str, Callable[[], Outcome]] = {
    # process aborts (run isolated)
    "abort-fe.sample": lambda: _expect(fe.sample, dict(key=key(), logp=LOGP, num_samples=10**18)),
    "abort-train.run": lambda: _expect(
        train.run, dict(trainer=trainer(), key=key(), batch=batch(), num_steps=10**18)
    ),
    "abort-sequences.iid": lambda: _expect(sq.iid, dict(token_logp=LOGP3, length=10**18)),
    "abort-expand.retry": lambda: _expect(
        expand.retry, dict(model=model(), verifier=verifier(), turns=10**18)
    ),
    "abort-expand.expert_iteration": lambda: _expect(
        expand.expert_iteration, {**_ei_example(), "rounds": 10**18}
    ),
    # hangs (run isolated)
    "hang-sequences.strings": lambda: _expect(sq.strings, dict(vocab=2, length=10**18)),
    "hang-sequences.contains": lambda: _expect(sq.contains, dict(vocab=10**8, pattern=[0, 1])),
    "hang-pass_at_k_estimate": _pass_at_k_estimate_big,
    # wrong answers on legal input
    "wrong-best_of_n-support": _bon_p0,
    "wrong-kl_estimator_stats-tiny": _kl_stats_tiny,
    "wrong-tree_search-1e4": lambda: _expect(
        expand.tree_search,
        dict(model=sq.iid(_normalized([0.0, -1e4, -1e4]), 3), verifier=sq.count_at_least(3, 1, 1)),
    ),
    "wrong-frontier-one-behavior": _frontier_one_behavior,
    "wrong-tilt_for_kl-limit": _tilt_for_kl_limit,
    # silent NaN
    "nan-tilt_for_kl-1e308": lambda: _expect(
        fe.tilt_for_kl, dict(logp0=LOGP, reward=np.array([1e308, -1e308, 0.0, 1.0]), kl_budget=0.1)
    ),
    "nan-sequences.tilt-1e308": lambda: _expect(
        sq.tilt,
        dict(model=model(), verifier=None, beta=0.5, step_energy=np.array([1e308, -1e308, 0.0])),
    ),
    "nan-sequences.log_partition-subnormal": lambda: _expect(
        sq.log_partition, dict(model=model(), verifier=verifier(), beta=5e-324)
    ),
    "nan-normalize-1e308": lambda: _expect(
        fe.normalize,
        dict(logits=np.array([1e308, 1e308])),
        check=lambda out: _close(out, np.log([0.5, 0.5])),
    ),
    "wrong-best_of_n_cost-1e19": lambda: _expect(
        expand.best_of_n_cost,
        dict(n=10**19),
        check=lambda out: (
            Outcome("ok")
            if all(float(np.asarray(x)) >= 0 for x in out)
            else Outcome("wrong", f"negative count {out}")
        ),
    ),
    "nan-train.run-nan-lr": _run_nan_lr,
    "nan-train.run-nan-reward_fn": _run_nan_reward_fn,
    # raw exceptions
    "raw-retry-None-verifier": lambda: _expect(
        expand.retry, dict(model=model(), verifier=None, turns=2)
    ),
    "raw-accepts-empty-tokens": lambda: _expect(
        sq.accepts, dict(verifier=verifier(), tokens=np.zeros((0, 3), int))
    ),
    "raw-iid-2^70": lambda: _expect(sq.iid, dict(token_logp=LOGP3, length=2**70)),
    "raw-sample-keys": lambda: _expect(
        fe.sample, dict(key=jax.random.split(key(), 2), logp=LOGP, num_samples=3)
    ),
    "raw-from_logits-name": lambda: _must_refuse(
        sq.from_logits,
        dict(logits=np.full((2, 1, 3), NAN), transition=np.zeros((1, 3), int)),
        names=["logits"],
    ),
    # invalid input accepted
    "accepted-complex-mask": lambda: _must_refuse(
        fe.pass_at_k, dict(logp=LOGP, correct=np.array([1, 0, 1, 0]) + 0j, k=2)
    ),
    "accepted-kl_estimate-probabilities": lambda: _must_refuse(
        train.kl_estimate, dict(logq_y=np.exp(LOGQ), logp0_y=np.exp(LOGP))
    ),
    "accepted-float-tokens": lambda: _must_refuse(
        sq.log_prob, dict(model=model(), tokens=np.array([[0.7, 1.2, 2.9]]))
    ),
    "accepted-two-keys-run": lambda: _must_refuse(
        train.run,
        dict(trainer=trainer(), key=jax.random.split(key(), 2), batch=batch(), num_steps=2),
    ),
}
REGRESSIONS = R
#: regressions that could abort or hang the interpreter: run in the child process
ISOLATED_REGRESSIONS = [n for n in R if n.startswith(("abort-", "hang-", "raw-iid-2^70"))] + [
    "wrong-best_of_n_cost-1e19"
]


def run_case(case: str) -> Outcome:
    """Run a case by id: ``huge:ENTRY:ARG:LABEL``, ``grid:ENTRY:ARG:LABEL`` or ``reg:NAME``."""
    kind, rest = case.split(":", 1)
    if kind == "reg":
        return REGRESSIONS[rest]()
    name, arg, label = rest.rsplit(":", 2)
    if kind == "huge":
        entry = ENTRIES[name]
        kwargs = entry.example()
        kwargs[arg] = HUGE[label]
        return entry.call(kwargs)
    return run_grid(name, arg, label)
