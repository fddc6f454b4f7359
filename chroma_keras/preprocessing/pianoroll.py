"""MIDI <-> piano roll: pure numpy functions, no Keras.

A piano roll is a float32 array ``[num_pitches, num_frames]``: row ``p`` is MIDI
pitch ``spec.lowest_pitch + p``, column ``f`` covers the time span
``[f / fps, (f + 1) / fps)`` seconds, and a cell holds ``velocity / 127`` of the
loudest note sounding there (0 = silence).

Reading (:func:`midi_to_piano_roll`):

* Input is a Standard MIDI File as ``bytes``, a path to a ``.mid`` file, or a
  ``pretty_midi.PrettyMIDI``. Bytes and files are checked by
  :func:`~chroma_keras.preprocessing.midi_validation.read_midi_layout` (so
  malformed input raises :class:`~chroma_keras.errors.MidiError` before any
  native code sees it), parsed with symusic, and filled into the roll with
  vectorised numpy: ~14x the throughput of walking mido messages and ~24x
  pretty_midi's (``benchmarks/midi_pianoroll_throughput.py``). Files symusic cannot read as we
  need (SMPTE division, format 2 with per-track tempo maps, events symusic
  rejects) go through the mido reader, which also gives the precise error.
* Note times honour the tempo map (``set_tempo`` events of all tracks; each track
  has its own in format 2). A note-on without a note-off (segments cut from
  longer files have these) is kept and closed at the end of the window. A
  note-on with velocity 0 is a note-off. Repeated note-ons of one key are
  matched to note-offs first in, first out.
* A note occupies frames ``floor(start * fps)`` to ``ceil(end * fps)`` (exclusive),
  at least one frame, clipped to the window (times within 1/100 frame of a frame
  boundary count as on it, absorbing tick rounding). Pitches outside
  ``[lowest_pitch, highest_pitch)`` are dropped. Where notes overlap on one cell
  the louder wins. Drums (MIDI channel 10, or ``is_drum`` instruments) are
  skipped unless ``include_drums``.

Writing (:func:`piano_roll_to_midi`): every maximal run of consecutive frames
above ``threshold`` on one pitch becomes one note whose velocity is the run's
mean value times 127. A change of value inside a run does not start a new
note, so two notes of the same pitch must be separated by at least one silent
frame to survive a round trip.

Example:

>>> import numpy as np
>>> from chroma_keras.preprocessing.pianoroll import PianoRollSpec, piano_roll_to_midi_bytes, midi_to_piano_roll
>>> spec = PianoRollSpec()
>>> roll = np.zeros((spec.num_pitches, spec.num_frames), np.float32)
>>> roll[36, 8:16] = 100 / 127          # C4 (pitch 60) from 1.0 s to 2.0 s
>>> back = midi_to_piano_roll(piano_roll_to_midi_bytes(roll, spec), spec)
>>> bool(np.array_equal(back, roll))
True
"""

from __future__ import annotations

import bisect
import io
import math
import os
import pathlib
from collections import defaultdict, deque
from dataclasses import dataclass, fields
from typing import Mapping, Union

import mido
import numpy as np
import pretty_midi

from chroma_keras.errors import DataError, MidiError, PresetError
from chroma_keras.preprocessing.midi_validation import (
    MAX_DELTA_TICKS,
    MidiLayout,
    parse_score,
    read_midi_layout,
)

MidiLike = Union[bytes, bytearray, memoryview, str, os.PathLike, pretty_midi.PrettyMIDI]

DEFAULT_TEMPO_US = 500_000  # 120 bpm, the MIDI default before any set_tempo
DRUM_CHANNEL = 9  # channel 10, counted from 0
# Times within this fraction of a frame from a frame boundary snap to it, which absorbs
# tick rounding (and integer microsecond tempos) when a roll goes through a MIDI file.
_FRAME_EPS = 1e-2
_CONFIG_PATH = "preprocessing.midi.piano_roll"


