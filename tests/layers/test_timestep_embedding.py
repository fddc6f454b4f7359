"""SinusoidalTimestepEmbedding: parity with diffusers' get_timestep_embedding, golden values, config, errors."""

import keras
import numpy as np
import pytest

from chroma_keras.errors import ModelInputError
from chroma_keras.layers.timestep_embedding import SinusoidalTimestepEmbedding, timestep_frequencies

torch = pytest.importorskip("torch")
embeddings = pytest.importorskip("diffusers.models.embeddings")

TIMESTEPS = np.array([0, 1, 7, 50, 250, 499, 731, 999], np.int64)


def reference(timesteps, dim, **kwargs):
    """diffusers' embedding of ``timesteps`` as a NumPy array (float32)."""
    out = embeddings.get_timestep_embedding(torch.from_numpy(np.asarray(timesteps)), dim, **kwargs)
    return out.numpy()


def torch_frequencies(dim, max_period=10000, downscale_freq_shift=0, **_):
    """The frequencies diffusers forms inside get_timestep_embedding (float32 exponent, torch.exp)."""
    exponent = -np.log(max_period) * torch.arange(0, dim // 2, dtype=torch.float32) / (dim // 2 - downscale_freq_shift)
    return torch.exp(exponent).numpy()


def tolerance(timesteps, dim, kwargs):
    """1e-5, plus what a frequency differing in its last bit does to the sines.

    Our frequencies are rounded as diffusers' are, but torch.exp misrounds about 1% of
    float32 inputs by one ulp; a timestep t then moves that column's float32 angle by
    ``t * scale * |df|`` plus one rounding of the angle (up to 6e-5 each for an angle
    near 600). Every other column gets 1e-5.
    """
    ours = timestep_frequencies(dim, kwargs.get("max_period", 10000), kwargs.get("downscale_freq_shift", 0))
    theirs = torch_frequencies(dim, **kwargs)
    assert np.all(np.abs(ours.astype(np.float64) - theirs) <= np.spacing(theirs)), "more than one ulp apart"
    angles = timesteps[:, None] * kwargs.get("scale", 1.0) * theirs.astype(np.float64)
    drift = np.abs(angles / theirs * (ours.astype(np.float64) - theirs))
    drift = np.where(ours != theirs, drift + np.spacing(angles.astype(np.float32)), 0.0)
    drift = np.concatenate([drift, drift] + ([np.zeros((len(timesteps), 1))] if dim % 2 else []), axis=1)
    return 1e-5 + 1.01 * drift


@pytest.mark.parametrize(
    "dim,kwargs",
    [
        (32, {}),  # our defaults: cos first, no shift
        (33, {}),  # odd width: a trailing zero column
        (64, {"flip_sin_to_cos": False, "downscale_freq_shift": 1}),  # diffusers' own defaults (DDPM order)
        (7, {"max_period": 100, "downscale_freq_shift": 1}),
        (128, {"scale": 2.5, "max_period": 1000}),
        (2, {}),
    ],
)
def test_matches_diffusers(dim, kwargs):
    layer = SinusoidalTimestepEmbedding(dim, **kwargs)
    theirs_kwargs = {"flip_sin_to_cos": True, "downscale_freq_shift": 0, **kwargs}
    got = keras.ops.convert_to_numpy(layer(TIMESTEPS))
    assert got.shape == (len(TIMESTEPS), dim) and got.dtype == np.float32
    error = np.abs(got - reference(TIMESTEPS, dim, **theirs_kwargs))
    bound = tolerance(TIMESTEPS, dim, theirs_kwargs)
    assert np.all(error <= bound), f"max error {error.max():.2e}; worst excess {(error - bound).max():.2e}"
    assert np.mean(bound == 1e-5) > 0.9  # the 1e-5 bound holds for nearly every column
    if dim % 2:
        assert np.all(got[:, -1] == 0.0)


def test_fractional_timesteps_match_diffusers():
    t = np.array([0.0, 0.25, 3.5, 10.125, 999.75], np.float32)
    got = keras.ops.convert_to_numpy(SinusoidalTimestepEmbedding(16)(t))
    np.testing.assert_allclose(got, reference(t, 16, flip_sin_to_cos=True, downscale_freq_shift=0), rtol=0, atol=1e-5)


def test_golden_values_written_out():
    # dim 4, shift 0: frequencies 10000 ** (-i / 2) = [1, 0.01]; cos first.
    got = keras.ops.convert_to_numpy(SinusoidalTimestepEmbedding(4)(np.array([0, 3])))
    expected = np.array([[1, 1, 0, 0], [np.cos(3), np.cos(0.03), np.sin(3), np.sin(0.03)]], np.float32)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(timestep_frequencies(6, 10000, 1), [1.0, 0.01, 1e-4], rtol=1e-6)


def test_extra_leading_axes_and_mixed_precision():
    t = np.arange(6).reshape(2, 3)
    got = SinusoidalTimestepEmbedding(10, dtype="mixed_float16")(t)
    assert tuple(got.shape) == (2, 3, 10) and keras.backend.standardize_dtype(got.dtype) == "float16"


def test_config_round_trip():
    layer = SinusoidalTimestepEmbedding(9, max_period=500, flip_sin_to_cos=False, downscale_freq_shift=1, scale=3.0, name="t_emb")
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(clone, SinusoidalTimestepEmbedding) and clone.get_config() == layer.get_config()
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(clone(TIMESTEPS)), keras.ops.convert_to_numpy(layer(TIMESTEPS)))


@pytest.mark.parametrize(
    "kwargs,argument",
    [
        ({"dim": 1}, "dim"),
        ({"dim": 8.0}, "dim"),
        ({"dim": 8, "max_period": 0}, "max_period"),
        ({"dim": 2, "downscale_freq_shift": 1}, "downscale_freq_shift"),
    ],
)
def test_bad_arguments_raise_model_input_error(kwargs, argument):
    with pytest.raises(ModelInputError, match=argument):
        SinusoidalTimestepEmbedding(**kwargs)
