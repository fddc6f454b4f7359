"""FiLM, FramePositionChannels, PitchProfile and AddPitchBias against NumPy, and their round trips."""

import math

import keras
import numpy as np
import pytest

from chroma_keras.errors import ModelInputError
from chroma_keras.layers import AddPitchBias, FiLM, FramePositionChannels, PitchProfile

RNG = np.random.default_rng(0)


def test_film_starts_as_identity_and_matches_numpy_once_trained():
    x = RNG.normal(size=(2, 4, 5, 3)).astype("float32")
    c = RNG.normal(size=(2, 6)).astype("float32")
    layer = FiLM(3)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer([x, c])), x, atol=1e-6)
    kernel = RNG.normal(size=(6, 6)).astype("float32")
    bias = RNG.normal(size=(6,)).astype("float32")
    layer.projection.set_weights([kernel, bias])
    scale_shift = c @ kernel + bias
    want = x * (1 + scale_shift[:, None, None, :3]) + scale_shift[:, None, None, 3:]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer([x, c])), want, rtol=1e-5, atol=1e-5)


def test_frame_position_channels_match_numpy():
    x = RNG.normal(size=(2, 3, 10, 4)).astype("float32")
    out = keras.ops.convert_to_numpy(FramePositionChannels(num_frequencies=3, max_period=32.0)(x))
    periods = np.exp(np.linspace(math.log(2.0), math.log(32.0), 3))
    angles = 2 * math.pi * np.arange(10)[:, None] / periods[None]
    features = np.concatenate([np.sin(angles), np.cos(angles)], axis=-1)
    assert out.shape == (2, 3, 10, 10)
    np.testing.assert_allclose(out[..., :4], x)
    np.testing.assert_allclose(out[..., 4:], np.broadcast_to(features, (2, 3, 10, 6)), atol=1e-5)


def test_pitch_profile_and_pitch_bias_match_numpy():
    roll = RNG.uniform(size=(2, 5, 7)).astype("float32")
    profile = keras.ops.convert_to_numpy(PitchProfile()(roll))
    np.testing.assert_allclose(profile, np.concatenate([roll.mean(2), roll.max(2)], axis=-1), rtol=1e-6)
    bias = RNG.normal(size=(2, 5)).astype("float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(AddPitchBias()([roll, bias])), roll + bias[:, :, None], rtol=1e-6)


@pytest.mark.parametrize(
    "layer,inputs",
    [
        (FiLM(3), [np.ones((1, 2, 2, 3), "float32"), np.ones((1, 4), "float32")]),
        (FramePositionChannels(2, 16.0), np.ones((1, 2, 4, 1), "float32")),
    ],
)
def test_config_round_trip(layer, inputs):
    want = keras.ops.convert_to_numpy(layer(inputs))
    clone = layer.__class__.from_config(layer.get_config())
    if layer.weights:
        clone(inputs)
        clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(clone(inputs)), want)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ModelInputError, match="max_period"):
        FramePositionChannels(num_frequencies=4, max_period=1.0)
    with pytest.raises(ModelInputError, match="channels"):
        FiLM(3)([np.ones((1, 2, 2, 5), "float32"), np.ones((1, 4), "float32")])