@dataclass(frozen=True)
class PianoRollSpec:
    """Geometry of a piano roll.

    Args:
        lowest_pitch: MIDI pitch of row 0.
        num_pitches: number of rows; rows cover ``[lowest_pitch, lowest_pitch + num_pitches)``.
        frames_per_second: frame rate; frame ``f`` covers ``[f / fps, (f + 1) / fps)`` seconds.
        num_frames: number of columns; the window lasts ``num_frames / fps`` seconds.

    The defaults (pitches 24..95, 8 fps, 128 frames = a 16 s window) match the
    ``cvae_chromatic`` preset and the demo corpus.
    """

    lowest_pitch: int = 24
    num_pitches: int = 72
    frames_per_second: float = 8.0
    num_frames: int = 128

    def __post_init__(self):
        problems = []
        if not (isinstance(self.lowest_pitch, (int, np.integer)) and 0 <= self.lowest_pitch <= 127):
            problems.append(
                f"lowest_pitch must be an integer in [0, 127]. Received: lowest_pitch={self.lowest_pitch!r}"
            )
        if not (isinstance(self.num_pitches, (int, np.integer)) and self.num_pitches >= 1):
            problems.append(f"num_pitches must be a positive integer. Received: num_pitches={self.num_pitches!r}")
        elif not problems and self.lowest_pitch + self.num_pitches > 128:
            problems.append(
                "lowest_pitch + num_pitches must be <= 128 (MIDI pitches end at 127). "
                f"Received: lowest_pitch={self.lowest_pitch}, num_pitches={self.num_pitches}"
            )
        fps = self.frames_per_second
        if isinstance(fps, bool) or not isinstance(fps, (int, float, np.integer, np.floating)) or not (
            math.isfinite(fps) and fps > 0
        ):
            problems.append(f"frames_per_second must be a positive number. Received: frames_per_second={fps!r}")
        if not (isinstance(self.num_frames, (int, np.integer)) and self.num_frames >= 1):
            problems.append(f"num_frames must be a positive integer. Received: num_frames={self.num_frames!r}")
        if problems:
            raise DataError("Invalid PianoRollSpec: " + "; ".join(problems))
        object.__setattr__(self, "lowest_pitch", int(self.lowest_pitch))
        object.__setattr__(self, "num_pitches", int(self.num_pitches))
        object.__setattr__(self, "frames_per_second", float(fps))
        object.__setattr__(self, "num_frames", int(self.num_frames))

    @property
    def duration_seconds(self) -> float:
        """Length of the window in seconds (``num_frames / frames_per_second``)."""
        return self.num_frames / self.frames_per_second

    @property
    def highest_pitch(self) -> int:
        """One past the highest pitch the roll holds (exclusive bound)."""
        return self.lowest_pitch + self.num_pitches

    @property
    def shape(self) -> tuple[int, int]:
        """``(num_pitches, num_frames)``."""
        return (self.num_pitches, self.num_frames)

    @classmethod
    def from_config(cls, config: Mapping) -> "PianoRollSpec":
        """Read ``config["preprocessing"]["midi"]["piano_roll"]`` of a resolved preset.

        Missing sections or keys take the defaults.

        Raises:
            PresetError: naming the dotted key path of an unknown key or a bad value.
        """
        section = config
        path = []
        for key in ("preprocessing", "midi", "piano_roll"):
            path.append(key)
            if section is None:
                return cls()
            if not isinstance(section, Mapping):
                raise PresetError(
                    f"{'.'.join(path[:-1]) or '<preset>'} must be a mapping. Received: {type(section).__name__}"
                )
            section = section.get(key)
        if section is None:
            return cls()
        if not isinstance(section, Mapping):
            raise PresetError(f"{_CONFIG_PATH} must be a mapping. Received: {type(section).__name__}")
        names = [f.name for f in fields(cls)]
        unknown = [k for k in section if k not in names]
        if unknown:
            raise PresetError(f"Unknown key {_CONFIG_PATH}.{unknown[0]}. Expected keys among {names}.")
        kwargs = {}
        for name in names:
            if name not in section:
                continue
            value = section[name]
            if name == "frames_per_second":
                ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            else:
                ok = isinstance(value, int) and not isinstance(value, bool) or (
                    isinstance(value, float) and value.is_integer()
                )
                value = int(value) if ok else value
            if not ok:
                raise PresetError(
                    f"{_CONFIG_PATH}.{name} must be a number{'' if name == 'frames_per_second' else ' (integer)'}. "
                    f"Received: {value!r}"
                )
            kwargs[name] = value
        try:
            return cls(**kwargs)
        except DataError as exc:
            raise PresetError(f"{_CONFIG_PATH}: {exc}") from None


