"""Wav2Vec2AudioEncoder: a Wav2Vec2 backbone over the raw 16 kHz waveform, masked mean pooled, projected to hidden_dim."""

from __future__ import annotations

from typing import Mapping

import keras
from keras import ops

from chroma_keras.data import keys
from chroma_keras.errors import ModelInputError, PresetError
from chroma_keras.models.encoders.base import AudioEncoder, register_encoder
from chroma_keras.models.encoders.mel_cnn_audio_encoder import _audio_shape, _shapes
from chroma_keras.pretrained import wav2vec2
from chroma_keras.pretrained.wav2vec2 import SAMPLE_RATE, Wav2Vec2Backbone


@register_encoder("audio", "wav2vec2")
@keras.saving.register_keras_serializable(package="chroma_keras")
class Wav2Vec2AudioEncoder(AudioEncoder):
    """Audio encoder: :class:`~chroma_keras.pretrained.wav2vec2.Wav2Vec2Backbone` + masked mean + ``Dense(hidden_dim)``.

    1. The backbone reads ``keys.AUDIO`` (16 kHz) with ``keys.AUDIO_MASK`` as its
       padding mask and returns one feature vector per 20 ms frame and a frame
       mask (frames whose receptive field ends within the real audio).
    2. ``sequence = Dense(hidden_dim)(frames) * frame_mask``.
    3. ``embedding = Dense(hidden_dim)(dropout(masked_mean(frames)))`` (the same
       ``Dense`` as step 2), identical pooling in training and inference.

    Padded frames are never attended to and never pooled. The group-norm conv
    stack of wav2vec2-base normalises over the whole padded clip (as the
    reference does), so for that layout a clip padded to a longer batch gives a
    slightly different embedding than alone; the layer-norm layout does not.
    Rows without audio (all-zero mask) give a zero-pooled, finite embedding.

    Args:
        hidden_dim: width of ``embedding`` and ``sequence``.
        backbone: a ``Wav2Vec2Backbone`` (or its serialized config), e.g. one
            loaded with :func:`chroma_keras.pretrained.load_converted`.
        freeze_backbone: keep the backbone's weights fixed (and its dropout off);
            only the projection trains.
        dropout: dropout before the projection of the pooled features.
        **kwargs: ``keras.layers.Layer`` arguments (``name``, ``dtype``).

    Call arguments:
        inputs: a batch dict with ``keys.AUDIO`` float ``[batch, samples]`` at
            16 kHz and optionally ``keys.AUDIO_MASK`` ``[batch, samples]``.
        training: whether dropout is active.

    Returns:
        ``{"embedding": [batch, hidden_dim], "sequence": [batch, frames, hidden_dim],
        "sequence_mask": [batch, frames]}``.

    Example:

    >>> backbone = Wav2Vec2Backbone(conv_dim=[16] * 7, hidden_dim=32, num_layers=1, num_heads=2,
    ...                             intermediate_dim=64)
    >>> encoder = Wav2Vec2AudioEncoder(hidden_dim=8, backbone=backbone)
    >>> out = encoder({"audio": np.zeros((2, 16000), "float32")})
    >>> tuple(out["embedding"].shape), tuple(out["sequence"].shape)
    ((2, 8), (2, 49, 8))
    """

    input_keys = (keys.AUDIO, keys.AUDIO_MASK)

    def __init__(self, hidden_dim: int = 512, backbone=None, freeze_backbone: bool = False, dropout: float = 0.1, **kwargs):
        super().__init__(hidden_dim=hidden_dim, **kwargs)
        if isinstance(backbone, dict):
            backbone = keras.saving.deserialize_keras_object(backbone)
        if not isinstance(backbone, Wav2Vec2Backbone):
            raise ModelInputError(
                f"Wav2Vec2AudioEncoder: backbone must be a Wav2Vec2Backbone. Received: backbone={type(backbone).__name__}"
            )
        self.backbone = backbone
        self.freeze_backbone = bool(freeze_backbone)
        if self.freeze_backbone:
            self.backbone.trainable = False
        self.dropout = float(dropout)
        self.dropout_layer = keras.layers.Dropout(self.dropout, name="dropout")
        self.projection = keras.layers.Dense(self.hidden_dim, name="projection", dtype=self.dtype_policy)

    def build(self, inputs_shape):
        _audio_shape(inputs_shape, self.name)
        self.projection.build((None, None, self.backbone.hidden_dim))
        self.built = True

    def call(self, inputs, training=False):
        _audio_shape(_shapes(inputs), self.name)
        audio = ops.cast(inputs[keys.AUDIO], "float32")
        mask = inputs.get(keys.AUDIO_MASK)
        mask = ops.ones_like(audio) if mask is None else ops.cast(ops.cast(mask, "float32") > 0, "float32")
        outputs = self.backbone({"audio": audio, "padding_mask": mask}, training=training and not self.freeze_backbone)
        frames = outputs["sequence_output"]
        frame_mask = ops.cast(outputs["padding_mask"], frames.dtype)
        weights = frame_mask[:, :, None]
        count = ops.maximum(ops.sum(weights, axis=1), 1.0)
        pooled = ops.sum(frames * weights, axis=1) / count
        embedding = self.projection(self.dropout_layer(pooled, training=training))
        sequence = self.projection(frames) * weights
        return {"embedding": embedding, "sequence": sequence, "sequence_mask": ops.cast(frame_mask, embedding.dtype)}

    def compute_output_shape(self, inputs_shape):
        batch, samples = tuple(inputs_shape[keys.AUDIO])
        frames = None if samples is None else int(self.backbone.num_frames(samples))
        return {
            "embedding": (batch, self.hidden_dim),
            "sequence": (batch, frames, self.hidden_dim),
            "sequence_mask": (batch, frames),
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            backbone=keras.saving.serialize_keras_object(self.backbone),
            freeze_backbone=self.freeze_backbone,
            dropout=self.dropout,
        )
        return config

    @classmethod
    def from_preset_config(cls, config: Mapping, modality: str = "audio"):
        """Build from a resolved preset: reads ``model.audio_encoder`` and ``preprocessing.audio.sample_rate``.

        ``pretrained_model`` picks the backbone: a directory written by
        ``chroma-keras convert --model wav2vec2`` (its converted weights are
        loaded), a pretrained preset name (``wav2vec2_base``: that architecture,
        randomly initialised), or null: a new backbone with wav2vec2-base's conv
        layout (7 convs, 20 ms frames) and ``conv_channels``,
        ``transformer_dim``, ``num_layers``, ``num_heads``, ``intermediate_dim``.
        Also read: ``hidden_dim``, ``freeze_backbone``, ``dropout``.

        Args:
            config: a resolved preset config.

        Returns:
            A ``Wav2Vec2AudioEncoder``.

        Raises:
            PresetError: when ``preprocessing.audio.sample_rate`` is not 16000, or
                ``pretrained_model`` is neither a converted Wav2Vec2 directory nor a
                Wav2Vec2 preset, or the from-scratch sizes do not fit together.
        """
        section = (config.get("model") or {}).get("audio_encoder") or {}
        audio = (config.get("preprocessing") or {}).get("audio") or {}
        rate = audio.get("sample_rate", 44100)
        if rate != SAMPLE_RATE:
            raise PresetError(
                f"model.audio_encoder.type: wav2vec2 reads {SAMPLE_RATE} Hz audio, but preprocessing.audio.sample_rate "
                f"is {rate}; set preprocessing.audio.sample_rate={SAMPLE_RATE}."
            )
        return cls(
            hidden_dim=section.get("hidden_dim", 512),
            backbone=_backbone_from_section(section),
            freeze_backbone=section.get("freeze_backbone", False),
            dropout=section.get("dropout", 0.1),
            name="audio_encoder",
        )


