"""The chroma-keras command: presets, show, demo-corpus and error reporting."""

import pyarrow.parquet as pq
import numpy as np
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


GRID = ["preprocessing.midi.piano_roll.frames_per_second=2", "preprocessing.midi.piano_roll.num_frames=16"]
TINY_DIFFUSION = GRID + ["model.diffusion.channels=[4,8]", "model.diffusion.norm_groups=4", "model.diffusion.attention=false"]
TINY_SCORER = GRID + ["model.midi_encoder.filters=[4,4,4]", "model.midi_encoder.hidden_dim=8"]


def _sets(pairs):
    return [arg for pair in pairs for arg in ("--set", pair)]


def test_train_then_evaluate_generation(tmp_path, capsys):
    corpus = tmp_path / "c.parquet"
    assert main(["demo-corpus", "--out", str(corpus), "--songs-per-colour", "3", "--segments-per-song", "2"]) == 0
    assert main(["train", "diffusion_pianoroll_chromatic", "--data", str(corpus), "--out", str(tmp_path / "gen"), "--epochs", "2", *_sets(TINY_DIFFUSION)]) == 0
    assert main(["train", "scorer_midi_only", "--data", str(corpus), "--out", str(tmp_path / "sc"), "--epochs", "1", *_sets(TINY_SCORER)]) == 0
    assert (tmp_path / "gen" / "history.csv").read_text().count("\n") == 3  # header + 2 epochs
    _check_run_outputs(tmp_path / "sc", capsys.readouterr().out)
    resolved = yaml.safe_load((tmp_path / "gen" / "config.yaml").read_text())
    assert resolved["model"]["diffusion"]["channels"] == [4, 8] and resolved["name"] == "diffusion_pianoroll_chromatic"
    capsys.readouterr()
    report = tmp_path / "recognition.md"
    args = ["evaluate-generation", str(tmp_path / "gen" / "model"), "--scorer", str(tmp_path / "sc" / "model")]
    options = ["--samples-per-colour", "2", "--num-steps", "3", "--scheduler", "ddpm", "--data", str(corpus), "--split", "all"]
    assert main([*args, *options, "--out", str(report)]) == 0
    text = report.read_text()
    assert text == capsys.readouterr().out
    generated, real = text.split("The same scorer on real segments")
    assert "16 segments, num_steps=3, scheduler=ddpm" in generated and "chance 12.5%" in generated and "95% bootstrap CI" in generated
    assert sum(line.startswith("| ") and "%" in line for line in generated.splitlines()) == 8
    # The reference scores every real segment of the eight colours once (3 songs x 2 segments each, some without MIDI).
    counted = [int(line.split("|")[2]) for line in real.splitlines() if line.startswith("| ") and "%" in line]
    assert len(counted) == 8 and 8 * 4 <= sum(counted) <= 8 * 6
    # Classifier guidance by a scorer on another pitch range (72 rows from MIDI 24 against the generator's 64 from 28).
    guided = tmp_path / "guided.md"
    guide = ["--guide-scorer", str(tmp_path / "sc" / "model"), "--classifier-scale", "2"]
    assert main([*args, "--samples-per-colour", "1", "--num-steps", "3", "--colours", "Red,Violet,Black", *guide, "--out", str(guided)]) == 0
    assert "classifier_guide=scorer_midi_only, classifier_scale=2.0" in guided.read_text()
    samples = tmp_path / "guided_samples"
    assert main(["generate", str(tmp_path / "gen" / "model"), "--colour", "Red", "--num-samples", "1", "--set", "generation.sampling.num_steps=3", *guide, "--out", str(samples), "--audio", "none"]) == 0
    import json

    settings = json.loads((samples / "index.json").read_text())["settings"]
    assert settings["classifier_guidance"] == "scorer_guidance(scorer_midi_only, 'Red')" and settings["classifier_scale"] == 2.0
    capsys.readouterr()
    assert main([*args, "--classifier-scale", "2"]) == 2
    assert "--classifier-scale needs --guide-scorer" in capsys.readouterr().err
    # The generator is no scorer: a clear error, exit status 2.
    assert main(["evaluate-generation", str(tmp_path / "sc" / "model"), "--scorer", str(tmp_path / "gen" / "model")]) == 2
    assert "piano-roll MIDI encoder" in capsys.readouterr().err