# ---------------------------------------------------------------------------
# Reading MIDI
# ---------------------------------------------------------------------------


def _source_name(midi, source: str | None) -> str:
    if source is not None:
        return str(source)
    if isinstance(midi, (str, os.PathLike)):
        return str(midi)
    if isinstance(midi, pretty_midi.PrettyMIDI):
        return "<PrettyMIDI>"
    return "<bytes>"


def _read_bytes(midi, name: str) -> bytes:
    if isinstance(midi, (bytes, bytearray, memoryview)):
        return bytes(midi)
    if isinstance(midi, (str, os.PathLike)):
        try:
            return pathlib.Path(midi).read_bytes()
        except OSError as exc:
            raise MidiError(f"{name}: cannot read the MIDI file ({exc.strerror or exc}).") from exc
    raise MidiError(
        f"{name}: expected MIDI as bytes (a Standard MIDI File), a path to a .mid file or a "
        f"pretty_midi.PrettyMIDI. Received: {type(midi).__name__}"
    )


def _parse_smf(data: bytes, name: str) -> mido.MidiFile:
    """Parse structurally valid SMF bytes with mido (the fallback reader)."""
    try:
        return mido.MidiFile(file=io.BytesIO(data))
    except EOFError:
        raise MidiError(f"{name}: the Standard MIDI File is truncated (unexpected end of data).") from None
    except Exception as exc:  # mido raises OSError, ValueError, KeyError, ... on malformed data
        raise MidiError(f"{name}: cannot parse the Standard MIDI File: {type(exc).__name__}: {exc}") from None


class _TempoMap:
    """Converts absolute ticks to seconds from a list of (tick, microseconds per beat)."""

    def __init__(self, changes: list[tuple[int, int]], ticks_per_beat: int):
        if ticks_per_beat < 0:
            # SMPTE division: high byte is -frames per second, low byte ticks per frame.
            fps = -(ticks_per_beat >> 8)
            ticks_per_frame = ticks_per_beat & 0xFF
            self.smpte_seconds_per_tick = 1.0 / (fps * ticks_per_frame) if fps > 0 and ticks_per_frame > 0 else None
            if self.smpte_seconds_per_tick is None:
                raise ValueError(f"invalid SMPTE division {ticks_per_beat}")
        else:
            self.smpte_seconds_per_tick = None
        self.ticks_per_beat = ticks_per_beat
        changes = sorted(changes, key=lambda c: c[0])  # stable: later events at one tick win
        self.ticks = [0]
        self.tempos = [DEFAULT_TEMPO_US]
        for tick, tempo in changes:
            if tick == self.ticks[-1]:
                self.tempos[-1] = tempo
            else:
                self.ticks.append(tick)
                self.tempos.append(tempo)
        self.seconds = [0.0]
        for i in range(1, len(self.ticks)):
            span = self.ticks[i] - self.ticks[i - 1]
            self.seconds.append(self.seconds[-1] + span * self.tempos[i - 1] / 1e6 / max(ticks_per_beat, 1))

    def to_seconds(self, tick: int) -> float:
        if self.smpte_seconds_per_tick is not None:
            return tick * self.smpte_seconds_per_tick
        i = bisect.bisect_right(self.ticks, tick) - 1
        return self.seconds[i] + (tick - self.ticks[i]) * self.tempos[i] / 1e6 / self.ticks_per_beat


