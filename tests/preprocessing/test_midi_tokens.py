"""Tests for chroma_keras.preprocessing.midi_tokens (miditok / symusic / mido; no keras)."""

import io
import json

import miditok
import mido
import numpy as np
import pytest
import symusic

from chroma_keras.errors import DataError, MidiError, PresetError
from chroma_keras.preprocessing.midi_tokens import (
    MidiTokenizerSpec,
    detokenize,
    load_tokenizer,
    make_tokenizer,
    save_tokenizer,
    tokenize_midi_bytes,
    tokenizer_from_config,
)

TPQ = 480
STEP = TPQ // 8  # the tokenizer's default grid: 8 positions per beat

SPECS = [
    MidiTokenizerSpec("remi", 512),
    MidiTokenizerSpec("cpword", 512, "compound"),
    MidiTokenizerSpec("cpword", 512, "separate"),
]
TOKENIZERS = {spec: make_tokenizer(spec) for spec in SPECS}


def on_grid_midi(seed, bpm=120.0, programs=(0, 33, 73), drums=True, velocities=None):
    """A multi-track file whose notes lie on the tokenizer's grid, with binned velocities.

    Returns:
        (SMF bytes, the expected notes as (program, is_drum, start_beats, duration_beats, pitch, velocity)).
    """
    rng = np.random.default_rng(seed)
    velocities = velocities if velocities is not None else [3 + 4 * k for k in range(32)]
    midi = mido.MidiFile(type=1, ticks_per_beat=TPQ)
    midi.tracks.append(mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm))]))
    expected = []
    parts = [(p, c) for c, p in enumerate(programs)] + ([(0, 9)] if drums else [])
    for program, channel in parts:
        events = [] if channel == 9 else [mido.Message("program_change", program=program, channel=channel, time=0)]
        busy_until = {}
        for _ in range(12):
            pitch = int(rng.integers(36, 52)) if channel == 9 else int(rng.integers(28, 100))
            start = int(rng.integers(0, 8 * 16)) * STEP  # within 16 beats
            duration = int(rng.integers(1, 64)) * STEP  # up to 8 beats
            if busy_until.get(pitch, -1) >= start:
                continue  # no overlapping notes of one key on one track
            busy_until[pitch] = start + duration
            velocity = int(rng.choice(velocities))
            events.append(mido.Message("note_on", note=pitch, velocity=velocity, channel=channel, time=start))
            events.append(mido.Message("note_off", note=pitch, channel=channel, time=start + duration))
            is_drum = channel == 9
            expected.append((-1 if is_drum else program, is_drum, start / TPQ, duration / TPQ, pitch, velocity))
        events.sort(key=lambda m: (m.time, m.type == "note_on"))
        now, track = 0, mido.MidiTrack()
        for msg in events:
            track.append(msg.copy(time=msg.time - now))
            now = msg.time
        midi.tracks.append(track)
    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.getvalue(), sorted(expected)


def notes_in_beats(data):
    score = symusic.Score.from_midi(data)
    tpq = score.ticks_per_quarter
    return sorted(
        (-1 if t.is_drum else t.program, t.is_drum, n.time / tpq, n.duration / tpq, n.pitch, n.velocity)
        for t in score.tracks
        for n in t.notes
    )


# --- round trips --------------------------------------------------------------------


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.tokenization}-{s.cpword_layout}")
def test_round_trip_on_grid_is_note_exact(spec):
    tokenizer = TOKENIZERS[spec]
    for seed in range(3):
        data, expected = on_grid_midi(seed)
        tokens = tokenize_midi_bytes(data, tokenizer, source=f"seg {seed}")
        assert tokens.num_tokens == tokens.mask.sum() < spec.max_events
        assert tokens.ids.dtype == np.int32 and tokens.mask.dtype == bool
        assert tokens.ids.shape == ((spec.max_events, 7) if spec.is_compound else (spec.max_events,))
        assert np.all(tokens.ids[~tokens.mask] == tokenizer.pad_id)
        assert notes_in_beats(detokenize(tokens.ids, tokenizer, mask=tokens.mask)) == expected
        # Without a mask, PAD tokens are dropped.
        assert notes_in_beats(detokenize(tokens.ids, tokenizer)) == expected


