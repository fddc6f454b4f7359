"""Modality encoders (audio, MIDI, text) behind one interface; see :mod:`.base`."""

from chroma_keras.models.encoders.base import (
    AudioEncoder,
    MIDIEncoder,
    ModalityEncoder,
    TextEncoder,
    build_encoder,
    register_encoder,
)

__all__ = ["AudioEncoder", "MIDIEncoder", "ModalityEncoder", "TextEncoder", "build_encoder", "register_encoder"]
