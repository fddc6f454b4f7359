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

from chroma_keras.errors import PresetError

_REGISTRY: dict[str, Callable[..., keras.layers.Layer]] = {}


class MultimodalFusion(keras.layers.Layer):
    """Base class of fusion strategies.

    Args:
        modalities: the modalities this model fuses (ordered like ``data.keys.MODALITIES``).
        hidden_dim: output width.
        dropout: dropout inside the fusion block.
        modality_dropout: training-time probability of dropping a present modality.
        exempt_modalities: modalities never dropped.
        seed: seed of the modality-dropout SeedGenerator.
        **kwargs: ``keras.layers.Layer`` arguments.
    """

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
        super().__init__(**kwargs)
        self.modalities = tuple(modalities)
        self.hidden_dim = int(hidden_dim)
        self.dropout = float(dropout)
        self.modality_dropout = float(modality_dropout)
        self.exempt_modalities = tuple(exempt_modalities)
        self.seed = seed

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
