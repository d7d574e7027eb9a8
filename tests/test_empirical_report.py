"""The report CLI ``python -m freeenergy.empirical report``: run as a subprocess on the shipped
examples and in-process on temporary files; every number in report.json checked against the
estimators called directly; --help; bad input gives exit code 2 and one clear line; a failing
run leaves an existing report as it was."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from freeenergy import empirical as em
from freeenergy.empirical import report, simulate

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
PNG = b"\x89PNG\r\n\x1a\n"
OUTPUTS = sorted(["report.md", "report.json", *report.FIGURES])


def cli(*args, check_rc=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "freeenergy.empirical", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
    )
    if check_rc is not None:
        assert proc.returncode == check_rc, proc.stderr
    return proc


def expected(base, trained, budget, *, ks, num_bootstrap, seed, confidence=0.5, level=0.95):
    """The report's numbers from the public estimators, called directly."""
    kb, kt, kd, kc = jax.random.split(jax.random.key(seed), 4)
    args = {"num_bootstrap": num_bootstrap, "level": level}
    return {
        "base": em.pass_at_k_curve(base, ks, key=kb, **args),
        "trained": em.pass_at_k_curve(trained, ks, key=kt, **args),
        "difference": em.paired_difference(base, trained, ks, key=kd, **args),
        "crossover": em.crossover(base, trained, ks, key=kc, **args),
        "support": em.support_change(
            base, trained, min(budget, int(base.n.min()), int(trained.n.min())), confidence
        ),
        "diagnosis": em.diagnose(base, trained, budget, confidence, level),
    }


def check_against_api(rep, base, trained, budget, *, ks, num_bootstrap, seed, **kw):
    ref = expected(base, trained, budget, ks=ks, num_bootstrap=num_bootstrap, seed=seed, **kw)
    pk = rep["pass_at_k"]
    assert pk["k"] == list(ks)
    for name in ("base", "trained", "difference"):
        for field in ("mean", "low", "high"):
            np.testing.assert_allclose(
                pk[name][field], np.asarray(getattr(ref[name], field)), rtol=1e-12, atol=1e-15
            )
    cr = ref["crossover"]
    assert rep["crossover"] == {
        "k": cr.k,
        "low": cr.low,
        "high": cr.high,
        "probability": cr.probability,
    }
    sc = ref["support"]
    for field in ("both", "base_only", "trained_only", "neither", "srr", "ndr", "sds", "nscr"):
        assert rep["support_change"][field] == getattr(sc, field)
    d = ref["diagnosis"]
    assert rep["diagnosis"]["counts"] == d.counts
    assert rep["diagnosis"]["created_fraction"] == d.created_fraction
    assert rep["diagnosis"]["created_low"] == d.created_low
    assert rep["diagnosis"]["created_high"] == d.created_high
    assert rep["per_prompt"]["verdict"] == d.verdict.tolist()
    assert rep["per_prompt"]["correct_base"] == base.correct.tolist()
    # Cover@τ: the fraction of prompts with success rate ≥ τ, counted directly
    taus = np.asarray(rep["cover"]["tau"])
    for model, counts in (("base", base), ("trained", trained)):
        direct = [np.sum(counts.correct >= t * counts.n) / counts.num_prompts for t in taus]
        np.testing.assert_allclose(rep["cover"][model], direct, rtol=0, atol=1e-15)


def read_outputs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# ----------------------------------------------------------------------------- subprocess
def test_help_explains_every_option():
    out = cli("report", "--help", check_rc=0).stdout
    for option in (
        "--budget",
        "--out",
        "--bootstrap",
        "--seed",
        "--k",
        "--confidence",
        "--level",
        "--interval",
        "--quiet",
    ):
        assert option in out
    for phrase in ("prompt,n,correct", '"correct"', "logprob_base", "exit code 2", "atomically"):
        assert phrase in out
    assert "report" in cli("--help", check_rc=0).stdout


