"""LogMelSpectrogram: parity with librosa on every backend, masks, serialization, bad arguments."""

import keras
import librosa
import numpy as np
import pytest

from chroma_keras.errors import ModelInputError
from chroma_keras.layers.log_mel_spectrogram import LogMelSpectrogram

SR = 22050
# Every test uses n_fft 1024 / hop 256 and inputs of NUM_SAMPLES (+ n_fft when not centred):
# JAX compiles each eager op once per shape, so shared shapes keep this file fast there.
N_FFT, HOP, NUM_SAMPLES = 1024, 256, 16384
BASE = {"sample_rate": SR, "n_fft": N_FFT, "hop_length": HOP, "n_mels": 64}
# Max |ours - librosa| in dB over bins within 60 dB of the example's peak. We measure
# about 1e-4 dB on all three backends (float32 STFT against a float64 reference).
PARITY_DB = 1e-3


def to_np(x):
    return keras.ops.convert_to_numpy(x)


def make_signal(n=NUM_SAMPLES):
    """A tone, a chirp and a little noise, then a copy faded in (different peaks per example)."""
    t = np.arange(n) / SR
    rng = np.random.default_rng(0)
    y = (
        0.5 * np.sin(2 * np.pi * 440 * t)
        + 0.3 * librosa.chirp(fmin=100, fmax=8000, sr=SR, length=n)
        + 0.01 * rng.standard_normal(n)
    )
    return np.stack([y, 0.1 * y * np.linspace(0, 1, n) ** 2]).astype(np.float32)


def librosa_log_mel(y, args):
    """The reference: librosa in float64, configured like the layer."""
    ref = args.get("ref", 1.0)
    power = librosa.feature.melspectrogram(
        y=y.astype(np.float64),
        sr=args["sample_rate"],
        n_fft=args["n_fft"],
        hop_length=args["hop_length"],
        win_length=args.get("win_length"),
        window=args.get("window", "hann"),
        center=args.get("center", True),
        pad_mode=args.get("pad_mode", "constant"),
        power=args.get("power", 2.0),
        n_mels=args["n_mels"],
        fmin=args.get("fmin", 0.0),
        fmax=args.get("fmax"),
        htk=args.get("htk", False),
        norm=args.get("norm", "slaney"),
    )
    db = librosa.power_to_db(
        power, ref=np.max if ref == "max" else ref, amin=args.get("amin", 1e-10), top_db=args.get("top_db", 80.0)
    )
    return db.T  # [frames, n_mels]


