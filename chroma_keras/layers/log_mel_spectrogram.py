"""LogMelSpectrogram: librosa-compatible log-mel features computed inside the model graph."""

import math

import keras
import librosa
import numpy as np
import scipy.signal
from keras import ops

from chroma_keras.errors import ModelInputError

_PAD_MODES = ("constant", "reflect")


@keras.saving.register_keras_serializable(package="chroma_keras")
class LogMelSpectrogram(keras.layers.Layer):
    """Waveform -> log-power mel spectrogram in dB, matching librosa.

    Computes, per example, what
    ``librosa.power_to_db(librosa.feature.melspectrogram(y=..., ...), ref=..., amin=..., top_db=...)``
    computes with the same arguments, as one graph op that runs on JAX, TensorFlow
    and PyTorch. The output layout is ``[batch, frames, n_mels]`` (time first, so
    it feeds Conv1D / attention layers directly); librosa's is ``[n_mels, frames]``.

    Why not ``keras.layers.MelSpectrogram``: (1) it only has TensorFlow's HTK
    filterbank (triangles linear in mel, peak 1): no Slaney scale and no area
    normalisation, which are librosa's defaults, and even against librosa's
    ``htk=True, norm=None`` its weights differ by up to 3e-3 (about 0.1 dB on a
    test signal); (2) its ``top_db`` floor uses the maximum of the *whole batch*,
    so an example's features depend on the other examples in its batch (we
    measured a 59 dB change for a quiet clip batched with a loud one); (3) it
    always reflect-pads, while librosa's default is zero padding; (4) it returns
    ``[mels, frames]``. This layer uses ``keras.ops.stft`` with a scipy window
    and librosa's own filterbank matrix (built once, in NumPy, by
    ``librosa.filters.mel``), and applies ``ref="max"`` and ``top_db`` per example.

    Args:
        sample_rate: sample rate of the input in Hz.
        n_fft: FFT size; the output has ``n_fft // 2 + 1`` linear bins before the
            mel projection.
        hop_length: samples between frames.
        win_length: window length (``<= n_fft``, zero-padded to ``n_fft`` in the
            middle as librosa does); ``None`` means ``n_fft``.
        window: a ``scipy.signal.get_window`` name (periodic), e.g. ``"hann"``.
        n_mels: number of mel bands.
        fmin: lowest filter frequency in Hz.
        fmax: highest filter frequency in Hz; ``None`` means ``sample_rate / 2``.
        htk: use the HTK mel formula instead of Slaney's (librosa's ``htk``).
        norm: filter normalisation: ``"slaney"`` (unit area), ``None``, or a
            number ``p`` for unit p-norm (librosa's ``norm``).
        power: exponent of the magnitude (2.0 = power, 1.0 = magnitude).
        center: pad ``n_fft // 2`` samples on both sides so frame ``t`` is centred
            on sample ``t * hop_length``.
        pad_mode: ``"constant"`` (zeros, librosa's default) or ``"reflect"``;
            used when ``center``.
        ref: reference of the dB scale: a positive number, or ``"max"`` for each
            example's own maximum (librosa's ``ref=np.max``).
        amin: floor applied to the power (and to ``ref``) before the log.
        top_db: clip each example to ``max_dB - top_db``; ``None`` disables it.
        **kwargs: base ``keras.layers.Layer`` arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: float tensor ``[batch, samples]``. The STFT runs in float32
            whatever the layer's dtype policy; the output is cast to the compute dtype.

    Returns:
        A tensor ``[batch, frames, n_mels]`` in dB, where ``frames`` is
        :meth:`compute_num_frames` of ``samples``. When the input carries a Keras
        mask ``[batch, samples]`` the output carries :meth:`frame_mask` of it.

    Example:

    >>> import numpy as np
    >>> layer = LogMelSpectrogram(sample_rate=16000, n_fft=512, hop_length=160, n_mels=64)
    >>> wave = np.zeros((2, 16000), "float32")
    >>> tuple(layer(wave).shape)
    (2, 101, 64)
    """

    def __init__(
        self,
        sample_rate=44100,
        n_fft=2048,
        hop_length=512,
        win_length=None,
        window="hann",
        n_mels=128,
        fmin=0.0,
        fmax=None,
        htk=False,
        norm="slaney",
        power=2.0,
        center=True,
        pad_mode="constant",
        ref=1.0,
        amin=1e-10,
        top_db=80.0,
        **kwargs,
    ):
        # Keep float32 waveforms float32 under mixed precision: a float16 waveform
        # loses ~0.1 dB in quiet bins; the output is still cast to the compute dtype.
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        self.sample_rate = _positive_int(sample_rate, "sample_rate")
        self.n_fft = _positive_int(n_fft, "n_fft")
        self.hop_length = _positive_int(hop_length, "hop_length")
        self.win_length = None if win_length is None else _positive_int(win_length, "win_length")
        if self.win_length is not None and self.win_length > self.n_fft:
            raise ModelInputError(
                f"LogMelSpectrogram: win_length must be <= n_fft. Received: win_length={win_length}, n_fft={n_fft}"
            )
        self.window = window
        self.n_mels = _positive_int(n_mels, "n_mels")
        self.fmin = _non_negative_float(fmin, "fmin")
        self.fmax = None if fmax is None else _non_negative_float(fmax, "fmax")
        nyquist = self.sample_rate / 2
        upper = nyquist if self.fmax is None else self.fmax
        if not self.fmin < upper <= nyquist:
            raise ModelInputError(
                "LogMelSpectrogram: need fmin < fmax <= sample_rate / 2. "
                f"Received: fmin={fmin}, fmax={fmax}, sample_rate={sample_rate}"
            )
        self.htk = bool(htk)
        if not (norm is None or norm == "slaney" or _is_number(norm)):
            raise ModelInputError(
                f"LogMelSpectrogram: norm must be 'slaney', None or a number. Received: norm={norm!r}"
            )
        self.norm = norm
        self.power = _positive_float(power, "power")
        self.center = bool(center)
        if pad_mode not in _PAD_MODES:
            raise ModelInputError(
                f"LogMelSpectrogram: pad_mode must be one of {list(_PAD_MODES)}. Received: pad_mode={pad_mode!r}"
            )
        self.pad_mode = pad_mode
        if not (ref == "max" or (_is_number(ref) and ref > 0)):
            raise ModelInputError(f"LogMelSpectrogram: ref must be a positive number or 'max'. Received: ref={ref!r}")
        self.ref = ref if ref == "max" else float(ref)
        self.amin = _positive_float(amin, "amin")
        self.top_db = None if top_db is None else _positive_float(top_db, "top_db")

        # Constants built once in NumPy: librosa's filterbank [n_fft // 2 + 1, n_mels] and the window.
        try:
            if not isinstance(window, str):
                raise ValueError("not a string")
            self._window = scipy.signal.get_window(window, self.win_length or self.n_fft, fftbins=True)
        except ValueError as exc:
            raise ModelInputError(
                f"LogMelSpectrogram: unknown window {window!r} ({exc}). Expected a scipy.signal.get_window name."
            ) from None
        self._window = self._window.astype("float32")
        self._mel_basis = librosa.filters.mel(
            sr=self.sample_rate,
            n_fft=self.n_fft,
            n_mels=self.n_mels,
            fmin=self.fmin,
            fmax=self.fmax,
            htk=self.htk,
            norm=self.norm,
            dtype=np.float32,
        ).T
        self.supports_masking = True

    def build(self, input_shape):
        if len(input_shape) != 2:
            raise ModelInputError(
                f"LogMelSpectrogram expects waveforms [batch, samples]. Received: input shape={tuple(input_shape)}"
            )
        self.built = True

    def compute_num_frames(self, num_samples):
        """Number of STFT frames for ``num_samples`` input samples (librosa's count).

        Args:
            num_samples: an int, or ``None`` for an unknown length.

        Returns:
            ``1 + num_samples // hop_length`` when ``center``, else
            ``1 + (num_samples - n_fft) // hop_length``; ``None`` for ``None``.
        """
        if num_samples is None:
            return None
        if self.center:
            return 1 + num_samples // self.hop_length
        return 1 + (num_samples - self.n_fft) // self.hop_length

    def frame_mask(self, sample_mask):
        """Per-frame mask from a per-sample mask: a frame is real when its centre sample is.

        The centre of frame ``t`` is sample ``t * hop_length`` when ``center``, else
        ``t * hop_length + n_fft // 2``.

        Args:
            sample_mask: tensor ``[batch, samples]``, 1/True for real samples.

        Returns:
            ``[batch, frames]`` in the dtype of ``sample_mask``.
        """
        num_samples = sample_mask.shape[-1]
        if num_samples is None:
            num_samples = ops.shape(sample_mask)[-1]
        frames = ops.arange(self.compute_num_frames(num_samples))
        offset = 0 if self.center else self.n_fft // 2
        centres = frames * self.hop_length + offset
        # With center=True the last centre can be sample num_samples itself, which is padding.
        gathered = ops.take(sample_mask, ops.minimum(centres, num_samples - 1), axis=-1)
        return ops.where(centres < num_samples, gathered, ops.zeros_like(gathered))

    def compute_mask(self, inputs, mask=None):
        if mask is None:
            return None
        return ops.cast(self.frame_mask(mask), "bool")

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        if self.center:
            half = self.n_fft // 2
            x = ops.pad(x, [(0, 0), (half, half)], mode=self.pad_mode)
        real, imag = ops.stft(
            x,
            sequence_length=self.win_length or self.n_fft,
            sequence_stride=self.hop_length,
            fft_length=self.n_fft,
            window=self._window,
            center=False,
        )  # each [batch, frames, n_fft // 2 + 1]
        power = real * real + imag * imag
        if self.power != 2.0:
            power = ops.power(power, self.power / 2.0)
        mel = ops.matmul(power, ops.convert_to_tensor(self._mel_basis))
        log_mel = 10.0 * ops.log10(ops.maximum(mel, self.amin))
        if self.ref == "max":
            ref = ops.max(mel, axis=(1, 2), keepdims=True)
            log_mel = log_mel - 10.0 * ops.log10(ops.maximum(ref, self.amin))
        else:
            log_mel = log_mel - 10.0 * math.log10(max(self.ref, self.amin))
        if self.top_db is not None:
            peak = ops.max(log_mel, axis=(1, 2), keepdims=True)
            log_mel = ops.maximum(log_mel, peak - self.top_db)
        return ops.cast(log_mel, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.compute_num_frames(input_shape[1]), self.n_mels)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "sample_rate": self.sample_rate,
                "n_fft": self.n_fft,
                "hop_length": self.hop_length,
                "win_length": self.win_length,
                "window": self.window,
                "n_mels": self.n_mels,
                "fmin": self.fmin,
                "fmax": self.fmax,
                "htk": self.htk,
                "norm": self.norm,
                "power": self.power,
                "center": self.center,
                "pad_mode": self.pad_mode,
                "ref": self.ref,
                "amin": self.amin,
                "top_db": self.top_db,
            }
        )
        return config


def _is_number(value):
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _positive_int(value, name):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ModelInputError(f"LogMelSpectrogram: {name} must be a positive integer. Received: {name}={value!r}")
    return int(value)


def _positive_float(value, name):
    if not _is_number(value) or not (math.isfinite(value) and value > 0):
        raise ModelInputError(f"LogMelSpectrogram: {name} must be a positive number. Received: {name}={value!r}")
    return float(value)


def _non_negative_float(value, name):
    if not _is_number(value) or not (math.isfinite(value) and value >= 0):
        raise ModelInputError(f"LogMelSpectrogram: {name} must be a number >= 0. Received: {name}={value!r}")
    return float(value)
