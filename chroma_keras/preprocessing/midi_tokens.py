"""MIDI <-> token ids with miditok (REMI or CPWord), as fixed-length arrays with a mask.

A :class:`MidiTokenizer` pairs a miditok tokenizer with our sequence layout:

* ``tokenization="remi"``: REMI (Huang & Yang, 2020): one token per attribute
  (Bar, Position, Tempo, Program, Pitch, Velocity, Duration); ids are ``[max_events]``.
* ``tokenization="cpword"``: Compound Word (Hsiao et al., 2021): a note is one
  *compound* token whose sub-tokens (family, position/bar, pitch, velocity, duration,
  program, tempo, time signature) come from separate vocabularies. ``cpword_layout``
  decides how a model sees it:

  - ``"compound"`` (miditok's native form): ids are ``[max_events, num_fields]``,
    one row per compound token; a model sums one embedding per field. Shortest
    sequences (~3-4x shorter than REMI), but needs a multi-field embedding and
    multi-head output.
  - ``"separate"``: each compound token is flattened, REMI-like, into its
    sub-tokens that are not "Ignore", each mapped into one shared id space
    (field ``k``'s ids are offset by the sizes of fields ``0..k-1``); ids are
    ``[max_events]``. Any 1-D model (a GPT over a unified vocabulary) reads it.
    Decoding regroups tokens at each Family token, which starts every compound.

All tracks go into one stream (miditok ``use_programs`` with
``one_token_stream_for_programs``: Program tokens tell instruments apart; drums are
program -1). Times are in beats: positions on a grid of ``positions_per_beat``,
durations up to 8 beats, ``num_velocities`` velocity bins, and (``use_tempos``)
32 tempo bins from 40 to 250 bpm, so a decoded file plays at the quantised tempo.

Sequences longer than ``max_events`` are cut (for "separate", at a compound-token
boundary) and shorter ones padded with the PAD id (0 in every vocabulary); the mask is
True on real tokens. MIDI bytes pass :mod:`~chroma_keras.preprocessing.midi_validation`
before symusic parses them; notes without a note-off end where their track ends.

The tokenizer is saved as miditok's own ``tokenizer.json`` (loadable with
``miditok.REMI(params=...)``), with our layout under the extra key ``"chroma_keras"``.

Example:

>>> from chroma_keras.preprocessing.midi_tokens import MidiTokenizerSpec, make_tokenizer
>>> tokenizer = make_tokenizer(MidiTokenizerSpec(tokenization="remi", max_events=256))
>>> tokens = tokenize_midi_bytes(midi_bytes, tokenizer, source="01_01_seg_0001_track_01")  # doctest: +SKIP
>>> tokens.ids.shape, tokens.mask.sum()                                                     # doctest: +SKIP
((256,), 187)
>>> midi_again = detokenize(tokens.ids, tokenizer, mask=tokens.mask)                        # doctest: +SKIP
"""

from __future__ import annotations

import json
import pathlib
import warnings
from dataclasses import asdict, dataclass, fields
from typing import Mapping, NamedTuple

import miditok
import numpy as np

from chroma_keras.errors import DataError, PresetError
from chroma_keras.preprocessing.midi_validation import parse_score

TOKENIZATIONS = ("remi", "cpword")
CPWORD_LAYOUTS = ("compound", "separate")
TOKENIZER_FILE = "tokenizer.json"
_CONFIG_PATH = "preprocessing.midi"
_TOKENS_PATH = "preprocessing.midi.tokens"
_CLASSES = {"remi": miditok.REMI, "cpword": miditok.CPWord}


