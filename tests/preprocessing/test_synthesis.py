"""Tests for chroma_keras.preprocessing.synthesis (numpy / mido / librosa / fluidsynth; no keras)."""

import io
import stat
import struct
import tempfile
import time

import librosa
import mido
import numpy as np
import pretty_midi
import pytest

from chroma_keras.errors import ChromaKerasError, DataError, MidiError
from chroma_keras.preprocessing import synthesis
from chroma_keras.preprocessing.synthesis import close_midi, find_soundfont, read_notes, render_midi

SR = 22050
TPB = 480  # ticks per beat; at 120 bpm one second is 960 ticks

HAVE_FLUIDSYNTH = synthesis.find_fluidsynth() is not None and find_soundfont() is not None
needs_fluidsynth = pytest.mark.skipif(
    not HAVE_FLUIDSYNTH,
    reason="the fluidsynth program or a GM SoundFont is missing (apt-get install fluidsynth fluid-soundfont-gm)",
)


# --- helpers ------------------------------------------------------------------


def make_midi(notes, *, program=0, tempo=500_000, end=None, dangling=()):
    """A format-0 file from (pitch, start_s, end_s, velocity[, channel]) at a constant tempo.

    ``dangling`` holds (pitch, start_s) note-ons that never get a note-off; ``end`` (seconds)
    places the end of the track.
    """
    ticks_per_second = TPB * 1e6 / tempo
    events = [(0, mido.MetaMessage("set_tempo", tempo=tempo)), (0, mido.Message("program_change", program=program))]
    for pitch, start, stop, velocity, *channel in notes:
        ch = channel[0] if channel else 0
        note_on = mido.Message("note_on", channel=ch, note=pitch, velocity=velocity)
        events.append((round(start * ticks_per_second), note_on))
        events.append((round(stop * ticks_per_second), mido.Message("note_off", channel=ch, note=pitch)))
    for pitch, start in dangling:
        events.append((round(start * ticks_per_second), mido.Message("note_on", note=pitch, velocity=90)))
    events.sort(key=lambda e: (e[0], e[1].type == "note_on"))  # note-offs first at one tick
    track, previous = mido.MidiTrack(), 0
    for tick, msg in events:
        track.append(msg.copy(time=tick - previous))
        previous = tick
    last = round(end * ticks_per_second) if end is not None else previous
    track.append(mido.MetaMessage("end_of_track", time=max(last - previous, 0)))
    midi = mido.MidiFile(type=0, ticks_per_beat=TPB)
    midi.tracks.append(track)
    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.getvalue()


# Irregular onsets (no common period), one note at a time, mid register.
MELODY_ONSETS = [0.25, 0.61, 0.83, 1.42, 1.67, 2.31, 2.52, 3.10, 3.58, 3.77, 4.40]
MELODY = [(60 + (7 * i) % 17, t, t + 0.15, 100) for i, t in enumerate(MELODY_ONSETS)]


def detected_onsets(audio, sr):
    return librosa.onset.onset_detect(y=audio, sr=sr, hop_length=128, units="time", backtrack=True)


def assert_onsets_match(audio, sr, expected, tolerance):
    """Every expected onset has exactly one detected onset within ``tolerance`` s, and nothing else was detected."""
    found = detected_onsets(audio, sr)
    assert len(found) == len(expected), (found, expected)
    np.testing.assert_allclose(found, expected, atol=tolerance)


def fundamental(audio, sr, fmin=50.0, fmax=2000.0):
    """Median YIN f0 over the sustained middle of a single note."""
    middle = audio[int(0.2 * sr) : int(0.8 * sr)]
    return float(np.median(librosa.yin(middle, fmin=fmin, fmax=fmax, sr=sr, frame_length=4096)))


# --- reading notes -------------------------------------------------------------


