"""Cross-modal attention fusion: text queries attend to the audio and MIDI sequences."""

from __future__ import annotations

import keras
from keras import ops

from chroma_keras.errors import ModelInputError
from chroma_keras.models.fusion.base import MultimodalFusion, register_fusion

QUERY_MODALITY = "text"


@register_fusion("cross_attention")
@keras.saving.register_keras_serializable(package="chroma_keras")
class CrossAttentionFusion(MultimodalFusion):
    """Text steps query the audio/MIDI steps with multi-head attention.

    With ``h = hidden_dim`` and every modality projected to ``h`` (one Dense per
    modality, shared by its embedding and its sequence):

    * **Keys/values** (the *context* modalities, audio and/or MIDI): for each,
      a summary token (the projected embedding, or the learned null embedding
      when absent or dropped) followed by its projected sequence, masked by
      ``sequence_mask`` and by presence, plus a learned modality-type vector.
      The summary tokens are always attended, so a row with neither audio nor
      MIDI attends to their null embeddings.
    * **Queries**: the text summary token followed by the projected text
      sequence (masked the same way), so a row without text queries with the
      text null embedding alone. A model without a text modality uses one
      learned query vector instead (the fusion then learns *which* audio/MIDI
      steps matter, like attention pooling).
    * ``x = LayerNorm(q + Dropout(MHA(q, kv, attention_mask)))``, masked mean
      pooled over the valid queries, concatenated with the context summary
      tokens, then ``Dense(h, relu) → Dropout → Dense(h)``.

    Args:
        modalities: the modalities this model fuses (ordered like ``data.keys.MODALITIES``);
            at least one of ``"audio"``, ``"midi"``.
        hidden_dim: output width and attention width; divisible by ``num_heads``.
        dropout: dropout on the attention output, the attention weights and the output MLP.
        modality_dropout: training-time probability of dropping a present modality.
        exempt_modalities: modalities never dropped.
        seed: seed of the modality-dropout SeedGenerator.
        num_heads: attention heads (``model.fusion.attention_heads``).
        **kwargs: ``keras.layers.Layer`` arguments.

    Call arguments:
        encoded: ``{modality: {"embedding": [batch, d_m], "sequence": [batch, steps_m, d_m],
            "sequence_mask": [batch, steps_m]}}`` for every modality in ``modalities``.
        modality_mask: float ``[batch, 3]`` in ``MODALITIES`` order (1 = present), or ``None`` for all present.
        training: whether dropout and modality dropout are active.

    Returns:
        float ``[batch, hidden_dim]``.

    Example:

    >>> fusion = CrossAttentionFusion(["text", "midi"], hidden_dim=16, num_heads=2)
    >>> out = {"embedding": np.ones((2, 8), "float32"), "sequence": np.ones((2, 5, 8), "float32"),
    ...        "sequence_mask": np.ones((2, 5), "float32")}
    >>> fusion({"text": out, "midi": out}, np.array([[1, 0, 1], [0, 0, 1]], "float32")).shape
    (2, 16)
    """

    reads_sequences = True

    def __init__(self, modalities, hidden_dim: int, *, num_heads: int = 4, **kwargs):
        super().__init__(modalities, hidden_dim, **kwargs)
        owner = kwargs.get("name") or type(self).__name__
        self.num_heads = int(num_heads)
        self.context_modalities = tuple(m for m in self.modalities if m != QUERY_MODALITY)
        self.has_text = QUERY_MODALITY in self.modalities
        if not self.context_modalities:
            raise ModelInputError(
                f"{owner}: cross-attention needs audio or MIDI to attend to; use 'late' or 'gated' fusion for "
                f"a text-only model. Received: modalities={list(self.modalities)}"
            )
        if self.num_heads < 1 or self.hidden_dim % self.num_heads:
            raise ModelInputError(
                f"{owner}: hidden_dim must be divisible by num_heads. "
                f"Received: hidden_dim={self.hidden_dim}, num_heads={self.num_heads}"
            )
        # === Layers ===
        self._add_modality_layers(self.hidden_dim)
        self.attention = keras.layers.MultiHeadAttention(
            num_heads=self.num_heads,
            key_dim=self.hidden_dim // self.num_heads,
            dropout=self.dropout,
            name="cross_attention",
            dtype=self.dtype_policy,
        )
        self.attention_dropout = keras.layers.Dropout(self.dropout, name="attention_output_dropout")
        self.attention_norm = keras.layers.LayerNormalization(
            epsilon=1e-5, name="attention_norm", dtype=self.dtype_policy
        )
        self.hidden = keras.layers.Dense(self.hidden_dim, activation="relu", name="hidden", dtype=self.dtype_policy)
        self.hidden_dropout = keras.layers.Dropout(self.dropout, name="hidden_dropout")
        self.output_projection = keras.layers.Dense(self.hidden_dim, name="output_projection", dtype=self.dtype_policy)

    def build(self, encoded_shape, modality_mask_shape=None):
        self._build_modality_layers(encoded_shape, modality_mask_shape)
        if not self.has_text:
            self.learned_query = self.add_weight(
                shape=(self.hidden_dim,),
                initializer=keras.initializers.RandomNormal(stddev=0.02),
                name="learned_query",
            )
        sequence_shape = (None, None, self.hidden_dim)
        self.attention.build(sequence_shape, sequence_shape)
        self.attention_norm.build(sequence_shape)
        self.hidden.build((None, (1 + len(self.context_modalities)) * self.hidden_dim))
        self.output_projection.build((None, self.hidden_dim))
        self.built = True

    def call(self, encoded, modality_mask=None, training=False):
        summaries, presence = self._project_embeddings(encoded, modality_mask, training=training)
        segments = dict(zip(self.modalities, self._modality_segments(encoded, summaries, presence)))
        context = ops.concatenate([segments[m][0] for m in self.context_modalities], axis=1)
        context_mask = ops.concatenate([segments[m][1] for m in self.context_modalities], axis=1)
        if self.has_text:
            queries, query_mask = segments[QUERY_MODALITY]
        else:
            batch = ops.shape(context)[0]
            query = ops.cast(self.learned_query, context.dtype)
            queries = ops.broadcast_to(query[None, None, :], (batch, 1, self.hidden_dim))
            query_mask = ops.ones_like(context_mask[:, :1])
        attention_mask = (query_mask[:, :, None] * context_mask[:, None, :]) > 0
        attended = self.attention(queries, context, attention_mask=attention_mask, training=training)
        x = self.attention_norm(queries + self.attention_dropout(attended, training=training))
        valid = query_mask[:, :, None] > 0
        pooled = ops.sum(ops.where(valid, x, 0.0), axis=1) / ops.maximum(ops.sum(query_mask, axis=1)[:, None], 1.0)
        context_summaries = [summaries[:, self.modalities.index(m), :] for m in self.context_modalities]
        hidden = self.hidden(ops.concatenate([pooled] + context_summaries, axis=-1))
        return self.output_projection(self.hidden_dropout(hidden, training=training))

    def compute_output_shape(self, encoded_shape, modality_mask_shape=None):
        return (encoded_shape[self.modalities[0]]["embedding"][0], self.hidden_dim)

    def get_config(self):
        config = super().get_config()
        config["num_heads"] = self.num_heads
        return config
