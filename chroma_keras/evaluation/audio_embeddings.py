"""Audio evaluation over pretrained backbones: Fréchet audio distance (FAD) and codec reconstruction.

* :func:`audio_embeddings`: one vector per clip from a CLAP audio model (its
  L2-normalised ``audio_embeds``, the usual FAD embedding for music) or a Wav2Vec2
  backbone (mean of the last hidden state over the clip's frames), after resampling
  each clip to the backbone's rate.
* :func:`frechet_audio_distance`: :func:`~chroma_keras.evaluation.frechet_distance`
  over those embeddings, with the embedding's settings in the result's name.
* :func:`codec_reconstruction`: how much an EnCodec round trip (encode → codes →
  decode) changes audio, with :func:`~chroma_keras.evaluation.spectral_distance`.

The backbones come from ``chroma-keras convert`` (see ``docs/pretrained.md``); the
tests use small randomly initialised ones, which rank sets sensibly but are not the
published embeddings.
"""

from __future__ import annotations

import numpy as np

from chroma_keras.errors import ModelInputError
from chroma_keras.evaluation.frechet import FrechetResult, frechet_distance
from chroma_keras.evaluation.reconstruction import spectral_distance

CLAP_SAMPLE_RATE = 48_000
WAV2VEC2_SAMPLE_RATE = 16_000


def _clips(waveforms, name: str) -> list[np.ndarray]:
    if isinstance(waveforms, np.ndarray) and waveforms.ndim == 2:
        clips = list(waveforms)
    elif isinstance(waveforms, np.ndarray) and waveforms.ndim == 1:
        raise ModelInputError(f"{name}: expected several clips ([clips, samples] or a list of 1-D arrays), got one 1-D array.")
    else:
        clips = [np.asarray(c) for c in waveforms]
    if not clips:
        raise ModelInputError(f"{name}: no clips.")
    for i, clip in enumerate(clips):
        if clip.ndim != 1 or clip.size == 0:
            raise ModelInputError(f"{name}[{i}]: a clip must be a non-empty 1-D float waveform. Received: shape={clip.shape}")
        if not np.all(np.isfinite(clip)):
            raise ModelInputError(f"{name}[{i}]: the clip holds NaN or infinite samples.")
    return [c.astype(np.float32) for c in clips]


def _resolve_model(model):
    """A backbone from a live model, a converted directory or a pretrained preset name."""
    if isinstance(model, str):
        from chroma_keras.pretrained import load_pretrained

        model = load_pretrained(model)
    from chroma_keras.pretrained.clap_audio import ClapAudioModel
    from chroma_keras.pretrained.wav2vec2 import Wav2Vec2Backbone

    if isinstance(model, ClapAudioModel):
        return "clap", model
    if isinstance(model, Wav2Vec2Backbone):
        return "wav2vec2", model
    raise ModelInputError(
        f"model: expected a clap_audio or wav2vec2 backbone (a converted directory, a pretrained preset name or the "
        f"model). Received: {type(model).__name__}"
    )


def _pad(clips, length):
    batch = np.zeros((len(clips), length), np.float32)
    mask = np.zeros((len(clips), length), np.float32)
    for i, clip in enumerate(clips):
        n = min(len(clip), length)
        batch[i, :n], mask[i, :n] = clip[:n], 1.0
    return batch, mask


def audio_embeddings(waveforms, sample_rate: int, model, batch_size: int = 8, max_length_s: float = 10.0) -> np.ndarray:
    """One embedding per clip from a pretrained audio backbone.

    Args:
        waveforms: ``[clips, samples]`` or a list of 1-D float waveforms at ``sample_rate``.
        sample_rate: their sample rate; each clip is resampled to the backbone's
            (48 kHz for CLAP, 16 kHz for Wav2Vec2).
        model: a ``ClapAudioModel`` or ``Wav2Vec2Backbone``, a directory written by
            ``chroma-keras convert``, or a pretrained preset name.
        batch_size: clips per forward pass.
        max_length_s: CLAP: the clip length its front end fits each clip to
            (repeat-padded or cut); Wav2Vec2 reads whole clips, padded within a batch.

    Returns:
        float32 ``[clips, dim]``: CLAP's L2-normalised projected embedding, or the
        Wav2Vec2 last hidden state averaged over the clip's frames.
    """
    import keras

    from chroma_keras.preprocessing.audio import check_sample_rate, resample

    sample_rate = check_sample_rate(sample_rate)
    kind, backbone = _resolve_model(model)
    target = CLAP_SAMPLE_RATE if kind == "clap" else WAV2VEC2_SAMPLE_RATE
    clips = [resample(c, sample_rate, target) for c in _clips(waveforms, "waveforms")]
    if kind == "clap":
        from chroma_keras.pretrained.clap_features import ClapFrontEnd

        config = backbone.config
        front_end = ClapFrontEnd(
            sample_rate=CLAP_SAMPLE_RATE,
            n_mels=config["num_mel_bins"],
            max_length_s=max_length_s,
            truncation="fusion" if config["enable_fusion"] else "rand_trunc",
        )
        if front_end.num_frames > backbone.max_frames:
            raise ModelInputError(
                f"max_length_s={max_length_s}: gives {front_end.num_frames} mel frames, more than the CLAP model accepts "
                f"({backbone.max_frames})."
            )
    outputs = []
    for start in range(0, len(clips), batch_size):
        chunk = clips[start : start + batch_size]
        batch, mask = _pad(chunk, max(len(c) for c in chunk))
        if kind == "clap":
            features, is_longer = front_end(batch, sample_mask=mask)
            embeds = backbone({"input_features": features, "is_longer": is_longer})["audio_embeds"]
            embeds = keras.ops.convert_to_numpy(embeds).astype(np.float64)
            embeds /= np.maximum(np.linalg.norm(embeds, axis=-1, keepdims=True), 1e-12)
        else:
            out = backbone({"audio": batch, "padding_mask": mask})
            hidden = keras.ops.convert_to_numpy(out["sequence_output"]).astype(np.float64)
            frames = keras.ops.convert_to_numpy(out["padding_mask"]).astype(np.float64)[..., None]
            embeds = (hidden * frames).sum(axis=1) / np.maximum(frames.sum(axis=1), 1.0)
        outputs.append(embeds.astype(np.float32))
    return np.concatenate(outputs, axis=0)


