"""The source project's piano-roll CNN as a MIDI encoder."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from chroma_keras.data import keys
from chroma_keras.errors import ModelInputError
from chroma_keras.models.encoders.base import MIDIEncoder, register_encoder


def adaptive_pool_matrix(input_size: int, output_size: int) -> np.ndarray:
    """Averaging weights of PyTorch's ``AdaptiveAvgPool`` along one axis.

    Output cell ``i`` averages input cells ``floor(i * n / m) .. ceil((i + 1) * n / m) - 1``
    (``n`` = input size, ``m`` = output size), as ``torch.nn.AdaptiveAvgPool2d``;
    an input smaller than the output repeats cells.

    Args:
        input_size: ``n``.
        output_size: ``m``.

    Returns:
        float32 ``[m, n]``; row ``i`` holds ``1 / window`` on its window.
    """
    weights = np.zeros((output_size, input_size), np.float32)
    for i in range(output_size):
        start = (i * input_size) // output_size
        end = -((-(i + 1) * input_size) // output_size)  # ceil
        weights[i, start:end] = 1.0 / (end - start)
    return weights


@register_encoder("midi", "pianoroll_cnn")
@keras.saving.register_keras_serializable(package="chroma_keras")
class PianoRollCNNEncoder(MIDIEncoder):
    """Three conv blocks over a piano roll, adaptive average pooling, then a dense layer.

    The source project's architecture (``Conv-BN-ReLU-MaxPool2`` x 2, then
    ``Conv-BN-ReLU``, ``AdaptiveAvgPool(4, 4)``, flatten, ``Dense(hidden_dim)`` +
    ReLU), in channels-last layout. The adaptive pooling is two matrix products with
    PyTorch's window weights (:func:`adaptive_pool_matrix`) built from the static
    roll size, so any ``[pitches, frames]`` pools to ``pooled_size`` on every backend.

    ``sequence`` is the time axis of the last feature map: averaged over pitch and
    projected to ``hidden_dim``, one step per ``4`` input frames (two max-pools), all real.

    Args:
        hidden_dim: embedding width (512 in the source project).
        filters: channels of the three conv blocks.
        pooled_size: ``(pitch, time)`` output of the adaptive pooling.
        **kwargs: ``keras.layers.Layer`` arguments.

    Call arguments:
        inputs: batch dict with ``keys.PIANO_ROLL``, float ``[batch, pitches, frames]``.
        training: whether batch norm uses batch statistics.

    Returns:
        ``{"embedding": [batch, hidden_dim], "sequence": [batch, frames // 4, hidden_dim],
        "sequence_mask": [batch, frames // 4]}``.

    Example:
    >>> encoder = PianoRollCNNEncoder(hidden_dim=64)
    >>> encoder({"piano_roll": np.zeros((2, 72, 128), "float32")})["embedding"].shape
    (2, 64)
    """

    input_keys = (keys.PIANO_ROLL,)

    def __init__(self, hidden_dim=512, filters=(32, 64, 128), pooled_size=(4, 4), **kwargs):
        super().__init__(hidden_dim=hidden_dim, **kwargs)
        self.filters = tuple(int(f) for f in filters)
        self.pooled_size = tuple(int(s) for s in pooled_size)
        if len(self.filters) != 3 or len(self.pooled_size) != 2:
            raise ModelInputError(
                f"filters must hold 3 and pooled_size 2 integers. Received: filters={filters}, pooled_size={pooled_size}"
            )

        # === Layers ===
        policy = self.dtype_policy
        self.convs, self.norms = [], []
        for i, width in enumerate(self.filters):
            self.convs.append(keras.layers.Conv2D(width, 3, padding="same", dtype=policy, name=f"conv_{i}"))
            self.norms.append(keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.9, dtype=policy, name=f"batch_norm_{i}"))
        self.max_pool = keras.layers.MaxPooling2D(2, dtype=policy, name="max_pool")
        self.projection = keras.layers.Dense(self.hidden_dim, activation="relu", dtype=policy, name="projection")
        self.sequence_projection = keras.layers.Dense(self.hidden_dim, dtype=policy, name="sequence_projection")

    @classmethod
    def from_preset_config(cls, config, modality: str = "midi"):
        """Build from a resolved preset (reads ``model.midi_encoder.hidden_dim`` and optional ``filters``)."""
        section = ((config or {}).get("model") or {}).get("midi_encoder") or {}
        return cls(
            hidden_dim=section.get("hidden_dim", 512),
            filters=section.get("filters") or (32, 64, 128),
            name="midi_encoder",
        )

    def call(self, inputs, training=False):
        if not isinstance(inputs, dict) or keys.PIANO_ROLL not in inputs:
            got = sorted(inputs) if isinstance(inputs, dict) else type(inputs).__name__
            raise ModelInputError(
                f"PianoRollCNNEncoder: the batch has no {keys.PIANO_ROLL!r}; expected float [batch, pitches, frames]. "
                f"Received: {got}"
            )
        roll = inputs[keys.PIANO_ROLL]
        shape = tuple(roll.shape)
        if len(shape) != 3 or shape[1] is None or shape[2] is None:
            raise ModelInputError(
                f"PianoRollCNNEncoder: {keys.PIANO_ROLL!r} must have shape [batch, pitches, frames] with known "
                f"pitches and frames. Received: shape={shape}"
            )
        x = ops.cast(roll, self.compute_dtype)[..., None]  # [b, pitches, frames, 1]
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            x = ops.relu(norm(conv(x), training=training))
            if i < 2:
                x = self.max_pool(x)
        # x: [b, P', F', C]. Adaptive average pooling = two small matmuls.
        pitch_weights = ops.convert_to_tensor(adaptive_pool_matrix(x.shape[1], self.pooled_size[0]), x.dtype)
        time_weights = ops.convert_to_tensor(adaptive_pool_matrix(x.shape[2], self.pooled_size[1]), x.dtype)
        pooled = ops.einsum("ip,bptc,jt->bijc", pitch_weights, x, time_weights)
        # Flatten channels-first, as torch's flatten of NCHW, so weights port one to one.
        flat = ops.reshape(ops.transpose(pooled, (0, 3, 1, 2)), (-1, self.filters[-1] * self.pooled_size[0] * self.pooled_size[1]))
        embedding = self.projection(flat)
        sequence = self.sequence_projection(ops.mean(x, axis=1))
        mask = ops.ones(ops.shape(sequence)[:2], dtype=sequence.dtype)
        return {"embedding": embedding, "sequence": sequence, "sequence_mask": mask}

    def get_config(self):
        config = super().get_config()
        config.update(filters=list(self.filters), pooled_size=list(self.pooled_size))
        return config
