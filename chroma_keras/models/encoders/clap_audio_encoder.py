"""ClapAudioEncoder: CLAP's log-mel front end + the HTS-AT audio branch + its projection, as a scorer audio encoder."""

from __future__ import annotations

import copy
from typing import Mapping

import keras
from keras import ops

from chroma_keras.data import keys
from chroma_keras.errors import PresetError
from chroma_keras.models.encoders.base import AudioEncoder, register_encoder
from chroma_keras.models.encoders.mel_cnn_audio_encoder import _audio_shape, _shapes

CLAP_SAMPLE_RATE = 48000

# The random HTS-AT a preset gets with ``pretrained_model: null``: the published layout scaled down
# (16 mels, 128 x 128 image, 3 stages of one block, 16-wide patches). It reads 10 s clips like CLAP.
TINY_BACKBONE = {
    "spec_size": 128,
    "num_mel_bins": 16,
    "window_size": 4,
    "patch_embeds_hidden_size": 16,
    "depths": [1, 1, 1],
    "num_attention_heads": [1, 2, 4],
    "hidden_size": 64,
    "projection_dim": 64,
}


@register_encoder("audio", "clap")
@keras.saving.register_keras_serializable(package="chroma_keras")
class ClapAudioEncoder(AudioEncoder):
    """Waveform -> CLAP log-mel -> HTS-AT -> CLAP audio embedding -> Dense(hidden_dim).

    1. :class:`~chroma_keras.pretrained.clap_features.ClapFrontEnd`: the
       samples under ``audio_mask`` are repeat-padded (or cut to their first
       window) to ``max_length_s`` and turned into the reference extractor's
       log-mel (48 kHz, Slaney mels; four copies with HTK mels for fusion models).
    2. :class:`~chroma_keras.pretrained.clap_audio.ClapAudioModel` gives the
       projected CLAP embedding (L2-normalised here, as CLAP compares them)
       and the final token grid.
    3. ``embedding = Dense(hidden_dim)(dropout(normalised CLAP embedding))``;
       ``sequence = Dense(hidden_dim)(final tokens in time order)``, all steps real.

    The output depends only on each clip's real samples (the front end reads
    the mask), not on the padding after them or on the rest of the batch.

    Args:
        hidden_dim: width of ``embedding`` and ``sequence``.
        sample_rate: sample rate of ``keys.AUDIO``; must be 48 000 (CLAP's rate).
        backbone_config: the ``clap_audio`` config of the HTS-AT (see
            :data:`chroma_keras.pretrained.clap_audio.DEFAULT_CONFIG`);
            default :data:`TINY_BACKBONE`.
        backbone: an already built (e.g. converted) ``ClapAudioModel`` to use
            instead of a random one; its config replaces ``backbone_config``.
        pretrained_model: where the backbone came from (kept in the config for
            the record; never re-read by ``from_config``).
        max_length_s: clip length the features cover (CLAP: 10 s).
        padding: ``"repeatpad"`` (CLAP's), ``"repeat"`` or ``"pad"``.
        freeze_backbone: keep the front end and HTS-AT fixed (inference mode,
            not trainable); only the output projections learn.
        dropout: dropout before the embedding projection.
        **kwargs: ``keras.layers.Layer`` arguments.

    Call arguments:
        inputs: a batch dict with ``keys.AUDIO`` float ``[batch, samples]`` and
            optionally ``keys.AUDIO_MASK``.
        training: dropout (and, unless frozen, BatchNorm / stochastic depth) mode.

    Returns:
        ``{"embedding": [batch, hidden_dim], "sequence": [batch, tokens, hidden_dim],
        "sequence_mask": [batch, tokens]}``.

    Raises:
        PresetError: ``sample_rate`` is not 48 000.

    Example:

    >>> encoder = ClapAudioEncoder(hidden_dim=8, max_length_s=1.0)
    >>> out = encoder({"audio": np.zeros((2, 24000), "float32")})
    >>> tuple(out["embedding"].shape)
    (2, 8)
    """

    input_keys = (keys.AUDIO, keys.AUDIO_MASK)

    def __init__(
        self,
        hidden_dim: int = 512,
        sample_rate: int = CLAP_SAMPLE_RATE,
        backbone_config: Mapping | None = None,
        backbone=None,
        pretrained_model: str | None = None,
        max_length_s: float = 10.0,
        padding: str = "repeatpad",
        freeze_backbone: bool = False,
        dropout: float = 0.1,
        **kwargs,
    ):
        super().__init__(hidden_dim=hidden_dim, **kwargs)
        from chroma_keras.pretrained.clap_audio import ClapAudioModel
        from chroma_keras.pretrained.clap_features import ClapFrontEnd

        if int(sample_rate) != CLAP_SAMPLE_RATE:
            raise PresetError(
                f"preprocessing.audio.sample_rate: {sample_rate} Hz, but model.audio_encoder.type: clap needs "
                f"{CLAP_SAMPLE_RATE} Hz (the rate CLAP's mel filters and checkpoints assume; resampling inside the "
                f"model is not done). Set preprocessing.audio.sample_rate: {CLAP_SAMPLE_RATE}."
            )
        self.sample_rate = CLAP_SAMPLE_RATE
        self.pretrained_model = pretrained_model
        self.max_length_s, self.padding = float(max_length_s), padding
        self.freeze_backbone, self.dropout = bool(freeze_backbone), float(dropout)
        if backbone is None:
            backbone = ClapAudioModel(
                copy.deepcopy(dict(backbone_config or TINY_BACKBONE)), name="backbone", dtype=self.dtype_policy
            )
        elif not isinstance(backbone, ClapAudioModel):
            raise PresetError(
                f"model.audio_encoder.pretrained_model: {pretrained_model!r} holds a {type(backbone).__name__}, "
                "not a clap_audio model (convert one with `chroma-keras convert --model clap_audio`)."
            )
        self.backbone = backbone
        self.backbone_config = copy.deepcopy(backbone.config)
        truncation = "fusion" if self.backbone_config["enable_fusion"] else "rand_trunc"
        self.front_end = ClapFrontEnd(
            sample_rate=CLAP_SAMPLE_RATE,
            n_mels=self.backbone_config["num_mel_bins"],
            max_length_s=self.max_length_s,
            truncation=truncation,
            padding=padding,
            name="front_end",
        )
        if self.front_end.num_frames > backbone.max_frames:
            raise PresetError(
                f"model.audio_encoder.max_length_s={max_length_s}: gives {self.front_end.num_frames} mel frames, more "
                f"than the backbone accepts ({backbone.max_frames}: spec_size * spec_size // num_mel_bins)."
            )
        if self.freeze_backbone:
            self.backbone.trainable = False
        self.dropout_layer = keras.layers.Dropout(self.dropout, name="dropout")
        self.output_projection = keras.layers.Dense(self.hidden_dim, name="output_projection", dtype=self.dtype_policy)
        self.sequence_projection = keras.layers.Dense(self.hidden_dim, name="sequence_projection", dtype=self.dtype_policy)

    def build(self, inputs_shape):
        _audio_shape(inputs_shape, self.name)
        self.front_end.build((None, None))
        if not self.backbone.built:
            self.backbone.build()
        self.output_projection.build((None, self.backbone_config["projection_dim"]))
        self.sequence_projection.build((None, None, self.backbone_config["hidden_size"]))
        self.built = True

    def call(self, inputs, training=False):
        _audio_shape(_shapes(inputs), self.name)
        features, is_longer = self.front_end(inputs[keys.AUDIO], sample_mask=inputs.get(keys.AUDIO_MASK))
        backbone_training = training and not self.freeze_backbone
        outputs = self.backbone(
            {"input_features": ops.cast(features, self.compute_dtype), "is_longer": is_longer}, training=backbone_training
        )
        clap = outputs["audio_embeds"]
        clap = clap / ops.maximum(ops.norm(clap, axis=-1, keepdims=True), 1e-12)
        embedding = self.output_projection(self.dropout_layer(clap, training=training))
        tokens = outputs["last_hidden_state"]
        tokens = ops.reshape(tokens, (-1, tokens.shape[1] * tokens.shape[2], tokens.shape[3]))
        sequence = self.sequence_projection(tokens)
        sequence_mask = ops.ones(ops.shape(sequence)[:2], dtype=sequence.dtype)
        return {"embedding": embedding, "sequence": sequence, "sequence_mask": sequence_mask}

    def compute_output_shape(self, inputs_shape):
        batch = tuple(inputs_shape[keys.AUDIO])[0]
        height, width = self.backbone.resolutions[-1]
        return {
            "embedding": (batch, self.hidden_dim),
            "sequence": (batch, height * width, self.hidden_dim),
            "sequence_mask": (batch, height * width),
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            sample_rate=self.sample_rate,
            backbone_config=copy.deepcopy(self.backbone_config),
            pretrained_model=self.pretrained_model,
            max_length_s=self.max_length_s,
            padding=self.padding,
            freeze_backbone=self.freeze_backbone,
            dropout=self.dropout,
        )
        return config

    @classmethod
    def from_preset_config(cls, config: Mapping, modality: str = "audio"):
        """Build from a resolved preset.

        Reads ``model.audio_encoder``: ``hidden_dim``, ``pretrained_model`` (a
        directory written by ``chroma-keras convert --model clap_audio``, or a
        ``clap_audio`` preset name, which is randomly initialised; null: a random
        :data:`TINY_BACKBONE`, or ``backbone`` — a ``clap_audio`` config — when
        given), ``freeze_backbone``, ``max_length_s``, ``padding``, ``dropout``;
        and ``preprocessing.audio.sample_rate`` (must be 48 000).

        Raises:
            PresetError: wrong sample rate, an unknown / non-CLAP ``pretrained_model``.
        """
        from chroma_keras.pretrained import load_pretrained

        section = (config.get("model") or {}).get("audio_encoder") or {}
        audio = (config.get("preprocessing") or {}).get("audio") or {}
        sample_rate = audio.get("sample_rate", CLAP_SAMPLE_RATE)
        name = section.get("pretrained_model")
        backbone = None
        if name is not None:
            if int(sample_rate) != CLAP_SAMPLE_RATE:
                cls(sample_rate=sample_rate)  # raises the PresetError naming both keys
            try:
                backbone = load_pretrained(name)
            except PresetError as exc:
                raise PresetError(f"model.audio_encoder.pretrained_model: {exc}") from None
        return cls(
            hidden_dim=section.get("hidden_dim", 512),
            sample_rate=sample_rate,
            backbone_config=section.get("backbone"),
            backbone=backbone,
            pretrained_model=name,
            max_length_s=section.get("max_length_s", 10.0),
            padding=section.get("padding", "repeatpad"),
            freeze_backbone=section.get("freeze_backbone", False),
            dropout=section.get("dropout", 0.1),
            name="audio_encoder",
        )
