"""Music Transformer encoder: relative self-attention + bar-aware positions over MIDI tokens."""

from __future__ import annotations

import keras
from keras import ops

from chroma_keras.data import keys
from chroma_keras.errors import ModelInputError
from chroma_keras.layers.bar_position_embedding import BarPositionEmbedding
from chroma_keras.layers.relative_multi_head_attention import RelativeMultiHeadAttention
from chroma_keras.models.encoders.base import MIDIEncoder, register_encoder
from chroma_keras.models.encoders.event_transformer_encoder import (
    token_encoder_settings,
    masked_mean,
    read_token_inputs,
)


@keras.saving.register_keras_serializable(package="chroma_keras")
class _RelativeTransformerBlock(keras.layers.Layer):
    """Pre-norm transformer block whose attention is :class:`RelativeMultiHeadAttention`.

    ``x + Attn(LN(x))`` then ``x + FFN(LN(x))`` (GELU feed-forward).

    Args:
        hidden_dim: model width.
        num_heads: attention heads (must divide ``hidden_dim``).
        intermediate_dim: feed-forward width.
        max_relative_position: see :class:`RelativeMultiHeadAttention`.
        dropout: dropout on attention weights and residual branches.
        **kwargs: ``keras.layers.Layer`` arguments.

    Call arguments:
        inputs: float ``[batch, length, hidden_dim]``.
        padding_mask: ``[batch, length]``, 1 on real tokens.
        training: whether dropout applies.

    Returns:
        float ``[batch, length, hidden_dim]``.
    """

    def __init__(self, hidden_dim, num_heads, intermediate_dim, max_relative_position, dropout=0.1, **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim = int(hidden_dim)
        self.num_heads = int(num_heads)
        self.intermediate_dim = int(intermediate_dim)
        self.max_relative_position = int(max_relative_position)
        self.dropout = float(dropout)

        # === Layers ===
        policy = self.dtype_policy
        self.attention_norm = keras.layers.LayerNormalization(epsilon=1e-5, dtype=policy, name="attention_norm")
        self.attention = RelativeMultiHeadAttention(
            num_heads=self.num_heads,
            key_dim=self.hidden_dim // self.num_heads,
            max_relative_position=self.max_relative_position,
            dropout=self.dropout,
            dtype=policy,
            name="relative_attention",
        )
        self.attention_dropout = keras.layers.Dropout(self.dropout, dtype=policy, name="attention_dropout")
        self.ffn_norm = keras.layers.LayerNormalization(epsilon=1e-5, dtype=policy, name="ffn_norm")
        self.ffn_inner = keras.layers.Dense(self.intermediate_dim, activation="gelu", dtype=policy, name="ffn_inner")
        self.ffn_outer = keras.layers.Dense(self.hidden_dim, dtype=policy, name="ffn_outer")
        self.ffn_dropout = keras.layers.Dropout(self.dropout, dtype=policy, name="ffn_dropout")

    def build(self, input_shape):
        self.attention_norm.build(input_shape)
        self.attention.build(input_shape)
        self.ffn_norm.build(input_shape)
        self.ffn_inner.build(input_shape)
        self.ffn_outer.build((*input_shape[:-1], self.intermediate_dim))

    def call(self, inputs, padding_mask=None, training=None):
        h = self.attention(self.attention_norm(inputs), padding_mask=padding_mask, training=training)
        x = inputs + self.attention_dropout(h, training=training)
        h = self.ffn_outer(self.ffn_inner(self.ffn_norm(x)))
        return x + self.ffn_dropout(h, training=training)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            hidden_dim=self.hidden_dim,
            num_heads=self.num_heads,
            intermediate_dim=self.intermediate_dim,
            max_relative_position=self.max_relative_position,
            dropout=self.dropout,
        )
        return config


