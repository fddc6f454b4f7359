"""The Keras callbacks a preset's ``training`` section asks for: early stopping and plateau LR reduction.

``training.early_stopping_patience`` and ``training.reduce_lr_patience`` (0 disables
each) watch one quantity per model family, on the validation data when ``fit`` has
some and on the training data otherwise:

* a scorer: ``mean_mode_accuracy`` (higher is better),
* the conditional VAE: ``reconstruction_loss`` (lower is better),
* diffusion: ``diffusion_loss`` (lower is better).
"""

from __future__ import annotations

import keras

from chroma_keras.errors import PresetError

# Plateau LR reduction halves the learning rate and never goes below this fraction of the start.
REDUCE_LR_FACTOR = 0.5
MIN_LR_FRACTION = 1e-3


def monitored_quantity(model) -> tuple[str, str]:
    """``(metric name, "min" | "max")`` that early stopping and plateau reduction watch for ``model``."""
    name = type(model).__name__
    if name == "Scorer":
        return "mean_mode_accuracy", "max"
    if name == "ConditionalVAE":
        return "reconstruction_loss", "min"
    if name == "PianoRollDiffusion":
        return "diffusion_loss", "min"
    return "loss", "min"


def preset_callbacks(model, has_validation: bool) -> list:
    """Early stopping and plateau LR reduction as ``model.preset_config["training"]`` asks.

    Args:
        model: a model built by ``from_preset`` (it carries ``preset_config``).
        has_validation: whether ``fit`` gets validation data; the callbacks then watch
            ``val_<metric>``.

    Returns:
        A list of ``keras.callbacks.EarlyStopping`` / ``ReduceLROnPlateau`` (empty when
        both patiences are 0).

    Raises:
        PresetError: when the model carries no preset config.
    """
    config = getattr(model, "preset_config", None)
    if not config or "training" not in config:
        raise PresetError(f"preset_callbacks: {type(model).__name__} has no preset_config; build it with from_preset().")
    training = config["training"]
    metric, mode = monitored_quantity(model)
    monitor = f"val_{metric}" if has_validation else metric
    callbacks = []
    if training.get("early_stopping_patience", 0) > 0:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=monitor, mode=mode, patience=int(training["early_stopping_patience"]), restore_best_weights=True, verbose=1
            )
        )
    if training.get("reduce_lr_patience", 0) > 0:
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor=monitor,
                mode=mode,
                factor=REDUCE_LR_FACTOR,
                patience=int(training["reduce_lr_patience"]),
                min_lr=float(training["learning_rate"]) * MIN_LR_FRACTION,
                verbose=1,
            )
        )
    return callbacks


__all__ = ["monitored_quantity", "preset_callbacks"]
