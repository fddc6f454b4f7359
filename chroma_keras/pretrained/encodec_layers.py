"""SEANet building blocks of EnCodec in Keras 3: padded convolutions, residual blocks, the LSTM stage.

Every layer here works channels-last (``[batch, time, channels]``), the Keras
convention; :class:`~chroma_keras.pretrained.encodec.Encodec` converts from
and to the ``[batch, channels, samples]`` waveform layout at its edges.

The padding reproduces EnCodec's: a convolution pads ``kernel - stride``
samples (all on the left when causal, split with the extra sample on the left
otherwise) plus just enough on the right for the last window to be full, so
a stride-``s`` convolution turns ``L`` steps into ``ceil(L / s)``. The
transposed convolution trims the same ``kernel - stride`` samples back, so the
decoder gives exactly ``frames * hop_length`` samples. Lengths must be static
(known when the layer is called, as under ``jax.jit`` or a ``tf.function``
with a fixed signature), because the padding is computed from them.
"""

from __future__ import annotations

import itertools
import math

import keras
import numpy as np
from keras import ops

from chroma_keras.errors import ModelInputError

PAD_MODES = ("reflect", "constant")
_SEEDS = itertools.count()


@keras.saving.register_keras_serializable(package="chroma_keras")
class FanInUniform(keras.initializers.Initializer):
    """Uniform in ``±1/sqrt(fan_in)`` (PyTorch's default for conv and LSTM weights), drawn with NumPy.

    EnCodec's weights are normally overwritten by a converted checkpoint; drawing
    the placeholder values in NumPy spares JAX a compilation per kernel shape
    (about half a second each, dozens of shapes) when the model is built.

    Args:
        fan_in_axes: how many leading axes make up the fan-in (kernel taps and
            input channels of a Conv1D: 2; an LSTM kernel: 1).
        seed: NumPy seed; None draws one from a process-wide counter.

    Example:

    >>> FanInUniform(2, seed=0)((7, 4, 8)).shape
    (7, 4, 8)
    """

    def __init__(self, fan_in_axes=2, seed=None):
        self.fan_in_axes = int(fan_in_axes)
        self.seed = next(_SEEDS) if seed is None else int(seed)

    def __call__(self, shape, dtype=None):
        fan_in = max(1, int(np.prod(shape[: self.fan_in_axes])))
        bound = 1.0 / math.sqrt(fan_in)
        values = np.random.default_rng(self.seed).uniform(-bound, bound, size=tuple(shape))
        return ops.convert_to_tensor(values, dtype=dtype or keras.config.floatx())

    def get_config(self):
        return {"fan_in_axes": self.fan_in_axes, "seed": self.seed}


def _static_length(x, layer_name: str) -> int:
    length = x.shape[1]
    if length is None:
        raise ModelInputError(
            f"{layer_name}: the time axis must have a static length (EnCodec's padding depends on it); "
            f"got shape {tuple(x.shape)}."
        )
    return int(length)


def pad_time(x, left: int, right: int, mode: str):
    """Pad axis 1 of ``x`` by ``(left, right)``; reflect padding also works on inputs shorter than the pad.

    Args:
        x: ``[batch, time, channels]``.
        left: samples added before the start.
        right: samples added after the end.
        mode: ``"reflect"`` or ``"constant"`` (zeros).

    Returns:
        ``[batch, left + time + right, channels]``.

    Example:

    >>> pad_time(keras.ops.ones((1, 4, 2)), 2, 1, "reflect").shape
    (1, 7, 2)
    """
    if left == 0 and right == 0:
        return x
    if mode != "reflect":
        return ops.pad(x, ((0, 0), (left, right), (0, 0)))
    length = int(x.shape[1])
    widest = max(left, right)
    # Reflection needs more samples than the pad; a too-short input first gets
    # zeros on the right, which are cut off again afterwards (as EnCodec does).
    grow = widest - length + 1 if length <= widest else 0
    if grow:
        x = ops.pad(x, ((0, 0), (0, grow), (0, 0)))
    x = ops.pad(x, ((0, 0), (left, right), (0, 0)), mode="reflect")
    if grow:
        x = x[:, : int(x.shape[1]) - grow]
    return x


