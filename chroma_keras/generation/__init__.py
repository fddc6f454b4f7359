"""Generation tools shared by the generators: latent-space manipulation (more to come)."""

from chroma_keras.generation.latent import (
    apply_attribute,
    attribute_vector,
    interpolate,
    latent_arithmetic,
    lerp,
    slerp,
)

__all__ = ["apply_attribute", "attribute_vector", "interpolate", "latent_arithmetic", "lerp", "slerp"]
