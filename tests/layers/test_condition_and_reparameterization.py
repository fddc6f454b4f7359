"""ChromaticConditionEmbedding and Reparameterization: semantics, seeding and serialization."""

import keras
import numpy as np
import pytest

from chroma_keras import modes, rebracketing
from chroma_keras.layers import ChromaticConditionEmbedding, Reparameterization


def to_np(x):
    return keras.ops.convert_to_numpy(x)


def mode_rows(*conditions):
    return np.stack([modes.resolve_condition(c).multi_hot() for c in conditions])


def no_rebracketing(n):
    return np.zeros((n, rebracketing.FEATURE_SIZE), np.float32)


def axis_embeddings(layer, mode_vector):
    """The per-axis embeddings the layer mixes before its output projection (NumPy)."""
    w = mode_vector.reshape(-1, 3, 3)
    presence = np.minimum(w.sum(-1), 1)
    table, none = to_np(layer.mode_embeddings), to_np(layer.none_embeddings)
    return np.einsum("bam,amd->bad", w, table) + (1 - presence)[..., None] * none[None]


def test_condition_embedding_matches_a_numpy_reference():
    layer = ChromaticConditionEmbedding(output_dim=5, axis_dim=4, seed=0)
    cond = mode_rows("Red", "Indigo", None, "future,thing,known")
    reb = np.stack([rebracketing.features_from_kwargs(rebracketing_intensity=i, rebracketing_type="causal") for i in range(4)])
    got = to_np(layer(cond, reb))
    kernel_r, bias_r = (to_np(w) for w in layer.rebracketing_projection.weights)
    kernel_o, bias_o = (to_np(w) for w in layer.output_projection.weights)
    silu = lambda x: x / (1 + np.exp(-x))  # noqa: E731
    flat = axis_embeddings(layer, cond).reshape(4, -1)
    expected = silu(np.concatenate([flat, silu(reb @ kernel_r + bias_r)], -1) @ kernel_o + bias_o)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_indigo_mixes_known_and_forgotten_and_missing_axes_use_none():
    layer = ChromaticConditionEmbedding(output_dim=4, seed=0)
    layer(mode_rows("Red"), no_rebracketing(1))
    indigo = axis_embeddings(layer, mode_rows("Indigo"))[0]
    table, none = to_np(layer.mode_embeddings), to_np(layer.none_embeddings)
    np.testing.assert_allclose(indigo[2], 0.5 * (table[2, 1] + table[2, 2]), atol=1e-6)
    np.testing.assert_allclose(indigo[0], none[0], atol=1e-6)
    np.testing.assert_allclose(indigo[1], none[1], atol=1e-6)


def test_condition_dropout_replaces_axes_with_none_only_in_training():
    layer = ChromaticConditionEmbedding(output_dim=6, condition_dropout=0.999, seed=1)
    red = mode_rows(*["Red"] * 8)
    reb = np.tile(rebracketing.features_from_kwargs(rebracketing_intensity=4.0), (8, 1))
    unconditional = to_np(layer(mode_rows(*[None] * 8), no_rebracketing(8)))
    dropped = to_np(layer(red, reb, training=True))
    np.testing.assert_allclose(dropped, unconditional, atol=1e-6)
    kept = to_np(layer(red, reb, training=False))
    assert np.abs(kept - unconditional).max() > 1e-4


def test_condition_embedding_serializes():
    layer = ChromaticConditionEmbedding(output_dim=6, axis_dim=3, condition_dropout=0.2, seed=4, name="cond")
    layer(mode_rows("Blue"), no_rebracketing(1))
    clone = ChromaticConditionEmbedding.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    clone(mode_rows("Blue"), no_rebracketing(1))
    clone.set_weights(layer.get_weights())
    cond = mode_rows("Blue", "Yellow")
    np.testing.assert_allclose(to_np(clone(cond, no_rebracketing(2))), to_np(layer(cond, no_rebracketing(2))), atol=1e-6)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(restored, ChromaticConditionEmbedding) and restored.get_config() == layer.get_config()


def test_condition_embedding_keras_file_round_trip(tmp_path):
    modes_in = keras.Input((modes.MODE_VECTOR_SIZE,))
    reb_in = keras.Input((rebracketing.FEATURE_SIZE,))
    out = ChromaticConditionEmbedding(output_dim=5, seed=0)(modes_in, reb_in)
    model = keras.Model([modes_in, reb_in], out)
    model.save(tmp_path / "cond.keras")
    restored = keras.models.load_model(tmp_path / "cond.keras")
    x = [mode_rows("Green", "Violet"), no_rebracketing(2)]
    np.testing.assert_allclose(to_np(restored(x)), to_np(model(x)), atol=1e-6)


def test_condition_dropout_out_of_range_is_rejected():
    with pytest.raises(ValueError, match="condition_dropout must be in"):
        ChromaticConditionEmbedding(output_dim=4, condition_dropout=1.0)


def test_reparameterization_statistics_and_inference_mean():
    layer = Reparameterization(seed=0)
    mean = np.full((4000, 3), [0.0, 2.0, -1.0], np.float32)
    log_var = np.log(np.full((4000, 3), [1.0, 0.25, 4.0], np.float32))
    z = to_np(layer(mean, log_var, training=True))
    np.testing.assert_allclose(z.mean(0), [0.0, 2.0, -1.0], atol=0.1)
    np.testing.assert_allclose(z.std(0), [1.0, 0.5, 2.0], rtol=0.06)
    np.testing.assert_array_equal(to_np(layer(mean, log_var, training=False)), mean)
    sampler = Reparameterization(seed=0, sample_at_inference=True)
    assert np.abs(to_np(sampler(mean, log_var)) - mean).max() > 0.1


def test_reparameterization_is_seeded():
    mean, log_var = np.zeros((2, 4), np.float32), np.zeros((2, 4), np.float32)
    a = to_np(Reparameterization(seed=5)(mean, log_var, training=True))
    b = to_np(Reparameterization(seed=5)(mean, log_var, training=True))
    c = to_np(Reparameterization(seed=6)(mean, log_var, training=True))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    config = Reparameterization(seed=5, sample_at_inference=True).get_config()
    assert Reparameterization.from_config(config).get_config() == config
