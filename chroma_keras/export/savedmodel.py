"""SavedModel export (TensorFlow backend): one signature per exported function.

The archive is Keras' ``ExportArchive``: it tracks the model's variables and traces
each function as a ``tf.function`` with an explicit ``tf.TensorSpec`` signature, so
token inputs stay integer and the batch dimension stays dynamic. TensorFlow Serving
and ``tf.saved_model.load`` see each function as ``signatures[name]``.
"""

from __future__ import annotations

import pathlib

SAVEDMODEL_DIRNAME = "savedmodel"


def write_savedmodel(model, functions, out_dir: pathlib.Path) -> dict[str, str]:
    """Write ``functions`` of ``model`` as one SavedModel under ``out_dir/savedmodel``.

    Args:
        model: the live Keras model (its variables are saved).
        functions: the :class:`~chroma_keras.export.signature.ExportFunction` s to export.
        out_dir: the export directory.

    Returns:
        ``{function name: path of the SavedModel relative to out_dir}``.
    """
    import tensorflow as tf
    from keras.export import ExportArchive

    archive = ExportArchive()
    archive.track(model)
    for function in functions:
        signature = [
            tf.TensorSpec([None if isinstance(d, str) else d for d in spec.shape], tf.as_dtype(spec.dtype), name=spec.name)
            for spec in function.inputs
        ]
        if function.xla:
            compiled = tf.function(function.body, input_signature=signature, jit_compile=True, autograph=False)
            compiled.get_concrete_function()  # the archive takes a tf.function only once it is traced
            archive.add_endpoint(function.name, compiled)
        else:
            archive.add_endpoint(function.name, function.body, input_signature=signature)
    archive.write_out(str(out_dir / SAVEDMODEL_DIRNAME), verbose=False)
    return {function.name: SAVEDMODEL_DIRNAME for function in functions}