def _backbone_from_section(section: Mapping) -> Wav2Vec2Backbone:
    from chroma_keras import pretrained

    source = section.get("pretrained_model")
    if source is None:
        width, heads = section.get("transformer_dim", 256), section.get("num_heads", 4)
        groups = wav2vec2.PRESETS["wav2vec2_base"]["config"]["num_conv_pos_embedding_groups"]
        if width % heads or width % groups:
            raise PresetError(
                f"model.audio_encoder.transformer_dim: {width} must be a multiple of model.audio_encoder.num_heads "
                f"({heads}) and of the positional conv's {groups} groups."
            )
        config = dict(wav2vec2.PRESETS["wav2vec2_base"]["config"])
        config.update(
            conv_dim=[section.get("conv_channels", 256)] * len(config["conv_kernel"]),
            hidden_dim=width,
            num_layers=section.get("num_layers", 4),
            num_heads=heads,
            intermediate_dim=section.get("intermediate_dim", 1024),
            feature_projection_dropout=0.0,
            layerdrop=0.0,
        )
        return wav2vec2.build(config)
    if pretrained.is_converted_directory(source):
        backbone = pretrained.load_converted(source)
        if not isinstance(backbone, Wav2Vec2Backbone):
            raise PresetError(
                f"model.audio_encoder.pretrained_model: {source!r} holds a converted {type(backbone).__name__}, "
                "not Wav2Vec2; convert one with `chroma-keras convert --model wav2vec2`."
            )
        return backbone
    if source in wav2vec2.PRESETS:
        return wav2vec2.build(wav2vec2.PRESETS[source]["config"])
    raise PresetError(
        f"model.audio_encoder.pretrained_model: {source!r} is neither a directory written by "
        f"`chroma-keras convert --model wav2vec2` nor a Wav2Vec2 preset ({', '.join(wav2vec2.PRESETS)})."
    )
