"""Gradient post-training with optax: SFT, the RL family and DPO, exact and sampled.

On an explicit distribution every method can be run two ways — on finite samples, as in
practice, or on exact expectations — and watched converging (or not) to the exact Gibbs answer
``gibbs(logp0, -reward, beta)`` of docs/theory.md.

* policies (params → log-probs): ``tabular``, ``log_linear``, ``shared``, ``flat_policy``;
* objectives: ``sft``, ``reinforce``, ``rloo``, ``grpo``, ``ppo``, ``dpo`` (``mode="exact"`` or
  ``"sampled"``); KL estimators ``kl_estimate`` and their exact ``kl_estimator_stats``;
* the loop: ``make_trainer`` (optionally natural gradient), ``make_mirror_descent``, ``run``, and
  ``run_seeds`` (many seeds, spread over devices with ``jax.sharding``); a run whose result holds
  NaN raises ``TrainingDiverged``, naming the first NaN step and its cause.
"""

from .kl import KL_ESTIMATORS, KLEstimatorStats, kl_estimate, kl_estimator_stats
from .loop import (
    Info,
    Trainer,
    TrainingDiverged,
    TrainState,
    check_batch,
    make_mirror_descent,
    make_trainer,
    run,
    run_seeds,
)
from .objectives import (
    MODES,
    Batch,
    Objective,
    all_equal_probability,
    dpo,
    grpo,
    ppo,
    reinforce,
    rloo,
    sft,
)
from .policies import Policy, SharedParams, flat_policy, log_linear, shared, tabular

__all__ = [
    # policies
    "Policy",
    "SharedParams",
    "tabular",
    "log_linear",
    "shared",
    "flat_policy",
    # objectives
    "Batch",
    "Objective",
    "MODES",
    "sft",
    "reinforce",
    "rloo",
    "grpo",
    "ppo",
    "dpo",
    "all_equal_probability",
    # KL estimators
    "KL_ESTIMATORS",
    "kl_estimate",
    "KLEstimatorStats",
    "kl_estimator_stats",
    # the loop
    "TrainState",
    "Info",
    "Trainer",
    "TrainingDiverged",
    "make_trainer",
    "make_mirror_descent",
    "run",
    "run_seeds",
    "check_batch",
]
