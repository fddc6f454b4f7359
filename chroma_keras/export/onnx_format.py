"""ONNX export (torch backend): one ``.onnx`` file per function, through ``torch.onnx.export``.

The TorchDynamo-based exporter (``dynamo=True``, which needs the ``onnx`` and
``onnxscript`` packages) captures the same module as the ``torch`` format, with the
batch dimension dynamic and the graph inputs and outputs named as in the manifest.
Load with ``onnxruntime.InferenceSession(path)``.
"""

from __future__ import annotations

import pathlib
import warnings

import numpy as np

from chroma_keras.errors import ExportError
from chroma_keras.export.torch_formats import _plain_einsum, example_tensors, exporter_errors, function_module

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
    batch = torch.export.Dim("batch", min=1)
    for function in functions:
        module = function_module(model, function)
        dynamic = tuple({0: batch} if spec.shape and spec.shape[0] is None else None for spec in function.inputs)
        filename = f"{function.name}.onnx"
        with exporter_errors("onnx", model, function), torch.no_grad(), _plain_einsum(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                module,
                example_tensors(function),
                dynamo=True,
                input_names=[spec.name for spec in function.inputs],
                output_names=list(function.outputs),
                dynamic_shapes=(dynamic,),
                opset_version=OPSET_VERSION,
                verbose=False,
            )
            program.optimize()
            program.save(str(out_dir / filename))
        _drop_noop_squeezes(out_dir / filename)
        written[function.name] = filename
    return written


def _drop_noop_squeezes(path: pathlib.Path) -> int:
    """Replace ``Squeeze`` nodes whose axes all have a static size other than 1 by ``Identity``.

    ``torch.squeeze(x, dim)`` leaves ``x`` unchanged when that dimension is not 1, but an ONNX
    ``Squeeze`` of such an axis is invalid and onnxruntime refuses to load the file. Keras'
    torch ``ops.take(x, indices, axis=...)`` ends in exactly such a squeeze (used by the
    modality mask, the log-mel frame mask and relative attention), and torch.onnx 2.13 writes it
    as a Squeeze. The replacement keeps torch's meaning.

    Returns:
        The number of nodes replaced (the file is rewritten only when it is more than 0).
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {}
    for value in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
        dims = value.type.tensor_type.shape.dim
        shapes[value.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    constants = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value":
                    constants[node.output[0]] = numpy_helper.to_array(attribute.t)
    replaced = 0
    for node in model.graph.node:
        if node.op_type != "Squeeze" or len(node.input) < 2 or node.input[1] not in constants:
            continue
        shape = shapes.get(node.input[0])
        if not shape:
            continue
        axes = [int(a) % len(shape) for a in np.atleast_1d(constants[node.input[1]])]
        if all(shape[a] is not None and shape[a] != 1 for a in axes):
            node.op_type = "Identity"
            del node.input[1:]
            replaced += 1
    if replaced:
        onnx.save(model, str(path))
    return replaced
