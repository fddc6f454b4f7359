"""Tokenizers: the unified GPT vocabulary (text bytes, chromatic modes, rebracketing, MIDI, audio codes)."""

from chroma_keras.tokenizers.chromatic_vocabulary import ChromaticVocabulary

__all__ = ["ChromaticVocabulary"]
