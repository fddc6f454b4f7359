"""MIDI bytes -> piano roll throughput: chroma_keras vs the source project's mido walk vs pretty_midi.

Generates a seeded corpus of realistic multi-track segment MIDI files in memory (conductor
track, bass / chords / melody / drums, humanised timing, controllers, pitch bends, tempo
changes, notes left without a note-off as a segment cut leaves them), then times in one
process, on the source project's grid (128 pitches, 100 ms frames, 256 frames):

* ``chroma_keras``: :func:`chroma_keras.preprocessing.pianoroll.midi_to_piano_roll`
  (validation + symusic + vectorised numpy);
* ``mido (source method)``: :func:`mido_piano_roll`, a reimplementation of the source
  project's ``midi_bytes_to_piano_roll`` (source-project.md §3.3): walk every track's
  messages with mido, a tempo per track (default 500000 us), ``mido.tick2second``,
  ``velocity / 127``, notes without note-off sustained to the window end. It fills the
  same grid as ours (same frame rounding, louder note wins) so the rolls can be compared;
* ``pretty_midi``: ``PrettyMIDI(...)`` + ``get_piano_roll(fs)`` cropped to the window.

Prints segments/s of each and the ratios. Usage:

    .venv/bin/python benchmarks/midi_pianoroll_throughput.py [--files 300] [--repeats 3] [--seed 0] \
        [--grid source|default]

``--grid default`` times chroma_keras' default roll (pitches 24..95, 8 fps, 128 frames) instead.

The corpus generator and the mido reference are imported by the parity tests
(tests/preprocessing/test_pianoroll.py).
"""

from __future__ import annotations

import argparse
import io
import math
import time
from collections import defaultdict, deque

import mido
import numpy as np
import pretty_midi

from chroma_keras.preprocessing.pianoroll import PianoRollSpec, midi_to_piano_roll

#: The source project's roll: 128 pitches x 256 frames of 100 ms (25.6 s).
SOURCE_SPEC = PianoRollSpec(lowest_pitch=0, num_pitches=128, frames_per_second=10.0, num_frames=256)
_FRAME_EPS = 1e-2  # as in chroma_keras.preprocessing.pianoroll


# ---------------------------------------------------------------------------
# Corpus
# ---------------------------------------------------------------------------

_PARTS = {
    # name: (channel, program, lowest pitch, highest pitch, notes per beat, length in beats, polyphony)
    "bass": (0, 33, 28, 52, 1.0, 0.9, 1),
    "chords": (1, 89, 48, 72, 0.25, 3.8, 3),
    "melody": (2, 73, 60, 86, 2.0, 0.45, 1),
    "arpeggio": (3, 46, 55, 79, 4.0, 0.22, 1),
    "drums": (9, 0, 36, 51, 4.0, 0.1, 2),
}


def _to_delta(events):
    """mido messages with absolute ticks in ``.time`` -> delta times, in time order (stable)."""
    events = sorted(events, key=lambda m: m.time)
    now = 0
    out = []
    for msg in events:
        out.append(msg.copy(time=msg.time - now))
        now = msg.time
    return out


