"""Segments from a folder of audio/MIDI files with labels.csv or labels.yaml."""

import json

import numpy as np
import pytest
import soundfile
import yaml

from chroma_keras import modes, rebracketing
from chroma_keras.data.demo_corpus import generate_demo_corpus
from chroma_keras.data.segments import open_segments
from chroma_keras.errors import DataError


@pytest.fixture(scope="module")
def midi_bytes():
    table = generate_demo_corpus(songs_per_colour=1, segments_per_song=1, duplicate_rows=0, missing_midi_fraction=0.0)
    return table.column("midi_binary").to_pylist()[:2]


def _wave(seed, n=1600):
    return np.random.default_rng(seed).uniform(-0.5, 0.5, n).astype(np.float32)


@pytest.fixture
def folder(tmp_path, midi_bytes):
    soundfile.write(tmp_path / "a_01_x.wav", _wave(1), 16000, subtype="FLOAT")
    stereo = np.stack([_wave(2), _wave(3)], axis=1)
    soundfile.write(tmp_path / "b.flac", stereo, 22050, subtype="PCM_24")
    soundfile.write(tmp_path / "c.ogg", _wave(4, 8000), 48000)
    soundfile.write(tmp_path / "slow.wav", _wave(5), 11025, subtype="FLOAT")
    (tmp_path / "a_01_x.mid").write_bytes(midi_bytes[0])
    (tmp_path / "bad.mid").write_bytes(midi_bytes[1][:-7])
    training = json.dumps({"rebracketing_type": "causal", "rebracketing_coverage": 0.5}).replace('"', '""')
    (tmp_path / "labels.csv").write_text(
        "segment_id,colour,temporal,spatial,ontological,audio,midi,lyrics,concept,training_data,start_seconds\n"
        f'a_01_x,Red,,,,,,,a concept,"{training}",1.5\n'  # files found by segment_id
        "b_02_y,,Future,Thing,Known,b.flac,bad.mid,some words,,,\n"
        'c_03_z,Indigo,,,"Known, Forgotten",c.ogg,,,,,\n'
        "d_04_w,Purple,,,,,,,,,\n"
        "e_05_v,Blue,,,,slow.wav,,,,,soon\n"
        "a_01_x,Green,,,,,,stale,,,\n"
    )
    return tmp_path


def test_folder_csv(folder, midi_bytes):
    source = open_segments(folder)
    records = {r.segment_id: r for r in source}
    report = source.report()
    assert len(source) == len(records) == 4 and source.num_rows == 6
    assert report.skipped == {"label:unknown_colour": 1, "duplicate_segment_id": 1}
    assert report.masked == {"midi:truncated": 1, "audio:unexpected_sample_rate": 1, "time:invalid": 1}

    a = records["a_01_x"]
    np.testing.assert_array_equal(a.audio, _wave(1))  # FLOAT wav: exact
    assert a.audio_sample_rate == 16000 and a.midi_bytes == midi_bytes[0] and a.song_id == "a_01"
    assert a.labels.colour == "Red" and a.concept == "a concept" and a.start_seconds == 1.5 and a.lyric_text == ""
    expected = rebracketing.rebracketing_features({"rebracketing_type": "causal", "rebracketing_coverage": 0.5})
    np.testing.assert_array_equal(a.rebracketing, expected)

    b = records["b_02_y"]
    reference, rate = soundfile.read(folder / "b.flac", dtype="float32")
    np.testing.assert_allclose(b.audio, reference.mean(axis=1), rtol=0, atol=1e-7)  # stereo -> mono mean
    np.testing.assert_allclose(b.audio, (_wave(2) + _wave(3)) / 2, atol=2**-22)  # 24-bit quantisation
    assert rate == b.audio_sample_rate == 22050
    assert b.labels.colour is None and b.labels.mode_ids == (2, 0, 2)
    assert b.midi_bytes is None and b.masked_reasons == {"midi": "midi:truncated"} and b.has_text

    c = records["c_03_z"]
    np.testing.assert_array_equal(c.audio, soundfile.read(folder / "c.ogg", dtype="float32")[0])
    np.testing.assert_allclose(c.labels.soft_targets["ontological"], [0.1, 0.4, 0.4])
    assert not c.has_text and not c.has_midi

    e = records["e_05_v"]
    assert e.audio is None and e.start_seconds is None
    assert e.masked_reasons == {"audio": "audio:unexpected_sample_rate", "start_seconds": "time:invalid"}
    assert e.labels.condition == modes.parse_colour("Blue").condition()


