"""Answer level and log-probability level: what samples that carry their final answers or their
log-probabilities under both models tell beyond success counts.

* answers — per-prompt answer distributions, the Good–Turing missing mass (probability that the
  next sample gives an answer never seen), the plug-in answer entropy, and the answer-level
  support change at a frequency threshold;
* log-probabilities — KL(trained‖base) estimated from samples of the trained model (the k1 and
  k3 estimators, with standard errors), against the least KL the observed change in success rate
  needs (T6: the Bernoulli divergence), as a KL-efficiency ratio.

These are host statistics over ragged per-prompt samples, computed in float64 NumPy.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from .. import _checks
from ._data import Counts
from ._passk import _alignment, _counts, align

__all__ = [
    "AnswerStats",
    "AnswerSupportChange",
    "KLEstimate",
    "answer_stats",
    "answer_support_change",
    "bernoulli_kl",
    "kl_estimate",
]


def _answers(counts: Counts, name: str) -> tuple[tuple[dict[str, int], ...], tuple[set, ...]]:
    """Per prompt: ``{answer: count}`` in first-seen order and the set of accepted answers."""
    if counts.samples is None or counts.samples.answer is None:
        raise ValueError(
            f"`{name}` carries no answers: answer-level statistics need per-sample answers "
            '(load a JSONL file whose samples have an "answer" field).'
        )
    s = counts.samples
    dists: list[dict[str, int]] = [{} for _ in range(counts.num_prompts)]
    accepted: list[set] = [set() for _ in range(counts.num_prompts)]
    for i, a, ok in zip(s.prompt_index.tolist(), s.answer, s.correct.tolist(), strict=True):
        dists[i][a] = dists[i].get(a, 0) + 1
        if ok:
            accepted[i].add(a)
    return tuple(dists), tuple(accepted)


@dataclasses.dataclass(frozen=True)
class AnswerStats:
    """Per-prompt answer statistics (arrays ``(P,)``; float64 NumPy).

    * ``answers`` — per prompt, ``{answer: number of samples}`` in first-seen order;
    * ``accepted`` — per prompt, the answers the verifier accepted (on at least one sample);
    * ``num_distinct`` — number of distinct answers; ``singletons`` — ``N1``, answers seen once;
    * ``missing_mass`` — Good–Turing ``N1 / n``: the estimated probability that one more sample
      gives an answer never seen (unbiased for the expected missing mass after ``n − 1`` draws);
    * ``entropy`` — plug-in (maximum-likelihood) entropy ``−Σ_a (n_a/n) log(n_a/n)`` in nats,
      biased low by about ``(distinct − 1)/(2n)``;
    * ``prompts`` — the ids or ``None``.
    """

    answers: tuple[dict[str, int], ...]
    accepted: tuple[frozenset, ...]
    num_distinct: np.ndarray
    singletons: np.ndarray
    missing_mass: np.ndarray
    entropy: np.ndarray
    prompts: tuple | None


def answer_stats(counts: Counts) -> AnswerStats:
    """Answer distributions, Good–Turing missing mass and plug-in entropy per prompt.

    ``counts`` must carry per-sample answers (``counts.samples.answer``). See ``AnswerStats``.

    >>> from freeenergy import empirical as em
    >>> s = em.Samples([0, 0, 0, 0], [True, True, False, False], answer=["4", "4", "5", "6"])
    >>> st = em.answer_stats(em.Counts.from_samples(["q"], s))
    >>> st.answers[0], st.missing_mass.tolist()  # two answers seen once out of 4 samples
    ({'4': 2, '5': 1, '6': 1}, [0.5])
    """
    counts = _counts(counts, "counts")
    dists, accepted = _answers(counts, "counts")
    n = counts.n.astype(np.float64)
    distinct = np.array([len(d) for d in dists], dtype=np.int64)
    n1 = np.array([sum(1 for v in d.values() if v == 1) for d in dists], dtype=np.int64)
    entropy = np.array(
        [
            -sum((v / m) * math.log(v / m) for v in d.values())
            for d, m in zip(dists, counts.n.tolist(), strict=True)
        ]
    )
    entropy = entropy + 0.0
    return AnswerStats(
        answers=dists,
        accepted=tuple(frozenset(a) for a in accepted),
        num_distinct=distinct,
        singletons=n1,
        missing_mass=n1 / n,
        entropy=entropy,
        prompts=counts.prompts,
    )


@dataclasses.dataclass(frozen=True)
class AnswerSupportChange:
    """Answer-level support change: per prompt, the answers each model gives with empirical
    frequency ``≥ epsilon``, compared.

    ``(P,)`` int64 arrays: ``both``, ``base_only``, ``trained_only`` (distinct answers), and the
    same restricted to accepted answers (``correct_both``, ``correct_base_only``,
    ``correct_trained_only``; an answer is accepted when the verifier accepted it on some
    sample of either model). ``epsilon``, ``prompts``.
    """

    both: np.ndarray
    base_only: np.ndarray
    trained_only: np.ndarray
    correct_both: np.ndarray
    correct_base_only: np.ndarray
    correct_trained_only: np.ndarray
    epsilon: float
    prompts: tuple | None


def answer_support_change(base: Counts, trained: Counts, epsilon: float) -> AnswerSupportChange:
    """Which answers each model gives with frequency at least ``epsilon`` (in (0, 1]), per
    prompt: kept, dropped and new, overall and among accepted answers.

    With ``epsilon ≤ 1/n`` an answer is "in the support" when it was sampled at all. Prompts are
    aligned by id (or position); both must carry answers.

    >>> from freeenergy import empirical as em
    >>> b = em.Counts.from_samples(["q"], em.Samples([0] * 4, [1, 0, 0, 0], ["7", "3", "3", "9"]))
    >>> t = em.Counts.from_samples(["q"], em.Samples([0] * 4, [1, 1, 1, 0], ["7", "7", "7", "2"]))
    >>> c = em.answer_support_change(b, t, epsilon=0.25)
    >>> c.both.tolist(), c.base_only.tolist(), c.trained_only.tolist(), c.correct_both.tolist()
    ([1], [2], [1], [1])
    """
    base = _counts(base, "base")
    trained = _counts(trained, "trained")
    eps = _checks.probability_half_open(epsilon, "epsilon")
    db, ab = _answers(base, "base")
    dt, at = _answers(trained, "trained")
    base_al, trained_al = align(base, trained)
    order = _alignment(base, trained)
    if order is not None:
        dt = tuple(dt[i] for i in order)
        at = tuple(at[i] for i in order)
    out = np.zeros((6, base.num_prompts), dtype=np.int64)
    for i in range(base.num_prompts):
        mb, mt = base_al.n[i], trained_al.n[i]
        sb = {a for a, v in db[i].items() if v >= eps * mb}
        st = {a for a, v in dt[i].items() if v >= eps * mt}
        ok = ab[i] | at[i]
        out[:, i] = (
            len(sb & st),
            len(sb - st),
            len(st - sb),
            len(sb & st & ok),
            len((sb - st) & ok),
            len((st - sb) & ok),
        )
    return AnswerSupportChange(*out, epsilon=eps, prompts=base.prompts)


def bernoulli_kl(t: Any, p: Any) -> np.ndarray:
    """Bernoulli divergence ``d(t‖p) = t log(t/p) + (1−t) log((1−t)/(1−p))`` in nats (T6: the
    least KL that moves a set's mass from ``p`` to ``t``), elementwise; ``0 log 0 = 0``, and
    ``+inf`` where ``t`` puts mass where ``p`` has none.

    >>> d = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    >>> abs(float(bernoulli_kl(0.5, 0.25)) - d) < 1e-15
    True
    """
    arrays = []
    for name, v in (("t", t), ("p", p)):
        if isinstance(v, (str, bytes)) or v is None:
            raise TypeError(f"`{name}` must be probabilities (numbers), got {v!r}.")
        try:
            arrays.append(np.asarray(v, dtype=np.float64))
        except (TypeError, ValueError):
            raise TypeError(f"`{name}` must be probabilities (numbers), got {v!r}.") from None
    t, p = arrays
    try:
        np.broadcast_shapes(t.shape, p.shape)
    except ValueError:
        raise ValueError(
            f"`t` has shape {t.shape} but `p` has shape {p.shape}; they must broadcast."
        ) from None
    for name, v in (("t", t), ("p", p)):
        if np.any(np.isnan(v)) or np.any((v < 0) | (v > 1)):
            raise ValueError(f"`{name}` must hold probabilities in [0, 1], got {v!r}.")
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(t > 0, t * (np.log(t) - np.log(p)), 0.0)
        b = np.where(t < 1, (1 - t) * (np.log1p(-t) - np.log1p(-p)), 0.0)
    return a + b + 0.0


@dataclasses.dataclass(frozen=True)
class KLEstimate:
    """KL(trained‖base) from samples of the trained model, and the least KL the change needs.

    Per sample ``r = log p_base(y) − log p_trained(y)``, ``y ~ trained``:
    ``k1 = −r`` and ``k3 = (e^r − 1) − r`` are unbiased for ``KL(trained‖base)``; ``k3 ≥ 0``.

    * ``per_prompt_k1``, ``per_prompt_k3`` — ``(P,)`` sample means; ``per_prompt_k1_se``,
      ``per_prompt_k3_se`` — their standard errors ``std/√m`` (``inf`` for a single sample);
    * ``k1``, ``k3`` — the mean over prompts, with ``k1_se``, ``k3_se`` the standard error
      over prompts (``std of per-prompt means / √P``, which includes the within-prompt noise;
      the within-prompt error alone when ``P = 1``);
    * ``per_prompt_least_kl`` — ``d(t‖p)`` of the trained and base success rates (T6); ``least_kl``
      its mean over prompts;
    * ``efficiency`` — ``least_kl / k3``: the share of the spent KL the success change needed
      (``None`` when ``k3 = 0``);
    * ``num_samples`` — ``(P,)`` samples with log-probabilities per prompt; ``prompts``.

    ``+inf`` appears (never NaN) where a sample has ``log p_base = -inf`` (mass the base does not
    have: infinite KL) or a success rate leaves the base's ``{0}`` or ``{1}``.
    """

    k1: float
    k1_se: float
    k3: float
    k3_se: float
    per_prompt_k1: np.ndarray
    per_prompt_k1_se: np.ndarray
    per_prompt_k3: np.ndarray
    per_prompt_k3_se: np.ndarray
    least_kl: float
    per_prompt_least_kl: np.ndarray
    efficiency: float | None
    num_samples: np.ndarray
    prompts: tuple | None


def _mean_se(values: np.ndarray, index: np.ndarray, p: int) -> tuple[np.ndarray, np.ndarray]:
    m = np.bincount(index, minlength=p).astype(np.float64)
    inf = np.isinf(values)
    finite = np.where(inf, 0.0, values)
    mean = np.bincount(index, weights=finite, minlength=p) / m
    dev = np.where(inf, 0.0, finite - mean[index])
    var = np.bincount(index, weights=dev * dev, minlength=p) / np.maximum(m - 1, 1)
    has_inf = np.bincount(index, weights=inf.astype(np.float64), minlength=p) > 0
    mean = np.where(has_inf, np.inf, mean)
    se = np.where(has_inf | (m < 2), np.inf, np.sqrt(var / m))
    return mean, se


def _pooled(mean: np.ndarray, se: np.ndarray) -> tuple[float, float]:
    if np.isinf(mean).any():
        return math.inf, math.inf
    p = mean.size
    if p == 1:
        return float(mean[0]), float(se[0])
    return float(mean.mean()), float(mean.std(ddof=1) / math.sqrt(p))


def kl_estimate(base: Counts, trained: Counts) -> KLEstimate:
    """Estimate ``KL(trained‖base)`` per prompt from the trained model's samples and compare it
    with the least KL that the observed change in success rate needs (see ``KLEstimate``).

    ``trained.samples`` must carry ``logprob_base`` and ``logprob_trained`` (each sample's total
    log-probability in nats under both models; the samples are drawn from the trained model, so
    ``logprob_trained = -inf`` is an error). ``base`` gives the base success rates; prompts are
    aligned by id (or position).

    >>> from freeenergy import empirical as em
    >>> s = em.Samples([0, 0], [True, False], logprob_base=[-2.0, -1.0],
    ...                logprob_trained=[-1.0, -1.5])
    >>> est = em.kl_estimate(em.Counts([4], [1]), em.Counts.from_samples(["q"], s))
    >>> est.per_prompt_k1.tolist()  # mean of -(log p_base - log p_trained) = mean(1, -0.5)
    [0.25]
    """
    base, trained_al = align(base, trained)
    s = trained.samples
    if s is None or s.logprob_base is None or s.logprob_trained is None:
        raise ValueError(
            "`trained` carries no log-probabilities: KL estimates need, per sample of the "
            'trained model, "logprob_base" and "logprob_trained" (load a JSONL file with both).'
        )
    if np.any(s.logprob_trained == -np.inf):
        i = int(np.argmax(s.logprob_trained == -np.inf))
        raise ValueError(
            f"`trained.samples.logprob_trained` is -inf at sample {i}, but the samples are "
            "drawn from the trained model, which gives each of them positive probability."
        )
    index = s.prompt_index
    order = _alignment(base, trained)
    if order is not None:  # trained prompt order[j] is base prompt j
        remap = np.empty_like(order)
        remap[order] = np.arange(order.size)
        index = remap[index]
    p = base.num_prompts
    r = s.logprob_base - s.logprob_trained
    k1 = -r + 0.0
    with np.errstate(over="ignore"):
        k3 = np.where(r == -np.inf, np.inf, np.expm1(r) - r)
    m1, se1 = _mean_se(k1, index, p)
    m3, se3 = _mean_se(k3, index, p)
    least = bernoulli_kl(trained_al.rate, base.rate)
    k1_pool, k1_se = _pooled(m1, se1)
    k3_pool, k3_se = _pooled(m3, se3)
    least_pool = float(least.mean())
    if k3_pool == 0.0:
        eff = None
    elif math.isinf(k3_pool):
        eff = 0.0 if math.isfinite(least_pool) else None
    else:
        eff = least_pool / k3_pool
    return KLEstimate(
        k1=k1_pool,
        k1_se=k1_se,
        k3=k3_pool,
        k3_se=k3_se,
        per_prompt_k1=m1,
        per_prompt_k1_se=se1,
        per_prompt_k3=m3,
        per_prompt_k3_se=se3,
        least_kl=least_pool,
        per_prompt_least_kl=least,
        efficiency=eff,
        num_samples=np.bincount(index, minlength=p),
        prompts=base.prompts,
    )
