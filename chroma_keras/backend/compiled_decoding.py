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
