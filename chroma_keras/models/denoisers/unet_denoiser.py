"""A conditional U-Net denoiser over piano rolls ``[B, H, W]`` or 1-D sequences ``[B, L, C]``."""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from chroma_keras.errors import ModelInputError
from chroma_keras.layers.timestep_embedding import SinusoidalTimestepEmbedding
from chroma_keras.models.denoisers.base import Denoiser

INPUT_KEYS = ("sample", "timestep", "condition")


# ---------------------------------------------------------------------------
# Shared by the denoisers
# ---------------------------------------------------------------------------


def _static(dim):
    """A shape entry as an int, or None when unknown or symbolic.

    A symbolic size (torch.export tracing a dynamic batch) counts as unknown: ``int()``
    on it would pin the exported graph to the example's size.
    """
    return int(dim) if isinstance(dim, (int, np.integer)) else None


def check_denoiser_inputs(owner, shapes, spatial_dims, multiples, why, condition_dim, channels=None):
    """Validate the shapes of a denoiser's ``{"sample", "timestep", "condition"}`` inputs.

    Unknown (None) sizes pass; known ones must fit. Both denoisers call this from
    ``build`` and ``call``, so a bad input fails before any weight is made.

    Args:
        owner: the class name for the message.
        shapes: dict ``{key: shape}`` (tensors' shapes or build shapes).
        spatial_dims: 2 (``sample`` is ``[batch, H, W]``) or 1 (``[batch, L, C]``).
        multiples: the number each spatial size must be a multiple of, one per spatial axis.
        why: what the multiple comes from (for the message).
        condition_dim: the width ``condition`` must have.
        channels: in 1-D mode, the channel count the weights were built for (or None).

    Raises:
        ModelInputError: naming the input key, the expected shape and the received one.
    """
    if not isinstance(shapes, dict):
        raise ModelInputError(
            f"{owner}: inputs must be a dict with keys {list(INPUT_KEYS)}. Received: {type(shapes).__name__}"
        )
    missing = [key for key in INPUT_KEYS if key not in shapes]
    if missing:
        raise ModelInputError(
            f"{owner}: inputs lack {missing}; expected keys {list(INPUT_KEYS)}. Received: keys={sorted(shapes)}"
        )
    sample = tuple(_static(d) for d in shapes["sample"])
    layout = "[batch, pitches, frames]" if spatial_dims == 2 else "[batch, length, channels]"
    if len(sample) != 3:
        raise ModelInputError(
            f"{owner}: inputs['sample'] must have rank 3, {layout} (spatial_dims={spatial_dims}). "
            f"Received: sample shape={sample}"
        )
    names = ("height (pitches)", "width (frames)") if spatial_dims == 2 else ("length",)
    for name, size, multiple in zip(names, sample[1 : 1 + spatial_dims], multiples):
        if size is not None and size % multiple:
            raise ModelInputError(
                f"{owner}: inputs['sample'] {name} must be divisible by {multiple} ({why}); pad or crop it. "
                f"Received: sample shape={sample}"
            )
    if spatial_dims == 1 and channels is not None and sample[2] is not None and sample[2] != channels:
        raise ModelInputError(
            f"{owner}: inputs['sample'] must have {channels} channels, as when the weights were built. "
            f"Received: sample shape={sample}"
        )
    timestep = tuple(_static(d) for d in shapes["timestep"])
    if len(timestep) > 1 or (timestep and None not in (timestep[0], sample[0]) and timestep[0] != sample[0]):
        raise ModelInputError(
            f"{owner}: inputs['timestep'] must have shape [batch] (or be a scalar) with batch = {sample[0]}. "
            f"Received: timestep shape={timestep}"
        )
    condition = tuple(_static(d) for d in shapes["condition"])
    if (
        len(condition) != 2
        or (condition[1] is not None and condition[1] != condition_dim)
        or (None not in (condition[0], sample[0]) and condition[0] != sample[0])
    ):
        raise ModelInputError(
            f"{owner}: inputs['condition'] must have shape [batch, condition_dim] = [{sample[0]}, {condition_dim}]. "
            f"Received: condition shape={condition}"
        )


def input_shapes(inputs):
    """``{key: shape}`` of a denoiser's input dict, for :func:`check_denoiser_inputs`."""
    if not isinstance(inputs, dict):
        return inputs
    return {key: tuple(value.shape) if hasattr(value, "shape") else np.shape(value) for key, value in inputs.items()}


