"""Per-modality gradient norms: parameter gradients against a closed form, the imbalance warning, the preset key."""

import importlib.util
import pathlib

import keras
import numpy as np
import pytest

import chroma_keras as ck
from chroma_keras.data import keys
from chroma_keras.errors import ModelInputError
from chroma_keras.training.gradient_norms import (
    GradientImbalanceWarning,
    ModalityGradientNorms,
    group_norms,
    parameter_gradients,
)


def test_parameter_gradients_match_the_closed_form_of_a_linear_least_squares():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 3)).astype("float32")
    t = rng.normal(size=(5, 2)).astype("float32")
    target = keras.ops.convert_to_tensor(t)
    grads = parameter_gradients(model, x, lambda y, _: keras.ops.mean((y - target) ** 2))
    kernel, bias = (np.asarray(w, np.float64) for w in model.get_weights())
    residual = x @ kernel + bias - t
    # d/dW mean((xW + b - t)^2) = 2 / (n * outputs) * x^T r, and the bias gets the column sums.
    np.testing.assert_allclose(grads[0], 2.0 / residual.size * x.T @ residual, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(grads[1], 2.0 / residual.size * residual.sum(axis=0), rtol=1e-5, atol=1e-7)


# The export tests' tiny late-fusion scorer: every encoder kind, small enough for a gradient probe.
_spec = importlib.util.spec_from_file_location("export_cases", pathlib.Path(__file__).parents[1] / "export" / "export_cases.py")
_cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_cases)
SMALL_LATE = _cases.TINY["scorer_late_fusion"]


def _labelled_midi_batch(model, n=4):
    from chroma_keras.models.scorer import example_inputs

    batch = example_inputs(model.preset_config, ["midi"], batch_size=n)
    rng = np.random.default_rng(0)
    batch[keys.PIANO_ROLL] = (rng.random(batch[keys.PIANO_ROLL].shape) < 0.1).astype("float32")
    batch.pop(keys.MODALITY_MASK)
    for axis, key in keys.AXIS_TARGETS.items():
        batch[key] = np.eye(3, dtype="float32")[rng.integers(0, 3, n)]
    batch[keys.CONFIDENCE] = np.ones(n, "float32")
    batch[keys.COLOUR_INDEX] = rng.integers(0, 8, n).astype("int32")
    return batch


def test_a_missing_modality_gets_no_gradient_and_the_callback_warns():
    model = ck.from_preset("scorer_late_fusion", **SMALL_LATE)
    batch = _labelled_midi_batch(model)
    norms = group_norms(model, batch)
    assert set(norms) == {"text", "audio", "midi", "fusion", "heads"}
    # Only MIDI is in the batch: the text and audio encoders are not on the loss' path.
    assert norms["text"] == 0.0 and norms["audio"] == 0.0
    assert norms["midi"] > 0 and norms["fusion"] > 0 and norms["heads"] > 0
    # The group norm is the norm over the group's per-variable gradients.
    grads = parameter_gradients(model, batch, lambda outputs, x: model.weighted_loss(x, outputs))
    by_id = {id(v): g for v, g in zip(model.trainable_variables, grads)}
    midi = np.sqrt(sum(np.sum(by_id[id(v)] ** 2) for v in model.encoders["midi"].trainable_variables))
    np.testing.assert_allclose(norms["midi"], midi, rtol=1e-6)

    callback = ModalityGradientNorms(batch, every_n_steps=1)
    callback.set_model(model)
    with pytest.warns(GradientImbalanceWarning, match="the scorer is learning little from (text|audio)"):
        callback.on_train_batch_end(0)
    logs = {}
    with pytest.warns(GradientImbalanceWarning):
        callback.on_epoch_end(0, logs)
    assert [row["step"] for row in callback.history] == [1, 1] and logs["grad_norm_midi"] == pytest.approx(norms["midi"], rel=1e-6)


def test_the_preset_key_logs_norms_into_the_history(tmp_path):
    from chroma_keras.data.demo_corpus import write_demo_corpus
    from chroma_keras.demo import train_on_corpus

    corpus = write_demo_corpus(tmp_path / "c.parquet", songs_per_colour=2, segments_per_song=2)
    overrides = {"model.midi_encoder.filters": [4, 4, 4], "model.midi_encoder.hidden_dim": 8, "training.batch_size": 8}
    model = ck.from_preset("scorer_midi_only", **overrides, **{"model.scorer.gradient_norm_every_n_steps": 1})
    history, _ = train_on_corpus(model, str(corpus), epochs=2, verbose=0)
    for name in ("midi", "fusion", "heads"):
        values = history.history[f"grad_norm_{name}"]
        assert len(values) == 2 and all(v > 0 for v in values)
    # Off by default: no norms are computed.
    plain, _ = train_on_corpus(ck.from_preset("scorer_midi_only", **overrides), str(corpus), epochs=1, verbose=0)
    assert not any(k.startswith("grad_norm_") for k in plain.history)


def test_bad_callback_settings_are_clear_errors():
    with pytest.raises(ModelInputError, match="every_n_steps >= 0 and imbalance_ratio > 1"):
        ModalityGradientNorms({}, every_n_steps=-1)
    with pytest.raises(ModelInputError, match="imbalance_ratio > 1"):
        ModalityGradientNorms({}, imbalance_ratio=0.5)