def _check_run_outputs(run, printed):
    """A finished run holds its last and best models, the best checkpoint, TensorBoard logs and a summary."""
    import importlib.util
    import json

    import chroma_keras as ck

    (best,) = (run / "checkpoints").iterdir()
    record = json.loads((best / "best.json").read_text())
    assert best.name == f"best-epoch-{record['epoch']:05d}" and record["monitor"] == "val_mean_mode_accuracy"
    # The best/ preset holds the best epoch's weights: it scores like the checkpoint it came from.
    reloaded = ck.from_preset(str(run / "best"))
    checkpoint = ck.from_preset(str(run / "model"))
    checkpoint.load_weights(str(best / "best.weights.h5"))
    for left, right in zip(reloaded.get_weights(), checkpoint.get_weights()):
        np.testing.assert_array_equal(left, right)
    assert not (run / "backup").exists()
    assert "| first | 1 |" in printed and "| best (max val_mean_mode_accuracy) |" in printed and "| last | 1 |" in printed
    if all(importlib.util.find_spec(name) for name in ("tensorflow", "tensorboard")):
        events = list((run / "logs").rglob("events.out.tfevents.*"))
        assert {path.parent.name for path in events} == {"train", "validation"}
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        accumulator = EventAccumulator(str(run / "logs" / "train"))
        accumulator.Reload()
        assert "epoch_loss" in accumulator.Tags()["tensors"] + accumulator.Tags()["scalars"]


def test_generate_writes_midi_images_audio_and_an_index(tmp_path, capsys):
    import json

    from PIL import Image

    out = tmp_path / "green"
    tiny = ["--set", "model.vae.encoder_filters=[4]", "--set", "model.vae.hidden_dim=8", "--set", "model.vae.latent_dim=2"]
    assert main(["generate", "cvae_chromatic", "--colour", "Green", "--num-samples", "2", "--seed", "5", "--out", str(out), "--audio", "additive", *tiny]) == 0
    index = json.loads((out / "index.json").read_text())
    assert [s["midi"] for s in index["samples"]] == ["sample_000.mid", "sample_001.mid"]
    assert all(s["seed"] == 5 and s["condition"] == "Green" for s in index["samples"])
    assert index["settings"]["decoding"] == "expected_count"
    with Image.open(out / "sample_000.png") as image:
        assert image.size == (128 * 4, 64 * 4)  # frames x pitches, 4 px per cell
    import soundfile

    assert soundfile.info(out / "sample_001.wav").samplerate == 22050
    assert (out / "index.csv").read_text().splitlines()[0].startswith("index,midi,image,audio,seed")
    # Per-axis modes, no audio.
    assert main(["generate", "cvae_chromatic", "--modes", "future,place,forgotten", "--out", str(tmp_path / "m"), "--audio", "none", *tiny]) == 0
    assert not list((tmp_path / "m").glob("*.wav")) and len(list((tmp_path / "m").glob("*.mid"))) == 4
    capsys.readouterr()
    assert main(["generate", "cvae_chromatic", "--colour", "Green", "--modes", "past", "--out", str(tmp_path / "x")]) == 2
    assert "exactly one of --colour" in capsys.readouterr().err
    assert main(["generate", "scorer_midi_only", "--colour", "Green", "--out", str(tmp_path / "x")]) == 2
    assert "not a generator" in capsys.readouterr().err
    # --transpose reaches a VAE trained with the transposition condition (the preset's default) ...
    assert main(["generate", "cvae_chromatic", "--colour", "Red", "--transpose", "5", "--num-samples", "1", "--out", str(tmp_path / "t"), "--audio", "none", *tiny]) == 0
    assert json.loads((tmp_path / "t" / "index.json").read_text())["settings"]["transpose"] == 5.0
    # ... and is a clear error for a VAE without it.
    plain = [*tiny, "--set", "model.vae.condition_on_transposition=false"]
    assert main(["generate", "cvae_chromatic", "--colour", "Red", "--transpose", "5", "--out", str(tmp_path / "y"), *plain]) == 2
    assert "model.vae.condition_on_transposition" in capsys.readouterr().err


def test_score_rates_midi_files_for_every_colour(tmp_path, capsys):
    from chroma_keras.data.demo_corpus import generate_demo_corpus

    table = generate_demo_corpus(songs_per_colour=1, segments_per_song=2, seed=0)
    paths = []
    midis = [m for m in table.column("midi_binary").to_pylist() if m is not None]
    for i, midi in enumerate(midis[:2]):
        paths.append(tmp_path / f"s{i}.mid")
        paths[-1].write_bytes(midi)
    tiny = ["model.midi_encoder.filters=[4,4,4]", "model.midi_encoder.hidden_dim=8"]
    scorer_dir = tmp_path / "sc"
    assert main(["train", "scorer_midi_only", "--data", "demo", "--out", str(scorer_dir), "--epochs", "1", *_sets(tiny)]) == 0
    capsys.readouterr()
    assert main(["score", str(scorer_dir), *map(str, paths)]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith(f"| {tmp_path}")]
    assert len(rows) == 2
    # Seven colours name modes (all but Black and White); each match lies in [0, 1].
    cells = [float(x) for x in rows[0].strip("| ").split(" | ")[2:]]
    assert len(cells) == 7 and all(0 <= x <= 1 for x in cells)
    assert main(["score", str(scorer_dir), str(tmp_path / "missing.mid")]) == 2
    assert "no such file" in capsys.readouterr().err
