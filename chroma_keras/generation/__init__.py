"""Generation tools shared by the generators: diffusion schedulers, token samplers and prompts, latent-space manipulation,
classifier guidance and colour recognition of generated segments."""

from chroma_keras.generation.latent import (
    apply_attribute,
    attribute_vector,
    interpolate,
    latent_arithmetic,
    lerp,
    slerp,
)
from chroma_keras.generation.prompts import StructuredPrompt, parse_prompt
from chroma_keras.generation.samplers import SamplingConfig
from chroma_keras.generation.schedulers import DDIMScheduler, DDPMScheduler, NoiseSchedule

__all__ = [
    "DDIMScheduler",
    "DDPMScheduler",
    "NoiseSchedule",
    "SamplingConfig",
    "StructuredPrompt",
    "apply_attribute",
    "attribute_vector",
    "interpolate",
    "latent_arithmetic",
    "lerp",
    "parse_prompt",
    "slerp",
]
