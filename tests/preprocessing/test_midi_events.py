"""Tests for chroma_keras.preprocessing.midi_events (numpy / symusic / mido / pretty_midi; no keras)."""

import io

import mido
import numpy as np
import pretty_midi
import pytest

from chroma_keras.errors import DataError, MidiError
from chroma_keras.preprocessing.midi_events import EventVocabulary

VOCAB = EventVocabulary()


def random_grid_notes(seed, count=80, vocab=VOCAB):
    """Notes on the 10 ms grid with bin-centre velocities, one voice per key, some long gaps."""
    rng = np.random.default_rng(seed)
    notes, busy = [], {}
    time = 0
    for _ in range(count):
        time += int(rng.choice([0, 0, 1, 7, 25, 50, 130, 260]))  # steps; 0 = a chord
        pitch = int(rng.integers(0, 128))
        if busy.get(pitch, -1) > time:
            continue
        length = int(rng.integers(1, 300))
        busy[pitch] = time + length
        velocity = vocab.bin_velocity(int(rng.integers(vocab.num_velocity_bins)))
        notes.append((pitch, round(time * 0.01, 9), round((time + length) * 0.01, 9), velocity))
    return sorted(notes, key=lambda n: (n[1], n[0], n[2]))


def smf(messages, ticks_per_beat=480, tempo=500_000):
    midi = mido.MidiFile(ticks_per_beat=ticks_per_beat)
    midi.tracks.append(mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=tempo), *messages]))
    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.getvalue()


# --- vocabulary -----------------------------------------------------------------------


def test_default_layout_is_the_music_transformer_vocabulary_plus_specials():
    assert VOCAB.vocab_size == 3 + 128 + 128 + 100 + 32 == 391
    names = {i: VOCAB.token_name(i) for i in (0, 1, 2, 3, 130, 131, 258, 259, 358, 359, 390)}
    assert names == {
        0: "PAD", 1: "BOS", 2: "EOS", 3: "NOTE_ON_0", 130: "NOTE_ON_127", 131: "NOTE_OFF_0", 258: "NOTE_OFF_127",
        259: "TIME_SHIFT_1", 358: "TIME_SHIFT_100", 359: "VELOCITY_0", 390: "VELOCITY_31",
    }  # fmt: skip
    # Each bin's velocity falls back into that bin, and bins cover 1..127 in order.
    bins = [VOCAB.velocity_bin(v) for v in range(1, 128)]
    assert bins == sorted(bins) and bins[0] == 0 and bins[-1] == 31
    assert all(VOCAB.velocity_bin(VOCAB.bin_velocity(b)) == b for b in range(32))


def test_config_round_trip():
    vocab = EventVocabulary(time_step_seconds=0.008, max_shift_steps=125, num_velocity_bins=16, include_drums=True)
    assert vocab.vocab_size == 3 + 256 + 125 + 16
    assert EventVocabulary.from_config(vocab.get_config()) == vocab
    assert EventVocabulary(**VOCAB.get_config()) == VOCAB and vocab != VOCAB


# --- round trips ------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_round_trip_at_the_time_resolution(seed):
    notes = random_grid_notes(seed)
    ids = VOCAB.encode(notes)
    assert ids[0] == VOCAB.bos_id and ids[-1] == VOCAB.eos_id and ids.dtype == np.int32
    assert VOCAB.decode(ids) == notes
    # Through a MIDI file: pretty_midi reads the same notes, and re-encoding gives the same ids.
    data = VOCAB.decode_midi(ids, program=48)
    pm = pretty_midi.PrettyMIDI(io.BytesIO(data))
    assert pm.instruments[0].program == 48
    got = sorted((n.pitch, n.start, n.end, n.velocity) for n in pm.instruments[0].notes)
    expected = sorted(notes)
    assert [(p, v) for p, _, _, v in got] == [(p, v) for p, _, _, v in expected]
    np.testing.assert_allclose([(s, e) for _, s, e, _ in got], [(s, e) for _, s, e, _ in expected], atol=1e-6)
    np.testing.assert_array_equal(VOCAB.encode(data), ids)


def test_other_resolutions_round_trip():
    vocab = EventVocabulary(time_step_seconds=0.008, max_shift_steps=125, num_velocity_bins=16)
    notes = [
        (p, round(s * 0.008, 9), round(e * 0.008, 9), v)
        for p, s, e, v in [
            (60, 0, 3, vocab.bin_velocity(3)),
            (61, 2, 400, vocab.bin_velocity(15)),
            (62, 399, 401, vocab.bin_velocity(0)),
        ]
    ]
    assert vocab.decode(vocab.encode(notes)) == sorted(notes, key=lambda n: (n[1], n[0]))


def test_reading_midi_bytes_agrees_with_pretty_midi():
    # 100 bpm, 384 ticks per beat: 1 tick = 1/640 s; note times land on 10 ms steps every 32 ticks.
    rng = np.random.default_rng(5)
    messages, now = [], 0
    for _ in range(40):
        start = now + int(rng.integers(0, 20)) * 32
        pitch = int(rng.integers(30, 90))
        messages.append(mido.Message("note_on", note=pitch, velocity=int(rng.integers(1, 128)), time=start - now))
        messages.append(mido.Message("note_off", note=pitch, time=int(rng.integers(1, 30)) * 32))
        now = start + messages[-1].time
    data = smf(messages, ticks_per_beat=384, tempo=600_000)
    pm = pretty_midi.PrettyMIDI(io.BytesIO(data))
    reference = [(n.pitch, n.start, n.end, n.velocity) for n in pm.instruments[0].notes]
    np.testing.assert_array_equal(VOCAB.encode(data, source="seg"), VOCAB.encode(reference))


