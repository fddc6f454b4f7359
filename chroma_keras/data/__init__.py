"""Data: segment schema, readers, datasets and splits.

The entry points are importable from here; they load lazily so that
``import chroma_keras.data`` stays cheap (no keras, no pyarrow until used):

* :func:`open_segments` — a media/metadata parquet, a folder, or ``"demo"`` →
  a streaming :class:`SegmentSource` with ``len()``, iteration and ``.report()``.
* :class:`MultimodalDataset` — the ``keras.utils.PyDataset`` of dict batches.
"""

import importlib

_EXPORTS = {
    "open_segments": "chroma_keras.data.segments",
    "SegmentRecord": "chroma_keras.data.segments",
    "SegmentSource": "chroma_keras.data.segments",
    "SegmentReport": "chroma_keras.data.segments",
    "FeatureCache": "chroma_keras.data.feature_cache",
    "MultimodalDataset": "chroma_keras.data.multimodal_dataset",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'chroma_keras.data' has no attribute {name!r}")
