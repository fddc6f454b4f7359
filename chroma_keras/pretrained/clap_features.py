"""CLAP's log-mel front end: the features Hugging Face's ``ClapFeatureExtractor`` computes, in Keras / NumPy.

What the reference extractor does to a mono 48 kHz clip (and what we reproduce):

* **Length.** Clips are brought to ``max_length_s`` (10 s = 480 000 samples).
  Shorter ones are padded: ``"repeatpad"`` (tile the clip ``floor(L / n)``
  times, then zero-pad; the published default), ``"repeat"`` (tile and cut)
  or ``"pad"`` (zeros). Longer ones are truncated: ``"rand_trunc"`` takes a
  random ``max_length`` window; ``"fusion"`` keeps the whole clip (see below).
* **Spectrogram.** Periodic Hann window of ``n_fft = 1024``, hop 480,
  centred frames with *reflect* padding, power spectrum, 64 mel bands from 50
  to 14 000 Hz, then ``10 * log10(max(mel, 1e-10))`` (no ``top_db`` floor, no
  reference other than 1). ``frames = samples // hop + 1`` (1001 for 10 s).
* **Filter bank.** ``"rand_trunc"`` uses the Slaney mel scale with Slaney
  area normalisation (librosa's default); ``"fusion"`` uses the HTK scale
  without normalisation (torchaudio's default), as the original training did.
* **Fusion** (models with ``enable_fusion``): four channels. For a clip no
  longer than ``max_length`` all four are its (padded) mel; for a longer clip
  channel 0 is the whole clip's mel shrunk to ``max_length`` frames (bilinear)
  and channels 1-3 are windows drawn at random from the front, middle and
  back thirds. ``is_longer`` marks the clips whose fusion branch is used.

The random choices are the only non-deterministic part. Here they are made
explicit: :func:`clap_features` takes a ``seed`` and draws exactly what the
reference draws after ``np.random.seed(seed)`` (so the two agree bit for bit
in their choices); the in-graph :class:`ClapFrontEnd` is deterministic and
takes the **first** window of a long clip (and, in fusion mode, treats every
clip like a short one: four copies of its first ``max_length`` window,
``is_longer`` False). The reference, when no clip in a fusion batch is longer,
marks one at random as longer; :func:`clap_features` reproduces that from the
seed, :class:`ClapFrontEnd` does not (its output never depends on the batch).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from chroma_keras.errors import ModelInputError
from chroma_keras.layers.log_mel_spectrogram import LogMelSpectrogram

# ClapFeatureExtractor's defaults (laion/clap-htsat-*, laion/larger_clap_*).
SAMPLE_RATE = 48000
N_FFT = 1024
HOP_LENGTH = 480
N_MELS = 64
FMIN = 50.0
FMAX = 14000.0
MAX_LENGTH_S = 10.0
TRUNCATIONS = ("rand_trunc", "fusion")
PADDINGS = ("repeatpad", "repeat", "pad")
# ClapFeatureExtractor's fusion shrink always resizes to 64 mel bins.
_FUSION_SHRINK_MELS = 64


def front_end_config_from_reference(preprocessor: dict) -> dict:
    """Map a Hugging Face ``preprocessor_config.json`` (``ClapFeatureExtractor``) to :class:`ClapFrontEnd` arguments.

    Args:
        preprocessor: the parsed JSON.

    Returns:
        ``{"sample_rate", "n_fft", "hop_length", "n_mels", "fmin", "fmax", "max_length_s", "truncation", "padding", "top_db"}``.
    """
    return {
        "sample_rate": int(preprocessor.get("sampling_rate", SAMPLE_RATE)),
        "n_fft": int(preprocessor.get("fft_window_size", N_FFT)),
        "hop_length": int(preprocessor.get("hop_length", HOP_LENGTH)),
        "n_mels": int(preprocessor.get("feature_size", N_MELS)),
        "fmin": float(preprocessor.get("frequency_min", 0.0)),
        "fmax": float(preprocessor.get("frequency_max", FMAX)),
        "max_length_s": float(preprocessor.get("max_length_s", MAX_LENGTH_S)),
        "truncation": preprocessor.get("truncation", "fusion"),
        "padding": preprocessor.get("padding", "repeatpad"),
        "top_db": preprocessor.get("top_db"),
    }


def _check_choice(value, allowed, name):
    if value not in allowed:
        raise ModelInputError(f"CLAP front end: {name} must be one of {list(allowed)}. Received: {name}={value!r}")
    return value


def fit_to_length(waveform: np.ndarray, max_length: int, padding: str = "repeatpad", crop_start: int = 0) -> np.ndarray:
    """A clip brought to exactly ``max_length`` samples, the way the reference extractor does.

    Args:
        waveform: 1-D samples.
        max_length: target length in samples.
        padding: ``"repeatpad"``, ``"repeat"`` or ``"pad"`` for shorter clips.
        crop_start: first sample of the window kept from a longer clip
            (the reference draws it uniformly from ``[0, len - max_length]``).

    Returns:
        ``[max_length]`` in the input's dtype.

    Example:

    >>> fit_to_length(np.array([1.0, 2.0]), 5).tolist()
    [1.0, 2.0, 1.0, 2.0, 0.0]
    """
    _check_choice(padding, PADDINGS, "padding")
    waveform = np.asarray(waveform)
    if waveform.ndim != 1 or waveform.size == 0:
        raise ModelInputError(f"fit_to_length: waveform must be non-empty mono [samples]. Received: shape={waveform.shape}")
    n = waveform.shape[0]
    if n > max_length:
        if not 0 <= crop_start <= n - max_length:
            raise ModelInputError(f"fit_to_length: crop_start must lie in [0, {n - max_length}]. Received: {crop_start}")
        return waveform[crop_start : crop_start + max_length]
    if n < max_length:
        if padding == "repeat":
            waveform = np.tile(waveform, max_length // n + 1)[:max_length]
        elif padding == "repeatpad":
            waveform = np.tile(waveform, max_length // n)
        waveform = np.pad(waveform, (0, max_length - waveform.shape[0]))
    return waveform


def bilinear_matrix(in_size: int, out_size: int) -> np.ndarray:
    """``[out_size, in_size]`` matrix of 1-D linear resampling with ``align_corners=False`` (half-pixel centres).

    Source positions below 0 are clamped to 0 and the right neighbour is
    clamped to the last sample, as PyTorch's ``interpolate(mode="bilinear")``
    does. Positions and weights are computed in float32 like the reference
    (which resizes a float32 mel), so they round the same way.
    """
    f32 = np.float32
    matrix = np.zeros((out_size, in_size), np.float64)
    scale = f32(in_size) / f32(out_size)
    for i in range(out_size):
        source = max(f32(scale * f32(i + 0.5)) - f32(0.5), f32(0.0))
        left = min(int(np.floor(source)), in_size - 1)
        right = left + 1 if left < in_size - 1 else left
        frac = min(max(f32(source - f32(left)), f32(0.0)), f32(1.0))
        matrix[i, left] += f32(1.0) - frac
        matrix[i, right] += frac
    return matrix


def numpy_log_mel(clip: np.ndarray, front: "ClapFrontEnd") -> np.ndarray:
    """The CLAP log-mel of one clip in float64 NumPy (the reference's precision).

    Same settings as ``front.spectrogram`` (see the module docstring); float64
    keeps bands far below a frame's peak exact, where a float32 STFT has a
    noise floor around 130-140 dB under the peak.

    Returns:
        ``float32 [frames, n_mels]`` in dB.
    """
    import librosa
    import scipy.signal

    fusion = front.truncation == "fusion"
    filters = librosa.filters.mel(
        sr=front.sample_rate, n_fft=front.n_fft, n_mels=front.n_mels, fmin=front.fmin, fmax=front.fmax,
        htk=fusion, norm=None if fusion else "slaney", dtype=np.float64,
    )
    half = front.n_fft // 2
    padded = np.pad(np.asarray(clip, np.float64), (half, half), mode="reflect")
    count = 1 + (padded.shape[0] - front.n_fft) // front.hop_length
    frames = np.lib.stride_tricks.sliding_window_view(padded, front.n_fft)[:: front.hop_length][:count]
    window = scipy.signal.get_window("hann", front.n_fft, fftbins=True)
    power = np.abs(np.fft.rfft(frames * window, axis=-1)) ** 2
    log_mel = 10.0 * np.log10(np.maximum(power @ filters.T, 1e-10))
    if front.top_db is not None:
        log_mel = np.maximum(log_mel, log_mel.max() - front.top_db)
    return log_mel.astype("float32")


@keras.saving.register_keras_serializable(package="chroma_keras")
class ClapFrontEnd(keras.layers.Layer):
    """Waveforms -> CLAP log-mel features, inside the model graph (all backends).

    Per example: the samples under ``sample_mask`` (a prefix; default all) are
    brought to ``max_length_s`` by ``padding`` or by keeping the first window,
    then turned into the log-mel of the reference extractor (see the module
    docstring for every setting).

    Args:
        sample_rate: sample rate of the input (CLAP checkpoints expect 48 000).
        n_fft: FFT / window size.
        hop_length: samples between frames.
        n_mels: mel bands.
        fmin: lowest mel frequency in Hz.
        fmax: highest mel frequency in Hz.
        max_length_s: clip length the features cover, in seconds.
        truncation: ``"rand_trunc"`` (one channel, Slaney filters) or
            ``"fusion"`` (four channels, HTK filters).
        padding: ``"repeatpad"``, ``"repeat"`` or ``"pad"``.
        top_db: optional dynamic-range floor below the clip's peak (the
            published extractors use none).

    Call arguments:
        audio: float ``[batch, samples]``.
        sample_mask: optional ``[batch, samples]``, 1 on real samples (a prefix).

    Returns:
        ``(features [batch, channels, frames, n_mels], is_longer [batch] bool)``
        with ``frames = max_length // hop_length + 1``; ``is_longer`` is always
        False (fusion over the whole of a long clip is offline only:
        :func:`clap_features`).

    Example:

    >>> front = ClapFrontEnd(max_length_s=0.1)
    >>> features, is_longer = front(np.zeros((2, 3000), "float32"))
    >>> tuple(features.shape)
    (2, 1, 11, 64)
    """

    def __init__(
        self,
        sample_rate=SAMPLE_RATE,
        n_fft=N_FFT,
        hop_length=HOP_LENGTH,
        n_mels=N_MELS,
        fmin=FMIN,
        fmax=FMAX,
        max_length_s=MAX_LENGTH_S,
        truncation="rand_trunc",
        padding="repeatpad",
        top_db=None,
        **kwargs,
    ):
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        self.sample_rate, self.n_fft, self.hop_length, self.n_mels = int(sample_rate), int(n_fft), int(hop_length), int(n_mels)
        self.fmin, self.fmax = float(fmin), float(fmax)
        self.max_length_s = float(max_length_s)
        self.max_length = int(round(self.max_length_s * self.sample_rate))
        if self.max_length < 1:
            raise ModelInputError(f"ClapFrontEnd: max_length_s must be positive. Received: max_length_s={max_length_s!r}")
        self.truncation = _check_choice(truncation, TRUNCATIONS, "truncation")
        self.padding = _check_choice(padding, PADDINGS, "padding")
        self.top_db = None if top_db is None else float(top_db)
        fusion = self.truncation == "fusion"
        self.spectrogram = LogMelSpectrogram(
            sample_rate=self.sample_rate,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            n_mels=self.n_mels,
            fmin=self.fmin,
            fmax=self.fmax,
            htk=fusion,
            norm=None if fusion else "slaney",
            power=2.0,
            center=True,
            pad_mode="reflect",
            ref=1.0,
            amin=1e-10,
            top_db=self.top_db,
            name="spectrogram",
        )

    @property
    def channels(self) -> int:
        """Feature channels: 4 in fusion mode, else 1."""
        return 4 if self.truncation == "fusion" else 1

    @property
    def num_frames(self) -> int:
        """Frames of the features (``max_length // hop_length + 1``)."""
        return self.max_length // self.hop_length + 1

    def build(self, input_shape):
        self.spectrogram.build((None, self.max_length))
        self.built = True

    def fit_length(self, audio, mask=None):
        """The in-graph :func:`fit_to_length` of every example (first window of longer clips).

        Args:
            audio: ``[batch, samples]``.
            mask: optional ``[batch, samples]`` (a prefix of real samples).

        Returns:
            ``[batch, max_length]`` float32.
        """
        audio = ops.cast(audio, "float32")
        samples = audio.shape[-1] if audio.shape[-1] is not None else ops.shape(audio)[-1]
        if mask is None:
            lengths = ops.full((ops.shape(audio)[0], 1), samples, "int32")
        else:
            mask = ops.cast(mask, "float32")
            audio = audio * mask
            lengths = ops.cast(ops.sum(mask, axis=-1, keepdims=True), "int32")
        lengths = ops.maximum(lengths, 1)  # an empty row (absent modality) gives finite features
        if isinstance(samples, int) and samples < self.max_length:
            audio = ops.pad(audio, [(0, 0), (0, self.max_length - samples)])
        position = ops.arange(self.max_length, dtype="int32")[None, :]
        if self.padding == "pad":
            index, valid = position, position < lengths
        else:
            index = position % lengths
            if self.padding == "repeat":
                valid = ops.ones_like(position, "bool")
            else:  # repeatpad: floor(L / n) whole copies (at least one: a longer clip keeps its first window)
                copies = ops.maximum(self.max_length // lengths, 1)
                valid = position < copies * lengths
        shape = (ops.shape(audio)[0], self.max_length)
        index = ops.broadcast_to(ops.minimum(index, ops.shape(audio)[-1] - 1), shape)
        valid = ops.broadcast_to(valid, shape)
        fitted = ops.take_along_axis(audio, index, axis=-1)
        return ops.where(valid, fitted, ops.zeros_like(fitted))

    def call(self, audio, sample_mask=None):
        if len(audio.shape) != 2:
            raise ModelInputError(f"ClapFrontEnd: audio must be float [batch, samples] (mono). Received: shape={tuple(audio.shape)}")
        log_mel = self.spectrogram(self.fit_length(audio, sample_mask))  # [b, frames, mels]
        features = ops.repeat(log_mel[:, None], self.channels, axis=1) if self.channels > 1 else log_mel[:, None]
        is_longer = ops.zeros((ops.shape(audio)[0],), "bool")
        return features, is_longer

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.channels, self.num_frames, self.n_mels), (input_shape[0],)

    def get_config(self):
        return {
            **super().get_config(),
            "sample_rate": self.sample_rate,
            "n_fft": self.n_fft,
            "hop_length": self.hop_length,
            "n_mels": self.n_mels,
            "fmin": self.fmin,
            "fmax": self.fmax,
            "max_length_s": self.max_length_s,
            "truncation": self.truncation,
            "padding": self.padding,
            "top_db": self.top_db,
        }


def clap_features(
    waveforms, front_end: ClapFrontEnd | None = None, seed: int | None = 0, precision: str = "float64", **front_end_kwargs
) -> dict:
    """What ``ClapFeatureExtractor(...)(waveforms)`` returns, with its random draws made from ``seed``.

    Long clips get a random window (``"rand_trunc"``) or the whole-clip /
    three-crop stack (``"fusion"``), drawn in the reference's order from
    ``np.random.RandomState(seed)`` (so the result equals the reference's after
    ``np.random.seed(seed)``). ``seed=None`` takes the first window instead and
    draws nothing (fusion crops: the first index of each third).

    Args:
        waveforms: one 1-D clip or a list of clips (any lengths), at ``front_end.sample_rate``.
        front_end: the :class:`ClapFrontEnd` whose settings to use; default
            one built from ``front_end_kwargs``.
        seed: seed of the random choices, or None for the deterministic first window.
        precision: ``"float64"`` (NumPy, :func:`numpy_log_mel`; matches the
            reference to float32 rounding) or ``"float32"`` (the in-graph
            ``front_end.spectrogram``, what :class:`ClapFrontEnd` computes).
        **front_end_kwargs: :class:`ClapFrontEnd` arguments when ``front_end`` is None.

    Returns:
        ``{"input_features": float32 [batch, channels, frames, n_mels], "is_longer": bool [batch]}``.

    Example:

    >>> out = clap_features([np.zeros(2000), np.zeros(6000)], max_length_s=0.1, seed=0)
    >>> out["input_features"].shape, out["is_longer"].tolist()
    ((2, 1, 11, 64), [False, True])
    """
    front = front_end or ClapFrontEnd(**front_end_kwargs)
    _check_choice(precision, ("float64", "float32"), "precision")
    if isinstance(waveforms, np.ndarray) and waveforms.ndim == 1:
        waveforms = [waveforms]
    waveforms = [np.asarray(w, dtype="float64") for w in waveforms]
    if not waveforms or any(w.ndim != 1 or w.size == 0 for w in waveforms):
        raise ModelInputError("clap_features: waveforms must be a non-empty list of non-empty mono [samples] clips.")
    rng = np.random.RandomState(seed) if seed is not None else None
    length, hop = front.max_length, front.hop_length

    def log_mel(clip):
        if precision == "float64":
            return numpy_log_mel(clip, front)
        return keras.ops.convert_to_numpy(front.spectrogram(clip[None].astype("float32")))[0]  # [frames, mels]

    features, is_longer = [], []
    for clip in waveforms:
        longer = clip.shape[0] > length
        if longer and front.truncation == "fusion":
            mel = log_mel(clip)
            chunk = length // hop + 1
            total = mel.shape[0]
            if chunk == total:  # longer by less than a hop: the whole clip, like a short one
                features.append(np.stack([mel] * 4))
                is_longer.append(False)
                continue
            ranges = np.array_split(np.arange(total - chunk + 1), 3)
            ranges = [r if len(r) else np.array([0]) for r in ranges]
            starts = [int(rng.choice(r)) if rng is not None else int(r[0]) for r in ranges]
            if front.n_mels != _FUSION_SHRINK_MELS:
                raise ModelInputError(
                    f"clap_features: fusion of long clips needs n_mels={_FUSION_SHRINK_MELS} (the reference shrinks to 64 "
                    f"bands). Received: n_mels={front.n_mels}"
                )
            shrunk = bilinear_matrix(total, chunk) @ mel.astype("float64")
            crops = [mel[s : s + chunk] for s in starts]
            features.append(np.stack([shrunk] + crops))
            is_longer.append(True)
            continue
        start = 0
        if longer and rng is not None:
            start = int(rng.randint(0, clip.shape[0] - length + 1))
        mel = log_mel(fit_to_length(clip, length, front.padding, start))
        features.append(np.stack([mel] * front.channels))
        is_longer.append(bool(longer))
    if front.truncation == "fusion" and not any(is_longer):
        pick = int(rng.randint(0, len(features))) if rng is not None else 0
        is_longer[pick] = True
    return {"input_features": np.stack(features).astype("float32"), "is_longer": np.array(is_longer)}


def frames_for(seconds: float, sample_rate: int = SAMPLE_RATE, hop_length: int = HOP_LENGTH) -> int:
    """Feature frames of a ``seconds``-long clip (``samples // hop_length + 1``)."""
    return int(round(seconds * sample_rate)) // hop_length + 1


__all__ = ["ClapFrontEnd", "bilinear_matrix", "clap_features", "fit_to_length", "frames_for", "front_end_config_from_reference", "numpy_log_mel"]