def _notes_from_midi_file(midi_file: mido.MidiFile, window_end: float, include_drums: bool, name: str):
    """Yield (pitch, start_s, end_s, velocity) for every note, closing dangling note-ons at window_end."""
    tracks = []
    for track in midi_file.tracks:
        tick = 0
        events = []
        for msg in track:
            tick += msg.time
            events.append((tick, msg))
        tracks.append(events)

    def tempo_changes(events):
        return [(t, m.tempo) for t, m in events if m.type == "set_tempo"]

    try:
        if midi_file.type == 2:  # asynchronous: every track has its own tempo map
            maps = [_TempoMap(tempo_changes(ev), midi_file.ticks_per_beat) for ev in tracks]
        else:
            shared = _TempoMap([c for ev in tracks for c in tempo_changes(ev)], midi_file.ticks_per_beat)
            maps = [shared] * len(tracks)
    except ValueError as exc:
        raise MidiError(f"{name}: cannot read the MIDI timing: {exc}.") from None

    notes = []
    for events, tempo_map in zip(tracks, maps):
        open_notes: dict[tuple[int, int], deque] = defaultdict(deque)
        for tick, msg in events:
            kind = msg.type
            if kind not in ("note_on", "note_off"):
                continue
            if msg.channel == DRUM_CHANNEL and not include_drums:
                continue
            key = (msg.channel, msg.note)
            if kind == "note_on" and msg.velocity > 0:
                open_notes[key].append((tempo_map.to_seconds(tick), msg.velocity))
            elif open_notes[key]:
                start, velocity = open_notes[key].popleft()
                notes.append((msg.note, start, tempo_map.to_seconds(tick), velocity))
        for (_, pitch), pending in open_notes.items():
            for start, velocity in pending:
                notes.append((pitch, start, max(window_end, start), velocity))
    return notes


def _notes_from_pretty_midi(pm: pretty_midi.PrettyMIDI, include_drums: bool):
    return [
        (n.pitch, n.start, n.end, n.velocity)
        for inst in pm.instruments
        if include_drums or not inst.is_drum
        for n in inst.notes
    ]


def _note_arrays(notes) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(pitch, start, end, velocity) arrays from a list of note tuples."""
    if not notes:
        empty = np.zeros(0)
        return empty.astype(np.int64), empty, empty, empty.astype(np.int64)
    pitch, start, end, velocity = zip(*notes)
    return (
        np.asarray(pitch, np.int64),
        np.asarray(start, np.float64),
        np.asarray(end, np.float64),
        np.asarray(velocity, np.int64),
    )


def _tick_clock(score) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tempo segments of a symusic score: start ticks, microseconds per quarter, start seconds.

    Tempo events of all tracks form one map (later events at one tick win), with
    120 bpm before the first, as in :class:`_TempoMap`; computed in float64 with the
    same operation order, so both readers give the same seconds.
    """
    tempos = score.tempos.numpy()
    tpq = score.ticks_per_quarter
    if len(tempos["time"]) == 0 or (len(tempos["time"]) == 1 and tempos["time"][0] == 0):
        mspq = int(tempos["mspq"][0]) if len(tempos["time"]) else DEFAULT_TEMPO_US
        return np.zeros(1, np.int64), np.array([mspq], np.int64), np.zeros(1)
    ticks = np.concatenate([[0], tempos["time"].astype(np.int64)])
    mspq = np.concatenate([[DEFAULT_TEMPO_US], tempos["mspq"].astype(np.int64)])
    order = np.argsort(ticks, kind="stable")
    ticks, mspq = ticks[order], mspq[order]
    last_at_tick = np.append(ticks[1:] != ticks[:-1], True)
    ticks, mspq = ticks[last_at_tick], mspq[last_at_tick]
    spans = np.diff(ticks) * mspq[:-1] / 1e6 / tpq
    return ticks, mspq, np.concatenate([[0.0], np.cumsum(spans)])


