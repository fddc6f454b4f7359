"""Sample piano rolls from a VAE or diffusion export, or tokens from a GPT export, with its runtime alone
(no chroma_keras, no Keras).

``chroma-keras export`` copies this file into a VAE export (which holds ``decode``), a
diffusion export (which holds ``step``) or a GPT export (which holds ``prefill`` and
``decode_step``) as ``sample.py``. It needs NumPy and the export's
runtime: TensorFlow for ``savedmodel``, torch for ``torch`` / ``torchscript``, onnxruntime for
``onnx``. With the same seed it reproduces the live model's
``generate(..., seed=seed, noise="portable")`` (within 1e-4): every Gaussian is drawn as
``numpy.random.default_rng([seed, step]).standard_normal(shape, dtype=float32)`` (step 0 the
initial draw, step i + 1 the noise of sampling step i), which any runtime can reproduce.

A GPT export generates token ids with ``prefill`` then one ``decode_step`` per token, greedily
(equal to the live ``generate(..., sampling="greedy")`` token for token) or by temperature /
top-k sampling from a NumPy generator seeded with ``--seed``; it stops at ``<eos>`` or after
``--max-new-tokens``.

Command line::

    python sample.py --condition Red --num-samples 4 --seed 0 --out samples.npz
    python sample.py --condition Red --max-new-tokens 64 --out tokens.npz              # GPT, greedy
    python sample.py --prompt-ids 1,5,9,3 --sampling top_k --top-k 8 --seed 0 --out tokens.npz

From Python (after ``sys.path.insert(0, EXPORT_DIR)``)::

    import sample
    result = sample.sample(EXPORT_DIR, condition="Red", num_samples=4, seed=0)
    result["piano_roll"]          # [4, pitches, frames], velocities in [0, 1], 0 = silent
    sample.generate_tokens(EXPORT_DIR, condition="Red", max_new_tokens=64)["token_ids"]   # GPT

This file imports nothing from chroma_keras on purpose: it is what a server runs.
"""

import argparse
import json
import pathlib
import sys

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
REBRACKETING_SIZE_KEY = "rebracketing"
GPT_STRATEGIES = ("greedy", "temperature", "top_k")
_SAVEDMODELS = {}  # one load per SavedModel directory: every signature shares its variables


def portable_normal(seed, step, shape):
    """``N(0, I)`` float32 draw of ``shape`` for ``step`` of a run seeded with ``seed`` (the manifest's ``noise``)."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(step)]).standard_normal(tuple(shape), dtype=np.float32)


def load_function(export_dir, manifest, name):
    """``run(*arrays) -> [arrays]`` calling exported function ``name`` in its format's runtime."""
    entry = manifest["functions"][name]
    names = [spec["name"] for spec in entry["inputs"]]
    fmt = manifest["format"]
    if fmt == "savedmodel":
        import tensorflow as tf

        path = str(pathlib.Path(export_dir) / "savedmodel")
        if path not in _SAVEDMODELS:
            _SAVEDMODELS[path] = tf.saved_model.load(path)
        signature = _SAVEDMODELS[path].signatures[name]
        return lambda *arrays: [
            signature(**{n: tf.constant(a) for n, a in zip(names, arrays)})[k].numpy() for k in entry["outputs"]
        ]
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(export_dir / entry["file"]), providers=["CPUExecutionProvider"])
        return lambda *arrays: session.run(entry["outputs"], dict(zip(names, arrays)))
    if fmt not in ("torch", "torchscript"):
        raise SystemExit(f"sample.py: unknown export format {fmt!r} in manifest.json")
    import torch

    path = str(export_dir / entry["file"])
    module = torch.export.load(path).module() if fmt == "torch" else torch.jit.load(path)

    def run(*arrays):
        with torch.no_grad():
            outputs = module(*[torch.from_numpy(np.asarray(a)) for a in arrays])
        outputs = outputs if isinstance(outputs, (tuple, list)) else [outputs]
        return [value.numpy() for value in outputs]

    return run


def condition_arrays(manifest, condition, num_samples, modes=None, rebracketing=None):
    """``(modes [n, 9], rebracketing [n, R])`` float32 for a colour name (or ``"none"``) or an explicit modes vector."""
    settings = manifest["settings"]
    table = settings["conditions"]
    if modes is None:
        key = "none" if condition is None else str(condition)
        matches = [name for name in table if name.lower() == key.lower()]
        if not matches:
            raise SystemExit(f"sample.py: unknown condition {condition!r}; expected one of {list(table)} or --modes")
        modes = table[matches[0]]
    modes = np.asarray(modes, np.float32).reshape(1, -1)
    if modes.shape[1] != len(table["none"]):
        raise SystemExit(f"sample.py: --modes needs {len(table['none'])} values, got {modes.shape[1]}")
    function = next(iter(manifest["functions"].values()))
    width = next(spec["shape"][1] for spec in function["inputs"] if spec["name"] == REBRACKETING_SIZE_KEY)
    rebracketing = np.zeros((1, width), np.float32) if rebracketing is None else np.asarray(rebracketing, np.float32).reshape(1, -1)
    if rebracketing.shape[1] != width:
        raise SystemExit(f"sample.py: --rebracketing needs {width} values, got {rebracketing.shape[1]}")
    return np.repeat(modes, num_samples, axis=0), np.repeat(rebracketing, num_samples, axis=0)


