"""The media parquet reader: hostile rows, dedup, streaming by row group, fallbacks, metadata join."""

from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile

from chroma_keras import modes, rebracketing
from chroma_keras.data.demo_corpus import generate_demo_corpus
from chroma_keras.data.segments import open_segments
from chroma_keras.errors import DataError, LabelError, MidiError

SR = 44100


def _wave(seed, seconds=0.05):
    rng = np.random.default_rng(seed)
    return rng.uniform(-0.5, 0.5, int(SR * seconds)).astype("<f4")


@pytest.fixture(scope="module")
def table():
    return generate_demo_corpus(songs_per_colour=1, segments_per_song=3, seed=2)  # 24 rows + 2 stale duplicates


def _write(rows, path, schema, row_group_size=500):
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path, compression="zstd", row_group_size=row_group_size)
    return path


def _hostile_rows(table):
    rows = table.to_pylist()[:24]
    good_midi = next(r["midi_binary"] for r in rows if r["midi_binary"])
    for i, row in enumerate(rows):  # every row gets valid audio unless changed below
        row["audio_waveform"], row["has_audio"] = _wave(i).tobytes(), True
    edits = {
        0: {"audio_waveform": np.float32([0.1, np.nan, 0.2]).tobytes()},
        1: {"audio_waveform": np.float32([np.inf, 0.0]).tobytes()},
        2: {"audio_waveform": b"\x00" * 7},
        3: {"audio_waveform": b""},
        4: {"audio_sample_rate": 12345},
        5: {"midi_binary": good_midi[:-5], "has_midi": True},
        6: {"midi_binary": b"", "has_midi": True},
        7: {"midi_binary": b"RIFF\x00\x00\x00\x04WAVE", "has_midi": True},
        8: {"rainbow_color": "Purple"},
        9: {"training_data": "{not json"},
        10: {modes.AXIS_COLUMNS["temporal"]: "Yesterday"},
        11: {"audio_waveform": None, "has_audio": True},
        12: {"midi_binary": None, "has_midi": True},
    }
    for i, change in edits.items():
        rows[i].update(change)
    # A stale duplicate of row 13 (later, different content): the first must win.
    stale = dict(rows[13], lyric_text="stale", audio_waveform=_wave(99).tobytes())
    rows.append(stale)
    return rows


EXPECTED_SKIPPED = Counter({"label:unknown_colour": 1, "label:unknown_mode": 1, "duplicate_segment_id": 1})
EXPECTED_MASKED = Counter(
    {
        "audio:non_finite": 2,
        "audio:length_not_multiple_of_4": 1,
        "audio:empty": 1,
        "audio:unexpected_sample_rate": 1,
        "audio:missing": 1,
        "midi:truncated": 1,
        "midi:empty": 1,
        "midi:not_smf": 1,
        "midi:missing": 1,
        "rebracketing:invalid_training_data": 1,
    }
)


def test_hostile_rows_are_skipped_or_masked_and_counted(table, tmp_path):
    rows = _hostile_rows(table)
    path = _write(rows, tmp_path / "media.parquet", table.schema, row_group_size=7)
    source = open_segments(path)
    records = {r.segment_id: r for r in source}
    report = source.report()
    assert report.complete and report.rows_read == len(rows) == source.num_rows
    assert report.skipped == EXPECTED_SKIPPED
    assert report.masked == EXPECTED_MASKED
    assert len(records) == len(source) == 24 - 2 == report.segments_kept

    def rec(i):
        return records[rows[i]["segment_id"]]

    audio_cases = [
        (0, "audio:non_finite"),
        (2, "audio:length_not_multiple_of_4"),
        (3, "audio:empty"),
        (4, "audio:unexpected_sample_rate"),
        (11, "audio:missing"),
    ]
    for i, reason in audio_cases:
        assert rec(i).audio is None and not rec(i).has_audio and rec(i).masked_reasons == {"audio": reason}
    for i, reason in [(5, "midi:truncated"), (6, "midi:empty"), (7, "midi:not_smf"), (12, "midi:missing")]:
        assert rec(i).midi_bytes is None and not rec(i).has_midi and rec(i).masked_reasons == {"midi": reason}
        assert rec(i).has_audio  # the other modalities of a masked row survive
    assert rows[8]["segment_id"] not in records and rows[10]["segment_id"] not in records
    bad_json = rec(9)
    assert bad_json.masked_reasons == {"rebracketing": "rebracketing:invalid_training_data"}
    np.testing.assert_array_equal(bad_json.rebracketing, np.zeros(rebracketing.FEATURE_SIZE, np.float32))
    # No record carries NaN, and good audio decodes bit-exactly.
    assert all(np.isfinite(r.audio).all() for r in records.values() if r.audio is not None)
    np.testing.assert_array_equal(rec(13).audio, _wave(13))
    assert rec(13).lyric_text == rows[13]["lyric_text"] != "stale"  # the first of a repeated id wins
    assert rec(14).audio_sample_rate == SR
    named = {seg for seg, _, _ in report.examples}
    assert {rows[i]["segment_id"] for i in (0, 5, 8, 9)} <= named
    assert "skipped: 1 duplicate_segment_id" in report.summary()


