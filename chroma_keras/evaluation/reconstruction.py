"""Reconstruction quality of piano rolls: velocity MSE and note-level precision / recall / F1.

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


__all__ = ["note_metrics", "piano_roll_notes"]
