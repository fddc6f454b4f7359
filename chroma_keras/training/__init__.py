"""Losses, schedules and callbacks used in training."""

from chroma_keras.training.kl_annealing import KL_SCHEDULES, kl_annealing_factor

__all__ = ["KL_SCHEDULES", "kl_annealing_factor"]
