"""A tiny cvae_chromatic, as preset overrides, for the training-loop tests."""

import pytest


@pytest.fixture
def tiny_vae():
    """Overrides that make cvae_chromatic a few hundred parameters on an 8 x 8 roll."""
    return {
        "preprocessing.midi.piano_roll.num_pitches": 8,
        "preprocessing.midi.piano_roll.num_frames": 8,
        "model.vae.encoder_filters": [4],
        "model.vae.hidden_dim": 8,
        "model.vae.latent_dim": 2,
        "model.vae.condition_dim": 4,
    }
