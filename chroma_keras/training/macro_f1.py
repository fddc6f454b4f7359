"""Macro-averaged F1 over classes, accumulated in a confusion matrix (works on every backend)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="chroma_keras")
class MacroF1(keras.metrics.Metric):
    """Mean over classes of F1, from a running confusion matrix.

    Classes that never occur (neither as target nor as prediction) are left out
    of the mean, so a split missing a colour is not penalised for it.

    Args:
        num_classes: number of classes.
        name: metric name.

    Call arguments (``update_state``):
        y_true: int ``[batch]`` class ids.
        y_pred: int ``[batch]`` predicted ids.
        sample_weight: optional ``[batch]`` weights (0 excludes a row).
    """

    def __init__(self, num_classes: int, name="macro_f1", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = int(num_classes)
        self.confusion = self.add_variable(shape=(self.num_classes, self.num_classes), initializer="zeros", name="confusion")

    def update_state(self, y_true, y_pred, sample_weight=None):
        true = ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), self.num_classes)
        pred = ops.one_hot(ops.cast(ops.reshape(y_pred, (-1,)), "int32"), self.num_classes)
        if sample_weight is not None:
            true = true * ops.cast(ops.reshape(sample_weight, (-1, 1)), true.dtype)
        self.confusion.assign_add(ops.cast(ops.matmul(ops.transpose(true), pred), self.confusion.dtype))

    def result(self):
        confusion = ops.convert_to_tensor(self.confusion)
        tp = ops.diagonal(confusion)
        actual = ops.sum(confusion, axis=1)
        predicted = ops.sum(confusion, axis=0)
        f1 = 2.0 * tp / ops.maximum(actual + predicted, 1e-12)
        seen = ops.cast((actual + predicted) > 0, f1.dtype)
        return ops.sum(f1 * seen) / ops.maximum(ops.sum(seen), 1.0)

    def reset_state(self):
        self.confusion.assign(ops.zeros((self.num_classes, self.num_classes), dtype=self.confusion.dtype))

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}
