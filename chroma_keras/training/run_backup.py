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
        return published_epochs(self.backup_dir, _PREFIX)

    def on_train_begin(self, logs=None):
        remove_partial(self.backup_dir)
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

        def write(directory):
            self.model.save_weights(str(directory / WEIGHTS_FILE))
            (directory / METADATA_FILE).write_text(json.dumps({"epoch": finished}))

        publish_epoch(self.backup_dir, _PREFIX, finished, write)

    def on_train_end(self, logs=None):
        if self.delete_on_finish and self.backup_dir.exists():
            shutil.rmtree(self.backup_dir)


def published_epochs(directory: pathlib.Path, prefix: str) -> list[pathlib.Path]:
    """The complete ``<prefix>NNNNN`` directories in ``directory``, oldest epoch first."""
    if not directory.is_dir():
        return []
    found = [
        path
        for path in directory.iterdir()
        if path.is_dir() and path.name.startswith(prefix) and path.name[len(prefix) :].isdigit()
    ]
    return sorted(found, key=lambda path: int(path.name[len(prefix) :]))


def remove_partial(directory: pathlib.Path) -> None:
    """Delete the ``.partial`` directories a killed write left behind."""
    for stale in directory.glob(f"*{_PARTIAL}") if directory.is_dir() else []:
        shutil.rmtree(stale, ignore_errors=True)


def publish_epoch(directory: pathlib.Path, prefix: str, epoch: int, write) -> pathlib.Path:
    """Write one epoch's files with ``write(folder)`` and publish them as ``<prefix>NNNNN`` atomically.

    The files go into ``<prefix>NNNNN.partial``, are flushed to disk, and the folder is
    renamed into place with ``os.replace``; then older published epochs are removed.

    An epoch can be published twice: a run killed after its best checkpoint of epoch N was
    published but before its backup of epoch N was resumes at epoch N and may publish N again.
    ``os.replace`` cannot rename onto a non-empty directory, so the old folder is first moved
    aside under a ``.partial`` name (which the next start removes if a kill comes in between).
    """
    target = directory / f"{prefix}{epoch:05d}"
    partial = target.with_name(target.name + _PARTIAL)
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    write(partial)
    _sync_directory(partial)
    if target.exists():
        replaced = target.with_name(target.name + ".replaced" + _PARTIAL)
        shutil.rmtree(replaced, ignore_errors=True)
        os.replace(target, replaced)
        os.replace(partial, target)
        shutil.rmtree(replaced, ignore_errors=True)
    else:
        os.replace(partial, target)
    for older in published_epochs(directory, prefix):
        if older != target:
            shutil.rmtree(older, ignore_errors=True)
    return target


def _sync_directory(path: pathlib.Path) -> None:
    """Flush ``path``'s files to disk before the rename publishes them (a power cut, not only a kill)."""
    for file in path.iterdir():
        with open(file, "rb") as handle:
            os.fsync(handle.fileno())