def _to_seconds(tick: np.ndarray, clock, tpq: int) -> np.ndarray:
    ticks, mspq, seconds = clock
    if len(ticks) == 1:  # one tempo (most files): no search
        return seconds[0] + (tick - ticks[0]) * mspq[0] / 1e6 / tpq
    i = np.searchsorted(ticks, tick, side="right") - 1
    return seconds[i] + (tick - ticks[i]) * mspq[i] / 1e6 / tpq


def _notes_with_symusic(data: bytes, layout: MidiLayout, spec: PianoRollSpec, include_drums: bool, name: str):
    """Note arrays read with symusic, or None when the mido reader must handle this file.

    Dangling notes are closed ``MAX_DELTA_TICKS`` after their track's last event, which
    lies beyond the window (checked below), so they are drawn to the window's end.
    """
    if layout.format == 2 or layout.is_smpte:
        return None
    try:
        score = parse_score(
            data,
            source=name,
            layout=layout,
            dangling_delay_ticks=MAX_DELTA_TICKS,
            dangling_pitches=range(spec.lowest_pitch, spec.highest_pitch),
            skip_channels=() if include_drums else (DRUM_CHANNEL,),
        )
    except MidiError:
        return None
    clock = _tick_clock(score)
    tpq = score.ticks_per_quarter
    if _to_seconds(np.array([MAX_DELTA_TICKS]), clock, tpq)[0] <= spec.duration_seconds:
        return None  # a window longer than 2**28 ticks: the added note-offs could fall inside it
    arrays = [t.notes.numpy() for t in score.tracks if include_drums or not t.is_drum]
    if not arrays:
        return _note_arrays([])
    start_tick = np.concatenate([a["time"] for a in arrays]).astype(np.int64)
    end_tick = start_tick + np.concatenate([a["duration"] for a in arrays])
    if (end_tick < start_tick).any():
        return None  # tick overflow in a pathological file
    pitch = np.concatenate([a["pitch"] for a in arrays]).astype(np.int64)
    velocity = np.concatenate([a["velocity"] for a in arrays]).astype(np.int64)
    seconds = _to_seconds(np.concatenate([start_tick, end_tick]), clock, tpq)
    return pitch, seconds[: len(pitch)], seconds[len(pitch) :], velocity


def midi_to_piano_roll(
    midi: MidiLike,
    spec: PianoRollSpec,
    source: str | None = None,
    include_drums: bool = False,
) -> np.ndarray:
    """Render MIDI into a ``[num_pitches, num_frames]`` float32 piano roll.

    Args:
        midi: a Standard MIDI File as bytes, a path to a ``.mid`` file, or a
            ``pretty_midi.PrettyMIDI`` (whose parser has already dropped
            note-ons without note-offs).
        spec: the roll's geometry.
        source: what to name in error messages (segment_id or path); defaults to
            the path, or "<bytes>".
        include_drums: keep channel-10 / ``is_drum`` notes.

    Returns:
        float32 array with values ``velocity / 127`` in [0, 1].

    Raises:
        MidiError: for unreadable, empty, truncated or malformed MIDI, naming ``source``.
    """
    name = _source_name(midi, source)
    if isinstance(midi, pretty_midi.PrettyMIDI):
        return _render(_note_arrays(_notes_from_pretty_midi(midi, include_drums)), spec)
    data = _read_bytes(midi, name)
    layout = read_midi_layout(data, source=name)
    notes = _notes_with_symusic(data, layout, spec, include_drums, name)
    if notes is None:
        midi_file = _parse_smf(data, name)
        notes = _note_arrays(_notes_from_midi_file(midi_file, spec.duration_seconds, include_drums, name))
    return _render(notes, spec)


