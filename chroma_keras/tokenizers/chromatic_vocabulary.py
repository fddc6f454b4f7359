"""One token id space for the GPT generator: specials, chromatic modes, rebracketing, text, MIDI, audio.

Ids are laid out in contiguous ranges, in this order (sizes for the defaults):

========================  =====================================================================
range                      tokens
========================  =====================================================================
``special`` (16)           ``<pad>`` (0), ``<bos>``, ``<eos>``, one separator per modality
                           (``<sep_text>``, ``<sep_midi>``, ``<sep_audio>``), ``<audio_pad>``
                           (the delay pattern's filler), ``<mask>``, ``<infill>``, ``<infill_end>``,
                           ``<unk>`` and reserved slots for later tasks
``mode`` (12)              per axis, one token per mode plus a "none": ``<temporal:past>`` ...
                           ``<ontological:none>`` (from :mod:`chroma_keras.modes`, nothing here
                           names a mode itself)
``rebracketing``           per score field of :mod:`chroma_keras.rebracketing`, ``buckets`` tokens
                           ``<temporal_complexity_score:3>`` over the field's normalised value in
                           [0, 1]; then one token per ``rebracketing_type``
``text`` (256)             UTF-8 bytes, byte ``b`` at ``text_start + b``
``midi``                   miditok's REMI (or CPWord "separate") ids, id ``i`` at ``midi_start + i``
``audio``                  EnCodec codes, codebook ``k``'s code ``c`` at
                           ``audio_start + k * codebook_size + c``
========================  =====================================================================

Audio codes ``[num_codebooks, T]`` become one sequence in one of two patterns:

* ``"flatten"``: frame by frame, all codebooks of a frame in order (``K * T`` tokens).
* ``"delay"`` (MusicGen, Copet et al., 2023): codebook ``k`` is delayed by ``k`` frames, so
  step ``s`` holds codebook ``k``'s frame ``s - k``; the ``K - 1`` steps at the start and end
  that hold no code for some codebook carry ``<audio_pad>`` (``K * (T + K - 1)`` tokens). A
  model predicting step by step then sees coarser codebooks of a frame before finer ones.

Example:

>>> vocab = ChromaticVocabulary(midi={"tokenization": "remi"})
>>> ids = vocab.encode_text("Red")
>>> vocab.decode_text(ids)
'Red'
>>> vocab.token(vocab.mode_ids("Red")[0])
'<temporal:past>'
"""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Mapping, Sequence

import numpy as np

from chroma_keras import modes, rebracketing
from chroma_keras.errors import DataError, ModelInputError

SPECIAL_TOKENS = (
    "<pad>",
    "<bos>",
    "<eos>",
    "<sep_text>",
    "<sep_midi>",
    "<sep_audio>",
    "<audio_pad>",
    "<mask>",
    "<infill>",
    "<infill_end>",
    "<unk>",
)
# Room for specials of later tasks (continuation, infilling) without moving every other id.
NUM_SPECIAL = 16
AUDIO_PATTERNS = ("delay", "flatten")
MODALITY_SEPARATORS = {"text": "<sep_text>", "midi": "<sep_midi>", "audio": "<sep_audio>"}
NUM_TEXT_BYTES = 256


def _mode_tokens() -> list[str]:
    return [f"<{axis}:{mode}>" for axis in modes.AXES for mode in (*modes.AXIS_MODES[axis], "none")]


