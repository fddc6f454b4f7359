"""chromatic_match: the source project's fitness formula, on colours and partial per-axis targets."""

import numpy as np
import pytest

from chroma_keras.errors import ModelInputError
from chroma_keras.scoring import chromatic_match, target_distributions, top_k


def _prediction(t, s, o, confidence):
    return {"temporal": np.array(t), "spatial": np.array(s), "ontological": np.array(o), "confidence": np.array(confidence)}


def test_matches_the_source_formula_for_a_colour():
    pred = _prediction([[0.7, 0.2, 0.1]], [[0.1, 0.1, 0.8]], [[0.2, 0.3, 0.5]], [[0.6]])
    # Red: past / thing / known -> targets 0.8/0.1/0.1, 0.8/0.1/0.1, 0.1/0.1/0.8.
    expected = (0.7 * 0.8 + 0.2 * 0.1 + 0.1 * 0.1) + (0.1 * 0.8 + 0.1 * 0.1 + 0.8 * 0.1) + (0.2 * 0.1 + 0.3 * 0.1 + 0.5 * 0.8)
    np.testing.assert_allclose(chromatic_match(pred, "Red"), [expected / 3 * (0.5 + 0.5 * 0.6)], rtol=1e-12)
    np.testing.assert_allclose(chromatic_match(pred, "R", use_confidence=False), [expected / 3], rtol=1e-12)


def test_partial_target_scores_only_its_axes_and_ranks_candidates():
    future = _prediction([[0.0, 0.1, 0.9], [0.9, 0.1, 0.0]], [[1, 0, 0]] * 2, [[1, 0, 0]] * 2, [1.0, 1.0])
    scores = chromatic_match(future, {"temporal": "future"})
    np.testing.assert_allclose(scores, [0.0 * 0.1 + 0.1 * 0.1 + 0.9 * 0.8, 0.9 * 0.1 + 0.1 * 0.1 + 0.0 * 0.8])
    assert top_k(scores, 1).tolist() == [0]


def test_indigo_target_is_normalised():
    targets = target_distributions("Indigo")
    assert list(targets) == ["ontological"]
    np.testing.assert_allclose(targets["ontological"], np.array([0.1, 0.4, 0.4]) / 0.9)


def test_bad_targets_and_predictions_raise():
    pred = _prediction([0.3, 0.3, 0.4], [0.3, 0.3, 0.4], [0.3, 0.3, 0.4], 1.0)
    with pytest.raises(ModelInputError, match="names no mode"):
        chromatic_match(pred, "Black")
    with pytest.raises(ModelInputError, match="lacks"):
        chromatic_match({"temporal": [0.3, 0.3, 0.4]}, "Red")
    with pytest.raises(ModelInputError, match="must end in 3"):
        chromatic_match({**pred, "temporal": [0.5, 0.5]}, "Red")
