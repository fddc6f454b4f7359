"""Fréchet distance: closed-form Gaussian cases, parity with the sqrtm formula, FD∞ and refusals."""

import numpy as np
import pytest
import scipy.linalg

from chroma_keras.errors import ModelInputError
from chroma_keras.evaluation import frechet_distance, frechet_distance_from_moments


def _random_cov(rng, dim):
    a = rng.standard_normal((dim, dim))
    return a @ a.T / dim + 0.1 * np.eye(dim)


def test_closed_form_cases():
    # Same Gaussian: 0. Shifted means, equal covariances: the squared mean difference.
    mu, cov = np.zeros(3), np.diag([1.0, 2.0, 3.0])
    assert frechet_distance_from_moments(mu, cov, mu, cov) == pytest.approx(0.0, abs=1e-12)
    assert frechet_distance_from_moments(mu, cov, mu + [1.0, 2.0, 0.0], cov) == pytest.approx(5.0, abs=1e-12)
    # Diagonal covariances: sum of (sigma_a - sigma_b)^2.
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 4.0, 1.0])
    want = np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance_from_moments(mu, np.diag(a), mu, np.diag(b)) == pytest.approx(want, abs=1e-12)
    # Scaled isotropic: d * (s_a - s_b)^2.
    assert frechet_distance_from_moments(np.zeros(4), 4 * np.eye(4), np.zeros(4), np.eye(4)) == pytest.approx(4.0)


def test_matches_the_sqrtm_formula_on_random_covariances():
    rng = np.random.default_rng(0)
    for dim in (2, 8, 32):
        mu_a, mu_b = rng.standard_normal(dim), rng.standard_normal(dim)
        cov_a, cov_b = _random_cov(rng, dim), _random_cov(rng, dim)
        covmean = scipy.linalg.sqrtm(cov_a @ cov_b).real
        want = np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2 * covmean)
        assert frechet_distance_from_moments(mu_a, cov_a, mu_b, cov_b) == pytest.approx(want, rel=1e-8)


def test_stable_on_a_singular_covariance():
    rng = np.random.default_rng(1)
    cov = _random_cov(rng, 6)
    singular = np.diag([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
    value = frechet_distance_from_moments(np.zeros(6), singular, np.zeros(6), cov)
    assert np.isfinite(value) and value > 0


def test_sample_estimate_and_fd_inf_approach_the_true_distance():
    rng = np.random.default_rng(2)
    dim = 8
    real = rng.standard_normal((2000, dim))
    generated = rng.standard_normal((2000, dim)) * 1.5 + 0.5
    true = dim * 0.25 + dim * 0.25  # mean shift 0.5 per dim; sigma 1 vs 1.5
    result = frechet_distance(real, generated, extrapolate=True, embedding="toy")
    assert result.value == pytest.approx(true, rel=0.1) and result.fd_inf == pytest.approx(true, rel=0.1)
    assert (result.num_real, result.num_generated, result.dim) == (2000, 2000, 8) and "toy" in str(result)
    # On identical distributions the plain estimate is biased up by ~c/n; FD∞ removes most of it.
    a, b = rng.standard_normal((200, 16)), rng.standard_normal((200, 16))
    same = frechet_distance(a, b, extrapolate=True)
    assert same.value > 0.5 and abs(same.fd_inf) < same.value / 2


def test_refuses_too_few_samples_and_bad_input():
    rng = np.random.default_rng(3)
    with pytest.raises(ModelInputError, match=r"too few for 16-dimensional.*at least 17"):
        frechet_distance(rng.standard_normal((10, 16)), rng.standard_normal((100, 16)))
    with pytest.raises(ModelInputError, match="at least 34"):
        frechet_distance(rng.standard_normal((20, 16)), rng.standard_normal((100, 16)), extrapolate=True)
    with pytest.raises(ModelInputError, match="differ in width"):
        frechet_distance(rng.standard_normal((50, 4)), rng.standard_normal((50, 5)))
    with pytest.raises(ModelInputError, match="generated holds NaN"):
        frechet_distance(rng.standard_normal((50, 4)), np.full((50, 4), np.nan))
    with pytest.raises(ModelInputError, match=r"\[num_samples, dim\]"):
        frechet_distance(np.zeros(5), np.zeros(5))


def test_bootstrap_interval_of_the_distance_covers_a_closed_form_case():
    from chroma_keras.evaluation.frechet import frechet_interval

    rng = np.random.default_rng(0)
    # Same covariance, means 2 apart on one axis: the population distance is exactly 4.
    real = rng.normal(size=(400, 2))
    generated = rng.normal(size=(400, 2)) + np.array([2.0, 0.0])
    estimate = frechet_interval(real, generated, seed=0)
    assert estimate.low < 4.0 < estimate.high and estimate.high - estimate.low < 1.5
    assert estimate.value == pytest.approx(frechet_distance(real, generated).value)
    assert frechet_interval(real, generated, seed=0) == estimate  # seeded
    with pytest.raises(ModelInputError, match="confidence must be in"):
        frechet_interval(real, generated, confidence=1.5)
    with pytest.raises(ModelInputError, match="too few"):
        frechet_interval(real[:2], generated[:2])
