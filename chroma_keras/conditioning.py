"""Turn user-facing conditions into the model's condition arrays.

Every generator takes the same two condition inputs (see ``data.keys``): the
per-axis multi-hot mode vector and the rebracketing feature vector. This module
builds them from colours, per-axis dicts or lists of either.
"""

from __future__ import annotations

from typing import Mapping, Sequence, Union

import numpy as np

from chroma_keras import modes, rebracketing
from chroma_keras.data import keys
from chroma_keras.errors import ModelInputError

RebracketingInput = Union[None, Mapping[str, object], np.ndarray, Sequence[Mapping[str, object]]]


def _rebracketing_row(value) -> np.ndarray:
    if value is None:
        return np.zeros(rebracketing.FEATURE_SIZE, np.float32)
    if isinstance(value, Mapping):
        return rebracketing.features_from_kwargs(**value)
    row = np.asarray(value, dtype=np.float32)
    if row.shape != (rebracketing.FEATURE_SIZE,):
        raise ModelInputError(
            f"A rebracketing feature vector must have shape ({rebracketing.FEATURE_SIZE},). Received: shape={row.shape}"
        )
    return row


def condition_arrays(condition, num_samples: int, rebracketing_values: RebracketingInput = None) -> dict[str, np.ndarray]:
    """Build ``{keys.MODES: [n, 9], keys.REBRACKETING: [n, R]}`` for ``num_samples`` rows.

    Args:
        condition: one condition for every row (anything
            :func:`modes.resolve_condition` accepts, None for unconditional) or a
            list/tuple of ``num_samples`` conditions.
        num_samples: number of rows.
        rebracketing_values: None (unknown), one mapping of rebracketing fields
            (``{"rebracketing_intensity": 6.0}``) for every row, a list of mappings,
            or an array ``[n, R]`` / ``[R]`` of precomputed features.
    """
    if not isinstance(num_samples, (int, np.integer)) or isinstance(num_samples, bool) or num_samples < 1:
        raise ModelInputError(f"num_samples must be a positive integer. Received: num_samples={num_samples!r}")
    if isinstance(condition, (list, tuple)):
        if len(condition) != num_samples:
            raise ModelInputError(
                f"Got {len(condition)} conditions for num_samples={num_samples}; pass one condition or one per sample."
            )
        mode_rows = [modes.resolve_condition(c).multi_hot() for c in condition]
    else:
        mode_rows = [modes.resolve_condition(condition).multi_hot()] * num_samples
    if isinstance(rebracketing_values, (list, tuple)):
        if len(rebracketing_values) != num_samples:
            raise ModelInputError(
                f"Got {len(rebracketing_values)} rebracketing entries for num_samples={num_samples}."
            )
        reb_rows = [_rebracketing_row(v) for v in rebracketing_values]
    elif isinstance(rebracketing_values, np.ndarray) and rebracketing_values.ndim == 2:
        if rebracketing_values.shape != (num_samples, rebracketing.FEATURE_SIZE):
            raise ModelInputError(
                f"rebracketing array must have shape ({num_samples}, {rebracketing.FEATURE_SIZE}). "
                f"Received: shape={rebracketing_values.shape}"
            )
        reb_rows = list(rebracketing_values.astype(np.float32))
    else:
        reb_rows = [_rebracketing_row(rebracketing_values)] * num_samples
    return {keys.MODES: np.stack(mode_rows).astype(np.float32), keys.REBRACKETING: np.stack(reb_rows).astype(np.float32)}
