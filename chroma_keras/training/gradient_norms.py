"""Per-modality gradient norms of a scorer, logged during training, with a warning on imbalance.

A multimodal scorer can learn from one modality and starve the others (the fused
head finds the easiest signal first). :class:`ModalityGradientNorms` measures, every
``every_n_steps`` training steps and at each epoch end, the L2 norm of the loss
gradient on a fixed probe batch for each encoder's variables, the fusion's and the
heads'; it adds the epoch-end norms to the logs (``grad_norm_midi``, ...), so
``history.csv`` and TensorBoard record them, and warns when the largest encoder norm
exceeds the smallest by more than ``imbalance_ratio``.

Gradients of parameters on a probe batch are a backend matter (``jax.grad`` over
``stateless_call``, ``tf.GradientTape``, ``torch.autograd``), so
:func:`parameter_gradients` dispatches.
"""

from __future__ import annotations

import warnings
from typing import Callable

import keras
import numpy as np

from chroma_keras.errors import ModelInputError


class GradientImbalanceWarning(UserWarning):
    """One modality's encoder gets far larger gradients than another's."""


def parameter_gradients(model, inputs, loss_fn: Callable) -> list[np.ndarray]:
    """Gradients of ``loss_fn(model(inputs), inputs)`` for each of ``model.trainable_variables``.

    The forward pass runs with ``training=False`` (no dropout), so a fixed batch gives
    the same gradients every time. Variables the loss does not reach get zeros.

    Args:
        model: a built Keras model.
        inputs: what the model is called on (a batch dict for the scorer).
        loss_fn: ``(outputs, inputs) -> scalar`` built from ``keras.ops``.

    Returns:
        NumPy arrays shaped like the variables, in ``model.trainable_variables`` order.
    """
    variables = model.trainable_variables
    backend = keras.config.backend()
    if backend == "jax":
        import jax

        non_trainable = [v.value for v in model.non_trainable_variables]

        def loss_of(values):
            outputs, _ = model.stateless_call(values, non_trainable, inputs, training=False)
            return loss_fn(outputs, inputs)

        grads = jax.grad(loss_of)([v.value for v in variables])
    elif backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = loss_fn(model(inputs, training=False), inputs)
        grads = tape.gradient(loss, [v.value for v in variables], unconnected_gradients=tf.UnconnectedGradients.ZERO)
    elif backend == "torch":
        import torch

        with torch.enable_grad():
            tensors = [v.value for v in variables]
            loss = loss_fn(model(inputs, training=False), inputs)
            grads = torch.autograd.grad(loss, tensors, allow_unused=True)
        grads = [torch.zeros_like(t).detach() if g is None else g.detach() for g, t in zip(grads, tensors)]
    else:
        raise ModelInputError(f"parameter gradients need jax, tensorflow or torch; the active backend is {backend!r}.")
    return [np.asarray(keras.ops.convert_to_numpy(g), np.float64) for g in grads]


def scorer_variable_groups(scorer) -> dict[str, list]:
    """The scorer's trainable variables by part: one group per modality encoder, ``fusion`` and ``heads``."""
    groups = {modality: list(encoder.trainable_variables) for modality, encoder in scorer.encoders.items()}
    groups["fusion"] = list(scorer.fusion.trainable_variables)
    taken = {id(v) for group in groups.values() for v in group}
    groups["heads"] = [v for v in scorer.trainable_variables if id(v) not in taken]
    return groups


def group_norms(scorer, batch) -> dict[str, float]:
    """L2 norm of the scorer's loss gradient on ``batch``, per variable group (see :func:`scorer_variable_groups`)."""
    grads = parameter_gradients(scorer, batch, lambda outputs, x: scorer.weighted_loss(x, outputs))
    by_id = {id(v): g for v, g in zip(scorer.trainable_variables, grads)}
    return {
        name: float(np.sqrt(sum(float(np.sum(by_id[id(v)] ** 2)) for v in group)))
        for name, group in scorer_variable_groups(scorer).items()
    }


class ModalityGradientNorms(keras.callbacks.Callback):
    """Logs per-modality gradient norms of a scorer and warns when the encoders' norms are out of balance.

    Args:
        probe_batch: a labelled batch dict the norms are measured on (the same one every time).
        every_n_steps: measure after every this many training steps (0: only at epoch ends).
        imbalance_ratio: warn when the largest encoder norm exceeds the smallest by more than this
            (an encoder with a zero norm always counts as imbalanced when another learns).

    Attributes:
        history: one dict per measurement: ``step`` and the norm of each group.
    """

    def __init__(self, probe_batch, every_n_steps: int = 50, imbalance_ratio: float = 10.0):
        super().__init__()
        if int(every_n_steps) < 0 or not float(imbalance_ratio) > 1:
            raise ModelInputError(
                "ModalityGradientNorms needs every_n_steps >= 0 and imbalance_ratio > 1. "
                f"Received: every_n_steps={every_n_steps!r}, imbalance_ratio={imbalance_ratio!r}"
            )
        self.probe_batch = {k: np.asarray(v) for k, v in probe_batch.items()}
        self.every_n_steps, self.imbalance_ratio = int(every_n_steps), float(imbalance_ratio)
        self.history: list[dict] = []
        self._steps = 0

    def measure(self) -> dict[str, float]:
        """Measure the norms now, record them and warn on imbalance."""
        norms = group_norms(self.model, self.probe_batch)
        self.history.append({"step": self._steps, **norms})
        encoders = {m: norms[m] for m in self.model.encoders}
        if len(encoders) > 1 and max(encoders.values()) > 0:
            low = min(encoders, key=encoders.get)
            high = max(encoders, key=encoders.get)
            if encoders[low] * self.imbalance_ratio < encoders[high]:
                warnings.warn(
                    f"modality gradient imbalance at step {self._steps}: the {high} encoder's gradient norm "
                    f"{encoders[high]:.3g} is over {self.imbalance_ratio:g}x the {low} encoder's {encoders[low]:.3g}; "
                    f"the scorer is learning little from {low} (is it present in the batches? try a lower "
                    "model.scorer.modality_dropout for it or model.scorer.exempt_modalities).",
                    GradientImbalanceWarning,
                    stacklevel=2,
                )
        return norms

    def on_train_batch_end(self, batch, logs=None):
        self._steps += 1
        if self.every_n_steps and self._steps % self.every_n_steps == 0:
            self.measure()

    def on_epoch_end(self, epoch, logs=None):
        norms = self.measure()
        if logs is not None:
            logs.update({f"grad_norm_{name}": value for name, value in norms.items()})
