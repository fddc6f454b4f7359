"""Training samples/s of scorer_late_fusion against a plain-PyTorch reference of the source project's model.

Ours is ``ck.from_preset("scorer_late_fusion")`` with its piano-roll CNN MIDI encoder, trained with
``train_on_batch`` after ``compile(jit_compile=...)`` (XLA on JAX and TensorFlow by default, eager
on torch). The reference (``scorer_reference.ReferenceScorer``) is the same architecture in
``torch.nn`` — same layer sizes, batch size, loss kinds (per-axis KL, confidence BCE, colour
cross-entropy) and optimizer (Adam, the preset's learning rate) — trained with the usual
``zero_grad / backward / step`` loop. Both start from the same weights (checked: same outputs).

Modalities (``--modalities``):

* ``source`` (default): the source project's inputs — the piano roll plus precomputed audio
  (512, CLAP width) and text (768, DeBERTa width) embeddings; the preset's audio and text
  encoders become ``type: precomputed`` (LayerNorm + Dense). The preset's own mel-CNN and
  byte-BERT encoders have no counterpart in the source project, so they are not timed.
* ``midi``: the piano roll alone (``scorer_midi_only``).

The timed runs alternate between the two models in one process (``--repeats`` rounds of
``--steps`` steps each, after warm-up steps that absorb compilation), so load from other
processes hits both alike; the medians are reported. Usage:

    KERAS_BACKEND=jax .venv/bin/python benchmarks/scorer_training.py [--steps 10] [--repeats 5]

Prints samples/s of each and the ratio ours / reference (goal: >= 1.5 on the best backend).
"""

import argparse
import os
import pathlib
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

EMBEDDING_WIDTHS = {"audio": 512, "text": 768}


def build_ours(modalities, batch_size):
    import chroma_keras as ck

    if modalities == "source":
        overrides = {"model.audio_encoder.type": "precomputed", "model.text_encoder.type": "precomputed"}
        scorer = ck.from_preset("scorer_late_fusion", **overrides, **{"training.batch_size": batch_size})
    else:
        scorer = ck.from_preset("scorer_midi_only", **{"training.batch_size": batch_size})
    return scorer


def make_batch(scorer, batch_size, seed=0):
    """A labelled batch with the inputs the scorer reads (NumPy)."""
    from chroma_keras.data import keys
    from chroma_keras.preprocessing import PianoRollSpec

    rng = np.random.default_rng(seed)
    spec = PianoRollSpec.from_config(scorer.preset_config)
    batch = {keys.PIANO_ROLL: (rng.random((batch_size, spec.num_pitches, spec.num_frames)) > 0.93).astype(np.float32)}
    for m in scorer.modalities:
        if m != "midi":
            key = keys.AUDIO_EMBEDDING if m == "audio" else keys.TEXT_EMBEDDING
            batch[key] = rng.normal(size=(batch_size, EMBEDDING_WIDTHS[m])).astype(np.float32)
    batch[keys.MODALITY_MASK] = np.ones((batch_size, len(keys.MODALITIES)), np.float32)
    colours = rng.integers(0, 8, batch_size)
    for axis in ("temporal", "spatial", "ontological"):
        target = np.full((batch_size, 3), 0.1, np.float32)
        target[np.arange(batch_size), rng.integers(0, 3, batch_size)] = 0.8
        batch[keys.AXIS_TARGETS[axis]] = target
    batch[keys.CONFIDENCE] = np.ones(batch_size, np.float32)
    batch[keys.COLOUR_INDEX] = colours.astype(np.int32)
    batch[keys.LABEL_MASK] = np.ones(batch_size, np.float32)
    return batch


def torch_batch(batch):
    import torch

    from chroma_keras.data import keys

    out = {"piano_roll": torch.from_numpy(batch[keys.PIANO_ROLL])}
    if keys.AUDIO_EMBEDDING in batch:
        out["audio_embedding"] = torch.from_numpy(batch[keys.AUDIO_EMBEDDING])
    if keys.TEXT_EMBEDDING in batch:
        out["text_embedding"] = torch.from_numpy(batch[keys.TEXT_EMBEDDING])
    for axis in ("temporal", "spatial", "ontological"):
        out[f"{axis}_target"] = torch.from_numpy(batch[keys.AXIS_TARGETS[axis]])
    out["confidence"] = torch.from_numpy(batch[keys.CONFIDENCE])
    out["colour_index"] = torch.from_numpy(batch[keys.COLOUR_INDEX])
    return out