def test_read_notes_golden_tempo_change_dangling_and_drums():
    # 120 bpm for one beat (0.5 s), then 60 bpm: tick 960 is 0.5 + 1.0 = 1.5 s.
    track = mido.MidiTrack(
        [
            mido.MetaMessage("set_tempo", tempo=500_000, time=0),
            mido.Message("note_on", note=60, velocity=100, time=0),
            mido.MetaMessage("set_tempo", tempo=1_000_000, time=480),
            mido.Message("note_on", note=60, velocity=0, time=480),  # velocity-0 note-off at 1.5 s
            mido.Message("note_on", channel=9, note=36, velocity=70, time=0),
            mido.Message("note_off", channel=9, note=36, time=240),  # 2.0 s
            mido.Message("note_on", note=67, velocity=50, time=0),  # never closed
            mido.MetaMessage("end_of_track", time=480),  # 3.0 s
        ]
    )
    midi = mido.MidiFile(type=0, ticks_per_beat=TPB)
    midi.tracks.append(track)
    buffer = io.BytesIO()
    midi.save(file=buffer)
    notes = read_notes(buffer.getvalue())
    np.testing.assert_array_equal(notes.pitch, [60, 36, 67])
    np.testing.assert_allclose(notes.start, [0.0, 1.5, 2.0], atol=1e-9)
    np.testing.assert_allclose(notes.end, [1.5, 2.0, 3.0], atol=1e-9)
    np.testing.assert_array_equal(notes.velocity, [100, 70, 50])
    np.testing.assert_array_equal(notes.channel, [0, 9, 0])
    assert notes.length == pytest.approx(3.0)


def test_read_notes_matches_pretty_midi():
    data = make_midi(MELODY + [(38, 1.0, 1.1, 80, 9)], tempo=420_000)
    notes = read_notes(data)
    pm = pretty_midi.PrettyMIDI(io.BytesIO(data))
    reference = sorted((n.start, n.pitch, n.end, n.velocity) for inst in pm.instruments for n in inst.notes)
    assert len(notes) == len(reference)
    np.testing.assert_allclose(notes.start, [r[0] for r in reference], atol=1e-6)
    np.testing.assert_array_equal(notes.pitch, [r[1] for r in reference])
    np.testing.assert_allclose(notes.end, [r[2] for r in reference], atol=1e-6)


