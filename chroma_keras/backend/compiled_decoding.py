"""A compiled key/value-cache decoding step for autoregressive models, per backend.

Generation calls the model once per token; run eagerly, every call re-dispatches each op
(and under JAX re-traces ops whose static arguments change), which costs far more than
the arithmetic of a small model. This compiles ``model.call_with_cache`` once per input
shape:

* JAX: ``jax.jit`` of a stateless version that takes the variables' current values as an
  argument (as keras-hub's generate does), so training later does not leave stale weights
  baked into the compiled function;
* TensorFlow: ``tf.function`` (variables are read live);
* PyTorch: eager (``torch.compile`` costs more than it saves for the short runs here).

:func:`compile_decode_loop` compiles a whole generation
(:func:`chroma_keras.generation.compiled_loop.decode_loop`: prefill, token choice, cache updates
and the end test) the same way, with XLA on TensorFlow (``jit_compile=True``); on PyTorch the
loop is a Python loop over eager steps under ``torch.no_grad()`` with every tensor on the device,
and a model with ``call_with_cache_in_place`` (ChromaticGPT) updates the loop's cache in place
rather than copying it each step.
Its random draws use each backend's own generator keyed by the seed (see :func:`draw_categorical`).
"""

from __future__ import annotations

import keras


def compile_cached_call(model):
    """``fn(token_ids, cache, index) -> (logits, cache)``: ``model.call_with_cache``, compiled.

    Args:
        model: a model with ``call_with_cache(token_ids, cache, index)``.

    Returns:
        The function; ``index`` may be a Python int or an int32 scalar tensor.
    """
    backend = keras.config.backend()
    if backend == "jax":
        import jax

        def stateless(values, token_ids, cache, index):
            with keras.StatelessScope(state_mapping=list(zip(model.variables, values))):
                return model.call_with_cache(token_ids, cache, index)

        jitted = jax.jit(stateless)

        def call(token_ids, cache, index):
            values = [variable.value for variable in model.variables]
            return jitted(values, token_ids, cache, keras.ops.convert_to_tensor(index, "int32"))

        return call
    if backend == "tensorflow":
        import tensorflow as tf

        function = tf.function(model.call_with_cache, reduce_retracing=True)

        def call(token_ids, cache, index):
            return function(token_ids, cache, keras.ops.convert_to_tensor(index, "int32"))

        return call
    return model.call_with_cache


def _seed_int(seed) -> int:
    """A seed folded into [0, 2**31 - 1) (TensorFlow's stateless ops take int32 seeds)."""
    return int(seed) % (2**31 - 1)


def draw_categorical(logits, seed, step):
    """One categorical draw per row of ``logits [batch, n]``, keyed by ``(seed, step)``.

    The draw of step ``step`` depends only on the seed and the step, not on earlier draws, so a
    compiled loop needs no random state. JAX: ``keras.random.categorical`` with the key
    ``[seed, step]``; TensorFlow: ``tf.random.stateless_categorical`` with the same pair (what
    ``keras.random.categorical`` runs, which takes no tensor seeds there); PyTorch: a
    ``torch.Generator`` seeded from the pair.

    Args:
        logits: float32 ``[batch, n]`` (finite).
        seed: int32 scalar tensor.
        step: int32 scalar tensor.

    Returns:
        int ``[batch]`` indices into the last axis.
    """
    backend = keras.config.backend()
    if backend == "jax":
        import jax.numpy as jnp

        key = jnp.stack([seed, step]).astype(jnp.uint32)
        return keras.random.categorical(logits, 1, seed=key)[:, 0]
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.random.stateless_categorical(logits, 1, seed=tf.stack([seed, step]), dtype=tf.int32)[:, 0]
    import torch

    generator = torch.Generator(device=logits.device)
    generator.manual_seed(int(seed) * 1_000_003 + int(step))
    return torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator)[:, 0]


class _InPlaceSteps:
    """The model as :func:`decode_loop` sees it on PyTorch: steps that write the cache in place."""

    def __init__(self, model):
        self.model = model

    def init_cache(self, batch_size, length):
        return self.model.init_cache(batch_size, length)

    def call_with_cache(self, token_ids, cache, index):
        return self.model.call_with_cache_in_place(token_ids, cache, index)


def compile_decode_loop(model):
    """``fn(prompt_ids, seed, temperature, top_p, spec) -> (sequences, length)``: a whole generation, compiled.

    Args:
        model: a model with ``init_cache`` and ``call_with_cache`` (see
            :func:`~chroma_keras.generation.compiled_loop.decode_loop`).

    Returns:
        The function: ``prompt_ids`` int32 ``[batch, prompt_length]`` (NumPy), ``seed`` an int,
        ``temperature`` and ``top_p`` floats (tensors inside, so changing them does not recompile),
        ``spec`` a :class:`~chroma_keras.generation.compiled_loop.LoopSpec` (one compilation per
        spec and prompt shape). It returns NumPy int32 ``[batch, length]``, trimmed to the
        generated length.

    Example:
    >>> run = compile_decode_loop(gpt)  # doctest: +SKIP
    >>> ids = run(prompt, 0, 1.0, 0.9, loop_spec(config, 128, eos_id, pad_id))  # doctest: +SKIP
    """
    from chroma_keras.generation.compiled_loop import decode_loop

    backend = keras.config.backend()
    ops = keras.ops

    def finish(sequences, length):
        return ops.convert_to_numpy(sequences)[:, : int(ops.convert_to_numpy(length))].astype("int32")

    if backend == "jax":
        import jax

        def stateless(values, prompt_ids, seed, temperature, top_p, spec):
            with keras.StatelessScope(state_mapping=list(zip(model.variables, values))):
                return decode_loop(model, prompt_ids, seed, temperature, top_p, spec, draw_categorical)

        jitted = jax.jit(stateless, static_argnames=("spec",))

        def run(prompt_ids, seed, temperature, top_p, spec):
            values = [variable.value for variable in model.variables]
            out = jitted(
                values,
                ops.convert_to_tensor(prompt_ids, "int32"),
                ops.convert_to_tensor(_seed_int(seed), "int32"),
                ops.convert_to_tensor(temperature, "float32"),
                ops.convert_to_tensor(top_p, "float32"),
                spec=spec,
            )
            return finish(*out)

        return run
    if backend == "tensorflow":
        import tensorflow as tf

        functions = {}  # one tf.function per spec: tf.function keys Python arguments by identity

        def run(prompt_ids, seed, temperature, top_p, spec):
            if spec not in functions:

                def loop(prompt_ids, seed, temperature, top_p):
                    return decode_loop(model, prompt_ids, seed, temperature, top_p, spec, draw_categorical)

                functions[spec] = tf.function(loop, jit_compile=True)
            out = functions[spec](
                tf.constant(prompt_ids, tf.int32),
                tf.constant(_seed_int(seed), tf.int32),
                tf.constant(temperature, tf.float32),
                tf.constant(top_p, tf.float32),
            )
            return finish(*out)

        return run
    import torch

    # The loop owns its cache and never goes back to an older state, so it may update it in place.
    stepper = _InPlaceSteps(model) if hasattr(model, "call_with_cache_in_place") else model

    def run(prompt_ids, seed, temperature, top_p, spec):
        with torch.no_grad():
            out = decode_loop(
                stepper,
                ops.convert_to_tensor(prompt_ids, "int32"),
                _seed_int(seed),
                ops.convert_to_tensor(temperature, "float32"),
                ops.convert_to_tensor(top_p, "float32"),
                spec,
                draw_categorical,
            )
        return finish(*out)

    return run
