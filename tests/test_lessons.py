"""The lessons (marimo notebooks in ``lessons/``) at their tiny size.

Each lesson runs twice: as a plain script in a subprocess (``python lessons/NN_name.py``, the way
a teacher checks it headless), and in-process through ``app.run()``, whose definitions hold the
lesson's ``key_numbers``; those are checked against independent computations here (NumPy closed
forms), so a lesson cannot drift from the library or from the theory it teaches.
"""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
LESSONS = ROOT / "lessons"
TINY = {"FREEENERGY_LESSON_TINY": "1"}
NOTEBOOKS = sorted(p.name for p in LESSONS.glob("[0-9][0-9]_*.py"))


def _needs_empirical(name: str) -> None:
    """Lesson 6 teaches ``freeenergy.empirical``: skip it where that module is not installed."""
    if name.startswith("06") and importlib.util.find_spec("freeenergy.empirical") is None:
        pytest.skip("lesson 6 needs freeenergy.empirical, which this checkout does not have")


def _run_lesson(name: str, monkeypatch) -> dict:
    """``app.run()`` of a lesson at the tiny size; returns its definitions."""
    monkeypatch.setenv("FREEENERGY_LESSON_TINY", "1")
    monkeypatch.syspath_prepend(str(LESSONS))
    spec = importlib.util.spec_from_file_location(f"lesson_{name[:2]}", LESSONS / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _, defs = module.app.run()
    return defs


def _tilt(p0, reward, beta):
    """The Gibbs tilt p0·exp(r/β)/Z in plain NumPy (max-shifted)."""
    p0 = np.asarray(p0, float)
    logits = np.where(
        p0 > 0, np.log(np.where(p0 > 0, p0, 1.0)) + np.asarray(reward) / beta, -np.inf
    )
    w = np.exp(logits - logits.max())
    return w / w.sum()


def _kl(q, p):
    q, p = np.asarray(q, float), np.asarray(p, float)
    m = q > 0
    return float(np.sum(q[m] * np.log(q[m] / p[m])))


def _bernoulli_kl(t, p):
    return t * math.log(t / p) + (1 - t) * math.log((1 - t) / (1 - p))


def test_every_lesson_is_listed():
    assert NOTEBOOKS == [
        "01_gibbs_tilt.py",
        "02_regimes.py",
        "03_one_target.py",
        "04_passk_crossover.py",
        "05_crossing_a_barrier.py",
        "06_your_data.py",
    ]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_lesson_runs_as_a_script(name):
    _needs_empirical(name)
    env = {**os.environ, **TINY}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [env.get("PYTHONPATH"), str(ROOT)]))
    proc = subprocess.run(
        [sys.executable, str(LESSONS / name)],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-4000:]


def test_lesson_01_gibbs_tilt(monkeypatch):
    d = _run_lesson("01_gibbs_tilt.py", monkeypatch)
    k = d["key_numbers"]
    p0, r = np.exp(np.asarray(d["logp0"])), np.asarray(d["reward"])
    beta = k["beta"]
    q = _tilt(p0, r, beta)
    assert beta == 0.5
    assert k["kl"] == pytest.approx(_kl(q, p0), rel=1e-12)
    assert k["expected_reward"] == pytest.approx(float(q @ r), rel=1e-12)
    log_z = math.log(float(np.sum(p0 * np.exp(r / beta))))
    assert k["min_free_energy"] == pytest.approx(-beta * log_z, rel=1e-12)
    # the tilt attains the minimum: F[q*] = E_q[-r] + β·KL = -β log Z
    assert k["free_energy"] == pytest.approx(-float(q @ r) + beta * _kl(q, p0), rel=1e-12)
    assert k["free_energy"] == pytest.approx(k["min_free_energy"], rel=1e-12)
    assert k["kl_beta_0.1"] == pytest.approx(_kl(_tilt(p0, r, 0.1), p0), rel=1e-10)
    assert k["kl_beta_0.1"] > k["kl"]  # colder costs more KL
    assert k["kl_beta_5"] == pytest.approx(_kl(_tilt(p0, r, 5.0), p0), rel=1e-10)
    var0 = float(p0 @ (r - p0 @ r) ** 2)
    assert k["kl_beta_5"] == pytest.approx(var0 / (2 * 25.0), rel=0.05)
    # tilt_for_kl spends the budget exactly, at the temperature whose tilt has that KL
    assert k["budget_kl"] == pytest.approx(k["budget"], rel=1e-9)
    assert _kl(_tilt(p0, r, k["budget_beta"]), p0) == pytest.approx(k["budget"], rel=1e-6)
    best = r == r.max()
    assert k["limit_kl"] == pytest.approx(-math.log(p0[best].sum()), rel=1e-12)
    assert k["random_below_frontier"] == 1.0


