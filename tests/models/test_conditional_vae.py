"""ConditionalVAE: loss parity with NumPy, serialization, training, generation and errors."""

import importlib.util
import pathlib

import keras
import numpy as np
import pytest

from chroma_keras.data import keys
from chroma_keras.errors import LabelError, ModelInputError
from chroma_keras.models import ConditionalVAE, PianoRollVAEDecoder, PianoRollVAEEncoder
from chroma_keras.models.conditional_vae import notes_from_probabilities
from chroma_keras.training.kl_annealing import kl_annealing_factor, kl_annealing_factor_reference

_spec = importlib.util.spec_from_file_location("vae_fixtures", pathlib.Path(__file__).with_name("vae_fixtures.py"))
fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixtures)
TINY_KWARGS, tiny_inputs, structured_inputs = fixtures.TINY_KWARGS, fixtures.tiny_inputs, fixtures.structured_inputs


def numpy(x):
    return keras.ops.convert_to_numpy(x)


def predict_numpy(model, inputs):
    return {k: numpy(v) for k, v in model(inputs, training=False).items()}


def reference_loss(inputs, outputs, beta_factor, free_bits=0.0, velocity_weight=1.0):
    """The CVAE loss written directly in NumPy (float64)."""
    roll = inputs[keys.PIANO_ROLL].astype(np.float64)
    active = (roll > 0).astype(np.float64)
    logits = outputs["note_logits"].astype(np.float64)
    bce = np.maximum(logits, 0) - logits * active + np.log1p(np.exp(-np.abs(logits)))
    vel = active * (outputs["velocity"] - roll) ** 2
    recon = np.mean(bce.sum(axis=(1, 2)) + velocity_weight * vel.sum(axis=(1, 2)))
    mean, log_var = outputs["z_mean"].astype(np.float64), outputs["z_log_var"].astype(np.float64)
    kl_dim = np.mean(-0.5 * (1 + log_var - mean**2 - np.exp(log_var)), axis=0)
    kl_opt = np.maximum(kl_dim, free_bits).sum() if free_bits > 0 else kl_dim.sum()
    return recon + beta_factor * kl_opt, recon, kl_dim.sum()


@pytest.mark.parametrize("free_bits", [0.0, 0.5])
def test_loss_matches_numpy_reference(free_bits):
    model = ConditionalVAE(**{**TINY_KWARGS, "free_bits": free_bits, "beta": 0.7, "velocity_loss_weight": 2.0})
    inputs = tiny_inputs(6)
    outputs = predict_numpy(model, inputs)
    model.kl_step.assign(4.0)  # linear schedule, warmup 10 -> factor 0.4
    loss = float(numpy(model.compute_loss(x=inputs, y_pred={k: keras.ops.convert_to_tensor(v) for k, v in outputs.items()})))
    expected, recon, kl = reference_loss(inputs, outputs, 0.7 * 0.4, free_bits, 2.0)
    assert loss == pytest.approx(expected, rel=1e-5)
    assert float(numpy(model.reconstruction_tracker.result())) == pytest.approx(recon, rel=1e-5)
    assert float(numpy(model.kl_tracker.result())) == pytest.approx(kl, rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("schedule", ["none", "linear", "cyclical", "sigmoid"])
def test_kl_annealing_matches_reference(schedule):
    for step in [0, 1, 5, 37, 50, 99, 100, 150, 250, 400, 1000]:
        got = float(numpy(kl_annealing_factor(step, schedule, warmup_steps=100, cycles=3)))
        assert got == pytest.approx(kl_annealing_factor_reference(step, schedule, 100, 3), abs=1e-6), (schedule, step)


def test_config_round_trip_rebuilds_the_same_model():
    model = ConditionalVAE(**TINY_KWARGS)
    clone = ConditionalVAE.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    clone.set_weights(model.get_weights())
    inputs = tiny_inputs()
    for key, value in predict_numpy(model, inputs).items():
        np.testing.assert_allclose(predict_numpy(clone, inputs)[key], value, atol=1e-6)
    for cls in (PianoRollVAEEncoder, PianoRollVAEDecoder):
        sub = model.encoder if cls is PianoRollVAEEncoder else model.decoder
        assert cls.from_config(sub.get_config()).get_config() == sub.get_config()


def test_keras_file_round_trip(tmp_path):
    model = ConditionalVAE(**TINY_KWARGS)
    model.compile()
    inputs = tiny_inputs()
    model.fit(inputs, batch_size=2, epochs=1, verbose=0)
    path = tmp_path / "cvae.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    assert isinstance(restored, ConditionalVAE)
    assert float(numpy(restored.kl_step)) == float(numpy(model.kl_step)) == 2.0
    for key, value in predict_numpy(model, inputs).items():
        np.testing.assert_allclose(predict_numpy(restored, inputs)[key], value, atol=1e-6)


def test_fit_lowers_reconstruction_loss_and_anneals_kl():
    model = ConditionalVAE(**TINY_KWARGS)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    inputs = structured_inputs(32, seed=1)
    history = model.fit(inputs, batch_size=8, epochs=12, verbose=0).history
    # The first epoch's mean already includes the fast early drop; ask for a further halving.
    assert history["reconstruction_loss"][-1] < 0.5 * history["reconstruction_loss"][0]
    weights = history["kl_weight"]
    assert weights[0] < weights[1] < weights[2] and weights[-1] == pytest.approx(1.0)


def test_generate_is_seeded_and_returns_velocities():
    model = ConditionalVAE(**TINY_KWARGS)
    a = model.generate("Red", num_samples=3, seed=7)
    b = model.generate("Red", num_samples=3, seed=7)
    c = model.generate("Red", num_samples=3, seed=8)
    assert a.shape == (3, 16, 16) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) or np.all(a == 0)
    assert a.min() >= 0 and a.max() <= 1
    rolls, probs = model.decode(model.sample_latents(3, seed=1), "Red", decoding="threshold", return_probabilities=True)
    # A cell sounds exactly where its probability clears the threshold, with velocity >= 1/127.
    np.testing.assert_array_equal(rolls > 0, probs > 0.5)
    rolls, probs = model.decode(model.sample_latents(3, seed=1), "Red", return_probabilities=True)
    # Default decoding: as many sounding cells as the probabilities add up to.
    np.testing.assert_array_equal((rolls > 0).sum(axis=(1, 2)), np.rint(probs.astype(np.float64).sum(axis=(1, 2))))
    assert rolls[rolls > 0].min() >= 1 / 127 - 1e-7 if (rolls > 0).any() else True


