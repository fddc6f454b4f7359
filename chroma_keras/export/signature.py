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
        shape: dimensions; ``None`` is the batch dimension and a string names another
            dynamic dimension (the GPT's ``prompt_length``), both dynamic in every format
            that can express it; integers are fixed sizes.
        dtype: ``"float32"``, ``"int32"`` or ``"int64"``.
        description: what the input holds, for the manifest.
    """

    name: str
    shape: tuple
    dtype: str
    description: str = ""

    def example_shape(self, batch_size: int, dynamic_size: int = 3) -> tuple:
        """The shape with the batch dimension set to ``batch_size`` and named dynamic ones to ``dynamic_size``."""
        return tuple(batch_size if d is None else dynamic_size if isinstance(d, str) else int(d) for d in self.shape)

    def to_json(self) -> dict:
        """The manifest entry of this input (``null`` marks the batch dimension, a string another dynamic one)."""
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
        dynamic_ranges: ``{dimension name: (min, max)}`` of the named dynamic dimensions of
            ``inputs`` (the sizes every format accepts; torch.export needs the bounds).
        xla: SavedModel compiles the function with XLA (``jit_compile=True``), as the live
            model compiles it: TensorFlow's stateless random draws differ between XLA and its
            plain kernels, so a seeded loop reproduces the live draws only when both use XLA.
    """

    name: str
    inputs: tuple
    outputs: tuple
    body: Callable
    description: str = ""
    formats: tuple = ("savedmodel", "torch", "torchscript", "onnx")
    dynamic_ranges: dict = dataclasses.field(default_factory=dict)
    xla: bool = False

    def __call__(self, *tensors):
        return self.body(*tensors)
