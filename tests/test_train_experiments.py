"""The sft_rl_unified, mode_collapse and kl_estimators experiments at TINY size, checked against
independent recomputations from the inputs their JSON records."""

import jax
import numpy as np
import pytest

from experiments import kl_estimators, mode_collapse, sft_rl_unified
from experiments._io import to_jsonable


def run_tiny(module):
    config = {**module.CONFIG, **module.TINY}
    result = module.run(config, jax.random.key(config["seed"]))
    return result, to_jsonable(result)  # checked as written to JSON: plain floats and lists


def log_gibbs(logp0, reward, beta):
    logits = np.asarray(logp0) + np.asarray(reward) / beta
    return logits - np.logaddexp.reduce(logits)


def kl_np(logq, logp):
    q = np.exp(logq)
    pos = q > 0
    return float(np.sum(q[pos] * (np.asarray(logq)[pos] - np.asarray(logp)[pos])))


def has_text(fig):
    return all(ax.get_title() and ax.get_xlabel() and ax.get_ylabel() for ax in fig.axes)


@pytest.fixture(scope="module")
def unified():
    return run_tiny(sft_rl_unified)


@pytest.fixture(scope="module")
def collapse():
    return run_tiny(mode_collapse)


@pytest.fixture(scope="module")
def estimators():
    return run_tiny(kl_estimators)


def test_sft_rl_unified(unified):
    """End points on the Gibbs target; DPO's implicit reward; the T11 price; the figure."""
    _, res = unified
    cfg = res["config"]
    target = log_gibbs(cfg["logp0"], cfg["reward"], cfg["beta"])
    np.testing.assert_allclose(res["gibbs_target"], target, atol=1e-12)
    exact = [name for name, m in res["methods"].items() if m["mode"] == "exact"]
    assert exact and all(name in res["methods"] for name in cfg["methods"])
    for name in exact:
        logq = np.asarray(res["methods"][name]["final_logq"])
        np.testing.assert_allclose(logq, target, atol=2e-3, err_msg=name)
        assert kl_np(target, logq) < 1e-5, name
    for name, m in res["methods"].items():
        if m["mode"] == "sampled":
            assert kl_np(target, np.asarray(m["final_logq"])) < 5e-2, name
            assert m["kl_target"][-1] < m["kl_target"][0], name
    reward = np.asarray(cfg["reward"])
    energy = np.asarray(res["implied_energy"]["dpo"])
    # Stored shifted by the constant that best aligns it with -r: -energy = r when recovered.
    np.testing.assert_allclose(-energy, reward, atol=5e-3)
    # Stored-support price, recomputed from the stored draws alone.
    st = res["stored_support"]
    target = log_gibbs(cfg["logp0"], cfg["reward"], cfg["beta"])
    draws = np.asarray(cfg["stored_draws"])
    for i, m in enumerate(st["size"]):
        stored = np.zeros(len(reward), bool)
        stored[draws[:m]] = True
        price = -cfg["beta"] * np.logaddexp.reduce(target[stored])
        assert st["price"][i] == pytest.approx(price, abs=1e-12)
        assert st["gap_on_data"][i] >= price - 1e-12  # the S-supported optimum is the best
        assert st["gap_trained"][i] >= -1e-12  # nothing beats the Gibbs optimum (T1)
    assert np.all(np.diff(st["price"]) <= 1e-12)  # more stored samples, lower price
    result, _ = unified
    fig = sft_rl_unified.plot({"experiment": "sft_rl_unified", **result})
    assert len(fig.axes) == 4 and has_text(fig)


