"""Tests for chroma_keras.data.demo_corpus (numpy / pyarrow / MIDI only; no keras)."""

import io
import json

import numpy as np
import pretty_midi
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import symusic

from chroma_keras import modes
from chroma_keras.data.demo_corpus import (
    BEATS_PER_BAR,
    DEMO_SCHEMA,
    DEMO_SPEC,
    PATTERN_BARS,
    generate_demo_corpus,
    write_demo_corpus,
)
from chroma_keras.errors import DataError
from chroma_keras.preprocessing.pianoroll import midi_to_piano_roll
from chroma_keras.rebracketing import REBRACKETING_TYPES, SCORE_FIELDS, rebracketing_features

EXPECTED_TYPES = {
    "segment_id": pa.string(),
    "song_id": pa.string(),
    "start_seconds": pa.float64(),
    "end_seconds": pa.float64(),
    "duration_seconds": pa.float64(),
    "has_audio": pa.bool_(),
    "has_midi": pa.bool_(),
    "lyric_text": pa.string(),
    "concept": pa.string(),
    "track_description": pa.string(),
    "audio_waveform": pa.binary(),
    "audio_sample_rate": pa.int32(),
    "midi_binary": pa.binary(),
    "rainbow_color": pa.string(),
    "rainbow_color_temporal_mode": pa.string(),
    "rainbow_color_objectional_mode": pa.string(),
    "rainbow_color_ontological_mode": pa.string(),
    "training_data": pa.string(),
}


@pytest.fixture(scope="module")
def corpus():
    return generate_demo_corpus()


@pytest.fixture(scope="module")
def rows(corpus):
    return corpus.to_pylist()


@pytest.fixture(scope="module")
def first_rows(rows):
    """The rows a reader keeps: the first of each segment_id."""
    seen, kept = set(), []
    for row in rows:
        if row["segment_id"] not in seen:
            seen.add(row["segment_id"])
            kept.append(row)
    return kept


def test_deterministic_including_midi_bytes(corpus):
    again = generate_demo_corpus()
    assert again.equals(corpus)
    assert again.column("midi_binary").to_pylist() == corpus.column("midi_binary").to_pylist()
    other = generate_demo_corpus(songs_per_colour=1, segments_per_song=2, seed=1)
    assert other.column("midi_binary").to_pylist() != corpus.slice(0, other.num_rows).column("midi_binary").to_pylist()


def test_schema(corpus):
    assert corpus.schema.names == list(EXPECTED_TYPES)
    for name, arrow_type in EXPECTED_TYPES.items():
        assert corpus.schema.field(name).type == arrow_type, name
    assert corpus.schema.equals(DEMO_SCHEMA)


def test_size_ids_and_windows(corpus, rows, first_rows):
    colours = [c for c in modes.COLOURS if c.has_training_data]
    assert len(colours) == 8
    assert corpus.num_rows == 8 * 4 * 12 + 2
    assert len(first_rows) == 8 * 4 * 12
    assert {r["rainbow_color"] for r in rows} == {c.name for c in colours}
    for row in first_rows:
        colour = modes.parse_colour(row["rainbow_color"])
        album, track = row["song_id"].split("_")
        assert int(album) == modes.COLOUR_NAMES.index(colour.name) + 1
        assert 1 <= int(track) <= 4
        i = int(row["segment_id"].split("_seg_")[1][:4]) - 1
        assert row["segment_id"] == f"{row['song_id']}_seg_{i + 1:04d}_track_01"
        assert row["start_seconds"] == i * 16.0
        assert row["end_seconds"] == row["start_seconds"] + 16.0
        assert row["duration_seconds"] == 16.0
        assert row["has_audio"] is False and row["audio_waveform"] is None
        assert row["audio_sample_rate"] == 44100
        assert row["track_description"]
        assert row["concept"]
    assert next(r["song_id"] for r in first_rows if r["rainbow_color"] == "Black") == "01_01"
    assert next(r["song_id"] for r in first_rows if r["rainbow_color"] == "Violet") == "08_01"


def test_labels_parse_and_match_the_colour(rows):
    for row in rows:
        condition = modes.modes_from_labels(
            row["rainbow_color_temporal_mode"],
            row["rainbow_color_objectional_mode"],
            row["rainbow_color_ontological_mode"],
        )
        assert condition == modes.parse_colour(row["rainbow_color"]).condition(), row["segment_id"]
    indigo = next(r for r in rows if r["rainbow_color"] == "Indigo")
    assert indigo["rainbow_color_ontological_mode"] == "Known, Forgotten"
    assert indigo["rainbow_color_temporal_mode"] is None
    black = next(r for r in rows if r["rainbow_color"] == "Black")
    assert black["rainbow_color_ontological_mode"] is None
    red = next(r for r in rows if r["rainbow_color"] == "Red")
    assert (red["rainbow_color_temporal_mode"], red["rainbow_color_objectional_mode"]) == ("Past", "Thing")


