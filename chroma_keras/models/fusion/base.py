"""The interface of fusion strategies and their registry.

A fusion layer combines the encoder outputs of the present modalities into one
vector per segment. It is called as::

    fused = fusion(encoded, modality_mask, training=training)

* ``encoded``: ``{"text": out, "audio": out, "midi": out}`` for the modalities the
  model has (a subset of ``data.keys.MODALITIES``), each ``out`` an encoder
  output dict (``"embedding"`` ``[batch, d_m]``, ``"sequence"`` ``[batch, steps, d_m]``,
  ``"sequence_mask"`` ``[batch, steps]``; see ``models.encoders.base``),
* ``modality_mask``: float ``[batch, len(MODALITIES)]`` in ``MODALITIES`` order
  (1 = present),
* returns float ``[batch, hidden_dim]``.

Every strategy replaces an absent modality by a learned null embedding (so a
row's output does not depend on what its absent encoders computed from zeros)
and applies modality dropout in training: each present modality is dropped with
probability ``modality_dropout`` (those listed in ``exempt_modalities`` never),
never dropping the last present one of a row.

Strategies register by name (``model.fusion.strategy``) with
:func:`register_fusion`; :func:`build_fusion` builds one from a resolved preset.
"""

from __future__ import annotations

from typing import Callable, Mapping

import keras
from keras import ops

from chroma_keras.errors import PresetError
from chroma_keras.layers.modality_dropout import (
    ModalityDropout,
    check_encoded,
    check_modalities,
    check_modality_mask,
)

_REGISTRY: dict[str, Callable[..., keras.layers.Layer]] = {}


