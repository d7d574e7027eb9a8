"""Experiments: one module per figure or claim (docs/theory.md §4).

Each module defines

* ``CONFIG`` — the default configuration (a JSON-able dict with a ``seed``);
* ``TINY`` — overrides that make a smoke-test run take about a second;
* ``run(config, key) -> dict`` — the numbers. The dict has a ``"config"`` entry holding the
  configuration *and the concrete inputs it built* (base distribution, rewards), so anyone can
  recompute the result independently from the JSON alone;
* ``plot(result) -> matplotlib.figure.Figure`` — the figure, from the numbers alone.

``python -m experiments [NAME ...]`` runs them and writes ``figures/NAME.json`` and
``figures/NAME.png`` atomically.
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: Registered experiments, in the order ``python -m experiments`` runs them.
NAMES: list[str] = [
    "regimes",
    "gibbs_family",
    "sft_rl_unified",
    "mode_collapse",
    "kl_estimators",
    "sequence_barrier",
    "best_of_n",
    "passk_crossover",
    "barrier_search",
    "tools_and_information",
    "phase_diagram",
    "estimators_vs_truth",
]


def load(name: str) -> ModuleType:
    """Import the module of a registered experiment."""
    if name not in NAMES:
        raise ValueError(
            f"unknown experiment {name!r}; registered: {', '.join(NAMES)} "
            "(see `python -m experiments --list`)"
        )
    return importlib.import_module(f"experiments.{name}")


def config_for(name: str, *, tiny: bool = False, overrides: dict | None = None) -> dict:
    """The default config of an experiment, optionally with its TINY and extra overrides."""
    module = load(name)
    config = dict(module.CONFIG)
    if tiny:
        config.update(getattr(module, "TINY", {}))
    if overrides:
        unknown = set(overrides) - set(config)
        if unknown:
            raise ValueError(
                f"{name}: unknown config keys {sorted(unknown)}; known: {sorted(config)}"
            )
        config.update(overrides)
    return config


def run(name: str, *, tiny: bool = False, overrides: dict | None = None) -> dict:
    """Run one experiment in memory (no files written) and return its result dict."""
    import jax

    module = load(name)
    config = config_for(name, tiny=tiny, overrides=overrides)
    result = module.run(config, jax.random.key(int(config["seed"])))
    if "config" not in result:
        raise RuntimeError(f"experiment {name!r} returned no 'config' entry")
    return result
