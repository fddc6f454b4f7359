"""training.lr_schedule: cosine decay with warmup over the run's length, and its preset errors."""

import keras
import numpy as np
import pytest

import chroma_keras as ck
from chroma_keras import conditioning, zoo
from chroma_keras.errors import PresetError

TRAINING = {"optimizer": "adam", "learning_rate": 0.01, "lr_schedule": "cosine", "warmup_steps": 10}


def _lr(optimizer, step):
    """The optimizer's scheduled learning rate at ``step``."""
    return float(keras.ops.convert_to_numpy(optimizer._learning_rate(step)))


def test_cosine_with_warmup_golden_values():
    optimizer = zoo.build_optimizer(TRAINING, total_steps=110)
    # Linear warmup from 0 to the peak over 10 steps, then cosine over 100 steps down to 1% of the peak.
    assert _lr(optimizer, 0) == pytest.approx(0.0, abs=1e-9)
    assert _lr(optimizer, 5) == pytest.approx(0.005, rel=1e-5)
    assert _lr(optimizer, 10) == pytest.approx(0.01, rel=1e-5)
    halfway = 0.01 * (0.01 + 0.99 * 0.5 * (1 + np.cos(np.pi * 0.5)))
    assert _lr(optimizer, 60) == pytest.approx(halfway, rel=1e-5)
    assert _lr(optimizer, 110) == pytest.approx(0.0001, rel=1e-4)
    # Without the run's length the rate stays constant.
    assert float(keras.ops.convert_to_numpy(zoo.build_optimizer(TRAINING).learning_rate)) == pytest.approx(0.01)


def test_compile_for_run_spans_the_schedule_over_fit(tiny_vae):
    keras.utils.set_random_seed(0)
    model = ck.from_preset("cvae_chromatic", **tiny_vae, **{"training.lr_schedule": "cosine", "training.learning_rate": 0.01})
    zoo.compile_for_run(model, steps_per_epoch=2, epochs=3)
    x = {"piano_roll": (np.random.default_rng(0).random((16, 8, 8)) > 0.8).astype("float32"), **conditioning.condition_arrays("Red", 16)}
    model.fit(x, batch_size=8, epochs=3, verbose=0)
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 6
    assert _lr(model.optimizer, 6) == pytest.approx(0.0001, rel=1e-4)  # the end of the decay


def test_schedule_errors_name_the_keys():
    with pytest.raises(PresetError, match="training.warmup_steps: a warmup needs training.lr_schedule: cosine"):
        zoo.build_optimizer({**TRAINING, "lr_schedule": "constant"})
    with pytest.raises(PresetError, match="leave nothing"):
        zoo.build_optimizer(TRAINING, total_steps=10)
    with pytest.raises(PresetError, match="training.reduce_lr_patience"):
        zoo.build_optimizer({**TRAINING, "reduce_lr_patience": 2})
