"""Training batches of the GPT generator, made from the corpus reader's MIDI-token batches.

:class:`GPTTokenBatches` wraps a :class:`~chroma_keras.data.multimodal_dataset.MultimodalDataset`
built from a preset with ``preprocessing.midi.tokenization: remi`` and turns each of its
batches into ``{"token_ids", "padding_mask"}`` for :class:`~chroma_keras.models.ChromaticGPT`:

``<bos> <mode tokens> <rebracketing tokens> <sep_midi> <MIDI tokens> <eos> <pad> ...``

The mode tokens come from the segment's per-axis labels (``modes``, multi-hot), the
rebracketing tokens from its normalised scores and type (``rebracketing``); each
rebracketing token is dropped with probability ``rebracketing_dropout`` (seeded per epoch),
so a prompt that names only one score looks like training data. A segment cut at
``max_events`` gets no ``<eos>`` (it did not end there).

A multimodal vocabulary (``gpt_multimodal_chromatic``) adds sections around the MIDI: with
``text_max_bytes > 0`` the segment's text (its first ``text_max_bytes`` UTF-8 bytes) and with an
``audio_codes`` encoder the EnCodec codes of its audio clip (:func:`multimodal_row`)::

    <bos> <modes> <rebracketing> <sep_text> TEXT BYTES <sep_midi> REMI <sep_audio> AUDIO CODES <eos>

A segment without text, MIDI or audio has no section for it.

With ``infill_rate > 0`` that share of the rows (drawn per row, seeded per epoch) takes the
fill-in-the-middle form of :mod:`chroma_keras.generation.infilling` instead: a random run of whole
bars moves after the bars that follow it, between ``<infill>`` and ``<infill_end>``, so the model
learns to write missing bars from both sides (``ChromaticGPT.infill``). A row with no whole bar to
move stays plain.

Example:

>>> import chroma_keras as ck
>>> from chroma_keras.demo import train_on_corpus
>>> model = ck.from_preset("gpt_remi_chromatic")
>>> history, datasets = train_on_corpus(model, "demo_corpus.parquet", epochs=2)  # doctest: +SKIP
"""

from __future__ import annotations

import keras
import numpy as np

from chroma_keras import modes, rebracketing
from chroma_keras.data import keys
from chroma_keras.errors import DataError, ModelInputError
from chroma_keras.generation.infilling import fim_training_example, infill_tokens

TOKEN_IDS = "token_ids"
PADDING_MASK = "padding_mask"
# Last entry of the infilling draws' seed (the dropout draws use the first three alone).
_INFILL_STREAM = 1


def segment_prefix(vocabulary, mode_vector, rebracketing_vector, keep=None) -> list[int]:
    """The prefix tokens of one segment from its multi-hot modes and rebracketing features.

    Args:
        vocabulary: the :class:`~chroma_keras.tokenizers.ChromaticVocabulary`.
        mode_vector: ``[modes.MODE_VECTOR_SIZE]`` multi-hot (``keys.MODES``).
        rebracketing_vector: ``[rebracketing.FEATURE_SIZE]`` features (``keys.REBRACKETING``).
        keep: optional bools, one per rebracketing token (scores then type), False drops it.

    Returns:
        ids from ``<bos>`` to ``<sep_midi>``.
    """
    mode_vector = np.asarray(mode_vector).reshape(len(modes.AXES), modes.MODES_PER_AXIS)
    condition = {
        axis: tuple(m for m, on in zip(modes.AXIS_MODES[axis], mode_vector[a] > 0) if on) for a, axis in enumerate(modes.AXES)
    }
    levels, kind = {}, None
    features = np.asarray(rebracketing_vector)
    if features[rebracketing.PRESENCE_INDEX] > 0:
        levels = {field: float(np.clip(features[i], 0.0, 1.0)) for i, field in enumerate(rebracketing.SCORE_FIELDS)}
        onehot = features[len(rebracketing.SCORE_FIELDS) : len(rebracketing.SCORE_FIELDS) + len(rebracketing.REBRACKETING_TYPES)]
        if onehot.max() > 0:
            kind = rebracketing.REBRACKETING_TYPES[int(np.argmax(onehot))]
    if keep is not None:
        levels = {f: v for i, (f, v) in enumerate(levels.items()) if keep[i]}
        if kind is not None and not keep[len(rebracketing.SCORE_FIELDS)]:
            kind = None
    ids = [vocabulary.bos_id, *vocabulary.mode_ids(modes.ModeCondition(**condition))]
    ids += vocabulary.rebracketing_ids(levels, kind)
    ids.append(vocabulary.separator_id("midi"))
    return ids


