"""Piano-roll training data read from a segment table laid out like the user's media parquet.

Reads the MIDI, label and rebracketing columns (never the audio column, so
memory stays small), streams row group by row group, keeps the first of
repeated ``segment_id`` s, and skips-and-reports rows it cannot use.
"""

from __future__ import annotations

import pathlib
from collections import Counter
from dataclasses import dataclass, field

import keras
import numpy as np

from chroma_keras import modes, rebracketing
from chroma_keras.data import keys
from chroma_keras.data.segments import format_reason_counts
from chroma_keras.errors import DataError, LabelError
from chroma_keras.preprocessing.pianoroll import PianoRollSpec, midi_to_piano_roll

_COLUMNS = (
    "segment_id",
    "song_id",
    "has_midi",
    "midi_binary",
    "rainbow_color",
    modes.AXIS_COLUMNS["temporal"],
    modes.AXIS_COLUMNS["spatial"],
    modes.AXIS_COLUMNS["ontological"],
    "training_data",
)


@dataclass
class ReadReport:
    """What a reader kept and what it skipped, with reasons."""

    source: str
    rows_read: int = 0
    segments_kept: int = 0
    skipped: Counter = field(default_factory=Counter)
    examples: list = field(default_factory=list)

    def skip(self, reason: str, segment_id: str, detail: str = "") -> None:
        """Record one skipped row."""
        self.skipped[reason] += 1
        if len(self.examples) < 20:
            self.examples.append((segment_id, reason, detail))

    def summary(self) -> str:
        """One line: kept / read and the skip counts by reason."""
        reasons = format_reason_counts(self.skipped)
        return f"{self.source}: kept {self.segments_kept} of {self.rows_read} rows; skipped: {reasons}"


@dataclass
class PianoRollDataset:
    """Piano rolls with their conditions and metadata, aligned by row."""

    piano_rolls: np.ndarray  # [n, pitches, frames] float32
    modes: np.ndarray  # [n, modes.MODE_VECTOR_SIZE]
    rebracketing: np.ndarray  # [n, rebracketing.FEATURE_SIZE]
    segment_ids: list
    song_ids: list
    colours: list
    spec: PianoRollSpec

    def __len__(self) -> int:
        return len(self.segment_ids)

    def inputs(self) -> dict[str, np.ndarray]:
        """The model input dict (see ``data.keys``)."""
        return {keys.PIANO_ROLL: self.piano_rolls, keys.MODES: self.modes, keys.REBRACKETING: self.rebracketing}

    def subset(self, indices) -> "PianoRollDataset":
        """The rows at ``indices``."""
        idx = np.asarray(indices, dtype=np.int64)
        return PianoRollDataset(
            self.piano_rolls[idx],
            self.modes[idx],
            self.rebracketing[idx],
            [self.segment_ids[i] for i in idx],
            [self.song_ids[i] for i in idx],
            [self.colours[i] for i in idx],
            self.spec,
        )


