"""The building blocks of the HTS-AT audio encoder (CLAP's audio branch), in Keras 3 ops.

HTS-AT is a Swin transformer over a log-mel spectrogram folded into a square
"image". The layers here are the generic Swin pieces (window attention with a
relative position bias, a shifted-window block, patch merging, stochastic
depth) plus the two CLAP-specific input layers (the patch embedding and its
attentional feature fusion block for long clips).

All shapes are channels-last: a feature map is ``[batch, height, width,
channels]`` and a token sequence ``[batch, height * width, channels]`` in
row-major ``(height, width)`` order (the order a PyTorch ``flatten(2)`` of an
NCHW map gives, so checkpoints map one to one).
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from chroma_keras.errors import CheckpointError
from chroma_keras.pretrained.activations import reference_activation as activation_fn

# PyTorch's nn.LayerNorm / nn.BatchNorm2d default epsilon.
TORCH_NORM_EPSILON = 1e-5


def relative_position_index(window_size: int) -> np.ndarray:
    """For every (query, key) pair of a ``window_size``² window, the row of the bias table it reads.

    A pair's offset ``(dy, dx)`` lies in ``[-(w-1), w-1]²``; the row is
    ``(dy + w - 1) * (2w - 1) + (dx + w - 1)``.

    Returns:
        ``int32 [w*w, w*w]``.
    """
    rows, cols = np.meshgrid(np.arange(window_size), np.arange(window_size), indexing="ij")
    coords = np.stack([rows.ravel(), cols.ravel()])  # [2, w*w]
    offsets = coords[:, :, None] - coords[:, None, :] + (window_size - 1)
    return (offsets[0] * (2 * window_size - 1) + offsets[1]).astype("int32")


def shifted_window_mask(height: int, width: int, window_size: int, shift: int) -> np.ndarray:
    """Additive attention mask of a cyclically shifted window partition (0 within a region, -100 across).

    After rolling the map by ``-shift`` along both axes, a window can hold
    tokens from up to three regions per axis that were not neighbours; tokens
    may only attend within their own region. The -100 (not -inf) matches the
    published implementation, so attention probabilities agree to float precision.

    Returns:
        ``float32 [num_windows, w*w, w*w]``.
    """
    def regions(size):
        index = np.arange(size)
        return (index >= size - window_size).astype(int) + (index >= size - shift).astype(int)

    labels = regions(height)[:, None] * 3 + regions(width)[None, :]
    windows = labels.reshape(height // window_size, window_size, width // window_size, window_size)
    windows = windows.transpose(0, 2, 1, 3).reshape(-1, window_size * window_size)
    different = windows[:, None, :] != windows[:, :, None]
    return np.where(different, -100.0, 0.0).astype("float32")


@keras.saving.register_keras_serializable(package="chroma_keras")
class DropPath(keras.layers.Layer):
    """Stochastic depth: in training, zero a residual branch for a random subset of examples.

    Kept examples are scaled by ``1 / (1 - rate)``; identity at inference.

    Args:
        rate: probability of dropping an example's branch.
        seed: seed of the layer's random generator.

    Example:

    >>> tuple(DropPath(0.1)(np.ones((2, 3, 4), "float32")).shape)
    (2, 3, 4)
    """

    def __init__(self, rate: float = 0.0, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.rate = float(rate)
        self.seed = seed
        # Only a layer that drops anything carries random state (and a state variable).
        self.seed_generator = keras.random.SeedGenerator(seed) if self.rate > 0 else None

    def call(self, inputs, training=False):
        if not training or self.rate == 0.0:
            return inputs
        keep = 1.0 - self.rate
        shape = (ops.shape(inputs)[0],) + (1,) * (len(inputs.shape) - 1)
        noise = keras.random.uniform(shape, seed=self.seed_generator, dtype=inputs.dtype)
        return inputs / keep * ops.floor(noise + keep)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


@keras.saving.register_keras_serializable(package="chroma_keras")
class WindowAttention(keras.layers.Layer):
    """Multi-head self-attention inside square windows, with a learned relative position bias.

    Args:
        dim: token width.
        num_heads: attention heads (``dim`` must divide evenly).
        window_size: window side ``w``; each window holds ``w*w`` tokens.
        qkv_bias: whether the query/key/value projections have biases.
        attention_dropout: dropout on the attention probabilities (training only).
        output_dropout: dropout after the output projection (training only).

    Call arguments:
        windows: ``[batch * num_windows, w*w, dim]``.
        attention_mask: optional additive mask ``[num_windows, w*w, w*w]`` (shifted windows).
        training: whether dropout is active.

    Returns:
        ``[batch * num_windows, w*w, dim]``.

    Example:

    >>> layer = WindowAttention(dim=8, num_heads=2, window_size=2)
    >>> tuple(layer(np.zeros((3, 4, 8), "float32")).shape)
    (3, 4, 8)
    """

    def __init__(self, dim, num_heads, window_size, qkv_bias=True, attention_dropout=0.0, output_dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        if dim % num_heads:
            raise CheckpointError(f"num_attention_heads={num_heads}: must divide the stage width {dim}.")
        self.dim, self.num_heads, self.window_size = int(dim), int(num_heads), int(window_size)
        self.head_dim = self.dim // self.num_heads
        self.qkv_bias = bool(qkv_bias)
        self.attention_dropout, self.output_dropout = float(attention_dropout), float(output_dropout)
        self.query = keras.layers.Dense(dim, use_bias=qkv_bias, name="query", dtype=self.dtype_policy)
        self.key = keras.layers.Dense(dim, use_bias=qkv_bias, name="key", dtype=self.dtype_policy)
        self.value = keras.layers.Dense(dim, use_bias=qkv_bias, name="value", dtype=self.dtype_policy)
        self.output_dense = keras.layers.Dense(dim, name="output_dense", dtype=self.dtype_policy)
        self.probs_dropout = keras.layers.Dropout(attention_dropout)
        self.out_dropout = keras.layers.Dropout(output_dropout)
        self._index = relative_position_index(self.window_size).reshape(-1)

    def build(self, input_shape):
        side = 2 * self.window_size - 1
        self.relative_position_bias_table = self.add_weight(
            shape=(side * side, self.num_heads),
            initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            name="relative_position_bias_table",
        )
        for dense in (self.query, self.key, self.value, self.output_dense):
            dense.build((None, None, self.dim))
        self.built = True

    def call(self, windows, attention_mask=None, training=False):
        tokens = self.window_size * self.window_size

        def heads(x):
            return ops.transpose(ops.reshape(x, (-1, tokens, self.num_heads, self.head_dim)), (0, 2, 1, 3))

        q, k, v = heads(self.query(windows)), heads(self.key(windows)), heads(self.value(windows))
        scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) / math.sqrt(self.head_dim)
        bias = ops.take(self.relative_position_bias_table, self._index, axis=0)  # [t*t, heads]
        bias = ops.transpose(ops.reshape(bias, (tokens, tokens, self.num_heads)), (2, 0, 1))
        scores = scores + ops.cast(bias, scores.dtype)[None]
        if attention_mask is not None:
            num_windows = attention_mask.shape[0]
            scores = ops.reshape(scores, (-1, num_windows, self.num_heads, tokens, tokens))
            scores = scores + ops.cast(attention_mask, scores.dtype)[None, :, None]
            scores = ops.reshape(scores, (-1, self.num_heads, tokens, tokens))
        probs = self.probs_dropout(ops.softmax(scores, axis=-1), training=training)
        context = ops.reshape(ops.transpose(ops.matmul(probs, v), (0, 2, 1, 3)), (-1, tokens, self.dim))
        return self.out_dropout(self.output_dense(context), training=training)

    def get_config(self):
        return {
            **super().get_config(),
            "dim": self.dim,
            "num_heads": self.num_heads,
            "window_size": self.window_size,
            "qkv_bias": self.qkv_bias,
            "attention_dropout": self.attention_dropout,
            "output_dropout": self.output_dropout,
        }


@keras.saving.register_keras_serializable(package="chroma_keras")
class SwinBlock(keras.layers.Layer):
    """One Swin transformer block on a fixed ``height x width`` token grid.

    ``x + attention(norm(x))`` over (optionally shifted) windows, then
    ``x + mlp(norm(x))``. When the grid is no larger than the window in some
    direction, the whole grid is one window and the shift is dropped (as the
    published model does).

    Args:
        dim: token width.
        resolution: ``(height, width)`` of the token grid.
        num_heads: attention heads.
        window_size: window side.
        shift: cyclic shift (``window_size // 2`` on odd blocks, else 0).
        mlp_ratio: MLP hidden width / ``dim``.
        hidden_act: MLP activation name (``"gelu"``).
        qkv_bias: biases on query/key/value.
        layer_norm_epsilon: epsilon of both LayerNorms.
        hidden_dropout: dropout after the MLP.
        attention_dropout: dropout on attention probabilities and after the attention output.
        drop_path: stochastic-depth rate of both residual branches.

    Call arguments:
        tokens: ``[batch, height * width, dim]``.

    Returns:
        ``[batch, height * width, dim]``.

    Example:

    >>> block = SwinBlock(dim=8, resolution=(4, 4), num_heads=2, window_size=2, shift=1)
    >>> tuple(block(np.zeros((1, 16, 8), "float32")).shape)
    (1, 16, 8)
    """

    def __init__(
        self,
        dim,
        resolution,
        num_heads,
        window_size,
        shift=0,
        mlp_ratio=4.0,
        hidden_act="gelu",
        qkv_bias=True,
        layer_norm_epsilon=TORCH_NORM_EPSILON,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        drop_path=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.dim = int(dim)
        self.resolution = tuple(int(r) for r in resolution)
        self.num_heads = int(num_heads)
        self.requested_window, self.requested_shift = int(window_size), int(shift)
        if min(self.resolution) <= self.requested_window:
            # The grid fits in one window: no partition and no shift.
            self.window_size, self.shift = min(self.resolution), 0
        else:
            self.window_size, self.shift = self.requested_window, self.requested_shift
        self.mlp_ratio, self.hidden_act, self.qkv_bias = float(mlp_ratio), hidden_act, bool(qkv_bias)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.hidden_dropout, self.attention_dropout, self.drop_path = float(hidden_dropout), float(attention_dropout), float(drop_path)
        height, width = self.resolution
        self.padded = (-(-height // self.window_size) * self.window_size, -(-width // self.window_size) * self.window_size)
        self._mask = shifted_window_mask(*self.padded, self.window_size, self.shift) if self.shift > 0 else None
        self._act = activation_fn(hidden_act, "hidden_act")

        self.layernorm_before = keras.layers.LayerNormalization(epsilon=self.layer_norm_epsilon, name="layernorm_before", dtype=self.dtype_policy)
        self.attention = WindowAttention(
            dim, num_heads, self.window_size, qkv_bias, attention_dropout, attention_dropout, name="attention", dtype=self.dtype_policy
        )
        self.layernorm_after = keras.layers.LayerNormalization(epsilon=self.layer_norm_epsilon, name="layernorm_after", dtype=self.dtype_policy)
        self.intermediate = keras.layers.Dense(int(self.mlp_ratio * dim), name="intermediate", dtype=self.dtype_policy)
        self.output_dense = keras.layers.Dense(dim, name="output_dense", dtype=self.dtype_policy)
        self.mlp_dropout = keras.layers.Dropout(hidden_dropout)
        self.drop_path_layer = DropPath(drop_path)

    def build(self, input_shape):
        self.layernorm_before.build((None, None, self.dim))
        self.attention.build((None, None, self.dim))
        self.layernorm_after.build((None, None, self.dim))
        self.intermediate.build((None, None, self.dim))
        self.output_dense.build((None, None, int(self.mlp_ratio * self.dim)))
        self.built = True

    def call(self, tokens, training=False):
        height, width = self.resolution
        (padded_h, padded_w), w = self.padded, self.window_size
        x = ops.reshape(self.layernorm_before(tokens), (-1, height, width, self.dim))
        if (padded_h, padded_w) != (height, width):
            x = ops.pad(x, [(0, 0), (0, padded_h - height), (0, padded_w - width), (0, 0)])
        if self.shift:
            x = ops.roll(x, shift=(-self.shift, -self.shift), axis=(1, 2))
        windows = ops.reshape(x, (-1, padded_h // w, w, padded_w // w, w, self.dim))
        windows = ops.reshape(ops.transpose(windows, (0, 1, 3, 2, 4, 5)), (-1, w * w, self.dim))
        mask = None if self._mask is None else ops.convert_to_tensor(self._mask)
        attended = self.attention(windows, attention_mask=mask, training=training)
        x = ops.reshape(attended, (-1, padded_h // w, padded_w // w, w, w, self.dim))
        x = ops.reshape(ops.transpose(x, (0, 1, 3, 2, 4, 5)), (-1, padded_h, padded_w, self.dim))
        if self.shift:
            x = ops.roll(x, shift=(self.shift, self.shift), axis=(1, 2))
        x = ops.reshape(x[:, :height, :width, :], (-1, height * width, self.dim))
        tokens = tokens + self.drop_path_layer(x, training=training)
        mlp = self.output_dense(self._act(self.intermediate(self.layernorm_after(tokens))))
        return tokens + self.drop_path_layer(self.mlp_dropout(mlp, training=training), training=training)

    def get_config(self):
        return {
            **super().get_config(),
            "dim": self.dim,
            "resolution": list(self.resolution),
            "num_heads": self.num_heads,
            "window_size": self.requested_window,
            "shift": self.requested_shift,
            "mlp_ratio": self.mlp_ratio,
            "hidden_act": self.hidden_act,
            "qkv_bias": self.qkv_bias,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "hidden_dropout": self.hidden_dropout,
            "attention_dropout": self.attention_dropout,
            "drop_path": self.drop_path,
        }


@keras.saving.register_keras_serializable(package="chroma_keras")
class PatchMerging(keras.layers.Layer):
    """Halve a token grid in both directions: each 2x2 neighbourhood -> one token of twice the width.

    The four neighbours are concatenated in the order (top-left, bottom-left,
    top-right, bottom-right), normalised, then projected from ``4 * dim`` to
    ``2 * dim`` without bias. Odd sides are zero-padded first.

    Args:
        dim: input token width.
        resolution: ``(height, width)`` of the input grid.

    Call arguments:
        tokens: ``[batch, height * width, dim]``.

    Returns:
        ``[batch, ceil(height / 2) * ceil(width / 2), 2 * dim]``.

    Example:

    >>> tuple(PatchMerging(dim=4, resolution=(4, 4))(np.zeros((1, 16, 4), "float32")).shape)
    (1, 4, 8)
    """

    def __init__(self, dim, resolution, **kwargs):
        super().__init__(**kwargs)
        self.dim = int(dim)
        self.resolution = tuple(int(r) for r in resolution)
        self.norm = keras.layers.LayerNormalization(epsilon=TORCH_NORM_EPSILON, name="norm", dtype=self.dtype_policy)
        self.reduction = keras.layers.Dense(2 * self.dim, use_bias=False, name="reduction", dtype=self.dtype_policy)

    def build(self, input_shape):
        self.norm.build((None, None, 4 * self.dim))
        self.reduction.build((None, None, 4 * self.dim))
        self.built = True

    def call(self, tokens):
        height, width = self.resolution
        x = ops.reshape(tokens, (-1, height, width, self.dim))
        if height % 2 or width % 2:
            x = ops.pad(x, [(0, 0), (0, height % 2), (0, width % 2), (0, 0)])
        parts = [x[:, row::2, col::2, :] for col in range(2) for row in range(2)]
        x = ops.concatenate(parts, axis=-1)
        x = ops.reshape(x, (-1, x.shape[1] * x.shape[2], 4 * self.dim))
        return self.reduction(self.norm(x))

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "resolution": list(self.resolution)}


def _bn(name, policy):
    return keras.layers.BatchNormalization(epsilon=TORCH_NORM_EPSILON, momentum=0.9, name=name, dtype=policy)


@keras.saving.register_keras_serializable(package="chroma_keras")
class AttentionalFeatureFusion(keras.layers.Layer):
    """CLAP's 2-D attentional feature fusion of a global and a local feature map.

    A gate ``g = sigmoid(local_branch(x + r) + global_branch(x + r))`` mixes the
    two maps as ``2 * x * g + 2 * r * (1 - g)``; each branch is
    ``1x1 conv -> BN -> ReLU -> 1x1 conv -> BN`` (the global one on the
    spatial mean).

    Args:
        channels: feature channels.
        reduction: channel reduction inside the branches (``aff_block_r``).

    Call arguments:
        features: ``[batch, height, width, channels]`` (the global map).
        residual: same shape (the local map).
        training: whether BatchNorm uses batch statistics.

    Returns:
        ``[batch, height, width, channels]``.

    Example:

    >>> aff = AttentionalFeatureFusion(channels=8, reduction=4)
    >>> tuple(aff(np.zeros((1, 2, 2, 8), "float32"), np.zeros((1, 2, 2, 8), "float32")).shape)
    (1, 2, 2, 8)
    """

    def __init__(self, channels, reduction=4, **kwargs):
        super().__init__(**kwargs)
        self.channels, self.reduction = int(channels), int(reduction)
        inner = self.channels // self.reduction
        policy = self.dtype_policy
        self.local_layers = [
            keras.layers.Conv2D(inner, 1, name="local_conv_0", dtype=policy), _bn("local_bn_0", policy),
            keras.layers.Conv2D(channels, 1, name="local_conv_1", dtype=policy), _bn("local_bn_1", policy),
        ]
        self.global_layers = [
            keras.layers.Conv2D(inner, 1, name="global_conv_0", dtype=policy), _bn("global_bn_0", policy),
            keras.layers.Conv2D(channels, 1, name="global_conv_1", dtype=policy), _bn("global_bn_1", policy),
        ]

    def build(self, input_shape):
        inner = self.channels // self.reduction
        for layers in (self.local_layers, self.global_layers):
            layers[0].build((None, None, None, self.channels))
            layers[1].build((None, None, None, inner))
            layers[2].build((None, None, None, inner))
            layers[3].build((None, None, None, self.channels))
        self.built = True

    @staticmethod
    def _branch(layers, x, training):
        x = ops.relu(layers[1](layers[0](x), training=training))
        return layers[3](layers[2](x), training=training)

    def call(self, features, residual, training=False):
        both = features + residual
        local = self._branch(self.local_layers, both, training)
        pooled = ops.mean(both, axis=(1, 2), keepdims=True)
        gate = ops.sigmoid(local + self._branch(self.global_layers, pooled, training))
        return 2.0 * features * gate + 2.0 * residual * (1.0 - gate)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "reduction": self.reduction}


@keras.saving.register_keras_serializable(package="chroma_keras")
class ClapPatchEmbedding(keras.layers.Layer):
    """Spectrogram image -> patch tokens (with CLAP's feature fusion of local crops when enabled).

    Without fusion: ``Conv2D(patch, stride)`` on the single-channel image, then
    tokens in row-major order and a LayerNorm. With fusion the input has four
    channels: channel 0 (the whole clip, shrunk) goes through the same
    convolution; channels 1-3 (three crops) each go through a convolution three
    times wider in time, are laid side by side along the time axis, zero-padded
    to the global map's width and fused into it with
    :class:`AttentionalFeatureFusion`, but only for examples marked
    ``is_longer`` (the others keep the global map).

    Args:
        hidden_size: token width (``patch_embeds_hidden_size``).
        image_size: side of the square input image (``spec_size``).
        patch_size: convolution kernel (int or ``(h, w)``).
        patch_stride: convolution stride (int or ``(h, w)``).
        enable_fusion: whether the fusion branch exists.
        aff_reduction: channel reduction of the fusion block.
        layer_norm: whether the tokens are layer-normalised.

    Call arguments:
        image: ``[batch, image_size, image_size, channels]`` (channels 4 with fusion, else 1).
        is_longer: ``[batch]`` bool/int (fusion only; default all False).
        training: whether BatchNorm in the fusion block uses batch statistics.

    Returns:
        ``[batch, grid_h * grid_w, hidden_size]``.

    Example:

    >>> embed = ClapPatchEmbedding(hidden_size=8, image_size=16, patch_size=4, patch_stride=4)
    >>> tuple(embed(np.zeros((1, 16, 16, 1), "float32")).shape)
    (1, 16, 8)
    """

    def __init__(self, hidden_size, image_size, patch_size=4, patch_stride=4, enable_fusion=False, aff_reduction=4, layer_norm=True, **kwargs):
        super().__init__(**kwargs)
        pair = lambda v: (int(v), int(v)) if isinstance(v, (int, np.integer)) else tuple(int(x) for x in v)  # noqa: E731
        self.hidden_size, self.image_size = int(hidden_size), int(image_size)
        self.patch_size, self.patch_stride = pair(patch_size), pair(patch_stride)
        self.enable_fusion, self.aff_reduction, self.layer_norm = bool(enable_fusion), int(aff_reduction), bool(layer_norm)
        self.padding = ((self.patch_size[0] - self.patch_stride[0]) // 2, (self.patch_size[1] - self.patch_stride[1]) // 2)
        self.grid = tuple(
            (self.image_size + 2 * p - k) // s + 1 for p, k, s in zip(self.padding, self.patch_size, self.patch_stride)
        )
        policy = self.dtype_policy
        self.proj = keras.layers.Conv2D(hidden_size, self.patch_size, strides=self.patch_stride, name="proj", dtype=policy)
        self.norm = keras.layers.LayerNormalization(epsilon=TORCH_NORM_EPSILON, name="norm", dtype=policy) if layer_norm else None
        if self.enable_fusion:
            wide_kernel = (self.patch_size[0], self.patch_size[1] * 3)
            wide_stride = (self.patch_stride[0], self.patch_stride[1] * 3)
            self.mel_conv2d = keras.layers.Conv2D(hidden_size, wide_kernel, strides=wide_stride, name="mel_conv2d", dtype=policy)
            self.fusion = AttentionalFeatureFusion(hidden_size, aff_reduction, name="fusion", dtype=policy)

    def build(self, input_shape):
        self.proj.build((None, None, None, 1))
        if self.norm is not None:
            self.norm.build((None, None, self.hidden_size))
        if self.enable_fusion:
            self.mel_conv2d.build((None, None, None, 1))
            self.fusion.build((None, None, None, self.hidden_size))
        self.built = True

    def _pad(self, x):
        if self.padding == (0, 0):
            return x
        (ph, pw) = self.padding
        return ops.pad(x, [(0, 0), (ph, ph), (pw, pw), (0, 0)])

    def call(self, image, is_longer=None, training=False):
        features = self.proj(self._pad(image[..., :1]))  # [b, gh, gw, d]
        if self.enable_fusion:
            gh, gw = features.shape[1], features.shape[2]
            crops = ops.transpose(image[..., 1:], (0, 3, 1, 2))  # [b, 3, H, W]
            crops = ops.reshape(crops, (-1, self.image_size, self.image_size, 1))
            local = self.mel_conv2d(self._pad(crops))  # [b*3, gh, lw, d]
            local_w = local.shape[2]
            local = ops.reshape(local, (-1, 3, gh, local_w, self.hidden_size))
            # The three crops' maps side by side along time: [b, gh, 3 * lw, d].
            local = ops.reshape(ops.transpose(local, (0, 2, 1, 3, 4)), (-1, gh, 3 * local_w, self.hidden_size))
            if 3 * local_w < gw:
                local = ops.pad(local, [(0, 0), (0, 0), (0, gw - 3 * local_w), (0, 0)])
            else:
                local = local[:, :, :gw, :]
            fused = self.fusion(features, local, training=training)
            if is_longer is None:
                is_longer = ops.zeros((ops.shape(image)[0],), "bool")
            longer = ops.reshape(ops.cast(is_longer, "bool"), (-1, 1, 1, 1))
            features = ops.where(longer, fused, features)
        tokens = ops.reshape(features, (-1, self.grid[0] * self.grid[1], self.hidden_size))
        return self.norm(tokens) if self.norm is not None else tokens

    def get_config(self):
        return {
            **super().get_config(),
            "hidden_size": self.hidden_size,
            "image_size": self.image_size,
            "patch_size": list(self.patch_size),
            "patch_stride": list(self.patch_stride),
            "enable_fusion": self.enable_fusion,
            "aff_reduction": self.aff_reduction,
            "layer_norm": self.layer_norm,
        }
