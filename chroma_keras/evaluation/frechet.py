"""Fréchet distance between two sets of embeddings (FID / FAD), with the 1/n extrapolation FD∞.

The distance between the Gaussians fitted to two sets,
``|mu_r - mu_g|^2 + tr(S_r) + tr(S_g) - 2 tr((S_r^1/2 S_g S_r^1/2)^1/2)``, is computed
in float64 with symmetric eigendecompositions only: ``S_r^1/2`` from ``eigh`` and
the trace term from the eigenvalues of the symmetric matrix ``S_r^1/2 S_g S_r^1/2``.
Unlike ``scipy.linalg.sqrtm`` of the non-symmetric product ``S_r S_g``, this never
returns complex parts or NaNs on nearly singular covariances.

The plain estimate is biased upwards by about ``c / n`` for ``n`` samples
(Chong & Forsyth, 2020), so two models scored on different sample sizes are not
comparable. :func:`frechet_distance` can also fit ``FD(n) = FD∞ + c / n`` over
random subsets and report the intercept ``FD∞``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chroma_keras.errors import ModelInputError

# Subset sizes for FD∞, as fractions of the smaller set (the largest is the whole set).
FD_INF_FRACTIONS = (0.5, 0.625, 0.75, 0.875, 1.0)


@dataclass(frozen=True)
class FrechetResult:
    """A Fréchet distance with what it was computed on.

    Attributes:
        value: the plain estimate on all samples.
        num_real, num_generated: sample sizes.
        dim: embedding width.
        fd_inf: the 1/n-extrapolated distance, or None when not asked for.
        embedding: a name for the embedding (e.g. ``"scorer penultimate"``), for reports.
    """

    value: float
    num_real: int
    num_generated: int
    dim: int
    fd_inf: float | None = None
    embedding: str = ""

    def __str__(self) -> str:
        extra = f", FD∞ {self.fd_inf:.4g}" if self.fd_inf is not None else ""
        name = f" over {self.embedding}" if self.embedding else ""
        return (
            f"Fréchet distance{name}: {self.value:.4g}{extra} "
            f"({self.num_real} real, {self.num_generated} generated, dim {self.dim})"
        )


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    eigenvalues, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ vectors.T


def frechet_distance_from_moments(mu_a, cov_a, mu_b, cov_b) -> float:
    """The Fréchet distance between ``N(mu_a, cov_a)`` and ``N(mu_b, cov_b)``.

    Args:
        mu_a, mu_b: means ``[dim]``.
        cov_a, cov_b: covariances ``[dim, dim]`` (symmetric positive semi-definite).

    Returns:
        The distance (>= 0, up to rounding), as a Python float.

    Raises:
        ModelInputError: on mismatched or non-square shapes or non-finite values.
    """
    mu_a, mu_b = np.asarray(mu_a, np.float64), np.asarray(mu_b, np.float64)
    cov_a, cov_b = np.asarray(cov_a, np.float64), np.asarray(cov_b, np.float64)
    dim = mu_a.shape[-1] if mu_a.ndim == 1 else -1
    if mu_a.ndim != 1 or mu_b.shape != mu_a.shape or cov_a.shape != (dim, dim) or cov_b.shape != (dim, dim):
        raise ModelInputError(
            "frechet_distance_from_moments needs means [dim] and covariances [dim, dim] of one dim. "
            f"Received: {mu_a.shape}, {cov_a.shape}, {mu_b.shape}, {cov_b.shape}"
        )
    if not all(np.all(np.isfinite(x)) for x in (mu_a, mu_b, cov_a, cov_b)):
        raise ModelInputError("frechet_distance_from_moments: means and covariances must be finite.")
    cov_a, cov_b = (cov_a + cov_a.T) / 2.0, (cov_b + cov_b.T) / 2.0
    root_a = _psd_sqrt(cov_a)
    middle = root_a @ cov_b @ root_a
    cross = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2.0), 0.0, None)))
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * cross)


def _check_set(name: str, x) -> np.ndarray:
    x = np.asarray(x, np.float64)
    if x.ndim != 2:
        raise ModelInputError(f"frechet_distance: {name} must be embeddings [num_samples, dim]. Received shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ModelInputError(f"frechet_distance: {name} holds NaN or infinite values.")
    return x


def _moments(x: np.ndarray):
    return x.mean(axis=0), np.cov(x, rowvar=False)


def frechet_distance(real, generated, extrapolate: bool = False, seed: int = 0, embedding: str = "") -> FrechetResult:
    """The Fréchet distance between real and generated embeddings.

    Args:
        real: ``[n_real, dim]`` embeddings of real segments.
        generated: ``[n_generated, dim]`` embeddings of generated segments.
        extrapolate: also estimate ``FD∞`` by a least-squares fit of ``FD(n) = FD∞ + c / n``
            over random subsets of both sets (sizes from half the smaller set to all of it).
        seed: seed of the subsets.
        embedding: a name for the embedding, carried into the result.

    Returns:
        a :class:`FrechetResult`.

    Raises:
        ModelInputError: on bad shapes, non-finite values, or too few samples: each set
            needs more samples than dimensions (``2 * (dim + 1)`` with ``extrapolate``, so
            the smallest subset still has a full-rank covariance); a distance on a
            rank-deficient covariance mostly measures the sample size, not the models.
    """
    real, generated = _check_set("real", real), _check_set("generated", generated)
    if real.shape[1] != generated.shape[1]:
        raise ModelInputError(
            f"frechet_distance: real and generated embeddings differ in width ({real.shape[1]} vs {generated.shape[1]})."
        )
    dim = real.shape[1]
    needed = 2 * (dim + 1) if extrapolate else dim + 1
    smaller = min(len(real), len(generated))
    if smaller < needed:
        raise ModelInputError(
            f"frechet_distance: {len(real)} real and {len(generated)} generated samples are too few for {dim}-dimensional "
            f"embeddings: each set needs at least {needed}{' (FD∞ fits on subsets of half the set)' if extrapolate else ''}, "
            "or the covariances are rank-deficient and the distance mostly measures the sample size. "
            "Generate more samples or use a lower-dimensional embedding."
        )
    value = frechet_distance_from_moments(*_moments(real), *_moments(generated))
    fd_inf = None
    if extrapolate:
        rng = np.random.default_rng(seed)
        sizes, values = [], []
        for fraction in FD_INF_FRACTIONS:
            n = max(needed // 2, int(round(fraction * smaller)))
            a = real[rng.choice(len(real), n, replace=False)]
            b = generated[rng.choice(len(generated), n, replace=False)]
            sizes.append(1.0 / n)
            values.append(frechet_distance_from_moments(*_moments(a), *_moments(b)))
        slope, intercept = np.polyfit(np.asarray(sizes), np.asarray(values), 1)
        fd_inf = float(intercept)
    return FrechetResult(value, len(real), len(generated), dim, fd_inf, embedding)


def frechet_interval(real, generated, confidence: float = 0.95, num_resamples: int = 200, seed: int = 0):
    """A percentile bootstrap interval for the plain Fréchet distance.

    Both sets are resampled with replacement ``num_resamples`` times and the distance is
    recomputed. The interval shows how much the figure moves with the particular samples
    drawn; it sits above the population distance, since resampling repeats rows and the
    plain estimate is biased upward at finite n (see FD∞).

    Args:
        real, generated: ``[n, dim]`` embeddings (each set needs more than ``dim`` rows).
        confidence: the interval's level.
        num_resamples: bootstrap resamples.
        seed: seed of the resamples.

    Returns:
        an :class:`~chroma_keras.evaluation.intervals.Estimate` whose ``value`` is the plain distance.

    Raises:
        ModelInputError: what :func:`frechet_distance` raises, or ``confidence`` outside (0, 1).
    """
    from chroma_keras.evaluation.intervals import Estimate

    if not 0 < confidence < 1:
        raise ModelInputError(f"confidence must be in (0, 1). Received: {confidence!r}")
    value = frechet_distance(real, generated).value
    real, generated = _check_set("real", real), _check_set("generated", generated)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(int(num_resamples)):
        a = real[rng.integers(0, len(real), len(real))]
        b = generated[rng.integers(0, len(generated), len(generated))]
        draws.append(frechet_distance_from_moments(*_moments(a), *_moments(b)))
    tail = 50.0 * (1.0 - confidence)
    low, high = np.percentile(draws, [tail, 100.0 - tail])
    return Estimate(float(value), float(low), float(high), float(confidence), min(len(real), len(generated)))


__all__ = ["FD_INF_FRACTIONS", "FrechetResult", "frechet_distance", "frechet_distance_from_moments", "frechet_interval"]
