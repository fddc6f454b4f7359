"""The backend-neutral description of one exported function: its inputs, outputs and body."""

from __future__ import annotations

import dataclasses
from typing import Callable


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """One input of an exported function.

    Args:
        name: the input's name in every format (a SavedModel signature key, an ONNX
            graph input name; positional order elsewhere, see the manifest).
        shape: dimensions; ``None`` is the batch dimension (dynamic where the format
            allows it, see :attr:`ExportFunction.batch_size`).
        dtype: ``"float32"``, ``"int32"`` or ``"int64"``.
        description: what the input holds, for the manifest.
    """

    name: str
    shape: tuple
    dtype: str
    description: str = ""

    def example_shape(self, batch_size: int) -> tuple:
        """The shape with the batch dimension set to ``batch_size``."""
        return tuple(batch_size if d is None else int(d) for d in self.shape)

    def to_json(self) -> dict:
        """The manifest entry of this input (``null`` marks the batch dimension)."""
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype, "description": self.description}


@dataclasses.dataclass(frozen=True)
class ExportFunction:
    """A function of a model that an export holds.

    Args:
        name: the function's name (``score``, ``encode``, ``decode``, ``denoise``, ``generate``).
        inputs: the positional inputs, in order.
        outputs: the names of the returned tensors, in order.
        body: ``body(*tensors) -> {output name: tensor}`` written with Keras ops; it calls
            the live model, so an export computes what the model computes.
        description: one line for the manifest and the docs.
        formats: the formats able to hold this function (``generate`` carries a whole
            sampling loop and a seeded random draw: SavedModel only).
    """

    name: str
    inputs: tuple
    outputs: tuple
    body: Callable
    description: str = ""
    formats: tuple = ("savedmodel", "torch", "torchscript", "onnx")

    def __call__(self, *tensors):
        return self.body(*tensors)
