"""GatedFusion: NumPy parity of outputs and weights, weight masking, invariance, serialization, convergence."""

import importlib.util
import pathlib

import keras
import numpy as np
import pytest

from chroma_keras.errors import ModelInputError
from chroma_keras.models.fusion import build_fusion
from chroma_keras.models.fusion.gated_fusion import GatedFusion

_spec = importlib.util.spec_from_file_location("fusion_fixtures", pathlib.Path(__file__).with_name("fusion_fixtures.py"))
ff = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ff)

ALL = ("text", "audio", "midi")
MASK = np.array([[1, 1, 1], [0, 1, 1], [1, 0, 0], [0, 0, 1], [0, 0, 0], [1, 0, 1]], "float32")


def numpy_gated_fusion(layer, encoded, mask):
    """The documented math of GatedFusion in NumPy: ``(fused, weights)``."""
    null = ff.to_np(layer.null_and_dropout.null_embeddings)
    present = mask[:, [ALL.index(m) for m in layer.modalities]] > 0
    e = []
    for i, m in enumerate(layer.modalities):
        kernel, bias = (ff.to_np(w) for w in layer.projections[m].weights)
        e.append(np.where(present[:, i : i + 1], encoded[m]["embedding"] @ kernel + bias, null[i]))
    e = np.stack(e, axis=1)
    kernel, bias = (ff.to_np(w) for w in layer.gate.weights)
    logits = e.reshape(len(e), -1) @ kernel + bias
    allowed = present | ~present.any(axis=1, keepdims=True)
    logits = np.where(allowed, logits, -np.inf)
    weights = np.exp(logits - logits.max(axis=1, keepdims=True))
    weights /= weights.sum(axis=1, keepdims=True)
    return (weights[:, :, None] * e).sum(axis=1), weights


def test_outputs_and_weights_match_a_numpy_reference():
    rng = np.random.default_rng(0)
    encoded = ff.make_encoded(rng, len(MASK))
    layer = GatedFusion(ALL, hidden_dim=8, dropout=0.5, seed=0)
    fused, weights = layer(encoded, MASK, return_weights=True)
    ref_fused, ref_weights = numpy_gated_fusion(layer, encoded, MASK)
    np.testing.assert_allclose(ff.to_np(weights), ref_weights, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ff.to_np(fused), ref_fused, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ff.to_np(layer(encoded, MASK)), ref_fused, rtol=1e-5, atol=1e-5)


def test_weights_sum_to_one_over_present_modalities_and_are_zero_elsewhere():
    rng = np.random.default_rng(1)
    encoded = ff.make_encoded(rng, len(MASK), scale=10.0)
    layer = GatedFusion(ALL, hidden_dim=8, seed=0)
    weights = ff.to_np(layer.modality_weights(encoded, MASK))
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-6)
    has_any = MASK.sum(axis=1) > 0
    np.testing.assert_array_equal(weights[has_any][MASK[has_any] == 0], 0.0)
    assert (weights[MASK > 0] > 0).all()
    np.testing.assert_array_equal(weights[3], [0, 0, 1])  # MIDI alone gets all the weight
    # A row with nothing present weights the null embeddings, which are row-independent.
    assert (weights[4] > 0).all()


def test_dropped_modalities_get_zero_weight_in_training():
    rng = np.random.default_rng(2)
    encoded = ff.make_encoded(rng, 256)
    layer = GatedFusion(ALL, hidden_dim=4, modality_dropout=0.5, seed=1)
    weights = ff.to_np(layer.modality_weights(encoded, np.ones((256, 3), "float32"), training=True))
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-6)
    zero = weights == 0
    # Each modality is dropped with p = 0.5 - 0.5**3 / 3 ≈ 0.458; a row keeps at least one.
    assert 0.38 < zero.mean() < 0.54 and zero.sum(axis=1).max() == 2


def test_absent_modalities_do_not_change_output_or_weights():
    rng = np.random.default_rng(3)
    encoded = ff.make_encoded(rng, len(MASK))
    layer = GatedFusion(ALL, hidden_dim=8, seed=0)
    fused, weights = (ff.to_np(t) for t in layer(encoded, MASK, return_weights=True))
    for column, modality in enumerate(ALL):
        changed = ff.perturb_rows(encoded, modality, np.flatnonzero(MASK[:, column] == 0), rng)
        got_fused, got_weights = (ff.to_np(t) for t in layer(changed, MASK, return_weights=True))
        np.testing.assert_allclose(got_fused, fused, atol=1e-5)
        np.testing.assert_allclose(got_weights, weights, atol=1e-6)


def test_build_fusion_builds_it_from_a_preset():
    layer = build_fusion({"model": {"fusion": {"strategy": "gated"}}}, ["audio", "midi"], hidden_dim=8)
    assert isinstance(layer, GatedFusion) and layer.modalities == ("audio", "midi")


def test_config_and_keras_round_trip(tmp_path):
    rng = np.random.default_rng(4)
    encoded = ff.make_encoded(rng, len(MASK))
    layer = GatedFusion(ALL, hidden_dim=8, modality_dropout=0.3, exempt_modalities=["text"], seed=2, name="gated")
    layer(encoded, MASK)
    ff.assert_config_and_keras_round_trip(GatedFusion, layer, encoded, MASK, tmp_path)


def test_learns_a_target_of_two_modalities():
    keras.utils.set_random_seed(0)
    # The gate mixes convexly, so it needs more steps than late fusion to fit a sum of two modalities.
    before, after = ff.convergence_losses(GatedFusion(ALL, hidden_dim=8, dropout=0.0), epochs=20)
    assert after < before / 5, (before, after)


def test_bad_inputs_raise_model_input_errors():
    rng = np.random.default_rng(5)
    encoded = ff.make_encoded(rng, 2, modalities=("audio", "midi"))
    layer = GatedFusion(ALL, hidden_dim=4)
    with pytest.raises(ModelInputError, match=r"encoded\['text'\] is missing"):
        layer(encoded, MASK[:2])
    layer = GatedFusion(["audio", "midi"], hidden_dim=4)
    with pytest.raises(ModelInputError, match=r"modality_mask must be float \[batch, 3\]"):
        layer(encoded, np.ones((2, 3, 1), "float32"))
    with pytest.raises(ModelInputError, match=r"encoded\['audio'\]\['embedding'\] is missing"):
        layer({"audio": {"sequence": encoded["audio"]["sequence"]}, "midi": encoded["midi"]}, MASK[:2])