# --- encoding rules ---------------------------------------------------------------------------


def names(ids):
    return [VOCAB.token_name(i) for i in ids]


def test_quantisation_and_one_voice_per_key():
    notes = [
        (60, 0.004, 0.0149, 64),  # rounds to steps 0..1
        (61, 0.5, 0.501, 64),  # shorter than a step after rounding: lasts one step
        (62, 1.0, 3.0, 64),  # struck again at 2.0 s: ends there
        (62, 2.0, 2.5, 64),
        (63, 4.0, 4.5, 30),  # two notes on one key at one step: the louder one stays
        (63, 4.0, 4.2, 90),
    ]
    assert VOCAB.decode(VOCAB.encode(notes)) == [
        (60, 0.0, 0.01, 65), (61, 0.5, 0.51, 65), (62, 1.0, 2.0, 65), (62, 2.0, 2.5, 65), (63, 4.0, 4.2, 89),
    ]  # fmt: skip


def test_event_order_velocity_changes_and_long_shifts():
    notes = [(60, 0.0, 0.5, 100), (60, 0.5, 0.6, 100), (67, 0.5, 3.1, 20)]
    assert names(VOCAB.encode(notes, add_bos_eos=False)) == [
        "VELOCITY_25", "NOTE_ON_60", "TIME_SHIFT_50",
        "NOTE_OFF_60", "NOTE_ON_60", "VELOCITY_5", "NOTE_ON_67",  # offs before ons; velocity only on change
        "TIME_SHIFT_10", "NOTE_OFF_60",
        "TIME_SHIFT_100", "TIME_SHIFT_100", "TIME_SHIFT_50", "NOTE_OFF_67",  # 2.5 s = 100 + 100 + 50 steps
    ]  # fmt: skip


def test_decoding_rules():
    on, off, shift = VOCAB.note_on_offset, VOCAB.note_off_offset, VOCAB.time_shift_offset
    ids = [0, 1, on + 60, shift + 9, off + 61, on + 64, shift + 4, 2, on + 70]
    # PAD/BOS skipped, stray NOTE_OFF ignored, open notes end at the last time, nothing after EOS.
    assert VOCAB.decode(ids) == [(60, 0.0, 0.15, 65), (64, 0.1, 0.15, 65)]
    assert VOCAB.decode([]) == []


def test_drums_and_dangling_notes_from_midi():
    messages = [
        mido.Message("note_on", note=36, velocity=100, channel=9),
        mido.Message("note_off", note=36, channel=9, time=96),
        mido.Message("note_on", note=60, velocity=100, time=0),  # never released
        mido.MetaMessage("end_of_track", time=960),  # 1.1 s after the start
    ]
    data = smf(messages)
    assert VOCAB.decode(VOCAB.encode(data)) == [(60, 0.1, 1.1, 101)]
    with_drums = EventVocabulary(include_drums=True)
    assert with_drums.decode(with_drums.encode(data)) == [(36, 0.0, 0.1, 101), (60, 0.1, 1.1, 101)]


def test_encode_fixed_pads_and_cuts():
    notes = random_grid_notes(7, count=30)
    full = VOCAB.encode(notes)
    ids, mask, length = VOCAB.encode_fixed(notes, len(full) + 5)
    assert length == len(full) and mask.sum() == len(full)
    np.testing.assert_array_equal(ids[: len(full)], full)
    assert np.all(ids[len(full) :] == VOCAB.pad_id)
    ids, mask, length = VOCAB.encode_fixed(notes, 20)
    assert mask.all() and length == len(full)
    np.testing.assert_array_equal(ids, full[:20])


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(time_step_seconds=0), "time_step_seconds"),
        (dict(max_shift_steps=0), "max_shift_steps"),
        (dict(num_velocity_bins=129), "num_velocity_bins"),
        (dict(num_velocity_bins=True), "num_velocity_bins"),
    ],
)
def test_bad_vocabulary_arguments(kwargs, words):
    with pytest.raises(DataError, match=words):
        EventVocabulary(**kwargs)


@pytest.mark.parametrize(
    "notes, words",
    [
        ([(60, 0.0, 1.0)], r"shape \[N, 4\]"),
        ([(128, 0.0, 1.0, 64)], "pitches"),
        ([(60.5, 0.0, 1.0, 64)], "pitches"),
        ([(60, 0.0, 1.0, 0)], "velocities"),
        ([(60, 1.0, 0.5, 64)], "start <= end"),
        ([(60, float("nan"), 1.0, 64)], "finite"),
        ("not notes", "expected notes"),
    ],
)
def test_bad_notes(notes, words):
    with pytest.raises(DataError, match=words) as info:
        VOCAB.encode(notes, source="candidate 12")
    assert "candidate 12" in str(info.value)


def test_bad_ids_and_midi():
    with pytest.raises(DataError, match="1-D"):
        VOCAB.decode(np.zeros((2, 3), np.int32))
    with pytest.raises(DataError, match="1-D"):
        VOCAB.decode(np.array([3.0, 4.0]))
    with pytest.raises(DataError, match=r"\[0, 391\)"):
        VOCAB.decode([3, 391])
    with pytest.raises(DataError, match="outside the vocabulary"):
        VOCAB.token_name(-1)
    with pytest.raises(DataError, match="program"):
        VOCAB.decode_midi([3], program=128)
    with pytest.raises(MidiError, match="02_04_seg_0011_track_03") as info:
        VOCAB.encode(b"MThd\x00\x00\x00\x06\x00\x05\x00\x01\x01\xe0", source="02_04_seg_0011_track_03")
    assert info.value.reason == "bad_format"
