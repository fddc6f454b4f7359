"""Rebracketing parameters (song-level, from the concept text) as model features.

The data stores them in the JSON column ``training_data`` (DESIGN §3). Models see
a fixed-length float vector: the six scores, the one-hot type, and a presence
flag (0 when the segment has no rebracketing data, so "unknown" differs from
"all scores zero").
"""

from __future__ import annotations

import json
import math
from typing import Mapping, Union

import numpy as np

from chroma_keras.errors import DataError

REBRACKETING_TYPES = ("causal", "spatial", "perceptual", "experiential", "temporal")
# Scores in [0, 1], except intensity (matches per 100 words, unbounded).
SCORE_FIELDS = (
    "rebracketing_intensity",
    "rebracketing_coverage",
    "ontological_uncertainty",
    "memory_discrepancy_severity",
    "temporal_complexity_score",
    "boundary_fluidity_score",
)
TYPE_FIELD = "rebracketing_type"
FEATURE_SIZE = len(SCORE_FIELDS) + len(REBRACKETING_TYPES) + 1
PRESENCE_INDEX = FEATURE_SIZE - 1
# Intensity is squashed as log1p(x) / log1p(INTENSITY_SCALE) so typical values land in [0, 1].
INTENSITY_SCALE = 20.0

RebracketingLike = Union[str, Mapping[str, object], None]


def parse_training_data(value: RebracketingLike, source: str = "training_data") -> dict:
    """Parse the ``training_data`` JSON string (or an already-parsed mapping).

    Raises:
        DataError: naming ``source`` when the string is not a JSON object.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (bytes, str)):
        if not value.strip():
            return {}
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as exc:
            raise DataError(f"{source}: training_data is not valid JSON ({exc.msg} at char {exc.pos}).") from exc
        if not isinstance(parsed, dict):
            raise DataError(f"{source}: training_data must be a JSON object. Received: {type(parsed).__name__}")
        return parsed
    raise DataError(f"{source}: training_data must be a JSON string or a mapping. Received: {type(value).__name__}")


def rebracketing_features(value: RebracketingLike, source: str = "training_data") -> np.ndarray:
    """Encode rebracketing parameters as a float32 vector of length :data:`FEATURE_SIZE`.

    Missing scores count as 0; an unknown ``rebracketing_type`` leaves the type
    one-hot empty; a non-numeric score or a value outside its range raises.

    Args:
        value: the ``training_data`` JSON string or a mapping with the fields above.
        source: what to name in error messages (e.g. the segment_id).
    """
    data = parse_training_data(value, source)
    features = np.zeros(FEATURE_SIZE, dtype=np.float32)
    if not any(k in data for k in SCORE_FIELDS + (TYPE_FIELD,)):
        return features
    for i, field in enumerate(SCORE_FIELDS):
        raw = data.get(field)
        if raw is None:
            continue
        try:
            score = float(raw)
        except (TypeError, ValueError):
            raise DataError(f"{source}: {field} must be a number. Received: {raw!r}") from None
        if math.isnan(score) or score < 0 or (field != "rebracketing_intensity" and score > 1):
            allowed = ">= 0" if field == "rebracketing_intensity" else "in [0, 1]"
            raise DataError(f"{source}: {field} must be {allowed}. Received: {raw!r}")
        if field == "rebracketing_intensity":
            score = min(math.log1p(score) / math.log1p(INTENSITY_SCALE), 1.0)
        features[i] = score
    kind = data.get(TYPE_FIELD)
    if isinstance(kind, str) and kind.lower() in REBRACKETING_TYPES:
        features[len(SCORE_FIELDS) + REBRACKETING_TYPES.index(kind.lower())] = 1.0
    features[PRESENCE_INDEX] = 1.0
    return features


def features_from_kwargs(**scores) -> np.ndarray:
    """Convenience for generation: ``features_from_kwargs(rebracketing_intensity=5.0,
    rebracketing_type="temporal")``. Unknown field names raise a DataError."""
    allowed = SCORE_FIELDS + (TYPE_FIELD,)
    unknown = [k for k in scores if k not in allowed]
    if unknown:
        raise DataError(f"Unknown rebracketing field {unknown[0]!r}. Expected among {list(allowed)}.")
    return rebracketing_features(scores, source="rebracketing")
