"""Bar-aware positional embedding for REMI-style token streams."""

import keras
import numpy as np
from keras import ops

from chroma_keras.errors import ModelInputError


@keras.saving.register_keras_serializable(package="chroma_keras")
class BarPositionEmbedding(keras.layers.Layer):
    """Learned bar-index + position-in-bar embeddings computed from token ids in-graph.

    In REMI (Huang & Yang, 2020) a ``Bar`` token starts each bar and ``Position_k``
    tokens place the following notes at grid step ``k`` of the bar. This layer walks
    the ids like a reader would, with tensor ops only:

    * bar id = number of ``Bar`` tokens so far, including this one (``cumsum`` of an
      "is bar" lookup); 0 before the first bar; bars past ``max_bars`` share id
      ``max_bars``,
    * position id = ``k + 1`` after ``Position_k`` (until the next ``Position`` or
      ``Bar``), 0 from a ``Bar`` to its first ``Position`` and before any bar. The
      last "setter" token (Bar or Position) at or before each step is found with a
      running maximum (:func:`_running_max`) over its index, and its value
      looked up in a token id -> position table.

    It returns ``bar_embedding[bar_id] + position_embedding[position_id]``, to be
    added to the token embeddings.

    Args:
        output_dim: embedding width.
        vocab_size: size of the token id space (ids outside it are clipped).
        bar_token_ids: ids of the tokens that start a bar.
        position_token_ids: ids of the ``Position_k`` tokens.
        position_token_values: ``k`` of each id in ``position_token_ids``.
        max_bars: bars with their own embedding (ids ``1..max_bars``; later bars share the last).
        embeddings_initializer: initializer of both tables.
        **kwargs: ``keras.layers.Layer`` arguments.

    Call arguments:
        token_ids: int ``[batch, length]``.

    Returns:
        float ``[batch, length, output_dim]``.

    Example:
    >>> from chroma_keras.preprocessing.midi_tokens import make_tokenizer
    >>> layer = BarPositionEmbedding.from_tokenizer(make_tokenizer(tokenization="remi"), output_dim=16)
    >>> layer(np.zeros((1, 8), "int32")).shape
    (1, 8, 16)
    """

    def __init__(
        self,
        output_dim,
        vocab_size,
        bar_token_ids,
        position_token_ids,
        position_token_values,
        max_bars=64,
        embeddings_initializer="uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        bar_token_ids = [int(i) for i in bar_token_ids]
        position_token_ids = [int(i) for i in position_token_ids]
        position_token_values = [int(v) for v in position_token_values]
        if len(position_token_ids) != len(position_token_values):
            raise ModelInputError(
                "position_token_ids and position_token_values must have the same length. "
                f"Received: {len(position_token_ids)} and {len(position_token_values)}"
            )
        ids = bar_token_ids + position_token_ids
        if any(not 0 <= i < vocab_size for i in ids):
            raise ModelInputError(f"bar/position token ids must lie in [0, vocab_size={vocab_size}). Received: {ids}")
        if any(v < 0 for v in position_token_values):
            raise ModelInputError(f"position_token_values must be >= 0. Received: {position_token_values}")
        self.output_dim = int(output_dim)
        self.vocab_size = int(vocab_size)
        self.bar_token_ids = bar_token_ids
        self.position_token_ids = position_token_ids
        self.position_token_values = position_token_values
        self.max_bars = int(max_bars)
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.num_positions = max(position_token_values, default=-1) + 2

        # Lookup tables (constants): 1 on bar tokens; k for Position_k, -1 elsewhere.
        bar_table = np.zeros(self.vocab_size, np.int32)
        bar_table[bar_token_ids] = 1
        position_table = np.full(self.vocab_size, -1, np.int32)
        position_table[position_token_ids] = position_token_values
        self._bar_table = bar_table
        self._position_table = position_table

        # === Layers ===
        self.bar_embedding = keras.layers.Embedding(
            self.max_bars + 1,
            self.output_dim,
            embeddings_initializer=self.embeddings_initializer,
            dtype=self.dtype_policy,
            name="bar_embedding",
        )
        self.position_embedding = keras.layers.Embedding(
            self.num_positions,
            self.output_dim,
            embeddings_initializer=self.embeddings_initializer,
            dtype=self.dtype_policy,
            name="position_in_bar_embedding",
        )

    @classmethod
    def from_tokenizer(cls, tokenizer, output_dim, max_bars=64, **kwargs):
        """Build from a REMI (or CPWord "separate") :class:`~chroma_keras.preprocessing.midi_tokens.MidiTokenizer`.

        Args:
            tokenizer: the tokenizer whose ids the layer will read.
            output_dim: embedding width.
            max_bars: see the class docstring.
            **kwargs: other constructor arguments.

        Returns:
            The layer.

        Raises:
            ModelInputError: for CPWord "compound" ids (2-D per token) or a
                vocabulary without ``Bar`` tokens.
        """
        if tokenizer.spec.is_compound:
            raise ModelInputError(
                "BarPositionEmbedding reads 1-D token ids; CPWord 'compound' ids are [max_events, fields]. "
                "Use tokenization 'remi' or cpword_layout 'separate'."
            )
        vocabs = tokenizer.miditok.vocab if tokenizer.miditok.is_multi_voc else [tokenizer.miditok.vocab]
        bars, positions, values = [], [], []
        offset = 0
        for vocab in vocabs:
            for name, local in vocab.items():
                if name.startswith("Bar_"):
                    bars.append(offset + local)
                elif name.startswith("Position_"):
                    positions.append(offset + local)
                    values.append(int(name.split("_", 1)[1]))
            offset += len(vocab)
        if not bars:
            raise ModelInputError(f"{tokenizer!r} has no Bar tokens; expected a bar-based tokenization (REMI, CPWord).")
        return cls(output_dim, offset, bars, positions, values, max_bars=max_bars, **kwargs)

    def compute_ids(self, token_ids):
        """Bar and position-in-bar ids of each token (see the class docstring).

        Args:
            token_ids: int ``[batch, length]``.

        Returns:
            ``(bar_ids, position_ids)``, int32 ``[batch, length]`` each.
        """
        if len(token_ids.shape) != 2:
            raise ModelInputError(
                f"BarPositionEmbedding expects token ids of shape [batch, length]. Received: shape={tuple(token_ids.shape)}"
            )
        ids = ops.clip(ops.cast(token_ids, "int32"), 0, self.vocab_size - 1)
        is_bar = _lookup(self._bar_table, ids)
        bar_ids = ops.minimum(ops.cumsum(is_bar, axis=1), self.max_bars)

        value = _lookup(self._position_table, ids)
        is_setter = ops.logical_or(is_bar > 0, value >= 0)
        steps = ops.broadcast_to(ops.arange(ops.shape(ids)[1], dtype="int32")[None, :], ops.shape(ids))
        setter_value = ops.where(value >= 0, value + 1, 0)  # a Bar resets to 0
        # The last Bar/Position token at or before each step, and its value, in one running maximum:
        # a setter at step j is keyed j * base + its value (base exceeds every value), so the maximum
        # is the latest setter and `key % base` its value (-1: none yet). No gather is needed, which
        # keeps the batch dimension symbolic under torch.export.
        base = int(np.max(self._position_table)) + 2
        last = _running_max(ops.where(is_setter, steps * base + setter_value, -1))
        position_ids = ops.where(last >= 0, last % base, 0)
        return ops.cast(bar_ids, "int32"), ops.cast(position_ids, "int32")

    def build(self, input_shape):
        self.bar_embedding.build(input_shape)
        self.position_embedding.build(input_shape)

    def call(self, token_ids):
        bar_ids, position_ids = self.compute_ids(token_ids)
        return self.bar_embedding(bar_ids) + self.position_embedding(position_ids)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.output_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            output_dim=self.output_dim,
            vocab_size=self.vocab_size,
            bar_token_ids=list(self.bar_token_ids),
            position_token_ids=list(self.position_token_ids),
            position_token_values=list(self.position_token_values),
            max_bars=self.max_bars,
            embeddings_initializer=keras.initializers.serialize(self.embeddings_initializer),
        )
        return config