@dataclass(frozen=True)
class MidiTokenizerSpec:
    """What a :class:`MidiTokenizer` produces.

    Args:
        tokenization: ``"remi"`` or ``"cpword"``.
        max_events: sequence length (tokens; compound tokens for CPWord "compound").
        cpword_layout: ``"compound"`` or ``"separate"`` (CPWord only; see the module docstring).
        positions_per_beat: time grid of onsets and durations (1..32).
        num_velocities: velocity bins (1..127).
        use_tempos: add Tempo tokens, so decoded MIDI keeps the (quantised) tempo.
    """

    tokenization: str = "remi"
    max_events: int = 1024
    cpword_layout: str = "compound"
    positions_per_beat: int = 8
    num_velocities: int = 32
    use_tempos: bool = True

    def __post_init__(self):
        problems = []
        if self.tokenization not in TOKENIZATIONS:
            problems.append(f"tokenization must be one of {list(TOKENIZATIONS)}. Received: {self.tokenization!r}")
        if self.cpword_layout not in CPWORD_LAYOUTS:
            problems.append(f"cpword_layout must be one of {list(CPWORD_LAYOUTS)}. Received: {self.cpword_layout!r}")
        for name, low, high in (
            ("max_events", 1, 1_000_000),
            ("positions_per_beat", 1, 32),
            ("num_velocities", 1, 127),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
                problems.append(f"{name} must be an integer in [{low}, {high}]. Received: {name}={value!r}")
        if not isinstance(self.use_tempos, (bool, np.bool_)):
            problems.append(f"use_tempos must be true or false. Received: use_tempos={self.use_tempos!r}")
        if problems:
            raise DataError("Invalid MidiTokenizerSpec: " + "; ".join(problems))

    @property
    def is_compound(self) -> bool:
        """True when ids are ``[max_events, num_fields]`` (CPWord, compound layout)."""
        return self.tokenization == "cpword" and self.cpword_layout == "compound"

    @classmethod
    def from_config(cls, config: Mapping) -> "MidiTokenizerSpec":
        """Read ``preprocessing.midi`` of a resolved preset.

        Reads ``tokenization`` and ``max_events`` from ``preprocessing.midi`` and the
        optional section ``preprocessing.midi.tokens`` (``cpword_layout``,
        ``positions_per_beat``, ``num_velocities``, ``use_tempos``). Missing keys take
        the defaults.

        Raises:
            PresetError: naming the dotted key path, for ``tokenization: pianoroll``
                (no token vocabulary), unknown keys in the tokens section or bad values.
        """
        midi = ((config or {}).get("preprocessing") or {}).get("midi") or {}
        if not isinstance(midi, Mapping):
            raise PresetError(f"{_CONFIG_PATH} must be a mapping. Received: {type(midi).__name__}")
        kwargs = {}
        if "tokenization" in midi:
            if midi["tokenization"] == "pianoroll":
                raise PresetError(
                    f"{_CONFIG_PATH}.tokenization is 'pianoroll', which has no token vocabulary; "
                    f"expected one of {list(TOKENIZATIONS)} to build a MIDI tokenizer."
                )
            kwargs["tokenization"] = midi["tokenization"]
        if "max_events" in midi:
            kwargs["max_events"] = midi["max_events"]
        tokens = midi.get("tokens") or {}
        if not isinstance(tokens, Mapping):
            raise PresetError(f"{_TOKENS_PATH} must be a mapping. Received: {type(tokens).__name__}")
        allowed = [f.name for f in fields(cls) if f.name not in ("tokenization", "max_events")]
        for key, value in tokens.items():
            if key not in allowed:
                raise PresetError(f"Unknown key {_TOKENS_PATH}.{key}. Expected keys among {allowed}.")
            kwargs[key] = value
        try:
            return cls(**kwargs)
        except DataError as exc:
            raise PresetError(f"{_CONFIG_PATH}: {exc}") from None


class MidiTokens(NamedTuple):
    """One tokenized segment.

    Attributes:
        ids: int32 ``[max_events]`` or ``[max_events, num_fields]`` (CPWord compound).
        mask: bool ``[max_events]``, True on real tokens.
        num_tokens: length before truncation (> ``max_events`` means it was cut).
    """

    ids: np.ndarray
    mask: np.ndarray
    num_tokens: int


class MidiTokenizer:
    """A miditok tokenizer with a fixed-length layout (see the module docstring).

    Args:
        spec: what to produce.
        tokenizer: an existing miditok tokenizer matching ``spec.tokenization``
            (e.g. loaded from a file); by default one is built from ``spec``.
    """

    def __init__(self, spec: MidiTokenizerSpec, tokenizer: miditok.MusicTokenizer | None = None):
        self.spec = spec
        self.miditok = tokenizer if tokenizer is not None else _build_miditok(spec)
        if not isinstance(self.miditok, _CLASSES[spec.tokenization]):
            raise DataError(
                f"the miditok tokenizer is a {type(self.miditok).__name__}; expected "
                f"{_CLASSES[spec.tokenization].__name__} for tokenization={spec.tokenization!r}"
            )
        sizes = [len(v) for v in self.miditok.vocab] if self.miditok.is_multi_voc else [len(self.miditok)]
        self.field_sizes = tuple(sizes)
        self._offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)

    @property
    def vocab_size(self) -> int | tuple[int, ...]:
        """Size of the id space; per field for CPWord "compound"."""
        return self.field_sizes if self.spec.is_compound else int(sum(self.field_sizes))

    @property
    def pad_id(self) -> int:
        """The padding id (miditok's PAD, 0 in every vocabulary)."""
        return int(self.miditok.pad_token_id)

    def get_config(self) -> dict:
        """The spec as a dict (``MidiTokenizerSpec(**config)`` rebuilds it)."""
        return asdict(self.spec)

    def __repr__(self) -> str:
        return f"MidiTokenizer({self.spec!r}, vocab_size={self.vocab_size})"