class ChromaticVocabulary:
    """The unified token vocabulary of :class:`~chroma_keras.models.ChromaticGPT` (see the module docstring).

    Args:
        midi: the MIDI tokenizer: a :class:`~chroma_keras.preprocessing.midi_tokens.MidiTokenizerSpec`,
            a dict of its fields, or None for no MIDI range. Must give 1-D ids
            (REMI, or CPWord with ``cpword_layout: separate``).
        audio_num_codebooks: EnCodec codebooks (0: no audio range).
        audio_codebook_size: codes per codebook (1024 for EnCodec 24 kHz).
        rebracketing_buckets: buckets of each normalised rebracketing score.
        text: include the 256 UTF-8 byte tokens.

    Example:
    >>> vocab = ChromaticVocabulary(midi={"tokenization": "remi"}, audio_num_codebooks=4)
    >>> codes = np.arange(12).reshape(4, 3) % 1024
    >>> bool((vocab.decode_audio(vocab.encode_audio(codes, "delay"), "delay") == codes).all())
    True
    """

    def __init__(
        self,
        midi=None,
        audio_num_codebooks: int = 0,
        audio_codebook_size: int = 1024,
        rebracketing_buckets: int = 8,
        text: bool = True,
    ):
        from chroma_keras.preprocessing.midi_tokens import MidiTokenizer, MidiTokenizerSpec

        if isinstance(midi, Mapping):
            allowed = {f.name for f in fields(MidiTokenizerSpec)}
            unknown = sorted(set(midi) - allowed)
            if unknown:
                raise ModelInputError(f"midi: unknown MidiTokenizerSpec fields {unknown}. Expected among {sorted(allowed)}.")
            midi = MidiTokenizerSpec(**midi)
        if midi is not None and not isinstance(midi, MidiTokenizerSpec):
            raise ModelInputError(f"midi must be a MidiTokenizerSpec, a dict of its fields or None. Received: {midi!r}")
        if midi is not None and midi.is_compound:
            raise ModelInputError(
                "midi: CPWord's compound layout has several ids per step; a unified vocabulary needs 1-D ids. "
                "Use tokenization 'remi' or cpword_layout 'separate'. Received: cpword_layout='compound'"
            )
        for name, value, low in (
            ("audio_num_codebooks", audio_num_codebooks, 0),
            ("audio_codebook_size", audio_codebook_size, 1),
            ("rebracketing_buckets", rebracketing_buckets, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ModelInputError(f"{name} must be an integer >= {low}. Received: {name}={value!r}")
        self.midi_spec = midi
        self.midi_tokenizer = MidiTokenizer(midi) if midi is not None else None
        self.audio_num_codebooks = int(audio_num_codebooks)
        self.audio_codebook_size = int(audio_codebook_size)
        self.rebracketing_buckets = int(rebracketing_buckets)
        self.text = bool(text)

        names = list(SPECIAL_TOKENS) + [f"<reserved_{i}>" for i in range(NUM_SPECIAL - len(SPECIAL_TOKENS))]
        self.ranges: dict[str, tuple[int, int]] = {}

        def add(range_name, count):
            start = len(names) if range_name != "special" else 0
            self.ranges[range_name] = (start, start + count)

        add("special", NUM_SPECIAL)
        add("mode", len(_mode_tokens()))
        names += _mode_tokens()
        rebracketing_names = [
            f"<{field}:{b}>" for field in rebracketing.SCORE_FIELDS for b in range(self.rebracketing_buckets)
        ] + [f"<rebracketing_type:{t}>" for t in rebracketing.REBRACKETING_TYPES]
        add("rebracketing", len(rebracketing_names))
        names += rebracketing_names
        # Bulk ranges keep no per-id names; token() spells them on demand.
        self._named = len(names)
        self._names = names
        self._ids = {name: i for i, name in enumerate(names)}
        cursor = len(names)
        for range_name, count in (
            ("text", NUM_TEXT_BYTES if self.text else 0),
            ("midi", int(self.midi_tokenizer.vocab_size) if self.midi_tokenizer is not None else 0),
            ("audio", self.audio_num_codebooks * self.audio_codebook_size),
        ):
            self.ranges[range_name] = (cursor, cursor + count)
            cursor += count
        self.vocabulary_size = cursor

    # --- ids of named tokens ---------------------------------------------------------------

    def token_id(self, token: str) -> int:
        """The id of a named token (a special, mode or rebracketing token)."""
        try:
            return self._ids[token]
        except KeyError:
            raise ModelInputError(f"{token!r} is not a named token of this vocabulary. Examples: {self._names[:6]}") from None

    @property
    def pad_id(self) -> int:
        """``<pad>`` (0)."""
        return self._ids["<pad>"]

    @property
    def bos_id(self) -> int:
        """``<bos>``, the first token of every sequence."""
        return self._ids["<bos>"]

    @property
    def eos_id(self) -> int:
        """``<eos>``, the end of a sequence."""
        return self._ids["<eos>"]

    @property
    def audio_pad_id(self) -> int:
        """``<audio_pad>``, the delay pattern's filler."""
        return self._ids["<audio_pad>"]

    def separator_id(self, modality: str) -> int:
        """The token that opens a modality's section (``"text"``, ``"midi"`` or ``"audio"``)."""
        if modality not in MODALITY_SEPARATORS:
            raise ModelInputError(f"modality must be one of {list(MODALITY_SEPARATORS)}. Received: {modality!r}")
        return self._ids[MODALITY_SEPARATORS[modality]]

    def token(self, token_id: int) -> str:
        """A readable name of any id, e.g. ``'<sep_midi>'``, ``'text:0x52'``, ``'midi:Bar_None'``, ``'audio:1:17'``."""
        i = int(token_id)
        if not 0 <= i < self.vocabulary_size:
            raise ModelInputError(f"token id {i} is outside the vocabulary [0, {self.vocabulary_size}).")
        if i < self._named:
            return self._names[i]
        kind = self.modality_of(np.array([i]))[0]
        start = self.ranges[kind][0]
        if kind == "text":
            return f"text:0x{i - start:02x}"
        if kind == "midi":
            return f"midi:{self.midi_tokenizer.miditok[i - start]}"
        codebook, code = divmod(i - start, self.audio_codebook_size)
        return f"audio:{codebook}:{code}"

    def modality_of(self, ids) -> np.ndarray:
        """The range name (``special``, ``mode``, ``rebracketing``, ``text``, ``midi``, ``audio``) of each id."""
        ids = np.asarray(ids)
        out = np.full(ids.shape, "", dtype=object)
        for name, (start, stop) in self.ranges.items():
            out[(ids >= start) & (ids < stop)] = name
        return out

    def range_mask(self, *names: str) -> np.ndarray:
        """Bool ``[vocabulary_size]``: True on the ids of the named ranges (and on named tokens given by name)."""
        mask = np.zeros(self.vocabulary_size, bool)
        for name in names:
            if name in self.ranges:
                start, stop = self.ranges[name]
                mask[start:stop] = True
            else:
                mask[self.token_id(name)] = True
        return mask

    # --- conditioning --------------------------------------------------------------------

    def mode_ids(self, condition) -> list[int]:
        """Mode tokens of a condition, axis by axis: each chosen mode, or the axis' ``none`` token.

        Args:
            condition: anything :func:`chroma_keras.modes.resolve_condition` accepts ("Red",
                a per-axis dict, "future,thing,known", None).

        Returns:
            ids (Indigo's ontological axis gives two).
        """
        resolved = modes.resolve_condition(condition)
        out = []
        for axis in modes.AXES:
            chosen = resolved.axis_modes(axis) or ("none",)
            out += [self._ids[f"<{axis}:{mode}>"] for mode in chosen]
        return out

    def condition_from_ids(self, ids) -> modes.ModeCondition:
        """The condition the mode tokens among ``ids`` name (the inverse of :meth:`mode_ids`)."""
        chosen = {axis: [] for axis in modes.AXES}
        start, stop = self.ranges["mode"]
        for i in np.asarray(ids).ravel():
            if start <= i < stop:
                axis, mode = self._names[int(i)][1:-1].split(":")
                if mode != "none":
                    chosen[axis].append(mode)
        return modes.ModeCondition(**{a: tuple(m) for a, m in chosen.items()})

    def bucket(self, level: float) -> int:
        """The bucket of a normalised score in [0, 1]."""
        return min(int(float(level) * self.rebracketing_buckets), self.rebracketing_buckets - 1)

    def rebracketing_ids(self, levels: Mapping[str, float] | None = None, rebracketing_type: str | None = None) -> list[int]:
        """Tokens of rebracketing scores (normalised to [0, 1], see :func:`normalise_score`) and type.

        Args:
            levels: ``{score field: normalised value}``; fields come out in
                :data:`chroma_keras.rebracketing.SCORE_FIELDS` order.
            rebracketing_type: one of :data:`chroma_keras.rebracketing.REBRACKETING_TYPES` or None.
        """
        levels = dict(levels or {})
        unknown = [k for k in levels if k not in rebracketing.SCORE_FIELDS]
        if unknown:
            raise ModelInputError(f"Unknown rebracketing field {unknown[0]!r}. Expected among {list(rebracketing.SCORE_FIELDS)}.")
        out = []
        for field in rebracketing.SCORE_FIELDS:
            if field in levels and levels[field] is not None:
                value = float(levels[field])
                if not 0.0 <= value <= 1.0:
                    raise ModelInputError(f"rebracketing level {field} must be in [0, 1]. Received: {value}")
                out.append(self._ids[f"<{field}:{self.bucket(value)}>"])
        if rebracketing_type is not None:
            if rebracketing_type not in rebracketing.REBRACKETING_TYPES:
                raise ModelInputError(
                    f"rebracketing_type must be one of {list(rebracketing.REBRACKETING_TYPES)}. Received: {rebracketing_type!r}"
                )
            out.append(self._ids[f"<rebracketing_type:{rebracketing_type}>"])
        return out

    # --- text ----------------------------------------------------------------------------

    def encode_text(self, text: str) -> np.ndarray:
        """UTF-8 bytes of ``text`` as ids (int32)."""
        self._need("text", self.text, "text=True")
        return np.frombuffer(str(text).encode("utf-8"), np.uint8).astype(np.int32) + self.ranges["text"][0]

    def decode_text(self, ids) -> str:
        """The text of the byte tokens among ``ids`` (other ids are ignored; bad UTF-8 is replaced)."""
        self._need("text", self.text, "text=True")
        start, stop = self.ranges["text"]
        ids = np.asarray(ids).ravel()
        data = (ids[(ids >= start) & (ids < stop)] - start).astype(np.uint8).tobytes()
        return data.decode("utf-8", errors="replace")

    # --- MIDI ----------------------------------------------------------------------------

    def encode_midi(self, data: bytes, source: str = "midi") -> np.ndarray:
        """Token ids of a Standard MIDI File (all of it, not cut to ``max_events``).

        Raises:
            MidiError: for malformed MIDI, naming ``source``.
        """
        from chroma_keras.preprocessing.midi_validation import parse_score

        tokenizer = self._need("midi", self.midi_tokenizer, "midi=...")
        score = parse_score(data, source=source)
        sequence = np.asarray(tokenizer.miditok.encode(score).ids, np.int64)
        if self.midi_spec.tokenization == "cpword":
            from chroma_keras.preprocessing.midi_tokens import _flatten

            sequence, _ = _flatten(tokenizer, sequence.reshape(-1, len(tokenizer.field_sizes)))
        return self.midi_ids(sequence)

    def midi_ids(self, tokenizer_ids) -> np.ndarray:
        """Shift a MIDI tokenizer's own ids (e.g. ``MidiTokens.ids`` with padding removed) into the MIDI range."""
        self._need("midi", self.midi_tokenizer, "midi=...")
        return np.asarray(tokenizer_ids, np.int32) + self.ranges["midi"][0]

    def decode_midi(self, ids, source: str = "token ids") -> tuple[bytes, dict]:
        """A Standard MIDI File from the MIDI tokens among ``ids``, decoded the way miditok does.

        Non-MIDI ids (prefix, separators, padding) are dropped first. miditok skips tokens that
        break REMI's grammar (e.g. a Velocity with no Pitch before it); the report counts them.

        Returns:
            ``(midi_bytes, report)``, the report holding ``num_tokens`` (MIDI tokens decoded),
            ``token_error_rate`` (miditok's ratio of tokens of a type that cannot follow the
            previous one; 0 for a grammatical sequence) and ``num_notes``.
        """
        import miditok

        tokenizer = self._need("midi", self.midi_tokenizer, "midi=...")
        start, stop = self.ranges["midi"]
        ids = np.asarray(ids).ravel()
        local = (ids[(ids >= start) & (ids < stop)] - start).astype(np.int64)
        local = local[local != tokenizer.pad_id]
        if self.midi_spec.tokenization == "cpword":
            from chroma_keras.preprocessing.midi_tokens import detokenize

            data = detokenize(local, tokenizer, source=source) if local.size else _empty_midi()
            return data, {"num_tokens": int(local.size), "token_error_rate": float("nan"), "num_notes": _note_count(data)}
        if local.size == 0:
            return _empty_midi(), {"num_tokens": 0, "token_error_rate": 0.0, "num_notes": 0}
        sequence = miditok.TokSequence(ids=[int(i) for i in local])
        tokenizer.miditok.complete_sequence(sequence)
        error_rate = float(tokenizer.miditok.tokens_errors(sequence))
        try:
            score = tokenizer.miditok.decode(sequence)
        except Exception as exc:  # miditok raises KeyError / IndexError on some ungrammatical sequences
            raise DataError(f"{source}: miditok cannot decode the token sequence: {type(exc).__name__}: {exc}") from None
        return score.dumps_midi(), {
            "num_tokens": int(local.size),
            "token_error_rate": error_rate,
            "num_notes": int(score.note_num()),
        }

    # --- audio ---------------------------------------------------------------------------

    def encode_audio(self, codes, pattern: str = "delay") -> np.ndarray:
        """EnCodec codes ``[num_codebooks, T]`` as one id sequence (see the module docstring).

        Raises:
            ModelInputError: for a wrong shape, codes outside the codebook or an unknown pattern.
        """
        self._need("audio", self.audio_num_codebooks, "audio_num_codebooks > 0")
        codes = np.asarray(codes)
        k = self.audio_num_codebooks
        if codes.ndim != 2 or codes.shape[0] != k or not np.issubdtype(codes.dtype, np.integer):
            raise ModelInputError(f"audio codes must be integers of shape [{k}, T]. Received: shape={codes.shape}, dtype={codes.dtype}")
        if codes.size and (codes.min() < 0 or codes.max() >= self.audio_codebook_size):
            raise ModelInputError(f"audio codes must be in [0, {self.audio_codebook_size}). Received: [{codes.min()}, {codes.max()}]")
        check_audio_pattern(pattern)
        offsets = self.ranges["audio"][0] + np.arange(k)[:, None] * self.audio_codebook_size
        shifted = (codes + offsets).astype(np.int32)
        if pattern == "flatten":
            return shifted.T.reshape(-1)
        steps = codes.shape[1] + k - 1
        grid = np.full((k, steps), self.audio_pad_id, np.int32)
        for codebook in range(k):
            grid[codebook, codebook : codebook + codes.shape[1]] = shifted[codebook]
        return grid.T.reshape(-1)

    def decode_audio(self, ids, pattern: str = "delay") -> np.ndarray:
        """The inverse of :meth:`encode_audio`: codes ``[num_codebooks, T]`` (int32).

        ``ids`` must be exactly an encoded sequence (slice it out of a generated sequence
        first); a sequence whose length or token order does not fit the pattern raises.
        """
        self._need("audio", self.audio_num_codebooks, "audio_num_codebooks > 0")
        check_audio_pattern(pattern)
        k = self.audio_num_codebooks
        ids = np.asarray(ids, np.int64).ravel()
        if ids.size % k:
            raise ModelInputError(f"an audio sequence holds a multiple of {k} tokens. Received: {ids.size}")
        grid = ids.reshape(-1, k).T
        if pattern == "delay":
            steps = grid.shape[1]
            frames = steps - (k - 1)
            if frames < 0:
                raise ModelInputError(f"a delay-pattern sequence needs at least {k * (k - 1)} tokens. Received: {ids.size}")
            grid = np.stack([grid[c, c : c + frames] for c in range(k)]) if frames else np.zeros((k, 0), np.int64)
        offsets = self.ranges["audio"][0] + np.arange(k)[:, None] * self.audio_codebook_size
        codes = grid - offsets
        if codes.size and (codes.min() < 0 or codes.max() >= self.audio_codebook_size):
            raise ModelInputError(f"the sequence does not follow the {pattern!r} pattern: a token sits in the wrong codebook's range.")
        return codes.astype(np.int32)

    # --- config --------------------------------------------------------------------------

    def to_config(self) -> dict:
        """Plain-data config; :meth:`from_config` rebuilds an identical vocabulary."""
        return {
            "midi": asdict(self.midi_spec) if self.midi_spec is not None else None,
            "audio_num_codebooks": self.audio_num_codebooks,
            "audio_codebook_size": self.audio_codebook_size,
            "rebracketing_buckets": self.rebracketing_buckets,
            "text": self.text,
        }

    get_config = to_config

    @classmethod
    def from_config(cls, config: Mapping) -> "ChromaticVocabulary":
        """Rebuild a vocabulary from :meth:`to_config`."""
        return cls(**dict(config))

    def __eq__(self, other) -> bool:
        return isinstance(other, ChromaticVocabulary) and self.to_config() == other.to_config()

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={b - a}" for k, (a, b) in self.ranges.items())
        return f"ChromaticVocabulary(vocabulary_size={self.vocabulary_size}; {sizes})"

    # --- helpers -------------------------------------------------------------------------

    def _need(self, what, present, how):
        if not present:
            raise ModelInputError(f"this vocabulary has no {what} tokens; build it with {how}.")
        return present


def check_audio_pattern(pattern, name: str = "pattern") -> str:
    """Return ``pattern`` if it is an audio codebook layout (:data:`AUDIO_PATTERNS`).

    Args:
        pattern: the layout to check.
        name: the argument or preset key it came from, for the error message.

    Returns:
        ``pattern``.

    Raises:
        ModelInputError: naming ``name``, for any other value.

    Example:
    >>> check_audio_pattern("delay")
    'delay'
    """
    if pattern not in AUDIO_PATTERNS:
        raise ModelInputError(f"{name} must be one of {list(AUDIO_PATTERNS)}. Received: {name}={pattern!r}")
    return pattern


def normalise_score(field: str, value: float) -> float:
    """A rebracketing score in the units of the data, normalised to [0, 1] as the features are
    (intensity: ``log1p(x) / log1p(INTENSITY_SCALE)``, capped at 1; the rest as they are)."""
    return float(rebracketing.rebracketing_features({field: value}, source=f"rebracketing.{field}")[rebracketing.SCORE_FIELDS.index(field)])


def _empty_midi() -> bytes:
    import symusic

    return symusic.Score(8).dumps_midi()


def _note_count(data: bytes) -> int:
    import symusic

    return int(symusic.Score.from_midi(data).note_num())


def sequence_sections(ids: Sequence[int], vocab: ChromaticVocabulary) -> dict[str, np.ndarray]:
    """Split a generated sequence at its separators: ``{"prefix", "text", "midi", "audio"}`` id arrays.

    A section runs from its separator to the next separator or ``<eos>``.
    """
    ids = np.asarray(ids).ravel()
    out = {"prefix": [], "text": [], "midi": [], "audio": []}
    separators = {vocab.separator_id(m): m for m in MODALITY_SEPARATORS}
    current = "prefix"
    for i in ids:
        i = int(i)
        if i == vocab.eos_id:
            break
        if i in separators:
            current = separators[i]
            continue
        if i != vocab.pad_id:
            out[current].append(i)
    return {k: np.asarray(v, np.int32) for k, v in out.items()}
