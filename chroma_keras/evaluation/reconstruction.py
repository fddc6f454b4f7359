"""Reconstruction quality: piano rolls (velocity MSE, note-level precision / recall / F1) and audio
(multi-resolution spectral distances).

Notes are read off the rolls (a note is a run of sounding frames at one pitch)
and matched with ``mir_eval.transcription``, the reference implementation of the
MIREX note-transcription metrics: a note matches when the pitch is the same and
the onsets are within half a frame (and, with ``match_offsets``, the offsets
within 20% of the note's length or half a frame).
"""

from __future__ import annotations

import numpy as np

from chroma_keras.errors import ModelInputError


def piano_roll_notes(roll, frames_per_second: float, lowest_pitch: int = 0):
    """The notes of one roll ``[pitches, frames]``: ``(intervals [n, 2] seconds, midi pitches [n])``, by onset."""
    sounding = np.asarray(roll) > 0
    padded = np.pad(sounding, ((0, 0), (1, 1))).astype(np.int8)
    change = np.diff(padded, axis=1)
    rows, starts = np.nonzero(change == 1)
    _, ends = np.nonzero(change == -1)  # row-major order pairs each start with its end
    order = np.lexsort((rows, starts))
    intervals = np.stack([starts, ends], axis=1)[order].astype(np.float64) / frames_per_second
    return intervals.reshape(-1, 2), (rows[order] + lowest_pitch).astype(np.int64)


def _check_pair(reference, estimate):
    reference, estimate = np.asarray(reference, np.float64), np.asarray(estimate, np.float64)
    if reference.ndim == 2:
        reference, estimate = reference[None], estimate[None] if estimate.ndim == 2 else estimate
    if reference.ndim != 3 or reference.shape != estimate.shape:
        raise ModelInputError(
            f"reference and estimated piano rolls must both be [batch, pitches, frames] of one shape. "
            f"Received {np.shape(reference)} and {np.shape(estimate)}"
        )
    if not (np.all(np.isfinite(reference)) and np.all(np.isfinite(estimate))):
        raise ModelInputError("piano rolls must be finite.")
    return reference, estimate


def note_metrics(reference, estimate, frames_per_second: float, lowest_pitch: int = 0, match_offsets: bool = False) -> dict:
    """Note-level precision, recall and F1 of estimated rolls against reference rolls, and the velocity MSE.

    Args:
        reference, estimate: ``[batch, pitches, frames]`` velocities (0 = silent).
        frames_per_second: the rolls' frame rate.
        lowest_pitch: MIDI pitch of row 0.
        match_offsets: also require matching offsets.

    Returns:
        ``{"precision", "recall", "f1"}``: float64 ``[batch]`` (a pair with no notes on
        either side scores 1; with notes on one side only, 0), and ``"velocity_mse"``
        ``[batch]``, the mean squared velocity error over all cells.
    """
    from mir_eval.transcription import precision_recall_f1_overlap

    if not frames_per_second > 0:
        raise ModelInputError(f"frames_per_second must be > 0. Received: {frames_per_second!r}")
    reference, estimate = _check_pair(reference, estimate)
    tolerance = 0.5 / frames_per_second
    out = {"precision": [], "recall": [], "f1": []}
    for ref, est in zip(reference, estimate):
        ref_intervals, ref_pitches = piano_roll_notes(ref, frames_per_second, lowest_pitch)
        est_intervals, est_pitches = piano_roll_notes(est, frames_per_second, lowest_pitch)
        if len(ref_pitches) == 0 or len(est_pitches) == 0:
            score = 1.0 if len(ref_pitches) == len(est_pitches) else 0.0
            p = r = f = score
        else:
            p, r, f, _ = precision_recall_f1_overlap(
                ref_intervals,
                440.0 * 2.0 ** ((ref_pitches - 69) / 12.0),
                est_intervals,
                440.0 * 2.0 ** ((est_pitches - 69) / 12.0),
                onset_tolerance=tolerance,
                offset_ratio=0.2 if match_offsets else None,
                offset_min_tolerance=tolerance,
            )
        out["precision"].append(p)
        out["recall"].append(r)
        out["f1"].append(f)
    result = {k: np.asarray(v, np.float64) for k, v in out.items()}
    result["velocity_mse"] = np.mean((reference - estimate) ** 2, axis=(1, 2))
    return result


