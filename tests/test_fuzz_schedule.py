"""The CI schedule of the thorough hypothesis profile (.ci/thorough.py, `make test-thorough`).

Every property-test module must get its thorough run in some share, every share must hold
tests (pytest exits with code 5 when it collects none, which must not happen), and the shares
must take turns day by day.
"""

from __future__ import annotations

import datetime
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def thorough():
    spec = importlib.util.spec_from_file_location("ci_thorough", REPO / ".ci" / "thorough.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_property_module_is_in_exactly_one_share(thorough):
    modules = thorough.property_modules()
    given = sorted(
        f"tests/{p.name}"
        for p in (REPO / "tests").glob("test_*.py")
        if re.search(r"^\s*@given\(", p.read_text(), re.M)
    )
    assert modules == given and "tests/test_theorems.py" in modules
    assert "tests/test_fuzz_schedule.py" not in modules  # mentions hypothesis, has no property
    groups = thorough.plan()
    flat = [m for g in groups for m in g]
    assert sorted(flat) == modules and len(flat) == len(set(flat))


def test_every_share_holds_property_tests(thorough):
    for group in thorough.plan():
        assert group, "an empty share would make pytest exit with code 5"
        for module in group:
            text = (REPO / module).read_text()
            assert re.search(r"^def test_", text, re.M) and re.search(r"^\s*@given\(", text, re.M)


def test_shares_are_balanced_and_take_turns(thorough):
    modules = [f"tests/test_m{i}.py" for i in range(7)]
    groups = thorough.plan(modules, shares=3)
    assert sorted(m for g in groups for m in g) == modules and all(groups)
    loads = [sum(map(thorough.minutes, g)) for g in groups]
    assert max(loads) - min(loads) <= thorough.DEFAULT_MINUTES
    assert thorough.plan(modules[:2], shares=5) == [[modules[0]], [modules[1]]]
    day = datetime.date(2026, 12, 1)
    seen = {thorough.share_of(day + datetime.timedelta(days=i), 3) for i in range(3)}
    assert seen == {0, 1, 2}


def test_cli_prints_today_s_share_and_rejects_a_bad_one(thorough):
    run = [sys.executable, str(REPO / ".ci" / "thorough.py")]
    today = subprocess.run(run, capture_output=True, text=True, check=True).stdout.split()
    assert today and today in thorough.plan()
    every = subprocess.run(run + ["--all"], capture_output=True, text=True, check=True).stdout
    assert sorted(every.split()) == thorough.property_modules()
    bad = subprocess.run(run + ["--share", "99"], capture_output=True, text=True)
    assert bad.returncode != 0 and "--share" in bad.stderr


def test_ci_runs_the_suite_then_the_thorough_share_and_fails_on_failure():
    script = (REPO / ".ci" / "run").read_text()
    assert "set -euo pipefail" in script
    lines = [ln.strip() for ln in script.splitlines() if ln.strip().startswith("make ")]
    assert lines[:2] == ["make test", "make test-thorough"]
    makefile = (REPO / "Makefile").read_text()
    recipe = makefile.split("test-thorough: $(STAMP)", 1)[1].split("\n\n", 1)[0]
    assert 'test -n "$$modules"' in recipe and "HYPOTHESIS_PROFILE=thorough" in recipe
