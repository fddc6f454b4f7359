"""Train several scorer presets on one corpus and compare them on held-out segments, with a leakage audit.

:func:`compare_scorers` trains each preset twice on the same corpus: once with the
song-grouped split (``training.split: song``; no song is in both training and test)
and once with a random segment-level split (``training.split: segment``; segments of
one song land on both sides). It evaluates each on its own test split and reports
per-axis mode accuracy, colour accuracy and macro-F1. The segment-split column is
the leakage audit: how much a leaky split would flatter the scorer.
"""

from __future__ import annotations

import dataclasses

from chroma_keras.errors import DataError

REPORTED = ("temporal_accuracy", "spatial_accuracy", "ontological_accuracy", "mean_mode_accuracy", "colour_accuracy", "colour_macro_f1")
SPLITS = ("song", "segment")


@dataclasses.dataclass
class ComparisonRow:
    """One preset trained with one split: its test metrics (``REPORTED`` keys) and sizes.

    ``shared_songs`` counts the test songs that also have segments in the training split
    (0 for the song-grouped split; most songs under the segment split).
    """

    preset: str
    split: str
    metrics: dict
    test_segments: int
    epochs: int
    shared_songs: int


def compare_scorers(presets, corpus, epochs: int | None = None, overrides: dict | None = None, progress=None) -> list[ComparisonRow]:
    """Train and test each preset with the song-grouped and the segment-level split.

    Args:
        presets: scorer preset names (or paths).
        corpus: a segment parquet, folder or ``"demo"``.
        epochs: training epochs (default: each preset's ``training.epochs``).
        overrides: dotted preset overrides (e.g. smaller widths), applied to each preset that has
            the key's section (see :func:`applicable_overrides`).
        progress: called with each finished :class:`ComparisonRow`.

    Returns:
        rows in ``presets`` order, the song split first for each.

    Raises:
        DataError: when a split leaves no test segments.
    """
    from chroma_keras import zoo
    from chroma_keras.demo import train_on_corpus

    from chroma_keras import config

    rows = []
    for preset in presets:
        applicable = applicable_overrides(config.load_preset_config(preset), overrides or {})
        for split in SPLITS:
            model = zoo.from_preset(preset, **applicable, **{"training.split": split})
            history, datasets = train_on_corpus(model, corpus, epochs=epochs, verbose=0)
            if datasets["test"] is None:
                raise DataError(f"compare: the {split} split of {corpus} leaves no test segments for {preset}.")
            metrics = model.evaluate(datasets["test"], verbose=0, return_dict=True)
            row = ComparisonRow(
                preset=preset,
                split=split,
                metrics={k: float(metrics[k]) for k in REPORTED},
                test_segments=datasets["test"].num_examples,
                epochs=len(history.history["loss"]),
                shared_songs=len(set(datasets["test"].source.song_ids()) & set(datasets["train"].source.song_ids())),
            )
            rows.append(row)
            if progress:
                progress(row)
    return rows


def applicable_overrides(resolved: dict, overrides: dict) -> dict:
    """The dotted overrides whose section exists in a resolved preset.

    One ``--set model.midi_encoder.hidden_dim=8`` for all presets must shrink the MIDI
    encoders, not give ``scorer_text_only`` a MIDI encoder it never had.
    """
    kept = {}
    for key, value in overrides.items():
        section = resolved
        for part in key.split(".")[:-1]:
            section = section.get(part) if isinstance(section, dict) else None
        if isinstance(section, dict):
            kept[key] = value
    return kept


def comparison_table(rows) -> str:
    """The comparison as Markdown: one row per preset, song-split metrics and the segment split's for contrast."""
    by_preset: dict = {}
    for row in rows:
        by_preset.setdefault(row.preset, {})[row.split] = row
    lines = [
        "| preset | temporal | spatial | ontological | mean mode | colour | colour macro-F1 | mean mode, segment split (leaky) | test segments (song / segment) | test songs seen in training (song / segment) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for preset, splits in by_preset.items():
        song, segment = splits.get("song"), splits.get("segment")
        cells = [f"{song.metrics[k]:.3f}" for k in REPORTED] if song else [""] * len(REPORTED)
        leaky = f"{segment.metrics['mean_mode_accuracy']:.3f}" if segment else ""
        sizes = f"{song.test_segments if song else ''} / {segment.test_segments if segment else ''}"
        shared = f"{song.shared_songs if song else ''} / {segment.shared_songs if segment else ''}"
        lines.append(f"| {preset} | " + " | ".join(cells) + f" | {leaky} | {sizes} | {shared} |")
    return "\n".join(lines)


__all__ = ["ComparisonRow", "applicable_overrides", "compare_scorers", "comparison_table"]
