"""gpt_remi_chromatic: from_preset, generate from text, to_midi, save/load, training on the demo corpus."""

import time

import keras
import numpy as np
import pytest

import chroma_keras as ck
from chroma_keras import modes
from chroma_keras.data.demo_corpus import write_demo_corpus
from chroma_keras.demo import corpus_datasets, train_on_corpus
from chroma_keras.errors import DataError, ModelInputError
from chroma_keras.models.chromatic_gpt import ChromaticGPT
from chroma_keras.tokenizers import ChromaticVocabulary
from chroma_keras.training.gpt_batches import GPTTokenBatches, segment_prefix

# A small model and short sequences: seconds per backend.
SMALL = {
    "model.gpt.hidden_dim": 32,
    "model.gpt.num_layers": 2,
    "model.gpt.num_heads": 2,
    "model.gpt.intermediate_dim": 64,
    "model.gpt.max_sequence_length": 160,
    "model.gpt.dropout": 0.0,
    "preprocessing.midi.max_events": 140,
    "preprocessing.midi.augmentations.transpose_semitones": 0,
    "training.batch_size": 8,
    "training.learning_rate": 0.003,
    "training.lr_schedule": "constant",
    "training.warmup_steps": 0,
    "generation.sampling.max_length": 48,
}
PROMPT = "Generate a RED segment with high temporal complexity"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return str(write_demo_corpus(tmp_path_factory.mktemp("gpt_corpus") / "c.parquet", songs_per_colour=2, segments_per_song=3))


def test_preset_is_listed_and_builds_a_gpt():
    assert "gpt_remi_chromatic" in dict(ck.list_presets())
    model = ck.from_preset("gpt_remi_chromatic", **SMALL)
    assert isinstance(model, ChromaticGPT)
    assert model.vocabulary.midi_spec.tokenization == "remi"
    assert model.sampling_config.strategy == "top_p" and model.sampling_config.top_p == 0.9


def test_generate_from_text_and_write_midi(tmp_path):
    model = ck.from_preset("gpt_remi_chromatic", **SMALL)
    ids = model.generate(prompt=PROMPT, max_length=48, sampling="top_p", seed=0)
    assert ids.shape[0] == 1 and ids.shape[1] <= 48 and ids.dtype == np.int32
    prefix = model.prompt_ids(PROMPT)
    np.testing.assert_array_equal(ids[0, : len(prefix)], prefix)
    assert model.vocabulary.condition_from_ids(prefix) == modes.resolve_condition("Red")
    report = model.to_midi(ids[0], tmp_path / "red.mid")
    assert (tmp_path / "red.mid").read_bytes()[:4] == b"MThd"
    assert 0.0 <= report["token_error_rate"] <= 1.0


def test_save_to_preset_round_trip_gives_identical_logits(tmp_path):
    model = ck.from_preset("gpt_remi_chromatic", **SMALL, **{"generation.sampling.strategy": "top_k_top_p"})
    directory = ck.save_to_preset(model, tmp_path / "gpt")
    again = ck.from_preset(directory)
    assert isinstance(again, ChromaticGPT)
    assert again.get_config() | {"name": None} == model.get_config() | {"name": None}
    assert again.vocabulary == model.vocabulary
    ids = np.random.default_rng(0).integers(1, model.vocabulary.vocabulary_size, (2, 20)).astype(np.int32)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(again(ids)), keras.ops.convert_to_numpy(model(ids)))
    np.testing.assert_array_equal(
        again.generate(prompt="Violet", max_length=30, seed=1), model.generate(prompt="Violet", max_length=30, seed=1)
    )


def test_preset_errors():
    with pytest.raises(ModelInputError, match="divisible by num_heads"):
        ck.from_preset("gpt_remi_chromatic", **{**SMALL, "model.gpt.num_heads": 3})


def test_batches_carry_each_segments_modes_as_prefix(corpus):
    model = ck.from_preset("gpt_remi_chromatic", **SMALL)
    reader = corpus_datasets(model, corpus)["train"]
    batches = GPTTokenBatches(reader, model.vocabulary, model.max_sequence_length, rebracketing_dropout=0.0)
    (x,) = batches[0]
    (raw,) = reader[0]
    vocab = model.vocabulary
    assert x["token_ids"].shape == (len(raw["modes"]), model.max_sequence_length)
    for row, mode_vector, features, mask in zip(x["token_ids"], raw["modes"], raw["rebracketing"], x["padding_mask"]):
        expected = segment_prefix(vocab, mode_vector, features)
        np.testing.assert_array_equal(row[: len(expected)], expected)
        np.testing.assert_allclose(vocab.condition_from_ids(row[: len(expected)]).multi_hot(), mode_vector)
        assert set(vocab.modality_of(row[len(expected) : int(mask.sum())])) <= {"midi", "special"}
        assert (row[int(mask.sum()) :] == vocab.pad_id).all()
    # Without dropout every rebracketing score of a segment with rebracketing data is in its prefix.
    assert sum(vocab.modality_of(x["token_ids"][0][:20]) == "rebracketing") >= 6


