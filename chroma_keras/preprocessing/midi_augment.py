"""Seeded MIDI augmentations: transposition, velocity randomisation, time quantisation.

The functions take and return ``symusic.Score`` objects **in ticks** (what
``symusic.Score.from_midi`` and :func:`~chroma_keras.preprocessing.midi_validation.parse_score`
give); the input score is never modified. :func:`augment_midi_bytes` wraps them for
Standard MIDI File bytes (validated before parsing; notes without a note-off end where
their track ends).

* :func:`transpose` shifts every pitched note by a number of semitones. Drum tracks
  (channel 10) are untouched: their pitches name instruments. A note that would leave
  0..127 is, by policy ``out_of_range``:

  - ``"fold"`` (default): moved back by whole octaves to the nearest in-range pitch of
    the same pitch class, so chords keep their harmony;
  - ``"drop"``: removed.

* :func:`randomize_velocity` multiplies each note's velocity (drums included) by an
  independent factor drawn from ``U(1 - jitter, 1 + jitter)``, rounded and clipped to
  1..127.
* :func:`quantize_time` moves every note onset and end (drums included) to the nearest
  point of a grid of ``steps_per_quarter`` steps per quarter note; a note keeps at
  least one step. Controllers, pedals and pitch bends are left as they are.

Randomness comes only from ``seed`` (an int or a ``numpy.random.Generator``), so the
same seed gives the same result on every run and platform.

Example:

>>> from chroma_keras.preprocessing.midi_augment import AugmentationSpec, augment_score
>>> spec = AugmentationSpec(transpose_semitones=5, velocity_jitter=0.1)
>>> augmented = augment_score(score, spec, seed=7)  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Mapping

import numpy as np
import symusic

from chroma_keras.errors import DataError, PresetError
from chroma_keras.preprocessing.midi_validation import parse_score

OUT_OF_RANGE_POLICIES = ("fold", "drop")
_CONFIG_PATH = "preprocessing.midi.augmentations"


def _rng(seed) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise DataError(f"seed must be an int or a numpy Generator. Received: {type(seed).__name__}")
    return np.random.default_rng(int(seed))


def _check_score(score, source: str):
    if not isinstance(score, symusic.core.ScoreTick):
        raise DataError(
            f"{source}: expected a symusic Score in ticks (symusic.Score.from_midi(...)). "
            f"Received: {type(score).__name__}"
        )


def _set_notes(track, time, duration, pitch, velocity):
    track.notes = symusic.core.NoteTickList.from_numpy(
        np.ascontiguousarray(time, np.int32),
        np.ascontiguousarray(duration, np.int32),
        np.ascontiguousarray(pitch, np.int8),
        np.ascontiguousarray(velocity, np.int8),
    )


def transpose(score, semitones: int, *, out_of_range: str = "fold", source: str = "score"):
    """Shift every pitched note by ``semitones``; drum tracks are untouched.

    Args:
        score: a ``symusic.Score`` in ticks.
        semitones: the shift (negative = down).
        out_of_range: ``"fold"`` (by octaves, into 0..127) or ``"drop"`` (see the module docstring).
        source: what to name in error messages.

    Returns:
        A new score.

    Raises:
        DataError: for a score that is not in ticks, a non-integer shift or an unknown policy.
    """
    _check_score(score, source)
    if isinstance(semitones, bool) or not isinstance(semitones, (int, np.integer)):
        raise DataError(f"{source}: semitones must be an integer. Received: {semitones!r}")
    if out_of_range not in OUT_OF_RANGE_POLICIES:
        raise DataError(
            f"{source}: out_of_range must be one of {list(OUT_OF_RANGE_POLICIES)}. Received: {out_of_range!r}"
        )
    result = score.copy()
    for track in result.tracks:
        if track.is_drum or not len(track.notes):
            continue
        notes = track.notes.numpy()
        pitch = notes["pitch"].astype(np.int64) + int(semitones)
        keep = np.ones(len(pitch), bool)
        if out_of_range == "fold":
            pitch = np.where(pitch < 0, pitch % 12, pitch)
            pitch = np.where(pitch > 127, 120 + (pitch % 12) - np.where(pitch % 12 > 7, 12, 0), pitch)
        else:
            keep = (pitch >= 0) & (pitch <= 127)
        _set_notes(track, notes["time"][keep], notes["duration"][keep], pitch[keep], notes["velocity"][keep])
    return result


def randomize_velocity(score, jitter: float, *, seed, source: str = "score"):
    """Multiply each note's velocity by an independent factor from ``U(1 - jitter, 1 + jitter)``.

    Args:
        score: a ``symusic.Score`` in ticks.
        jitter: the largest relative change, in [0, 1].
        seed: int or ``numpy.random.Generator``.
        source: what to name in error messages.

    Returns:
        A new score with velocities rounded and clipped to 1..127.
    """
    _check_score(score, source)
    if isinstance(jitter, bool) or not isinstance(jitter, (int, float)) or not 0.0 <= jitter <= 1.0:
        raise DataError(f"{source}: jitter must be a number in [0, 1]. Received: {jitter!r}")
    rng = _rng(seed)
    result = score.copy()
    for track in result.tracks:
        if not len(track.notes):
            continue
        notes = track.notes.numpy()
        factor = rng.uniform(1.0 - jitter, 1.0 + jitter, len(notes["velocity"]))
        velocity = np.clip(np.round(notes["velocity"] * factor), 1, 127)
        _set_notes(track, notes["time"], notes["duration"], notes["pitch"], velocity)
    return result


def quantize_time(score, steps_per_quarter: int, *, source: str = "score"):
    """Move note onsets and ends to the nearest point of a grid of ``steps_per_quarter`` per quarter.

    Args:
        score: a ``symusic.Score`` in ticks.
        steps_per_quarter: grid resolution (e.g. 4 = sixteenth notes); the grid step is
            ``ticks_per_quarter / steps_per_quarter`` ticks, rounded to whole ticks per point.
        source: what to name in error messages.

    Returns:
        A new score; every note lasts at least one grid step.
    """
    _check_score(score, source)
    if (
        isinstance(steps_per_quarter, bool)
        or not isinstance(steps_per_quarter, (int, np.integer))
        or not (1 <= steps_per_quarter <= score.ticks_per_quarter)
    ):
        raise DataError(
            f"{source}: steps_per_quarter must be an integer in [1, ticks_per_quarter="
            f"{score.ticks_per_quarter}]. Received: {steps_per_quarter!r}"
        )
    step = score.ticks_per_quarter / steps_per_quarter
    result = score.copy()
    for track in result.tracks:
        if not len(track.notes):
            continue
        notes = track.notes.numpy()
        start_steps = np.round(notes["time"] / step)
        end_steps = np.maximum(np.round((notes["time"] + notes["duration"]) / step), start_steps + 1)
        start = np.round(start_steps * step).astype(np.int64)
        end = np.round(end_steps * step).astype(np.int64)
        _set_notes(track, start, end - start, notes["pitch"], notes["velocity"])
        track.notes.sort()
    return result


@dataclass(frozen=True)
class AugmentationSpec:
    """Random augmentations applied together by :func:`augment_score`.

    Args:
        transpose_semitones: largest random transposition; the shift is drawn
            uniformly from ``-n..n`` (0 = off).
        velocity_jitter: largest relative velocity change (0 = off).
        quantize_steps_per_quarter: grid for :func:`quantize_time` (0 = off).
        out_of_range: transposition policy, ``"fold"`` or ``"drop"``.
    """

    transpose_semitones: int = 0
    velocity_jitter: float = 0.0
    quantize_steps_per_quarter: int = 0
    out_of_range: str = "fold"

    def __post_init__(self):
        problems = []
        for name, high in (("transpose_semitones", 12), ("quantize_steps_per_quarter", 64)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value <= high:
                problems.append(f"{name} must be an integer in [0, {high}]. Received: {name}={value!r}")
        jitter = self.velocity_jitter
        if isinstance(jitter, bool) or not isinstance(jitter, (int, float)) or not 0 <= jitter <= 1:
            problems.append(f"velocity_jitter must be a number in [0, 1]. Received: velocity_jitter={jitter!r}")
        if self.out_of_range not in OUT_OF_RANGE_POLICIES:
            problems.append(
                f"out_of_range must be one of {list(OUT_OF_RANGE_POLICIES)}. Received: {self.out_of_range!r}"
            )
        if problems:
            raise DataError("Invalid AugmentationSpec: " + "; ".join(problems))

    @classmethod
    def from_config(cls, config: Mapping) -> "AugmentationSpec":
        """Read ``preprocessing.midi.augmentations`` of a resolved preset (missing keys: defaults).

        Raises:
            PresetError: naming the dotted key path of an unknown key or a bad value.
        """
        section = (((config or {}).get("preprocessing") or {}).get("midi") or {}).get("augmentations") or {}
        if not isinstance(section, Mapping):
            raise PresetError(f"{_CONFIG_PATH} must be a mapping. Received: {type(section).__name__}")
        names = [f.name for f in fields(cls)]
        for key in section:
            if key not in names:
                raise PresetError(f"Unknown key {_CONFIG_PATH}.{key}. Expected keys among {names}.")
        try:
            return cls(**dict(section))
        except DataError as exc:
            raise PresetError(f"{_CONFIG_PATH}: {exc}") from None


def augment_score(score, spec: AugmentationSpec, *, seed, source: str = "score"):
    """Apply a spec's augmentations in order: transpose, velocity, quantize.

    Args:
        score: a ``symusic.Score`` in ticks.
        spec: what to apply.
        seed: int or ``numpy.random.Generator``; the same seed gives the same result.
        source: what to name in error messages.

    Returns:
        A new score.
    """
    _check_score(score, source)
    rng = _rng(seed)
    if spec.transpose_semitones:
        shift = int(rng.integers(-spec.transpose_semitones, spec.transpose_semitones + 1))
        score = transpose(score, shift, out_of_range=spec.out_of_range, source=source)
    if spec.velocity_jitter:
        score = randomize_velocity(score, spec.velocity_jitter, seed=rng, source=source)
    if spec.quantize_steps_per_quarter:
        score = quantize_time(score, spec.quantize_steps_per_quarter, source=source)
    return score


def augment_midi_bytes(data: bytes, spec: AugmentationSpec, *, seed, source: str) -> bytes:
    """:func:`augment_score` for Standard MIDI File bytes.

    Args:
        data: the file's bytes.
        spec: what to apply.
        seed: int or ``numpy.random.Generator``.
        source: what to name in error messages (segment_id or path).

    Returns:
        New SMF bytes.

    Raises:
        MidiError: for malformed MIDI, naming ``source``.
    """
    score = parse_score(data, source=source)
    return augment_score(score, spec, seed=seed, source=source).dumps_midi()