def test_mode_collapse_ratios(collapse):
    result, res = collapse
    cfg = res["config"]
    logp0 = np.asarray(cfg["logp0"])
    a, b = cfg["likeliest"], cfg["rarest"]
    ref = logp0[a] - logp0[b]
    for name in ("natural_pg", "tilt"):
        np.testing.assert_allclose(res["methods"][name]["log_ratio"], ref, atol=1e-9)
    np.testing.assert_allclose(res["tilts"]["log_ratio"], ref, atol=1e-12)
    vanilla = res["methods"]["vanilla_pg"]
    assert np.all(np.diff(vanilla["log_ratio"]) > 0)  # the likelier answer keeps gaining
    assert vanilla["matched_success"] >= cfg["match_success"]
    # Expected distinct correct answers at the matched point, recomputed from its log-probs.
    ks = np.asarray(cfg["ks"], float)
    correct = np.asarray(cfg["correct"])
    for m in res["methods"].values():
        q = np.exp(np.asarray(m["matched_logq"]))[correct]
        distinct = np.sum(1 - (1 - q[None, :]) ** ks[:, None], axis=1)
        np.testing.assert_allclose(m["matched_distinct"], distinct, atol=1e-12)
    assert res["methods"]["vanilla_pg"]["matched_distinct"][-1] < (
        res["methods"]["tilt"]["matched_distinct"][-1] - 0.1
    )
    fig = mode_collapse.plot({"experiment": "mode_collapse", **result})
    assert len(fig.axes) == 4 and has_text(fig)


def test_kl_estimators_exact_moments_and_training_end_points(estimators):
    result, res = estimators
    cfg = res["config"]
    logp0 = np.asarray(cfg["logp0"])
    reward = np.asarray(cfg["reward"])
    fam = res["family"]
    for beta, mean, kl in zip(fam["beta"], fam["mean"], fam["kl"], strict=True):
        logq = log_gibbs(logp0, reward, beta)
        q, lr = np.exp(logq), logp0 - logq
        assert kl == pytest.approx(kl_np(logq, logp0), abs=1e-12)
        expected = [np.sum(q * -lr), np.sum(q * lr**2 / 2), np.sum(q * (np.expm1(lr) - lr))]
        np.testing.assert_allclose(mean, expected, atol=1e-12)
    bias = np.asarray(fam["bias"])
    assert np.max(np.abs(bias[:, [0, 2]])) < 1e-12 and np.max(np.abs(bias[:, 1])) > 1e-3
    miss = res["missing"]
    dropped = np.asarray(miss["dropped"])
    mass = np.sum(np.where(dropped, np.exp(logp0), 0.0), axis=1)
    np.testing.assert_allclose(np.asarray(miss["bias"])[:, 2], -mass, atol=1e-12)
    # Training: k1 in the reward reaches the Gibbs target, k3 in the loss the forward-KL optimum
    # (recomputed here by an independent bisection).
    tr_ = res["training"]
    beta = tr_["beta"]
    pl = tr_["placements"]
    target = log_gibbs(logp0, reward, beta)
    assert kl_np(target, np.asarray(pl["k1_reward"]["final_logq"])) < 1e-6
    p0 = np.exp(logp0)
    lam = optimize_lambda(p0, reward, beta)
    forward = beta * p0 / (lam - reward)
    np.testing.assert_allclose(np.exp(pl["k3_loss"]["final_logq"]), forward, atol=1e-6)
    assert kl_np(target, np.asarray(pl["k3_loss"]["final_logq"])) > 1e-3
    fig = kl_estimators.plot({"experiment": "kl_estimators", **result})
    assert len(fig.axes) == 4 and has_text(fig)


def optimize_lambda(p0, reward, beta):
    """Newton on f(λ) = Σ β p0/(λ − r) − 1 on (max r, ∞), where f is decreasing and convex:
    started left of the root (f > 0), the iterates increase monotonically to it."""
    top = np.argmax(reward)
    lam = reward[top] + 0.5 * beta * p0[top]  # the top term alone makes f >= 1 here
    for _ in range(100):
        f = np.sum(beta * p0 / (lam - reward)) - 1.0
        if abs(f) < 1e-15:
            break
        lam -= f / -np.sum(beta * p0 / (lam - reward) ** 2)
    return lam
