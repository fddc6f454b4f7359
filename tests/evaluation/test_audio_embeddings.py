"""FAD over pretrained audio backbones and the EnCodec round-trip metric (small random backbones)."""

import keras
import numpy as np
import pytest

from chroma_keras.errors import ModelInputError
from chroma_keras.evaluation import audio_embeddings, codec_reconstruction, frechet_audio_distance, spectral_distance
from chroma_keras.preprocessing.audio import resample
from chroma_keras.pretrained import get_architecture

WAV2VEC2_TINY = dict(
    model_type="wav2vec2",
    hidden_size=8,
    num_hidden_layers=1,
    num_attention_heads=2,
    intermediate_size=16,
    conv_dim=(8, 8),
    conv_kernel=(10, 3),
    conv_stride=(5, 2),
    num_conv_pos_embeddings=8,
    num_conv_pos_embedding_groups=2,
    feat_extract_norm="layer",
    do_stable_layer_norm=True,
)


@pytest.fixture(scope="module")
def wav2vec2():
    keras.utils.set_random_seed(0)
    architecture = get_architecture("wav2vec2")
    return architecture.build(architecture.config_from_reference(WAV2VEC2_TINY))


def _tones(n, sr, seconds, base, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    freqs = base * (1.0 + 0.1 * rng.random(n))
    return np.stack([0.3 * np.sin(2 * np.pi * f * t) + 0.01 * rng.standard_normal(t.size) for f in freqs]).astype(np.float32)


def test_wav2vec2_embedding_is_the_mean_of_the_last_hidden_state_over_each_clips_frames(wav2vec2):
    clips = [_tones(1, 16000, 0.2, 220, 0)[0], _tones(1, 16000, 0.1, 440, 1)[0]]  # different lengths: padded batch
    embeddings = audio_embeddings(clips, 16000, wav2vec2)
    for clip, embedding in zip(clips, embeddings):
        hidden = keras.ops.convert_to_numpy(wav2vec2({"audio": clip[None]})["sequence_output"])[0]
        np.testing.assert_allclose(embedding, hidden.mean(axis=0), rtol=1e-4, atol=1e-5)


def test_clips_at_another_rate_are_resampled_to_the_backbones(wav2vec2):
    clips = _tones(3, 32000, 0.1, 330, 2)
    direct = audio_embeddings(np.stack([resample(c, 32000, 16000) for c in clips]), 16000, wav2vec2)
    np.testing.assert_allclose(audio_embeddings(clips, 32000, wav2vec2), direct, rtol=1e-5, atol=1e-6)


def test_fad_is_zero_for_one_set_and_grows_with_the_shift(wav2vec2):
    real = _tones(24, 16000, 0.1, 220, 3)
    near = _tones(24, 16000, 0.1, 220, 4)        # same distribution, other draws
    far = _tones(24, 16000, 0.1, 1760, 5)        # three octaves up
    same = frechet_audio_distance(real, real, 16000, wav2vec2)
    assert abs(same.value) < 1e-6 and same.num_real == 24 and same.dim == 8
    assert "wav2vec2" in same.embedding and "16 kHz" in same.embedding
    assert frechet_audio_distance(real, near, 16000, wav2vec2).value < frechet_audio_distance(real, far, 16000, wav2vec2).value


def test_clap_embeddings_are_unit_vectors_independent_of_the_batch():
    from chroma_keras.models.encoders.clap_audio_encoder import TINY_BACKBONE
    from chroma_keras.pretrained.clap_audio import ClapAudioModel

    keras.utils.set_random_seed(0)
    model = ClapAudioModel(dict(TINY_BACKBONE))
    clips = _tones(3, 48000, 0.25, 440, 6)
    embeddings = audio_embeddings(clips, 48000, model, batch_size=2, max_length_s=1.0)
    assert embeddings.shape == (3, TINY_BACKBONE["projection_dim"])
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, rtol=1e-5)
    alone = audio_embeddings(clips[2:], 48000, model, max_length_s=1.0)
    np.testing.assert_allclose(alone[0], embeddings[2], rtol=1e-4, atol=1e-5)
    with pytest.raises(ModelInputError, match="max_length_s=60"):
        audio_embeddings(clips, 48000, model, max_length_s=60.0)


def test_codec_reconstruction_reports_the_spectral_distance_of_the_round_trip():
    from chroma_keras.tokenizers import AudioTokenizer

    keras.utils.set_random_seed(0)
    architecture = get_architecture("encodec")
    config = {**architecture.presets["encodec_24khz"]["config"], "num_filters": 2, "hidden_size": 8, "codebook_dim": 8,
              "codebook_size": 32, "num_lstm_layers": 1, "target_bandwidths": [1.5, 3.0]}
    tokenizer = AudioTokenizer(architecture.build(config))
    clips = _tones(2, 22050, 0.2, 330, 7)
    report = codec_reconstruction(clips, 22050, tokenizer, bandwidth=3.0)
    assert report["num_clips"] == 2 and report["sample_rate"] == 24000 and report["num_codebooks"] == tokenizer.num_codebooks(3.0)
    reference = resample(clips[1], 22050, 24000)
    decoded = tokenizer.decode(tokenizer.encode(reference, 24000, bandwidth=3.0), length=len(reference))
    expected = spectral_distance(reference, decoded)
    for key, value in expected.items():
        assert report[f"{key}_per_clip"][1] == pytest.approx(float(value), rel=1e-6)
        assert report[key] == pytest.approx(np.mean(report[f"{key}_per_clip"]))


@pytest.mark.parametrize(
    "clips, match",
    [
        (np.zeros(100, np.float32), "several clips"),
        ([np.zeros(100, np.float32), np.zeros((2, 3), np.float32)], r"waveforms\[1\]: a clip must be"),
        ([np.array([0.0, np.nan], np.float32)], r"waveforms\[0\]: the clip holds NaN"),
        ([], "no clips"),
    ],
)
def test_bad_clips_are_named(wav2vec2, clips, match):
    with pytest.raises(ModelInputError, match=match):
        audio_embeddings(clips, 16000, wav2vec2)


def test_a_model_that_is_not_an_audio_backbone_is_refused():
    with pytest.raises(ModelInputError, match="expected a clap_audio or wav2vec2 backbone"):
        audio_embeddings(np.zeros((2, 100), np.float32), 16000, keras.Sequential([keras.layers.Dense(2)]))
