"""Tests for chroma_keras.data.alignment (numpy / librosa / pretty_midi; no keras).

Audio is rendered from known MIDI with chroma_keras' own synth (the additive
backend always, fluidsynth when installed) and then shifted by a known amount.
"""

import io

import numpy as np
import pretty_midi
import pytest

from chroma_keras.data.alignment import AlignmentReport, check_alignment, estimate_offset
from chroma_keras.errors import DataError, MidiError
from chroma_keras.preprocessing import synthesis
from chroma_keras.preprocessing.synthesis import render_midi

SR = 22050
BACKENDS = ["additive", "fluidsynth"]
HAVE_FLUIDSYNTH = synthesis.find_fluidsynth() is not None and synthesis.find_soundfont() is not None


def backend_param(name):
    if name == "fluidsynth":
        skip = pytest.mark.skipif(
            not HAVE_FLUIDSYNTH, reason="the fluidsynth program or a GM SoundFont is missing"
        )
        return pytest.param(name, marks=skip)
    return name


def song_midi(seed=3, seconds=8.0, with_drums=True):
    """An irregular piano melody over a chord every ~1.3 s (no common period), plus a few drum hits."""
    rng = np.random.default_rng(seed)
    pm = pretty_midi.PrettyMIDI(initial_tempo=100)
    piano = pretty_midi.Instrument(program=0)
    t = 0.2
    while t < seconds - 0.5:
        duration = float(rng.uniform(0.12, 0.45))
        pitch = int(rng.integers(60, 84))
        piano.notes.append(pretty_midi.Note(int(rng.integers(70, 120)), pitch, t, t + duration))
        t += duration + float(rng.uniform(0.05, 0.3))
    for start in np.arange(0.2, seconds - 1.0, 1.3):
        for pitch in (48, 52, 55):
            piano.notes.append(pretty_midi.Note(80, pitch, float(start), float(start) + 1.0))
    pm.instruments.append(piano)
    if with_drums:
        drums = pretty_midi.Instrument(program=0, is_drum=True)
        for start in (0.9, 2.6, 4.1, 6.3):
            drums.notes.append(pretty_midi.Note(100, 38, start, start + 0.1))
        pm.instruments.append(drums)
    buffer = io.BytesIO()
    pm.write(buffer)
    return buffer.getvalue()


def shift(audio, seconds, sr=SR):
    """Delay (seconds > 0: prepend silence) or advance (cut the start) the audio."""
    n = int(round(abs(seconds) * sr))
    return np.concatenate([np.zeros(n, np.float32), audio]) if seconds > 0 else audio[n:]


@pytest.fixture(scope="module")
def renders():
    """(midi_bytes, audio) per backend, rendered once for the module."""
    midi = song_midi()
    cache = {}

    def get(backend):
        if backend not in cache:
            cache[backend] = render_midi(midi, sample_rate=SR, backend=backend)
        return midi, cache[backend]

    return get


# --- estimate_offset -------------------------------------------------------------------


@pytest.mark.parametrize("backend", [backend_param(b) for b in BACKENDS])
def test_aligned_render_has_near_zero_offset(renders, backend):
    midi, audio = renders(backend)
    estimate = estimate_offset(audio, SR, midi)
    assert estimate.ok and estimate.reason is None
    assert abs(estimate.offset_seconds) < 0.05
    assert estimate.confidence > 0.8
    assert estimate.matched_onsets >= 0.8 * estimate.midi_onsets
    assert estimate.peak_ratio < 0.8  # irregular rhythm: one clear correlation peak


@pytest.mark.parametrize("backend", [backend_param(b) for b in BACKENDS])
@pytest.mark.parametrize("seconds", [0.3, -0.2])
def test_shifted_audio_offset_is_recovered(renders, backend, seconds):
    midi, audio = renders(backend)
    estimate = estimate_offset(shift(audio, seconds), SR, midi)
    # Positive offset = audio late.
    assert estimate.offset_seconds == pytest.approx(seconds, abs=0.05)
    assert estimate.confidence > 0.8


def test_offset_is_precise_on_sharp_attacks(renders):
    # The additive synth's 5 ms attack leaves no ambiguity: the fine step lands within 15 ms.
    midi, audio = renders("additive")
    for seconds in (0.0, 0.137, -0.071):
        assert estimate_offset(shift(audio, seconds), SR, midi).offset_seconds == pytest.approx(seconds, abs=0.015)


def test_confidence_is_the_onset_f_measure():
    # The audio holds the MIDI's onsets plus extra notes the MIDI lacks.
    base = song_midi(with_drums=False)
    pm = pretty_midi.PrettyMIDI(io.BytesIO(base))
    extra = pretty_midi.Instrument(program=0)
    onsets = np.array([n.start for inst in pm.instruments for n in inst.notes])
    # Four times at least 150 ms from every MIDI onset.
    extra_times = [t for t in np.arange(0.5, 7.5, 0.01) if np.min(np.abs(onsets - t)) > 0.15][::40][:4]
    assert len(extra_times) == 4
    extra.notes = [pretty_midi.Note(110, 96, t, t + 0.1) for t in extra_times]
    pm.instruments.append(extra)
    buffer = io.BytesIO()
    pm.write(buffer)
    audio = render_midi(buffer.getvalue(), sample_rate=SR, backend="additive")
    estimate = estimate_offset(audio, SR, base)
    assert abs(estimate.offset_seconds) < 0.02
    assert estimate.audio_onsets == estimate.midi_onsets + len(extra_times)
    assert estimate.matched_onsets == estimate.midi_onsets
    expected = 2 * estimate.midi_onsets / (2 * estimate.midi_onsets + len(extra_times))
    assert estimate.confidence == pytest.approx(expected)


