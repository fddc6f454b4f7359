"""Overhead of the diffusion sampling loop over the bare denoiser forward passes, per backend.

For each backend (its own subprocess) and each guidance setting, the script times

* ``loop``: ``PianoRollDiffusion.generate`` with ``--steps`` DDIM steps (the compiled
  loop: jax.jit / tf.function with ``ops.fori_loop``; an eager loop under
  ``torch.no_grad`` on torch), after a warm-up call that absorbs compilation;
* ``forward``: ``--steps`` calls of the denoiser alone on the same batch (doubled
  for classifier-free guidance), compiled the same way (jax.jit / tf.function /
  eager no_grad), after a warm-up call;

and prints ``loop / forward`` (goal <= 1.10: the scheduler arithmetic, guidance
mixing and noise must cost little next to the network) and sampling steps per second.
Usage:

    .venv/bin/python benchmarks/diffusion_sampling_loop.py [--steps 20] [--samples 4] [--channels 16,32,64]
"""

from diffusion_benchmark_args import parse_arguments, run_worker

WORKER = r"""
import json, time
import keras, numpy as np
from keras import ops
import chroma_keras as ck
from chroma_keras import conditioning
from chroma_keras.data import keys

steps, samples, channels = {steps}, {samples}, {channels}
model = ck.from_preset("diffusion_pianoroll_chromatic", **{{"model.diffusion.channels": channels}})
backend = keras.config.backend()
denoiser = model.denoiser
if backend == "jax":
    import jax
    variables = denoiser.trainable_variables + denoiser.non_trainable_variables
    def pure(values, inputs):
        with keras.StatelessScope(state_mapping=list(zip(variables, values))):
            return denoiser(inputs)
    jitted = jax.jit(pure)
    forward = lambda inputs: jitted([v.value for v in variables], inputs)
elif backend == "tensorflow":
    import tensorflow as tf
    forward = tf.function(lambda inputs: denoiser(inputs))
else:
    import torch
    def forward(inputs):
        with torch.no_grad():
            return denoiser(inputs)

def block(x):
    return np.asarray(ops.convert_to_numpy(x)).sum()

results = {{}}
for scale in (1.0, 2.0):
    batch = samples * (1 if scale == 1.0 else 2)
    arrays = conditioning.condition_arrays("Red", batch)
    inputs = {{
        "sample": ops.convert_to_tensor(np.random.default_rng(0).standard_normal((batch, model.num_pitches, model.num_frames)).astype("float32")),
        "timestep": ops.full((batch,), 500, "int32"),
        "condition": model.condition_vector(arrays[keys.MODES], arrays[keys.REBRACKETING]),
    }}
    block(forward(inputs))
    start = time.perf_counter()
    for _ in range(steps):
        out = forward(inputs)
    block(out)
    forward_s = time.perf_counter() - start
    model.generate("Red", num_samples=samples, num_steps=steps, guidance_scale=scale, seed=0)
    start = time.perf_counter()
    model.generate("Red", num_samples=samples, num_steps=steps, guidance_scale=scale, seed=1)
    loop_s = time.perf_counter() - start
    results[str(scale)] = {{"loop_s": loop_s, "forward_s": forward_s}}
print(json.dumps({{"params": model.count_params(), "results": results}}))
"""


def main():
    args = parse_arguments(__doc__)
    print(f"diffusion_pianoroll_chromatic sampling loop, U-Net channels {args.channels}, {args.samples} samples, {args.steps} DDIM steps")
    print("backend      guidance   loop s   forward s   loop/forward   steps/s")
    for backend in args.backends.split(","):
        report = run_worker(WORKER, backend, args)
        for scale, r in report["results"].items():
            ratio = r["loop_s"] / r["forward_s"]
            verdict = "OK" if ratio <= 1.10 else "over goal"
            print(
                f"{backend:11s} {scale:>8s} {r['loop_s']:8.2f} {r['forward_s']:10.2f} {ratio:10.2f} ({verdict}) {args.steps / r['loop_s']:8.2f}"
            )


if __name__ == "__main__":
    main()