def test_training_data_is_song_level_json(first_rows):
    by_song = {}
    for row in first_rows:
        data = json.loads(row["training_data"])
        assert set(data) == set(SCORE_FIELDS) | {"rebracketing_type"}
        assert data["rebracketing_type"] in REBRACKETING_TYPES
        assert 0.0 <= data["rebracketing_intensity"] <= 12.0
        for field in SCORE_FIELDS[1:]:
            assert 0.0 <= data[field] <= 1.0
        rebracketing_features(row["training_data"], source=row["segment_id"])  # parses without error
        by_song.setdefault(row["song_id"], set()).add(row["training_data"])
        assert row["concept"]
    assert all(len(v) == 1 for v in by_song.values())


def test_concept_mentions_modes_and_lyrics_like_the_real_data(first_rows):
    red = next(r for r in first_rows if r["rainbow_color"] == "Red")
    for word in ("past", "thing", "known"):
        assert word in red["concept"]
    green = [r for r in first_rows if r["rainbow_color"] == "Green"]
    assert all(r["lyric_text"] == "" for r in green)
    others = [r for r in first_rows if r["rainbow_color"] != "Green"]
    share = np.mean([r["lyric_text"] != "" for r in others])
    assert 0.45 < share < 0.75
    assert all(isinstance(r["lyric_text"], str) for r in first_rows)


def test_duplicates_come_after_originals(rows, first_rows):
    ids = [r["segment_id"] for r in rows]
    duplicates = [i for i, sid in enumerate(ids) if ids.index(sid) != i]
    assert len(duplicates) == 2
    n_unique = len(first_rows)
    assert duplicates == list(range(n_unique, n_unique + 2))
    for i in duplicates:
        original = rows[ids.index(ids[i])]
        stale = rows[i]
        assert stale["rainbow_color"] == original["rainbow_color"]
        assert (stale["lyric_text"], stale["midi_binary"]) != (original["lyric_text"], original["midi_binary"])
    none = generate_demo_corpus(songs_per_colour=1, segments_per_song=2, duplicate_rows=0)
    assert len(set(none.column("segment_id").to_pylist())) == none.num_rows == 16


def test_missing_midi(first_rows):
    missing = [r for r in first_rows if not r["has_midi"]]
    assert len(missing) == round(0.05 * len(first_rows))
    assert all(r["midi_binary"] is None for r in missing)
    assert all(r["midi_binary"] is not None for r in first_rows if r["has_midi"])
    table = generate_demo_corpus(songs_per_colour=1, segments_per_song=4, missing_midi_fraction=0.5, duplicate_rows=0)
    assert table.column("has_midi").to_pylist().count(False) == 16
    assert table.column("midi_binary").null_count == 16


def test_midi_is_a_real_smf_inside_the_spec(first_rows):
    for row in first_rows[::9]:
        if not row["has_midi"]:
            continue
        data = row["midi_binary"]
        pm = pretty_midi.PrettyMIDI(io.BytesIO(data))
        assert len(pm.instruments) == 1
        notes = pm.instruments[0].notes
        assert notes, row["segment_id"]
        assert pretty_midi.program_to_instrument_name(pm.instruments[0].program) == row["track_description"]
        assert all(DEMO_SPEC.lowest_pitch <= n.pitch < DEMO_SPEC.highest_pitch for n in notes)
        assert all(40 <= n.velocity <= 110 for n in notes)
        assert min(n.start for n in notes) >= 0 and max(n.end for n in notes) <= 16.0 + 5e-3  # one tick
        score = symusic.Score.from_midi(data)
        assert sum(len(t.notes) for t in score.tracks) == len(notes)


def test_parquet_round_trip(tmp_path, corpus):
    # Short windows keep this fast while giving more than one row group.
    kwargs = dict(songs_per_colour=8, segments_per_song=8, segment_seconds=2.0)
    path = write_demo_corpus(tmp_path / "demo" / "segments.parquet", **kwargs)
    metadata = pq.ParquetFile(path).metadata
    assert metadata.num_rows == 8 * 8 * 8 + 2
    assert [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)] == [500, 14]
    assert metadata.row_group(0).column(0).compression == "ZSTD"
    table = pq.read_table(path)
    assert table.equals(generate_demo_corpus(**kwargs))
    assert table.column("end_seconds").to_pylist()[1] == 4.0
    small = write_demo_corpus(tmp_path / "small.parquet", songs_per_colour=1, segments_per_song=2)
    assert pq.read_table(small).schema.equals(DEMO_SCHEMA)


