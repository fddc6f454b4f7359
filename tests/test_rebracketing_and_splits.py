"""Rebracketing features and song-grouped splits."""

import json
import math

import numpy as np
import pytest

from chroma_keras import conditioning, rebracketing
from chroma_keras.data.splits import split_by_segment, split_by_song
from chroma_keras.errors import DataError, ModelInputError


def test_rebracketing_features_golden():
    payload = json.dumps({"rebracketing_type": "spatial", "rebracketing_intensity": 4.0, "boundary_fluidity_score": 0.25})
    features = rebracketing.rebracketing_features(payload)
    expected = np.zeros(rebracketing.FEATURE_SIZE, np.float32)
    expected[0] = math.log1p(4.0) / math.log1p(20.0)
    expected[5] = 0.25
    expected[6 + rebracketing.REBRACKETING_TYPES.index("spatial")] = 1.0
    expected[rebracketing.PRESENCE_INDEX] = 1.0
    np.testing.assert_allclose(features, expected, atol=1e-7)
    np.testing.assert_array_equal(rebracketing.rebracketing_features(None), np.zeros(rebracketing.FEATURE_SIZE))
    np.testing.assert_array_equal(rebracketing.rebracketing_features(""), np.zeros(rebracketing.FEATURE_SIZE))


def test_rebracketing_errors_name_the_segment():
    with pytest.raises(DataError, match="01_01_seg_0001_track_01: training_data is not valid JSON"):
        rebracketing.rebracketing_features("{bad", source="01_01_seg_0001_track_01")
    with pytest.raises(DataError, match="seg_x: rebracketing_coverage must be in \\[0, 1\\]. Received: 1.5"):
        rebracketing.rebracketing_features({"rebracketing_coverage": 1.5}, source="seg_x")
    with pytest.raises(DataError, match="must be a number"):
        rebracketing.rebracketing_features({"rebracketing_intensity": "high"})
    with pytest.raises(DataError, match="Unknown rebracketing field 'intensity'"):
        rebracketing.features_from_kwargs(intensity=3)


def test_condition_arrays_shapes_and_errors():
    arrays = conditioning.condition_arrays(["Red", None], 2, [{"rebracketing_intensity": 1.0}, None])
    assert arrays["modes"].shape == (2, 9) and arrays["rebracketing"].shape == (2, rebracketing.FEATURE_SIZE)
    assert arrays["rebracketing"][1].sum() == 0 and arrays["rebracketing"][0, -1] == 1
    with pytest.raises(ModelInputError, match="rebracketing array must have shape"):
        conditioning.condition_arrays("Red", 2, np.zeros((3, rebracketing.FEATURE_SIZE)))


def test_split_by_song_never_shares_a_song_and_covers_every_colour():
    songs = [f"{c:02d}_{s:02d}" for c in range(1, 9) for s in range(1, 6) for _ in range(7)]
    colours = [s[:2] for s in songs]
    parts = split_by_song(songs, colours, 0.2, 0.2, seed=3)
    sets = {k: {songs[i] for i in v} for k, v in parts.items()}
    assert not (sets["train"] & sets["validation"]) and not (sets["train"] & sets["test"])
    assert not (sets["validation"] & sets["test"])
    assert sum(len(v) for v in parts.values()) == len(songs)
    for part in sets.values():
        assert {s[:2] for s in part} == {f"{c:02d}" for c in range(1, 9)}
    again = split_by_song(songs, colours, 0.2, 0.2, seed=3)
    assert all(np.array_equal(parts[k], again[k]) for k in parts)


def test_split_errors_and_segment_split():
    with pytest.raises(DataError, match="sum to less than 1"):
        split_by_song(["a"], None, 0.6, 0.5)
    parts = split_by_segment(100, 0.1, 0.2, seed=0)
    assert [len(parts[k]) for k in ("train", "validation", "test")] == [70, 10, 20]