def test_report_on_the_shipped_csv_examples(tmp_path):
    proc = cli(
        "report",
        EXAMPLES / "base.csv",
        EXAMPLES / "trained.csv",
        "--budget",
        16,
        "--out",
        tmp_path,
        "--bootstrap",
        300,
        "--seed",
        3,
        check_rc=0,
    )
    assert "bootstrap [" in proc.stderr and "1200/1200" in proc.stderr  # 4 statistics x 300
    assert proc.stdout.startswith("verdict: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == OUTPUTS
    for name in report.FIGURES:
        assert (tmp_path / name).read_bytes()[:8] == PNG
    rep = json.loads((tmp_path / "report.json").read_text())
    base, trained = em.load(EXAMPLES / "base.csv"), em.load(EXAMPLES / "trained.csv")
    check_against_api(
        rep, base, trained, 16, ks=report.default_k_grid(512), num_bootstrap=300, seed=3
    )
    md = (tmp_path / "report.md").read_text()
    assert rep["summary"] in md
    for name in report.FIGURES:
        assert f"({name})" in md
    assert rep["answers"] is None and rep["kl"] is None


def test_report_on_the_shipped_jsonl_examples(tmp_path):
    cli(
        "report",
        EXAMPLES / "base.jsonl",
        EXAMPLES / "trained.jsonl",
        "--budget",
        16,
        "--out",
        tmp_path,
        "--bootstrap",
        200,
        "--k",
        "1,4,16",
        "--level",
        0.9,
        "--confidence",
        0.6,
        "--quiet",
        check_rc=0,
    )
    rep = json.loads((tmp_path / "report.json").read_text())
    base, trained = em.load(EXAMPLES / "base.jsonl"), em.load(EXAMPLES / "trained.jsonl")
    check_against_api(
        rep, base, trained, 16, ks=[1, 4, 16], num_bootstrap=200, seed=0, confidence=0.6, level=0.9
    )
    sb, st = em.answer_stats(base), em.answer_stats(trained)
    assert rep["answers"]["base"]["mean_missing_mass"] == pytest.approx(sb.missing_mass.mean())
    assert rep["answers"]["trained"]["mean_entropy"] == pytest.approx(st.entropy.mean())
    asc = em.answer_support_change(base, trained, 1 / 16)
    assert rep["answers"]["support_change"]["trained_only"] == int(asc.trained_only.sum())
    kl = em.kl_estimate(base, trained)
    assert rep["kl"]["k1"] == pytest.approx(kl.k1, rel=1e-12)
    assert rep["kl"]["k3"] == pytest.approx(kl.k3, rel=1e-12)
    assert rep["kl"]["efficiency"] == pytest.approx(kl.efficiency, rel=1e-12)
    assert "## KL(trained‖base)" in (tmp_path / "report.md").read_text()


def test_bad_file_gives_exit_2_and_one_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("prompt,n,correct\nq1,8,3\nq2,8,9\n")
    proc = cli("report", bad, EXAMPLES / "trained.csv", "--budget", 8, "--out", tmp_path / "r")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "bad.csv" in lines[0] and "line 3" in lines[0] and '"correct"' in lines[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "r").exists()


# ----------------------------------------------------------------------------- in process
@pytest.fixture(scope="module")
def small_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    p = simulate.beta_prompts(jax.random.key(1), 40, 0.5, 2.0)
    sim = simulate.flat(jax.random.key(2), p, simulate.sharpen_success(p, 1.5), 24)
    simulate.write_csv(folder / "b.csv", sim.base)
    simulate.write_csv(folder / "t.csv", sim.trained)
    return folder


def test_report_on_temporary_files_in_process(small_files, tmp_path, capsys):
    out = tmp_path / "nested" / "out"
    b, t = small_files / "b.csv", small_files / "t.csv"
    argv = ["report", str(b), str(t), "--budget", "100", "--out", str(out)]
    rc = report.main([*argv, "--bootstrap", "150", "--seed", "9", "--k", "2,1,8", "--quiet"])
    assert rc == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""  # --quiet
    rep = json.loads((out / "report.json").read_text())
    assert rep["settings"]["budget"] == 100 and rep["support_change"]["budget"] == 24
    check_against_api(rep, em.load(b), em.load(t), 100, ks=[1, 2, 8], num_bootstrap=150, seed=9)
    assert "exceeds the smallest number of samples" in (out / "report.md").read_text()
    # same seed, same report; the files are readable by everyone the umask allows
    first = read_outputs(out)
    assert report.main([*argv, "--bootstrap", "150", "--seed", "9", "--k", "1,2,8", "--quiet"]) == 0
    second = read_outputs(out)
    assert first["report.json"] == second["report.json"]
    mask = os.umask(0)
    os.umask(mask)
    assert (out / "report.json").stat().st_mode & 0o777 == 0o666 & ~mask


def test_wilson_bands_for_the_pooled_curves(small_files, tmp_path):
    b, t = small_files / "b.csv", small_files / "t.csv"
    args = ["report", str(b), str(t), "--budget", "8", "--out", str(tmp_path), "--quiet"]
    assert report.main([*args, "--bootstrap", "100", "--interval", "wilson", "--k", "1,24"]) == 0
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["settings"]["interval"] == "wilson"
    for name in ("base", "trained"):
        w = em.pass_at_k_curve(em.load(small_files / f"{name[0]}.csv"), [1, 24], interval="wilson")
        np.testing.assert_allclose(rep["pass_at_k"][name]["low"], np.asarray(w.low), rtol=1e-12)
        np.testing.assert_allclose(rep["pass_at_k"][name]["high"], np.asarray(w.high), rtol=1e-12)
    # the difference is still the paired bootstrap, with its own key
    kd = jax.random.split(jax.random.key(0), 4)[2]
    d = em.paired_difference(em.load(b), em.load(t), [1, 24], num_bootstrap=100, key=kd)
    np.testing.assert_allclose(rep["pass_at_k"]["difference"]["low"], np.asarray(d.low))
    assert "Wilson score bands" in (tmp_path / "report.md").read_text()


def test_no_bootstrap_gives_means_without_intervals(small_files, tmp_path):
    b, t = small_files / "b.csv", small_files / "t.csv"
    args = ["report", str(b), str(t), "--budget", "8", "--out", str(tmp_path), "--quiet"]
    assert report.main([*args, "--bootstrap", "0"]) == 0
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["pass_at_k"]["base"]["low"] is None
    assert rep["crossover"]["probability"] is None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--k", "1,99"], "--k values must lie in 1..24"),
        (["--k", "1,x"], "whole numbers separated by commas"),
        (["--level", "1.5"], "--level must lie strictly between 0 and 1"),
        (["--confidence", "0"], "--confidence must lie strictly between 0 and 1"),
        (["--bootstrap", "-1"], "--bootstrap must be between 0"),
        (["--budget", "0"], "--budget must be a whole number"),
    ],
)
def test_bad_options_exit_2(small_files, tmp_path, capsys, extra, message):
    b, t = small_files / "b.csv", small_files / "t.csv"
    argv = ["report", str(b), str(t), "--budget", "8", "--out", str(tmp_path / "r"), *extra]
    if "--budget" in extra:
        argv = argv[:3] + argv[5:]
    try:
        rc = report.main(argv)
    except SystemExit as exit_:  # argparse's own errors
        rc = exit_.code
    assert rc == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_prompts_that_differ_give_exit_2(small_files, tmp_path, capsys):
    other = tmp_path / "other.csv"
    other.write_text("prompt,n,correct\nzzz,24,3\n")
    rc = report.main(
        ["report", str(small_files / "b.csv"), str(other), "--budget", "8", "--out", str(tmp_path)]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "same prompts" in err and err.count("\n") == 1


def test_a_failing_run_keeps_the_existing_report(small_files, tmp_path, monkeypatch):
    b, t = small_files / "b.csv", small_files / "t.csv"
    args = ["report", str(b), str(t), "--budget", "8", "--out", str(tmp_path), "--quiet"]
    assert report.main([*args, "--bootstrap", "50"]) == 0
    before = read_outputs(tmp_path)
    # a bad input file
    bad = small_files / "bad.jsonl"
    bad.write_text('{"prompt": "p000", "correct": "yes"}\n')
    assert report.main(["report", str(bad), *args[2:]]) == 2
    assert read_outputs(tmp_path) == before

    # a failure while rendering, after the numbers exist
    def broken(_report):
        raise RuntimeError("rendering failed")

    monkeypatch.setattr(report, "_figures", broken)
    with pytest.raises(RuntimeError, match="rendering failed"):
        report.main([*args, "--bootstrap", "60"])
    assert read_outputs(tmp_path) == before
    # a failure while writing one file leaves that file as it was and no temporary file
    monkeypatch.undo()

    def failing_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(report.os, "fsync", failing_fsync)
    with pytest.raises(OSError):
        report.main([*args, "--bootstrap", "70"])
    assert read_outputs(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == OUTPUTS


def test_report_doctests():
    import doctest

    result = doctest.testmod(report, verbose=False)
    assert result.attempted > 0 and result.failed == 0


# ----------------------------------------------------------------------------- README
def readme_section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("## Your own models: from samples to a verdict")
    return text[start : text.index("\n## ", start + 3)]


def test_readme_command_and_excerpt_hold(tmp_path, monkeypatch, capsys):
    import re

    section = readme_section()
    command = re.search(r"```bash\n(python -m freeenergy.empirical report [^\n]*)\n", section)
    argv = command.group(1).split()[3:]
    assert argv[:3] == ["report", "examples/base.csv", "examples/trained.csv"]
    monkeypatch.chdir(ROOT)
    out = tmp_path / "report"
    argv[argv.index("--out") + 1] = str(out)
    assert report.main([*argv, "--quiet"]) == 0
    md = (out / "report.md").read_text()
    excerpt = [line[2:] for line in section.splitlines() if line.startswith(">")]
    assert len(excerpt) > 8
    for line in excerpt:
        if line.startswith("|"):
            assert line in md, line
    # the prose paragraphs, with the README's line wrapping undone
    flat = " ".join(md.split())
    paragraphs = " ".join(line if line.strip() else "\n" for line in excerpt).split("\n")
    prose = [" ".join(p.split()) for p in paragraphs if p.strip() and "|" not in p]
    assert len(prose) == 2
    for paragraph in prose:
        assert paragraph in flat, paragraph


def test_readme_python_example_runs(monkeypatch, capsys):
    import re

    block = re.search(r"```python\n(.*?)```", readme_section(), re.S).group(1)
    monkeypatch.chdir(ROOT)
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    printed = capsys.readouterr().out.strip()
    assert printed == "14 0.14"
    base = namespace["base"]
    np.testing.assert_allclose(
        np.asarray(namespace["curve"].mean), np.asarray(em.pass_at_k(base, [1, 16, 256])).mean(0)
    )


def test_make_examples_regenerates_the_shipped_csv_files(tmp_path, monkeypatch):
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_examples", EXAMPLES / "make_examples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    key_csv, _ = jax.random.split(jax.random.key(module.SEED))
    sim = module.csv_example(key_csv)
    simulate.write_csv(tmp_path / "base.csv", sim.base)
    simulate.write_csv(tmp_path / "trained.csv", sim.trained)
    for name in ("base.csv", "trained.csv"):
        assert (tmp_path / name).read_bytes() == (EXAMPLES / name).read_bytes()
    # the shipped JSONL files hold the passk_crossover models' samples: answers and log-probs
    trained = em.load(EXAMPLES / "trained.jsonl")
    assert trained.num_prompts == 12 and set(trained.n.tolist()) == {16}
    assert trained.samples.answer is not None and trained.samples.logprob_base is not None
