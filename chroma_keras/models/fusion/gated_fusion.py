"""Gated fusion: a per-sample softmax over the present modalities weights their projected embeddings."""

from __future__ import annotations

import keras
from keras import ops

from chroma_keras.models.fusion.base import MultimodalFusion, register_fusion

# Added to the gate logits of absent modalities; exp() of it underflows to exactly 0.
_MASKED_LOGIT = -1e9


@register_fusion("gated")
@keras.saving.register_keras_serializable(package="chroma_keras")
class GatedFusion(MultimodalFusion):
    """Weights each modality's projected embedding with a learned, per-sample gate.

    With ``e_m = W_m x_m + b_m`` (``x_m`` the encoder's ``"embedding"``, absent
    or dropped modalities replaced by a learned null vector):

    * gate logits ``g = W_g [e_text; e_audio; e_midi] + b_g`` (one per modality),
    * weights ``w = softmax(g)`` over the row's *present* modalities only
      (absent ones get exactly 0; a row with no present modality weights the
      null embeddings),
    * output ``Dropout(sum_m w_m e_m)``, width ``hidden_dim``.

    The weights say how much each modality contributed to each row; read them
    with :meth:`modality_weights` or ``call(..., return_weights=True)``.

    Args:
        modalities: the modalities this model fuses (ordered like ``data.keys.MODALITIES``).
        hidden_dim: width of the projections and of the output.
        dropout: dropout on the fused vector.
        modality_dropout: training-time probability of dropping a present modality.
        exempt_modalities: modalities never dropped.
        seed: seed of the modality-dropout SeedGenerator.
        **kwargs: ``keras.layers.Layer`` arguments.

    Call arguments:
        encoded: ``{modality: {"embedding": [batch, d_m], ...}}`` for every modality in ``modalities``.
        modality_mask: float ``[batch, 3]`` in ``MODALITIES`` order (1 = present), or ``None`` for all present.
        training: whether dropout and modality dropout are active.
        return_weights: also return the modality weights.

    Returns:
        float ``[batch, hidden_dim]``; with ``return_weights=True`` a tuple
        ``(fused, weights)`` where ``weights`` is float ``[batch, len(modalities)]``
        in ``modalities`` order.

    Example:

    >>> fusion = GatedFusion(["text", "audio", "midi"], hidden_dim=16)
    >>> encoded = {m: {"embedding": np.ones((2, 8), "float32")} for m in ("text", "audio", "midi")}
    >>> fusion.modality_weights(encoded, np.array([[1, 1, 0], [0, 0, 1]], "float32"))  # row 1: [0, 0, 1]
    """

    def __init__(self, modalities, hidden_dim: int, **kwargs):
        super().__init__(modalities, hidden_dim, **kwargs)
        # === Layers ===
        self._add_modality_layers(self.hidden_dim)
        self.gate = keras.layers.Dense(len(self.modalities), name="gate", dtype=self.dtype_policy)
        self.output_dropout = keras.layers.Dropout(self.dropout, name="output_dropout")

    def build(self, encoded_shape, modality_mask_shape=None):
        self._build_modality_layers(encoded_shape, modality_mask_shape)
        self.gate.build((None, len(self.modalities) * self.hidden_dim))
        self.built = True

    def _fuse(self, encoded, modality_mask, training):
        embeddings, presence = self._project_embeddings(encoded, modality_mask, training=training)
        logits = self.gate(ops.reshape(embeddings, (-1, len(self.modalities) * self.hidden_dim)))
        any_present = ops.sum(presence, axis=1, keepdims=True) > 0
        allowed = ops.logical_or(presence > 0, ops.logical_not(any_present))
        weights = ops.softmax(ops.where(allowed, logits, _MASKED_LOGIT), axis=-1)
        fused = ops.sum(weights[:, :, None] * embeddings, axis=1)
        return self.output_dropout(fused, training=training), weights

    def call(self, encoded, modality_mask=None, training=False, return_weights=False):
        fused, weights = self._fuse(encoded, modality_mask, training)
        return (fused, weights) if return_weights else fused

    def modality_weights(self, encoded, modality_mask=None, training=False):
        """The per-sample modality weights of the gate.

        Args:
            encoded: encoder outputs per modality (see the class docstring).
            modality_mask: float ``[batch, 3]`` in ``MODALITIES`` order, or ``None``.
            training: whether modality dropout is applied first.

        Returns:
            float ``[batch, len(modalities)]`` in ``self.modalities`` order; each row
            sums to 1 over its present modalities and is 0 on absent ones.
        """
        return self(encoded, modality_mask, training=training, return_weights=True)[1]