@keras.saving.register_keras_serializable(package="chroma_keras")
class EncodecConv1D(keras.layers.Layer):
    """A 1-D convolution with EnCodec's causal or centred padding (output length ``ceil(length / stride)``).

    Args:
        filters: output channels.
        kernel_size: taps of the kernel.
        stride: hop between windows.
        dilation: spacing between taps.
        causal: pad only on the left (True) or on both sides (False).
        pad_mode: ``"reflect"`` or ``"constant"``.

    Example:

    >>> conv = EncodecConv1D(8, kernel_size=4, stride=2)
    >>> conv(keras.ops.ones((1, 9, 3))).shape
    (1, 5, 8)
    """

    def __init__(self, filters, kernel_size, stride=1, dilation=1, causal=True, pad_mode="reflect", **kwargs):
        super().__init__(**kwargs)
        if pad_mode not in PAD_MODES:
            raise ModelInputError(f"pad_mode={pad_mode!r}: expected one of {', '.join(PAD_MODES)}.")
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.stride = int(stride)
        self.dilation = int(dilation)
        self.causal = bool(causal)
        self.pad_mode = pad_mode
        self.conv = keras.layers.Conv1D(
            self.filters, self.kernel_size, strides=self.stride, dilation_rate=self.dilation, padding="valid",
            kernel_initializer=FanInUniform(2), name="conv",
        )

    def build(self, input_shape):
        self.conv.build((None, None, input_shape[-1]))

    def paddings(self, length: int) -> tuple[int, int]:
        """``(left, right)`` samples this convolution pads an input of ``length`` steps with."""
        effective_kernel = (self.kernel_size - 1) * self.dilation + 1
        padding_total = effective_kernel - self.stride
        frames = math.ceil((length - effective_kernel + padding_total) / self.stride + 1)
        extra = (frames - 1) * self.stride + effective_kernel - padding_total - length
        if self.causal:
            return padding_total, extra
        right = padding_total // 2
        return padding_total - right, right + extra

    def call(self, x):
        left, right = self.paddings(_static_length(x, self.name))
        return self.conv(pad_time(x, left, right, self.pad_mode))

    def compute_output_shape(self, input_shape):
        length = input_shape[1]
        frames = None if length is None else math.ceil(length / self.stride)
        return (input_shape[0], frames, self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters, kernel_size=self.kernel_size, stride=self.stride, dilation=self.dilation,
            causal=self.causal, pad_mode=self.pad_mode,
        )
        return config


