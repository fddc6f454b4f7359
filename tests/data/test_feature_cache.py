"""The per-segment feature cache: stable config hashes, staleness, atomic writes, bad input."""

import hashlib
import os

import numpy as np
import pytest

from chroma_keras.data import feature_cache
from chroma_keras.data.feature_cache import FeatureCache, canonical_config_json, config_hash, entry_name
from chroma_keras.errors import DataError

CONFIG = {"sample_rate": 16000, "n_mels": 64, "window": [1024, 256], "normalise": True}


def test_config_hash_is_the_sha256_of_canonical_json():
    assert canonical_config_json({"b": 1, "a": [1, 2.5, None]}) == '{"a":[1,2.5,null],"b":1}'
    expected = hashlib.sha256(b'{"a":[1,2.5,null],"b":1}').hexdigest()[:16]
    assert config_hash({"b": 1, "a": [1, 2.5, None]}) == expected
    # Key order, tuples vs lists and numpy scalars do not change the hash; values do.
    same = {"normalise": True, "window": (np.int64(1024), 256), "n_mels": np.int32(64), "sample_rate": 16000}
    assert config_hash(same) == config_hash(CONFIG)
    assert config_hash({**CONFIG, "n_mels": 128}) != config_hash(CONFIG)
    assert config_hash({"x": {"y": 1}}) != config_hash({"x": {"y": 1.5}})


def test_round_trip_is_exact(tmp_path):
    cache = FeatureCache(tmp_path, CONFIG)
    arrays = {
        "mel": np.random.default_rng(0).standard_normal((64, 10)).astype(np.float32),
        "tokens": np.arange(7, dtype=np.int16),
        "text": np.array(["a", "bc"]),
    }
    assert cache.get("s1") is None and "s1" not in cache
    cache.put("s1", arrays)
    got = cache.get("s1")
    assert set(got) == set(arrays) and "s1" in cache
    for name, value in arrays.items():
        assert got[name].dtype == value.dtype
        np.testing.assert_array_equal(got[name], value)
    assert (cache.hits, cache.misses) == (1, 1)
    assert (tmp_path / cache.config_hash / "config.json").read_text() == canonical_config_json(CONFIG)


def test_other_config_never_reuses_entries(tmp_path):
    old = FeatureCache(tmp_path, CONFIG)
    old.put("s1", {"mel": np.zeros(3, np.float32)})
    new = FeatureCache(tmp_path, {**CONFIG, "n_mels": 128})
    assert new.directory != old.directory and new.get("s1") is None
    calls = []

    def compute():
        calls.append(1)
        return {"mel": np.ones(3, np.float32)}

    np.testing.assert_array_equal(new.get_or_compute("s1", compute)["mel"], np.ones(3))
    np.testing.assert_array_equal(new.get_or_compute("s1", compute)["mel"], np.ones(3))
    assert len(calls) == 1
    np.testing.assert_array_equal(old.get("s1")["mel"], np.zeros(3))  # the old entry is untouched
    # An entry file copied in from another config's folder is not trusted either.
    os.replace(old.path("s1"), new.path("s2"))
    assert new.get("s2") is None


def test_crash_mid_write_leaves_the_previous_entry(tmp_path, monkeypatch):
    cache = FeatureCache(tmp_path, CONFIG)
    cache.put("s1", {"mel": np.zeros(4, np.float32)})

    def crash(handle, **arrays):
        handle.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(feature_cache.np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        cache.put("s1", {"mel": np.ones(4, np.float32)})
    with pytest.raises(KeyboardInterrupt):
        cache.put("s2", {"mel": np.ones(4, np.float32)})
    monkeypatch.undo()
    np.testing.assert_array_equal(cache.get("s1")["mel"], np.zeros(4))
    assert cache.get("s2") is None
    assert sorted(p.name for p in cache.directory.iterdir()) == ["config.json", "s1.npz"]  # no temp files left


def test_damaged_entry_is_a_miss_and_is_recomputed(tmp_path):
    cache = FeatureCache(tmp_path, CONFIG)
    cache.put("s1", {"mel": np.arange(100, dtype=np.float32)})
    data = cache.path("s1").read_bytes()
    cache.path("s1").write_bytes(data[: len(data) // 2])
    assert cache.get("s1") is None
    out = cache.get_or_compute("s1", lambda: {"mel": np.arange(100, dtype=np.float32)})
    np.testing.assert_array_equal(cache.get("s1")["mel"], out["mel"])


def test_unsafe_ids_are_hashed(tmp_path):
    assert entry_name("01_01_seg_0001_track_01") == "01_01_seg_0001_track_01.npz"
    unsafe = "../songs/01 01"
    assert entry_name(unsafe) == "~" + hashlib.sha1(unsafe.encode()).hexdigest() + ".npz"
    cache = FeatureCache(tmp_path, CONFIG)
    cache.put(unsafe, {"x": np.ones(2)})
    assert cache.path(unsafe).parent == cache.directory
    np.testing.assert_array_equal(cache.get(unsafe)["x"], np.ones(2))


def test_bad_input_raises(tmp_path):
    with pytest.raises(DataError, match="NaN/Inf are not allowed"):
        config_hash({"x": float("nan")})
    with pytest.raises(DataError, match=r"key 1 at top level must be a string"):
        config_hash({1: "a"})
    with pytest.raises(DataError, match=r"audio.fn has type object"):
        config_hash({"audio": {"fn": object()}})
    with pytest.raises(DataError, match="must be a mapping"):
        config_hash([1, 2])
    cache = FeatureCache(tmp_path, CONFIG)
    with pytest.raises(DataError, match=r"s1: feature 'x' is an object array"):
        cache.put("s1", {"x": np.array([object()])})
    with pytest.raises(DataError, match=r"s1: feature name '__segment_id__'"):
        cache.put("s1", {"__segment_id__": np.ones(1)})
    with pytest.raises(DataError, match="s1: feature cache entries must be a non-empty mapping"):
        cache.put("s1", {})
    (cache.directory / "config.json").write_text('{"other":1}')
    with pytest.raises(DataError, match="holds another config"):
        FeatureCache(tmp_path, CONFIG)
