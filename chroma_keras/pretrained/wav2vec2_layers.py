"""The building blocks of :class:`~chroma_keras.pretrained.wav2vec2.Wav2Vec2Backbone`.

Layer and variable names follow the published checkpoint's module names
(``feature_extractor.conv_layers.N``, ``encoder.layers.N.attention.q_proj``...)
so the converter in :mod:`chroma_keras.pretrained.wav2vec2` reads as a plain
name-to-name map. All tensors are channels-last (``[batch, time, channels]``).
"""

from __future__ import annotations

import keras
from keras import ops

from chroma_keras.pretrained.activations import reference_activation as activation

# torch's LayerNorm / GroupNorm default, used by the conv feature extractor (its norms take no config epsilon).
CONV_NORM_EPSILON = 1e-5
# Added to attention scores of padded keys: exp() of it is 0 in float32 and it stays finite in float16.
MASKED_SCORE = -1e4


class Wav2Vec2FeatureEncoder(keras.layers.Layer):
    """The strided 1-D conv stack turning a waveform into frame features.

    Layer ``i`` is ``Conv1D(conv_dim[i], conv_kernel[i], conv_stride[i], valid)``
    followed by a norm and the activation. With ``norm="group"`` (wav2vec2-base)
    only the first layer has a norm: a GroupNorm with one group per channel, i.e.
    each channel normalised over *all* time steps of the clip (zero padding
    included, as in the reference). With ``norm="layer"`` (the large
    "stable layer norm" models) every layer has a LayerNorm over channels.

    Args:
        conv_dim: output channels of each conv layer.
        conv_kernel: kernel size of each conv layer.
        conv_stride: stride of each conv layer.
        conv_bias: whether the convs have a bias.
        norm: ``"group"`` or ``"layer"``.
        activation_name: activation after each layer (``"gelu"``).
        **kwargs: ``keras.layers.Layer`` arguments.

    Call arguments:
        waveform: float ``[batch, samples]``.

    Returns:
        float ``[batch, frames, conv_dim[-1]]``.

    Example:

    >>> encoder = Wav2Vec2FeatureEncoder([8, 8], [10, 3], [5, 2])
    >>> tuple(encoder(np.zeros((1, 400), "float32")).shape)
    (1, 39, 8)
    """

    def __init__(self, conv_dim, conv_kernel, conv_stride, conv_bias=False, norm="group", activation_name="gelu", **kwargs):
        super().__init__(**kwargs)
        self.conv_dim = [int(c) for c in conv_dim]
        self.conv_kernel = [int(k) for k in conv_kernel]
        self.conv_stride = [int(s) for s in conv_stride]
        self.conv_bias = bool(conv_bias)
        self.norm = norm
        self.activation_name = activation_name
        self._activation = activation(activation_name, "feat_extract_activation")
        self.convs = [
            keras.layers.Conv1D(dim, kernel, strides=stride, padding="valid", use_bias=self.conv_bias,
                                name=f"conv_layers_{i}_conv", dtype=self.dtype_policy)
            for i, (dim, kernel, stride) in enumerate(zip(self.conv_dim, self.conv_kernel, self.conv_stride))
        ]
        if norm == "group":
            self.norms = [
                keras.layers.GroupNormalization(groups=self.conv_dim[0], axis=-1, epsilon=CONV_NORM_EPSILON,
                                                name="conv_layers_0_layer_norm", dtype=self.dtype_policy)
            ]
        else:
            self.norms = [
                keras.layers.LayerNormalization(epsilon=CONV_NORM_EPSILON, name=f"conv_layers_{i}_layer_norm",
                                                dtype=self.dtype_policy)
                for i in range(len(self.conv_dim))
            ]

    def build(self, input_shape):
        channels = 1
        for i, (conv, dim) in enumerate(zip(self.convs, self.conv_dim)):
            conv.build((None, None, channels))
            if i < len(self.norms):
                self.norms[i].build((None, None, dim))
            channels = dim
        self.built = True

    def call(self, waveform):
        x = ops.expand_dims(waveform, -1)
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if i < len(self.norms):
                x = self.norms[i](x)
            x = self._activation(x)
        return x

    def compute_output_shape(self, input_shape):
        batch, length = input_shape
        for kernel, stride in zip(self.conv_kernel, self.conv_stride):
            length = None if length is None else (length - kernel) // stride + 1
        return (batch, length, self.conv_dim[-1])


