"""Tests for chroma_keras.preprocessing.midi_validation (numpy / mido / symusic; no keras)."""

import io
import subprocess
import sys
import textwrap

import mido
import numpy as np
import pytest
import symusic

from chroma_keras.errors import MidiError
from chroma_keras.preprocessing.midi_validation import (
    MAX_DELTA_TICKS,
    REASONS,
    close_dangling_notes,
    parse_score,
    read_midi_layout,
    validate_midi_bytes,
)

EOT = [0x00, 0xFF, 0x2F, 0x00]


def chunk(events, kind=b"MTrk"):
    return kind + len(bytes(events)).to_bytes(4, "big") + bytes(events)


def smf(*tracks, fmt=1, division=480, ntracks=None, header_extra=b""):
    """Raw SMF bytes from track event lists (delta times and statuses written by hand)."""
    ntracks = len(tracks) if ntracks is None else ntracks
    header = fmt.to_bytes(2, "big") + ntracks.to_bytes(2, "big") + division.to_bytes(2, "big") + header_extra
    return b"MThd" + len(header).to_bytes(4, "big") + header + b"".join(chunk(t) for t in tracks)


def mido_smf(tracks, ticks_per_beat=480, file_type=1):
    midi = mido.MidiFile(type=file_type, ticks_per_beat=ticks_per_beat)
    for messages in tracks:
        midi.tracks.append(mido.MidiTrack(messages))
    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.getvalue()


def notes_of(score):
    return sorted((n.time, n.end, n.pitch, n.velocity) for t in score.tracks for n in t.notes)


NOTE = [0x00, 0x90, 60, 100, 0x60, 0x80, 60, 0x00]
GOOD = smf(NOTE + EOT)


# --- structure -----------------------------------------------------------------------


def test_layout_of_a_valid_file_matches_mido():
    data = mido_smf(
        [
            [mido.MetaMessage("set_tempo", tempo=600_000)],
            [mido.Message("note_on", note=60, velocity=90), mido.Message("note_off", note=60, time=240)],
            [mido.Message("note_on", note=64, velocity=90, channel=3)],
        ],
        ticks_per_beat=384,
    )
    layout = read_midi_layout(data, source="x")
    assert (layout.format, layout.num_tracks, layout.division, layout.header_length) == (1, 3, 384, 6)
    assert layout.ticks_per_quarter == 384 and not layout.is_smpte
    midi = mido.MidiFile(file=io.BytesIO(data))
    assert len(layout.tracks) == len(midi.tracks)
    # Each chunk starts after its MTrk id and length, and ends with mido's end-of-track event.
    for start, length in layout.tracks:
        assert data[start - 8 : start - 4] == b"MTrk"
        assert length == int.from_bytes(data[start - 4 : start], "big")
        assert data[start + length - 3 : start + length] == b"\xff\x2f\x00"
    assert layout.tracks[-1][0] + layout.tracks[-1][1] == len(data)
    assert validate_midi_bytes(data, source="x") is None
    assert validate_midi_bytes(bytearray(data), source="x") is None


def test_tolerated_variations():
    # Data after the last declared track, a longer header, SMPTE division.
    validate_midi_bytes(GOOD + b"\x00\x00padding", source="x")
    longer = smf(NOTE + EOT, header_extra=b"\x00\x00")
    assert read_midi_layout(longer, source="x").header_length == 8
    smpte = read_midi_layout(smf(NOTE + EOT, fmt=0, division=0xE728), source="x")
    assert smpte.is_smpte and smpte.ticks_per_quarter is None


