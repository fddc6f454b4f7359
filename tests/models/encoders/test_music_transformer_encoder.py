"""MusicTransformerEncoder: masking, order awareness, bar positions from presets, saving, learning, errors."""

import keras
import numpy as np
import pytest

from chroma_keras.data import keys
from chroma_keras.errors import ModelInputError
from chroma_keras.layers.bar_position_embedding import BarPositionEmbedding
from chroma_keras.models.encoders.base import build_encoder
from chroma_keras.models.encoders.music_transformer_encoder import MusicTransformerEncoder
from chroma_keras.preprocessing.midi_tokens import make_tokenizer

TINY = dict(hidden_dim=16, num_layers=1, num_heads=2, intermediate_dim=32, dropout=0.0, max_relative_position=16)


def _n(x):
    return keras.ops.convert_to_numpy(x)


@pytest.fixture(scope="module")
def bar_config():
    config = BarPositionEmbedding.from_tokenizer(make_tokenizer(tokenization="remi"), output_dim=1, max_bars=8).get_config()
    return {k: config[k] for k in ("vocab_size", "bar_token_ids", "position_token_ids", "position_token_values", "max_bars")}


def test_padding_does_not_change_real_outputs(bar_config):
    keras.utils.set_random_seed(0)
    encoder = MusicTransformerEncoder(vocab_size=444, bar_position=bar_config, **TINY)
    rng = np.random.RandomState(1)
    real = rng.randint(1, 444, (2, 7)).astype("int32")
    short = encoder({keys.MIDI_TOKENS: real, keys.MIDI_TOKEN_MASK: np.ones((2, 7), "float32")})
    long = encoder({keys.MIDI_TOKENS: np.concatenate([real, rng.randint(1, 444, (2, 5)).astype("int32")], 1),
                    keys.MIDI_TOKEN_MASK: np.concatenate([np.ones((2, 7)), np.zeros((2, 5))], 1).astype("float32")})
    np.testing.assert_allclose(_n(long["sequence"])[:, :7], _n(short["sequence"]), atol=1e-5)
    np.testing.assert_allclose(_n(long["embedding"]), _n(short["embedding"]), atol=1e-5)


def test_order_matters_without_absolute_positions():
    keras.utils.set_random_seed(0)
    encoder = MusicTransformerEncoder(vocab_size=20, **TINY)  # no bar embedding: only relative attention
    ids = np.arange(1, 9, dtype="int32")[None]
    forward, backward = (_n(encoder({keys.MIDI_TOKENS: x})["embedding"]) for x in (ids, ids[:, ::-1].copy()))
    assert np.abs(forward - backward).max() > 1e-4


def _model(encoder, length):
    inputs = {keys.MIDI_TOKENS: keras.Input((length,), dtype="int32", name=keys.MIDI_TOKENS),
              keys.MIDI_TOKEN_MASK: keras.Input((length,), name=keys.MIDI_TOKEN_MASK)}
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(encoder(inputs)["embedding"]))


def test_keras_round_trip(tmp_path, bar_config):
    keras.utils.set_random_seed(0)
    model = _model(MusicTransformerEncoder(vocab_size=444, bar_position=bar_config, name="mt", **TINY), 10)
    batch = {keys.MIDI_TOKENS: np.random.RandomState(3).randint(1, 444, (2, 10)).astype("int32"),
             keys.MIDI_TOKEN_MASK: np.array([[1] * 10, [1] * 6 + [0] * 4], "float32")}
    model.save(tmp_path / "mt.keras")
    loaded = keras.saving.load_model(tmp_path / "mt.keras")
    np.testing.assert_allclose(_n(loaded(batch)), _n(model(batch)), atol=1e-6)
    assert loaded.get_layer("mt").get_config() == model.get_layer("mt").get_config()


def test_learns_which_token_family_dominates():
    # Label 1: tokens drawn from ids 1..9; label 0: ids 10..19. Chance = 0.5.
    keras.utils.set_random_seed(0)
    rng = np.random.RandomState(4)
    n, length = 64, 8
    labels = rng.randint(0, 2, n)
    ids = np.where(labels[:, None] == 1, rng.randint(1, 10, (n, length)), rng.randint(10, 20, (n, length))).astype("int32")
    model = _model(MusicTransformerEncoder(vocab_size=20, **TINY), length)
    model.compile(keras.optimizers.Adam(3e-3), "binary_crossentropy", metrics=["accuracy"])
    history = model.fit({keys.MIDI_TOKENS: ids, keys.MIDI_TOKEN_MASK: np.ones((n, length), "float32")},
                        labels.astype("float32"), batch_size=16, epochs=6, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0] / 3
    assert history.history["accuracy"][-1] >= 0.95


def test_built_from_preset_with_bar_positions():
    config = {"model": {"midi_encoder": {"type": "music_transformer", "hidden_dim": 16, "vocab_size": None,
                                         "num_heads": 2, "num_layers": 1, "max_bars": 4}},
              "preprocessing": {"midi": {"tokenization": "remi", "max_events": 32}}}
    encoder = build_encoder("midi", config)
    assert isinstance(encoder, MusicTransformerEncoder)
    assert encoder.max_relative_position == 32 and encoder.bar_position["max_bars"] == 4
    assert encoder.bar_position_embedding.num_positions == 33
    config["model"]["midi_encoder"]["use_bar_embedding"] = False
    assert build_encoder("midi", config).bar_position_embedding is None
    config["model"]["midi_encoder"].update(vocab_size=391, use_bar_embedding=True)
    with pytest.raises(ModelInputError, match="vocab_size=391"):
        build_encoder("midi", config)
    config["preprocessing"]["midi"]["tokenization"] = "pianoroll"  # event vocabulary: no bars
    assert build_encoder("midi", config).bar_position_embedding is None


def test_bad_inputs():
    encoder = MusicTransformerEncoder(vocab_size=20, **TINY)
    with pytest.raises(ModelInputError, match=r"midi_tokens.*\[batch, max_events\]"):
        encoder({keys.AUDIO: np.zeros((1, 8), "float32")})
    with pytest.raises(ModelInputError, match=r"Received: shape=\(1, 8, 2\)"):
        encoder({keys.MIDI_TOKENS: np.zeros((1, 8, 2), "int32")})
    with pytest.raises(ModelInputError, match="num_heads must divide"):
        MusicTransformerEncoder(vocab_size=20, hidden_dim=10, num_heads=4)
