"""Per-variable learning-rate multipliers for Keras optimizers (e.g. encoders learning slower than heads).

Keras 3 optimizers have one learning rate for every variable, and scaling the
gradients instead does not scale Adam's step (Adam divides by the gradient's own
magnitude). :class:`LearningRateMultipliers` splits each update into groups of
variables that share a multiplier and runs the optimizer's own update on each
group with ``learning_rate * multiplier``, so moments, schedules and every
backend's update code stay Keras'. A multiplier of 0 leaves its variables (and
their optimizer slots) untouched.

Weight decay (``AdamW``) is still applied at the base rate: Keras applies it
before the update, to every variable.
"""

from __future__ import annotations

from typing import Callable

import keras

from chroma_keras.errors import ModelInputError


class LearningRateMultipliers:
    """Mixin for a Keras optimizer: variables can learn at a multiple of the learning rate.

    Call :meth:`set_learning_rate_multipliers` with a function that returns
    ``[(variable, multiplier), ...]``; it is called at the first update (when the
    model's variables exist) and its answer is kept. Variables it does not list
    learn at the base rate.
    """

    def set_learning_rate_multipliers(self, source: Callable):
        """Register ``source() -> [(variable, multiplier), ...]``, resolved at the first update."""
        self._multiplier_source = source
        self._multipliers = None

    def learning_rate_multiplier(self, variable) -> float:
        """The multiplier of ``variable`` (1.0 when none was set)."""
        if getattr(self, "_multipliers", None) is None:
            source = getattr(self, "_multiplier_source", None)
            pairs = list(source()) if source is not None else []
            for _, multiplier in pairs:
                if not 0 <= float(multiplier):
                    raise ModelInputError(f"learning-rate multipliers must be >= 0. Received: {multiplier!r}")
            self._multipliers = {id(v): float(m) for v, m in pairs}
        return self._multipliers.get(id(variable), 1.0)

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        groups: dict[float, tuple[list, list]] = {}
        for grad, variable in zip(grads, trainable_variables):
            group = groups.setdefault(self.learning_rate_multiplier(variable), ([], []))
            group[0].append(grad)
            group[1].append(variable)
        for multiplier, (group_grads, group_variables) in groups.items():
            if multiplier == 0.0:
                continue
            rate = learning_rate if multiplier == 1.0 else learning_rate * multiplier
            super()._backend_update_step(group_grads, group_variables, rate)


@keras.saving.register_keras_serializable(package="chroma_keras")
class MultipliedAdam(LearningRateMultipliers, keras.optimizers.Adam):
    """``keras.optimizers.Adam`` with per-variable learning-rate multipliers."""


@keras.saving.register_keras_serializable(package="chroma_keras")
class MultipliedAdamW(LearningRateMultipliers, keras.optimizers.AdamW):
    """``keras.optimizers.AdamW`` with per-variable learning-rate multipliers."""


@keras.saving.register_keras_serializable(package="chroma_keras")
class MultipliedSGD(LearningRateMultipliers, keras.optimizers.SGD):
    """``keras.optimizers.SGD`` with per-variable learning-rate multipliers."""


# AdamW subclasses Adam, so it is looked up first.
_MULTIPLIED = ((keras.optimizers.AdamW, MultipliedAdamW), (keras.optimizers.Adam, MultipliedAdam), (keras.optimizers.SGD, MultipliedSGD))


def with_learning_rate_multipliers(optimizer, source: Callable):
    """The same optimizer (same config) able to scale the learning rate per variable.

    Args:
        optimizer: an unbuilt ``Adam``, ``AdamW`` or ``SGD`` (or one of ours).
        source: ``() -> [(variable, multiplier), ...]``, see :class:`LearningRateMultipliers`.

    Raises:
        ModelInputError: another optimizer type, or one already built (its slots would be lost).
    """
    if isinstance(optimizer, LearningRateMultipliers):
        optimizer.set_learning_rate_multipliers(source)
        return optimizer
    if optimizer.built:
        raise ModelInputError("learning-rate multipliers must be set before the optimizer is built (before the first fit).")
    for base, multiplied in _MULTIPLIED:
        if isinstance(optimizer, base):
            converted = multiplied.from_config(optimizer.get_config())
            converted.set_learning_rate_multipliers(source)
            return converted
    raise ModelInputError(
        "per-variable learning rates (model.scorer.encoder_learning_rate_multiplier) support Adam, AdamW and SGD. "
        f"Received: {type(optimizer).__name__}"
    )
