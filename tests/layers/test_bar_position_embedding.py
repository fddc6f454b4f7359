"""BarPositionEmbedding: in-graph bar/position ids against a plain-Python walk over REMI tokens."""

import io

import keras
import numpy as np
import pretty_midi
import pytest

from chroma_keras.errors import ModelInputError
from chroma_keras.layers.bar_position_embedding import BarPositionEmbedding
from chroma_keras.preprocessing.midi_tokens import make_tokenizer, tokenize_midi_bytes


@pytest.fixture(scope="module")
def remi():
    return make_tokenizer(tokenization="remi", max_events=160)


def _python_walk(ids, tokenizer, max_bars):
    """Reference: read tokens one by one like a musician counting bars."""
    names = {i: name for name, i in tokenizer.miditok.vocab.items()}
    bar, position, out = 0, 0, []
    for i in ids:
        name = names[int(i)]
        if name.startswith("Bar_"):
            bar, position = bar + 1, 0
        elif name.startswith("Position_"):
            position = int(name.split("_")[1]) + 1
        out.append((min(bar, max_bars), position))
    return np.array(out).T


def _midi_bytes(num_bars=5):
    midi = pretty_midi.PrettyMIDI(initial_tempo=120)
    piano = pretty_midi.Instrument(program=0)
    rng = np.random.RandomState(0)
    for start in np.sort(rng.choice(np.arange(0, num_bars * 8), 24, replace=False)) * 0.25:  # 2 s bars
        piano.notes.append(pretty_midi.Note(90, int(rng.randint(40, 80)), float(start), float(start) + 0.2))
    midi.instruments.append(piano)
    buffer = io.BytesIO()
    midi.write(buffer)
    return buffer.getvalue()


def test_ids_match_python_walk_on_real_remi_tokens(remi):
    tokens = tokenize_midi_bytes(_midi_bytes(), remi, source="test")
    ids = tokens.ids[None]
    layer = BarPositionEmbedding.from_tokenizer(remi, output_dim=4, max_bars=3)
    bars, positions = (keras.ops.convert_to_numpy(a) for a in layer.compute_ids(ids))
    want_bars, want_positions = _python_walk(tokens.ids, remi, max_bars=3)
    n = int(tokens.mask.sum())
    assert want_bars[:n].max() == 3 and want_positions[:n].max() > 8  # the piece spans > 3 bars and many positions
    np.testing.assert_array_equal(bars[0], want_bars)
    np.testing.assert_array_equal(positions[0], want_positions)


def test_ids_on_a_handmade_sequence(remi):
    v = remi.miditok.vocab
    sequence = ["BOS_None", "Pitch_60", "Bar_None", "Pitch_60", "Position_4", "Pitch_60", "Position_9",
                "Bar_None", "Position_0", "Pitch_62", "Bar_None", "Bar_None", "PAD_None"]
    ids = np.array([[v[name] for name in sequence]], "int32")
    layer = BarPositionEmbedding.from_tokenizer(remi, output_dim=4, max_bars=3)
    bars, positions = (keras.ops.convert_to_numpy(a)[0].tolist() for a in layer.compute_ids(ids))
    assert bars == [0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 3, 3, 3]  # the 4th bar shares max_bars
    assert positions == [0, 0, 0, 0, 5, 5, 10, 0, 1, 1, 0, 0, 0]


def test_output_is_sum_of_the_two_tables(remi):
    keras.utils.set_random_seed(0)
    layer = BarPositionEmbedding.from_tokenizer(remi, output_dim=6, max_bars=8)
    tokens = tokenize_midi_bytes(_midi_bytes(), remi, source="test").ids[None]
    out = keras.ops.convert_to_numpy(layer(tokens))
    bars, positions = (keras.ops.convert_to_numpy(a) for a in layer.compute_ids(tokens))
    bar_table = keras.ops.convert_to_numpy(layer.bar_embedding.embeddings)
    position_table = keras.ops.convert_to_numpy(layer.position_embedding.embeddings)
    assert position_table.shape == (32 + 1, 6)  # 4/4 at 8 positions per beat, plus "none"
    np.testing.assert_allclose(out, bar_table[bars] + position_table[positions], atol=1e-6)


def test_cpword_separate_layout_is_supported():
    tokenizer = make_tokenizer(tokenization="cpword", cpword_layout="separate", max_events=200)
    tokens = tokenize_midi_bytes(_midi_bytes(), tokenizer, source="test")
    layer = BarPositionEmbedding.from_tokenizer(tokenizer, output_dim=4, max_bars=16)
    bars, positions = (keras.ops.convert_to_numpy(a)[0] for a in layer.compute_ids(tokens.ids[None]))
    n = int(tokens.mask.sum())
    assert bars[n - 1] >= 4 and positions[:n].max() > 8
    assert (np.diff(bars) >= 0).all()


def test_keras_round_trip(tmp_path, remi):
    inputs = keras.Input((None,), dtype="int32")
    model = keras.Model(inputs, BarPositionEmbedding.from_tokenizer(remi, output_dim=4, max_bars=8, name="bp")(inputs))
    tokens = tokenize_midi_bytes(_midi_bytes(), remi, source="test").ids[None]
    model.save(tmp_path / "bp.keras")
    loaded = keras.saving.load_model(tmp_path / "bp.keras")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(tokens)), keras.ops.convert_to_numpy(model(tokens)))
    assert loaded.get_layer("bp").get_config() == model.get_layer("bp").get_config()


def test_bad_inputs(remi):
    layer = BarPositionEmbedding.from_tokenizer(remi, output_dim=4)
    with pytest.raises(ModelInputError, match=r"\[batch, length\]"):
        layer.compute_ids(np.zeros((2, 3, 4), "int32"))
    with pytest.raises(ModelInputError, match="compound"):
        BarPositionEmbedding.from_tokenizer(make_tokenizer(tokenization="cpword"), output_dim=4)
    with pytest.raises(ModelInputError, match="vocab_size"):
        BarPositionEmbedding(4, vocab_size=10, bar_token_ids=[12], position_token_ids=[], position_token_values=[])
    with pytest.raises(ModelInputError, match="same length"):
        BarPositionEmbedding(4, vocab_size=10, bar_token_ids=[1], position_token_ids=[2, 3], position_token_values=[0])