def test_batches_reject_a_different_tokenizer(corpus):
    model = ck.from_preset("gpt_remi_chromatic", **SMALL)
    reader = corpus_datasets(model, corpus)["train"]
    other = ChromaticVocabulary(midi={"tokenization": "remi"})
    with pytest.raises(DataError, match="differs from the model vocabulary"):
        GPTTokenBatches(reader, other, 64)


def test_training_on_the_demo_corpus_lowers_the_loss(corpus):
    # Stated factor: the training loss falls at least 1.4x in 8 epochs (measured ~1.7x on jax).
    model = ck.from_preset("gpt_remi_chromatic", **SMALL)
    started = time.time()
    history, datasets = train_on_corpus(model, corpus, epochs=8, verbose=0)
    elapsed = time.time() - started
    losses = history.history["loss"]
    assert losses[-1] < losses[0] / 1.4, losses
    assert elapsed < 120, f"training took {elapsed:.0f}s"
    ids = model.generate(prompt="Blue", max_length=40, sampling="top_k", top_k=10, seed=0)
    assert model.to_midi(ids[0])["num_tokens"] > 0


@pytest.mark.slow
def test_full_size_preset_generates_256_tokens(tmp_path):
    model = ck.from_preset("gpt_remi_chromatic")
    ids = model.generate(prompt=PROMPT, max_length=256, sampling="top_p", seed=0)
    assert ids.shape == (1, 256) or model.vocabulary.eos_id in ids[0]
    report = model.to_midi(ids[0], tmp_path / "red.mid")
    assert report["path"] and 0.0 <= report["token_error_rate"] <= 1.0


def _short_midi() -> bytes:
    import io

    import pretty_midi

    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    piano = pretty_midi.Instrument(program=0)
    for i, pitch in enumerate((60, 64, 67, 72)):
        piano.notes.append(pretty_midi.Note(velocity=80, pitch=pitch, start=0.5 * i, end=0.5 * i + 0.45))
    pm.instruments.append(piano)
    buffer = io.BytesIO()
    pm.write(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("sampling", ["greedy", "top_p"])
def test_continue_midi_keeps_the_given_segment_and_extends_it_validly(sampling, tmp_path):
    from chroma_keras.errors import MidiError

    model = ck.from_preset("gpt_remi_chromatic", **SMALL)
    data = _short_midi()
    (tmp_path / "given.mid").write_bytes(data)
    given = model.vocabulary.encode_midi(data)
    prefix = model.prompt_ids(condition="Red")
    ids = model.continue_midi(tmp_path / "given.mid", condition="Red", max_new_tokens=24, sampling=sampling, seed=0, constrained=True)
    head = len(prefix) + len(given)
    np.testing.assert_array_equal(ids[0, :head], np.concatenate([prefix, given]))
    assert head < ids.shape[1] <= head + 24
    vocab = model.vocabulary
    new = ids[0, head:]
    assert np.all(vocab.range_mask("midi")[new] | np.isin(new, [vocab.eos_id, vocab.pad_id]))
    report = model.to_midi(ids[0], tmp_path / "continued.mid")
    assert report["token_error_rate"] == 0.0  # constrained decoding keeps REMI's grammar across the join
    import pretty_midi

    notes = pretty_midi.PrettyMIDI(str(tmp_path / "continued.mid")).instruments[0].notes
    for pitch, start in ((60, 0.0), (64, 0.5), (67, 1.0), (72, 1.5)):  # the given segment survives the round trip
        # (REMI quantizes the tempo, so onsets move by up to a few tens of milliseconds)
        assert any(n.pitch == pitch and abs(n.start - start) < 0.05 for n in notes), (pitch, start, notes[:8])
    with pytest.raises(ModelInputError, match="leave room for"):
        model.continue_midi(data, condition="Red", max_new_tokens=160)
    with pytest.raises(MidiError):
        model.continue_midi(b"MThd not really", condition="Red")
    with pytest.raises(ModelInputError, match="cannot read the MIDI file"):
        model.continue_midi(tmp_path / "absent.mid", condition="Red")
    with pytest.raises(ModelInputError, match="midi must be MIDI bytes or a path. Received: int"):
        model.continue_midi(123, condition="Red")
