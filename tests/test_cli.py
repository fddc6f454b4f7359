"""The chroma-keras command: presets, show, demo-corpus and error reporting."""

import pyarrow.parquet as pq
import yaml

from chroma_keras.cli import main


def test_presets_lists_cvae(capsys):
    assert main(["presets"]) == 0
    assert "cvae_chromatic" in capsys.readouterr().out


def test_show_prints_resolved_yaml_with_overrides(capsys):
    assert main(["show", "cvae_chromatic", "--set", "model.vae.latent_dim=12", "--set", "training.epochs=3"]) == 0
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["model"]["vae"]["latent_dim"] == 12 and config["training"]["epochs"] == 3
    assert config["generation"]["sampling"]["decoding"] == "expected_count"


def test_bad_override_exits_2_with_a_clear_message(capsys):
    assert main(["show", "cvae_chromatic", "--set", "model.vae.latent_dim=big"]) == 2
    err = capsys.readouterr().err
    assert "chroma-keras: error:" in err and "model.vae.latent_dim" in err and "Received: 'big'" in err


def test_demo_corpus_command_writes_parquet(tmp_path, capsys):
    out = tmp_path / "c.parquet"
    assert main(["demo-corpus", "--out", str(out), "--songs-per-colour", "1", "--segments-per-song", "2"]) == 0
    table = pq.read_table(out)
    assert {"segment_id", "midi_binary", "rainbow_color"} <= set(table.column_names)
    assert table.num_rows >= 16
