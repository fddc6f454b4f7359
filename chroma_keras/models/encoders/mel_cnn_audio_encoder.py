"""MelCNNAudioEncoder: log-mel spectrogram + a small 2-D CNN, masked mean pooled over time (the audio baseline)."""

from __future__ import annotations

import math
from typing import Mapping

import keras
from keras import ops

from chroma_keras.data import keys
from chroma_keras.errors import ModelInputError
from chroma_keras.layers.log_mel_spectrogram import LogMelSpectrogram
from chroma_keras.models.encoders.base import AudioEncoder, register_encoder


@register_encoder("audio", "mel_cnn")
@keras.saving.register_keras_serializable(package="chroma_keras")
class MelCNNAudioEncoder(AudioEncoder):
    """Waveform -> log-mel -> conv blocks -> per-frame features -> masked mean -> Dense.

    Stages (``m`` is the frame mask, 1 on frames whose centre sample is real):

    1. ``x = audio * audio_mask`` so whatever lies beyond the mask is silence.
    2. ``S = LogMelSpectrogram(x)`` in dB with ``ref=1`` and no floor, then
       ``S' = (max(S, P - top_db) - P + top_db) / top_db`` with ``P`` the
       maximum over *real* frames only: librosa's ``power_to_db(ref=np.max,
       top_db=top_db)`` of the real audio, rescaled to ``[0, 1]`` (0 = quiet).
       Padded frames are set to 0.
    3. Per block: ``Conv2D(3x3, same)`` -> ``LayerNorm`` over channels ->
       ReLU -> zero padded frames -> ``MaxPool(2x2, same)`` over
       ``[frames, mels]``; the frame mask is max-pooled alongside.
    4. Per frame: flatten ``[mels', channels]`` -> ``Dense(hidden_dim, relu)``:
       the ``"sequence"`` (padded frames zeroed).
    5. ``embedding = Dense(hidden_dim)(dropout(masked_mean(sequence)))``.

    Why the output does not depend on how much padding follows the audio:
    every real frame's spectrum only sees zeros beyond the mask (step 1), the
    dB reference comes from real frames only (step 2), each convolution sees
    zeros at padded frames exactly as at the tensor edge (step 3), LayerNorm
    is per position, and pooling is a masked mean. So a batch padded to 30 s
    gives the same embeddings as each clip alone. No BatchNorm for the same
    reason (its batch statistics would include padding).

    Args:
        hidden_dim: width of ``embedding`` and ``sequence``.
        sample_rate: sample rate of ``keys.AUDIO`` in Hz.
        n_fft: FFT size of the spectrogram.
        hop_length: samples between spectrogram frames.
        n_mels: mel bands.
        top_db: dynamic range kept below each clip's loudest real frame, in dB.
        filters: output channels of each conv block; each block halves frames and mels.
        dropout: dropout before the output projection.
        **kwargs: ``keras.layers.Layer`` arguments (``name``, ``dtype``).

    Call arguments:
        inputs: a batch dict with ``keys.AUDIO`` float ``[batch, samples]`` and
            optionally ``keys.AUDIO_MASK`` ``[batch, samples]`` (default: all real).
        training: whether dropout is active.

    Returns:
        ``{"embedding": [batch, hidden_dim], "sequence": [batch, frames', hidden_dim],
        "sequence_mask": [batch, frames']}`` with ``frames' = ceil(frames / 2**len(filters))``.

    Example:

    >>> encoder = MelCNNAudioEncoder(hidden_dim=16, sample_rate=16000, n_fft=512, hop_length=256,
    ...                              n_mels=32, filters=(8, 16))
    >>> out = encoder({"audio": np.zeros((2, 16000), "float32")})
    >>> tuple(out["embedding"].shape), tuple(out["sequence"].shape)
    ((2, 16), (2, 16, 16))
    """

    input_keys = (keys.AUDIO, keys.AUDIO_MASK)

    def __init__(
        self,
        hidden_dim: int = 512,
        sample_rate: int = 44100,
        n_fft: int = 2048,
        hop_length: int = 512,
        n_mels: int = 64,
        top_db: float = 80.0,
        filters=(32, 64, 128),
        dropout: float = 0.1,
        **kwargs,
    ):
        super().__init__(hidden_dim=hidden_dim, **kwargs)
        self.sample_rate = int(sample_rate)
        self.n_fft = int(n_fft)
        self.hop_length = int(hop_length)
        self.n_mels = int(n_mels)
        if not (isinstance(top_db, (int, float)) and top_db > 0):
            raise ModelInputError(f"MelCNNAudioEncoder: top_db must be a positive number. Received: top_db={top_db!r}")
        self.top_db = float(top_db)
        self.filters = tuple(int(f) for f in filters)
        if not self.filters or min(self.filters) < 1:
            raise ModelInputError(f"MelCNNAudioEncoder: filters must be a non-empty list of positive ints. Received: filters={filters!r}")
        self.dropout = float(dropout)

        # === Layers ===
        self.spectrogram = LogMelSpectrogram(
            sample_rate=self.sample_rate,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            n_mels=self.n_mels,
            ref=1.0,
            top_db=None,  # the floor is applied over real frames only, in call()
            name="spectrogram",
        )
        self.convs = [
            keras.layers.Conv2D(f, 3, padding="same", name=f"conv_{i}", dtype=self.dtype_policy)
            for i, f in enumerate(self.filters)
        ]
        self.norms = [
            keras.layers.LayerNormalization(axis=-1, name=f"norm_{i}", dtype=self.dtype_policy)
            for i in range(len(self.filters))
        ]
        self.frame_projection = keras.layers.Dense(
            self.hidden_dim, activation="relu", name="frame_projection", dtype=self.dtype_policy
        )
        self.dropout_layer = keras.layers.Dropout(self.dropout, name="dropout")
        self.output_projection = keras.layers.Dense(self.hidden_dim, name="output_projection", dtype=self.dtype_policy)

    @property
    def pooled_mels(self) -> int:
        """Mel bins left after the conv blocks' pooling (``ceil(n_mels / 2**len(filters))``)."""
        mels = self.n_mels
        for _ in self.filters:
            mels = math.ceil(mels / 2)
        return mels

    def build(self, inputs_shape):
        shape = _audio_shape(inputs_shape, self.name)
        self.spectrogram.build(shape)
        channels = 1
        for conv, norm, f in zip(self.convs, self.norms, self.filters):
            conv.build((None, None, None, channels))
            norm.build((None, None, None, f))
            channels = f
        self.frame_projection.build((None, None, self.pooled_mels * channels))
        self.output_projection.build((None, self.hidden_dim))
        self.built = True

    def features(self, inputs):
        """The normalised log-mel the CNN sees and its frame mask (step 2 of the class docstring).

        Args:
            inputs: a batch dict with ``keys.AUDIO`` (and optionally ``keys.AUDIO_MASK``).

        Returns:
            ``(features [batch, frames, n_mels] in [0, 1], frame_mask [batch, frames])``.
        """
        _audio_shape(_shapes(inputs), self.name)
        audio = ops.cast(inputs[keys.AUDIO], "float32")
        mask = inputs.get(keys.AUDIO_MASK)
        mask = ops.ones_like(audio) if mask is None else ops.cast(mask, "float32")
        db = ops.cast(self.spectrogram(audio * mask), "float32")  # [b, frames, mels]
        frame_mask = self.spectrogram.frame_mask(mask)  # [b, frames]
        # dB values are >= 10 log10(amin), so filling padded frames with that floor keeps
        # the max over real frames (and gives a finite peak when no frame is real).
        floor = 10.0 * math.log10(self.spectrogram.amin)
        real = frame_mask[:, :, None] > 0
        peak = ops.max(ops.where(real, db, floor), axis=(1, 2), keepdims=True)
        scaled = (ops.maximum(db, peak - self.top_db) - peak + self.top_db) / self.top_db
        scaled = scaled * frame_mask[:, :, None]
        return ops.cast(scaled, self.compute_dtype), ops.cast(frame_mask, self.compute_dtype)

    def call(self, inputs, training=False):
        x, frame_mask = self.features(inputs)
        x = ops.expand_dims(x, -1)  # [b, frames, mels, 1]
        for conv, norm in zip(self.convs, self.norms):
            x = ops.relu(norm(conv(x))) * frame_mask[:, :, None, None]
            x = ops.max_pool(x, pool_size=2, strides=2, padding="same")
            frame_mask = ops.squeeze(ops.max_pool(frame_mask[:, :, None], 2, 2, padding="same"), -1)
        frames = ops.shape(x)[1]
        x = ops.reshape(x, (-1, frames, self.pooled_mels * self.filters[-1]))
        sequence = self.frame_projection(x) * frame_mask[:, :, None]
        count = ops.maximum(ops.sum(frame_mask, axis=1, keepdims=True), 1.0)
        pooled = ops.sum(sequence, axis=1) / count
        embedding = self.output_projection(self.dropout_layer(pooled, training=training))
        return {"embedding": embedding, "sequence": sequence, "sequence_mask": frame_mask}

    def compute_output_shape(self, inputs_shape):
        batch, samples = tuple(inputs_shape[keys.AUDIO])
        frames = self.spectrogram.compute_num_frames(samples)
        if frames is not None:
            for _ in self.filters:
                frames = math.ceil(frames / 2)
        return {
            "embedding": (batch, self.hidden_dim),
            "sequence": (batch, frames, self.hidden_dim),
            "sequence_mask": (batch, frames),
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            sample_rate=self.sample_rate,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            n_mels=self.n_mels,
            top_db=self.top_db,
            filters=list(self.filters),
            dropout=self.dropout,
        )
        return config

    @classmethod
    def from_preset_config(cls, config: Mapping, modality: str = "audio"):
        """Build from a resolved preset.

        Reads ``model.audio_encoder`` (``hidden_dim``, ``n_fft``, ``hop_length``,
        ``n_mels``, ``top_db``, ``filters``, ``dropout``) and
        ``preprocessing.audio.sample_rate``.

        Args:
            config: a resolved preset config.

        Returns:
            A ``MelCNNAudioEncoder``.
        """
        section = (config.get("model") or {}).get("audio_encoder") or {}
        audio = (config.get("preprocessing") or {}).get("audio") or {}
        return cls(
            hidden_dim=section.get("hidden_dim", 512),
            sample_rate=audio.get("sample_rate", 44100),
            n_fft=section.get("n_fft", 2048),
            hop_length=section.get("hop_length", 512),
            n_mels=section.get("n_mels", 64),
            top_db=section.get("top_db", 80.0),
            filters=section.get("filters", (32, 64, 128)),
            dropout=section.get("dropout", 0.1),
            name="audio_encoder",
        )


