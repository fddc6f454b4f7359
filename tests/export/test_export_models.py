"""Each zoo model in each format: exported from the live model, served by its runtime alone
(TensorFlow, torch, onnxruntime; no chroma_keras) in a subprocess, equal to the live model
within 1e-5 (absolute) at batch 3 and batch 1.

SavedModel is written from KERAS_BACKEND=tensorflow, the torch formats and ONNX from
KERAS_BACKEND=torch; under JAX no format is written (tests/export/test_export_errors.py
checks the message that says which backend to use)."""

import importlib.util
import pathlib

import keras
import numpy as np
import pytest

import chroma_keras as ck
from chroma_keras.export import FORMATS, export_model

_spec = importlib.util.spec_from_file_location("export_cases", pathlib.Path(__file__).with_name("export_cases.py"))
cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cases)

EXPECTED_FUNCTIONS = {
    "scorer_midi_only": {"score"},
    "scorer_late_fusion": {"score"},
    "scorer_midi_only+music_transformer": {"score"},  # integer REMI token inputs
    "cvae_chromatic": {"encode", "decode"},
    "diffusion_pianoroll_chromatic": {"denoise", "step", "generate"},
    "diffusion_transformer_chromatic": {"denoise", "step", "generate"},
    "scorer_early_fusion": {"score"},
    "scorer_gated": {"score"},
    "scorer_cross_attention": {"score"},
    "scorer_text_only": {"score"},
}


@pytest.mark.backends("tensorflow", "torch", reason="every export format is written from TensorFlow or torch")
@pytest.mark.parametrize("name", list(EXPECTED_FUNCTIONS))
def test_export_serves_like_the_live_model(name, backend, tmp_path):
    keras.utils.set_random_seed(0)
    model = cases.perturb_weights(cases.build(name))
    formats = [f for f, (writer, _) in FORMATS.items() if writer == backend]
    results = {fmt: export_model(model, tmp_path / fmt, format=fmt) for fmt in formats}
    functions = {f.name: f for result in results.values() for f in result.functions}
    for fmt, result in results.items():
        manifest = result.manifest
        held = {n for n in EXPECTED_FUNCTIONS[name] if n != "generate" or fmt == "savedmodel"}
        assert set(manifest["functions"]) == held, (fmt, manifest["functions"].keys())
        assert manifest["format"] == fmt and manifest["class_name"] == type(model).__name__
        for entry in manifest["functions"].values():
            assert (tmp_path / fmt / entry["file"]).exists()
            dtypes = {spec["name"]: spec["dtype"] for spec in entry["inputs"]}
            assert all(dtypes[k] == "int32" for k in ("midi_tokens", "text_ids", "timestep") if k in dtypes), dtypes
            assert all(spec["shape"][0] is None for spec in entry["inputs"] if spec["shape"]), entry["inputs"]
    expected = cases.write_cases(model, functions.values(), tmp_path / "cases")
    report = cases.serve(tmp_path / "cases", [tmp_path / fmt for fmt in formats])
    assert "chroma_keras" not in report["imported"], report
    for fmt, result in results.items():
        assert report["served"][fmt] == 2 * len(result.functions), report
        held = {key: value for key, value in expected.items() if key[0] in result.manifest["functions"]}
        cases.assert_served_matches(held, tmp_path / fmt)


@pytest.mark.backends("tensorflow", "torch", reason="every export format is written from TensorFlow or torch")
def test_a_sampling_loop_around_the_exported_denoiser_matches_generate(backend, tmp_path):
    """torch / TorchScript / ONNX exports hold ``denoise`` only; the manifest's settings suffice to write the loop."""
    from chroma_keras import conditioning
    from chroma_keras.generation.sampling_noise import step_noise

    keras.utils.set_random_seed(0)
    model = cases.perturb_weights(ck.from_preset("diffusion_pianoroll_chromatic", **cases.TINY["diffusion_pianoroll_chromatic"]))
    fmt = {"tensorflow": "savedmodel", "torch": "onnx"}[backend]
    export_model(model, tmp_path / fmt, format=fmt, functions=["denoise"])
    num, seed = 3, 5
    case = tmp_path / "case"
    case.mkdir()
    noise = keras.ops.convert_to_numpy(step_noise((num, model.num_pitches, model.num_frames), seed, 0))  # generate's x_T
    arrays = conditioning.condition_arrays(cases.CONDITIONS, num, cases.REBRACKETING)
    for key, value in {"initial_noise": noise, **arrays}.items():
        np.save(case / f"{key}.npy", np.asarray(value, np.float32))
    report = cases.serve(case, [tmp_path / fmt], script=cases.DDIM_SCRIPT)
    assert "chroma_keras" not in report["imported"] and report["steps"] == model.num_inference_steps, report
    live = model.generate(cases.CONDITIONS, num, seed=seed, rebracketing=cases.REBRACKETING, return_velocities=True)
    assert np.abs(live - 0.5).max() > 0.1  # a non-trivial sample
    np.testing.assert_allclose(np.load(case / "velocities.npy"), live, rtol=0, atol=cases.TOLERANCE)
