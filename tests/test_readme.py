"""The README's quickstart runs as written and prints what its comments say."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_readme_has_the_two_commands():
    text = README.read_text()
    assert "make reproduce" in text and "make test" in text


def test_quickstart_runs_and_its_comments_hold(capsys):
    blocks = python_blocks()
    assert blocks, "README has no python example"
    namespace: dict = {}
    exec(compile(blocks[0], str(README), "exec"), namespace)  # noqa: S102 - our own README
    out = capsys.readouterr().out.splitlines()
    fe = namespace["fe"]
    assert out[3] == "['BASIN', 'BASIN', 'BASIN', 'TAIL', 'BARRIER', 'SINGULAR']"
    assert float(fe.kl(namespace["logq_star"], namespace["logp0"])) == pytest.approx(0.3, rel=1e-6)
    assert out[-2] == "creation 1 1"
    assert out[-1] == "elicitation"
    # The printed minimal free energy equals F at the tilt (Gibbs variational principle).
    f_at_tilt = float(out[0].split()[1])
    assert float(out[1]) == pytest.approx(f_at_tilt, rel=1e-12)