def _shapes(inputs):
    if not isinstance(inputs, Mapping):
        return inputs
    return {k: tuple(v.shape) for k, v in inputs.items() if hasattr(v, "shape")}


def _audio_shape(inputs_shape, name):
    """The shape of ``keys.AUDIO`` checked to be ``[batch, samples]`` (and the mask to match)."""
    if not isinstance(inputs_shape, Mapping):
        raise ModelInputError(
            f"{name}: expects a batch dict holding {keys.AUDIO!r} [batch, samples]. Received: {type(inputs_shape).__name__}"
        )
    if keys.AUDIO not in inputs_shape:
        raise ModelInputError(
            f"{name}: the batch has no {keys.AUDIO!r}; expected float [batch, samples]. Received keys: {sorted(inputs_shape)}"
        )
    shape = tuple(inputs_shape[keys.AUDIO])
    if len(shape) != 2:
        raise ModelInputError(f"{name}: {keys.AUDIO!r} must be float [batch, samples] (mono). Received: shape={shape}")
    mask_shape = inputs_shape.get(keys.AUDIO_MASK)
    if mask_shape is not None and (len(tuple(mask_shape)) != 2 or tuple(mask_shape)[-1] != shape[-1]):
        raise ModelInputError(
            f"{name}: {keys.AUDIO_MASK!r} must have the shape of {keys.AUDIO!r} {shape}. "
            f"Received: shape={tuple(mask_shape)}"
        )
    return shape
