"""The chromatic match: how well a scorer's prediction fits a target mode (the generators' fitness).

Pure NumPy, so evolutionary loops and evaluation code can call it on the
scorer's outputs without a backend.

The formula keeps the source project's fitness: per axis, the dot product of the
predicted distribution with the target distribution, averaged over the axes
the target names, times ``0.5 + 0.5 * confidence``. A target may be a colour
(all three axes) or a partial per-axis condition (``{"temporal": "future"}``:
only that axis counts).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from chroma_keras import modes
from chroma_keras.errors import ModelInputError


def target_distributions(target) -> dict[str, np.ndarray]:
    """Per-axis target distributions (summing to 1) for the axes a target names.

    Args:
        target: a colour (name, letter, ``modes.Colour``), a per-axis dict / string /
            ``ModeCondition`` accepted by ``modes.resolve_condition``.

    Returns:
        ``{axis: float64 [3]}`` for each axis with at least one mode. Black and
        White (no modes) name no axis.
    """
    condition = modes.resolve_condition(target)
    soft = modes.soft_targets(condition)
    out = {}
    for axis in modes.AXES:
        if condition.ids()[modes.AXES.index(axis)]:
            vector = np.asarray(soft[axis], np.float64)
            out[axis] = vector / vector.sum()
    return out


def chromatic_match(prediction: Mapping, target, use_confidence: bool = True) -> np.ndarray:
    """How well predictions match a target mode, in [0, 1] (higher is better).

    Args:
        prediction: a scorer output dict with ``temporal``, ``spatial``,
            ``ontological`` (``[batch, 3]`` or ``[3]`` probabilities) and,
            when ``use_confidence``, ``confidence`` (``[batch, 1]``, ``[batch]`` or scalar).
        target: a colour or per-axis condition (see :func:`target_distributions`).
        use_confidence: multiply by ``0.5 + 0.5 * confidence`` (the source project's fitness).

    Returns:
        float64 ``[batch]`` (or a 0-d array for unbatched input).

    Raises:
        ModelInputError: when the target names no axis or the prediction lacks a key.
    """
    targets = target_distributions(target)
    if not targets:
        raise ModelInputError(
            f"target {target!r} names no mode on any axis (Black and White have none); "
            "expected a colour with modes or a per-axis condition."
        )
    missing = [k for k in list(targets) + (["confidence"] if use_confidence else []) if k not in prediction]
    if missing:
        raise ModelInputError(f"prediction lacks {missing}; expected the dict returned by Scorer.score().")
    scores = []
    for axis, vector in targets.items():
        p = np.asarray(prediction[axis], np.float64)
        if p.shape[-1] != 3:
            raise ModelInputError(f"prediction[{axis!r}] must end in 3 probabilities. Received shape {p.shape}")
        scores.append(p @ vector)
    match = np.mean(scores, axis=0)
    if use_confidence:
        confidence = np.asarray(prediction["confidence"], np.float64)
        if confidence.ndim and confidence.shape[-1] == 1:
            confidence = confidence[..., 0]
        match = match * (0.5 + 0.5 * confidence)
    return match


def top_k(candidates_scores, k: int) -> np.ndarray:
    """Indices of the ``k`` best scores, best first (ties keep the earlier candidate)."""
    scores = np.asarray(candidates_scores)
    if not 1 <= k:
        raise ModelInputError(f"k must be >= 1. Received: k={k}")
    return np.argsort(-scores, kind="stable")[:k]
