"""Late fusion: concatenate the projected modality embeddings, then an MLP (the source project's baseline)."""

from __future__ import annotations

import keras
from keras import ops

from chroma_keras.models.fusion.base import MultimodalFusion, register_fusion


@register_fusion("late")
@keras.saving.register_keras_serializable(package="chroma_keras")
class LateFusion(MultimodalFusion):
    """Projects each modality's pooled embedding, concatenates them and maps them through an MLP.

    ``e_m = W_m x_m + b_m`` per modality (``x_m`` the encoder's ``"embedding"``),
    absent or dropped modalities replaced by a learned null vector, then
    ``out = W_2 dropout(relu(W_1 [e_text; e_audio; e_midi] + b_1)) + b_2``.
    Only the pooled embeddings are used, so it is the cheapest strategy.

    Args:
        modalities: the modalities this model fuses (ordered like ``data.keys.MODALITIES``).
        hidden_dim: width of the per-modality projections and of the output.
        dropout: dropout after the MLP's hidden layer.
        modality_dropout: training-time probability of dropping a present modality.
        exempt_modalities: modalities never dropped.
        seed: seed of the modality-dropout SeedGenerator.
        **kwargs: ``keras.layers.Layer`` arguments.

    Call arguments:
        encoded: ``{modality: {"embedding": [batch, d_m], ...}}`` for every modality in ``modalities``.
        modality_mask: float ``[batch, 3]`` in ``MODALITIES`` order (1 = present), or ``None`` for all present.
        training: whether dropout and modality dropout are active.

    Returns:
        float ``[batch, hidden_dim]``.

    Example:

    >>> fusion = LateFusion(["audio", "midi"], hidden_dim=16)
    >>> encoded = {m: {"embedding": np.ones((2, 8), "float32")} for m in ("audio", "midi")}
    >>> fusion(encoded, np.array([[0, 1, 1], [0, 0, 1]], "float32")).shape
    (2, 16)
    """

    def __init__(self, modalities, hidden_dim: int, **kwargs):
        super().__init__(modalities, hidden_dim, **kwargs)
        # === Layers ===
        self._add_modality_layers(self.hidden_dim)
        self.hidden = keras.layers.Dense(self.hidden_dim, activation="relu", name="hidden", dtype=self.dtype_policy)
        self.hidden_dropout = keras.layers.Dropout(self.dropout, name="hidden_dropout")
        self.output_projection = keras.layers.Dense(self.hidden_dim, name="output_projection", dtype=self.dtype_policy)

    def build(self, encoded_shape, modality_mask_shape=None):
        self._build_modality_layers(encoded_shape, modality_mask_shape)
        width = len(self.modalities) * self.hidden_dim
        self.hidden.build((None, width))
        self.output_projection.build((None, self.hidden_dim))
        self.built = True

    def call(self, encoded, modality_mask=None, training=False):
        fused, _ = self._project_embeddings(encoded, modality_mask, training=training)
        flat = ops.reshape(fused, (-1, len(self.modalities) * self.hidden_dim))
        hidden = self.hidden_dropout(self.hidden(flat), training=training)
        return self.output_projection(hidden)

    def compute_output_shape(self, encoded_shape, modality_mask_shape=None):
        return (encoded_shape[self.modalities[0]]["embedding"][0], self.hidden_dim)
