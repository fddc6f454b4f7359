"""ModalityDropout: null replacement, dropout statistics, seeding, serialization and bad inputs."""

import keras
import numpy as np
import pytest

from chroma_keras.errors import ModelInputError
from chroma_keras.layers.modality_dropout import ModalityDropout, check_encoded

ALL = ("text", "audio", "midi")


def to_np(x):
    return keras.ops.convert_to_numpy(x)


def test_absent_modalities_get_their_null_embedding_and_present_ones_pass_through():
    layer = ModalityDropout(["audio", "midi"], embedding_dim=4, seed=0)
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(3, 2, 4)).astype("float32")
    vectors[1, 1] = np.nan  # an absent encoder output, even NaN, must not leak
    mask = np.array([[1, 1, 1], [0, 1, 0], [1, 0, 0]], "float32")  # text, audio, midi; text is not ours
    out, presence = layer(vectors, mask)
    out, presence, null = to_np(out), to_np(presence), to_np(layer.null_embeddings)
    np.testing.assert_array_equal(presence, [[1, 1], [1, 0], [0, 0]])
    np.testing.assert_array_equal(out[0], vectors[0])
    np.testing.assert_array_equal(out[1, 0], vectors[1, 0])
    np.testing.assert_array_equal(out[1, 1], null[1])
    np.testing.assert_array_equal(out[2], null)
    assert np.isfinite(out).all()


def test_none_mask_means_all_present():
    layer = ModalityDropout(ALL, embedding_dim=3, seed=0)
    vectors = np.ones((2, 3, 3), "float32")
    out, presence = layer(vectors, None)
    np.testing.assert_array_equal(to_np(presence), np.ones((2, 3)))
    np.testing.assert_array_equal(to_np(out), vectors)


def _presence(layer, mask):
    vectors = np.zeros((mask.shape[0], len(layer.modalities), layer.embedding_dim), "float32")
    return to_np(layer(vectors, mask, training=True)[1])


def test_dropout_rate_matches_the_expected_rate_and_never_drops_a_row_empty():
    rate, rows = 0.3, 20000
    layer = ModalityDropout(ALL, embedding_dim=2, rate=rate, seed=3)
    presence = _presence(layer, np.ones((rows, 3), "float32"))
    # Three droppable modalities: a row loses all three with p = rate**3, then one
    # (uniformly chosen) is restored, so each is dropped with p = rate - rate**3 / 3.
    expected = rate - rate**3 / 3
    np.testing.assert_allclose(1 - presence.mean(axis=0), expected, atol=0.015)  # ~4.7 sigma at 20000 rows
    assert presence.sum(axis=1).min() == 1
    np.testing.assert_allclose((presence.sum(axis=1) == 1).mean(), 3 * rate**2 * (1 - rate) + rate**3, atol=0.015)


def test_exempt_modalities_are_never_dropped_and_others_drop_at_the_rate():
    rate, rows = 0.4, 20000
    layer = ModalityDropout(ALL, embedding_dim=2, rate=rate, exempt_modalities=["text"], seed=5)
    presence = _presence(layer, np.ones((rows, 3), "float32"))
    assert presence[:, 0].min() == 1
    # With an exempt modality present no row needs rescuing: the rate is exact.
    np.testing.assert_allclose(1 - presence[:, 1:].mean(axis=0), rate, atol=0.015)


def test_dropout_never_adds_modalities_and_keeps_a_lone_modality():
    layer = ModalityDropout(ALL, embedding_dim=2, rate=0.9, seed=7)
    mask = np.tile(np.array([[0, 0, 1], [0, 0, 0], [1, 0, 1]], "float32"), (2000, 1))
    presence = _presence(layer, mask)
    assert (presence <= mask).all()
    np.testing.assert_array_equal(presence[0::3], mask[0::3])  # lone MIDI always kept
    np.testing.assert_array_equal(presence[1::3], 0)  # nothing present stays nothing
    # Text and MIDI present: text kept with p = 0.1 + 0.9**2 / 2 = 0.505, and never both dropped.
    assert presence[2::3].sum(axis=1).min() == 1
    np.testing.assert_allclose(presence[2::3, 0].mean(), 0.505, atol=0.05)


