"""Sinusoidal frame-position channels for piano-roll feature maps."""

import math

import keras
from keras import ops

from chroma_keras.errors import ModelInputError


@keras.saving.register_keras_serializable(package="chroma_keras")
class FramePositionChannels(keras.layers.Layer):
    """Appends ``sin`` / ``cos`` of the column index to a ``[batch, pitches, frames, channels]`` map.

    Convolutions are blind to where they are in time; a decoder that must lay a
    loop's notes on exact frames (periods of 30-64 frames in the demo corpus) gets
    that position as ``2 * num_frequencies`` extra channels, with periods spaced
    geometrically from 2 to ``max_period`` columns of the map it is applied to.

    Args:
        num_frequencies: sinusoid pairs appended.
        max_period: longest period, in columns.

    Returns:
        ``[batch, pitches, frames, channels + 2 * num_frequencies]``.
    """

    def __init__(self, num_frequencies=8, max_period=128.0, **kwargs):
        super().__init__(**kwargs)
        if num_frequencies < 1 or max_period <= 2:
            raise ModelInputError(
                "FramePositionChannels needs num_frequencies >= 1 and max_period > 2. "
                f"Received: num_frequencies={num_frequencies}, max_period={max_period}"
            )
        self.num_frequencies = int(num_frequencies)
        self.max_period = float(max_period)

    def call(self, x):
        batch, height, width = ops.shape(x)[0], ops.shape(x)[1], ops.shape(x)[2]
        frames = ops.cast(ops.arange(width), "float32")
        periods = ops.exp(ops.linspace(math.log(2.0), math.log(self.max_period), self.num_frequencies))
        angles = 2.0 * math.pi * frames[:, None] / periods[None, :]
        features = ops.concatenate([ops.sin(angles), ops.cos(angles)], axis=-1)
        features = ops.broadcast_to(features[None, None], (batch, height, width, 2 * self.num_frequencies))
        return ops.concatenate([x, ops.cast(features, x.dtype)], axis=-1)

    def compute_output_shape(self, input_shape):
        channels = None if input_shape[-1] is None else input_shape[-1] + 2 * self.num_frequencies
        return tuple(input_shape[:-1]) + (channels,)

    def get_config(self):
        config = super().get_config()
        config.update({"num_frequencies": self.num_frequencies, "max_period": self.max_period})
        return config
