"""Backbones and task models."""

from chroma_keras.models.conditional_vae import ConditionalVAE
from chroma_keras.models.pianoroll_vae_decoder import PianoRollVAEDecoder
from chroma_keras.models.pianoroll_vae_encoder import PianoRollVAEEncoder

__all__ = ["ConditionalVAE", "PianoRollVAEDecoder", "PianoRollVAEEncoder"]
