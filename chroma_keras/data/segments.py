"""The segment schema (:class:`SegmentRecord`) and :func:`open_segments`, the one entry point to segment data.

A segment is one row of the user's media parquet (DESIGN §3), one row of a
folder's ``labels.csv`` / ``labels.yaml``, or one row of the demo corpus. Every
reader turns its rows into the same :class:`SegmentRecord`: texts, decoded
audio, validated MIDI bytes, parsed labels (via :mod:`chroma_keras.modes`),
rebracketing features (via :mod:`chroma_keras.rebracketing`), presence flags per
modality and, for every modality that was present but unusable, the reason it
was masked.

Readers never crash on bad data by default (``on_error="skip"``): a row whose
``segment_id`` repeats an earlier one, or whose labels cannot be parsed, is
skipped; a bad modality (NaN audio, truncated MIDI, malformed
``training_data``...) is masked and the segment kept. Both are counted by reason
in :meth:`SegmentSource.report`. ``on_error="raise"`` raises the first problem
instead (duplicates are always skipped: the real data has them by design).

Example:

>>> from chroma_keras.data.segments import open_segments
>>> source = open_segments("demo")
>>> len(source)
384
>>> record = next(iter(source))
>>> record.labels.colour, record.has_midi
('Black', True)
"""

from __future__ import annotations

import copy
import hashlib
import math
import os
import pathlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Mapping, NamedTuple, Sequence

import numpy as np

from chroma_keras import modes, rebracketing
from chroma_keras.data.audio_bytes import (
    DEFAULT_SAMPLE_RATES,
    AudioDataError,
    decode_pcm_float32,
    read_audio_file,
)
from chroma_keras.errors import DataError, LabelError, MidiError

from chroma_keras.data.keys import MODALITIES  # noqa: E402  (the one definition)
LABEL_COLUMNS = ("rainbow_color",) + tuple(modes.AXIS_COLUMNS[a] for a in modes.AXES)
TEXT_COLUMNS = ("lyric_text", "concept", "track_description")
TIME_COLUMNS = ("start_seconds", "end_seconds", "duration_seconds")
AUDIO_COLUMNS = ("audio_waveform", "audio_sample_rate", "audio_path")
MIDI_COLUMNS = ("midi_binary", "midi_path")
# Every field a row can carry, named as in the media parquet (DESIGN §3) plus the
# on-disk fallbacks audio_path / midi_path.
ROW_FIELDS = (
    ("segment_id", "song_id")
    + TIME_COLUMNS
    + ("has_audio", "has_midi")
    + TEXT_COLUMNS
    + AUDIO_COLUMNS
    + MIDI_COLUMNS
    + LABEL_COLUMNS
    + ("training_data",)
)
# Read in the cheap index pass (no binaries): enough to dedup, check labels and group by song.
INDEX_FIELDS = ("segment_id", "song_id") + LABEL_COLUMNS
DUPLICATE = "duplicate_segment_id"
ON_ERROR_CHOICES = ("skip", "raise")
UNKNOWN_LABEL_CHOICES = ("skip", "mask")
AUDIO_FILE_CHOICES = ("segment", "song")
_MAX_EXAMPLES = 20


def _blank(value) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def song_id_from_segment_id(segment_id: str) -> str:
    """The song id of a segment id: its first two ``_``-separated fields (``01_01_seg_0001`` → ``01_01``)."""
    parts = segment_id.split("_")
    return "_".join(parts[:2]) if len(parts) > 2 else segment_id


# === Labels ===