def test_tempo_survives_within_its_bin():
    tokenizer = TOKENIZERS[SPECS[0]]
    data, _ = on_grid_midi(0, bpm=97.0, drums=False)
    back = symusic.Score.from_midi(detokenize(tokenize_midi_bytes(data, tokenizer, source="x").ids, tokenizer))
    tempos = [t.qpm for t in back.tempos]
    bins = np.asarray(tokenizer.miditok.tempos)
    assert tempos[0] == pytest.approx(bins[np.argmin(abs(bins - 97.0))], abs=0.01) and abs(tempos[0] - 97.0) < 4


def test_remi_ids_equal_miditok_encoding():
    tokenizer = TOKENIZERS[SPECS[0]]
    data, _ = on_grid_midi(5)
    tokens = tokenize_midi_bytes(data, tokenizer, source="x")
    reference = tokenizer.miditok.encode(symusic.Score.from_midi(data)).ids
    assert tokens.ids[tokens.mask].tolist() == reference


def test_separate_layout_flattens_the_compound_tokens():
    compound, separate = TOKENIZERS[SPECS[1]], TOKENIZERS[SPECS[2]]
    data, _ = on_grid_midi(7)
    rows = tokenize_midi_bytes(data, compound, source="x")
    flat = tokenize_midi_bytes(data, separate, source="x")
    rows = rows.ids[rows.mask]
    ignore = np.array([v.get("Ignore_None", -1) for v in compound.miditok.vocab])  # Family has none
    offsets = np.concatenate([[0], np.cumsum(compound.field_sizes)[:-1]])
    expected = [int(i + o) for row in rows for i, o, skip in zip(row, offsets, ignore) if i != skip]
    assert flat.ids[flat.mask].tolist() == expected
    assert separate.vocab_size == sum(compound.field_sizes)
    assert compound.vocab_size == compound.field_sizes and len(compound.field_sizes) == 7


def test_truncation_keeps_a_prefix_of_the_notes():
    data, expected = on_grid_midi(2, drums=False)
    for spec in (
        MidiTokenizerSpec("remi", 40),
        MidiTokenizerSpec("cpword", 40, "separate"),
        MidiTokenizerSpec("cpword", 12),
    ):
        tokenizer = make_tokenizer(spec)
        tokens = tokenize_midi_bytes(data, tokenizer, source="x")
        assert tokens.num_tokens > spec.max_events and tokens.mask.sum() <= spec.max_events
        if spec.cpword_layout == "separate" and spec.tokenization == "cpword":
            # Cut at a compound-token boundary: the next id would be a Family token.
            full = make_tokenizer(MidiTokenizerSpec("cpword", 4096, "separate"))
            whole = tokenize_midi_bytes(data, full, source="x").ids
            assert whole[tokens.mask.sum()] < tokenizer.field_sizes[0]
        notes = notes_in_beats(detokenize(tokens.ids, tokenizer, mask=tokens.mask))
        # Tokens run in time order: what survives is exact, and nothing later than a lost note.
        missing = set(expected) - set(notes)
        assert set(notes) <= set(expected) and notes and missing
        assert max(n[2] for n in notes) <= min(n[2] for n in missing)


def test_dangling_notes_end_with_their_track():
    # A note-on at beat 1 never released; the track ends at beat 4.
    track = mido.MidiTrack(
        [mido.Message("note_on", note=60, velocity=99, time=TPQ), mido.MetaMessage("end_of_track", time=3 * TPQ)]
    )
    midi = mido.MidiFile(ticks_per_beat=TPQ)
    midi.tracks.append(track)
    buffer = io.BytesIO()
    midi.save(file=buffer)
    tokenizer = TOKENIZERS[SPECS[0]]
    back = notes_in_beats(detokenize(tokenize_midi_bytes(buffer.getvalue(), tokenizer, source="x").ids, tokenizer))
    assert back == [(0, False, 1.0, 3.0, 60, 99)]


# --- config and saving ------------------------------------------------------------------


