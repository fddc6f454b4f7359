"""Self-attention with learned relative position embeddings and the "skewing" trick.

Music Transformer (Huang et al., 2018, "Music Transformer: Generating Music with
Long-Term Structure", §3.4.1) adds to the content logits ``Q K^T`` a relative term
``S_rel[i, j] = q_i . E_r[j - i]``, one learned embedding per distance ``j - i``.
Computing it naively gathers an ``[L, L, D]`` tensor ``R``; the skew computes
``Q E_r^T`` (``[L, num_distances]``) and rearranges it with a pad, a reshape and a
slice, in ``O(L D)`` extra memory.
"""

import keras
from keras import ops

from chroma_keras.errors import ModelInputError


@keras.saving.register_keras_serializable(package="chroma_keras")
class RelativeMultiHeadAttention(keras.layers.Layer):
    """Multi-head self-attention with relative position logits (Music Transformer).

    ``logits = (Q K^T + S_rel) / sqrt(key_dim)`` with ``S_rel[b, h, i, j] =
    q[b, h, i] . E_r[h, clip(j - i)]``. Each head owns a table ``E_r`` of
    ``2 * max_relative_position - 1`` embeddings (distances ``-(M-1) .. M-1``;
    ``M`` embeddings, distances ``-(M-1) .. 0``, when ``causal``); longer distances
    share the embedding of the farthest one (clipping, as Shaw et al., 2018).

    ``S_rel`` is computed with the memory-efficient skew (see
    :meth:`relative_logits`): the bidirectional case pads one zero column on the
    right of ``Q E^T`` (``[L, 2L-1]`` -> ``[L, 2L]``), flattens each head's matrix,
    drops the first ``L - 1`` entries, reshapes the next ``L (2L-1)`` into
    ``[L, 2L-1]`` and keeps the first ``L`` columns; the causal case is the paper's
    skew (pad one column on the left, reshape to ``[L+1, L]``, drop the first row).

    Args:
        num_heads: number of attention heads.
        key_dim: size of each head's query/key/value.
        max_relative_position: ``M``, the number of distinct distances on each side
            (a sequence of length ``M`` needs no clipping).
        causal: attend only to keys at or before the query.
        dropout: dropout on the attention weights.
        use_bias: whether the projections have biases.
        kernel_initializer: initializer of the projection kernels.
        relative_initializer: initializer of the relative embeddings.
        seed: seed of the dropout.
        **kwargs: ``keras.layers.Layer`` arguments.

    Call arguments:
        inputs: float ``[batch, length, hidden]``.
        padding_mask: optional ``[batch, length]``, 1/True on real tokens (masks keys).
        attention_mask: optional ``[batch, length, length]``, 1/True where query ``i``
            may attend to key ``j``.
        training: whether dropout applies.
        return_attention_scores: also return the attention weights
            ``[batch, heads, length, length]``.

    Returns:
        float ``[batch, length, hidden]`` (and the weights when asked).

    Example:
    >>> layer = RelativeMultiHeadAttention(num_heads=2, key_dim=8, max_relative_position=16)
    >>> layer(np.zeros((1, 10, 16), "float32")).shape
    (1, 10, 16)
    """

    def __init__(
        self,
        num_heads,
        key_dim,
        max_relative_position,
        causal=False,
        dropout=0.0,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        relative_initializer="glorot_uniform",
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (("num_heads", num_heads), ("key_dim", key_dim), ("max_relative_position", max_relative_position)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ModelInputError(f"{name} must be a positive integer. Received: {name}={value!r}")
        if not 0.0 <= dropout < 1.0:
            raise ModelInputError(f"dropout must be in [0, 1). Received: dropout={dropout}")
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.max_relative_position = max_relative_position
        self.causal = bool(causal)
        self.dropout = float(dropout)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.relative_initializer = keras.initializers.get(relative_initializer)
        self.seed = seed
        self.num_relative_embeddings = max_relative_position if self.causal else 2 * max_relative_position - 1
        self.supports_masking = False

        # === Layers ===
        projection = dict(
            output_shape=(None, num_heads, key_dim),
            bias_axes="de" if use_bias else None,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
        )
        self.query_dense = keras.layers.EinsumDense("abc,cde->abde", name="query", **projection)
        self.key_dense = keras.layers.EinsumDense("abc,cde->abde", name="key", **projection)
        self.value_dense = keras.layers.EinsumDense("abc,cde->abde", name="value", **projection)
        self.softmax = keras.layers.Softmax(axis=-1, dtype=self.dtype_policy, name="softmax")
        self.dropout_layer = keras.layers.Dropout(self.dropout, seed=seed, dtype=self.dtype_policy, name="dropout")
        self.output_dense = None

    def build(self, input_shape):
        hidden = input_shape[-1]
        if hidden is None:
            raise ModelInputError(f"the last axis of the input must be known. Received: input_shape={input_shape}")
        for dense in (self.query_dense, self.key_dense, self.value_dense):
            dense.build(input_shape)
        self.output_dense = keras.layers.EinsumDense(
            "abcd,cde->abe",
            output_shape=(None, hidden),
            bias_axes="e" if self.use_bias else None,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="attention_output",
        )
        self.output_dense.build((input_shape[0], input_shape[1], self.num_heads, self.key_dim))
        self.relative_embeddings = self.add_weight(
            name="relative_embeddings",
            shape=(self.num_heads, self.num_relative_embeddings, self.key_dim),
            initializer=self.relative_initializer,
        )

    def relative_logits(self, query):
        """``S_rel`` from per-head queries by the skew (no ``[L, L, D]`` tensor).

        Args:
            query: float ``[batch, heads, length, key_dim]`` (projected queries).

        Returns:
            float ``[batch, heads, length, length]`` with
            ``out[b, h, i, j] = query[b, h, i] . E_r[h, clip(j - i)]``; in the causal
            case entries with ``j > i`` are unspecified (they are masked).
        """
        length = ops.shape(query)[2]
        m = self.max_relative_position
        table = ops.cast(self.relative_embeddings, query.dtype)
        if self.causal:
            # Distances -(L-1) .. 0, ascending: column c of Q E^T is distance c - (L-1).
            distances = ops.arange(1 - length, 1)
            e = ops.take(table, ops.clip(distances, 1 - m, 0) + (m - 1), axis=1)
            x = ops.einsum("bhqd,hmd->bhqm", query, e)  # [b, h, L, L]
            x = ops.pad(x, [[0, 0], [0, 0], [0, 0], [1, 0]])  # [b, h, L, L+1]
            x = ops.reshape(x, (-1, self.num_heads, length + 1, length))
            return x[:, :, 1:, :]
        # Distances -(L-1) .. L-1: we need S[i, j] = X[i, j - i + L - 1].
        distances = ops.arange(1 - length, length)
        e = ops.take(table, ops.clip(distances, 1 - m, m - 1) + (m - 1), axis=1)
        x = ops.einsum("bhqd,hmd->bhqm", query, e)  # [b, h, L, 2L-1]
        # With rows padded to width 2L, X[i, j - i + L - 1] sits at flat index
        # (L - 1) + i (2L - 1) + j: drop L - 1 entries, read rows of width 2L - 1.
        x = ops.pad(x, [[0, 0], [0, 0], [0, 0], [0, 1]])  # [b, h, L, 2L]
        x = ops.reshape(x, (-1, self.num_heads, 2 * length * length))
        x = x[:, :, length - 1 : length - 1 + length * (2 * length - 1)]
        x = ops.reshape(x, (-1, self.num_heads, length, 2 * length - 1))
        return x[:, :, :, :length]

    def call(self, inputs, padding_mask=None, attention_mask=None, training=None, return_attention_scores=False):
        query = ops.transpose(self.query_dense(inputs), (0, 2, 1, 3))  # [b, h, L, d]
        key = ops.transpose(self.key_dense(inputs), (0, 2, 1, 3))
        value = ops.transpose(self.value_dense(inputs), (0, 2, 1, 3))
        logits = ops.einsum("bhqd,bhkd->bhqk", query, key) + self.relative_logits(query)
        logits = logits / ops.sqrt(ops.cast(self.key_dim, logits.dtype))

        mask = self._combined_mask(inputs, padding_mask, attention_mask)
        weights = self.softmax(logits, mask=mask)
        weights = self.dropout_layer(weights, training=training)
        out = ops.einsum("bhqk,bhkd->bqhd", weights, value)
        out = self.output_dense(out)
        if return_attention_scores:
            return out, weights
        return out

    def _combined_mask(self, inputs, padding_mask, attention_mask):
        """Boolean ``[batch, 1, L, L]`` (or None): padding, explicit and causal masks ANDed."""
        length = ops.shape(inputs)[1]
        mask = None
        if padding_mask is not None:
            mask = ops.cast(padding_mask, "bool")[:, None, None, :]
        if attention_mask is not None:
            explicit = ops.cast(attention_mask, "bool")[:, None, :, :]
            mask = explicit if mask is None else ops.logical_and(mask, explicit)
        if self.causal:
            steps = ops.arange(length)
            lower = (steps[None, :] <= steps[:, None])[None, None, :, :]
            mask = lower if mask is None else ops.logical_and(mask, lower)
        return mask

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads,
            key_dim=self.key_dim,
            max_relative_position=self.max_relative_position,
            causal=self.causal,
            dropout=self.dropout,
            use_bias=self.use_bias,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            relative_initializer=keras.initializers.serialize(self.relative_initializer),
            seed=self.seed,
        )
        return config
