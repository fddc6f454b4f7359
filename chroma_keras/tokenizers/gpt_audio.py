"""EnCodec codes for the GPT's ``<sep_audio>`` section: which codec, a per-clip code cache, lenient decoding.

The multimodal GPT (``gpt_multimodal_chromatic``) writes audio as EnCodec 24 kHz codes: ``K``
codebooks at 75 frames per second (``K = 2`` is EnCodec's 1.5 kbps). The codec comes from
``model.gpt.encodec_weights``:

* a local converted directory or published checkpoint (``chroma-keras convert`` writes one; nothing
  is downloaded): the real codec, whose codes stand for the sound;
* ``null``: a **random-init stand-in** of the same architecture, drawn from a fixed NumPy seed so
  every process and backend gets the same codec (training and generation then agree). Its codes
  carry little of the sound and its decoder makes noise; it exists so the pipeline runs and is
  tested without weights, and :func:`gpt_audio_tokenizer` warns when it is used.

Example:

>>> tok, bandwidth = gpt_audio_tokenizer(None, num_codebooks=2, codebook_size=1024)  # doctest: +SKIP
>>> cache = AudioCodeCache(tok, bandwidth)                                           # doctest: +SKIP
>>> codes = cache.encode(np.zeros(24000, "float32"), 24000, source="seg-1")         # [2, 75]
"""

from __future__ import annotations

import hashlib
import pathlib
import warnings

import numpy as np

from chroma_keras.errors import CheckpointError, ModelInputError
from chroma_keras.tokenizers.chromatic_vocabulary import check_audio_pattern

WEIGHTS_KEY = "model.gpt.encodec_weights"
# Seed of the random-init stand-in codec: one fixed draw, the same in every process and backend.
STAND_IN_SEED = 1234


class RandomEncodecWarning(UserWarning):
    """The GPT's audio codes come from a random-init EnCodec stand-in, not a trained codec."""


def stand_in_audio_tokenizer(config=None, seed: int = STAND_IN_SEED):
    """An :class:`~chroma_keras.tokenizers.audio_tokenizer.AudioTokenizer` on a random EnCodec drawn from ``seed``.

    Keras initialisers draw from backend generators, which differ between processes and backends;
    here every weight that init made random is redrawn from one NumPy generator, with the mean and
    spread it had, so the stand-in is the same everywhere.

    Args:
        config: an Encodec config dict (default: EnCodec 24 kHz's).
        seed: the NumPy seed.

    Returns:
        The tokenizer.

    Example:

    >>> tok = stand_in_audio_tokenizer({"num_filters": 2, "hidden_size": 8, "codebook_dim": 8,
    ...                                 "num_lstm_layers": 1})
    >>> tok.encode(np.zeros(640, "float32"), 24000, bandwidth=1.5).shape
    (2, 2)
    """
    from chroma_keras.pretrained.encodec import ENCODEC_24KHZ, Encodec
    from chroma_keras.tokenizers.audio_tokenizer import AudioTokenizer

    model = Encodec(dict(ENCODEC_24KHZ if config is None else config))
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        value = np.asarray(variable.numpy(), np.float64)
        spread = value.std()
        if value.size > 1 and spread > 0:
            variable.assign((rng.standard_normal(value.shape) * spread + value.mean()).astype(variable.dtype))
    return AudioTokenizer(model)


def check_encodec_weights(path, key: str = WEIGHTS_KEY) -> None:
    """Raise :class:`CheckpointError` naming ``key`` when ``path`` is given and does not exist."""
    if path is not None and not pathlib.Path(path).exists():
        raise CheckpointError(
            f"{key}={str(path)!r}: no such file or directory. Give a local converted EnCodec 24 kHz directory or "
            "checkpoint (`chroma-keras convert --model encodec` writes one; nothing is downloaded), or null for the "
            "random-init stand-in."
        )


def gpt_audio_tokenizer(encodec_weights, num_codebooks: int, codebook_size: int, tokenizer=None):
    """The audio tokenizer of a GPT preset and the bandwidth that gives its codebooks.

    Args:
        encodec_weights: ``model.gpt.encodec_weights`` (a local path or None for the stand-in).
        num_codebooks: ``model.gpt.audio_num_codebooks``.
        codebook_size: ``model.gpt.audio_codebook_size``.
        tokenizer: an AudioTokenizer to use instead of loading one (tests pass a tiny codec).

    Returns:
        ``(tokenizer, bandwidth_kbps)``.

    Raises:
        CheckpointError: the weights path does not exist or holds no EnCodec.
        ModelInputError: the codec has no bandwidth with ``num_codebooks`` codebooks, or another
            codebook size (naming the preset key).
    """
    if tokenizer is None:
        check_encodec_weights(encodec_weights)
        if encodec_weights is None:
            warnings.warn(
                f"{WEIGHTS_KEY} is null: the GPT's audio codes come from a random-init EnCodec stand-in "
                "(seeded, the same everywhere). Its codes carry little of the sound and its decoder writes noise; "
                "give a converted EnCodec 24 kHz checkpoint for real audio tokens.",
                RandomEncodecWarning,
                stacklevel=2,
            )
            tokenizer = stand_in_audio_tokenizer()
        else:
            from chroma_keras.tokenizers.audio_tokenizer import AudioTokenizer

            tokenizer = AudioTokenizer.from_checkpoint(encodec_weights)
    per_bandwidth = {tokenizer.num_codebooks(b): b for b in tokenizer.bandwidths}
    if num_codebooks not in per_bandwidth:
        raise ModelInputError(
            f"model.gpt.audio_num_codebooks={num_codebooks}: the EnCodec codec has bandwidths "
            f"{tokenizer.bandwidths} kbps = {sorted(per_bandwidth)} codebooks; use one of those."
        )
    if codebook_size != tokenizer.codebook_size:
        raise ModelInputError(
            f"model.gpt.audio_codebook_size={codebook_size}: the EnCodec codec has {tokenizer.codebook_size} codes "
            "per codebook; set the two equal."
        )
    return tokenizer, per_bandwidth[num_codebooks]


