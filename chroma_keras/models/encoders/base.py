"""The one forward interface every modality encoder implements, and the encoder registry.

An encoder is a ``keras.layers.Layer`` that reads its modality's keys from a
batch dict (names in :mod:`chroma_keras.data.keys`) and returns an
:class:`EncoderOutput`-shaped dict:

* ``"embedding"``: float ``[batch, hidden_dim]``, the pooled segment embedding
  (the same pooling in training and inference),
* ``"sequence"``: float ``[batch, steps, hidden_dim]``, per-step features for
  attention-based fusion (pooled encoders return a single step),
* ``"sequence_mask"``: float ``[batch, steps]``, 1 on real steps.

Rows whose modality is absent still produce finite outputs (zeros in, something
finite out); fusion replaces them with a learned null embedding using the
presence mask, so encoders never need to know about presence.

Implementations register themselves by ``(modality, type)`` with
:func:`register_encoder`, where ``type`` is the value of
``model.<modality>_encoder.type`` in a preset; :func:`build_encoder` builds one
from a resolved preset config.
"""

from __future__ import annotations

from typing import Callable, Mapping

import keras

from chroma_keras.errors import PresetError

MODALITY_SECTIONS = {"audio": "audio_encoder", "midi": "midi_encoder", "text": "text_encoder"}
_REGISTRY: dict[tuple[str, str], Callable[[Mapping], keras.layers.Layer]] = {}


class ModalityEncoder(keras.layers.Layer):
    """Base class of the audio, MIDI and text encoders.

    Subclasses set ``modality`` and ``input_keys`` and implement
    ``call(inputs, training=False) -> {"embedding", "sequence", "sequence_mask"}``
    where ``inputs`` is a batch dict; keys other than ``input_keys`` are ignored.

    Args:
        hidden_dim: width of ``embedding`` and ``sequence``.
        **kwargs: ``keras.layers.Layer`` arguments (``name``, ``dtype``).
    """

    modality: str = ""
    input_keys: tuple[str, ...] = ()

    def __init__(self, hidden_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim = int(hidden_dim)

    def get_config(self):
        config = super().get_config()
        config["hidden_dim"] = self.hidden_dim
        return config


class AudioEncoder(ModalityEncoder):
    """Base class of audio encoders (reads ``keys.AUDIO`` / ``keys.AUDIO_MASK`` or ``keys.AUDIO_EMBEDDING``)."""

    modality = "audio"


class MIDIEncoder(ModalityEncoder):
    """Base class of MIDI encoders (reads ``keys.PIANO_ROLL`` or ``keys.MIDI_TOKENS`` / ``keys.MIDI_TOKEN_MASK``)."""

    modality = "midi"


class TextEncoder(ModalityEncoder):
    """Base class of text encoders (reads ``keys.TEXT_IDS`` / ``keys.TEXT_MASK`` or ``keys.TEXT_EMBEDDING``)."""

    modality = "text"


def register_encoder(modality: str, type_name: str):
    """Class decorator: register ``cls.from_preset_config`` under ``model.<modality>_encoder.type == type_name``.

    The class must define ``from_preset_config(config, modality) -> encoder`` (a
    classmethod reading the resolved preset; ``modality`` lets one class serve
    several modalities).
    """

    def decorate(cls):
        _REGISTRY[(modality, type_name)] = cls.from_preset_config
        return cls

    return decorate


def build_encoder(modality: str, config: Mapping) -> keras.layers.Layer:
    """Build the encoder a resolved preset declares for ``modality``.

    Args:
        modality: ``"audio"``, ``"midi"`` or ``"text"``.
        config: a resolved preset config.

    Returns:
        The encoder layer.

    Raises:
        PresetError: when the preset has no such section or its type is not implemented.
    """
    section_name = MODALITY_SECTIONS.get(modality)
    if section_name is None:
        raise PresetError(f"unknown modality {modality!r}; expected one of {list(MODALITY_SECTIONS)}")
    section = (config.get("model") or {}).get(section_name)
    if not section:
        raise PresetError(f"model.{section_name}: missing; the preset asks for a {modality} encoder but declares none.")
    _import_implementations()
    key = (modality, section["type"])
    if key not in _REGISTRY:
        known = sorted(t for m, t in _REGISTRY if m == modality)
        raise PresetError(f"model.{section_name}.type: {section['type']!r} is not implemented; available: {known}")
    return _REGISTRY[key](config, modality)


def _import_implementations() -> None:
    # Implementations register on import; import the modules that exist.
    import importlib
    import pkgutil

    import chroma_keras.models.encoders as package

    for info in pkgutil.iter_modules(package.__path__):
        if info.name != "base":
            importlib.import_module(f"{package.__name__}.{info.name}")