@pytest.mark.parametrize(
    "data, match",
    [
        ("not bytes", "expected MIDI as bytes"),
        (b"RIFF0000WAVE", "not a Standard MIDI File"),
        (b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x01\xe0MTrk\x00\x00\x01\x00\x90", ""),
    ],
)
def test_read_notes_rejects_bad_midi_naming_source(data, match):
    with pytest.raises(MidiError, match=f"seg_07.*{match}"):
        read_notes(data, source="seg_07")


def test_read_notes_rejects_smpte_division():
    body = bytes([0x00, 0x90, 60, 100, 0x83, 0x60, 0x80, 60, 0, 0x00, 0xFF, 0x2F, 0x00])
    data = b"MThd" + struct.pack(">LHHH", 6, 0, 1, 0xE728) + b"MTrk" + struct.pack(">L", len(body)) + body
    with pytest.raises(MidiError, match=r"seg_s: SMPTE time division .* not supported.*0xe728"):
        read_notes(data, source="seg_s")


def test_render_rejects_format_2():
    midi = mido.MidiFile(type=2, ticks_per_beat=TPB)
    midi.tracks.append(mido.MidiTrack([mido.Message("note_on", note=60, velocity=90)]))
    buffer = io.BytesIO()
    midi.save(file=buffer)
    with pytest.raises(MidiError, match="seg_2: MIDI format 2"):
        render_midi(buffer.getvalue(), backend="additive", source="seg_2")


# --- additive backend --------------------------------------------------------------


@pytest.mark.parametrize("pitch", [45, 60, 69, 84])
def test_additive_fundamental_matches_pitch(pitch):
    audio = render_midi(make_midi([(pitch, 0.0, 1.0, 100)]), sample_rate=SR, backend="additive")
    expected = 440.0 * 2 ** ((pitch - 69) / 12)
    assert fundamental(audio, SR) == pytest.approx(expected, rel=0.01)


def test_additive_onsets_line_up_with_midi():
    audio = render_midi(make_midi(MELODY), sample_rate=SR, backend="additive")
    assert_onsets_match(audio, SR, MELODY_ONSETS, tolerance=0.02)


def test_additive_length_peak_and_trim():
    data = make_midi([(60, 0.5, 1.0, 100)], end=2.0)
    audio = render_midi(data, sample_rate=SR, backend="additive", tail_seconds=0.5)
    assert audio.dtype == np.float32 and audio.shape == (round(2.5 * SR),)
    assert np.max(np.abs(audio)) == pytest.approx(0.9, abs=1e-6)
    assert np.max(np.abs(audio[: int(0.5 * SR) - 1])) == 0.0  # nothing before the note-on
    # ADSR release (0.15 s) ends the note; the rest of the file is silent.
    assert np.max(np.abs(audio[int((1.0 + synthesis.RELEASE) * SR) + 1 :])) == 0.0
    short = render_midi(data, sample_rate=SR, backend="additive", duration=0.75, peak=0.5)
    assert short.shape == (round(0.75 * SR),)
    assert np.max(np.abs(short)) == pytest.approx(0.5, abs=1e-6)
    long = render_midi(data, sample_rate=SR, backend="additive", duration=4.0)
    assert long.shape == (4 * SR,) and np.all(long[int(1.2 * SR) :] == 0)


def test_additive_velocity_sets_amplitude():
    data = make_midi([(64, 0.0, 0.5, 127), (64, 1.0, 1.5, 64)])
    audio = render_midi(data, sample_rate=SR, backend="additive").astype(np.float64)
    loud = np.sqrt(np.mean(audio[int(0.1 * SR) : int(0.4 * SR)] ** 2))
    soft = np.sqrt(np.mean(audio[int(1.1 * SR) : int(1.4 * SR)] ** 2))
    assert soft / loud == pytest.approx((64 / 127) ** 2, rel=1e-3)


def test_additive_dangling_note_sounds_to_the_end():
    data = make_midi([], dangling=[(57, 0.2)], end=1.0)
    audio = render_midi(data, sample_rate=SR, backend="additive", tail_seconds=0.0)
    assert audio.shape == (SR,)
    assert np.sqrt(np.mean(audio[int(0.9 * SR) :] ** 2)) > 0.2  # still at sustain level
    assert fundamental(np.concatenate([audio[int(0.2 * SR) :], audio[int(0.2 * SR) :]]), SR) == pytest.approx(
        220.0, rel=0.01
    )


def test_additive_drums_are_band_limited_noise():
    def centroid(pitch):
        audio = render_midi(make_midi([(pitch, 0.0, 0.1, 100, 9)]), sample_rate=44100, backend="additive")
        spectrum = np.abs(np.fft.rfft(audio)) ** 2
        freqs = np.fft.rfftfreq(len(audio), 1 / 44100)
        return float(np.sum(freqs * spectrum) / np.sum(spectrum))

    kick, snare, hat = centroid(36), centroid(38), centroid(42)
    assert kick < 300 < 1000 < snare < 6000 < hat


def test_additive_is_deterministic_and_seeded():
    data = make_midi(MELODY[:3] + [(38, 0.5, 0.6, 90, 9)])
    a = render_midi(data, sample_rate=SR, backend="additive")
    np.testing.assert_array_equal(a, render_midi(data, sample_rate=SR, backend="additive"))
    assert not np.array_equal(a, render_midi(data, sample_rate=SR, backend="additive", seed=1))


def test_silent_midi_renders_zeros():
    audio = render_midi(make_midi([], end=1.0), sample_rate=SR, backend="additive")
    assert audio.shape == (2 * SR,) and not audio.any()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"sample_rate": 0}, "sample_rate must be a positive integer"),
        ({"sample_rate": 22050.0}, "sample_rate must be a positive integer"),
        ({"peak": 1.5}, r"peak must lie in \(0, 1\]"),
        ({"duration": -1.0}, "duration must be a positive number"),
        ({"tail_seconds": float("nan")}, "tail_seconds must be >= 0"),
        ({"max_seconds": 0}, "max_seconds must be positive"),
        ({"timeout_seconds": -3}, "timeout_seconds must be positive"),
    ],
)
def test_render_rejects_bad_arguments(kwargs, match):
    with pytest.raises(DataError, match=f"seg_9: .*{match}"):
        render_midi(make_midi(MELODY[:1]), backend="additive", source="seg_9", **kwargs)


