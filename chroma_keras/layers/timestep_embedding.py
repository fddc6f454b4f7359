"""Sinusoidal embedding of diffusion timesteps (Ho et al. 2020; Vaswani et al. 2017)."""

import math

import keras
import numpy as np
from keras import ops

from chroma_keras.errors import ModelInputError


def timestep_frequencies(dim, max_period=10000.0, downscale_freq_shift=0.0):
    """The ``dim // 2`` angular frequencies of :class:`SinusoidalTimestepEmbedding`.

    Frequency ``i`` is ``max_period ** (-i / (dim // 2 - downscale_freq_shift))``: the
    first is 1 (one radian per timestep) and they fall geometrically towards
    ``1 / max_period``. The exponent is rounded to float32 at each step as
    diffusers' ``get_timestep_embedding`` rounds it (then exponentiated exactly and
    rounded once), so the frequencies agree with diffusers' to the last bit in
    almost every case; with float64 exponents they would differ by about one ulp,
    which a timestep near 1000 turns into errors of ~1e-4 in the features.

    Args:
        dim: embedding width (at least 2).
        max_period: the longest period, in timesteps.
        downscale_freq_shift: subtracted from ``dim // 2`` in the exponent's
            denominator; 0 makes the last frequency exactly ``1 / max_period`` only
            in the limit, 1 makes it exactly ``1 / max_period``.

    Returns:
        float32 NumPy array ``[dim // 2]``.
    """
    half = dim // 2
    exponent = np.float32(-math.log(max_period)) * np.arange(half, dtype=np.float32)
    exponent = exponent / np.float32(half - downscale_freq_shift)
    return np.exp(exponent.astype(np.float64)).astype(np.float32)


@keras.saving.register_keras_serializable(package="chroma_keras")
class SinusoidalTimestepEmbedding(keras.layers.Layer):
    """Maps (integer or fractional) timesteps to fixed sinusoidal features.

    For ``half = dim // 2`` frequencies ``f_i`` (:func:`timestep_frequencies`), a
    timestep ``t`` becomes ``[cos(s t f), sin(s t f)]`` (``flip_sin_to_cos=True``,
    the order of the DDPM / ADM U-Nets) or ``[sin(s t f), cos(s t f)]``, with ``s =
    scale``; an odd ``dim`` gets a trailing zero column. This is the convention of
    diffusers' ``get_timestep_embedding`` (the tests check parity), with defaults
    ``flip_sin_to_cos=True, downscale_freq_shift=0`` as its ``UNet2DModel`` uses.
    The layer has no weights; denoisers follow it with a small MLP.

    The arguments ``t f`` are formed in float32 (exact for integer timesteps below
    2**24), so the features are the same on every backend; the result is cast to
    the layer's compute dtype.

    Args:
        dim: output width (at least 2; odd widths are zero-padded).
        max_period: the longest period, in timesteps.
        flip_sin_to_cos: put the cosines first.
        downscale_freq_shift: see :func:`timestep_frequencies` (must be below ``dim // 2``).
        scale: multiplies ``t`` before the sines.
        **kwargs: ``keras.layers.Layer`` arguments.

    Call arguments:
        timesteps: int or float tensor ``[batch]`` (any shape ``[...]`` works).

    Returns:
        float tensor ``[batch, dim]`` (``[..., dim]``).

    Example:
    >>> layer = SinusoidalTimestepEmbedding(8)
    >>> layer(np.array([0, 10, 999])).shape
    (3, 8)
    """

    def __init__(self, dim, max_period=10000, flip_sin_to_cos=True, downscale_freq_shift=0, scale=1.0, **kwargs):
        super().__init__(**kwargs)
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 2:
            raise ModelInputError(f"SinusoidalTimestepEmbedding: dim must be an integer >= 2. Received: dim={dim!r}")
        if not max_period > 0:
            raise ModelInputError(f"SinusoidalTimestepEmbedding: max_period must be > 0. Received: max_period={max_period!r}")
        if not downscale_freq_shift < dim // 2:
            raise ModelInputError(
                "SinusoidalTimestepEmbedding: downscale_freq_shift must be below dim // 2 "
                f"({dim // 2}), or the frequencies divide by zero. Received: downscale_freq_shift={downscale_freq_shift!r}"
            )
        self.dim = int(dim)
        self.max_period = max_period
        self.flip_sin_to_cos = bool(flip_sin_to_cos)
        self.downscale_freq_shift = downscale_freq_shift
        self.scale = float(scale)
        self._frequencies = timestep_frequencies(self.dim, float(max_period), float(downscale_freq_shift))
        self.built = True

    def call(self, timesteps):
        t = ops.cast(timesteps, "float32")
        frequencies = ops.convert_to_tensor(self._frequencies, "float32")
        angles = t[..., None] * frequencies
        if self.scale != 1.0:
            angles = angles * self.scale
        parts = [ops.cos(angles), ops.sin(angles)] if self.flip_sin_to_cos else [ops.sin(angles), ops.cos(angles)]
        if self.dim % 2 == 1:
            parts.append(ops.zeros_like(angles[..., :1]))
        return ops.cast(ops.concatenate(parts, axis=-1), self.compute_dtype)

    def compute_output_shape(self, timesteps_shape):
        return tuple(timesteps_shape) + (self.dim,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "dim": self.dim,
                "max_period": self.max_period,
                "flip_sin_to_cos": self.flip_sin_to_cos,
                "downscale_freq_shift": self.downscale_freq_shift,
                "scale": self.scale,
            }
        )
        return config
