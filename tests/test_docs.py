"""The documentation is checked like the code.

* every module of ``freeenergy`` runs its docstring examples as doctests;
* every ``pycon`` example in the documentation pages (``docs/**/*.md``) runs and prints what the
  page says;
* the theory page keeps its stable numbering (§1–§4, T1–T13), and every test it cites exists.
"""

from __future__ import annotations

import ast
import doctest
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import freeenergy

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

# Every module of the package, except command-line entry points (``__main__`` runs on import).
MODULES = ["freeenergy"] + sorted(
    m.name
    for m in pkgutil.walk_packages(freeenergy.__path__, "freeenergy.")
    if m.name.rsplit(".", 1)[-1] != "__main__"
)


# ----------------------------------------------------------------------------- docstrings
@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    mod = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    for test in finder.find(mod, name):
        if test.examples and test.name.startswith(name):  # skip names imported from elsewhere
            runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) of {name} failed"


def test_every_module_is_collected():
    """The module list is not empty and reaches the subpackages (so no module is skipped)."""
    for name in ("freeenergy.support", "freeenergy.train.loop", "freeenergy.expand.search"):
        assert name in MODULES
    assert any(name.startswith("freeenergy.sequences") for name in MODULES)


# ----------------------------------------------------------------------------- pages
def pages() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.parts)


def pycon_blocks(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of every ```pycon fenced block of a Markdown page."""
    blocks, lines = [], path.read_text().splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```pycon":
            start, body = i + 1, []
            i += 1
            while lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            blocks.append((start, "\n".join(body) + "\n"))
        i += 1
    return blocks


PAGES_WITH_EXAMPLES = [p for p in pages() if pycon_blocks(p)]


def test_pages_have_examples():
    names = {p.relative_to(DOCS).as_posix() for p in PAGES_WITH_EXAMPLES}
    for page in ("getting_started.md", "guide/flat.md", "guide/sequences.md", "guide/train.md"):
        assert page in names, f"docs/{page} lost its examples"


@pytest.mark.parametrize(
    "page", PAGES_WITH_EXAMPLES, ids=[p.relative_to(DOCS).as_posix() for p in PAGES_WITH_EXAMPLES]
)
def test_page_examples_run(page):
    """The blocks of a page share one namespace and run in order, like a reader's session."""
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    globs: dict = {}
    attempted = 0
    for lineno, text in pycon_blocks(page):
        test = parser.get_doctest(text, globs, page.name, str(page), lineno)
        runner.run(test, clear_globs=False)
        globs = test.globs  # get_doctest copies the namespace: carry it to the next block
        attempted += len(test.examples)
    result = runner.summarize(verbose=False)
    assert attempted > 0
    assert result.failed == 0, f"{result.failed} example(s) in {page} failed"


# ----------------------------------------------------------------------------- theory page
THEORY = DOCS / "theory.md"


def test_theory_numbering_is_stable():
    text = THEORY.read_text()
    for section in range(1, 5):
        assert re.search(rf"^## §{section} ", text, re.M), f"§{section} heading missing"
    for t in range(1, 14):
        assert re.search(rf"^### T{t} — ", text, re.M), f"T{t} heading missing"


def test_theory_cites_tests_that_exist():
    cited = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", THEORY.read_text())
    assert len(cited) >= 13
    for path, name in cited:
        source = ROOT / path
        assert source.exists(), f"docs/theory.md cites {path}, which does not exist"
        defined = {
            node.name
            for node in ast.walk(ast.parse(source.read_text()))
            if isinstance(node, ast.FunctionDef)
        }
        assert name in defined, f"docs/theory.md cites {path}::{name}, which does not exist"
