"""CrossAttentionFusion: NumPy parity, attention masking, absent text, learned query, serialization, convergence."""

import importlib.util
import pathlib

import keras
import numpy as np
import pytest

from chroma_keras.errors import ModelInputError
from chroma_keras.models.fusion import build_fusion
from chroma_keras.models.fusion.cross_attention_fusion import CrossAttentionFusion

_spec = importlib.util.spec_from_file_location("fusion_fixtures", pathlib.Path(__file__).with_name("fusion_fixtures.py"))
ff = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ff)

ALL = ("text", "audio", "midi")
MASK = np.array([[1, 1, 1], [0, 1, 1], [1, 0, 0], [0, 0, 1], [0, 0, 0]], "float32")


def weights_of(layer):
    return [ff.to_np(w) for w in layer.weights]


def numpy_cross_attention_fusion(layer, encoded, mask):
    """The documented math of CrossAttentionFusion (inference) in NumPy."""
    null = ff.to_np(layer.null_and_dropout.null_embeddings)
    types = ff.to_np(layer.type_embedding.embeddings)
    segments, summaries = {}, {}
    for i, m in enumerate(layer.modalities):
        kernel, bias = weights_of(layer.projections[m])
        present = mask[:, ALL.index(m)] > 0
        summaries[m] = np.where(present[:, None], encoded[m]["embedding"] @ kernel + bias, null[i])
        steps = encoded[m]["sequence"] @ kernel + bias
        tokens = np.concatenate([summaries[m][:, None], steps], axis=1) + types[i]
        step_mask = encoded[m]["sequence_mask"] * present[:, None]
        segments[m] = (tokens, np.concatenate([np.ones((len(mask), 1)), step_mask], axis=1))
    context = layer.context_modalities
    kv = np.concatenate([segments[m][0] for m in context], axis=1)
    kv_mask = np.concatenate([segments[m][1] for m in context], axis=1)
    if layer.has_text:
        q, q_mask = segments["text"]
    else:
        q = np.broadcast_to(ff.to_np(layer.learned_query), (len(mask), 1, layer.hidden_dim))
        q_mask = np.ones((len(mask), 1))
    mha = layer.attention
    wq, bq = weights_of(mha.query_dense)
    wk, bk = weights_of(mha.key_dense)
    wv, bv = weights_of(mha.value_dense)
    wo, bo = weights_of(mha.output_dense)
    query = np.einsum("btd,dnh->btnh", q, wq) + bq
    key = np.einsum("bsd,dnh->bsnh", kv, wk) + bk
    value = np.einsum("bsd,dnh->bsnh", kv, wv) + bv
    scores = np.einsum("btnh,bsnh->bnts", query, key) / np.sqrt(query.shape[-1])
    scores = np.where(kv_mask[:, None, None, :] > 0, scores, -np.inf)
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    attended = np.einsum("bnth,nhk->btk", np.einsum("bnts,bsnh->bnth", probs, value), wo) + bo
    x = q + attended
    gamma, beta = weights_of(layer.attention_norm)
    x = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5) * gamma + beta
    pooled = (x * q_mask[:, :, None]).sum(1) / np.maximum(q_mask.sum(1, keepdims=True), 1)
    k1, b1 = weights_of(layer.hidden)
    k2, b2 = weights_of(layer.output_projection)
    hidden = np.maximum(np.concatenate([pooled] + [summaries[m] for m in context], -1) @ k1 + b1, 0)
    return hidden @ k2 + b2


def padded(encoded, modality, rows, steps, rng):
    out = {m: {k: v.copy() for k, v in o.items()} for m, o in encoded.items()}
    for r in rows:
        out[modality]["sequence_mask"][r, -steps:] = 0
        out[modality]["sequence"][r, -steps:] = 50 * rng.normal(size=out[modality]["sequence"][r, -steps:].shape)
    return out


def test_matches_a_numpy_reference():
    rng = np.random.default_rng(0)
    encoded = padded(ff.make_encoded(rng, len(MASK), scale=0.5), "audio", [0, 1], 2, np.random.default_rng(9))
    layer = CrossAttentionFusion(ALL, hidden_dim=8, num_heads=2, dropout=0.3, seed=0)
    got = ff.to_np(layer(encoded, MASK))
    np.testing.assert_allclose(got, numpy_cross_attention_fusion(layer, encoded, MASK), rtol=1e-4, atol=1e-4)


def test_without_text_a_learned_query_attends():
    rng = np.random.default_rng(1)
    encoded = ff.make_encoded(rng, len(MASK), modalities=("audio", "midi"))
    layer = CrossAttentionFusion(["audio", "midi"], hidden_dim=8, num_heads=2, seed=0)
    got = ff.to_np(layer(encoded, MASK))
    assert "learned_query" in [w.name for w in layer.weights]
    np.testing.assert_allclose(got, numpy_cross_attention_fusion(layer, encoded, MASK), rtol=1e-4, atol=1e-4)


