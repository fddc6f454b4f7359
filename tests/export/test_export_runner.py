"""The ``sample.py`` runner written next to VAE and diffusion exports: run in a fresh interpreter with the
export's runtime alone (no chroma_keras), it reproduces ``generate(..., seed, noise="portable")`` of the
live model within 1e-4, for every format the backend writes."""

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

from chroma_keras.errors import ModelInputError
from chroma_keras.export import FORMATS, export_model
from chroma_keras.generation.portable_noise import portable_normal

_spec = importlib.util.spec_from_file_location("export_cases", pathlib.Path(__file__).with_name("export_cases.py"))
cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cases)

RUNNER_TOLERANCE = 1e-4
SEED, NUM = 7, 3

VARIANTS = {
    "cvae": ("cvae_chromatic", {}),
    # Stochastic DDPM with classifier-free guidance: every step draws portable noise.
    "ddpm_guided": ("diffusion_pianoroll_chromatic", {"generation.sampling.scheduler": "ddpm", "generation.sampling.guidance_scale": 2.0}),
    # Deterministic DDIM without guidance (the single-batch denoiser path).
    "ddim": ("diffusion_pianoroll_chromatic", {"generation.sampling.guidance_scale": 1.0}),
}


def _run_runner(export_dir, out, *extra):
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    command = [sys.executable, str(export_dir / "sample.py"), "--condition", "Red", "--num-samples", str(NUM), "--seed", str(SEED), "--out", str(out), *extra]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=str(export_dir.parent))
    assert proc.returncode == 0, f"sample.py failed:\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _live(model):
    if hasattr(model, "z_dim"):
        z = model.sample_latents(NUM, seed=SEED, temperature=model.temperature, noise="portable")
        rolls, probabilities = model.decode(z, "Red", return_probabilities=True, seed=SEED)
        assert np.array_equal(rolls, model.generate("Red", NUM, seed=SEED, noise="portable"))
        return {"latent": z, "note_probabilities": probabilities, "piano_roll": rolls}
    velocities = model.generate("Red", NUM, seed=SEED, noise="portable", return_velocities=True)
    return {"velocities": velocities, "piano_roll": model.generate("Red", NUM, seed=SEED, noise="portable")}


@pytest.mark.backends("tensorflow", "torch", reason="every export format is written from TensorFlow or torch")
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_runner_reproduces_portable_generate(variant, backend, tmp_path):
    name, overrides = VARIANTS[variant]
    keras.utils.set_random_seed(0)
    model = cases.perturb_weights(cases.build(name) if not overrides else _build(name, overrides))
    live = _live(model)
    assert np.abs(live["piano_roll"]).max() > 0.1  # a non-trivial sample
    for fmt in [f for f, (writer, _) in FORMATS.items() if writer == backend]:
        functions = ["decode"] if name == "cvae_chromatic" else ["step"]
        result = export_model(model, tmp_path / fmt, format=fmt, functions=functions)
        assert result.manifest["runner"] == "sample.py" and (tmp_path / fmt / "sample.py").is_file()
        report = _run_runner(tmp_path / fmt, tmp_path / f"{fmt}.npz")
        assert "chroma_keras" not in report["imported"], report  # (TensorFlow itself imports keras)
        served = np.load(tmp_path / f"{fmt}.npz")
        for key, value in live.items():
            np.testing.assert_allclose(served[key], value, rtol=0, atol=RUNNER_TOLERANCE, err_msg=f"{variant}/{fmt}/{key}")


def _build(name, overrides):
    import chroma_keras as ck

    return ck.from_preset(name, **{**cases.TINY[name], **overrides})


def test_portable_noise_is_numpy_keyed_by_seed_and_step():
    a = portable_normal(3, 0, (2, 4))
    assert a.dtype == np.float32 and np.array_equal(a, portable_normal(3, 0, (2, 4)))
    np.testing.assert_array_equal(a, np.random.default_rng([3, 0]).standard_normal((2, 4), dtype=np.float32))
    assert not np.array_equal(a, portable_normal(3, 1, (2, 4))) and not np.array_equal(a, portable_normal(4, 0, (2, 4)))


def test_portable_generate_is_the_same_for_two_calls_and_rejects_bad_arguments():
    model = cases.build("cvae_chromatic")
    first = model.generate("Red", 2, seed=1, noise="portable")
    np.testing.assert_array_equal(first, model.generate("Red", 2, seed=1, noise="portable"))
    with pytest.raises(ModelInputError, match="noise must be one of"):
        model.generate("Red", 2, seed=1, noise="numpy")
    with pytest.raises(ModelInputError, match="needs an integer seed"):
        model.generate("Red", 2, noise="portable")
    diffusion = cases.build("diffusion_pianoroll_chromatic")
    with pytest.raises(ModelInputError, match="noise must be one of"):
        diffusion.generate("Red", 1, seed=1, noise="numpy")


def test_the_runner_names_an_unknown_condition(tmp_path):
    sys.path.insert(0, str(pathlib.Path(__file__).parents[2] / "chroma_keras" / "export"))
    try:
        import sample_runner
    finally:
        sys.path.pop(0)
    manifest = {"settings": {"conditions": {"none": [0.0] * 9, "Red": [1.0] * 9}},
                "functions": {"decode": {"inputs": [{"name": "rebracketing", "shape": [None, 12]}]}}}
    modes, rebracketing = sample_runner.condition_arrays(manifest, "red", 2)
    assert modes.shape == (2, 9) and rebracketing.shape == (2, 12)
    with pytest.raises(SystemExit, match="unknown condition 'Purple'"):
        sample_runner.condition_arrays(manifest, "Purple", 2)
    with pytest.raises(SystemExit, match="--modes needs 9 values"):
        sample_runner.condition_arrays(manifest, None, 2, modes=[1.0, 0.0])
