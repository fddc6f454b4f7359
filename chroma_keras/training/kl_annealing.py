"""KL-weight annealing schedules for VAEs, written with keras.ops so they run in-graph."""

import math

from keras import ops

KL_SCHEDULES = ("none", "linear", "cyclical", "sigmoid")


def kl_annealing_factor(step, schedule="linear", warmup_steps=400, cycles=1):
    """The factor in [0, 1] that multiplies beta at a training step.

    * ``none``: always 1.
    * ``linear``: ``min(1, step / warmup_steps)`` (Bowman et al., 2016).
    * ``cyclical``: ``cycles`` cycles of ``warmup_steps`` steps each; in each
      cycle the factor rises linearly over the first half and holds 1 over the
      second (Fu et al., 2019); after the last cycle it stays 1.
    * ``sigmoid``: ``1 / (1 + exp(-(step - warmup_steps / 2) / (warmup_steps / 10)))``.

    Args:
        step: float scalar tensor or number, the number of training steps taken.
        schedule: one of :data:`KL_SCHEDULES`.
        warmup_steps: length of the ramp (of one cycle for ``cyclical``); 0 means no ramp.
        cycles: number of cycles for ``cyclical``.
    """
    if schedule not in KL_SCHEDULES:
        raise ValueError(f"Unknown KL schedule {schedule!r}. Expected one of {list(KL_SCHEDULES)}.")
    step = ops.cast(step, "float32")
    if schedule == "none" or warmup_steps <= 0:
        return ops.ones_like(step)
    warmup = float(warmup_steps)
    if schedule == "linear":
        return ops.minimum(step / warmup, 1.0)
    if schedule == "cyclical":
        phase = ops.mod(step, warmup) / warmup
        ramp = ops.minimum(2.0 * phase, 1.0)
        return ops.where(step >= warmup * cycles, ops.ones_like(step), ramp)
    return ops.sigmoid((step - warmup / 2.0) / (warmup / 10.0))


def kl_annealing_factor_reference(step, schedule="linear", warmup_steps=400, cycles=1):
    """Plain-Python version of :func:`kl_annealing_factor`, used as the test oracle."""
    if schedule == "none" or warmup_steps <= 0:
        return 1.0
    if schedule == "linear":
        return min(step / warmup_steps, 1.0)
    if schedule == "cyclical":
        if step >= warmup_steps * cycles:
            return 1.0
        return min(2.0 * (step % warmup_steps) / warmup_steps, 1.0)
    return 1.0 / (1.0 + math.exp(-(step - warmup_steps / 2.0) / (warmup_steps / 10.0)))
