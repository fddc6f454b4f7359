"""Bad export requests fail with a chroma_keras error that names what was expected."""

import importlib.util
import pathlib

import pytest

import chroma_keras as ck
from chroma_keras.cli import main
from chroma_keras.errors import ExportError
from chroma_keras.export import FORMATS, export_model, model_functions, read_manifest
from chroma_keras.export.api import select_functions
from chroma_keras.export.model_functions import SCORER_OUTPUTS

_spec = importlib.util.spec_from_file_location("export_cases", pathlib.Path(__file__).with_name("export_cases.py"))
cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cases)

SCORER = cases.TINY["scorer_midi_only"]
NATIVE = {"tensorflow": "savedmodel", "torch": "torchscript"}


def test_every_format_from_the_wrong_backend_names_the_backend_to_use(backend, tmp_path):
    wrong = [fmt for fmt, (writer, _) in FORMATS.items() if writer != backend]
    assert wrong  # no backend writes every format
    for fmt in wrong:
        needed = FORMATS[fmt][0]
        with pytest.raises(ExportError, match=f"--format {fmt} needs KERAS_BACKEND={needed}") as info:
            export_model("scorer_midi_only", tmp_path / fmt, format=fmt)
        assert f"run: KERAS_BACKEND={needed} chroma-keras export scorer_midi_only --format {fmt}" in str(info.value)
        assert not (tmp_path / fmt).exists()  # nothing half-written


def test_unknown_format_lists_the_formats(tmp_path):
    with pytest.raises(ExportError, match=r"unknown format 'tflite'; expected one of \['onnx', 'savedmodel', 'torch', 'torchscript'\]"):
        export_model("scorer_midi_only", tmp_path / "x", format="tflite")


@pytest.mark.backends(
    "tensorflow", "torch", reason="the checks are backend-independent; building the models eagerly under JAX takes ~1 min on CPU"
)
def test_unknown_function_and_generate_outside_savedmodel_are_refused():
    scorer = ck.from_preset("scorer_midi_only", **SCORER)
    with pytest.raises(ExportError, match=r"no function 'generate'; expected one of \['score'\]"):
        select_functions(model_functions(scorer), "onnx", ["generate"])
    diffusion = ck.from_preset("diffusion_pianoroll_chromatic", **cases.TINY["diffusion_pianoroll_chromatic"])
    available = model_functions(diffusion)
    assert [f.name for f in select_functions(available, "savedmodel")] == ["denoise", "step", "generate"]
    assert [f.name for f in select_functions(available, "onnx")] == ["denoise", "step"]
    for fmt in ("torch", "torchscript", "onnx"):
        with pytest.raises(ExportError, match=r"'generate' function .* can only be exported as savedmodel; --format \S+ holds \['denoise', 'step'\]"):
            select_functions(available, fmt, ["generate"])
    with pytest.raises(ExportError, match=r"num_steps of the sampling functions must be an integer in \[1, 100\]"):
        model_functions(diffusion, num_steps=0)


def test_a_model_that_is_not_from_the_zoo_is_refused():
    import keras

    with pytest.raises(ExportError, match="not a chroma_keras zoo model"):
        model_functions(keras.Sequential([keras.layers.Dense(2)]))


def test_cli_reports_export_errors_with_exit_code_2(backend, tmp_path, capsys):
    assert main(["export", "scorer_midi_only", "--format", "tflite", "--out", str(tmp_path / "x")]) == 2
    assert "chroma-keras: error: export: unknown format 'tflite'" in capsys.readouterr().err
    wrong = next(fmt for fmt, (writer, _) in FORMATS.items() if writer != backend)
    assert main(["export", "scorer_midi_only", "--format", wrong, "--out", str(tmp_path / "y")]) == 2
    assert f"needs KERAS_BACKEND={FORMATS[wrong][0]}" in capsys.readouterr().err


@pytest.mark.backends("tensorflow", "torch", reason="a successful export needs the TensorFlow or torch backend")
def test_cli_exports_a_run_directory_and_refuses_a_non_empty_out(backend, tmp_path, capsys):
    model = ck.from_preset("scorer_midi_only", **SCORER)
    ck.save_to_preset(model, tmp_path / "run" / "model")  # the layout `chroma-keras train --out run` leaves
    fmt = NATIVE[backend]
    out = tmp_path / "export"
    assert main(["export", str(tmp_path / "run"), "--format", fmt, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "score: " in printed and "piano_roll float32[None, 72, 16]" in printed and f"wrote {fmt} export of scorer_midi_only" in printed
    manifest = read_manifest(out)
    assert manifest["model"] == "scorer_midi_only" and manifest["functions"]["score"]["outputs"] == list(SCORER_OUTPUTS)
    assert main(["export", str(tmp_path / "run"), "--format", fmt, "--out", str(out)]) == 2
    assert "is not empty" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "run"), "--format", fmt, "--out", str(out), "--overwrite", "--function", "nope"]) == 2
    assert "no function 'nope'; expected one of ['score']" in capsys.readouterr().err


@pytest.mark.backends("torch", reason="the torch exporters run under the torch backend")
def test_a_function_the_torch_exporters_cannot_express_is_an_export_error(tmp_path):
    """Data-dependent Python control flow cannot be captured: each torch-based format says which function failed."""
    from keras import ops

    from chroma_keras.export.onnx_format import write_onnx
    from chroma_keras.export.signature import ExportFunction, TensorSpec
    from chroma_keras.export.torch_formats import write_torch_export, write_torchscript

    model = ck.from_preset("scorer_midi_only", **SCORER)

    def body(roll):
        # A Python branch on a tensor value: the tracing batch (2 rolls of uniform noise, sum ~1150) and
        # the check batch (3 rolls, sum ~1730) take different branches.
        if float(ops.convert_to_numpy(ops.sum(roll))) > 1500:
            return {"total": ops.sum(roll, axis=(1, 2))}
        return {"total": -ops.sum(roll, axis=(1, 2))}

    branchy = ExportFunction("branchy", (TensorSpec("piano_roll", (None, 72, 16), "float32"),), ("total",), body)
    for fmt, writer in (("torch", write_torch_export), ("torchscript", write_torchscript), ("onnx", write_onnx)):
        with pytest.raises(ExportError, match=f"export --format {fmt}: the exporter cannot express the 'branchy' function"):
            writer(model, [branchy], tmp_path)
