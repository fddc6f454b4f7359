"""Early stopping and plateau LR reduction from a preset's training section."""

import keras
import numpy as np
import pytest

import chroma_keras as ck
from chroma_keras import conditioning
from chroma_keras.errors import PresetError
from chroma_keras.training import monitored_quantity, preset_callbacks


def test_callbacks_follow_the_preset_patiences(tiny_vae):
    model = ck.from_preset("scorer_midi_only", **{"training.early_stopping_patience": 3, "training.reduce_lr_patience": 2})
    stop, plateau = preset_callbacks(model, has_validation=True)
    assert isinstance(stop, keras.callbacks.EarlyStopping) and stop.monitor == "val_mean_mode_accuracy" and stop.patience == 3
    assert isinstance(plateau, keras.callbacks.ReduceLROnPlateau) and plateau.patience == 2 and plateau.factor == 0.5
    assert plateau.min_lr == pytest.approx(model.preset_config["training"]["learning_rate"] * 1e-3)
    assert preset_callbacks(ck.from_preset("scorer_midi_only"), has_validation=True) == []
    vae = ck.from_preset("cvae_chromatic", **tiny_vae, **{"training.early_stopping_patience": 1})
    assert monitored_quantity(vae) == ("reconstruction_loss", "min")
    assert [c.monitor for c in preset_callbacks(vae, has_validation=False)] == ["reconstruction_loss"]


def test_plateau_halves_the_learning_rate_and_early_stopping_ends_training(tiny_vae):
    # A learning rate of 0 cannot improve anything: every epoch is a plateau.
    overrides = {"training.learning_rate": 1e-9, "training.reduce_lr_patience": 1, "training.early_stopping_patience": 3}
    keras.utils.set_random_seed(0)
    model = ck.from_preset("cvae_chromatic", **tiny_vae, **overrides)
    x = {"piano_roll": (np.random.default_rng(0).random((16, 8, 8)) > 0.8).astype("float32"), **conditioning.condition_arrays("Red", 16)}
    history = model.fit(x, batch_size=8, epochs=20, verbose=0, callbacks=preset_callbacks(model, has_validation=False))
    epochs = len(history.history["loss"])
    assert epochs < 20  # stopped early
    # The LR was halved at least once, by exact halvings.
    lr = float(np.asarray(keras.ops.convert_to_numpy(model.optimizer.learning_rate)))
    halvings = np.log2(1e-9 / lr)
    assert 1 <= round(halvings) < epochs and abs(halvings - round(halvings)) < 1e-3


def test_a_model_without_a_preset_is_refused():
    with pytest.raises(PresetError, match="from_preset"):
        preset_callbacks(keras.Sequential([keras.layers.Dense(1)]), has_validation=False)
