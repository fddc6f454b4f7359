"""Preset configs: the schema, YAML loading with ``extends``, overrides and validation.

>>> from chroma_keras.config import load_preset_config
>>> config = load_preset_config("cvae_chromatic", overrides=["model.vae.latent_dim=16"])
>>> config["model"]["vae"]["latent_dim"]
16

See ``docs/presets.md`` for the schema, the override forms and the error messages.
This package is pure Python (PyYAML only): it never imports Keras.
"""

from chroma_keras.config.loader import (
    PRESET_FILENAME,
    PRESETS_DIR,
    apply_overrides,
    dump_config,
    get_path,
    list_builtin_presets,
    load_preset_config,
    parse_overrides,
    plain_copy,
    resolve_preset_path,
    validate_config,
)
from chroma_keras.config.schema import SCHEMA

__all__ = [
    "PRESETS_DIR",
    "PRESET_FILENAME",
    "SCHEMA",
    "apply_overrides",
    "dump_config",
    "get_path",
    "list_builtin_presets",
    "load_preset_config",
    "parse_overrides",
    "plain_copy",
    "resolve_preset_path",
    "validate_config",
]
