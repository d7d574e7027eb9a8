r"""Capability creation: what it takes to go beyond reweighting the reference.

Reweighting (SFT, RL, DPO) only *elicits*: it moves mass inside what the reference already
reaches. This package holds the mechanisms that *create*, each with its exact output
distribution and its compute:

* ``search`` — search with a verifier. ``best_of_n`` gives the exact best-of-``n`` distribution
  over a flat space (a tilt of the reference that never leaves its support, THEORY.md T12), with
  its KL against the common ``log n - (n-1)/n`` formula, its win rate, its binary-reward
  temperature, a sampler, and its ``SearchCost`` (samples drawn, verifier calls).
* ``information`` — new information that changes the reference itself: a data ``mix`` or a
  forward ``distill`` puts mass where the reference had none (union of supports), which no tilt
  can; ``elicitation_cost`` and ``new_information`` price a target before and after.
"""

from .information import (
    ElicitationCost,
    NewInformation,
    distill,
    elicitation_cost,
    mix,
    new_information,
)
from .search import (
    SearchCost,
    best_of_n,
    best_of_n_cost,
    best_of_n_kl,
    best_of_n_kl_bound,
    best_of_n_temperature,
    sample_best_of_n,
    win_rate,
)

__all__ = [
    # search with a verifier
    "SearchCost",
    "best_of_n",
    "best_of_n_cost",
    "best_of_n_kl",
    "best_of_n_kl_bound",
    "best_of_n_temperature",
    "sample_best_of_n",
    "win_rate",
    # new information
    "mix",
    "distill",
    "ElicitationCost",
    "elicitation_cost",
    "NewInformation",
    "new_information",
]
