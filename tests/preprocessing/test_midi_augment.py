"""Tests for chroma_keras.preprocessing.midi_augment (numpy / symusic / mido; no keras)."""

import io

import mido
import numpy as np
import pytest
import symusic

from chroma_keras.errors import DataError, MidiError, PresetError
from chroma_keras.preprocessing.midi_augment import (
    AugmentationSpec,
    augment_midi_bytes,
    augment_score,
    quantize_time,
    randomize_velocity,
    transpose,
)

TPQ = 480


def band_midi(seed=0, low=30, high=100):
    """Bass + keys + drums, humanised timing (off any grid)."""
    rng = np.random.default_rng(seed)
    midi = mido.MidiFile(type=1, ticks_per_beat=TPQ)
    for channel, program in ((0, 33), (1, 0), (9, 0)):
        messages = [mido.Message("program_change", channel=channel, program=program)]
        now = 0
        for _ in range(25):
            start = now + int(rng.integers(0, 400))
            pitch = int(rng.integers(35, 50) if channel == 9 else rng.integers(low, high))
            messages.append(
                mido.Message(
                    "note_on", channel=channel, note=pitch, velocity=int(rng.integers(1, 128)), time=start - now
                )
            )
            messages.append(mido.Message("note_off", channel=channel, note=pitch, time=int(rng.integers(1, 500))))
            now = start + messages[-1].time
        midi.tracks.append(mido.MidiTrack(messages))
    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.getvalue()


SCORE = symusic.Score.from_midi(band_midi())


def arrays(track):
    return {k: v.astype(np.int64) for k, v in track.notes.numpy().items()}


def pitched_and_drums(score):
    pitched = [t for t in score.tracks if not t.is_drum]
    drums = [t for t in score.tracks if t.is_drum]
    assert pitched and drums
    return pitched, drums


# --- transposition ---------------------------------------------------------------------


@pytest.mark.parametrize("semitones", [-12, -5, 0, 7])
def test_transpose_shifts_every_pitched_note_and_leaves_drums(semitones):
    before = [arrays(t) for t in SCORE.tracks]
    result = transpose(SCORE, semitones)
    for track, old in zip(result.tracks, before):
        new = arrays(track)
        expected = old["pitch"] if track.is_drum else old["pitch"] + semitones
        np.testing.assert_array_equal(new["pitch"], expected)
        for key in ("time", "duration", "velocity"):
            np.testing.assert_array_equal(new[key], old[key])
    # The input is not modified.
    for track, old in zip(SCORE.tracks, before):
        np.testing.assert_array_equal(arrays(track)["pitch"], old["pitch"])


def test_out_of_range_policies():
    score = symusic.Score.from_midi(band_midi(1, low=110, high=128))
    top = arrays(score.tracks[0])["pitch"]
    folded = arrays(transpose(score, 12, out_of_range="fold").tracks[0])["pitch"]
    shifted = top + 12
    expected = np.where(shifted > 127, np.where(shifted % 12 > 7, 108, 120) + shifted % 12, shifted)
    np.testing.assert_array_equal(folded, expected)
    assert folded.max() <= 127 and np.all(folded % 12 == shifted % 12)
    dropped = arrays(transpose(score, 12, out_of_range="drop").tracks[0])["pitch"]
    np.testing.assert_array_equal(dropped, shifted[shifted <= 127])
    assert len(dropped) < len(shifted)
    # Downwards: -4 -> pitch class 8 -> 8.
    low = symusic.Score.from_midi(band_midi(2, low=0, high=10))
    pitches = arrays(low.tracks[0])["pitch"] - 20
    np.testing.assert_array_equal(
        arrays(transpose(low, -20).tracks[0])["pitch"], np.where(pitches < 0, pitches % 12, pitches)
    )


def test_random_transposition_is_seeded():
    spec = AugmentationSpec(transpose_semitones=6)
    first = arrays(augment_score(SCORE, spec, seed=11).tracks[0])["pitch"]
    again = arrays(augment_score(SCORE, spec, seed=11).tracks[0])["pitch"]
    np.testing.assert_array_equal(first, again)
    expected_shift = int(np.random.default_rng(11).integers(-6, 7))
    np.testing.assert_array_equal(first, arrays(SCORE.tracks[0])["pitch"] + expected_shift)
    shifts = {
        int(arrays(augment_score(SCORE, spec, seed=s).tracks[0])["pitch"][0] - arrays(SCORE.tracks[0])["pitch"][0])
        for s in range(60)
    }
    assert shifts == set(range(-6, 7))
    for seed in range(5):
        _, drums = pitched_and_drums(augment_score(SCORE, spec, seed=seed))
        np.testing.assert_array_equal(arrays(drums[0])["pitch"], arrays(pitched_and_drums(SCORE)[1][0])["pitch"])


# --- velocity ----------------------------------------------------------------------------


