"""Which property-test modules CI runs under the ``thorough`` hypothesis profile today.

The property-test modules (each ``tests/test_*.py`` with a hypothesis ``@given(...)``
property) take too long under ``thorough`` (1000 examples per property) to run all of them on
every CI run, so they are split into ``SHARES`` groups of about equal measured time, and each
day (UTC) runs one group in turn: every module gets its thorough run once every ``SHARES`` days,
and one CI run stays within its time limit. Usage::

    python .ci/thorough.py            # the modules of today's share, one per line
    python .ci/thorough.py --share 2  # the modules of share 2
    python .ci/thorough.py --all      # every property-test module
    python .ci/thorough.py --plan     # every share with its expected time

A module not in ``MINUTES`` (a new one) counts as ``DEFAULT_MINUTES`` until it is measured.
"""

from __future__ import annotations

import argparse
import datetime
import re
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"

#: Wall-clock minutes of each module under ``HYPOTHESIS_PROFILE=thorough``, measured in one
#: process (``-p no:xdist``) on a 2-core machine shared with other heavy jobs, so CI with
#: ``-n 2`` on its own cores takes a fraction of them. Modules stopped at a time limit are
#: extrapolated from the share of their tests that had finished (marked "at least"). Remeasure
#: with ``HYPOTHESIS_PROFILE=thorough pytest -p no:xdist --durations=0 tests/MODULE.py``.
MINUTES: dict[str, float] = {
    "test_distributions.py": 3.3,
    "test_expand.py": 7.3,
    "test_expand_hardening.py": 8.3,
    "test_free_energy.py": 16.0,  # at least: 25 of its tests in 15 minutes
    "test_fuzz.py": 12.0,  # at least: 96% in 15 minutes at 100 examples per entry (now 25)
    "test_sequences.py": 20.0,  # at least: 8 of its tests in 12 minutes
    "test_support.py": 5.5,
    "test_theorems.py": 60.0,  # at least: 3 of its 23 tests in 12 minutes
    "test_train_inputs.py": 2.7,
    "test_train_oracles.py": 3.7,
}
DEFAULT_MINUTES = 10.0
#: A hypothesis property: a line that starts with ``@given(``.
_GIVEN = re.compile(r"^\s*@(hypothesis\.)?given\(", re.M)
#: Number of shares: each CI run gets about sum(MINUTES) / SHARES minutes of thorough tests.
SHARES = 3


def property_modules() -> list[str]:
    """Every test module that has hypothesis properties, as paths relative to the repo."""
    found = []
    for path in sorted(TESTS.glob("test_*.py")):
        if _GIVEN.search(path.read_text(encoding="utf-8")):
            found.append(f"tests/{path.name}")
    return found


def minutes(module: str) -> float:
    return MINUTES.get(Path(module).name, DEFAULT_MINUTES)


def plan(modules: list[str] | None = None, shares: int = SHARES) -> list[list[str]]:
    """Split the modules into ``shares`` groups of about equal time (longest first, each to the
    group with the least time so far). Every group holds at least one module."""
    modules = property_modules() if modules is None else modules
    if not modules:
        raise SystemExit("no property-test modules found under tests/")
    shares = max(1, min(shares, len(modules)))
    groups: list[list[str]] = [[] for _ in range(shares)]
    load = [0.0] * shares
    for module in sorted(modules, key=lambda m: (-minutes(m), m)):
        i = load.index(min(load))
        groups[i].append(module)
        load[i] += minutes(module)
    return [sorted(g) for g in groups]


def share_of(day: datetime.date, shares: int) -> int:
    """The share a day runs: consecutive days take the shares in turn."""
    return day.toordinal() % shares


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--share", type=int, help="print this share (0-based) instead of today's")
    group.add_argument("--all", action="store_true", help="print every property-test module")
    group.add_argument("--plan", action="store_true", help="print every share and its time")
    args = parser.parse_args(argv)
    groups = plan()
    if args.plan:
        today = share_of(datetime.datetime.now(datetime.UTC).date(), len(groups))
        for i, g in enumerate(groups):
            mark = " (today)" if i == today else ""
            print(f"share {i}{mark}: {sum(map(minutes, g)):.1f} min: {' '.join(g)}")
        return 0
    if args.all:
        chosen = [m for g in groups for m in g]
    elif args.share is not None:
        if not 0 <= args.share < len(groups):
            parser.error(f"--share must be in [0, {len(groups) - 1}], got {args.share}")
        chosen = groups[args.share]
    else:
        chosen = groups[share_of(datetime.datetime.now(datetime.UTC).date(), len(groups))]
    print("\n".join(sorted(chosen)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
