"""``MultimodalDataset``: segments → dict batches for ``fit()`` on every backend.

The dataset reads a :class:`~chroma_keras.data.segments.SegmentSource` (a media
parquet, a folder or the demo corpus), turns each segment into fixed-size arrays
according to a preset's ``preprocessing`` section, and collates them into dict
batches whose keys are defined in :mod:`chroma_keras.data.keys`:

* MIDI as a piano roll (``tokenization: pianoroll``) or miditok tokens
  (``remi`` / ``cpword``) with their mask,
* audio as a fixed-length waveform at ``preprocessing.audio.sample_rate`` with
  the mask of its real length (only when the preset has an audio section),
* text (lyrics, else concept) as ids with a mask (only when asked for): UTF-8
  byte ids, or the WordPiece ids of the pretrained backbone the preset's
  ``model.text_encoder.pretrained_model`` names (chosen by
  :func:`chroma_keras.preprocessing.text_tokens.text_tokenizer_from_config`),
* the modality presence mask, per-axis mode ids and multi-hot, rebracketing
  features, soft targets, confidence and colour index.

A modality that is absent or unusable is zero-filled with presence 0; a
segment whose MIDI passes the reader's check but fails conversion is masked
and counted, never raised, so bad data cannot stop training or emit NaN.

Two ways to hold data:

* ``cache=True``: every segment is encoded once and kept in memory; batches
  are random access (fast epochs; fine for the demo corpus and MIDI-only data).
* ``cache=False``: batches are streamed shard by shard through a shuffle buffer,
  so memory does not grow with the corpus (the 15 GB media file). The order
  of an epoch is fixed by ``(seed, epoch)``; asking for batches out of order is
  correct but re-reads the epoch from its start.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from dataclasses import dataclass, replace
from typing import Iterable, Iterator, Mapping, Sequence

import keras
import numpy as np

from chroma_keras import modes, rebracketing
from chroma_keras.data import keys
from chroma_keras.data.segments import SegmentRecord, SegmentSource, format_reason_counts, open_segments
from chroma_keras.errors import DataError, ModelInputError

SPLITS = ("train", "validation", "test", "all")
DEFAULT_MAX_TEXT_LENGTH = 256
# Rough bytes per cached example above which cache="auto" streams instead.
_AUTO_CACHE_LIMIT_BYTES = 512 * 2**20


def _resolve_config(preset) -> dict:
    """A resolved preset config from a name, path, dict or a model carrying ``preset_config``."""
    from chroma_keras.config.loader import load_preset_config, validate_config

    if hasattr(preset, "preset_config"):
        return preset.preset_config
    if isinstance(preset, Mapping):
        return validate_config(preset, "preset")
    return load_preset_config(preset)


def text_to_ids(text: str, max_length: int) -> tuple[np.ndarray, np.ndarray]:
    """UTF-8 bytes of ``text`` as ids ``byte + 1`` (0 is padding), cut or padded to ``max_length``.

    Args:
        text: the string.
        max_length: output length.

    Returns:
        ``(ids int32 [max_length], mask float32 [max_length])``.
    """
    raw = np.frombuffer(text.encode("utf-8")[:max_length], dtype=np.uint8).astype(np.int32) + 1
    ids = np.zeros(max_length, np.int32)
    ids[: len(raw)] = raw
    mask = np.zeros(max_length, np.float32)
    mask[: len(raw)] = 1.0
    return ids, mask


def ids_to_text(ids) -> str:
    """Inverse of :func:`text_to_ids` (padding dropped; a cut multi-byte character is dropped too)."""
    ids = np.asarray(ids)
    return bytes((ids[ids > 0] - 1).astype(np.uint8).tolist()).decode("utf-8", errors="ignore")


@dataclass
class _Plan:
    """What one example holds, derived from the preset."""

    modalities: tuple[str, ...]
    piano_roll: object | None  # PianoRollSpec
    tokenizer: object | None  # MidiTokenizer
    audio: object | None  # AudioSpec
    max_text_length: int
    text_tokenizer: object | None  # ByteTextTokenizer / WordPieceTextTokenizer
    transpose_semitones: int
    audio_augmenter: object | None
    midi_augment: object | None  # AugmentationSpec applied to MIDI bytes (tokens, velocity, quantization)


class MultimodalDataset(keras.utils.PyDataset):
    """Dict batches of text, audio and MIDI with presence masks, conditions and targets.

    Args:
        source: a parquet path, a folder, ``"demo"``, or an open
            :class:`~chroma_keras.data.segments.SegmentSource`.
        preset: a preset name or path, a config dict, or a model built from a
            preset; its ``preprocessing`` section says how to encode MIDI and
            audio and its ``training`` section gives the split, batch size and seed.
        split: ``"train"``, ``"validation"``, ``"test"`` or ``"all"``.
            ``training.split: song`` (the default) groups by song, so a song's
            concept text never leaks across splits; ``segment`` splits rows.
        batch_size: rows per batch (default ``training.batch_size``).
        modalities: subset of :data:`~chroma_keras.data.keys.MODALITIES` to
            load. Default: the modalities the preset declares encoders for
            (``model.<modality>_encoder``); for a preset without encoders (a
            generator), ``midi`` plus ``audio`` when it has a
            ``preprocessing.audio`` section. Modalities not loaded are not read
            from disk.
        shuffle: shuffle each epoch (default: only for ``train``).
        augment: apply the preset's augmentations (default: only for ``train``).
        seed: base seed of splitting, shuffling and augmentation (default ``training.seed``).
        cache: keep encoded examples in memory (True), stream (False), or
            ``"auto"``: cache when the encoded split fits in 512 MB.
        shuffle_buffer: examples held by the streaming shuffle buffer.
        max_text_length: text ids kept per segment: bytes, or word pieces with
            ``[CLS]`` / ``[SEP]`` for a pretrained text backbone (default: the
            preset's ``model.text_encoder.max_sequence_length`` when it declares
            one, else 256; capped at 256 for all-MiniLM-L6-v2).
        require: modalities a segment must have to be used (e.g. ``("midi",)``
            for a piano-roll generator); segments without them are skipped and
            counted as ``missing:<modality>``. With ``cache=False`` the length is
            an upper bound until the first pass; the last batches of an epoch
            then wrap around to its start.
        **kwargs: ``keras.utils.PyDataset`` arguments (``workers``, ...).

    Example:

    >>> ds = MultimodalDataset("demo", "cvae_chromatic", split="train", batch_size=8)
    >>> batch = ds[0][0]
    >>> sorted(batch)[:3]
    ['colour_index', 'confidence', 'label_mask']
    """

    def __init__(
        self,
        source,
        preset,
        split: str = "train",
        batch_size: int | None = None,
        modalities: Sequence[str] | None = None,
        shuffle: bool | None = None,
        augment: bool | None = None,
        seed: int | None = None,
        cache="auto",
        shuffle_buffer: int = 256,
        max_text_length: int | None = None,
        require: Sequence[str] = (),
        **kwargs,
    ):
        super().__init__(**kwargs)
        if split not in SPLITS:
            raise DataError(f"split must be one of {list(SPLITS)}. Received: split={split!r}")
        self.config = _resolve_config(preset)
        training = self.config["training"]
        self.split = split
        self.batch_size = int(batch_size or training["batch_size"])
        if self.batch_size < 1:
            raise DataError(f"batch_size must be >= 1. Received: batch_size={batch_size}")
        self.seed = int(training["seed"] if seed is None else seed)
        self.shuffle = split == "train" if shuffle is None else bool(shuffle)
        self.augment = split == "train" if augment is None else bool(augment)
        self.shuffle_buffer = max(1, int(shuffle_buffer))
        self.plan = self._make_plan(modalities, max_text_length)
        self.require = tuple(require)
        missing = [m for m in self.require if m not in self.plan.modalities]
        if missing:
            raise DataError(f"require={list(self.require)} names modalities that are not loaded: {missing}.")
        self.source = self._open_split(source)  # SegmentSource or a segment-level subset of one
        self.num_examples = len(self.source)
        if self.num_examples == 0:
            raise DataError(f"{self.source.name}: the {split!r} split holds no usable segment. {self.source.report().summary()}")
        if cache == "auto":
            cache = self.num_examples * self._example_bytes() <= _AUTO_CACHE_LIMIT_BYTES
        self.cache = bool(cache)
        self.epoch = 0
        self._masked = Counter()
        self._skipped = Counter()
        self._lock = threading.Lock()
        self._cached: dict[str, np.ndarray] | None = None
        self._cached_ids: list[str] = []
        self._cached_midi: list[bytes | None] = []
        self._stream: Iterator[dict] | None = None
        self._stream_next = 0
        if self.cache:
            self._fill_cache()

    # === Setup ===

    def _make_plan(self, modalities, max_text_length) -> _Plan:
        config = self.config
        preprocessing = config["preprocessing"]
        encoders = [m for m in keys.MODALITIES if config["model"].get(f"{m}_encoder")]
        if modalities is None and encoders:  # a scorer: the modalities it has encoders for
            chosen = encoders
        elif modalities is None:
            chosen = ["midi"] if preprocessing.get("midi") else []
            if preprocessing.get("audio"):
                chosen.append("audio")
            if config["model"].get("text_encoder"):
                chosen.append("text")
        else:
            unknown = [m for m in modalities if m not in keys.MODALITIES]
            if unknown:
                raise DataError(f"modalities must be among {list(keys.MODALITIES)}. Received: {list(modalities)}")
            chosen = list(modalities)
        chosen = tuple(m for m in keys.MODALITIES if m in chosen)
        if not chosen:
            raise DataError("no modality to load: the preset has no preprocessing.midi/audio section and modalities= is empty.")
        piano_roll = tokenizer = audio = augmenter = midi_augment = text_tokenizer = None
        transpose = 0
        if "text" in chosen:
            from chroma_keras.preprocessing.text_tokens import text_tokenizer_from_config

            text_tokenizer = text_tokenizer_from_config(config, max_text_length)
        max_text_length = text_tokenizer.sequence_length if text_tokenizer is not None else int(
            max_text_length or DEFAULT_MAX_TEXT_LENGTH
        )
        if "midi" in chosen:
            midi = preprocessing.get("midi") or {}
            if midi.get("tokenization", "pianoroll") == "pianoroll":
                from chroma_keras.preprocessing.pianoroll import PianoRollSpec

                piano_roll = PianoRollSpec.from_config(config)
            else:
                from chroma_keras.preprocessing.midi_tokens import tokenizer_from_config

                tokenizer = tokenizer_from_config(config)
            from chroma_keras.preprocessing.midi_augment import AugmentationSpec

            spec = AugmentationSpec.from_config(config)
            transpose = spec.transpose_semitones
            # Rolls are transposed as arrays (cheap, and the batch can report each row's shift under
            # keys.TRANSPOSITION); anything else is applied to the MIDI bytes.
            if tokenizer is not None and transpose:
                midi_augment, transpose = spec, 0
            elif spec.velocity_jitter or spec.quantize_steps_per_quarter:
                midi_augment = replace(spec, transpose_semitones=0)
        if "audio" in chosen:
            from chroma_keras.preprocessing.audio import AudioSpec
            from chroma_keras.preprocessing.audio_augment import AudioAugmenter

            audio = AudioSpec.from_config(config)
            augmentations = (preprocessing.get("audio") or {}).get("augmentations") or {}
            if any(v for v in augmentations.values()):
                augmenter = AudioAugmenter(augmentations, seed=self.seed)
        return _Plan(chosen, piano_roll, tokenizer, audio, max_text_length, text_tokenizer, transpose, augmenter, midi_augment)

    def _open_split(self, source) -> SegmentSource:
        if not isinstance(source, SegmentSource):
            columns = ["segment_id", "song_id", "start_seconds", "end_seconds", "duration_seconds"]
            if "text" in self.plan.modalities:
                columns += ["lyric_text", "concept", "track_description"]
            if "audio" in self.plan.modalities:
                columns += ["audio_waveform", "audio_sample_rate", "audio_path"]
            if "midi" in self.plan.modalities:
                columns += ["midi_binary", "midi_path"]
            source = open_segments(source, columns=columns)
        if self.split == "all":
            return source
        training = self.config["training"]
        if training["split"] == "song":
            return source.split_by_song(training["validation_fraction"], training["test_fraction"], self.seed)[self.split]
        from chroma_keras.data.splits import split_by_segment

        ids = source.segment_ids()
        parts = split_by_segment(len(ids), training["validation_fraction"], training["test_fraction"], self.seed)
        return _SegmentSubset(source, {ids[i] for i in parts[self.split]})

    def _example_bytes(self) -> int:
        plan, total = self.plan, 64
        if plan.piano_roll is not None:
            total += plan.piano_roll.num_pitches * plan.piano_roll.num_frames * 4
        if plan.tokenizer is not None:
            total += plan.tokenizer.spec.max_events * 8 * max(1, len(plan.tokenizer.field_sizes or [1]))
        if plan.audio is not None:
            total += plan.audio.num_samples * 8
        if "text" in plan.modalities:
            total += plan.max_text_length * 8
        return total

    # === Encoding one segment ===

    def encode(self, record: SegmentRecord, augment_seed=None) -> dict[str, np.ndarray]:
        """The arrays of one segment (no batch axis).

        Args:
            record: a segment from the source.
            augment_seed: when given (and the preset has MIDI byte augmentations),
                the MIDI is augmented with this seed before encoding.

        Returns:
            A dict keyed by :mod:`chroma_keras.data.keys` names.
        """
        plan = self.plan
        present = {"text": False, "audio": False, "midi": False}
        out: dict[str, np.ndarray] = {}
        if "text" in plan.modalities:
            text = record.lyric_text or record.concept or ""
            out[keys.TEXT_IDS], out[keys.TEXT_MASK] = plan.text_tokenizer.encode(text)
            present["text"] = bool(text)
        if "audio" in plan.modalities:
            wave = np.zeros(plan.audio.num_samples, np.float32)
            mask = np.zeros(plan.audio.num_samples, np.float32)
            if record.has_audio and record.audio is not None:
                from chroma_keras.preprocessing.audio import prepare_waveform

                try:
                    wave, mask = prepare_waveform(record.audio, record.audio_sample_rate, plan.audio, source=record.segment_id)
                    present["audio"] = True
                except DataError as exc:
                    self._mask("audio", exc)
            out[keys.AUDIO], out[keys.AUDIO_MASK] = wave.astype(np.float32), mask.astype(np.float32)
        if "midi" in plan.modalities:
            midi = record.midi_bytes if record.has_midi else None
            if midi is not None and augment_seed is not None and plan.midi_augment is not None:
                midi = self._augment_midi(midi, record.segment_id, augment_seed)
            out.update(self._encode_midi(midi, record.segment_id))
            present["midi"] = bool(out.pop("_midi_present"))
        out[keys.MODALITY_MASK] = np.array([present[m] for m in keys.MODALITIES], np.float32)
        labels = record.labels
        if labels is not None:
            out[keys.MODES] = np.asarray(labels.multi_hot, np.float32)
            out[keys.MODE_IDS] = np.asarray(labels.mode_ids, np.int32)
            for axis, key in keys.AXIS_TARGETS.items():
                out[key] = np.asarray(labels.soft_targets[axis], np.float32)
            out[keys.CONFIDENCE] = np.float32(labels.confidence)
            out[keys.COLOUR_INDEX] = np.int32(labels.colour_index)
            out[keys.LABEL_MASK] = np.float32(1.0)
        else:
            out[keys.MODES] = np.zeros(modes.MODE_VECTOR_SIZE, np.float32)
            out[keys.MODE_IDS] = np.full(len(modes.AXES), modes.NONE_ID, np.int32)
            for key in keys.AXIS_TARGETS.values():
                out[key] = np.zeros(3, np.float32)
            out[keys.CONFIDENCE] = np.float32(0.0)
            out[keys.COLOUR_INDEX] = np.int32(-1)
            out[keys.LABEL_MASK] = np.float32(0.0)
        out[keys.REBRACKETING] = np.asarray(record.rebracketing, np.float32).reshape(rebracketing.FEATURE_SIZE)
        return out

    def _encode_midi(self, midi: bytes | None, segment_id: str) -> dict:
        """Piano roll or tokens of MIDI bytes (zeros when None or unusable), plus ``_midi_present``."""
        plan, out, present = self.plan, {}, False
        if plan.piano_roll is not None:
            roll = np.zeros((plan.piano_roll.num_pitches, plan.piano_roll.num_frames), np.float32)
            if midi is not None:
                from chroma_keras.preprocessing.pianoroll import midi_to_piano_roll

                try:
                    roll, present = midi_to_piano_roll(midi, plan.piano_roll, source=segment_id), True
                except DataError as exc:
                    self._mask("midi", exc)
            out[keys.PIANO_ROLL] = roll.astype(np.float32)
            out[keys.TRANSPOSITION] = np.float32(0.0)  # set per row by the training augmentation
        else:
            from chroma_keras.preprocessing.midi_tokens import tokenize_midi_bytes

            tokens = None
            if midi is not None:
                try:
                    tokens, present = tokenize_midi_bytes(midi, plan.tokenizer, source=segment_id), True
                except DataError as exc:
                    self._mask("midi", exc)
            if tokens is None:
                tokens = self._empty_tokens()
            out[keys.MIDI_TOKENS] = np.asarray(tokens.ids, np.int32)
            out[keys.MIDI_TOKEN_MASK] = np.asarray(tokens.mask, np.float32)
        out["_midi_present"] = present
        return out

    def _augment_midi(self, midi: bytes, segment_id: str, seed) -> bytes:
        from chroma_keras.preprocessing.midi_augment import augment_midi_bytes

        try:
            return augment_midi_bytes(midi, self.plan.midi_augment, seed=np.random.default_rng(seed), source=segment_id)
        except DataError as exc:
            self._masked[f"midi_augmentation:{getattr(exc, 'reason', None) or 'failed'}"] += 1
            return midi  # trained unaugmented; counted in the report

    def _empty_tokens(self):
        from chroma_keras.preprocessing.midi_tokens import MidiTokens

        max_events = self.plan.tokenizer.spec.max_events
        fields = self.plan.tokenizer.field_sizes
        shape = (max_events, len(fields)) if self.plan.tokenizer.spec.is_compound else (max_events,)
        ids = np.full(shape, self.plan.tokenizer.pad_id, np.int32)
        return MidiTokens(ids=ids, mask=np.zeros(max_events, bool), num_tokens=0)

    def _mask(self, modality: str, exc: Exception) -> None:
        self._masked[f"{modality}:{getattr(exc, 'reason', None) or 'conversion_failed'}"] += 1

    # === Augmentation (train only) ===

    def _augment(self, batch: dict, positions: np.ndarray) -> dict:
        if not self.augment:
            return batch
        plan = self.plan
        if plan.transpose_semitones and keys.PIANO_ROLL in batch:
            from chroma_keras.data.pianoroll_dataset import transpose_piano_rolls

            rng = np.random.default_rng([self.seed, 7, self.epoch, int(positions[0])])
            shifts = rng.integers(-plan.transpose_semitones, plan.transpose_semitones + 1, size=len(positions))
            batch[keys.PIANO_ROLL] = transpose_piano_rolls(batch[keys.PIANO_ROLL], shifts)
            batch[keys.TRANSPOSITION] = shifts.astype(np.float32)
        if plan.audio_augmenter is not None and keys.AUDIO in batch:
            waves = batch[keys.AUDIO].copy()
            for row, position in enumerate(positions):
                if batch[keys.MODALITY_MASK][row, keys.MODALITIES.index("audio")]:
                    index = self.epoch * self.num_examples + int(position)
                    augmented = plan.audio_augmenter(waves[row], plan.audio.sample_rate, index=index)
                    waves[row] = _fit(augmented, waves.shape[1]) * batch[keys.AUDIO_MASK][row]
            batch[keys.AUDIO] = waves
        return batch

    # === PyDataset ===

    def __len__(self) -> int:
        return math.ceil(self.num_examples / self.batch_size)

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} out of range for {len(self)} batches")
        with self._lock:
            if self.cache:
                batch, positions = self._cached_batch(index)
            else:
                batch, positions = self._streamed_batch(index)
        return (self._augment(batch, positions),)

    def on_epoch_end(self):
        """Advance the epoch: a new shuffle order and new augmentation draws."""
        with self._lock:
            self.epoch += 1
            self._stream = None
            self._stream_next = 0

    # --- cached ---

    def _encoded(self, records, augment: bool = False) -> Iterator[tuple[SegmentRecord, dict]]:
        """Encode records, skipping (and counting) those without a required modality."""
        for n, record in enumerate(records):
            seed = [self.seed, 9, self.epoch, n] if augment and self.plan.midi_augment is not None else None
            example = self.encode(record, augment_seed=seed)
            absent = [m for m in self.require if not example[keys.MODALITY_MASK][keys.MODALITIES.index(m)]]
            if absent:
                self._skipped[f"missing:{absent[0]}"] += 1
                continue
            yield record, example

    def _fill_cache(self) -> None:
        self._skipped.clear()
        examples = []
        keep_midi = self.augment and self.plan.midi_augment is not None
        for record, example in self._encoded(self.source):
            examples.append(example)
            self._cached_ids.append(record.segment_id)
            if keep_midi:
                self._cached_midi.append(record.midi_bytes if example[keys.MODALITY_MASK][2] else None)
        if not examples:
            raise DataError(
                f"{self.source.name}: no segment of the {self.split!r} split has {list(self.require)}. "
                f"{report_summary(self.report())}"
            )
        self._cached = {k: np.stack([e[k] for e in examples]) for k in examples[0]}
        self.num_examples = len(examples)

    def _order(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.num_examples)
        return np.random.default_rng([self.seed, 5, self.epoch]).permutation(self.num_examples)

    def _cached_batch(self, index):
        if self._cached is None:
            self._fill_cache()
        positions = self._order()[index * self.batch_size : (index + 1) * self.batch_size]
        batch = {k: v[positions] for k, v in self._cached.items()}
        if self._cached_midi:
            parts = []
            for position in positions:
                midi = self._cached_midi[position]
                if midi is not None:
                    midi = self._augment_midi(midi, self._cached_ids[position], [self.seed, 8, self.epoch, int(position)])
                part = self._encode_midi(midi, self._cached_ids[position])
                part.pop("_midi_present")
                parts.append(part)
            batch.update({k: np.stack([p[k] for p in parts]) for k in parts[0]})
        return batch, positions

    # --- streamed ---

    def _examples(self) -> Iterator[tuple[int, dict]]:
        shards = np.arange(self.source.num_shards)
        rng = np.random.default_rng([self.seed, 6, self.epoch])
        if self.shuffle:
            shards = rng.permutation(shards)
        examples = (e for _, e in self._encoded(self.source.iter_shards(shards.tolist()), augment=self.augment))
        position = 0
        if not self.shuffle:
            for example in examples:
                yield position, example
                position += 1
            return
        buffer: list[dict] = []
        for example in examples:
            buffer.append(example)
            if len(buffer) >= self.shuffle_buffer:
                yield position, buffer.pop(int(rng.integers(len(buffer))))
                position += 1
        while buffer:
            yield position, buffer.pop(int(rng.integers(len(buffer))))
            position += 1

    def _streamed_batch(self, index):
        if self._stream is None or index < self._stream_next:
            self._stream = self._examples()
            self._stream_next = 0
        while True:
            items = [example for _, (_, example) in zip(range(self.batch_size), self._stream)]
            if len(items) < self.batch_size and (self._stream_next < len(self) - 1 or not items):
                # Fewer usable segments than indexed (skipped by `require`): wrap around.
                self._stream = self._examples()
                items += [example for _, (_, example) in zip(range(self.batch_size - len(items)), self._stream)]
            self._stream_next += 1
            if self._stream_next - 1 == index:
                break
        if not items:
            raise DataError(f"{self.source.name}: the {self.split!r} split yielded no usable segment.")
        positions = np.arange(index * self.batch_size, index * self.batch_size + len(items))
        return {k: np.stack([e[k] for e in items]) for k in items[0]}, positions

    # === Reporting ===

    def report(self) -> dict:
        """Counts of skipped rows and masked modalities by reason (reader and dataset).

        Returns:
            ``{"source": ..., "segments": n, "skipped": {...}, "masked": {...}}``.
        """
        source_report = self.source.report().as_dict()
        masked = Counter(source_report.get("masked", {}))
        masked.update(self._masked)
        skipped = Counter(source_report.get("skipped", {}))
        skipped.update(self._skipped)
        return {
            "source": source_report.get("source"),
            "segments": self.num_examples,
            "skipped": dict(skipped),
            "masked": dict(masked),
        }

    def segment_ids(self) -> list[str]:
        """Segment ids in source order (the order of the cache, before shuffling)."""
        return self._cached_ids if self._cached is not None else self.source.segment_ids()


def report_summary(report: dict) -> str:
    """One line from :meth:`MultimodalDataset.report`: skipped and masked counts by reason."""
    return (
        f"{report['source']}: skipped {format_reason_counts(report['skipped'])}; "
        f"masked {format_reason_counts(report['masked'])}"
    )


def _fit(wave: np.ndarray, length: int) -> np.ndarray:
    out = np.zeros(length, np.float32)
    out[: min(length, len(wave))] = wave[:length]
    return out


class _SegmentSubset:
    """A segment-level selection of a source (``training.split: segment``).

    Delegates to the parent source and keeps only the chosen segment ids.
    """

    def __init__(self, parent: SegmentSource, segment_ids: Iterable[str]):
        self._parent = parent
        self._ids = frozenset(segment_ids)
        self.name = parent.name
        self.num_shards = parent.num_shards

    def __len__(self) -> int:
        return sum(1 for i in self._parent.segment_ids() if i in self._ids)

    def segment_ids(self) -> list[str]:
        return [i for i in self._parent.segment_ids() if i in self._ids]

    def song_ids(self) -> list[str]:
        return self._parent.song_ids_of(self._ids)

    def iter_shards(self, shards):
        return (r for r in self._parent.iter_shards(shards) if r.segment_id in self._ids)

    def __iter__(self):
        return self.iter_shards(range(self.num_shards))

    def report(self):
        return self._parent.report()


def batches_to_arrays(dataset: MultimodalDataset, keys_wanted: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Concatenate every batch of a dataset (for evaluation on small splits).

    Args:
        dataset: the dataset.
        keys_wanted: keep only these keys (default all).

    Returns:
        A dict of arrays with all examples along axis 0.
    """
    if not isinstance(dataset, MultimodalDataset):
        raise ModelInputError(f"expected a MultimodalDataset. Received: {type(dataset).__name__}")
    parts = [dataset[i][0] for i in range(len(dataset))]
    names = keys_wanted or list(parts[0])
    return {k: np.concatenate([p[k] for p in parts]) for k in names}
