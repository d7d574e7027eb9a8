"""Fuzzing every public name of freeenergy against the input contract (see fuzzing.py).

* every public name (``freeenergy``, ``sequences``, ``train``, ``expand``, found from ``__all__``)
  has a fuzz entry in fuzz_registry.py, so a new function without one fails here;
* bad input: every argument of every function, in turn, replaced by each bad value (wrong types,
  None, strings, complex, bools, NaN, ±inf, empty and mismatched arrays, floats for ints, a batch
  of keys, ...), in this process; huge sizes (``10**18``, ``2**70``) in a child process, since
  they could abort the interpreter;
* legal but extreme input, drawn by hypothesis (``-inf`` log-probabilities, ``+inf`` energies,
  log-probabilities down to ``-1e4``, ``beta`` from subnormal to ``1e6``, energies of ``±1e308``,
  one-behavior spaces);
* the defects seen before, as explicit regression cases.

A case that fails today is marked ``xfail(strict=True)`` in ``KNOWN`` below, so the suite passes
and reports when it gets fixed (an unexpected pass fails: remove the mark).
"""

from __future__ import annotations

import fuzz_registry as reg
import fuzzing
import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

# case id -> why it fails today (who fixes it: D sequences/expand, E1 flat core, E2 train).
# Ids: "grid:ENTRY:ARG:LABEL" ("*" for every bad value of that argument), "huge:ENTRY:ARG:LABEL",
# "reg:NAME", "legal:ENTRY", "mixed:ENTRY", "limit:NAME".
KNOWN: dict[str, str] = {}

# Inputs hypothesis tries first (a failure seen once stays checked, also after it is fixed).
EXPLICIT: dict[str, list] = {
    "legal:sequences.space_size": [lambda: dict(vocab=2, length=25)],
    "legal:expand.tree_search": [
        lambda: dict(model=reg.sq.iid(reg.LOGP3, 1), verifier=reg.sq.count_at_least(3, 2, 2))
    ],
}


def _known(case: str) -> str | None:
    if case in KNOWN:
        return KNOWN[case]
    if case.startswith("grid:"):
        return KNOWN.get(case.rsplit(":", 1)[0] + ":*")
    return None


def _marks(case: str) -> list:
    reason = _known(case)
    return [pytest.mark.xfail(strict=True, reason=reason)] if reason else []


def _param(case: str, *values):
    return pytest.param(*values, id=case, marks=_marks(case))


def _assert_contract(case: str, outcome: fuzzing.Outcome) -> None:
    assert outcome.passed, f"{case}: {outcome}"


# --------------------------------------------------------------------------- coverage
def test_every_public_name_has_a_fuzz_entry():
    covered = set(reg.ENTRIES) | set(reg.TYPES) | set(reg.CONSTANTS)
    missing = reg.public_names() - covered
    assert not missing, f"public names without a fuzz entry in tests/fuzz_registry.py: {missing}"
    stale = covered - reg.public_names()
    assert not stale, f"fuzz entries for names that are not public: {stale}"


def test_every_known_failure_names_a_real_case():
    cases = set(_grid_ids()) | set(_huge_ids()) | {f"reg:{n}" for n in reg.REGRESSIONS}
    cases |= {c.rsplit(":", 1)[0] + ":*" for c in _grid_ids()}
    cases |= {f"{k}:{n}" for n in reg.ENTRIES for k in ("legal", "mixed")}
    cases |= {f"limit:{n}" for n in reg.CONSTANTS}
    assert not set(KNOWN) - cases, set(KNOWN) - cases
    assert set(EXPLICIT) <= cases


@pytest.mark.parametrize("name", sorted(reg.TYPES))
def test_public_types_come_out_of_their_functions(name):
    obj, entry_name, get = reg.TYPES[name]
    with fuzzing.time_limit(fuzzing.CALL_LIMIT):
        if entry_name is None:
            value = get()
        else:
            entry = reg.ENTRIES[entry_name]
            value = get(entry.fn(**entry.example()))
    if isinstance(obj, type):
        assert isinstance(value, obj), (name, type(value))
    else:
        assert value in obj, (name, value, obj)


@pytest.mark.parametrize(
    "case", [_param(f"limit:{n}", f"limit:{n}") for n in sorted(reg.CONSTANTS)]
)
def test_public_limits_are_enforced(case):
    name = case.split(":", 1)[1]
    outcome = reg.CONSTANTS[name]()
    assert outcome.kind == "error", f"{name}: {outcome}"


