r"""Capability creation: what it takes to go beyond reweighting the reference.

Reweighting (SFT, RL, DPO) only *elicits*: it moves mass inside what the reference already
reaches. This package holds the mechanisms that *create*, each with its exact output
distribution and its compute:

* ``search`` — search with a verifier. ``best_of_n`` gives the exact best-of-``n`` distribution
  over a flat space (a tilt of the reference that never leaves its support, docs/theory.md
  T12), with its KL against the common ``log n - (n-1)/n`` formula, its win rate, its
  binary-reward temperature, a sampler, and its ``SearchCost`` (samples drawn, verifier calls).
* ``sequence_search`` — search over sequence models with the verifier's partial state as a
  process check (``can_accept``): ``tree_search`` (exact output model and expected compute) and
  ``sample_tree_search``, ``beam_search``, ``best_of_n_sequence`` (the exact tilt), each with its
  ``SequenceCost`` (complete strings, generated tokens, verifier calls).
* ``tools`` — macro-actions (``macro``, ``prefix_solver``, ``tool``) with an explicit calling
  probability; ``augment`` a generator with one, map its outputs back to the original strings
  (``tool_logprob``, ``tool_distribution``) so exact comparisons apply.
* ``interaction`` — retrying with verifier feedback (the first wrong position revealed, the
  correct prefix kept): the exact final-answer distribution (``retry``) and a sampler.
* ``information`` — new information that changes the reference itself: a data ``mix`` or a
  forward ``distill`` puts mass where the reference had none (union of supports), which no tilt
  can; ``elicitation_cost`` and ``new_information`` price a target before and after.
* ``iteration`` — expert iteration (search → SFT on the successes → repeat) with
  ``freeenergy.train``, diagnosed every round.
"""

from .information import (
    ElicitationCost,
    NewInformation,
    distill,
    elicitation_cost,
    mix,
    new_information,
)
from .interaction import Retry, first_error, retry, sample_retry
from .iteration import ExpertIteration, expert_iteration, sequence_policy
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
from .sequence_search import (
    Beams,
    SequenceCost,
    beam_search,
    best_of_n_sequence,
    can_accept,
    sample_tree_search,
    string_index,
    tree_search,
)
from .tools import (
    Tool,
    ToolModel,
    augment,
    expected_calls,
    lift,
    macro,
    prefix_solver,
    tool,
    tool_distribution,
    tool_logprob,
    unmark,
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
    # search over sequences
    "SequenceCost",
    "can_accept",
    "tree_search",
    "sample_tree_search",
    "Beams",
    "beam_search",
    "best_of_n_sequence",
    "string_index",
    # tools
    "Tool",
    "tool",
    "macro",
    "prefix_solver",
    "ToolModel",
    "augment",
    "lift",
    "unmark",
    "tool_logprob",
    "tool_distribution",
    "expected_calls",
    # interaction
    "first_error",
    "Retry",
    "retry",
    "sample_retry",
    # new information
    "mix",
    "distill",
    "ElicitationCost",
    "elicitation_cost",
    "NewInformation",
    "new_information",
    # expert iteration
    "sequence_policy",
    "ExpertIteration",
    "expert_iteration",
]
