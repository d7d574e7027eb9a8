"""The NumPy baselines of the empirical benchmark compute what ``freeenergy.empirical`` does."""

import jax
import numpy as np

from benchmarks.bench_empirical import (
    np_bootstrap_loop,
    np_bootstrap_matrix,
    np_interval,
    np_pass_table,
    problem,
    same_numbers_check,
)
from freeenergy import empirical as em


def test_numpy_pass_table_matches_the_library():
    base, trained = problem(prompts=40, n=64, seed=1)
    for counts in (base, trained):
        np.testing.assert_allclose(
            np_pass_table(counts.n, counts.correct, 64),
            em.pass_at_k(counts, np.arange(1, 65)),
            rtol=1e-12,
            atol=1e-15,
        )


def test_numpy_bootstraps_match_the_library_on_the_same_indices():
    base, trained = problem(prompts=40, n=64, seed=2)
    key = jax.random.key(4)
    k = np.arange(1, 33)
    d = em.paired_difference(base, trained, k, num_bootstrap=300, key=key)
    diff = np_pass_table(trained.n, trained.correct, 32) - np_pass_table(base.n, base.correct, 32)
    idx = np.asarray(em.bootstrap_indices(key, 300, 40))
    matrix = np_bootstrap_matrix(diff, idx)
    loop = np_bootstrap_loop(diff, 300, idx=idx)
    np.testing.assert_allclose(matrix, loop, rtol=1e-12, atol=1e-15)
    low, high = np_interval(matrix)
    np.testing.assert_allclose(d.low, low, atol=1e-13)
    np.testing.assert_allclose(d.high, high, atol=1e-13)
    assert same_numbers_check(base, trained, 32, 300, key) < 1e-13
    # the loop's own draws are uniform resamples too: its mean of means is near the plain mean
    own = np_bootstrap_loop(diff, 2000, seed=0)
    se = diff.std(axis=0) / np.sqrt(40) / np.sqrt(2000)  # sd of the mean of 2000 resample means
    assert np.all(np.abs(own.mean(axis=0) - diff.mean(axis=0)) < 6 * se + 1e-12)