def test_record_fields_match_the_row(table, tmp_path):
    rows = table.to_pylist()
    path = _write(rows, tmp_path / "media.parquet", table.schema)
    row = rows[5]
    record = next(r for r in open_segments(path) if r.segment_id == row["segment_id"])
    fields = ("song_id", "start_seconds", "end_seconds", "duration_seconds", "lyric_text", "concept", "track_description")
    for name in fields:
        assert getattr(record, name) == row[name], name
    assert record.midi_bytes == row["midi_binary"] and record.has_midi and not record.has_audio
    assert record.has_text == bool(row["lyric_text"] or row["concept"])
    np.testing.assert_array_equal(record.presence(), [record.has_text, 0.0, 1.0])
    expected = modes.modes_from_labels(*(row[modes.AXIS_COLUMNS[a]] for a in modes.AXES))
    labels = record.labels
    assert labels.colour == row["rainbow_color"] and labels.condition == expected
    np.testing.assert_array_equal(labels.multi_hot, expected.multi_hot())
    assert labels.mode_ids == expected.primary_ids()
    for axis in modes.AXES:
        np.testing.assert_array_equal(labels.soft_targets[axis], modes.soft_targets(row["rainbow_color"])[axis])
    assert labels.confidence == modes.confidence(row["rainbow_color"])
    np.testing.assert_array_equal(record.rebracketing, rebracketing.rebracketing_features(row["training_data"]))
    assert record.training_data["rebracketing_type"] in rebracketing.REBRACKETING_TYPES


def test_indigo_and_colour_only_labels(table, tmp_path):
    rows = table.to_pylist()[:3]
    columns = ("rainbow_color",) + tuple(modes.AXIS_COLUMNS[a] for a in modes.AXES)
    rows[0].update(zip(columns, ("Indigo", None, None, "Known, Forgotten")))
    rows[1].update(zip(columns, ("Red", None, None, None)))
    rows[2].update(zip(columns, (None, "Future", "Thing", "Known")))
    records = list(open_segments(_write(rows, tmp_path / "m.parquet", table.schema)))
    np.testing.assert_allclose(records[0].labels.soft_targets["ontological"], [0.1, 0.4, 0.4])
    assert records[0].labels.colour == "Indigo"
    assert records[1].labels.condition == modes.parse_colour("Red").condition()  # colour only: its own modes
    combo = records[2].labels  # a combination no album has: no colour, confidence 1
    assert combo.colour is None and combo.colour_index == -1 and combo.confidence == 1.0
    assert combo.mode_ids == (2, 0, 2)


def test_on_error_raise_names_the_segment(table, tmp_path):
    rows = _hostile_rows(table)
    for first_bad, error in [(0, DataError), (5, MidiError), (8, LabelError), (9, DataError)]:
        subset = [rows[first_bad], rows[13]]
        path = _write(subset, tmp_path / f"r{first_bad}.parquet", table.schema)
        with pytest.raises(error, match=rows[first_bad]["segment_id"]):
            list(open_segments(path, on_error="raise"))


def test_unknown_labels_can_be_masked(table, tmp_path):
    rows = _hostile_rows(table)
    path = _write(rows, tmp_path / "m.parquet", table.schema)
    source = open_segments(path, unknown_labels="mask")
    records = {r.segment_id: r for r in source}
    kept = records[rows[8]["segment_id"]]
    assert kept.labels is None and kept.masked_reasons["labels"] == "label:unknown_colour"
    assert records[rows[10]["segment_id"]].masked_reasons["labels"] == "label:unknown_mode"
    assert source.report().masked["label:unknown_colour"] == 1 and "label:unknown_colour" not in source.report().skipped
    assert len(source) == 24


def _spy(monkeypatch):
    calls = []
    original = pq.ParquetFile.iter_batches

    def spy(self, *args, **kwargs):
        calls.append((tuple(kwargs.get("row_groups") or ()), tuple(kwargs.get("columns") or ())))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spy)
    return calls