def test_generate_accepts_per_axis_conditions_and_lists():
    model = ConditionalVAE(**TINY_KWARGS)
    z = model.sample_latents(2, seed=0)
    red = model.decode(z, "Red", return_probabilities=True)[1]
    same = model.decode(z, {"temporal": "past", "spatial": "thing", "ontological": "known"}, return_probabilities=True)[1]
    novel = model.decode(z, "future,thing,known", return_probabilities=True)[1]
    mixed = model.decode(z, ["Red", "future,thing,known"], return_probabilities=True)[1]
    np.testing.assert_allclose(red, same, atol=1e-6)
    assert np.abs(red - novel).max() > 1e-4
    np.testing.assert_allclose(mixed[0], red[0], atol=1e-6)
    np.testing.assert_allclose(mixed[1], novel[1], atol=1e-6)
    assert model.generate(None, num_samples=2, seed=0).shape == (2, 16, 16)


def test_reconstruct_uses_the_posterior_mean():
    model = ConditionalVAE(**TINY_KWARGS)
    inputs = tiny_inputs(2)
    mean, log_var = model.encode(inputs[keys.PIANO_ROLL], ["Red", "future,thing,known"], inputs[keys.REBRACKETING])
    assert mean.shape == log_var.shape == (2, 6)
    direct = model.decode(mean, ["Red", "future,thing,known"], inputs[keys.REBRACKETING])
    np.testing.assert_array_equal(
        model.reconstruct(inputs[keys.PIANO_ROLL], ["Red", "future,thing,known"], inputs[keys.REBRACKETING]), direct
    )


def test_bad_inputs_raise_chroma_keras_errors():
    model = ConditionalVAE(**TINY_KWARGS)
    with pytest.raises(LabelError, match="Unknown colour 'Redish'"):
        model.generate("Redish", num_samples=1)
    with pytest.raises(ModelInputError, match="num_samples must be a positive integer"):
        model.generate("Red", num_samples=0)
    with pytest.raises(ModelInputError, match=r"latents must have shape \[batch, 6\]"):
        model.decode(np.zeros((2, 5)), "Red")
    with pytest.raises(ModelInputError, match="threshold must be in"):
        model.generate("Red", num_samples=1, threshold=1.5, decoding="threshold")
    with pytest.raises(ModelInputError, match="decoding must be one of"):
        model.generate("Red", num_samples=1, decoding="greedy")
    with pytest.raises(ModelInputError, match=r"piano_rolls must have shape \[batch, 16, 16\].*\(2, 16, 8\)"):
        model.encode(np.zeros((2, 16, 8)), "Red")
    with pytest.raises(ModelInputError, match="finite velocities"):
        model.encode(np.full((1, 16, 16), np.nan), "Red")
    with pytest.raises(ModelInputError, match="divisible by 2 \\*\\* len\\(encoder_filters\\) = 4"):
        ConditionalVAE(**{**TINY_KWARGS, "num_pitches": 18})
    with pytest.raises(ModelInputError, match="Got 3 conditions for num_samples=2"):
        model.generate(["Red", "Blue", "Green"], num_samples=2)
    with pytest.raises(ModelInputError, match="owns its loss"):
        model.compile(loss="mse")


def test_to_midi_writes_files_that_read_back(tmp_path):
    import pretty_midi
    import symusic

    model = ConditionalVAE(**TINY_KWARGS)
    roll = np.zeros((1, 16, 16), np.float32)
    roll[0, 3, 2:6] = 0.5
    roll[0, 10, 8:12] = 0.8
    (path,) = model.to_midi(roll, tmp_path / "out")
    notes = sorted((n.pitch, round(n.start, 3), round(n.end, 3)) for n in pretty_midi.PrettyMIDI(str(path)).instruments[0].notes)
    # Row 3 is pitch 48 + 3; frames are 0.25 s.
    assert notes == [(51, 0.5, 1.5), (58, 2.0, 3.0)]
    score = symusic.Score(str(path), ttype="second")
    assert sorted((n.pitch, round(n.time, 3)) for n in score.tracks[0].notes) == [(51, 0.5), (58, 2.0)]


def test_notes_from_probabilities_golden_and_properties():
    p = np.array([[[0.1, 0.45, 0.3], [0.05, 0.6, 0.0]]])  # sum 1.5 -> 2 cells
    np.testing.assert_array_equal(notes_from_probabilities(p), [[[False, True, False], [False, True, False]]])
    np.testing.assert_array_equal(notes_from_probabilities(p, "threshold", 0.4), p > 0.4)
    many = np.tile(p, (4000, 1, 1))
    draws = notes_from_probabilities(many, "bernoulli", seed=0)
    assert not draws[:, 1, 2].any()  # a zero-probability cell never sounds
    np.testing.assert_allclose(draws.mean(axis=0), p[0], atol=0.03)
    np.testing.assert_array_equal(draws, notes_from_probabilities(many, "bernoulli", seed=0))