def notes_from_probabilities(probabilities, decoding, threshold, seed):
    """Which cells sound: ``threshold`` (p > threshold), ``expected_count`` (the round(sum p) most probable cells
    per roll) or ``bernoulli`` (NumPy generator seeded with ``seed``) — the VAE's decodings."""
    p = np.asarray(probabilities, dtype=np.float64)
    if decoding == "threshold":
        return p > threshold
    if decoding == "bernoulli":
        return np.random.default_rng(seed).random(p.shape) < p
    flat = p.reshape(len(p), -1)
    counts = np.rint(flat.sum(axis=1)).astype(np.int64)
    order = np.argsort(-flat, axis=1, kind="stable")
    mask = np.zeros_like(flat, dtype=bool)
    for i, count in enumerate(counts):
        mask[i, order[i, :count]] = True
    return mask.reshape(p.shape)


def sample_vae(export_dir, manifest, modes, rebracketing, seed, temperature=None, decoding=None, threshold=None):
    """Latents from the prior (portable noise), decoded by the exported ``decode``."""
    vae = manifest["settings"]["vae"]
    temperature = vae["temperature"] if temperature is None else float(temperature)
    latent = portable_normal(seed, 0, (len(modes), vae["z_dim"])) * np.float32(temperature)
    probabilities, velocity = load_function(export_dir, manifest, "decode")(latent, modes, rebracketing)
    sounding = notes_from_probabilities(
        probabilities, vae["decoding"] if decoding is None else decoding, vae["threshold"] if threshold is None else threshold, seed
    )
    rolls = np.where(sounding, np.clip(velocity, 1.0 / 127.0, 1.0), 0.0).astype(np.float32)
    return {"latent": latent, "note_probabilities": probabilities, "velocity": velocity, "piano_roll": rolls}


def sample_diffusion(export_dir, manifest, modes, rebracketing, seed):
    """The exported ``step`` looped over ``settings.step.timesteps`` from portable noise."""
    settings = manifest["settings"]
    roll = settings["piano_roll"]
    shape = (len(modes), roll["num_pitches"], roll["num_frames"])
    step = load_function(export_dir, manifest, "step")
    sample = portable_normal(seed, 0, shape)
    stochastic = settings["step"]["stochastic"]
    for i in range(settings["step"]["num_steps"]):
        noise = portable_normal(seed, i + 1, shape) if stochastic else np.zeros(shape, np.float32)
        (sample,) = step(sample, np.asarray(i, np.int32), noise, modes, rebracketing)
    velocities = np.clip((sample.astype(np.float32) + 1.0) / 2.0, 0.0, 1.0)
    threshold = settings["diffusion"]["note_threshold"]
    return {"velocities": velocities, "piano_roll": np.where(velocities > threshold, velocities, 0.0).astype(np.float32)}


def gpt_prompt(manifest, prompt_ids=None, condition=None):
    """The prompt as a 1-D int32 array: ``prompt_ids`` (ints) or the prefix of ``condition`` in ``settings.gpt.prompts``."""
    gpt = manifest["settings"]["gpt"]
    if prompt_ids is None:
        table = gpt["prompts"]
        key = "none" if condition is None else str(condition)
        matches = [name for name in table if name.lower() == key.lower()]
        if not matches:
            raise SystemExit(f"sample.py: unknown condition {condition!r}; expected one of {list(table)} or --prompt-ids")
        prompt_ids = table[matches[0]]
    ids = np.asarray(prompt_ids)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise SystemExit(f"sample.py: prompt token ids must be a 1-D sequence of integers; got dtype {ids.dtype}, shape {ids.shape}")
    low, high = gpt["prompt_length_range"]
    if not low <= len(ids) <= high:
        raise SystemExit(f"sample.py: the prompt must hold {low} to {high} token ids; got {len(ids)}")
    if ids.min() < 0 or ids.max() >= gpt["vocabulary_size"]:
        raise SystemExit(f"sample.py: prompt token ids must be in [0, {gpt['vocabulary_size']}); got {ids.min()}..{ids.max()}")
    return ids.astype(np.int32)