def test_streams_one_row_group_at_a_time(table, tmp_path, monkeypatch):
    rows = table.to_pylist()
    for i, row in enumerate(rows):
        row["audio_waveform"] = _wave(i, 0.01).tobytes()
    path = _write(rows, tmp_path / "m.parquet", table.schema, row_group_size=5)
    calls = _spy(monkeypatch)
    source = open_segments(path, batch_rows=2)
    assert source.num_shards == 6 and source.num_rows == 26
    iterator = iter(source)
    first = next(iterator)
    index_calls = calls[:6]
    # The index pass reads each row group once, never the binaries.
    assert [c[0] for c in index_calls] == [(g,) for g in range(6)]
    assert all("audio_waveform" not in c[1] and "midi_binary" not in c[1] for c in index_calls)
    # The data pass has touched only row group 0 when the first record comes out.
    assert calls[6:] == [((0,), calls[6][1])] and "audio_waveform" in calls[6][1]
    records = [first, *iterator]
    assert [c[0] for c in calls[6:]] == [(g,) for g in range(6)]
    assert len(records) == 24 and records[0].segment_id == rows[0]["segment_id"]
    np.testing.assert_array_equal(records[7].audio, _wave(7, 0.01))
    # Re-iterable: a second pass yields the same ids and a fresh report.
    assert [r.segment_id for r in source] == [r.segment_id for r in records]
    assert source.report().rows_read == 26


def test_shards_select_and_dedup_across_row_groups(table, tmp_path, monkeypatch):
    rows = table.to_pylist()  # the two stale duplicates sit in the last row group
    path = _write(rows, tmp_path / "m.parquet", table.schema, row_group_size=5)
    source = open_segments(path)
    infos = source.shards()
    assert [i.rows for i in infos] == [5, 5, 5, 5, 5, 1]
    assert sum(i.segments for i in infos) == len(source) == 24
    last = list(source.iter_shards([5]))
    # Row 25 repeats an id first seen in an earlier row group: skipped even when read alone.
    assert len(last) == 0 and source.report().skipped["duplicate_segment_id"] == 1
    only = list(source.iter_shards([4, 1]))
    # Row group 4 holds rows 20-24 (row 24 is a stale duplicate), row group 1 rows 5-9.
    assert [r.segment_id for r in only] == [r["segment_id"] for r in rows[20:24] + rows[5:10]]
    with pytest.raises(DataError, match=r"shard\(s\) \[6\] out of range"):
        list(source.iter_shards([6]))
    song = rows[0]["song_id"]  # lives in row group 0 only
    calls = _spy(monkeypatch)
    view = source.select([song])
    assert len(view) == 3 and view.song_ids() == [song]
    assert {r.song_id for r in view} == {song}
    assert [c[0] for c in calls] == [(0,)]  # other row groups are never read
    assert len(source) == 24  # the parent is unchanged


def test_split_by_song_is_disjoint(table, tmp_path):
    path = _write(table.to_pylist(), tmp_path / "m.parquet", table.schema)
    parts = open_segments(path).split_by_song(validation_fraction=0.25, test_fraction=0.25, seed=0)
    songs = {name: {r.song_id for r in part} for name, part in parts.items()}
    assert not songs["train"] & songs["validation"] and not songs["train"] & songs["test"]
    assert sum(len(p) for p in parts.values()) == 24


def test_columns_limit_what_is_read(table, tmp_path, monkeypatch):
    rows = table.to_pylist()
    for i, row in enumerate(rows):
        row["audio_waveform"] = _wave(i, 0.01).tobytes()
    path = _write(rows, tmp_path / "m.parquet", table.schema)
    calls = _spy(monkeypatch)
    source = open_segments(path, columns=["midi_binary"])
    records = list(source)
    assert all("audio_waveform" not in c[1] for c in calls)
    assert all(r.audio is None and not r.has_audio and not r.masked_reasons for r in records)
    assert any(r.has_midi for r in records) and records[0].labels is not None
    with pytest.raises(DataError, match=r"unknown column\(s\) \['audio'\]"):
        open_segments(path, columns=["audio"])


