"""Tests for chroma_keras.preprocessing.pianoroll (numpy / mido / pretty_midi / symusic; no keras)."""

import importlib.util
import io
import pathlib

import mido
import numpy as np
import pretty_midi
import pytest
import symusic

from chroma_keras.errors import DataError, MidiError, PresetError
from chroma_keras.preprocessing import pianoroll
from chroma_keras.preprocessing.pianoroll import (
    PianoRollSpec,
    midi_to_piano_roll,
    piano_roll_notes,
    piano_roll_to_midi,
    piano_roll_to_midi_bytes,
    write_midi,
)

SPEC = PianoRollSpec()


# --- helpers ------------------------------------------------------------------


def random_roll(spec, seed, runs=60):
    """Runs of constant velocity (k / 127), same-pitch runs separated by >= 1 empty frame."""
    rng = np.random.default_rng(seed)
    roll = np.zeros(spec.shape, np.float32)
    for _ in range(runs):
        row = int(rng.integers(spec.num_pitches))
        first = int(rng.integers(spec.num_frames))
        last = min(first + int(rng.integers(1, 12)), spec.num_frames)
        lo, hi = max(first - 1, 0), min(last + 1, spec.num_frames)
        if roll[row, lo:hi].any():
            continue
        roll[row, first:last] = np.float32(int(rng.integers(1, 128)) / 127)
    # Edge cases: a run from frame 0, a run to the last frame, lowest and highest rows.
    roll[0, 0:4] = 0
    roll[0, 0:3] = np.float32(1 / 127)
    roll[-1, -3:] = 0
    roll[-1, -2:] = np.float32(127 / 127)
    return roll


def smf(tracks, ticks_per_beat=480, file_type=1):
    """Raw Standard MIDI File bytes from lists of mido messages (delta times in ticks)."""
    midi = mido.MidiFile(type=file_type, ticks_per_beat=ticks_per_beat)
    for messages in tracks:
        midi.tracks.append(mido.MidiTrack(messages))
    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.getvalue()


def on(note, time=0, velocity=100, channel=0):
    return mido.Message("note_on", note=note, velocity=velocity, time=time, channel=channel)


def off(note, time=0, channel=0):
    return mido.Message("note_off", note=note, velocity=0, time=time, channel=channel)


def frame_of(seconds, spec=SPEC):
    return int(seconds * spec.frames_per_second)


# --- spec ---------------------------------------------------------------------


def test_spec_defaults_and_properties():
    assert SPEC.shape == (72, 128)
    assert SPEC.duration_seconds == 16.0
    assert SPEC.highest_pitch == 96


def test_spec_from_config():
    config = {"preprocessing": {"midi": {"piano_roll": {"lowest_pitch": 36, "num_frames": 64}}}}
    spec = PianoRollSpec.from_config(config)
    assert spec == PianoRollSpec(lowest_pitch=36, num_pitches=72, frames_per_second=8.0, num_frames=64)
    assert PianoRollSpec.from_config({}) == PianoRollSpec()
    assert PianoRollSpec.from_config({"preprocessing": {"midi": {}}}) == PianoRollSpec()
    with pytest.raises(PresetError, match=r"preprocessing\.midi\.piano_roll\.num_pitchez"):
        PianoRollSpec.from_config({"preprocessing": {"midi": {"piano_roll": {"num_pitchez": 3}}}})
    with pytest.raises(PresetError, match=r"preprocessing\.midi\.piano_roll\.num_frames"):
        PianoRollSpec.from_config({"preprocessing": {"midi": {"piano_roll": {"num_frames": "many"}}}})
    with pytest.raises(PresetError, match="<= 128"):
        PianoRollSpec.from_config({"preprocessing": {"midi": {"piano_roll": {"lowest_pitch": 100}}}})


def test_spec_rejects_bad_values():
    with pytest.raises(DataError, match="frames_per_second"):
        PianoRollSpec(frames_per_second=0)
    with pytest.raises(DataError, match="num_frames"):
        PianoRollSpec(num_frames=0)


