"""Regenerate the figures: ``python -m experiments [NAME ...]`` (what ``make reproduce`` runs)."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

from . import NAMES, _io, load  # noqa: E402
from . import run as run_experiment  # noqa: E402

#: Where figures go by default: the committed ones.
FIGURES = Path("figures")


def tiny_out() -> Path:
    """Default folder of a ``--tiny`` run: a scratch folder outside the repository, so that a
    smoke test never overwrites the committed figures."""
    return Path(tempfile.gettempdir()) / "freeenergy-tiny"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments",
        description="Run freeenergy's experiments and write figures/NAME.png and "
        "figures/NAME.json (the config, the inputs and the numbers plotted). Outputs are "
        "written atomically. Runs in float64. With no NAME, runs every registered experiment.",
    )
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help="experiments to run (default: all)"
    )
    parser.add_argument("--list", action="store_true", help="list the experiments and exit")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"output folder (default: {FIGURES}/, or with --tiny the scratch folder "
        f"{tiny_out()}/, so that a smoke test never overwrites the committed figures)",
    )
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="run the tiny smoke-test configuration of each; without --out its outputs go to "
        "the scratch folder, not figures/",
    )
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = tiny_out() if args.tiny else FIGURES

    if args.list:
        for name in NAMES:
            doc = (load(name).__doc__ or "").strip().splitlines()
            print(f"{name:24s} {doc[0] if doc else ''}")
        return 0
    names = args.names or NAMES
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        parser.error(f"unknown experiment(s) {', '.join(unknown)}; choose from {', '.join(NAMES)}")

    total = time.perf_counter()
    for i, name in enumerate(names, 1):
        start = time.perf_counter()
        print(f"[{i}/{len(names)}] {name}: running ...", flush=True)
        module = load(name)
        result = run_experiment(name, tiny=args.tiny)
        result = {"experiment": name, **result}
        fig = module.plot(result)
        _io.write_json(args.out / f"{name}.json", result)
        _io.write_figure(args.out / f"{name}.png", fig)
        print(
            f"[{i}/{len(names)}] {name}: wrote {args.out / name}.png and .json "
            f"in {time.perf_counter() - start:.1f}s",
            flush=True,
        )
    print(f"done: {len(names)} experiment(s) in {time.perf_counter() - total:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
