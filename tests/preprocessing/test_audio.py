"""Tests for chroma_keras.preprocessing.audio (numpy / soundfile / librosa / scipy; no keras)."""

import math

import librosa
import numpy as np
import pytest
import scipy.signal
import soundfile

from chroma_keras.config.loader import load_preset_config
from chroma_keras.errors import DataError, PresetError
from chroma_keras.preprocessing.audio import (
    SUPPORTED_SAMPLE_RATES,
    AudioSpec,
    fix_length,
    load_audio_file,
    prepare_waveform,
    resample,
    to_mono,
)


def sine(freq, sr, seconds, amplitude=0.5, phase=0.0):
    t = np.arange(int(round(sr * seconds))) / sr
    return (amplitude * np.sin(2 * np.pi * freq * t + phase)).astype(np.float32)


def peak_frequency(x, sr):
    """Dominant frequency, refined by parabolic interpolation of the log spectrum."""
    n = len(x)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(n), 8 * n))
    k = int(np.argmax(spectrum))
    a, b, c = np.log(spectrum[k - 1 : k + 2])
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * sr / (8 * n)


@pytest.fixture
def stereo_wav(tmp_path):
    """A 16-bit stereo WAV at 22.05 kHz: 440 Hz left, 1 kHz right, 0.5 s."""
    left, right = sine(440, 22050, 0.5), sine(1000, 22050, 0.5, 0.25)
    path = tmp_path / "stereo.wav"
    soundfile.write(path, np.stack([left, right], axis=1), 22050, subtype="PCM_16")
    return path


# --- load_audio_file ----------------------------------------------------------


def test_load_mono_is_the_channel_mean_of_the_pcm_samples(stereo_wav):
    reference, sr = soundfile.read(stereo_wav, dtype="float32")  # [samples, channels]
    wave, rate = load_audio_file(stereo_wav)
    assert rate == sr == 22050 and wave.dtype == np.float32 and wave.shape == (11025,)
    np.testing.assert_allclose(wave, reference.mean(axis=1), atol=1e-7)


def test_load_keeps_channels_first_when_not_mono(stereo_wav):
    reference, _ = soundfile.read(stereo_wav, dtype="float32")
    wave, _ = load_audio_file(stereo_wav, mono=False)
    assert wave.shape == (2, 11025)
    np.testing.assert_array_equal(wave, reference.T)
    mono_file = stereo_wav.with_name("mono.flac")
    soundfile.write(mono_file, reference[:, 0], 22050)
    assert load_audio_file(mono_file, mono=False)[0].shape == (1, 11025)


def test_load_with_resampling_matches_librosa_load(stereo_wav):
    wave, rate = load_audio_file(stereo_wav, sample_rate=16000)
    reference, _ = librosa.load(stereo_wav, sr=16000, mono=True, res_type="soxr_hq")
    assert rate == 16000 and wave.shape == reference.shape == (math.ceil(11025 * 16000 / 22050),)
    np.testing.assert_allclose(wave, reference, atol=1e-6)


def test_flac_round_trip_within_24_bit_quantisation(tmp_path):
    signal = sine(220, 48000, 0.25) + sine(3000, 48000, 0.25, 0.1)
    path = tmp_path / "x.flac"
    soundfile.write(path, signal, 48000, subtype="PCM_24")
    wave, rate = load_audio_file(path)
    assert rate == 48000
    np.testing.assert_allclose(wave, signal, atol=2.0**-23)


def test_load_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope.wav"
    with pytest.raises(DataError, match="nope.wav"):
        load_audio_file(missing)
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF not really a wave file" * 10)
    with pytest.raises(DataError, match="garbage.wav"):
        load_audio_file(garbage)
    empty = tmp_path / "empty.wav"
    soundfile.write(empty, np.zeros(0, np.float32), 16000)
    with pytest.raises(DataError, match=r"empty.wav.*no samples"):
        load_audio_file(empty)


def test_load_rejects_an_unsupported_target_rate(stereo_wav):
    with pytest.raises(DataError, match=r"8000.*16000, 22050, 24000, 32000, 44100, 48000"):
        load_audio_file(stereo_wav, sample_rate=8000)


