"""Shared helpers of the fusion tests: synthetic encoder outputs, save round trips, a convergence run."""

import numpy as np

import keras

DIMS = {"text": 5, "audio": 6, "midi": 7}
STEPS = {"text": 4, "audio": 5, "midi": 3}


def to_np(x):
    return keras.ops.convert_to_numpy(x)


def make_encoded(rng, batch, modalities=("text", "audio", "midi"), steps=None, scale=1.0):
    """Random encoder outputs ``{m: {"embedding", "sequence", "sequence_mask"}}`` (all steps real)."""
    steps = steps or STEPS
    return {
        m: {
            "embedding": (scale * rng.normal(size=(batch, DIMS[m]))).astype("float32"),
            "sequence": (scale * rng.normal(size=(batch, steps[m], DIMS[m]))).astype("float32"),
            "sequence_mask": np.ones((batch, steps[m]), "float32"),
        }
        for m in modalities
    }


def perturb_rows(encoded, modality, rows, rng, keys=("embedding", "sequence")):
    """A copy of ``encoded`` with the given rows of one modality's tensors replaced by large random values."""
    out = {m: dict(o) for m, o in encoded.items()}
    for key in keys:
        if key in out[modality]:
            value = out[modality][key].copy()
            value[rows] = 50.0 * rng.normal(size=value[rows].shape)
            out[modality][key] = value.astype("float32")
    return out


def functional_model(fusion, encoded):
    """A functional model ``{"encoded": ..., "modality_mask": ...} -> fusion(...)`` with symbolic inputs."""
    inputs = {
        m: {k: keras.Input(v.shape[1:], name=f"{m}_{k}") for k, v in out.items()} for m, out in encoded.items()
    }
    mask = keras.Input((3,), name="modality_mask")
    return keras.Model({"encoded": inputs, "modality_mask": mask}, fusion(inputs, mask))


def assert_config_and_keras_round_trip(fusion_cls, fusion, encoded, mask, tmp_path, atol=1e-6):
    """``from_config(get_config())`` rebuilds the layer and a ``.keras`` file restores its outputs."""
    expected = to_np(fusion(encoded, mask))
    clone = fusion_cls.from_config(fusion.get_config())
    assert clone.get_config() == fusion.get_config()
    clone(encoded, mask)
    clone.set_weights(fusion.get_weights())
    np.testing.assert_allclose(to_np(clone(encoded, mask)), expected, atol=atol)

    model = functional_model(fusion, encoded)
    path = tmp_path / "fusion.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    inner = [layer for layer in restored.layers if isinstance(layer, fusion_cls)]
    assert len(inner) == 1 and inner[0].get_config() == fusion.get_config()
    got = to_np(restored({"encoded": encoded, "modality_mask": mask}))
    np.testing.assert_allclose(got, expected, atol=atol)


def convergence_losses(fusion, rows=96, epochs=10, seed=0, target_modalities=("audio", "midi")):
    """Trains ``fusion`` + a linear head on a target that is a linear function of two modalities' embeddings.

    Sequences are the embedding plus small noise, so strategies that read
    sequences and those that read embeddings see the same information. Other
    modalities of ``fusion`` are distractors. Returns the MSE before and after training.
    """
    rng = np.random.default_rng(seed)
    encoded = make_encoded(rng, rows, modalities=fusion.modalities)
    for out in encoded.values():
        steps = out["sequence"].shape[1]
        noise = 0.1 * rng.normal(size=out["sequence"].shape)
        out["sequence"] = (out["embedding"][:, None, :] + noise).astype("float32")
        out["sequence_mask"] = np.ones((rows, steps), "float32")
    first, second = target_modalities
    u, v = rng.normal(size=DIMS[first]), rng.normal(size=DIMS[second])
    target = (encoded[first]["embedding"] @ u + encoded[second]["embedding"] @ v)[:, None].astype("float32")
    target /= target.std()
    mask = np.ones((rows, 3), "float32")

    keras.utils.set_random_seed(seed)
    inputs = {
        m: {k: keras.Input(val.shape[1:], name=f"{m}_{k}") for k, val in out.items()} for m, out in encoded.items()
    }
    mask_in = keras.Input((3,), name="modality_mask")
    head = keras.layers.Dense(1, name="head")(fusion(inputs, mask_in))
    model = keras.Model({"encoded": inputs, "modality_mask": mask_in}, head)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    x = {"encoded": encoded, "modality_mask": mask}
    # Losses from eager calls: cheaper than compiling an evaluation step.
    before = float(np.mean((to_np(model(x)) - target) ** 2))
    model.fit(x, target, batch_size=32, epochs=epochs, verbose=0, shuffle=True)
    after = float(np.mean((to_np(model(x)) - target) ** 2))
    return before, after

