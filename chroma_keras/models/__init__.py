"""Backbones and task models."""

from chroma_keras.models.conditional_vae import ConditionalVAE
from chroma_keras.models.pianoroll_vae_decoder import PianoRollVAEDecoder
from chroma_keras.models.pianoroll_vae_encoder import PianoRollVAEEncoder

__all__ = ["ChromaticGPT", "ConditionalVAE", "PianoRollVAEDecoder", "PianoRollVAEEncoder"]


def __getattr__(name):
    # Imported on first use: the GPT pulls in keras-hub, which the other models do not need.
    if name == "ChromaticGPT":
        from chroma_keras.models.chromatic_gpt import ChromaticGPT

        return ChromaticGPT
    raise AttributeError(f"module 'chroma_keras.models' has no attribute {name!r}")
