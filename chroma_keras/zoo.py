"""The model zoo: build models from YAML presets, list presets, save models as presets.

A preset is a YAML file (built-in ones ship in ``chroma_keras/presets/``) or a
directory holding ``preset.yaml``, ``model.weights.h5`` and ``metadata.json``
(what :func:`save_to_preset` writes).
"""

from __future__ import annotations

import datetime
import json
import pathlib

import keras

from chroma_keras import config as preset_config
from chroma_keras.errors import PresetError

WEIGHTS_FILENAME = "model.weights.h5"
# A cosine schedule ends at this fraction of the peak learning rate.
COSINE_FINAL_FRACTION = 0.01
METADATA_FILENAME = "metadata.json"


def _model_classes():
    # Imported lazily so `chroma_keras.list_presets()` does not build any backend state.
    from chroma_keras.models.chromatic_gpt import ChromaticGPT
    from chroma_keras.models.conditional_vae import ConditionalVAE
    from chroma_keras.models.pianoroll_diffusion import PianoRollDiffusion
    from chroma_keras.models.scorer import Scorer

    # A preset without a generator (model.generative.type null) is a scorer.
    return {"vae": ConditionalVAE, "diffusion": PianoRollDiffusion, "autoregressive": ChromaticGPT, None: Scorer}


def list_presets() -> list[tuple[str, str]]:
    """The built-in presets as ``(name, description)`` pairs, sorted by name."""
    return preset_config.list_builtin_presets()


def _weights_path_for(preset_path: pathlib.Path) -> pathlib.Path:
    if preset_path.name == preset_config.PRESET_FILENAME:
        return preset_path.parent / WEIGHTS_FILENAME
    return preset_path.with_name(preset_path.stem + ".weights.h5")


def build_optimizer(training: dict, total_steps: int | None = None):
    """The optimizer a preset's ``training`` section asks for.

    Args:
        training: the resolved ``training`` section.
        total_steps: optimizer steps of the whole run; needed by ``lr_schedule: cosine``
            (without it the learning rate stays constant until the run's length is known,
            see :func:`compile_for_run`).

    Raises:
        PresetError: ``warmup_steps`` with a constant schedule, a warmup as long as the run, or a
            cosine schedule together with plateau reduction.
    """
    name, lr = training["optimizer"], training["learning_rate"]
    schedule, warmup = training.get("lr_schedule", "constant"), int(training.get("warmup_steps", 0))
    if warmup and schedule != "cosine":
        raise PresetError(
            f"training.warmup_steps: a warmup needs training.lr_schedule: cosine. Received: warmup_steps={warmup}, "
            f"lr_schedule={schedule!r}"
        )
    if schedule == "cosine" and training.get("reduce_lr_patience", 0):
        raise PresetError(
            "training.reduce_lr_patience: plateau reduction changes the learning rate a cosine schedule already sets; "
            "use one of them. Received: lr_schedule='cosine', reduce_lr_patience="
            f"{training['reduce_lr_patience']}"
        )
    if schedule == "cosine" and total_steps is not None:
        if warmup >= total_steps:
            raise PresetError(
                f"training.warmup_steps: {warmup} warmup steps leave nothing of a {total_steps}-step run to decay over."
            )
        lr = keras.optimizers.schedules.CosineDecay(
            0.0 if warmup else lr,
            decay_steps=total_steps - warmup,
            alpha=COSINE_FINAL_FRACTION,
            warmup_target=lr if warmup else None,
            warmup_steps=warmup,
        )
    steps = training.get("gradient_accumulation_steps", 1)
    accumulation = {"gradient_accumulation_steps": steps} if steps > 1 else {}
    if name == "adam":
        return keras.optimizers.Adam(lr, **accumulation)
    if name == "adamw":
        return keras.optimizers.AdamW(lr, **accumulation)
    return keras.optimizers.SGD(lr, momentum=0.9, **accumulation)


