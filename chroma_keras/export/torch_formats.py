"""torch.export (``.pt2``) and TorchScript (``.pt``) export (torch backend): one file per function.

Under the torch backend a Keras model is a ``torch.nn.Module``; each exported
function becomes a small module holding the model and calling the function's body,
with the inputs as positional tensors (in the manifest's order) and the outputs as
a tuple (in the manifest's order).

* ``torch``: ``torch.export.export`` with the batch dimension declared dynamic
  (``torch.export.Dim``); load with ``torch.export.load(path).module()``.
* ``torchscript``: ``torch.jit.trace``; load with ``torch.jit.load(path)``. Tracing
  records the operations run for the example inputs, which holds for these
  models: their Python control flow depends on configuration, not on input values.
  The trace is re-run on other values at another batch size and compared with the
  eager module, so a value-dependent branch or a frozen batch size fails the export.

An exporter's failure becomes an :class:`~chroma_keras.errors.ExportError` naming the
format, the model and the function.
"""

from __future__ import annotations

import contextlib
import pathlib
import warnings

import numpy as np

from chroma_keras.errors import ExportError

# The example batch used for tracing. torch.export specialises a dimension whose example
# size is 1 to a constant, so the example batch is larger than 1.
TRACE_BATCH = 2
# The example size of other dynamic dimensions (the GPT's prompt length); unlike the batch, so
# that the exporters cannot take one for the other.
TRACE_DYNAMIC_SIZE = 3


def function_module(model, function):
    """A ``torch.nn.Module`` whose ``forward(*inputs)`` returns ``function``'s outputs as a tuple."""
    import torch

    class ExportedFunction(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, *tensors):
            outputs = function.body(*tensors)
            return tuple(outputs[name] for name in function.outputs)

    module = ExportedFunction()
    module.eval()
    return module


def example_tensors(function, batch_size: int = TRACE_BATCH, seed: int = 0, dynamic_size: int = TRACE_DYNAMIC_SIZE):
    """Deterministic example inputs for tracing: small floats; integers in ``[0, 2)`` (valid token ids / timesteps)."""
    import torch

    rng = np.random.default_rng(seed)
    tensors = []
    for spec in function.inputs:
        shape = spec.example_shape(batch_size, dynamic_size)
        if spec.dtype.startswith("int"):
            value = rng.integers(0, 2, size=shape).astype(spec.dtype)
        else:
            value = rng.random(shape).astype(spec.dtype)
        tensors.append(torch.from_numpy(value))
    return tuple(tensors)


def dynamic_shapes(function):
    """``dynamic_shapes`` of ``torch.export`` / ``torch.onnx.export``: the batch (``None``) and every named
    dimension of ``function``'s inputs declared dynamic; inputs sharing a name share the dimension."""
    import torch

    dims = {None: torch.export.Dim("batch", min=1)}
    per_input = []
    for spec in function.inputs:
        axes = {}
        for axis, size in enumerate(spec.shape):
            if size is None or isinstance(size, str):
                if size not in dims:
                    low, high = function.dynamic_ranges.get(size, (1, None))
                    dims[size] = torch.export.Dim(size, min=low, max=high)
                axes[axis] = dims[size]
        per_input.append(axes or None)
    return (tuple(per_input),)


@contextlib.contextmanager
def exporter_errors(format: str, model, function):
    """Re-raise an exporter's failure as an :class:`ExportError` naming the format, model and function.

    The exporters raise many exception types (tracing, constraint and lowering errors); the
    original stays attached as ``__cause__``.
    """
    try:
        yield
    except Exception as exc:
        first_line = (str(exc).strip().splitlines() or [""])[0]
        name = (getattr(model, "preset_config", None) or {}).get("name", model.name)
        raise ExportError(
            f"export --format {format}: the exporter cannot express the {function.name!r} function of "
            f"{name!r}: {type(exc).__name__}: {first_line}"
        ) from exc


@contextlib.contextmanager
def _plain_einsum():
    """Turn off torch.einsum's opt_einsum path search while exporting.

    opt_einsum computes a contraction order from concrete sizes, which pins a symbolic
    batch dimension to the example's size; two-operand contractions gain nothing from it.
    """
    import torch

    enabled = torch.backends.opt_einsum.enabled
    torch.backends.opt_einsum.enabled = False
    try:
        yield
    finally:
        torch.backends.opt_einsum.enabled = enabled


def write_torch_export(model, functions, out_dir: pathlib.Path) -> dict[str, str]:
    """Write each function as ``<name>.pt2`` (a ``torch.export`` ExportedProgram, dynamic batch).

    Returns:
        ``{function name: file name relative to out_dir}``.
    """
    import torch

    written = {}
    for function in functions:
        module = function_module(model, function)
        with exporter_errors("torch", model, function), torch.no_grad(), _plain_einsum():
            program = torch.export.export(module, example_tensors(function), dynamic_shapes=dynamic_shapes(function), strict=False)
        filename = f"{function.name}.pt2"
        torch.export.save(program, str(out_dir / filename))
        written[function.name] = filename
    return written


def write_torchscript(model, functions, out_dir: pathlib.Path) -> dict[str, str]:
    """Write each function as ``<name>.pt`` (a traced TorchScript module).

    Returns:
        ``{function name: file name relative to out_dir}``.
    """
    import torch

    written = {}
    for function in functions:
        module = function_module(model, function)
        with exporter_errors("torchscript", model, function), torch.no_grad(), _plain_einsum(), warnings.catch_warnings():
            # Keras' shape checks convert traced sizes to Python values; those checks hold for every batch.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            # check_inputs re-runs the trace on other values and another batch size and compares it with
            # the eager module: a branch on tensor values, which a trace would freeze, fails here.
            traced = torch.jit.trace(
                module,
                example_tensors(function),
                strict=False,
                check_trace=True,
                check_inputs=[example_tensors(function, batch_size=TRACE_BATCH + 1, seed=1, dynamic_size=TRACE_DYNAMIC_SIZE + 2)],
            )
        filename = f"{function.name}.pt"
        traced.save(str(out_dir / filename))
        written[function.name] = filename
    return written