# --- round trip -----------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, tempo",
    [
        (SPEC, 120.0),
        (PianoRollSpec(lowest_pitch=36, num_pitches=48, frames_per_second=10.0, num_frames=50), 97.0),
        (PianoRollSpec(lowest_pitch=21, num_pitches=88, frames_per_second=6.0, num_frames=40), 133.3),
    ],
)
def test_round_trip_roll_midi_roll(spec, tempo):
    roll = random_roll(spec, seed=int(tempo))
    data = piano_roll_to_midi_bytes(roll, spec, tempo=tempo, program=40)
    assert data.startswith(b"MThd")
    back = midi_to_piano_roll(data, spec)
    assert back.dtype == np.float32 and back.shape == spec.shape
    np.testing.assert_array_equal(back, roll)

    expected = piano_roll_notes(roll, spec)
    assert len(expected) > 20

    # pretty_midi reads the same notes.
    pm = pretty_midi.PrettyMIDI(io.BytesIO(data))
    assert [inst.program for inst in pm.instruments] == [40]
    got = sorted((n.pitch, n.start, n.end, n.velocity) for n in pm.instruments[0].notes)
    assert_same_notes(got, expected)

    # symusic reads the same notes.
    score = symusic.Score.from_midi(data).to("second")
    got = sorted((n.pitch, n.time, n.end, n.velocity) for track in score.tracks for n in track.notes)
    assert_same_notes(got, expected)


def assert_same_notes(got, expected):
    expected = sorted(expected)
    assert len(got) == len(expected)
    for (p1, s1, e1, v1), (p2, s2, e2, v2) in zip(got, expected):
        assert p1 == p2 and v1 == v2
        assert abs(s1 - s2) < 1e-3 and abs(e1 - e2) < 1e-3


def test_round_trip_of_pretty_midi_object_and_file(tmp_path):
    roll = random_roll(SPEC, seed=3)
    pm = piano_roll_to_midi(roll, SPEC)
    np.testing.assert_array_equal(midi_to_piano_roll(pm, SPEC), roll)
    path = write_midi(roll, tmp_path / "sub" / "x.mid", SPEC)
    assert path.exists()
    np.testing.assert_array_equal(midi_to_piano_roll(path, SPEC), roll)
    np.testing.assert_array_equal(midi_to_piano_roll(str(path), SPEC), roll)


def test_velocity_inside_a_run_is_averaged_and_not_split():
    roll = np.zeros(SPEC.shape, np.float32)
    roll[10, 4:8] = [0.2, 0.4, 0.6, 0.8]
    notes = piano_roll_notes(roll, SPEC)
    assert notes == [(SPEC.lowest_pitch + 10, 0.5, 1.0, round(0.5 * 127))]
    # threshold and min_velocity
    roll[11, 20:22] = 0.001
    assert len(piano_roll_notes(roll, SPEC, threshold=0.01)) == 1
    quiet = [n for n in piano_roll_notes(roll, SPEC, min_velocity=5) if n[0] == SPEC.lowest_pitch + 11]
    assert quiet[0][3] == 5


# --- reading raw MIDI ------------------------------------------------------------


def test_dangling_note_on_is_closed_at_window_end():
    # 480 ticks per beat at 120 bpm: 960 ticks per second.
    data = smf([[on(60, 0), on(64, 960), off(64, 960)]])  # 60 never gets a note-off
    roll = midi_to_piano_roll(data, SPEC, source="01_01_seg_0001_track_01")
    row60, row64 = 60 - SPEC.lowest_pitch, 64 - SPEC.lowest_pitch
    assert np.all(roll[row60] == np.float32(100 / 127))  # from 0 s to the end of the 16 s window
    assert np.flatnonzero(roll[row64]).tolist() == list(range(frame_of(1.0), frame_of(2.0)))
    # pretty_midi drops the dangling note; we keep it.
    assert len(pretty_midi.PrettyMIDI(io.BytesIO(data)).instruments[0].notes) == 1


def test_note_on_with_velocity_zero_is_a_note_off():
    data = smf([[on(62, 0, velocity=90), on(62, 480, velocity=0)]])
    roll = midi_to_piano_roll(data, SPEC)
    assert np.flatnonzero(roll[62 - SPEC.lowest_pitch]).tolist() == list(range(frame_of(0.5)))
    assert roll[62 - SPEC.lowest_pitch, 0] == np.float32(90 / 127)


