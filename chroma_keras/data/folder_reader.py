"""Segments from a plain folder: audio files, MIDI files and a ``labels.csv`` / ``labels.yaml``.

For users without the media parquet. The folder holds one labels file with
one row per segment, plus the audio (wav/flac/ogg, read with soundfile) and
MIDI (.mid/.midi) files its rows name::

    my_segments/
      labels.csv
      a_01.wav   a_01.mid
      a_02.flac  a_02.mid

Columns (header names are case-sensitive; aliases in brackets):

* ``segment_id`` (required)
* labels, at least one of: ``rainbow_color`` [``colour``, ``color``],
  ``rainbow_color_temporal_mode`` [``temporal``],
  ``rainbow_color_objectional_mode`` [``spatial``, ``objectional``],
  ``rainbow_color_ontological_mode`` [``ontological``] (", "-joined, or a list in YAML)
* optional: ``song_id`` (default: the first two ``_`` fields of the id),
  ``audio_path`` [``audio_file``, ``audio``], ``midi_path`` [``midi_file``, ``midi``],
  ``lyric_text`` [``lyrics``], ``concept``, ``track_description``, ``start_seconds``,
  ``end_seconds``, ``duration_seconds``, ``training_data`` (JSON, or a mapping in YAML).
  Other columns are ignored.

File names are relative to the folder (or to ``audio_root`` / ``midi_root``).
A named file that does not exist is an error naming the labels file and the row;
without a name, ``<segment_id>.wav|.flac|.ogg`` and ``<segment_id>.mid|.midi`` are
used when present. ``labels.yaml`` holds a list of mappings (or ``{segments: [...]}``).
"""

from __future__ import annotations

import csv
import pathlib
from typing import Iterator, Sequence

from chroma_keras.data.segments import LABEL_COLUMNS, ROW_FIELDS, ReaderOptions, SegmentSource
from chroma_keras.errors import DataError

LABEL_FILES = ("labels.csv", "labels.yaml", "labels.yml")
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")
MIDI_EXTENSIONS = (".mid", ".midi")
SHARD_ROWS = 500
ALIASES = {
    "colour": "rainbow_color",
    "color": "rainbow_color",
    "temporal": "rainbow_color_temporal_mode",
    "spatial": "rainbow_color_objectional_mode",
    "objectional": "rainbow_color_objectional_mode",
    "ontological": "rainbow_color_ontological_mode",
    "audio_file": "audio_path",
    "audio": "audio_path",
    "midi_file": "midi_path",
    "midi": "midi_path",
    "lyrics": "lyric_text",
}
# Row fields a labels file can set (no binaries: audio and MIDI come from files).
FILE_FIELDS = tuple(
    f for f in ROW_FIELDS if f not in ("audio_waveform", "midi_binary", "audio_sample_rate", "has_audio", "has_midi")
)


def _labels_file(folder: pathlib.Path) -> pathlib.Path:
    present = [folder / name for name in LABEL_FILES if (folder / name).is_file()]
    if not present:
        raise DataError(f"{folder}: no labels file; expected one of {list(LABEL_FILES)} in the folder.")
    if len(present) > 1:
        raise DataError(f"{folder}: found {[p.name for p in present]}; keep exactly one labels file.")
    return present[0]


def _read_table(path: pathlib.Path) -> tuple[list[str], list[tuple[str, dict]]]:
    """(columns, [(row label, row dict)]) of a labels file."""
    if path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = list(reader.fieldnames or [])
            rows = [(f"row {i} (line {reader.line_num})", dict(row)) for i, row in enumerate(reader, start=1)]
        return columns, rows
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise DataError(f"{path}: not valid YAML ({exc}).") from exc
    if isinstance(data, dict) and "segments" in data:
        data = data["segments"]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise DataError(f"{path}: expected a list of mappings (one per segment) or {{segments: [...]}}.")
    columns = list(dict.fromkeys(k for row in data for k in row))
    return columns, [(f"row {i}", dict(row)) for i, row in enumerate(data, start=1)]


