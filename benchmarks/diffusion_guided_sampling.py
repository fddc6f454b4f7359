"""Cost of classifier-guided diffusion sampling, per backend: the compiled guided loop against the bare
network calls it is made of, and against the same steps run eagerly.

For each backend (its own subprocess) the script builds ``diffusion_pianoroll_chromatic`` (U-Net
channels ``--channels``) and a ``scorer_midi_only`` on the same piano-roll grid (timing needs no
training), and times, after a warm-up call each:

* ``guided``: ``generate(..., classifier_guidance=scorer_guidance(scorer, "Violet"), classifier_scale=8)``
  with ``--steps`` DDIM steps and classifier-free guidance 2: under jax and TensorFlow one compiled loop
  (``jax.grad`` / ``tf.GradientTape`` inside ``jax.jit`` / ``tf.function``), under torch an eager loop;
* ``bare``: ``--steps`` calls of the denoiser on the doubled batch plus ``--steps`` gradients of the
  guidance function, each compiled on its own the same way;
* ``eager``: the same sampling steps as ``guided``, one eager call per step (what ``generate`` did
  before guided loops compiled; on torch it is the same as ``guided``).

It prints ``guided / bare`` (goal <= 1.10: the scheduler arithmetic and guidance mixing must cost
little next to the two networks), ``eager / guided`` (the speed-up of compiling the loop) and steps/s.
Usage:

    .venv/bin/python benchmarks/diffusion_guided_sampling.py [--steps 20] [--samples 4] [--channels 16,32,64]
"""

from diffusion_benchmark_args import parse_arguments, run_worker

WORKER = r"""
import json, time
import keras, numpy as np
from keras import ops
import chroma_keras as ck
from chroma_keras import conditioning
from chroma_keras.data import keys
from chroma_keras.generation.guidance import input_gradient, scorer_guidance
from chroma_keras.generation.sampling_noise import step_noise

steps, samples, channels = {steps}, {samples}, {channels}
grid = {{"preprocessing.midi.piano_roll.lowest_pitch": 28, "preprocessing.midi.piano_roll.num_pitches": 64}}
model = ck.from_preset("diffusion_pianoroll_chromatic", **{{"model.diffusion.channels": channels}})
scorer = ck.from_preset("scorer_midi_only", **grid)
guidance = scorer_guidance(scorer, "Violet")
backend = keras.config.backend()

def compiled(fn, layer=None):
    if backend == "jax":
        import jax
        if layer is None:
            return jax.jit(fn)
        variables = layer.trainable_variables + layer.non_trainable_variables
        def pure(values, *args):
            with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                return fn(*args)
        jitted = jax.jit(pure)
        return lambda *args: jitted([v.value for v in variables], *args)
    if backend == "tensorflow":
        import tensorflow as tf
        return tf.function(fn)
    return fn

def block(x):
    return np.asarray(ops.convert_to_numpy(x)).sum()

shape = (samples, model.num_pitches, model.num_frames)
arrays, empty = conditioning.condition_arrays("Violet", samples), conditioning.condition_arrays(None, samples)
conditions = ops.concatenate([model.condition_vector(arrays[keys.MODES], arrays[keys.REBRACKETING]),
                              model.condition_vector(empty[keys.MODES], empty[keys.REBRACKETING])], axis=0)
noise = np.random.default_rng(0).standard_normal(shape).astype("float32")
inputs = {{"sample": ops.convert_to_tensor(np.concatenate([noise, noise])), "timestep": ops.full((2 * samples,), 500, "int32"),
          "condition": conditions}}
rolls = ops.convert_to_tensor((noise > 1.5).astype("float32"))
forward = compiled(lambda x: model.denoiser(x), model.denoiser)
gradient = compiled(lambda r: input_gradient(guidance, r))

def timed(fn):
    fn()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start

def bare():
    for _ in range(steps):
        out = forward(inputs)
        grad = gradient(rolls)
    block(out); block(grad)

def guided():
    return model.generate("Violet", num_samples=samples, num_steps=steps, guidance_scale=2.0, seed=1,
                          classifier_guidance=guidance, classifier_scale=8.0)

def eager():
    body = model._loop_body(model.make_scheduler("ddim"), steps, 2.0, shape, (guidance, 8.0))
    block(model._eager_loop(body, steps)(step_noise(shape, 1, 0), conditions, 1))

if backend == "torch":
    import torch
    with torch.no_grad():
        results = {{"bare_s": timed(bare), "guided_s": timed(guided)}}
    results["eager_s"] = results["guided_s"]
else:
    results = {{"bare_s": timed(bare), "guided_s": timed(guided), "eager_s": timed(eager)}}
print(json.dumps({{"params": model.count_params(), "scorer_params": scorer.count_params(), "results": results}}))
"""


def main():
    args = parse_arguments(__doc__)
    print(
        f"diffusion_pianoroll_chromatic + scorer_midi_only classifier guidance, U-Net channels {args.channels}, "
        f"{args.samples} samples, {args.steps} DDIM steps, classifier-free 2"
    )
    print("backend      guided s   bare s   guided/bare   eager s   eager/guided   steps/s")
    for backend in args.backends.split(","):
        r = run_worker(WORKER, backend, args)["results"]
        ratio = r["guided_s"] / r["bare_s"]
        verdict = "OK" if ratio <= 1.10 else "over goal"
        print(
            f"{backend:11s} {r['guided_s']:9.2f} {r['bare_s']:8.2f} {ratio:8.2f} ({verdict}) {r['eager_s']:9.2f} "
            f"{r['eager_s'] / r['guided_s']:10.2f} {args.steps / r['guided_s']:10.2f}"
        )


if __name__ == "__main__":
    main()
