"""Gaussian noise any runtime can reproduce from a seed: NumPy's PCG64 keyed by ``(seed, step)``.

The backends' own generators (:mod:`.sampling_noise`) differ from one another and
are unavailable to a server that holds only an export. Sampling with
``noise="portable"`` draws every Gaussian from NumPy instead, so the runner that
``chroma-keras export`` writes next to a VAE or diffusion export (``sample.py``)
reproduces the live model's samples from the same seed in TensorFlow, plain
PyTorch or onnxruntime.

The convention (also written into each export's ``manifest.json``):
``numpy.random.default_rng([seed, step]).standard_normal(shape, dtype=float32)``;
step 0 is the initial draw (the diffusion ``x_T``, the VAE latent), step
``i + 1`` the noise of sampling step ``i``.
"""

from __future__ import annotations

import numpy as np

CONVENTION = (
    "numpy.random.default_rng([seed, step]).standard_normal(shape, dtype=float32); step 0 is the initial draw "
    "(diffusion x_T, VAE latent before the temperature), step i + 1 the noise of sampling step i"
)
NOISE_MODES = ("backend", "portable")


def portable_normal(seed: int, step: int, shape) -> np.ndarray:
    """``N(0, I)`` of ``shape`` (float32) for ``step`` of a run seeded with ``seed``; the same in every runtime."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(step)]).standard_normal(tuple(shape), dtype=np.float32)
