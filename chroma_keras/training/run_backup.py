"""Crash-safe backups of a training run, so ``train --resume`` survives a kill at any instant.

Keras' ``BackupAndRestore`` overwrites ``latest.weights.h5`` in place after every epoch.
A process killed while that file is half-written leaves an HDF5 file that cannot be
opened, and the run can no longer resume. :class:`RunBackup` keeps the same behaviour
(weights, optimizer state and epoch restored when the same run starts again; the backup
deleted when training ends) but writes each epoch's state into a fresh
``epoch-NNNNN.partial`` directory and publishes it with one atomic ``os.replace``
rename. A backup directory therefore only ever holds complete states; a kill leaves at
most one ``.partial`` directory, which the next start removes.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil

import keras

WEIGHTS_FILE = "state.weights.h5"
METADATA_FILE = "training_metadata.json"
_PREFIX = "epoch-"
_PARTIAL = ".partial"


class RunBackup(keras.callbacks.Callback):
    """Saves the model and optimizer state after each epoch and restores the newest one on start.

    Args:
        backup_dir: directory that holds the run's backups (created when needed).
        delete_on_finish: remove ``backup_dir`` when ``fit`` ends normally, as Keras'
            ``BackupAndRestore`` does, so an existing backup means "interrupted".
    """

    def __init__(self, backup_dir, delete_on_finish: bool = True):
        super().__init__()
        self.backup_dir = pathlib.Path(backup_dir)
        self.delete_on_finish = delete_on_finish

    def complete_backups(self) -> list[pathlib.Path]:
        """Published epoch directories, oldest first (partial writes excluded)."""
        if not self.backup_dir.is_dir():
            return []
        found = [
            path
            for path in self.backup_dir.iterdir()
            if path.is_dir() and path.name.startswith(_PREFIX) and not path.name.endswith(_PARTIAL)
        ]
        return sorted(found, key=lambda path: int(path.name[len(_PREFIX) :]))

    def on_train_begin(self, logs=None):
        for stale in self.backup_dir.glob(f"{_PREFIX}*{_PARTIAL}") if self.backup_dir.is_dir() else []:
            shutil.rmtree(stale, ignore_errors=True)
        backups = self.complete_backups()
        if not backups:
            return
        newest = backups[-1]
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(str(newest / WEIGHTS_FILE))
        epoch = json.loads((newest / METADATA_FILE).read_text())["epoch"]
        # The hook Keras' own BackupAndRestore uses: every backend's fit() starts from this epoch.
        self.model._initial_epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        finished = epoch + 1
        target = self.backup_dir / f"{_PREFIX}{finished:05d}"
        partial = target.with_name(target.name + _PARTIAL)
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        self.model.save_weights(str(partial / WEIGHTS_FILE))
        (partial / METADATA_FILE).write_text(json.dumps({"epoch": finished}))
        _sync_directory(partial)
        os.replace(partial, target)
        for older in self.complete_backups():
            if older != target:
                shutil.rmtree(older, ignore_errors=True)

    def on_train_end(self, logs=None):
        if self.delete_on_finish and self.backup_dir.exists():
            shutil.rmtree(self.backup_dir)


def _sync_directory(path: pathlib.Path) -> None:
    """Flush ``path``'s files to disk before the rename publishes them (a power cut, not only a kill)."""
    for file in path.iterdir():
        with open(file, "rb") as handle:
            os.fsync(handle.fileno())
