"""Real-time factor of our Keras EnCodec (encode + decode) against transformers' EncodecModel on CPU.

Both models have the full facebook/encodec_24khz architecture and the same
(random) weights: the reference is built from ``EncodecConfig()``, its
codebooks filled, saved, and converted with ``chroma_keras.pretrained``. Each
encodes ~5 s of 24 kHz noise at 6 kbps and decodes the codes back. Ours runs
under the current ``KERAS_BACKEND``, compiled where the backend allows it
(``jax.jit`` on JAX, ``tf.function(jit_compile=True)`` on TensorFlow, eager
on torch); the reference runs eagerly under ``torch.no_grad``. By default
the timed runs alternate between the two models in one process, after a
warm-up call of each that absorbs tracing and compilation, so that load from
other processes and CPU-quota throttling (which made single timings on the
shared benchmark machine vary up to 50x) hit both alike.
``--reference-process`` instead times the reference in its own process that
imports only torch and transformers, before and after ours. Usage:

    KERAS_BACKEND=jax .venv/bin/python benchmarks/encodec_realtime.py [--seconds 5] [--repeats 5]

Prints each model's real-time factor (processing time / audio duration) and
the ratio reference_time / our_time (above 1: ours is faster).
"""

import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np


REFERENCE_WORKER = r"""
import json, sys, time, numpy as np, torch
from transformers import EncodecModel
directory, wave_path, bandwidth, repeats = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
model = EncodecModel.from_pretrained(directory).eval()
wave = torch.from_numpy(np.load(wave_path))
def run():
    with torch.no_grad():
        encoded = model.encode(wave, bandwidth=bandwidth)
        return encoded.audio_codes, model.decode(encoded.audio_codes, encoded.audio_scales)[0]
codes, _ = run()
times = []
for _ in range(repeats):
    start = time.perf_counter(); run(); times.append(time.perf_counter() - start)
np.save(wave_path + ".codes.npy", codes[0].numpy())
print(json.dumps({"times": times, "threads": torch.get_num_threads()}))
"""


def build_reference(directory):
    """Save transformers' EncodecModel (full 24 kHz config, random weights, filled codebooks) to ``directory``."""
    import torch
    from transformers import EncodecConfig, EncodecModel

    torch.manual_seed(0)
    reference = EncodecModel(EncodecConfig()).eval()
    with torch.no_grad():
        for layer in reference.quantizer.layers:
            layer.codebook.embed.normal_()
    reference.save_pretrained(directory)


def time_reference(directory, wave_path, bandwidth, repeats):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run(
        [sys.executable, "-c", REFERENCE_WORKER, str(directory), str(wave_path), str(bandwidth), str(repeats)],
        env=env, capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


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
    parser.add_argument("--reference-process", action="store_true", help="time the reference in its own process")
    args = parser.parse_args()

    import keras

    from chroma_keras.pretrained import convert_checkpoint

    work = pathlib.Path(tempfile.mkdtemp(prefix="encodec_bench_"))
    build_reference(work / "reference")
    ours, _, _ = convert_checkpoint("encodec", work / "reference")
    samples = int(args.seconds * 24000)
    wave = (0.1 * np.random.default_rng(0).normal(size=(1, 1, samples))).astype("float32")
    np.save(work / "wave.npy", wave)

    run_ours, mode = compiled_codec(ours, args.bandwidth)
    start = time.perf_counter()
    run_ours(wave)
    first_call = time.perf_counter() - start
    ours_times = []
    if args.reference_process:
        before = time_reference(work / "reference", work / "wave.npy", args.bandwidth, args.repeats)
        for _ in range(args.repeats):
            start = time.perf_counter()
            run_ours(wave)
            ours_times.append(time.perf_counter() - start)
        after = time_reference(work / "reference", work / "wave.npy", args.bandwidth, args.repeats)
        reference_times, threads, where = before["times"] + after["times"], before["threads"], "own process"
    else:
        import torch
        from transformers import EncodecModel

        reference = EncodecModel.from_pretrained(work / "reference").eval()
        wave_torch = torch.from_numpy(wave)

        def run_reference():
            with torch.no_grad():
                encoded = reference.encode(wave_torch, bandwidth=args.bandwidth)
                return encoded.audio_codes, reference.decode(encoded.audio_codes, encoded.audio_scales)[0]

        np.save(str(work / "wave.npy") + ".codes.npy", run_reference()[0][0].numpy())
        reference_times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            run_reference()
            reference_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            run_ours(wave)
            ours_times.append(time.perf_counter() - start)
        threads, where = torch.get_num_threads(), "same process, alternating"

    # Same weights, so the codes should agree (a sanity check that the timed models are the same codec).
    codes_ours = keras.ops.convert_to_numpy(ours.encode(wave, args.bandwidth))
    agreement = float(np.mean(codes_ours == np.load(str(work / "wave.npy") + ".codes.npy")))
    shutil.rmtree(work, ignore_errors=True)

    ref_time, our_time = statistics.median(reference_times), statistics.median(ours_times)
    print(f"EnCodec 24 kHz, {args.seconds:g} s of audio, {args.bandwidth:g} kbps, encode + decode, CPU "
          f"(reference torch threads: {threads}, os.cpu_count: {os.cpu_count()})")
    print(f"codes agree with the reference on {agreement:.2%} of entries")
    print(f"transformers EncodecModel (torch eager, {where}): {ref_time:7.3f} s  RTF {ref_time / args.seconds:.3f}")
    print(f"chroma_keras Encodec ({keras.config.backend()}, {mode}): {our_time:7.3f} s  RTF {our_time / args.seconds:.3f}"
          f"  (first call incl. compilation {first_call:.1f} s)")
    print(f"ratio reference_time / our_time (medians): {ref_time / our_time:.2f}  "
          f"(best times: {min(reference_times) / min(ours_times):.2f})")


if __name__ == "__main__":
    main()
