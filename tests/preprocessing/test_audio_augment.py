"""Tests for chroma_keras.preprocessing.audio_augment (numpy / librosa; no keras)."""

import numpy as np
import pytest

from chroma_keras.config.loader import load_preset_config
from chroma_keras.errors import DataError, PresetError
from chroma_keras.preprocessing.audio_augment import (
    AudioAugmenter,
    AugmentationParams,
    add_noise,
    apply_gain,
    pitch_shift,
    time_stretch,
)

SR = 16000


def sine(freq, seconds=1.0, sr=SR, amplitude=0.5):
    t = np.arange(int(round(sr * seconds))) / sr
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_frequency(x, sr=SR):
    """Dominant frequency, refined by parabolic interpolation of the log spectrum."""
    n = len(x)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(n), 8 * n))
    k = int(np.argmax(spectrum))
    a, b, c = np.log(spectrum[k - 1 : k + 2])
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * sr / (8 * n)


def snr_db(clean, noisy):
    clean = clean.astype(np.float64)
    return 10 * np.log10(np.mean(clean**2) / np.mean((noisy.astype(np.float64) - clean) ** 2))


def rms_db(x):
    return 10 * np.log10(np.mean(x.astype(np.float64) ** 2))


# --- single transforms --------------------------------------------------------


@pytest.mark.parametrize("semitones, factor", [(12, 2.0), (-12, 0.5), (7, 2 ** (7 / 12))])
def test_pitch_shift_scales_the_dominant_frequency(semitones, factor):
    wave = sine(440)
    shifted = pitch_shift(wave, semitones, SR)
    assert shifted.shape == wave.shape and shifted.dtype == np.float32
    edge = 2000  # skip the phase vocoder's edges
    got = peak_frequency(shifted[edge:-edge])
    assert got == pytest.approx(440 * factor, rel=0.01)


@pytest.mark.parametrize("rate", [0.8, 1.25, 1.5])
def test_time_stretch_changes_length_by_the_rate_and_keeps_pitch(rate):
    wave = sine(523.25, seconds=0.8)
    stretched = time_stretch(wave, rate, SR)
    assert len(stretched) == round(len(wave) / rate)
    edge = 1500
    assert peak_frequency(stretched[edge:-edge]) == pytest.approx(523.25, rel=0.01)


def test_stereo_is_transformed_per_channel():
    stereo = np.stack([sine(440, 0.5), sine(660, 0.5)])
    stretched = time_stretch(stereo, 1.25, SR)
    assert stretched.shape == (2, round(8000 / 1.25))
    np.testing.assert_array_equal(stretched[1], time_stretch(stereo[1], 1.25, SR))
    assert pitch_shift(stereo, 3, SR).shape == stereo.shape


def test_identity_parameters_copy_the_input():
    wave = sine(440, 0.1)
    for out in (time_stretch(wave, 1.0, SR), pitch_shift(wave, 0.0, SR), apply_gain(wave, 0.0)):
        np.testing.assert_array_equal(out, wave)
        assert out is not wave


@pytest.mark.parametrize("gain", [-12.0, -3.5, 6.0, 20.0])
def test_apply_gain_changes_level_by_gain_db(gain):
    wave = sine(440, 0.25)
    out = apply_gain(wave, gain)
    assert rms_db(out) - rms_db(wave) == pytest.approx(gain, abs=1e-4)
    np.testing.assert_allclose(apply_gain(wave, 20 * np.log10(2)), 2 * wave, rtol=1e-6)  # +6.02 dB doubles


@pytest.mark.parametrize("target", [0.0, 10.0, 25.0, 60.0])
def test_add_noise_hits_the_target_snr(target):
    wave = sine(440, 0.5) + sine(1200, 0.5, amplitude=0.1)
    noisy = add_noise(wave, target, np.random.default_rng(3))
    assert noisy.dtype == np.float32 and noisy.shape == wave.shape
    assert abs(snr_db(wave, noisy) - target) < 0.1
    residual = noisy.astype(np.float64) - wave
    assert abs(residual.mean()) < 0.05 * residual.std()  # zero-mean noise


def test_add_noise_is_reproducible_and_leaves_silence_alone():
    wave = np.stack([sine(300, 0.2), sine(500, 0.2)])
    a, b = add_noise(wave, 12.0, 42), add_noise(wave, 12.0, np.random.default_rng(42))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, add_noise(wave, 12.0, 43))
    assert abs(snr_db(wave, a) - 12.0) < 0.1
    silence = np.zeros(100, np.float32)
    np.testing.assert_array_equal(add_noise(silence, 10.0, 0), silence)


@pytest.mark.parametrize(
    "call, pattern",
    [
        (lambda: time_stretch(sine(440, 0.1), 0.0, SR), "rate must be > 0"),
        (lambda: time_stretch(sine(440, 0.1), float("inf"), SR), "rate must be a finite number"),
        (lambda: pitch_shift(sine(440, 0.1), "up", SR), "semitones must be a finite number"),
        (lambda: pitch_shift(sine(440, 0.1), 2, -1), "sr must be a positive sample rate"),
        (lambda: apply_gain(np.array([0.1, np.nan]), 3.0), "NaN/Inf"),
        (lambda: add_noise(np.zeros(0), 10.0, 0), r"non-empty.*shape=\(0,\)"),
        (lambda: add_noise(np.zeros((2, 2, 2)), 10.0, 0), r"shape=\(2, 2, 2\)"),
        (lambda: add_noise(sine(440, 0.1), None, 0), "snr_db must be a finite number"),
    ],
)
def test_bad_transform_inputs_raise_data_error(call, pattern):
    with pytest.raises(DataError, match=pattern):
        call()


