"""open_segments("demo"), embedding joins and the MIDI check readers run."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from chroma_keras.data import segments
from chroma_keras.data.demo_corpus import DEMO_SCHEMA, generate_demo_corpus
from chroma_keras.data.embeddings import EmbeddingJoin, EmbeddingTable
from chroma_keras.data.segments import check_midi_bytes, open_segments
from chroma_keras.errors import DataError, MidiError


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CHROMA_KERAS_CACHE", str(tmp_path_factory.mktemp("cache")))
        source = open_segments("demo")
        path = segments.demo_corpus_path()
    return source, path


def test_demo_matches_its_file(demo):
    source, path = demo
    table = pq.read_table(path)
    assert table.schema.equals(DEMO_SCHEMA)
    first = {}
    for row in table.to_pylist():
        first.setdefault(row["segment_id"], row)
    assert source.num_rows == table.num_rows and len(source) == len(first) == 384
    records = list(source)
    assert [r.segment_id for r in records] == list(first)
    for record in records[::37]:
        row = first[record.segment_id]
        assert record.midi_bytes == row["midi_binary"] and record.lyric_text == row["lyric_text"]
        assert record.labels.colour == row["rainbow_color"] and not record.has_audio
    report = source.report()
    assert report.skipped == {"duplicate_segment_id": 2} and not report.masked and report.complete
    assert source.song_ids() == list(dict.fromkeys(r["song_id"] for r in first.values()))
    assert source.colours()[0] == "Black"


def test_demo_is_written_once(demo, monkeypatch):
    _, path = demo
    monkeypatch.setenv("CHROMA_KERAS_CACHE", str(path.parent.parent))
    stamp = path.stat().st_mtime_ns
    assert segments.demo_corpus_path() == path and path.stat().st_mtime_ns == stamp


def _embedding_file(path, rows, schema, row_group_size=3):
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path, row_group_size=row_group_size)
    return path


def test_embeddings_are_joined_by_segment_id(demo, tmp_path):
    source, demo_path = demo
    ids = source.segment_ids()[:10]
    rng = np.random.default_rng(0)
    vectors = {sid: rng.standard_normal(4).astype(np.float32) for sid in ids}
    schema = pa.schema(
        [("segment_id", pa.string()), ("audio_embedding", pa.list_(pa.float32())), ("note", pa.string())]
    )
    rows = [{"segment_id": sid, "audio_embedding": vectors[sid].tolist(), "note": "x"} for sid in reversed(ids[:8])]
    rows[3]["audio_embedding"] = None
    rows.append({"segment_id": ids[8], "audio_embedding": [np.nan, 0, 0, 0], "note": ""})
    rows.append({"segment_id": ids[0], "audio_embedding": [9.0, 9, 9, 9], "note": "stale"})  # first wins
    audio = _embedding_file(tmp_path / "audio.parquet", rows, schema)
    text_schema = pa.schema([("segment_id", pa.string()), ("text_embedding", pa.list_(pa.float32(), 2))])
    text_rows = [{"segment_id": sid, "text_embedding": [1.0, float(i)]} for i, sid in enumerate(ids)]
    text = _embedding_file(tmp_path / "text.parquet", text_rows, text_schema)  # fixed_size_list

    joined = open_segments(demo_path, embeddings=[audio, text])
    first_song = joined.select(joined.song_ids()[:1])  # ids[:10] all belong to the first song
    records = {r.segment_id: r for r in first_song}
    null_id = rows[3]["segment_id"]
    for i, sid in enumerate(ids):
        record = records[sid]
        np.testing.assert_array_equal(record.embeddings["text_embedding"], [1.0, float(i)])
        if sid in (null_id, ids[8], ids[9]):
            assert "audio_embedding" not in record.embeddings
        else:
            np.testing.assert_array_equal(record.embeddings["audio_embedding"], vectors[sid])
    assert records[ids[8]].masked_reasons == {"embedding:audio_embedding": "embedding:non_finite"}
    assert records[ids[9]].masked_reasons == {"embedding:audio_embedding": "embedding:missing"}
    # The song's segments beyond ids[:10] have no embedding in either file; add the null row and ids[9].
    assert first_song.report().masked == {"embedding:non_finite": 1, "embedding:missing": 2 * (len(records) - 10) + 2}


def test_embedding_table_reads_row_groups_lazily(tmp_path):
    schema = pa.schema([("segment_id", pa.string()), ("e", pa.list_(pa.float32()))])
    rows = [{"segment_id": f"s{i}", "e": [float(i)]} for i in range(9)]
    table = EmbeddingTable(_embedding_file(tmp_path / "e.parquet", rows, schema), cache_row_groups=1)
    assert len(table) == 9 and "s4" in table and table.names == ("e",)
    assert not table._cache
    found, missing = table.lookup("s4")
    assert found["e"].tolist() == [4.0] and not missing and list(table._cache) == [1]
    table.lookup("s8")
    assert list(table._cache) == [2]  # one decoded row group kept
    assert table.lookup("nope") == ({}, {"e": "missing"})


def test_embedding_errors(tmp_path):
    schema = pa.schema([("segment_id", pa.string()), ("e", pa.list_(pa.float32()))])
    a = _embedding_file(tmp_path / "a.parquet", [{"segment_id": "s", "e": [1.0]}], schema)
    b = _embedding_file(tmp_path / "b.parquet", [{"segment_id": "s", "e": [2.0]}], schema)
    with pytest.raises(DataError, match=r"b.parquet: embedding column 'e' is also in .*a.parquet"):
        EmbeddingJoin.open([a, b])
    scalar_schema = pa.schema([("segment_id", pa.string()), ("x", pa.float64())])
    no_list = _embedding_file(tmp_path / "c.parquet", [{"segment_id": "s", "x": 1.0}], scalar_schema)
    with pytest.raises(DataError, match=r"c.parquet: no list<float32> embedding column"):
        EmbeddingTable(no_list)
    no_id = _embedding_file(tmp_path / "d.parquet", [{"e": [1.0]}], pa.schema([("e", pa.list_(pa.float32()))]))
    with pytest.raises(DataError, match="d.parquet: embedding parquet has no segment_id"):
        EmbeddingTable(no_id)
    with pytest.raises(DataError, match="no such embedding file"):
        EmbeddingTable(tmp_path / "none.parquet")


def _smf(tracks=1, track_data=b"\x00\xff\x2f\x00"):
    header = b"MThd" + (6).to_bytes(4, "big") + (1).to_bytes(2, "big") + tracks.to_bytes(2, "big")
    header += (96).to_bytes(2, "big")
    return header + (b"MTrk" + len(track_data).to_bytes(4, "big") + track_data) * tracks


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty"),
        (b"RIFF....WAVEfmt ", "not_smf"),
        (_smf()[:10], "truncated"),
        (_smf()[:-1], "truncated"),
        (_smf(tracks=2)[:-12], "truncated"),
        (_smf(tracks=0), "bad_track_count"),
        (b"MThd\x00\x00\x00\x02\x00\x00\x00\x01\x00\x60", "bad_header"),
    ],
)
def test_midi_check_rejects_with_a_reason(data, reason):
    with pytest.raises(MidiError, match="seg_9") as info:
        check_midi_bytes(data, source="seg_9")
    assert info.value.reason == reason


def test_midi_check_accepts_valid_files():
    assert check_midi_bytes(bytearray(_smf(tracks=2)), source="s") == _smf(tracks=2)
    midi = generate_demo_corpus(songs_per_colour=1, segments_per_song=1).column("midi_binary")[0].as_py()
    assert check_midi_bytes(midi, source="s") == midi