def compile_for_run(model, steps_per_epoch: int, epochs: int) -> None:
    """Recompile a preset-built model for a run of known length, so ``lr_schedule: cosine`` spans it.

    A no-op for a constant schedule. ``chroma-keras train`` and the demo call it; call it
    before your own ``fit`` when the preset asks for a cosine schedule.
    """
    training = model.preset_config["training"]
    if training.get("lr_schedule", "constant") == "constant":
        return
    steps = max(1, int(steps_per_epoch) * int(epochs) // max(1, training.get("gradient_accumulation_steps", 1)))
    model.compile(optimizer=build_optimizer(training, total_steps=steps))


def build_model(config: dict, source: str = "preset"):
    """Build (and compile) the model a resolved preset dict describes."""
    kind = config["model"].get("generative", {}).get("type")
    classes = _model_classes()
    if kind not in classes:
        raise PresetError(
            f"{source}: model.generative.type: no model in this version of chroma_keras implements "
            f"{kind!r}. Received: {kind!r}. Available: {sorted(k for k in classes if k)} (null: a scorer)."
        )
    model = classes[kind].from_preset_config(config)
    model.compile(optimizer=build_optimizer(config["training"]))
    model.preset_config = config
    return model


def _build_optimizer_state(model) -> None:
    # A weights file holds the optimizer's slots too; building them on both sides
    # makes saved and loaded optimizers match (training resumes with its moments).
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and not optimizer.built:
        optimizer.build(model.trainable_variables)


def from_preset(name_or_path, load_weights: bool = True, weights=None, **overrides):
    """Build a model from a built-in preset name, a YAML file or a saved preset directory.

    Args:
        name_or_path: ``"cvae_chromatic"``, a path to a ``.yaml`` file, a
            directory written by :func:`save_to_preset`, a pretrained backbone
            preset (``"encodec_24khz"``, see :mod:`chroma_keras.pretrained`) or a
            directory written by ``chroma-keras convert``.
        load_weights: load the preset's weights when it has them (a saved preset
            directory, or a built-in preset that ships weights). False gives a
            freshly initialised model of the same architecture.
        weights: path of a ``.weights.h5`` file to load instead; for a
            pretrained backbone preset also a published checkpoint
            (safetensors / PyTorch file or Hugging Face directory), converted
            on load.
        **overrides: preset overrides, e.g. ``latent_dim=16``,
            ``**{"model.vae.beta": 0.5}`` or ``model__vae__beta=0.5``.

    Returns:
        A compiled Keras model (e.g. :class:`chroma_keras.models.ConditionalVAE`)
        with ``model.preset_config`` holding the resolved preset.

    Example:
    >>> import chroma_keras as ck
    >>> model = ck.from_preset("cvae_chromatic", latent_dim=32)
    >>> model.generate(condition="Red", num_samples=2, seed=0).shape
    (2, 72, 128)
    """
    pretrained = _pretrained_model(name_or_path, load_weights, weights, overrides)
    if pretrained is not None:
        return pretrained
    path = preset_config.resolve_preset_path(name_or_path)
    config = preset_config.load_preset_config(name_or_path, overrides=overrides or None)
    model = build_model(config, source=str(path))
    weights_path = pathlib.Path(weights) if weights is not None else _weights_path_for(path)
    if weights is not None and not weights_path.is_file():
        raise PresetError(f"weights={str(weights_path)!r}: no such weights file.")
    if load_weights and weights_path.is_file():
        _build_optimizer_state(model)
        try:
            model.load_weights(weights_path)
        except ValueError as exc:
            raise PresetError(
                f"{weights_path}: these weights do not fit the architecture of {str(path)!r} "
                f"(with overrides {overrides or {}}): {exc}"
            ) from exc
    model.preset_path = str(path)
    return model


def _pretrained_model(name_or_path, load_weights, weights, overrides):
    """A pretrained backbone when ``name_or_path`` names one (or a converted directory), else None."""
    from chroma_keras import pretrained

    is_directory = pretrained.is_converted_directory(name_or_path)
    if not is_directory and str(name_or_path) not in pretrained.pretrained_presets():
        return None
    if overrides:
        raise PresetError(
            f"{str(name_or_path)!r} is a pretrained backbone: it takes no preset overrides "
            f"(received {sorted(overrides)}); its config comes from the checkpoint."
        )
    if is_directory:
        return pretrained.load_converted(name_or_path, load_weights=load_weights)
    return pretrained.load_pretrained(name_or_path, weights=weights, load_weights=load_weights)


def save_to_preset(model, directory) -> pathlib.Path:
    """Save a model as a preset directory that :func:`from_preset` loads back.

    Writes ``preset.yaml`` (the model's resolved preset, updated with its
    constructor arguments), ``model.weights.h5`` and ``metadata.json``.

    Returns:
        The directory.
    """
    if not hasattr(model, "preset_overrides"):
        raise PresetError(f"save_to_preset: {type(model).__name__} is not a chroma_keras zoo model.")
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    base = getattr(model, "preset_config", None)
    if base is None:
        base = preset_config.load_preset_config("cvae_chromatic")
    base = preset_config.plain_copy(base)
    config = preset_config.apply_overrides(base, model.preset_overrides(), source="save_to_preset")
    config = preset_config.validate_config(config, source=str(directory / preset_config.PRESET_FILENAME))
    (directory / preset_config.PRESET_FILENAME).write_text(preset_config.dump_config(config))
    _build_optimizer_state(model)
    model.save_weights(directory / WEIGHTS_FILENAME)
    from chroma_keras import __version__

    metadata = {
        "chroma_keras_version": __version__,
        "keras_version": keras.__version__,
        "backend": keras.config.backend(),
        "class_name": type(model).__name__,
        "parameter_count": int(model.count_params()),
        "date_saved": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    (directory / METADATA_FILENAME).write_text(json.dumps(metadata, indent=2) + "\n")
    return directory
