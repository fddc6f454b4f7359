"""The demo job behind ``make demo``: build the demo corpus, train a preset, generate, report.

Everything it writes goes under one output directory:

* ``demo_corpus.parquet``: the built-in synthetic corpus (DESIGN §3 layout),
* ``model/``: the trained model as a preset directory (``from_preset`` loads it),
* ``history.csv``: per-epoch losses,
* ``generated/<condition>/sample_XXX.mid``: generated segments per colour and
  for one combination no album has,
* ``report.md``: reconstruction error, KL and what was written where.
"""

from __future__ import annotations

import pathlib
import time

import keras
import numpy as np

from chroma_keras import modes, zoo
from chroma_keras.data.demo_corpus import write_demo_corpus
from chroma_keras.data.pianoroll_dataset import PianoRollBatches, load_pianoroll_dataset
from chroma_keras.data.splits import split_by_segment, split_by_song
from chroma_keras.preprocessing.pianoroll import PianoRollSpec

# A combination no album has, to show per-axis conditioning.
NOVEL_CONDITION = {"temporal": "future", "spatial": "thing", "ontological": "known"}


def _fmt(value: float) -> str:
    return f"{value:.2f}"


def train_on_corpus(model, corpus_path, epochs: int | None = None, verbose: int = 2, callbacks=()):
    """Train a piano-roll model on a segment parquet with its preset's training settings.

    Returns:
        ``(history, splits, dataset, read_report)``.
    """
    config = model.preset_config
    training = config["training"]
    spec = PianoRollSpec.from_config(config)
    dataset, report = load_pianoroll_dataset(corpus_path, spec)
    if training["split"] == "song":
        splits = split_by_song(
            dataset.song_ids, dataset.colours, training["validation_fraction"], training["test_fraction"], training["seed"]
        )
    else:
        splits = split_by_segment(len(dataset), training["validation_fraction"], training["test_fraction"], training["seed"])
    train = PianoRollBatches(
        dataset.subset(splits["train"]),
        batch_size=training["batch_size"],
        transpose_semitones=config["preprocessing"]["midi"]["augmentations"]["transpose_semitones"],
        seed=training["seed"],
    )
    validation = dataset.subset(splits["validation"]).inputs() if len(splits["validation"]) else None
    history = model.fit(
        train,
        validation_data=(validation,) if validation is not None else None,
        epochs=epochs or training["epochs"],
        verbose=verbose,
        callbacks=list(callbacks),
    )
    return history, splits, dataset, report


# Six songs per colour give each colour one validation and one test song.
DEMO_CORPUS_SIZE = {"songs_per_colour": 6, "segments_per_song": 10}


def run_demo(
    out_dir="demo_output",
    preset="cvae_chromatic",
    epochs: int | None = None,
    samples_per_condition: int = 4,
    seed: int = 0,
    verbose: int = 2,
    corpus_size: dict | None = None,
    **overrides,
) -> pathlib.Path:
    """Run the whole demo and return the path of its report.

    Args:
        out_dir: where everything is written.
        preset: the preset to train (a piano-roll model).
        epochs: training epochs (default: the preset's).
        samples_per_condition: generated segments per colour / condition.
        seed: seed of the corpus and of generation.
        verbose: Keras fit verbosity.
        corpus_size: ``songs_per_colour`` / ``segments_per_song`` of the demo corpus.
        **overrides: preset overrides (see ``from_preset``).
    """
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    corpus_path = write_demo_corpus(out / "demo_corpus.parquet", seed=seed, **(corpus_size or DEMO_CORPUS_SIZE))
    print(f"[demo] wrote the demo corpus to {corpus_path}", flush=True)
    model = zoo.from_preset(preset, **overrides)
    print(f"[demo] training {preset} ({model.count_params():,} parameters) on KERAS_BACKEND={keras.config.backend()}", flush=True)
    history_csv = out / "history.csv"
    history, splits, dataset, read_report = train_on_corpus(
        model, corpus_path, epochs=epochs, verbose=verbose, callbacks=[keras.callbacks.CSVLogger(str(history_csv))]
    )
    print(f"[demo] {read_report.summary()}", flush=True)
    test_metrics = {}
    if len(splits["test"]):
        test_metrics = model.evaluate(dataset.subset(splits["test"]).inputs(), verbose=0, return_dict=True)
    model_dir = zoo.save_to_preset(model, out / "model")

    written = {}
    conditions = {c.name: c.name for c in modes.COLOURS} | {"future-thing-known": NOVEL_CONDITION}
    for i, (label, condition) in enumerate(conditions.items()):
        rolls = model.generate(condition=condition, num_samples=samples_per_condition, seed=seed + i)
        paths = model.to_midi(rolls, out / "generated" / label.lower())
        density = float((rolls > 0).mean())
        written[label] = (paths, density)

    hist = history.history
    val_key = "val_reconstruction_loss" if "val_reconstruction_loss" in hist else "reconstruction_loss"
    first, last = hist[val_key][0], hist[val_key][-1]
    drop = 100.0 * (1.0 - last / first)
    lines = [
        f"# chroma_keras demo report ({preset})",
        "",
        f"- backend: {keras.config.backend()}, keras {keras.__version__}",
        f"- corpus: {corpus_path} ({read_report.summary()})",
        f"- split by {model.preset_config['training']['split']}: "
        + ", ".join(f"{k} {len(v)} segments" for k, v in splits.items()),
        f"- epochs: {len(hist['loss'])}, wall time {time.time() - started:.0f} s",
        "",
        "| metric | first epoch | last epoch |",
        "|---|---|---|",
    ]
    for key in ("reconstruction_loss", "kl_loss", "val_reconstruction_loss", "val_kl_loss"):
        if key in hist:
            lines.append(f"| {key} | {_fmt(hist[key][0])} | {_fmt(hist[key][-1])} |")
    lines += [
        "",
        f"Validation reconstruction loss fell by {drop:.1f}% from the first epoch ({_fmt(first)} -> {_fmt(last)}).",
    ]
    if test_metrics:
        lines.append(
            f"Held-out test songs: reconstruction {_fmt(test_metrics['reconstruction_loss'])}, KL {_fmt(test_metrics['kl_loss'])}."
        )
    lines += [
        "",
        "Reconstruction loss is per segment: the sum over piano-roll cells of the note-on binary",
        "cross-entropy plus the squared velocity error on sounding cells.",
        "",
        f"Trained model (a preset directory): `{model_dir}`; per-epoch losses: `{history_csv}`.",
        "",
        "| condition | files | fraction of sounding cells |",
        "|---|---|---|",
    ]
    for label, (paths, density) in written.items():
        lines.append(f"| {label} | `{paths[0].parent}/` ({len(paths)} .mid) | {density:.3f} |")
    report_path = out / "report.md"
    report_path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)
    print(f"[demo] report written to {report_path}", flush=True)
    return report_path
