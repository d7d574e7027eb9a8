"""From samples of real models to a verdict: pass@k, support change and elicitation-vs-creation
estimated from evaluation data, with error bars.

``Counts`` holds, per prompt, how many samples a model drew (``n``) and how many a verifier
accepted (``correct``); ``load`` reads them from a CSV of counts or a JSONL of samples. The
estimators are pure functions of ``Counts``:

* ``pass_at_k`` — the unbiased per-prompt estimator ``1 − C(n−c,k)/C(n,k)``;
* ``pass_at_k_curve`` / ``paired_difference`` / ``crossover`` — pooled curves, trained − base,
  and where the base catches up, with a (paired) bootstrap over prompts;
* ``support_change`` — which prompts each model reaches at a budget;
* ``diagnose`` — per prompt: elicitation, creation, lost, unchanged or undetermined, from
  confidence intervals against the reachability threshold ``1 − (1−c)^(1/N)``;
* ``answer_stats`` / ``answer_support_change`` — when samples carry their final answers: answer
  distributions, Good–Turing missing mass, plug-in entropy, answer-level support change;
* ``kl_estimate`` — when samples carry log-probabilities under both models: KL(trained‖base)
  (k1 and k3, with standard errors) against the least KL the change in success rate needs (T6,
  the Bernoulli divergence), as a KL-efficiency ratio.

Every bootstrap is deterministic given its required ``key``, and draws the resample indices
``bootstrap_indices`` returns. Exact work (pass@k tables, intervals) runs in float64 whatever
JAX's default dtype. See docs/theory.md for the definitions these estimate.
"""

from ._answers import (
    AnswerStats,
    AnswerSupportChange,
    KLEstimate,
    answer_stats,
    answer_support_change,
    bernoulli_kl,
    kl_estimate,
)
from ._data import MAX_FILE_BYTES, MAX_RECORDS, Counts, Samples, load
from ._passk import (
    MAX_BOOTSTRAP,
    Crossover,
    Curve,
    Difference,
    align,
    bootstrap_indices,
    crossover,
    paired_difference,
    pass_at_k,
    pass_at_k_curve,
    wilson_interval,
)
from ._verdict import (
    VERDICTS,
    EmpiricalDiagnosis,
    Interval,
    SupportChange,
    binomial_interval,
    diagnose,
    reach_threshold,
    support_change,
)

__all__ = [
    # data
    "Counts",
    "Samples",
    "load",
    "MAX_FILE_BYTES",
    "MAX_RECORDS",
    # pass@k
    "pass_at_k",
    "pass_at_k_curve",
    "paired_difference",
    "crossover",
    "bootstrap_indices",
    "align",
    "wilson_interval",
    "MAX_BOOTSTRAP",
    "Curve",
    "Difference",
    "Crossover",
    # support and verdicts
    "binomial_interval",
    "reach_threshold",
    "support_change",
    "diagnose",
    "VERDICTS",
    "Interval",
    "SupportChange",
    "EmpiricalDiagnosis",
    # answers and log-probabilities
    "answer_stats",
    "answer_support_change",
    "bernoulli_kl",
    "kl_estimate",
    "AnswerStats",
    "AnswerSupportChange",
    "KLEstimate",
]
