"""ConditionalVAE conditioned on the training transposition (model.vae.condition_on_transposition)."""

import importlib.util
import pathlib

import keras
import numpy as np
import pytest

import chroma_keras as ck
from chroma_keras import conditioning
from chroma_keras.data import keys
from chroma_keras.errors import ModelInputError
from chroma_keras.models import ConditionalVAE

_spec = importlib.util.spec_from_file_location("vae_fixtures", pathlib.Path(__file__).with_name("vae_fixtures.py"))
fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixtures)

KWARGS = {**fixtures.TINY_KWARGS, "condition_on_transposition": True}
BASE_ROW = 6


def numpy(x):
    return keras.ops.convert_to_numpy(x)


def condition(model, shifts, colour="Red"):
    arrays = conditioning.condition_arrays(colour, len(shifts), None)
    arrays[keys.TRANSPOSITION] = np.asarray(shifts, np.float32)
    return numpy(model.condition_vector({k: keras.ops.convert_to_tensor(v) for k, v in arrays.items()}))


def transposed_data(n=64, seed=0):
    """One sustained note on row BASE_ROW, moved by a reported transposition in -4..4."""
    rng = np.random.default_rng(seed)
    shifts = rng.integers(-4, 5, size=n)
    rolls = np.zeros((n, 16, 16), np.float32)
    for i, shift in enumerate(shifts):
        rolls[i, BASE_ROW + shift, 2:14] = 0.8
    return {keys.PIANO_ROLL: rolls, **conditioning.condition_arrays("Red", n), keys.TRANSPOSITION: shifts.astype(np.float32)}


def mean_row(probabilities):
    rows = np.arange(probabilities.shape[1])[None, :, None]
    return float((probabilities * rows).sum() / probabilities.sum())


def test_the_transposition_adds_a_linear_direction_to_the_condition():
    """c(t) = c(0) + (t / 12) W with W the projection kernel (NumPy), and a batch without the key is c(0)."""
    model = ConditionalVAE(**KWARGS)
    kernel = numpy(model.transposition_projection.kernel)  # [1, condition_dim]
    shifts = np.array([-12.0, -5.0, 0.0, 7.0], np.float32)
    base = condition(model, np.zeros(4))
    np.testing.assert_allclose(condition(model, shifts), base + shifts[:, None] / 12.0 * kernel, atol=1e-5)
    arrays = {k: keras.ops.convert_to_tensor(v) for k, v in conditioning.condition_arrays("Red", 4, None).items()}
    np.testing.assert_allclose(numpy(model.condition_vector(arrays)), base, atol=1e-6)
    # A model without the condition ignores the key.
    plain = ConditionalVAE(**fixtures.TINY_KWARGS)
    assert plain.transposition_projection is None
    np.testing.assert_allclose(condition(plain, shifts), condition(plain, np.zeros(4)), atol=1e-6)


def test_a_model_trained_with_the_condition_moves_notes_by_the_asked_transposition():
    """Trained on one note moved by a reported -4..4 shift, the decoder puts prior samples' note where
    the asked transposition says (within 1.5 rows)."""
    data = transposed_data()
    keras.utils.set_random_seed(0)
    model = ConditionalVAE(**{**KWARGS, "latent_dim": 2})
    model.compile(optimizer=keras.optimizers.Adam(5e-3))
    history = model.fit(data, batch_size=16, epochs=40, verbose=0).history
    assert history["reconstruction_loss"][-1] < 0.3 * history["reconstruction_loss"][0], history["reconstruction_loss"]
    z = model.sample_latents(32, seed=1)
    for semitones in (-3, 0, 3):
        _, p = model.decode(z, "Red", transpose=semitones, return_probabilities=True)
        assert abs(mean_row(p) - (BASE_ROW + semitones)) < 1.5, (semitones, mean_row(p))
    # The generate() path takes the same argument, one value per sample too.
    rolls = model.generate("Red", num_samples=2, seed=0, transpose=[-3, 3], decoding="threshold", threshold=0.3)
    low, high = (np.nonzero(r.sum(axis=1))[0] for r in rolls)
    assert low.size and high.size and low.mean() < high.mean()


def test_transpose_errors_name_the_argument_and_the_preset_key():
    plain = ConditionalVAE(**fixtures.TINY_KWARGS)
    z = plain.sample_latents(2, seed=0)
    plain.decode(z, "Red", transpose=0)  # 0 is always allowed
    with pytest.raises(ModelInputError, match=r"not trained with a transposition condition.*condition_on_transposition"):
        plain.generate("Red", num_samples=2, seed=0, transpose=5)
    model = ConditionalVAE(**KWARGS)
    with pytest.raises(ModelInputError, match=r"one per sample \(2\). Received: transpose=\[1, 2, 3\]"):
        model.decode(z, "Red", transpose=[1, 2, 3])
    with pytest.raises(ModelInputError, match="finite"):
        model.encode(np.zeros((2, 16, 16), np.float32), "Red", transpose=float("nan"))


def test_config_keras_and_preset_round_trips_keep_the_projection(tmp_path):
    model = ConditionalVAE(**KWARGS)
    again = ConditionalVAE.from_config(model.get_config())
    assert again.condition_on_transposition and again.transposition_projection is not None
    path = tmp_path / "vae.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    z = model.sample_latents(3, seed=0)
    expected = model.decode(z, "Red", transpose=[-2, 0, 5], return_probabilities=True)[1]
    np.testing.assert_allclose(loaded.decode(z, "Red", transpose=[-2, 0, 5], return_probabilities=True)[1], expected, atol=1e-6)
    small = {"model.vae.latent_dim": 8, "model.vae.encoder_filters": [4, 4, 4, 4], "model.vae.hidden_dim": 16}
    preset_model = ck.from_preset("cvae_chromatic", **small)
    assert preset_model.condition_on_transposition  # the preset's default
    ck.save_to_preset(preset_model, tmp_path / "m")
    reloaded = ck.from_preset(str(tmp_path / "m"))
    z = preset_model.sample_latents(2, seed=0)
    np.testing.assert_allclose(
        reloaded.decode(z, "Violet", transpose=4, return_probabilities=True)[1],
        preset_model.decode(z, "Violet", transpose=4, return_probabilities=True)[1],
        atol=1e-6,
    )
