"""Evaluation of generated music: Fréchet distance, symbolic statistics and diversity, reconstruction
metrics, chromatic consistency by a scorer and bootstrap intervals (see ``docs/evaluation.md``)."""

from chroma_keras.evaluation.audio_embeddings import audio_embeddings, codec_reconstruction, frechet_audio_distance
from chroma_keras.evaluation.chromatic_consistency import (
    RecognitionReport,
    chromatic_consistency,
    colour_recognition,
    reference_recognition,
)
from chroma_keras.evaluation.frechet import FrechetResult, frechet_distance, frechet_distance_from_moments, frechet_interval
from chroma_keras.evaluation.intervals import Estimate, bootstrap_interval
from chroma_keras.evaluation.reconstruction import note_metrics, piano_roll_notes, spectral_distance
from chroma_keras.evaluation.symbolic import (
    STATISTICS,
    intra_class_variance,
    mean_pairwise_distance,
    onsets,
    symbolic_statistics,
)

__all__ = [
    "STATISTICS",
    "Estimate",
    "FrechetResult",
    "RecognitionReport",
    "audio_embeddings",
    "bootstrap_interval",
    "chromatic_consistency",
    "codec_reconstruction",
    "colour_recognition",
    "frechet_audio_distance",
    "frechet_distance",
    "frechet_distance_from_moments",
    "frechet_interval",
    "intra_class_variance",
    "mean_pairwise_distance",
    "note_metrics",
    "onsets",
    "piano_roll_notes",
    "reference_recognition",
    "spectral_distance",
    "symbolic_statistics",
]