CONFIGS = {
    "slaney_defaults": {},
    "htk_unnormalised": {"htk": True, "norm": None},
    "short_window_reflect_band": {
        "win_length": 800,
        "pad_mode": "reflect",
        "n_mels": 40,
        "fmin": 50.0,
        "fmax": 8000.0,
    },
    "magnitude_uncentred_ref_max": {"center": False, "power": 1.0, "ref": "max", "top_db": None},
    "hamming_l2norm_top60": {"window": "hamming", "norm": 2.0, "top_db": 60.0, "amin": 1e-5},
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_matches_librosa(name):
    args = {**BASE, **CONFIGS[name]}
    batch = make_signal(NUM_SAMPLES if args.get("center", True) else NUM_SAMPLES + N_FFT)
    layer = LogMelSpectrogram(**args)
    got = to_np(layer(batch))
    assert got.dtype == np.float32
    for i in range(len(batch)):
        expected = librosa_log_mel(batch[i], args)
        assert got[i].shape == expected.shape
        loud = expected > expected.max() - 60.0
        assert loud.mean() > 0.3  # the comparison covers a good part of the spectrogram
        assert np.abs(got[i] - expected)[loud].max() < PARITY_DB
    assert layer.compute_output_shape((None, batch.shape[1])) == (None, got.shape[1], args["n_mels"])


def test_each_example_is_scaled_on_its_own():
    """top_db and ref='max' use the example's own peak, never the batch's."""
    batch = make_signal()
    layer = LogMelSpectrogram(**BASE, top_db=40.0, ref="max")
    together = to_np(layer(batch))
    other_neighbour = to_np(layer(np.stack([batch[0], 1e-3 * batch[1][::-1]])))
    np.testing.assert_allclose(other_neighbour[0], together[0], atol=1e-4)
    for i in range(2):
        assert together[i].max() == pytest.approx(0.0, abs=1e-4)
        assert together[i].min() == pytest.approx(-40.0, abs=1e-4)


def test_runs_inside_a_compiled_model_and_survives_keras_save(tmp_path):
    batch = make_signal()
    layer = LogMelSpectrogram(**{**BASE, "n_mels": 24}, htk=True, fmin=30.0)
    inputs = keras.Input((batch.shape[1],))
    model = keras.Model(inputs, layer(inputs))
    eager = to_np(layer(batch))
    compiled = model.predict(batch, verbose=0)  # jit / tf.function / torch, per backend
    np.testing.assert_allclose(compiled, eager, atol=1e-3)
    path = tmp_path / "logmel.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored.layers[-1], LogMelSpectrogram)
    assert restored.layers[-1].get_config() == layer.get_config()
    np.testing.assert_allclose(to_np(restored(batch)), eager, atol=1e-5)


def test_get_config_round_trip_keeps_every_argument():
    layer = LogMelSpectrogram(
        sample_rate=16000,
        n_fft=N_FFT,
        hop_length=HOP,
        win_length=800,
        window="hamming",
        n_mels=40,
        fmin=20.0,
        fmax=7600.0,
        htk=True,
        norm=None,
        power=1.0,
        center=False,
        pad_mode="reflect",
        ref="max",
        amin=1e-6,
        top_db=None,
        name="feats",
    )
    config = layer.get_config()
    clone = LogMelSpectrogram.from_config(config)
    assert clone.get_config() == config
    wave = make_signal(NUM_SAMPLES + N_FFT)
    np.testing.assert_array_equal(to_np(clone(wave)), to_np(layer(wave)))
    clone_by_name = keras.layers.deserialize(keras.layers.serialize(layer))
    assert isinstance(clone_by_name, LogMelSpectrogram) and clone_by_name.get_config() == config


@pytest.mark.parametrize("center", [True, False])
def test_frame_mask_marks_frames_whose_centre_sample_is_real(center):
    layer = LogMelSpectrogram(sample_rate=16000, n_fft=400, hop_length=160, n_mels=16, center=center)
    num_samples, lengths = 4000, [4000, 1601, 1600, 1]
    mask = (np.arange(num_samples)[None, :] < np.array(lengths)[:, None]).astype(np.float32)
    frames = layer.compute_num_frames(num_samples)
    assert frames == (26 if center else 23)
    padded = np.zeros(num_samples + (400 if center else 0))
    assert frames == librosa.util.frame(padded, frame_length=400, hop_length=160).shape[-1]
    centres = np.arange(frames) * 160 + (0 if center else 200)
    expected = (centres[None, :] < np.array(lengths)[:, None]).astype(np.float32)
    np.testing.assert_array_equal(to_np(layer.frame_mask(mask)), expected)
    keras_mask = to_np(layer.compute_mask(mask, mask=mask.astype(bool)))
    np.testing.assert_array_equal(keras_mask, expected.astype(bool))
    assert layer.compute_mask(mask, mask=None) is None


def test_mixed_precision_output_is_close():
    batch = make_signal()
    full = to_np(LogMelSpectrogram(**BASE)(batch))
    half = LogMelSpectrogram(**BASE, dtype="mixed_float16")(batch)
    assert keras.backend.standardize_dtype(half.dtype) == "float16"
    # float16 holds values of magnitude <= 128 to within 1/16.
    np.testing.assert_allclose(to_np(half).astype(np.float32), full, atol=0.07)


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"n_fft": 256, "win_length": 512}, "win_length must be <= n_fft"),
        ({"sample_rate": 16000, "fmax": 9000.0}, r"fmax <= sample_rate / 2.*fmax=9000"),
        ({"fmin": 500.0, "fmax": 400.0}, "fmin < fmax"),
        ({"pad_mode": "edge"}, r"pad_mode.*'edge'"),
        ({"window": "no-such-window"}, "unknown window 'no-such-window'"),
        ({"window": ("kaiser", 8.0)}, r"unknown window \('kaiser', 8.0\)"),
        ({"norm": "l2"}, "norm must be 'slaney'"),
        ({"ref": 0.0}, "ref must be a positive number"),
        ({"ref": "min"}, "ref must be"),
        ({"n_mels": 0}, "n_mels must be a positive integer"),
        ({"hop_length": 1.5}, "hop_length must be a positive integer"),
        ({"power": -1.0}, "power must be a positive number"),
        ({"top_db": 0}, "top_db must be a positive number"),
        ({"amin": float("nan")}, "amin must be a positive number"),
    ],
)
def test_bad_arguments_raise_model_input_error(kwargs, pattern):
    with pytest.raises(ModelInputError, match=pattern):
        LogMelSpectrogram(**kwargs)


def test_rejects_inputs_that_are_not_batch_by_samples():
    layer = LogMelSpectrogram(sample_rate=16000, n_fft=256, hop_length=128, n_mels=8)
    with pytest.raises(ModelInputError, match=r"\[batch, samples\].*\(2, 1000, 1\)"):
        layer(np.zeros((2, 1000, 1), np.float32))