def test_bad_arguments():
    with pytest.raises(DataError, match="songs_per_colour"):
        generate_demo_corpus(songs_per_colour=0)
    with pytest.raises(DataError, match="missing_midi_fraction"):
        generate_demo_corpus(missing_midi_fraction=1.5)
    with pytest.raises(DataError, match="duplicate_rows"):
        generate_demo_corpus(songs_per_colour=1, segments_per_song=1, duplicate_rows=9)


# --- learnability -----------------------------------------------------------------


def roll_features(roll):
    """Simple, key-independent features of a piano roll."""
    active = roll > 0
    onsets = active & ~np.pad(active, ((0, 0), (1, 0)))[:, :-1]
    n_onsets, n_cells = int(onsets.sum()), int(active.sum())
    pitches = np.nonzero(active)[0] + DEMO_SPEC.lowest_pitch
    histogram = np.bincount(pitches % 12, minlength=12) / max(n_cells, 1)
    # |DFT| of the pitch-class histogram: the interval content, independent of the song's key.
    interval_content = np.abs(np.fft.rfft(histogram))[1:]
    polyphony = active.sum(axis=0)
    return np.concatenate(
        [
            [
                np.log1p(n_onsets / DEMO_SPEC.duration_seconds),  # onset rate
                pitches.mean() if n_cells else 0.0,  # register
                pitches.std() if n_cells else 0.0,
                np.log(n_cells / max(n_onsets, 1) / DEMO_SPEC.frames_per_second + 1e-3),  # note length
                roll[active].mean() if n_cells else 0.0,  # velocity
                (polyphony > 0).mean(),  # share of sounding frames
                polyphony[polyphony > 0].mean() if n_cells else 0.0,
            ],
            interval_content,
        ]
    )


@pytest.fixture(scope="module")
def features(first_rows):
    rows = [r for r in first_rows if r["has_midi"]]
    X = np.stack([roll_features(midi_to_piano_roll(r["midi_binary"], DEMO_SPEC, source=r["segment_id"])) for r in rows])
    return rows, X


def single_mode_labels(rows, axis):
    """Per row: the mode id on ``axis`` when the colour names exactly one mode there, else -1."""
    labels = []
    for row in rows:
        named = modes.parse_colour(row["rainbow_color"]).condition().axis_modes(axis)
        labels.append(modes.AXIS_MODES[axis].index(named[0]) if len(named) == 1 else -1)
    return np.array(labels)


@pytest.mark.parametrize("axis", modes.AXES)
def test_each_axis_is_learnable_on_held_out_songs(features, axis):
    rows, X = features
    songs = np.array([r["song_id"] for r in rows])
    # Hold out one song per colour (the last), train on the others.
    last_song = {}
    for row in rows:
        last_song[row["rainbow_color"]] = max(last_song.get(row["rainbow_color"], ""), row["song_id"])
    held_out = np.isin(songs, list(last_song.values()))
    y = single_mode_labels(rows, axis)
    train, test = (y >= 0) & ~held_out, (y >= 0) & held_out
    assert len(set(y[train])) == 3 and test.sum() > 30

    mean, std = X[train].mean(axis=0), X[train].std(axis=0) + 1e-6
    A = np.c_[(X - mean) / std, np.ones(len(X))]
    targets = np.eye(3)[np.clip(y, 0, 2)]
    weights = np.linalg.solve(A[train].T @ A[train] + 0.1 * np.eye(A.shape[1]), A[train].T @ targets[train])
    accuracy = float(((A[test] @ weights).argmax(axis=1) == y[test]).mean())
    print(f"{axis}: held-out accuracy {accuracy:.3f} on {int(test.sum())} segments")
    assert accuracy >= 1 / 3 + 0.3


def test_rebracketing_intensity_raises_note_count(first_rows):
    rows = [r for r in first_rows if r["has_midi"]]
    intensity = np.array([json.loads(r["training_data"])["rebracketing_intensity"] for r in rows])
    counts = np.array([len(pretty_midi.PrettyMIDI(io.BytesIO(r["midi_binary"])).instruments[0].notes) for r in rows])
    r = float(np.corrcoef(intensity, counts)[0, 1])
    print(f"Pearson r(intensity, note count) = {r:.3f}")
    assert r > 0.3