@keras.saving.register_keras_serializable(package="chroma_keras")
class EncodecConvTranspose1D(keras.layers.Layer):
    """A transposed convolution trimmed back to ``length * stride`` steps, as EnCodec's decoder upsamples.

    Args:
        filters: output channels.
        kernel_size: taps of the kernel.
        stride: upsampling factor.
        causal: with ``causal``, ``trim_right_ratio`` of the ``kernel - stride``
            surplus is cut on the right and the rest on the left; otherwise the
            surplus is split with the extra sample on the left.
        trim_right_ratio: share of the surplus trimmed on the right (causal only).

    Example:

    >>> up = EncodecConvTranspose1D(4, kernel_size=8, stride=4)
    >>> up(keras.ops.ones((1, 5, 6))).shape
    (1, 20, 4)
    """

    def __init__(self, filters, kernel_size, stride=1, causal=True, trim_right_ratio=1.0, **kwargs):
        super().__init__(**kwargs)
        if not causal and trim_right_ratio != 1.0:
            raise ModelInputError(f"trim_right_ratio={trim_right_ratio}: a value other than 1.0 needs causal=True.")
        if not 0.0 <= trim_right_ratio <= 1.0:
            raise ModelInputError(f"trim_right_ratio={trim_right_ratio}: expected a value in [0, 1].")
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.stride = int(stride)
        self.causal = bool(causal)
        self.trim_right_ratio = float(trim_right_ratio)
        self.conv = keras.layers.Conv1DTranspose(
            self.filters, self.kernel_size, strides=self.stride, padding="valid",
            kernel_initializer=FanInUniform(2), name="conv",
        )

    def build(self, input_shape):
        self.conv.build((None, None, input_shape[-1]))

    def trims(self) -> tuple[int, int]:
        """``(left, right)`` samples cut from the transposed convolution's output."""
        surplus = self.kernel_size - self.stride
        right = math.ceil(surplus * self.trim_right_ratio) if self.causal else surplus // 2
        return surplus - right, right

    def call(self, x):
        length = _static_length(x, self.name)
        y = self.conv(x)
        left, right = self.trims()
        full = (length - 1) * self.stride + self.kernel_size
        return y[:, left : full - right]

    def compute_output_shape(self, input_shape):
        length = input_shape[1]
        return (input_shape[0], None if length is None else length * self.stride, self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters, kernel_size=self.kernel_size, stride=self.stride, causal=self.causal,
            trim_right_ratio=self.trim_right_ratio,
        )
        return config


