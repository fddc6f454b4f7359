"""EventTransformerEncoder: masking, pooling parity, vocabularies, saving, learning, errors."""

import keras
import numpy as np
import pytest

from chroma_keras.data import keys
from chroma_keras.errors import ModelInputError, PresetError
from chroma_keras.models.encoders.base import build_encoder
from chroma_keras.models.encoders.event_transformer_encoder import EventTransformerEncoder, masked_mean
from chroma_keras.preprocessing.midi_events import EventVocabulary

TINY = dict(hidden_dim=16, num_layers=1, num_heads=2, intermediate_dim=32, dropout=0.0)


def _n(x):
    return keras.ops.convert_to_numpy(x)


def test_masked_mean_matches_numpy():
    x = np.random.RandomState(0).randn(3, 5, 4).astype("float32")
    mask = np.array([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]], "float32")
    want = np.stack([x[0, :2].mean(0), x[1].mean(0), np.zeros(4)])
    np.testing.assert_allclose(_n(masked_mean(x, mask)), want, atol=1e-6)


def test_padding_does_not_change_real_outputs():
    keras.utils.set_random_seed(0)
    encoder = EventTransformerEncoder(vocab_size=50, max_sequence_length=16, **TINY)
    rng = np.random.RandomState(1)
    real = rng.randint(1, 50, (2, 8)).astype("int32")
    short = encoder({keys.MIDI_TOKENS: real, keys.MIDI_TOKEN_MASK: np.ones((2, 8), "float32")})
    junk = rng.randint(1, 50, (2, 8)).astype("int32")  # non-PAD ids under a zero mask
    long = encoder({keys.MIDI_TOKENS: np.concatenate([real, junk], 1),
                    keys.MIDI_TOKEN_MASK: np.concatenate([np.ones((2, 8)), np.zeros((2, 8))], 1).astype("float32")})
    np.testing.assert_allclose(_n(long["sequence"])[:, :8], _n(short["sequence"]), atol=1e-5)
    np.testing.assert_allclose(_n(long["embedding"]), _n(short["embedding"]), atol=1e-5)
    np.testing.assert_allclose(_n(long["embedding"]), _n(masked_mean(long["sequence"], long["sequence_mask"])), atol=1e-6)


def test_event_vocabulary_tokens_and_default_mask():
    vocab = EventVocabulary()
    notes = [(60, 0.0, 0.5, 100), (64, 0.25, 0.5, 90), (67, 0.5, 1.0, 80)]
    ids = np.zeros((1, 24), "int32")
    encoded = vocab.encode(notes)
    ids[0, : len(encoded)] = encoded
    keras.utils.set_random_seed(0)
    encoder = EventTransformerEncoder(vocab_size=vocab.vocab_size, max_sequence_length=24, **TINY)
    out = encoder({keys.MIDI_TOKENS: ids})  # no mask: PAD (0) is padding
    np.testing.assert_array_equal(_n(out["sequence_mask"])[0], (ids[0] != 0).astype("float32"))
    explicit = encoder({keys.MIDI_TOKENS: ids, keys.MIDI_TOKEN_MASK: (ids != 0).astype("float32")})
    np.testing.assert_allclose(_n(out["embedding"]), _n(explicit["embedding"]), atol=1e-6)


def test_compound_ids_sum_field_embeddings():
    keras.utils.set_random_seed(0)
    encoder = EventTransformerEncoder(vocab_size=[5, 7, 9], max_sequence_length=6, **TINY)
    ids = np.random.RandomState(2).randint(1, 5, (2, 6, 3)).astype("int32")
    out = encoder({keys.MIDI_TOKENS: ids})
    # Every field contributes: changing only the last field's ids changes the output.
    changed = ids.copy()
    changed[..., 2] = (changed[..., 2] + 3) % 9
    assert np.abs(_n(encoder({keys.MIDI_TOKENS: changed})["embedding"]) - _n(out["embedding"])).max() > 1e-4
    assert tuple(out["sequence"].shape) == (2, 6, 16)
    with pytest.raises(ModelInputError, match=r"\[batch, max_events, fields\]"):
        encoder({keys.MIDI_TOKENS: ids[..., 0]})


