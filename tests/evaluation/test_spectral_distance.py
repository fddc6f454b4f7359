"""Multi-resolution spectral distances for audio reconstruction: closed forms and a direct librosa check."""

import numpy as np
import pytest

from chroma_keras.errors import ModelInputError


def test_spectral_distance_closed_forms():
    import librosa

    from chroma_keras.evaluation.reconstruction import spectral_distance

    rng = np.random.default_rng(0)
    reference = rng.normal(size=8000)
    same = spectral_distance(reference, reference)
    assert all(value == pytest.approx(0.0, abs=1e-12) for value in same.values())
    # A gain of a scales every magnitude by a: the dB difference is 20 log10(a) in every bin, the log
    # difference |log a|, and the convergence |1 - a|.
    scaled = spectral_distance(reference, 0.5 * reference)
    assert scaled["log_spectral_distance_db"] == pytest.approx(20 * np.log10(2.0), rel=1e-9)
    assert scaled["log_magnitude_l1"] == pytest.approx(np.log(2.0), rel=1e-9)
    assert scaled["spectral_convergence"] == pytest.approx(0.5, rel=1e-9)
    # Against a direct librosa computation at one resolution.
    estimate = reference + 0.1 * rng.normal(size=8000)
    s_ref = np.abs(librosa.stft(reference, n_fft=512, hop_length=128))
    s_est = np.abs(librosa.stft(estimate, n_fft=512, hop_length=128))
    expected = np.linalg.norm(s_ref - s_est) / np.linalg.norm(s_ref)
    assert spectral_distance(reference, estimate, fft_sizes=(512,))["spectral_convergence"] == pytest.approx(expected, rel=1e-9)
    batched = spectral_distance(np.stack([reference, reference]), np.stack([reference, 0.5 * reference]))
    np.testing.assert_allclose(batched["spectral_convergence"], [0.0, 0.5], atol=1e-9)


def test_spectral_distance_bad_input():
    from chroma_keras.evaluation.reconstruction import spectral_distance

    with pytest.raises(ModelInputError, match="longer than the audio"):
        spectral_distance(np.zeros(100), np.zeros(100))
    with pytest.raises(ModelInputError, match="matching batch shape"):
        spectral_distance(np.zeros((2, 4096)), np.zeros((3, 4096)))
    with pytest.raises(ModelInputError, match="finite"):
        spectral_distance(np.full(4096, np.nan), np.zeros(4096))
