"""Pretrained backbones built natively in Keras, and converters from their published checkpoints.

See :mod:`.registry` for the converted-directory format and :mod:`.checkpoint`
for reading safetensors / PyTorch files. Nothing here downloads anything.
"""

from chroma_keras.pretrained.checkpoint import StateDictLoader, read_checkpoint, read_reference_config
from chroma_keras.pretrained.registry import (
    PretrainedArchitecture,
    architecture_names,
    convert_checkpoint,
    get_architecture,
    is_converted_directory,
    load_converted,
    load_pretrained,
    pretrained_presets,
    register_architecture,
    save_converted,
)

__all__ = [
    "PretrainedArchitecture",
    "StateDictLoader",
    "architecture_names",
    "convert_checkpoint",
    "get_architecture",
    "is_converted_directory",
    "load_converted",
    "load_pretrained",
    "pretrained_presets",
    "read_checkpoint",
    "read_reference_config",
    "register_architecture",
    "save_converted",
]