def test_tempo_changes_are_honoured():
    # Conductor track: 120 bpm, then 60 bpm from tick 960 (= 1 s). Notes on a second track.
    conductor = [
        mido.MetaMessage("set_tempo", tempo=500_000, time=0),
        mido.MetaMessage("set_tempo", tempo=1_000_000, time=960),
    ]
    # Note 60: ticks 0..960 -> 0..1 s. Note 67: ticks 1440..1920; after tick 960 a tick
    # lasts 1/480 s, so 2.0..3.0 s (not 1.5..2.0 s as at a constant 120 bpm).
    notes = [on(60, 0), off(60, 960), on(67, 480), off(67, 480)]
    roll = midi_to_piano_roll(smf([conductor, notes]), SPEC)
    assert np.flatnonzero(roll[60 - SPEC.lowest_pitch]).tolist() == list(range(0, 8))
    assert np.flatnonzero(roll[67 - SPEC.lowest_pitch]).tolist() == list(range(16, 24))
    # Cross-check with pretty_midi's tempo handling.
    pm = pretty_midi.PrettyMIDI(io.BytesIO(smf([conductor, notes])))
    starts = sorted(n.start for n in pm.instruments[0].notes)
    assert starts == pytest.approx([0.0, 2.0])


def test_drums_are_excluded_unless_asked():
    data = smf([[on(36, 0, channel=9), off(36, 480, channel=9), on(48, 0), off(48, 480)]])
    roll = midi_to_piano_roll(data, SPEC)
    assert not roll[36 - SPEC.lowest_pitch].any()
    assert roll[48 - SPEC.lowest_pitch].any()
    with_drums = midi_to_piano_roll(data, SPEC, include_drums=True)
    assert with_drums[36 - SPEC.lowest_pitch].any()
    # The same for a PrettyMIDI with an is_drum instrument.
    pm = pretty_midi.PrettyMIDI()
    drums = pretty_midi.Instrument(0, is_drum=True)
    drums.notes.append(pretty_midi.Note(100, 40, 0.0, 1.0))
    pm.instruments.append(drums)
    assert not midi_to_piano_roll(pm, SPEC).any()
    assert midi_to_piano_roll(pm, SPEC, include_drums=True)[40 - SPEC.lowest_pitch].any()


def test_out_of_range_pitches_are_dropped():
    data = smf([[on(10, 0), on(23, 0), on(24, 0), on(95, 0), on(96, 0), on(120, 0),
                 off(10, 480), off(23, 0), off(24, 0), off(95, 0), off(96, 0), off(120, 0)]])
    roll = midi_to_piano_roll(data, SPEC)
    assert np.flatnonzero(roll.any(axis=1)).tolist() == [0, SPEC.num_pitches - 1]


def test_overlapping_notes_keep_max_velocity_and_polyphony():
    data = smf(
        [
            [on(60, 0, velocity=50), off(60, 960)],  # 0..1 s soft
            [on(60, 480, velocity=110), off(60, 960)],  # 0.5..1.5 s loud, same pitch, other track
            [on(64, 0, velocity=70), off(64, 480)],  # a chord tone
        ]
    )
    roll = midi_to_piano_roll(data, SPEC)
    row = roll[60 - SPEC.lowest_pitch]
    assert np.all(row[0:4] == np.float32(50 / 127))
    assert np.all(row[4:12] == np.float32(110 / 127))
    assert not row[12:].any()
    assert roll[:, 0].astype(bool).sum() == 2  # polyphony kept


def test_frame_rounding_and_window_clipping():
    # 0.06 s .. 0.07 s (inside frame 0) -> exactly one frame; 15.9 s .. 20 s is clipped at the window.
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(0)
    inst.notes += [pretty_midi.Note(80, 60, 0.06, 0.07), pretty_midi.Note(80, 61, 0.3, 0.6),
                   pretty_midi.Note(80, 62, 15.9, 20.0), pretty_midi.Note(80, 63, 17.0, 18.0)]
    pm.instruments.append(inst)
    roll = midi_to_piano_roll(pm, SPEC)
    assert np.flatnonzero(roll[60 - 24]).tolist() == [0]
    assert np.flatnonzero(roll[61 - 24]).tolist() == [2, 3, 4]  # floor(2.4)=2 .. ceil(4.8)=5
    assert np.flatnonzero(roll[62 - 24]).tolist() == [127]
    assert not roll[63 - 24].any()