def generate_segment(
    rng: np.random.Generator,
    *,
    grid_aligned: bool = False,
    dangling: bool = True,
    same_key_overlaps: bool = True,
    controllers: bool = True,
) -> bytes:
    """One realistic multi-track segment as Standard MIDI File bytes.

    Args:
        rng: the random generator (the corpus is reproducible from its seed).
        grid_aligned: put every note start and end on a 100 ms frame boundary (a
            constant 120 bpm with 5 frames per beat), for comparisons with pretty_midi.
        dangling: sometimes drop a track's last note-offs, as cutting a segment does.
        same_key_overlaps: sometimes strike a sounding key again before its release.
        controllers: add modulation / expression / pitch-bend / sustain-pedal events.

    Returns:
        SMF bytes (format 1; tempo events copied into every track, as the source
        project's segment cutter keeps each track's set_tempo).
    """
    tpb = 480 if grid_aligned else int(rng.choice([96, 120, 192, 384, 480, 960]))
    bpm = 120.0 if grid_aligned else float(rng.uniform(62, 172))
    beats = int(rng.integers(16, 48)) if not grid_aligned else int(rng.integers(16, 40))
    tempo_events = [mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0)]
    if not grid_aligned and rng.random() < 0.35:
        change_at = int(rng.integers(4, beats // 2 + 5)) * tpb
        tempo_events.append(
            mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm * rng.uniform(0.8, 1.25)), time=change_at)
        )

    midi = mido.MidiFile(type=1, ticks_per_beat=tpb)
    conductor = [
        mido.MetaMessage("track_name", name="conductor", time=0),
        mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0),
        mido.MetaMessage("key_signature", key=str(rng.choice(["C", "G", "Eb", "F#m"])), time=0),
        *[m.copy() for m in tempo_events],
        mido.MetaMessage("end_of_track", time=beats * tpb),
    ]
    midi.tracks.append(mido.MidiTrack(_to_delta(conductor)))

    names = [n for n in _PARTS if rng.random() < 0.7] or ["melody"]
    step = tpb // 5 if grid_aligned else 1  # 100 ms at 120 bpm / 480 tpb = 96 ticks = tpb / 5
    for name in names:
        channel, program, low, high, rate, length, polyphony = _PARTS[name]
        events = [mido.MetaMessage("track_name", name=name, time=0), *[m.copy() for m in tempo_events]]
        if channel != 9:
            events.append(mido.Message("program_change", channel=channel, program=program, time=0))
        count = max(1, int(beats * rate * rng.uniform(0.6, 1.0)))
        onsets = np.sort(rng.uniform(0, beats - 0.5, count)) * tpb
        sounding: dict[int, int] = {}
        for onset in onsets:
            start = int(onset)
            if not grid_aligned:
                start = max(0, start + int(rng.normal(0, tpb / 40)))
            duration = max(1, int(length * tpb * rng.uniform(0.5, 1.5)))
            if grid_aligned:
                start = int(round(start / step)) * step
                duration = max(1, int(round(duration / step))) * step
            chord = rng.choice(np.arange(low, high + 1), size=polyphony, replace=False)
            for pitch in chord.tolist():
                if not same_key_overlaps and sounding.get(pitch, -1) >= start:
                    continue
                velocity = int(np.clip(rng.normal(80, 20), 1, 127))
                events.append(mido.Message("note_on", channel=channel, note=pitch, velocity=velocity, time=start))
                end = start + duration
                sounding[pitch] = max(sounding.get(pitch, -1), end)
                if rng.random() < 0.5:
                    events.append(mido.Message("note_off", channel=channel, note=pitch, velocity=64, time=end))
                else:
                    events.append(mido.Message("note_on", channel=channel, note=pitch, velocity=0, time=end))
            if controllers and rng.random() < 0.3:
                control = int(rng.choice([1, 11, 64]))
                events.append(
                    mido.Message(
                        "control_change", channel=channel, control=control, value=int(rng.integers(0, 128)), time=start
                    )
                )
            if controllers and rng.random() < 0.1:
                events.append(
                    mido.Message("pitchwheel", channel=channel, pitch=int(rng.integers(-8192, 8192)), time=start)
                )
        if dangling and rng.random() < 0.3:
            offs = [
                i
                for i, m in enumerate(events)
                if m.type in ("note_off", "note_on") and (m.type == "note_off" or m.velocity == 0)
            ]
            latest = sorted(offs, key=lambda i: events[i].time)[-int(rng.integers(1, 3)) :]
            events = [m for i, m in enumerate(events) if i not in set(latest)]
        midi.tracks.append(mido.MidiTrack(_to_delta(events)))
    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.getvalue()


