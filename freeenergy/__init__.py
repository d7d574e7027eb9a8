"""freeenergy: the free-energy theory of LLM post-training, computed exactly.

A model is an explicit distribution over a finite behavior space, stored as log-probabilities
(``-inf`` = zero mass). SFT and RL are Gibbs tilts ``q ∝ p0·exp(−U/β)`` of the reference ``p0``;
whether post-training *elicits* (moves mass within the accessible support) or *creates* (changes
it) is read off exactly. See README.md and docs/theory.md for the conventions.
"""

from . import empirical, expand, sequences, train
from .distributions import decode, entropy, kl, normalize, sample
from .expand import best_of_n
from .free_energy import free_energy, frontier, gibbs, implied_energy, log_partition, tilt_for_kl
from .support import (
    Diagnosis,
    Regime,
    accessible_support,
    diagnose,
    pass_at_k,
    pass_at_k_estimate,
    reach_probability,
    regime_profile,
    regimes,
)

__version__ = "0.1.0"

__all__ = [
    # distributions
    "normalize",
    "kl",
    "entropy",
    "sample",
    "decode",
    # free energy
    "gibbs",
    "log_partition",
    "free_energy",
    "implied_energy",
    "tilt_for_kl",
    "frontier",
    # support
    "reach_probability",
    "accessible_support",
    "pass_at_k",
    "pass_at_k_estimate",
    "Regime",
    "regimes",
    "regime_profile",
    "Diagnosis",
    "diagnose",
    # capability creation
    "best_of_n",
    # submodules
    "empirical",
    "expand",
    "sequences",
    "train",
]
