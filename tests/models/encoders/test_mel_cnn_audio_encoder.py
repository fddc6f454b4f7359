"""MelCNNAudioEncoder: librosa + NumPy parity, padding invariance, round trip, convergence, bad inputs."""

import math

import keras
import librosa
import numpy as np
import pytest

from chroma_keras.data import keys
from chroma_keras.errors import ModelInputError
from chroma_keras.models.encoders.base import build_encoder
from chroma_keras.models.encoders.mel_cnn_audio_encoder import MelCNNAudioEncoder

# Small, shared shapes: JAX compiles each eager op once per shape.
SR, N_FFT, HOP, N_MELS = 16000, 512, 128, 24
ARGS = dict(sample_rate=SR, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS, filters=(4, 6), dropout=0.0)
NUM_SAMPLES = 6000
REAL_LENGTHS = (6000, 3333)  # not multiples of HOP, so librosa's frame count equals our real-frame count
TOP_DB = 80.0


def to_np(x):
    return keras.ops.convert_to_numpy(x)


def make_batch(num_samples=NUM_SAMPLES, fill=0.0):
    """Two clips (a tone + chirp, and a quieter noisy one) of REAL_LENGTHS, padded with ``fill``."""
    rng = np.random.default_rng(0)
    t = np.arange(NUM_SAMPLES) / SR
    clips = [
        0.5 * np.sin(2 * np.pi * 440 * t) + 0.3 * librosa.chirp(fmin=100, fmax=6000, sr=SR, length=NUM_SAMPLES),
        0.05 * rng.standard_normal(NUM_SAMPLES) + 0.1 * np.sin(2 * np.pi * 1500 * t),
    ]
    audio = np.full((2, num_samples), fill, np.float32)
    mask = np.zeros((2, num_samples), np.float32)
    for i, (clip, length) in enumerate(zip(clips, REAL_LENGTHS)):
        audio[i, :length] = clip[:length]
        mask[i, :length] = 1.0
    return {keys.AUDIO: audio, keys.AUDIO_MASK: mask}


def compiled(encoder, batch):
    """``encoder(batch)`` through a compiled predict step (one XLA compile on JAX instead of one per eager op)."""
    inputs = {k: keras.Input((None,), name=k) for k in batch}
    model = keras.Model(inputs, encoder(inputs))
    return model.predict_on_batch(batch)


def librosa_features(batch):
    """The reference front end: librosa power_to_db(ref=np.max, top_db) of each clip's real samples, / top_db + 1."""
    audio, mask = batch[keys.AUDIO], batch[keys.AUDIO_MASK]
    frames = 1 + audio.shape[1] // HOP
    out = np.zeros((len(audio), frames, N_MELS))
    frame_mask = np.zeros((len(audio), frames))
    for i in range(len(audio)):
        y = audio[i, : int(mask[i].sum())].astype(np.float64)
        power = librosa.feature.melspectrogram(y=y, sr=SR, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS)
        db = librosa.power_to_db(power, ref=np.max, top_db=TOP_DB).T  # [real frames, mels], in [-top_db, 0]
        out[i, : len(db)] = db / TOP_DB + 1.0
        frame_mask[i, : len(db)] = 1.0
    return out, frame_mask


