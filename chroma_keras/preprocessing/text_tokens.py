"""Text -> fixed-length ids and a mask, as the preset's text encoder needs them.

Two kinds, chosen in one place, :func:`text_tokenizer_from_config`, from the
preset's ``model.text_encoder`` section (the dataset, the scorer's example
inputs and anything else that feeds a text encoder ask it):

* no ``pretrained_model`` (the default): :class:`ByteTextTokenizer`, UTF-8
  bytes + 1 (``data.multimodal_dataset.text_to_ids``), for a randomly
  initialised byte-level BERT;
* ``pretrained_model`` set (``all_minilm_l6_v2`` or a converted MiniLM
  directory): :class:`WordPieceTextTokenizer` over that model's ``vocab.txt``,
  ``[CLS] pieces [SEP]`` then ``[PAD]`` (id 0), as the model was trained.

Both give ``(ids int32 [length], mask float32 [length])`` per text with 0 as
padding, so the encoder's mask and batching do not care which one made them.
"""

from __future__ import annotations

import functools
import json
import pathlib
import unicodedata
from typing import Mapping, Sequence

import numpy as np

from chroma_keras.errors import ModelInputError, PresetError

DEFAULT_BYTE_LENGTH = 256
# HF BERT keeps \t, \n, \r as whitespace and drops every other control / format character.
_WHITESPACE = {"\t", "\n", "\r", " "}