# --- to_mono ------------------------------------------------------------------


def test_to_mono_handles_both_layouts():
    rng = np.random.default_rng(0)
    channels_first = rng.standard_normal((3, 500)).astype(np.float32)
    expected = channels_first.mean(axis=0)
    np.testing.assert_allclose(to_mono(channels_first), expected, atol=1e-7)
    np.testing.assert_allclose(to_mono(channels_first.T), expected, atol=1e-7)
    np.testing.assert_array_equal(to_mono(expected), expected)
    square = rng.standard_normal((4, 4)).astype(np.float32)
    np.testing.assert_allclose(to_mono(square, channel_axis=1), square.mean(axis=1), atol=1e-7)


def test_to_mono_errors():
    with pytest.raises(DataError, match="square"):
        to_mono(np.zeros((2, 2)))
    with pytest.raises(DataError, match=r"shape=\(2, 3, 4\)"):
        to_mono(np.zeros((2, 3, 4)))
    with pytest.raises(DataError, match="channel_axis=2"):
        to_mono(np.zeros((2, 30)), channel_axis=2)


# --- resample -----------------------------------------------------------------


def test_resample_is_identity_at_the_same_rate():
    wave = sine(440, 44100, 0.1)
    np.testing.assert_array_equal(resample(wave, 44100, 44100), wave)


def test_resample_keeps_frequency_and_level_and_agrees_with_polyphase():
    wave = sine(1000, 44100, 0.5)
    out = resample(wave, 44100, 16000)
    assert out.dtype == np.float32 and out.shape == (math.ceil(len(wave) * 16000 / 44100),)
    middle = out[1000:-1000]
    assert abs(peak_frequency(middle, 16000) - 1000) < 0.5
    assert abs(np.sqrt(np.mean(middle**2)) - 0.5 / np.sqrt(2)) < 1e-3
    # An independent resampler (scipy's polyphase FIR) agrees away from the edges.
    poly = scipy.signal.resample_poly(wave.astype(np.float64), 160, 441)
    np.testing.assert_allclose(middle, poly[1000 : len(out) - 1000], atol=2e-3)


def test_resample_works_per_channel_and_from_any_source_rate():
    stereo = np.stack([sine(300, 8000, 0.2), sine(500, 8000, 0.2)])
    out = resample(stereo, 8000, 24000)
    assert out.shape == (2, 4800)
    np.testing.assert_allclose(out[1], resample(stereo[1], 8000, 24000), atol=1e-7)


@pytest.mark.parametrize("target", [8000, 44100.5, "44100", None])
def test_resample_rejects_unsupported_targets(target):
    with pytest.raises(DataError, match=r"Expected one of \[16000, 22050, 24000, 32000, 44100, 48000\]"):
        resample(np.zeros(10), 44100, target)


@pytest.mark.parametrize("orig", [0, -44100, float("nan"), "fast"])
def test_resample_rejects_bad_source_rates(orig):
    with pytest.raises(DataError, match="orig_sr"):
        resample(np.zeros(10), orig, 16000)


# --- fix_length ---------------------------------------------------------------


def test_fix_length_pads_and_truncates_with_a_mask():
    wave = np.arange(1, 6, dtype=np.float32)
    padded, mask = fix_length(wave, 8)
    np.testing.assert_array_equal(padded, [1, 2, 3, 4, 5, 0, 0, 0])
    np.testing.assert_array_equal(mask, [1, 1, 1, 1, 1, 0, 0, 0])
    assert padded.dtype == mask.dtype == np.float32
    cut, mask = fix_length(wave, 3)
    np.testing.assert_array_equal(cut, [1, 2, 3])
    np.testing.assert_array_equal(mask, [1, 1, 1])
    same, mask = fix_length(wave, 5)
    np.testing.assert_array_equal(same, wave)
    assert mask.all()
    stereo, mask = fix_length(np.ones((2, 3)), 4)
    np.testing.assert_array_equal(stereo, [[1, 1, 1, 0], [1, 1, 1, 0]])
    np.testing.assert_array_equal(mask, [1, 1, 1, 0])
    # The same contract as librosa's own fix_length for the waveform part.
    np.testing.assert_array_equal(fix_length(wave, 8)[0], librosa.util.fix_length(wave, size=8))


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_fix_length_rejects_bad_lengths(bad):
    with pytest.raises(DataError, match="num_samples"):
        fix_length(np.zeros(4), bad)