def test_render_refuses_more_than_max_seconds():
    data = make_midi([(60, 0.0, 0.5, 90)], end=50.0)
    with pytest.raises(DataError, match=r"seg_long: the render would last 51.0 s, above max_seconds=20"):
        render_midi(data, backend="additive", max_seconds=20, source="seg_long")
    # A requested duration below the limit renders the start.
    assert render_midi(data, sample_rate=SR, backend="additive", max_seconds=20, duration=1.0).shape == (SR,)


# --- backend selection ---------------------------------------------------------------


def test_unknown_backend_is_rejected():
    with pytest.raises(ChromaKerasError, match="backend must be one of"):
        render_midi(make_midi(MELODY[:1]), backend="timidity")


def test_missing_program_auto_falls_back_and_explicit_raises(monkeypatch, tmp_path):
    monkeypatch.setattr(synthesis, "FLUIDSYNTH_PROGRAM", str(tmp_path / "no-such-fluidsynth"))
    data = make_midi(MELODY[:3])
    np.testing.assert_array_equal(
        render_midi(data, sample_rate=SR, backend="auto"), render_midi(data, sample_rate=SR, backend="additive")
    )
    with pytest.raises(ChromaKerasError, match="apt-get install fluidsynth"):
        render_midi(data, backend="fluidsynth")


def test_find_soundfont(monkeypatch, tmp_path):
    font = tmp_path / "my.sf2"
    font.write_bytes(b"RIFF")
    assert find_soundfont(font) == font
    with pytest.raises(DataError, match="soundfont=.*missing.sf2.*no such SoundFont"):
        find_soundfont(tmp_path / "missing.sf2")
    monkeypatch.setenv(synthesis.SOUNDFONT_ENV, str(font))
    assert find_soundfont() == font
    monkeypatch.setenv(synthesis.SOUNDFONT_ENV, str(tmp_path / "gone.sf2"))
    with pytest.raises(DataError, match="CHROMA_KERAS_SOUNDFONT=.*gone.sf2"):
        find_soundfont()
    monkeypatch.delenv(synthesis.SOUNDFONT_ENV)
    monkeypatch.setattr(synthesis, "SOUNDFONT_CANDIDATES", (str(tmp_path / "a.sf2"), str(font)))
    assert find_soundfont() == font
    monkeypatch.setattr(synthesis, "SOUNDFONT_CANDIDATES", (str(tmp_path / "a.sf2"),))
    assert find_soundfont() is None


# --- the fluidsynth hang guard ----------------------------------------------------------


def test_close_midi_golden():
    data = make_midi([(60, 0.0, 1.0, 90), (62, 1.5, 2.5, 90)], dangling=[(64, 0.5)], end=3.0)
    midi = mido.MidiFile(file=io.BytesIO(data))
    closed = mido.MidiFile(file=io.BytesIO(close_midi(midi, notes_off_seconds=2.0, sound_off_seconds=2.75)))
    assert closed.type == 0 and len(closed.tracks) == 1
    tick, events = 0, []
    for msg in closed.tracks[0]:
        tick += msg.time
        events.append((tick, msg))
    # The note-off at 2.5 s (tick 2400) lies past the cut at 2.0 s (tick 1920) and is dropped.
    notes = [(t, m.type, m.note) for t, m in events if m.type in ("note_on", "note_off")]
    assert notes == [(0, "note_on", 60), (480, "note_on", 64), (960, "note_off", 60), (1440, "note_on", 62)]
    controls = [(t, m.control, m.channel) for t, m in events if m.type == "control_change"]
    assert controls == (
        [(1920, 64, c) for c in range(16)] + [(1920, 123, c) for c in range(16)] + [(2640, 120, c) for c in range(16)]
    )
    assert events[-1] == (2640, mido.MetaMessage("end_of_track"))
    assert closed.length == pytest.approx(2.75)


