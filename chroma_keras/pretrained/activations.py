"""The activations published configs name (``hidden_act``), as Keras functions; one table for every port."""

from __future__ import annotations

import keras

from chroma_keras.errors import CheckpointError

# Hugging Face activation name -> the Keras function computing it ("gelu" is the exact, erf-based GELU).
REFERENCE_ACTIVATIONS = {
    "gelu": lambda x: keras.activations.gelu(x, approximate=False),
    "gelu_new": lambda x: keras.activations.gelu(x, approximate=True),
    "gelu_pytorch_tanh": lambda x: keras.activations.gelu(x, approximate=True),
    "relu": keras.activations.relu,
    "silu": keras.activations.silu,
    "swish": keras.activations.silu,
    "tanh": keras.activations.tanh,
}


def reference_activation(name: str, key: str = "hidden_act"):
    """The activation called ``name`` in a published config.

    Args:
        name: ``"gelu"`` (exact), ``"gelu_new"``, ``"relu"``, ``"silu"``, ...
        key: the config key that named it, for the error message.

    Returns:
        A function of one tensor.

    Raises:
        CheckpointError: an activation we do not implement.
    """
    if name not in REFERENCE_ACTIVATIONS:
        raise CheckpointError(f"{key}={name!r}: unsupported activation; expected one of {sorted(REFERENCE_ACTIVATIONS)}.")
    return REFERENCE_ACTIVATIONS[name]