def _build_miditok(spec: MidiTokenizerSpec) -> miditok.MusicTokenizer:
    config = miditok.TokenizerConfig(
        pitch_range=(21, 109),
        beat_res={(0, 8): spec.positions_per_beat},
        num_velocities=spec.num_velocities,
        special_tokens=["PAD", "BOS", "EOS"],
        use_programs=True,
        one_token_stream_for_programs=True,
        use_tempos=spec.use_tempos,
        num_tempos=32,
        tempo_range=(40, 250),
        use_time_signatures=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # miditok warns about settings we chose on purpose
        return _CLASSES[spec.tokenization](config)


def make_tokenizer(spec: MidiTokenizerSpec | None = None, **kwargs) -> MidiTokenizer:
    """Build a :class:`MidiTokenizer` from a spec or from spec fields.

    Args:
        spec: the spec; if None, ``MidiTokenizerSpec(**kwargs)``.
        **kwargs: spec fields (only without ``spec``).

    Returns:
        The tokenizer.
    """
    if spec is None:
        spec = MidiTokenizerSpec(**kwargs)
    elif kwargs:
        raise DataError(f"pass either a spec or spec fields, not both. Received: spec and {sorted(kwargs)}")
    return MidiTokenizer(spec)


def tokenizer_from_config(config: Mapping) -> MidiTokenizer:
    """Build the tokenizer a resolved preset asks for (see :meth:`MidiTokenizerSpec.from_config`)."""
    return MidiTokenizer(MidiTokenizerSpec.from_config(config))


# ---------------------------------------------------------------------------
# Encoding and decoding
# ---------------------------------------------------------------------------


def tokenize_midi_bytes(data: bytes, tokenizer: MidiTokenizer, *, source: str) -> MidiTokens:
    """Tokenize one Standard MIDI File into fixed-length ids and a mask.

    Args:
        data: the file's bytes.
        tokenizer: the tokenizer.
        source: what to name in error messages (segment_id or path).

    Returns:
        :class:`MidiTokens`.

    Raises:
        MidiError: for malformed MIDI (see ``midi_validation``), naming ``source``.
    """
    score = parse_score(data, source=source)
    sequence = tokenizer.miditok.encode(score)
    return _fit(tokenizer, np.asarray(sequence.ids, np.int64))


def _flatten(tokenizer: MidiTokenizer, compound: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CPWord rows -> flat unified ids (Ignore sub-tokens dropped) and each row's start in them."""
    ignore = np.array([v.get("Ignore_None", -1) for v in tokenizer.miditok.vocab])
    keep = compound != ignore
    flat = (compound + tokenizer._offsets)[keep]
    starts = np.concatenate([[0], np.cumsum(keep.sum(axis=1))[:-1]]) if len(compound) else np.zeros(0, np.int64)
    return flat, starts


def _fit(tokenizer: MidiTokenizer, ids: np.ndarray) -> MidiTokens:
    spec = tokenizer.spec
    if spec.tokenization == "cpword" and spec.cpword_layout == "separate":
        ids, starts = _flatten(tokenizer, ids.reshape(-1, len(tokenizer.field_sizes)))
        length = len(ids)
        if length > spec.max_events:
            # Cut after the last compound token that fits whole.
            ends = np.append(starts[1:], length)
            ids = ids[: int(ends[ends <= spec.max_events].max(initial=0))]
    else:
        length = len(ids)
        ids = ids[: spec.max_events]
    shape = (spec.max_events, len(tokenizer.field_sizes)) if spec.is_compound else (spec.max_events,)
    out = np.full(shape, tokenizer.pad_id, np.int32)
    out[: len(ids)] = ids
    mask = np.zeros(spec.max_events, bool)
    mask[: len(ids)] = True
    return MidiTokens(out, mask, int(length))


def detokenize(ids, tokenizer: MidiTokenizer, *, mask=None, source: str = "token ids") -> bytes:
    """Turn token ids back into a Standard MIDI File.

    Args:
        ids: ``[T]`` (or ``[T, num_fields]`` for CPWord compound) ints, e.g.
            :attr:`MidiTokens.ids` or a model's samples.
        tokenizer: the tokenizer that made them.
        mask: optional ``[T]`` bools; tokens where it is False are dropped
            (without it, PAD tokens are dropped).
        source: what to name in error messages.

    Returns:
        SMF bytes (one track per program, the tokenizer's ticks per quarter).

    Raises:
        DataError: for ids of the wrong shape or outside the vocabulary, or a
            sequence miditok cannot decode.
    """
    spec = tokenizer.spec
    array = np.asarray(ids)
    expected = 2 if spec.is_compound else 1
    if array.ndim != expected or (spec.is_compound and array.shape[1] != len(tokenizer.field_sizes)):
        want = f"[T, {len(tokenizer.field_sizes)}]" if spec.is_compound else "[T]"
        raise DataError(f"{source}: expected token ids of shape {want}. Received: shape={array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        raise DataError(f"{source}: expected integer token ids. Received: dtype={array.dtype}")
    if mask is None:
        keep = (array != tokenizer.pad_id).any(axis=-1) if spec.is_compound else array != tokenizer.pad_id
    else:
        keep = np.asarray(mask, bool)
        if keep.shape != array.shape[:1]:
            raise DataError(f"{source}: mask shape {keep.shape} does not match ids shape {array.shape}.")
    array = array[keep].astype(np.int64)
    limits = np.array(tokenizer.field_sizes) if spec.is_compound else np.array(sum(tokenizer.field_sizes))
    if array.size and ((array < 0).any() or (array >= limits).any()):
        raise DataError(f"{source}: token ids outside the vocabulary (sizes {tokenizer.vocab_size}).")
    if spec.tokenization == "cpword":
        if not spec.is_compound:
            array = _regroup(tokenizer, array)
        sequence = array.reshape(-1, len(tokenizer.field_sizes)).tolist()
    else:
        sequence = array.tolist()
    try:
        score = tokenizer.miditok.decode(sequence)
    except Exception as exc:  # miditok raises KeyError / IndexError on ungrammatical sequences
        raise DataError(f"{source}: miditok cannot decode the token sequence: {type(exc).__name__}: {exc}") from None
    return score.dumps_midi()


def _regroup(tokenizer: MidiTokenizer, flat: np.ndarray) -> np.ndarray:
    """Flat unified CPWord ids -> compound rows (a row starts at each Family token)."""
    field = np.searchsorted(tokenizer._offsets, flat, side="right") - 1
    local = flat - tokenizer._offsets[field]
    family = field == 0
    if flat.size and not family[0]:
        raise DataError("token ids: a flattened CPWord sequence must start with a Family token.")
    row = np.cumsum(family) - 1
    ignore = np.array([v.get("Ignore_None", 0) for v in tokenizer.miditok.vocab])
    rows = np.tile(ignore, (int(family.sum()), 1))
    rows[row, field] = local
    return rows


# ---------------------------------------------------------------------------
# Saving next to the data
# ---------------------------------------------------------------------------


def save_tokenizer(tokenizer: MidiTokenizer, directory) -> pathlib.Path:
    """Write ``directory/tokenizer.json``: miditok's parameters plus our layout.

    Args:
        tokenizer: the tokenizer.
        directory: folder to write into (created if needed).

    Returns:
        The file's path.
    """
    path = pathlib.Path(directory) / TOKENIZER_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tokenizer.miditok.save(path, additional_attributes={"chroma_keras": tokenizer.get_config()})
    return path


def load_tokenizer(directory) -> MidiTokenizer:
    """Load a tokenizer written by :func:`save_tokenizer` (a folder or the file itself).

    Raises:
        DataError: naming the file, when it is missing, not JSON, or lacks our layout.
    """
    path = pathlib.Path(directory)
    if path.is_dir():
        path = path / TOKENIZER_FILE
    try:
        params = json.loads(path.read_text())
    except OSError as exc:
        raise DataError(f"{path}: cannot read the tokenizer file ({exc.strerror or exc}).") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: the tokenizer file is not valid JSON ({exc}).") from None
    layout = params.get("chroma_keras")
    if not isinstance(layout, dict):
        raise DataError(f"{path}: no 'chroma_keras' entry; expected a file written by save_tokenizer().")
    spec = MidiTokenizerSpec(**layout)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tokenizer = _CLASSES[spec.tokenization](params=path)
    if hasattr(tokenizer, "chroma_keras"):
        del tokenizer.chroma_keras  # miditok copies unknown keys onto the tokenizer
    return MidiTokenizer(spec, tokenizer)
