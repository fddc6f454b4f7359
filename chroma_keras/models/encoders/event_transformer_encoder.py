"""A transformer encoder over MIDI token ids (REMI, CPWord, or NOTE_ON/NOTE_OFF/TIME_SHIFT events)."""

from __future__ import annotations

import keras
import keras_hub
from keras import ops

from chroma_keras.data import keys
from chroma_keras.errors import ModelInputError
from chroma_keras.models.encoders.base import MIDIEncoder, register_encoder


def masked_mean(sequence, mask):
    """Mean of ``sequence`` over real steps; all-padding rows give zeros.

    Args:
        sequence: float ``[batch, steps, dim]``.
        mask: ``[batch, steps]``, 1 on real steps.

    Returns:
        float ``[batch, dim]``.
    """
    sequence = ops.convert_to_tensor(sequence)
    mask = ops.cast(mask, sequence.dtype)[:, :, None]
    total = ops.sum(sequence * mask, axis=1)
    return total / ops.maximum(ops.sum(mask, axis=1), 1.0)


def read_token_inputs(inputs, compound: bool, layer_name: str):
    """Token ids and mask from a batch dict, with shape checks.

    Args:
        inputs: the batch dict.
        compound: whether ids are ``[batch, steps, fields]`` (CPWord compound).
        layer_name: named in errors.

    Returns:
        ``(token_ids, mask)``; a missing mask is ``token_ids != 0`` (PAD is 0).

    Raises:
        ModelInputError: naming the key and the expected shape.
    """
    want = "[batch, max_events, fields]" if compound else "[batch, max_events]"
    if not isinstance(inputs, dict) or keys.MIDI_TOKENS not in inputs:
        got = sorted(inputs) if isinstance(inputs, dict) else type(inputs).__name__
        raise ModelInputError(
            f"{layer_name}: the batch has no {keys.MIDI_TOKENS!r}; expected int {want}. Received: {got}"
        )
    tokens = inputs[keys.MIDI_TOKENS]
    rank = 3 if compound else 2
    if len(tokens.shape) != rank:
        raise ModelInputError(
            f"{layer_name}: {keys.MIDI_TOKENS!r} must have shape {want}. Received: shape={tuple(tokens.shape)}"
        )
    mask = inputs.get(keys.MIDI_TOKEN_MASK)
    if mask is None:
        real = ops.not_equal(tokens, 0)
        mask = ops.any(real, axis=-1) if compound else real
    elif len(mask.shape) != 2:
        raise ModelInputError(
            f"{layer_name}: {keys.MIDI_TOKEN_MASK!r} must have shape [batch, max_events]. "
            f"Received: shape={tuple(mask.shape)}"
        )
    return tokens, ops.cast(mask, "float32")


