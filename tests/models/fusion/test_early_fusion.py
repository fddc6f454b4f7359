"""EarlyFusion: the joint sequence against NumPy, masking/absence invariance, serialization, convergence."""

import importlib.util
import pathlib

import keras
import numpy as np
import pytest

from chroma_keras.errors import ModelInputError
from chroma_keras.models.fusion import build_fusion
from chroma_keras.models.fusion.early_fusion import EarlyFusion

_spec = importlib.util.spec_from_file_location("fusion_fixtures", pathlib.Path(__file__).with_name("fusion_fixtures.py"))
ff = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ff)

ALL = ("text", "audio", "midi")
MASK = np.array([[1, 1, 1], [0, 1, 1], [1, 0, 0], [0, 0, 1]], "float32")


def sine_positions(steps, width, max_wavelength=10000.0):
    """Transformer sinusoidal encoding (Vaswani et al. 2017), sine on even and cosine on odd channels."""
    angles = np.arange(steps)[:, None] * max_wavelength ** (-(2 * (np.arange(width) // 2)) / width)[None, :]
    return np.where(np.arange(width) % 2 == 0, np.sin(angles), np.cos(angles))


def numpy_joint_sequence(layer, encoded, mask):
    null = ff.to_np(layer.null_and_dropout.null_embeddings)
    types = ff.to_np(layer.type_embedding.embeddings)
    tokens, masks = [], []
    for i, m in enumerate(layer.modalities):
        kernel, bias = (ff.to_np(w) for w in layer.projections[m].weights)
        present = mask[:, ALL.index(m)] > 0
        summary = np.where(present[:, None], encoded[m]["embedding"] @ kernel + bias, null[i])
        steps = encoded[m]["sequence"] @ kernel + bias + sine_positions(encoded[m]["sequence"].shape[1], layer.width)
        tokens.append(np.concatenate([summary[:, None], steps], axis=1) + types[i])
        step_mask = encoded[m]["sequence_mask"] * present[:, None]
        masks.append(np.concatenate([np.ones((len(mask), 1)), step_mask], axis=1))
    return np.concatenate(tokens, axis=1), np.concatenate(masks, axis=1)


def with_padding(encoded, modality, rows, padded_steps, rng):
    """Marks the last ``padded_steps`` steps of ``rows`` as padding and fills them with junk."""
    out = {m: {k: v.copy() for k, v in o.items()} for m, o in encoded.items()}
    for r in rows:
        out[modality]["sequence_mask"][r, -padded_steps:] = 0
        out[modality]["sequence"][r, -padded_steps:] = 50 * rng.normal(size=out[modality]["sequence"][r, -padded_steps:].shape)
    return out


def test_joint_sequence_matches_a_numpy_reference():
    rng = np.random.default_rng(0)
    encoded = with_padding(ff.make_encoded(rng, 4), "audio", [0, 1], 2, rng)
    layer = EarlyFusion(ALL, hidden_dim=6, width=8, num_heads=2, seed=0)
    layer(encoded, MASK)
    tokens, mask = (ff.to_np(t) for t in layer.joint_sequence(encoded, MASK))
    ref_tokens, ref_mask = numpy_joint_sequence(layer, encoded, MASK)
    assert tokens.shape == (4, sum(1 + s for s in ff.STEPS.values()), 8)
    np.testing.assert_allclose(tokens, ref_tokens, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(mask, ref_mask)


def test_absent_modalities_do_not_change_the_output():
    rng = np.random.default_rng(1)
    encoded = ff.make_encoded(rng, 4)
    layer = EarlyFusion(ALL, hidden_dim=8, num_heads=2, seed=0)
    expected = ff.to_np(layer(encoded, MASK))
    for column, modality in enumerate(ALL):
        changed = ff.perturb_rows(encoded, modality, np.flatnonzero(MASK[:, column] == 0), rng)
        np.testing.assert_allclose(ff.to_np(layer(changed, MASK)), expected, atol=1e-4)
    changed = ff.perturb_rows(encoded, "midi", [3], rng, keys=("sequence",))
    assert np.abs(ff.to_np(layer(changed, MASK))[3] - expected[3]).max() > 1e-3


def test_padded_steps_do_not_change_the_output():
    rng = np.random.default_rng(2)
    encoded = ff.make_encoded(rng, 4)
    for out in encoded.values():
        out["sequence_mask"][:, -1] = 0  # the reference has one padded step per modality
    layer = EarlyFusion(ALL, hidden_dim=8, num_heads=2, seed=0)
    expected = ff.to_np(layer(encoded, MASK))
    junk = with_padding(encoded, "text", range(4), 1, rng)
    junk = with_padding(junk, "audio", range(4), 1, rng)
    np.testing.assert_allclose(ff.to_np(layer(junk, MASK)), expected, atol=1e-4)
    # More trailing padding (a longer batch) gives the same output too.
    longer = {m: {k: v.copy() for k, v in o.items()} for m, o in encoded.items()}
    longer["midi"]["sequence"] = np.concatenate([longer["midi"]["sequence"], rng.normal(size=(4, 3, 7))], 1).astype("float32")
    longer["midi"]["sequence_mask"] = np.concatenate([longer["midi"]["sequence_mask"], np.zeros((4, 3))], 1).astype("float32")
    np.testing.assert_allclose(ff.to_np(layer(longer, MASK)), expected, atol=1e-4)


def test_build_fusion_builds_it_from_a_preset():
    layer = build_fusion({"model": {"fusion": {"strategy": "early"}}}, ALL, hidden_dim=8, num_heads=2)
    assert isinstance(layer, EarlyFusion) and layer.width == 8 and layer.intermediate_dim == 16


def test_config_and_keras_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    encoded = ff.make_encoded(rng, 4)
    layer = EarlyFusion(
        ALL, hidden_dim=6, width=8, num_layers=2, num_heads=2, intermediate_dim=12, modality_dropout=0.2, seed=1
    )
    layer(encoded, MASK)
    ff.assert_config_and_keras_round_trip(EarlyFusion, layer, encoded, MASK, tmp_path, atol=1e-5)


def test_learns_a_target_of_two_modalities():
    keras.utils.set_random_seed(0)
    # Two modalities keep the compiled train step small (compile time dominates under JAX/TF).
    before, after = ff.convergence_losses(EarlyFusion(["audio", "midi"], hidden_dim=8, dropout=0.0, num_heads=2))
    assert after < before / 5, (before, after)


def test_bad_inputs_raise_model_input_errors():
    rng = np.random.default_rng(4)
    encoded = ff.make_encoded(rng, 2)
    layer = EarlyFusion(ALL, hidden_dim=4, num_heads=2)
    no_sequence = {m: dict(o) for m, o in encoded.items()}
    del no_sequence["audio"]["sequence"]
    with pytest.raises(ModelInputError, match=r"encoded\['audio'\]\['sequence'\] is missing"):
        layer(no_sequence, MASK[:2])
    bad_mask = {m: dict(o) for m, o in encoded.items()}
    bad_mask["text"]["sequence_mask"] = np.ones((2, 9), "float32")
    with pytest.raises(ModelInputError, match=r"encoded\['text'\]\['sequence_mask'\] must be \[batch, 4\]"):
        layer(bad_mask, MASK[:2])
    with pytest.raises(ModelInputError, match=r"modality_mask must be float \[batch, 3\]"):
        layer(encoded, np.ones((2, 4), "float32"))
    with pytest.raises(ModelInputError, match="width divisible by num_heads"):
        EarlyFusion(ALL, hidden_dim=6, num_heads=4)
