"""Which functions each zoo model exports, with explicit input signatures.

* :class:`~chroma_keras.models.Scorer`: ``score`` (the modality inputs -> per-axis,
  confidence and colour probabilities and the fused embedding).
* :class:`~chroma_keras.models.ConditionalVAE`: ``encode`` (roll + condition -> posterior)
  and ``decode`` (latent + condition -> note probabilities and velocities).
* :class:`~chroma_keras.models.PianoRollDiffusion`: ``denoise`` (one denoiser evaluation)
  and, for SavedModel only, ``generate`` (the whole sampling loop, fixed step count, seed input).
* :class:`~chroma_keras.models.ChromaticGPT`: ``prefill`` (a prompt -> the last position's
  next-token logits and a filled key/value cache) and ``decode_step`` (one token at a cache
  index -> next-token logits and the updated cache); for SavedModel also ``generate`` (the whole
  compiled decoding loop of the preset's strategy, fixed maximum length, seed input) when the
  preset's sampling runs in that loop.

Every body is written with Keras ops and calls the live model's layers, so an export
computes exactly what the model computes.
"""

from __future__ import annotations

import numpy as np
from keras import ops

from chroma_keras import modes, rebracketing
from chroma_keras.data import keys
from chroma_keras.errors import ExportError
from chroma_keras.export.signature import ExportFunction, TensorSpec

CONDITION_SPECS = (
    TensorSpec(keys.MODES, (None, modes.MODE_VECTOR_SIZE), "float32", "per-axis mode weights (conditioning.condition_arrays)"),
    TensorSpec(keys.REBRACKETING, (None, rebracketing.FEATURE_SIZE), "float32", "rebracketing features; zeros = unknown"),
)
SCORER_OUTPUTS = ("temporal", "spatial", "ontological", "confidence", "colour", "embedding")


def model_functions(model, num_steps: int | None = None) -> dict[str, ExportFunction]:
    """The functions a zoo model exports, by name.

    Args:
        model: a ``Scorer``, ``ConditionalVAE``, ``PianoRollDiffusion`` or ``ChromaticGPT``.
        num_steps: sampler steps of the diffusion ``generate`` function
            (default: the model's ``num_inference_steps``).

    Raises:
        ExportError: for a model that is not one of the zoo's.
    """
    from chroma_keras.models.chromatic_gpt import ChromaticGPT
    from chroma_keras.models.conditional_vae import ConditionalVAE
    from chroma_keras.models.pianoroll_diffusion import PianoRollDiffusion
    from chroma_keras.models.scorer import Scorer

    if isinstance(model, ChromaticGPT):
        functions = {"prefill": _gpt_prefill_function(model), "decode_step": _gpt_decode_step_function(model)}
        if _gpt_generate_unsupported(model) is None:
            functions["generate"] = _gpt_generate_function(model)
        return functions
    if isinstance(model, Scorer):
        return {"score": _score_function(model)}
    if isinstance(model, ConditionalVAE):
        return {"encode": _vae_encode_function(model), "decode": _vae_decode_function(model)}
    if isinstance(model, PianoRollDiffusion):
        return {
            "denoise": _denoise_function(model),
            "step": _step_function(model, num_steps),
            "generate": _generate_function(model, num_steps),
        }
    raise ExportError(
        f"export: {type(model).__name__} is not a chroma_keras zoo model; expected a Scorer, ConditionalVAE, "
        "PianoRollDiffusion or ChromaticGPT (from chroma_keras.from_preset)."
    )


