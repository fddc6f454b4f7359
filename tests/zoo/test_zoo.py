"""from_preset / list_presets / save_to_preset, end to end."""

import keras
import numpy as np
import pytest

import chroma_keras as ck
from chroma_keras.errors import PresetError
from chroma_keras.models import ConditionalVAE

SMALL = {
    "model.vae.latent_dim": 4,
    "model.vae.encoder_filters": [4, 8],
    "model.vae.hidden_dim": 16,
    "model.vae.condition_dim": 8,
    "preprocessing.midi.piano_roll.num_pitches": 16,
    "preprocessing.midi.piano_roll.num_frames": 16,
}


def test_list_presets_includes_cvae_chromatic():
    names = dict(ck.list_presets())
    assert "cvae_chromatic" in names and "Conditional VAE" in names["cvae_chromatic"]


def test_from_preset_builds_the_documented_model():
    model = ck.from_preset("cvae_chromatic")
    assert isinstance(model, ConditionalVAE)
    config = model.preset_config
    assert (model.num_pitches, model.num_frames) == (
        config["preprocessing"]["midi"]["piano_roll"]["num_pitches"],
        config["preprocessing"]["midi"]["piano_roll"]["num_frames"],
    )
    assert model.latent_dim == config["model"]["vae"]["latent_dim"]
    rolls = model.generate(condition="Red", num_samples=2, seed=0)
    assert rolls.shape == (2, model.num_pitches, model.num_frames)
    assert model.optimizer is not None


def test_overrides_as_keywords_dotted_and_double_underscore():
    a = ck.from_preset("cvae_chromatic", latent_dim=12, **{k: v for k, v in SMALL.items() if "latent" not in k})
    b = ck.from_preset("cvae_chromatic", **{**SMALL, "model.vae.latent_dim": 12})
    c = ck.from_preset("cvae_chromatic", model__vae__latent_dim=12, **{k: v for k, v in SMALL.items() if "latent" not in k})
    assert a.latent_dim == b.latent_dim == c.latent_dim == 12
    with pytest.raises(PresetError, match="latnt_dim.*Did you mean 'latent_dim'"):
        ck.from_preset("cvae_chromatic", **{"model.vae.latnt_dim": 3})


def test_save_to_preset_round_trips_outputs(tmp_path):
    model = ck.from_preset("cvae_chromatic", **SMALL)
    rng = np.random.default_rng(0)
    inputs = {
        "piano_roll": (rng.random((4, 16, 16)) > 0.8).astype("float32"),
    }
    from chroma_keras import conditioning

    inputs.update(conditioning.condition_arrays("Green", 4))
    model.fit(inputs, epochs=1, batch_size=2, verbose=0)
    directory = ck.save_to_preset(model, tmp_path / "my_cvae")
    assert {p.name for p in directory.iterdir()} >= {"preset.yaml", "model.weights.h5", "metadata.json"}
    restored = ck.from_preset(directory)
    z = model.sample_latents(3, seed=1)
    _, expected = model.decode(z, "Green", return_probabilities=True)
    _, got = restored.decode(z, "Green", return_probabilities=True)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    fresh = ck.from_preset(directory, load_weights=False)
    assert np.abs(fresh.decode(z, "Green", return_probabilities=True)[1] - expected).max() > 1e-4
    # Loading into a different architecture names the weights file.
    with pytest.raises(PresetError, match="model.weights.h5: these weights do not fit"):
        ck.from_preset(directory, latent_dim=5)


def test_explicit_weights_argument(tmp_path):
    model = ck.from_preset("cvae_chromatic", **SMALL)
    model.save_weights(tmp_path / "w.weights.h5")
    loaded = ck.from_preset("cvae_chromatic", weights=tmp_path / "w.weights.h5", **SMALL)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(PresetError, match="no such weights file"):
        ck.from_preset("cvae_chromatic", weights=tmp_path / "missing.weights.h5")


def test_unknown_preset_and_a_generator_without_its_data_format(tmp_path):
    with pytest.raises(PresetError, match="cvae_chromatc.*cvae_chromatic"):
        ck.from_preset("cvae_chromatc")
    # Every model.generative.type has a model now; the GPT still needs MIDI tokens, not piano rolls.
    preset = tmp_path / "autoregressive.yaml"
    preset.write_text("name: d\nextends: cvae_chromatic\nmodel:\n  generative:\n    type: autoregressive\n")
    with pytest.raises(PresetError, match="tokenization is 'pianoroll', which has no token vocabulary"):
        ck.from_preset(preset)


def test_save_to_preset_after_keras_load_keeps_architecture(tmp_path):
    model = ck.from_preset("cvae_chromatic", **SMALL)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    directory = ck.save_to_preset(loaded, tmp_path / "again")
    again = ck.from_preset(directory)
    assert again.get_config() | {"name": None} == loaded.get_config() | {"name": None}