def numpy_cnn(encoder, features, frame_mask):
    """NumPy reference of the CNN, per-frame projection and masked mean, using the encoder's weights."""
    x = features[..., None]
    m = frame_mask
    for conv, norm in zip(encoder.convs, encoder.norms):
        kernel, bias = (to_np(w).astype(np.float64) for w in conv.weights)  # [3, 3, in, out]
        padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(1, 2))  # [b, F, M, in, 3, 3]
        x = np.einsum("bfmcij,ijco->bfmo", windows, kernel) + bias
        gamma, beta = (to_np(w).astype(np.float64) for w in norm.weights)
        x = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + norm.epsilon) * gamma + beta
        x = np.maximum(x, 0.0) * m[:, :, None, None]
        # 2x2 max pool, "same": pad the end of odd axes, output ceil(n / 2).
        f, mel = x.shape[1], x.shape[2]
        x = np.pad(x, ((0, 0), (0, f % 2), (0, mel % 2), (0, 0)), constant_values=-np.inf)
        x = x.reshape(x.shape[0], x.shape[1] // 2, 2, x.shape[2] // 2, 2, x.shape[3]).max(axis=(2, 4))
        m = np.pad(m, ((0, 0), (0, f % 2))).reshape(len(m), -1, 2).max(-1)
    kernel, bias = (to_np(w).astype(np.float64) for w in encoder.frame_projection.weights)
    sequence = np.maximum(x.reshape(x.shape[0], x.shape[1], -1) @ kernel + bias, 0.0) * m[:, :, None]
    pooled = sequence.sum(1) / np.maximum(m.sum(1, keepdims=True), 1.0)
    kernel, bias = (to_np(w).astype(np.float64) for w in encoder.output_projection.weights)
    return pooled @ kernel + bias, sequence, m


def test_front_end_matches_librosa():
    encoder = MelCNNAudioEncoder(hidden_dim=8, **ARGS)
    batch = make_batch()
    features, frame_mask = encoder.features(batch)
    expected, expected_mask = librosa_features(batch)
    np.testing.assert_array_equal(to_np(frame_mask), expected_mask)
    # 1e-4 of the 80 dB range = 0.008 dB; we measure ~1e-6 (float32 STFT vs float64 librosa).
    np.testing.assert_allclose(to_np(features), expected, atol=1e-4)


def test_forward_matches_numpy_reference():
    keras.utils.set_random_seed(0)
    encoder = MelCNNAudioEncoder(hidden_dim=8, **ARGS)
    batch = make_batch()
    out = compiled(encoder, batch)
    # Non-trivial LayerNorm parameters so the reference checks them too.
    for norm in encoder.norms:
        size = norm.weights[0].shape[0]
        norm.set_weights([np.linspace(0.5, 1.5, size), np.linspace(-0.3, 0.3, size)])
    out = compiled(encoder, batch)
    features, frame_mask = librosa_features(batch)
    embedding, sequence, sequence_mask = numpy_cnn(encoder, features, frame_mask)
    np.testing.assert_array_equal(to_np(out["sequence_mask"]), sequence_mask)
    # Tolerances: float32 model vs float64 reference, features differing by ~1e-6.
    np.testing.assert_allclose(to_np(out["sequence"]), sequence, atol=1e-4)
    np.testing.assert_allclose(to_np(out["embedding"]), embedding, atol=1e-4)
    frames = math.ceil(math.ceil((1 + NUM_SAMPLES // HOP) / 2) / 2)
    assert tuple(out["sequence"].shape) == (2, frames, 8)


def test_padding_does_not_change_the_outputs():
    keras.utils.set_random_seed(1)
    encoder = MelCNNAudioEncoder(hidden_dim=8, **ARGS)
    batch = make_batch()
    reference = encoder(batch)
    # Longer padding, and non-zero garbage beyond the mask: same embedding, same real steps.
    longer = make_batch(NUM_SAMPLES + 2000, fill=0.7)
    longer[keys.AUDIO][0, NUM_SAMPLES:] = 0.7
    longer[keys.AUDIO_MASK][0, NUM_SAMPLES:] = 0.0
    padded = compiled(encoder, longer)
    np.testing.assert_allclose(to_np(padded["embedding"]), to_np(reference["embedding"]), atol=1e-5)
    steps = reference["sequence"].shape[1]
    real = to_np(reference["sequence_mask"])[:, :, None]
    np.testing.assert_allclose(to_np(padded["sequence"])[:, :steps] * real, to_np(reference["sequence"]) * real, atol=1e-5)
    # The short clip alone, unpadded and without a mask, gives its batched embedding.
    alone = compiled(encoder, {keys.AUDIO: batch[keys.AUDIO][1:, : REAL_LENGTHS[1]]})
    np.testing.assert_allclose(to_np(alone["embedding"])[0], to_np(reference["embedding"])[1], atol=1e-5)
    # An absent row (all zeros, mask 0) stays finite.
    empty = encoder({keys.AUDIO: np.zeros((2, NUM_SAMPLES), "float32"), keys.AUDIO_MASK: np.zeros((2, NUM_SAMPLES), "float32")})
    assert np.isfinite(to_np(empty["embedding"])).all() and to_np(empty["sequence_mask"]).sum() == 0


def test_keras_file_round_trip_and_config(tmp_path):
    keras.utils.set_random_seed(2)
    encoder = MelCNNAudioEncoder(hidden_dim=8, top_db=60.0, **ARGS)
    inputs = {k: keras.Input((NUM_SAMPLES,), name=k) for k in (keys.AUDIO, keys.AUDIO_MASK)}
    model = keras.Model(inputs, encoder(inputs)["embedding"])
    batch = make_batch()
    path = tmp_path / "mel_cnn.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(to_np(restored(batch)), to_np(model(batch)), atol=1e-5)
    clone = MelCNNAudioEncoder.from_config(encoder.get_config())
    assert clone.get_config() == encoder.get_config()
    assert (clone.top_db, clone.filters, clone.sample_rate) == (60.0, (4, 6), SR)


def test_build_encoder_reads_preset_sections():
    config = {
        "model": {"audio_encoder": {"type": "mel_cnn", "hidden_dim": 32, "n_mels": 40, "filters": [8, 8, 16]}},
        "preprocessing": {"audio": {"sample_rate": 22050}},
    }
    encoder = build_encoder("audio", config)
    assert isinstance(encoder, MelCNNAudioEncoder)
    assert (encoder.hidden_dim, encoder.sample_rate, encoder.n_mels, encoder.filters) == (32, 22050, 40, (8, 8, 16))
    assert (encoder.n_fft, encoder.hop_length, encoder.top_db) == (2048, 512, 80.0)  # defaults


def test_learns_low_versus_high_tones():
    # Each clip is a tone below 500 Hz (label 0) or above 2 kHz (label 1) of random
    # amplitude and length; the spectrogram makes this easy, so a tiny CNN must learn it.
    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    n, samples = 96, 2048
    labels = rng.integers(0, 2, n)
    freqs = np.where(labels == 1, rng.uniform(2000, 6000, n), rng.uniform(100, 500, n))
    t = np.arange(samples) / SR
    audio = (rng.uniform(0.05, 0.9, (n, 1)) * np.sin(2 * np.pi * freqs[:, None] * t + rng.uniform(0, 6, (n, 1))))
    lengths = rng.integers(samples // 2, samples + 1, n)
    mask = (np.arange(samples)[None] < lengths[:, None]).astype("float32")
    x = {keys.AUDIO: (audio * mask).astype("float32"), keys.AUDIO_MASK: mask}
    inputs = {k: keras.Input((samples,), name=k) for k in (keys.AUDIO, keys.AUDIO_MASK)}
    encoder = MelCNNAudioEncoder(hidden_dim=8, sample_rate=SR, n_fft=256, hop_length=128, n_mels=16, filters=(4,), dropout=0.0)
    logits = keras.layers.Dense(1)(keras.ops.relu(encoder(inputs)["embedding"]))
    model = keras.Model(inputs, logits)
    model.compile(keras.optimizers.Adam(0.01), keras.losses.BinaryCrossentropy(from_logits=True), metrics=[keras.metrics.BinaryAccuracy(threshold=0.0)])
    y = labels.astype("float32")
    loss_before, _ = model.evaluate(x, y, batch_size=n, verbose=0)
    model.fit(x, y, batch_size=32, epochs=10, verbose=0)
    loss_after, accuracy = model.evaluate(x, y, batch_size=n, verbose=0)
    print(f"loss {loss_before:.3f} -> {loss_after:.3f}, accuracy {accuracy:.3f}")
    # Chance is 0.5; we measure 1.0 on every backend.
    assert accuracy >= 0.9
    assert loss_after < 0.5 * loss_before


def test_bad_inputs_raise_model_input_error():
    encoder = MelCNNAudioEncoder(hidden_dim=8, **ARGS)
    audio = np.zeros((2, NUM_SAMPLES), "float32")
    with pytest.raises(ModelInputError, match="no 'audio'.*\\[batch, samples\\]"):
        encoder({keys.AUDIO_MASK: audio})
    with pytest.raises(ModelInputError, match="'audio' must be float \\[batch, samples\\].*shape=\\(2, 6000, 2\\)"):
        encoder({keys.AUDIO: np.zeros((2, NUM_SAMPLES, 2), "float32")})
    encoder({keys.AUDIO: audio})
    with pytest.raises(ModelInputError, match="'audio_mask' must have the shape of 'audio'"):
        encoder({keys.AUDIO: audio, keys.AUDIO_MASK: audio[:, :100]})
    with pytest.raises(ModelInputError, match="'audio' must be float \\[batch, samples\\]"):
        encoder({keys.AUDIO: audio[0]})
    with pytest.raises(ModelInputError, match="top_db"):
        MelCNNAudioEncoder(hidden_dim=8, top_db=0)
    with pytest.raises(ModelInputError, match="filters"):
        MelCNNAudioEncoder(hidden_dim=8, filters=())