def select_tokens(logits, sequences, strategy, temperature, top_k, repetition_penalty, rng):
    """The next token of every row: repetition penalty, then the argmax (``greedy`` or temperature 0) or a
    draw from the softmax of ``logits / temperature`` restricted to the ``top_k`` largest (``top_k``)."""
    logits = np.array(logits, dtype=np.float64)
    if repetition_penalty != 1.0:
        seen = np.zeros(logits.shape, bool)
        np.put_along_axis(seen, sequences.astype(np.int64), True, axis=-1)
        penalised = np.where(logits > 0, logits / repetition_penalty, logits * repetition_penalty)
        logits = np.where(seen, penalised, logits)
    if strategy == "greedy" or temperature == 0:
        return np.argmax(logits, axis=-1)
    logits = logits / temperature
    if strategy == "top_k" and top_k < logits.shape[-1]:
        keep = np.argpartition(-logits, top_k - 1, axis=-1)[:, :top_k]
        kept = np.full_like(logits, -np.inf)
        np.put_along_axis(kept, keep, np.take_along_axis(logits, keep, axis=-1), axis=-1)
        logits = kept
    probabilities = np.exp(logits - logits.max(axis=-1, keepdims=True))
    cumulative = np.cumsum(probabilities / probabilities.sum(axis=-1, keepdims=True), axis=-1)
    draws = rng.random(len(cumulative)) * cumulative[:, -1]
    picks = np.array([np.searchsorted(row, u, side="right") for row, u in zip(cumulative, draws)])
    return np.minimum(picks, logits.shape[-1] - 1)


def generate_tokens(
    export_dir=HERE,
    prompt_ids=None,
    condition=None,
    num_samples=1,
    max_new_tokens=16,
    sampling="greedy",
    temperature=1.0,
    top_k=None,
    seed=0,
    repetition_penalty=None,
):
    """Generate with a GPT export: ``prefill`` on the prompt, then ``decode_step`` once per new token.

    Args:
        export_dir: the export directory (holding ``prefill`` and ``decode_step``).
        prompt_ids: the prompt's token ids (1-D ints); default: the prefix of ``condition``.
        condition: a colour name of ``settings.gpt.prompts`` (or ``"none"``), when no ``prompt_ids``.
        num_samples: sequences, each starting from the prompt.
        max_new_tokens: the most tokens added (fewer when every row ends with ``<eos>``, or at
            ``max_sequence_length``).
        sampling: ``greedy`` (the live model's ``generate(..., sampling="greedy")``), ``temperature``
            or ``top_k``.
        temperature, top_k: sampling parameters (``top_k`` default: the manifest's).
        seed: seed of the NumPy generator the draws come from.
        repetition_penalty: CTRL penalty (default: the manifest's, as the live model).

    Returns:
        ``{"token_ids": int32 [num_samples, length]}``: the prompt, then the generated tokens, ``<pad>``
        after a row's ``<eos>`` (as ``ChromaticGPT.generate``).
    """
    export_dir = pathlib.Path(export_dir)
    manifest = json.loads((export_dir / "manifest.json").read_text())
    if not {"prefill", "decode_step"} <= set(manifest["functions"]):
        raise SystemExit("sample.py: generating tokens needs a GPT export holding 'prefill' and 'decode_step'")
    gpt = manifest["settings"]["gpt"]
    defaults = gpt["sampling"]
    if sampling not in GPT_STRATEGIES:
        raise SystemExit(f"sample.py: sampling must be one of {list(GPT_STRATEGIES)}; got {sampling!r}")
    top_k = defaults["top_k"] if top_k is None else int(top_k)
    penalty = defaults["repetition_penalty"] if repetition_penalty is None else float(repetition_penalty)
    # top_k matters only to the top_k strategy; the manifest's 0 ("disabled") must not stop greedy decoding.
    if not (temperature >= 0 and (sampling != "top_k" or top_k >= 1) and penalty > 0 and int(max_new_tokens) >= 1 and int(num_samples) >= 1):
        raise SystemExit(
            "sample.py: expected temperature >= 0, top_k >= 1 (sampling top_k), repetition_penalty > 0, max_new_tokens >= 1 "
            f"and num_samples >= 1; got {temperature}, {top_k}, {penalty}, {max_new_tokens}, {num_samples}"
        )
    prompt = gpt_prompt(manifest, prompt_ids, condition)
    prefill = load_function(export_dir, manifest, "prefill")
    decode_step = load_function(export_dir, manifest, "decode_step")
    rng = np.random.default_rng(seed)
    max_length = min(len(prompt) + int(max_new_tokens), gpt["max_sequence_length"])
    sequences = np.repeat(prompt[None, :], int(num_samples), axis=0).astype(np.int64)
    done = np.zeros(len(sequences), bool)
    logits, cache = prefill(sequences.astype(np.int32))
    while True:
        tokens = select_tokens(logits, sequences, sampling, float(temperature), top_k, penalty, rng)
        tokens = np.where(done, gpt["pad_id"], tokens)
        sequences = np.concatenate([sequences, tokens[:, None]], axis=1)
        done |= tokens == gpt["eos_id"]
        if sequences.shape[1] >= max_length or done.all():
            break
        index = np.asarray(sequences.shape[1] - 1, np.int32)
        logits, cache = decode_step(tokens[:, None].astype(np.int32), cache, index)
    return {"token_ids": sequences.astype(np.int32)}