def batch_timesteps(timestep, batch):
    """Timesteps ``[batch]`` from a scalar or ``[batch]`` tensor."""
    timestep = ops.convert_to_tensor(timestep)
    if len(timestep.shape) == 0:
        return ops.broadcast_to(timestep, (batch,))
    return timestep


def check_positive_int(owner, name, value, low=1):
    """``int(value)``, or a ModelInputError naming ``name`` when it is not an integer >= ``low``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ModelInputError(f"{owner}: {name} must be an integer >= {low}. Received: {name}={value!r}")
    return int(value)


def check_common_arguments(owner, condition_dim, spatial_dims, dropout):
    """Validate the constructor arguments both denoisers share; ModelInputError names the bad one."""
    if isinstance(condition_dim, bool) or not isinstance(condition_dim, int) or condition_dim < 1:
        raise ModelInputError(f"{owner}: condition_dim must be an integer >= 1. Received: condition_dim={condition_dim!r}")
    if spatial_dims not in (1, 2):
        raise ModelInputError(f"{owner}: spatial_dims must be 1 ([batch, L, C]) or 2 ([batch, H, W]). Received: spatial_dims={spatial_dims!r}")
    if not 0.0 <= dropout < 1.0:
        raise ModelInputError(f"{owner}: dropout must be in [0, 1). Received: dropout={dropout!r}")


# ---------------------------------------------------------------------------
# U-Net blocks
# ---------------------------------------------------------------------------


def _conv(spatial_dims, filters, kernel_size, policy, name, strides=1, kernel_initializer="glorot_uniform"):
    layer = keras.layers.Conv2D if spatial_dims == 2 else keras.layers.Conv1D
    return layer(
        filters, kernel_size, strides=strides, padding="same", kernel_initializer=kernel_initializer, dtype=policy, name=name
    )


def _feature_shape(spatial_dims, channels):
    return (None,) * (spatial_dims + 1) + (channels,)


def _group_norm(channels, norm_groups, policy, name):
    """GroupNorm with ``gcd(channels, norm_groups)`` groups, so any width works."""
    return keras.layers.GroupNormalization(groups=math.gcd(channels, norm_groups), epsilon=1e-5, dtype=policy, name=name)


@keras.saving.register_keras_serializable(package="chroma_keras")
class UNetResidualBlock(keras.layers.Layer):
    """GroupNorm-SiLU-conv twice, with FiLM from the embedding between them, and a residual path.

    ``h = conv1(silu(norm1(x)))``; ``h = norm2(h) * (1 + scale) + shift`` with
    ``[scale, shift] = Dense(emb)`` (FiLM, the "scale-shift norm" of Dhariwal &
    Nichol 2021); ``h = conv2(dropout(silu(h)))``; output ``skip(x) + h`` where
    ``skip`` is a 1x1 conv when the width changes. ``conv2`` starts at zero, so the
    block starts as (a projection of) the identity.

    Args:
        channels: output channels.
        spatial_dims: 2 (Conv2D on ``[B, H, W, C]``) or 1 (Conv1D on ``[B, L, C]``).
        norm_groups: GroupNorm groups (``gcd(width, norm_groups)`` are used).
        dropout: dropout before the second conv.
        seed: seed of the dropout.
        **kwargs: ``keras.layers.Layer`` arguments.

    Call arguments:
        x: features ``[batch, ..., in_channels]``.
        emb: the SiLU-activated timestep + condition embedding ``[batch, E]``.
        training: whether dropout applies.

    Returns:
        ``[batch, ..., channels]``.
    """

    def __init__(self, channels, spatial_dims=2, norm_groups=8, dropout=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.spatial_dims = int(spatial_dims)
        self.norm_groups = int(norm_groups)
        self.dropout = float(dropout)
        self.seed = seed
        policy = self.dtype_policy
        self.conv1 = _conv(self.spatial_dims, self.channels, 3, policy, "conv1")
        self.conv2 = _conv(self.spatial_dims, self.channels, 3, policy, "conv2", kernel_initializer="zeros")
        self.norm2 = _group_norm(self.channels, self.norm_groups, policy, "norm2")
        self.film = keras.layers.Dense(2 * self.channels, dtype=policy, name="film")
        self.dropout_layer = keras.layers.Dropout(self.dropout, seed=seed, dtype=policy, name="dropout")
        self.norm1 = None
        self.skip = None

    def build(self, x_shape, emb_shape):
        in_channels = int(x_shape[-1])
        self.norm1 = _group_norm(in_channels, self.norm_groups, self.dtype_policy, "norm1")
        self.norm1.build(x_shape)
        self.conv1.build(x_shape)
        out_shape = tuple(x_shape[:-1]) + (self.channels,)
        self.norm2.build(out_shape)
        self.film.build(emb_shape)
        self.conv2.build(out_shape)
        if in_channels != self.channels:
            self.skip = _conv(self.spatial_dims, self.channels, 1, self.dtype_policy, "skip")
            self.skip.build(x_shape)
        self.built = True

    def call(self, x, emb, training=False):
        h = self.conv1(ops.silu(self.norm1(x)))
        scale_shift = self.film(emb)
        scale_shift = ops.reshape(scale_shift, (-1,) + (1,) * self.spatial_dims + (2 * self.channels,))
        scale, shift = scale_shift[..., : self.channels], scale_shift[..., self.channels :]
        h = self.norm2(h) * (1.0 + scale) + shift
        h = self.conv2(self.dropout_layer(ops.silu(h), training=training))
        return (x if self.skip is None else self.skip(x)) + h

    def compute_output_shape(self, x_shape, emb_shape=None):
        return tuple(x_shape[:-1]) + (self.channels,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "channels": self.channels,
                "spatial_dims": self.spatial_dims,
                "norm_groups": self.norm_groups,
                "dropout": self.dropout,
                "seed": self.seed,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="chroma_keras")
class UNetAttentionBlock(keras.layers.Layer):
    """Multi-head self-attention over all positions of a feature map, with a residual path.

    ``x + MHA(norm(x))`` over the ``H * W`` (or ``L``) positions flattened to a sequence.

    Args:
        channels: feature width (must be divisible by ``num_heads``).
        num_heads: attention heads.
        norm_groups: GroupNorm groups (``gcd(channels, norm_groups)`` are used).
        **kwargs: ``keras.layers.Layer`` arguments.

    Call arguments:
        x: ``[batch, ..., channels]``.

    Returns:
        a tensor shaped like ``x``.
    """

    def __init__(self, channels, num_heads=4, norm_groups=8, **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.num_heads = int(num_heads)
        self.norm_groups = int(norm_groups)
        policy = self.dtype_policy
        self.norm = _group_norm(self.channels, self.norm_groups, policy, "norm")
        self.attention = keras.layers.MultiHeadAttention(
            self.num_heads, self.channels // self.num_heads, dtype=policy, name="attention"
        )

    def build(self, x_shape):
        self.norm.build(x_shape)
        self.attention.build((None, None, self.channels), (None, None, self.channels))
        self.built = True

    def call(self, x):
        shape = ops.shape(x)
        sequence = ops.reshape(self.norm(x), (shape[0], -1, self.channels))
        attended = self.attention(sequence, sequence)
        return x + ops.reshape(attended, shape)

    def compute_output_shape(self, x_shape):
        return tuple(x_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"channels": self.channels, "num_heads": self.num_heads, "norm_groups": self.norm_groups})
        return config


# ---------------------------------------------------------------------------
# The U-Net
# ---------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="chroma_keras")
class UNetDenoiser(Denoiser):
    """A conditional U-Net denoiser (DDPM / ADM style) for piano rolls or 1-D sequences.

    The timestep goes through :class:`SinusoidalTimestepEmbedding` and a two-layer
    MLP; the condition vector (e.g. :class:`~chroma_keras.layers.ChromaticConditionEmbedding`'s
    output: per-axis chromatic mode + rebracketing) is projected to the same width
    and added. The sum, after a SiLU, drives FiLM (per-channel scale and shift) in
    every residual block.

    Layout: an input conv; per level ``num_res_blocks`` residual blocks at
    ``channels[i]``, then a stride-2 conv down (all levels but the last); a middle
    of residual block, optional self-attention (the lowest resolution), residual
    block; the way up mirrors it with nearest-neighbour 2x upsampling + conv and
    the level's skip features concatenated; GroupNorm, SiLU and a zero-initialised
    output conv, so an untrained model predicts exactly 0 (epsilon, v or x0: the
    model does not care which).

    ``spatial_dims=2`` treats a piano roll ``[B, H, W]`` as a one-channel image
    (Conv2D on ``[B, H, W, 1]``); ``spatial_dims=1`` runs Conv1D over ``[B, L, C]``
    (e.g. a sequence of VAE latents). Each spatial size must be divisible by
    ``2 ** (len(channels) - 1)``.

    Args:
        condition_dim: width of the condition vector.
        channels: feature channels per level (its length is the number of levels).
        num_res_blocks: residual blocks per level (each way).
        attention: self-attention in the middle (lowest-resolution) block.
        num_heads: heads of that attention (``channels[-1]`` must be divisible by it).
        norm_groups: GroupNorm groups (``gcd(width, norm_groups)`` per layer).
        embedding_dim: width of the timestep + condition embedding (default ``4 * channels[0]``).
        dropout: dropout inside the residual blocks.
        spatial_dims: 2 (piano roll ``[B, H, W]``) or 1 (sequence ``[B, L, C]``).
        seed: seed of the dropout.
        position_channels: sinusoid pairs of each cell's row and column index fed
            with the sample (0 = none).
        condition_row_channels: learned maps from the condition vector to one value
            per row of the first spatial axis (a piano roll's pitch rows, a
            sequence's positions), broadcast along the other axis and fed with the
            sample as this many extra channels (0 = none). They tell the
            translation-equivariant convolutions where a condition puts its notes
            (Red low, Violet high), which FiLM's per-channel scale and shift cannot.
            Needs the first spatial size known when the model is built.
        **kwargs: ``keras.Model`` arguments (``name``, ``dtype``).

    Call arguments:
        inputs: dict with ``"sample"`` (``[B, H, W]`` or ``[B, L, C]``), ``"timestep"``
            (int or float ``[B]``, or a scalar for the whole batch) and ``"condition"``
            (``[B, condition_dim]``).
        training: whether dropout applies.

    Returns:
        a tensor shaped like ``inputs["sample"]``.

    Raises:
        ModelInputError: a bad constructor argument, or inputs of the wrong rank,
            an indivisible size or a condition of the wrong width.

    Example:
    >>> denoiser = UNetDenoiser(condition_dim=16, channels=(8, 16))
    >>> out = denoiser({"sample": np.zeros((2, 16, 32), "float32"),
    ...                 "timestep": np.array([3, 500]), "condition": np.zeros((2, 16), "float32")})
    >>> out.shape
    (2, 16, 32)
    """

    PRESET_DEFAULTS = {
        "channels": (32, 64, 128),
        "num_res_blocks": 2,
        "attention": True,
        "num_heads": 4,
        "norm_groups": 8,
        "dropout": 0.0,
        "position_channels": 0,
        "condition_row_channels": 0,
    }
    CONFIG_ATTRIBUTES = (
        "condition_dim",
        "channels",
        "num_res_blocks",
        "attention",
        "num_heads",
        "norm_groups",
        "embedding_dim",
        "dropout",
        "spatial_dims",
        "seed",
        "position_channels",
        "condition_row_channels",
    )

    def __init__(
        self,
        condition_dim,
        channels=(32, 64, 128),
        num_res_blocks=2,
        attention=True,
        num_heads=4,
        norm_groups=8,
        embedding_dim=None,
        dropout=0.0,
        spatial_dims=2,
        seed=None,
        position_channels=0,
        condition_row_channels=0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        owner = type(self).__name__
        check_common_arguments(owner, condition_dim, spatial_dims, dropout)
        self.position_channels = check_positive_int(owner, "position_channels", position_channels, low=0)
        self.condition_row_channels = check_positive_int(owner, "condition_row_channels", condition_row_channels, low=0)
        channels = tuple(channels) if isinstance(channels, (list, tuple)) else (channels,)
        if not channels or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in channels):
            raise ModelInputError(f"{owner}: channels must be a non-empty list of integers >= 1. Received: channels={channels!r}")
        num_res_blocks = check_positive_int(owner, "num_res_blocks", num_res_blocks)
        num_heads = check_positive_int(owner, "num_heads", num_heads)
        norm_groups = check_positive_int(owner, "norm_groups", norm_groups)
        if attention and channels[-1] % num_heads:
            raise ModelInputError(
                f"{owner}: channels[-1] ({channels[-1]}) must be divisible by num_heads for the attention. "
                f"Received: num_heads={num_heads}"
            )
        embedding_dim = 4 * channels[0] if embedding_dim is None else check_positive_int(owner, "embedding_dim", embedding_dim)

        # === Config ===
        self.condition_dim = int(condition_dim)
        self.channels = tuple(int(c) for c in channels)
        self.num_res_blocks = num_res_blocks
        self.attention = bool(attention)
        self.num_heads = num_heads
        self.norm_groups = norm_groups
        self.embedding_dim = embedding_dim
        self.dropout = float(dropout)
        self.spatial_dims = int(spatial_dims)
        self.seed = seed
        self.size_multiple = 2 ** (len(self.channels) - 1)
        self.sample_channels = None  # set by build()

        # === Layers ===
        policy = self.dtype_policy
        dims = self.spatial_dims
        self.time_embedding = SinusoidalTimestepEmbedding(self.channels[0], dtype=policy, name="time_embedding")
        self.time_dense_1 = keras.layers.Dense(embedding_dim, activation="silu", dtype=policy, name="time_dense_1")
        self.time_dense_2 = keras.layers.Dense(embedding_dim, dtype=policy, name="time_dense_2")
        self.condition_projection = keras.layers.Dense(embedding_dim, dtype=policy, name="condition_projection")
        self.conv_in = _conv(dims, self.channels[0], 3, policy, "conv_in")
        self.condition_rows = None  # its width needs the number of rows, known in build()
        self.num_rows = None

        def block(width, name):
            return UNetResidualBlock(width, dims, norm_groups, self.dropout, seed=seed, dtype=policy, name=name)

        last = len(self.channels) - 1
        self.down_blocks, self.downsamples, self.up_blocks, self.upsample_convs = [], [], [], []
        for level, width in enumerate(self.channels):
            self.down_blocks.append([block(width, f"down_{level}_block_{j}") for j in range(num_res_blocks)])
            if level < last:
                self.downsamples.append(_conv(dims, width, 3, policy, f"down_{level}_sample", strides=2))
        self.mid_block_1 = block(self.channels[-1], "mid_block_1")
        self.mid_attention = (
            UNetAttentionBlock(self.channels[-1], num_heads, norm_groups, dtype=policy, name="mid_attention") if self.attention else None
        )
        self.mid_block_2 = block(self.channels[-1], "mid_block_2")
        for level, width in enumerate(self.channels):
            self.up_blocks.append([block(width, f"up_{level}_block_{j}") for j in range(num_res_blocks)])
            if level < last:
                self.upsample_convs.append(_conv(dims, self.channels[level + 1], 3, policy, f"up_{level}_sample"))
        self.norm_out = _group_norm(self.channels[0], norm_groups, policy, "norm_out")
        self.conv_out = None  # its width is the sample's channels, known in build()

    # === Build ===

    def build(self, input_shape):
        check_denoiser_inputs(
            type(self).__name__, input_shape, self.spatial_dims, (self.size_multiple,) * self.spatial_dims,
            f"2 ** (len(channels) - 1) for {len(self.channels)} levels", self.condition_dim,
        )
        sample_shape = tuple(input_shape["sample"])
        if self.spatial_dims == 1 and sample_shape[-1] is None:
            raise ModelInputError(
                f"{type(self).__name__}: in 1-D mode the channels of inputs['sample'] must be known to build. "
                f"Received: sample shape={sample_shape}"
            )
        self.sample_channels = 1 if self.spatial_dims == 2 else int(sample_shape[-1])
        dims = self.spatial_dims
        self.time_dense_1.build((None, self.channels[0]))
        self.time_dense_2.build((None, self.embedding_dim))
        self.condition_projection.build((None, self.condition_dim))
        emb_shape = (None, self.embedding_dim)
        if self.condition_row_channels:
            self.num_rows = _static(sample_shape[1])
            if self.num_rows is None:
                raise ModelInputError(
                    f"{type(self).__name__}: condition_row_channels needs the number of rows (inputs['sample'] axis 1) "
                    f"known when the model is built. Received: sample shape={sample_shape}"
                )
            self.condition_rows = keras.layers.Dense(
                self.num_rows * self.condition_row_channels, dtype=self.dtype_policy, name="condition_rows"
            )
            self.condition_rows.build((None, self.condition_dim))
        extra_channels = 2 * self.position_channels * dims + self.condition_row_channels
        self.conv_in.build(_feature_shape(dims, self.sample_channels + extra_channels))
        width, skips = self.channels[0], []
        for level, blocks in enumerate(self.down_blocks):
            for block in blocks:
                block.build(_feature_shape(dims, width), emb_shape)
                width = block.channels
            skips.append(width)
            if level < len(self.downsamples):
                self.downsamples[level].build(_feature_shape(dims, width))
        self.mid_block_1.build(_feature_shape(dims, width), emb_shape)
        if self.mid_attention is not None:
            self.mid_attention.build(_feature_shape(dims, width))
        self.mid_block_2.build(_feature_shape(dims, width), emb_shape)
        for level in reversed(range(len(self.channels))):
            if level < len(self.upsample_convs):
                self.upsample_convs[level].build(_feature_shape(dims, width))
            width += skips[level]
            for block in self.up_blocks[level]:
                block.build(_feature_shape(dims, width), emb_shape)
                width = block.channels
        self.norm_out.build(_feature_shape(dims, width))
        self.conv_out = _conv(dims, self.sample_channels, 3, self.dtype_policy, "conv_out", kernel_initializer="zeros")
        self.conv_out.build(_feature_shape(dims, width))
        self.built = True

    # === Forward ===

    def embed(self, timestep, condition, batch):
        """The SiLU-activated timestep + condition embedding ``[batch, embedding_dim]`` that drives FiLM."""
        t = self.time_embedding(batch_timesteps(timestep, batch))
        emb = self.time_dense_2(self.time_dense_1(t)) + self.condition_projection(ops.cast(condition, self.compute_dtype))
        return ops.silu(emb)

    def call(self, inputs, training=False):
        check_denoiser_inputs(
            type(self).__name__, input_shapes(inputs), self.spatial_dims, (self.size_multiple,) * self.spatial_dims,
            f"2 ** (len(channels) - 1) for {len(self.channels)} levels", self.condition_dim, self.sample_channels,
        )
        sample = ops.cast(inputs["sample"], self.compute_dtype)
        x = sample[..., None] if self.spatial_dims == 2 else sample
        emb = self.embed(inputs["timestep"], inputs["condition"], ops.shape(sample)[0])

        if self.position_channels:
            x = ops.concatenate([x, self._coordinates(tuple(x.shape[1:-1]), ops.shape(x)[0], x.dtype)], axis=-1)
        if self.condition_row_channels:
            x = ops.concatenate([x, self._row_maps(inputs["condition"], x)], axis=-1)
        h = self.conv_in(x)
        skips = []
        for level, blocks in enumerate(self.down_blocks):
            for block in blocks:
                h = block(h, emb, training=training)
            skips.append(h)
            if level < len(self.downsamples):
                h = self.downsamples[level](h)
        h = self.mid_block_1(h, emb, training=training)
        if self.mid_attention is not None:
            h = self.mid_attention(h)
        h = self.mid_block_2(h, emb, training=training)
        for level in reversed(range(len(self.channels))):
            if level < len(self.upsample_convs):
                for axis in range(1, 1 + self.spatial_dims):  # nearest-neighbour 2x upsampling
                    h = ops.repeat(h, 2, axis=axis)
                h = self.upsample_convs[level](h)
            h = ops.concatenate([h, skips[level]], axis=-1)
            for block in self.up_blocks[level]:
                h = block(h, emb, training=training)
        out = self.conv_out(ops.silu(self.norm_out(h)))
        return out[..., 0] if self.spatial_dims == 2 else out

    def _row_maps(self, condition, x):
        """The condition's learned per-row maps, broadcast over the sample: ``[batch, rows, (frames,) channels]``."""
        rows = self.condition_rows(ops.cast(condition, self.compute_dtype))
        rows = ops.reshape(rows, (-1, self.num_rows, self.condition_row_channels))
        if self.spatial_dims == 2:
            rows = ops.broadcast_to(rows[:, :, None, :], (*ops.shape(x)[:3], self.condition_row_channels))
        return rows

    def _coordinates(self, sizes, batch, dtype):
        """Sinusoids of each cell's row and column index ``[batch, *sizes, 2 * position_channels * dims]``.

        Convolutions are translation-equivariant; these channels tell the network where in the
        pitch range (and where in the window) a cell is, which register-dependent conditions need.
        """
        grids = np.meshgrid(*[np.arange(n, dtype=np.float64) / n for n in sizes], indexing="ij")
        frequencies = np.pi * 2.0 ** np.arange(self.position_channels)
        features = [f(grid[..., None] * frequencies) for grid in grids for f in (np.sin, np.cos)]
        table = ops.convert_to_tensor(np.concatenate(features, axis=-1).astype(np.float32), dtype)
        return ops.broadcast_to(table[None], (batch, *table.shape))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape["sample"])