@keras.saving.register_keras_serializable(package="chroma_keras")
class EncodecResidualBlock(keras.layers.Layer):
    """SEANet residual unit: ELU → dilated conv (dim → dim/compress) → ELU → 1×1 conv back, plus a shortcut.

    Args:
        dim: channels in and out.
        kernel_size: taps of the first (dilated) convolution.
        dilation: its dilation.
        compress: channel reduction inside the branch.
        causal, pad_mode: as :class:`EncodecConv1D`.
        conv_shortcut: a 1×1 convolution on the shortcut (True) or the identity.

    Example:

    >>> block = EncodecResidualBlock(8, kernel_size=3, dilation=2)
    >>> block(keras.ops.ones((1, 10, 8))).shape
    (1, 10, 8)
    """

    def __init__(self, dim, kernel_size=3, dilation=1, compress=2, causal=True, pad_mode="reflect", conv_shortcut=True, **kwargs):
        super().__init__(**kwargs)
        self.dim = int(dim)
        self.kernel_size = int(kernel_size)
        self.dilation = int(dilation)
        self.compress = int(compress)
        self.causal = bool(causal)
        self.pad_mode = pad_mode
        self.conv_shortcut = bool(conv_shortcut)
        hidden = self.dim // self.compress
        self.conv1 = EncodecConv1D(hidden, self.kernel_size, dilation=self.dilation, causal=causal, pad_mode=pad_mode, name="conv1")
        self.conv2 = EncodecConv1D(self.dim, 1, causal=causal, pad_mode=pad_mode, name="conv2")
        self.shortcut = (
            EncodecConv1D(self.dim, 1, causal=causal, pad_mode=pad_mode, name="shortcut") if self.conv_shortcut else None
        )

    def build(self, input_shape):
        self.conv1.build((None, None, self.dim))
        self.conv2.build((None, None, self.dim // self.compress))
        if self.shortcut is not None:
            self.shortcut.build((None, None, self.dim))

    def call(self, x):
        y = self.conv2(ops.elu(self.conv1(ops.elu(x))))
        skip = self.shortcut(x) if self.shortcut is not None else x
        return skip + y

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            dim=self.dim, kernel_size=self.kernel_size, dilation=self.dilation, compress=self.compress,
            causal=self.causal, pad_mode=self.pad_mode, conv_shortcut=self.conv_shortcut,
        )
        return config


@keras.saving.register_keras_serializable(package="chroma_keras")
class EncodecLSTMLayer(keras.layers.Layer):
    """One unidirectional LSTM (gates input, forget, cell, output, as PyTorch), returning every step.

    The input projection of all steps is one matmul; only the recurrent part
    runs in ``keras.ops.scan`` (a ``lax.scan`` / ``tf.while_loop`` that jit
    compilers handle well). On the torch backend, where ``keras.ops.scan`` is a
    Python loop of small ops, the same weights go to PyTorch's fused CPU/GPU
    LSTM kernel instead (several times faster on EnCodec's 375-step, 512-wide LSTMs).

    Args:
        units: hidden size.

    Example:

    >>> EncodecLSTMLayer(4)(keras.ops.ones((2, 5, 3))).shape
    (2, 5, 4)
    """

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)

    def build(self, input_shape):
        self.kernel = self.add_weight(name="kernel", shape=(input_shape[-1], 4 * self.units), initializer=FanInUniform(1))
        self.recurrent_kernel = self.add_weight(
            name="recurrent_kernel", shape=(self.units, 4 * self.units), initializer=FanInUniform(1)
        )
        self.bias = self.add_weight(name="bias", shape=(4 * self.units,), initializer="zeros")
        self.built = True

    def call(self, x):
        if keras.config.backend() == "torch":
            return self._torch_fused(x)
        projected = ops.matmul(x, self.kernel) + self.bias  # [batch, time, 4 * units]
        recurrent_kernel = ops.convert_to_tensor(self.recurrent_kernel)

        def step(carry, projected_t):
            h, c = carry
            i, f, g, o = ops.split(projected_t + ops.matmul(h, recurrent_kernel), 4, axis=-1)
            c = ops.sigmoid(f) * c + ops.sigmoid(i) * ops.tanh(g)
            h = ops.sigmoid(o) * ops.tanh(c)
            # The TensorFlow scan stacks outputs shaped like the carry, hence (h, c) rather than h.
            return (h, c), (h, c)

        zeros = ops.zeros_like(projected[:, 0, : self.units])
        _, (hidden, _) = ops.scan(step, (zeros, zeros), ops.transpose(projected, (1, 0, 2)))
        return ops.transpose(hidden, (1, 0, 2))

    def _torch_fused(self, x):
        import torch

        kernel, recurrent_kernel, bias = (ops.convert_to_tensor(w) for w in (self.kernel, self.recurrent_kernel, self.bias))
        zeros = torch.zeros((1, x.shape[0], self.units), dtype=x.dtype, device=x.device)
        # torch.lstm(input, (h0, c0), [w_ih, w_hh, b_ih, b_hh], has_biases, num_layers, dropout, train,
        # bidirectional, batch_first); Keras' [in, 4u] kernels are torch's [4u, in] transposed.
        params = [kernel.t(), recurrent_kernel.t(), bias, torch.zeros_like(bias)]
        outputs, _, _ = torch.lstm(x, (zeros, zeros), params, True, 1, 0.0, False, False, True)
        return outputs

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="chroma_keras")
class EncodecLSTM(keras.layers.Layer):
    """A stack of unidirectional LSTMs of width ``dim`` whose output is added to its input.

    Args:
        dim: channels (input and hidden size of every LSTM).
        num_layers: stacked LSTMs.

    Example:

    >>> EncodecLSTM(6, num_layers=2)(keras.ops.ones((1, 5, 6))).shape
    (1, 5, 6)
    """

    def __init__(self, dim, num_layers=2, **kwargs):
        super().__init__(**kwargs)
        self.dim = int(dim)
        self.num_layers = int(num_layers)
        self.lstms = [EncodecLSTMLayer(self.dim, name=f"lstm_{i}") for i in range(self.num_layers)]

    def build(self, input_shape):
        for lstm in self.lstms:
            lstm.build((None, None, self.dim))

    def call(self, x):
        y = x
        for lstm in self.lstms:
            y = lstm(y)
        return y + x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(dim=self.dim, num_layers=self.num_layers)
        return config