def test_raw_float32_bytes_are_accepted(renders):
    midi, audio = renders("additive")
    from_bytes = estimate_offset(audio.astype("<f4").tobytes(), SR, midi)
    assert from_bytes == estimate_offset(audio, SR, midi)


def test_silent_audio_cannot_be_estimated(renders):
    midi, audio = renders("additive")
    estimate = estimate_offset(np.zeros_like(audio), SR, midi)
    assert not estimate.ok and estimate.offset_seconds is None
    assert estimate.confidence == 0.0 and estimate.matched_onsets == 0
    assert estimate.reason == "the audio is silent"
    assert estimate_offset(np.zeros(0, np.float32), SR, midi).reason == "the audio is silent"


def test_midi_without_notes_cannot_be_estimated(renders):
    _, audio = renders("additive")
    empty = pretty_midi.PrettyMIDI()
    empty.instruments.append(pretty_midi.Instrument(program=0))
    buffer = io.BytesIO()
    empty.write(buffer)
    estimate = estimate_offset(audio, SR, buffer.getvalue())
    assert not estimate.ok and estimate.reason == "the MIDI has no notes" and estimate.midi_onsets == 0


@pytest.mark.parametrize(
    "audio, sample_rate, match",
    [
        (np.zeros((2, 100), np.float32), SR, r"expected mono audio of shape \(num_samples,\). Received: shape="),
        (np.array([0.0, np.nan, 0.1]), SR, "the audio holds 1 NaN/inf sample"),
        (b"\x00\x00\x80", SR, r"little-endian float32 PCM \(a multiple of 4 bytes\). Received: 3 bytes"),
        (np.zeros(100), 0, "sample_rate must be a positive integer"),
        (np.zeros(100), 22050.5, "sample_rate must be a positive integer"),
    ],
)
def test_bad_audio_is_rejected_naming_the_segment(audio, sample_rate, match):
    with pytest.raises(DataError, match=f"seg_42: .*{match}"):
        estimate_offset(audio, sample_rate, song_midi(), source="seg_42")


def test_bad_midi_and_arguments_are_rejected():
    with pytest.raises(MidiError, match="seg_1: not a Standard MIDI File"):
        estimate_offset(np.ones(100), SR, b"garbage", source="seg_1")
    with pytest.raises(DataError, match="seg_1: max_offset must be a positive number"):
        estimate_offset(np.ones(100), SR, song_midi(), max_offset=0, source="seg_1")


# --- check_alignment ---------------------------------------------------------------------


def test_check_alignment_flags_the_shifted_segment(renders):
    midi, audio = renders("additive")
    records = [
        ("seg_ok", audio, SR, midi),
        ("seg_late", shift(audio, 0.3), SR, midi),
        ("seg_silent", np.zeros_like(audio), SR, midi),
        ("seg_corrupt", audio, SR, b"MThd\x00"),
        ("seg_stereo", np.stack([audio, audio]), SR, midi),
    ]
    report = check_alignment(iter(records), tolerance=0.05)
    assert isinstance(report, AlignmentReport) and report.tolerance == 0.05
    assert [s.segment_id for s in report.segments] == [r[0] for r in records]
    assert [s.status for s in report.segments] == ["aligned", "misaligned", "unknown", "error", "error"]
    assert [s.segment_id for s in report.flagged] == ["seg_late"]
    offsets = report.offsets
    assert abs(offsets["seg_ok"]) < 0.05 and offsets["seg_late"] == pytest.approx(0.3, abs=0.05)
    assert offsets["seg_silent"] is None and offsets["seg_corrupt"] is None
    assert "seg_corrupt" in report.segments[3].message
    summary = report.summary()
    assert summary.splitlines()[0] == "5 segments, tolerance 50 ms: 1 aligned, 1 misaligned, 1 unknown, 2 error"
    assert "seg_late: offset +30" in summary and "seg_silent: unknown: the audio is silent" in summary


def test_check_alignment_tolerance_decides_the_flag(renders):
    midi, audio = renders("additive")
    records = [("seg_a", shift(audio, 0.1), SR, midi)]
    assert check_alignment(records, tolerance=0.05).segments[0].status == "misaligned"
    assert check_alignment(records, tolerance=0.15).segments[0].status == "aligned"


def test_check_alignment_rejects_bad_records_and_tolerance():
    with pytest.raises(DataError, match=r"record 0: expected a tuple \(segment_id, audio, sample_rate, midi_bytes\)"):
        check_alignment([("seg_only_id",)])
    with pytest.raises(DataError, match="tolerance must be a number of seconds >= 0"):
        check_alignment([], tolerance=-0.1)
