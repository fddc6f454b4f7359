"""Latent-space tools: interpolation, arithmetic and attribute vectors.

They work on NumPy latents, such as those :meth:`ConditionalVAE.encode` and
:meth:`ConditionalVAE.sample_latents` return, and feed :meth:`ConditionalVAE.decode`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from chroma_keras.errors import ModelInputError

INTERPOLATIONS = ("linear", "slerp")


def _as_latent(z, name):
    array = np.asarray(z, dtype=np.float64)
    if array.ndim != 1 or not np.all(np.isfinite(array)):
        raise ModelInputError(f"{name} must be one finite latent vector [latent_dim]. Received: shape={array.shape}")
    return array


def lerp(z0, z1, t: float) -> np.ndarray:
    """Linear interpolation ``(1 - t) z0 + t z1``."""
    a, b = _as_latent(z0, "z0"), _as_latent(z1, "z1")
    return ((1.0 - t) * a + t * b).astype(np.float32)


def slerp(z0, z1, t: float) -> np.ndarray:
    """Spherical interpolation (Shoemake, 1985) along the great circle between
    the directions of ``z0`` and ``z1``; norms are interpolated linearly. Under a
    Gaussian prior this keeps intermediate points at a typical radius, where
    linear interpolation passes through the low-norm centre. Falls back to
    linear interpolation for (anti)parallel vectors."""
    a, b = _as_latent(z0, "z0"), _as_latent(z1, "z1")
    if a.shape != b.shape:
        raise ModelInputError(f"z0 and z1 must have the same shape. Received: {a.shape} and {b.shape}")
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return lerp(a, b, t)
    cos_omega = np.clip(np.dot(a / na, b / nb), -1.0, 1.0)
    omega = np.arccos(cos_omega)
    if np.sin(omega) < 1e-6:
        return lerp(a, b, t)
    direction = (np.sin((1 - t) * omega) * a / na + np.sin(t * omega) * b / nb) / np.sin(omega)
    return (direction * ((1 - t) * na + t * nb)).astype(np.float32)


def interpolate(z0, z1, num_steps: int = 8, method: str = "slerp") -> np.ndarray:
    """``num_steps`` latents from ``z0`` to ``z1`` inclusive, ``[num_steps, latent_dim]``."""
    if method not in INTERPOLATIONS:
        raise ModelInputError(f"method must be one of {list(INTERPOLATIONS)}. Received: method={method!r}")
    if num_steps < 2:
        raise ModelInputError(f"num_steps must be >= 2. Received: num_steps={num_steps}")
    fn = slerp if method == "slerp" else lerp
    return np.stack([fn(z0, z1, t) for t in np.linspace(0.0, 1.0, num_steps)])


def latent_arithmetic(base, add: Sequence = (), subtract: Sequence = (), scale: float = 1.0) -> np.ndarray:
    """``base + scale * (sum(add) - sum(subtract))``, e.g. "this segment, minus what
    is Past about it, plus what is Future": ``latent_arithmetic(z, [z_future], [z_past])``."""
    out = _as_latent(base, "base").copy()
    for z in add:
        out += scale * _as_latent(z, "add[...]")
    for z in subtract:
        out -= scale * _as_latent(z, "subtract[...]")
    return out.astype(np.float32)


def attribute_vector(latents, values, method: str = "median_split", normalize: bool = True) -> np.ndarray:
    """A latent direction along which an attribute (note density, rebracketing
    intensity, ...) grows, learned from encoded data.

    Args:
        latents: ``[n, latent_dim]`` latents of real segments (e.g. posterior means).
        values: ``[n]`` attribute value of each segment.
        method: ``median_split`` (mean latent above the median minus mean latent
            at or below it, as in "attribute vectors" of Roberts et al., 2018) or
            ``regression`` (least-squares slope of each latent dimension on the
            standardised attribute).
        normalize: return a unit vector.
    """
    z = np.asarray(latents, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if z.ndim != 2 or v.shape != (len(z),):
        raise ModelInputError(
            f"latents must be [n, latent_dim] and values [n]. Received: latents {z.shape}, values {v.shape}"
        )
    if len(z) < 4 or np.ptp(v) == 0:
        raise ModelInputError("attribute_vector needs at least 4 segments whose attribute values are not all equal.")
    if method == "median_split":
        high = v > np.median(v)
        if high.all() or not high.any():
            raise ModelInputError("attribute values have no spread around their median.")
        direction = z[high].mean(axis=0) - z[~high].mean(axis=0)
    elif method == "regression":
        vs = (v - v.mean()) / v.std()
        direction = (z - z.mean(axis=0)).T @ vs / len(v)
    else:
        raise ModelInputError(f"method must be 'median_split' or 'regression'. Received: method={method!r}")
    if normalize:
        norm = np.linalg.norm(direction)
        direction = direction / norm if norm > 0 else direction
    return direction.astype(np.float32)


def apply_attribute(latents, direction, strength: float = 1.0) -> np.ndarray:
    """Move latents along an attribute direction: ``latents + strength * direction``."""
    z = np.asarray(latents, dtype=np.float32)
    d = np.asarray(direction, dtype=np.float32)
    if z.shape[-1] != d.shape[-1]:
        raise ModelInputError(f"direction has {d.shape[-1]} dims but latents have {z.shape[-1]}.")
    return z + np.float32(strength) * d
