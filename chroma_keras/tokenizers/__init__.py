"""Tokenizers that turn music into discrete tokens: :class:`AudioTokenizer` (EnCodec codes of a waveform)."""

from chroma_keras.tokenizers.audio_tokenizer import AudioTokenizer

__all__ = ["AudioTokenizer"]