def _render(notes, spec: PianoRollSpec) -> np.ndarray:
    """Fill a roll from note arrays: each note covers its frames, the louder note wins a cell."""
    pitch, start, end, velocity = notes
    roll = np.zeros(spec.shape, dtype=np.float32)
    fps = spec.frames_per_second
    rows = pitch - spec.lowest_pitch
    first_raw = np.floor(start * fps + _FRAME_EPS)
    first = np.maximum(first_raw, 0.0)
    last = np.minimum(np.maximum(np.ceil(end * fps - _FRAME_EPS), first_raw + 1), spec.num_frames)
    keep = (rows >= 0) & (rows < spec.num_pitches) & (first < last)
    if not keep.any():
        return roll
    first, last = first[keep].astype(np.int64), last[keep].astype(np.int64)
    lengths = last - first
    # Flat index of every covered cell: row * num_frames + first, ..., row * num_frames + last - 1.
    run_starts = np.cumsum(lengths) - lengths
    total = int(run_starts[-1] + lengths[-1])
    cells = np.repeat(rows[keep] * spec.num_frames + first - run_starts, lengths) + np.arange(total)
    values = (np.clip(velocity[keep], 0, 127) / 127.0).astype(np.float32)
    np.maximum.at(roll.reshape(-1), cells, np.repeat(values, lengths))
    return roll


# ---------------------------------------------------------------------------
# Writing MIDI
# ---------------------------------------------------------------------------


