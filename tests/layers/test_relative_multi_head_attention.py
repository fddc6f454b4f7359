"""RelativeMultiHeadAttention: the skew against a naive NumPy gather, full-layer parity, masks, saving."""

import keras
import numpy as np
import pytest

from chroma_keras.errors import ModelInputError
from chroma_keras.layers.relative_multi_head_attention import RelativeMultiHeadAttention

TOL = 1e-5


def _naive_relative_logits(query, table, max_relative_position, causal):
    """S_rel the O(L^2 D) way: gather R[h, i, j] = E_r[h, clip(j - i)] and dot with q_i."""
    length = query.shape[2]
    m = max_relative_position
    distance = np.arange(length)[None, :] - np.arange(length)[:, None]  # j - i
    index = (np.clip(distance, 1 - m, 0) if causal else np.clip(distance, 1 - m, m - 1)) + m - 1
    r = table[:, index]  # [h, L, L, d]
    return np.einsum("bhid,hijd->bhij", query, r)


def _reference_attention(x, layer, padding_mask=None):
    """The whole layer in NumPy from its weights (softmax over allowed keys)."""
    n = keras.ops.convert_to_numpy
    qk, qb = n(layer.query_dense.kernel), n(layer.query_dense.bias)
    kk, kb = n(layer.key_dense.kernel), n(layer.key_dense.bias)
    vk, vb = n(layer.value_dense.kernel), n(layer.value_dense.bias)
    ok, ob = n(layer.output_dense.kernel), n(layer.output_dense.bias)
    table = keras.ops.convert_to_numpy(layer.relative_embeddings)
    q = np.einsum("blc,chd->bhld", x, qk) + qb[None, :, None, :]
    k = np.einsum("blc,chd->bhld", x, kk) + kb[None, :, None, :]
    v = np.einsum("blc,chd->bhld", x, vk) + vb[None, :, None, :]
    logits = np.einsum("bhid,bhjd->bhij", q, k) + _naive_relative_logits(q, table, layer.max_relative_position, layer.causal)
    logits = logits / np.sqrt(layer.key_dim)
    allowed = np.ones(logits.shape, bool)
    if padding_mask is not None:
        allowed &= padding_mask.astype(bool)[:, None, None, :]
    if layer.causal:
        allowed &= np.tril(np.ones(logits.shape[-2:], bool))
    logits = np.where(allowed, logits, -np.inf)
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p = p / p.sum(-1, keepdims=True)
    out = np.einsum("bhij,bhjd->bihd", p, v)
    return np.einsum("bihd,hde->bie", out, ok) + ob


def _layer(causal, length=6, hidden=8, heads=2, max_rel=4, seed=0):
    keras.utils.set_random_seed(seed)
    layer = RelativeMultiHeadAttention(heads, hidden // heads, max_rel, causal=causal)
    layer.build((None, length, hidden))
    # Non-zero biases so the reference checks them too.
    for v in layer.weights:
        if "bias" in v.path:
            v.assign(np.random.RandomState(1).randn(*v.shape).astype("float32") * 0.1)
    return layer


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("length,max_rel", [(1, 3), (5, 8), (7, 3), (9, 9)])
def test_skew_matches_naive_gather(causal, length, max_rel):
    layer = _layer(causal, length=length, max_rel=max_rel)
    query = np.random.RandomState(2).randn(3, 2, length, 4).astype("float32")
    got = keras.ops.convert_to_numpy(layer.relative_logits(query))
    want = _naive_relative_logits(query, keras.ops.convert_to_numpy(layer.relative_embeddings), max_rel, causal)
    valid = np.tril(np.ones((length, length), bool)) if causal else np.ones((length, length), bool)
    np.testing.assert_allclose(got[..., valid], want[..., valid], atol=TOL, rtol=0)


@pytest.mark.parametrize("causal", [False, True])
def test_layer_matches_numpy_reference_with_padding(causal):
    layer = _layer(causal, length=6)
    x = np.random.RandomState(3).randn(2, 6, 8).astype("float32")
    mask = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]], "float32")
    got = keras.ops.convert_to_numpy(layer(x, padding_mask=mask))
    want = _reference_attention(x, layer, mask)
    np.testing.assert_allclose(got, want, atol=TOL, rtol=1e-5)


def test_padding_does_not_change_real_positions():
    layer = _layer(False, length=9)
    rng = np.random.RandomState(4)
    real = rng.randn(1, 5, 8).astype("float32")
    padded = np.concatenate([real, rng.randn(1, 4, 8).astype("float32") * 10], axis=1)
    short = keras.ops.convert_to_numpy(layer(real))
    long = keras.ops.convert_to_numpy(layer(padded, padding_mask=np.array([[1] * 5 + [0] * 4])))
    np.testing.assert_allclose(long[:, :5], short, atol=TOL)


def test_causal_ignores_the_future():
    layer = _layer(True, length=6)
    rng = np.random.RandomState(5)
    x = rng.randn(1, 6, 8).astype("float32")
    y = x.copy()
    y[:, 4:] = rng.randn(1, 2, 8)
    a, b = (keras.ops.convert_to_numpy(layer(v)) for v in (x, y))
    np.testing.assert_allclose(a[:, :4], b[:, :4], atol=TOL)
    assert np.abs(a[:, 4:] - b[:, 4:]).max() > 1e-3


def test_relative_positions_make_it_order_aware_and_shift_invariant():
    # With one key per distance, only relative positions matter: a cyclic-free
    # shift of a sequence inside a longer padded window gives the same outputs.
    layer = _layer(False, length=10, max_rel=10)
    rng = np.random.RandomState(6)
    seq = rng.randn(1, 4, 8).astype("float32")
    window = np.zeros((1, 10, 8), "float32")
    mask = np.zeros((1, 10), "float32")
    window[:, 3:7], mask[:, 3:7] = seq, 1
    shifted = keras.ops.convert_to_numpy(layer(window, padding_mask=mask))[:, 3:7]
    direct = keras.ops.convert_to_numpy(layer(seq))
    np.testing.assert_allclose(shifted, direct, atol=TOL)


def test_keras_round_trip(tmp_path):
    inputs = keras.Input((6, 8))
    outputs = RelativeMultiHeadAttention(2, 4, 4, causal=True, dropout=0.1, seed=3, name="rel")(inputs)
    model = keras.Model(inputs, outputs)
    x = np.random.RandomState(7).randn(2, 6, 8).astype("float32")
    path = tmp_path / "rel.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x)), keras.ops.convert_to_numpy(model(x)), atol=1e-6)
    layer = loaded.get_layer("rel")
    assert layer.get_config()["causal"] is True and layer.get_config()["max_relative_position"] == 4
    assert tuple(layer.relative_embeddings.shape) == (2, 4, 4)  # causal: M distances


@pytest.mark.parametrize(
    "kwargs",
    [dict(num_heads=0, key_dim=4, max_relative_position=4), dict(num_heads=2, key_dim=4, max_relative_position=0),
     dict(num_heads=2, key_dim=4, max_relative_position=4, dropout=1.0)],
)
def test_bad_arguments(kwargs):
    with pytest.raises(ModelInputError, match="Received"):
        RelativeMultiHeadAttention(**kwargs)