# --- AudioSpec ----------------------------------------------------------------


def test_spec_defaults_and_num_samples():
    spec = AudioSpec()
    assert (spec.sample_rate, spec.duration, spec.num_samples) == (44100, 30.0, 1_323_000)
    assert AudioSpec(22050, 0.5).num_samples == 11025
    assert set(SUPPORTED_SAMPLE_RATES) == {16000, 22050, 24000, 32000, 44100, 48000}


def test_spec_from_a_resolved_preset():
    config = load_preset_config(
        "cvae_chromatic", overrides=["preprocessing.audio.sample_rate=16000", "preprocessing.audio.duration=4.5"]
    )
    spec = AudioSpec.from_config(config)
    assert spec == AudioSpec(sample_rate=16000, duration=4.5)
    assert spec.num_samples == 72000
    assert AudioSpec.from_config({}) == AudioSpec()
    assert AudioSpec.from_config({"preprocessing": {"audio": None}}) == AudioSpec()


def test_spec_from_config_errors_name_the_key():
    with pytest.raises(PresetError, match=r"preprocessing\.audio\.sampel_rate"):
        AudioSpec.from_config({"preprocessing": {"audio": {"sampel_rate": 16000}}})
    with pytest.raises(PresetError, match=r"preprocessing\.audio.*11025"):
        AudioSpec.from_config({"preprocessing": {"audio": {"sample_rate": 11025}}})
    with pytest.raises(PresetError, match=r"preprocessing\.audio.*duration"):
        AudioSpec.from_config({"preprocessing": {"audio": {"duration": -1}}})
    with pytest.raises(PresetError, match="preprocessing.audio must be a mapping"):
        AudioSpec.from_config({"preprocessing": {"audio": [1]}})


# --- prepare_waveform ---------------------------------------------------------


def test_prepare_waveform_is_mono_resample_fix_length():
    spec = AudioSpec(sample_rate=16000, duration=2.0)
    stereo = np.stack([sine(440, 48000, 1.0), sine(660, 48000, 1.0)], axis=1)  # channels-last
    wave, mask = prepare_waveform(stereo, 48000, spec, source="01_01_seg_0001")
    assert wave.shape == mask.shape == (32000,)
    assert mask.sum() == 16000 and mask[:16000].all()
    expected = resample(stereo.mean(axis=1), 48000, 16000)
    np.testing.assert_allclose(wave[:16000], expected, atol=1e-6)
    assert not wave[16000:].any()
    long_wave, long_mask = prepare_waveform(sine(440, 16000, 3.0), 16000, spec, source="x")
    np.testing.assert_array_equal(long_wave, sine(440, 16000, 3.0)[:32000])
    assert long_mask.all()


@pytest.mark.parametrize(
    "waveform, pattern",
    [
        (np.array([0.0, np.nan, 0.1], np.float32), r"seg_42.*1 NaN/Inf"),
        (np.array([0.0, np.inf, -np.inf]), r"seg_42.*2 NaN/Inf"),
        (np.zeros(0, np.float32), r"seg_42.*empty"),
        (np.zeros((2, 0)), r"seg_42.*empty"),
        (["a", "b"], r"seg_42.*numeric"),
        (np.zeros((2, 3, 400)), r"seg_42.*shape"),
    ],
)
def test_prepare_waveform_errors_name_the_source(waveform, pattern):
    with pytest.raises(DataError, match=pattern):
        prepare_waveform(waveform, 16000, AudioSpec(16000, 1.0), source="seg_42")


def test_prepare_waveform_names_the_source_for_a_bad_rate():
    with pytest.raises(DataError, match=r"seg_7.*orig_sr"):
        prepare_waveform(np.zeros(100), 0, AudioSpec(16000, 1.0), source="seg_7")
