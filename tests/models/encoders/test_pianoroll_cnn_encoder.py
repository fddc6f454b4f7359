"""PianoRollCNNEncoder: parity with a PyTorch copy of the source project's CNN, pooling, saving, learning."""

import keras
import numpy as np
import pytest
import torch

from chroma_keras.data import keys
from chroma_keras.errors import ModelInputError
from chroma_keras.models.encoders.base import build_encoder
from chroma_keras.models.encoders.pianoroll_cnn_encoder import PianoRollCNNEncoder, adaptive_pool_matrix

FILTERS = (4, 8, 8)


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


@pytest.mark.parametrize("size,out", [(18, 4), (16, 4), (7, 4), (3, 4), (1, 4)])
def test_adaptive_pool_matrix_matches_torch(size, out):
    x = np.random.RandomState(0).randn(1, 1, size, 5).astype("float32")
    want = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(x), (out, 5)).numpy()[0, 0]
    np.testing.assert_allclose(adaptive_pool_matrix(size, out) @ x[0, 0], want, atol=1e-6)


def _torch_reference(encoder):
    """The source project's CNN in PyTorch (NCHW), with the Keras encoder's weights."""
    a, b, c = encoder.filters
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, a, 3, padding=1), torch.nn.BatchNorm2d(a), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(a, b, 3, padding=1), torch.nn.BatchNorm2d(b), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(b, c, 3, padding=1), torch.nn.BatchNorm2d(c), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d((4, 4)), torch.nn.Flatten(), torch.nn.Linear(c * 16, encoder.hidden_dim), torch.nn.ReLU(),
    ).eval()
    convs = [m for m in net if isinstance(m, torch.nn.Conv2d)]
    norms = [m for m in net if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for tconv, tnorm, kconv, knorm in zip(convs, norms, encoder.convs, encoder.norms):
            tconv.weight.copy_(torch.from_numpy(_numpy(kconv.kernel).transpose(3, 2, 0, 1)))
            tconv.bias.copy_(torch.from_numpy(_numpy(kconv.bias)))
            tnorm.weight.copy_(torch.from_numpy(_numpy(knorm.gamma)))
            tnorm.bias.copy_(torch.from_numpy(_numpy(knorm.beta)))
            tnorm.running_mean.copy_(torch.from_numpy(_numpy(knorm.moving_mean)))
            tnorm.running_var.copy_(torch.from_numpy(_numpy(knorm.moving_variance)))
        net[-2].weight.copy_(torch.from_numpy(_numpy(encoder.projection.kernel).T))
        net[-2].bias.copy_(torch.from_numpy(_numpy(encoder.projection.bias)))
    return net


@pytest.mark.parametrize("pitches,frames", [(36, 48), (30, 22)])
def test_matches_pytorch_source_architecture(pitches, frames):
    keras.utils.set_random_seed(0)
    encoder = PianoRollCNNEncoder(hidden_dim=16, filters=FILTERS)
    roll = np.random.RandomState(1).rand(3, pitches, frames).astype("float32")
    encoder({keys.PIANO_ROLL: roll})
    rng = np.random.RandomState(2)
    for norm in encoder.norms:  # non-trivial inference statistics
        norm.moving_mean.assign(rng.randn(*norm.moving_mean.shape).astype("float32") * 0.1)
        norm.moving_variance.assign(rng.uniform(0.5, 2.0, norm.moving_variance.shape).astype("float32"))
        norm.gamma.assign(rng.uniform(0.5, 1.5, norm.gamma.shape).astype("float32"))
    out = encoder({keys.PIANO_ROLL: roll}, training=False)
    with torch.no_grad():
        want = _torch_reference(encoder)(torch.from_numpy(roll[:, None])).numpy()
    np.testing.assert_allclose(_numpy(out["embedding"]), want, atol=1e-4, rtol=1e-4)
    steps = frames // 4
    assert tuple(out["sequence"].shape) == (3, steps, 16)
    np.testing.assert_array_equal(_numpy(out["sequence_mask"]), np.ones((3, steps)))


def test_sequence_is_pitch_mean_of_last_feature_map():
    keras.utils.set_random_seed(0)
    encoder = PianoRollCNNEncoder(hidden_dim=8, filters=FILTERS)
    roll = np.random.RandomState(3).rand(2, 24, 32).astype("float32")
    out = encoder({keys.PIANO_ROLL: roll})
    x = roll[..., None]
    for i, (conv, norm) in enumerate(zip(encoder.convs, encoder.norms)):
        x = _numpy(keras.ops.relu(norm(conv(x))))
        if i < 2:
            x = _numpy(encoder.max_pool(x))
    want = x.mean(axis=1) @ _numpy(encoder.sequence_projection.kernel) + _numpy(encoder.sequence_projection.bias)
    np.testing.assert_allclose(_numpy(out["sequence"]), want, atol=1e-5)


def test_absent_rows_give_finite_outputs():
    encoder = PianoRollCNNEncoder(hidden_dim=8, filters=FILTERS)
    out = encoder({keys.PIANO_ROLL: np.zeros((2, 16, 16), "float32")})
    assert all(np.isfinite(_numpy(v)).all() for v in out.values())


def _model(encoder, pitches, frames):
    inputs = {keys.PIANO_ROLL: keras.Input((pitches, frames), name=keys.PIANO_ROLL)}
    out = encoder(inputs)
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(out["embedding"]))


