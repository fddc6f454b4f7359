"""Seeded waveform augmentations for training: pure numpy / librosa, no Keras.

Four transforms on float waveforms (``[samples]`` or ``[channels, samples]``,
working along the last axis):

* :func:`time_stretch`: change tempo, keep pitch (librosa phase vocoder);
  the length becomes ``round(samples / rate)``.
* :func:`pitch_shift`: change pitch, keep length (librosa: time stretch + soxr resampling).
* :func:`apply_gain`: scale by a gain in dB (no clipping).
* :func:`add_noise`: add white Gaussian noise at an exact signal-to-noise ratio.

:class:`AudioAugmenter` draws their parameters from the ranges in the
``preprocessing.audio.augmentations`` section of a preset. Its draws depend only
on ``(seed, index)``, so a data pipeline that passes each example's index gets
the same augmented audio in every run, on any worker, in any order.

Time stretching changes the length: augment before
:func:`chroma_keras.preprocessing.audio.fix_length` (or ``prepare_waveform``).

Example:

>>> import numpy as np
>>> from chroma_keras.preprocessing.audio_augment import AudioAugmenter
>>> augmenter = AudioAugmenter({"gain_db": 6.0, "noise_snr_db": 30.0}, seed=7)
>>> wave = np.sin(2 * np.pi * 440 * np.arange(16000) / 16000).astype("float32")
>>> a = augmenter(wave, 16000, index=3)
>>> b = augmenter(wave, 16000, index=3)
>>> bool(np.array_equal(a, b)), a.shape
(True, (16000,))
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import librosa
import numpy as np

from chroma_keras.errors import DataError, PresetError

_CONFIG_PATH = "preprocessing.audio.augmentations"
# Allowed range of every key (bounds inclusive), as in the preset schema.
_RANGES = {
    "gain_db": (0.0, 60.0),
    "noise_snr_db": (0.0, 120.0),
    "pitch_shift_semitones": (0.0, 12.0),
    "time_stretch": (0.0, 0.5),
}
# Phase-vocoder window, in seconds (2048 samples at 44.1 kHz, librosa's default there).
_STFT_SECONDS = 0.0464


def _waveform(wave, name: str = "wave") -> np.ndarray:
    array = np.asarray(wave, dtype=np.float32)
    if array.ndim not in (1, 2) or array.shape[-1] == 0:
        raise DataError(
            f"{name} must be a non-empty [samples] or [channels, samples] array. Received: shape={array.shape}"
        )
    if not np.all(np.isfinite(array)):
        raise DataError(f"{name} holds NaN/Inf samples. Expected finite samples.")
    return array


def _finite(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not math.isfinite(
        value
    ):
        raise DataError(f"{name} must be a finite number. Received: {name}={value!r}")
    return float(value)


def _n_fft(sr) -> int:
    """A power-of-two FFT size spanning about 46 ms at ``sr``."""
    sr = _finite(sr, "sr")
    if sr <= 0:
        raise DataError(f"sr must be a positive sample rate in Hz. Received: sr={sr!r}")
    return int(2 ** round(math.log2(sr * _STFT_SECONDS)))


def _per_channel(array: np.ndarray, transform) -> np.ndarray:
    """Apply a 1-D librosa effect to each channel (librosa's multichannel path compiles
    separate numba kernels on first use, ~10 s, for the same result)."""
    if array.ndim == 1:
        return transform(array).astype(np.float32)
    return np.stack([transform(channel) for channel in array]).astype(np.float32)


def time_stretch(wave, rate: float, sr: int) -> np.ndarray:
    """Change the tempo by ``rate`` without changing the pitch.

    Args:
        wave: float waveform ``[samples]`` or ``[channels, samples]``.
        rate: speed factor (> 0); 2.0 plays twice as fast (half as long).
        sr: sample rate in Hz; sets the phase-vocoder window to about 46 ms.

    Returns:
        float32 waveform with ``round(samples / rate)`` samples.

    Raises:
        DataError: for a bad waveform or a non-positive rate.
    """
    array = _waveform(wave)
    rate = _finite(rate, "rate")
    if rate <= 0:
        raise DataError(f"rate must be > 0. Received: rate={rate}")
    if rate == 1.0:
        return array.copy()
    n_fft = _n_fft(sr)
    return _per_channel(
        array, lambda x: librosa.effects.time_stretch(x, rate=rate, n_fft=n_fft, hop_length=n_fft // 4)
    )


def pitch_shift(wave, semitones: float, sr: int) -> np.ndarray:
    """Shift the pitch by ``semitones`` without changing the length.

    Args:
        wave: float waveform ``[samples]`` or ``[channels, samples]``.
        semitones: shift in (fractional) semitones; +12 doubles every frequency.
        sr: sample rate in Hz.

    Returns:
        float32 waveform of the input's shape.

    Raises:
        DataError: for a bad waveform, shift or rate.
    """
    array = _waveform(wave)
    semitones = _finite(semitones, "semitones")
    n_fft = _n_fft(sr)
    if semitones == 0.0:
        return array.copy()
    return _per_channel(
        array,
        lambda x: librosa.effects.pitch_shift(
            x, sr=float(sr), n_steps=semitones, res_type="soxr_hq", n_fft=n_fft, hop_length=n_fft // 4
        ),
    )


def apply_gain(wave, gain_db: float) -> np.ndarray:
    """Multiply by ``10 ** (gain_db / 20)``; samples are not clipped.

    Args:
        wave: float waveform.
        gain_db: gain in dB (negative attenuates).

    Returns:
        float32 waveform of the input's shape.

    Raises:
        DataError: for a bad waveform or gain.
    """
    array = _waveform(wave)
    gain_db = _finite(gain_db, "gain_db")
    return (array * np.float32(10.0 ** (gain_db / 20.0))).astype(np.float32)


def add_noise(wave, snr_db: float, rng=None) -> np.ndarray:
    """Add white Gaussian noise so that the signal-to-noise ratio is exactly ``snr_db``.

    The noise is rescaled by its *measured* power (not its expected power), so
    ``10 * log10(mean(wave**2) / mean(noise**2))`` equals ``snr_db`` up to float32
    rounding. A silent waveform (zero power) has no defined SNR and is returned
    unchanged.

    Args:
        wave: float waveform.
        snr_db: target SNR in dB.
        rng: a ``numpy.random.Generator``, an int seed, or ``None`` (fresh entropy).

    Returns:
        float32 waveform of the input's shape.

    Raises:
        DataError: for a bad waveform or SNR.
    """
    array = _waveform(wave)
    snr_db = _finite(snr_db, "snr_db")
    signal_power = float(np.mean(np.square(array, dtype=np.float64)))
    if signal_power == 0.0:
        return array.copy()
    noise = np.random.default_rng(rng).standard_normal(array.shape)
    noise *= math.sqrt(signal_power / (10.0 ** (snr_db / 10.0)) / float(np.mean(np.square(noise))))
    return (array + noise).astype(np.float32)


@dataclass(frozen=True)
class AugmentationParams:
    """One draw of :class:`AudioAugmenter`.

    Args:
        time_stretch_rate: speed factor (1.0 = unchanged).
        pitch_shift_semitones: pitch shift (0.0 = unchanged).
        gain_db: gain (0.0 = unchanged).
        noise_snr_db: SNR of added noise; ``None`` adds none.
        noise_seed: seed of the noise realisation.
    """

    time_stretch_rate: float = 1.0
    pitch_shift_semitones: float = 0.0
    gain_db: float = 0.0
    noise_snr_db: float | None = None
    noise_seed: int = 0


class AudioAugmenter:
    """Random time stretch, pitch shift, gain and noise, reproducible per example.

    Parameters are drawn uniformly from the configured ranges: a rate in
    ``[1 - time_stretch, 1 + time_stretch]``, a shift in
    ``[-pitch_shift_semitones, +pitch_shift_semitones]``, a gain in
    ``[-gain_db, +gain_db]`` dB, and noise at exactly ``noise_snr_db`` dB SNR (a
    fresh noise realisation per draw) when that is not ``None``. They are applied
    in that order (stretch, shift, gain, noise). A range of 0 leaves that
    transform out; with every range 0 and no noise the waveform comes back unchanged.

    The draw for an example depends only on ``(seed, index)`` (a NumPy
    ``SeedSequence([seed, index])``): the same index gives the same output,
    different indices independent draws.

    Args:
        config: the ``preprocessing.audio.augmentations`` mapping (keys ``gain_db``,
            ``noise_snr_db``, ``pitch_shift_semitones``, ``time_stretch``; missing
            keys take their defaults 0.0 / None), or a whole resolved preset
            (a mapping with a ``preprocessing`` key), from which that section is read.
        seed: non-negative integer seed.

    Raises:
        PresetError: naming the dotted key path of an unknown key or a value out of range.
    """

    def __init__(self, config: Mapping | None = None, seed: int = 0):
        section = _augmentation_section(config)
        unknown = [k for k in section if k not in _RANGES]
        if unknown:
            raise PresetError(f"Unknown key {_CONFIG_PATH}.{unknown[0]}. Expected keys among {list(_RANGES)}.")
        values = {}
        for key, (low, high) in _RANGES.items():
            value = section.get(key, None if key == "noise_snr_db" else 0.0)
            if value is None and key == "noise_snr_db":
                values[key] = None
                continue
            ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
            if not ok or not (math.isfinite(value) and low <= value <= high):
                raise PresetError(
                    f"{_CONFIG_PATH}.{key} must be a number in [{low:g}, {high:g}]"
                    f"{' or null' if key == 'noise_snr_db' else ''}. Received: {value!r}"
                )
            values[key] = float(value)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise PresetError(f"AudioAugmenter seed must be a non-negative integer. Received: seed={seed!r}")
        self.gain_db = values["gain_db"]
        self.noise_snr_db = values["noise_snr_db"]
        self.pitch_shift_semitones = values["pitch_shift_semitones"]
        self.time_stretch = values["time_stretch"]
        self.seed = int(seed)

    def draw(self, index: int) -> AugmentationParams:
        """The parameters used for example ``index``.

        Args:
            index: non-negative integer (e.g. the example's position in the epoch,
                or ``epoch * num_examples + position`` for new draws every epoch).

        Returns:
            An :class:`AugmentationParams`.

        Raises:
            DataError: when ``index`` is not a non-negative integer.
        """
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
            raise DataError(f"AudioAugmenter index must be a non-negative integer. Received: index={index!r}")
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, int(index)]))
        # Always draw all values in one order, so one range doesn't change the others' draws.
        u_rate, u_pitch, u_gain = rng.uniform(-1.0, 1.0, size=3)
        noise_seed = int(rng.integers(2**63 - 1))
        return AugmentationParams(
            time_stretch_rate=1.0 + self.time_stretch * float(u_rate),
            pitch_shift_semitones=self.pitch_shift_semitones * float(u_pitch),
            gain_db=self.gain_db * float(u_gain),
            noise_snr_db=self.noise_snr_db,
            noise_seed=noise_seed,
        )

    def __call__(self, wave, sr: int, *, index: int) -> np.ndarray:
        """Augment one waveform.

        Args:
            wave: float waveform ``[samples]`` or ``[channels, samples]``.
            sr: its sample rate in Hz.
            index: the example's index; see :meth:`draw`.

        Returns:
            The augmented float32 waveform (longer or shorter after a time stretch).

        Raises:
            DataError: for a bad waveform, rate or index.
        """
        params = self.draw(index)
        out = _waveform(wave)
        if params.time_stretch_rate != 1.0:
            out = time_stretch(out, params.time_stretch_rate, sr)
        if params.pitch_shift_semitones != 0.0:
            out = pitch_shift(out, params.pitch_shift_semitones, sr)
        if params.gain_db != 0.0:
            out = apply_gain(out, params.gain_db)
        if params.noise_snr_db is not None:
            out = add_noise(out, params.noise_snr_db, params.noise_seed)
        return out

    def __repr__(self):
        return (
            f"AudioAugmenter(gain_db={self.gain_db}, noise_snr_db={self.noise_snr_db}, "
            f"pitch_shift_semitones={self.pitch_shift_semitones}, time_stretch={self.time_stretch}, seed={self.seed})"
        )


def _augmentation_section(config) -> Mapping:
    """The augmentations mapping, from either the section itself or a whole preset."""
    if config is None:
        return {}
    if not isinstance(config, Mapping):
        raise PresetError(f"{_CONFIG_PATH} must be a mapping. Received: {type(config).__name__}")
    if "preprocessing" not in config:
        return config
    section = config
    path = []
    for key in ("preprocessing", "audio", "augmentations"):
        if section is None:
            return {}
        if not isinstance(section, Mapping):
            raise PresetError(f"{'.'.join(path)} must be a mapping. Received: {type(section).__name__}")
        section = section.get(key)
        path.append(key)
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise PresetError(f"{_CONFIG_PATH} must be a mapping. Received: {type(section).__name__}")
    return section
