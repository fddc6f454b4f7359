"""Tokenizers that turn music into discrete tokens: :class:`AudioTokenizer` (EnCodec codes of a waveform) and
:class:`ChromaticVocabulary` (the GPT's one id space for specials, modes, rebracketing, text, MIDI and audio codes)."""

from chroma_keras.tokenizers.audio_tokenizer import AudioTokenizer
from chroma_keras.tokenizers.chromatic_vocabulary import ChromaticVocabulary

__all__ = ["AudioTokenizer", "ChromaticVocabulary"]