def test_folder_yaml(tmp_path, midi_bytes):
    soundfile.write(tmp_path / "one.wav", _wave(7), 44100, subtype="FLOAT")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "one.mid").write_bytes(midi_bytes[0])
    labels = {
        "segments": [
            {
                "segment_id": "s_01_one",
                "song_id": "song-a",
                "temporal": "Past",
                "ontological": ["Known", "Forgotten"],
                "audio_file": "one.wav",
                "midi_file": "m/one.mid",
                "training_data": {"rebracketing_type": "temporal", "rebracketing_intensity": 4.0},
            }
        ]
    }
    (tmp_path / "labels.yaml").write_text(yaml.safe_dump(labels))
    (record,) = list(open_segments(tmp_path))
    np.testing.assert_array_equal(record.audio, _wave(7))
    assert record.song_id == "song-a" and record.midi_bytes == midi_bytes[0]
    assert record.labels.condition == modes.ModeCondition(("past",), (), ("known", "forgotten"))
    assert record.rebracketing[rebracketing.PRESENCE_INDEX] == 1.0


def test_folder_roots_and_columns(tmp_path, midi_bytes):
    audio_dir = tmp_path / "audio"
    audio_dir.mkdir()
    soundfile.write(audio_dir / "x_01_a.wav", _wave(8), 44100, subtype="FLOAT")
    (tmp_path / "labels.csv").write_text("segment_id,rainbow_color\nx_01_a,Violet\n")
    (record,) = list(open_segments(tmp_path, audio_root=audio_dir))
    np.testing.assert_array_equal(record.audio, _wave(8))
    (record,) = list(open_segments(tmp_path, audio_root=audio_dir, columns=["lyric_text"]))
    assert record.audio is None and not record.masked_reasons  # audio not requested


def test_folder_errors_name_file_and_row(tmp_path):
    with pytest.raises(DataError, match="no labels file"):
        open_segments(tmp_path)
    labels = tmp_path / "labels.csv"
    labels.write_text("segment_id,colour,audio\nok_1,Red,\nmissing_1,Red,nowhere.wav\n")
    expected = r"labels.csv row 2 \(line 3\) \(segment_id 'missing_1'\): audio file 'nowhere.wav' not found"
    with pytest.raises(DataError, match=expected):
        open_segments(tmp_path)
    labels.write_text("segment_id,colour,midi\nm_1,Red,gone.mid\n")
    with pytest.raises(DataError, match=r"row 1 .*MIDI file 'gone.mid' not found"):
        open_segments(tmp_path)
    labels.write_text("id,colour\na,Red\n")
    with pytest.raises(DataError, match=r"labels.csv: missing column 'segment_id'"):
        open_segments(tmp_path)
    labels.write_text("segment_id,notes\na,hello\n")
    with pytest.raises(DataError, match=r"labels.csv: missing a label column"):
        open_segments(tmp_path)
    labels.write_text("segment_id,colour\na,Red\n,Blue\n")
    with pytest.raises(DataError, match=r"labels.csv row 2 \(line 3\): empty segment_id"):
        open_segments(tmp_path)
    (tmp_path / "labels.yaml").write_text("[]")
    with pytest.raises(DataError, match="keep exactly one labels file"):
        open_segments(tmp_path)
    labels.unlink()
    (tmp_path / "labels.yaml").write_text("segments: {a: 1}")
    with pytest.raises(DataError, match="labels.yaml: expected a list of mappings"):
        open_segments(tmp_path)
    (tmp_path / "labels.yaml").write_text("- [unclosed")
    with pytest.raises(DataError, match="labels.yaml: not valid YAML"):
        open_segments(tmp_path)