def model_settings(model, num_steps: int | None = None) -> dict:
    """What a server needs besides the exported functions, written to the manifest's ``settings``.

    Piano-roll geometry for every piano-roll model; for diffusion also the forward process
    (``alphas_cumprod``), the sampler's configuration and its default timestep grid, so a
    runtime holding only ``denoise`` can write the sampling loop, and the grid of the
    exported ``step`` function (``num_steps`` of them). For generators, the portable noise
    convention, the condition vector of every colour and the decoding settings that the
    ``sample.py`` runner uses. For the GPT (``settings.gpt``), the cache layout, the special
    token ids, the sampling defaults and the prompt prefix of every colour. Empty for other models.
    """
    from chroma_keras.generation.portable_noise import CONVENTION

    settings = {}
    if hasattr(model, "num_pitches"):
        settings["piano_roll"] = {
            "num_pitches": model.num_pitches,
            "num_frames": model.num_frames,
            "lowest_pitch": model.lowest_pitch,
            "frames_per_second": model.frames_per_second,
        }
    if hasattr(model, "make_scheduler"):
        scheduler = model.make_scheduler()
        settings["diffusion"] = {
            "clean_sample": "x0 = 2 * velocity - 1 (silence is -1)",
            "prediction_type": model.prediction_type,
            "num_train_timesteps": model.num_train_timesteps,
            "alphas_cumprod": [float(a) for a in model.schedule.alphas_cumprod],
            # 1 - alphas_cumprod computed without cancellation near t = 0 (what the sampler uses).
            "one_minus_alphas_cumprod": [float(a) for a in model.schedule.one_minus_alphas_cumprod],
            "scheduler": {"name": model.scheduler_name, **scheduler.get_config()},
            "num_inference_steps": model.num_inference_steps,
            "timesteps": [int(t) for t in scheduler.timesteps(model.num_inference_steps)],
            "guidance_scale": model.guidance_scale,
            "note_threshold": model.note_threshold,
        }
        steps = _checked_steps(model, num_steps)
        settings["step"] = {
            "num_steps": steps,
            "timesteps": [int(t) for t in scheduler.timesteps(steps)],
            "stochastic": bool(model.is_stochastic(scheduler)),
        }
    if hasattr(model, "z_dim"):
        settings["vae"] = {
            "z_dim": model.z_dim,
            "temperature": float(model.temperature),
            "decoding": model.decoding,
            "threshold": float(model.threshold),
        }
    if hasattr(model, "call_with_cache"):
        settings["gpt"] = _gpt_settings(model)
    if "piano_roll" in settings and ("vae" in settings or "diffusion" in settings):
        settings["noise"] = CONVENTION
        settings["conditions"] = _condition_table()
    return settings


def _condition_table() -> dict:
    """``{colour name: modes vector}`` for every colour, plus ``"none"`` (unconditional)."""
    from chroma_keras import conditioning

    table = {"none": [0.0] * modes.MODE_VECTOR_SIZE}
    for name in modes.COLOUR_NAMES:
        vector = conditioning.condition_arrays(name, 1)[keys.MODES][0]
        table[name] = [float(v) for v in vector]
    return table


def _checked_steps(model, num_steps) -> int:
    steps = model.num_inference_steps if num_steps is None else num_steps
    if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool) or not 1 <= steps <= model.num_train_timesteps:
        raise ExportError(
            f"export: num_steps of the sampling functions must be an integer in [1, {model.num_train_timesteps}]. "
            f"Received: num_steps={steps!r}"
        )
    steps = int(steps)
    model.make_scheduler().timesteps(steps)  # validates the step count against the spacing
    return steps


# === Scorer ===


def _scorer_input_specs(model) -> list[TensorSpec]:
    from chroma_keras.models.encoders.precomputed_embedding_encoder import PrecomputedEmbeddingEncoder
    from chroma_keras.models.scorer import example_inputs

    if model.preset_config is None:
        raise ExportError(
            "export: this Scorer carries no preset config (it was not built by from_preset), so its input shapes "
            "are unknown; export a preset or a model built with chroma_keras.from_preset."
        )
    example = example_inputs(model.preset_config, model.modalities)
    specs = []
    for modality in model.modalities:
        encoder = model.encoders[modality]
        for key in encoder.input_keys:
            if isinstance(encoder, PrecomputedEmbeddingEncoder):
                width = int(encoder.projection.kernel.shape[0])
                specs.append(TensorSpec(key, (None, width), "float32", f"precomputed {modality} embedding"))
                continue
            value = example[key]
            dtype = "int32" if np.issubdtype(value.dtype, np.integer) else "float32"
            specs.append(TensorSpec(key, (None, *value.shape[1:]), dtype, f"{modality} input (see chroma_keras.data.keys)"))
    if len(model.modalities) > 1:
        specs.append(
            TensorSpec(
                keys.MODALITY_MASK,
                (None, len(keys.MODALITIES)),
                "float32",
                f"1 = modality present, columns {list(keys.MODALITIES)}; an absent modality's inputs may be zeros",
            )
        )
    return specs


