"""Reusable Keras layers."""

from chroma_keras.layers.chromatic_condition_embedding import ChromaticConditionEmbedding
from chroma_keras.layers.film import FiLM
from chroma_keras.layers.frame_position_channels import FramePositionChannels
from chroma_keras.layers.log_mel_spectrogram import LogMelSpectrogram
from chroma_keras.layers.modality_dropout import ModalityDropout
from chroma_keras.layers.pitch_profile import AddPitchBias, PitchProfile
from chroma_keras.layers.reparameterization import Reparameterization
from chroma_keras.layers.timestep_embedding import SinusoidalTimestepEmbedding

__all__ = [
    "AddPitchBias",
    "ChromaticConditionEmbedding",
    "FiLM",
    "FramePositionChannels",
    "LogMelSpectrogram",
    "ModalityDropout",
    "PitchProfile",
    "Reparameterization",
    "SinusoidalTimestepEmbedding",
]
