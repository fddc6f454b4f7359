"""Audio loading and fixed-length waveforms: pure numpy / soundfile / librosa, no Keras.

A waveform here is a float32 numpy array. Mono waveforms are 1-D ``[samples]``;
multichannel ones are channels-first ``[channels, samples]`` (librosa's layout),
so every function works along the last axis.

The pipeline a segment goes through before a model sees it is
:func:`prepare_waveform`: :func:`to_mono` -> :func:`resample` -> :func:`fix_length`,
which returns the waveform and a float32 mask (1 = a real sample, 0 = padding).
Its target geometry is an :class:`AudioSpec`, read from the ``preprocessing.audio``
section of a preset with :meth:`AudioSpec.from_config`.

Example:

>>> import numpy as np
>>> from chroma_keras.preprocessing.audio import AudioSpec, prepare_waveform
>>> spec = AudioSpec(sample_rate=16000, duration=2.0)
>>> stereo = np.zeros((2, 44100), np.float32)      # 1 s of stereo silence at 44.1 kHz
>>> wave, mask = prepare_waveform(stereo, 44100, spec, source="seg_0001")
>>> wave.shape, float(mask.sum())
((32000,), 16000.0)
"""

from __future__ import annotations

import math
import os
import pathlib
import warnings
from dataclasses import dataclass
from typing import Mapping, Union

import librosa
import numpy as np
import soundfile

from chroma_keras.errors import DataError, PresetError

SUPPORTED_SAMPLE_RATES = (16000, 22050, 24000, 32000, 44100, 48000)
_CONFIG_PATH = "preprocessing.audio"
# Keys of ``preprocessing.audio`` that AudioSpec does not read (AudioAugmenter reads them).
_OTHER_KEYS = ("augmentations",)

PathLike = Union[str, os.PathLike]


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------