def _score_function(model) -> ExportFunction:
    specs = _scorer_input_specs(model)
    names = [s.name for s in specs]
    only = model.modalities[0] if len(model.modalities) == 1 else None

    def body(*tensors):
        batch = dict(zip(names, tensors))
        if only is not None:
            # A one-modality scorer: its presence mask is constant. It is built from the input
            # (not from a Python batch size) so that traced graphs keep a dynamic batch.
            first = ops.cast(ops.reshape(tensors[0], (ops.shape(tensors[0])[0], -1))[:, :1], "float32")
            ones = ops.ones_like(first)
            batch[keys.MODALITY_MASK] = ops.concatenate(
                [ones if m == only else ops.zeros_like(first) for m in keys.MODALITIES], axis=1
            )
        out = model(batch, training=False)
        return {name: out[name] for name in SCORER_OUTPUTS}

    return ExportFunction(
        name="score",
        inputs=tuple(specs),
        outputs=SCORER_OUTPUTS,
        body=body,
        description="chromatic scores: temporal/spatial/ontological [batch, 3], confidence [batch, 1], "
        "colour [batch, 9] (probabilities) and the fused embedding",
    )


# === Conditional VAE ===


def _vae_encode_function(model) -> ExportFunction:
    def body(roll, modes_vector, rebracketing_vector):
        condition = model.condition_embedding(modes_vector, rebracketing_vector, training=False)
        posterior = model.encoder({keys.PIANO_ROLL: roll, "condition": condition})
        return {"z_mean": posterior["z_mean"], "z_log_var": posterior["z_log_var"]}

    roll = TensorSpec(
        keys.PIANO_ROLL, (None, model.num_pitches, model.num_frames), "float32", "velocities in [0, 1], 0 = silent"
    )
    return ExportFunction(
        name="encode",
        inputs=(roll, *CONDITION_SPECS),
        outputs=("z_mean", "z_log_var"),
        body=body,
        description=f"posterior of a piano roll under a condition: z_mean, z_log_var [batch, {model.z_dim}]",
    )


def _vae_decode_function(model) -> ExportFunction:
    def body(latent, modes_vector, rebracketing_vector):
        condition = model.condition_embedding(modes_vector, rebracketing_vector, training=False)
        decoded = model.decoder({"latent": latent, "condition": condition})
        return {"note_probabilities": ops.sigmoid(decoded["note_logits"]), "velocity": decoded["velocity"]}

    latent = TensorSpec("latent", (None, model.z_dim), "float32", "latent vector (prior: N(0, I))")
    return ExportFunction(
        name="decode",
        inputs=(latent, *CONDITION_SPECS),
        outputs=("note_probabilities", "velocity"),
        body=body,
        description="per-cell note probability and velocity [batch, pitches, frames]; turning probabilities into "
        "notes (ConditionalVAE.decode's `decoding`) is left to the caller",
    )


# === Diffusion ===


def _denoise_function(model) -> ExportFunction:
    def body(sample, timestep, modes_vector, rebracketing_vector):
        condition = model.condition_vector(modes_vector, rebracketing_vector, training=False)
        output = model.denoiser({"sample": sample, "timestep": timestep, "condition": condition}, training=False)
        return {"output": output}

    shape = (None, model.num_pitches, model.num_frames)
    return ExportFunction(
        name="denoise",
        inputs=(
            TensorSpec("sample", shape, "float32", "noisy roll x_t (clean rolls live in [-1, 1]: 2 * velocity - 1)"),
            TensorSpec("timestep", (None,), "int32", f"training timestep per row, in [0, {model.num_train_timesteps})"),
            *CONDITION_SPECS,
        ),
        outputs=("output",),
        body=body,
        description=f"one denoiser evaluation; the output is the {model.prediction_type!r} prediction. All-zero modes "
        "and rebracketing give the unconditional output used by classifier-free guidance",
    )


def _step_function(model, num_steps) -> ExportFunction:
    steps = _checked_steps(model, num_steps)
    scheduler = model.make_scheduler()
    guidance_scale = float(model.guidance_scale)
    step = model.sampling_step(scheduler, steps, guidance_scale)

    def body(sample, step_index, noise, modes_vector, rebracketing_vector):
        conditions = model.condition_vector(modes_vector, rebracketing_vector)
        if guidance_scale != 1.0:
            unconditional = model.condition_vector(ops.zeros_like(modes_vector), ops.zeros_like(rebracketing_vector))
            conditions = ops.concatenate([conditions, unconditional], axis=0)
        return {"next_sample": step(step_index, sample, conditions, noise)}

    shape = (None, model.num_pitches, model.num_frames)
    return ExportFunction(
        name="step",
        inputs=(
            TensorSpec("sample", shape, "float32", "the current sample (x_T for step_index 0)"),
            TensorSpec("step_index", (), "int32", f"index into settings.step.timesteps, in [0, {steps})"),
            TensorSpec("noise", shape, "float32", "N(0, I) noise of this step (ignored by deterministic samplers)"),
            *CONDITION_SPECS,
        ),
        # Not "sample": ONNX graph inputs and outputs share one namespace.
        outputs=("next_sample",),
        body=body,
        description=f"one {model.scheduler_name} sampling step of a {steps}-step run with guidance scale {guidance_scale} "
        "(denoiser, guidance and scheduler update): the sample at the next timestep of settings.step.timesteps. "
        "The sample.py runner next to the export loops it",
    )