def frechet_audio_distance(
    real,
    generated,
    sample_rate: int,
    model,
    extrapolate: bool = False,
    seed: int = 0,
    batch_size: int = 8,
    max_length_s: float = 10.0,
    model_name: str | None = None,
) -> FrechetResult:
    """Fréchet audio distance: the Fréchet distance between backbone embeddings of real and generated clips.

    Args:
        real, generated: clips (see :func:`audio_embeddings`) at ``sample_rate``.
        sample_rate: their sample rate.
        model: the backbone (see :func:`audio_embeddings`).
        extrapolate: also estimate FD∞ (see :func:`~chroma_keras.evaluation.frechet_distance`).
        seed: seed of the FD∞ subsets.
        batch_size, max_length_s: see :func:`audio_embeddings`.
        model_name: how the embedding is named in the result (default: the model
            argument when it is a path or name, else the backbone kind).

    Returns:
        A :class:`~chroma_keras.evaluation.FrechetResult` whose ``embedding`` names the
        backbone, its rate and the clip settings.

    Raises:
        ModelInputError: bad clips, or too few clips for the embedding's width
            (each set needs more clips than dimensions).

    Example:

    >>> result = frechet_audio_distance(real_clips, generated_clips, 22050, "models/clap_music")
    >>> print(result)        # Fréchet distance over clap_audio (models/clap_music) ...: 0.41 (...)
    """
    kind, backbone = _resolve_model(model)
    rate = CLAP_SAMPLE_RATE if kind == "clap" else WAV2VEC2_SAMPLE_RATE
    name = model_name or (model if isinstance(model, str) else kind)
    settings = f"{max_length_s:g} s clips" if kind == "clap" else "mean over frames"
    embedding = f"{'clap_audio' if kind == 'clap' else 'wav2vec2'} ({name}) at {rate // 1000} kHz, {settings}"
    real_embeddings = audio_embeddings(real, sample_rate, backbone, batch_size, max_length_s)
    generated_embeddings = audio_embeddings(generated, sample_rate, backbone, batch_size, max_length_s)
    return frechet_distance(real_embeddings, generated_embeddings, extrapolate=extrapolate, seed=seed, embedding=embedding)


def codec_reconstruction(waveforms, sample_rate: int, tokenizer, bandwidth: float = 6.0) -> dict:
    """How an EnCodec round trip (encode → codes → decode) changes audio.

    Args:
        waveforms: clips (``[clips, samples]`` or a list of 1-D arrays) at ``sample_rate``.
        sample_rate: their rate; clips are resampled to the codec's 24 kHz, and
            the decoded audio is compared with that resampled input.
        tokenizer: a :class:`chroma_keras.tokenizers.AudioTokenizer`.
        bandwidth: the codec bandwidth in kbps (1.5, 3, 6, 12 or 24).

    Returns:
        ``{"log_spectral_distance_db", "spectral_convergence", "log_magnitude_l1"}``
        (means over clips, see :func:`~chroma_keras.evaluation.spectral_distance`), each
        also per clip under ``"<key>_per_clip"``, plus ``"bandwidth_kbps"``,
        ``"num_codebooks"``, ``"sample_rate"`` and ``"num_clips"``.
    """
    from chroma_keras.preprocessing.audio import check_sample_rate, resample

    sample_rate = check_sample_rate(sample_rate)
    per_clip = {}
    for clip in _clips(waveforms, "waveforms"):
        reference = resample(clip, sample_rate, tokenizer.sample_rate)
        codes = tokenizer.encode(reference, tokenizer.sample_rate, bandwidth=bandwidth)
        decoded = tokenizer.decode(codes, length=len(reference))
        for key, value in spectral_distance(reference, decoded).items():
            per_clip.setdefault(key, []).append(float(value))
    report = {key: float(np.mean(values)) for key, values in per_clip.items()}
    report.update({f"{key}_per_clip": values for key, values in per_clip.items()})
    report.update(
        bandwidth_kbps=float(bandwidth),
        num_codebooks=int(tokenizer.num_codebooks(bandwidth)),
        sample_rate=int(tokenizer.sample_rate),
        num_clips=len(per_clip["spectral_convergence"]),
    )
    return report
