"""Diffusion noise schedules and samplers: the forward process, DDPM and DDIM.

>>> from chroma_keras.generation.schedulers import DDIMScheduler
>>> scheduler = DDIMScheduler(num_train_timesteps=1000, noise_schedule="cosine", prediction_type="v")
>>> scheduler.timesteps(10)
array([900, 800, 700, 600, 500, 400, 300, 200, 100,   0], dtype=int32)

See ``docs/schedulers.md``. :func:`scheduler_from_preset_config` builds one from a preset.
"""

from __future__ import annotations

from typing import Any, Mapping

from chroma_keras.errors import ModelInputError, PresetError
from chroma_keras.generation.schedulers.ddim_scheduler import DDIMScheduler
from chroma_keras.generation.schedulers.ddpm_scheduler import VARIANCE_TYPES, DDPMScheduler
from chroma_keras.generation.schedulers.noise_schedule import (
    NOISE_SCHEDULES,
    PREDICTION_TYPES,
    TIMESTEP_SPACINGS,
    NoiseSchedule,
    Scheduler,
    make_betas,
    make_timesteps,
)

SCHEDULERS = {"ddim": DDIMScheduler, "ddpm": DDPMScheduler}

# Constructor argument -> preset key. Keys a preset lacks keep the constructor default.
PRESET_KEYS = {
    "num_train_timesteps": "model.diffusion.num_steps",
    "noise_schedule": "model.diffusion.noise_schedule",
    "prediction_type": "model.diffusion.prediction_type",
    "beta_start": "model.diffusion.beta_start",
    "beta_end": "model.diffusion.beta_end",
    "variance_type": "model.diffusion.variance_type",
    "num_inference_steps": "generation.sampling.num_steps",
    "timestep_spacing": "generation.sampling.timestep_spacing",
    "eta": "generation.sampling.eta",
    "clip_sample": "generation.sampling.clip_sample",
    "clip_sample_range": "generation.sampling.clip_sample_range",
}
SCHEDULER_KEY = "generation.sampling.scheduler"
_ONLY_FOR = {"variance_type": DDPMScheduler, "eta": DDIMScheduler}

_ABSENT = object()


def _lookup(config: Mapping, dotted: str):
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _ABSENT
        node = node[part]
    return node


def scheduler_from_preset_config(config: Mapping, scheduler: str | None = None) -> Scheduler:
    """Build the sampler a preset describes.

    Reads ``model.diffusion.{num_steps, noise_schedule, prediction_type, beta_start,
    beta_end, variance_type}`` and ``generation.sampling.{scheduler, num_steps,
    timestep_spacing, eta, clip_sample, clip_sample_range}``; absent keys keep the
    constructor defaults (``variance_type`` is DDPM-only, ``eta`` DDIM-only).

    Args:
        config: a preset config, e.g. from :func:`chroma_keras.config.load_preset_config`.
        scheduler: ``"ddim"`` or ``"ddpm"``; None reads ``generation.sampling.scheduler``
            (default ``"ddim"``).

    Returns:
        a :class:`DDIMScheduler` or :class:`DDPMScheduler`.

    Raises:
        PresetError: the preset has no ``model.diffusion`` section, or a key holds an
            invalid value (the message names the dotted key and what is allowed).
    """
    if not isinstance(_lookup(config, "model.diffusion"), Mapping):
        raise PresetError(
            "model.diffusion: a diffusion scheduler needs a `model.diffusion` section in the preset "
            "(keys num_steps, noise_schedule, prediction_type). Received: no such section"
        )
    name = scheduler
    if name is None:
        name = _lookup(config, SCHEDULER_KEY)
        name = "ddim" if name is _ABSENT or name is None else name
    if name not in SCHEDULERS:
        raise PresetError(f"{SCHEDULER_KEY}: must be one of {sorted(SCHEDULERS)}. Received: {name!r}")
    cls = SCHEDULERS[name]

    kwargs = {}
    for argument, key in PRESET_KEYS.items():
        if argument in _ONLY_FOR and _ONLY_FOR[argument] is not cls:
            continue
        value = _lookup(config, key)
        if value is not _ABSENT and value is not None:
            kwargs[argument] = value
    try:
        return cls(**kwargs)
    except ModelInputError as err:
        argument = getattr(err, "argument", None)
        key = PRESET_KEYS.get(argument, argument or "model.diffusion")
        raise PresetError(f"{key}: {err}") from err


__all__ = [
    "DDIMScheduler",
    "DDPMScheduler",
    "NOISE_SCHEDULES",
    "NoiseSchedule",
    "PREDICTION_TYPES",
    "PRESET_KEYS",
    "SCHEDULERS",
    "Scheduler",
    "TIMESTEP_SPACINGS",
    "VARIANCE_TYPES",
    "make_betas",
    "make_timesteps",
    "scheduler_from_preset_config",
]
