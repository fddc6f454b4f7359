"""Wav2Vec2 (Baevski et al., 2020) natively in Keras 3, and its converter from Hugging Face checkpoints.

:class:`Wav2Vec2Backbone` maps 16 kHz mono audio to one feature vector per
20 ms frame. Importing this module registers the ``wav2vec2`` architecture
(``chroma-keras convert --model wav2vec2``) and the ``wav2vec2_base`` preset.
The converter reads a Hugging Face ``Wav2Vec2Model`` state dict, or one saved
from a model with a head (``Wav2Vec2ForCTC``...: tensors under
``wav2vec2.``, the head ignored). See ``docs/pretrained/wav2vec2.md``.
"""

from __future__ import annotations

import glob
from typing import Mapping

import keras
import numpy as np
from keras import ops

from chroma_keras.errors import CheckpointError, ModelInputError
from chroma_keras.pretrained.registry import PretrainedArchitecture, register_architecture
from chroma_keras.pretrained.activations import REFERENCE_ACTIVATIONS as ACTIVATIONS
from chroma_keras.pretrained.wav2vec2_layers import (
    Wav2Vec2EncoderLayer,
    Wav2Vec2FeatureEncoder,
    Wav2Vec2PositionalConvEmbedding,
    activation,
)

SAMPLE_RATE = 16000
# The prefix a Hugging Face model with a head (Wav2Vec2ForCTC, ...ForSequenceClassification) stores its backbone under.
HEAD_MODEL_PREFIX = "wav2vec2."


