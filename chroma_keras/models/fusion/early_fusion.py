"""Early fusion: one shared transformer over the concatenated, projected modality sequences."""

from __future__ import annotations

import keras
from keras import ops
from keras_hub.layers import SinePositionEncoding, TransformerEncoder

from chroma_keras.errors import ModelInputError
from chroma_keras.models.fusion.base import MultimodalFusion, register_fusion


@register_fusion("early")
@keras.saving.register_keras_serializable(package="chroma_keras")
class EarlyFusion(MultimodalFusion):
    """Runs a shared transformer encoder over all modalities' steps at once.

    Each modality ``m`` contributes a segment of tokens to one joint sequence:

    1. a *summary token*: its pooled ``"embedding"`` projected to ``width``, or
       the modality's learned null embedding when the modality is absent or
       dropped (this token is always attended, so every row has at least one
       valid token per modality),
    2. its ``"sequence"`` projected to ``width`` (the same projection) plus a
       sinusoidal position encoding, masked by ``sequence_mask`` and by presence
       (an absent modality keeps only its null token),

    and every token of the segment gets the learned modality-type embedding of
    ``m``. A stack of ``keras_hub.layers.TransformerEncoder`` blocks runs over the
    concatenated segments with the joint padding mask, then a masked mean pool
    and a Dense map to ``hidden_dim``. Every step can attend to every other
    modality's steps, which makes it the most expressive and the most expensive
    strategy (attention is quadratic in the total number of steps).

    Args:
        modalities: the modalities this model fuses (ordered like ``data.keys.MODALITIES``).
        hidden_dim: output width.
        dropout: dropout inside the transformer blocks.
        modality_dropout: training-time probability of dropping a present modality.
        exempt_modalities: modalities never dropped.
        seed: seed of the modality-dropout SeedGenerator.
        width: width of the joint sequence; ``None`` uses ``hidden_dim``. Must be
            divisible by ``num_heads``.
        num_layers: number of transformer blocks.
        num_heads: attention heads per block.
        intermediate_dim: width of the blocks' feed-forward layer; ``None`` uses ``2 * width``.
        **kwargs: ``keras.layers.Layer`` arguments.

    Call arguments:
        encoded: ``{modality: {"embedding": [batch, d_m], "sequence": [batch, steps_m, d_m],
            "sequence_mask": [batch, steps_m]}}`` for every modality in ``modalities``.
        modality_mask: float ``[batch, 3]`` in ``MODALITIES`` order (1 = present), or ``None`` for all present.
        training: whether dropout and modality dropout are active.

    Returns:
        float ``[batch, hidden_dim]``.

    Example:

    >>> fusion = EarlyFusion(["audio", "midi"], hidden_dim=16, num_heads=2)
    >>> out = {"embedding": np.ones((2, 8), "float32"), "sequence": np.ones((2, 5, 8), "float32"),
    ...        "sequence_mask": np.ones((2, 5), "float32")}
    >>> fusion({"audio": out, "midi": out}, np.array([[0, 1, 1], [0, 0, 1]], "float32")).shape
    (2, 16)
    """

    reads_sequences = True

    def __init__(
        self,
        modalities,
        hidden_dim: int,
        *,
        width=None,
        num_layers: int = 1,
        num_heads: int = 4,
        intermediate_dim=None,
        **kwargs,
    ):
        super().__init__(modalities, hidden_dim, **kwargs)
        self.width = int(width) if width is not None else self.hidden_dim
        self.num_layers = int(num_layers)
        self.num_heads = int(num_heads)
        self.intermediate_dim = int(intermediate_dim) if intermediate_dim is not None else 2 * self.width
        if self.num_layers < 1 or self.num_heads < 1 or self.width % self.num_heads:
            owner = kwargs.get("name") or type(self).__name__
            raise ModelInputError(
                f"{owner}: needs num_layers >= 1 and a width divisible by num_heads. "
                f"Received: width={self.width}, num_heads={self.num_heads}, num_layers={self.num_layers}"
            )
        # === Layers ===
        self._add_modality_layers(self.width)
        self.positions = SinePositionEncoding(name="position_encoding", dtype=self.dtype_policy)
        self.blocks = [
            TransformerEncoder(
                intermediate_dim=self.intermediate_dim,
                num_heads=self.num_heads,
                dropout=self.dropout,
                activation="gelu",
                normalize_first=True,
                name=f"transformer_block_{i}",
                dtype=self.dtype_policy,
            )
            for i in range(self.num_layers)
        ]
        self.final_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="final_norm", dtype=self.dtype_policy)
        self.output_projection = keras.layers.Dense(self.hidden_dim, name="output_projection", dtype=self.dtype_policy)

    def build(self, encoded_shape, modality_mask_shape=None):
        self._build_modality_layers(encoded_shape, modality_mask_shape)
        for block in self.blocks:
            block.build((None, None, self.width))
        self.final_norm.build((None, None, self.width))
        self.output_projection.build((None, self.width))
        self.built = True

    def joint_sequence(self, encoded, modality_mask=None, training=False):
        """The joint token sequence the transformer runs over, before the first block.

        Args:
            encoded: encoder outputs per modality (see the class docstring).
            modality_mask: float ``[batch, 3]`` or ``None``.
            training: whether modality dropout is active.

        Returns:
            ``(tokens, mask)``: float ``[batch, total_steps, width]`` and float
            ``[batch, total_steps]`` where ``total_steps = sum(1 + steps_m)``.
        """
        summaries, presence = self._project_embeddings(encoded, modality_mask, training=training)
        segments = self._modality_segments(encoded, summaries, presence, positions=self.positions)
        return (
            ops.concatenate([tokens for tokens, _ in segments], axis=1),
            ops.concatenate([mask for _, mask in segments], axis=1),
        )

    def call(self, encoded, modality_mask=None, training=False):
        tokens, mask = self.joint_sequence(encoded, modality_mask, training=training)
        padding_mask = mask > 0
        for block in self.blocks:
            tokens = block(tokens, padding_mask=padding_mask, training=training)
        tokens = self.final_norm(tokens)
        # `where`, not a product: masked steps never contribute, whatever they hold.
        summed = ops.sum(ops.where(padding_mask[:, :, None], tokens, 0.0), axis=1)
        pooled = summed / ops.maximum(ops.sum(mask, axis=1, keepdims=True), 1.0)
        return self.output_projection(pooled)

    def compute_output_shape(self, encoded_shape, modality_mask_shape=None):
        return (encoded_shape[self.modalities[0]]["embedding"][0], self.hidden_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            width=self.width,
            num_layers=self.num_layers,
            num_heads=self.num_heads,
            intermediate_dim=self.intermediate_dim,
        )
        return config
