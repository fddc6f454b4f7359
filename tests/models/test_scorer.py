"""Scorer: loss parity with NumPy, MIDI-only scoring, save/load, exact gradient accumulation, learning."""

import keras
import numpy as np
import pyarrow.parquet as pq
import pytest

import chroma_keras as ck
from chroma_keras import modes
from chroma_keras.config import load_preset_config
from chroma_keras.data import keys
from chroma_keras.data.demo_corpus import generate_demo_corpus
from chroma_keras.data.multimodal_dataset import MultimodalDataset, batches_to_arrays
from chroma_keras.errors import ModelInputError
from chroma_keras.models.scorer import Scorer
from chroma_keras.preprocessing.pianoroll import piano_roll_to_midi_bytes

SMALL = {
    "model.midi_encoder.hidden_dim": 32,
    "model.midi_encoder.filters": [8, 16, 16],
    "model.scorer.fusion_dim": 32,
    "model.scorer.head_dim": 32,
    "model.scorer.dropout": 0.0,
    "preprocessing.midi.piano_roll.frames_per_second": 4.0,
    "preprocessing.midi.piano_roll.num_frames": 16,
    "preprocessing.midi.piano_roll.num_pitches": 48,
    "preprocessing.midi.piano_roll.lowest_pitch": 36,
    "training.batch_size": 16,
    "training.learning_rate": 0.003,
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("scorer") / "corpus.parquet"
    pq.write_table(generate_demo_corpus(songs_per_colour=4, segments_per_song=4, segment_seconds=4.0, seed=0), path)
    return path


def _numpy_loss(batch, out, weights):
    total = 0.0
    for axis in ("temporal", "spatial", "ontological"):
        target = batch[keys.AXIS_TARGETS[axis]].astype(np.float64)
        target = target / target.sum(-1, keepdims=True)
        logits = out[f"{axis}_logits"].astype(np.float64)
        log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        kl = (target * (np.log(np.maximum(target, 1e-7)) - log_p)).sum(-1)
        total += weights[axis] * kl.mean()
    c = batch[keys.CONFIDENCE].astype(np.float64)
    z = out["confidence_logits"][:, 0].astype(np.float64)
    bce = np.maximum(z, 0) - z * c + np.log1p(np.exp(-np.abs(z)))
    total += weights["confidence"] * bce.mean()
    logits = out["colour_logits"].astype(np.float64)
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    ce = -log_p[np.arange(len(logits)), batch[keys.COLOUR_INDEX]]
    total += weights["colour"] * ce.mean()
    return total


def test_loss_matches_a_numpy_reference(corpus):
    model = ck.from_preset("scorer_midi_only", **SMALL, **{"model.scorer.loss_weights.spatial": 2.0})
    batch = MultimodalDataset(corpus, model, split="all", shuffle=False, augment=False, require=("midi",))[0][0]
    out = model(batch, training=False)
    loss = model.compute_loss(x=batch, y_pred=out, training=False)
    numpy_out = {k: keras.ops.convert_to_numpy(v) for k, v in out.items()}
    expected = _numpy_loss(batch, numpy_out, model.loss_weights)
    np.testing.assert_allclose(float(keras.ops.convert_to_numpy(loss)), expected, rtol=1e-5)
    for axis in ("temporal", "spatial", "ontological"):
        np.testing.assert_allclose(numpy_out[axis].sum(-1), 1.0, atol=1e-5)


def test_score_accepts_midi_bytes_paths_and_rolls_alike(corpus, tmp_path):
    model = ck.from_preset("scorer_midi_only", **SMALL)
    rolls = MultimodalDataset(corpus, model, split="all", shuffle=False, augment=False, require=("midi",))[0][0][keys.PIANO_ROLL][:3]
    spec_kwargs = model.preset_config["preprocessing"]["midi"]["piano_roll"]
    from chroma_keras.preprocessing.pianoroll import PianoRollSpec

    spec = PianoRollSpec(**spec_kwargs)
    data = [piano_roll_to_midi_bytes(r, spec) for r in rolls]
    paths = []
    for i, d in enumerate(data):
        paths.append(tmp_path / f"c{i}.mid")
        paths[-1].write_bytes(d)
    by_roll = model.score(rolls)
    # MIDI stores velocities as integers: bytes and paths see rolls rounded to 1/127.
    for other, atol in ((model.score({keys.PIANO_ROLL: rolls}), 1e-6), (model.score(data), 1e-3), (model.score(paths), 1e-3)):
        for key in ("temporal", "spatial", "ontological", "confidence", "colour"):
            np.testing.assert_allclose(other[key], by_roll[key], atol=atol)
    assert by_roll["colour"].shape == (3, len(modes.COLOURS)) and by_roll["confidence"].shape == (3, 1)
    from chroma_keras.scoring import chromatic_match

    match = chromatic_match(by_roll, "Red")
    assert match.shape == (3,) and ((0 <= match) & (match <= 1)).all()


def test_score_in_padded_chunks_matches_one_forward_pass(corpus):
    # score() runs the compiled predict function on equal-sized chunks (the last one padded);
    # 5 rows in chunks of 2 must give the rows of one eager forward pass, padding cut off.
    model = ck.from_preset("scorer_midi_only", **SMALL)
    rolls = MultimodalDataset(corpus, model, split="all", shuffle=False, augment=False, require=("midi",))[0][0][keys.PIANO_ROLL][:5]
    expected = model({keys.PIANO_ROLL: rolls}, training=False)
    chunked = model.score(rolls, batch_size=2)
    for key in ("temporal", "spatial", "ontological", "confidence", "colour", "embedding"):
        assert chunked[key].shape[0] == 5
        np.testing.assert_allclose(chunked[key], keras.ops.convert_to_numpy(expected[key]), atol=1e-5)
    with pytest.raises(ModelInputError, match="batch_size must be >= 1"):
        model.score(rolls, batch_size=0)


def test_keras_file_round_trip(corpus, tmp_path):
    model = ck.from_preset("scorer_midi_only", **SMALL)
    batch = MultimodalDataset(corpus, model, split="all", shuffle=False, augment=False, require=("midi",))[0][0]
    before = model.score(batch)
    model.save(tmp_path / "scorer.keras")
    loaded = keras.saving.load_model(tmp_path / "scorer.keras")
    after = loaded.score(batch)
    for key in before:
        np.testing.assert_allclose(after[key], before[key], atol=1e-6)


def test_gradient_accumulation_is_exact():
    """k = 4 micro-batches of 8 give the same weights as one batch of 32 after one update."""
    config = load_preset_config(
        "scorer_midi_only",
        {
            "model.midi_encoder.type": "event_transformer",
            "model.midi_encoder.vocab_size": 40,
            "model.midi_encoder.hidden_dim": 16,
            "model.midi_encoder.num_heads": 2,
            "model.midi_encoder.dropout": 0.0,
            "model.midi_encoder.max_sequence_length": 12,
            "model.fusion.dropout": 0.0,
            "model.scorer.fusion_dim": 16,
            "model.scorer.head_dim": 16,
            "model.scorer.dropout": 0.0,
            "model.scorer.modality_dropout": 0.0,
        },
    )
    rng = np.random.default_rng(0)
    colours = [c for c in modes.COLOURS if c.has_training_data]
    labels = [colours[i] for i in rng.integers(len(colours), size=32)]
    batch = {
        keys.MIDI_TOKENS: rng.integers(1, 40, size=(32, 12)).astype("int32"),
        keys.MIDI_TOKEN_MASK: np.ones((32, 12), "float32"),
        keys.COLOUR_INDEX: np.array([c.index for c in labels], "int32"),
        keys.CONFIDENCE: np.ones(32, "float32"),
        keys.LABEL_MASK: np.ones(32, "float32"),
    }
    for axis, key in keys.AXIS_TARGETS.items():
        batch[key] = np.stack([modes.soft_targets(c.condition())[axis] for c in labels])

    def trained(accumulate):
        keras.utils.set_random_seed(1)
        model = Scorer.from_preset_config(config)
        model(batch)
        start = [w.copy() for w in model.get_weights()]
        if accumulate:
            model.compile(keras.optimizers.SGD(0.1, gradient_accumulation_steps=4))
            model.fit(batch, batch_size=8, epochs=1, shuffle=False, verbose=0)
        else:
            model.compile(keras.optimizers.SGD(0.1))
            model.fit(batch, batch_size=32, epochs=1, shuffle=False, verbose=0)
        return start, model.get_weights()

    start_a, accumulated = trained(True)
    start_b, single = trained(False)
    for a, b in zip(start_a, start_b):
        np.testing.assert_array_equal(a, b)
    changed = 0
    for a, b, s in zip(accumulated, single, start_a):
        np.testing.assert_allclose(a, b, atol=2e-6, rtol=1e-5)
        changed += not np.allclose(a, s)
    assert changed > 0  # the update happened


@pytest.mark.slow
def test_fit_learns_the_colours_of_the_demo_corpus(corpus):
    model = ck.from_preset("scorer_midi_only", **SMALL)
    train = MultimodalDataset(corpus, model, split="all", require=("midi",))
    history = model.fit(train, epochs=12, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.6 * losses[0], losses
    # Register (spatial) and rhythm (temporal) are learnable from MIDI: well above chance (1/3).
    evaluation = MultimodalDataset(corpus, model, split="all", shuffle=False, augment=False, require=("midi",))
    metrics = model.evaluate(evaluation, verbose=0, return_dict=True)
    assert metrics["spatial_accuracy"] > 0.6 and metrics["temporal_accuracy"] > 0.5, metrics


def test_bad_inputs_raise_clear_errors():
    model = ck.from_preset("scorer_midi_only", **SMALL)
    with pytest.raises(ModelInputError, match="empty input dict"):
        model({})
    with pytest.raises(ModelInputError, match="encoders must be a non-empty dict"):
        Scorer({"video": None}, None)
    with pytest.raises(ModelInputError, match="unknown loss_weights"):
        Scorer(model.encoders, model.fusion, loss_weights={"tempo": 1.0})
