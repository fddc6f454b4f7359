"""chroma_keras: Keras 3 multimodal music models conditioned on chromatic modes.

Quick start:

>>> import chroma_keras as ck
>>> [name for name, _ in ck.list_presets()]
['cvae_chromatic']
>>> model = ck.from_preset("cvae_chromatic")
>>> rolls = model.generate(condition="Red", num_samples=2, seed=0)

Importing the package is cheap: Keras (and its backend) load on first use of
the zoo functions, so data and config tools work without a backend.
"""

__version__ = "0.1.0"

from chroma_keras import errors, modes, rebracketing
from chroma_keras.errors import ChromaKerasError

_ZOO_NAMES = ("from_preset", "list_presets", "save_to_preset")

__all__ = ["ChromaKerasError", "errors", "modes", "rebracketing", *_ZOO_NAMES]


def __getattr__(name):
    if name in _ZOO_NAMES:
        from chroma_keras import zoo

        return getattr(zoo, name)
    raise AttributeError(f"module 'chroma_keras' has no attribute {name!r}")