@pytest.mark.parametrize(
    "data, reason, words",
    [
        (b"", "empty", "empty"),
        (b"RIFF\x00\x00\x00\x04WAVE", "not_smf", "MThd"),
        (b"\x00" * 40, "not_smf", "MThd"),
        (b"MThd\x00\x00\x00\x06\x00\x01", "truncated", "truncated"),
        (b"MThd\x00\x00\x00\x04\x00\x01\x00\x01\x01\xe0" + chunk(EOT), "bad_header", ">= 6"),
        (b"MThd\x00\x00\x01\x00\x00\x01\x00\x01\x01\xe0" + chunk(EOT), "truncated", "MThd"),
        (smf(EOT, fmt=3), "bad_format", "format"),
        (smf(EOT, ntracks=0), "bad_track_count", "0 tracks"),
        (smf(EOT, division=0), "bad_division", "division"),
        (smf(EOT, division=0xE500), "bad_division", "SMPTE"),  # -27 fps
        (smf(EOT, division=0xE700), "bad_division", "SMPTE"),  # 0 ticks per frame
        (smf(EOT, ntracks=2), "truncated", "declares 2 track"),
        (GOOD[:-3], "truncated", "track 0 declares"),
        (GOOD[:14] + chunk(EOT, kind=b"XXXX"), "bad_chunk", "MTrk"),
    ],
)
def test_bad_bytes_raise_midi_error_with_a_reason(data, reason, words):
    with pytest.raises(MidiError, match=words) as info:
        validate_midi_bytes(data, source="03_07_seg_0042_track_02")
    assert info.value.reason == reason and reason in REASONS
    assert str(info.value).startswith("03_07_seg_0042_track_02: ")
    assert str(info.value).endswith(f"(reason: {reason})")


def test_non_bytes_input():
    with pytest.raises(MidiError, match="expected MIDI as bytes") as info:
        validate_midi_bytes("MThd", source="seg")
    assert info.value.reason == "not_bytes"


# --- parsing with symusic ------------------------------------------------------------------


def test_parse_score_matches_symusic_on_valid_files():
    data = mido_smf(
        [
            [mido.MetaMessage("set_tempo", tempo=400_000)],
            [mido.Message("note_on", note=n, velocity=50 + n % 40, time=120) for n in range(40, 60)]
            + [mido.Message("note_off", note=n, time=60) for n in range(40, 60)],
        ]
    )
    ours = parse_score(data, source="x")
    reference = symusic.Score.from_midi(data)
    assert notes_of(ours) == notes_of(reference) and len(notes_of(ours)) == 20
    assert ours.ticks_per_quarter == 480
    assert [(t.time, t.mspq) for t in ours.tempos] == [(0, 400_000)]


def test_parse_score_accepts_a_longer_header():
    data = smf(NOTE + EOT, header_extra=b"\x00\x00")
    assert notes_of(parse_score(data, source="x")) == [(0, 96, 60, 100)]


def test_parse_score_errors():
    with pytest.raises(MidiError, match="SMPTE") as info:
        parse_score(smf(NOTE + EOT, fmt=0, division=0xE728), source="seg_9")
    assert info.value.reason == "unsupported" and "seg_9" in str(info.value)
    # A data byte above 127 (pitch 0xC8): structure is fine, events are not.
    with pytest.raises(MidiError, match="cannot parse the MIDI events") as info:
        parse_score(smf([0x00, 0x90, 0xC8, 100, 0x60, 0x80, 0xC8, 0x00] + EOT), source="seg_9")
    assert info.value.reason == "malformed_events"
    with pytest.raises(MidiError) as info:
        parse_score(b"MThd", source="seg_9")
    assert info.value.reason == "truncated"


# --- closing notes without note-off -------------------------------------------------------


def test_dangling_notes_are_dropped_by_symusic_and_kept_by_us():
    # 60 sounds from tick 0 and never stops; 64 is closed at 48; the track ends at 200.
    track = [0x00, 0x90, 60, 100, 0x10, 0x90, 64, 90, 0x20, 0x80, 64, 0x00, 0x81, 0x18, 0xFF, 0x2F, 0x00]
    data = smf(track)
    assert notes_of(symusic.Score.from_midi(data)) == [(16, 48, 64, 90)]
    assert notes_of(parse_score(data, source="x", close_dangling=False)) == [(16, 48, 64, 90)]
    assert notes_of(parse_score(data, source="x")) == [(0, 200, 60, 100), (16, 48, 64, 90)]
    delayed = parse_score(data, source="x", dangling_delay_ticks=1000)
    assert notes_of(delayed) == [(0, 1200, 60, 100), (16, 48, 64, 90)]
    far = parse_score(data, source="x", dangling_delay_ticks=MAX_DELTA_TICKS)
    assert notes_of(far)[0] == (0, 200 + MAX_DELTA_TICKS, 60, 100)
    only_low = parse_score(data, source="x", dangling_pitches=range(0, 60))
    assert notes_of(only_low) == [(16, 48, 64, 90)]