def _validate_roll(roll, spec: PianoRollSpec, source: str) -> np.ndarray:
    try:
        array = np.asarray(roll, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{source}: cannot convert the piano roll to a float array ({exc}).") from None
    if array.shape != spec.shape:
        raise DataError(
            f"{source}: expected a piano roll of shape (num_pitches, num_frames) = {spec.shape}. "
            f"Received: shape={tuple(array.shape)} (ndim={array.ndim})"
        )
    if np.isnan(array).any():
        count = int(np.isnan(array).sum())
        raise DataError(f"{source}: the piano roll holds {count} NaN value(s); expected values in [0, 1].")
    if array.size and (array.min() < 0.0 or array.max() > 1.0):
        raise DataError(
            f"{source}: piano roll values must lie in [0, 1]. "
            f"Received: min={float(array.min())!r}, max={float(array.max())!r}"
        )
    return array


def piano_roll_notes(
    roll,
    spec: PianoRollSpec,
    threshold: float = 0.0,
    min_velocity: int = 1,
    source: str = "piano roll",
) -> list[tuple[int, float, float, int]]:
    """The notes of a piano roll: each maximal run of frames above ``threshold``.

    Returns:
        A list of ``(pitch, start_seconds, end_seconds, velocity)`` sorted by
        start, then pitch. Velocity is ``round(mean run value * 127)`` clipped to
        ``[min_velocity, 127]``.

    Raises:
        DataError: for a roll of the wrong shape, with NaN, or values outside [0, 1].
    """
    array = _validate_roll(roll, spec, source)
    if not 1 <= int(min_velocity) <= 127:
        raise DataError(f"{source}: min_velocity must be in [1, 127]. Received: min_velocity={min_velocity!r}")
    active = array > threshold
    # Run boundaries per pitch: +1 where a run starts, -1 one past where it ends.
    padded = np.zeros((array.shape[0], array.shape[1] + 2), dtype=np.int8)
    padded[:, 1:-1] = active
    edges = np.diff(padded, axis=1)
    starts_p, starts_f = np.nonzero(edges == 1)
    ends_p, ends_f = np.nonzero(edges == -1)
    # np.nonzero is row-major, so starts and ends pair up in order.
    cumulative = np.concatenate([np.zeros((array.shape[0], 1)), np.cumsum(array, axis=1, dtype=np.float64)], axis=1)
    fps = spec.frames_per_second
    notes = []
    for row, first, last in zip(starts_p.tolist(), starts_f.tolist(), ends_f.tolist()):
        mean = (cumulative[row, last] - cumulative[row, first]) / (last - first)
        velocity = int(min(max(round(mean * 127), int(min_velocity)), 127))
        notes.append((spec.lowest_pitch + row, first / fps, last / fps, velocity))
    notes.sort(key=lambda n: (n[1], n[0]))
    return notes


def _resolution(tempo: float, fps: float) -> int:
    """A ticks-per-beat value that makes one frame a whole number of ticks, when one exists."""
    for resolution in (220, 240, 384, 480, 960, 1920, 3840):
        ticks_per_frame = tempo * resolution / (60.0 * fps)
        if abs(ticks_per_frame - round(ticks_per_frame)) < 1e-9:
            return resolution
    return 960


def piano_roll_to_midi(
    roll,
    spec: PianoRollSpec,
    program: int = 0,
    threshold: float = 0.0,
    tempo: float = 120.0,
    min_velocity: int = 1,
    source: str = "piano roll",
) -> pretty_midi.PrettyMIDI:
    """Turn a piano roll into a one-instrument ``pretty_midi.PrettyMIDI``.

    Each maximal run of consecutive frames with value above ``threshold`` on a
    pitch becomes one note from ``first / fps`` to ``(last + 1) / fps`` seconds,
    with velocity ``round(mean value * 127)`` clipped to ``[min_velocity, 127]``.
    A change of value inside a run does not split the note.

    Args:
        roll: array ``[num_pitches, num_frames]`` with values in [0, 1].
        spec: the roll's geometry.
        program: General MIDI program (0..127) of the instrument.
        threshold: a cell is on when its value is strictly greater.
        tempo: tempo in bpm written to the file (note times stay in seconds).
        min_velocity: lowest velocity written (a quiet run stays audible).
        source: what to name in error messages.

    Raises:
        DataError: for a roll of the wrong shape, with NaN or values outside [0, 1],
            or for an invalid program, tempo or min_velocity.
    """
    if not (isinstance(program, (int, np.integer)) and 0 <= program <= 127):
        raise DataError(f"{source}: program must be an integer in [0, 127]. Received: program={program!r}")
    if not (isinstance(tempo, (int, float, np.integer, np.floating)) and math.isfinite(tempo) and tempo > 0):
        raise DataError(f"{source}: tempo must be a positive number of bpm. Received: tempo={tempo!r}")
    notes = piano_roll_notes(roll, spec, threshold=threshold, min_velocity=min_velocity, source=source)
    resolution = _resolution(float(tempo), spec.frames_per_second)
    pm = pretty_midi.PrettyMIDI(resolution=resolution, initial_tempo=float(tempo))
    instrument = pretty_midi.Instrument(program=int(program))
    instrument.notes = [pretty_midi.Note(velocity=v, pitch=p, start=s, end=e) for p, s, e, v in notes]
    pm.instruments.append(instrument)
    return pm


def piano_roll_to_midi_bytes(roll, spec: PianoRollSpec, **kwargs) -> bytes:
    """Like :func:`piano_roll_to_midi`, returning the Standard MIDI File bytes."""
    buffer = io.BytesIO()
    piano_roll_to_midi(roll, spec, **kwargs).write(buffer)
    return buffer.getvalue()


def write_midi(roll, path, spec: PianoRollSpec, **kwargs) -> pathlib.Path:
    """Write a piano roll as a Standard MIDI File at ``path`` (parent folders are created).

    Returns:
        The path written.
    """
    path = pathlib.Path(path)
    data = piano_roll_to_midi_bytes(roll, spec, source=kwargs.pop("source", str(path)), **kwargs)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    except OSError as exc:
        raise MidiError(f"{path}: cannot write the MIDI file ({exc.strerror or exc}).") from exc
    return path
