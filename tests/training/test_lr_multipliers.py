"""Per-variable learning-rate multipliers: exact first-step ratios against the plain optimizer, and the scorer's encoder multiplier."""

import keras
import numpy as np
import pytest

import chroma_keras as ck
from chroma_keras.errors import ModelInputError
from chroma_keras.training.lr_multipliers import MultipliedAdam, MultipliedSGD, with_learning_rate_multipliers


def _model():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="tanh", name="first"), keras.layers.Dense(1, name="second")])


def _one_step(optimizer, multiplier=None):
    model = _model()
    if multiplier is not None:
        optimizer = with_learning_rate_multipliers(optimizer, lambda: [(v, multiplier) for v in model.get_layer("first").trainable_variables])
    model.compile(optimizer=optimizer, loss="mse")
    before = [np.array(w) for w in model.get_weights()]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 3)).astype("float32")
    model.fit(x, x.sum(axis=1, keepdims=True), batch_size=16, epochs=1, shuffle=False, verbose=0)
    return [after - start for after, start in zip(model.get_weights(), before)], optimizer


@pytest.mark.parametrize("make", [lambda: keras.optimizers.Adam(0.01), lambda: keras.optimizers.SGD(0.1, momentum=0.9), lambda: keras.optimizers.AdamW(0.01, weight_decay=0.0)])
@pytest.mark.parametrize("multiplier", [0.0, 0.25, 3.0])
def test_first_step_of_the_multiplied_variables_scales_exactly(make, multiplier):
    plain, _ = _one_step(make())
    scaled, optimizer = _one_step(make(), multiplier)
    assert type(optimizer).__name__.startswith("Multiplied")
    # first/kernel, first/bias scale by the multiplier; second/kernel, second/bias are untouched by it.
    # Adam's first step is lr * g / (|g| + eps) per weight and SGD's is lr * g, both linear in lr.
    # The deltas are differences of float32 weights of magnitude < 1, so each carries up to ~6e-8 rounding.
    for i in (0, 1):
        np.testing.assert_allclose(scaled[i], multiplier * plain[i], rtol=1e-5, atol=1.2e-7)
    for i in (2, 3):
        np.testing.assert_allclose(scaled[i], plain[i], rtol=1e-6, atol=1.2e-7)
    assert np.abs(plain[0]).max() > 1e-4  # the comparison is not between zeros


def test_only_adam_adamw_and_sgd_can_be_converted():
    with pytest.raises(ModelInputError, match="support Adam, AdamW and SGD. Received: RMSprop"):
        with_learning_rate_multipliers(keras.optimizers.RMSprop(0.01), lambda: [])
    optimizer = MultipliedSGD(0.1)
    assert with_learning_rate_multipliers(optimizer, lambda: []) is optimizer


TINY = {"model.midi_encoder.filters": [4, 4, 4], "model.midi_encoder.hidden_dim": 8}


def test_a_scorer_with_multiplier_zero_trains_its_heads_but_not_its_encoder(tmp_path):
    from chroma_keras import zoo
    from chroma_keras.data.demo_corpus import write_demo_corpus
    from chroma_keras.demo import train_on_corpus

    scorer = ck.from_preset("scorer_midi_only", **TINY, **{"model.scorer.encoder_learning_rate_multiplier": 0.0})
    assert isinstance(scorer.optimizer, MultipliedAdam)
    encoder = [np.array(v) for v in scorer.encoders["midi"].trainable_variables]
    head = np.array(scorer.colour_head.kernel)
    corpus = write_demo_corpus(tmp_path / "c.parquet", songs_per_colour=2, segments_per_song=2)
    train_on_corpus(scorer, str(corpus), epochs=1, verbose=0)
    for before, variable in zip(encoder, scorer.encoders["midi"].trainable_variables):
        np.testing.assert_array_equal(before, np.array(variable))
    assert np.abs(np.array(scorer.colour_head.kernel) - head).max() > 1e-5

    # The multiplier is part of the preset and of the model config, so a reloaded scorer keeps it.
    reloaded = ck.from_preset(str(zoo.save_to_preset(scorer, tmp_path / "saved")))
    assert reloaded.encoder_learning_rate_multiplier == 0.0 and isinstance(reloaded.optimizer, MultipliedAdam)
    assert type(scorer).from_config(scorer.get_config()).encoder_learning_rate_multiplier == 0.0


def test_default_multiplier_keeps_the_plain_optimizer():
    scorer = ck.from_preset("scorer_midi_only", **TINY)
    assert type(scorer.optimizer) is keras.optimizers.Adam or type(scorer.optimizer).__name__ == "Adam"
