"""The README's quickstart runs as written and prints what its comments say."""

import math
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


def test_sequences_and_training_example(capsys):
    blocks = python_blocks()
    assert len(blocks) >= 2, "README lost its sequences/training example"
    namespace: dict = {}
    exec(compile(blocks[0], str(README), "exec"), namespace)  # noqa: S102 - our own README
    exec(compile(blocks[1], str(README), "exec"), namespace)  # noqa: S102
    capsys.readouterr()
    seq, fe = namespace["seq"], namespace["fe"]
    # The base success probability is a binomial tail: P(Binomial(64, 0.1) >= 16).
    tail = sum(math.comb(64, j) * 0.1**j * 0.9 ** (64 - j) for j in range(16, 65))
    base = float(
        namespace["jnp"].exp(seq.accept_logprob(namespace["model"], namespace["verifier"]))
    )
    assert base == pytest.approx(tail, rel=1e-10)
    # The tilt with reward 1 on accepted strings at beta moves that mass to t e^(1/b) / Z.
    tilted = float(
        namespace["jnp"].exp(seq.accept_logprob(namespace["tilted"], namespace["verifier"]))
    )
    boost = math.exp(1 / 0.2)
    assert tilted == pytest.approx(tail * boost / (1 - tail + tail * boost), rel=1e-10)
    gibbs = fe.gibbs(namespace["logp0"], -namespace["reward"], 0.5)
    assert float(fe.kl(namespace["logq_trained"], gibbs)) < 1e-8
