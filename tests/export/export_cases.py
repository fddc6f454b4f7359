"""Tiny zoo configs, fixed inputs, live-model references and the runtime subprocess of the export tests."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np

from chroma_keras import conditioning
from chroma_keras.data import keys

# Exported outputs must equal the live Keras model's within this absolute tolerance.
TOLERANCE = 1e-5
SERVE_SCRIPT = pathlib.Path(__file__).with_name("serve_export.py")
DDIM_SCRIPT = pathlib.Path(__file__).with_name("ddim_with_denoise.py")

ROLL = {"preprocessing.midi.piano_roll.num_frames": 16, "preprocessing.midi.piano_roll.frames_per_second": 4.0}
HEADS = {"model.scorer.fusion_dim": 16, "model.scorer.head_dim": 16, "model.scorer.dropout": 0.0}
TINY = {
    "scorer_midi_only": {
        **ROLL,
        **HEADS,
        "model.midi_encoder.hidden_dim": 8,
        "model.midi_encoder.filters": [4, 4, 4],
    },
    # Every encoder of the multimodal scorers: piano-roll CNN, log-mel CNN over a 1 s clip, byte BERT.
    "scorer_late_fusion": {
        **ROLL,
        **HEADS,
        "model.midi_encoder.hidden_dim": 16,
        "model.midi_encoder.filters": [4, 8, 8],
        "model.audio_encoder.hidden_dim": 16,
        "model.audio_encoder.filters": [4, 8],
        "model.audio_encoder.n_fft": 256,
        "model.audio_encoder.hop_length": 128,
        "model.audio_encoder.n_mels": 16,
        "preprocessing.audio.duration": 1.0,
        "model.text_encoder.hidden_dim": 16,
        "model.text_encoder.transformer_dim": 16,
        "model.text_encoder.intermediate_dim": 32,
        "model.text_encoder.num_layers": 1,
        "model.text_encoder.max_sequence_length": 24,
        "model.fusion.attention_heads": 2,
    },
    "cvae_chromatic": {
        "preprocessing.midi.piano_roll.num_pitches": 16,
        "preprocessing.midi.piano_roll.num_frames": 16,
        "model.vae.latent_dim": 6,
        "model.vae.condition_dim": 8,
        "model.vae.encoder_filters": [4, 8],
        "model.vae.hidden_dim": 16,
    },
    "diffusion_pianoroll_chromatic": {
        "preprocessing.midi.piano_roll.num_pitches": 16,
        "preprocessing.midi.piano_roll.num_frames": 16,
        "model.diffusion.num_steps": 100,
        "model.diffusion.condition_dim": 16,
        "model.diffusion.channels": [8, 16],
        "model.diffusion.norm_groups": 4,
        "model.diffusion.num_heads": 2,
        "model.diffusion.num_res_blocks": 1,
        "generation.sampling.num_steps": 4,
    },
}
TINY["diffusion_transformer_chromatic"] = {
    **{k: v for k, v in TINY["diffusion_pianoroll_chromatic"].items() if not k.startswith("model.diffusion.")},
    "model.diffusion.num_steps": 100,
    "model.diffusion.condition_dim": 16,
    "model.diffusion.hidden_dim": 16,
    "model.diffusion.num_layers": 1,
    "model.diffusion.num_heads": 2,
    "model.diffusion.patch_size": [4, 4],
}
for _name in ("scorer_early_fusion", "scorer_gated", "scorer_cross_attention"):
    TINY[_name] = TINY["scorer_late_fusion"]
TINY["scorer_text_only"] = {**HEADS, **{k: v for k, v in TINY["scorer_late_fusion"].items() if k.startswith("model.text_encoder.")}}

# A MIDI scorer over REMI tokens (integer inputs) through the Music Transformer encoder.
TINY["scorer_midi_only+music_transformer"] = {
    **HEADS,
    "model.midi_encoder.type": "music_transformer",
    "model.midi_encoder.hidden_dim": 16,
    "model.midi_encoder.vocab_size": None,
    "model.midi_encoder.num_heads": 2,
    "model.midi_encoder.num_layers": 1,
    "model.midi_encoder.max_bars": 4,
    "preprocessing.midi.tokenization": "remi",
    "preprocessing.midi.max_events": 32,
}


def build(name):
    """The tiny model of ``TINY[name]``; ``preset+variant`` names build ``preset`` with the variant's overrides."""
    import chroma_keras as ck

    return ck.from_preset(name.split("+")[0], **TINY[name])


CONDITIONS = ["Red", "future,thing,known", None]
REBRACKETING = {"rebracketing_intensity": 3.0, "rebracketing_type": "temporal"}
CASES = {"b3": 3, "b1": 1}  # batch 3 differs from the tracing batch (2); batch 1 is the edge torch.export guards


def perturb_weights(model, seed=0, scale=0.05):
    """Add seeded noise to every trainable weight, as training would.

    Some layers start at exactly zero (the U-Net's and DiT's output layers, adaLN modulation),
    so an untrained denoiser outputs zeros and any export would "match" it.
    """
    rng = np.random.default_rng(seed)
    for variable in model.trainable_variables:
        variable.assign(np.asarray(variable) + rng.normal(0.0, scale, variable.shape).astype(variable.dtype))
    return model


