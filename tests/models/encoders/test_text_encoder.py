"""BertTextEncoder: pooling parity, padding invariance, round trip, registry, convergence, bad inputs."""

import keras
import numpy as np
import pytest

from chroma_keras.data import keys
from chroma_keras.data.multimodal_dataset import text_to_ids
from chroma_keras.errors import ModelInputError, PresetError
from chroma_keras.models.encoders.base import build_encoder
from chroma_keras.models.encoders.bert_text_encoder import BYTE_VOCABULARY_SIZE, BertTextEncoder

TINY = dict(hidden_dim=8, num_layers=1, num_heads=2, transformer_dim=16, intermediate_dim=32, max_sequence_length=64)
LENGTH = 24
TEXTS = ("Past / Thing / Known", "ça va — été", "x")  # multi-byte UTF-8 included


def to_np(x):
    return keras.ops.convert_to_numpy(x)


def make_batch(texts=TEXTS, length=LENGTH):
    ids, mask = zip(*(text_to_ids(t, length) for t in texts))
    return {keys.TEXT_IDS: np.stack(ids), keys.TEXT_MASK: np.stack(mask)}


def compiled(encoder, batch):
    """``encoder(batch)`` through a compiled predict step (one compile on JAX instead of one per eager op)."""
    inputs = {k: keras.Input((None,), name=k, dtype="int32" if k == keys.TEXT_IDS else "float32") for k in batch}
    return keras.Model(inputs, encoder(inputs)).predict_on_batch(batch)


