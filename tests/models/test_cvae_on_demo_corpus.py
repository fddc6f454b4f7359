"""cvae_chromatic learns the demo corpus: a small version of the `make demo` acceptance figure."""

import numpy as np
import pyarrow.parquet as pq
import pytest

import chroma_keras as ck
from chroma_keras.data.demo_corpus import generate_demo_corpus
from chroma_keras.demo import train_on_corpus

SMALL_CVAE = {
    "preprocessing.midi.piano_roll.frames_per_second": 2.0,
    "preprocessing.midi.piano_roll.num_frames": 32,
    "model.vae.encoder_filters": [8, 16, 16, 16],
    "model.vae.hidden_dim": 64,
    "model.vae.latent_dim": 16,
    "model.vae.condition_dim": 16,
    "model.vae.kl_annealing.warmup_steps": 60,
    "training.batch_size": 16,
    "training.learning_rate": 0.003,
    "training.epochs": 10,
}


@pytest.mark.slow
def test_validation_reconstruction_halves_from_the_first_epoch(tmp_path):
    path = tmp_path / "demo.parquet"
    pq.write_table(generate_demo_corpus(songs_per_colour=3, segments_per_song=6, seed=0), path)
    model = ck.from_preset("cvae_chromatic", **SMALL_CVAE)
    history, splits, dataset, report = train_on_corpus(model, path, verbose=0)
    # Grouped by song: no song in two parts.
    songs = {k: {dataset.song_ids[i] for i in v} for k, v in splits.items()}
    assert not songs["train"] & songs["validation"] and not songs["train"] & songs["test"]
    val = history.history["val_reconstruction_loss"]
    assert val[-1] < 0.5 * val[0], val
    # The trained model writes non-empty rolls for a colour it saw.
    rolls = model.generate(condition="Orange", num_samples=4, seed=0)
    assert rolls.shape == (4, 64, 32) and (rolls > 0).any()
    assert report.segments_kept == len(dataset)
