"""The `regimes` and `gibbs_family` experiments at tiny size, checked against the API, and the
experiment runner (atomic JSON/PNG output with ordinary file modes, --list, --tiny outputs kept out
of figures/)."""

import json
import math
import os
import stat
import tempfile

import jax.numpy as jnp
import numpy as np
import pytest

import experiments
import freeenergy as fe
from experiments import __main__ as runner
from experiments._io import to_jsonable


@pytest.fixture(scope="module")
def regimes_result():
    # Checked as written to JSON: plain floats and lists.
    return to_jsonable(experiments.run("regimes", tiny=True))


@pytest.fixture(scope="module")
def gibbs_result():
    return to_jsonable(experiments.run("gibbs_family", tiny=True))


def bernoulli(t, p):
    return t * math.log(t / p) + (1 - t) * math.log((1 - t) / (1 - p))


def test_regimes_codes_and_profile_match_the_api(regimes_result):
    cfg = regimes_result["config"]
    logp0 = jnp.asarray(cfg["logp0"])
    for b, codes in regimes_result["regimes"].items():
        expected = fe.regimes(logp0, float(b), cfg["confidence"], cfg["basin_mass"])
        np.testing.assert_array_equal(np.asarray(codes), np.asarray(expected))
    prof = regimes_result["profile"]
    mass = np.asarray(prof["mass"])
    np.testing.assert_allclose(mass.sum(axis=1), 1.0, atol=1e-12)
    p0 = np.exp(np.asarray(logp0))
    for budget, row, count in zip(prof["budgets"], mass, np.asarray(prof["count"]), strict=True):
        codes = np.asarray(fe.regimes(logp0, budget, cfg["confidence"], cfg["basin_mass"]))
        direct = [p0[codes == r].sum() for r in range(4)]
        np.testing.assert_allclose(row, direct, atol=1e-12)
        np.testing.assert_array_equal(count, np.bincount(codes, minlength=4))
    # The accessible support only grows with the budget (T9): basin+tail counts are monotone.
    accessible = np.asarray(prof["count"])[:, :2].sum(axis=1)
    assert np.all(np.diff(accessible) >= 0)


def test_regimes_target_costs_are_bernoulli_divergences(regimes_result):
    cfg = regimes_result["config"]
    logp0 = np.asarray(cfg["logp0"])
    budget = cfg["target_budget"]
    thr = 1 - (1 - cfg["confidence"]) ** (1 / budget)
    assert regimes_result["threshold"] == pytest.approx(thr, rel=1e-12)
    codes = np.asarray(fe.regimes(jnp.asarray(logp0), budget, cfg["confidence"], cfg["basin_mass"]))
    assert set(regimes_result["targets"]) == {"basin", "tail", "barrier", "singular"}
    for name, t in regimes_result["targets"].items():
        assert fe.Regime(int(codes[t["index"]])).name.lower() == name
        p = math.exp(logp0[t["index"]])
        assert t["p0"] == pytest.approx(p, rel=1e-12)
        if name == "singular":
            assert math.isinf(t["kl_accessible"]) and math.isinf(t["kl_half"])
            continue
        assert t["kl_all"] == pytest.approx(-math.log(p), rel=1e-12)
        assert t["kl_half"] == pytest.approx(bernoulli(0.5, p), rel=1e-10)
        if name == "barrier":
            # T6: the least cost is attained by a Gibbs tilt, which makes it just accessible.
            assert t["kl_accessible"] == pytest.approx(bernoulli(thr, p), rel=1e-10)
            assert t["tilt_kl_accessible"] == pytest.approx(t["kl_accessible"], rel=1e-8)
            assert t["tilt_reach_after"] == pytest.approx(cfg["confidence"], abs=1e-9)
        else:
            assert t["kl_accessible"] == 0.0


def test_gibbs_family_optimum_is_on_the_frontier(gibbs_result):
    cfg = gibbs_result["config"]
    logp0, reward = jnp.asarray(cfg["logp0"]), jnp.asarray(cfg["reward"])
    opt = gibbs_result["optimum"]
    kl_max = gibbs_result["kl_max"]
    for budget, beta, kl, er in zip(
        opt["kl_budget"], opt["beta"], opt["kl"], opt["expected_reward"], strict=True
    ):
        if budget < kl_max:
            assert kl == pytest.approx(budget, rel=1e-6)
            f_reward, f_kl = fe.frontier(logp0, reward, beta)
            assert float(f_kl) == pytest.approx(kl, rel=1e-9)
            assert float(f_reward) == pytest.approx(er, rel=1e-9)
        else:
            assert beta == 0.0
            assert kl == pytest.approx(kl_max, rel=1e-9)
            assert er == pytest.approx(float(jnp.max(reward)), rel=1e-12)
    # Recompute the frontier from the JSON inputs.
    fr = gibbs_result["frontier"]
    e, k = fe.frontier(logp0, reward, jnp.asarray(fr["beta"]))
    np.testing.assert_allclose(fr["expected_reward"], e, rtol=1e-12)
    np.testing.assert_allclose(fr["kl"], k, rtol=1e-12, atol=1e-300)
    assert np.all(np.diff(np.asarray(fr["kl"])) <= 1e-15)  # KL falls as beta rises (T4)


