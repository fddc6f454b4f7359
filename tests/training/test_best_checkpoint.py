"""BestCheckpoint keeps the best epoch's weights, and its record survives a restart; the run summary table."""

import json

import keras
import numpy as np
import pytest

from chroma_keras.errors import ModelInputError
from chroma_keras.training.best_checkpoint import RECORD_FILE, WEIGHTS_FILE, BestCheckpoint
from chroma_keras.training.run_summary import read_history, training_summary


def _model():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    return model


def _epoch(callback, model, epoch, value, weight):
    model.set_weights([np.full((2, 1), weight, np.float32), np.zeros(1, np.float32)])
    callback.on_epoch_end(epoch, {"val_loss": value})


def test_only_improvements_are_saved_and_a_restart_remembers_the_best(tmp_path):
    model = _model()
    first = BestCheckpoint(tmp_path, "val_loss", "min")
    first.set_model(model)
    first.on_train_begin()
    for epoch, (value, weight) in enumerate([(1.0, 1.0), (0.5, 2.0), (0.7, 3.0)]):
        _epoch(first, model, epoch, value, weight)
    assert json.loads((first.best_folder() / RECORD_FILE).read_text()) == {"monitor": "val_loss", "mode": "min", "value": 0.5, "epoch": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["best-epoch-00002"]

    # A resumed run reads the record: a worse epoch does not replace the best, a better one does.
    resumed = BestCheckpoint(tmp_path, "val_loss", "min")
    resumed.set_model(model)
    resumed.on_train_begin()
    assert (resumed.best_value, resumed.best_epoch) == (0.5, 2)
    _epoch(resumed, model, 3, 0.6, 4.0)
    assert resumed.record()["epoch"] == 2
    check = _model()
    check.load_weights(str(resumed.best_folder() / WEIGHTS_FILE))
    np.testing.assert_array_equal(check.get_weights()[0], np.full((2, 1), 2.0))
    _epoch(resumed, model, 4, 0.1, 5.0)
    assert resumed.record()["epoch"] == 5 and [p.name for p in tmp_path.iterdir()] == ["best-epoch-00005"]


def test_max_mode_and_nan_values(tmp_path):
    model = _model()
    callback = BestCheckpoint(tmp_path, "val_loss", "max")
    callback.set_model(model)
    for epoch, value in enumerate([0.2, float("nan"), 0.9, 0.4]):
        _epoch(callback, model, epoch, value, 1.0)
    assert callback.record()["epoch"] == 3


def test_a_missing_monitor_or_bad_mode_is_a_clear_error(tmp_path):
    with pytest.raises(ModelInputError, match="mode must be 'min' or 'max'"):
        BestCheckpoint(tmp_path, "val_loss", "lowest")
    callback = BestCheckpoint(tmp_path, "val_accuracy", "max")
    callback.set_model(_model())
    with pytest.raises(ModelInputError, match="watches 'val_accuracy', which fit\\(\\) did not log. Logged: \\['loss'\\]"):
        callback.on_epoch_end(0, {"loss": 1.0})


def test_summary_shows_first_best_and_last_epochs_once_each(tmp_path):
    history = tmp_path / "history.csv"
    # Epoch 2 was redone after a resume: its last row counts.
    history.write_text("epoch,loss,val_loss,val_acc\n0,1.0,1.2,0.1\n1,0.8,0.9,0.5\n2,0.7,0.95,0.4\n2,0.6,0.8,0.45\n")
    assert [row["loss"] for row in read_history(history)] == ["1.0", "0.8", "0.6"]
    folder = tmp_path / "best-epoch-00002"
    folder.mkdir()
    (folder / RECORD_FILE).write_text(json.dumps({"monitor": "val_acc", "mode": "max", "value": 0.5, "epoch": 2}))
    assert training_summary(history, folder).splitlines() == [
        "| | epoch | loss | val_loss | val_acc |",
        "|---|---:|---:|---:|---:|",
        "| first | 1 | 1.0000 | 1.2000 | 0.1000 |",
        "| best (max val_acc) | 2 | 0.8000 | 0.9000 | 0.5000 |",
        "| last | 3 | 0.6000 | 0.8000 | 0.4500 |",
    ]
    with pytest.raises(ModelInputError, match="no training history at"):
        read_history(tmp_path / "missing.csv")