def test_fallback_to_files(table, tmp_path):
    rows = table.to_pylist()[:4]
    root = tmp_path / "audio_files"
    root.mkdir()
    song = _wave(5, 0.5)
    soundfile.write(root / "song.wav", song, SR, subtype="FLOAT")
    soundfile.write(root / "seg.wav", _wave(6), SR, subtype="FLOAT")
    midi = rows[0]["midi_binary"]
    (tmp_path / "a.mid").write_bytes(midi)
    extra = {
        0: {"audio_path": "seg.wav", "midi_path": "a.mid"},
        1: {"audio_path": "missing.wav", "midi_path": "gone.mid"},
        2: {"audio_path": str(root / "seg.wav"), "midi_path": None},
        3: {"audio_path": None, "midi_path": None},
    }
    for i, row in enumerate(rows):
        row.update(extra[i], audio_waveform=None, midi_binary=None, has_audio=False, has_midi=False)
    schema = table.schema.append(pa.field("audio_path", pa.string())).append(pa.field("midi_path", pa.string()))
    path = _write(rows, tmp_path / "m.parquet", schema)
    source = open_segments(path, audio_root=root)  # midi paths resolve against the parquet's folder
    records = list(source)
    np.testing.assert_array_equal(records[0].audio, _wave(6))
    assert records[0].midi_bytes == midi and records[0].audio_path == str(root / "seg.wav")
    assert records[0].midi_path == str(tmp_path / "a.mid")
    assert records[1].masked_reasons == {"audio": "audio:file_missing", "midi": "midi:file_missing"}
    np.testing.assert_array_equal(records[2].audio, _wave(6))
    assert not records[3].has_audio and not records[3].masked_reasons
    # Whole-song files: the reader cuts [start_seconds, end_seconds).
    rows[0].update(audio_path="song.wav", start_seconds=0.1, end_seconds=0.3)
    path = _write(rows[:1], tmp_path / "song.parquet", schema)
    record = next(iter(open_segments(path, audio_root=root, audio_files="song")))
    np.testing.assert_array_equal(record.audio, song[4410:13230])


def test_metadata_parquet_is_joined(table, tmp_path):
    rows = table.to_pylist()
    media = [{"segment_id": r["segment_id"], "midi_binary": r["midi_binary"], "rainbow_color": "Purple"} for r in rows]
    media_schema = pa.schema(
        [("segment_id", pa.string()), ("midi_binary", pa.binary()), ("rainbow_color", pa.string())]
    )
    media_path = _write(media, tmp_path / "media.parquet", media_schema)
    meta_rows = [{k: v for k, v in r.items() if k != "midi_binary"} for r in rows]
    meta_schema = table.schema.remove(table.schema.get_field_index("midi_binary"))
    meta_path = _write(meta_rows, tmp_path / "meta.parquet", meta_schema)
    source = open_segments(media_path, metadata=meta_path)
    records = list(source)
    assert len(records) == 24 and not source.report().skipped.get("label:unknown_colour")
    assert records[3].labels.colour == rows[3]["rainbow_color"] and records[3].concept == rows[3]["concept"]
    assert records[3].midi_bytes == rows[3]["midi_binary"]
    # The metadata parquet alone is a source too (no binaries: no audio, no MIDI).
    alone = list(open_segments(meta_path))
    assert len(alone) == 24 and not any(r.has_midi for r in alone)
    # Its has_midi flags say MIDI exists elsewhere: a file without MIDI columns does not load the
    # modality, so nothing is counted as masked.
    assert {r.masked_reasons.get("midi") for r in alone} == {None}


def test_open_errors_name_the_file(table, tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        open_segments(tmp_path / "missing.parquet")
    junk = tmp_path / "junk.parquet"
    junk.write_text("hello")
    with pytest.raises(DataError, match="junk.parquet: not a readable parquet file"):
        open_segments(junk)
    no_id = _write([{"x": 1}], tmp_path / "no_id.parquet", pa.schema([("x", pa.int64())]))
    with pytest.raises(DataError, match="no_id.parquet: no segment_id column"):
        open_segments(no_id)
    no_label = _write([{"segment_id": "a"}], tmp_path / "no_label.parquet", pa.schema([("segment_id", pa.string())]))
    with pytest.raises(DataError, match="no_label.parquet: no label column"):
        open_segments(no_label)
    floats = pa.schema(
        [("segment_id", pa.string()), ("rainbow_color", pa.string()), ("audio_waveform", pa.list_(pa.float32()))]
    )
    wrong_row = {"segment_id": "a", "rainbow_color": "Red", "audio_waveform": [0.0]}
    wrong = _write([wrong_row], tmp_path / "wrong.parquet", floats)
    with pytest.raises(DataError, match=r"wrong.parquet: column 'audio_waveform' must be binary"):
        open_segments(wrong)
    good = _write(table.to_pylist()[:2], tmp_path / "good.parquet", table.schema)
    with pytest.raises(DataError, match="on_error must be one of"):
        open_segments(good, on_error="ignore")
    with pytest.raises(DataError, match="unknown_labels must be one of"):
        open_segments(good, unknown_labels="keep")
    with pytest.raises(DataError, match="sample_rates must be"):
        open_segments(good, sample_rates=[])
    with pytest.raises(DataError, match="batch_rows must be a positive int"):
        open_segments(good, batch_rows=0)