def _model(encoder, length):
    inputs = {keys.MIDI_TOKENS: keras.Input((length,), dtype="int32", name=keys.MIDI_TOKENS),
              keys.MIDI_TOKEN_MASK: keras.Input((length,), name=keys.MIDI_TOKEN_MASK)}
    out = encoder(inputs)
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(out["embedding"]))


def test_keras_round_trip(tmp_path):
    keras.utils.set_random_seed(0)
    model = _model(EventTransformerEncoder(vocab_size=30, max_sequence_length=10, name="events", **TINY), 10)
    batch = {keys.MIDI_TOKENS: np.random.RandomState(3).randint(1, 30, (2, 10)).astype("int32"),
             keys.MIDI_TOKEN_MASK: np.array([[1] * 10, [1] * 6 + [0] * 4], "float32")}
    model.save(tmp_path / "events.keras")
    loaded = keras.saving.load_model(tmp_path / "events.keras")
    np.testing.assert_allclose(_n(loaded(batch)), _n(model(batch)), atol=1e-6)
    assert loaded.get_layer("events").get_config() == model.get_layer("events").get_config()


def test_learns_which_token_family_dominates():
    # Label 1: tokens drawn from ids 1..9; label 0: ids 10..19. Chance = 0.5.
    keras.utils.set_random_seed(0)
    rng = np.random.RandomState(4)
    n, length = 64, 12
    labels = rng.randint(0, 2, n)
    ids = np.where(labels[:, None] == 1, rng.randint(1, 10, (n, length)), rng.randint(10, 20, (n, length))).astype("int32")
    mask = (np.arange(length)[None] < rng.randint(4, length + 1, (n, 1))).astype("float32")
    model = _model(EventTransformerEncoder(vocab_size=20, max_sequence_length=length, **TINY), length)
    model.compile(keras.optimizers.Adam(3e-3), "binary_crossentropy", metrics=["accuracy"])
    history = model.fit({keys.MIDI_TOKENS: ids * mask.astype("int32"), keys.MIDI_TOKEN_MASK: mask}, labels.astype("float32"),
                        batch_size=16, epochs=6, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0] / 3
    assert history.history["accuracy"][-1] >= 0.95


def test_built_from_preset_takes_vocab_from_tokenizer():
    config = {"model": {"midi_encoder": {"type": "event_transformer", "hidden_dim": 16, "vocab_size": None,
                                         "num_heads": 2, "num_layers": 1}},
              "preprocessing": {"midi": {"tokenization": "remi", "max_events": 64}}}
    encoder = build_encoder("midi", config)
    assert isinstance(encoder, EventTransformerEncoder)
    assert encoder.vocab_size == 444 and encoder.max_sequence_length == 64 and encoder.num_layers == 1
    config["preprocessing"]["midi"]["tokenization"] = "pianoroll"
    with pytest.raises(PresetError, match="model.midi_encoder.vocab_size"):
        build_encoder("midi", config)


def test_bad_inputs():
    encoder = EventTransformerEncoder(vocab_size=20, max_sequence_length=8, **TINY)
    with pytest.raises(ModelInputError, match=r"midi_tokens.*\[batch, max_events\]"):
        encoder({keys.PIANO_ROLL: np.zeros((1, 8, 8), "float32")})
    with pytest.raises(ModelInputError, match=r"'midi_tokens' must have shape \[batch, max_events\]"):
        encoder({keys.MIDI_TOKENS: np.zeros((1, 8, 2), "int32")})
    with pytest.raises(ModelInputError, match="midi_token_mask"):
        encoder({keys.MIDI_TOKENS: np.zeros((1, 8), "int32"), keys.MIDI_TOKEN_MASK: np.zeros((1, 8, 1), "float32")})
    with pytest.raises(ModelInputError, match="max_sequence_length=8"):
        encoder({keys.MIDI_TOKENS: np.zeros((1, 9), "int32")})
    with pytest.raises(ModelInputError, match="num_heads must divide"):
        EventTransformerEncoder(vocab_size=20, hidden_dim=10, num_heads=4)
