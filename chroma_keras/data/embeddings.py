"""Join precomputed-embedding parquets onto segments by ``segment_id``.

An embedding parquet holds ``segment_id`` plus one or more ``list<float32>``
columns (e.g. ``audio_embedding``, ``text_embedding``). Opening one reads only
its ``segment_id`` column, once, into an id → (row group, row) index (about
200 bytes per id: ~2.5 MB for 11,600 segments). Vectors are read a row group at
a time and the most recent ``cache_row_groups`` decoded row groups are kept, so
a pass in file order reads each row group once and memory stays at
``cache_row_groups × rows per group × width × 4`` bytes per column.

Example:

>>> join = EmbeddingJoin.open(["clap.parquet", "minilm.parquet"])  # doctest: +SKIP
>>> found, missing = join.lookup("01_01_seg_0001_track_01")  # doctest: +SKIP
>>> found["audio_embedding"].shape  # doctest: +SKIP
(512,)
"""

from __future__ import annotations

import os
import pathlib
from collections import OrderedDict
from typing import Iterable

import numpy as np

from chroma_keras.errors import DataError


def _is_float_list(kind) -> bool:
    import pyarrow as pa

    if not (pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)):
        return False
    return pa.types.is_floating(kind.value_type)


class EmbeddingTable:
    """One embedding parquet, looked up by ``segment_id``.

    Args:
        path: the parquet file (``segment_id`` + list<float> columns; other
            columns are ignored).
        cache_row_groups: decoded row groups kept in memory.

    Raises:
        DataError: when the file is missing or unreadable, has no ``segment_id``,
            or has no list<float> column.
    """

    def __init__(self, path, cache_row_groups: int = 2):
        import pyarrow.parquet as pq

        self.path = pathlib.Path(path)
        if not self.path.is_file():
            raise DataError(f"{self.path}: no such embedding file.")
        try:
            self._parquet = pq.ParquetFile(self.path)
        except Exception as exc:
            raise DataError(f"{self.path}: not a readable parquet file ({exc}).") from exc
        schema = self._parquet.schema_arrow
        if "segment_id" not in schema.names:
            raise DataError(f"{self.path}: embedding parquet has no segment_id column.")
        self.names = tuple(f.name for f in schema if f.name != "segment_id" and _is_float_list(f.type))
        if not self.names:
            raise DataError(f"{self.path}: no list<float32> embedding column; found {schema.names}.")
        self.cache_row_groups = max(int(cache_row_groups), 1)
        self._cache: OrderedDict[int, dict] = OrderedDict()
        self._where: dict[str, tuple[int, int]] = {}
        for group in range(self._parquet.num_row_groups):
            ids = self._parquet.read_row_group(group, columns=["segment_id"]).column(0).to_pylist()
            for row, segment_id in enumerate(ids):
                if segment_id is not None:
                    self._where.setdefault(str(segment_id), (group, row))  # first of a repeated id wins

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, segment_id) -> bool:
        return segment_id in self._where

    def _group(self, group: int) -> dict:
        if group in self._cache:
            self._cache.move_to_end(group)
            return self._cache[group]
        table = self._parquet.read_row_group(group, columns=list(self.names))
        decoded = {name: table.column(name).to_numpy(zero_copy_only=False) for name in self.names}
        self._cache[group] = decoded
        while len(self._cache) > self.cache_row_groups:
            self._cache.popitem(last=False)
        return decoded

    def lookup(self, segment_id: str) -> tuple[dict, dict]:
        """The embeddings of one segment.

        Args:
            segment_id: the segment.

        Returns:
            ``(found, missing)``: ``found`` maps column → float32 vector (a copy);
            ``missing`` maps column → reason (``missing`` when the id or value is
            absent, ``non_finite`` for NaN/Inf values).
        """
        place = self._where.get(segment_id)
        if place is None:
            return {}, {name: "missing" for name in self.names}
        group, row = place
        decoded = self._group(group)
        found, missing = {}, {}
        for name in self.names:
            value = decoded[name][row]
            if value is None:
                missing[name] = "missing"
                continue
            vector = np.array(value, dtype=np.float32)
            if not np.isfinite(vector).all():
                missing[name] = "non_finite"
            else:
                found[name] = vector
        return found, missing


class EmbeddingJoin:
    """Several :class:`EmbeddingTable` s looked up together.

    Args:
        tables: the tables; their column names must not overlap.

    Raises:
        DataError: when two files share an embedding column name.
    """

    def __init__(self, tables: Iterable[EmbeddingTable]):
        self.tables = tuple(tables)
        owner: dict[str, pathlib.Path] = {}
        for table in self.tables:
            for name in table.names:
                if name in owner:
                    raise DataError(
                        f"{table.path}: embedding column {name!r} is also in {owner[name]}; rename one of them."
                    )
                owner[name] = table.path
        self.names = tuple(owner)

    @classmethod
    def open(cls, paths, cache_row_groups: int = 2) -> "EmbeddingJoin":
        """Open one path or a list of paths.

        Args:
            paths: a path or a sequence of paths.
            cache_row_groups: passed to each :class:`EmbeddingTable`.

        Returns:
            The join.
        """
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        return cls(EmbeddingTable(p, cache_row_groups=cache_row_groups) for p in paths)

    def lookup(self, segment_id: str) -> tuple[dict, dict]:
        """Merged :meth:`EmbeddingTable.lookup` over all tables."""
        found, missing = {}, {}
        for table in self.tables:
            f, m = table.lookup(segment_id)
            found.update(f)
            missing.update(m)
        return found, missing
