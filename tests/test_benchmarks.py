"""The NumPy baselines of the flat benchmark compute the same thing as the library."""

import jax.numpy as jnp
import numpy as np
import pytest

import freeenergy as fe
from benchmarks.bench_flat import np_gibbs, np_log_partition, np_tilt_for_kl


@pytest.fixture(scope="module")
def instance():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=2000)
    logp0 = logits - np.logaddexp.reduce(logits)
    return logp0, rng.normal(size=2000)


def test_numpy_gibbs_and_log_partition_match_the_library(instance):
    logp0, energy = instance
    np.testing.assert_allclose(
        np_gibbs(logp0, energy, 0.7),
        fe.gibbs(jnp.asarray(logp0), jnp.asarray(energy), 0.7),
        rtol=0,
        atol=1e-12,
    )
    assert np_log_partition(logp0, energy, 0.7) == pytest.approx(
        float(fe.log_partition(jnp.asarray(logp0), jnp.asarray(energy), 0.7)), abs=1e-12
    )


def test_numpy_tilt_for_kl_matches_the_library(instance):
    logp0, energy = instance
    np_logq, np_beta = np_tilt_for_kl(logp0, -energy, 0.5)
    logq, beta = fe.tilt_for_kl(jnp.asarray(logp0), -jnp.asarray(energy), 0.5)
    assert np_beta == pytest.approx(float(beta), rel=1e-5)
    assert float(fe.kl(jnp.asarray(np_logq), jnp.asarray(logp0))) == pytest.approx(0.5, rel=1e-5)
    np.testing.assert_allclose(np_logq, logq, atol=1e-4)


def test_numpy_grpo_baselines_compute_what_the_library_computes():
    from benchmarks.bench_grpo import LoopGRPO, NumpyGRPO, _problem, _same_algorithm_check

    logp0, reward = _problem(4, 300)
    checks = _same_algorithm_check(logp0, reward, 8)
    assert set(checks) == {"loop", "vectorized"}
    for gradient, metrics, loss in checks.values():
        # float32 on both sides; the loosest metric is KL(q||p0) ~ 2e-4 after a few steps,
        # a difference of logs of nearly equal numbers.
        assert gradient < 1e-4 and metrics < 1e-3 and loss < 1e-5
    # The two NumPy implementations draw differently but train the same: on one set of groups
    # they take the same step.
    rng = np.random.default_rng(0)
    loop, vectorized = LoopGRPO(logp0, reward, 8), NumpyGRPO(logp0, reward, 8)
    theta = logp0 + 0.1 * rng.normal(size=logp0.shape).astype(np.float32)
    y = vectorized.sample(rng, theta)
    assert y.shape == (4, 8) and y.min() >= 0 and y.max() < 300
    a, b = loop.gradient(theta, y), vectorized.gradient(theta, y)
    np.testing.assert_allclose(a[0], b[0], rtol=1e-4, atol=1e-9)
    assert a[1:] == pytest.approx(b[1:], rel=1e-5)


def test_numpy_kl_and_free_energy_match_the_library(instance):
    from benchmarks.bench_flat import np_free_energy, np_kl

    logp0, energy = instance
    logq = np.array(fe.gibbs(jnp.asarray(logp0), jnp.asarray(energy), 2.0))
    logq[::9] = -np.inf  # zero mass: 0 log 0 = 0 on both sides
    logq = logq - np.logaddexp.reduce(logq[logq > -np.inf])
    assert np_kl(logq, logp0) == pytest.approx(float(fe.kl(logq, logp0)), rel=1e-12, abs=1e-15)
    assert np_free_energy(logq, logp0, energy, 0.7) == pytest.approx(
        float(fe.free_energy(logq, logp0, energy, 0.7)), rel=1e-12
    )


def test_floor_times_are_positive():
    from benchmarks.bench_flat import floor_times

    read, copy = floor_times(np.ones(1000, np.float32), np.ones(1000, np.float32), repeat=1)
    assert 0 < read and 0 < copy
