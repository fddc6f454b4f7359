"""Audio as the data stores it: raw float32 PCM bytes, or an audio file beside the data.

The media parquet's ``audio_waveform`` column holds raw little-endian float32
mono samples (no WAV header) and ``audio_sample_rate`` their rate (DESIGN §3).
These helpers decode and validate such bytes, and read fallback files through
soundfile. Every failure raises :class:`AudioDataError` (a ``DataError``) that
names the segment and carries a short machine-readable ``reason`` code, so a
reader can mask the audio modality and count why instead of crashing:

==========================  ================================================
reason                      meaning
==========================  ================================================
``empty``                   zero bytes / zero samples
``length_not_multiple_of_4``  byte length is not a whole number of float32s
``non_finite``              a sample is NaN or +-Inf
``unexpected_sample_rate``  the rate is missing or not in the allowed set
``file_missing``            a fallback audio file does not exist
``unreadable``              soundfile cannot decode a fallback file
==========================  ================================================

Example:

>>> import numpy as np
>>> decode_pcm_float32(np.float32([0.5, -0.25]).tobytes(), source="seg_1", sample_rate=44100)
array([ 0.5 , -0.25], dtype=float32)
"""

from __future__ import annotations

import pathlib
from typing import Iterable

import numpy as np

from chroma_keras.errors import DataError

DEFAULT_SAMPLE_RATES = frozenset({16000, 22050, 24000, 32000, 44100, 48000})
BYTES_PER_SAMPLE = 4

AUDIO_REASONS = (
    "empty",
    "length_not_multiple_of_4",
    "non_finite",
    "unexpected_sample_rate",
    "file_missing",
    "unreadable",
)


class AudioDataError(DataError):
    """Audio bytes or an audio file failed validation.

    Attributes:
        reason: one of :data:`AUDIO_REASONS`.
        source: the segment_id or file the audio belongs to.
    """

    def __init__(self, message: str, *, reason: str, source: str):
        super().__init__(message)
        self.reason = reason
        self.source = source


def validate_sample_rate(sample_rate, *, source: str, allowed: Iterable[int] | None = None) -> int:
    """Check that ``sample_rate`` is one of the allowed rates.

    Args:
        sample_rate: the rate as stored (int-like, or None when missing).
        source: the segment_id or file, named in the error.
        allowed: accepted rates; defaults to :data:`DEFAULT_SAMPLE_RATES`.

    Returns:
        The rate as a Python int.

    Raises:
        AudioDataError: reason ``unexpected_sample_rate``.
    """
    allowed_set = DEFAULT_SAMPLE_RATES if allowed is None else frozenset(int(r) for r in allowed)
    try:
        rate = int(sample_rate)
        ok = rate == sample_rate and rate in allowed_set
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise AudioDataError(
            f"{source}: unexpected audio sample rate {sample_rate!r}; expected one of {sorted(allowed_set)}.",
            reason="unexpected_sample_rate",
            source=source,
        )
    return rate


def validate_waveform(waveform: np.ndarray, *, source: str) -> np.ndarray:
    """Check that a decoded waveform is non-empty and finite.

    Args:
        waveform: samples (any shape).
        source: the segment_id or file, named in the error.

    Returns:
        ``waveform`` unchanged.

    Raises:
        AudioDataError: reason ``empty`` or ``non_finite``.
    """
    if waveform.size == 0:
        raise AudioDataError(f"{source}: audio is empty (0 samples).", reason="empty", source=source)
    finite = np.isfinite(waveform)
    if not finite.all():
        bad = int(waveform.size - np.count_nonzero(finite))
        first = int(np.flatnonzero(~finite.reshape(-1))[0])
        raise AudioDataError(
            f"{source}: audio has {bad} NaN/Inf sample(s) (first at sample {first}); expected finite float32 PCM.",
            reason="non_finite",
            source=source,
        )
    return waveform


