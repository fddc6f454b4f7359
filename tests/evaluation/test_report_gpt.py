"""chroma-keras evaluate on a GPT run: the HTML report's recognition and token validity agree with the
evaluation functions run directly on the same draws."""

import re

import keras
import numpy as np
import pytest

import chroma_keras as ck
from chroma_keras.cli import main
from chroma_keras.data.demo_corpus import write_demo_corpus
from chroma_keras.evaluation.chromatic_consistency import chromatic_consistency
from chroma_keras.evaluation.token_validity import validity_row
from chroma_keras.generation.token_midi import sequence_rolls
from chroma_keras.preprocessing.pianoroll import PianoRollSpec

COLOURS = ("Red", "Green", "Violet")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_gpt_overrides, tiny_scorer_overrides):
    root = tmp_path_factory.mktemp("report_gpt")
    corpus = write_demo_corpus(root / "c.parquet", songs_per_colour=2, segments_per_song=3)
    keras.utils.set_random_seed(0)
    gpt_dir = ck.save_to_preset(ck.from_preset("gpt_remi_chromatic", **tiny_gpt_overrides), root / "gpt")
    scorer_dir = ck.save_to_preset(ck.from_preset("scorer_midi_only", **tiny_scorer_overrides), root / "scorer")
    return corpus, str(gpt_dir), str(scorer_dir)


def test_gpt_report_has_recognition_and_token_validity_of_its_draws(runs, tmp_path):
    corpus, gpt_dir, scorer_dir = runs
    out = tmp_path / "report"
    argv = ["evaluate", gpt_dir, "--scorer", scorer_dir, "--data", str(corpus), "--split", "all", "--colours", ",".join(COLOURS)]
    assert main([*argv, "--samples-per-colour", "3", "--max-length", "40", "--validity-samples-per-colour", "1", "--out", str(out)]) == 0
    page = (out / "report.html").read_text()
    for source in re.findall(r'<img src="([^"]+)"', page):
        assert (out / source).stat().st_size > 0, source
    assert "<td>constrained</td><td>True</td>" in page and "<td>max_length</td><td>40</td>" in page

    # The same draws, decoded and scored directly: the page's recognition rate and validity row.
    model, scorer = ck.from_preset(gpt_dir), ck.from_preset(scorer_dir)
    spec = PianoRollSpec.from_config(scorer.preset_config)
    rolls, targets, unscored, decoded = [], [], {}, []
    for i, colour in enumerate(COLOURS):
        ids = model.generate(condition=colour, num_samples=3, seed=i, constrained=True, max_length=40)
        colour_rolls, part = sequence_rolls(model.vocabulary, ids, spec)
        valid = [d["valid"] for d in part]
        rolls.append(colour_rolls[valid])
        targets += [colour] * sum(valid)
        unscored[colour] = 3 - sum(valid)
        decoded += part
    recognition = chromatic_consistency(np.concatenate(rolls), targets, scorer, colours=COLOURS, unscored=unscored)
    assert f"Generated: <b>{recognition.rate:.1%}</b>" in page
    assert f"<td>generated segments</td><td>{len(targets)}</td>" in page

    section = page.split("<h2>Token validity</h2>")[1]
    row = validity_row("constrained", decoded)
    assert (
        f"<tr><td>evaluated samples</td><td>constrained</td><td>9</td><td>{row.valid:.1%}</td><td>100.0%</td>"
        "<td>0.0000 / 0.0000</td>" in section
    )
    # The extra draws: one per colour with and without the grammar mask.
    assert "<td>1 more per colour</td><td>constrained</td><td>3</td>" in section
    assert "<td>1 more per colour</td><td>unconstrained</td><td>3</td>" in section


def test_a_gpt_report_needs_a_scorer_that_reads_piano_rolls(runs, tmp_path, capsys):
    corpus, gpt_dir, scorer_dir = runs
    capsys.readouterr()
    assert main(["evaluate", gpt_dir, "--scorer", gpt_dir, "--data", str(corpus), "--out", str(tmp_path / "r")]) == 2
    assert "piano-roll MIDI encoder" in capsys.readouterr().err


def test_the_validity_row_of_the_evaluated_samples_names_the_decoding_they_used():
    """evaluation_report(gpt, ...) without ``constrained`` samples through generate_midi, which decodes
    constrained by default: the table must say so (and "unconstrained" only when asked for)."""
    from chroma_keras.evaluation.report import _validity_section

    decoded = [{"valid": True, "token_error_rate": 0.0, "ended": True, "num_notes": 2, "num_tokens": 9}]
    default = _validity_section(None, decoded, COLOURS, 0, 0, {"max_length": 40})
    assert "<td>evaluated samples</td><td>constrained</td><td>1</td>" in default
    free = _validity_section(None, decoded, COLOURS, 0, 0, {"constrained": False})
    assert "<td>evaluated samples</td><td>unconstrained</td><td>1</td>" in free
