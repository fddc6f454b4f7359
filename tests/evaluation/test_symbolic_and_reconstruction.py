"""Symbolic statistics, diversity, note-level reconstruction metrics and bootstrap intervals."""

import numpy as np
import pytest

from chroma_keras.errors import ModelInputError
from chroma_keras.evaluation import (
    bootstrap_interval,
    intra_class_variance,
    mean_pairwise_distance,
    note_metrics,
    piano_roll_notes,
    symbolic_statistics,
)


def _roll(notes, pitches=24, frames=16):
    """notes: (row, start, end) triples."""
    roll = np.zeros((pitches, frames), np.float32)
    for row, start, end in notes:
        roll[row, start:end] = 0.8
    return roll


def test_symbolic_statistics_golden_values():
    # Rows 0 and 12 share pitch class 0 (lowest_pitch 48 = C); row 7 is G.
    # Bar length 4 frames, 4 bars, 2 fps (8 s).
    roll = _roll([(0, 0, 2), (12, 0, 2), (7, 4, 5), (0, 8, 12)])
    stats = symbolic_statistics(roll, frames_per_second=2.0, frames_per_bar=4, lowest_pitch=48)
    # Onsets by class: C 3, G 1 -> entropy of (3/4, 1/4).
    assert stats["pitch_class_entropy"][0] == pytest.approx(-(0.75 * np.log2(0.75) + 0.25 * np.log2(0.25)))
    # Sounding frames: 0,1 (2 voices), 4 (1), 8..11 (1) -> (2+2+1+4) / 7.
    assert stats["polyphony"][0] == pytest.approx(9 / 7)
    assert stats["note_density"][0] == pytest.approx(4 / 8.0)
    assert stats["empty_bar_rate"][0] == pytest.approx(1 / 4)  # the last bar is silent
    # Onset grids per bar: [1000], [1000], [1000], [0000] -> hammings 0, 0, 1/4.
    assert stats["groove_consistency"][0] == pytest.approx(1 - (0 + 0 + 0.25) / 3)
    silent = symbolic_statistics(np.zeros((2, 24, 16)), 2.0, 4)
    assert silent["pitch_class_entropy"].tolist() == [0, 0] and silent["empty_bar_rate"].tolist() == [1, 1]
    assert silent["groove_consistency"].tolist() == [1, 1]
    with pytest.raises(ModelInputError, match="frames_per_bar"):
        symbolic_statistics(roll, 2.0, 17)
    with pytest.raises(ModelInputError, match="non-negative"):
        symbolic_statistics(-roll, 2.0, 4)


def test_diversity_measures():
    x = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 0.0]])
    assert mean_pairwise_distance(x) == pytest.approx((5 + 0 + 5) / 3)
    assert intra_class_variance(x) == pytest.approx(np.var(x[:, 0], ddof=1) + np.var(x[:, 1], ddof=1))
    assert mean_pairwise_distance(np.ones((4, 3))) == 0.0
    with pytest.raises(ModelInputError, match="n >= 2"):
        mean_pairwise_distance(np.ones((1, 3)))


def test_piano_roll_notes_reads_runs():
    intervals, pitches = piano_roll_notes(_roll([(3, 2, 5), (1, 2, 3), (3, 7, 8)]), frames_per_second=4.0, lowest_pitch=60)
    np.testing.assert_allclose(intervals, [[0.5, 0.75], [0.5, 1.25], [1.75, 2.0]])
    np.testing.assert_array_equal(pitches, [61, 63, 63])


def test_note_metrics_count_matched_notes():
    reference = _roll([(0, 0, 4), (5, 4, 8), (9, 8, 12)])
    # One exact note, one with a late onset (miss), one extra note; the third reference note is absent.
    estimate = _roll([(0, 0, 4), (5, 6, 8), (2, 12, 14)])
    m = note_metrics(reference[None], estimate[None], frames_per_second=4.0)
    assert m["precision"][0] == pytest.approx(1 / 3) and m["recall"][0] == pytest.approx(1 / 3)
    assert m["f1"][0] == pytest.approx(1 / 3)
    assert m["velocity_mse"][0] == pytest.approx(np.mean((reference - estimate) ** 2))
    # Offsets: same onset, length 4 vs 2 frames: matches on onset only.
    short = _roll([(0, 0, 2)])
    assert note_metrics(_roll([(0, 0, 4)])[None], short[None], 4.0)["f1"][0] == 1.0
    assert note_metrics(_roll([(0, 0, 4)])[None], short[None], 4.0, match_offsets=True)["f1"][0] == 0.0
    empty = np.zeros((1, 24, 16))
    assert note_metrics(empty, empty, 4.0)["f1"][0] == 1.0 and note_metrics(reference[None], empty, 4.0)["recall"][0] == 0.0
    with pytest.raises(ModelInputError, match="one shape"):
        note_metrics(reference[None], estimate[None, :, :8], 4.0)


def test_bootstrap_interval_covers_the_mean():
    rng = np.random.default_rng(0)
    hits = (rng.random(400) < 0.3).astype(float)
    estimate = bootstrap_interval(hits, seed=1)
    assert estimate.low < estimate.value < estimate.high and estimate.value == pytest.approx(hits.mean())
    assert 0.2 < estimate.low and estimate.high < 0.4 and estimate.num_samples == 400 and "95% CI" in str(estimate)
    constant = bootstrap_interval(np.ones(10))
    assert (constant.low, constant.high) == (1.0, 1.0)
    with pytest.raises(ModelInputError, match="at least 2"):
        bootstrap_interval([1.0])