def multimodal_row(
    vocabulary,
    prefix,
    text: str | None = None,
    midi=None,
    midi_ended: bool = True,
    audio_codes=None,
    audio_pattern: str = "delay",
    text_max_bytes: int = 0,
    source: str = "segment",
) -> list[int]:
    """One training row with text, MIDI and audio sections; a missing modality has no section.

    Args:
        vocabulary: the model's :class:`~chroma_keras.tokenizers.ChromaticVocabulary`.
        prefix: ``<bos>``, mode and rebracketing ids (what :func:`segment_prefix` gives; a trailing
            ``<sep_midi>`` is dropped).
        text: the segment's text, or None / "" for none. Its UTF-8 bytes are cut to
            ``text_max_bytes`` at a character boundary.
        midi: MIDI ids in the vocabulary's range (:meth:`ChromaticVocabulary.midi_ids`), or None.
        midi_ended: the MIDI was not cut at ``max_events``; a cut MIDI section is followed by
            nothing (neither audio nor ``<eos>``: the segment did not end there).
        audio_codes: EnCodec codes ``int [K, frames]``, or None.
        audio_pattern: ``"delay"`` or ``"flatten"``.
        text_max_bytes: bytes of text kept; 0 drops the text section.
        source: the segment's name in error messages.

    Returns:
        ids ``<bos> ... [<sep_text> text] [<sep_midi> midi] [<sep_audio> audio] <eos>``.

    Raises:
        ModelInputError: codes that are not ``[K, frames]`` integers in the codebooks, naming ``source``.
    """
    ids = list(prefix)
    if ids and ids[-1] == vocabulary.separator_id("midi"):
        ids = ids[:-1]
    if text and text_max_bytes > 0:
        data = str(text).encode("utf-8")[: int(text_max_bytes)].decode("utf-8", errors="ignore")
        ids += [vocabulary.separator_id("text"), *vocabulary.encode_text(data).tolist()]
    if midi is not None:
        ids += [vocabulary.separator_id("midi"), *np.asarray(midi).tolist()]
        if not midi_ended:
            return ids
    if audio_codes is not None:
        try:
            audio = vocabulary.encode_audio(audio_codes, audio_pattern)
        except ModelInputError as exc:
            raise ModelInputError(f"{source}: {exc}") from None
        ids += [vocabulary.separator_id("audio"), *audio.tolist()]
    return ids + [vocabulary.eos_id]


