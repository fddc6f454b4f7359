"""`chroma-keras train --resume`: a run killed with SIGKILL continues from its last finished epoch."""

import csv
import os
import signal
import subprocess
import sys
import time

import pytest

from chroma_keras.cli import main

TINY = ["model.midi_encoder.filters=[4,4,4]", "model.midi_encoder.hidden_dim=8", "training.batch_size=8"]
EPOCHS = 40


def _epochs(path):
    with open(path) as handle:
        return [(int(row["epoch"]), float(row["loss"])) for row in csv.DictReader(handle)]


def test_a_killed_run_resumes_with_at_most_one_epoch_redone(tmp_path, capsys):
    corpus = tmp_path / "c.parquet"
    assert main(["demo-corpus", "--out", str(corpus), "--songs-per-colour", "2", "--segments-per-song", "4"]) == 0
    run = tmp_path / "run"
    command = [sys.executable, "-m", "chroma_keras.cli", "train", "scorer_midi_only", "--data", str(corpus), "--out", str(run)]
    command += ["--epochs", str(EPOCHS)] + [arg for pair in TINY for arg in ("--set", pair)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
    history = run / "history.csv"
    deadline = time.time() + 800  # generous: a second pytest worker may share the 2 cores
    while time.time() < deadline and process.poll() is None:
        if history.exists() and history.read_text().count("\n") >= 4:  # header + 3 epochs
            break
        time.sleep(0.05)
    assert process.poll() is None, "training ended before it could be killed"
    time.sleep(0.1)  # into the next epoch
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = _epochs(history)
    assert 3 <= len(before) < EPOCHS and (run / "backup").exists()

    capsys.readouterr()
    # Starting a new run in the same directory is refused; --resume continues it.
    assert main(["train", "scorer_midi_only", "--data", str(corpus), "--out", str(run)]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["train", "--resume", str(run)]) == 0
    after = _epochs(history)
    numbers = [epoch for epoch, _ in after]
    assert sorted(set(numbers)) == list(range(EPOCHS)), numbers
    assert len(numbers) - EPOCHS <= 1  # at most one epoch redone
    # Metrics continue: the first resumed epoch starts from the restored weights and optimizer, so its
    # loss is close to the last finished epoch's, not back at the first epoch's.
    resumed = after[len(before)]
    assert resumed[0] >= before[-1][0] and resumed[1] <= 1.25 * before[-1][1] and before[-1][1] < before[0][1], after
    assert (run / "model" / "preset.yaml").is_file() and not (run / "backup").exists()
    assert main(["train", "--resume", str(run)]) == 2
    assert "already finished" in capsys.readouterr().err
    # The best checkpoint survived the kill: it names an epoch of this run and its monitored value is the
    # best in the history.
    import json

    (best,) = (run / "checkpoints").iterdir()
    record = json.loads((best / "best.json").read_text())
    with open(history) as handle:
        values = [float(row["mean_mode_accuracy"]) for row in csv.DictReader(handle)]
    # Two songs per colour leave no validation split, so the training metric is watched.
    assert record["monitor"] == "mean_mode_accuracy" and abs(record["value"] - max(values)) < 1e-6
    # A new run in a finished run's directory is refused too.
    assert main(["train", "scorer_midi_only", "--data", str(corpus), "--out", str(run)]) == 2
    assert "already holds a finished run" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train"], "give a preset"),
        (["train", "scorer_midi_only", "--resume", "x"], "not both"),
        (["train", "scorer_midi_only"], "needs --data and --out"),
    ],
)
def test_train_argument_errors(argv, message, capsys, tmp_path):
    assert main(argv) == 2
    assert message in capsys.readouterr().err
