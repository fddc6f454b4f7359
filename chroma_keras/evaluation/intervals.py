"""Bootstrap confidence intervals for reported figures (scipy's BCa bootstrap)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chroma_keras.errors import ModelInputError


@dataclass(frozen=True)
class Estimate:
    """A figure with its bootstrap confidence interval.

    Attributes:
        value: the statistic on all samples.
        low, high: the interval's bounds.
        confidence: the interval's level (e.g. 0.95).
        num_samples: samples the figure was computed on.
    """

    value: float
    low: float
    high: float
    confidence: float
    num_samples: int

    def __str__(self) -> str:
        return f"{self.value:.4g} [{self.low:.4g}, {self.high:.4g}] ({self.confidence:.0%} CI, n={self.num_samples})"


def bootstrap_interval(values, statistic=np.mean, confidence: float = 0.95, num_resamples: int = 2000, seed: int = 0) -> Estimate:
    """A statistic of per-sample values with a bootstrap confidence interval.

    Args:
        values: ``[n]`` per-sample values (e.g. 1/0 per generated segment for a rate).
        statistic: a NumPy reduction accepting ``axis=`` (default: the mean).
        confidence: interval level in (0, 1).
        num_resamples: bootstrap resamples.
        seed: seed of the resampling.

    Returns:
        an :class:`Estimate`. With all values equal the interval is that value.

    Raises:
        ModelInputError: fewer than 2 values, non-finite values or a bad confidence.
    """
    from scipy import stats

    x = np.asarray(values, np.float64).ravel()
    if len(x) < 2 or not np.all(np.isfinite(x)):
        raise ModelInputError(f"bootstrap_interval needs at least 2 finite values. Received {len(x)} values.")
    if not 0.0 < confidence < 1.0:
        raise ModelInputError(f"confidence must be in (0, 1). Received: {confidence!r}")
    value = float(statistic(x, axis=-1))
    if np.all(x == x[0]):
        return Estimate(value, value, value, confidence, len(x))
    result = stats.bootstrap(
        (x,), statistic, confidence_level=confidence, n_resamples=num_resamples, method="BCa", random_state=np.random.default_rng(seed)
    )
    low, high = result.confidence_interval
    return Estimate(value, float(low), float(high), confidence, len(x))


__all__ = ["Estimate", "bootstrap_interval"]