# --- AudioAugmenter -----------------------------------------------------------

FULL = {"gain_db": 6.0, "noise_snr_db": 30.0, "pitch_shift_semitones": 2.0, "time_stretch": 0.2}


def test_augmenter_is_deterministic_per_index():
    wave = sine(440, 0.5)
    augmenter = AudioAugmenter(FULL, seed=11)
    first = augmenter(wave, SR, index=5)
    np.testing.assert_array_equal(first, augmenter(wave, SR, index=5))
    np.testing.assert_array_equal(first, AudioAugmenter(dict(FULL), seed=11)(wave, SR, index=5))  # a fresh instance
    assert augmenter.draw(5) == augmenter.draw(5)
    other = augmenter(wave, SR, index=6)
    assert augmenter.draw(6) != augmenter.draw(5)
    assert not (other.shape == first.shape and np.array_equal(other, first))
    assert AudioAugmenter(FULL, seed=12).draw(5) != augmenter.draw(5)


def test_augmenter_applies_exactly_the_drawn_parameters():
    wave = sine(440, 0.5)
    augmenter = AudioAugmenter(FULL, seed=0)
    p = augmenter.draw(3)
    expected = time_stretch(wave, p.time_stretch_rate, SR)
    expected = pitch_shift(expected, p.pitch_shift_semitones, SR)
    expected = apply_gain(expected, p.gain_db)
    expected = add_noise(expected, p.noise_snr_db, p.noise_seed)
    np.testing.assert_array_equal(augmenter(wave, SR, index=3), expected)


def test_draws_stay_in_range_and_cover_it():
    augmenter = AudioAugmenter(FULL, seed=1)
    draws = [augmenter.draw(i) for i in range(300)]
    rates = np.array([d.time_stretch_rate for d in draws])
    shifts = np.array([d.pitch_shift_semitones for d in draws])
    gains = np.array([d.gain_db for d in draws])
    for values, low, high in ((rates, 0.8, 1.2), (shifts, -2.0, 2.0), (gains, -6.0, 6.0)):
        assert values.min() >= low and values.max() <= high
        span = high - low
        assert values.min() < low + 0.05 * span and values.max() > high - 0.05 * span  # uniform, both signs
    assert {d.noise_snr_db for d in draws} == {30.0}
    assert len({d.noise_seed for d in draws}) == 300


def test_one_range_does_not_change_the_others_draws():
    with_pitch = AudioAugmenter(FULL, seed=4).draw(9)
    without_pitch = AudioAugmenter({**FULL, "pitch_shift_semitones": 0.0}, seed=4).draw(9)
    assert without_pitch.pitch_shift_semitones == 0.0
    assert without_pitch.gain_db == with_pitch.gain_db
    assert without_pitch.time_stretch_rate == with_pitch.time_stretch_rate


def test_default_config_is_the_identity():
    wave = sine(440, 0.1)
    preset = load_preset_config("cvae_chromatic")
    for augmenter in (AudioAugmenter({}, seed=0), AudioAugmenter(None), AudioAugmenter(preset)):
        assert augmenter.draw(0) == AugmentationParams(noise_seed=augmenter.draw(0).noise_seed)
        np.testing.assert_array_equal(augmenter(wave, SR, index=0), wave)


def test_reads_the_section_of_a_resolved_preset():
    config = load_preset_config(
        "cvae_chromatic",
        overrides=[
            "preprocessing.audio.augmentations.gain_db=3",
            "preprocessing.audio.augmentations.noise_snr_db=20",
            "preprocessing.audio.augmentations.time_stretch=0.1",
        ],
    )
    augmenter = AudioAugmenter(config, seed=2)
    assert (augmenter.gain_db, augmenter.noise_snr_db, augmenter.pitch_shift_semitones, augmenter.time_stretch) == (
        3.0,
        20.0,
        0.0,
        0.1,
    )
    assert augmenter.draw(0) == AudioAugmenter(config["preprocessing"]["audio"]["augmentations"], seed=2).draw(0)


@pytest.mark.parametrize(
    "config, pattern",
    [
        ({"gain": 3.0}, r"Unknown key preprocessing\.audio\.augmentations\.gain"),
        ({"gain_db": -1.0}, r"preprocessing\.audio\.augmentations\.gain_db must be a number in \[0, 60\]"),
        ({"time_stretch": 0.9}, r"augmentations\.time_stretch must be a number in \[0, 0\.5\]"),
        ({"pitch_shift_semitones": "2"}, r"augmentations\.pitch_shift_semitones"),
        ({"noise_snr_db": float("nan")}, r"augmentations\.noise_snr_db .* or null"),
        ([1, 2], "must be a mapping"),
        ({"preprocessing": {"audio": {"augmentations": 5}}}, "must be a mapping"),
    ],
)
def test_bad_config_raises_preset_error_naming_the_key(config, pattern):
    with pytest.raises(PresetError, match=pattern):
        AudioAugmenter(config, seed=0)


def test_bad_seed_and_index():
    with pytest.raises(PresetError, match="seed=-1"):
        AudioAugmenter(FULL, seed=-1)
    augmenter = AudioAugmenter(FULL, seed=0)
    for index in (-1, 1.5, None):
        with pytest.raises(DataError, match="index"):
            augmenter(sine(440, 0.1), SR, index=index)
    with pytest.raises(DataError, match="NaN/Inf"):
        augmenter(np.array([np.nan] * 100, np.float32), SR, index=0)