def test_pooling_and_projection_match_numpy_reference():
    keras.utils.set_random_seed(0)
    encoder = BertTextEncoder(dropout=0.0, **TINY)
    batch = make_batch()
    out = compiled(encoder, batch)
    ids, mask = batch[keys.TEXT_IDS], batch[keys.TEXT_MASK]
    backbone_inputs = {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": (mask > 0).astype("int32")}
    hidden = np.asarray(encoder.backbone.predict_on_batch(backbone_inputs)["sequence_output"], np.float64)
    kernel, bias = (to_np(w).astype(np.float64) for w in encoder.projection.weights)
    pooled = (hidden * mask[:, :, None]).sum(1) / mask.sum(1, keepdims=True)  # masked mean over real bytes
    np.testing.assert_allclose(out["embedding"], pooled @ kernel + bias, atol=1e-5)
    np.testing.assert_allclose(out["sequence"], (hidden @ kernel + bias) * mask[:, :, None], atol=1e-5)
    np.testing.assert_array_equal(out["sequence_mask"], mask)
    assert encoder.backbone.vocabulary_size == BYTE_VOCABULARY_SIZE


def test_padding_and_garbage_beyond_the_mask_do_not_change_the_output():
    keras.utils.set_random_seed(1)
    encoder = BertTextEncoder(dropout=0.0, **TINY)
    batch = make_batch()
    reference = compiled(encoder, batch)
    longer = make_batch(length=LENGTH + 16)
    longer[keys.TEXT_IDS][:, LENGTH:] = 77  # ids beyond the mask must be ignored
    padded = compiled(encoder, longer)
    np.testing.assert_allclose(padded["embedding"], reference["embedding"], atol=1e-5)
    np.testing.assert_allclose(padded["sequence"][:, :LENGTH], reference["sequence"], atol=1e-5)
    # Without a mask, ids > 0 are the real tokens.
    no_mask = compiled(encoder, {keys.TEXT_IDS: batch[keys.TEXT_IDS]})
    np.testing.assert_allclose(no_mask["embedding"], reference["embedding"], atol=1e-6)
    # An absent row (all padding) stays finite.
    empty = compiled(encoder, {keys.TEXT_IDS: np.zeros((3, LENGTH), "int32"), keys.TEXT_MASK: np.zeros((3, LENGTH), "float32")})
    assert np.isfinite(empty["embedding"]).all()


def test_pooling_is_the_same_in_training_and_inference():
    # With dropout 0 the only possible train/inference difference is the pooling: there is none.
    keras.utils.set_random_seed(2)
    encoder = BertTextEncoder(dropout=0.0, **TINY)
    batch = make_batch()
    inference = encoder(batch, training=False)
    training = encoder(batch, training=True)
    np.testing.assert_allclose(to_np(training["embedding"]), to_np(inference["embedding"]), atol=1e-6)


def test_keras_file_round_trip_and_config(tmp_path):
    keras.utils.set_random_seed(3)
    encoder = BertTextEncoder(**TINY)
    inputs = {
        keys.TEXT_IDS: keras.Input((None,), dtype="int32", name=keys.TEXT_IDS),
        keys.TEXT_MASK: keras.Input((None,), name=keys.TEXT_MASK),
    }
    model = keras.Model(inputs, encoder(inputs)["embedding"])
    batch = make_batch()
    path = tmp_path / "bert_text.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(to_np(restored.predict_on_batch(batch)), to_np(model.predict_on_batch(batch)), atol=1e-5)
    clone = BertTextEncoder.from_config(encoder.get_config())
    config = clone.get_config()
    assert {k: config[k] for k in TINY} == TINY
    assert not clone.backbone.get_layer("pooled_dense").trainable  # the unused [CLS] head stays frozen


def test_build_encoder_reads_the_preset_section():
    section = {"type": "bert", "hidden_dim": 12, "num_layers": 1, "num_heads": 2, "transformer_dim": 8,
               "intermediate_dim": 16, "max_sequence_length": 32, "pretrained_model": None}
    encoder = build_encoder("text", {"model": {"text_encoder": section}})
    assert isinstance(encoder, BertTextEncoder)
    assert (encoder.hidden_dim, encoder.transformer_dim, encoder.max_sequence_length) == (12, 8, 32)
    section["pretrained_model"] = "all-minilm-l6-v2"
    with pytest.raises(PresetError, match="model.text_encoder.pretrained_model"):
        build_encoder("text", {"model": {"text_encoder": section}})


def test_learns_which_word_a_text_starts_with():
    # Label 1 when the text starts with "future", 0 with "past"; the rest is random letters.
    keras.utils.set_random_seed(4)
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 2, 128)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz "))
    texts = [("future " if y else "past ") + "".join(rng.choice(letters, rng.integers(3, 9))) for y in labels]
    x = make_batch(texts, length=16)
    inputs = {
        keys.TEXT_IDS: keras.Input((16,), dtype="int32", name=keys.TEXT_IDS),
        keys.TEXT_MASK: keras.Input((16,), name=keys.TEXT_MASK),
    }
    embedding = BertTextEncoder(dropout=0.0, **TINY)(inputs)["embedding"]
    model = keras.Model(inputs, keras.layers.Dense(1)(keras.ops.relu(embedding)))
    model.compile(keras.optimizers.Adam(3e-3), keras.losses.BinaryCrossentropy(from_logits=True), metrics=[keras.metrics.BinaryAccuracy(threshold=0.0)])
    y = labels.astype("float32")
    loss_before, _ = model.evaluate(x, y, batch_size=128, verbose=0)
    model.fit(x, y, batch_size=32, epochs=8, verbose=0)
    loss_after, accuracy = model.evaluate(x, y, batch_size=128, verbose=0)
    print(f"loss {loss_before:.3f} -> {loss_after:.3f}, accuracy {accuracy:.3f}")
    # Chance is 0.5; we measure 1.0 on every backend.
    assert accuracy >= 0.9
    assert loss_after < 0.5 * loss_before


def test_bad_inputs_raise_model_input_error():
    encoder = BertTextEncoder(**TINY)
    batch = make_batch()
    with pytest.raises(ModelInputError, match="no 'text_ids'.*int \\[batch, length\\]"):
        encoder({keys.TEXT_MASK: batch[keys.TEXT_MASK]})
    with pytest.raises(ModelInputError, match="'text_ids' must be int \\[batch, length\\].*shape=\\(3, 24, 2\\)"):
        encoder({keys.TEXT_IDS: np.zeros((3, LENGTH, 2), "int32")})
    encoder(batch)
    with pytest.raises(ModelInputError, match="'text_ids' is 65 ids long.*max_sequence_length is 64"):
        encoder({keys.TEXT_IDS: np.ones((1, 65), "int32")})
    with pytest.raises(ModelInputError, match="'text_mask' must have the shape of 'text_ids'"):
        encoder({keys.TEXT_IDS: batch[keys.TEXT_IDS], keys.TEXT_MASK: batch[keys.TEXT_MASK][:, :5]})
    with pytest.raises(ModelInputError, match="transformer_dim must be divisible by num_heads"):
        BertTextEncoder(hidden_dim=8, num_heads=3, transformer_dim=16)
    with pytest.raises(ModelInputError, match="backbone must be a keras_hub BertBackbone"):
        BertTextEncoder(hidden_dim=8, backbone=keras.layers.Dense(3))
