"""Latent interpolation, arithmetic and attribute vectors against closed forms."""

import numpy as np
import pytest

from chroma_keras.errors import ModelInputError
from chroma_keras.generation import apply_attribute, attribute_vector, interpolate, latent_arithmetic, lerp, slerp


def test_slerp_follows_the_great_circle():
    a, b = np.array([1.0, 0.0, 0.0]), np.array([0.0, 2.0, 0.0])
    mid = slerp(a, b, 0.5)
    # Direction at 45 degrees, norm halfway between 1 and 2.
    np.testing.assert_allclose(mid, 1.5 * np.array([np.sqrt(0.5), np.sqrt(0.5), 0.0]), atol=1e-6)
    np.testing.assert_allclose(slerp(a, b, 0.0), a, atol=1e-6)
    np.testing.assert_allclose(slerp(a, b, 1.0), b, atol=1e-6)
    # Equal angular steps.
    path = interpolate(a, b, num_steps=5, method="slerp")
    angles = np.arctan2(path[:, 1], path[:, 0])
    np.testing.assert_allclose(np.diff(angles), np.pi / 8, atol=1e-6)


def test_slerp_keeps_gaussian_latents_at_typical_radius():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=64), rng.normal(size=64)
    assert np.linalg.norm(slerp(a, b, 0.5)) > 1.2 * np.linalg.norm(lerp(a, b, 0.5))


def test_parallel_vectors_fall_back_to_linear():
    a = np.array([1.0, 1.0])
    np.testing.assert_allclose(slerp(a, 3 * a, 0.5), 2 * a, atol=1e-6)


def test_linear_interpolation_and_arithmetic():
    a, b = np.zeros(3), np.array([2.0, 4.0, 6.0])
    np.testing.assert_allclose(interpolate(a, b, 3, method="linear"), [[0, 0, 0], [1, 2, 3], [2, 4, 6]])
    np.testing.assert_allclose(latent_arithmetic(a, add=[b], subtract=[b / 2], scale=2.0), b)


def test_attribute_vector_recovers_a_planted_direction():
    rng = np.random.default_rng(1)
    direction = rng.normal(size=16)
    direction /= np.linalg.norm(direction)
    values = rng.uniform(0, 10, size=400)
    latents = rng.normal(size=(400, 16)) + np.outer(values - 5, direction) * 0.5
    for method in ("median_split", "regression"):
        found = attribute_vector(latents, values, method=method)
        assert np.dot(found, direction) > 0.95, method
    moved = apply_attribute(latents[:2], direction, strength=3.0)
    np.testing.assert_allclose(moved - latents[:2], 3.0 * np.tile(direction, (2, 1)), atol=1e-5)


def test_latent_tool_errors():
    with pytest.raises(ModelInputError, match="method must be one of"):
        interpolate(np.zeros(2), np.ones(2), method="cubic")
    with pytest.raises(ModelInputError, match="num_steps must be >= 2"):
        interpolate(np.zeros(2), np.ones(2), num_steps=1)
    with pytest.raises(ModelInputError, match="same shape"):
        slerp(np.ones(2), np.ones(3), 0.5)
    with pytest.raises(ModelInputError, match="not all equal"):
        attribute_vector(np.zeros((5, 2)), np.ones(5))
    with pytest.raises(ModelInputError, match="direction has 3 dims"):
        apply_attribute(np.zeros((2, 4)), np.zeros(3))