class Wav2Vec2PositionalConvEmbedding(keras.layers.Layer):
    """Relative position information from a wide grouped convolution over time.

    ``GELU(Conv1D(groups, kernel, padding=kernel // 2)(x))``, with the last
    output step dropped when the kernel is even, so the output has the input's
    length. The published weights are weight-normalised; the converter folds
    ``g * v / ||v||`` into a plain kernel.

    Args:
        hidden_dim: channels in and out.
        kernel_size: the conv's width (128 in wav2vec2-base).
        groups: conv groups (16 in wav2vec2-base).
        activation_name: activation after the conv.
        **kwargs: ``keras.layers.Layer`` arguments.

    Call arguments:
        x: float ``[batch, frames, hidden_dim]``.

    Returns:
        float ``[batch, frames, hidden_dim]``.

    Example:

    >>> layer = Wav2Vec2PositionalConvEmbedding(16, kernel_size=8, groups=2)
    >>> tuple(layer(np.zeros((1, 5, 16), "float32")).shape)
    (1, 5, 16)
    """

    def __init__(self, hidden_dim, kernel_size=128, groups=16, activation_name="gelu", **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim = int(hidden_dim)
        self.kernel_size = int(kernel_size)
        self.groups = int(groups)
        self._activation = activation(activation_name, "feat_extract_activation")
        self.conv = keras.layers.Conv1D(self.hidden_dim, self.kernel_size, groups=self.groups, padding="valid",
                                        name="conv", dtype=self.dtype_policy)

    def build(self, input_shape):
        self.conv.build((None, None, self.hidden_dim))
        self.built = True

    def call(self, x):
        half = self.kernel_size // 2
        y = self.conv(ops.pad(x, ((0, 0), (half, half), (0, 0))))
        if self.kernel_size % 2 == 0:
            y = y[:, :-1, :]
        return self._activation(y)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)


class Wav2Vec2Attention(keras.layers.Layer):
    """Bidirectional multi-head self-attention with separate q/k/v/out projections.

    Args:
        hidden_dim: model width; must be divisible by ``num_heads``.
        num_heads: attention heads.
        dropout: dropout on the attention probabilities in training.
        **kwargs: ``keras.layers.Layer`` arguments.

    Call arguments:
        x: float ``[batch, frames, hidden_dim]``.
        padding_mask: optional ``[batch, frames]``, 1 on real frames; padded frames are
            never attended to (they still produce an output).
        training: whether dropout is active.

    Returns:
        float ``[batch, frames, hidden_dim]``.

    Example:

    >>> layer = Wav2Vec2Attention(16, 2)
    >>> tuple(layer(np.zeros((1, 5, 16), "float32")).shape)
    (1, 5, 16)
    """

    def __init__(self, hidden_dim, num_heads, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim = int(hidden_dim)
        self.num_heads = int(num_heads)
        self.head_dim = self.hidden_dim // self.num_heads
        self.dropout = float(dropout)
        self.q_proj = keras.layers.Dense(self.hidden_dim, name="q_proj", dtype=self.dtype_policy)
        self.k_proj = keras.layers.Dense(self.hidden_dim, name="k_proj", dtype=self.dtype_policy)
        self.v_proj = keras.layers.Dense(self.hidden_dim, name="v_proj", dtype=self.dtype_policy)
        self.out_proj = keras.layers.Dense(self.hidden_dim, name="out_proj", dtype=self.dtype_policy)
        self.dropout_layer = keras.layers.Dropout(self.dropout)

    def build(self, input_shape):
        for dense in (self.q_proj, self.k_proj, self.v_proj, self.out_proj):
            dense.build((None, None, self.hidden_dim))
        self.built = True

    def _heads(self, x):
        batch, frames = ops.shape(x)[0], ops.shape(x)[1]
        return ops.transpose(ops.reshape(x, (batch, frames, self.num_heads, self.head_dim)), (0, 2, 1, 3))

    def call(self, x, padding_mask=None, training=False):
        q = self._heads(self.q_proj(x)) * ops.cast(self.head_dim**-0.5, x.dtype)
        k = self._heads(self.k_proj(x))
        v = self._heads(self.v_proj(x))
        scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2)))  # [b, heads, frames, frames]
        if padding_mask is not None:
            scores = scores + (1.0 - ops.cast(padding_mask, scores.dtype))[:, None, None, :] * MASKED_SCORE
        probs = self.dropout_layer(ops.softmax(scores, axis=-1), training=training)
        context = ops.transpose(ops.matmul(probs, v), (0, 2, 1, 3))
        batch, frames = ops.shape(context)[0], ops.shape(context)[1]
        return self.out_proj(ops.reshape(context, (batch, frames, self.hidden_dim)))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)