class ByteTextTokenizer:
    """UTF-8 byte ids (byte + 1, 0 = padding) cut or padded to ``sequence_length``.

    Args:
        sequence_length: ids per text.

    Example:

    >>> ids, mask = ByteTextTokenizer(8).encode("Red")
    >>> ids.tolist(), mask.sum()
    ([83, 102, 101, 0, 0, 0, 0, 0], 3.0)
    """

    kind = "bytes"

    def __init__(self, sequence_length: int = DEFAULT_BYTE_LENGTH):
        self.sequence_length = int(sequence_length)

    def encode(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """``(ids int32 [sequence_length], mask float32 [sequence_length])`` of one text."""
        from chroma_keras.data.multimodal_dataset import text_to_ids

        return text_to_ids(_checked_text(text), self.sequence_length)

    def __call__(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(ids [n, sequence_length], mask [n, sequence_length])`` of a list of texts."""
        pairs = [self.encode(t) for t in _checked_texts(texts)]
        return _stack(pairs, self.sequence_length)


def normalize_bert_text(text: str, lowercase: bool = True) -> str:
    """Clean and lowercase text as Hugging Face's uncased BERT tokenizer does before splitting.

    Drops NUL, U+FFFD and control / format characters (keeping tab, newline
    and carriage return as spaces), turns every Unicode space into ``" "``, and
    with ``lowercase`` lowercases with ``str.lower`` and strips accents
    (NFD, then combining marks removed). No NFKC folding: ``"ﬁ"`` stays one
    character (an unknown piece), as in the reference.

    Example:

    >>> normalize_bert_text("Café\\u00a0Déjà\\u200bVu")
    'cafe dejavu'
    """
    cleaned = []
    for char in text:
        code = ord(char)
        if code == 0 or code == 0xFFFD:
            continue
        category = unicodedata.category(char)
        if char in _WHITESPACE or category == "Zs":
            cleaned.append(" ")
        elif category.startswith("C"):
            continue
        else:
            cleaned.append(char)
    text = unicodedata.normalize("NFC", "".join(cleaned))
    if lowercase:
        text = unicodedata.normalize("NFD", text.lower())
        text = "".join(c for c in text if unicodedata.category(c) != "Mn")
    return text


class WordPieceTextTokenizer:
    """WordPiece ids of a BERT vocabulary: ``[CLS] pieces [SEP]``, padded with ``[PAD]`` to ``sequence_length``.

    Splitting on whitespace, punctuation and CJK characters and the WordPiece
    search are keras-hub's ``BertTokenizer`` (``lowercase`` and accent
    stripping off there); cleaning and lowercasing are
    :func:`normalize_bert_text`, so ids match Hugging Face's uncased BERT
    tokenizer (as sentence-transformers call it: ``truncation=True``,
    ``max_length=sequence_length``). Texts longer than ``sequence_length - 2``
    pieces are cut.

    Args:
        vocabulary: path of a ``vocab.txt`` (one piece per line) or a list of pieces.
        sequence_length: ids per text including ``[CLS]`` and ``[SEP]`` (at least 2).
        lowercase: lowercase and strip accents (uncased models).

    Example:

    >>> tokenizer = WordPieceTextTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "red", "##dish"], 6)
    >>> ids, mask = tokenizer(["Reddish"])
    >>> ids.tolist()
    [[2, 5, 6, 3, 0, 0]]
    """

    kind = "wordpiece"

    def __init__(self, vocabulary, sequence_length: int = 256, lowercase: bool = True):
        from keras_hub.models import BertTokenizer

        if int(sequence_length) < 2:
            raise ModelInputError(f"WordPieceTextTokenizer: sequence_length must be >= 2. Received: {sequence_length}")
        self.vocabulary = str(vocabulary) if isinstance(vocabulary, (str, pathlib.Path)) else list(vocabulary)
        if isinstance(self.vocabulary, str) and not pathlib.Path(self.vocabulary).is_file():
            raise ModelInputError(f"WordPieceTextTokenizer: vocabulary={self.vocabulary!r} is not a file.")
        self.sequence_length = int(sequence_length)
        self.lowercase = bool(lowercase)
        try:
            self.tokenizer = BertTokenizer(vocabulary=self.vocabulary, lowercase=False, strip_accents=False)
        except (ValueError, RuntimeError) as exc:  # duplicate pieces, missing [CLS] / [SEP] / [PAD] / [MASK]
            where = self.vocabulary if isinstance(self.vocabulary, str) else "the vocabulary list"
            raise ModelInputError(f"WordPieceTextTokenizer: {where} is not a usable WordPiece vocabulary ({exc}).") from exc
        self.cls_id = int(self.tokenizer.cls_token_id)
        self.sep_id = int(self.tokenizer.sep_token_id)
        self.pad_id = int(self.tokenizer.pad_token_id)
        self.vocabulary_size = int(self.tokenizer.vocabulary_size())
        self._encode_cached = functools.lru_cache(maxsize=8192)(self._encode_uncached)

    def pieces(self, texts: Sequence[str]) -> list[list[int]]:
        """The WordPiece ids of each text, without special tokens or truncation."""
        texts = [normalize_bert_text(t, self.lowercase) for t in _checked_texts(texts)]
        if not texts:
            return []
        out = self.tokenizer(texts)
        if hasattr(out, "to_list"):  # tf.RaggedTensor on the TensorFlow backend
            out = out.to_list()
        return [np.asarray(row).astype(np.int64).reshape(-1).tolist() for row in out]

    def _encode_uncached(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        return self._fit(self.pieces([text])[0])

    def _fit(self, pieces) -> tuple[np.ndarray, np.ndarray]:
        row = [self.cls_id, *pieces[: self.sequence_length - 2], self.sep_id]
        ids = np.full(self.sequence_length, self.pad_id, np.int32)
        ids[: len(row)] = row
        mask = np.zeros(self.sequence_length, np.float32)
        mask[: len(row)] = 1.0
        return ids, mask

    def encode(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """``(ids int32 [sequence_length], mask float32 [sequence_length])`` of one text (cached)."""
        ids, mask = self._encode_cached(_checked_text(text))
        return ids.copy(), mask.copy()

    def __call__(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(ids int32 [n, sequence_length], mask float32 [n, sequence_length])`` of a list of texts."""
        texts = _checked_texts(texts)
        return _stack([self._fit(p) for p in self.pieces(texts)], self.sequence_length)


def _checked_text(text) -> str:
    if not isinstance(text, str):
        raise ModelInputError(f"text must be a str. Received: {type(text).__name__}")
    return text