def load_audio_file(path: PathLike, *, sample_rate: int | None = None, mono: bool = True) -> tuple[np.ndarray, int]:
    """Read an audio file into a float32 waveform.

    soundfile (libsndfile: WAV, FLAC, OGG, MP3, AIFF, ...) reads the file; formats it
    cannot read go to ``librosa.load`` (audioread), which needs a system decoder.

    Args:
        path: path to the audio file.
        sample_rate: resample to this rate (one of :data:`SUPPORTED_SAMPLE_RATES`);
            ``None`` keeps the file's rate.
        mono: average the channels into a 1-D waveform. With ``False`` the result
            is channels-first ``[channels, samples]`` (also for a mono file).

    Returns:
        ``(waveform, sample_rate)``: a float32 array in ``[-1, 1]`` for PCM files,
        and the rate it is sampled at.

    Raises:
        DataError: naming the path when it is missing, unreadable or empty, or
            when ``sample_rate`` is not supported.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise DataError(f"Audio file not found: {str(path)!r}. Expected an existing audio file.")
    try:
        data, file_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        waveform = data.T  # soundfile is channels-last
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as sf_exc:
        try:
            with warnings.catch_warnings():
                # librosa warns that soundfile failed (we know) and that audioread is deprecated.
                warnings.simplefilter("ignore", (UserWarning, FutureWarning))
                waveform, file_rate = librosa.load(str(path), sr=None, mono=False, dtype=np.float32)
        except Exception as lr_exc:  # audioread raises many unrelated types
            raise DataError(
                f"Cannot read audio file {str(path)!r}: soundfile said {sf_exc}; "
                f"librosa/audioread said {type(lr_exc).__name__}: {lr_exc}. "
                "Expected a WAV/FLAC/OGG/MP3/AIFF file."
            ) from None
        waveform = np.atleast_2d(waveform)
    if waveform.shape[-1] == 0:
        raise DataError(f"Audio file {str(path)!r} holds no samples. Expected a non-empty recording.")
    file_rate = int(file_rate)
    if mono:
        waveform = to_mono(waveform, channel_axis=0)
    if sample_rate is not None:
        waveform = resample(waveform, file_rate, sample_rate)
        file_rate = int(sample_rate)
    return np.ascontiguousarray(waveform, dtype=np.float32), file_rate


# ---------------------------------------------------------------------------
# Channels, rate, length
# ---------------------------------------------------------------------------


def to_mono(waveform, *, channel_axis: int | None = None) -> np.ndarray:
    """Average the channels of a waveform.

    Args:
        waveform: a 1-D ``[samples]`` array (returned as float32 unchanged) or a 2-D
            array, channels-first ``[channels, samples]`` or channels-last
            ``[samples, channels]``.
        channel_axis: which axis of a 2-D array holds the channels (0 or 1, or -1).
            ``None`` takes the shorter axis, since a recording has far more samples
            than channels; a square array is ambiguous and needs it.

    Returns:
        A float32 ``[samples]`` array, the mean over channels.

    Raises:
        DataError: for arrays of rank other than 1 or 2, a square array with no
            ``channel_axis``, or a bad ``channel_axis``.
    """
    waveform = np.asarray(waveform)
    if waveform.ndim == 1:
        return waveform.astype(np.float32, copy=False)
    if waveform.ndim != 2:
        raise DataError(
            "to_mono expects a [samples] or 2-D [channels, samples] / [samples, channels] waveform. "
            f"Received: shape={waveform.shape}"
        )
    if channel_axis is None:
        rows, cols = waveform.shape
        if rows == cols:
            raise DataError(
                f"to_mono cannot tell channels from samples in a square waveform of shape {waveform.shape}. "
                "Pass channel_axis=0 (channels-first) or channel_axis=1 (channels-last)."
            )
        channel_axis = 0 if rows < cols else 1
    if channel_axis not in (0, 1, -1, -2):
        raise DataError(f"channel_axis must be 0 or 1 for a 2-D waveform. Received: channel_axis={channel_axis!r}")
    return waveform.mean(axis=channel_axis, dtype=np.float64).astype(np.float32)


def check_sample_rate(sample_rate, *, name: str = "sample_rate") -> int:
    """Validate a target sample rate.

    Args:
        sample_rate: the rate in Hz.
        name: how the value is called in the error message (e.g. a preset key path).

    Returns:
        The rate as an ``int``.

    Raises:
        DataError: when it is not one of :data:`SUPPORTED_SAMPLE_RATES`.
    """
    ok = isinstance(sample_rate, (int, np.integer, float, np.floating)) and not isinstance(sample_rate, bool)
    if not ok or float(sample_rate) not in SUPPORTED_SAMPLE_RATES:
        raise DataError(
            f"Unsupported {name}: {sample_rate!r}. Expected one of {list(SUPPORTED_SAMPLE_RATES)} Hz."
        )
    return int(sample_rate)


def resample(waveform, orig_sr, target_sr) -> np.ndarray:
    """Resample along the last axis with soxr (librosa's ``soxr_hq``).

    Args:
        waveform: float array ``[samples]`` or ``[channels, samples]``.
        orig_sr: its sample rate in Hz (any positive number).
        target_sr: the rate to resample to, one of :data:`SUPPORTED_SAMPLE_RATES`.

    Returns:
        A float32 array with ``ceil(samples * target_sr / orig_sr)`` samples; the
        input itself (as float32) when the rates are equal.

    Raises:
        DataError: naming ``target_sr`` when it is not supported, or ``orig_sr``
            when it is not a positive number.
    """
    target_sr = check_sample_rate(target_sr, name="target sample rate")
    if isinstance(orig_sr, bool) or not isinstance(orig_sr, (int, float, np.integer, np.floating)) or not (
        math.isfinite(orig_sr) and orig_sr > 0
    ):
        raise DataError(f"orig_sr must be a positive sample rate in Hz. Received: orig_sr={orig_sr!r}")
    waveform = np.asarray(waveform, dtype=np.float32)
    if float(orig_sr) == float(target_sr):
        return waveform
    out = librosa.resample(waveform, orig_sr=float(orig_sr), target_sr=float(target_sr), res_type="soxr_hq", axis=-1)
    return out.astype(np.float32, copy=False)


def fix_length(waveform, num_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Zero-pad or truncate (at the end) to exactly ``num_samples`` samples.

    Args:
        waveform: array ``[samples]`` or ``[channels, samples]``.
        num_samples: the length wanted (a positive integer).

    Returns:
        ``(waveform, mask)``: the float32 waveform with last axis ``num_samples`` and
        a float32 ``[num_samples]`` mask holding 1 for samples of the input and 0
        for padding.

    Raises:
        DataError: when ``num_samples`` is not a positive integer.
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
        raise DataError(f"num_samples must be a positive integer. Received: num_samples={num_samples!r}")
    waveform = np.asarray(waveform, dtype=np.float32)
    length = waveform.shape[-1]
    real = min(length, int(num_samples))
    out = np.zeros(waveform.shape[:-1] + (int(num_samples),), np.float32)
    out[..., :real] = waveform[..., :real]
    mask = np.zeros(int(num_samples), np.float32)
    mask[:real] = 1.0
    return out, mask


# ---------------------------------------------------------------------------
# Spec and the whole pipeline
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AudioSpec:
    """Target geometry of model-ready audio: mono, one rate, one length.

    Args:
        sample_rate: rate in Hz, one of :data:`SUPPORTED_SAMPLE_RATES`.
        duration: segment length in seconds (> 0); shorter audio is zero-padded,
            longer audio truncated.

    The defaults (44.1 kHz, 30 s) match the schema defaults of ``preprocessing.audio``.
    """

    sample_rate: int = 44100
    duration: float = 30.0

    def __post_init__(self):
        rate = check_sample_rate(self.sample_rate)
        d = self.duration
        if isinstance(d, bool) or not isinstance(d, (int, float, np.integer, np.floating)) or not (
            math.isfinite(d) and d > 0
        ):
            raise DataError(f"duration must be a positive number of seconds. Received: duration={d!r}")
        object.__setattr__(self, "sample_rate", rate)
        object.__setattr__(self, "duration", float(d))

    @property
    def num_samples(self) -> int:
        """Samples per segment: ``round(duration * sample_rate)``."""
        return max(1, int(round(self.duration * self.sample_rate)))

    @classmethod
    def from_config(cls, config: Mapping) -> "AudioSpec":
        """Read ``config["preprocessing"]["audio"]`` of a resolved preset.

        Missing sections or keys take the defaults; ``augmentations`` is left to
        :class:`~chroma_keras.preprocessing.audio_augment.AudioAugmenter`.

        Args:
            config: the whole preset as a mapping.

        Returns:
            The spec.

        Raises:
            PresetError: naming the dotted key path of an unknown key or a bad value.
        """
        section = config
        for depth, key in enumerate(("preprocessing", "audio")):
            if section is None:
                return cls()
            if not isinstance(section, Mapping):
                where = "preprocessing" if depth else "<preset>"
                raise PresetError(f"{where} must be a mapping. Received: {type(section).__name__}")
            section = section.get(key)
        if section is None:
            return cls()
        if not isinstance(section, Mapping):
            raise PresetError(f"{_CONFIG_PATH} must be a mapping. Received: {type(section).__name__}")
        names = ("sample_rate", "duration")
        unknown = [k for k in section if k not in names + _OTHER_KEYS]
        if unknown:
            raise PresetError(
                f"Unknown key {_CONFIG_PATH}.{unknown[0]}. Expected keys among {list(names + _OTHER_KEYS)}."
            )
        kwargs = {name: section[name] for name in names if name in section}
        try:
            return cls(**kwargs)
        except DataError as exc:
            raise PresetError(f"{_CONFIG_PATH}: {exc}") from None


def prepare_waveform(waveform, sample_rate, spec: AudioSpec, *, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Make a raw waveform model-ready: mono -> resample -> fixed length.

    Args:
        waveform: float array ``[samples]``, ``[channels, samples]`` or
            ``[samples, channels]`` (see :func:`to_mono`).
        sample_rate: its rate in Hz.
        spec: the target :class:`AudioSpec`.
        source: what the waveform is (a segment_id or a file name), for error messages.

    Returns:
        ``(waveform, mask)``: float32 ``[spec.num_samples]`` each; the mask is 1
        for real samples, 0 for padding.

    Raises:
        DataError: naming ``source`` when the waveform is empty, not numeric, has
            a bad shape, holds NaN/Inf, or has a bad sample rate.
    """
    try:
        array = np.asarray(waveform, dtype=np.float32)
    except (TypeError, ValueError):
        raise DataError(
            f"{source}: audio must be a numeric array. Received: {type(waveform).__name__}"
        ) from None
    if array.size == 0:
        raise DataError(f"{source}: audio waveform is empty (shape {array.shape}). Expected at least one sample.")
    if not np.all(np.isfinite(array)):
        bad = int(np.count_nonzero(~np.isfinite(array)))
        raise DataError(f"{source}: audio waveform holds {bad} NaN/Inf sample(s). Expected finite samples.")
    try:
        mono = to_mono(array)
        mono = resample(mono, sample_rate, spec.sample_rate)
    except DataError as exc:
        raise DataError(f"{source}: {exc}") from None
    return fix_length(mono, spec.num_samples)