@register_encoder("midi", "event_transformer")
@keras.saving.register_keras_serializable(package="chroma_keras")
class EventTransformerEncoder(MIDIEncoder):
    """Token embedding + learned positions + keras-hub transformer blocks + masked mean pooling.

    Reads ``keys.MIDI_TOKENS`` (int ``[batch, max_events]``, or
    ``[batch, max_events, fields]`` for CPWord "compound", whose per-field
    embeddings are summed) and ``keys.MIDI_TOKEN_MASK`` (``[batch, max_events]``,
    1 on real tokens; ``tokens != 0`` when absent). Works with any id space whose
    padding id is 0: miditok REMI / CPWord (``preprocessing.midi_tokens``) and the
    NOTE_ON/NOTE_OFF/TIME_SHIFT :class:`~chroma_keras.preprocessing.midi_events.EventVocabulary`.

    Padded steps never reach real ones (keras-hub's padding mask on the keys, and
    the pooling ignores them), so padding does not change the outputs of real
    tokens or the embedding.

    Args:
        hidden_dim: model width (embedding and sequence).
        vocab_size: id space size, or one size per field for compound ids.
        max_sequence_length: longest sequence (learned position table size).
        num_layers: transformer blocks.
        num_heads: attention heads (must divide ``hidden_dim``).
        intermediate_dim: feed-forward width; defaults to ``4 * hidden_dim``.
        dropout: dropout in the embedding and the blocks.
        **kwargs: ``keras.layers.Layer`` arguments.

    Call arguments:
        inputs: batch dict with the keys above.
        training: whether dropout applies.

    Returns:
        ``{"embedding": [batch, hidden_dim], "sequence": [batch, max_events, hidden_dim],
        "sequence_mask": [batch, max_events]}``.

    Example:
    >>> encoder = EventTransformerEncoder(hidden_dim=32, vocab_size=391, max_sequence_length=64)
    >>> out = encoder({"midi_tokens": np.ones((2, 64), "int32"), "midi_token_mask": np.ones((2, 64), "float32")})
    >>> out["embedding"].shape
    (2, 32)
    """

    input_keys = (keys.MIDI_TOKENS, keys.MIDI_TOKEN_MASK)

    def __init__(
        self,
        hidden_dim,
        vocab_size,
        max_sequence_length=1024,
        num_layers=2,
        num_heads=4,
        intermediate_dim=None,
        dropout=0.1,
        **kwargs,
    ):
        super().__init__(hidden_dim=hidden_dim, **kwargs)
        if self.hidden_dim % num_heads:
            raise ModelInputError(
                f"num_heads must divide hidden_dim. Received: hidden_dim={self.hidden_dim}, num_heads={num_heads}"
            )
        self.compound = isinstance(vocab_size, (list, tuple))
        self.vocab_size = [int(v) for v in vocab_size] if self.compound else int(vocab_size)
        self.max_sequence_length = int(max_sequence_length)
        self.num_layers = int(num_layers)
        self.num_heads = int(num_heads)
        self.intermediate_dim = int(intermediate_dim or 4 * self.hidden_dim)
        self.dropout = float(dropout)

        # === Layers ===
        sizes = self.vocab_size if self.compound else [self.vocab_size]
        self.token_embeddings = [
            keras.layers.Embedding(size, self.hidden_dim, dtype=self.dtype_policy, name=f"token_embedding_{i}")
            for i, size in enumerate(sizes)
        ]
        self.position_embedding = keras_hub.layers.PositionEmbedding(
            self.max_sequence_length, dtype=self.dtype_policy, name="position_embedding"
        )
        self.embedding_norm = keras.layers.LayerNormalization(epsilon=1e-5, dtype=self.dtype_policy, name="embedding_norm")
        self.embedding_dropout = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy, name="embedding_dropout")
        self.blocks = [
            keras_hub.layers.TransformerEncoder(
                intermediate_dim=self.intermediate_dim,
                num_heads=self.num_heads,
                dropout=self.dropout,
                activation="gelu",
                dtype=self.dtype_policy,
                name=f"transformer_block_{i}",
            )
            for i in range(self.num_layers)
        ]

    @classmethod
    def from_preset_config(cls, config, modality: str = "midi"):
        """Build from a resolved preset.

        Reads ``model.midi_encoder``: ``hidden_dim``, ``vocab_size`` (null: from the
        tokenizer of ``preprocessing.midi``), ``max_sequence_length`` (null:
        ``preprocessing.midi.max_events``), ``num_layers``, ``num_heads``,
        ``intermediate_dim``, ``dropout``.
        """
        section, vocab_size, max_length = token_encoder_settings(config)
        return cls(
            hidden_dim=section.get("hidden_dim", 512),
            vocab_size=vocab_size,
            max_sequence_length=max_length,
            num_layers=section.get("num_layers", 2),
            num_heads=section.get("num_heads", 4),
            intermediate_dim=section.get("intermediate_dim"),
            dropout=section.get("dropout", 0.1),
            name="midi_encoder",
        )

    def call(self, inputs, training=False):
        tokens, mask = read_token_inputs(inputs, self.compound, type(self).__name__)
        length = tokens.shape[1]
        if length is not None and length > self.max_sequence_length:
            raise ModelInputError(
                f"{type(self).__name__}: {keys.MIDI_TOKENS!r} has {length} steps; expected at most "
                f"max_sequence_length={self.max_sequence_length}."
            )
        tokens = ops.cast(tokens, "int32")
        if self.compound:
            x = sum(embed(tokens[:, :, i]) for i, embed in enumerate(self.token_embeddings))
        else:
            x = self.token_embeddings[0](tokens)
        x = x + self.position_embedding(x)
        x = self.embedding_dropout(self.embedding_norm(x), training=training)
        for block in self.blocks:
            x = block(x, padding_mask=mask > 0, training=training)
        return {"embedding": masked_mean(x, mask), "sequence": x, "sequence_mask": mask}

    def get_config(self):
        config = super().get_config()
        config.update(
            vocab_size=list(self.vocab_size) if self.compound else self.vocab_size,
            max_sequence_length=self.max_sequence_length,
            num_layers=self.num_layers,
            num_heads=self.num_heads,
            intermediate_dim=self.intermediate_dim,
            dropout=self.dropout,
        )
        return config


def token_encoder_settings(config):
    """``(model.midi_encoder section, vocab size, max sequence length)`` of a resolved preset."""
    section = dict(((config or {}).get("model") or {}).get("midi_encoder") or {})
    vocab_size = section.get("vocab_size")
    if vocab_size is None:
        from chroma_keras.errors import PresetError
        from chroma_keras.preprocessing.midi_tokens import tokenizer_from_config

        try:
            vocab_size = tokenizer_from_config(config).vocab_size
        except PresetError as exc:
            raise PresetError(
                f"model.midi_encoder.vocab_size is null, so it comes from the tokenizer, but: {exc} "
                "Set model.midi_encoder.vocab_size (e.g. EventVocabulary().vocab_size) or a token tokenization."
            ) from None
    midi = ((config or {}).get("preprocessing") or {}).get("midi") or {}
    max_length = section.get("max_sequence_length") or midi.get("max_events", 1024)
    return section, vocab_size, max_length