class SegmentLabelError(LabelError):
    """A row's labels cannot be used.

    Attributes:
        reason: ``unknown_colour``, ``unknown_mode`` or ``missing``.
    """

    def __init__(self, message: str, *, reason: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class SegmentLabels:
    """The chromatic labels of a segment, parsed once.

    Attributes:
        colour: colour name ("Red"), or None when only per-axis modes were given
            and they match no album.
        colour_index: position in ``modes.COLOURS`` (the colour head's class), -1 for None.
        condition: the per-axis :class:`~chroma_keras.modes.ModeCondition`.
        mode_ids: one id per axis (``modes.NONE_ID`` for none or several modes).
        multi_hot: float32 ``[modes.MODE_VECTOR_SIZE]`` conditioning vector.
        soft_targets: per axis, the float32 3-vector soft target (DESIGN §2).
        confidence: the colour's confidence target (0 Black/White, 1 otherwise;
            1 for a per-axis label with no colour).
    """

    colour: str | None
    colour_index: int
    condition: modes.ModeCondition
    mode_ids: tuple[int, ...]
    multi_hot: np.ndarray
    soft_targets: dict
    confidence: float

    @classmethod
    def from_condition(cls, condition: modes.ModeCondition, colour: modes.Colour | None) -> "SegmentLabels":
        """Build the labels of a condition and (optional) colour."""
        return cls(
            colour=colour.name if colour else None,
            colour_index=colour.index if colour else -1,
            condition=condition,
            mode_ids=condition.primary_ids(),
            multi_hot=condition.multi_hot(),
            soft_targets=modes.soft_targets(condition),
            confidence=float(colour.confidence) if colour else 1.0,
        )


def labels_from_row(row: Mapping, *, source: str) -> SegmentLabels:
    """Parse a row's ``rainbow_color`` and per-axis mode columns.

    The axis columns win when any is set; when all are empty the colour's own
    modes are used (so a row with only ``rainbow_color`` works). Without a
    colour, the colour is the album whose modes match, if any.

    Args:
        row: a mapping with (some of) :data:`LABEL_COLUMNS`.
        source: the segment_id, named in errors.

    Returns:
        The parsed :class:`SegmentLabels`.

    Raises:
        SegmentLabelError: with reason ``unknown_colour``, ``unknown_mode`` or ``missing``.
    """
    colour_label = row.get("rainbow_color")
    axis_labels = [row.get(modes.AXIS_COLUMNS[a]) for a in modes.AXES]
    colour = None
    if not _blank(colour_label):
        try:
            colour = modes.parse_colour(colour_label)
        except LabelError as exc:
            raise SegmentLabelError(f"{source}: {exc}", reason="unknown_colour") from None
    if all(_blank(v) for v in axis_labels):
        if colour is None:
            raise SegmentLabelError(
                f"{source}: no label; expected rainbow_color or at least one of {list(LABEL_COLUMNS[1:])}.",
                reason="missing",
            )
        condition = colour.condition()
    else:
        try:
            condition = modes.modes_from_labels(*axis_labels)
        except LabelError as exc:
            raise SegmentLabelError(f"{source}: {exc}", reason="unknown_mode") from None
    return SegmentLabels.from_condition(condition, colour if colour is not None else condition.colour())


# === MIDI bytes ===


class MidiCheckError(MidiError):
    """MIDI bytes a row declares could not be found.

    Attributes:
        reason: ``file_missing`` (the row's ``midi_path`` does not exist) or ``missing``
            (``has_midi`` is true but the row has neither bytes nor a path).
    """

    def __init__(self, message: str, *, reason: str):
        super().__init__(message)
        self.reason = reason


def check_midi_bytes(data, *, source: str) -> bytes:
    """Check that bytes are a complete Standard MIDI File before any parser sees them.

    Runs ``chroma_keras.preprocessing.midi_validation.validate_midi_bytes``: an
    MThd header, the declared tracks present, no chunk running past the end.

    Args:
        data: the MIDI bytes (bytes-like).
        source: the segment_id or file, named in errors.

    Returns:
        The bytes, as ``bytes``.

    Raises:
        MidiError: with a ``reason`` attribute (one of ``midi_validation.REASONS``) when the check fails.
    """
    # Imported here: chroma_keras.preprocessing pulls in the MIDI libraries, which a reader needs only for MIDI.
    from chroma_keras.preprocessing.midi_validation import validate_midi_bytes

    data = bytes(data) if data is not None else b""
    validate_midi_bytes(data, source=source)
    return data


# === Records ===


@dataclass
class SegmentRecord:
    """One segment with everything a model or a preprocessing step needs.

    Attributes:
        segment_id: unique id, e.g. ``01_01_seg_0001_track_01``.
        song_id: the song (first two id fields unless the data names it).
        start_seconds: window start from the song's start (None when unknown).
        end_seconds: window end.
        duration_seconds: window length.
        lyric_text: segment lyrics ("" when none).
        concept: song-level concept text.
        track_description: the track's description.
        audio: float32 mono samples, or None (absent or masked).
        audio_sample_rate: rate of ``audio`` (None without audio).
        audio_path: the fallback audio file, when the row names one.
        midi_bytes: a validated Standard MIDI File, or None (absent or masked).
        midi_path: the fallback MIDI file, when the row names one.
        labels: parsed :class:`SegmentLabels`, or None when masked (``unknown_labels="mask"``).
        rebracketing: float32 ``[rebracketing.FEATURE_SIZE]``; all zeros (presence
            flag 0) when the row has no or unusable ``training_data``.
        training_data: the parsed ``training_data`` JSON object ({} when none).
        has_text: ``lyric_text`` or ``concept`` is non-empty.
        has_audio: ``audio`` is usable.
        has_midi: ``midi_bytes`` are usable.
        masked_reasons: modality (``audio``, ``midi``, ``labels``, ``rebracketing``,
            ``embedding:<name>``, or a time field) → reason code, for data that was
            declared or present but unusable.
        embeddings: precomputed embeddings by column name (see ``data.embeddings``).
    """

    segment_id: str
    song_id: str
    start_seconds: float | None = None
    end_seconds: float | None = None
    duration_seconds: float | None = None
    lyric_text: str = ""
    concept: str = ""
    track_description: str = ""
    audio: np.ndarray | None = None
    audio_sample_rate: int | None = None
    audio_path: str | None = None
    midi_bytes: bytes | None = None
    midi_path: str | None = None
    labels: SegmentLabels | None = None
    rebracketing: np.ndarray = field(default_factory=lambda: np.zeros(rebracketing.FEATURE_SIZE, np.float32))
    training_data: dict = field(default_factory=dict)
    has_text: bool = False
    has_audio: bool = False
    has_midi: bool = False
    masked_reasons: dict = field(default_factory=dict)
    embeddings: dict = field(default_factory=dict)

    def presence(self) -> np.ndarray:
        """float32 presence mask in :data:`MODALITIES` order (1 = present)."""
        return np.array([self.has_text, self.has_audio, self.has_midi], dtype=np.float32)


# === Report ===


def format_reason_counts(counts: Mapping[str, int]) -> str:
    """Counts by reason for a report line: ``"2 duplicate_segment_id, 1 label:unknown_colour"``.

    Args:
        counts: reason → count (a ``Counter`` or a plain dict).

    Returns:
        ``"<count> <reason>"`` pairs sorted by reason and joined by ``", "``, or ``"none"`` when empty.
    """
    return ", ".join(f"{n} {r}" for r, n in sorted(counts.items())) or "none"


@dataclass
class SegmentReport:
    """What one pass over a source kept, skipped and masked, counted by reason.

    Attributes:
        source: the file or folder read.
        rows_read: rows seen (duplicates and skipped rows included).
        segments_kept: records yielded.
        skipped: reason → rows skipped (``duplicate_segment_id``, ``label:unknown_colour``...).
        masked: reason → modalities masked (``audio:non_finite``, ``midi:truncated``...).
        examples: up to 20 ``(segment_id, reason, detail)`` for a first look.
        complete: True once the pass reached the end of the source.
    """

    source: str
    rows_read: int = 0
    segments_kept: int = 0
    skipped: Counter = field(default_factory=Counter)
    masked: Counter = field(default_factory=Counter)
    examples: list = field(default_factory=list)
    complete: bool = False

    def _example(self, segment_id, reason, detail):
        if len(self.examples) < _MAX_EXAMPLES:
            self.examples.append((segment_id, reason, detail))

    def skip(self, reason: str, segment_id: str, detail: str = "") -> None:
        """Count one skipped row."""
        self.skipped[reason] += 1
        self._example(segment_id, reason, detail)

    def mask(self, reason: str, segment_id: str, detail: str = "") -> None:
        """Count one masked modality."""
        self.masked[reason] += 1
        self._example(segment_id, reason, detail)

    def summary(self) -> str:
        """One line: kept / read, then skipped and masked counts by reason."""
        state = "" if self.complete else " (pass not complete)"
        return (
            f"{self.source}: kept {self.segments_kept} of {self.rows_read} rows{state}; "
            f"skipped: {format_reason_counts(self.skipped)}; masked: {format_reason_counts(self.masked)}"
        )

    def as_dict(self) -> dict:
        """The report as plain data (for JSON logs)."""
        return {
            "source": self.source,
            "rows_read": self.rows_read,
            "segments_kept": self.segments_kept,
            "skipped": dict(self.skipped),
            "masked": dict(self.masked),
            "complete": self.complete,
        }


# === Options and row decoding ===


@dataclass(frozen=True)
class ReaderOptions:
    """How readers treat bad data and where fallback files live.

    Attributes:
        on_error: ``"skip"`` (skip or mask, and count) or ``"raise"`` (raise the first problem).
        unknown_labels: ``"skip"`` a row whose labels cannot be parsed, or ``"mask"``
            (keep it with ``labels=None``).
        sample_rates: accepted audio sample rates (no resampling happens while reading).
        audio_root: relative ``audio_path`` values resolve against this folder
            (default: the folder holding the data file).
        midi_root: the same for ``midi_path``.
        audio_files: ``"segment"``: an audio file holds exactly the segment;
            ``"song"``: it holds the whole song and the reader cuts
            ``[start_seconds, end_seconds)``.
    """

    on_error: str = "skip"
    unknown_labels: str = "skip"
    sample_rates: frozenset = DEFAULT_SAMPLE_RATES
    audio_root: pathlib.Path | None = None
    midi_root: pathlib.Path | None = None
    audio_files: str = "segment"

    def __post_init__(self):
        for name, choices in (
            ("on_error", ON_ERROR_CHOICES),
            ("unknown_labels", UNKNOWN_LABEL_CHOICES),
            ("audio_files", AUDIO_FILE_CHOICES),
        ):
            if getattr(self, name) not in choices:
                raise DataError(
                    f"open_segments: {name} must be one of {list(choices)}. Received: {name}={getattr(self, name)!r}"
                )
        try:
            rates = frozenset(int(r) for r in self.sample_rates)
        except (TypeError, ValueError):
            rates = frozenset()
        if not rates or any(r <= 0 for r in rates):
            raise DataError(
                "open_segments: sample_rates must be a non-empty collection of positive ints. "
                f"Received: {self.sample_rates!r}"
            )
        object.__setattr__(self, "sample_rates", rates)
        for name in ("audio_root", "midi_root"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, pathlib.Path(value))


def _resolve(value, root: pathlib.Path | None, base_dir: pathlib.Path) -> pathlib.Path:
    path = pathlib.Path(str(value))
    if path.is_absolute():
        return path
    return (root if root is not None else base_dir) / path


class _RowDecoder:
    """Turns row dicts into :class:`SegmentRecord` s, masking and counting bad modalities."""

    def __init__(self, options: ReaderOptions, base_dir: pathlib.Path, embeddings=None):
        self.options = options
        self.base_dir = base_dir
        self.embeddings = embeddings

    def _problem(self, report: SegmentReport, record: SegmentRecord, modality: str, reason: str, exc: Exception):
        if self.options.on_error == "raise":
            raise exc
        record.masked_reasons[modality] = reason
        report.mask(reason, record.segment_id, str(exc))

    def decode(self, row: Mapping, report: SegmentReport) -> SegmentRecord:
        """Build the record of one row that the index pass kept."""
        segment_id = str(row["segment_id"])
        song_id = row.get("song_id")
        record = SegmentRecord(
            segment_id=segment_id,
            song_id=str(song_id) if not _blank(song_id) else song_id_from_segment_id(segment_id),
        )
        for name in TIME_COLUMNS:
            value = row.get(name)
            try:
                setattr(record, name, None if _blank(value) else float(value))
            except (TypeError, ValueError):
                exc = DataError(f"{segment_id}: {name} must be a number of seconds. Received: {value!r}")
                self._problem(report, record, name, "time:invalid", exc)
        for name in TEXT_COLUMNS:
            value = row.get(name)
            setattr(record, name, "" if _blank(value) else str(value))
        record.has_text = bool(record.lyric_text.strip() or record.concept.strip())

        try:
            record.labels = labels_from_row(row, source=segment_id)
        except SegmentLabelError as exc:  # only reached with unknown_labels="mask"
            record.masked_reasons["labels"] = f"label:{exc.reason}"
            report.mask(f"label:{exc.reason}", segment_id, str(exc))

        try:
            record.training_data = rebracketing.parse_training_data(row.get("training_data"), source=segment_id)
            record.rebracketing = rebracketing.rebracketing_features(record.training_data, source=segment_id)
        except DataError as exc:
            record.training_data = {}
            self._problem(report, record, "rebracketing", "rebracketing:invalid_training_data", exc)

        # A modality whose columns were not asked for (columns=) is not loaded: nothing to mask.
        if "audio_waveform" in row or "audio_path" in row:
            self._decode_audio(row, record, report)
        if "midi_binary" in row or "midi_path" in row:
            self._decode_midi(row, record, report)
        if self.embeddings is not None:
            found, missing = self.embeddings.lookup(segment_id)
            record.embeddings = found
            for name, reason in missing.items():
                exc = DataError(f"{segment_id}: no usable {name!r} embedding ({reason}).")
                self._problem(report, record, f"embedding:{name}", f"embedding:{reason}", exc)
        return record

    def _decode_audio(self, row, record, report):
        data, path_value = row.get("audio_waveform"), row.get("audio_path")
        try:
            if data is not None:
                record.audio = decode_pcm_float32(
                    data,
                    source=record.segment_id,
                    sample_rate=row.get("audio_sample_rate"),
                    allowed_sample_rates=self.options.sample_rates,
                )
                record.audio_sample_rate = int(row["audio_sample_rate"])
            elif not _blank(path_value):
                path = _resolve(path_value, self.options.audio_root, self.base_dir)
                record.audio_path = str(path)
                window = {}
                if self.options.audio_files == "song":
                    window = {"start_seconds": record.start_seconds, "end_seconds": record.end_seconds}
                record.audio, record.audio_sample_rate = read_audio_file(
                    path, source=record.segment_id, allowed_sample_rates=self.options.sample_rates, **window
                )
            elif row.get("has_audio"):
                raise AudioDataError(
                    f"{record.segment_id}: has_audio is true but audio_waveform is null and no audio_path is given.",
                    reason="missing",
                    source=record.segment_id,
                )
        except AudioDataError as exc:
            record.audio, record.audio_sample_rate = None, None
            self._problem(report, record, "audio", f"audio:{exc.reason}", exc)
        record.has_audio = record.audio is not None

    def _decode_midi(self, row, record, report):
        data, path_value = row.get("midi_binary"), row.get("midi_path")
        try:
            if data is None and not _blank(path_value):
                path = _resolve(path_value, self.options.midi_root, self.base_dir)
                record.midi_path = str(path)
                if not path.is_file():
                    raise MidiCheckError(f"{record.segment_id} ({path}): MIDI file not found.", reason="file_missing")
                data = path.read_bytes()
            if data is not None:
                record.midi_bytes = check_midi_bytes(data, source=record.segment_id)
            elif row.get("has_midi"):
                raise MidiCheckError(
                    f"{record.segment_id}: has_midi is true but midi_binary is null and no midi_path is given.",
                    reason="missing",
                )
        except MidiError as exc:
            record.midi_bytes = None
            self._problem(report, record, "midi", f"midi:{getattr(exc, 'reason', None) or 'invalid'}", exc)
        record.has_midi = record.midi_bytes is not None


# === Sources ===


class IndexEntry(NamedTuple):
    """One row of a source as the index pass saw it."""

    segment_id: str
    song_id: str
    colour: str | None
    skip_reason: str | None
    detail: str | None


@dataclass(frozen=True)
class ShardInfo:
    """One shard (a parquet row group, or a block of folder rows).

    Attributes:
        index: shard number, for :meth:`SegmentSource.iter_shards`.
        rows: rows stored in the shard.
        segments: rows kept (first of their segment_id, usable labels).
        song_ids: songs with kept segments in the shard, in order.
    """

    index: int
    rows: int
    segments: int
    song_ids: tuple


class SegmentSource:
    """Re-iterable segments of one file or folder (see :func:`open_segments`).

    Iterating yields :class:`SegmentRecord` s, reading one shard (parquet row
    group) at a time. A cheap index pass over the small columns (ids and labels,
    never the binaries) runs once, on first need: it decides which rows are
    duplicates or unlabelled, so ``len()`` is exact and any shard can be read on
    its own. The index holds one small tuple per row (about 700 bytes measured,
    ~8 MB for the 11,600 real segments).

    Subclasses implement ``num_shards``, ``num_rows``, ``available_fields`` and
    ``_shard_rows(shard, fields)``.
    """

    def __init__(
        self,
        *,
        name: str,
        base_dir: pathlib.Path,
        options: ReaderOptions,
        fields=None,
        metadata=None,
        embeddings=None,
    ):
        self.name = name
        self.options = options
        self._metadata = metadata or {}
        self._metadata_fields = frozenset(next(iter(self._metadata.values()), {}).keys())
        self._decoder = _RowDecoder(options, base_dir, embeddings)
        available = set(self.available_fields) | self._metadata_fields
        if "segment_id" not in self.available_fields:
            raise DataError(f"{name}: no segment_id column; expected the segment layout of DESIGN §3.")
        if not available & set(LABEL_COLUMNS):
            raise DataError(
                f"{name}: no label column; expected rainbow_color and/or {list(LABEL_COLUMNS[1:])} "
                "(in the source or its metadata parquet)."
            )
        if fields is None:
            wanted = set(ROW_FIELDS)
        else:
            unknown = sorted(set(fields) - set(ROW_FIELDS))
            if unknown:
                raise DataError(f"{name}: unknown column(s) {unknown} in columns=; expected among {list(ROW_FIELDS)}.")
            wanted = set(fields) | set(INDEX_FIELDS) | {"training_data", "has_audio", "has_midi"}
            if "audio_waveform" in wanted:
                wanted.add("audio_sample_rate")
        self._record_fields = [f for f in ROW_FIELDS if f in wanted and f in available]
        self._index_fields = [f for f in INDEX_FIELDS if f in available]
        self._index: list[list[IndexEntry]] | None = None
        self._songs: frozenset | None = None
        self._report = SegmentReport(source=name)

    # --- implemented by readers ---

    available_fields: Sequence[str] = ()

    @property
    def num_shards(self) -> int:
        """Number of shards (row groups)."""
        raise NotImplementedError

    @property
    def num_rows(self) -> int:
        """Rows stored, duplicates and bad rows included (known without reading data)."""
        raise NotImplementedError

    def _shard_rows(self, shard: int, fields: Sequence[str]) -> Iterator[dict]:
        raise NotImplementedError

    # --- index ---

    def _rows(self, shard: int, fields: Sequence[str]) -> Iterator[dict]:
        own = [f for f in fields if f in self.available_fields]
        for row in self._shard_rows(shard, own):
            extra = self._metadata.get(str(row.get("segment_id")))
            if extra:
                row.update((k, v) for k, v in extra.items() if k in fields)
            yield row

    def _ensure_index(self) -> list[list[IndexEntry]]:
        if self._index is not None:
            return self._index
        seen: set[str] = set()
        index = []
        for shard in range(self.num_shards):
            entries = []
            for row in self._rows(shard, self._index_fields):
                raw_id = row.get("segment_id")
                segment_id = "" if _blank(raw_id) else str(raw_id)
                song = row.get("song_id")
                song = str(song) if not _blank(song) else song_id_from_segment_id(segment_id)
                colour, reason, detail = None, None, None
                if not segment_id:
                    reason, detail = "missing_segment_id", f"{self.name}: a row of shard {shard} has no segment_id."
                elif segment_id in seen:
                    reason = DUPLICATE
                else:
                    seen.add(segment_id)
                    try:
                        colour = labels_from_row(row, source=segment_id).colour
                    except SegmentLabelError as exc:
                        if self.options.unknown_labels == "skip":
                            reason, detail = f"label:{exc.reason}", str(exc)
                entries.append(IndexEntry(segment_id, song, colour, reason, detail))
            index.append(entries)
        self._index = index
        return index

    def _kept(self) -> Iterator[IndexEntry]:
        for entries in self._ensure_index():
            for entry in entries:
                if entry.skip_reason is None and (self._songs is None or entry.song_id in self._songs):
                    yield entry

    # --- public ---

    def __len__(self) -> int:
        return sum(1 for _ in self._kept())

    def __iter__(self) -> Iterator[SegmentRecord]:
        return self._iterate(range(self.num_shards))

    def iter_shards(self, shards: Iterable[int]) -> Iterator[SegmentRecord]:
        """Records of the given shards only, in the order given.

        Args:
            shards: shard numbers in ``range(num_shards)``.

        Returns:
            An iterator of records (duplicates resolved across the whole source).
        """
        shards = [int(s) for s in shards]
        bad = [s for s in shards if not 0 <= s < self.num_shards]
        if bad:
            raise DataError(f"{self.name}: shard(s) {bad} out of range; the source has {self.num_shards} shards.")
        return self._iterate(shards)

    def _iterate(self, shards) -> Iterator[SegmentRecord]:
        index = self._ensure_index()
        report = SegmentReport(source=self.name)
        self._report = report
        for shard in shards:
            entries = index[shard]
            if self._songs is not None and not any(e.song_id in self._songs for e in entries):
                continue  # nothing selected here: don't read the shard at all
            rows = self._rows(shard, self._record_fields)
            for entry in entries:
                row = next(rows, None)
                if row is None or (entry.segment_id and str(row.get("segment_id")) != entry.segment_id):
                    raise DataError(f"{self.name}: shard {shard} changed since it was indexed; reopen the source.")
                if self._songs is not None and entry.song_id not in self._songs:
                    continue
                report.rows_read += 1
                if entry.skip_reason is not None:
                    if self.options.on_error == "raise" and entry.skip_reason != DUPLICATE:
                        raise (LabelError if entry.skip_reason.startswith("label:") else DataError)(entry.detail)
                    report.skip(entry.skip_reason, entry.segment_id, entry.detail or "")
                    continue
                record = self._decoder.decode(row, report)
                report.segments_kept += 1
                yield record
        report.complete = True

    def report(self) -> SegmentReport:
        """The report of the latest pass (``complete`` says whether it reached the end).

        Returns:
            A :class:`SegmentReport`; empty before the first iteration.
        """
        return self._report

    def segment_ids(self) -> list[str]:
        """Ids of the segments iteration yields, in order (no data read beyond the index)."""
        return [e.segment_id for e in self._kept()]

    def song_ids(self) -> list[str]:
        """Distinct song ids of the kept segments, in order of first appearance."""
        return list(dict.fromkeys(e.song_id for e in self._kept()))

    def song_ids_of(self, segment_ids) -> list[str]:
        """Distinct song ids of the given kept segments, in order of first appearance."""
        wanted = frozenset(segment_ids)
        return list(dict.fromkeys(e.song_id for e in self._kept() if e.segment_id in wanted))

    def colours(self) -> list[str | None]:
        """The colour of each kept segment, aligned with :meth:`segment_ids`."""
        return [e.colour for e in self._kept()]

    def shards(self) -> list[ShardInfo]:
        """One :class:`ShardInfo` per shard (after the song selection, if any)."""
        infos = []
        for number, entries in enumerate(self._ensure_index()):
            kept = [e for e in entries if e.skip_reason is None and (self._songs is None or e.song_id in self._songs)]
            infos.append(ShardInfo(number, len(entries), len(kept), tuple(dict.fromkeys(e.song_id for e in kept))))
        return infos

    def select(self, song_ids: Iterable[str]) -> "SegmentSource":
        """A view of this source holding only the given songs.

        Shards without any of these songs are not read. The view shares the index.

        Args:
            song_ids: songs to keep.

        Returns:
            A new :class:`SegmentSource` (with its own report).
        """
        self._ensure_index()
        view = copy.copy(self)
        songs = frozenset(str(s) for s in song_ids)
        view._songs = songs if self._songs is None else songs & self._songs
        view._report = SegmentReport(source=self.name)
        return view

    def split_by_song(self, validation_fraction: float = 0.15, test_fraction: float = 0.15, seed: int = 0) -> dict:
        """Song-grouped, colour-stratified splits (``data.splits.split_by_song``) as views.

        Returns:
            ``{"train": source, "validation": source, "test": source}``.
        """
        from chroma_keras.data.splits import split_by_song

        entries = list(self._kept())
        parts = split_by_song(
            [e.song_id for e in entries],
            [e.colour or "none" for e in entries],
            validation_fraction=validation_fraction,
            test_fraction=test_fraction,
            seed=seed,
        )
        return {name: self.select({entries[i].song_id for i in idx}) for name, idx in parts.items()}


# === Entry point ===


def default_cache_dir() -> pathlib.Path:
    """``$CHROMA_KERAS_CACHE``, else ``$XDG_CACHE_HOME/chroma_keras``, else ``~/.cache/chroma_keras``."""
    if os.environ.get("CHROMA_KERAS_CACHE"):
        return pathlib.Path(os.environ["CHROMA_KERAS_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(base) / "chroma_keras"


def demo_corpus_path(cache_dir=None) -> pathlib.Path:
    """Write the default demo corpus once into the cache and return its path.

    The file name carries a hash of the generator's source, so a changed
    generator writes a fresh file instead of reusing a stale one.

    Args:
        cache_dir: folder to use (default :func:`default_cache_dir`).

    Returns:
        The parquet path.
    """
    from chroma_keras.data import demo_corpus

    digest = hashlib.sha256(pathlib.Path(demo_corpus.__file__).read_bytes()).hexdigest()[:12]
    path = pathlib.Path(cache_dir or default_cache_dir()) / "demo" / f"demo_segments-{digest}.parquet"
    if not path.is_file():
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        demo_corpus.write_demo_corpus(tmp)
        os.replace(tmp, path)  # a concurrent writer produces the same bytes
    return path


def open_segments(
    source,
    *,
    metadata=None,
    embeddings=None,
    columns: Sequence[str] | None = None,
    audio_root=None,
    midi_root=None,
    on_error: str = "skip",
    unknown_labels: str = "skip",
    sample_rates: Iterable[int] = DEFAULT_SAMPLE_RATES,
    audio_files: str = "segment",
    batch_rows: int = 16,
) -> SegmentSource:
    """Open segments from a media/metadata parquet, a folder, or the demo corpus.

    Args:
        source: a parquet file in the DESIGN §3 layout; a folder with
            ``labels.csv`` or ``labels.yaml`` and audio/MIDI files (see
            ``data.folder_reader``); or ``"demo"`` (the demo corpus, written once
            to :func:`default_cache_dir`).
        metadata: optional companion metadata parquet; its columns are joined on
            ``segment_id`` and win over the source's columns of the same name. It
            is held in memory (it has no binaries).
        embeddings: optional precomputed-embedding parquet path(s) (a path or a
            list), joined on ``segment_id`` into ``record.embeddings``.
        columns: read only these row fields (names as in the media parquet, plus
            ``audio_path`` / ``midi_path``); ids, labels and ``training_data`` are
            always read. E.g. leave out ``audio_waveform`` to skip audio entirely.
        audio_root: folder that relative ``audio_path`` values resolve against
            (default: the source's folder).
        midi_root: the same for ``midi_path``.
        on_error: ``"skip"`` (skip rows / mask modalities and count them in
            :meth:`SegmentSource.report`) or ``"raise"``.
        unknown_labels: ``"skip"`` rows with unparseable labels, or ``"mask"``
            (keep them with ``labels=None``).
        sample_rates: accepted audio sample rates.
        audio_files: ``"segment"`` (a fallback audio file is the segment) or
            ``"song"`` (it is the whole song; the window is cut out).
        batch_rows: rows decoded at a time inside a parquet row group (bounds memory).

    Returns:
        A :class:`SegmentSource`.

    Raises:
        DataError: when the source does not exist or is not in a known layout.
    """
    options = ReaderOptions(
        on_error=on_error,
        unknown_labels=unknown_labels,
        sample_rates=sample_rates,
        audio_root=audio_root,
        midi_root=midi_root,
        audio_files=audio_files,
    )
    from chroma_keras.data.embeddings import EmbeddingJoin
    from chroma_keras.data.folder_reader import FolderSource
    from chroma_keras.data.media_parquet import MediaParquetSource, read_metadata_table

    if isinstance(source, str) and source == "demo":
        source = demo_corpus_path()
    path = pathlib.Path(source)
    join = EmbeddingJoin.open(embeddings) if embeddings else None
    table = read_metadata_table(metadata) if metadata is not None else None
    common = dict(options=options, fields=columns, metadata=table, embeddings=join)
    if path.is_dir():
        return FolderSource(path, **common)
    if path.is_file():
        return MediaParquetSource(path, batch_rows=batch_rows, **common)
    raise DataError(
        f"{path}: no such file or folder; expected a segment parquet, a folder with labels.csv/labels.yaml, or 'demo'."
    )
