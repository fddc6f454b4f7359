"""ONNX export (torch backend): one ``.onnx`` file per function, through ``torch.onnx.export``.

The TorchDynamo-based exporter (``dynamo=True``, which needs the ``onnx`` and
``onnxscript`` packages) captures the same module as the ``torch`` format, with the
batch dimension dynamic and the graph inputs and outputs named as in the manifest;
invalid ``Squeeze`` nodes are repaired before onnxscript's optimizer runs, int32
``ScatterND`` indices after it.
Load with ``onnxruntime.InferenceSession(path)``.
"""

from __future__ import annotations

import pathlib
import warnings

import numpy as np

from chroma_keras.errors import ExportError
from chroma_keras.export.torch_formats import _plain_einsum, dynamic_shapes, example_tensors, exporter_errors, function_module

# The ONNX opset the files declare (onnxruntime >= 1.18 runs it).
OPSET_VERSION = 18


def write_onnx(model, functions, out_dir: pathlib.Path) -> dict[str, str]:
    """Write each function as ``<name>.onnx``.

    Returns:
        ``{function name: file name relative to out_dir}``.

    Raises:
        ExportError: when the ONNX exporter packages are missing, or when the exporter
            cannot express the function (the message names the function and the cause).
    """
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise ExportError(
            f"export --format onnx needs the onnx and onnxscript packages ({exc}); install them with "
            "pip install onnx onnxscript (both are in chroma-keras[dev])."
        ) from exc
    import torch

    written = {}
    for function in functions:
        module = function_module(model, function)
        filename = f"{function.name}.onnx"
        with exporter_errors("onnx", model, function), torch.no_grad(), _plain_einsum(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                module,
                example_tensors(function),
                dynamo=True,
                input_names=[spec.name for spec in function.inputs],
                output_names=list(function.outputs),
                dynamic_shapes=dynamic_shapes(function),
                opset_version=OPSET_VERSION,
                verbose=False,
                optimize=False,  # after the Squeeze repair below: constant folding trips on those nodes
            )
            _drop_noop_squeezes(program.model)
            program.optimize()
            _cast_int32_scatter_indices(program.model)  # after the optimizer, which writes some ScatterND nodes
            program.save(str(out_dir / filename))
        written[function.name] = filename
    return written


def _drop_noop_squeezes(model) -> int:
    """Replace ``Squeeze`` nodes whose axes all have a static size other than 1 by ``Identity``.

    ``torch.squeeze(x, dim)`` leaves ``x`` unchanged when that dimension is not 1, but an ONNX
    ``Squeeze`` of such an axis is invalid: onnxruntime refuses to load the file, and the
    exporter's optimizer folds shapes around it wrongly. Keras' torch
    ``ops.take(x, indices, axis=...)`` ends in exactly such a squeeze (used by the modality mask,
    the log-mel frame mask and relative attention), and torch.onnx 2.13 writes it as a Squeeze.
    The replacement keeps torch's meaning.

    Args:
        model: the exporter's ``onnx_ir`` model (``ONNXProgram.model``), changed in place,
            before the exporter's optimizer runs.

    Returns:
        The number of nodes replaced.
    """
    from onnx_ir.convenience import get_const_tensor

    replaced = 0
    for node in model.graph.all_nodes():
        if node.op_type != "Squeeze" or node.domain not in ("", "ai.onnx") or len(node.inputs) < 2:
            continue
        data, axes_value = node.inputs[0], node.inputs[1]
        axes = get_const_tensor(axes_value) if axes_value is not None else None
        if data is None or data.shape is None or axes is None:
            continue
        dims = list(data.shape)
        axes = [int(a) % len(dims) for a in np.atleast_1d(axes.numpy())]
        if all(isinstance(dims[a], int) and dims[a] != 1 for a in axes):
            node.op_type = "Identity"
            node.resize_inputs(1)
            node.outputs[0].shape = data.shape  # the exporter declared the squeezed shape
            replaced += 1
    return replaced


def _cast_int32_scatter_indices(model) -> int:
    """Cast int32 indices of ``ScatterND`` nodes to int64.

    The GPT's cache write (Keras' torch ``slice_update`` at a tensor index: ``index_put_``) takes
    its indices in the index's dtype, int32; torch accepts that, and torch.onnx 2.13 passes them to
    ``ScatterND`` unchanged, but ONNX defines ``ScatterND`` indices as int64 only and onnxruntime
    refuses to load the file. The cast keeps the values.

    Args:
        model: the exporter's ``onnx_ir`` model, changed in place, after the optimizer (which
            writes ScatterND nodes of its own).

    Returns:
        The number of nodes changed.
    """
    import onnx_ir as ir

    changed = 0
    for node in list(model.graph.all_nodes()):
        if node.op_type != "ScatterND" or node.domain not in ("", "ai.onnx") or len(node.inputs) < 2:
            continue
        indices = node.inputs[1]
        if indices is None or indices.dtype != ir.DataType.INT32:
            continue
        cast = ir.Node("", "Cast", inputs=[indices], attributes=[ir.AttrInt64("to", ir.DataType.INT64)])
        cast.outputs[0].dtype = ir.DataType.INT64
        cast.outputs[0].shape = indices.shape
        node.graph.insert_before(node, cast)
        node.replace_input_with(1, cast.outputs[0])
        changed += 1
    return changed
