"""Train / validation / test splits, grouped by song by default.

Concept text and rebracketing fields are song-level, so a segment-level split
leaks each song into validation. The default groups segments by song and
stratifies songs by colour, so every colour with enough songs appears in each
part.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import numpy as np

from chroma_keras.errors import DataError

SPLIT_NAMES = ("train", "validation", "test")


def _check_fractions(validation_fraction, test_fraction):
    if not (0 <= validation_fraction < 1 and 0 <= test_fraction < 1 and validation_fraction + test_fraction < 1):
        raise DataError(
            "validation_fraction and test_fraction must be in [0, 1) and sum to less than 1. "
            f"Received: validation_fraction={validation_fraction}, test_fraction={test_fraction}"
        )


def split_by_song(
    song_ids: Sequence[str],
    colours: Sequence[str] | None = None,
    validation_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Split segment indices so that no song is in two parts.

    Songs are grouped by colour (when ``colours`` is given) and each colour's
    songs are shuffled and divided by the fractions; a colour with at least
    three songs gives at least one song to each non-empty part.

    Returns:
        ``{"train": idx, "validation": idx, "test": idx}``, sorted int arrays.
    """
    _check_fractions(validation_fraction, test_fraction)
    song_ids = list(song_ids)
    colours = list(colours) if colours is not None else ["all"] * len(song_ids)
    if len(colours) != len(song_ids):
        raise DataError(f"Got {len(colours)} colours for {len(song_ids)} segments.")
    song_colour: dict[str, str] = {}
    for song, colour in zip(song_ids, colours):
        song_colour.setdefault(song, colour)
    by_colour: dict[str, list[str]] = defaultdict(list)
    for song, colour in song_colour.items():
        by_colour[colour].append(song)
    rng = np.random.default_rng(seed)
    part_of_song: dict[str, str] = {}
    for colour in sorted(by_colour):
        songs = sorted(by_colour[colour])
        rng.shuffle(songs)
        n = len(songs)
        n_val = int(round(validation_fraction * n))
        n_test = int(round(test_fraction * n))
        if n >= 3:
            n_val = max(n_val, 1 if validation_fraction > 0 else 0)
            n_test = max(n_test, 1 if test_fraction > 0 else 0)
        n_val = min(n_val, max(n - 1, 0))
        n_test = min(n_test, max(n - 1 - n_val, 0))
        for i, song in enumerate(songs):
            part_of_song[song] = "validation" if i < n_val else "test" if i < n_val + n_test else "train"
    parts = {name: [] for name in SPLIT_NAMES}
    for index, song in enumerate(song_ids):
        parts[part_of_song[song]].append(index)
    return {name: np.asarray(idx, dtype=np.int64) for name, idx in parts.items()}


def split_by_segment(num_segments: int, validation_fraction=0.15, test_fraction=0.15, seed=0) -> dict[str, np.ndarray]:
    """A random segment-level split (leaks songs across parts; use only when asked for)."""
    _check_fractions(validation_fraction, test_fraction)
    order = np.random.default_rng(seed).permutation(num_segments)
    n_val = int(round(validation_fraction * num_segments))
    n_test = int(round(test_fraction * num_segments))
    return {
        "validation": np.sort(order[:n_val]),
        "test": np.sort(order[n_val : n_val + n_test]),
        "train": np.sort(order[n_val + n_test :]),
    }
