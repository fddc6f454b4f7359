"""LateFusion: NumPy parity, null replacement, modality dropout, serialization, convergence, bad inputs."""

import importlib.util
import pathlib

import keras
import numpy as np
import pytest

from chroma_keras.errors import ModelInputError
from chroma_keras.models.fusion import build_fusion
from chroma_keras.models.fusion.late_fusion import LateFusion

_spec = importlib.util.spec_from_file_location("fusion_fixtures", pathlib.Path(__file__).with_name("fusion_fixtures.py"))
ff = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ff)

ALL = ("text", "audio", "midi")
MASK = np.array([[1, 1, 1], [0, 1, 1], [1, 0, 0], [0, 0, 1], [0, 0, 0]], "float32")


def numpy_late_fusion(layer, encoded, mask):
    """The documented math of LateFusion, in NumPy, from the layer's weights."""
    null = ff.to_np(layer.null_and_dropout.null_embeddings)
    parts = []
    for i, m in enumerate(layer.modalities):
        kernel, bias = (ff.to_np(w) for w in layer.projections[m].weights)
        e = encoded[m]["embedding"] @ kernel + bias
        present = mask[:, ["text", "audio", "midi"].index(m)] > 0
        parts.append(np.where(present[:, None], e, null[i]))
    k1, b1 = (ff.to_np(w) for w in layer.hidden.weights)
    k2, b2 = (ff.to_np(w) for w in layer.output_projection.weights)
    return np.maximum(np.concatenate(parts, -1) @ k1 + b1, 0) @ k2 + b2


def test_matches_a_numpy_reference():
    rng = np.random.default_rng(0)
    encoded = ff.make_encoded(rng, 5)
    layer = LateFusion(ALL, hidden_dim=8, dropout=0.5, seed=0)
    got = ff.to_np(layer(encoded, MASK))
    np.testing.assert_allclose(got, numpy_late_fusion(layer, encoded, MASK), rtol=1e-5, atol=1e-5)


def test_a_subset_model_reads_its_columns_of_the_mask():
    rng = np.random.default_rng(1)
    encoded = ff.make_encoded(rng, 5, modalities=("audio", "midi"))
    layer = LateFusion(["audio", "midi"], hidden_dim=4, seed=0)
    np.testing.assert_allclose(
        ff.to_np(layer(encoded, MASK)), numpy_late_fusion(layer, encoded, MASK), rtol=1e-5, atol=1e-5
    )


def test_absent_modalities_do_not_change_the_output():
    rng = np.random.default_rng(2)
    encoded = ff.make_encoded(rng, 5)
    layer = LateFusion(ALL, hidden_dim=8, seed=0)
    expected = ff.to_np(layer(encoded, MASK))
    for column, modality in enumerate(ALL):
        absent_rows = np.flatnonzero(MASK[:, column] == 0)
        changed = ff.perturb_rows(encoded, modality, absent_rows, rng)
        np.testing.assert_allclose(ff.to_np(layer(changed, MASK)), expected, atol=1e-5)
    # Present modalities do matter.
    changed = ff.perturb_rows(encoded, "audio", [0], rng)
    assert np.abs(ff.to_np(layer(changed, MASK))[0] - expected[0]).max() > 1e-3


def test_modality_dropout_only_in_training_and_to_the_null_embedding():
    rng = np.random.default_rng(3)
    encoded = ff.make_encoded(rng, 64)
    mask = np.ones((64, 3), "float32")
    layer = LateFusion(ALL, hidden_dim=8, dropout=0.0, modality_dropout=0.5, exempt_modalities=["text"], seed=4)
    inference = ff.to_np(layer(encoded, mask))
    np.testing.assert_array_equal(ff.to_np(layer(encoded, mask)), inference)
    trained = ff.to_np(layer(encoded, mask, training=True))
    changed_rows = np.abs(trained - inference).max(axis=1) > 1e-5
    # Audio and MIDI drop independently at 0.5: about 3/4 of rows change.
    assert 0.5 < changed_rows.mean() < 0.95
    # Every training output is one of the four dropout patterns' inference outputs.
    patterns = [np.array([1, a, m], "float32") for a in (0, 1) for m in (0, 1)]
    candidates = np.stack([ff.to_np(layer(encoded, np.tile(p, (64, 1)))) for p in patterns])
    assert (np.abs(candidates - trained[None]).max(axis=2).min(axis=0) < 1e-5).all()


def test_build_fusion_builds_it_from_a_preset():
    layer = build_fusion({"model": {"fusion": {"strategy": "late", "dropout": 0.2}}}, ALL, hidden_dim=8)
    assert isinstance(layer, LateFusion) and layer.dropout == 0.2 and layer.hidden_dim == 8


def test_config_and_keras_round_trip(tmp_path):
    rng = np.random.default_rng(5)
    encoded = ff.make_encoded(rng, 5)
    layer = LateFusion(ALL, hidden_dim=8, modality_dropout=0.2, exempt_modalities=["midi"], seed=3, name="late")
    layer(encoded, MASK)
    ff.assert_config_and_keras_round_trip(LateFusion, layer, encoded, MASK, tmp_path)


def test_learns_a_target_of_two_modalities():
    keras.utils.set_random_seed(0)
    fusion = LateFusion(ALL, hidden_dim=8, dropout=0.0, modality_dropout=0.1, exempt_modalities=["audio"], seed=0)
    before, after = ff.convergence_losses(fusion)
    assert after < before / 5, (before, after)


def test_bad_inputs_raise_model_input_errors():
    rng = np.random.default_rng(6)
    encoded = ff.make_encoded(rng, 2)
    layer = LateFusion(ALL, hidden_dim=4)
    missing = {m: encoded[m] for m in ("text", "audio")}
    with pytest.raises(ModelInputError, match=r"encoded\['midi'\] is missing"):
        layer(missing, MASK[:2])
    with pytest.raises(ModelInputError, match=r"modality_mask must be float \[batch, 3\]"):
        layer(encoded, np.ones((2, 2), "float32"))
    flat = {m: dict(o) for m, o in encoded.items()}
    flat["audio"]["embedding"] = np.zeros((2, 3, 6), "float32")
    with pytest.raises(ModelInputError, match=r"encoded\['audio'\]\['embedding'\] must be float \[batch, dim\]"):
        layer(flat, MASK[:2])
    with pytest.raises(ModelInputError, match="in that order"):
        LateFusion(["midi", "text"], hidden_dim=4)
