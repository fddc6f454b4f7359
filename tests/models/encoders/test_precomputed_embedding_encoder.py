"""PrecomputedEmbeddingEncoder: NumPy parity, registry, .keras round trip, convergence, bad inputs."""

import keras
import numpy as np
import pytest

from chroma_keras.data import keys
from chroma_keras.errors import ModelInputError, PresetError
from chroma_keras.models.encoders.base import build_encoder
from chroma_keras.models.encoders.precomputed_embedding_encoder import PrecomputedEmbeddingEncoder

DIM, HIDDEN = 12, 8


def to_np(x):
    return keras.ops.convert_to_numpy(x)


def numpy_reference(encoder, x):
    """LayerNorm (population variance, epsilon inside the sqrt) then Dense, in float64."""
    gamma, beta = (to_np(w).astype(np.float64) for w in encoder.norm.weights)
    kernel, bias = (to_np(w).astype(np.float64) for w in encoder.projection.weights)
    x = x.astype(np.float64)
    normed = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + encoder.epsilon) * gamma + beta
    return normed @ kernel + bias


@pytest.mark.parametrize("modality, key", [("audio", keys.AUDIO_EMBEDDING), ("text", keys.TEXT_EMBEDDING)])
def test_matches_numpy_reference_and_returns_one_step(modality, key):
    keras.utils.set_random_seed(1)
    encoder = PrecomputedEmbeddingEncoder(modality, hidden_dim=HIDDEN)
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(5, DIM)).astype("float32")
    out = encoder({key: x, keys.MODALITY_MASK: np.ones((5, 3), "float32")})  # other keys are ignored
    # Non-trivial LayerNorm parameters, so the parity check covers them.
    encoder.norm.set_weights([np.linspace(0.5, 1.5, DIM), np.linspace(-0.2, 0.2, DIM)])
    out = encoder({key: x})
    np.testing.assert_allclose(to_np(out["embedding"]), numpy_reference(encoder, x), atol=1e-5)
    np.testing.assert_allclose(to_np(out["sequence"])[:, 0], to_np(out["embedding"]))
    np.testing.assert_array_equal(to_np(out["sequence_mask"]), np.ones((5, 1)))
    assert encoder.modality == modality and encoder.input_keys == (key,)


@pytest.mark.parametrize("modality, key", [("audio", keys.AUDIO_EMBEDDING), ("text", keys.TEXT_EMBEDDING)])
def test_build_encoder_from_preset(modality, key):
    section = f"{modality}_encoder"
    config = {"model": {section: {"type": "precomputed", "hidden_dim": 6, "pretrained_model": None}}}
    encoder = build_encoder(modality, config)
    assert isinstance(encoder, PrecomputedEmbeddingEncoder)
    assert (encoder.modality, encoder.hidden_dim, encoder.input_keys) == (modality, 6, (key,))

    config["model"][section]["pretrained_model"] = "clap-htsat"
    with pytest.raises(PresetError, match=f"model.{section}.pretrained_model"):
        build_encoder(modality, config)


def test_keras_file_round_trip(tmp_path):
    keras.utils.set_random_seed(2)
    inputs = {keys.TEXT_EMBEDDING: keras.Input((DIM,), name=keys.TEXT_EMBEDDING)}
    encoder = PrecomputedEmbeddingEncoder("text", hidden_dim=HIDDEN, epsilon=1e-5)
    model = keras.Model(inputs, encoder(inputs)["embedding"])
    x = {keys.TEXT_EMBEDDING: np.random.default_rng(1).normal(size=(3, DIM)).astype("float32")}
    path = tmp_path / "precomputed.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(to_np(restored(x)), to_np(model(x)), atol=1e-6)
    clone = PrecomputedEmbeddingEncoder.from_config(encoder.get_config())
    assert clone.get_config() == encoder.get_config()
    assert clone.modality == "text" and clone.epsilon == 1e-5


def test_learns_a_linear_property():
    # Label = whether the mean of the first 4 coordinates exceeds the mean of the rest:
    # after LayerNorm this is still a linear function, so a tiny head must learn it.
    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(256, DIM)).astype("float32")
    y = (x[:, :4].mean(1) > x[:, 4:].mean(1)).astype("float32")
    inputs = {keys.AUDIO_EMBEDDING: keras.Input((DIM,), name=keys.AUDIO_EMBEDDING)}
    hidden = PrecomputedEmbeddingEncoder("audio", hidden_dim=16)(inputs)["embedding"]
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(keras.ops.relu(hidden)))
    model.compile(keras.optimizers.Adam(0.03), "binary_crossentropy", metrics=["accuracy"])
    history = model.fit({keys.AUDIO_EMBEDDING: x}, y, batch_size=64, epochs=12, verbose=0)
    # Chance is ~0.5; we measure ~0.97 on every backend.
    assert history.history["accuracy"][-1] >= 0.85
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]


def test_bad_inputs_raise_model_input_error():
    encoder = PrecomputedEmbeddingEncoder("audio", hidden_dim=HIDDEN)
    with pytest.raises(ModelInputError, match="audio_embedding.*\\[batch, dim\\]"):
        encoder({keys.TEXT_EMBEDDING: np.ones((2, DIM), "float32")})
    with pytest.raises(ModelInputError, match="audio_embedding.*\\[batch, dim\\].*shape=\\(2, 3, 4\\)"):
        encoder({keys.AUDIO_EMBEDDING: np.ones((2, 3, 4), "float32")})
    encoder({keys.AUDIO_EMBEDDING: np.ones((2, DIM), "float32")})
    with pytest.raises(ModelInputError, match="audio_embedding.*shape=\\(2,\\)"):
        encoder({keys.AUDIO_EMBEDDING: np.ones((2,), "float32")})
    with pytest.raises(ModelInputError, match="modality must be one of"):
        PrecomputedEmbeddingEncoder("midi", hidden_dim=HIDDEN)