def test_keras_round_trip(tmp_path):
    keras.utils.set_random_seed(0)
    model = _model(PianoRollCNNEncoder(hidden_dim=8, filters=FILTERS, name="cnn"), 20, 24)
    roll = np.random.RandomState(4).rand(2, 20, 24).astype("float32")
    model.save(tmp_path / "cnn.keras")
    loaded = keras.saving.load_model(tmp_path / "cnn.keras")
    np.testing.assert_allclose(_numpy(loaded({keys.PIANO_ROLL: roll})), _numpy(model({keys.PIANO_ROLL: roll})), atol=1e-6)
    assert loaded.get_layer("cnn").get_config()["filters"] == list(FILTERS)


def test_learns_register_of_synthetic_rolls():
    # Label 1: notes in the top half of the roll; label 0: bottom half. Chance = 0.5.
    keras.utils.set_random_seed(0)
    rng = np.random.RandomState(5)
    n, pitches, frames = 64, 24, 16
    labels = rng.randint(0, 2, n).astype("float32")
    rolls = np.zeros((n, pitches, frames), "float32")
    for i, label in enumerate(labels):
        rows = rng.randint(12, 24, 4) if label else rng.randint(0, 12, 4)
        for row in rows:
            start = rng.randint(0, frames - 4)
            rolls[i, row, start : start + 4] = 1.0
    model = _model(PianoRollCNNEncoder(hidden_dim=8, filters=FILTERS), pitches, frames)
    model.compile(keras.optimizers.Adam(1e-2), "binary_crossentropy", metrics=["accuracy"])
    history = model.fit({keys.PIANO_ROLL: rolls}, labels, batch_size=16, epochs=8, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0] / 3
    assert history.history["accuracy"][-1] >= 0.9


def test_built_from_preset():
    encoder = build_encoder("midi", {"model": {"midi_encoder": {"type": "pianoroll_cnn", "hidden_dim": 24}}})
    assert isinstance(encoder, PianoRollCNNEncoder) and encoder.hidden_dim == 24 and encoder.filters == (32, 64, 128)
    assert encoder.input_keys == (keys.PIANO_ROLL,)


def test_bad_inputs():
    encoder = PianoRollCNNEncoder(hidden_dim=8, filters=FILTERS)
    with pytest.raises(ModelInputError, match=r"piano_roll.*\[batch, pitches, frames\]"):
        encoder({keys.MIDI_TOKENS: np.zeros((2, 8), "int32")})
    with pytest.raises(ModelInputError, match=r"\[batch, pitches, frames\].*Received: shape=\(2, 16\)"):
        encoder({keys.PIANO_ROLL: np.zeros((2, 16), "float32")})
    with pytest.raises(ModelInputError, match="filters"):
        PianoRollCNNEncoder(hidden_dim=8, filters=(4, 8))
