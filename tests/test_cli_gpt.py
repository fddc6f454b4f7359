"""The chroma-keras command with the GPT generator: generate, evaluate-generation, and their errors."""

import json

import numpy as np
import pytest

import chroma_keras as ck
from chroma_keras import modes
from chroma_keras.cli import main
from chroma_keras.errors import ModelInputError
from chroma_keras.evaluation.chromatic_consistency import colour_recognition
from chroma_keras.preprocessing.pianoroll import PianoRollSpec


@pytest.fixture(scope="module")
def gpt_dir(tmp_path_factory, tiny_gpt_overrides):
    return str(ck.save_to_preset(ck.from_preset("gpt_remi_chromatic", **tiny_gpt_overrides), tmp_path_factory.mktemp("gpt") / "gpt"))


@pytest.fixture(scope="module")
def scorer_dir(tmp_path_factory, tiny_scorer_overrides):
    return str(ck.save_to_preset(ck.from_preset("scorer_midi_only", **tiny_scorer_overrides), tmp_path_factory.mktemp("scorer") / "scorer"))


def test_generate_writes_the_midi_the_gpt_decodes_and_it_reads_back(gpt_dir, tmp_path, capsys):
    import pretty_midi
    import symusic
    from PIL import Image

    out = tmp_path / "red"
    assert main(["generate", gpt_dir, "--colour", "Red", "--num-samples", "3", "--seed", "2", "--audio", "none", "--out", str(out)]) == 0
    assert "wrote 3 samples for Red" in capsys.readouterr().out
    index = json.loads((out / "index.json").read_text())
    # Constrained decoding by default; the rest of the sampling settings come from the preset.
    assert index["settings"]["constrained"] is True and index["settings"]["strategy"] == "top_p" and index["settings"]["max_length"] == 48
    rows = index["samples"]
    assert [r["midi"] for r in rows] == ["sample_000.mid", "sample_001.mid", "sample_002.mid"]
    # The files are what the model's own to_midi writes for the same draws.
    model = ck.from_preset(gpt_dir)
    ids = model.generate(condition="Red", num_samples=3, seed=2, constrained=True)
    spec = PianoRollSpec.from_config(model.preset_config)
    for row, report in zip(rows, model.to_midi(ids)):
        path = out / row["midi"]
        assert path.read_bytes() == report["midi"]
        assert row["token_error_rate"] == 0.0 and row["condition"] == "Red"
        notes = symusic.Score(str(path)).note_num()
        assert notes == row["num_notes"] == sum(len(i.notes) for i in pretty_midi.PrettyMIDI(str(path)).instruments)
        assert row["valid"] == (notes > 0)
        with Image.open(out / row["image"]) as image:
            assert image.size == (spec.num_frames * 4, spec.num_pitches * 4)  # the preset's piano-roll grid, 4 px per cell
    assert sum(r["num_notes"] for r in rows) > 0
    assert (out / "index.csv").read_text().splitlines()[0] == "index,midi,image,audio,seed,condition,notes_fraction,valid,token_error_rate,num_notes,num_tokens"


def test_generate_from_a_free_text_prompt_with_cli_sampling_settings(gpt_dir, tmp_path, capsys):
    prompt = "Generate a VIOLET segment with high temporal complexity"
    out = tmp_path / "violet"
    args = ["generate", gpt_dir, "--prompt", prompt, "--sampling", "greedy", "--max-length", "30", "--num-samples", "1", "--audio", "none"]
    assert main([*args, "--out", str(out)]) == 0
    index = json.loads((out / "index.json").read_text())
    assert index["settings"]["prompt"] == prompt and index["settings"]["sampling"] == "greedy" and index["settings"]["max_length"] == 30
    model = ck.from_preset(gpt_dir)
    ids = model.generate(prompt=prompt, sampling="greedy", max_length=30, constrained=True)
    assert model.vocabulary.condition_from_ids(ids[0]) == modes.resolve_condition("Violet")
    assert (out / "sample_000.mid").read_bytes() == model.to_midi(ids[0])["midi"]
    # Unconstrained sampling is recorded as such.
    assert main(["generate", gpt_dir, "--colour", "Blue", "--unconstrained", "--num-samples", "2", "--audio", "none", "--out", str(tmp_path / "free")]) == 0
    free = json.loads((tmp_path / "free" / "index.json").read_text())
    assert free["settings"]["constrained"] is False and len(free["samples"]) == 2