def test_lesson_02_regimes(monkeypatch):
    d = _run_lesson("02_regimes.py", monkeypatch)
    k = d["key_numbers"]
    p0 = np.exp(np.asarray(d["logp0"]))
    n_budget, c, m = k["budget"], k["confidence"], k["basin_mass"]
    t = 1 - (1 - c) ** (1 / n_budget)
    assert k["threshold"] == pytest.approx(t, rel=1e-12)
    # regimes by hand: nucleus = most probable behaviors (ties by index) holding mass m
    order = np.lexsort((np.arange(p0.size), -p0))
    before = np.concatenate([[0.0], np.cumsum(p0[order])[:-1]])
    nucleus = np.zeros(p0.size, bool)
    nucleus[order[before < m]] = True
    accessible = (p0 > 0) & (1 - (1 - p0) ** n_budget >= c)
    counts = {
        "basin": int(np.sum(accessible & nucleus)),
        "tail": int(np.sum(accessible & ~nucleus)),
        "barrier": int(np.sum((p0 > 0) & ~accessible)),
        "singular": int(np.sum(p0 == 0)),
    }
    assert k["counts"] == counts
    assert all(v > 0 for v in counts.values())  # the default view shows all four regimes
    assert k["threshold_1024"] == pytest.approx(1 - 0.5 ** (1 / 1024), rel=1e-12)
    p40 = p0[40]
    first = next((b for b in (1024, 16384, 10**6, 10**8) if 1 - (1 - p40) ** b >= 0.5), None)
    assert k["plateau_first_budget"] == str(first)
    # the step is creation at a small budget and elicitation at the large one
    assert k["verdicts"][16] == "creation"
    assert k["verdicts"][65536] == "elicitation"
    t1024 = 1 - 0.5 ** (1 / 1024)
    assert k["kl_to_access_40"] == pytest.approx(_bernoulli_kl(t1024, p40), rel=1e-9)


def test_lesson_03_one_target(monkeypatch):
    d = _run_lesson("03_one_target.py", monkeypatch)
    k = d["key_numbers"]
    p0, r = np.exp(np.asarray(d["logp0"])), np.asarray(d["reward"])
    beta = k["beta"]
    qstar = _tilt(p0, r, beta)
    np.testing.assert_allclose(np.exp(np.asarray(d["qstar"])), qstar, rtol=1e-12)
    start = _kl(qstar, p0)  # KL(q*‖q_0) with q_0 = p0: where every run starts
    for name in ("SFT on q* demos", "weighted SFT on p0", "REINFORCE + KL", "DPO"):
        logq, _ = d["runs"][(name, "exact")]
        assert k["final_kl"][f"{name} / exact"] == pytest.approx(
            _kl(qstar, np.exp(np.asarray(logq))), rel=1e-9
        )
        assert k["final_kl"][f"{name} / exact"] < 1e-3 * start, name
    # the sampled run makes progress toward the same target, to its noise floor
    assert k["final_kl"]["SFT on q* demos / sampled"] < 0.1 * start
    assert k["sft_vs_rl"] < 1e-3
    stored = np.asarray(d["stored"])
    assert k["stored_price"] == pytest.approx(-beta * math.log(qstar[stored].sum()), rel=1e-10)


def test_lesson_04_passk_crossover(monkeypatch):
    d = _run_lesson("04_passk_crossover.py", monkeypatch)
    k = d["key_numbers"]
    p0 = np.exp(np.asarray(d["logp0"]))
    correct = np.asarray(d["correct"])
    success0 = np.sum(np.where(correct, p0, 0.0), axis=-1)
    assert k["pass_at_1"]["base"] == pytest.approx(success0.mean(), rel=1e-12)
    assert k["pass_at_4096"]["base"] == pytest.approx(
        np.mean(1 - (1 - success0) ** 4096), rel=1e-12
    )
    # the shared policy is the sharpening exponent: q = normalize(p0^(1 + θ))
    sharp = p0 ** (1 + k["theta_rl"])
    sharp /= sharp.sum(-1, keepdims=True)
    np.testing.assert_allclose(
        k["kl_shared"], [_kl(a, b) for a, b in zip(sharp, p0, strict=True)], rtol=1e-9
    )
    success_shared = np.sum(np.where(correct, sharp, 0.0), axis=-1)
    assert k["pass_at_1"]["shared"] == pytest.approx(success_shared.mean(), rel=1e-9)
    # the crossover: RL with the shared parameter wins at k = 1 and loses at k = 4096 ...
    assert k["theta_rl"] > 0
    assert k["pass_at_1"]["shared"] > k["pass_at_1"]["base"]
    assert k["pass_at_4096"]["shared"] < k["pass_at_4096"]["base"]
    assert k["crossing_k"] is not None and k["crossing_k"] > 1
    # ... and the per-prompt tilt at the same KL never loses
    assert k["pass_at_1"]["tilt"] >= k["pass_at_1"]["base"]
    assert k["pass_at_4096"]["tilt"] >= k["pass_at_4096"]["base"] - 1e-12
    assert set(k["losers"]) == set(np.nonzero(success_shared < success0)[0].tolist())