def load_pianoroll_dataset(path, spec: PianoRollSpec, max_segments: int | None = None) -> tuple[PianoRollDataset, ReadReport]:
    """Read piano rolls and conditions from a segment parquet (DESIGN §3 layout).

    Rows are skipped (and counted in the report) when their ``segment_id``
    repeats an earlier one, when they have no MIDI, when the MIDI cannot be
    parsed, or when a label cannot be parsed.

    Args:
        path: the parquet file.
        spec: the piano-roll grid.
        max_segments: stop after this many kept segments.

    Returns:
        ``(dataset, report)``.

    Raises:
        DataError: when the file is missing, is not parquet, lacks required
            columns, or yields no usable segment.
    """
    import pyarrow.parquet as pq

    path = pathlib.Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such segment file.")
    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for non-parquet input
        raise DataError(f"{path}: not a readable parquet file ({exc}).") from exc
    missing = [c for c in _COLUMNS if c not in parquet.schema_arrow.names]
    if missing:
        raise DataError(f"{path}: missing required column(s) {missing}; expected the segment layout of DESIGN §3.")
    report = ReadReport(source=str(path))
    seen: set[str] = set()
    rolls, mode_rows, reb_rows, segment_ids, song_ids, colours = [], [], [], [], [], []
    for batch in parquet.iter_batches(batch_size=500, columns=list(_COLUMNS)):
        for row in batch.to_pylist():
            report.rows_read += 1
            segment_id = row["segment_id"]
            if segment_id in seen:
                report.skip("duplicate segment_id", segment_id)
                continue
            seen.add(segment_id)
            if not row["has_midi"] or row["midi_binary"] is None:
                report.skip("no MIDI", segment_id)
                continue
            try:
                colour = modes.parse_colour(row["rainbow_color"])
                condition = modes.modes_from_labels(
                    row[modes.AXIS_COLUMNS["temporal"]],
                    row[modes.AXIS_COLUMNS["spatial"]],
                    row[modes.AXIS_COLUMNS["ontological"]],
                )
                features = rebracketing.rebracketing_features(row["training_data"], source=segment_id)
                roll = midi_to_piano_roll(row["midi_binary"], spec, source=segment_id)
            except LabelError as exc:
                report.skip("bad label", segment_id, str(exc))
                continue
            except DataError as exc:
                report.skip("bad MIDI or training_data", segment_id, str(exc))
                continue
            rolls.append(roll)
            mode_rows.append(condition.multi_hot())
            reb_rows.append(features)
            segment_ids.append(segment_id)
            song_ids.append(row["song_id"])
            colours.append(colour.name)
            if max_segments is not None and len(segment_ids) >= max_segments:
                break
        if max_segments is not None and len(segment_ids) >= max_segments:
            break
    report.segments_kept = len(segment_ids)
    if not segment_ids:
        raise DataError(f"{path}: no usable segment. {report.summary()}")
    dataset = PianoRollDataset(
        np.stack(rolls).astype(np.float32),
        np.stack(mode_rows),
        np.stack(reb_rows),
        segment_ids,
        song_ids,
        colours,
        spec,
    )
    return dataset, report


def transpose_piano_rolls(rolls: np.ndarray, semitones: np.ndarray) -> np.ndarray:
    """Shift each roll by its number of semitones along the pitch axis (zero fill)."""
    out = np.zeros_like(rolls)
    num_pitches = rolls.shape[1]
    for i, shift in enumerate(np.asarray(semitones, dtype=np.int64)):
        if shift >= 0:
            out[i, shift:] = rolls[i, : num_pitches - shift]
        else:
            out[i, :shift] = rolls[i, -shift:]
    return out


class PianoRollBatches(keras.utils.PyDataset):
    """Shuffled training batches with seeded random transposition (each row's shift under
    ``keys.TRANSPOSITION``).

    Epoch ``e`` uses the generator ``default_rng((seed, e))``, so a run is
    reproducible and a resumed run sees the same batches.

    Args:
        dataset: a :class:`PianoRollDataset`.
        batch_size: rows per batch.
        transpose_semitones: maximum shift in either direction (0 = off).
        seed: base seed of shuffling and augmentation.
    """

    def __init__(self, dataset: PianoRollDataset, batch_size: int = 32, transpose_semitones: int = 0, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.transpose_semitones = int(transpose_semitones)
        self.seed = int(seed)
        self.epoch = 0
        self._order = np.arange(len(dataset))
        self._shifts = np.zeros(len(dataset), dtype=np.int64)
        self.on_epoch_end()
        self.epoch = 0

    def __len__(self):
        return int(np.ceil(len(self.dataset) / self.batch_size))

    def __getitem__(self, index):
        idx = self._order[index * self.batch_size : (index + 1) * self.batch_size]
        rolls = self.dataset.piano_rolls[idx]
        if self.transpose_semitones:
            rolls = transpose_piano_rolls(rolls, self._shifts[idx])
        return (
            {
                keys.PIANO_ROLL: rolls,
                keys.MODES: self.dataset.modes[idx],
                keys.REBRACKETING: self.dataset.rebracketing[idx],
                keys.TRANSPOSITION: self._shifts[idx].astype(np.float32),
            },
        )

    def on_epoch_end(self):
        rng = np.random.default_rng((self.seed, self.epoch))
        self._order = rng.permutation(len(self.dataset))
        n = self.transpose_semitones
        self._shifts = rng.integers(-n, n + 1, size=len(self.dataset)) if n else np.zeros(len(self.dataset), np.int64)
        self.epoch += 1