# --- repetition ---------------------------------------------------------------------

PATTERN_SIXTEENTHS = PATTERN_BARS * BEATS_PER_BAR * 16  # every onset lies on a sixteenth-of-a-beat grid


@pytest.fixture(scope="module")
def song_notes(first_rows):
    """Per song: its tempo and every note as (pitch, onset in sixteenths of a beat from the song's start)."""
    songs = {}
    for row in first_rows:
        if not row["has_midi"]:
            continue
        pm = pretty_midi.PrettyMIDI(io.BytesIO(row["midi_binary"]))
        bpm = float(pm.get_tempo_changes()[1][0])
        song = songs.setdefault(row["song_id"], {"bpm": bpm, "notes": []})
        for note in pm.instruments[0].notes:
            sixteenths = (row["start_seconds"] + note.start) * bpm / 60.0 * 16
            song["notes"].append((note.pitch, int(round(sixteenths))))
    return songs


def recurrence(notes, period):
    """Per note: in how many repetitions of ``period`` its (pitch, onset mod period) sounds, and the repetitions."""
    repetitions = {}
    for pitch, onset in notes:
        repetitions.setdefault((pitch, onset % period), set()).add(onset // period)
    n_repetitions = len({onset // period for _, onset in notes})
    return np.array([len(repetitions[(pitch, onset % period)]) for pitch, onset in notes]), n_repetitions


def test_every_song_repeats_a_two_bar_pattern(song_notes):
    assert len(song_notes) == 8 * 4
    recurring, in_most = [], []
    for song_id, song in song_notes.items():
        # Sixteenths of a beat are an exact grid: rounding absorbs the ticks and the integer tempo.
        counts, n_repetitions = recurrence(song["notes"], PATTERN_SIXTEENTHS)
        assert n_repetitions >= 16, song_id  # 192 s at 60 bpm or more: 24 patterns, less missing MIDI
        # Nearly every note recurs in another repetition, and most belong to the pattern itself:
        # a (pitch, position) that sounds in at least half of the song's repetitions.
        recurring.append(float(np.mean(counts >= 2)))
        in_most.append(float(np.mean(counts >= n_repetitions / 2)))
        assert recurring[-1] >= 0.9 and in_most[-1] >= 0.8, (song_id, recurring[-1], in_most[-1])
    print(f"notes recurring: min {min(recurring):.3f}; in at least half the repetitions: min {min(in_most):.3f}")


def test_second_half_of_a_segment_repeats_its_first_half(first_rows, song_notes):
    """In the piano roll, each frame of a segment's second half is seen a whole number of patterns earlier."""
    rows = [r for r in first_rows if r["has_midi"]]
    rolls = [midi_to_piano_roll(r["midi_binary"], DEMO_SPEC, source=r["segment_id"]) > 0 for r in rows]
    n_frames = DEMO_SPEC.num_frames
    half = n_frames // 2

    def predicted_second_half(roll, pattern_frames):
        # Frame t comes from t - k * pattern_frames, the first copy in the first half; the pattern
        # is not a whole number of frames, so both neighbouring frames count.
        out = np.zeros((roll.shape[0], n_frames - half), bool)
        for t in range(half, n_frames):
            source = t - (int((t - half) // pattern_frames) + 1) * pattern_frames
            out[:, t - half] = roll[:, int(np.floor(source))] | roll[:, int(np.ceil(source))]
        return out

    recall, baseline = [], []
    for i, (row, roll) in enumerate(zip(rows, rolls)):
        bpm = song_notes[row["song_id"]]["bpm"]
        pattern_frames = PATTERN_BARS * BEATS_PER_BAR * 60.0 / bpm * DEMO_SPEC.frames_per_second
        assert pattern_frames <= half
        target = roll[:, half:]
        recall.append((predicted_second_half(roll, pattern_frames) & target).sum() / target.sum())
        # The same prediction from a segment of another song.
        other = rolls[(i + len(rolls) // 2) % len(rolls)]
        baseline.append((predicted_second_half(other, pattern_frames) & target).sum() / target.sum())
    recall, baseline = np.array(recall), np.array(baseline)
    print(
        f"second half seen one pattern earlier: mean {recall.mean():.3f}, 5% quantile {np.quantile(recall, 0.05):.3f}, "
        f"min {recall.min():.3f}; another song: mean {baseline.mean():.3f}"
    )
    assert recall.mean() >= 0.9 and np.quantile(recall, 0.05) >= 0.8 and recall.min() >= 0.6
    assert baseline.mean() < 0.3
