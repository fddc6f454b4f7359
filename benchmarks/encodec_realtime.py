"""Real-time factor of our Keras EnCodec (encode + decode) against transformers' EncodecModel on CPU.

Both models have the full facebook/encodec_24khz architecture and the same
(random) weights: the reference is built from ``EncodecConfig()``, its
codebooks filled, saved, and converted with ``chroma_keras.pretrained``. Each
encodes ~5 s of 24 kHz noise at 6 kbps and decodes the codes back. Ours runs
under the current ``KERAS_BACKEND``, compiled where the backend allows it
(``jax.jit`` on JAX, ``tf.function(jit_compile=True)`` on TensorFlow, eager
on torch); the reference runs eagerly under ``torch.no_grad``. The timed
runs alternate between the two models after a warm-up that absorbs tracing
and compilation. Usage:

    KERAS_BACKEND=jax .venv/bin/python benchmarks/encodec_realtime.py [--seconds 5] [--repeats 5]

Prints each model's real-time factor (processing time / audio duration) and
the ratio reference_time / our_time (above 1: ours is faster).
"""

import argparse
import os
import statistics
import tempfile
import time

import numpy as np


def build_models():
    import torch
    from transformers import EncodecConfig, EncodecModel

    from chroma_keras.pretrained import convert_checkpoint

    torch.manual_seed(0)
    reference = EncodecModel(EncodecConfig()).eval()
    with torch.no_grad():
        for layer in reference.quantizer.layers:
            layer.codebook.embed.normal_()
    with tempfile.TemporaryDirectory() as directory:
        reference.save_pretrained(directory)
        ours, _, _ = convert_checkpoint("encodec", directory)
    return reference, ours


def compiled_codec(model, bandwidth):
    """``waveform -> (codes, audio)`` for our model, compiled where the backend allows it."""
    import keras

    backend = keras.config.backend()
    if backend == "jax":
        import jax

        variables = model.variables

        def run(values, wave):
            with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                codes = model.encode(wave, bandwidth)
                return codes, model.decode(codes)

        jitted = jax.jit(run)
        values = [v.value for v in variables]
        return lambda wave: jax.block_until_ready(jitted(values, wave)), "jax.jit"
    if backend == "tensorflow":
        import tensorflow as tf

        @tf.function(jit_compile=True)
        def run(wave):
            codes = model.encode(wave, bandwidth)
            return codes, model.decode(codes)

        return lambda wave: [t.numpy() for t in run(wave)], "tf.function(jit_compile=True)"
    import torch

    def run(wave):
        with torch.no_grad():
            codes = model.encode(wave, bandwidth)
            return codes, model.decode(codes)

    return run, "eager (no_grad)"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="audio duration (default 5)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per model (default 5)")
    parser.add_argument("--bandwidth", type=float, default=6.0, help="kbps (default 6)")
    args = parser.parse_args()

    import keras
    import torch

    reference, ours = build_models()
    samples = int(args.seconds * 24000)
    wave = (0.1 * np.random.default_rng(0).normal(size=(1, 1, samples))).astype("float32")
    wave_torch = torch.from_numpy(wave)

    def run_reference():
        with torch.no_grad():
            encoded = reference.encode(wave_torch, bandwidth=args.bandwidth)
            return reference.decode(encoded.audio_codes, encoded.audio_scales)[0]

    run_ours, mode = compiled_codec(ours, args.bandwidth)
    start = time.perf_counter()
    run_ours(wave)
    first_call = time.perf_counter() - start
    run_reference()
    ours_times, reference_times = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        run_reference()
        reference_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        run_ours(wave)
        ours_times.append(time.perf_counter() - start)

    # Same weights, so the codes should agree (a sanity check that the timed models are the same codec).
    codes_ours = keras.ops.convert_to_numpy(ours.encode(wave, args.bandwidth))
    with torch.no_grad():
        codes_reference = reference.encode(wave_torch, bandwidth=args.bandwidth).audio_codes[0].numpy()
    agreement = float(np.mean(codes_ours == codes_reference))

    ref_time, our_time = statistics.median(reference_times), statistics.median(ours_times)
    print(f"EnCodec 24 kHz, {args.seconds:g} s of audio, {args.bandwidth:g} kbps, encode + decode, CPU "
          f"(torch threads: {torch.get_num_threads()}, os.cpu_count: {os.cpu_count()})")
    print(f"codes agree with the reference on {agreement:.2%} of entries")
    print(f"transformers EncodecModel (torch eager): {ref_time:7.3f} s  RTF {ref_time / args.seconds:.3f}")
    print(f"chroma_keras Encodec ({keras.config.backend()}, {mode}): {our_time:7.3f} s  RTF {our_time / args.seconds:.3f}"
          f"  (first call incl. compilation {first_call:.1f} s)")
    print(f"ratio reference_time / our_time (median of {args.repeats}): {ref_time / our_time:.2f}  "
          f"(best-of-{args.repeats}: {min(reference_times) / min(ours_times):.2f})")


if __name__ == "__main__":
    main()
