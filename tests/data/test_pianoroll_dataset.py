"""Reading piano-roll training data from a segment parquet: dedup, skip-and-report, errors."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from chroma_keras import modes
from chroma_keras.data import keys
from chroma_keras.data.demo_corpus import generate_demo_corpus
from chroma_keras.data.pianoroll_dataset import PianoRollBatches, load_pianoroll_dataset, transpose_piano_rolls
from chroma_keras.errors import DataError
from chroma_keras.preprocessing.pianoroll import PianoRollSpec, midi_to_piano_roll

SPEC = PianoRollSpec(lowest_pitch=28, num_pitches=64, frames_per_second=4.0, num_frames=64)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    table = generate_demo_corpus(songs_per_colour=2, segments_per_song=4, seed=1)
    path = tmp_path_factory.mktemp("corpus") / "segments.parquet"
    pq.write_table(table, path, row_group_size=500)
    return table, path


def test_reader_keeps_first_duplicates_and_reports_skips(corpus):
    table, path = corpus
    dataset, report = load_pianoroll_dataset(path, SPEC)
    rows = table.to_pylist()
    first = {}
    for row in rows:
        first.setdefault(row["segment_id"], row)
    usable = [r for r in first.values() if r["has_midi"] and r["midi_binary"] is not None]
    assert len(dataset) == len(usable) == report.segments_kept
    assert report.rows_read == len(rows)
    assert report.skipped["duplicate segment_id"] == len(rows) - len(first)
    assert report.skipped["no MIDI"] == len(first) - len(usable)
    # Rows line up with the first occurrence of each segment.
    i = dataset.segment_ids.index(usable[-1]["segment_id"])
    np.testing.assert_array_equal(dataset.piano_rolls[i], midi_to_piano_roll(usable[-1]["midi_binary"], SPEC))
    assert dataset.colours[i] == usable[-1]["rainbow_color"]
    expected_modes = modes.modes_from_labels(
        usable[-1]["rainbow_color_temporal_mode"],
        usable[-1]["rainbow_color_objectional_mode"],
        usable[-1]["rainbow_color_ontological_mode"],
    ).multi_hot()
    np.testing.assert_array_equal(dataset.modes[i], expected_modes)
    assert dataset.rebracketing[i, -1] == 1.0
    assert "kept" in report.summary() and "duplicate" in report.summary()


def test_bad_rows_are_skipped_with_reasons(corpus, tmp_path):
    table, _ = corpus
    rows = table.to_pylist()[:6]
    rows[0]["midi_binary"] = b"MThd garbage"
    rows[0]["has_midi"] = True
    rows[1]["rainbow_color"] = "Purple"
    rows[2]["training_data"] = "{not json"
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), path)
    dataset, report = load_pianoroll_dataset(path, SPEC)
    assert report.skipped["bad label"] == 1
    assert report.skipped["bad MIDI or training_data"] == 2
    named = {seg for seg, _, _ in report.examples}
    assert {rows[0]["segment_id"], rows[1]["segment_id"], rows[2]["segment_id"]} <= named
    assert rows[0]["segment_id"] not in dataset.segment_ids


def test_reader_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="no such segment file"):
        load_pianoroll_dataset(tmp_path / "missing.parquet", SPEC)
    not_parquet = tmp_path / "x.parquet"
    not_parquet.write_text("hello")
    with pytest.raises(DataError, match="x.parquet: not a readable parquet file"):
        load_pianoroll_dataset(not_parquet, SPEC)
    partial = tmp_path / "partial.parquet"
    pq.write_table(pa.table({"segment_id": ["a"]}), partial)
    with pytest.raises(DataError, match=r"partial.parquet: missing required column\(s\) \['song_id'"):
        load_pianoroll_dataset(partial, SPEC)


def test_transposition_and_batches_are_seeded(corpus):
    _, path = corpus
    dataset, _ = load_pianoroll_dataset(path, SPEC)
    roll = np.zeros((1, 64, 4), np.float32)
    roll[0, 10, 0] = 1.0
    assert transpose_piano_rolls(roll, [3])[0, 13, 0] == 1.0
    assert transpose_piano_rolls(roll, [-12])[0, 0, 0] == 0.0 and transpose_piano_rolls(roll, [-10])[0, 0, 0] == 1.0
    a = PianoRollBatches(dataset, batch_size=4, transpose_semitones=2, seed=5)
    b = PianoRollBatches(dataset, batch_size=4, transpose_semitones=2, seed=5)
    (xa,), (xb,) = a[0], b[0]
    np.testing.assert_array_equal(xa[keys.PIANO_ROLL], xb[keys.PIANO_ROLL])
    assert set(xa) == {keys.PIANO_ROLL, keys.MODES, keys.REBRACKETING, keys.TRANSPOSITION}
    # Each row is the untransposed roll moved by the shift the batch reports.
    plain = dataset.piano_rolls[a._order[:4]]
    np.testing.assert_array_equal(xa[keys.PIANO_ROLL], transpose_piano_rolls(plain, xa[keys.TRANSPOSITION].astype(np.int64)))
    assert len(a) == int(np.ceil(len(dataset) / 4))
    # Transposition preserves the number of notes that stay in range; shifts stay within ±2.
    assert np.abs(a._shifts).max() <= 2 and np.abs(a._shifts).max() > 0
