"""MacroF1 agrees with scikit-learn's macro F1 over the classes that occur."""

import numpy as np
import pytest

from chroma_keras.training.macro_f1 import MacroF1


def test_matches_sklearn_over_batches_with_weights():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 6, 200)  # classes 6..8 never occur
    y_pred = np.where(rng.random(200) < 0.6, y_true, rng.integers(0, 9, 200))
    weight = (rng.random(200) < 0.8).astype("float32")
    metric = MacroF1(9)
    for start in range(0, 200, 64):
        part = slice(start, start + 64)
        metric.update_state(y_true[part], y_pred[part], sample_weight=weight[part])
    keep = weight > 0
    labels = np.union1d(y_true[keep], y_pred[keep])
    expected = sklearn_metrics.f1_score(y_true[keep], y_pred[keep], labels=labels, average="macro")
    np.testing.assert_allclose(float(metric.result()), expected, rtol=1e-5)
    metric.reset_state()
    assert float(metric.result()) == 0.0
