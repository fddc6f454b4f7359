"""A performance event vocabulary: NOTE_ON / NOTE_OFF / TIME_SHIFT / VELOCITY tokens.

The event representation of Performance RNN (Oore et al., 2018) and Music Transformer
(Huang et al., 2018): a performance is a stream of

* ``NOTE_ON(p)`` / ``NOTE_OFF(p)`` for the 128 MIDI pitches,
* ``TIME_SHIFT(k)``: move time forward ``k`` steps of ``time_step_seconds`` (default
  10 ms), ``k = 1 .. max_shift_steps`` (default up to 1 s; longer gaps take several),
* ``VELOCITY(b)``: following note-ons get velocity bin ``b`` of ``num_velocity_bins``
  (32 by default); emitted only when the bin changes,

plus ``PAD`` (0), ``BOS`` (1) and ``EOS`` (2). With the defaults the ids are::

    0 PAD, 1 BOS, 2 EOS, 3..130 NOTE_ON, 131..258 NOTE_OFF,
    259..358 TIME_SHIFT 10..1000 ms, 359..390 VELOCITY   (vocab_size = 391)

Unlike REMI / CPWord (``midi_tokens``) time is absolute, in seconds, so expressive
timing survives without a beat grid, at the cost of longer sequences.

Encoding rules (what a round trip keeps): times are rounded to the step; a note
shorter than one step after rounding lasts one step; at one time step note-offs come
before note-ons (by pitch), so a re-struck key ends and restarts; a note-on for a key
that is still sounding ends the earlier note there (one voice per key). Velocities map
to bins ``velocity * num_velocity_bins // 128`` and decode to the middle of their bin.
Decoding ends notes left sounding at the sequence's last time.

MIDI bytes pass :mod:`~chroma_keras.preprocessing.midi_validation` before symusic
parses them; notes without a note-off end where their track ends; drums are skipped
unless ``include_drums``. Decoded MIDI is one track at 120 bpm with 500 ticks per
quarter (1 tick = 1 ms), so times stay exact.

Example:

>>> from chroma_keras.preprocessing.midi_events import EventVocabulary
>>> vocab = EventVocabulary()
>>> ids = vocab.encode([(60, 0.0, 0.5, 100), (64, 0.25, 0.5, 100)])
>>> " ".join(vocab.token_name(i) for i in ids)
'BOS VELOCITY_25 NOTE_ON_60 TIME_SHIFT_25 NOTE_ON_64 TIME_SHIFT_25 NOTE_OFF_60 NOTE_OFF_64 EOS'
>>> vocab.decode(ids)
[(60, 0.0, 0.5, 101), (64, 0.25, 0.5, 101)]
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import symusic

from chroma_keras.errors import DataError
from chroma_keras.preprocessing.midi_validation import parse_score

PAD_ID, BOS_ID, EOS_ID = 0, 1, 2
_SPECIALS = ("PAD", "BOS", "EOS")
_TICKS_PER_QUARTER = 500  # at 120 bpm one tick is 1 ms


class EventVocabulary:
    """NOTE_ON / NOTE_OFF / TIME_SHIFT / VELOCITY event vocabulary (see the module docstring).

    Args:
        time_step_seconds: length of one time-shift step (default 10 ms).
        max_shift_steps: largest single time shift, in steps (default 100 = 1 s).
        num_velocity_bins: velocity bins (1..128; default 32).
        include_drums: encode drum-track (channel 10) notes too.
    """

    def __init__(
        self,
        time_step_seconds: float = 0.01,
        max_shift_steps: int = 100,
        num_velocity_bins: int = 32,
        include_drums: bool = False,
    ):
        if not (
            isinstance(time_step_seconds, (int, float)) and math.isfinite(time_step_seconds) and time_step_seconds > 0
        ):
            raise DataError(f"time_step_seconds must be a positive number. Received: {time_step_seconds!r}")
        for name, value, high in (
            ("max_shift_steps", max_shift_steps, 100_000),
            ("num_velocity_bins", num_velocity_bins, 128),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= high:
                raise DataError(f"{name} must be an integer in [1, {high}]. Received: {name}={value!r}")
        self.time_step_seconds = float(time_step_seconds)
        self.max_shift_steps = int(max_shift_steps)
        self.num_velocity_bins = int(num_velocity_bins)
        self.include_drums = bool(include_drums)
        # === Id layout ===
        self.note_on_offset = len(_SPECIALS)
        self.note_off_offset = self.note_on_offset + 128
        self.time_shift_offset = self.note_off_offset + 128
        self.velocity_offset = self.time_shift_offset + self.max_shift_steps
        self.vocab_size = self.velocity_offset + self.num_velocity_bins
        self.pad_id, self.bos_id, self.eos_id = PAD_ID, BOS_ID, EOS_ID

    # === Config ===

    def get_config(self) -> dict:
        """Constructor arguments; ``EventVocabulary(**config)`` rebuilds an equal vocabulary."""
        return {
            "time_step_seconds": self.time_step_seconds,
            "max_shift_steps": self.max_shift_steps,
            "num_velocity_bins": self.num_velocity_bins,
            "include_drums": self.include_drums,
        }

    @classmethod
    def from_config(cls, config: dict) -> "EventVocabulary":
        """Rebuild from :meth:`get_config`."""
        return cls(**config)

    def __eq__(self, other) -> bool:
        return isinstance(other, EventVocabulary) and self.get_config() == other.get_config()

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"EventVocabulary({args}, vocab_size={self.vocab_size})"

    # === Ids ===

    def velocity_bin(self, velocity: int) -> int:
        """The bin of a MIDI velocity (1..127)."""
        return min(int(velocity), 127) * self.num_velocity_bins // 128

    def bin_velocity(self, index: int) -> int:
        """The velocity a bin decodes to: the middle of the velocities in it (>= 1)."""
        low = -(-index * 128 // self.num_velocity_bins)
        high = -(-(index + 1) * 128 // self.num_velocity_bins) - 1
        return max(1, min(127, (low + min(high, 127)) // 2))

    def token_name(self, token_id: int) -> str:
        """A readable name: ``NOTE_ON_60``, ``NOTE_OFF_60``, ``TIME_SHIFT_<steps>``, ``VELOCITY_<bin>``, ``PAD``..."""
        token_id = int(token_id)
        if not 0 <= token_id < self.vocab_size:
            raise DataError(f"token id {token_id} is outside the vocabulary [0, {self.vocab_size}).")
        if token_id < self.note_on_offset:
            return _SPECIALS[token_id]
        if token_id < self.note_off_offset:
            return f"NOTE_ON_{token_id - self.note_on_offset}"
        if token_id < self.time_shift_offset:
            return f"NOTE_OFF_{token_id - self.note_off_offset}"
        if token_id < self.velocity_offset:
            return f"TIME_SHIFT_{token_id - self.time_shift_offset + 1}"
        return f"VELOCITY_{token_id - self.velocity_offset}"

    # === Encoding ===

    def encode(self, midi, *, source: str | None = None, add_bos_eos: bool = True) -> np.ndarray:
        """Encode MIDI bytes or notes into event ids.

        Args:
            midi: Standard MIDI File bytes, or notes as ``(pitch, start_s, end_s, velocity)``
                tuples (or an ``[N, 4]`` array).
            source: what to name in error messages.
            add_bos_eos: wrap the events in BOS ... EOS.

        Returns:
            int32 ids ``[T]``.

        Raises:
            MidiError: for malformed MIDI bytes.
            DataError: for notes with a bad shape, pitch, velocity or times.
        """
        if isinstance(midi, (bytes, bytearray, memoryview)):
            notes = self._read_midi(bytes(midi), source or "<bytes>")
        else:
            notes = self._check_notes(midi, source or "notes")
        ids = self._events(notes)
        if add_bos_eos:
            ids = [self.bos_id, *ids, self.eos_id]
        return np.asarray(ids, np.int32)

    def encode_fixed(self, midi, max_events: int, *, source: str | None = None) -> tuple[np.ndarray, np.ndarray, int]:
        """Encode and cut / pad to ``max_events`` ids (BOS ... EOS, EOS lost when cut).

        Returns:
            ``(ids [max_events] int32, mask [max_events] bool, length before cutting)``.
        """
        ids = self.encode(midi, source=source)
        out = np.full(int(max_events), self.pad_id, np.int32)
        kept = ids[:max_events]
        out[: len(kept)] = kept
        mask = np.zeros(int(max_events), bool)
        mask[: len(kept)] = True
        return out, mask, len(ids)

    def _read_midi(self, data: bytes, source: str) -> np.ndarray:
        score = parse_score(data, source=source).to("second")
        rows = []
        for track in score.tracks:
            if track.is_drum and not self.include_drums:
                continue
            arrays = track.notes.numpy()
            start = arrays["time"].astype(np.float64)
            rows.append(np.stack([arrays["pitch"], start, start + arrays["duration"], arrays["velocity"]], axis=1))
        return np.concatenate(rows) if rows else np.zeros((0, 4))

    @staticmethod
    def _check_notes(notes, source: str) -> np.ndarray:
        try:
            array = np.asarray(list(notes) if not isinstance(notes, np.ndarray) else notes, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise DataError(f"{source}: expected notes as (pitch, start, end, velocity) tuples ({exc}).") from None
        array = array.reshape(-1, 4) if array.size == 0 else array
        if array.ndim != 2 or array.shape[1] != 4:
            raise DataError(
                f"{source}: expected notes of shape [N, 4] (pitch, start, end, velocity). Received: {array.shape}"
            )
        pitch, start, end, velocity = array.T
        if not np.isfinite(array).all():
            raise DataError(f"{source}: note times and values must be finite.")
        if ((pitch < 0) | (pitch > 127) | (pitch != np.round(pitch))).any():
            raise DataError(f"{source}: pitches must be integers in [0, 127].")
        if ((velocity < 1) | (velocity > 127)).any():
            raise DataError(f"{source}: velocities must be in [1, 127].")
        if (start < 0).any() or (end < start).any():
            raise DataError(f"{source}: expected 0 <= start <= end for every note.")
        return array

    def _events(self, notes: np.ndarray) -> list[int]:
        step = self.time_step_seconds
        pitch = notes[:, 0].astype(np.int64)
        start = np.round(notes[:, 1] / step).astype(np.int64)
        end = np.maximum(np.round(notes[:, 2] / step).astype(np.int64), start + 1)
        velocity = notes[:, 3].astype(np.int64)
        # One voice per key: sort by (pitch, start), drop repeats at one step (keep the louder),
        # and end a note where the next one of its key starts.
        order = np.lexsort((-velocity, start, pitch))
        pitch, start, end, velocity = pitch[order], start[order], end[order], velocity[order]
        first_at_step = np.ones(len(pitch), bool)
        first_at_step[1:] = (pitch[1:] != pitch[:-1]) | (start[1:] != start[:-1])
        pitch, start, end, velocity = (
            pitch[first_at_step],
            start[first_at_step],
            end[first_at_step],
            velocity[first_at_step],
        )
        same_key_next = np.append(pitch[1:] == pitch[:-1], False)
        end = np.where(same_key_next, np.minimum(end, np.append(start[1:], 0)), end)

        # Events sorted by (time, kind: off before on, pitch).
        times = np.concatenate([end, start])
        kinds = np.concatenate([np.zeros(len(end), np.int64), np.ones(len(start), np.int64)])
        pitches = np.concatenate([pitch, pitch])
        velocities = np.concatenate([np.zeros(len(end), np.int64), velocity])
        order = np.lexsort((pitches, kinds, times))

        ids: list[int] = []
        now = 0
        current_bin = None
        for index in order.tolist():
            time = int(times[index])
            while time > now:
                shift = min(time - now, self.max_shift_steps)
                ids.append(self.time_shift_offset + shift - 1)
                now += shift
            if kinds[index] == 0:
                ids.append(self.note_off_offset + int(pitches[index]))
            else:
                velocity_bin = self.velocity_bin(velocities[index])
                if velocity_bin != current_bin:
                    ids.append(self.velocity_offset + velocity_bin)
                    current_bin = velocity_bin
                ids.append(self.note_on_offset + int(pitches[index]))
        return ids

    # === Decoding ===

    def decode(
        self, ids: Sequence[int] | np.ndarray, *, source: str = "event ids"
    ) -> list[tuple[int, float, float, int]]:
        """Decode event ids into notes.

        PAD and BOS are skipped, decoding stops at EOS, a NOTE_OFF of a silent key is
        ignored, and notes still sounding at the end end at the last time reached.

        Args:
            ids: ``[T]`` ints.
            source: what to name in error messages.

        Returns:
            ``(pitch, start_s, end_s, velocity)`` tuples sorted by start, then pitch.

        Raises:
            DataError: for ids that are not a 1-D integer sequence inside the vocabulary.
        """
        array = np.asarray(ids)
        if array.ndim != 1 or (array.size and not np.issubdtype(array.dtype, np.integer)):
            raise DataError(
                f"{source}: expected a 1-D sequence of integer ids. Received: shape={array.shape}, dtype={array.dtype}"
            )
        if array.size and ((array < 0) | (array >= self.vocab_size)).any():
            raise DataError(f"{source}: ids must lie in [0, {self.vocab_size}).")
        step = self.time_step_seconds
        now = 0
        velocity = self.bin_velocity(self.num_velocity_bins // 2)
        sounding: dict[int, tuple[int, int]] = {}
        notes = []
        for token in array.tolist():
            if token == self.eos_id:
                break
            if token < self.note_on_offset:
                continue
            if token < self.note_off_offset:
                pitch = token - self.note_on_offset
                if pitch in sounding:
                    began, vel = sounding.pop(pitch)
                    notes.append((pitch, began, now, vel))
                sounding[pitch] = (now, velocity)
            elif token < self.time_shift_offset:
                pitch = token - self.note_off_offset
                if pitch in sounding:
                    began, vel = sounding.pop(pitch)
                    notes.append((pitch, began, now, vel))
            elif token < self.velocity_offset:
                now += token - self.time_shift_offset + 1
            else:
                velocity = self.bin_velocity(token - self.velocity_offset)
        notes.extend((pitch, began, now, vel) for pitch, (began, vel) in sounding.items())
        notes.sort(key=lambda n: (n[1], n[0], n[2]))
        return [(p, round(s * step, 9), round(e * step, 9), v) for p, s, e, v in notes]

    def decode_midi(self, ids, *, program: int = 0, source: str = "event ids") -> bytes:
        """Decode event ids into a one-track Standard MIDI File (120 bpm, 1 tick = 1 ms).

        Args:
            ids: ``[T]`` ints.
            program: General MIDI program of the track (0..127).
            source: what to name in error messages.

        Returns:
            SMF bytes.
        """
        if isinstance(program, bool) or not isinstance(program, (int, np.integer)) or not 0 <= program <= 127:
            raise DataError(f"{source}: program must be an integer in [0, 127]. Received: program={program!r}")
        score = symusic.Score(_TICKS_PER_QUARTER)
        score.tempos.append(symusic.Tempo(0, 120.0))
        track = symusic.Track("events", int(program), False)
        for pitch, start, end, velocity in self.decode(ids, source=source):
            begin = int(round(start * 1000))
            track.notes.append(symusic.Note(begin, max(int(round(end * 1000)) - begin, 1), pitch, velocity))
        score.tracks.append(track)
        return score.dumps_midi()