def test_stacked_dangling_notes_running_status_and_skipped_channels():
    track = [
        0x00, 0x92, 50, 0x00,  # a note-off written as note-on velocity 0 (explicit status, channel 2)
        0x10, 50, 70,  # running status: note-on 50, never released
        0x10, 50, 80,  # struck again, never released
        0x00, 0x99, 36, 100,  # a drum hit without note-off
        0x30, 0xFF, 0x2F, 0x00,
    ]  # fmt: skip
    data = smf(track)
    assert notes_of(parse_score(data, source="x")) == [(16, 80, 50, 70), (32, 80, 36, 100), (32, 80, 50, 80)]
    assert notes_of(parse_score(data, source="x", skip_channels=(9,))) == [(16, 80, 50, 70), (32, 80, 50, 80)]


def test_closing_leaves_complete_files_unchanged_in_notes():
    rng = np.random.default_rng(4)
    messages = []
    for _ in range(60):
        pitch, channel = int(rng.integers(30, 90)), int(rng.integers(0, 16))
        messages.append(
            mido.Message(
                "note_on",
                note=pitch,
                channel=channel,
                velocity=int(rng.integers(1, 128)),
                time=int(rng.integers(0, 300)),
            )
        )
        messages.append(mido.Message("note_off", note=pitch, channel=channel, time=int(rng.integers(0, 300))))
    data = mido_smf([messages[:60], messages[60:]])
    layout = read_midi_layout(data, source="x")
    patched = close_dangling_notes(data, layout)
    assert len(patched) > len(data)
    assert notes_of(symusic.Score.from_midi(patched)) == notes_of(symusic.Score.from_midi(data))
    # A file with no note events is returned as is.
    empty = mido_smf([[mido.MetaMessage("set_tempo", tempo=500_000)]])
    assert close_dangling_notes(empty, read_midi_layout(empty, source="x")) is empty


# --- robustness ------------------------------------------------------------------------------

FUZZ = r"""
import io, random, sys, mido
from chroma_keras.errors import MidiError
from chroma_keras.preprocessing.midi_validation import parse_score, validate_midi_bytes
from chroma_keras.preprocessing.pianoroll import PianoRollSpec, midi_to_piano_roll

rng = random.Random(0)
def make():
    midi = mido.MidiFile(type=1, ticks_per_beat=rng.choice([96, 480, 960]))
    for channel in range(rng.randint(1, 3)):
        track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=rng.randint(300000, 900000))])
        for _ in range(rng.randint(1, 20)):
            pitch = rng.randint(30, 90)
            velocity, delay = rng.randint(1, 127), rng.randint(0, 200)
            track.append(mido.Message("note_on", note=pitch, velocity=velocity, time=delay, channel=channel))
            track.append(mido.Message("control_change", control=7, value=rng.randint(0, 127), channel=channel))
            track.append(mido.Message("note_off", note=pitch, time=rng.randint(0, 400), channel=channel))
        midi.tracks.append(track)
    buffer = io.BytesIO(); midi.save(file=buffer); return bytearray(buffer.getvalue())

outcomes = {"ok": 0, "midi_error": 0}
spec = PianoRollSpec()
for case in range(N):
    data = make()
    kind = case % 5
    if kind == 0:
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(14, len(data))] = rng.randrange(256)
    elif kind == 1:
        data = data[: rng.randrange(len(data))]
    elif kind == 2:
        at = data.find(b"MTrk", 14)
        data[at + 4 : at + 8] = rng.randrange(2**32).to_bytes(4, "big")
    elif kind == 3:
        data[rng.randrange(8, 14)] = rng.randrange(256)
    else:
        at = rng.randrange(22, len(data))
        data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 10)))
    data = bytes(data)
    try:
        validate_midi_bytes(data, source="fuzz")
        parse_score(data, source="fuzz")
        midi_to_piano_roll(data, spec, source="fuzz")
        outcomes["ok"] += 1
    except MidiError:
        outcomes["midi_error"] += 1
print(outcomes)
"""


def test_corrupted_files_raise_midi_error_and_never_crash_the_process():
    # Runs in a subprocess so a native crash fails this test instead of killing pytest.
    proc = subprocess.run(
        [sys.executable, "-c", "N = 500\n" + textwrap.dedent(FUZZ)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    outcomes = eval(proc.stdout.strip().splitlines()[-1])  # noqa: S307 - our own subprocess' dict literal
    assert outcomes["ok"] + outcomes["midi_error"] == 500
    assert outcomes["midi_error"] > 200 and outcomes["ok"] > 20