def test_lesson_05_crossing_a_barrier(monkeypatch):
    d = _run_lesson("05_crossing_a_barrier.py", monkeypatch)
    k = d["key_numbers"]
    length, budget = k["length"], k["budget"]
    probs = np.array([0.4, 0.3, 0.2, 0.1])
    target = ([2, 3] * length)[:length]
    p = float(np.prod(probs[target]))
    assert k["p_target"] == pytest.approx(p, rel=1e-12)
    t = 1 - 0.5 ** (1 / budget)
    assert k["regime"] == ("barrier" if p < t else "tail")
    assert k["kl_to_access"] == pytest.approx(_bernoulli_kl(t, p), rel=1e-9)
    n = math.ceil(math.log(0.5) / math.log1p(-p))
    assert k["n_best"] == n
    s = 1 - (1 - p) ** n  # best-of-n with a binary verifier: a Bernoulli tilt
    assert k["best_of_n_kl"] == pytest.approx(_bernoulli_kl(s, p), rel=1e-9)
    assert k["best_of_n_bound"] == pytest.approx(math.log(n) - (n - 1) / n, rel=1e-12)
    assert k["best_of_n_kl"] < k["best_of_n_bound"]
    # one accepted string: tree search outputs it with certainty, at KL -log p
    assert k["tree_kl"] == pytest.approx(-math.log(p), rel=1e-10)
    assert 0 < k["retry_success"] <= 1
    # the tool lifts the target over the access threshold: creation, not new support
    assert k["tool_mass"] >= t
    assert k["tool_regime"] in ("tail", "basin")
    assert k["tool_verdict"] == "creation"
    assert k["info_before"] == "singular"
    assert k["info_after"] in ("barrier", "accessible")
    assert 0 < k["kl_forgetting"] <= -math.log1p(-k["weight"])
    assert k["singular_best_of_n_mass"] == 0.0


def _unbiased_pass_at_k(n: int, c: int, k: int) -> float:
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def test_lesson_06_your_data(monkeypatch):
    _needs_empirical("06_your_data.py")
    d = _run_lesson("06_your_data.py", monkeypatch)
    k = d["key_numbers"]
    sim, base, trained = d["sim"], d["base"], d["trained"]
    assert not k["own_data"]
    # the files written and read back hold exactly the simulated counts
    for loaded, drawn in ((base, sim.base), (trained, sim.trained)):
        assert list(loaded.prompts) == list(drawn.prompts)
        np.testing.assert_array_equal(loaded.n, drawn.n)
        np.testing.assert_array_equal(loaded.correct, drawn.correct)
    n_b, c_b = base.n.tolist(), base.correct.tolist()
    n_t, c_t = trained.n.tolist(), trained.correct.tolist()
    for i, kk in enumerate(k["ks"]):
        want_b = np.mean([_unbiased_pass_at_k(n, c, kk) for n, c in zip(n_b, c_b, strict=True)])
        want_t = np.mean([_unbiased_pass_at_k(n, c, kk) for n, c in zip(n_t, c_t, strict=True)])
        assert k["pass_at_k_base"][i] == pytest.approx(want_b, rel=1e-9, abs=1e-12)
        assert k["pass_at_k_trained"][i] == pytest.approx(want_t, rel=1e-9, abs=1e-12)
    budget = k["budget"]
    reach_b = np.array(
        [_unbiased_pass_at_k(n, c, budget) >= 0.5 for n, c in zip(n_b, c_b, strict=True)]
    )
    reach_t = np.array(
        [_unbiased_pass_at_k(n, c, budget) >= 0.5 for n, c in zip(n_t, c_t, strict=True)]
    )
    assert k["support"] == {
        "both": int(np.sum(reach_b & reach_t)),
        "base_only": int(np.sum(reach_b & ~reach_t)),
        "trained_only": int(np.sum(~reach_b & reach_t)),
        "neither": int(np.sum(~reach_b & ~reach_t)),
    }
    tau = 1 - 0.5 ** (1 / budget)
    assert k["threshold"] == pytest.approx(tau, rel=1e-12)
    assert sum(k["verdicts"].values()) == k["num_prompts"]
    # agreement with the exact verdicts, recomputed from the true probabilities
    pb, pt = np.asarray(d["p_base"]), np.asarray(d["p_trained"])
    rb, rt = pb >= tau, pt >= tau
    truth = np.where(
        ~rb & rt, "creation",
        np.where(rb & ~rt, "lost", np.where(rb & rt & (pt > pb), "elicitation", "unchanged")),
    )  # fmt: skip
    verdict = np.asarray(d["diagnosis"].verdict)
    determined = verdict != "undetermined"
    if determined.any():
        assert k["agreement"] == pytest.approx(np.mean(verdict[determined] == truth[determined]))
    # the verdict is relative to the budget: a larger budget leaves less to call creation
    assert d["creation_by_budget"][256] <= d["creation_by_budget"][16]
    sharp = pb**2 / (pb**2 + (1 - pb) ** 2)
    assert d["sharp_pass1"]["exact trained"] == pytest.approx(sharp.mean(), rel=1e-10)
    assert d["sharp_pass1"]["exact base"] == pytest.approx(pb.mean(), rel=1e-12)
    # more samples per prompt: fewer undetermined verdicts
    fractions = list(d["undetermined_by_n"].values())
    assert fractions[-1] < fractions[0]
