"""The multimodal scorer presets: each builds from the zoo, round-trips through save_to_preset, and learns."""

import keras
import numpy as np
import pyarrow.parquet as pq
import pytest

import chroma_keras as ck
from chroma_keras.data import keys
from chroma_keras.data.demo_corpus import generate_demo_corpus
from chroma_keras.data.multimodal_dataset import MultimodalDataset
from chroma_keras.errors import ModelInputError

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


def test_score_reads_audio_and_midi_files_into_their_own_modalities(tmp_path):
    import soundfile

    from chroma_keras.preprocessing.audio import AudioSpec, load_audio_file, prepare_waveform
    from chroma_keras.preprocessing.pianoroll import PianoRollSpec, midi_to_piano_roll
    from chroma_keras.preprocessing.synthesis import render_midi

    model = ck.from_preset("scorer_late_fusion", **SMALL)
    table = generate_demo_corpus(songs_per_colour=1, segments_per_song=1, segment_seconds=2.0, seed=0)
    midi = next(m for m in table.column("midi_binary").to_pylist() if m is not None)
    mid_path, wav_path = tmp_path / "a.mid", tmp_path / "a.wav"
    mid_path.write_bytes(midi)
    soundfile.write(wav_path, render_midi(midi, sample_rate=22050, backend="additive", source="a.mid"), 22050)

    scores = model.score([wav_path, mid_path])
    # Each file is one modality of its row, resampled / rolled as the preset says; the others are absent.
    wave, mask = prepare_waveform(*load_audio_file(wav_path), AudioSpec.from_config(model.preset_config), source="a.wav")
    audio_only = model({keys.AUDIO: wave[None], keys.AUDIO_MASK: mask[None], keys.MODALITY_MASK: np.array([[0, 1, 0]], np.float32)})
    roll = midi_to_piano_roll(str(mid_path), PianoRollSpec.from_config(model.preset_config))
    midi_only = model({keys.PIANO_ROLL: roll[None], keys.MODALITY_MASK: np.array([[0, 0, 1]], np.float32)})
    for row, expected in ((0, audio_only), (1, midi_only)):
        np.testing.assert_allclose(scores["colour"][row], keras.ops.convert_to_numpy(expected["colour"])[0], atol=1e-5)
    assert not np.allclose(scores["colour"][0], scores["colour"][1], atol=1e-4)

    midi_scorer = ck.from_preset("scorer_midi_only", **{"model.midi_encoder.filters": [4, 4, 4], "model.midi_encoder.hidden_dim": 8})
    with pytest.raises(ModelInputError, match=r"a\.wav: an audio file, but this scorer has no audio encoder"):
        midi_scorer.score([wav_path])