class MultimodalFusion(keras.layers.Layer):
    """Base class of fusion strategies.

    Holds what every strategy shares, so a strategy only adds its own layers:

    * the constructor arguments below (``modalities`` is validated) and their ``get_config``;
    * :meth:`_add_modality_layers`: one ``Dense`` projection per modality
      (``projections``, layers ``{m}_projection``), the learned null embeddings
      with modality dropout (``null_and_dropout``, layer ``modality_dropout``)
      and, for strategies that read sequences, the learned modality-type
      embedding (``type_embedding``, layer ``modality_type_embedding``);
    * :meth:`_build_modality_layers`: the input shape checks and the build of those layers;
    * :meth:`_project_embeddings`: the input checks, then every modality's pooled
      embedding projected and absent (or dropped) ones replaced by their null embedding;
    * :meth:`_modality_segments`: per modality, the token segment of the
      sequence-reading strategies (summary token, projected steps, type vector).

    Subclasses set ``reads_sequences = True`` when they need each encoder's
    ``"sequence"`` / ``"sequence_mask"`` as well as its ``"embedding"``.

    Args:
        modalities: the modalities this model fuses (ordered like ``data.keys.MODALITIES``).
        hidden_dim: output width.
        dropout: dropout inside the fusion block.
        modality_dropout: training-time probability of dropping a present modality.
        exempt_modalities: modalities never dropped.
        seed: seed of the modality-dropout SeedGenerator.
        **kwargs: ``keras.layers.Layer`` arguments.

    Raises:
        ModelInputError: when ``modalities`` is not a non-empty subset of
            ``data.keys.MODALITIES`` in that order.
    """

    #: Whether the strategy reads the encoders' ``"sequence"`` and ``"sequence_mask"``.
    reads_sequences = False

    def __init__(
        self,
        modalities,
        hidden_dim: int,
        dropout: float = 0.1,
        modality_dropout: float = 0.0,
        exempt_modalities=(),
        seed=None,
        **kwargs,
    ):
        # Checked before Layer.__init__, so a rejected layer does not use up an automatic name.
        modalities = check_modalities(modalities, kwargs.get("name") or type(self).__name__)
        super().__init__(**kwargs)
        self.modalities = modalities
        self.hidden_dim = int(hidden_dim)
        self.dropout = float(dropout)
        self.modality_dropout = float(modality_dropout)
        self.exempt_modalities = tuple(exempt_modalities)
        self.seed = seed

    def _add_modality_layers(self, width: int) -> None:
        """Creates the per-modality projections to ``width``, the null embeddings and (with sequences) type embeddings.

        Args:
            width: width of the projected embeddings (and of the null and type embeddings).
        """
        self.projections = {
            m: keras.layers.Dense(width, name=f"{m}_projection", dtype=self.dtype_policy) for m in self.modalities
        }
        self.null_and_dropout = ModalityDropout(
            self.modalities,
            width,
            rate=self.modality_dropout,
            exempt_modalities=self.exempt_modalities,
            seed=self.seed,
            name="modality_dropout",
            dtype=self.dtype_policy,
        )
        if self.reads_sequences:
            self.type_embedding = keras.layers.Embedding(
                len(self.modalities), width, name="modality_type_embedding", dtype=self.dtype_policy
            )

    def _build_modality_layers(self, encoded_shape, modality_mask_shape=None) -> None:
        """Checks the input shapes and builds the layers of :meth:`_add_modality_layers`.

        Args:
            encoded_shape: ``{modality: {key: shape}}`` as ``build`` receives it.
            modality_mask_shape: shape of the presence mask, or None.

        Raises:
            ModelInputError: on a missing modality or key, or a badly shaped tensor or mask.
        """
        check_encoded(encoded_shape, self.modalities, self.name, need_sequence=self.reads_sequences)
        if modality_mask_shape is not None:
            check_modality_mask(modality_mask_shape, self.name)
        for m in self.modalities:
            self.projections[m].build(tuple(encoded_shape[m]["embedding"]))
        self.null_and_dropout.build()
        if self.reads_sequences:
            self.type_embedding.build()

    def _project_embeddings(self, encoded, modality_mask=None, training=False):
        """Checks ``encoded``, projects each modality's pooled embedding and nulls the absent ones.

        Args:
            encoded: encoder outputs per modality (see the module docstring).
            modality_mask: float ``[batch, len(MODALITIES)]`` or None for all present.
            training: whether modality dropout is active.

        Returns:
            ``(embeddings, presence)``: float ``[batch, len(modalities), width]`` with the
            null embedding in place of every absent or dropped modality, and the
            effective presence mask float ``[batch, len(modalities)]`` (1 = present and kept).

        Raises:
            ModelInputError: on a missing modality or key, or a badly shaped tensor or mask.
        """
        check_encoded(encoded, self.modalities, self.name, need_sequence=self.reads_sequences)
        projected = ops.stack([self.projections[m](encoded[m]["embedding"]) for m in self.modalities], axis=1)
        return self.null_and_dropout(projected, modality_mask, training=training)

    def _modality_segments(self, encoded, summaries, presence, positions=None):
        """Per modality, the tokens a sequence-reading strategy attends over, and their mask.

        A segment is the modality's summary token (its row of ``summaries``: the
        projected embedding or the null embedding) followed by its projected
        ``"sequence"`` (plus ``positions(steps)`` when given), every token plus the
        modality's type embedding. The summary token is always valid; the steps are
        masked by ``"sequence_mask"`` and by presence.

        Args:
            encoded: encoder outputs per modality, with sequences.
            summaries: float ``[batch, len(modalities), width]`` from :meth:`_project_embeddings`.
            presence: float ``[batch, len(modalities)]`` from :meth:`_project_embeddings`.
            positions: a layer mapping ``[batch, steps, width]`` to a position encoding, or None.

        Returns:
            A list, in ``modalities`` order, of ``(tokens, mask)``: float
            ``[batch, 1 + steps_m, width]`` and float ``[batch, 1 + steps_m]``.
        """
        segments = []
        for i, m in enumerate(self.modalities):
            steps = self.projections[m](encoded[m]["sequence"])
            if positions is not None:
                steps = steps + positions(steps)
            type_vector = self.type_embedding(ops.convert_to_tensor([i], dtype="int32"))[None, :, :]
            tokens = ops.concatenate([summaries[:, i : i + 1, :], steps], axis=1) + type_vector
            step_mask = ops.cast(encoded[m]["sequence_mask"], self.compute_dtype) * presence[:, i : i + 1]
            mask = ops.concatenate([ops.ones_like(presence[:, i : i + 1]), step_mask], axis=1)
            segments.append((tokens, mask))
        return segments

    def get_config(self):
        config = super().get_config()
        config.update(
            modalities=list(self.modalities),
            hidden_dim=self.hidden_dim,
            dropout=self.dropout,
            modality_dropout=self.modality_dropout,
            exempt_modalities=list(self.exempt_modalities),
            seed=self.seed,
        )
        return config


def register_fusion(strategy: str):
    """Class decorator: register a fusion class under ``model.fusion.strategy == strategy``."""

    def decorate(cls):
        _REGISTRY[strategy] = cls
        return cls

    return decorate


def build_fusion(config: Mapping, modalities, **kwargs) -> keras.layers.Layer:
    """Build the fusion a resolved preset declares.

    Args:
        config: a resolved preset config (reads ``model.fusion``).
        modalities: the modalities the model fuses.
        **kwargs: extra constructor arguments (``hidden_dim``, ``modality_dropout``, ...).

    Raises:
        PresetError: when the strategy is not implemented.
    """
    section = (config.get("model") or {}).get("fusion") or {}
    strategy = section.get("strategy", "late")
    _import_implementations()
    if strategy not in _REGISTRY:
        raise PresetError(f"model.fusion.strategy: {strategy!r} is not implemented; available: {sorted(_REGISTRY)}")
    options = {"dropout": section.get("dropout", 0.1)}
    if strategy in ("cross_attention", "early"):
        options["num_heads"] = section.get("attention_heads", 4)
    options.update(kwargs)
    return _REGISTRY[strategy](modalities=modalities, **options)


def _import_implementations() -> None:
    import importlib
    import pkgutil

    import chroma_keras.models.fusion as package

    for info in pkgutil.iter_modules(package.__path__):
        if info.name != "base":
            importlib.import_module(f"{package.__name__}.{info.name}")
