"""Symbolic-music statistics of piano rolls and the diversity of a set of segments.

All statistics read piano rolls ``[batch, pitches, frames]`` of velocities (0 =
silent), the layout every chroma_keras generator returns. A **note** starts at an
onset: a sounding cell whose previous frame at that pitch is silent.

| statistic | per roll | meaning |
|---|---|---|
| ``pitch_class_entropy`` | bits, 0–log2(12) | spread of onsets over the 12 pitch classes (0: one pitch class) |
| ``polyphony`` | pitches | mean number of sounding pitches over the frames where something sounds |
| ``note_density`` | notes / s | onsets per second |
| ``empty_bar_rate`` | 0–1 | fraction of bars with no sounding cell |
| ``groove_consistency`` | 0–1 | 1 − mean Hamming distance between the onset grids of consecutive bars, over the bar length (Wu & Yang, 2020) |

These are the same measures the symbolic-music literature reports (MusPy,
Dong et al. 2020; the Jazz Transformer's groove consistency), written for the
piano-roll layout here; a generator's values are read against the real
segments' of the same colour.
"""

from __future__ import annotations

import numpy as np

from chroma_keras.errors import ModelInputError

STATISTICS = ("pitch_class_entropy", "polyphony", "note_density", "empty_bar_rate", "groove_consistency")


def _check_rolls(rolls) -> np.ndarray:
    rolls = np.asarray(rolls, np.float64)
    if rolls.ndim == 2:
        rolls = rolls[None]
    if rolls.ndim != 3:
        raise ModelInputError(f"piano rolls must be [batch, pitches, frames]. Received shape {rolls.shape}")
    if not np.all(np.isfinite(rolls)) or rolls.min(initial=0.0) < 0:
        raise ModelInputError("piano rolls must hold finite, non-negative velocities.")
    return rolls


def onsets(rolls) -> np.ndarray:
    """Boolean ``[batch, pitches, frames]``: where a note starts."""
    sounding = _check_rolls(rolls) > 0
    previous = np.concatenate([np.zeros_like(sounding[..., :1]), sounding[..., :-1]], axis=-1)
    return sounding & ~previous


def symbolic_statistics(rolls, frames_per_second: float, frames_per_bar: int, lowest_pitch: int = 0) -> dict[str, np.ndarray]:
    """The statistics of the module docstring, one value per roll.

    Args:
        rolls: ``[batch, pitches, frames]`` (or one ``[pitches, frames]``) velocities.
        frames_per_second: the rolls' frame rate.
        frames_per_bar: frames in one bar (e.g. 16 at 8 fps for 4/4 at 120 bpm); trailing
            frames that do not fill a bar are left out of the bar statistics.
        lowest_pitch: MIDI pitch of row 0 (sets the pitch classes).

    Returns:
        ``{name: float64 [batch]}``. A roll without notes has entropy 0, polyphony 0,
        density 0, empty-bar rate 1 and groove consistency 1.

    Raises:
        ModelInputError: on a bad shape, negative or non-finite velocities, a
            non-positive frame rate, or ``frames_per_bar`` outside ``[1, frames]``.
    """
    rolls = _check_rolls(rolls)
    batch, pitches, frames = rolls.shape
    if not frames_per_second > 0:
        raise ModelInputError(f"frames_per_second must be > 0. Received: {frames_per_second!r}")
    if not (isinstance(frames_per_bar, (int, np.integer)) and 1 <= frames_per_bar <= frames):
        raise ModelInputError(f"frames_per_bar must be an integer in [1, {frames}]. Received: {frames_per_bar!r}")
    sounding = rolls > 0
    starts = onsets(rolls)

    classes = (lowest_pitch + np.arange(pitches)) % 12
    per_class = np.zeros((batch, 12))
    np.add.at(per_class.T, classes, starts.sum(axis=2).T)
    totals = per_class.sum(axis=1, keepdims=True)
    p = np.divide(per_class, totals, out=np.zeros_like(per_class), where=totals > 0)
    entropy = -np.sum(np.where(p > 0, p * np.log2(np.where(p > 0, p, 1.0)), 0.0), axis=1)

    voices = sounding.sum(axis=1)  # [batch, frames]
    active = voices > 0
    polyphony = np.divide(voices.sum(axis=1), active.sum(axis=1), out=np.zeros(batch), where=active.sum(axis=1) > 0)
    density = starts.sum(axis=(1, 2)) / (frames / frames_per_second)

    bars = frames // frames_per_bar
    in_bars = sounding[..., : bars * frames_per_bar].reshape(batch, pitches, bars, frames_per_bar)
    empty_bar_rate = 1.0 - in_bars.any(axis=(1, 3)).mean(axis=1)
    grid = starts[..., : bars * frames_per_bar].any(axis=1).reshape(batch, bars, frames_per_bar)
    if bars > 1:
        hamming = (grid[:, 1:] != grid[:, :-1]).mean(axis=2)  # [batch, bars - 1], already over the bar length
        groove = 1.0 - hamming.mean(axis=1)
    else:
        groove = np.ones(batch)
    return {
        "pitch_class_entropy": entropy,
        "polyphony": polyphony,
        "note_density": density,
        "empty_bar_rate": empty_bar_rate,
        "groove_consistency": groove,
    }


def mean_pairwise_distance(features) -> float:
    """Mean Euclidean distance between distinct rows of ``[n, dim]`` features (n >= 2): a set's diversity."""
    x = np.asarray(features, np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ModelInputError(f"mean_pairwise_distance needs features [n >= 2, dim]. Received shape {x.shape}")
    from scipy.spatial.distance import pdist

    return float(pdist(x).mean())


def intra_class_variance(features) -> float:
    """Total variance (trace of the covariance) of ``[n, dim]`` features (n >= 2)."""
    x = np.asarray(features, np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ModelInputError(f"intra_class_variance needs features [n >= 2, dim]. Received shape {x.shape}")
    return float(np.var(x, axis=0, ddof=1).sum())


__all__ = ["STATISTICS", "intra_class_variance", "mean_pairwise_distance", "onsets", "symbolic_statistics"]
