"""Classifier guidance: gradients of a differentiable classifier's log-probability.

A guidance function maps piano rolls ``[batch, pitches, frames]`` (velocities in
[0, 1]) to a per-example log-probability of the wanted class; the sampler
nudges each step's predicted clean roll up its gradient. Gradients of a function
with respect to its *input* are a backend matter (``jax.grad``,
``tf.GradientTape``, ``torch.autograd``), and Keras 3 has no public
cross-backend API for them, so :func:`input_gradient` dispatches.
"""

from __future__ import annotations

from typing import Callable

import keras
from keras import ops

from chroma_keras import conditioning, modes
from chroma_keras.data import keys
from chroma_keras.errors import ModelInputError


def input_gradient(fn: Callable, x):
    """The gradient of ``sum(fn(x))`` with respect to ``x``, on the active backend.

    Args:
        fn: a differentiable function of a float tensor returning ``[batch]`` values.
        x: the float tensor.

    Returns:
        A tensor shaped like ``x``.
    """
    backend = keras.config.backend()
    if backend == "jax":
        import jax

        return jax.grad(lambda value: ops.sum(fn(value)))(x)
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            total = tf.reduce_sum(fn(x))
        return tape.gradient(total, x)
    if backend == "torch":
        import torch

        with torch.enable_grad():
            value = x.detach().clone().requires_grad_(True)
            total = torch.sum(fn(value))
            (gradient,) = torch.autograd.grad(total, value)
        return gradient.detach()
    raise ModelInputError(f"classifier guidance needs jax, tensorflow or torch; the active backend is {backend!r}.")


def model_label(model) -> str:
    """A model's preset name (what reports print), else its Keras name."""
    return (getattr(model, "preset_config", None) or {}).get("name") or model.name


def place_rows(rolls, source, target):
    """Differentiable :func:`~chroma_keras.evaluation.chromatic_consistency.fit_rolls_to_spec`: put piano
    rolls ``[batch, source.num_pitches, frames]`` (a keras tensor) on ``target``'s pitch rows, padding
    with silence and cropping what falls outside. The time axes must already agree."""
    from chroma_keras.evaluation.chromatic_consistency import pitch_row_overlap

    if source.lowest_pitch == target.lowest_pitch and source.num_pitches == target.num_pitches:
        return rolls
    low, high = pitch_row_overlap(source, target)
    if high <= low:
        raise ModelInputError(
            f"the generator's pitches {source.lowest_pitch}..{source.lowest_pitch + source.num_pitches - 1} and the "
            f"scorer's {target.lowest_pitch}..{target.lowest_pitch + target.num_pitches - 1} do not overlap."
        )
    kept = rolls[:, low - source.lowest_pitch : high - source.lowest_pitch]
    below = low - target.lowest_pitch
    above = target.lowest_pitch + target.num_pitches - high
    return ops.pad(kept, [[0, 0], [below, above], [0, 0]])


def _mode_weights(condition):
    """The condition's per-axis mode weights ``[axes, modes per axis]``."""
    return conditioning.condition_arrays(condition, 1)[keys.MODES].reshape(len(modes.AXES), modes.MODES_PER_AXIS)


def names_a_mode(condition) -> bool:
    """Whether a condition names at least one mode (Black and White name none), i.e. can be guided toward."""
    return bool(_mode_weights(condition).any())


def scorer_guidance(scorer, condition, roll_spec=None) -> Callable:
    """A guidance function from a chromatic :class:`~chroma_keras.models.Scorer` with a MIDI encoder.

    It returns, per roll, the sum over the axes the condition names of the
    scorer's log-probability of that axis' wanted mode weights (cross-entropy
    with the condition's per-axis mode weights, so Indigo's two ontological modes
    share the pull).

    Args:
        scorer: a scorer whose MIDI encoder reads piano rolls of the generator's shape.
        condition: the target condition (colour, per-axis dict, ...).
        roll_spec: the generator's grid (``generator.roll_spec()``) when it differs from
            the scorer's in pitch range: rolls are padded / cropped onto the scorer's rows
            inside the differentiated function. The time axes must agree.

    Returns:
        ``fn(rolls) -> [batch]`` log-probabilities.

    Raises:
        ModelInputError: when the scorer reads no piano rolls, the condition names no mode,
            or the grids' time axes differ.
    """
    midi_encoder = getattr(scorer, "encoders", {}).get("midi")
    if midi_encoder is None or keys.PIANO_ROLL not in getattr(midi_encoder, "input_keys", ()):
        raise ModelInputError("classifier guidance by a scorer needs one with a piano-roll MIDI encoder (e.g. scorer_midi_only).")
    weights = _mode_weights(condition)
    if not weights.any():
        raise ModelInputError(f"classifier guidance needs a condition that names at least one mode. Received: {condition!r}")
    axes = [(axis, weights[i] / weights[i].sum()) for i, axis in enumerate(modes.AXES) if weights[i].any()]
    target_spec = None
    if roll_spec is not None:
        from chroma_keras.evaluation.chromatic_consistency import check_time_axes
        from chroma_keras.preprocessing.pianoroll import PianoRollSpec

        target_spec = PianoRollSpec.from_config(scorer.preset_config or {})
        check_time_axes(roll_spec, target_spec)

    def log_probability(rolls):
        if target_spec is not None:
            rolls = place_rows(rolls, roll_spec, target_spec)
        out = scorer({keys.PIANO_ROLL: rolls}, training=False)
        total = 0.0
        for axis, target in axes:
            log_p = ops.log_softmax(out[f"{axis}_logits"], axis=-1)
            total = total + ops.sum(log_p * ops.convert_to_tensor(target[None], log_p.dtype), axis=-1)
        return total

    log_probability.description = f"scorer_guidance({model_label(scorer)}, {condition!r})"
    return log_probability


def classifier_guidance(classifier, class_index: int) -> Callable:
    """A guidance function from any Keras classifier of piano rolls returning class logits ``[batch, classes]``.

    Args:
        classifier: a Keras model or layer ``rolls -> logits``.
        class_index: the wanted class.

    Returns:
        ``fn(rolls) -> [batch]``: the log-softmax of ``class_index``.
    """

    def log_probability(rolls):
        logits = classifier(rolls, training=False)
        if isinstance(logits, dict):
            raise ModelInputError("classifier_guidance: the classifier must return one logits tensor; use scorer_guidance for a Scorer.")
        return ops.log_softmax(logits, axis=-1)[:, int(class_index)]

    return log_probability
