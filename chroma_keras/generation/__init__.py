"""Generation tools shared by the generators: diffusion schedulers, latent-space manipulation,
classifier guidance and colour recognition of generated segments."""

from chroma_keras.generation.latent import (
    apply_attribute,
    attribute_vector,
    interpolate,
    latent_arithmetic,
    lerp,
    slerp,
)
from chroma_keras.generation.schedulers import DDIMScheduler, DDPMScheduler, NoiseSchedule

__all__ = [
    "DDIMScheduler",
    "DDPMScheduler",
    "NoiseSchedule",
    "apply_attribute",
    "attribute_vector",
    "interpolate",
    "latent_arithmetic",
    "lerp",
    "slerp",
]
