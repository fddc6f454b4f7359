"""Audio/MIDI alignment: how far a segment's audio lags its MIDI, and which segments are off.

The user's segments carry audio and MIDI cut from one song at the same window
(DESIGN §3); a wrong cut, a lead-in in the audio or a MIDI export with a pickup
shifts one against the other. :func:`estimate_offset` measures that shift:

1. MIDI onsets: every note start (drums included), merged within 25 ms, becomes
   a Gaussian bump (σ = 10 ms) on the audio's frame grid.
2. Audio: librosa's onset-strength envelope (spectral flux of a log-mel
   spectrogram) at about 5.8 ms per frame, and the onsets librosa picks from it,
   backtracked to the preceding envelope minimum (where a note starts).
3. Coarse offset: the lag that maximises the cross-correlation of envelope and
   MIDI train within ``±max_offset`` seconds (refined to a fraction of a frame
   by a parabola through the peak). **Positive means the audio is late**: an
   event at MIDI time ``t`` sounds at ``t + offset``.
4. Fine offset: the envelope peaks where a note's energy rises fastest, 10-60 ms
   after it starts depending on the instrument's attack, so the coarse offset is
   moved by the median gap between each shifted MIDI onset and its nearest
   backtracked audio onset (within 80 ms; only when at least 3 and 20 % of the
   MIDI onsets have one).
5. Audio onsets are matched one-to-one to the shifted MIDI onsets within
   ``match_window``; ``confidence`` is the F-measure of that matching (0-1) and
   ``matched_onsets`` its size. ``peak_ratio`` compares the best rival
   correlation peak to the chosen one: near 1 the answer is ambiguous.

Silent audio, or MIDI without notes, cannot be aligned: the estimate then has
``offset_seconds = None``, ``confidence = 0`` and a ``reason``; nothing raises.

Periodic music (loops, a steady beat) correlates almost as well one period
away, so the estimate can jump by a beat or a bar; ``peak_ratio`` near 1 warns
of it. Keep ``max_offset`` below the period when it is known. Instruments with
slow attacks (strings, pads) read 40-80 ms late. See docs/alignment.md.

Example:

>>> import numpy as np, pretty_midi, io
>>> from chroma_keras.preprocessing.synthesis import render_midi
>>> pm = pretty_midi.PrettyMIDI(); piano = pretty_midi.Instrument(0)
>>> piano.notes = [pretty_midi.Note(100, 60 + i % 7, t, t + 0.2) for i, t in enumerate([0.2, 0.7, 0.9, 1.6, 2.0, 2.9])]
>>> pm.instruments.append(piano); buffer = io.BytesIO(); pm.write(buffer)
>>> audio = render_midi(buffer.getvalue(), sample_rate=22050, backend="additive")
>>> late = np.concatenate([np.zeros(4410, np.float32), audio])  # 200 ms late
>>> report = check_alignment([("seg_1", audio, 22050, buffer.getvalue()), ("seg_2", late, 22050, buffer.getvalue())])
>>> [(s.segment_id, s.status, round(s.estimate.offset_seconds, 2)) for s in report.segments]
[('seg_1', 'aligned', 0.0), ('seg_2', 'misaligned', 0.2)]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

import librosa
import numpy as np
import scipy.signal

from chroma_keras.data.audio_bytes import AudioDataError, decode_pcm_float32
from chroma_keras.errors import ChromaKerasError, DataError
from chroma_keras.preprocessing.synthesis import read_notes

ONSET_MERGE_SECONDS = 0.025
ONSET_SIGMA_SECONDS = 0.010
# The refinement step moves the coarse lag by the median gap to audio onsets this close...
REFINE_WINDOW_SECONDS = 0.08
# ... when at least this many / this fraction of the MIDI onsets have one.
MIN_REFINE_MATCHES = 3
REFINE_MATCH_FRACTION = 0.2
# Audio whose peak is below this is treated as silence.
SILENCE_PEAK = 1e-4
# Frames of onset-strength per second we aim for (256 samples at 44.1 kHz).
_FRAME_RATE = 44100 / 256


@dataclass(frozen=True)
class OffsetEstimate:
    """The result of :func:`estimate_offset`.

    Attributes:
        offset_seconds: how late the audio is relative to the MIDI (negative: early),
            or None when it cannot be estimated.
        confidence: F-measure (0-1) of audio onsets against the shifted MIDI onsets.
        matched_onsets: number of MIDI onsets that found an audio onset within the match window.
        midi_onsets: number of distinct MIDI onsets.
        audio_onsets: number of onsets detected in the audio.
        reason: why no offset could be estimated (None when it could).
        peak_ratio: height of the best rival cross-correlation peak over the chosen one
            (0-1); near 1 the offset is ambiguous (periodic material: loops, steady beats).
    """

    offset_seconds: float | None
    confidence: float
    matched_onsets: int
    midi_onsets: int
    audio_onsets: int
    reason: str | None = None
    peak_ratio: float = 0.0

    @property
    def ok(self) -> bool:
        """True when an offset was estimated."""
        return self.offset_seconds is not None


@dataclass(frozen=True)
class SegmentAlignment:
    """One segment's line in an :class:`AlignmentReport`.

    Attributes:
        segment_id: the segment.
        status: ``"aligned"`` (|offset| <= tolerance), ``"misaligned"``, ``"unknown"``
            (no offset could be estimated) or ``"error"`` (the inputs were invalid).
        estimate: the offset estimate (None when ``status == "error"``).
        message: the reason for ``unknown`` / ``error``, else None.
    """

    segment_id: str
    status: str
    estimate: OffsetEstimate | None
    message: str | None = None


@dataclass
class AlignmentReport:
    """The per-segment results of :func:`check_alignment`.

    Attributes:
        tolerance: the offset (seconds) beyond which a segment is flagged.
        segments: one :class:`SegmentAlignment` per input record, in input order.
    """

    tolerance: float
    segments: list[SegmentAlignment] = field(default_factory=list)

    def with_status(self, status: str) -> list[SegmentAlignment]:
        """The segments whose status is ``status``."""
        return [s for s in self.segments if s.status == status]

    @property
    def flagged(self) -> list[SegmentAlignment]:
        """Segments whose offset exceeds the tolerance."""
        return self.with_status("misaligned")

    @property
    def offsets(self) -> dict[str, float | None]:
        """segment_id -> estimated offset in seconds (None where unknown or invalid)."""
        return {s.segment_id: s.estimate.offset_seconds if s.estimate else None for s in self.segments}

    def summary(self) -> str:
        """A few lines for a log: counts per status and the flagged segments."""
        counts = {k: len(self.with_status(k)) for k in ("aligned", "misaligned", "unknown", "error")}
        lines = [
            f"{len(self.segments)} segments, tolerance {self.tolerance * 1000:.0f} ms: "
            + ", ".join(f"{v} {k}" for k, v in counts.items())
        ]
        lines += [
            f"  {s.segment_id}: offset {s.estimate.offset_seconds * 1000:+.0f} ms "
            f"(confidence {s.estimate.confidence:.2f})"
            for s in self.flagged
        ]
        lines += [
            f"  {s.segment_id}: {s.status}: {s.message}" for s in self.segments if s.status in ("unknown", "error")
        ]
        return "\n".join(lines)


def _as_audio(audio, sample_rate, name: str) -> np.ndarray:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise DataError(f"{name}: sample_rate must be a positive integer (Hz). Received: sample_rate={sample_rate!r}")
    if isinstance(audio, (bytes, bytearray, memoryview)):  # the media parquet's raw float32 PCM
        try:
            # Not validated there: silence and NaN are judged below, as for arrays.
            audio = decode_pcm_float32(audio, source=name, validate=False)
        except AudioDataError:  # the byte length is not a multiple of 4
            raise DataError(
                f"{name}: raw audio bytes must be little-endian float32 PCM (a multiple of 4 bytes). "
                f"Received: {len(audio)} bytes"
            ) from None
    try:
        array = np.asarray(audio, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name}: cannot convert the audio to a float array ({exc}).") from None
    if array.ndim != 1:
        raise DataError(f"{name}: expected mono audio of shape (num_samples,). Received: shape={array.shape}")
    if not np.all(np.isfinite(array)):
        raise DataError(f"{name}: the audio holds {int((~np.isfinite(array)).sum())} NaN/inf sample(s).")
    return array


def _midi_onsets(starts: np.ndarray) -> np.ndarray:
    onsets = []
    for t in np.sort(starts):
        if not onsets or t - onsets[-1] > ONSET_MERGE_SECONDS:
            onsets.append(float(t))
    return np.array(onsets)


def _match_count(reference: np.ndarray, estimated: np.ndarray, window: float) -> int:
    """Greedy one-to-one matching of two sorted onset lists within ``window`` seconds."""
    count, j = 0, 0
    for t in reference:
        while j < len(estimated) and estimated[j] < t - window:
            j += 1
        if j < len(estimated) and abs(estimated[j] - t) <= window:
            count += 1
            j += 1
    return count


def estimate_offset(
    audio,
    sample_rate: int,
    midi_bytes,
    *,
    max_offset: float = 1.0,
    match_window: float = 0.05,
    source: str | None = None,
) -> OffsetEstimate:
    """Estimate how late ``audio`` is relative to the MIDI it was cut with.

    Args:
        audio: mono waveform (float array, or raw little-endian float32 bytes).
        sample_rate: Hz.
        midi_bytes: Standard MIDI File of the same window.
        max_offset: largest shift searched, in seconds either way.
        match_window: how far (seconds) an audio onset may be from a shifted MIDI
            onset to count as its match.
        source: what to name in error messages (segment_id or path).

    Returns:
        An :class:`OffsetEstimate`; ``offset_seconds`` is None (with a ``reason``) for
        silent audio or MIDI without notes.

    Raises:
        DataError: audio that is not mono, holds NaN, or a bad sample rate / argument.
        MidiError: unreadable MIDI.
    """
    name = source or "<segment>"
    for arg, value in (("max_offset", max_offset), ("match_window", match_window)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
            raise DataError(f"{name}: {arg} must be a positive number of seconds. Received: {arg}={value!r}")
    y = _as_audio(audio, sample_rate, name)
    notes = read_notes(midi_bytes, source=name)
    midi_onsets = _midi_onsets(notes.start)

    def unknown(reason, audio_onsets=0):
        return OffsetEstimate(None, 0.0, 0, len(midi_onsets), audio_onsets, reason)

    if len(midi_onsets) == 0:
        return unknown("the MIDI has no notes")
    if len(y) == 0 or float(np.max(np.abs(y))) < SILENCE_PEAK:
        return unknown("the audio is silent")

    hop = max(int(round(sample_rate / _FRAME_RATE)), 1)
    frame_rate = sample_rate / hop
    envelope = librosa.onset.onset_strength(y=y, sr=sample_rate, hop_length=hop)
    if not np.any(envelope > 0):
        return unknown("the audio has no onsets")
    # Backtracked to the preceding envelope minimum: where a note starts, not where it rises fastest.
    audio_onsets = librosa.onset.onset_detect(
        onset_envelope=envelope, sr=sample_rate, hop_length=hop, backtrack=True, units="time"
    )

    coarse, peak_ratio = _correlation_lag(envelope, midi_onsets, frame_rate, max_offset)
    offset = _refine(coarse, midi_onsets, audio_onsets)
    matched = _match_count(midi_onsets + offset, audio_onsets, match_window)
    f_measure = 2 * matched / (len(midi_onsets) + len(audio_onsets)) if len(audio_onsets) else 0.0
    return OffsetEstimate(
        float(offset), float(f_measure), matched, len(midi_onsets), len(audio_onsets), peak_ratio=peak_ratio
    )


def _correlation_lag(envelope: np.ndarray, midi_onsets: np.ndarray, frame_rate: float, max_offset: float):
    """Lag (seconds) maximising the envelope / MIDI-onset-train cross-correlation, and the peak ratio."""
    frames = np.arange(max(len(envelope), int(math.ceil(midi_onsets[-1] * frame_rate)) + 1))
    sigma = ONSET_SIGMA_SECONDS * frame_rate
    train = np.zeros(len(frames))
    for t in midi_onsets:
        centre = t * frame_rate
        lo, hi = int(max(centre - 4 * sigma, 0)), int(min(centre + 4 * sigma + 1, len(frames)))
        train[lo:hi] += np.exp(-0.5 * ((frames[lo:hi] - centre) / sigma) ** 2)

    # correlate(env, train)[k] = sum_n env[n + k] * train[n]: lag k > 0 means the audio is late.
    signal = envelope - envelope.mean()
    correlation = scipy.signal.correlate(signal, train, mode="full", method="fft")
    lags = scipy.signal.correlation_lags(len(signal), len(train), mode="full")
    inside = np.abs(lags) <= max_offset * frame_rate
    correlation, lags = correlation[inside], lags[inside]
    best = int(np.argmax(correlation))
    shift = float(lags[best])
    if 0 < best < len(correlation) - 1:  # parabola through the peak
        left, mid, right = correlation[best - 1 : best + 2]
        curvature = left - 2 * mid + right
        if curvature < 0:
            shift += 0.5 * (left - right) / curvature
    peaks, _ = scipy.signal.find_peaks(correlation)
    rivals = correlation[peaks[np.abs(peaks - best) > 4 * sigma]]
    top = correlation[best]
    peak_ratio = float(np.clip(rivals.max() / top, 0.0, 1.0)) if len(rivals) and top > 0 else 0.0
    return shift / frame_rate, peak_ratio


def _refine(coarse: float, midi_onsets: np.ndarray, audio_onsets: np.ndarray) -> float:
    """Move the coarse lag by the median gap between MIDI onsets and their nearest audio onset.

    The onset-strength envelope peaks where a note's energy rises fastest, some
    10-60 ms after the note starts; backtracked onsets mark the start itself.
    """
    if len(audio_onsets) == 0:
        return coarse
    shifted = midi_onsets + coarse
    index = np.searchsorted(audio_onsets, shifted)
    before = audio_onsets[np.clip(index - 1, 0, len(audio_onsets) - 1)] - shifted
    after = audio_onsets[np.clip(index, 0, len(audio_onsets) - 1)] - shifted
    gaps = np.where(np.abs(before) <= np.abs(after), before, after)
    gaps = gaps[np.abs(gaps) <= REFINE_WINDOW_SECONDS]
    if len(gaps) < max(MIN_REFINE_MATCHES, REFINE_MATCH_FRACTION * len(midi_onsets)):
        return coarse
    return coarse + float(np.median(gaps))


def check_alignment(
    records: Iterable,
    *,
    tolerance: float = 0.05,
    max_offset: float = 1.0,
    match_window: float = 0.05,
) -> AlignmentReport:
    """Estimate the audio/MIDI offset of every segment and flag those beyond ``tolerance``.

    Invalid records (bad audio, corrupt MIDI) are reported with status ``"error"``
    instead of stopping the run.

    Args:
        records: iterable of ``(segment_id, audio, sample_rate, midi_bytes)``.
        tolerance: largest acceptable ``|offset|`` in seconds.
        max_offset: largest shift searched (see :func:`estimate_offset`).
        match_window: onset matching window (see :func:`estimate_offset`).

    Returns:
        An :class:`AlignmentReport`.

    Raises:
        DataError: a bad ``tolerance``, or a record that is not a 4-tuple.
    """
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not tolerance >= 0:
        raise DataError(f"tolerance must be a number of seconds >= 0. Received: tolerance={tolerance!r}")
    report = AlignmentReport(tolerance=float(tolerance))
    for index, record in enumerate(records):
        try:
            segment_id, audio, sample_rate, midi_bytes = record
        except (TypeError, ValueError):
            raise DataError(
                f"record {index}: expected a tuple (segment_id, audio, sample_rate, midi_bytes). "
                f"Received: {type(record).__name__}"
            ) from None
        segment_id = str(segment_id)
        try:
            estimate = estimate_offset(
                audio, sample_rate, midi_bytes, max_offset=max_offset, match_window=match_window, source=segment_id
            )
        except ChromaKerasError as exc:
            report.segments.append(SegmentAlignment(segment_id, "error", None, str(exc)))
            continue
        if not estimate.ok:
            report.segments.append(SegmentAlignment(segment_id, "unknown", estimate, estimate.reason))
        else:
            status = "aligned" if abs(estimate.offset_seconds) <= tolerance else "misaligned"
            report.segments.append(SegmentAlignment(segment_id, status, estimate))
    return report