def decode_pcm_float32(
    data,
    *,
    source: str,
    sample_rate=None,
    allowed_sample_rates: Iterable[int] | None = None,
    validate: bool = True,
) -> np.ndarray:
    """Decode raw little-endian float32 mono PCM bytes into a float32 array.

    Args:
        data: the bytes (``bytes``, ``memoryview``, ``pyarrow.Buffer`` or anything
            exposing the buffer protocol). They are copied, so the result owns its memory.
        source: the segment_id, named in errors.
        sample_rate: when given, also checked against ``allowed_sample_rates``.
        allowed_sample_rates: accepted rates (default :data:`DEFAULT_SAMPLE_RATES`).
        validate: reject empty audio and NaN/Inf samples (:func:`validate_waveform`).
            False returns whatever the bytes hold, for callers that judge that themselves.

    Returns:
        A 1-D float32 array of ``len(data) / 4`` samples (finite and non-empty when ``validate``).

    Raises:
        AudioDataError: reason ``empty`` (no bytes; with ``validate``, 0 bytes too),
            ``length_not_multiple_of_4``, ``non_finite`` (with ``validate``) or
            ``unexpected_sample_rate``.
    """
    if sample_rate is not None:
        validate_sample_rate(sample_rate, source=source, allowed=allowed_sample_rates)
    if data is None:
        raise AudioDataError(f"{source}: audio is empty (no bytes).", reason="empty", source=source)
    view = memoryview(data).cast("B")
    if validate and view.nbytes == 0:
        raise AudioDataError(f"{source}: audio is empty (0 bytes).", reason="empty", source=source)
    if view.nbytes % BYTES_PER_SAMPLE:
        raise AudioDataError(
            f"{source}: audio byte length {view.nbytes} is not a multiple of {BYTES_PER_SAMPLE}; "
            "expected raw float32 PCM (truncated or not float32 data?).",
            reason="length_not_multiple_of_4",
            source=source,
        )
    # astype copies (and byte-swaps on a big-endian host), so the result does not pin the buffer.
    waveform = np.frombuffer(view, dtype="<f4").astype(np.float32)
    return validate_waveform(waveform, source=source) if validate else waveform


def read_audio_file(
    path,
    *,
    source: str,
    allowed_sample_rates: Iterable[int] | None = None,
    start_seconds: float | None = None,
    end_seconds: float | None = None,
) -> tuple[np.ndarray, int]:
    """Read an audio file (wav/flac/ogg, anything soundfile reads) as mono float32.

    Multi-channel audio is averaged to mono. No resampling happens here: a rate
    outside ``allowed_sample_rates`` is an error (resample in preprocessing).

    Args:
        path: the file.
        source: the segment_id, named in errors with the path.
        allowed_sample_rates: accepted rates (default :data:`DEFAULT_SAMPLE_RATES`).
        start_seconds: when given with ``end_seconds``, read only this window
            (for files holding a whole song).
        end_seconds: end of the window.

    Returns:
        ``(waveform, sample_rate)``.

    Raises:
        AudioDataError: reason ``file_missing``, ``unreadable``, ``unexpected_sample_rate``,
            ``empty`` or ``non_finite``.
    """
    import soundfile

    path = pathlib.Path(path)
    label = f"{source} ({path})"
    if not path.is_file():
        raise AudioDataError(f"{label}: audio file not found.", reason="file_missing", source=source)
    try:
        with soundfile.SoundFile(str(path)) as handle:
            rate = validate_sample_rate(handle.samplerate, source=label, allowed=allowed_sample_rates)
            if start_seconds is not None and end_seconds is not None:
                first = max(int(round(float(start_seconds) * rate)), 0)
                handle.seek(min(first, handle.frames))
                frames = max(int(round(float(end_seconds) * rate)) - first, 0)
            else:
                frames = -1
            waveform = handle.read(frames=frames, dtype="float32", always_2d=True)
    except AudioDataError:
        raise
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, TypeError...
        raise AudioDataError(f"{label}: cannot decode audio file ({exc}).", reason="unreadable", source=source) from exc
    mono = waveform.mean(axis=1, dtype=np.float32) if waveform.shape[1] > 1 else waveform[:, 0]
    return validate_waveform(np.ascontiguousarray(mono, dtype=np.float32), source=label), rate
