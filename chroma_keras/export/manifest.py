"""``manifest.json``: what an export directory holds, for code that has no chroma_keras.

For every exported function the manifest lists its file, its inputs (name, shape with
``null`` for the batch dimension, dtype) in positional order, and its output names
in the order torch / TorchScript return them; ``settings`` holds the piano-roll geometry
and, for diffusion, the noise schedule and sampler settings a hand-written sampling loop needs.
"""

from __future__ import annotations

import json
import pathlib

from chroma_keras.errors import ExportError

MANIFEST_FILENAME = "manifest.json"
MANIFEST_VERSION = 1


def build_manifest(model, format: str, functions, files: dict[str, str], backend: str, num_steps: int | None = None) -> dict:
    """The manifest of an export (a JSON-serialisable dict).

    Args:
        model: the exported model.
        format: the export format.
        functions: the exported :class:`~chroma_keras.export.signature.ExportFunction` s.
        files: ``{function name: path relative to the export directory}``.
        backend: the Keras backend the export was written from.
        num_steps: sampler steps of a diffusion model's ``step`` / ``generate`` functions.
    """
    import keras

    from chroma_keras import __version__
    from chroma_keras.export.model_functions import model_settings

    config = getattr(model, "preset_config", None) or {}
    return {
        "manifest_version": MANIFEST_VERSION,
        "format": format,
        "model": config.get("name", model.name),
        "class_name": type(model).__name__,
        "backend": backend,
        "keras_version": keras.__version__,
        "chroma_keras_version": __version__,
        "functions": {
            function.name: {
                "file": files[function.name],
                "description": function.description,
                "inputs": [spec.to_json() for spec in function.inputs],
                "outputs": list(function.outputs),
            }
            for function in functions
        },
        "settings": model_settings(model, num_steps),
    }


def write_manifest(manifest: dict, out_dir: pathlib.Path) -> pathlib.Path:
    """Write ``manifest.json`` into ``out_dir`` and return its path."""
    path = pathlib.Path(out_dir) / MANIFEST_FILENAME
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return path


def read_manifest(export_dir) -> dict:
    """Read the manifest of an export directory.

    Raises:
        ExportError: when the directory holds no manifest.
    """
    path = pathlib.Path(export_dir) / MANIFEST_FILENAME
    if not path.is_file():
        raise ExportError(f"{export_dir}: not an export directory (no {MANIFEST_FILENAME}); write one with chroma-keras export.")
    return json.loads(path.read_text())
