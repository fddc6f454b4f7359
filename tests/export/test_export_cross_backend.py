"""Train under JAX, export from TensorFlow / torch: the export serves the JAX model's outputs (within 1e-5)."""

import importlib.util
import json
import pathlib

import numpy as np
import pytest

from chroma_keras.export import FORMATS, export_model

_spec = importlib.util.spec_from_file_location("export_cases", pathlib.Path(__file__).with_name("export_cases.py"))
cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cases)

# Runs under KERAS_BACKEND=jax: a few training steps (weights and batch-norm statistics move away
# from their initial values), save as a preset directory, score fixed rolls.
TRAIN_UNDER_JAX = """
import json, pathlib
import keras
import numpy as np
import chroma_keras as ck
from chroma_keras.data import keys

out = pathlib.Path({out!r})
keras.utils.set_random_seed(0)
model = ck.from_preset("scorer_midi_only", **json.loads({overrides!r}))
rng = np.random.default_rng(0)
rolls = ((rng.random((8, 72, 16)) > 0.8) * rng.uniform(0.3, 1.0, (8, 72, 16))).astype("float32")
batch = {{keys.PIANO_ROLL: rolls, keys.CONFIDENCE: np.ones(8, "float32"), keys.COLOUR_INDEX: rng.integers(0, 9, 8).astype("int32")}}
for axis, key in keys.AXIS_TARGETS.items():
    batch[key] = np.eye(3, dtype="float32")[rng.integers(0, 3, 8)]
history = model.fit(batch, batch_size=4, epochs=2, verbose=0).history["loss"]
ck.save_to_preset(model, out / "model")
np.save(out / "rolls.npy", rolls[:3])
np.savez(out / "reference.npz", **model.score(rolls[:3]))
print(json.dumps({{"backend": keras.config.backend(), "loss": history}}))
"""


@pytest.mark.backends("tensorflow", "torch", reason="exports are written from TensorFlow (SavedModel) and torch (torch, TorchScript, ONNX)")
def test_weights_trained_under_jax_export_from_this_backend(backend, run_in_backend, tmp_path):
    source = TRAIN_UNDER_JAX.format(out=str(tmp_path / "jax_run"), overrides=json.dumps(cases.TINY["scorer_midi_only"]))
    trained = json.loads(run_in_backend("jax", source).strip().splitlines()[-1])
    assert trained["backend"] == "jax"
    reference = dict(np.load(tmp_path / "jax_run" / "reference.npz"))
    formats = [f for f, (writer, _) in FORMATS.items() if writer == backend]
    for fmt in formats:  # a run directory: its model/ is the preset saved under JAX
        export_model(tmp_path / "jax_run", tmp_path / fmt, format=fmt)
    (tmp_path / "cases" / "score" / "b3").mkdir(parents=True)
    np.save(tmp_path / "cases" / "score" / "b3" / "piano_roll.npy", np.load(tmp_path / "jax_run" / "rolls.npy"))
    report = cases.serve(tmp_path / "cases", [tmp_path / fmt for fmt in formats])
    assert "chroma_keras" not in report["imported"]
    for fmt in formats:
        cases.assert_served_matches({("score", "b3"): reference}, tmp_path / fmt)