def test_velocity_randomisation_bounds_and_reproducibility():
    result = randomize_velocity(SCORE, 0.25, seed=3)
    assert all(
        (arrays(a)["velocity"] == arrays(b)["velocity"]).all()
        for a, b in zip(result.tracks, randomize_velocity(SCORE, 0.25, seed=3).tracks)
    )
    changed = 0
    rng = np.random.default_rng(3)
    for old_track, new_track in zip(SCORE.tracks, result.tracks):
        old, new = arrays(old_track), arrays(new_track)
        expected = np.clip(np.round(old["velocity"] * rng.uniform(0.75, 1.25, len(old["velocity"]))), 1, 127)
        np.testing.assert_array_equal(new["velocity"], expected)  # the documented draw, in track order
        assert new["velocity"].min() >= 1 and new["velocity"].max() <= 127
        assert np.all(np.abs(new["velocity"] - old["velocity"]) <= 0.25 * old["velocity"] + 0.5)
        np.testing.assert_array_equal(new["pitch"], old["pitch"])
        changed += int((new["velocity"] != old["velocity"]).sum())
    assert changed > 30
    same = randomize_velocity(SCORE, 0.0, seed=0)
    for a, b in zip(SCORE.tracks, same.tracks):
        np.testing.assert_array_equal(arrays(a)["velocity"], arrays(b)["velocity"])


# --- quantisation -----------------------------------------------------------------------------


@pytest.mark.parametrize("steps", [1, 3, 4, 12])
def test_quantized_onsets_lie_on_the_grid(steps):
    result = quantize_time(SCORE, steps)
    step = TPQ // steps
    for old_track, new_track in zip(SCORE.tracks, result.tracks):
        old, new = arrays(old_track), arrays(new_track)
        assert np.all(new["time"] % step == 0) and np.all((new["time"] + new["duration"]) % step == 0)
        assert np.all(new["duration"] >= step)
        # Notes keep their order (sorted by onset) and move to the nearest grid point.
        order = np.lexsort((old["pitch"], old["time"]))
        assert np.all(np.abs(np.sort(new["time"]) - old["time"][order]) <= step / 2)
    # Quantising twice changes nothing more.
    twice = quantize_time(result, steps)
    for a, b in zip(result.tracks, twice.tracks):
        for key in ("time", "duration", "pitch"):
            np.testing.assert_array_equal(arrays(a)[key], arrays(b)[key])


def test_everything_through_bytes():
    spec = AugmentationSpec(transpose_semitones=3, velocity_jitter=0.1, quantize_steps_per_quarter=4)
    data = band_midi(4)
    out = augment_midi_bytes(data, spec, seed=9, source="seg")
    assert out == augment_midi_bytes(data, spec, seed=9, source="seg")
    assert any(out != augment_midi_bytes(data, spec, seed=s, source="seg") for s in range(10, 13))
    score = symusic.Score.from_midi(out)
    pitched, drums = pitched_and_drums(score)
    assert all(np.all(arrays(t)["time"] % (TPQ // 4) == 0) for t in score.tracks)
    original_pitched, original_drums = pitched_and_drums(symusic.Score.from_midi(data))
    np.testing.assert_array_equal(np.sort(arrays(drums[0])["pitch"]), np.sort(arrays(original_drums[0])["pitch"]))
    shift = int(np.random.default_rng(9).integers(-3, 4))
    np.testing.assert_array_equal(
        np.sort(arrays(pitched[0])["pitch"]), np.sort(arrays(original_pitched[0])["pitch"] + shift)
    )
    with pytest.raises(MidiError, match="06_01_seg_0100_track_07"):
        augment_midi_bytes(b"", spec, seed=0, source="06_01_seg_0100_track_07")


# --- config and errors ----------------------------------------------------------------------------


def test_spec_from_config():
    config = {"preprocessing": {"midi": {"augmentations": {"transpose_semitones": 4, "velocity_jitter": 0.2}}}}
    assert AugmentationSpec.from_config(config) == AugmentationSpec(4, 0.2)
    assert AugmentationSpec.from_config({}) == AugmentationSpec()
    with pytest.raises(PresetError, match=r"preprocessing\.midi\.augmentations\.pitch_shift"):
        AugmentationSpec.from_config({"preprocessing": {"midi": {"augmentations": {"pitch_shift": 2}}}})
    with pytest.raises(PresetError, match="transpose_semitones must be an integer in \\[0, 12\\]"):
        AugmentationSpec.from_config({"preprocessing": {"midi": {"augmentations": {"transpose_semitones": 13}}}})


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: transpose(SCORE.to("second"), 2, source="cand 4"), "in ticks"),
        (lambda: transpose(SCORE, 1.5, source="cand 4"), "semitones"),
        (lambda: transpose(SCORE, 1, out_of_range="clip", source="cand 4"), "out_of_range"),
        (lambda: randomize_velocity(SCORE, 1.5, seed=0, source="cand 4"), "jitter"),
        (lambda: randomize_velocity(SCORE, 0.1, seed="x", source="cand 4"), "seed"),
        (lambda: quantize_time(SCORE, 0, source="cand 4"), "steps_per_quarter"),
        (lambda: AugmentationSpec(velocity_jitter=-0.1), "velocity_jitter"),
        (lambda: AugmentationSpec(out_of_range="wrap"), "out_of_range"),
    ],
)
def test_bad_arguments(call, words):
    with pytest.raises(DataError, match=words):
        call()
