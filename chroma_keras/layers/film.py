"""Feature-wise linear modulation (Perez et al., 2018) of channels-last feature maps."""

import keras
from keras import ops

from chroma_keras.errors import ModelInputError


@keras.saving.register_keras_serializable(package="chroma_keras")
class FiLM(keras.layers.Layer):
    """Scales and shifts the channels of ``x`` by amounts predicted from a vector ``c``.

    ``y = x * (1 + gamma(c)) + beta(c)`` with ``gamma, beta`` one Dense layer,
    zero-initialised so the layer starts as the identity and the modulation grows
    only as training finds it useful.

    Args:
        channels: channels of ``x`` (its last axis).

    Call arguments:
        inputs: ``[x, c]``: ``x`` ``[batch, ..., channels]`` and ``c`` ``[batch, features]``.

    Returns:
        A tensor shaped like ``x``.
    """

    def __init__(self, channels, **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.projection = keras.layers.Dense(
            2 * self.channels, kernel_initializer="zeros", name="projection", dtype=self.dtype_policy
        )

    def build(self, input_shape):
        x_shape, c_shape = input_shape
        if x_shape[-1] is not None and x_shape[-1] != self.channels:
            raise ModelInputError(f"{self.name}: x has {x_shape[-1]} channels; this FiLM layer was made for {self.channels}.")
        self.projection.build(c_shape)
        self.built = True

    def call(self, inputs):
        x, c = inputs
        scale_shift = self.projection(c)
        broadcast = (-1,) + (1,) * (len(x.shape) - 2) + (2 * self.channels,)
        scale_shift = ops.reshape(scale_shift, broadcast)
        scale, shift = scale_shift[..., : self.channels], scale_shift[..., self.channels :]
        return x * (1.0 + scale) + shift

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        config = super().get_config()
        config.update({"channels": self.channels})
        return config
