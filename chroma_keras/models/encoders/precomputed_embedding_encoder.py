"""PrecomputedEmbeddingEncoder: a projection of a precomputed audio or text embedding (e.g. CLAP, MiniLM)."""

from __future__ import annotations

from typing import Mapping

import keras
from keras import ops

from chroma_keras.data import keys
from chroma_keras.errors import ModelInputError, PresetError
from chroma_keras.models.encoders.base import MODALITY_SECTIONS, ModalityEncoder, register_encoder

# modality -> the batch key holding its precomputed embedding [batch, dim]
EMBEDDING_KEYS = {"audio": keys.AUDIO_EMBEDDING, "text": keys.TEXT_EMBEDDING}


@keras.saving.register_keras_serializable(package="chroma_keras")
class PrecomputedEmbeddingEncoder(ModalityEncoder):
    """Encodes a precomputed embedding vector: ``Dense(LayerNorm(x))``.

    Use it when embeddings were computed offline (the optional embedding
    parquets, a frozen CLAP or sentence encoder): training is then cheap and
    the raw audio / text never has to be loaded. The LayerNorm puts embeddings
    from different sources on one scale before the learned projection.

    Args:
        modality: ``"audio"`` (reads ``keys.AUDIO_EMBEDDING``) or ``"text"``
            (reads ``keys.TEXT_EMBEDDING``).
        hidden_dim: width of the output embedding.
        epsilon: LayerNorm epsilon.
        **kwargs: ``keras.layers.Layer`` arguments (``name``, ``dtype``).

    Call arguments:
        inputs: a batch dict holding the embedding key, float ``[batch, dim]``.
        training: unused (no dropout); kept for the common interface.

    Returns:
        ``{"embedding": [batch, hidden_dim], "sequence": [batch, 1, hidden_dim],
        "sequence_mask": [batch, 1]}`` (the sequence is the single embedding step).

    Example:

    >>> encoder = PrecomputedEmbeddingEncoder("text", hidden_dim=8)
    >>> out = encoder({"text_embedding": np.ones((2, 384), "float32")})
    >>> tuple(out["sequence"].shape)
    (2, 1, 8)
    """

    def __init__(self, modality: str = "audio", hidden_dim: int = 512, epsilon: float = 1e-6, **kwargs):
        if modality not in EMBEDDING_KEYS:
            raise ModelInputError(
                f"PrecomputedEmbeddingEncoder: modality must be one of {sorted(EMBEDDING_KEYS)}. "
                f"Received: modality={modality!r}"
            )
        super().__init__(hidden_dim=hidden_dim, **kwargs)
        # Instance attributes shadow the base-class ones: one class serves two modalities.
        self.modality = modality
        self.input_keys = (EMBEDDING_KEYS[modality],)
        self.embedding_key = EMBEDDING_KEYS[modality]
        self.epsilon = float(epsilon)

        # === Layers ===
        self.norm = keras.layers.LayerNormalization(epsilon=self.epsilon, name="norm", dtype=self.dtype_policy)
        self.projection = keras.layers.Dense(self.hidden_dim, name="projection", dtype=self.dtype_policy)

    def build(self, inputs_shape):
        shape = _embedding_shape(inputs_shape, self.embedding_key, self.name)
        self.norm.build(shape)
        self.projection.build(shape)
        self.built = True

    def call(self, inputs, training=False):
        _embedding_shape(_shapes(inputs), self.embedding_key, self.name)
        x = ops.cast(inputs[self.embedding_key], self.compute_dtype)
        embedding = self.projection(self.norm(x))
        return {
            "embedding": embedding,
            "sequence": ops.expand_dims(embedding, 1),
            "sequence_mask": ops.ones((ops.shape(embedding)[0], 1), dtype=embedding.dtype),
        }

    def compute_output_shape(self, inputs_shape):
        batch = inputs_shape[self.embedding_key][0]
        return {
            "embedding": (batch, self.hidden_dim),
            "sequence": (batch, 1, self.hidden_dim),
            "sequence_mask": (batch, 1),
        }

    def get_config(self):
        config = super().get_config()
        config.update(modality=self.modality, epsilon=self.epsilon)
        return config

    @classmethod
    def from_preset_config(cls, config: Mapping, modality: str = "audio"):
        """Build from a resolved preset: reads ``model.<modality>_encoder.hidden_dim``.

        Args:
            config: a resolved preset config.
            modality: ``"audio"`` or ``"text"``.

        Returns:
            A ``PrecomputedEmbeddingEncoder``.
        """
        section_name = MODALITY_SECTIONS[modality]
        section = (config.get("model") or {}).get(section_name) or {}
        if section.get("pretrained_model"):
            raise PresetError(
                f"model.{section_name}.pretrained_model: must be null for type 'precomputed' (the embeddings are "
                f"already computed). Received: {section['pretrained_model']!r}"
            )
        return cls(modality=modality, hidden_dim=section.get("hidden_dim", 512), name=f"{modality}_encoder")


register_encoder("audio", "precomputed")(PrecomputedEmbeddingEncoder)
register_encoder("text", "precomputed")(PrecomputedEmbeddingEncoder)


def _shapes(inputs):
    if not isinstance(inputs, Mapping):
        return inputs
    return {k: tuple(v.shape) for k, v in inputs.items() if hasattr(v, "shape")}


def _embedding_shape(inputs_shape, key, name):
    """The shape of ``inputs[key]`` checked to be ``[batch, dim]``; a ``ModelInputError`` otherwise."""
    if not isinstance(inputs_shape, Mapping):
        raise ModelInputError(f"{name}: expects a batch dict holding {key!r} [batch, dim]. Received: {type(inputs_shape).__name__}")
    if key not in inputs_shape:
        raise ModelInputError(f"{name}: the batch has no {key!r}; expected float [batch, dim]. Received keys: {sorted(inputs_shape)}")
    shape = tuple(inputs_shape[key])
    if len(shape) != 2 or shape[-1] is None:
        raise ModelInputError(f"{name}: {key!r} must be float [batch, dim] with a known dim. Received: shape={shape}")
    return shape
