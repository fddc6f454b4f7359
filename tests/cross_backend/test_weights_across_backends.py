"""Weights saved under this run's backend load under each other backend with equal outputs."""

import json

import keras
import numpy as np
import pytest

from chroma_keras import conditioning
from chroma_keras.data import keys
from chroma_keras.models import ConditionalVAE

ALL_BACKENDS = ("jax", "tensorflow", "torch")
# With span latents, as the cvae_chromatic preset: 4 spans of 4 frames, z = 6 + 4 x 2 entries.
CONFIG = dict(
    num_pitches=16,
    num_frames=16,
    latent_dim=6,
    span_latent_dim=2,
    condition_dim=8,
    encoder_filters=[4, 8],
    hidden_dim=16,
    seed=3,
)

LOADER = """
import json, sys
import numpy as np
import keras
from chroma_keras.models import ConditionalVAE
data = np.load({npz!r})
model = ConditionalVAE(**json.loads({config!r}))
model.load_weights({weights!r})
out = model.decoder({{"latent": keras.ops.convert_to_tensor(data["latent"]),
                     "condition": model.condition_embedding(data["modes"], data["rebracketing"])}})
encoded = model.encoder({{"piano_roll": keras.ops.convert_to_tensor(data["roll"]),
                        "condition": model.condition_embedding(data["modes"], data["rebracketing"])}})
diffs = {{
    "note_logits": float(np.abs(keras.ops.convert_to_numpy(out["note_logits"]) - data["note_logits"]).max()),
    "velocity": float(np.abs(keras.ops.convert_to_numpy(out["velocity"]) - data["velocity"]).max()),
    "z_mean": float(np.abs(keras.ops.convert_to_numpy(encoded["z_mean"]) - data["z_mean"]).max()),
    "kl_step": float(keras.ops.convert_to_numpy(model.kl_step)),
}}
print(json.dumps(diffs))
"""


def test_weights_load_under_every_other_backend(tmp_path, backend, run_in_backend):
    model = ConditionalVAE(**CONFIG)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    rng = np.random.default_rng(0)
    rolls = (rng.random((8, 16, 16)) > 0.8).astype("float32") * 0.6
    conds = conditioning.condition_arrays(["Red", "Indigo", None, "future,thing,known"] * 2, 8, {"rebracketing_intensity": 2.0})
    model.fit({keys.PIANO_ROLL: rolls, **conds}, batch_size=4, epochs=1, verbose=0)  # weights away from their init
    weights = tmp_path / f"cvae_{backend}.weights.h5"
    model.save_weights(weights)
    latent = rng.normal(size=(8, model.z_dim)).astype("float32")
    condition = model.condition_embedding(conds[keys.MODES], conds[keys.REBRACKETING])
    out = model.decoder({"latent": keras.ops.convert_to_tensor(latent), "condition": condition})
    encoded = model.encoder({keys.PIANO_ROLL: keras.ops.convert_to_tensor(rolls), "condition": condition})
    npz = tmp_path / "reference.npz"
    np.savez(
        npz,
        latent=latent,
        roll=rolls,
        modes=conds[keys.MODES],
        rebracketing=conds[keys.REBRACKETING],
        note_logits=keras.ops.convert_to_numpy(out["note_logits"]),
        velocity=keras.ops.convert_to_numpy(out["velocity"]),
        z_mean=keras.ops.convert_to_numpy(encoded["z_mean"]),
    )
    source = LOADER.format(npz=str(npz), config=json.dumps(CONFIG), weights=str(weights))
    for other in ALL_BACKENDS:
        if other == backend:
            continue
        diffs = json.loads(run_in_backend(other, source).strip().splitlines()[-1])
        assert diffs["kl_step"] == 2.0, other
        for key in ("note_logits", "velocity", "z_mean"):
            assert diffs[key] < 1e-4, (backend, "->", other, key, diffs[key])
