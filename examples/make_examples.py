"""Regenerate the example evaluation files in this folder, deterministically.

``python examples/make_examples.py`` (from the repository root) writes

* ``base.csv`` / ``trained.csv`` — per-prompt counts, 100 prompts x 512 samples: success
  probabilities drawn from a Beta(0.3, 3) law, and the exact per-prompt Gibbs tilt by the
  verifier reward at beta = 0.5 (which lifts rare prompts across the reachability threshold);
* ``base.jsonl`` / ``trained.jsonl`` — per-sample records with answers, 12 prompts x 16
  samples, from the models of the ``passk_crossover`` experiment (base ``p0`` and the RL
  policy whose sharpening parameter is shared across prompts); the trained records carry the
  log-probability of each answer under both models.

Both pairs come from ``freeenergy.empirical.simulate``.
"""

from __future__ import annotations

from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

from freeenergy.empirical import simulate  # noqa: E402

HERE = Path(__file__).resolve().parent
SEED = 0


def csv_example(key: jax.Array) -> simulate.Simulation:
    """Counts of 100 prompts x 512 samples: Beta(0.3, 3) prompts and the per-prompt tilt."""
    key_p, key_sim = jax.random.split(key)
    p = simulate.beta_prompts(key_p, 100, 0.3, 3.0)
    return simulate.flat(key_sim, p, simulate.tilt_success(p, 0.5), 512)


def jsonl_example(key: jax.Array) -> simulate.Simulation:
    """Samples with answers of the passk_crossover models, 12 prompts x 16 samples."""
    sim, _ = simulate.passk_crossover(key, 16)
    return sim


def _show(name: str, sim: simulate.Simulation) -> None:
    print(f"{name}: {sim.base.num_prompts} prompts x {int(sim.base.n[0])} samples")
    print(f"  exact mean success probability: base {sim.p_base.mean():.4f}, ", end="")
    print(f"trained {sim.p_trained.mean():.4f}")


def main(out: Path = HERE) -> None:
    key_csv, key_jsonl = jax.random.split(jax.random.key(SEED))
    sim = csv_example(key_csv)
    simulate.write_csv(out / "base.csv", sim.base)
    simulate.write_csv(out / "trained.csv", sim.trained)
    _show("base.csv / trained.csv", sim)
    sim = jsonl_example(key_jsonl)
    simulate.write_jsonl(out / "base.jsonl", sim.base, logprobs=False)
    simulate.write_jsonl(out / "trained.jsonl", sim.trained)
    _show("base.jsonl / trained.jsonl", sim)


if __name__ == "__main__":
    main()
