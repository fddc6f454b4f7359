"""Waveforms to EnCodec codes and back, with resampling and input checks (numpy in, numpy out)."""

from __future__ import annotations

import contextlib
import math

import numpy as np

from chroma_keras.errors import CheckpointError, ModelInputError


class AudioTokenizer:
    """Turns mono audio at any sample rate into EnCodec codes ``[n_q, frames]`` and codes back into audio.

    Audio is resampled to the model's rate (24 kHz) with soxr (librosa's
    ``soxr_hq``, as :func:`chroma_keras.preprocessing.audio.resample`), encoded at
    a target bandwidth (1.5 / 3 / 6 / 12 / 24 kbps = 2 / 4 / 8 / 16 / 32
    codebooks of 1024 entries at 75 frames per second for
    facebook/encodec_24khz), and decoded to float32 audio at the model's rate.

    Args:
        model: a :class:`chroma_keras.pretrained.encodec.Encodec` with one audio channel.

    Example:

    >>> tok = AudioTokenizer.from_checkpoint("converted/encodec_24khz")  # written by `chroma-keras convert`
    >>> codes = tok.encode(np.zeros(44100, "float32"), sample_rate=44100, bandwidth=6.0)
    >>> codes.shape                      # 8 codebooks x 75 frames
    (8, 75)
    >>> audio = tok.decode(codes)        # float32 [24000] at tok.sample_rate
    """

    def __init__(self, model):
        from chroma_keras.pretrained.encodec import Encodec

        if not isinstance(model, Encodec):
            raise ModelInputError(f"model: expected a chroma_keras Encodec model, got {type(model).__name__}.")
        if model.audio_channels != 1:
            raise ModelInputError(
                f"model: AudioTokenizer handles mono EnCodec models; this one has audio_channels={model.audio_channels}."
            )
        self.model = model

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_preset(cls, name: str = "encodec_24khz", weights=None) -> "AudioTokenizer":
        """A tokenizer on a pretrained EnCodec preset.

        Args:
            name: a preset of the ``encodec`` architecture (``"encodec_24khz"``)
                or a directory written by ``chroma-keras convert``.
            weights: a converted directory, a ``.weights.h5`` file or a published
                checkpoint (Hugging Face directory / safetensors, or the original
                ``encodec_24khz-*.th``). Without it the model is randomly
                initialised (nothing is downloaded), which is only good for tests.

        Example:

        >>> tok = AudioTokenizer.from_preset("encodec_24khz", weights="encodec_24khz-d7cc33bc.th")
        """
        from chroma_keras.pretrained import load_pretrained

        return cls(_require_encodec(load_pretrained(name, weights=weights), name))

    @classmethod
    def from_checkpoint(cls, path, config=None) -> "AudioTokenizer":
        """A tokenizer from a converted directory or a published EnCodec checkpoint (converted in memory).

        Args:
            path: a directory written by ``chroma-keras convert``, a Hugging Face
                EnCodec directory, or a checkpoint file.
            config: for a checkpoint without a ``config.json`` next to it: an
                Encodec config dict or a reference ``config.json`` path (default:
                the ``encodec_24khz`` preset's).

        Example:

        >>> tok = AudioTokenizer.from_checkpoint("hf/encodec_24khz")   # holds config.json + model.safetensors
        """
        from chroma_keras.pretrained import convert_checkpoint, is_converted_directory, load_converted

        if is_converted_directory(path):
            return cls(_require_encodec(load_converted(path), path))
        model, _, _ = convert_checkpoint("encodec", path, config=config)
        return cls(model)

    # ------------------------------------------------------------------ properties

    @property
    def sample_rate(self) -> int:
        """The model's audio rate in Hz (24000): what :meth:`decode` returns."""
        return self.model.sampling_rate

    @property
    def frame_rate(self) -> int:
        """Code frames per second (75)."""
        return self.model.frame_rate

    @property
    def codebook_size(self) -> int:
        """Entries per codebook (1024): codes lie in ``[0, codebook_size)``."""
        return self.model.codebook_size

    @property
    def bandwidths(self) -> list[float]:
        """The bandwidths (kbps) :meth:`encode` accepts."""
        return list(self.model.target_bandwidths)

    def num_codebooks(self, bandwidth: float) -> int:
        """Codebooks per frame at ``bandwidth`` kbps (8 at 6 kbps).

        Raises:
            ModelInputError: ``bandwidth`` is not one of :attr:`bandwidths`.
        """
        return self.model.num_codebooks(bandwidth)

    # ------------------------------------------------------------------ encode / decode

    def encode(self, waveform, sample_rate, bandwidth: float = 6.0) -> np.ndarray:
        """EnCodec codes of mono audio.

        Args:
            waveform: float ``[samples]``, or ``[batch, samples]`` (equal lengths).
            sample_rate: its rate in Hz (any positive rate; resampled to :attr:`sample_rate`).
            bandwidth: one of :attr:`bandwidths` (kbps).

        Returns:
            int32 ``[n_q, frames]`` (``[batch, n_q, frames]`` for a batch), with
            ``n_q = num_codebooks(bandwidth)`` and ``frames = ceil(samples_at_24k / 320)``.

        Raises:
            ModelInputError: a wrong ndim, an empty or non-finite waveform, a bad
                sample rate or an unknown bandwidth.
        """
        n_q = self.num_codebooks(bandwidth)
        wave = _as_waveform(waveform)
        rate = _check_rate(sample_rate)
        single = wave.ndim == 1
        batch = wave[None] if single else wave
        if rate != self.sample_rate:
            import librosa

            # One row at a time, so a batch gives exactly what its rows would alone.
            batch = np.stack([
                librosa.resample(row, orig_sr=rate, target_sr=float(self.sample_rate), res_type="soxr_hq")
                for row in batch
            ]).astype(np.float32)
        from keras import ops

        with _inference():
            codes = ops.convert_to_numpy(self.model.encode(batch, bandwidth)).astype(np.int32)
        return codes[0] if single else codes

    def decode(self, codes, length: int | None = None) -> np.ndarray:
        """Audio of EnCodec codes, float32 at :attr:`sample_rate`.

        Args:
            codes: integer ``[n_q, frames]`` or ``[batch, n_q, frames]`` with
                ``1 <= n_q <=`` the model's codebooks and values in ``[0, codebook_size)``.
            length: keep only the first ``length`` samples (the decoder returns
                ``frames * 320``, up to 319 more than the encoded audio had).

        Returns:
            float32 ``[samples]`` (``[batch, samples]`` for a batch).

        Raises:
            ModelInputError: codes of the wrong shape, type or range.
        """
        array = np.asarray(codes)
        if array.ndim not in (2, 3):
            raise ModelInputError(
                f"codes of shape {array.shape}: expected [n_q, frames] or [batch, n_q, frames] integers."
            )
        if not np.issubdtype(array.dtype, np.integer):
            raise ModelInputError(f"codes of dtype {array.dtype}: expected integer codes in [0, {self.codebook_size}).")
        single = array.ndim == 2
        batch = array[None] if single else array
        most = self.model.num_quantizers
        if not 1 <= batch.shape[1] <= most or batch.shape[2] < 1:
            raise ModelInputError(
                f"codes of shape {array.shape}: expected 1 to {most} codebooks and at least one frame "
                "([n_q, frames] or [batch, n_q, frames])."
            )
        if batch.min() < 0 or batch.max() >= self.codebook_size:
            raise ModelInputError(
                f"codes range over [{batch.min()}, {batch.max()}]: expected values in [0, {self.codebook_size})."
            )
        from keras import ops

        with _inference():
            audio = ops.convert_to_numpy(self.model.decode(batch.astype(np.int32)))[:, 0].astype(np.float32)
        if length is not None:
            audio = audio[:, : int(length)]
        return audio[0] if single else audio


