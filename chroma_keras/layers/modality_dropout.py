"""Null embeddings for absent modalities and training-time modality dropout (shared by every fusion)."""

from __future__ import annotations

from collections.abc import Mapping

import keras
from keras import ops

from chroma_keras.data.keys import MODALITIES
from chroma_keras.errors import ModelInputError


@keras.saving.register_keras_serializable(package="chroma_keras")
class ModalityDropout(keras.layers.Layer):
    """Replaces absent (or dropped) modalities by a learned null embedding.

    The layer holds one learned null vector per modality. Given per-modality
    vectors stacked as ``[batch, n, dim]`` and the presence mask, it returns the
    vectors with every absent modality replaced by its null vector (via
    ``where``, so nothing an absent encoder computed, not even a NaN, leaks
    through) together with the effective presence mask.

    In training, each present modality is dropped with probability ``rate``
    (modalities in ``exempt_modalities`` never are). When a row would lose all
    its present modalities, one of them, chosen uniformly, is kept; so the
    expected drop rate of a modality in a row with ``k`` droppable present
    modalities and no exempt one is ``rate - rate**k / k``. Rows with no present
    modality at all stay all-null. Nothing is dropped at inference.

    Args:
        modalities: the modalities of the model, ordered as ``data.keys.MODALITIES``
            (a subset of it).
        embedding_dim: width of the vectors (and of the null embeddings).
        rate: training-time probability of dropping a present modality, in ``[0, 1)``.
        exempt_modalities: modalities never dropped.
        seed: seed of the layer's ``keras.random.SeedGenerator``.
        **kwargs: ``keras.layers.Layer`` arguments.

    Call arguments:
        embeddings: float ``[batch, len(modalities), embedding_dim]``.
        modality_mask: float ``[batch, len(MODALITIES)]`` in ``MODALITIES`` order
            (1 = present), or ``None`` for all present.
        training: whether to apply modality dropout.

    Returns:
        ``(embeddings, presence)``: the vectors with nulls in place of absent
        modalities ``[batch, n, embedding_dim]`` and the effective presence mask
        ``[batch, n]`` (float, 1 = present and kept), columns in ``modalities`` order.

    Example:

    >>> layer = ModalityDropout(["audio", "midi"], embedding_dim=4, rate=0.3, seed=0)
    >>> vectors = np.ones((2, 2, 4), "float32")
    >>> mask = np.array([[0, 1, 0], [0, 1, 1]], "float32")  # text, audio, midi
    >>> out, presence = layer(vectors, mask)  # row 0: MIDI replaced by its null
    """

    def __init__(self, modalities, embedding_dim, rate=0.0, exempt_modalities=(), seed=None, **kwargs):
        super().__init__(**kwargs)
        self.modalities = check_modalities(modalities, self.name)
        self.embedding_dim = int(embedding_dim)
        self.rate = float(rate)
        self.exempt_modalities = tuple(exempt_modalities)
        self.seed = seed
        if not 0.0 <= self.rate < 1.0:
            raise ModelInputError(f"{self.name}: rate must be in [0, 1). Received: rate={rate!r}")
        unknown = [m for m in self.exempt_modalities if m not in self.modalities]
        if unknown:
            raise ModelInputError(
                f"{self.name}: exempt_modalities {unknown} are not among the model's modalities "
                f"{list(self.modalities)}. Received: exempt_modalities={list(self.exempt_modalities)}"
            )
        self._columns = [MODALITIES.index(m) for m in self.modalities]
        self._droppable = [0.0 if m in self.exempt_modalities else 1.0 for m in self.modalities]
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, embeddings_shape=None, modality_mask_shape=None):
        self.null_embeddings = self.add_weight(
            shape=(len(self.modalities), self.embedding_dim),
            initializer=keras.initializers.RandomNormal(stddev=0.02),
            name="null_embeddings",
        )
        self.built = True

    def presence(self, modality_mask, batch_size=None, training=False):
        """The effective presence mask of this layer's modalities.

        Args:
            modality_mask: float ``[batch, len(MODALITIES)]`` (1 = present), or ``None``.
            batch_size: batch size used when ``modality_mask`` is ``None``.
            training: whether to apply modality dropout.

        Returns:
            float ``[batch, len(modalities)]``, 1 = present and kept.
        """
        if modality_mask is None:
            return ops.ones((batch_size, len(self.modalities)), dtype=self.compute_dtype)
        check_modality_mask(modality_mask, self.name)
        mask = ops.cast(ops.take(ops.convert_to_tensor(modality_mask), self._columns, axis=1) > 0.5, self.compute_dtype)
        if training and self.rate > 0.0:
            mask = self._drop(mask)
        return mask

    def _drop(self, present):
        droppable = ops.convert_to_tensor(self._droppable, dtype=present.dtype)[None, :]
        draws = keras.random.uniform(ops.shape(present), seed=self.seed_generator, dtype=present.dtype)
        dropped = present * droppable * ops.cast(draws < self.rate, present.dtype)
        kept = present - dropped
        # Rows that would lose every present modality keep the present one with
        # the largest draw: a uniform choice, since the draws are i.i.d.
        lost_all = ops.cast((ops.sum(kept, axis=1) == 0) & (ops.sum(present, axis=1) > 0), present.dtype)
        rescued = ops.one_hot(ops.argmax(ops.where(present > 0, draws, -1.0), axis=1), len(self.modalities))
        return kept + lost_all[:, None] * ops.cast(rescued, present.dtype)

    def replace(self, embeddings, presence):
        """Puts the null embedding of each modality where ``presence`` is 0.

        Args:
            embeddings: float ``[batch, len(modalities), embedding_dim]``.
            presence: float ``[batch, len(modalities)]``.

        Returns:
            float ``[batch, len(modalities), embedding_dim]``.
        """
        null = ops.cast(self.null_embeddings, embeddings.dtype)[None, :, :]
        return ops.where(presence[:, :, None] > 0, embeddings, null)

    def call(self, embeddings, modality_mask=None, training=False):
        shape = embeddings.shape
        if len(shape) != 3 or shape[1] not in (None, len(self.modalities)) or shape[2] not in (None, self.embedding_dim):
            raise ModelInputError(
                f"{self.name}: embeddings must be [batch, {len(self.modalities)}, {self.embedding_dim}] "
                f"(modalities {list(self.modalities)}). Received: shape={tuple(shape)}"
            )
        presence = self.presence(modality_mask, ops.shape(embeddings)[0], training=training)
        return self.replace(embeddings, presence), presence

    def compute_output_spec(self, embeddings, modality_mask=None, training=False):
        batch = embeddings.shape[0]
        return (
            keras.KerasTensor(embeddings.shape, dtype=self.compute_dtype),
            keras.KerasTensor((batch, len(self.modalities)), dtype=self.compute_dtype),
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            modalities=list(self.modalities),
            embedding_dim=self.embedding_dim,
            rate=self.rate,
            exempt_modalities=list(self.exempt_modalities),
            seed=self.seed,
        )
        return config