# --------------------------------------------------------------------------- bad input, in process
#: Under the quick ``ci`` profile a representative subset of the bad values; every one otherwise.
QUICK = settings().max_examples <= 30


def _grid_ids(labels=None) -> list[str]:
    return [f"grid:{n}:{a}:{label}" for n in reg.ENTRIES for a, label in reg.grid_cases(n, labels)]


@pytest.mark.parametrize(
    "case", [_param(c, c) for c in _grid_ids(reg.CI_LABELS if QUICK else None)]
)
def test_bad_input(case):
    _, name, arg, label = case.split(":", 3)
    _assert_contract(case, reg.run_grid(name, arg, label))


# --------------------------------------------------------------------------- huge sizes, isolated
def _huge_ids(labels=None) -> list[str]:
    return reg.huge_cases(labels)


_ISOLATED_REGRESSIONS = [f"reg:{n}" for n in reg.ISOLATED_REGRESSIONS]
#: The child process runs once, on one pytest-xdist worker (`--dist loadgroup`).
_ISOLATED = pytest.mark.xdist_group("fuzz-isolated")
_HUGE_IDS = _huge_ids(reg.CI_HUGE if QUICK else None)


@pytest.fixture(scope="module")
def isolated_results():
    """All calls that could abort or hang, run once in child processes."""
    return fuzzing.run_isolated(_HUGE_IDS + _ISOLATED_REGRESSIONS)


@_ISOLATED
@pytest.mark.parametrize("case", [_param(c, c) for c in _HUGE_IDS])
def test_huge_sizes(case, isolated_results):
    _assert_contract(case, isolated_results[case])


# --------------------------------------------------------------------------- regressions
@_ISOLATED
@pytest.mark.parametrize("case", [_param(c, c) for c in _ISOLATED_REGRESSIONS])
def test_regression_isolated(case, isolated_results):
    _assert_contract(case, isolated_results[case])


@pytest.mark.parametrize(
    "case",
    [_param(f"reg:{n}", f"reg:{n}") for n in reg.REGRESSIONS if n not in reg.ISOLATED_REGRESSIONS],
)
def test_regression(case):
    _assert_contract(case, reg.run_case(case))


# --------------------------------------------------------------------------- hypothesis
def _examples(entry: reg.Entry) -> int:
    """Examples per entry: a tenth of the profile's, at least 2 and at most 25 (a training loop:
    2 to 5), so that the ~200 fuzz properties stay quick under ``ci`` and take minutes, not
    hours, under ``thorough`` (the grid of bad values above does not depend on this count)."""
    base = settings().max_examples
    if entry.slow:
        return 2 if base <= 30 else 5
    return min(max(2, base // 10), 25)


def _fuzz_settings(entry: reg.Entry):
    return settings(
        max_examples=_examples(entry),
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.reuse, Phase.generate],
        database=None,
    )


_LEGAL = [n for n, e in reg.ENTRIES.items() if e.legal is not None]


@pytest.mark.parametrize("case", [_param(f"legal:{n}", f"legal:{n}") for n in _LEGAL])
def test_legal_extremes(case):
    entry = reg.ENTRIES[case.split(":", 1)[1]]

    @_fuzz_settings(entry)
    @given(entry.legal)
    def check(kwargs):
        outcome = entry.call(kwargs)
        assert outcome.passed, f"{case} with {kwargs!r}: {outcome}"

    for make in EXPLICIT.get(case, []):
        check = example(make())(check)
    check()


@pytest.mark.parametrize("case", [_param(f"mixed:{n}", f"mixed:{n}") for n in _LEGAL])
def test_one_bad_argument_among_extreme_ones(case):
    entry = reg.ENTRIES[case.split(":", 1)[1]]

    @_fuzz_settings(entry)
    @given(entry.legal, st.data())
    def check(kwargs, data):
        arg = data.draw(st.sampled_from(sorted(kwargs)), label="argument")
        label = data.draw(st.sampled_from(sorted(reg.BAD)), label="bad value")
        if _known(f"grid:{case.split(':', 1)[1]}:{arg}:{label}"):
            return  # a known failure, reported by its own grid case
        kwargs = {**kwargs, arg: reg.bad_value(label, kwargs[arg])}
        outcome = entry.call(kwargs)
        assert outcome.passed, f"{case}: {arg}={label}: {outcome}"

    check()