class GPTTokenBatches(keras.utils.PyDataset):
    """GPT batches ``({"token_ids", "padding_mask"},)`` from a MIDI-token corpus dataset.

    Args:
        dataset: a ``MultimodalDataset`` (or any PyDataset) whose batches hold ``keys.MIDI_TOKENS``,
            ``keys.MIDI_TOKEN_MASK``, ``keys.MODES`` and ``keys.REBRACKETING``.
        vocabulary: the model's vocabulary; its MIDI tokenizer must be the dataset's.
        max_sequence_length: length of every batch row (prefix + MIDI + ``<eos>``, cut to fit).
        rebracketing_dropout: chance of leaving each rebracketing token out of a prefix.
        seed: seed of the dropout and infilling draws (varied per epoch).
        infill_rate: share of rows in fill-in-the-middle form, in [0, 1]; 0 leaves every row plain
            (and the batches exactly as without this option).
        text_max_bytes: bytes of each segment's text in a ``<sep_text>`` section (the batches must
            hold ``keys.TEXT_IDS``); 0: no text section.
        audio_codes: ``f(waveform [samples], sample_rate, source) -> codes [K, frames]`` (e.g.
            :meth:`~chroma_keras.tokenizers.gpt_audio.AudioCodeCache.encode`) for a
            ``<sep_audio>`` section from the batches' ``keys.AUDIO``; None: no audio section.
        audio_pattern: ``"delay"`` or ``"flatten"``.
    """

    def __init__(
        self,
        dataset,
        vocabulary,
        max_sequence_length: int,
        rebracketing_dropout: float = 0.0,
        seed: int = 0,
        infill_rate: float = 0.0,
        text_max_bytes: int = 0,
        audio_codes=None,
        audio_pattern: str = "delay",
    ):
        super().__init__()
        if not (isinstance(infill_rate, (int, float)) and not isinstance(infill_rate, bool) and 0.0 <= infill_rate <= 1.0):
            raise DataError(f"infill_rate must be a number in [0, 1]. Received: infill_rate={infill_rate!r}")
        self.text_max_bytes = int(text_max_bytes)
        self.audio_codes = audio_codes
        self.audio_pattern = audio_pattern
        self.multimodal = self.text_max_bytes > 0 or audio_codes is not None
        if self.multimodal and infill_rate > 0:
            raise DataError("infill_rate > 0 works on MIDI-only rows; set model.gpt.infill_rate to 0 for text or audio sections.")
        plan_audio = getattr(getattr(dataset, "plan", None), "audio", None)
        self.audio_sample_rate = None if plan_audio is None else plan_audio.sample_rate
        if audio_codes is not None and hasattr(dataset, "plan") and plan_audio is None:
            raise DataError(
                "model.gpt.audio_num_codebooks > 0 needs the corpus' audio: add a preprocessing.audio section "
                "(sample_rate, duration = the seconds of each segment's clip that become audio tokens)."
            )
        self.infill_rate = float(infill_rate)
        self.infill_tokens = None
        if self.infill_rate > 0:
            self.infill_tokens = infill_tokens(vocabulary)
        self.dataset = dataset
        self.vocabulary = vocabulary
        self.max_sequence_length = int(max_sequence_length)
        self.rebracketing_dropout = float(rebracketing_dropout)
        self.seed = int(seed)
        self.epoch = 0
        plan_tokenizer = getattr(getattr(dataset, "plan", None), "tokenizer", None)
        if plan_tokenizer is None and hasattr(dataset, "plan"):
            raise DataError("GPT batches need MIDI tokens: set preprocessing.midi.tokenization to 'remi' in the preset.")
        if plan_tokenizer is not None and plan_tokenizer.spec != vocabulary.midi_spec:
            raise DataError(
                f"the dataset's MIDI tokenizer {plan_tokenizer.spec} differs from the model vocabulary's {vocabulary.midi_spec}."
            )

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index):
        (batch,) = self.dataset[index][:1]
        tokens = np.asarray(batch[keys.MIDI_TOKENS])
        masks = np.asarray(batch[keys.MIDI_TOKEN_MASK]) > 0
        rng = np.random.default_rng([self.seed, self.epoch, index])
        # Its own stream, so the dropout draws are the same whatever the infill rate.
        infill_rng = np.random.default_rng([self.seed, self.epoch, index, _INFILL_STREAM])
        rows = np.zeros((len(tokens), self.max_sequence_length), np.int32)
        padding = np.zeros_like(rows)
        num_keep = len(rebracketing.SCORE_FIELDS) + 1
        for r in range(len(tokens)):
            keep = rng.random(num_keep) >= self.rebracketing_dropout
            prefix = segment_prefix(self.vocabulary, batch[keys.MODES][r], batch[keys.REBRACKETING][r], keep)
            midi = self.vocabulary.midi_ids(tokens[r][masks[r]])
            ended = masks[r].sum() < masks.shape[1]  # not cut at max_events: the segment ends here
            if self.multimodal:
                ids = self._multimodal_row(batch, r, index, prefix, midi, ended)
                ids = ids[: self.max_sequence_length]
                rows[r, : len(ids)] = ids
                padding[r, : len(ids)] = 1
                continue
            ids = None
            if self.infill_rate > 0 and infill_rng.random() < self.infill_rate:
                ids = fim_training_example(prefix, midi, ended, self.max_sequence_length, infill_rng, self.infill_tokens)
            if ids is None:
                ids = prefix + list(midi) + ([self.vocabulary.eos_id] if ended else [])
            ids = ids[: self.max_sequence_length]
            rows[r, : len(ids)] = ids
            padding[r, : len(ids)] = 1
        return ({TOKEN_IDS: rows, PADDING_MASK: padding},)

    def _multimodal_row(self, batch, r, index, prefix, midi, ended):
        present = np.asarray(batch[keys.MODALITY_MASK][r]) > 0
        source = f"training batch {index}, row {r}"
        text = None
        if self.text_max_bytes > 0 and keys.TEXT_IDS in batch and present[keys.MODALITIES.index("text")]:
            from chroma_keras.data.multimodal_dataset import ids_to_text

            text = ids_to_text(batch[keys.TEXT_IDS][r])
        codes = None
        if self.audio_codes is not None and keys.AUDIO in batch and present[keys.MODALITIES.index("audio")]:
            wave = np.asarray(batch[keys.AUDIO][r])
            if keys.AUDIO_MASK in batch:
                wave = wave[: int(np.asarray(batch[keys.AUDIO_MASK][r]).sum())]
            if wave.size:
                codes = self.audio_codes(wave, self.audio_sample_rate, source)
        has_midi = present[keys.MODALITIES.index("midi")] and len(midi) > 0
        return multimodal_row(
            self.vocabulary,
            prefix,
            text,
            midi if has_midi else None,
            ended,
            codes,
            self.audio_pattern,
            self.text_max_bytes,
            source,
        )

    def on_epoch_end(self):
        self.epoch += 1
        if hasattr(self.dataset, "on_epoch_end"):
            self.dataset.on_epoch_end()

    def __getattr__(self, name):
        # Reports, batch_size and the like come from the wrapped reader.
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)