def test_no_dropout_at_inference_and_seeded_draws_repeat():
    mask = np.ones((64, 3), "float32")
    vectors = np.zeros((64, 3, 2), "float32")
    layer = ModalityDropout(ALL, embedding_dim=2, rate=0.5, seed=11)
    np.testing.assert_array_equal(to_np(layer(vectors, mask, training=False)[1]), mask)
    first = _presence(ModalityDropout(ALL, embedding_dim=2, rate=0.5, seed=11), mask)
    again = _presence(ModalityDropout(ALL, embedding_dim=2, rate=0.5, seed=11), mask)
    np.testing.assert_array_equal(first, again)
    assert (first == 0).any()
    # Successive calls advance the SeedGenerator: different draws.
    assert (_presence(layer, mask) != _presence(layer, mask)).any()


def test_config_round_trip(tmp_path):
    layer = ModalityDropout(["text", "midi"], embedding_dim=3, rate=0.2, exempt_modalities=["midi"], seed=2, name="md")
    vectors = np.zeros((2, 2, 3), "float32")
    mask = np.array([[1, 0, 0], [0, 0, 1]], "float32")
    expected = to_np(layer(vectors, mask)[0])
    clone = ModalityDropout.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    clone(vectors, mask)
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(to_np(clone(vectors, mask)[0]), expected)

    inputs, mask_in = keras.Input((2, 3)), keras.Input((3,))
    model = keras.Model([inputs, mask_in], layer(inputs, mask_in)[0])
    model.save(tmp_path / "md.keras")
    restored = keras.saving.load_model(tmp_path / "md.keras")
    np.testing.assert_array_equal(to_np(restored([vectors, mask])), expected)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"modalities": ["midi", "audio"]}, "subset of .* in that order"),
        ({"modalities": ["video"]}, "subset of"),
        ({"modalities": []}, "non-empty"),
        ({"rate": 1.0}, r"rate must be in \[0, 1\)"),
        ({"exempt_modalities": ["text"]}, "exempt_modalities"),
    ],
)
def test_bad_constructor_arguments(kwargs, match):
    args = {"modalities": ["audio", "midi"], "embedding_dim": 2, **kwargs}
    with pytest.raises(ModelInputError, match=match):
        ModalityDropout(**args)


def test_bad_call_inputs_name_what_was_expected():
    layer = ModalityDropout(["audio", "midi"], embedding_dim=2)
    with pytest.raises(ModelInputError, match=r"modality_mask must be float \[batch, 3\]"):
        layer(np.zeros((2, 2, 2), "float32"), np.ones((2, 2), "float32"))
    with pytest.raises(ModelInputError, match=r"embeddings must be \[batch, 2, 2\]"):
        layer(np.zeros((2, 3, 2), "float32"), np.ones((2, 3), "float32"))
    with pytest.raises(ModelInputError, match=r"encoded\['midi'\] is missing"):
        check_encoded({"audio": {"embedding": np.zeros((2, 2))}}, ["audio", "midi"], "fusion", need_sequence=False)
    with pytest.raises(ModelInputError, match=r"encoded\['audio'\]\['sequence'\] must be float \[batch, steps, dim\]"):
        check_encoded(
            {"audio": {"embedding": np.zeros((2, 2)), "sequence": np.zeros((2, 2)), "sequence_mask": np.zeros((2, 2))}},
            ["audio"],
            "fusion",
            need_sequence=True,
        )
    with pytest.raises(ModelInputError, match=r"\['sequence_mask'\] must be \[batch, 4\]"):
        check_encoded(
            {"audio": {"embedding": np.zeros((2, 2)), "sequence": np.zeros((2, 4, 2)), "sequence_mask": np.zeros((2, 3))}},
            ["audio"],
            "fusion",
            need_sequence=True,
        )
