"""Keep the weights of a run's best epoch, across interruptions.

``keras.callbacks.ModelCheckpoint(save_best_only=True)`` forgets the best value when a
run restarts, so the first epoch after ``train --resume`` overwrites the best weights
even when it is worse, and it writes the file in place. :class:`BestCheckpoint` stores
the best value and epoch beside the weights in a ``best-epoch-NNNNN`` folder published
with one atomic rename (as :mod:`chroma_keras.training.run_backup` does), and reads
the record back when training starts.
"""

from __future__ import annotations

import json
import math
import pathlib

import keras

from chroma_keras.errors import ModelInputError
from chroma_keras.training.run_backup import publish_epoch, published_epochs, remove_partial

WEIGHTS_FILE = "best.weights.h5"
RECORD_FILE = "best.json"
PREFIX = "best-epoch-"


class BestCheckpoint(keras.callbacks.Callback):
    """Saves the model's weights whenever the monitored quantity improves.

    Args:
        directory: holds one ``best-epoch-NNNNN`` folder with ``best.weights.h5`` and
            ``best.json`` (monitor, mode, value, epoch); created when needed.
        monitor: the log key watched, e.g. ``val_mean_mode_accuracy``.
        mode: ``"min"`` or ``"max"``.
    """

    def __init__(self, directory, monitor: str, mode: str):
        super().__init__()
        if mode not in ("min", "max"):
            raise ModelInputError(f"BestCheckpoint mode must be 'min' or 'max'. Received: mode={mode!r}")
        self.directory = pathlib.Path(directory)
        self.monitor, self.mode = monitor, mode
        self.best_value, self.best_epoch = None, None

    def best_folder(self) -> pathlib.Path | None:
        """The published folder of the best epoch so far, or None before the first save."""
        return best_folder(self.directory)

    def record(self) -> dict | None:
        """The stored best ``{monitor, mode, value, epoch}``, or None before the first save."""
        folder = self.best_folder()
        return json.loads((folder / RECORD_FILE).read_text()) if folder else None

    def on_train_begin(self, logs=None):
        remove_partial(self.directory)
        stored = self.record()
        if stored and stored.get("monitor") == self.monitor:
            self.best_value, self.best_epoch = stored["value"], stored["epoch"]

    def _improved(self, value: float) -> bool:
        if self.best_value is None:
            return True
        return value < self.best_value if self.mode == "min" else value > self.best_value

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            raise ModelInputError(
                f"BestCheckpoint watches {self.monitor!r}, which fit() did not log. Logged: {sorted(logs or {})}"
            )
        value = float(value)
        if math.isnan(value) or not self._improved(value):
            return
        record = {"monitor": self.monitor, "mode": self.mode, "value": value, "epoch": epoch + 1}

        def write(folder):
            self.model.save_weights(str(folder / WEIGHTS_FILE))
            (folder / RECORD_FILE).write_text(json.dumps(record) + "\n")

        publish_epoch(self.directory, PREFIX, epoch + 1, write)
        self.best_value, self.best_epoch = value, epoch + 1


def best_folder(directory) -> pathlib.Path | None:
    """The published ``best-epoch-NNNNN`` folder in ``directory``, or None when no epoch was saved."""
    folders = published_epochs(pathlib.Path(directory), PREFIX)
    return folders[-1] if folders else None