def test_generate_errors_name_the_bad_input(gpt_dir, tmp_path, capsys):
    capsys.readouterr()
    assert main(["generate", gpt_dir, "--modes", "future,banana", "--audio", "none", "--out", str(tmp_path / "x")]) == 2
    assert "banana" in capsys.readouterr().err
    assert main(["generate", gpt_dir, "--prompt", "a purple segment", "--audio", "none", "--out", str(tmp_path / "x")]) == 2
    assert "purple" in capsys.readouterr().err
    assert main(["generate", gpt_dir, "--audio", "none", "--out", str(tmp_path / "x")]) == 2
    assert "--prompt TEXT" in capsys.readouterr().err
    assert main(["generate", gpt_dir, "--colour", "Red", "--modes", "past", "--out", str(tmp_path / "x")]) == 2
    assert "exactly one of --colour" in capsys.readouterr().err
    tiny_vae = ["--set", "model.vae.encoder_filters=[4]", "--set", "model.vae.hidden_dim=8", "--set", "model.vae.latent_dim=2"]
    assert main(["generate", "cvae_chromatic", "--colour", "Red", "--prompt", "Red", "--out", str(tmp_path / "x"), *tiny_vae]) == 2
    assert "--prompt do not apply to a piano-roll generator" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_evaluate_generation_on_a_gpt_reports_recognition_and_token_validity(gpt_dir, scorer_dir, tmp_path, capsys):
    report = tmp_path / "gpt.md"
    args = ["evaluate-generation", gpt_dir, "--scorer", scorer_dir, "--samples-per-colour", "2", "--colours", "Red,Blue,Violet"]
    assert main([*args, "--max-length", "40", "--validity-samples-per-colour", "1", "--out", str(report)]) == 0
    text = report.read_text()
    assert text == capsys.readouterr().out
    recognition, validity = text.split("Token validity")
    assert "6 segments, constrained=True, max_length=40" in recognition and "chance 33.3%" in recognition
    assert [line.split("|")[1].strip() for line in recognition.splitlines() if line.startswith("| ") and "%" in line] == ["Red", "Blue", "Violet"]
    assert all(f"| {c} | 2 |" in recognition for c in ("Red", "Blue", "Violet"))
    rows = {line.split("|")[1].strip(): line for line in validity.splitlines() if line.startswith("| ") and "%" in line}
    assert set(rows) == {"constrained", "unconstrained"}
    # Constrained decoding: every sequence free of token errors.
    assert "| constrained | 3 |" in rows["constrained"] and "| 100.0% | 0.0000 / 0.0000 |" in rows["constrained"]
    assert "| unconstrained | 3 |" in rows["unconstrained"]
    # Options of the other kind of generator are refused by name.
    assert main([*args, "--num-steps", "5"]) == 2
    assert "--num-steps do not apply to a token generator (GPT)" in capsys.readouterr().err
    assert main(["evaluate", gpt_dir, "--scorer", scorer_dir, "--data", "demo", "--num-steps", "5", "--out", str(tmp_path / "r")]) == 2
    assert "--num-steps do not apply to a token generator (GPT)" in capsys.readouterr().err


def test_recognition_of_gpt_samples_matches_the_scorer_on_their_midi_files(gpt_dir, scorer_dir):
    gpt, scorer = ck.from_preset(gpt_dir), ck.from_preset(scorer_dir)
    colours = ("Red", "Blue")
    report = colour_recognition(gpt, scorer, colours=colours, samples_per_colour=3, seed=3, max_length=40, constrained=True)
    for i, colour in enumerate(colours):
        ids = gpt.generate(condition=colour, num_samples=3, seed=3 + i, max_length=40, constrained=True)
        files = [r["midi"] for r in gpt.to_midi(ids) if r["num_notes"]]
        named = np.argmax(scorer.score(files)["colour"], axis=-1) if files else np.zeros(0, int)  # the scorer reads the files itself
        expected = [int(np.sum(named == modes.parse_colour(c).index)) for c in colours]
        assert report.counts[colour] == 3
        assert list(report.confusion[i]) == expected


def test_generate_options_keep_zero_values(tiny_gpt_overrides):
    """A zero is a value, not "not given": --guidance-scale 0 (unconditional sampling) reaches a diffusion
    model's generate, and --max-length 0 reaches the GPT's (which then refuses it), instead of silently
    falling back to the preset's setting."""
    import argparse

    from chroma_keras.cli import _generate_kwargs

    piano_roll_args = argparse.Namespace(num_steps=None, scheduler=None, guidance_scale=0.0)
    assert _generate_kwargs(object(), piano_roll_args, "evaluate-generation") == {"guidance_scale": 0.0}
    gpt = ck.from_preset("gpt_remi_chromatic", **tiny_gpt_overrides)
    token_args = argparse.Namespace(prompt=None, sampling=None, max_length=0, unconstrained=False)
    kwargs = _generate_kwargs(gpt, token_args, "generate")
    assert kwargs == {"constrained": True, "max_length": 0}
    with pytest.raises(ModelInputError, match="max_length must exceed the prompt"):
        gpt.generate(condition="Red", **kwargs)