def check_same_outputs(scorer, reference, batch, tbatch):
    """Largest difference of the head probabilities, and both losses, in inference mode (same weights)."""
    import keras
    import torch

    from scorer_reference import reference_loss

    ours = scorer(batch, training=False)
    reference.eval()
    with torch.no_grad():
        theirs = reference(tbatch)
        theirs_loss = float(reference_loss(theirs, tbatch, dict(scorer.loss_weights)))
    reference.train()
    ours_loss = float(keras.ops.convert_to_numpy(scorer.weighted_loss(batch, ours)))
    worst = 0.0
    for axis in ("temporal", "spatial", "ontological", "colour"):
        a = keras.ops.convert_to_numpy(ours[axis])
        b = torch.softmax(theirs[axis], -1).numpy()
        worst = max(worst, float(np.abs(a - b).max()))
    return worst, ours_loss, theirs_loss


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modalities", choices=("source", "midi"), default="source")
    parser.add_argument("--batch-size", type=int, default=16, help="default: the preset's training.batch_size (16)")
    parser.add_argument("--steps", type=int, default=10, help="training steps per timed run (default 10)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per model, alternating (default 5)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps of each model first (default 3)")
    parser.add_argument(
        "--jit-compile", choices=("auto", "true", "false"), default="auto",
        help="ours: auto = XLA on jax / tensorflow, eager on torch; true on torch = torch.compile",
    )
    args = parser.parse_args()

    import keras
    import torch

    from scorer_reference import copy_weights, reference_for, reference_loss

    backend = keras.config.backend()
    jit = {"auto": backend != "torch", "true": True, "false": False}[args.jit_compile]
    scorer = build_ours(args.modalities, args.batch_size)
    training = scorer.preset_config["training"]
    batch = make_batch(scorer, args.batch_size)
    scorer(batch)  # builds the precomputed-embedding encoders (their width comes from the data)
    reference = reference_for(scorer)
    copy_weights(scorer, reference)
    tbatch = torch_batch(batch)
    difference, ours_initial, reference_initial = check_same_outputs(scorer, reference, batch, tbatch)

    scorer.compile(optimizer=keras.optimizers.Adam(training["learning_rate"]), jit_compile=jit)
    device_batch = {k: keras.ops.convert_to_tensor(v) for k, v in batch.items()}
    optimizer = torch.optim.Adam(reference.parameters(), lr=training["learning_rate"])
    weights = dict(scorer.loss_weights)
    reference.train()

    def ours_steps(n):
        for _ in range(n):
            loss = scorer.train_on_batch(device_batch)
        return float(np.asarray(loss).ravel()[0])

    def reference_steps(n):
        for _ in range(n):
            optimizer.zero_grad(set_to_none=True)
            loss = reference_loss(reference(tbatch), tbatch, weights)
            loss.backward()
            optimizer.step()
        return float(loss.detach())

    start = time.perf_counter()
    ours_steps(1)
    first_step = time.perf_counter() - start
    ours_steps(args.warmup)
    reference_steps(args.warmup + 1)

    ours_times, reference_times = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        ours_loss = ours_steps(args.steps)
        ours_times.append((time.perf_counter() - start) / args.steps)
        start = time.perf_counter()
        reference_loss_value = reference_steps(args.steps)
        reference_times.append((time.perf_counter() - start) / args.steps)

    ours_rate = args.batch_size / statistics.median(ours_times)
    reference_rate = args.batch_size / statistics.median(reference_times)
    mode = {"jax": "jax.jit", "tensorflow": "tf.function(jit_compile=True)"}.get(backend, "torch.compile") if jit else "eager"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"scorer training, modalities={args.modalities}, batch {args.batch_size}, {scorer.count_params():,} parameters, "
        f"backend {backend} ({mode}), torch threads {torch.get_num_threads()}, load average {load:.1f}"
    )
    print(
        f"same weights: largest head-probability difference {difference:.2e}, losses {ours_initial:.5f} (ours) "
        f"{reference_initial:.5f} (reference); first step (compile) {first_step:.1f} s"
    )
    print(f"final losses: ours {ours_loss:.4f}, reference {reference_loss_value:.4f}")
    print("model                      samples/s   s/step (median; min-max)")
    for name, times in (("ours", ours_times), ("reference (torch eager)", reference_times)):
        print(f"{name:25s} {args.batch_size / statistics.median(times):10.1f}   {statistics.median(times):.4f} ({min(times):.4f}-{max(times):.4f})")
    print(f"ratio ours / reference (samples/s): {ours_rate / reference_rate:.2f}   (best-time ratio {min(reference_times) / min(ours_times):.2f})")


if __name__ == "__main__":
    main()
