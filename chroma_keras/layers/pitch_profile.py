"""Per-pitch summaries of a piano roll and per-pitch biases of note logits."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="chroma_keras")
class PitchProfile(keras.layers.Layer):
    """Mean and maximum of each pitch row over time: ``[batch, pitches, frames] -> [batch, 2 * pitches]``.

    Which pitches a segment uses (its scale, register and bass notes) is spread
    over the whole roll; a strided convolution stack sees it only after several
    layers. The profile hands it to a dense layer directly.
    """

    def call(self, roll):
        return ops.concatenate([ops.mean(roll, axis=2), ops.max(roll, axis=2)], axis=-1)

    def compute_output_shape(self, input_shape):
        pitches = None if input_shape[1] is None else 2 * input_shape[1]
        return (input_shape[0], pitches)


@keras.saving.register_keras_serializable(package="chroma_keras")
class AddPitchBias(keras.layers.Layer):
    """Adds a per-example, per-pitch bias to note logits: ``logits[b, p, t] + bias[b, p]``.

    Call arguments:
        inputs: ``[logits, bias]``: ``[batch, pitches, frames]`` and ``[batch, pitches]``.
    """

    def call(self, inputs):
        logits, bias = inputs
        return logits + ops.cast(bias, logits.dtype)[:, :, None]

    def compute_output_shape(self, input_shape):
        return input_shape[0]
