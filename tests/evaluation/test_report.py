"""chroma-keras evaluate: the HTML report's figures agree with the evaluation functions computed directly."""

import csv
import re

import keras
import numpy as np
import pytest

import chroma_keras as ck
from chroma_keras import zoo
from chroma_keras.cli import main
from chroma_keras.data import keys
from chroma_keras.data.demo_corpus import write_demo_corpus
from chroma_keras.evaluation.chromatic_consistency import chromatic_consistency
from chroma_keras.evaluation.frechet import frechet_distance
from chroma_keras.evaluation.report import _statistics

GRID = {"preprocessing.midi.piano_roll.frames_per_second": 2, "preprocessing.midi.piano_roll.num_frames": 16}
TINY_VAE = {**GRID, "model.vae.encoder_filters": [4], "model.vae.hidden_dim": 8, "model.vae.latent_dim": 4}
TINY_SCORER = {**GRID, "model.midi_encoder.filters": [4, 4, 4], "model.midi_encoder.hidden_dim": 8}
COLOURS = ("Red", "Green", "Violet")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    corpus = write_demo_corpus(root / "c.parquet", songs_per_colour=2, segments_per_song=3)
    keras.utils.set_random_seed(0)
    vae = ck.from_preset("cvae_chromatic", **TINY_VAE)
    scorer = ck.from_preset("scorer_midi_only", **TINY_SCORER)
    return corpus, vae, scorer, zoo.save_to_preset(vae, root / "vae"), zoo.save_to_preset(scorer, root / "scorer")


def test_report_figures_match_the_evaluation_functions(runs, tmp_path, capsys):
    corpus, vae, scorer, vae_dir, scorer_dir = runs
    out = tmp_path / "report"
    argv = ["evaluate", str(vae_dir), "--scorer", str(scorer_dir), "--data", str(corpus), "--split", "all"]
    assert main([*argv, "--samples-per-colour", "3", "--colours", ",".join(COLOURS), "--out", str(out)]) == 0
    page = (out / "report.html").read_text()
    for source in re.findall(r'<img src="([^"]+)"', page):
        assert (out / source).stat().st_size > 0, source
    assert {"confusion.png", "projection.png"} <= {p.name for p in out.iterdir()}
    assert f"<td>backend</td><td>{keras.config.backend()}</td>" in page and "<td>samples per colour</td><td>3</td>" in page
    assert "Token validity" not in page  # a piano-roll generator has no token section

    # The same generation, evaluated directly, gives the page's numbers.
    loaded = ck.from_preset(str(vae_dir))
    generated = np.concatenate([loaded.generate(condition=c, num_samples=3, seed=i) for i, c in enumerate(COLOURS)])
    targets = [c for c in COLOURS for _ in range(3)]
    reloaded_scorer = ck.from_preset(str(scorer_dir))
    recognition = chromatic_consistency(generated, targets, reloaded_scorer, sample_spec=loaded.roll_spec(), colours=COLOURS)
    assert f"Generated: <b>{recognition.rate:.1%}</b>" in page

    from chroma_keras.data.multimodal_dataset import MultimodalDataset

    dataset = MultimodalDataset(corpus, loaded.preset_config, split="all", require=("midi",), shuffle=False, augment=False)
    real, names = [], []
    for index in range(len(dataset)):
        (batch,) = dataset[index]
        for roll, colour in zip(batch[keys.PIANO_ROLL], batch[keys.COLOUR_INDEX]):
            if colour >= 0 and ck.modes.COLOURS[int(colour)].name in COLOURS:
                real.append(roll)
                names.append(ck.modes.COLOURS[int(colour)].name)
    real = np.stack(real)
    stats_real, stats_generated = _statistics(real, loaded.roll_spec()), _statistics(generated, loaded.roll_spec())
    expected = frechet_distance(np.stack(list(stats_real.values()), 1), np.stack(list(stats_generated.values()), 1))
    assert f"<td>symbolic statistics</td><td>5</td><td>{expected.value:.4g}</td>" in page
    from chroma_keras.evaluation.frechet import frechet_interval

    interval = frechet_interval(np.stack(list(stats_real.values()), 1), np.stack(list(stats_generated.values()), 1), seed=0)
    assert f"<td>[{interval.low:.4g}, {interval.high:.4g}]</td>" in page
    # 512-wide scorer embeddings on a few dozen segments: refused, with the reason, not printed.
    assert "<td>scorer embedding</td><td>512</td><td>refused</td>" in page and "too few for 512-dimensional" in page

    # The projection is the PCA of the VAE's posterior means of the real segments (up to each axis' sign).
    with open(out / "projection.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["colour"] for r in rows] == names and {r["kind"] for r in rows} == {"real"}
    means, _ = loaded.encode(real, condition=names)
    centred = means - means.mean(axis=0)
    expected_points = centred @ np.linalg.svd(centred, full_matrices=False)[2][:2].T
    points = np.array([[float(r["x"]), float(r["y"])] for r in rows])
    np.testing.assert_allclose(np.abs(points), np.abs(expected_points), atol=1e-4)


def test_a_model_without_a_piano_roll_scorer_is_refused(runs, tmp_path, capsys):
    corpus, _, _, vae_dir, _ = runs
    capsys.readouterr()
    assert main(["evaluate", str(vae_dir), "--scorer", str(vae_dir), "--data", str(corpus), "--out", str(tmp_path / "r")]) == 2
    assert "piano-roll MIDI encoder" in capsys.readouterr().err
