"""MIDI-only scoring throughput (candidates/s) of scorer_midi_only against a plain-PyTorch reference.

Ours is ``ck.from_preset("scorer_midi_only").score(rolls, batch_size=64)``: the public scoring call on
piano rolls ``[n, 72, 128]``, end to end (NumPy in, NumPy out). The reference
(``scorer_reference.ReferenceScorer``, the source project's piano-roll CNN + fusion MLP + heads in
``torch.nn`` at the same layer sizes, with our weights copied in and checked to give the same
probabilities) scores the same rolls in batches of 64 in ``eval()`` mode under
``torch.inference_mode()``, returning NumPy probabilities.

It also reports the FLOP/s each reaches, as a fraction of what a plain float32 matmul
(``--matmul-size`` square, the best of 5) reaches in the same process under the current backend
and under torch; the larger of the two is the ceiling. The model's FLOPs are counted layer by
layer (``scorer_reference.scorer_flops``: ``2 * h * w * 9 * c_in * c_out`` per 3x3 convolution,
``2 * d_in * d_out`` per dense layer).

The timed runs alternate between the two models (``--repeats`` rounds, after a warm-up call of
each that absorbs compilation) and the medians are reported. Usage:

    KERAS_BACKEND=jax .venv/bin/python benchmarks/scorer_scoring.py [--candidates 1024] [--repeats 5]

Prints candidates/s of each and the ratio ours / reference (goal: >= 1.2 on the best backend).
"""

import argparse
import os
import pathlib
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))


def matmul_flops_per_second(size, repeats=5):
    """Best FLOP/s of a ``size`` x ``size`` float32 matmul under the current Keras backend and under torch."""
    import keras
    import torch

    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((size, size)).astype(np.float32) for _ in range(2))
    backend = keras.config.backend()
    if backend == "jax":
        import jax

        fn = jax.jit(lambda x, y: x @ y)
        x, y = jax.numpy.asarray(a), jax.numpy.asarray(b)
        run = lambda: fn(x, y).block_until_ready()  # noqa: E731
    elif backend == "tensorflow":
        import tensorflow as tf

        fn = tf.function(lambda x, y: tf.matmul(x, y), jit_compile=True)
        x, y = tf.constant(a), tf.constant(b)
        run = lambda: fn(x, y).numpy()  # noqa: E731
    else:
        run = None
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)

    def best(fn):
        fn()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return 2 * size**3 / min(times)

    torch_rate = best(lambda: ta @ tb)
    return (best(run) if run else torch_rate), torch_rate


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", type=int, default=1024, help="piano rolls scored per timed run (default 1024)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per model, alternating (default 5)")
    parser.add_argument("--matmul-size", type=int, default=2048)
    args = parser.parse_args()

    import keras
    import torch

    import chroma_keras as ck
    from chroma_keras.preprocessing import PianoRollSpec
    from scorer_reference import copy_weights, reference_for, scorer_flops

    backend = keras.config.backend()
    scorer = ck.from_preset("scorer_midi_only")
    spec = PianoRollSpec.from_config(scorer.preset_config)
    rng = np.random.default_rng(0)
    rolls = (rng.random((args.candidates, spec.num_pitches, spec.num_frames)) > 0.93).astype(np.float32)
    reference = reference_for(scorer)
    copy_weights(scorer, reference)
    reference.eval()

    def reference_score():
        outputs = []
        with torch.inference_mode():
            for start in range(0, len(rolls), args.batch_size):
                logits = reference({"piano_roll": torch.from_numpy(rolls[start : start + args.batch_size])})
                outputs.append(
                    {
                        **{axis: torch.softmax(logits[axis], -1).numpy() for axis in ("temporal", "spatial", "ontological", "colour")},
                        "confidence": torch.sigmoid(logits["confidence"]).numpy(),
                    }
                )
        return {k: np.concatenate([o[k] for o in outputs]) for k in outputs[0]}

    def ours_score():
        return scorer.score(rolls, batch_size=args.batch_size)

    start = time.perf_counter()
    ours = ours_score()
    first_call = time.perf_counter() - start
    theirs = reference_score()
    difference = max(float(np.abs(ours[k] - theirs[k]).max()) for k in theirs)

    ours_times, reference_times = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        ours_score()
        ours_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        reference_score()
        reference_times.append(time.perf_counter() - start)

    backend_matmul, torch_matmul = matmul_flops_per_second(args.matmul_size)
    ceiling = max(backend_matmul, torch_matmul)
    flops = scorer_flops(scorer, spec.num_pitches, spec.num_frames)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"MIDI-only scoring (scorer_midi_only), {args.candidates} piano rolls {spec.num_pitches}x{spec.num_frames}, batch "
        f"{args.batch_size}, backend {backend}, torch threads {torch.get_num_threads()}, load average {load:.1f}"
    )
    print(
        f"same weights: largest output difference {difference:.2e}; first score() call {first_call:.1f} s; "
        f"{flops / 1e6:.1f} MFLOP per candidate"
    )
    print(
        f"matmul {args.matmul_size}^2 float32: {backend} {backend_matmul / 1e9:.1f} GFLOP/s, torch {torch_matmul / 1e9:.1f} GFLOP/s "
        f"(ceiling {ceiling / 1e9:.1f})"
    )
    print("model                         candidates/s   s/run (median; min-max)   GFLOP/s   fraction of ceiling")
    for name, times in (("ours (Scorer.score)", ours_times), ("reference (torch inference)", reference_times)):
        rate = args.candidates / statistics.median(times)
        print(
            f"{name:28s} {rate:12.1f}   {statistics.median(times):.3f} ({min(times):.3f}-{max(times):.3f})"
            f"       {rate * flops / 1e9:7.1f}   {rate * flops / ceiling:.3f}"
        )
    ratio = statistics.median(reference_times) / statistics.median(ours_times)
    print(f"ratio ours / reference (candidates/s): {ratio:.2f}   (best-time ratio {min(reference_times) / min(ours_times):.2f})")


if __name__ == "__main__":
    main()