# Window sizes of the multi-resolution spectral distance (hop = a quarter window), as codec papers use.
SPECTRAL_FFT_SIZES = (512, 1024, 2048)
_FLOOR = 1e-7


def spectral_distance(reference, estimate, fft_sizes=SPECTRAL_FFT_SIZES) -> dict:
    """Distances between the magnitude spectrograms of two waveforms, averaged over STFT resolutions.

    Args:
        reference, estimate: float waveforms ``[samples]`` (or ``[batch, samples]``) at one sample rate;
            the longer is cut to the shorter's length.
        fft_sizes: STFT window sizes (Hann window, hop a quarter window, ``librosa.stft``).

    Returns:
        float64 ``[batch]`` (or scalars for 1-D input) under three keys:
        ``"log_spectral_distance_db"`` (root-mean-square over frames and bins of the dB difference,
        averaged over frames' RMS), ``"spectral_convergence"`` (``||S_ref - S_est||_F / ||S_ref||_F``)
        and ``"log_magnitude_l1"`` (mean ``|log S_ref - log S_est|``).

    Raises:
        ModelInputError: mismatched batch shapes, empty or non-finite audio, or a window longer than the audio.
    """
    import librosa

    ref = np.asarray(reference, np.float64)
    est = np.asarray(estimate, np.float64)
    single = ref.ndim == 1
    ref, est = np.atleast_2d(ref), np.atleast_2d(est)
    if ref.ndim != 2 or ref.shape[0] != est.shape[0]:
        raise ModelInputError(f"spectral_distance needs waveforms of matching batch shape. Received {ref.shape} and {est.shape}")
    length = min(ref.shape[1], est.shape[1])
    if length == 0 or not (np.isfinite(ref).all() and np.isfinite(est).all()):
        raise ModelInputError("spectral_distance needs non-empty, finite waveforms.")
    if max(fft_sizes) > length:
        raise ModelInputError(f"spectral_distance: a {max(fft_sizes)}-sample window is longer than the audio ({length} samples).")
    ref, est = ref[:, :length], est[:, :length]
    totals = {"log_spectral_distance_db": 0.0, "spectral_convergence": 0.0, "log_magnitude_l1": 0.0}
    for n_fft in fft_sizes:
        s_ref = np.abs(librosa.stft(ref, n_fft=n_fft, hop_length=n_fft // 4, window="hann"))
        s_est = np.abs(librosa.stft(est, n_fft=n_fft, hop_length=n_fft // 4, window="hann"))
        log_ref, log_est = np.log(np.maximum(s_ref, _FLOOR)), np.log(np.maximum(s_est, _FLOOR))
        db = 20.0 / np.log(10.0) * (log_ref - log_est)
        totals["log_spectral_distance_db"] = totals["log_spectral_distance_db"] + np.sqrt(np.mean(db**2, axis=1)).mean(axis=-1)
        difference = np.sqrt(np.sum((s_ref - s_est) ** 2, axis=(1, 2)))
        totals["spectral_convergence"] = totals["spectral_convergence"] + difference / np.maximum(np.sqrt(np.sum(s_ref**2, axis=(1, 2))), _FLOOR)
        totals["log_magnitude_l1"] = totals["log_magnitude_l1"] + np.mean(np.abs(log_ref - log_est), axis=(1, 2))
    out = {k: np.asarray(v, np.float64) / len(fft_sizes) for k, v in totals.items()}
    return {k: float(v[0]) for k, v in out.items()} if single else out


__all__ = ["SPECTRAL_FFT_SIZES", "note_metrics", "piano_roll_notes", "spectral_distance"]