def test_gibbs_family_random_points_lie_below_the_frontier(gibbs_result):
    rnd = gibbs_result["random"]
    gap = np.asarray(rnd["frontier_reward"]) - np.asarray(rnd["expected_reward"])
    assert np.all(gap >= -1e-9)


def test_gibbs_family_local_expansion_remainder_is_higher_order(gibbs_result):
    fr = gibbs_result["frontier"]
    beta = np.asarray(fr["beta"])
    rel = np.abs(np.asarray(fr["kl"]) - np.asarray(fr["local_kl"])) / np.asarray(fr["local_kl"])
    big = beta >= 10
    # KL = Var/(2β²) + O(β⁻³): the relative remainder times β stays bounded.
    assert np.max(rel[big] * beta[big]) < 10 * np.min(rel[big] * beta[big]) + 1e-6
    assert rel[-1] < 1e-2


def test_runner_writes_outputs_atomically(tmp_path, capsys):
    assert runner.main(["regimes", "--tiny", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "[1/1] regimes" in out
    data = json.loads((tmp_path / "regimes.json").read_text())
    assert data["experiment"] == "regimes"
    assert len(data["config"]["logp0"]) == data["config"]["n"]
    assert (tmp_path / "regimes.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["regimes.json", "regimes.png"]


def test_runner_lists_and_rejects_unknown(capsys):
    assert runner.main(["--list"]) == 0
    listed = capsys.readouterr().out
    for name in experiments.NAMES:
        assert name in listed
    with pytest.raises(SystemExit):
        runner.main(["no_such_experiment"])
    with pytest.raises(ValueError, match="unknown experiment"):
        experiments.load("no_such_experiment")


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    from experiments import _io

    target = tmp_path / "x.json"
    _io.write_json(target, {"a": 1})
    with pytest.raises(ValueError, match="NaN"):
        _io.write_json(target, {"a": float("nan")})
    assert json.loads(target.read_text()) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]


def test_tiny_run_without_out_leaves_figures_alone(tmp_path, monkeypatch, capsys):
    # A smoke test from the repository root must not replace the committed figures: with --tiny
    # and no --out the outputs go to a scratch folder under the temp directory.
    repo = tmp_path / "repo"
    (repo / "figures").mkdir(parents=True)
    committed = repo / "figures" / "regimes.json"
    committed.write_text('{"committed": true}\n')
    before = committed.stat()
    scratch_root = tmp_path / "tmp"
    scratch_root.mkdir()
    monkeypatch.chdir(repo)
    monkeypatch.setattr(tempfile, "tempdir", str(scratch_root))
    assert runner.main(["regimes", "--tiny"]) == 0
    assert sorted(p.name for p in (repo / "figures").iterdir()) == ["regimes.json"]
    assert committed.read_text() == '{"committed": true}\n'
    assert committed.stat().st_mtime_ns == before.st_mtime_ns
    scratch = scratch_root / "freeenergy-tiny"
    assert sorted(p.name for p in scratch.iterdir()) == ["regimes.json", "regimes.png"]
    assert json.loads((scratch / "regimes.json").read_text())["experiment"] == "regimes"
    assert str(scratch) in capsys.readouterr().out


def test_help_says_where_tiny_outputs_go(capsys):
    with pytest.raises(SystemExit) as exit_info:
        runner.main(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--tiny" in text and str(runner.tiny_out()) in text
    assert "never overwrites the committed figures" in text


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_outputs_get_ordinary_file_modes(tmp_path, umask):
    # mkstemp creates its file 0600; the finished output must have the mode open() would give.
    from experiments import _io

    old = os.umask(umask)
    try:
        _io.write_json(tmp_path / "x.json", {"a": 1})
        with open(tmp_path / "plain.txt", "w") as handle:  # the reference: an ordinary open()
            handle.write("x")
    finally:
        os.umask(old)
    expected = 0o666 & ~umask
    assert stat.S_IMODE((tmp_path / "x.json").stat().st_mode) == expected
    assert stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode) == expected


def test_cli_outputs_are_world_readable_under_the_usual_umask(tmp_path):
    old = os.umask(0o022)
    try:
        assert runner.main(["regimes", "--tiny", "--out", str(tmp_path)]) == 0
    finally:
        os.umask(old)
    for name in ("regimes.json", "regimes.png"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644
