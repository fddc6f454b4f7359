"""A cache of precomputed features (mel spectrograms, piano rolls, tokens...) per segment.

Entries are keyed by ``segment_id`` **and** a hash of the preprocessing config
(sha256 of the config's canonical JSON: sorted keys, no whitespace), so features
computed with other settings are never reused. Layout::

    root/
      <config hash>/
        config.json                     the canonical config, for people
        01_01_seg_0001_track_01.npz     one entry per segment
        ~<sha1 of the id>.npz           ids that are not safe file names

One ``.npz`` per segment (not a parquet) because the cache is filled one
segment at a time, possibly by several data-loader workers at once, and read
back at random: a file per entry needs no compaction or locking, and a write
goes to a temporary file that is renamed into place (``os.replace`` is atomic),
so a crash mid-write never leaves a half entry where a reader looks. Each file
also records its segment_id and config hash and is checked on read; an
unreadable or mismatched file counts as a miss and is recomputed.

Example:

>>> cache = FeatureCache("/tmp/features", {"sample_rate": 16000, "n_mels": 64})  # doctest: +SKIP
>>> mel = cache.get_or_compute(record.segment_id, lambda: {"mel": compute_mel(record.audio)})  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import re
import tempfile
import zipfile
from typing import Callable, Mapping

import numpy as np

from chroma_keras.errors import DataError

HASH_CHARS = 16
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_ID_KEY = "__segment_id__"
_HASH_KEY = "__config_hash__"


def _plain(value, path: str):
    """The config as JSON-ready plain values (numpy scalars, tuples and paths included)."""
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise DataError(f"feature cache config: key {key!r} at {path or 'top level'} must be a string.")
            out[key] = _plain(item, f"{path}.{key}" if path else key)
        return out
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist(), path)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pathlib.PurePath):
        return str(value)
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    raise DataError(
        f"feature cache config: {path or 'value'} has type {type(value).__name__}; expected JSON-like data."
    )


def canonical_config_json(config: Mapping) -> str:
    """The canonical JSON of a config: sorted keys, compact separators, no NaN.

    Args:
        config: a mapping of JSON-like values (numpy scalars/arrays, tuples and
            paths are converted).

    Returns:
        The JSON string.

    Raises:
        DataError: for non-string keys, non-JSON values or NaN/Inf.
    """
    if not isinstance(config, Mapping):
        raise DataError(f"feature cache config must be a mapping. Received: {type(config).__name__}")
    try:
        plain = _plain(config, "")
        return json.dumps(plain, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError as exc:
        raise DataError(f"feature cache config: {exc} (NaN/Inf are not allowed).") from exc


def config_hash(config: Mapping) -> str:
    """A stable hash of a preprocessing config: the first 16 hex digits of the sha256 of its canonical JSON."""
    return hashlib.sha256(canonical_config_json(config).encode("utf-8")).hexdigest()[:HASH_CHARS]


def entry_name(segment_id: str) -> str:
    """The file name of a segment's entry (the id itself when safe, else ``~`` + its sha1)."""
    if _SAFE_ID.fullmatch(segment_id):
        return f"{segment_id}.npz"
    return "~" + hashlib.sha1(segment_id.encode("utf-8")).hexdigest() + ".npz"


class FeatureCache:
    """Features per segment, valid for one preprocessing config.

    Args:
        root: cache folder (created when missing).
        config: the preprocessing config the features depend on.
        durable: fsync each entry before it is renamed into place (slower;
            survives power loss, not only crashes).

    Attributes:
        config_hash: this config's hash; ``directory`` is ``root / config_hash``.
        hits: ``get`` calls that found an entry.
        misses: ``get`` calls that did not.

    Raises:
        DataError: when the config is not JSON-like, or the folder's
            ``config.json`` holds a different config under the same hash.
    """

    def __init__(self, root, config: Mapping, *, durable: bool = False):
        self.root = pathlib.Path(root)
        self.config_json = canonical_config_json(config)
        self.config_hash = config_hash(config)
        self.directory = self.root / self.config_hash
        self.durable = bool(durable)
        self.hits = 0
        self.misses = 0
        self.directory.mkdir(parents=True, exist_ok=True)
        stored = self.directory / "config.json"
        if stored.is_file():
            if stored.read_text(encoding="utf-8") != self.config_json:
                raise DataError(f"{stored}: holds another config under hash {self.config_hash}; remove the folder.")
        else:
            self._atomic_write(stored, lambda handle: handle.write(self.config_json.encode("utf-8")))

    def path(self, segment_id: str) -> pathlib.Path:
        """Where the entry of ``segment_id`` lives."""
        return self.directory / entry_name(str(segment_id))

    def __contains__(self, segment_id) -> bool:
        return self.path(segment_id).is_file()

    def _atomic_write(self, target: pathlib.Path, write: Callable) -> None:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                write(handle)
                if self.durable:
                    handle.flush()
                    os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            pathlib.Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, segment_id: str) -> dict[str, np.ndarray] | None:
        """The cached arrays of a segment, or None (missing, unreadable or from another config).

        Args:
            segment_id: the segment.

        Returns:
            ``{name: array}`` or None.
        """
        segment_id = str(segment_id)
        path = self.path(segment_id)
        arrays = None
        if path.is_file():
            try:
                with np.load(path, allow_pickle=False) as data:
                    if str(data[_HASH_KEY]) == self.config_hash and str(data[_ID_KEY]) == segment_id:
                        arrays = {k: data[k] for k in data.files if not k.startswith("__")}
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
                arrays = None  # a damaged entry is a miss; the next put replaces it
        if arrays is None:
            self.misses += 1
        else:
            self.hits += 1
        return arrays

    def put(self, segment_id: str, arrays: Mapping) -> dict[str, np.ndarray]:
        """Store a segment's arrays (replacing any previous entry atomically).

        Args:
            segment_id: the segment.
            arrays: ``{name: array-like}``; names are non-empty strings not starting
                with ``__``; object arrays are not allowed.

        Returns:
            The arrays as numpy arrays.

        Raises:
            DataError: naming the segment and the bad name or value.
        """
        segment_id = str(segment_id)
        if not isinstance(arrays, Mapping) or not arrays:
            raise DataError(f"{segment_id}: feature cache entries must be a non-empty mapping of name -> array.")
        payload = {}
        for name, value in arrays.items():
            if not isinstance(name, str) or not name or name.startswith("__") or "/" in name:
                raise DataError(
                    f"{segment_id}: feature name {name!r} must be a non-empty string without '/' or a '__' prefix."
                )
            array = np.asarray(value)
            if array.dtype.hasobject:
                raise DataError(f"{segment_id}: feature {name!r} is an object array; expected numeric or string data.")
            payload[name] = array
        stored = dict(payload, **{_ID_KEY: np.str_(segment_id), _HASH_KEY: np.str_(self.config_hash)})
        self._atomic_write(self.path(segment_id), lambda handle: np.savez(handle, **stored))
        return payload

    def get_or_compute(self, segment_id: str, fn: Callable[[], Mapping]) -> dict[str, np.ndarray]:
        """The cached arrays, or ``fn()``'s result after storing it.

        Args:
            segment_id: the segment.
            fn: called without arguments on a miss; returns ``{name: array-like}``.

        Returns:
            ``{name: array}``.
        """
        arrays = self.get(segment_id)
        if arrays is None:
            arrays = self.put(segment_id, fn())
        return arrays