def _generate_function(model, num_steps) -> ExportFunction:
    from chroma_keras.generation.sampling_noise import step_noise

    steps = _checked_steps(model, num_steps)
    scheduler = model.make_scheduler()
    guidance_scale = float(model.guidance_scale)

    def body(modes_vector, rebracketing_vector, seed):
        batch = ops.shape(modes_vector)[0]
        shape = (batch, model.num_pitches, model.num_frames)
        conditions = model.condition_vector(modes_vector, rebracketing_vector)
        if guidance_scale != 1.0:
            unconditional = model.condition_vector(ops.zeros_like(modes_vector), ops.zeros_like(rebracketing_vector))
            conditions = ops.concatenate([conditions, unconditional], axis=0)
        loop_body = model._loop_body(scheduler, steps, guidance_scale, shape)
        sample = step_noise(shape, seed, 0)
        sample = ops.fori_loop(0, steps, lambda i, x: loop_body(i, x, conditions, seed), sample)
        velocities = ops.clip((sample + 1.0) / 2.0, 0.0, 1.0)
        rolls = ops.where(velocities > model.note_threshold, velocities, ops.zeros_like(velocities))
        return {"velocities": velocities, "piano_roll": rolls}

    return ExportFunction(
        name="generate",
        inputs=(*CONDITION_SPECS, TensorSpec("seed", (), "int64", "integer seed of the initial and per-step noise")),
        outputs=("velocities", "piano_roll"),
        body=body,
        description=f"the whole {model.scheduler_name} sampling loop, {steps} steps, guidance scale {guidance_scale}: "
        "raw velocities and the roll with cells below note_threshold silenced, [batch, pitches, frames]; equals "
        "PianoRollDiffusion.generate(..., seed=seed) under TensorFlow",
        formats=("savedmodel",),
    )



# === GPT ===

# The cache's axes, in order (what ChromaticGPT.init_cache allocates).
GPT_CACHE_LAYOUT = ("batch", "layer", "key_value", "position", "head", "head_dim")
# The name of the prompt-length dimension of ``prefill``'s token ids (dynamic where the format allows).
PROMPT_LENGTH = "prompt_length"


def _gpt_prompt_range(model) -> tuple:
    """The prompt lengths ``prefill`` takes in every format: at least 2 (torch.export specialises a length of 1;
    every prompt prefix holds <bos> and a separator) and short enough to leave room for one new token."""
    return (2, model.max_sequence_length - 1)