def test_close_midi_type1_adds_a_track_and_follows_tempo():
    midi = mido.MidiFile(type=1, ticks_per_beat=TPB)
    midi.tracks.append(mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=1_000_000)]))  # 60 bpm
    midi.tracks.append(mido.MidiTrack([mido.Message("note_on", note=60, velocity=90, time=TPB)]))
    closed = mido.MidiFile(file=io.BytesIO(close_midi(midi, notes_off_seconds=1.0, sound_off_seconds=3.0)))
    assert len(closed.tracks) == 3
    ticks = np.cumsum([m.time for m in closed.tracks[2]])
    assert ticks[0] == TPB and ticks[-1] == 3 * TPB


def fake_program(tmp_path, body):
    path = tmp_path / "fake-fluidsynth"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    font = tmp_path / "fake.sf2"
    font.write_bytes(b"RIFF")
    return str(path), font


def test_hanging_fluidsynth_is_killed_by_the_timeout(monkeypatch, tmp_path):
    program, font = fake_program(tmp_path, "sleep 30\n")
    monkeypatch.setattr(synthesis, "FLUIDSYNTH_PROGRAM", program)
    began = time.monotonic()
    with pytest.raises(DataError, match=r"seg_hang: fluidsynth did not finish within timeout_seconds=0.5"):
        render_midi(make_midi(MELODY[:2]), backend="fluidsynth", soundfont=font, timeout_seconds=0.5, source="seg_hang")
    assert time.monotonic() - began < 3.0


def test_runaway_fluidsynth_output_is_stopped(monkeypatch, tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    # Finds the -F argument and appends to it forever, like fluidsynth 2.3.1 on a bad file.
    body = (
        'while [ "$1" != "-F" ]; do shift; done\n'
        'while true; do head -c 262144 /dev/zero >> "$2"; sleep 0.005; done\n'
    )
    program, font = fake_program(tmp_path, body)
    monkeypatch.setattr(synthesis, "FLUIDSYNTH_PROGRAM", program)
    with pytest.raises(DataError, match=r"seg_big: fluidsynth wrote more than \d+ bytes"):
        render_midi(make_midi(MELODY[:2]), backend="fluidsynth", soundfont=font, sample_rate=8000, source="seg_big")
    assert list(scratch.iterdir()) == []  # the temporary WAV is gone


def test_failing_fluidsynth_reports_its_message(monkeypatch, tmp_path):
    program, font = fake_program(tmp_path, 'echo "fluidsynth: error: Failed to load SoundFont" >&2\nexit 3\n')
    monkeypatch.setattr(synthesis, "FLUIDSYNTH_PROGRAM", program)
    with pytest.raises(DataError, match=r"seg_x: fluidsynth failed \(exit status 3\): .*Failed to load SoundFont"):
        render_midi(make_midi(MELODY[:2]), backend="fluidsynth", soundfont=font, source="seg_x")


# --- the real fluidsynth -------------------------------------------------------------------


@needs_fluidsynth
def test_fluidsynth_fundamental_matches_pitch():
    audio = render_midi(make_midi([(57, 0.0, 1.0, 100)]), sample_rate=SR, backend="fluidsynth")
    assert fundamental(audio, SR) == pytest.approx(220.0, rel=0.01)


@needs_fluidsynth
def test_fluidsynth_onsets_and_length():
    data = make_midi(MELODY)
    audio = render_midi(data, sample_rate=SR, backend="fluidsynth")
    assert audio.shape == (round((MELODY_ONSETS[-1] + 0.15 + 1.0) * SR),)
    assert np.max(np.abs(audio)) == pytest.approx(0.9, abs=1e-6)
    assert_onsets_match(audio, SR, MELODY_ONSETS, tolerance=0.03)


@needs_fluidsynth
def test_fluidsynth_auto_and_dangling_notes_finish():
    # A note-on without note-off is released by the appended all-notes-off.
    data = make_midi([(60, 0.1, 0.4, 100)], dangling=[(48, 0.2)], end=1.0)
    audio = render_midi(data, sample_rate=SR, backend="auto", tail_seconds=1.0)
    assert audio.shape == (2 * SR,)
    tail = np.sqrt(np.mean(audio[int(1.8 * SR) :] ** 2))
    held = np.sqrt(np.mean(audio[int(0.5 * SR) : int(0.9 * SR)] ** 2))
    assert tail < 0.1 * held  # the held note was released at 1.0 s