def test_spec_from_config():
    config = {
        "preprocessing": {
            "midi": {
                "tokenization": "cpword",
                "max_events": 300,
                "tokens": {"cpword_layout": "separate", "num_velocities": 16},
            }
        }
    }
    spec = MidiTokenizerSpec.from_config(config)
    assert spec == MidiTokenizerSpec("cpword", 300, "separate", num_velocities=16)
    assert tokenizer_from_config(config).vocab_size == make_tokenizer(spec).vocab_size
    assert MidiTokenizerSpec.from_config({}) == MidiTokenizerSpec()
    with pytest.raises(PresetError, match=r"preprocessing\.midi\.tokenization is 'pianoroll'"):
        MidiTokenizerSpec.from_config({"preprocessing": {"midi": {"tokenization": "pianoroll"}}})
    with pytest.raises(PresetError, match=r"preprocessing\.midi\.tokens\.layout"):
        MidiTokenizerSpec.from_config({"preprocessing": {"midi": {"tokens": {"layout": "compound"}}}})
    with pytest.raises(PresetError, match="cpword_layout must be one of"):
        MidiTokenizerSpec.from_config({"preprocessing": {"midi": {"tokens": {"cpword_layout": "flat"}}}})


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(tokenization="abc"), "tokenization must be one of"),
        (dict(max_events=0), "max_events"),
        (dict(positions_per_beat=64), "positions_per_beat"),
        (dict(num_velocities=True), "num_velocities"),
        (dict(use_tempos="yes"), "use_tempos"),
    ],
)
def test_bad_specs(kwargs, words):
    with pytest.raises(DataError, match=words):
        MidiTokenizerSpec(**kwargs)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.tokenization}-{s.cpword_layout}")
def test_save_and_load_next_to_the_data(tmp_path, spec):
    tokenizer = TOKENIZERS[spec]
    path = save_tokenizer(tokenizer, tmp_path / "tokens")
    assert path.name == "tokenizer.json"
    loaded = load_tokenizer(tmp_path / "tokens")
    assert loaded.spec == spec and loaded.vocab_size == tokenizer.vocab_size
    assert loaded.miditok.vocab == tokenizer.miditok.vocab
    data, _ = on_grid_midi(9)
    np.testing.assert_array_equal(
        tokenize_midi_bytes(data, loaded, source="x").ids, tokenize_midi_bytes(data, tokenizer, source="x").ids
    )
    # The file is miditok's own: miditok loads it without chroma_keras.
    plain = type(tokenizer.miditok)(params=path)
    assert plain.vocab == tokenizer.miditok.vocab
    assert json.loads(path.read_text())["chroma_keras"]["max_events"] == spec.max_events


# --- errors -------------------------------------------------------------------------------


def test_bad_inputs_raise_errors_naming_the_source(tmp_path):
    remi, compound = TOKENIZERS[SPECS[0]], TOKENIZERS[SPECS[1]]
    with pytest.raises(MidiError, match="05_03_seg_0002_track_04") as info:
        tokenize_midi_bytes(b"MThd\x00\x00", remi, source="05_03_seg_0002_track_04")
    assert info.value.reason == "truncated"
    with pytest.raises(DataError, match=r"candidate 3: expected token ids of shape \[T\]"):
        detokenize(np.zeros((4, 7), np.int32), remi, source="candidate 3")
    with pytest.raises(DataError, match=r"shape \[T, 7\]"):
        detokenize(np.zeros(4, np.int32), compound)
    with pytest.raises(DataError, match="outside the vocabulary"):
        detokenize(np.array([3, 10_000]), remi)
    with pytest.raises(DataError, match="integer"):
        detokenize(np.array([3.0, 4.0]), remi)
    with pytest.raises(DataError, match="mask shape"):
        detokenize(np.array([3, 4]), remi, mask=np.ones(3, bool))
    with pytest.raises(DataError, match="Family"):
        detokenize(np.array([10, 4]), TOKENIZERS[SPECS[2]])
    with pytest.raises(DataError, match="missing"):
        load_tokenizer(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    miditok.REMI().save(tmp_path / "plain")
    with pytest.raises(DataError, match="chroma_keras"):
        load_tokenizer(tmp_path / "plain")
    with pytest.raises(DataError, match="either a spec or spec fields"):
        make_tokenizer(SPECS[0], max_events=3)
