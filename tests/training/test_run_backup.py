"""RunBackup: only complete epoch states are ever published, so a kill at any point can resume."""

import numpy as np
import keras
import pytest

from chroma_keras.training.run_backup import METADATA_FILE, WEIGHTS_FILE, RunBackup


def _model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    return model


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 3)).astype("float32")
    return x, x.sum(axis=1, keepdims=True)


class _Epochs(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seen = []

    def on_epoch_begin(self, epoch, logs=None):
        self.seen.append(epoch)


class _DieWhileSaving(keras.callbacks.Callback):
    """Makes the backup's weight write of one epoch leave a truncated file and then 'die'."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            real_save = self.model.save_weights

            def truncated_save(path, *args, **kwargs):
                real_save(path, *args, **kwargs)
                with open(path, "r+b") as handle:
                    handle.truncate(100)
                raise KeyboardInterrupt("killed while writing the backup")

            self.model.save_weights = truncated_save


def test_only_the_newest_complete_epoch_is_kept(tmp_path):
    x, y = _data()
    model = _model()
    backup = RunBackup(tmp_path / "backup", delete_on_finish=False)
    model.fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=[backup])
    (only,) = backup.complete_backups()
    assert only.name == "epoch-00003"
    assert sorted(p.name for p in only.iterdir()) == sorted([WEIGHTS_FILE, METADATA_FILE])
    assert [p.name for p in (tmp_path / "backup").iterdir()] == ["epoch-00003"]


def test_a_kill_during_the_write_resumes_from_the_previous_epoch(tmp_path):
    x, y = _data()
    model = _model()
    # The kill comes during epoch 3's backup (epoch index 2): epoch 2's state must survive intact.
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, epochs=5, batch_size=8, verbose=0,
                  callbacks=[_DieWhileSaving(2), RunBackup(tmp_path / "backup")])
    names = sorted(p.name for p in (tmp_path / "backup").iterdir())
    assert names == ["epoch-00002", "epoch-00003.partial"]
    reference = _model()
    reference.load_weights(str(tmp_path / "backup" / "epoch-00002" / WEIGHTS_FILE))

    resumed, epochs = _model(), _Epochs()
    backup = RunBackup(tmp_path / "backup")
    # Restore only (on_train_begin), then check weights before training moves them.
    backup.set_model(resumed)
    resumed.optimizer.build(resumed.trainable_variables)
    backup.on_train_begin()
    for restored, expected in zip(resumed.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(restored, expected)
    assert not (tmp_path / "backup" / "epoch-00003.partial").exists()

    resumed = _model()
    resumed.fit(x, y, epochs=5, batch_size=8, verbose=0, callbacks=[epochs, RunBackup(tmp_path / "backup")])
    assert epochs.seen == [2, 3, 4]  # epochs 1 and 2 are not redone
    assert not (tmp_path / "backup").exists()  # a finished run leaves no backup


def test_no_backup_starts_from_the_first_epoch(tmp_path):
    x, y = _data()
    epochs = _Epochs()
    _model().fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[epochs, RunBackup(tmp_path / "none")])
    assert epochs.seen == [0, 1]


def test_an_epoch_published_again_replaces_the_first_folder(tmp_path):
    """A resumed run that redoes epoch N publishes N again (its best checkpoint survived the kill)."""
    from chroma_keras.training.run_backup import publish_epoch, published_epochs

    def writer(text):
        def write(folder):
            (folder / "value.txt").write_text(text)

        return write

    publish_epoch(tmp_path, "best-epoch-", 2, writer("epoch 2"))
    publish_epoch(tmp_path, "best-epoch-", 3, writer("first epoch 3"))
    target = publish_epoch(tmp_path, "best-epoch-", 3, writer("redone epoch 3"))
    assert published_epochs(tmp_path, "best-epoch-") == [target]
    assert (target / "value.txt").read_text() == "redone epoch 3"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["best-epoch-00003"]  # nothing left aside