def _inference():
    """PyTorch records every eager op for backprop unless told not to; tokenizing needs no graph."""
    import keras

    if keras.config.backend() == "torch":
        import torch

        return torch.no_grad()
    return contextlib.nullcontext()


def _require_encodec(model, source):
    from chroma_keras.pretrained.encodec import Encodec

    if not isinstance(model, Encodec):
        raise CheckpointError(f"{source}: expected an EnCodec model, got a {type(model).__name__}.")
    return model


def _as_waveform(waveform) -> np.ndarray:
    try:
        wave = np.asarray(waveform, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ModelInputError(f"waveform: expected a float array [samples] or [batch, samples] ({exc}).") from exc
    if wave.ndim not in (1, 2):
        raise ModelInputError(
            f"waveform of shape {wave.shape}: expected mono audio [samples] or a batch [batch, samples]."
        )
    if wave.shape[-1] == 0 or wave.size == 0:
        raise ModelInputError(f"waveform of shape {wave.shape}: expected at least one sample.")
    bad = ~np.isfinite(wave)
    if bad.any():
        first = np.argwhere(bad)[0].tolist()
        raise ModelInputError(
            f"waveform: {int(bad.sum())} non-finite sample(s) (NaN/inf), first at index {first}; expected finite audio."
        )
    return wave


def _check_rate(sample_rate) -> float:
    if isinstance(sample_rate, (bool, np.bool_)) or not isinstance(sample_rate, (int, float, np.integer, np.floating)):
        raise ModelInputError(f"sample_rate={sample_rate!r}: expected a positive number of Hz (e.g. 44100).")
    if not (math.isfinite(sample_rate) and sample_rate > 0):
        raise ModelInputError(f"sample_rate={sample_rate!r}: expected a positive number of Hz (e.g. 44100).")
    return float(sample_rate)