# --- errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, expected",
    [
        (b"", "empty"),
        (b"this is not a midi file at all", "MThd"),
        (b"\x00" * 64, "MThd"),
        (b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0MTrk\x00\x00\x00\x40\x00\x90\x3c", "truncated"),
        (b"MThd\x00\x00\x00\x06\x00\x07\x00\x01\x01\xe0", "format"),
        (b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x01\xe0XXXX\x00\x00\x00\x04\x00\xff\x2f\x00", "MTrk"),
        (b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x01\xe0MTrk\x00\x00\x00\x04\x00\x90\xff\x00", "data byte"),
    ],
)
def test_bad_midi_bytes_raise_midi_error_naming_the_source(data, expected):
    with pytest.raises(MidiError, match=expected) as info:
        midi_to_piano_roll(data, SPEC, source="04_02_seg_0007_track_01")
    assert "04_02_seg_0007_track_01" in str(info.value)


def test_truncated_real_file_and_default_source():
    data = piano_roll_to_midi_bytes(random_roll(SPEC, seed=5), SPEC)
    with pytest.raises(MidiError, match="<bytes>"):
        midi_to_piano_roll(data[: len(data) // 2], SPEC)


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "missing.mid"
    with pytest.raises(MidiError, match="missing.mid"):
        midi_to_piano_roll(path, SPEC)
    with pytest.raises(MidiError, match="expected MIDI as bytes"):
        midi_to_piano_roll(12345, SPEC, source="seg_x")


@pytest.mark.parametrize(
    "roll, expected",
    [
        (np.zeros((72,), np.float32), r"\(72, 128\).*shape=\(72,\)"),
        (np.zeros((72, 64), np.float32), r"shape=\(72, 64\)"),
        (np.zeros((1, 72, 128), np.float32), r"ndim=3"),
        (np.full((72, 128), np.nan, np.float32), "NaN"),
        (np.full((72, 128), 1.5, np.float32), r"\[0, 1\]"),
        (np.full((72, 128), -0.1, np.float32), r"\[0, 1\]"),
    ],
)
def test_bad_rolls_raise_data_error(roll, expected):
    with pytest.raises(DataError, match=expected) as info:
        piano_roll_to_midi(roll, SPEC, source="candidate 7")
    assert "candidate 7" in str(info.value)
    with pytest.raises(DataError, match=expected):
        piano_roll_to_midi_bytes(roll, SPEC)


def test_bad_writer_arguments():
    roll = np.zeros(SPEC.shape, np.float32)
    with pytest.raises(DataError, match="program"):
        piano_roll_to_midi(roll, SPEC, program=128)
    with pytest.raises(DataError, match="tempo"):
        piano_roll_to_midi(roll, SPEC, tempo=0)
    with pytest.raises(DataError, match="min_velocity"):
        piano_roll_to_midi(roll, SPEC, min_velocity=0)


def test_smpte_division():
    # Division 0xE728: 25 frames/s x 40 ticks/frame = 1000 ticks per second.
    track = bytes([0x00, 0x90, 60, 100, 0x87, 0x68, 0x80, 60, 0, 0x00, 0xFF, 0x2F, 0x00])  # off after 1000 ticks
    data = b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\xe7\x28" + b"MTrk" + len(track).to_bytes(4, "big") + track
    roll = midi_to_piano_roll(data, SPEC)
    assert np.flatnonzero(roll[60 - SPEC.lowest_pitch]).tolist() == list(range(8))


# --- the fast reader: parity with the source project's mido walk and with pretty_midi ------------


def _benchmark_module():
    path = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "midi_pianoroll_throughput.py"
    spec = importlib.util.spec_from_file_location("midi_pianoroll_throughput", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BENCH = _benchmark_module()


def dangling_note_ons(data):
    """Note-ons that never meet a note-off (counted with mido, FIFO per track/channel/key)."""
    count = 0
    for track in mido.MidiFile(file=io.BytesIO(data)).tracks:
        open_notes = {}
        for msg in track:
            if msg.type == "note_on" and msg.velocity > 0:
                open_notes[(msg.channel, msg.note)] = open_notes.get((msg.channel, msg.note), 0) + 1
            elif msg.type in ("note_on", "note_off") and open_notes.get((msg.channel, msg.note)):
                open_notes[(msg.channel, msg.note)] -= 1
        count += sum(open_notes.values())
    return count


def test_rolls_equal_the_mido_reimplementation_on_generated_segments(monkeypatch):
    corpus = BENCH.generate_corpus(25, seed=11)
    assert sum(dangling_note_ons(d) > 0 for d in corpus) >= 5  # the corpus exercises dangling notes
    assert len({mido.MidiFile(file=io.BytesIO(d)).ticks_per_beat for d in corpus}) >= 4
    # Every file goes through symusic: the mido reader would raise.
    monkeypatch.setattr(pianoroll, "_parse_smf", lambda data, name: pytest.fail(f"mido fallback used for {name}"))
    for spec in (BENCH.SOURCE_SPEC, SPEC, PianoRollSpec(lowest_pitch=30, num_pitches=50, frames_per_second=31.25,
                                                        num_frames=300)):
        for index, data in enumerate(corpus):
            ours = midi_to_piano_roll(data, spec, source=f"generated {index}")
            np.testing.assert_array_equal(ours, BENCH.mido_piano_roll(data, spec), err_msg=f"generated {index}")
    drums = midi_to_piano_roll(corpus[0], SPEC, include_drums=True)
    np.testing.assert_array_equal(drums, BENCH.mido_piano_roll(corpus[0], SPEC, include_drums=True))


@pytest.mark.filterwarnings("ignore:Tempo, Key or Time signature:RuntimeWarning")
def test_roll_occupancy_agrees_with_pretty_midi():
    # pretty_midi drops notes without note-off, pairs re-struck keys differently and stretches notes
    # under the sustain pedal, so those are left out here.
    kwargs = dict(dangling=False, same_key_overlaps=False, controllers=False)
    # Notes on frame boundaries: identical occupancy.
    for data in BENCH.generate_corpus(15, seed=3, grid_aligned=True, **kwargs):
        ours = midi_to_piano_roll(data, BENCH.SOURCE_SPEC)
        assert ours.any()
        np.testing.assert_array_equal(ours > 0, BENCH.pretty_midi_piano_roll(data, BENCH.SOURCE_SPEC) > 0)
    # Notes anywhere: pretty_midi truncates both ends to a frame (int(t * fs)), we round the end up,
    # so cells may differ only on a frame next to a note boundary of that pitch.
    fps = BENCH.SOURCE_SPEC.frames_per_second
    for data in BENCH.generate_corpus(10, seed=4, **kwargs):
        ours = midi_to_piano_roll(data, BENCH.SOURCE_SPEC) > 0
        theirs = BENCH.pretty_midi_piano_roll(data, BENCH.SOURCE_SPEC) > 0
        notes = [n for i in pretty_midi.PrettyMIDI(io.BytesIO(data)).instruments if not i.is_drum for n in i.notes]
        near = [(n.pitch, int(t * fps)) for n in notes for t in (n.start, n.end)]
        boundaries = {(pitch, frame + d) for pitch, frame in near for d in (-1, 0, 1)}
        differing = {tuple(cell) for cell in np.argwhere(ours != theirs).tolist()}
        assert differing <= boundaries
        assert (ours & theirs).sum() > 0.6 * theirs.sum()


def test_format_2_keeps_a_tempo_map_per_track():
    # Track 0 at 60 bpm, track 1 at the default 120 bpm: 960 ticks are 2 s in one, 1 s in the other.
    slow = [mido.MetaMessage("set_tempo", tempo=1_000_000), on(60, 960), off(60, 480)]
    fast = [on(64, 960), off(64, 480)]
    roll = midi_to_piano_roll(smf([slow, fast], file_type=2), SPEC)
    assert np.flatnonzero(roll[60 - SPEC.lowest_pitch]).tolist() == list(range(frame_of(2.0), frame_of(3.0)))
    assert np.flatnonzero(roll[64 - SPEC.lowest_pitch]).tolist() == list(range(frame_of(1.0), frame_of(1.5)))


def test_stacked_dangling_notes_and_a_longer_header():
    # Key 60 struck twice (soft, then loud) and never released; key 62 released.
    data = smf([[on(60, 0, velocity=40), on(60, 960, velocity=120), on(62, 0), off(62, 480)]])
    roll = midi_to_piano_roll(data, SPEC)
    row = roll[60 - SPEC.lowest_pitch]
    assert np.all(row[: frame_of(1.0)] == np.float32(40 / 127))
    assert np.all(row[frame_of(1.0) :] == np.float32(120 / 127))
    np.testing.assert_array_equal(roll, BENCH.mido_piano_roll(data, SPEC))
    # An 8-byte MThd (allowed by the standard, refused by symusic's parser) reads the same.
    longer = data[:4] + (8).to_bytes(4, "big") + data[8:14] + b"\x00\x00" + data[14:]
    np.testing.assert_array_equal(midi_to_piano_roll(longer, SPEC), roll)


def test_bad_midi_errors_carry_a_reason_code():
    with pytest.raises(MidiError) as info:
        midi_to_piano_roll(b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0MTrk\x00\x00\x01\x00", SPEC, source="s")
    assert info.value.reason == "truncated"