def test_padded_steps_do_not_change_the_output():
    rng = np.random.default_rng(2)
    encoded = ff.make_encoded(rng, len(MASK))
    for out in encoded.values():
        out["sequence_mask"][:, -1] = 0
    layer = CrossAttentionFusion(ALL, hidden_dim=8, num_heads=2, seed=0)
    expected = ff.to_np(layer(encoded, MASK))
    for modality in ALL:  # text padding is query padding; audio/MIDI padding is key padding
        junk = padded(encoded, modality, range(len(MASK)), 1, rng)
        np.testing.assert_allclose(ff.to_np(layer(junk, MASK)), expected, atol=1e-4)
    unpadded = {m: {k: v.copy() for k, v in o.items()} for m, o in encoded.items()}
    unpadded["audio"]["sequence_mask"][:] = 1
    assert np.abs(ff.to_np(layer(unpadded, MASK))[[0, 1]] - expected[[0, 1]]).max() > 1e-4


def test_absent_modalities_do_not_change_the_output_and_absent_text_uses_its_null_query():
    rng = np.random.default_rng(3)
    encoded = ff.make_encoded(rng, len(MASK))
    layer = CrossAttentionFusion(ALL, hidden_dim=8, num_heads=2, seed=0)
    expected = ff.to_np(layer(encoded, MASK))
    for column, modality in enumerate(ALL):
        changed = ff.perturb_rows(encoded, modality, np.flatnonzero(MASK[:, column] == 0), rng)
        np.testing.assert_allclose(ff.to_np(layer(changed, MASK)), expected, atol=1e-4)
    # Rows 1 and 3 have no text: they equal a model whose text sequence is empty but for the null token.
    one_step = {m: dict(o) for m, o in encoded.items()}
    one_step["text"] = {k: v[:, :1] if k != "embedding" else v for k, v in encoded["text"].items()}
    np.testing.assert_allclose(ff.to_np(layer(one_step, MASK))[[1, 3]], expected[[1, 3]], atol=1e-4)


def test_build_fusion_reads_attention_heads():
    preset = {"model": {"fusion": {"strategy": "cross_attention", "attention_heads": 2, "dropout": 0.0}}}
    layer = build_fusion(preset, ALL, hidden_dim=8)
    assert isinstance(layer, CrossAttentionFusion) and layer.num_heads == 2 and layer.dropout == 0.0


def test_config_and_keras_round_trip(tmp_path):
    rng = np.random.default_rng(4)
    encoded = ff.make_encoded(rng, len(MASK), modalities=("audio", "midi"))
    layer = CrossAttentionFusion(["audio", "midi"], hidden_dim=8, num_heads=4, modality_dropout=0.1, seed=2)
    layer(encoded, MASK)
    ff.assert_config_and_keras_round_trip(CrossAttentionFusion, layer, encoded, MASK, tmp_path, atol=1e-5)


def test_learns_a_target_of_two_modalities():
    keras.utils.set_random_seed(0)
    # Text queries attend to MIDI; the target depends on both (two modalities keep the train step small).
    fusion = CrossAttentionFusion(["text", "midi"], hidden_dim=8, dropout=0.0, num_heads=2)
    before, after = ff.convergence_losses(fusion, target_modalities=("text", "midi"))
    assert after < before / 5, (before, after)


def test_bad_inputs_raise_model_input_errors():
    rng = np.random.default_rng(5)
    encoded = ff.make_encoded(rng, 2)
    layer = CrossAttentionFusion(ALL, hidden_dim=4, num_heads=2)
    with pytest.raises(ModelInputError, match=r"encoded\['midi'\] is missing"):
        layer({m: encoded[m] for m in ("text", "audio")}, MASK[:2])
    bad = {m: dict(o) for m, o in encoded.items()}
    bad["midi"]["sequence_mask"] = np.ones((2,), "float32")
    with pytest.raises(ModelInputError, match=r"encoded\['midi'\]\['sequence_mask'\] must be float \[batch, steps\]"):
        layer(bad, MASK[:2])
    with pytest.raises(ModelInputError, match=r"modality_mask must be float \[batch, 3\]"):
        layer(encoded, np.ones((3,), "float32"))
    with pytest.raises(ModelInputError, match="needs audio or MIDI"):
        CrossAttentionFusion(["text"], hidden_dim=4)
    with pytest.raises(ModelInputError, match="divisible by num_heads"):
        CrossAttentionFusion(ALL, hidden_dim=6, num_heads=4)
