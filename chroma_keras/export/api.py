"""``export_model``: write a zoo model's serving functions in a format another runtime loads."""

from __future__ import annotations

import dataclasses
import pathlib
import shutil

from chroma_keras.errors import ExportError

# format -> (the Keras backend that writes it, what loads it)
FORMATS = {
    "savedmodel": ("tensorflow", "tf.saved_model.load / TensorFlow Serving"),
    "torch": ("torch", "torch.export.load (.pt2)"),
    "torchscript": ("torch", "torch.jit.load (.pt)"),
    "onnx": ("torch", "onnxruntime.InferenceSession (.onnx)"),
}
# A generator export gets a runtime-only sampling script (chroma_keras/export/sample_runner.py)
# when it holds the functions that script loops: the VAE's decode, the diffusion step, or the
# GPT's prefill and decode_step.
RUNNER_FILENAME = "sample.py"
RUNNER_FUNCTIONS = (("decode",), ("step",), ("prefill", "decode_step"))
# What `verify` checks: the GPT runner's greedy tokens.
VERIFY_FUNCTIONS = ("prefill", "decode_step")


@dataclasses.dataclass
class ExportResult:
    """What :func:`export_model` wrote.

    Attributes:
        out_dir: the export directory.
        format: the format written.
        files: ``{function name: path}`` of each exported function's file or SavedModel.
        manifest_path: path of ``manifest.json``.
        manifest: the manifest's content.
        functions: the exported :class:`~chroma_keras.export.signature.ExportFunction` s
            (callable on the live model, e.g. to compare outputs).
    """

    out_dir: pathlib.Path
    format: str
    files: dict
    manifest_path: pathlib.Path
    manifest: dict
    functions: list


def check_backend(format: str, model_argument: str = "MODEL") -> None:
    """Raise :class:`ExportError` unless ``format`` is known and the running Keras backend writes it.

    Args:
        format: the requested format.
        model_argument: how the model was named, for the suggested command line.
    """
    import keras

    if format not in FORMATS:
        raise ExportError(f"export: unknown format {format!r}; expected one of {sorted(FORMATS)}. Received: format={format!r}")
    needed, _ = FORMATS[format]
    backend = keras.config.backend()
    if backend != needed:
        raise ExportError(
            f"export --format {format} needs KERAS_BACKEND={needed} (this process runs KERAS_BACKEND={backend}); "
            f"run: KERAS_BACKEND={needed} chroma-keras export {model_argument} --format {format} --out DIR. "
            "Weights saved under any backend load under every backend."
        )


def resolve_model_path(path) -> str:
    """A run directory (``chroma-keras train --out``) holds its model in ``model/``; anything else is a preset."""
    run_model = pathlib.Path(str(path)) / "model"
    return str(run_model) if run_model.is_dir() else str(path)


def select_functions(available: dict, format: str, names=None) -> list:
    """The functions to export: ``names`` (checked), or every function ``format`` can hold.

    Raises:
        ExportError: for an unknown function name, or a function the format cannot hold.
    """
    if names is None:
        return [f for f in available.values() if format in f.formats]
    names = [names] if isinstance(names, str) else list(names)
    if not names:
        raise ExportError(f"export: functions is empty; expected some of {sorted(available)}.")
    selected = []
    for name in names:
        if name not in available:
            raise ExportError(
                f"export: this model has no function {name!r}; expected one of {sorted(available)}. Received: {name!r}"
            )
        function = available[name]
        if format not in function.formats:
            raise ExportError(
                f"export: the {name!r} function (a whole sampling loop with seeded noise) can only be exported as "
                f"{', '.join(function.formats)}; --format {format} holds {sorted(n for n, f in available.items() if format in f.formats)}. "
                f"Received: format={format!r}"
            )
        selected.append(function)
    return selected