class Wav2Vec2EncoderLayer(keras.layers.Layer):
    """One transformer layer, post-norm (wav2vec2-base) or pre-norm ("stable layer norm").

    Post-norm: ``h = LN(x + Drop(Attn(x)))``, ``y = LN_final(h + FFN(h))``.
    Pre-norm: ``h = x + Drop(Attn(LN(x)))``, ``y = h + FFN(LN_final(h))``.
    ``FFN(h) = Drop(Dense(act(Dense(h))))`` with ``activation_dropout`` inside.

    Args:
        hidden_dim: model width.
        num_heads: attention heads.
        intermediate_dim: feed-forward width.
        activation_name: feed-forward activation (``"gelu"``).
        layer_norm_epsilon: epsilon of both LayerNorms.
        stable_layer_norm: pre-norm when True.
        hidden_dropout: dropout on the attention and feed-forward outputs.
        attention_dropout: dropout on the attention probabilities.
        activation_dropout: dropout after the feed-forward activation.
        **kwargs: ``keras.layers.Layer`` arguments.

    Call arguments:
        x: float ``[batch, frames, hidden_dim]``.
        padding_mask: optional ``[batch, frames]`` frame mask (1 = real).
        training: whether dropout is active.

    Returns:
        float ``[batch, frames, hidden_dim]``.

    Example:

    >>> layer = Wav2Vec2EncoderLayer(16, 2, 32)
    >>> tuple(layer(np.zeros((1, 5, 16), "float32")).shape)
    (1, 5, 16)
    """

    def __init__(self, hidden_dim, num_heads, intermediate_dim, activation_name="gelu", layer_norm_epsilon=1e-5,
                 stable_layer_norm=False, hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim = int(hidden_dim)
        self.intermediate_dim = int(intermediate_dim)
        self.stable_layer_norm = bool(stable_layer_norm)
        self._activation = activation(activation_name, "hidden_act")
        self.attention = Wav2Vec2Attention(hidden_dim, num_heads, attention_dropout, name="attention", dtype=self.dtype_policy)
        self.layer_norm = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, name="layer_norm", dtype=self.dtype_policy)
        policy = self.dtype_policy
        self.intermediate_dense = keras.layers.Dense(self.intermediate_dim, name="feed_forward_intermediate_dense", dtype=policy)
        self.output_dense = keras.layers.Dense(self.hidden_dim, name="feed_forward_output_dense", dtype=policy)
        self.final_layer_norm = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, name="final_layer_norm", dtype=policy)
        self.hidden_dropout = keras.layers.Dropout(hidden_dropout)
        self.activation_dropout = keras.layers.Dropout(activation_dropout)

    def build(self, input_shape):
        self.attention.build((None, None, self.hidden_dim))
        self.layer_norm.build((None, None, self.hidden_dim))
        self.intermediate_dense.build((None, None, self.hidden_dim))
        self.output_dense.build((None, None, self.intermediate_dim))
        self.final_layer_norm.build((None, None, self.hidden_dim))
        self.built = True

    def _feed_forward(self, x, training):
        x = self.activation_dropout(self._activation(self.intermediate_dense(x)), training=training)
        return self.hidden_dropout(self.output_dense(x), training=training)

    def call(self, x, padding_mask=None, training=False):
        if self.stable_layer_norm:
            attended = self.attention(self.layer_norm(x), padding_mask=padding_mask, training=training)
            x = x + self.hidden_dropout(attended, training=training)
            return x + self._feed_forward(self.final_layer_norm(x), training)
        attended = self.attention(x, padding_mask=padding_mask, training=training)
        x = self.layer_norm(x + self.hidden_dropout(attended, training=training))
        return self.final_layer_norm(x + self._feed_forward(x, training))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)