@register_encoder("midi", "music_transformer")
@keras.saving.register_keras_serializable(package="chroma_keras")
class MusicTransformerEncoder(MIDIEncoder):
    """Music Transformer (Huang et al., 2018) encoder with bar-aware positions.

    Token embedding, plus (when ``bar_position`` is given) the
    :class:`~chroma_keras.layers.BarPositionEmbedding` of REMI bar index and
    position in bar; then pre-norm blocks of bidirectional relative self-attention
    (:class:`RelativeMultiHeadAttention`, memory-efficient skew), a final layer
    norm, and masked mean pooling. There is no absolute position table, so the
    encoder reads sequences of any length (distances past ``max_relative_position``
    share the farthest embedding).

    Reads ``keys.MIDI_TOKENS`` (int ``[batch, max_events]``) and
    ``keys.MIDI_TOKEN_MASK`` (``[batch, max_events]``; ``tokens != 0`` when absent).
    Padded steps are masked out of attention and pooling.

    Args:
        hidden_dim: model width.
        vocab_size: token id space size.
        num_layers: transformer blocks.
        num_heads: attention heads (must divide ``hidden_dim``).
        intermediate_dim: feed-forward width; defaults to ``4 * hidden_dim``.
        max_relative_position: distinct relative distances on each side.
        dropout: dropout in the embedding and the blocks.
        bar_position: ``None`` (no bar-aware positions, e.g. for
            NOTE_ON/NOTE_OFF/TIME_SHIFT events) or a ``BarPositionEmbedding`` config
            dict without ``output_dim`` (``BarPositionEmbedding.from_tokenizer(...).get_config()``).
        **kwargs: ``keras.layers.Layer`` arguments.

    Call arguments:
        inputs: batch dict with the keys above.
        training: whether dropout applies.

    Returns:
        ``{"embedding": [batch, hidden_dim], "sequence": [batch, max_events, hidden_dim],
        "sequence_mask": [batch, max_events]}``.

    Example:
    >>> encoder = MusicTransformerEncoder(hidden_dim=32, vocab_size=391, max_relative_position=64)
    >>> encoder({"midi_tokens": np.ones((2, 16), "int32")})["sequence"].shape
    (2, 16, 32)
    """

    input_keys = (keys.MIDI_TOKENS, keys.MIDI_TOKEN_MASK)

    def __init__(
        self,
        hidden_dim,
        vocab_size,
        num_layers=2,
        num_heads=4,
        intermediate_dim=None,
        max_relative_position=256,
        dropout=0.1,
        bar_position=None,
        **kwargs,
    ):
        super().__init__(hidden_dim=hidden_dim, **kwargs)
        if self.hidden_dim % num_heads:
            raise ModelInputError(
                f"num_heads must divide hidden_dim. Received: hidden_dim={self.hidden_dim}, num_heads={num_heads}"
            )
        self.vocab_size = int(vocab_size)
        self.num_layers = int(num_layers)
        self.num_heads = int(num_heads)
        self.intermediate_dim = int(intermediate_dim or 4 * self.hidden_dim)
        self.max_relative_position = int(max_relative_position)
        self.dropout = float(dropout)
        if bar_position is not None:
            bar_position = {k: v for k, v in dict(bar_position).items() if k not in ("output_dim", "name", "dtype", "trainable")}
        self.bar_position = bar_position

        # === Layers ===
        policy = self.dtype_policy
        self.token_embedding = keras.layers.Embedding(self.vocab_size, self.hidden_dim, dtype=policy, name="token_embedding")
        self.bar_position_embedding = (
            BarPositionEmbedding(output_dim=self.hidden_dim, dtype=policy, name="bar_position_embedding", **bar_position)
            if bar_position is not None
            else None
        )
        self.embedding_dropout = keras.layers.Dropout(self.dropout, dtype=policy, name="embedding_dropout")
        self.blocks = [
            _RelativeTransformerBlock(
                self.hidden_dim,
                self.num_heads,
                self.intermediate_dim,
                self.max_relative_position,
                dropout=self.dropout,
                dtype=policy,
                name=f"relative_block_{i}",
            )
            for i in range(self.num_layers)
        ]
        self.final_norm = keras.layers.LayerNormalization(epsilon=1e-5, dtype=policy, name="final_norm")

    @classmethod
    def from_preset_config(cls, config, modality: str = "midi"):
        """Build from a resolved preset.

        Reads ``model.midi_encoder``: ``hidden_dim``, ``vocab_size`` (null: from the
        tokenizer), ``num_layers``, ``num_heads``, ``intermediate_dim``, ``dropout``,
        ``max_relative_position`` (null: ``max_sequence_length`` or
        ``preprocessing.midi.max_events``), ``use_bar_embedding`` (default true:
        bar-aware positions from the ``preprocessing.midi`` tokenizer when it is
        REMI or CPWord "separate") and ``max_bars``.
        """
        section, vocab_size, max_length = token_encoder_settings(config)
        if isinstance(vocab_size, (list, tuple)):
            raise ModelInputError(
                "model.midi_encoder.type 'music_transformer' reads 1-D token ids; CPWord 'compound' ids are "
                "[max_events, fields]. Use tokenization 'remi', cpword_layout 'separate', or 'event_transformer'."
            )
        bar_position = None
        if section.get("use_bar_embedding", True):
            bar_position = _bar_position_config(config, section.get("max_bars", 64), vocab_size)
        return cls(
            hidden_dim=section.get("hidden_dim", 512),
            vocab_size=vocab_size,
            num_layers=section.get("num_layers", 2),
            num_heads=section.get("num_heads", 4),
            intermediate_dim=section.get("intermediate_dim"),
            max_relative_position=section.get("max_relative_position") or max_length,
            dropout=section.get("dropout", 0.1),
            bar_position=bar_position,
            name="midi_encoder",
        )

    def call(self, inputs, training=False):
        tokens, mask = read_token_inputs(inputs, False, type(self).__name__)
        tokens = ops.cast(tokens, "int32")
        x = self.token_embedding(tokens)
        if self.bar_position_embedding is not None:
            x = x + self.bar_position_embedding(tokens)
        x = self.embedding_dropout(x, training=training)
        for block in self.blocks:
            x = block(x, padding_mask=mask > 0, training=training)
        x = self.final_norm(x)
        return {"embedding": masked_mean(x, mask), "sequence": x, "sequence_mask": mask}

    def get_config(self):
        config = super().get_config()
        config.update(
            vocab_size=self.vocab_size,
            num_layers=self.num_layers,
            num_heads=self.num_heads,
            intermediate_dim=self.intermediate_dim,
            max_relative_position=self.max_relative_position,
            dropout=self.dropout,
            bar_position=None if self.bar_position is None else dict(self.bar_position),
        )
        return config


def _bar_position_config(config, max_bars, vocab_size):
    """The BarPositionEmbedding config of the preset's tokenizer, or None when it has no bars."""
    midi = ((config or {}).get("preprocessing") or {}).get("midi") or {}
    if midi.get("tokenization") not in ("remi", "cpword"):
        return None
    from chroma_keras.preprocessing.midi_tokens import tokenizer_from_config

    tokenizer = tokenizer_from_config(config)
    if tokenizer.spec.is_compound:
        return None
    layer_config = BarPositionEmbedding.from_tokenizer(tokenizer, output_dim=1, max_bars=max_bars).get_config()
    if layer_config["vocab_size"] != vocab_size:
        raise ModelInputError(
            f"model.midi_encoder.vocab_size={vocab_size} does not match the {midi['tokenization']} tokenizer's "
            f"vocabulary ({layer_config['vocab_size']}); set it to null or to the tokenizer's size."
        )
    return {k: layer_config[k] for k in ("vocab_size", "bar_token_ids", "position_token_ids", "position_token_values", "max_bars")}
