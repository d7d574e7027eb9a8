"""Run the benchmarks: ``python -m benchmarks [NAME ...] [--quick]`` (what ``make bench`` runs)."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys

from . import NAMES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Time freeenergy's JAX code against plain-NumPy baselines of the same "
        "computation in one run and print medians and speed ratios.",
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"benchmarks ({', '.join(NAMES)})")
    parser.add_argument("--quick", action="store_true", help="small sizes only (a smoke run)")
    args = parser.parse_args(argv)
    names = args.names or NAMES
    for name in names:
        if name not in NAMES:
            parser.error(f"unknown benchmark {name!r}; choose from {', '.join(NAMES)}")
    if len(names) > 1:
        # One process per benchmark: each sets its own JAX configuration (some run in float64),
        # which must not leak into the next one's timings.
        for name in names:
            cmd = [sys.executable, "-m", "benchmarks", name] + (["--quick"] if args.quick else [])
            code = subprocess.run(cmd, check=False).returncode
            if code:
                return code
        return 0
    print(f"== {names[0]} ==", flush=True)
    importlib.import_module(f"benchmarks.bench_{names[0]}").main(quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