def _checked_texts(texts) -> list[str]:
    if isinstance(texts, str):
        raise ModelInputError("texts must be a list of strings, not one string; wrap it: [text].")
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ModelInputError(f"texts[{i}] must be a str. Received: {type(text).__name__}")
    return texts


def _stack(pairs, length):
    if not pairs:
        return np.zeros((0, length), np.int32), np.zeros((0, length), np.float32)
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


# === Which tokenizer a preset's text encoder needs ===


def pretrained_text_spec(pretrained_model: str) -> dict:
    """What a pretrained text backbone needs from the data: ``{"vocabulary", "max_length", "lowercase"}``.

    Args:
        pretrained_model: a MiniLM preset name (``"all_minilm_l6_v2"``) or a
            directory written by ``chroma-keras convert --model minilm``.

    Raises:
        PresetError: not a pretrained text model, or its vocabulary is missing.
    """
    from chroma_keras.errors import CheckpointError
    from chroma_keras.pretrained import minilm, registry

    name = str(pretrained_model)
    try:
        if registry.is_converted_directory(name):
            spec = json.loads((pathlib.Path(name) / registry.CONFIG_FILENAME).read_text())
            if spec.get("architecture") != minilm.MINILM.name:
                raise PresetError(
                    f"model.text_encoder.pretrained_model: {name!r} holds a {spec.get('architecture')!r} model; "
                    f"expected a converted {minilm.MINILM.name!r} (BERT) text backbone."
                )
            max_length = int(spec["config"]["max_sequence_length"])
        elif name in minilm.MINILM.presets:
            max_length = int(minilm.MINILM.presets[name].get("sentence_max_length", minilm.SENTENCE_MAX_LENGTH))
        else:
            raise PresetError(
                f"model.text_encoder.pretrained_model: {name!r} is neither a pretrained text preset "
                f"({', '.join(minilm.MINILM.presets)}) nor a directory written by `chroma-keras convert --model minilm`."
            )
        vocabulary = minilm.vocabulary_path(name)
    except CheckpointError as exc:
        raise PresetError(f"model.text_encoder.pretrained_model: {exc}") from exc
    return {"vocabulary": str(vocabulary), "max_length": max_length, "lowercase": True}


def text_sequence_length(config: Mapping) -> int:
    """Ids per text for a resolved preset: ``model.text_encoder.max_sequence_length``, capped for a
    pretrained backbone at the length it was trained on (256 for all-MiniLM-L6-v2)."""
    section = (config.get("model") or {}).get("text_encoder") or {}
    length = int(section.get("max_sequence_length") or DEFAULT_BYTE_LENGTH)
    if section.get("pretrained_model"):
        length = min(length, pretrained_text_spec(section["pretrained_model"])["max_length"])
    return length


def text_tokenizer_from_config(config: Mapping, sequence_length: int | None = None):
    """The tokenizer the preset's text encoder reads: WordPiece for a pretrained backbone, else bytes.

    Args:
        config: a resolved preset config.
        sequence_length: ids per text (default :func:`text_sequence_length`).

    Returns:
        A :class:`WordPieceTextTokenizer` or a :class:`ByteTextTokenizer`.
    """
    section = (config.get("model") or {}).get("text_encoder") or {}
    length = int(sequence_length) if sequence_length is not None else text_sequence_length(config)
    if section.get("pretrained_model") and section.get("type", "bert") == "bert":
        spec = pretrained_text_spec(section["pretrained_model"])
        return _wordpiece(spec["vocabulary"], length, spec["lowercase"])
    return ByteTextTokenizer(length)


@functools.lru_cache(maxsize=8)
def _wordpiece(vocabulary: str, length: int, lowercase: bool) -> WordPieceTextTokenizer:
    # One tokenizer per vocabulary and length: building the lookup table costs ~0.1 s.
    return WordPieceTextTokenizer(vocabulary, length, lowercase)