def check_modalities(modalities, owner: str) -> tuple[str, ...]:
    """Validates a model's modality list: a non-empty subset of ``MODALITIES`` in that order.

    Args:
        modalities: iterable of modality names.
        owner: name of the layer, for the error message.

    Returns:
        The modalities as a tuple.

    Raises:
        ModelInputError: on an unknown, repeated or misordered modality, or an empty list.
    """
    modalities = tuple(modalities)
    ordered = tuple(m for m in MODALITIES if m in modalities)
    if not modalities or len(set(modalities)) != len(modalities) or ordered != modalities:
        raise ModelInputError(
            f"{owner}: modalities must be a non-empty subset of {list(MODALITIES)} in that order. "
            f"Received: modalities={list(modalities)}"
        )
    return modalities


def check_modality_mask(modality_mask, owner: str) -> None:
    """Raises ``ModelInputError`` unless ``modality_mask`` is ``[batch, len(MODALITIES)]``.

    Args:
        modality_mask: the presence mask a fusion or this layer was given, or its shape.
        owner: name of the layer, for the error message.
    """
    shape = _shape_of(modality_mask)
    if len(shape) != 2 or shape[1] not in (None, len(MODALITIES)):
        raise ModelInputError(
            f"{owner}: modality_mask must be float [batch, {len(MODALITIES)}] in MODALITIES order "
            f"{list(MODALITIES)} (1 = present). Received: shape={shape}"
        )


def check_encoded(encoded, modalities, owner: str, need_sequence: bool) -> None:
    """Raises ``ModelInputError`` unless ``encoded`` holds a well-shaped encoder output per modality.

    Args:
        encoded: ``{modality: {"embedding", "sequence", "sequence_mask"}}`` of tensors, or of
            their shapes (as a layer's ``build`` receives them).
        modalities: the modalities the fusion expects.
        owner: name of the layer, for the error message.
        need_sequence: whether ``"sequence"`` / ``"sequence_mask"`` are required too.
    """
    if not isinstance(encoded, Mapping):
        raise ModelInputError(
            f"{owner}: encoded must be a dict {{modality: encoder output}} for {list(modalities)}. "
            f"Received: {type(encoded).__name__}"
        )
    expected = {"embedding": "[batch, dim]"}
    if need_sequence:
        expected.update(sequence="[batch, steps, dim]", sequence_mask="[batch, steps]")
    for modality in modalities:
        if modality not in encoded:
            raise ModelInputError(
                f"{owner}: encoded[{modality!r}] is missing; this fusion was built for {list(modalities)} "
                f"and needs an encoder output for each (absent rows are marked in modality_mask). "
                f"Received keys: {sorted(encoded)}"
            )
        out = encoded[modality]
        for key, layout in expected.items():
            if not isinstance(out, Mapping) or key not in out:
                raise ModelInputError(f"{owner}: encoded[{modality!r}][{key!r}] is missing; expected float {layout}.")
            shape = _shape_of(out[key])
            if len(shape) != layout.count(",") + 1:
                raise ModelInputError(
                    f"{owner}: encoded[{modality!r}][{key!r}] must be float {layout}. Received: shape={shape}"
                )
        if need_sequence:
            steps, mask_steps = _shape_of(out["sequence"])[1], _shape_of(out["sequence_mask"])[1]
            if None not in (steps, mask_steps) and steps != mask_steps:
                raise ModelInputError(
                    f"{owner}: encoded[{modality!r}]['sequence_mask'] must be [batch, {steps}] to match its "
                    f"sequence. Received: shape={_shape_of(out['sequence_mask'])}"
                )


def _shape_of(value) -> tuple:
    """The shape of a tensor / array, or ``value`` itself as a tuple when it already is a shape."""
    if hasattr(value, "shape"):
        return tuple(value.shape)
    if isinstance(value, (tuple, list)) and all(d is None or isinstance(d, int) for d in value):
        return tuple(value)
    return ()