def _canonical(name) -> str:
    name = str(name).strip()
    return ALIASES.get(name, name)


class FolderSource(SegmentSource):
    """Segments described by a folder's labels file (see the module docs).

    The labels file is read and every named file checked when the source is
    opened; audio and MIDI are decoded while iterating. Shards are blocks of
    :data:`SHARD_ROWS` rows.

    Args:
        folder: the folder.
        options: :class:`~chroma_keras.data.segments.ReaderOptions`.
        fields: row fields to read (None: all).
        metadata: ``segment_id → row`` overrides, or None.
        embeddings: an :class:`~chroma_keras.data.embeddings.EmbeddingJoin`, or None.

    Raises:
        DataError: naming the labels file (and row) for a missing labels file,
            a missing ``segment_id`` or label column, an empty ``segment_id``,
            or a named audio/MIDI file that does not exist.
    """

    def __init__(self, folder, *, options: ReaderOptions, fields=None, metadata=None, embeddings=None):
        self.folder = pathlib.Path(folder)
        self.labels_path = _labels_file(self.folder)
        columns, raw_rows = _read_table(self.labels_path)
        canonical = {_canonical(c) for c in columns}
        if "segment_id" not in canonical:
            raise DataError(f"{self.labels_path}: missing column 'segment_id'. Found columns: {columns}.")
        metadata_fields = set(next(iter(metadata.values()))) if metadata else set()
        if not (canonical | metadata_fields) & set(LABEL_COLUMNS):
            raise DataError(
                f"{self.labels_path}: missing a label column; expected 'rainbow_color' (or 'colour') and/or "
                f"'temporal', 'spatial', 'ontological'. Found columns: {columns}."
            )
        audio_dir = options.audio_root or self.folder
        midi_dir = options.midi_root or self.folder
        self._table = []
        for where, raw in raw_rows:
            row = {}
            for key, value in raw.items():
                key = _canonical(key)
                if key in FILE_FIELDS:
                    row[key] = None if isinstance(value, str) and not value.strip() else value
            if row.get("segment_id") is None:
                raise DataError(f"{self.labels_path} {where}: empty segment_id.")
            row["segment_id"] = str(row["segment_id"]).strip()
            for key, directory, extensions, kind in (
                ("audio_path", audio_dir, AUDIO_EXTENSIONS, "audio"),
                ("midi_path", midi_dir, MIDI_EXTENSIONS, "MIDI"),
            ):
                row[key] = self._find_file(row.get(key), row["segment_id"], directory, extensions, kind, where)
            self._table.append(row)
        self.available_fields = tuple(f for f in FILE_FIELDS if f in canonical or f in ("audio_path", "midi_path"))
        super().__init__(
            name=str(self.labels_path),
            base_dir=self.folder,
            options=options,
            fields=fields,
            metadata=metadata,
            embeddings=embeddings,
        )

    def _find_file(self, name, segment_id, directory, extensions, kind, where) -> str | None:
        if name is not None:
            path = pathlib.Path(str(name))
            path = path if path.is_absolute() else directory / path
            if not path.is_file():
                raise DataError(
                    f"{self.labels_path} {where} (segment_id {segment_id!r}): {kind} file {str(name)!r} not found "
                    f"(looked for {path})."
                )
            return str(path.absolute())
        for extension in extensions:
            path = directory / f"{segment_id}{extension}"
            if path.is_file():
                return str(path.absolute())
        return None

    @property
    def num_shards(self) -> int:
        """Number of blocks of :data:`SHARD_ROWS` rows."""
        return max(-(-len(self._table) // SHARD_ROWS), 1)

    @property
    def num_rows(self) -> int:
        """Rows in the labels file."""
        return len(self._table)

    def _shard_rows(self, shard: int, fields: Sequence[str]) -> Iterator[dict]:
        for row in self._table[shard * SHARD_ROWS : (shard + 1) * SHARD_ROWS]:
            yield {f: row.get(f) for f in fields}