def generate_corpus(count: int, seed: int = 0, **kwargs) -> list[bytes]:
    """``count`` segments from :func:`generate_segment`, reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    return [generate_segment(rng, **kwargs) for _ in range(count)]


# ---------------------------------------------------------------------------
# The two reference readers
# ---------------------------------------------------------------------------


def mido_piano_roll(data: bytes, spec: PianoRollSpec = SOURCE_SPEC, include_drums: bool = False) -> np.ndarray:
    """The source project's mido walk, filling our grid (see the module docstring).

    Args:
        data: SMF bytes.
        spec: roll geometry.
        include_drums: keep channel-10 notes.

    Returns:
        float32 roll ``[num_pitches, num_frames]`` with ``velocity / 127``.
    """
    midi = mido.MidiFile(file=io.BytesIO(data))
    window_end = spec.duration_seconds
    notes = []
    for track in midi.tracks:
        tempo = 500_000
        now = 0.0
        sounding = defaultdict(deque)
        for msg in track:
            now += mido.tick2second(msg.time, midi.ticks_per_beat, tempo)
            if msg.type == "set_tempo":
                tempo = msg.tempo
            elif msg.type in ("note_on", "note_off"):
                if msg.channel == 9 and not include_drums:
                    continue
                key = (msg.channel, msg.note)
                if msg.type == "note_on" and msg.velocity > 0:
                    sounding[key].append((now, msg.velocity))
                elif sounding[key]:
                    start, velocity = sounding[key].popleft()
                    notes.append((msg.note, start, now, velocity))
        for (_, pitch), pending in sounding.items():
            notes.extend((pitch, start, max(start, window_end), velocity) for start, velocity in pending)

    roll = np.zeros(spec.shape, np.float32)
    fps = spec.frames_per_second
    for pitch, start, end, velocity in notes:
        row = pitch - spec.lowest_pitch
        if not 0 <= row < spec.num_pitches:
            continue
        first = math.floor(start * fps + _FRAME_EPS)
        last = min(max(math.ceil(end * fps - _FRAME_EPS), first + 1), spec.num_frames)
        first = max(first, 0)
        if first < last:
            cells = roll[row, first:last]
            np.maximum(cells, np.float32(velocity / 127.0), out=cells)
    return roll


def pretty_midi_piano_roll(data: bytes, spec: PianoRollSpec = SOURCE_SPEC) -> np.ndarray:
    """pretty_midi's ``get_piano_roll`` cropped / padded to the window (values: summed velocities).

    pretty_midi drops notes without note-off, skips drums, extends notes under the
    sustain pedal and covers frames ``int(start * fs)`` to ``int(end * fs)``.
    """
    roll = pretty_midi.PrettyMIDI(io.BytesIO(data)).get_piano_roll(fs=spec.frames_per_second)
    out = np.zeros(spec.shape, np.float32)
    rows = roll[spec.lowest_pitch : spec.highest_pitch, : spec.num_frames]
    out[:, : rows.shape[1]] = rows
    return out


# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------


def _throughput(function, corpus, repeats: int) -> float:
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        for data in corpus:
            function(data)
        best = min(best, time.perf_counter() - start)
    return len(corpus) / best


def main() -> None:
    """Generate the corpus, time the three readers, print segments/s and ratios."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--grid", choices=["source", "default"], default="source")
    args = parser.parse_args()
    spec = SOURCE_SPEC if args.grid == "source" else PianoRollSpec()

    corpus = generate_corpus(args.files, args.seed)
    sizes = np.array([len(d) for d in corpus])
    print(f"{len(corpus)} segments, {sizes.mean() / 1024:.1f} KiB mean, grid {spec}")
    mismatches = sum(not np.array_equal(midi_to_piano_roll(d, spec), mido_piano_roll(d, spec)) for d in corpus)
    print(f"rolls differing from the mido reference: {mismatches}")

    results = {
        "chroma_keras": _throughput(lambda d: midi_to_piano_roll(d, spec), corpus, args.repeats),
        "mido (source method)": _throughput(lambda d: mido_piano_roll(d, spec), corpus, max(1, args.repeats - 1)),
        "pretty_midi": _throughput(lambda d: pretty_midi_piano_roll(d, spec), corpus, max(1, args.repeats - 1)),
    }
    ours = results["chroma_keras"]
    print(f"{'reader':<24}{'segments/s':>12}{'chroma_keras is':>18}")
    for name, rate in results.items():
        print(f"{name:<24}{rate:>12.1f}{ours / rate:>17.1f}x")


if __name__ == "__main__":
    import warnings

    warnings.filterwarnings("ignore", module="pretty_midi")
    main()