def export_model(model_or_preset, out_dir, format: str, functions=None, num_steps=None, overwrite=False, verify=False, **overrides):
    """Export a zoo model's serving functions.

    Args:
        model_or_preset: a live zoo model (``Scorer``, ``ConditionalVAE``,
            ``PianoRollDiffusion``), or what :func:`chroma_keras.from_preset` accepts
            (a built-in preset name, a preset directory), or a run directory
            (``chroma-keras train --out``).
        out_dir: the export directory (created; must be empty unless ``overwrite``).
        format: ``"savedmodel"`` (KERAS_BACKEND=tensorflow), ``"torch"``,
            ``"torchscript"`` or ``"onnx"`` (KERAS_BACKEND=torch).
        functions: names of the functions to export (default: all the format can hold;
            see :func:`chroma_keras.export.model_functions.model_functions`).
        num_steps: sampler steps of a diffusion model's ``generate`` signature
            (default: the preset's ``generation.sampling.num_steps``).
        overwrite: replace the content of a non-empty ``out_dir``.
        verify: after writing a GPT export, generate a few tokens greedily with its
            ``sample.py`` runner and with the live model and raise unless they are equal
            (:func:`chroma_keras.export.verify.verify_gpt_export`); the report lands in
            the manifest's ``verified``.
        **overrides: preset overrides when ``model_or_preset`` names a preset.

    Returns:
        An :class:`ExportResult`.

    Raises:
        ExportError: unknown format or function, the wrong backend for the format,
            a non-empty ``out_dir``, a function the format cannot express, ``verify``
            for an export without ``prefill`` and ``decode_step``, or (``verify``) tokens
            that differ from the live model's (the message names the first differing position).

    Example:
    >>> # KERAS_BACKEND=tensorflow
    >>> from chroma_keras.export import export_model
    >>> result = export_model("scorer_midi_only", "export/scorer", format="savedmodel")
    >>> sorted(result.manifest["functions"])
    ['score']
    """
    import keras

    from chroma_keras.export.manifest import build_manifest, write_manifest
    from chroma_keras.export.model_functions import model_functions

    name = model_or_preset if isinstance(model_or_preset, (str, pathlib.Path)) else "MODEL"
    check_backend(format, str(name))
    if isinstance(model_or_preset, (str, pathlib.Path)):
        from chroma_keras import zoo

        model = zoo.from_preset(resolve_model_path(model_or_preset), **overrides)
    else:
        if overrides:
            raise ExportError(f"export: preset overrides {sorted(overrides)} apply to a preset name or path, not a live model.")
        model = model_or_preset
    selected = select_functions(model_functions(model, num_steps=num_steps), format, functions)
    if verify and not set(VERIFY_FUNCTIONS) <= {f.name for f in selected}:
        raise ExportError(
            f"export: verify runs the GPT runner, which needs the functions {list(VERIFY_FUNCTIONS)}; this export holds "
            f"{[f.name for f in selected]} ({type(model).__name__}). Received: verify=True"
        )
    out_dir = pathlib.Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        if not overwrite:
            raise ExportError(f"export: {out_dir} is not empty; choose another --out or pass overwrite=True (--overwrite).")
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        files = _writer(format)(model, selected, out_dir)
    except ExportError:
        shutil.rmtree(out_dir)  # it was empty before: leave no partial export behind
        raise
    manifest = build_manifest(model, format, selected, files, keras.config.backend(), num_steps=num_steps)
    if any(set(names) <= set(manifest["functions"]) for names in RUNNER_FUNCTIONS):
        shutil.copyfile(pathlib.Path(__file__).with_name("sample_runner.py"), out_dir / RUNNER_FILENAME)
        manifest["runner"] = RUNNER_FILENAME
    manifest_path = write_manifest(manifest, out_dir)
    if verify:
        from chroma_keras.export.verify import verify_gpt_export

        manifest["verified"] = verify_gpt_export(model, out_dir)  # the runner reads the manifest written above
        manifest_path = write_manifest(manifest, out_dir)
    return ExportResult(out_dir, format, {k: out_dir / v for k, v in files.items()}, manifest_path, manifest, selected)


def _writer(format: str):
    if format == "savedmodel":
        from chroma_keras.export.savedmodel import write_savedmodel

        return write_savedmodel
    if format == "onnx":
        from chroma_keras.export.onnx_format import write_onnx

        return write_onnx
    from chroma_keras.export.torch_formats import write_torch_export, write_torchscript

    return write_torch_export if format == "torch" else write_torchscript
