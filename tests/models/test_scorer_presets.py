"""The multimodal scorer presets: each builds from the zoo, round-trips through save_to_preset, and learns."""

import numpy as np
import pyarrow.parquet as pq
import pytest

import chroma_keras as ck
from chroma_keras.data import keys
from chroma_keras.data.demo_corpus import generate_demo_corpus
from chroma_keras.data.multimodal_dataset import MultimodalDataset

MULTIMODAL = ["scorer_late_fusion", "scorer_early_fusion", "scorer_gated", "scorer_cross_attention"]

# Small widths and a 2 s, 16 kHz clip keep one epoch to a few seconds on CPU.
TEXT = {
    "model.text_encoder.hidden_dim": 32,
    "model.text_encoder.transformer_dim": 32,
    "model.text_encoder.intermediate_dim": 64,
    "model.text_encoder.num_layers": 1,
    "model.text_encoder.max_sequence_length": 96,
}
HEADS = {"model.scorer.fusion_dim": 32, "model.scorer.head_dim": 32, "model.scorer.dropout": 0.0, "training.batch_size": 8}
SMALL = {
    **TEXT,
    **HEADS,
    "model.midi_encoder.hidden_dim": 32,
    "model.midi_encoder.filters": [8, 16, 16],
    "model.audio_encoder.hidden_dim": 32,
    "model.audio_encoder.filters": [8, 16],
    "model.audio_encoder.n_fft": 512,
    "model.audio_encoder.hop_length": 256,
    "model.audio_encoder.n_mels": 32,
    "model.fusion.attention_heads": 2,
    "preprocessing.audio.duration": 2.0,
    "preprocessing.midi.piano_roll.num_frames": 16,
    "preprocessing.midi.piano_roll.frames_per_second": 4.0,
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("scorer_presets") / "corpus.parquet"
    table = generate_demo_corpus(
        songs_per_colour=2, segments_per_song=2, segment_seconds=2.0, seed=0, audio="additive", audio_sample_rate=16000
    )
    pq.write_table(table, path)
    return path


def _small(name):
    return TEXT | HEADS if name == "scorer_text_only" else SMALL


@pytest.mark.parametrize("name", MULTIMODAL + ["scorer_text_only"])
def test_preset_builds_its_encoders_and_round_trips(name, corpus, tmp_path):
    model = ck.from_preset(name, **_small(name))
    expected = ("text",) if name == "scorer_text_only" else ("text", "audio", "midi")
    assert model.modalities == expected
    batch = MultimodalDataset(corpus, model, split="all", shuffle=False, augment=False)[0][0]
    present = np.asarray(batch[keys.MODALITY_MASK]).mean(axis=0)
    for index, modality in enumerate(keys.MODALITIES):
        # The demo corpus leaves MIDI out of a few segments; modalities the model lacks are not loaded.
        assert (present[index] >= 0.5) if modality in expected else (present[index] == 0), (modality, present)
    before = model.predict_on_batch(batch)
    ck.save_to_preset(model, tmp_path / "saved")
    restored = ck.from_preset(str(tmp_path / "saved"))
    after = restored.predict_on_batch(batch)
    for head in before:
        np.testing.assert_allclose(np.asarray(after[head]), np.asarray(before[head]), atol=1e-5, err_msg=head)


def test_late_fusion_scorer_fits_the_multimodal_demo_corpus(corpus):
    import keras

    keras.utils.set_random_seed(0)
    model = ck.from_preset("scorer_late_fusion", **SMALL, **{"training.learning_rate": 0.003})
    train = MultimodalDataset(corpus, model, split="all")
    losses = model.fit(train, epochs=10, verbose=0).history["loss"]
    # 24 segments, 3 modalities: the loss on the training data must fall well below its start.
    assert losses[-1] < 0.6 * losses[0], losses