@keras.saving.register_keras_serializable(package="chroma_keras")
class Wav2Vec2Backbone(keras.Model):
    """The Wav2Vec2 encoder: conv feature extractor, feature projection, positional conv, transformer.

    ``audio [b, samples] -> conv stack -> LayerNorm -> Dense(hidden_dim) ->
    (+ positional conv) -> transformer layers``. Frames are 20 ms apart for the
    published conv stack (total stride 320 at 16 kHz).

    With a ``padding_mask`` the samples beyond the mask are zeroed, the frame
    mask is derived from each clip's real length (frames whose receptive field
    ends within it), padded frames are zeroed before the positional conv and
    never attended to, as in the reference. The GroupNorm of the
    ``feat_extract_norm="group"`` models (wav2vec2-base) normalises over the
    whole padded clip, so there a padded batch differs slightly from each clip
    alone (the reference behaves the same; its base models are meant to be run
    without a mask on zero-padded audio).

    Not implemented (training-only in the reference): SpecAugment time/feature
    masking (``masked_spec_embed`` is ignored when converting), the quantizer
    and the adapter. ``layerdrop`` skips whole layers in training only.

    Args:
        conv_dim: output channels of each feature-extractor conv.
        conv_kernel: kernel sizes of the feature-extractor convs.
        conv_stride: strides of the feature-extractor convs.
        conv_bias: whether the feature-extractor convs have biases.
        feat_extract_norm: ``"group"`` (wav2vec2-base) or ``"layer"`` (large / stable-layer-norm models).
        feat_extract_activation: activation of the feature extractor and positional conv.
        hidden_dim: transformer width.
        num_layers: transformer layers.
        num_heads: attention heads.
        intermediate_dim: feed-forward width.
        hidden_activation: feed-forward activation.
        num_conv_pos_embeddings: positional conv kernel size.
        num_conv_pos_embedding_groups: positional conv groups.
        stable_layer_norm: pre-norm transformer layers (and a final LayerNorm) when True.
        layer_norm_epsilon: epsilon of the feature projection's and transformer's LayerNorms.
        hidden_dropout: dropout on residual branches and after the positional embedding.
        attention_dropout: dropout on attention probabilities.
        activation_dropout: dropout inside the feed-forward.
        feature_projection_dropout: dropout after the feature projection.
        layerdrop: probability of skipping each transformer layer in training.
        seed: seed of the layerdrop draws.
        **kwargs: ``keras.Model`` arguments (``name``, ``dtype``).

    Call arguments:
        inputs: float ``[batch, samples]`` at 16 kHz, or a dict with ``"audio"``
            and optionally ``"padding_mask"`` ``[batch, samples]`` (1 = real sample).
        training: whether dropout / layerdrop are active.

    Returns:
        A dict: ``"sequence_output"`` ``[batch, frames, hidden_dim]`` (the last
        hidden state), ``"hidden_states"`` (a list of ``num_layers + 1`` tensors:
        the first layer's input, then each layer's output), ``"extract_features"``
        ``[batch, frames, conv_dim[-1]]`` (the normalised conv features) and
        ``"padding_mask"`` ``[batch, frames]`` (1 on real frames).

    Example:

    >>> backbone = Wav2Vec2Backbone(conv_dim=[16, 16], conv_kernel=[10, 3], conv_stride=[5, 2], hidden_dim=16,
    ...                             num_layers=1, num_heads=2, intermediate_dim=32, num_conv_pos_embeddings=8,
    ...                             num_conv_pos_embedding_groups=2)
    >>> out = backbone(np.zeros((2, 1600), "float32"))
    >>> tuple(out["sequence_output"].shape)
    (2, 159, 16)
    """

    def __init__(
        self,
        conv_dim=(512,) * 7,
        conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        conv_stride=(5, 2, 2, 2, 2, 2, 2),
        conv_bias=False,
        feat_extract_norm="group",
        feat_extract_activation="gelu",
        hidden_dim=768,
        num_layers=12,
        num_heads=12,
        intermediate_dim=3072,
        hidden_activation="gelu",
        num_conv_pos_embeddings=128,
        num_conv_pos_embedding_groups=16,
        stable_layer_norm=False,
        layer_norm_epsilon=1e-5,
        hidden_dropout=0.1,
        attention_dropout=0.1,
        activation_dropout=0.0,
        feature_projection_dropout=0.0,
        layerdrop=0.0,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.conv_dim = [int(c) for c in conv_dim]
        self.conv_kernel = [int(k) for k in conv_kernel]
        self.conv_stride = [int(s) for s in conv_stride]
        _check_config(self, feat_extract_norm, hidden_dim, num_heads, num_conv_pos_embedding_groups,
                      feat_extract_activation, hidden_activation)
        self.conv_bias = bool(conv_bias)
        self.feat_extract_norm = feat_extract_norm
        self.feat_extract_activation = feat_extract_activation
        self.hidden_dim = int(hidden_dim)
        self.num_layers = int(num_layers)
        self.num_heads = int(num_heads)
        self.intermediate_dim = int(intermediate_dim)
        self.hidden_activation = hidden_activation
        self.num_conv_pos_embeddings = int(num_conv_pos_embeddings)
        self.num_conv_pos_embedding_groups = int(num_conv_pos_embedding_groups)
        self.stable_layer_norm = bool(stable_layer_norm)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.hidden_dropout = float(hidden_dropout)
        self.attention_dropout = float(attention_dropout)
        self.activation_dropout = float(activation_dropout)
        self.feature_projection_dropout = float(feature_projection_dropout)
        self.layerdrop = float(layerdrop)
        self.seed = seed

        # === Layers (names follow the checkpoint's modules) ===
        policy = self.dtype_policy
        self.feature_extractor = Wav2Vec2FeatureEncoder(
            self.conv_dim, self.conv_kernel, self.conv_stride, self.conv_bias, feat_extract_norm,
            feat_extract_activation, name="feature_extractor", dtype=policy,
        )
        self.feature_layer_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, name="feature_projection_layer_norm", dtype=policy
        )
        self.feature_projection = keras.layers.Dense(self.hidden_dim, name="feature_projection_projection", dtype=policy)
        self.feature_dropout = keras.layers.Dropout(self.feature_projection_dropout)
        self.pos_conv_embed = Wav2Vec2PositionalConvEmbedding(
            self.hidden_dim, self.num_conv_pos_embeddings, self.num_conv_pos_embedding_groups,
            feat_extract_activation, name="encoder_pos_conv_embed", dtype=policy,
        )
        self.encoder_layer_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, name="encoder_layer_norm", dtype=policy
        )
        self.encoder_dropout = keras.layers.Dropout(self.hidden_dropout)
        self.encoder_layers = [
            Wav2Vec2EncoderLayer(
                self.hidden_dim, self.num_heads, self.intermediate_dim, hidden_activation, self.layer_norm_epsilon,
                self.stable_layer_norm, self.hidden_dropout, self.attention_dropout, self.activation_dropout,
                name=f"encoder_layers_{i}", dtype=policy,
            )
            for i in range(self.num_layers)
        ]
        self._layerdrop_seed = keras.random.SeedGenerator(seed) if self.layerdrop > 0 else None
        self.build()

    def build(self, input_shape=None):
        self.feature_extractor.build((None, None))
        self.feature_layer_norm.build((None, None, self.conv_dim[-1]))
        self.feature_projection.build((None, None, self.conv_dim[-1]))
        self.pos_conv_embed.build((None, None, self.hidden_dim))
        self.encoder_layer_norm.build((None, None, self.hidden_dim))
        for layer in self.encoder_layers:
            layer.build((None, None, self.hidden_dim))
        self.built = True

    # === Lengths ===

    def num_frames(self, num_samples):
        """Frames the conv stack makes of ``num_samples`` samples (int, array or tensor; <= 0 means none)."""
        frames = num_samples
        for kernel, stride in zip(self.conv_kernel, self.conv_stride):
            frames = (frames - kernel) // stride + 1
        return frames

    @property
    def receptive_field(self) -> int:
        """Samples the first frame sees (400 for the published stack: 25 ms at 16 kHz)."""
        field, jump = 1, 1
        for kernel, stride in zip(self.conv_kernel, self.conv_stride):
            field += (kernel - 1) * jump
            jump *= stride
        return field

    def frame_mask(self, padding_mask, num_frames):
        """The frame mask of a sample mask: frame ``t`` is real when ``t < num_frames(real samples)``.

        Args:
            padding_mask: ``[batch, samples]``, 1 on real samples (a prefix of each row).
            num_frames: frames of the padded batch.

        Returns:
            float ``[batch, num_frames]``.
        """
        lengths = ops.cast(ops.sum(ops.cast(padding_mask > 0, "int32"), axis=1), "int32")
        frames = self.num_frames(lengths)
        positions = ops.arange(num_frames, dtype="int32")
        return ops.cast(positions[None, :] < frames[:, None], "float32")

    # === Forward ===

    def call(self, inputs, training=False):
        if isinstance(inputs, Mapping):
            if "audio" not in inputs:
                raise ModelInputError(
                    f"{self.name}: a dict input needs 'audio' [batch, samples] (and optionally 'padding_mask'). "
                    f"Received keys: {sorted(inputs)}"
                )
            audio, padding_mask = inputs["audio"], inputs.get("padding_mask")
        else:
            audio, padding_mask = inputs, None
        self._check_audio(audio, padding_mask)
        audio = ops.cast(audio, self.compute_dtype)
        if padding_mask is not None:
            audio = audio * ops.cast(padding_mask, audio.dtype)

        features = self.feature_extractor(audio)  # [b, frames, conv_dim[-1]]
        features = self.feature_layer_norm(features)
        x = self.feature_dropout(self.feature_projection(features), training=training)
        frames = ops.shape(x)[1]
        if padding_mask is None:
            mask = None
            frame_mask = ops.ones((ops.shape(x)[0], frames), dtype=x.dtype)
        else:
            frame_mask = ops.cast(self.frame_mask(padding_mask, frames), x.dtype)
            mask = frame_mask
            x = x * frame_mask[:, :, None]

        x = x + self.pos_conv_embed(x)
        if not self.stable_layer_norm:
            x = self.encoder_layer_norm(x)
        x = self.encoder_dropout(x, training=training)
        hidden_states = [x]
        for layer in self.encoder_layers:
            y = layer(x, padding_mask=mask, training=training)
            if training and self._layerdrop_seed is not None:
                keep = keras.random.uniform((), seed=self._layerdrop_seed) >= self.layerdrop
                y = ops.where(keep, y, x)
            x = y
            hidden_states.append(x)
        if self.stable_layer_norm:
            x = self.encoder_layer_norm(x)
        return {
            "sequence_output": x,
            "hidden_states": hidden_states,
            "extract_features": features,
            "padding_mask": frame_mask,
        }

    def _check_audio(self, audio, padding_mask):
        shape = tuple(audio.shape)
        if len(shape) != 2:
            raise ModelInputError(
                f"{self.name}: audio must be float [batch, samples] (mono, {SAMPLE_RATE} Hz). Received: shape={shape}"
            )
        if shape[1] is not None and shape[1] < self.receptive_field:
            raise ModelInputError(
                f"{self.name}: audio has {shape[1]} samples; the conv feature extractor needs at least "
                f"{self.receptive_field} (one frame)."
            )
        if padding_mask is not None and tuple(padding_mask.shape) != shape:
            raise ModelInputError(
                f"{self.name}: padding_mask must have the shape of audio {shape}. Received: shape={tuple(padding_mask.shape)}"
            )

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.saving.serialize_keras_object(self.dtype_policy),
            **self.architecture_config(),
        }

    def architecture_config(self) -> dict:
        """The constructor arguments that define the architecture (the converted directory's ``config``)."""
        return {
            "conv_dim": list(self.conv_dim),
            "conv_kernel": list(self.conv_kernel),
            "conv_stride": list(self.conv_stride),
            "conv_bias": self.conv_bias,
            "feat_extract_norm": self.feat_extract_norm,
            "feat_extract_activation": self.feat_extract_activation,
            "hidden_dim": self.hidden_dim,
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "intermediate_dim": self.intermediate_dim,
            "hidden_activation": self.hidden_activation,
            "num_conv_pos_embeddings": self.num_conv_pos_embeddings,
            "num_conv_pos_embedding_groups": self.num_conv_pos_embedding_groups,
            "stable_layer_norm": self.stable_layer_norm,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "hidden_dropout": self.hidden_dropout,
            "attention_dropout": self.attention_dropout,
            "activation_dropout": self.activation_dropout,
            "feature_projection_dropout": self.feature_projection_dropout,
            "layerdrop": self.layerdrop,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.saving.deserialize_keras_object(config["dtype"])
        return cls(**config)


def _check_config(model, norm, hidden_dim, num_heads, groups, feat_activation, hidden_activation):
    name = type(model).__name__
    if not (len(model.conv_dim) == len(model.conv_kernel) == len(model.conv_stride) >= 1):
        raise CheckpointError(
            f"{name}: conv_dim, conv_kernel and conv_stride must be non-empty lists of one length. "
            f"Received lengths {len(model.conv_dim)}, {len(model.conv_kernel)}, {len(model.conv_stride)}."
        )
    if norm not in ("group", "layer"):
        raise CheckpointError(f"feat_extract_norm: {norm!r} is not supported; expected 'group' or 'layer'.")
    if int(hidden_dim) % int(num_heads):
        raise CheckpointError(
            f"{name}: hidden_dim ({hidden_dim}) must be divisible by num_heads ({num_heads})."
        )
    if int(hidden_dim) % int(groups):
        raise CheckpointError(
            f"{name}: hidden_dim ({hidden_dim}) must be divisible by num_conv_pos_embedding_groups ({groups})."
        )
    activation(feat_activation, "feat_extract_activation")
    activation(hidden_activation, "hidden_act")


# === Architecture registration: config mapping, build, converter ===

# Hugging Face Wav2Vec2Config key -> our constructor argument.
_REFERENCE_KEYS = {
    "conv_dim": "conv_dim",
    "conv_kernel": "conv_kernel",
    "conv_stride": "conv_stride",
    "conv_bias": "conv_bias",
    "feat_extract_norm": "feat_extract_norm",
    "feat_extract_activation": "feat_extract_activation",
    "hidden_size": "hidden_dim",
    "num_hidden_layers": "num_layers",
    "num_attention_heads": "num_heads",
    "intermediate_size": "intermediate_dim",
    "hidden_act": "hidden_activation",
    "num_conv_pos_embeddings": "num_conv_pos_embeddings",
    "num_conv_pos_embedding_groups": "num_conv_pos_embedding_groups",
    "do_stable_layer_norm": "stable_layer_norm",
    "layer_norm_eps": "layer_norm_epsilon",
    "hidden_dropout": "hidden_dropout",
    "attention_dropout": "attention_dropout",
    "activation_dropout": "activation_dropout",
    "feat_proj_dropout": "feature_projection_dropout",
    "layerdrop": "layerdrop",
}
# Reference config values this port cannot reproduce (key -> the value it needs).
_UNSUPPORTED_UNLESS = {"add_adapter": False, "adapter_attn_dim": None, "use_weighted_layer_sum": False}
_MODEL_TYPES = ("wav2vec2",)


def config_from_reference(reference: Mapping) -> dict:
    """Our config from a Hugging Face ``Wav2Vec2Config`` dict (a checkpoint's ``config.json``).

    Keys absent from ``reference`` take the ``wav2vec2_base`` preset's values
    (the sizes are also ``Wav2Vec2Config``'s defaults). Pretraining and fine-tuning keys (quantizer, CTC, SpecAugment) are
    ignored: they do not change the backbone's forward pass at inference.

    Args:
        reference: the parsed ``config.json``.

    Returns:
        Keyword arguments of :class:`Wav2Vec2Backbone`.

    Raises:
        CheckpointError: naming the key, for a model type or option this port does
            not implement (adapters, ``feat_extract_norm`` other than group/layer...).
    """
    model_type = reference.get("model_type", "wav2vec2")
    if model_type not in _MODEL_TYPES:
        raise CheckpointError(
            f"model_type: {model_type!r} is not a Wav2Vec2 checkpoint; expected one of {list(_MODEL_TYPES)}."
        )
    for key, needed in _UNSUPPORTED_UNLESS.items():
        if reference.get(key, needed) != needed:
            raise CheckpointError(
                f"{key}: {reference[key]!r} is not supported by the Keras Wav2Vec2 port (it needs {needed!r})."
            )
    defaults = dict(PRESETS["wav2vec2_base"]["config"])
    config = {ours: reference.get(theirs, defaults[ours]) for theirs, ours in _REFERENCE_KEYS.items()}
    layers = reference.get("num_feat_extract_layers", len(config["conv_dim"]))
    if layers != len(config["conv_dim"]):
        raise CheckpointError(f"num_feat_extract_layers: {layers} but conv_dim has {len(config['conv_dim'])} entries.")
    if config["feat_extract_norm"] not in ("group", "layer"):
        raise CheckpointError(
            f"feat_extract_norm: {config['feat_extract_norm']!r} is not supported; expected 'group' or 'layer'."
        )
    for key in ("feat_extract_activation", "hidden_act"):
        value = reference.get(key, "gelu")
        if value not in ACTIVATIONS:
            raise CheckpointError(f"{key}: activation {value!r} is not supported; expected one of {sorted(ACTIVATIONS)}.")
    config["conv_dim"] = list(config["conv_dim"])
    config["conv_kernel"] = list(config["conv_kernel"])
    config["conv_stride"] = list(config["conv_stride"])
    config["seed"] = None
    return config


def build(config: Mapping) -> Wav2Vec2Backbone:
    """A randomly initialised :class:`Wav2Vec2Backbone` from our config (every weight built)."""
    return Wav2Vec2Backbone(**dict(config), name="wav2vec2")


def _dense(loader, dense, name):
    loader.assign(dense.kernel, f"{name}.weight", np.transpose)
    loader.assign(dense.bias, f"{name}.bias")


def _norm(loader, norm, name):
    loader.assign(norm.gamma, f"{name}.weight")
    loader.assign(norm.beta, f"{name}.bias")


def _conv_kernel(weight):
    # torch Conv1d [out, in / groups, kernel] -> Keras Conv1D [kernel, in / groups, out]
    return np.transpose(weight, (2, 1, 0))


def _fold_weight_norm(g, v):
    # torch weight_norm(dim=2): one magnitude per kernel position, the norm taken over (out, in).
    norm = np.sqrt(np.sum(np.square(v.astype(np.float64)), axis=(0, 1), keepdims=True))
    return _conv_kernel((g.astype(np.float64) * v / norm).astype(np.float32))


def load_state_dict(model: Wav2Vec2Backbone, loader) -> None:
    """Copy a Hugging Face Wav2Vec2 state dict into ``model`` (the registry's ``load_state_dict``).

    Reads ``Wav2Vec2Model`` names, or the same names under ``wav2vec2.`` (a
    checkpoint of a model with a head, whose other tensors are ignored). The
    positional conv's weight norm may be stored as ``weight_g`` / ``weight_v``,
    as torch parametrizations (``parametrizations.weight.original0`` /
    ``original1``) or already folded (``weight``); it is folded into the kernel.
    ``masked_spec_embed`` (SpecAugment, training only) is ignored.

    Raises:
        CheckpointError: listing every missing, unexpected and mis-shaped tensor.
    """
    head_model = any(key.startswith(HEAD_MODEL_PREFIX) for key in loader.state_dict)
    ignore = ["masked_spec_embed", HEAD_MODEL_PREFIX + "masked_spec_embed"]
    if head_model:
        loader.prefix = HEAD_MODEL_PREFIX
        ignore += [glob.escape(key) for key in loader.state_dict if not key.startswith(HEAD_MODEL_PREFIX)]

    extractor = model.feature_extractor
    for i, conv in enumerate(extractor.convs):
        name = f"feature_extractor.conv_layers.{i}"
        loader.assign(conv.kernel, f"{name}.conv.weight", _conv_kernel)
        if conv.use_bias:
            loader.assign(conv.bias, f"{name}.conv.bias")
    for i, norm in enumerate(extractor.norms):
        _norm(loader, norm, f"feature_extractor.conv_layers.{i}.layer_norm")
    _norm(loader, model.feature_layer_norm, "feature_projection.layer_norm")
    _dense(loader, model.feature_projection, "feature_projection.projection")

    pos = "encoder.pos_conv_embed.conv"
    kernel = model.pos_conv_embed.conv.kernel
    if loader.has(f"{pos}.parametrizations.weight.original0"):
        names = [f"{pos}.parametrizations.weight.original0", f"{pos}.parametrizations.weight.original1"]
        loader.assign_from(kernel, names, _fold_weight_norm)
    elif loader.has(f"{pos}.weight_g"):
        loader.assign_from(kernel, [f"{pos}.weight_g", f"{pos}.weight_v"], _fold_weight_norm)
    else:
        loader.assign(kernel, f"{pos}.weight", _conv_kernel)
    loader.assign(model.pos_conv_embed.conv.bias, f"{pos}.bias")
    _norm(loader, model.encoder_layer_norm, "encoder.layer_norm")

    for i, layer in enumerate(model.encoder_layers):
        name = f"encoder.layers.{i}"
        for projection in ("q_proj", "k_proj", "v_proj", "out_proj"):
            _dense(loader, getattr(layer.attention, projection), f"{name}.attention.{projection}")
        _norm(loader, layer.layer_norm, f"{name}.layer_norm")
        _dense(loader, layer.intermediate_dense, f"{name}.feed_forward.intermediate_dense")
        _dense(loader, layer.output_dense, f"{name}.feed_forward.output_dense")
        _norm(loader, layer.final_layer_norm, f"{name}.final_layer_norm")
    loader.finish(ignore=ignore)


# The published facebook/wav2vec2-base config (the Wav2Vec2Config defaults for sizes; dropouts as published).
_BASE_CONFIG = {
    "conv_dim": [512] * 7,
    "conv_kernel": [10, 3, 3, 3, 3, 2, 2],
    "conv_stride": [5, 2, 2, 2, 2, 2, 2],
    "conv_bias": False,
    "feat_extract_norm": "group",
    "feat_extract_activation": "gelu",
    "hidden_dim": 768,
    "num_layers": 12,
    "num_heads": 12,
    "intermediate_dim": 3072,
    "hidden_activation": "gelu",
    "num_conv_pos_embeddings": 128,
    "num_conv_pos_embedding_groups": 16,
    "stable_layer_norm": False,
    "layer_norm_epsilon": 1e-5,
    "hidden_dropout": 0.1,
    "attention_dropout": 0.1,
    "activation_dropout": 0.0,
    "feature_projection_dropout": 0.1,
    "layerdrop": 0.05,
    "seed": None,
}

PRESETS = {
    "wav2vec2_base": {
        "config": _BASE_CONFIG,
        "description": "Wav2Vec2 base: 7 conv layers (group norm) + 12 post-norm transformer layers, 768 wide, 95M "
        "parameters; self-supervised on LibriSpeech 960 h, 16 kHz input, 50 frames/s.",
        "reference": "facebook/wav2vec2-base",
    },
}

ARCHITECTURE = register_architecture(
    PretrainedArchitecture(
        name="wav2vec2",
        build=build,
        load_state_dict=load_state_dict,
        config_from_reference=config_from_reference,
        presets=PRESETS,
        default_preset="wav2vec2_base",
    )
)
