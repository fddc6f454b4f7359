"""The table ``chroma-keras train`` prints when a run ends: first, best and last epoch."""

from __future__ import annotations

import csv
import json
import pathlib

from chroma_keras.errors import ModelInputError


def read_history(path) -> list[dict]:
    """Rows of a run's ``history.csv``, one per epoch (a redone epoch keeps its last row), in epoch order.

    Raises:
        ModelInputError: when the file is missing or has no ``epoch`` column.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise ModelInputError(f"no training history at {path}")
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        if "epoch" not in (reader.fieldnames or []):
            raise ModelInputError(f"{path} has no 'epoch' column. Columns: {reader.fieldnames}")
        by_epoch = {int(row["epoch"]): row for row in reader}
    return [by_epoch[epoch] for epoch in sorted(by_epoch)]


def training_summary(history_path, best_folder=None) -> str:
    """A Markdown table of the first, best and last epochs of a run.

    Args:
        history_path: the run's ``history.csv`` (Keras' ``CSVLogger``; epochs count from 0).
        best_folder: the :class:`~chroma_keras.training.best_checkpoint.BestCheckpoint` folder,
            whose ``best.json`` names the monitored quantity and the best epoch (counted from 1).

    Returns:
        The table; epochs are shown counted from 1, as Keras prints them.
    """
    rows = read_history(history_path)
    if not rows:
        return "(no epoch finished)"
    record = json.loads((pathlib.Path(best_folder) / "best.json").read_text()) if best_folder else None
    columns = [c for c in ("loss", "val_loss") if c in rows[0]]
    if record and record["monitor"] not in columns:
        columns.append(record["monitor"])
    picked = [("first", rows[0])]
    if record:
        best_row = next((row for row in rows if int(row["epoch"]) + 1 == record["epoch"]), None)
        if best_row is not None:
            picked.append((f"best ({record['mode']} {record['monitor']})", best_row))
    picked.append(("last", rows[-1]))
    lines = ["| | epoch | " + " | ".join(columns) + " |", "|---|---:|" + "---:|" * len(columns)]
    for label, row in picked:
        cells = [_cell(row.get(column)) for column in columns]
        lines.append(f"| {label} | {int(row['epoch']) + 1} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(value) -> str:
    try:
        return f"{float(value):.4f}"
    except (TypeError, ValueError):
        return "" if value is None else str(value)
