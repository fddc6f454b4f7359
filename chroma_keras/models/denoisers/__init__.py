"""Denoiser backbones for diffusion: a conditional U-Net and a DiT-style transformer.

Both take ``{"sample", "timestep", "condition"}`` and return a tensor shaped like
``sample``; see ``docs/denoisers.md``. :func:`build_denoiser` builds the one a preset names.
"""

from chroma_keras.errors import PresetError
from chroma_keras.models.denoisers.base import Denoiser
from chroma_keras.models.denoisers.transformer_denoiser import TransformerDenoiser
from chroma_keras.models.denoisers.unet_denoiser import UNetDenoiser

DENOISERS = {"unet": UNetDenoiser, "transformer": TransformerDenoiser}


def build_denoiser(config, spatial_dims=2):
    """Build the denoiser a resolved preset describes.

    Reads ``model.diffusion.denoiser`` (``"unet"``, the default, or ``"transformer"``)
    and that class' keys (each class' ``PRESET_DEFAULTS``).

    Args:
        config: a resolved preset config (nested dicts).
        spatial_dims: 2 for piano rolls ``[B, H, W]``, 1 for sequences ``[B, L, C]``.

    Returns:
        an unbuilt :class:`UNetDenoiser` or :class:`TransformerDenoiser` named ``"denoiser"``.

    Raises:
        PresetError: ``model.diffusion.denoiser`` names no denoiser.
    """
    section = ((config or {}).get("model") or {}).get("diffusion") or {}
    kind = section.get("denoiser") or "unet"
    if kind not in DENOISERS:
        raise PresetError(f"model.diffusion.denoiser: must be one of {sorted(DENOISERS)}. Received: {kind!r}")
    return DENOISERS[kind].from_preset_config(config, spatial_dims=spatial_dims)


__all__ = ["DENOISERS", "Denoiser", "TransformerDenoiser", "UNetDenoiser", "build_denoiser"]
