r"""Evaluation data simulated from exact models, with the exact answers beside it.

Every function here draws what a real evaluation would record — ``n`` samples per prompt from a
base and a trained model, each judged by a verifier — from a model whose every quantity the
library computes exactly. It returns the sample counts (:class:`~freeenergy.empirical.Counts`),
optionally the per-sample records (answers, log-probabilities under both models), **and the exact
per-prompt success probabilities** $p_i = P(\text{correct} \mid \text{prompt } i)$ of both
models, so every estimator of :mod:`freeenergy.empirical` can be compared with the truth:
pass@k with $1-(1-p_i)^k$, verdicts with ``fe.accessible_support``, Good–Turing missing mass with
the exact answer distribution.

Three families of exact models:

* :func:`flat` / :func:`beta_prompts` — per-prompt success probabilities (e.g. drawn from a Beta
  law), the trained model given by an exact transformation of them: :func:`tilt_success` (the
  per-prompt Gibbs tilt by the verifier reward, $q = p e^{1/\beta} / (1 - p + p e^{1/\beta})$,
  which raises every prompt) or :func:`sharpen_success` (one sharpening exponent shared by every
  prompt, $q = p^\gamma / (p^\gamma + (1-p)^\gamma)$, which raises the easy prompts and drains the
  hard ones);
* :func:`categorical` — per-prompt distributions over a finite set of answers, a correct mask, and
  samples of answer indices; :func:`passk_crossover` builds it from the ``passk_crossover``
  experiment (base ``p0`` and the RL policy whose parameter is shared across prompts);
* :func:`sequences` — per-prompt i.i.d.-token sequence models (``freeenergy.sequences``), a
  verifier automaton and the exact KL-RL tilt ``seq.tilt``; success probability
  $\exp(\texttt{seq.accept\_logprob})$, samples from ``seq.sample``, correctness from
  ``seq.accepts`` and the sampled strings as answers.

Everything is deterministic given the required ``key``. :func:`write_csv` and :func:`write_jsonl`
write the two input formats of :func:`freeenergy.empirical.load`, atomically.

>>> import jax, numpy as np
>>> from freeenergy.empirical import simulate
>>> p = np.array([0.5, 0.1, 0.0])
>>> sim = simulate.flat(jax.random.key(0), p, simulate.tilt_success(p, beta=1.0), 8)
>>> sim.base.n.tolist(), sim.p_trained.round(4).tolist()
([8, 8, 8], [0.7311, 0.232, 0.0])
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks
from .. import sequences as seq
from ..distributions import normalize, sample
from ._data import Counts, Samples

__all__ = [
    "Simulation",
    "beta_prompts",
    "tilt_success",
    "sharpen_success",
    "flat",
    "categorical",
    "passk_crossover",
    "sequences",
    "true_reachable",
    "true_verdicts",
    "write_csv",
    "write_jsonl",
    "MAX_SAMPLES",
    "MAX_PROMPTS",
]

#: Largest number of samples per prompt a simulation draws.
MAX_SAMPLES = 1_000_000
#: Largest number of prompts a simulation draws.
MAX_PROMPTS = 100_000
#: Largest number of per-sample records (prompts x samples) a simulation keeps.
MAX_RECORDS = 10_000_000
#: Largest answer space whose exact distribution :func:`sequences` lists (``vocab ** length``).
MAX_ANSWERS = 2**16
#: Longest strings :func:`sequences` draws (tokens).
MAX_LENGTH = 4096


@dataclasses.dataclass(frozen=True)
class Simulation:
    """Simulated evaluation data and the exact quantities it was drawn from.

    * ``base``, ``trained`` — per-prompt counts (:class:`~freeenergy.empirical.Counts`), with
      the per-sample records in ``.samples`` when the simulation kept them;
    * ``p_base``, ``p_trained`` — exact success probabilities per prompt, ``(num_prompts,)``;
    * ``answer_logp_base``, ``answer_logp_trained`` — exact log-probabilities of every answer,
      ``(num_prompts, num_answers)``, with the answer strings in ``answers`` (or ``None`` when
      the answer space is too large to list); ``answer_correct`` marks the correct ones.
    """

    base: Counts
    trained: Counts
    p_base: np.ndarray
    p_trained: np.ndarray
    answers: np.ndarray | None = None
    answer_logp_base: np.ndarray | None = None
    answer_logp_trained: np.ndarray | None = None
    answer_correct: np.ndarray | None = None

    @property
    def prompts(self) -> list:
        return list(self.base.prompts)


# ----------------------------------------------------------------------------- helpers
def _counts(n: np.ndarray, correct: np.ndarray, prompts: list[str]) -> Counts:
    return Counts(np.asarray(n, np.int64), np.asarray(correct, np.int64), tuple(prompts))


def _prompt_ids(num_prompts: int) -> list[str]:
    width = max(3, len(str(num_prompts - 1)))
    return [f"p{i:0{width}d}" for i in range(num_prompts)]


def _probabilities(p: Any, name: str) -> np.ndarray:
    if isinstance(p, (str, bytes)) or p is None:
        raise TypeError(f"`{name}` must be a 1-D array of probabilities, got {p!r}.")
    try:
        arr = np.asarray(p, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be a 1-D array of probabilities, got {p!r}.") from None
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(
            f"`{name}` must be a non-empty 1-D array (one probability per prompt), got shape "
            f"{arr.shape}."
        )
    if arr.size > MAX_PROMPTS:
        raise ValueError(f"`{name}` has {arr.size} prompts, above MAX_PROMPTS = {MAX_PROMPTS}.")
    bad = ~np.isfinite(arr) | (arr < 0) | (arr > 1)
    if np.any(bad):
        i = int(np.argmax(bad))
        raise ValueError(f"`{name}` must hold probabilities in [0, 1], got {arr[i]!r} at {i}.")
    return arr


def _num_samples(num_samples: Any, num_prompts: int) -> int:
    n = _checks.integer(num_samples, "num_samples", minimum=1)
    if n > MAX_SAMPLES:
        raise ValueError(f"`num_samples` = {n} is above MAX_SAMPLES = {MAX_SAMPLES}.")
    return n


def _records_ok(num_prompts: int, n: int) -> None:
    if num_prompts * n > MAX_RECORDS:
        raise ValueError(
            f"{num_prompts} prompts x {n} samples = {num_prompts * n} records is above "
            f"MAX_RECORDS = {MAX_RECORDS}; draw fewer samples or ask for counts only."
        )


def _binary_logp(p: np.ndarray) -> jax.Array:
    """``(P, 2)`` log-distribution (incorrect, correct) of success probabilities ``p``."""
    with np.errstate(divide="ignore"):
        return jnp.asarray(np.stack([np.log1p(-p), np.log(p)], axis=-1))


# ----------------------------------------------------------------------------- flat models
def beta_prompts(key: jax.Array, num_prompts: int, a: float, b: float) -> np.ndarray:
    r"""Per-prompt success probabilities drawn i.i.d. from the law $\mathrm{Beta}(a, b)$.

    Returns a float64 array ``(num_prompts,)``. Its population pass@k is exact:
    $E[1-(1-p)^k] = 1 - B(a, b+k)/B(a, b)$.

    >>> import jax
    >>> beta_prompts(jax.random.key(0), 3, 0.5, 2.0).shape
    (3,)
    """
    key = _checks.key(key)
    num = _checks.integer(num_prompts, "num_prompts", minimum=1)
    if num > MAX_PROMPTS:
        raise ValueError(f"`num_prompts` = {num} is above MAX_PROMPTS = {MAX_PROMPTS}.")
    a = _checks.scalar(a, "a")
    b = _checks.scalar(b, "b")
    for name, v in (("a", a), ("b", b)):
        if not (0 < v < math.inf):
            raise ValueError(f"`{name}` (a Beta shape parameter) must be finite and > 0, got {v}.")
    return np.asarray(jax.random.beta(key, a, b, (num,), dtype=jnp.float64), dtype=np.float64)


def tilt_success(p: Any, beta: float) -> np.ndarray:
    r"""Success probability after the exact per-prompt Gibbs tilt by the verifier's reward.

    The tilt $q \propto p_0 e^{r/\beta}$ with $r = 1$ on correct answers moves each prompt's
    success mass from $p$ to $p e^{1/\beta} / (1 - p + p e^{1/\beta})$ (computed by
    ``fe.gibbs`` on the two-outcome model). It raises every prompt with $0 < p < 1$ and keeps
    $p = 0$ at 0 (a tilt never leaves the support).

    >>> round(float(tilt_success([0.1], 1.0)[0]), 6)  # 0.1 e / (0.9 + 0.1 e)
    0.231969
    """
    from ..free_energy import gibbs

    p = _probabilities(p, "p")
    beta = _checks.scalar(beta, "beta")
    if not 0 < beta < math.inf:
        raise ValueError(f"`beta` must be finite and > 0, got {beta}.")
    energy = jnp.asarray([0.0, -1.0])
    return np.exp(np.asarray(gibbs(_binary_logp(p), energy, beta))[:, 1])


def sharpen_success(p: Any, exponent: float) -> np.ndarray:
    r"""Success probability after one sharpening exponent $\gamma$ shared by every prompt.

    Each prompt's two-outcome model is raised to the power $\gamma$ and renormalized
    (``fe.normalize(γ·log p)``): $q = p^\gamma / (p^\gamma + (1-p)^\gamma)$. With $\gamma > 1$
    prompts with $p > 1/2$ gain and prompts with $p < 1/2$ lose: the shared-parameter policy
    that wins pass@1 and loses pass@k at large k.

    >>> sharpen_success([0.5, 0.8, 0.2], 2.0).round(4).tolist()
    [0.5, 0.9412, 0.0588]
    """
    p = _probabilities(p, "p")
    gamma = _checks.scalar(exponent, "exponent")
    if not 0 < gamma < math.inf:
        raise ValueError(f"`exponent` must be finite and > 0, got {gamma}.")
    logp = _binary_logp(p)
    # 0 * log 0 = 0: a zero-probability outcome stays at zero mass, never NaN
    scaled = jnp.where(logp == -jnp.inf, -jnp.inf, gamma * logp)
    return np.exp(np.asarray(normalize(scaled))[:, 1])


def flat(
    key: jax.Array,
    p_base: Any,
    p_trained: Any,
    num_samples: int,
    *,
    records: bool = False,
) -> Simulation:
    r"""Draw ``num_samples`` verdicts per prompt from exact success probabilities.

    ``correct_i ~ Binomial(num_samples, p_i)`` independently for each prompt and model. With
    ``records=True`` the individual Bernoulli draws are kept as :class:`Samples` (no answers).
    Prompt ids are ``p000, p001, ...``.

    >>> import jax, numpy as np
    >>> sim = flat(jax.random.key(1), np.array([1.0, 0.0]), np.array([1.0, 0.5]), 4)
    >>> sim.base.correct.tolist()
    [4, 0]
    """
    key = _checks.key(key)
    pb = _probabilities(p_base, "p_base")
    pt = _probabilities(p_trained, "p_trained")
    if pb.shape != pt.shape:
        raise ValueError(
            f"`p_base` and `p_trained` must have one probability per prompt each, got shapes "
            f"{pb.shape} and {pt.shape}."
        )
    n = _num_samples(num_samples, pb.size)
    ids = _prompt_ids(pb.size)
    key_base, key_trained = jax.random.split(key)
    if not records:
        cb = np.asarray(jax.random.binomial(key_base, n, jnp.asarray(pb)), dtype=np.float64)
        ct = np.asarray(jax.random.binomial(key_trained, n, jnp.asarray(pt)), dtype=np.float64)
        full = np.full(pb.size, n, np.int64)
        return Simulation(_counts(full, np.rint(cb), ids), _counts(full, np.rint(ct), ids), pb, pt)
    _records_ok(pb.size, n)
    sb = np.asarray(jax.random.bernoulli(key_base, jnp.asarray(pb)[:, None], (pb.size, n)))
    st = np.asarray(jax.random.bernoulli(key_trained, jnp.asarray(pt)[:, None], (pt.size, n)))
    index = np.repeat(np.arange(pb.size), n)
    return Simulation(
        Counts.from_samples(ids, Samples(index, sb.reshape(-1))),
        Counts.from_samples(ids, Samples(index, st.reshape(-1))),
        pb,
        pt,
    )


def true_reachable(p: Any, budget: Any, confidence: float = 0.5) -> np.ndarray:
    r"""Exact reachability of each prompt at ``budget``: $1 - (1-p_i)^N \ge c$.

    Computed by ``fe.accessible_support`` on each prompt's two-outcome model (incorrect,
    correct), i.e. $p_i \ge 1 - (1-c)^{1/N}$. Returns ``(num_prompts,)`` bool.

    >>> true_reachable([0.5, 0.01, 0.0], 8).tolist()  # threshold 1 - 0.5^(1/8) = 0.083
    [True, False, False]
    """
    from ..support import accessible_support

    p = _probabilities(p, "p")
    return np.asarray(accessible_support(_binary_logp(p), budget, confidence))[:, 1]


def true_verdicts(p_base: Any, p_trained: Any, budget: Any, confidence: float = 0.5) -> np.ndarray:
    r"""The exact per-prompt verdict that ``em.diagnose`` estimates, from the true probabilities.

    With $R$ = :func:`true_reachable` at ``budget``: ``creation`` when the base misses the
    prompt and the trained model reaches it; ``lost`` for the reverse; ``elicitation`` when both
    reach it and $p_\text{trained} > p_\text{base}$; ``unchanged`` otherwise (both miss it, or
    both reach it without a gain). Never ``undetermined``: the probabilities are known.

    >>> true_verdicts([0.5, 0.01, 0.5, 0.0], [0.6, 0.2, 0.01, 0.0], 8).tolist()
    ['elicitation', 'creation', 'lost', 'unchanged']
    """
    pb = _probabilities(p_base, "p_base")
    pt = _probabilities(p_trained, "p_trained")
    if pb.shape != pt.shape:
        raise ValueError(
            f"`p_base` and `p_trained` must have the same shape, got {pb.shape} and {pt.shape}."
        )
    rb = true_reachable(pb, budget, confidence)
    rt = true_reachable(pt, budget, confidence)
    out = np.full(pb.shape, "unchanged", dtype="<U12")
    out[rb & rt & (pt > pb)] = "elicitation"
    out[~rb & rt] = "creation"
    out[rb & ~rt] = "lost"
    return out


# ----------------------------------------------------------------------------- answers
def _success(logp: np.ndarray, correct: np.ndarray) -> np.ndarray:
    return np.sum(np.where(correct, np.exp(logp), 0.0), axis=-1)


def categorical(
    key: jax.Array,
    logp_base: Any,
    logp_trained: Any,
    correct: Any,
    num_samples: int,
    *,
    answers: Sequence[str] | None = None,
) -> Simulation:
    r"""Sample answers per prompt from explicit answer distributions and judge them.

    ``logp_base`` and ``logp_trained`` are normalized log-distributions ``(num_prompts,
    num_answers)``; ``correct`` is the verifier's mask of the same shape. Each model draws
    ``num_samples`` answer indices per prompt (``fe.sample``); the records carry the answer (its
    label in ``answers``, default ``"a0", "a1", ...``), its correctness, and its log-probability
    under both models (nats). Exact success probabilities: $p_i = \sum_{y \in C_i} p(y)$.

    >>> import jax, jax.numpy as jnp
    >>> lp = jnp.log(jnp.array([[0.5, 0.5, 0.0]]))
    >>> sim = categorical(jax.random.key(0), lp, lp, jnp.array([[True, False, True]]), 6)
    >>> sim.p_base.tolist(), set(sim.base.samples.answer) <= {"a0", "a1"}
    ([0.5], True)
    """
    key = _checks.key(key)
    lb = _checks.logp(logp_base, "logp_base", dtype=jnp.float64)
    lt = _checks.logp(logp_trained, "logp_trained", dtype=jnp.float64)
    if lb.ndim != 2 or lt.shape != lb.shape:
        raise ValueError(
            "`logp_base` and `logp_trained` must both have shape (num_prompts, num_answers), got "
            f"{tuple(lb.shape)} and {tuple(lt.shape)}."
        )
    mask = np.asarray(_checks.mask(correct, "correct"))
    if mask.shape != tuple(lb.shape):
        raise ValueError(
            f"`correct` must have the shape of `logp_base` {tuple(lb.shape)}, got {mask.shape}."
        )
    num_prompts, num_answers = lb.shape
    if num_prompts > MAX_PROMPTS:
        raise ValueError(f"{num_prompts} prompts is above MAX_PROMPTS = {MAX_PROMPTS}.")
    n = _num_samples(num_samples, num_prompts)
    _records_ok(num_prompts, n)
    if answers is None:
        labels = np.asarray([f"a{j}" for j in range(num_answers)])
    else:
        labels = np.asarray([str(a) for a in answers])
        if labels.shape != (num_answers,):
            raise ValueError(
                f"`answers` must hold one label per answer ({num_answers}), got {labels.size}."
            )
        if len(set(labels.tolist())) != num_answers:
            raise ValueError("`answers` must be distinct labels.")
    lb_np, lt_np = np.asarray(lb), np.asarray(lt)
    ids = _prompt_ids(num_prompts)
    rows = np.repeat(np.arange(num_prompts), n)
    out = []
    for k, lp in zip(jax.random.split(key), (lb, lt), strict=True):
        idx = np.asarray(sample(k, lp, n)).reshape(-1)
        records = Samples(
            rows, mask[rows, idx], tuple(labels[idx].tolist()), lb_np[rows, idx], lt_np[rows, idx]
        )
        out.append(Counts.from_samples(ids, records))
    return Simulation(
        out[0],
        out[1],
        _success(lb_np, mask),
        _success(lt_np, mask),
        answers=labels,
        answer_logp_base=lb_np,
        answer_logp_trained=lt_np,
        answer_correct=mask,
    )


def passk_crossover(
    key: jax.Array, num_samples: int, config: dict | None = None
) -> tuple[Simulation, dict]:
    """The ``passk_crossover`` experiment's models as evaluation data (:func:`categorical`).

    Runs ``experiments.passk_crossover`` (its ``CONFIG`` updated by ``config``) with ``key``:
    the base ``p0`` over answers per prompt, the correct answer, and the RL policy whose
    sharpening parameter is shared across prompts, trained exactly; then samples both models.
    Returns the simulation and the experiment's result (its numbers and concrete inputs).
    """
    from experiments import passk_crossover as experiment

    key = _checks.key(key)
    if config is not None and not isinstance(config, dict):
        raise TypeError(
            f"`config` must be a dict of overrides or None, got {type(config).__name__}."
        )
    cfg = dict(experiment.CONFIG)
    if config:
        unknown = set(config) - set(cfg)
        if unknown:
            raise ValueError(f"`config` has unknown keys {sorted(unknown)}; known: {sorted(cfg)}.")
        cfg.update(config)
    key_model, key_sample = jax.random.split(key)
    result = experiment.run(cfg, key_model)
    inputs = result["config"]
    sim = categorical(
        key_sample,
        jnp.asarray(inputs["logp0"]),
        jnp.asarray(result["logq_shared"]),
        jnp.asarray(inputs["correct"]),
        num_samples,
    )
    return sim, result


def sequences(
    key: jax.Array,
    token_logp: Any,
    length: int,
    verifier: seq.Automaton,
    beta: float,
    num_samples: int,
) -> Simulation:
    r"""Per-prompt i.i.d.-token sequence models, tilted by a verifier, sampled and judged.

    Prompt ``i`` is the model ``seq.iid(token_logp[i], length)``; the trained model is its exact
    KL-RL tilt ``seq.tilt(model, verifier, beta)`` (reward 1 on accepted strings). Success
    probabilities are ``exp(seq.accept_logprob(model, verifier))``; samples come from
    ``seq.sample``, correctness from ``seq.accepts``, and each record's answer is the sampled
    string written as its tokens (``"0312..."``, one character per token, so ``vocab <= 10``)
    with its log-probability under both models (``seq.log_prob``). When ``vocab ** length <=
    MAX_ANSWERS`` the exact answer distributions (``seq.enumerate``) come with it.

    >>> import jax, jax.numpy as jnp
    >>> from freeenergy import sequences as seq
    >>> lp = jnp.log(jnp.array([[0.5, 0.5], [0.9, 0.1]]))
    >>> sim = sequences(jax.random.key(0), lp, 3, seq.count_at_least(2, 1, 2), 1.0, 5)
    >>> sim.p_base.round(3).tolist()  # P(at least two 1s in three tokens)
    [0.5, 0.028]
    """
    key = _checks.key(key)
    tl = _checks.logp(token_logp, "token_logp", dtype=jnp.float64)
    if tl.ndim != 2:
        raise ValueError(
            f"`token_logp` must have shape (num_prompts, vocab), got {tuple(tl.shape)}."
        )
    num_prompts, vocab = tl.shape
    if vocab > 10:
        raise ValueError(f"`token_logp` has vocab {vocab}; answers are written one digit a token.")
    if num_prompts > MAX_PROMPTS:
        raise ValueError(f"{num_prompts} prompts is above MAX_PROMPTS = {MAX_PROMPTS}.")
    length = _checks.integer(length, "length", minimum=1)
    if length > MAX_LENGTH:
        raise ValueError(f"`length` = {length} is above MAX_LENGTH = {MAX_LENGTH} tokens.")
    if not isinstance(verifier, seq.Automaton):
        raise TypeError(f"`verifier` must be a sequences.Automaton, got {type(verifier).__name__}.")
    if verifier.vocab != vocab:
        raise ValueError(
            f"`verifier` reads vocab {verifier.vocab} but `token_logp` has vocab {vocab}."
        )
    beta = _checks.scalar(beta, "beta")
    if not 0 < beta < math.inf:
        raise ValueError(f"`beta` must be finite and > 0, got {beta}.")
    n = _num_samples(num_samples, num_prompts)
    _records_ok(num_prompts, n)
    listed = vocab**length <= MAX_ANSWERS
    ids = _prompt_ids(num_prompts)
    p: list[list[float]] = [[], []]
    recs: list[list[tuple]] = [[], []]
    exact: list[list[np.ndarray]] = [[], []]
    keys = jax.random.split(key, num_prompts)
    for i in range(num_prompts):
        base = seq.iid(tl[i], length)
        trained = seq.tilt(base, verifier, beta)
        pair = zip((base, trained), jax.random.split(keys[i]), strict=True)
        for m, (model, k) in enumerate(pair):
            p[m].append(float(jnp.exp(seq.accept_logprob(model, verifier))))
            tokens = seq.sample(k, model, n)
            recs[m].append(
                (
                    np.asarray(seq.accepts(verifier, tokens)),
                    _as_text(np.asarray(tokens)),
                    np.asarray(seq.log_prob(base, tokens), dtype=np.float64),
                    np.asarray(seq.log_prob(trained, tokens), dtype=np.float64),
                )
            )
            if listed:
                exact[m].append(np.asarray(seq.enumerate(model), dtype=np.float64))
    rows = np.repeat(np.arange(num_prompts), n)

    def counts(m: int) -> Counts:
        ok, text, lb, lt = (np.concatenate(parts) for parts in zip(*recs[m], strict=True))
        return Counts.from_samples(ids, Samples(rows, ok, tuple(text.tolist()), lb, lt))

    answers = logp_b = logp_t = correct = None
    if listed:
        all_strings = np.asarray(seq.strings(vocab, length))
        answers = _as_text(all_strings)
        logp_b, logp_t = np.stack(exact[0]), np.stack(exact[1])
        accepted = np.asarray(seq.accepts(verifier, all_strings))
        correct = np.broadcast_to(accepted, logp_b.shape).copy()
    return Simulation(
        counts(0),
        counts(1),
        np.asarray(p[0]),
        np.asarray(p[1]),
        answers=answers,
        answer_logp_base=logp_b,
        answer_logp_trained=logp_t,
        answer_correct=correct,
    )


def _as_text(tokens: np.ndarray) -> np.ndarray:
    """Strings ``(..., length)`` of tokens < 10 as text, one digit a token."""
    digits = (tokens.astype(np.uint8) + ord("0")).copy()
    return digits.view(f"S{tokens.shape[-1]}")[..., 0].astype(str)


# ----------------------------------------------------------------------------- writers
def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic_text(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_csv(path: str | os.PathLike, counts: Any) -> None:
    """Write per-prompt counts as CSV with the header ``prompt,n,correct`` (atomically).

    >>> import tempfile, os, numpy as np
    >>> from freeenergy.empirical import Counts
    >>> d = tempfile.mkdtemp()
    >>> write_csv(os.path.join(d, "x.csv"), Counts(np.array([4]), np.array([1]), ["q"]))
    >>> open(os.path.join(d, "x.csv")).read()
    'prompt,n,correct\\nq,4,1\\n'
    """
    if not isinstance(counts, Counts):
        raise TypeError(f"`counts` must be a Counts record, got {type(counts).__name__}.")
    n = np.asarray(counts.n)
    c = np.asarray(counts.correct)
    prompts = counts.prompts if counts.prompts is not None else range(n.size)
    lines = ["prompt,n,correct"]
    for pid, ni, ci in zip(prompts, n.tolist(), c.tolist(), strict=True):
        text = str(pid)
        if any(ch in text for ch in ',"\n\r'):
            raise ValueError(f"prompt id {text!r} holds a comma, quote or newline; rename it.")
        lines.append(f"{text},{int(ni)},{int(ci)}")
    _atomic_text(Path(path), "\n".join(lines) + "\n")


def write_jsonl(path: str | os.PathLike, counts: Counts, *, logprobs: bool = True) -> None:
    """Write the per-sample records of ``counts`` (``counts.samples``) as JSON Lines, atomically.

    One sample a line: ``{"prompt": ..., "correct": true|false, "answer": ...}``, plus
    ``"logprob_base"`` and ``"logprob_trained"`` (nats; ``-Infinity`` for zero probability) when
    the records carry them and ``logprobs`` is true. The format :func:`~freeenergy.empirical.load`
    reads.

    >>> import tempfile, os
    >>> from freeenergy.empirical import Counts, Samples
    >>> d = tempfile.mkdtemp()
    >>> s = Samples([0, 0], [True, False], answer=("4", "5"))
    >>> write_jsonl(os.path.join(d, "x.jsonl"), Counts.from_samples(["q"], s))
    >>> open(os.path.join(d, "x.jsonl")).read().splitlines()[0]
    '{"prompt": "q", "correct": true, "answer": "4"}'
    """
    if not isinstance(counts, Counts):
        raise TypeError(f"`counts` must be a Counts record, got {type(counts).__name__}.")
    s = counts.samples
    if s is None:
        raise ValueError(
            "`counts` has no per-sample records (`counts.samples` is None); write it with "
            "`write_csv`, or simulate with records."
        )
    ids = counts.prompts if counts.prompts is not None else tuple(range(counts.num_prompts))
    with_logprobs = logprobs and s.logprob_base is not None and s.logprob_trained is not None
    lines = []
    for j in range(s.size):
        rec: dict[str, Any] = {"prompt": ids[int(s.prompt_index[j])], "correct": bool(s.correct[j])}
        if s.answer is not None:
            rec["answer"] = s.answer[j]
        if with_logprobs:
            rec["logprob_base"] = float(s.logprob_base[j])
            rec["logprob_trained"] = float(s.logprob_trained[j])
        lines.append(json.dumps(rec))
    _atomic_text(Path(path), "\n".join(lines) + "\n")
