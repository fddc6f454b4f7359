"""EnCodec (the 24 kHz family) natively in Keras 3, and its converter from published checkpoints.

EnCodec (Défossez et al., 2022) is a neural audio codec: a SEANet
convolutional encoder turns a waveform into 75 frames per second (at 24 kHz)
of 128-dimensional embeddings, a residual vector quantizer turns each frame
into one code per codebook (2 to 32 codebooks of 1024 entries, for 1.5 to 24
kbps), and a mirrored SEANet decoder turns the summed codewords back into
audio.

Waveform layout: :meth:`Encodec.encode` takes ``[batch, channels, samples]``
(``channels`` = ``audio_channels``) or, for a mono model, ``[batch,
samples]``; :meth:`Encodec.decode` returns ``[batch, channels, samples]``.
Codes are int32 ``[batch, num_codebooks, frames]``.

The converter reads the Hugging Face ``EncodecModel`` state dict (weight
norm stored as ``weight_g`` / ``weight_v`` or as
``parametrizations.weight.original0`` / ``original1``) and the original
facebookresearch/encodec checkpoint (``encoder.model.0.conv.conv.weight_g``,
``quantizer.vq.layers.0._codebook.embed``, ...); weight norm is folded into
plain kernels at conversion.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from chroma_keras.errors import CheckpointError, ModelInputError
from chroma_keras.pretrained.encodec_layers import (
    PAD_MODES,
    EncodecConv1D,
    EncodecConvTranspose1D,
    EncodecLSTM,
    EncodecResidualBlock,
)
from chroma_keras.pretrained.encodec_quantizer import EncodecResidualQuantizer
from chroma_keras.pretrained.registry import PretrainedArchitecture, register_architecture

# The configuration of facebook/encodec_24khz.
ENCODEC_24KHZ = {
    "sampling_rate": 24000,
    "audio_channels": 1,
    "hidden_size": 128,
    "num_filters": 32,
    "num_residual_layers": 1,
    "upsampling_ratios": [8, 5, 4, 2],
    "kernel_size": 7,
    "last_kernel_size": 7,
    "residual_kernel_size": 3,
    "dilation_growth_rate": 2,
    "causal": True,
    "pad_mode": "reflect",
    "compress": 2,
    "num_lstm_layers": 2,
    "trim_right_ratio": 1.0,
    "codebook_size": 1024,
    "codebook_dim": 128,
    "target_bandwidths": [1.5, 3.0, 6.0, 12.0, 24.0],
    "use_conv_shortcut": True,
    "norm_type": "weight_norm",
}
SUPPORTED_NORMS = ("weight_norm", "none")


def _complete_config(config) -> dict:
    unknown = sorted(set(config) - set(ENCODEC_24KHZ))
    if unknown:
        raise CheckpointError(f"encodec config: unknown key(s) {unknown}; expected keys among {sorted(ENCODEC_24KHZ)}.")
    full = {**ENCODEC_24KHZ, **dict(config)}
    if full["norm_type"] not in SUPPORTED_NORMS:
        raise CheckpointError(
            f"encodec config key 'norm_type'={full['norm_type']!r}: only {', '.join(SUPPORTED_NORMS)} are supported "
            "(the 24 kHz family); time_group_norm belongs to the 48 kHz model."
        )
    if full["pad_mode"] not in PAD_MODES:
        raise CheckpointError(f"encodec config key 'pad_mode'={full['pad_mode']!r}: expected one of {', '.join(PAD_MODES)}.")
    if full["codebook_dim"] != full["hidden_size"]:
        raise CheckpointError(
            f"encodec config key 'codebook_dim'={full['codebook_dim']}: must equal hidden_size={full['hidden_size']} "
            "(codebooks without input/output projections)."
        )
    size = int(full["codebook_size"])
    if size < 2 or size & (size - 1):
        raise CheckpointError(f"encodec config key 'codebook_size'={size}: expected a power of two.")
    if not full["target_bandwidths"]:
        raise CheckpointError("encodec config key 'target_bandwidths': expected at least one bandwidth.")
    full["upsampling_ratios"] = [int(r) for r in full["upsampling_ratios"]]
    full["target_bandwidths"] = [float(b) for b in full["target_bandwidths"]]
    return full


def frame_rate_of(config) -> int:
    """Frames per second: ``ceil(sampling_rate / prod(upsampling_ratios))`` (75 for the 24 kHz model)."""
    return math.ceil(config["sampling_rate"] / int(np.prod(config["upsampling_ratios"])))


def num_quantizers_of(config) -> int:
    """Codebooks the model holds: enough for its highest target bandwidth (32 for the 24 kHz model)."""
    bits = math.ceil(math.log2(config["codebook_size"]))
    return int(1000 * max(config["target_bandwidths"]) // (frame_rate_of(config) * bits))


class _SEANetStack(keras.layers.Layer):
    """A SEANet encoder or decoder: ``self.stages`` run in order, ``(kind, None)`` entries being ELUs.

    Subclasses fill ``self.stages`` (keeping EnCodec's module order, which the
    checkpoint's indices count) and name the config key of their input width.
    """

    input_channels_key = "audio_channels"

    def _residual_stages(self, level, width):
        """The residual blocks of one resolution level (dilations growing by ``dilation_growth_rate``)."""
        c = self.config
        return [
            (
                "residual",
                EncodecResidualBlock(
                    width, c["residual_kernel_size"], dilation=c["dilation_growth_rate"] ** j, compress=c["compress"],
                    conv_shortcut=c["use_conv_shortcut"], causal=c["causal"], pad_mode=c["pad_mode"],
                    name=f"block_{level}_residual_{j}",
                ),
            )
            for j in range(c["num_residual_layers"])
        ]

    def build(self, input_shape):
        channels = self.config[self.input_channels_key]
        for kind, layer in self.stages:
            if layer is None:
                continue
            layer.build((None, None, channels))
            if kind == "conv":
                channels = layer.filters

    def call(self, x):
        for _, layer in self.stages:
            x = ops.elu(x) if layer is None else layer(x)
        return x

    def get_config(self):
        return {**super().get_config(), "config": self.config}


@keras.saving.register_keras_serializable(package="chroma_keras")
class EncodecEncoder(_SEANetStack):
    """SEANet encoder: conv, then per ratio residual blocks and a strided conv, an LSTM, ELU and a last conv.

    Args:
        config: an EnCodec config (see :data:`ENCODEC_24KHZ`).

    Example:

    >>> enc = EncodecEncoder({**ENCODEC_24KHZ, "num_filters": 4, "hidden_size": 8, "codebook_dim": 8})
    >>> enc(keras.ops.ones((1, 640, 1))).shape
    (1, 2, 8)
    """

    def __init__(self, config, **kwargs):
        super().__init__(**kwargs)
        self.config = _complete_config(config)
        c = self.config
        conv = dict(causal=c["causal"], pad_mode=c["pad_mode"])
        self.stages = []  # (kind, layer), in EnCodec's module order (ELUs included, as indices count them)
        self.stages.append(("conv", EncodecConv1D(c["num_filters"], c["kernel_size"], name="conv_in", **conv)))
        width = c["num_filters"]
        for level, ratio in enumerate(reversed(c["upsampling_ratios"])):
            self.stages.extend(self._residual_stages(level, width))
            self.stages.append(("elu", None))
            self.stages.append(("conv", EncodecConv1D(width * 2, ratio * 2, stride=ratio, name=f"block_{level}_down", **conv)))
            width *= 2
        self.stages.append(("lstm", EncodecLSTM(width, c["num_lstm_layers"], name="lstm")))
        self.stages.append(("elu", None))
        self.stages.append(("conv", EncodecConv1D(c["hidden_size"], c["last_kernel_size"], name="conv_out", **conv)))
        self._layers_in_order = [layer for _, layer in self.stages if layer is not None]

    input_channels_key = "audio_channels"


@keras.saving.register_keras_serializable(package="chroma_keras")
class EncodecDecoder(_SEANetStack):
    """SEANet decoder: conv, LSTM, then per ratio ELU, transposed conv and residual blocks, ELU and a last conv.

    Args:
        config: an EnCodec config (see :data:`ENCODEC_24KHZ`).

    Example:

    >>> dec = EncodecDecoder({**ENCODEC_24KHZ, "num_filters": 4, "hidden_size": 8, "codebook_dim": 8})
    >>> dec(keras.ops.ones((1, 2, 8))).shape
    (1, 640, 1)
    """

    def __init__(self, config, **kwargs):
        super().__init__(**kwargs)
        self.config = _complete_config(config)
        c = self.config
        conv = dict(causal=c["causal"], pad_mode=c["pad_mode"])
        width = c["num_filters"] * 2 ** len(c["upsampling_ratios"])
        self.stages = [("conv", EncodecConv1D(width, c["kernel_size"], name="conv_in", **conv))]
        self.stages.append(("lstm", EncodecLSTM(width, c["num_lstm_layers"], name="lstm")))
        for level, ratio in enumerate(c["upsampling_ratios"]):
            self.stages.append(("elu", None))
            self.stages.append((
                "conv",
                EncodecConvTranspose1D(
                    width // 2, ratio * 2, stride=ratio, causal=c["causal"], trim_right_ratio=c["trim_right_ratio"],
                    name=f"block_{level}_up",
                ),
            ))
            width //= 2
            self.stages.extend(self._residual_stages(level, width))
        self.stages.append(("elu", None))
        self.stages.append(("conv", EncodecConv1D(c["audio_channels"], c["last_kernel_size"], name="conv_out", **conv)))
        self._layers_in_order = [layer for _, layer in self.stages if layer is not None]

    input_channels_key = "hidden_size"


@keras.saving.register_keras_serializable(package="chroma_keras")
class Encodec(keras.Model):
    """The EnCodec neural audio codec (24 kHz family): waveform ⇄ discrete codes.

    Args:
        config: an EnCodec config dict; missing keys take the
            facebook/encodec_24khz values (:data:`ENCODEC_24KHZ`).

    Calling the model encodes and decodes at the highest target bandwidth
    (``[batch, channels, samples]`` in, ``[batch, channels, frames *
    hop_length]`` out). Build one from a checkpoint with
    ``chroma_keras.pretrained.convert_checkpoint("encodec", path)`` or
    ``chroma_keras.from_preset("encodec_24khz", weights=path)``.

    Example:

    >>> model = Encodec({"num_filters": 4, "hidden_size": 8, "codebook_dim": 8, "codebook_size": 16})
    >>> wave = np.zeros((1, 24000), "float32")
    >>> codes = model.encode(wave, bandwidth=6.0)    # [1, n_q, 75]
    >>> audio = model.decode(codes)                   # [1, 1, 24000]
    """

    def __init__(self, config=None, **kwargs):
        super().__init__(**kwargs)
        self.config = _complete_config(config or {})
        c = self.config
        self.sampling_rate = int(c["sampling_rate"])
        self.audio_channels = int(c["audio_channels"])
        self.hop_length = int(np.prod(c["upsampling_ratios"]))
        self.frame_rate = frame_rate_of(c)
        self.codebook_size = int(c["codebook_size"])
        self.target_bandwidths = list(c["target_bandwidths"])
        self.encoder = EncodecEncoder(c, name="encoder")
        self.quantizer = EncodecResidualQuantizer(
            num_quantizers_of(c), codebook_size=c["codebook_size"], codebook_dim=c["codebook_dim"], name="quantizer"
        )
        self.decoder = EncodecDecoder(c, name="decoder")
        self.encoder.build((None, None, self.audio_channels))
        self.quantizer.build(None)
        self.decoder.build((None, None, c["hidden_size"]))
        self.built = True

    @property
    def num_quantizers(self) -> int:
        """Codebooks the model holds (those of its highest target bandwidth)."""
        return self.quantizer.num_quantizers

    def num_codebooks(self, bandwidth: float) -> int:
        """Codebooks used at ``bandwidth`` kbps: ``floor(1000 * bandwidth / (frame_rate * log2(codebook_size)))``, at least 1.

        Raises:
            ModelInputError: ``bandwidth`` is not one of ``target_bandwidths``.
        """
        try:
            bandwidth = float(bandwidth)
        except (TypeError, ValueError):
            bandwidth = None
        if bandwidth not in self.target_bandwidths:
            raise ModelInputError(f"bandwidth={bandwidth!r}: expected one of {self.target_bandwidths} (kbps).")
        bits_per_frame = math.log2(self.codebook_size) * self.frame_rate
        return int(max(1, math.floor(bandwidth * 1000 / bits_per_frame)))

    def _channels_last(self, waveform):
        waveform = ops.convert_to_tensor(waveform, dtype=self.compute_dtype)
        if len(waveform.shape) == 2 and self.audio_channels == 1:
            waveform = waveform[:, None, :]
        if len(waveform.shape) != 3 or waveform.shape[1] != self.audio_channels:
            expected = "[batch, samples] or " if self.audio_channels == 1 else ""
            raise ModelInputError(
                f"waveform of shape {tuple(waveform.shape)}: expected {expected}[batch, {self.audio_channels}, samples]."
            )
        if waveform.shape[-1] is None or waveform.shape[-1] < 1:
            raise ModelInputError(f"waveform of shape {tuple(waveform.shape)}: expected at least one sample.")
        return ops.transpose(waveform, (0, 2, 1))

    def embed(self, waveform):
        """The encoder's continuous output (before quantization).

        Args:
            waveform: ``[batch, channels, samples]`` (or ``[batch, samples]`` when mono).

        Returns:
            ``[batch, hidden_size, frames]`` (the reference layout), ``frames = ceil(samples / hop_length)``.
        """
        return ops.transpose(self.encoder(self._channels_last(waveform)), (0, 2, 1))

    def encode(self, waveform, bandwidth: float = 6.0):
        """Discrete codes of ``waveform`` at ``bandwidth`` kbps.

        Args:
            waveform: ``[batch, channels, samples]`` (or ``[batch, samples]`` when mono), at ``sampling_rate``.
            bandwidth: one of ``target_bandwidths``.

        Returns:
            int32 ``[batch, num_codebooks(bandwidth), frames]``.
        """
        n_q = self.num_codebooks(bandwidth)
        return self.quantizer.encode(self.encoder(self._channels_last(waveform)), n_q)

    def decode(self, codes):
        """The waveform of ``codes`` ``[batch, n_q, frames]`` as ``[batch, channels, frames * hop_length]``."""
        if len(codes.shape) != 3:
            raise ModelInputError(f"codes of shape {tuple(codes.shape)}: expected [batch, num_codebooks, frames].")
        audio = self.decoder(self.quantizer.decode(codes))
        return ops.transpose(audio, (0, 2, 1))

    def call(self, waveform):
        return self.decode(self.encode(waveform, max(self.target_bandwidths)))

    def get_config(self):
        return {"config": self.config, "name": self.name, "trainable": self.trainable}


# --------------------------------------------------------------------------- registry / converter


def build_encodec(config) -> Encodec:
    """A randomly initialised :class:`Encodec` of ``config``."""
    return Encodec(config)


def config_from_reference(reference: dict) -> dict:
    """Map a Hugging Face ``EncodecConfig`` dict (``config.json``) to an :class:`Encodec` config.

    Raises:
        CheckpointError: the reference needs something only the 48 kHz model has
            (``normalize``, ``chunk_length_s``, ``time_group_norm``), naming the key.
    """
    if reference.get("normalize"):
        raise CheckpointError(
            "reference config key 'normalize'=true: input normalisation (the 48 kHz model) is not supported; "
            "expected false (the 24 kHz family)."
        )
    if reference.get("chunk_length_s") is not None:
        raise CheckpointError(
            f"reference config key 'chunk_length_s'={reference['chunk_length_s']!r}: chunked encoding (the 48 kHz model) "
            "is not supported; expected null (the 24 kHz family)."
        )
    if reference.get("norm_type", "weight_norm") not in SUPPORTED_NORMS:
        raise CheckpointError(
            f"reference config key 'norm_type'={reference['norm_type']!r}: only weight_norm is supported "
            "(the 24 kHz family)."
        )
    mapping = {key: key for key in ENCODEC_24KHZ}
    mapping["causal"] = "use_causal_conv"
    config = {ours: reference[theirs] for ours, theirs in mapping.items() if reference.get(theirs) is not None}
    config.setdefault("codebook_dim", config.get("hidden_size", ENCODEC_24KHZ["hidden_size"]))
    return _complete_config(config)


class _Names:
    """Checkpoint tensor names of one layout (Hugging Face or the original facebookresearch/encodec)."""

    def __init__(self, original: bool):
        self.original = original

    def module(self, part: str, index: int) -> str:
        return f"{part}.model.{index}" if self.original else f"{part}.layers.{index}"

    def conv(self, prefix: str, transposed: bool = False) -> str:
        if self.original:
            return f"{prefix}.convtr.convtr" if transposed else f"{prefix}.conv.conv"
        return f"{prefix}.conv"

    def codebook(self, q: int) -> str:
        return f"quantizer.vq.layers.{q}._codebook" if self.original else f"quantizer.layers.{q}.codebook"


def _fold_weight_norm(g, v):
    # weight = g * v / ||v||, the norm over every axis but the first (torch's weight_norm, dim=0).
    norm = np.sqrt(np.sum(np.square(v.astype(np.float64)), axis=tuple(range(1, v.ndim)), keepdims=True))
    return (g.astype(np.float64) * v / norm).astype(np.float32)


def _assign_conv(loader, conv_layer, prefix: str):
    # torch Conv1d [out, in, k] and ConvTranspose1d [in, out, k] both map to the Keras kernel by reversing axes.
    kernel = conv_layer.kernel
    to_keras = lambda w: np.transpose(w, (2, 1, 0))
    if loader.has(f"{prefix}.weight_g"):
        loader.assign_from(kernel, [f"{prefix}.weight_g", f"{prefix}.weight_v"], lambda g, v: to_keras(_fold_weight_norm(g, v)))
    elif loader.has(f"{prefix}.parametrizations.weight.original0"):
        names = [f"{prefix}.parametrizations.weight.original0", f"{prefix}.parametrizations.weight.original1"]
        loader.assign_from(kernel, names, lambda g, v: to_keras(_fold_weight_norm(g, v)))
    elif loader.has(f"{prefix}.weight"):
        loader.assign(kernel, f"{prefix}.weight", to_keras)
    else:
        loader.get(f"{prefix}.weight_g")  # recorded as missing
        loader.get(f"{prefix}.weight_v")
    loader.assign(conv_layer.bias, f"{prefix}.bias")


def _assign_lstm(loader, lstm_layer: EncodecLSTM, prefix: str):
    for i, cell in enumerate(lstm_layer.lstms):
        # torch's gate order (input, forget, cell, output) is Keras' too; only the layout is transposed.
        loader.assign(cell.kernel, f"{prefix}.lstm.weight_ih_l{i}", np.transpose)
        loader.assign(cell.recurrent_kernel, f"{prefix}.lstm.weight_hh_l{i}", np.transpose)
        loader.assign_from(cell.bias, [f"{prefix}.lstm.bias_ih_l{i}", f"{prefix}.lstm.bias_hh_l{i}"], lambda a, b: a + b)


def _assign_stack(loader, names: _Names, part: str, stages):
    for index, (kind, layer) in enumerate(stages):
        prefix = names.module(part, index)
        if kind == "conv":
            _assign_conv(loader, layer.conv, names.conv(prefix, isinstance(layer, EncodecConvTranspose1D)))
        elif kind == "residual":
            _assign_conv(loader, layer.conv1.conv, names.conv(f"{prefix}.block.1"))
            _assign_conv(loader, layer.conv2.conv, names.conv(f"{prefix}.block.3"))
            if layer.shortcut is not None:
                _assign_conv(loader, layer.shortcut.conv, names.conv(f"{prefix}.shortcut"))
        elif kind == "lstm":
            _assign_lstm(loader, layer, prefix)


def load_state_dict(model: Encodec, loader) -> None:
    """Fill ``model`` from an EnCodec state dict (Hugging Face or original layout, detected from the keys).

    Weight-norm pairs are folded into kernels, LSTM input/hidden biases summed,
    the codebooks' ``embed`` tensors stacked; the codebooks' training buffers
    (``inited``, ``cluster_size``, ``embed_avg``) are ignored.

    Raises:
        CheckpointError: missing, unexpected or mis-shaped tensors (all listed at once).
    """
    keys = loader.state_dict.keys()
    original = any(k.startswith(("encoder.model.", "quantizer.vq.")) for k in keys)
    names = _Names(original)
    _assign_stack(loader, names, "encoder", model.encoder.stages)
    _assign_stack(loader, names, "decoder", model.decoder.stages)
    n_q = model.quantizer.num_quantizers
    loader.assign_from(
        model.quantizer.codebooks, [f"{names.codebook(q)}.embed" for q in range(n_q)], lambda *embeds: np.stack(embeds)
    )
    loader.finish(ignore=["*.inited", "*.cluster_size", "*.embed_avg"])


PRESETS = {
    "encodec_24khz": {
        "config": dict(ENCODEC_24KHZ),
        "description": (
            "EnCodec 24 kHz mono neural audio codec (SEANet encoder/decoder, 32 x 1024-entry residual codebooks, "
            "75 frames/s, 1.5-24 kbps); convert facebook/encodec_24khz to use it."
        ),
        "reference": "facebook/encodec_24khz",
    }
}

ARCHITECTURE = register_architecture(
    PretrainedArchitecture(
        name="encodec",
        build=build_encodec,
        load_state_dict=load_state_dict,
        config_from_reference=config_from_reference,
        presets=PRESETS,
        default_preset="encodec_24khz",
    )
)
