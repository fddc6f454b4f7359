"""Seeded Gaussian noise for compiled sampling loops.

``keras.random`` draws from an int seed or a ``SeedGenerator``; neither gives a
fresh, reproducible draw per iteration of a loop that JAX or TensorFlow compiles
as a whole (an int repeats the same draw, a generator mutates state the compiled
loop cannot carry). Each backend has a stateless generator keyed by
``(seed, step)``, so this module keys the draw on the loop index there. Keras has
no such public function, which is why this small dispatch exists.
"""

from __future__ import annotations

import keras


def step_noise(shape, seed: int, step, dtype="float32"):
    """``N(0, I)`` of ``shape`` for loop iteration ``step`` of a run seeded with ``seed``.

    Pure in ``step`` (a Python int or an int tensor, also inside ``jax.jit`` /
    ``tf.function``): the same ``(seed, step)`` gives the same draw on a backend.

    Args:
        shape: the draw's shape (static).
        seed: the run's integer seed (an int tensor inside compiled loops on JAX / TensorFlow).
        step: the loop index.
        dtype: float dtype.

    Returns:
        A tensor of ``shape``.
    """
    backend = keras.config.backend()
    if isinstance(seed, int):
        seed = seed & 0x7FFFFFFF
    if backend == "jax":
        import jax

        key = jax.random.fold_in(jax.random.PRNGKey(seed), step)
        return jax.random.normal(key, tuple(shape), dtype=dtype)
    if backend == "tensorflow":
        import tensorflow as tf

        pair = tf.stack([tf.cast(seed, tf.int64), tf.cast(step, tf.int64)])
        return tf.random.stateless_normal(tuple(shape), seed=pair, dtype=dtype)
    # Eager backends (torch, numpy): a per-step seed gives the same reproducibility.
    return keras.random.normal(tuple(shape), seed=(seed * 1_000_003 + int(step)) & 0x7FFFFFFF, dtype=dtype)