def _lookup(table, ids):
    """``table[ids]`` for a 1-D NumPy table, as a row lookup in a ``[V, 1]`` table.

    Keras' torch ``ops.take`` of a 1-D table ends in a ``squeeze`` that the ONNX exporter writes as
    an invalid ``Squeeze`` of the flattened ``batch * length`` axis; a 2-D table with ``axis=0`` is
    an embedding lookup on every backend.
    """
    column = ops.convert_to_tensor(np.asarray(table)[:, None])
    return ops.take(column, ids, axis=0)[..., 0]


def _running_max(values):
    """Running maximum along axis 1 of an int ``[batch, length]`` tensor, in ``ceil(log2(length))`` steps.

    Each step takes the maximum with the tensor shifted right by 1, 2, 4, ... steps (Hillis-Steele).
    ``ops.associative_scan`` computes the same, but under torch it pins the batch dimension
    (``torch.export`` with a dynamic batch fails) and under TensorFlow it loses the static shape.
    """
    length = values.shape[1]
    if not isinstance(length, int):  # a length unknown while tracing: the library scan handles it
        return ops.reshape(ops.associative_scan(ops.maximum, values, axis=1), ops.shape(values))
    shift = 1
    while shift < length:
        # The first `shift` steps have nothing `shift` steps before them: they keep their value.
        shifted = ops.concatenate([values[:, :shift], values[:, :-shift]], axis=1)
        values = ops.maximum(values, shifted)
        shift *= 2
    return values
