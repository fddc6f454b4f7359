"""Stream segments from the user's media parquet (DESIGN §3), one row group at a time.

``training_segments_media.parquet`` is about 15 GB, so it is never loaded whole:
each row group is read on its own, only the requested columns, ``batch_rows``
rows at a time, and binary values reach the decoder as zero-copy
``pyarrow.Buffer`` views. Peak memory is therefore set by the row group and
batch size, not by the number of segments (``benchmarks/media_parquet_memory.py``
measures it). Everything else (dedup, labels, masking, reports) is shared with
the other readers in :mod:`chroma_keras.data.segments`.

Example:

>>> from chroma_keras.data.media_parquet import MediaParquetSource
>>> from chroma_keras.data.segments import ReaderOptions
>>> source = MediaParquetSource("training_segments_media.parquet", options=ReaderOptions())  # doctest: +SKIP
>>> for record in source: ...  # doctest: +SKIP
"""

from __future__ import annotations

import pathlib
from typing import Iterator, Sequence

from chroma_keras.data.segments import ROW_FIELDS, ReaderOptions, SegmentSource
from chroma_keras.errors import DataError

BINARY_FIELDS = ("audio_waveform", "midi_binary")
# Read buffer per column stream: pages are fetched incrementally instead of a whole
# column chunk (hundreds of MB of audio per row group) at once.
READ_BUFFER_BYTES = 1 << 20


def _open_parquet(path: pathlib.Path):
    import pyarrow.parquet as pq

    if not path.is_file():
        raise DataError(f"{path}: no such segment file.")
    try:
        return pq.ParquetFile(path, buffer_size=READ_BUFFER_BYTES, pre_buffer=False)
    except Exception as exc:  # pyarrow raises several types for non-parquet input
        raise DataError(f"{path}: not a readable parquet file ({exc}).") from exc


def _check_binary_types(path: pathlib.Path, schema) -> None:
    import pyarrow as pa

    for name in BINARY_FIELDS:
        if name in schema.names:
            kind = schema.field(name).type
            if not (pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind)):
                raise DataError(f"{path}: column {name!r} must be binary (raw bytes). Received: {kind}")


def batch_rows(batch, binary_fields: Sequence[str] = BINARY_FIELDS) -> Iterator[dict]:
    """The rows of a ``pyarrow.RecordBatch`` as dicts.

    Binary columns come out as zero-copy ``pyarrow.Buffer`` s (or None), so a
    5 MB waveform is not copied into a Python ``bytes`` before it is decoded.

    Args:
        batch: the record batch.
        binary_fields: columns to hand over as buffers.

    Returns:
        An iterator of ``{column: value}`` dicts.
    """
    names = batch.schema.names
    columns = []
    for name in names:
        array = batch.column(name)
        if name in binary_fields:
            columns.append([value.as_buffer() if value.is_valid else None for value in array])
        else:
            columns.append(array.to_pylist())
    for values in zip(*columns):
        yield dict(zip(names, values))


def read_metadata_table(path) -> dict[str, dict]:
    """Load the companion metadata parquet (no binaries) as ``segment_id → row``.

    Only the fields of :data:`~chroma_keras.data.segments.ROW_FIELDS` are kept,
    binaries never; the first row of a repeated ``segment_id`` wins. It is held in
    memory: one dict per segment (a few KB each with the song-level concept text,
    tens of MB for the real 11,600 segments).

    Args:
        path: the metadata parquet.

    Returns:
        A dict from segment_id to a dict of that row's fields.

    Raises:
        DataError: when the file is missing, unreadable or has no ``segment_id``.
    """
    path = pathlib.Path(path)
    parquet = _open_parquet(path)
    names = [n for n in parquet.schema_arrow.names if n in ROW_FIELDS and n not in BINARY_FIELDS]
    if "segment_id" not in names:
        raise DataError(f"{path}: metadata parquet has no segment_id column.")
    table: dict[str, dict] = {}
    for batch in parquet.iter_batches(batch_size=4096, columns=names):
        for row in batch_rows(batch, ()):
            if row["segment_id"] is not None:
                table.setdefault(str(row["segment_id"]), row)
    return table


class MediaParquetSource(SegmentSource):
    """Segments of a media (or metadata) parquet, streamed row group by row group.

    Shards are the file's row groups. Missing binary columns are fine (a
    metadata parquet has none): audio and MIDI then come from ``audio_path`` /
    ``midi_path`` columns when present.

    Args:
        path: the parquet file.
        options: :class:`~chroma_keras.data.segments.ReaderOptions`.
        fields: row fields to read (None: all known fields present).
        metadata: ``segment_id → row`` from :func:`read_metadata_table`, or None.
        embeddings: an :class:`~chroma_keras.data.embeddings.EmbeddingJoin`, or None.
        batch_rows: rows decoded at a time within a row group.

    Raises:
        DataError: for a missing or unreadable file, a non-binary audio/MIDI
            column, a missing segment_id or label column, or a bad ``batch_rows``.
    """

    def __init__(
        self,
        path,
        *,
        options: ReaderOptions,
        fields=None,
        metadata=None,
        embeddings=None,
        batch_rows: int = 16,
    ):
        self.path = pathlib.Path(path)
        parquet = _open_parquet(self.path)
        _check_binary_types(self.path, parquet.schema_arrow)
        if not isinstance(batch_rows, int) or batch_rows < 1:
            raise DataError(f"{self.path}: batch_rows must be a positive int. Received: batch_rows={batch_rows!r}")
        self.batch_rows = batch_rows
        self._file_metadata = parquet.metadata
        self.available_fields = tuple(n for n in parquet.schema_arrow.names if n in ROW_FIELDS)
        super().__init__(
            name=str(self.path),
            base_dir=self.path.parent,
            options=options,
            fields=fields,
            metadata=metadata,
            embeddings=embeddings,
        )

    @property
    def num_shards(self) -> int:
        """Number of row groups."""
        return self._file_metadata.num_row_groups

    @property
    def num_rows(self) -> int:
        """Rows in the file, from its footer (duplicates included; no data read)."""
        return self._file_metadata.num_rows

    def _shard_rows(self, shard: int, fields: Sequence[str]) -> Iterator[dict]:
        # A fresh handle per row group: passes can interleave (e.g. two iterators) safely.
        parquet = _open_parquet(self.path)
        batches = parquet.iter_batches(
            batch_size=self.batch_rows, row_groups=[shard], columns=list(fields), use_threads=False
        )
        for batch in batches:
            yield from batch_rows(batch)