def sample(export_dir=HERE, condition=None, num_samples=1, seed=0, modes=None, rebracketing=None, **vae_options):
    """Sample ``num_samples`` rolls for ``condition`` (a colour name, ``"none"``/None, or ``modes``).

    Returns a dict of arrays: ``piano_roll`` always; ``velocities`` (diffusion) or
    ``latent``, ``note_probabilities``, ``velocity`` (VAE). ``vae_options``:
    ``temperature``, ``decoding``, ``threshold`` (default: the manifest's).
    """
    export_dir = pathlib.Path(export_dir)
    manifest = json.loads((export_dir / "manifest.json").read_text())
    arrays = condition_arrays(manifest, condition, num_samples, modes, rebracketing)
    if "step" in manifest["functions"]:
        return sample_diffusion(export_dir, manifest, *arrays, seed)
    if "decode" in manifest["functions"]:
        return sample_vae(export_dir, manifest, *arrays, seed, **vae_options)
    raise SystemExit("sample.py: this export holds neither a diffusion 'step' nor a VAE 'decode' function")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export-dir", default=str(HERE), help="the export directory (default: this file's)")
    parser.add_argument("--condition", default=None, help="a colour name from manifest.json's settings.conditions, or 'none'")
    parser.add_argument("--modes", default=None, help="instead of --condition: the per-axis modes vector as a JSON list")
    parser.add_argument("--rebracketing", default=None, help="rebracketing features as a JSON list (default: zeros, unknown)")
    parser.add_argument("--num-samples", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--temperature", type=float, default=None, help="VAE: prior scale (default: the manifest's); GPT: sampling temperature (default 1)")
    parser.add_argument("--decoding", default=None, help="VAE: threshold, expected_count or bernoulli")
    parser.add_argument("--threshold", type=float, default=None, help="VAE: note-probability threshold")
    parser.add_argument("--prompt-ids", default=None, help="GPT: the prompt's token ids, comma-separated (default: --condition's)")
    parser.add_argument("--max-new-tokens", type=int, default=16, help="GPT: the most tokens to add")
    parser.add_argument("--sampling", default="greedy", help=f"GPT: one of {', '.join(GPT_STRATEGIES)}")
    parser.add_argument("--top-k", type=int, default=None, help="GPT: tokens kept by --sampling top_k (default: the manifest's)")
    parser.add_argument("--out", required=True, help=".npz file to write")
    args = parser.parse_args(argv)
    manifest = json.loads((pathlib.Path(args.export_dir) / "manifest.json").read_text())
    if "gpt" in manifest["settings"]:
        prompt_ids = None
        if args.prompt_ids is not None:
            try:
                prompt_ids = [int(token) for token in args.prompt_ids.split(",")]
            except ValueError:
                raise SystemExit(f"sample.py: --prompt-ids must be comma-separated integers; got {args.prompt_ids!r}") from None
        result = generate_tokens(
            args.export_dir,
            prompt_ids=prompt_ids,
            condition=args.condition,
            num_samples=args.num_samples,
            max_new_tokens=args.max_new_tokens,
            sampling=args.sampling,
            temperature=1.0 if args.temperature is None else args.temperature,
            top_k=args.top_k,
            seed=args.seed,
        )
        np.savez(args.out, **result)
        imported = sorted({m.split(".")[0] for m in sys.modules} & {"chroma_keras", "keras"})
        print(json.dumps({"out": args.out, "token_ids": result["token_ids"].tolist(), "imported": imported}))
        return
    vae_options = {k: getattr(args, k) for k in ("temperature", "decoding", "threshold") if getattr(args, k) is not None}
    result = sample(
        args.export_dir,
        condition=args.condition,
        num_samples=args.num_samples,
        seed=args.seed,
        modes=None if args.modes is None else json.loads(args.modes),
        rebracketing=None if args.rebracketing is None else json.loads(args.rebracketing),
        **vae_options,
    )
    np.savez(args.out, **result)
    imported = sorted({m.split(".")[0] for m in sys.modules} & {"chroma_keras", "keras"})
    print(json.dumps({"out": args.out, "arrays": {k: list(v.shape) for k, v in result.items()}, "imported": imported}))


if __name__ == "__main__":
    main()
