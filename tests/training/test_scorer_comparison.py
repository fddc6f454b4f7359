"""compare-scorers: each preset trained with the song and the segment split, with the leakage audit."""

import pytest

import chroma_keras as ck
from chroma_keras import zoo
from chroma_keras.cli import main
from chroma_keras.data.demo_corpus import write_demo_corpus

TINY = {"model.midi_encoder.filters": [4, 4, 4], "model.midi_encoder.hidden_dim": 8, "training.batch_size": 8}


def test_compare_scorers_writes_a_table_with_the_leakage_audit(tmp_path, capsys):
    corpus = write_demo_corpus(tmp_path / "c.parquet", songs_per_colour=3, segments_per_song=3)
    small = zoo.save_to_preset(ck.from_preset("scorer_midi_only", **TINY), tmp_path / "small")
    wider = zoo.save_to_preset(ck.from_preset("scorer_midi_only", **{**TINY, "model.midi_encoder.hidden_dim": 16}), tmp_path / "wider")
    out = tmp_path / "table.md"
    assert main(["compare-scorers", str(small), str(wider), "--data", str(corpus), "--epochs", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"{small} (song split, 1 epochs)" in printed and f"{wider} (segment split, 1 epochs)" in printed
    rows = [line for line in out.read_text().splitlines() if line.startswith(f"| {tmp_path}")]
    assert [row.split(" | ")[0][2:] for row in rows] == [str(small), str(wider)]
    for row in rows:
        cells = row.strip("| ").split(" | ")
        metrics = [float(c) for c in cells[1:8]]
        assert all(0.0 <= m <= 1.0 for m in metrics)
        song_test, segment_test = (int(x) for x in cells[8].split(" / "))
        assert song_test > 0 and segment_test > 0
        # The song split keeps every test song out of training; the segment split does not.
        song_shared, segment_shared = (int(x) for x in cells[9].split(" / "))
        assert song_shared == 0 and segment_shared > 0


def test_an_unknown_preset_is_a_clear_error(tmp_path, capsys):
    assert main(["compare-scorers", "scorer_nope", "--data", "demo", "--epochs", "1"]) == 2
    assert "scorer_nope" in capsys.readouterr().err


def test_overrides_apply_only_where_the_preset_has_the_section():
    from chroma_keras import config
    from chroma_keras.training.scorer_comparison import applicable_overrides

    overrides = {"model.midi_encoder.hidden_dim": 8, "training.batch_size": 4, "model.text_encoder.num_layers": 1}
    assert applicable_overrides(config.load_preset_config("scorer_text_only"), overrides) == {
        "training.batch_size": 4,
        "model.text_encoder.num_layers": 1,
    }
    assert applicable_overrides(config.load_preset_config("scorer_midi_only"), overrides) == {
        "model.midi_encoder.hidden_dim": 8,
        "training.batch_size": 4,
    }