def make_inputs(function, batch, seed):
    """Fixed inputs of ``function`` (an ExportFunction) for ``batch`` rows."""
    rng = np.random.default_rng(seed)
    conds = conditioning.condition_arrays(CONDITIONS[:batch], batch, REBRACKETING)
    inputs = {}
    for spec in function.inputs:
        shape = spec.example_shape(batch)
        if spec.name == keys.PIANO_ROLL:
            value = (rng.random(shape) > 0.8) * rng.uniform(0.3, 1.0, shape)
        elif spec.name in conds:
            value = conds[spec.name]
        elif spec.name == "timestep":
            value = rng.integers(0, 100, shape)
        elif spec.name == "seed":
            value = np.int64(11)
        elif spec.name == "step_index":
            value = np.int32(1)
        elif spec.name == keys.TEXT_IDS:
            value = rng.integers(1, 257, shape)
        elif spec.name == keys.MIDI_TOKENS:
            value = rng.integers(1, 40, shape)
        elif spec.name in (keys.TEXT_MASK, keys.AUDIO_MASK, keys.MIDI_TOKEN_MASK):
            value = np.ones(shape)
            value[:, shape[1] * 2 // 3 :] = 0.0  # the tail is padding
        elif spec.name == keys.MODALITY_MASK:
            value = np.ones(shape)
            value[0, keys.MODALITIES.index("audio")] = 0.0  # the first row has no audio
        elif spec.name == keys.AUDIO:
            value = 0.1 * rng.standard_normal(shape)
        else:  # latent, sample
            value = rng.standard_normal(shape)
        inputs[spec.name] = np.asarray(value, dtype=spec.dtype)
    return inputs


def live_outputs(model, name, inputs):
    """The live model's outputs for one exported function, through its public methods where it has them."""
    import keras

    batch = len(inputs.get(keys.MODES, next(iter(inputs.values()))))
    if name == "score":
        return model.score(inputs)
    if name == "encode":
        z_mean, z_log_var = model.encode(inputs[keys.PIANO_ROLL], CONDITIONS[:batch], inputs[keys.REBRACKETING])
        return {"z_mean": z_mean, "z_log_var": z_log_var}
    if name == "decode":
        _, probabilities = model.decode(inputs["latent"], CONDITIONS[:batch], inputs[keys.REBRACKETING], return_probabilities=True)
        condition = model.condition_embedding(inputs[keys.MODES], inputs[keys.REBRACKETING])
        velocity = model.decoder({"latent": keras.ops.convert_to_tensor(inputs["latent"]), "condition": condition})["velocity"]
        return {"note_probabilities": probabilities, "velocity": keras.ops.convert_to_numpy(velocity)}
    if name == "denoise":
        condition = model.condition_vector(inputs[keys.MODES], inputs[keys.REBRACKETING])
        output = model.denoiser(
            {"sample": keras.ops.convert_to_tensor(inputs["sample"]), "timestep": keras.ops.convert_to_tensor(inputs["timestep"]), "condition": condition}
        )
        return {"output": keras.ops.convert_to_numpy(output)}
    if name == "step":
        scheduler = model.make_scheduler()
        guidance = float(model.guidance_scale)
        step = model.sampling_step(scheduler, model.num_inference_steps, guidance)
        conditions = model.condition_vector(inputs[keys.MODES], inputs[keys.REBRACKETING])
        if guidance != 1.0:
            empty = conditioning.condition_arrays(None, batch)
            unconditional = model.condition_vector(empty[keys.MODES], empty[keys.REBRACKETING])
            conditions = keras.ops.concatenate([conditions, unconditional], axis=0)
        tensor = keras.ops.convert_to_tensor
        out = step(int(inputs["step_index"]), tensor(inputs["sample"]), conditions, tensor(inputs["noise"]))
        return {"next_sample": keras.ops.convert_to_numpy(out)}
    if name == "generate":
        seed = int(inputs["seed"])
        kwargs = dict(condition=CONDITIONS[:batch], num_samples=batch, seed=seed, rebracketing=REBRACKETING)
        return {"velocities": model.generate(**kwargs, return_velocities=True), "piano_roll": model.generate(**kwargs)}
    raise AssertionError(f"no live reference for {name!r}")


def write_cases(model, functions, cases_dir):
    """Write each function's input cases under ``cases_dir`` and return the live outputs ``{(function, case): outputs}``."""
    expected = {}
    for index, function in enumerate(functions):
        for case, batch in CASES.items():
            inputs = make_inputs(function, batch, seed=index * 10 + batch)
            folder = pathlib.Path(cases_dir) / function.name / case
            folder.mkdir(parents=True)
            for key, value in inputs.items():
                np.save(folder / f"{key}.npy", value)
            expected[(function.name, case)] = live_outputs(model, function.name, inputs)
    return expected


def serve(cases_dir, export_dirs, timeout=300, script=SERVE_SCRIPT):
    """Run ``serve_export.py`` (or another runtime-only ``script``) on the exports in one fresh
    interpreter; returns its JSON report."""
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    command = [sys.executable, str(script), str(cases_dir), *map(str, export_dirs)]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"serving the export failed:\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def assert_served_matches(expected, export_dir, atol=TOLERANCE):
    """Every output served from ``export_dir`` equals the live one within ``atol`` (absolute)."""
    for (name, case), outputs in expected.items():
        for key, value in outputs.items():
            assert np.abs(np.asarray(value)).max() > 1e-3, f"{name}/{case}/{key}: the live output is ~0; the comparison would prove nothing"
            served = np.load(pathlib.Path(export_dir) / "served" / name / case / f"{key}.npy")
            np.testing.assert_allclose(served, np.asarray(value), rtol=0, atol=atol, err_msg=f"{export_dir}: {name}/{case}/{key}")
