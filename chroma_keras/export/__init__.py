"""Export zoo models for runtimes without chroma_keras: SavedModel, torch.export, TorchScript, ONNX.

>>> from chroma_keras.export import export_model
>>> export_model("scorer_midi_only", "out/scorer", format="savedmodel")  # KERAS_BACKEND=tensorflow

See ``docs/export.md`` for what each format holds and how to serve it.
"""

from chroma_keras.export.api import FORMATS, ExportResult, check_backend, export_model
from chroma_keras.export.manifest import MANIFEST_FILENAME, read_manifest
from chroma_keras.export.model_functions import model_functions
from chroma_keras.export.signature import ExportFunction, TensorSpec
from chroma_keras.export.verify import verify_gpt_export

__all__ = [
    "FORMATS",
    "MANIFEST_FILENAME",
    "ExportFunction",
    "ExportResult",
    "TensorSpec",
    "check_backend",
    "export_model",
    "model_functions",
    "read_manifest",
    "verify_gpt_export",
]