class AudioCodeCache:
    """EnCodec codes of audio clips, cached by the clip's content (encoding is the slow part of a row).

    Args:
        tokenizer: an :class:`~chroma_keras.tokenizers.audio_tokenizer.AudioTokenizer`.
        bandwidth: kbps (sets the codebooks).
        max_entries: clips kept; the oldest go first.

    Example:

    >>> cache = AudioCodeCache(tok, 1.5)                                        # doctest: +SKIP
    >>> codes = cache.encode(wave, 24000, source="song-1/seg-3")                # [2, frames]
    """

    def __init__(self, tokenizer, bandwidth: float, max_entries: int = 100_000):
        self.tokenizer = tokenizer
        self.bandwidth = float(bandwidth)
        self.max_entries = int(max_entries)
        self._codes: dict[bytes, np.ndarray] = {}
        self.hits = 0
        self.misses = 0

    def encode(self, waveform, sample_rate, source: str = "audio") -> np.ndarray:
        """Codes ``int32 [K, frames]`` of a mono clip ``[samples]`` at ``sample_rate`` Hz.

        Raises:
            ModelInputError: a clip that is not 1-D (or is empty / not finite), naming ``source``.
        """
        wave = np.asarray(waveform, np.float32)
        if wave.ndim != 1 or wave.size == 0:
            raise ModelInputError(f"{source}: audio must be a mono clip [samples] with at least one sample. Received: shape={wave.shape}")
        key = hashlib.sha1(wave.tobytes() + repr(float(sample_rate)).encode()).digest()
        codes = self._codes.get(key)
        if codes is not None:
            self.hits += 1
            return codes
        self.misses += 1
        try:
            codes = self.tokenizer.encode(wave, sample_rate, bandwidth=self.bandwidth)
        except ModelInputError as exc:
            raise ModelInputError(f"{source}: {exc}") from None
        if len(self._codes) >= self.max_entries:
            self._codes.pop(next(iter(self._codes)))
        self._codes[key] = codes
        return codes


def audio_section_codes(vocabulary, ids, pattern: str = "delay") -> np.ndarray:
    """The codes ``[K, T]`` of a generated ``<sep_audio>`` section, which may stop anywhere.

    Unlike :meth:`ChromaticVocabulary.decode_audio` (exact inverse of an encoded sequence), this
    keeps the frames every codebook reached: a section cut by ``max_length`` mid-pattern gives
    its complete frames, the delay pattern's closing ``<audio_pad>`` tokens may be there or not.

    Args:
        vocabulary: the model's :class:`~chroma_keras.tokenizers.ChromaticVocabulary`.
        ids: the section's ids (after ``<sep_audio>``, without ``<eos>``).
        pattern: ``"delay"`` or ``"flatten"``.

    Returns:
        int32 ``[K, T]`` (``T`` may be 0).

    Raises:
        ModelInputError: a token of the kept frames is not in the codebook its slot expects
            (unconstrained sampling can write that; decode with ``constrained=True``).
    """
    k = vocabulary.audio_num_codebooks
    if not k:
        raise ModelInputError("this vocabulary has no audio tokens; build it with audio_num_codebooks > 0.")
    check_audio_pattern(pattern)
    ids = np.asarray(ids, np.int64).ravel()
    steps = ids.size // k
    grid = ids[: steps * k].reshape(steps, k).T
    pad = vocabulary.audio_pad_id
    if pattern == "delay":
        rows = []
        for c in range(k):
            row = grid[c, c:]
            ends = np.flatnonzero(row == pad)
            rows.append(row[: ends[0]] if ends.size else row)
        frames = min(len(r) for r in rows)
        grid = np.stack([r[:frames] for r in rows]) if frames else np.zeros((k, 0), np.int64)
    offsets = vocabulary.ranges["audio"][0] + np.arange(k)[:, None] * vocabulary.audio_codebook_size
    codes = grid - offsets
    bad = (codes < 0) | (codes >= vocabulary.audio_codebook_size)
    if bad.any():
        c, t = (int(v) for v in np.argwhere(bad)[0])
        raise ModelInputError(
            f"audio section: frame {t} of codebook {c} holds {vocabulary.token(int(grid[c, t]))!r}, not a code of codebook {c} "
            f"({int(bad.sum())} misplaced token(s) in the {pattern!r} pattern). Generate with constrained=True to keep "
            "every audio token in its codebook's range."
        )
    return codes.astype(np.int32)