def _gpt_cache_shape(model) -> tuple:
    return (None, model.num_layers, 2, model.max_sequence_length, model.num_heads, model.hidden_dim // model.num_heads)


def _gpt_settings(model) -> dict:
    """``settings.gpt``: what the runner needs besides ``prefill`` and ``decode_step``."""
    vocab = model.vocabulary
    config = model.sampling_config
    return {
        "vocabulary_size": int(vocab.vocabulary_size),
        "bos_id": int(vocab.bos_id),
        "eos_id": int(vocab.eos_id),
        "pad_id": int(vocab.pad_id),
        "max_sequence_length": model.max_sequence_length,
        "prompt_length_range": list(_gpt_prompt_range(model)),
        "cache_shape": list(_gpt_cache_shape(model)),
        "cache_layout": list(GPT_CACHE_LAYOUT),
        "cache_dtype": "float32",
        "sampling": {
            "strategy": config.strategy,
            "temperature": config.temperature,
            "top_k": config.top_k,
            "top_p": config.top_p,
            "repetition_penalty": config.repetition_penalty,
            "max_length": model.max_length,
        },
        # Token-id prompt prefixes (<bos>, mode tokens, <sep_midi>) of every colour and of "none".
        "prompts": {
            name: [int(i) for i in model.prompt_ids(condition=None if name == "none" else name)]
            for name in ("none", *modes.COLOUR_NAMES)
        },
    }


def _empty_cache_like(model, token_ids):
    """Zeros of the cache's shape with the batch of ``token_ids``, built from the input (not from a Python
    batch size) so that traced graphs keep a dynamic batch."""
    rows = ops.zeros_like(ops.cast(token_ids[:, :1], model.compute_dtype))  # [batch, 1]
    return ops.reshape(rows, (-1, 1, 1, 1, 1, 1)) + ops.zeros((1, *_gpt_cache_shape(model)[1:]), dtype=model.compute_dtype)


def _gpt_prefill_function(model) -> ExportFunction:
    def body(token_ids):
        logits, cache = model.call_with_cache(token_ids, _empty_cache_like(model, token_ids), 0)
        return {"logits": ops.cast(logits[:, -1, :], "float32"), "cache": cache}

    return ExportFunction(
        name="prefill",
        inputs=(
            TensorSpec(
                "token_ids",
                (None, PROMPT_LENGTH),
                "int32",
                "prompt token ids (e.g. settings.gpt.prompts[colour]), {} <= prompt_length <= {}".format(*_gpt_prompt_range(model)),
            ),
        ),
        outputs=("logits", "cache"),
        body=body,
        dynamic_ranges={PROMPT_LENGTH: _gpt_prompt_range(model)},
        description=f"run a prompt through the model: next-token logits after its last token [batch, "
        f"{model.vocabulary.vocabulary_size}] and the key/value cache {list(_gpt_cache_shape(model))} "
        "(settings.gpt.cache_layout) holding its positions; decode_step continues at index prompt_length",
    )


def _gpt_decode_step_function(model) -> ExportFunction:
    def body(token_ids, cache, index):
        logits, cache = model.call_with_cache(token_ids, cache, index)
        return {"logits": ops.cast(logits[:, -1, :], "float32"), "next_cache": cache}

    return ExportFunction(
        name="decode_step",
        inputs=(
            TensorSpec("token_ids", (None, 1), "int32", "the token at position index"),
            TensorSpec("cache", _gpt_cache_shape(model), "float32", "the cache prefill or the previous decode_step returned"),
            TensorSpec("index", (), "int32", f"the token's position, in [prompt_length, {model.max_sequence_length})"),
        ),
        # Not "cache": ONNX graph inputs and outputs share one namespace.
        outputs=("logits", "next_cache"),
        body=body,
        description="one decoding step: next-token logits after token_ids [batch, vocabulary_size] and the cache "
        "with position index written",
    )


def _gpt_generate_unsupported(model) -> str | None:
    """Why the preset's sampling cannot run in an exported loop (beam search, repetition penalty), or None."""
    from chroma_keras.generation.compiled_loop import unsupported_reason

    return unsupported_reason(model.sampling_config)


def _gpt_generate_function(model) -> ExportFunction:
    from chroma_keras.backend.compiled_decoding import draw_categorical
    from chroma_keras.generation.compiled_loop import decode_loop, loop_spec

    vocab = model.vocabulary
    config = model.sampling_config
    max_length = min(model.max_length, model.max_sequence_length)
    spec = loop_spec(config, max_length, vocab.eos_id, vocab.pad_id, vocab.vocabulary_size)
    strategy = "greedy" if spec.greedy else config.strategy

    def body(token_ids, seed, temperature, top_p):
        sequences, length = decode_loop(model, token_ids, seed, temperature, top_p, spec, draw_categorical)
        return {"sequences": sequences, "length": length}

    return ExportFunction(
        name="generate",
        inputs=(
            TensorSpec(
                "token_ids",
                (None, PROMPT_LENGTH),
                "int32",
                "prompt token ids, the same prompt length in every row (e.g. settings.gpt.prompts[colour])",
            ),
            TensorSpec("seed", (), "int32", "integer seed of the draws (ignored by greedy decoding)"),
            TensorSpec("temperature", (), "float32", "logits are divided by it before the draw (> 0)"),
            TensorSpec("top_p", (), "float32", "nucleus mass (used by the top_p strategies)"),
        ),
        outputs=("sequences", "length"),
        body=body,
        dynamic_ranges={PROMPT_LENGTH: _gpt_prompt_range(model)},
        description=f"the whole compiled decoding loop ({strategy}"
        + (f", top_k {spec.top_k}" if spec.top_k is not None else "")
        + f", up to {max_length} tokens with the prompt): sequences int32 [batch, {max_length}] (prompt, generated "
        "tokens, <eos>, then <pad>) and length, the generated length of the longest row; equals "
        "ChromaticGPT.generate(prompt=..., seed=seed, compiled=True) under TensorFlow",
        formats=("savedmodel",),
        xla=True,
    )
