"""Losses, schedules and callbacks used in training."""

from chroma_keras.training.kl_annealing import KL_SCHEDULES, kl_annealing_factor
from chroma_keras.training.preset_callbacks import monitored_quantity, preset_callbacks

__all__ = ["KL_SCHEDULES", "kl_annealing_factor", "monitored_quantity", "preset_callbacks"]
