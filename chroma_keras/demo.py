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

from chroma_keras import modes, zoo
from chroma_keras.data.demo_corpus import write_demo_corpus
from chroma_keras.data.multimodal_dataset import MultimodalDataset, report_summary
from chroma_keras.errors import DataError

# A combination no album has, to show per-axis conditioning.
NOVEL_CONDITION = {"temporal": "future", "spatial": "thing", "ontological": "known"}


def _fmt(value: float) -> str:
    return f"{value:.2f}"


def corpus_datasets(model, corpus) -> dict:
    """The train / validation / test datasets :func:`train_on_corpus` trains a model on.

    Args:
        model: a model built by ``from_preset`` (it carries ``preset_config``).
        corpus: a parquet path, a folder, ``"demo"`` or an open ``SegmentSource``.

    Returns:
        ``{"train", "validation", "test"}``: :class:`MultimodalDataset` of each split with the
        preset's settings and the model's required modalities (``None`` for an empty split).
    """
    config = model.preset_config
    require = tuple(getattr(model, "required_modalities", ()))
    # A model may load other modalities than its preset's default (the multimodal GPT: text and audio).
    options = {"require": require, "modalities": getattr(model, "corpus_modalities", None)}
    if "text" in (options["modalities"] or ()):
        options["max_text_length"] = model.text_max_bytes
    datasets = {"train": MultimodalDataset(corpus, config, split="train", **options)}
    for split in ("validation", "test"):
        try:
            datasets[split] = MultimodalDataset(corpus, config, split=split, **options)
        except DataError:
            datasets[split] = None  # too few songs for this split
    return datasets


def train_on_corpus(model, corpus, epochs: int | None = None, verbose: int = 2, callbacks=(), best_checkpoint_dir=None):
    """Train a model on a segment source with its preset's training settings.

    The data goes through :class:`~chroma_keras.data.multimodal_dataset.MultimodalDataset`,
    the same reader as the user's media parquet: split by song (or segment) as
    ``training.split`` says, shuffled and augmented for training only. A cosine
    ``training.lr_schedule`` is stretched over the run (:func:`chroma_keras.zoo.compile_for_run`). The preset's
    ``training.early_stopping_patience`` / ``reduce_lr_patience`` add the callbacks of
    :func:`chroma_keras.training.preset_callbacks`.

    Under a data-parallel ``keras.distribution`` (``chroma-keras train --devices N``, see
    :func:`chroma_keras.training.distribution.use_devices`) the batch size must be a multiple of
    the device count, and ``fit`` sees the training and validation batches through
    :class:`~chroma_keras.training.distribution.DivisibleBatches` (an epoch's partial last batch is
    trimmed to a multiple of the device count).

    Args:
        model: a model built by ``from_preset`` (it carries ``preset_config``).
        corpus: a parquet path, a folder, ``"demo"`` or an open ``SegmentSource``.
        epochs: training epochs (default ``training.epochs``).
        verbose: Keras fit verbosity.
        callbacks: extra Keras callbacks.
        best_checkpoint_dir: when given, a :class:`~chroma_keras.training.best_checkpoint.BestCheckpoint`
            keeps the best epoch's weights there, judged by the quantity early stopping watches
            (on the validation split when there is one).

    Returns:
        ``(history, datasets)``: the Keras history and ``{"train", "validation",
        "test"}`` datasets (``None`` for an empty validation or test split).
    """
    config = model.preset_config
    datasets = corpus_datasets(model, corpus)
    from chroma_keras.training.distribution import check_batch_size, data_parallel_replicas, for_replicas
    from chroma_keras.training.preset_callbacks import preset_callbacks

    replicas = data_parallel_replicas()  # > 1 under a data-parallel keras.distribution (--devices N)
    if replicas > 1:
        check_batch_size(datasets["train"].batch_size, replicas)
    train, validation = datasets["train"], datasets["validation"]
    adapt = getattr(model, "training_batches", None)  # a model whose fit() batches differ from the reader's (GPT)
    if adapt is not None:
        train, validation = adapt(train), adapt(validation)
    train, validation = for_replicas(train, replicas), for_replicas(validation, replicas)
    epochs = epochs or config["training"]["epochs"]
    zoo.compile_for_run(model, steps_per_epoch=len(train), epochs=epochs)
    has_validation = datasets["validation"] is not None
    first = []
    if best_checkpoint_dir is not None:
        from chroma_keras.training.best_checkpoint import BestCheckpoint
        from chroma_keras.training.preset_callbacks import monitored_quantity

        metric, mode = monitored_quantity(model)
        # First in the list, so an epoch whose backup was published has had its best weights saved.
        first.append(BestCheckpoint(best_checkpoint_dir, f"val_{metric}" if has_validation else metric, mode))
    first += _gradient_norm_callbacks(model, datasets["train"])
    history = model.fit(
        train,
        validation_data=validation,
        epochs=epochs,
        verbose=verbose,
        callbacks=first + list(callbacks) + preset_callbacks(model, has_validation=has_validation),
    )
    return history, datasets


def _gradient_norm_callbacks(model, train) -> list:
    """The per-modality gradient-norm callback when ``model.scorer.gradient_norm_every_n_steps`` asks for it."""
    scorer = (model.preset_config.get("model") or {}).get("scorer") or {}
    every = int(scorer.get("gradient_norm_every_n_steps", 0))
    if not every or not hasattr(model, "weighted_loss"):
        return []
    from chroma_keras.training.gradient_norms import ModalityGradientNorms

    (probe,) = train[0]
    return [ModalityGradientNorms(probe, every_n_steps=every, imbalance_ratio=scorer.get("gradient_imbalance_ratio", 10.0))]


# The corpus' audio is rendered at 16 kHz to keep `make demo` quick (the user's file is 44.1 kHz).
DEMO_AUDIO_SAMPLE_RATE = 16000

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
    audio: str | None = "auto",
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
        audio: how the corpus' audio is rendered (``preprocessing.synthesis``
            backend: ``"auto"`` uses fluidsynth when installed, else the additive
            synth) or None for a MIDI-only corpus.
        **overrides: preset overrides (see ``from_preset``).
    """
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    print(f"[demo] writing the demo corpus with {audio or 'no'} audio rendering ...", flush=True)
    corpus_path = write_demo_corpus(
        out / "demo_corpus.parquet",
        seed=seed,
        audio=audio,
        audio_sample_rate=DEMO_AUDIO_SAMPLE_RATE,
        **(corpus_size or DEMO_CORPUS_SIZE),
    )
    print(f"[demo] wrote the demo corpus to {corpus_path}", flush=True)
    model = zoo.from_preset(preset, **overrides)
    print(f"[demo] training {preset} ({model.count_params():,} parameters) on KERAS_BACKEND={keras.config.backend()}", flush=True)
    history_csv = out / "history.csv"
    history, datasets = train_on_corpus(
        model, corpus_path, epochs=epochs, verbose=verbose, callbacks=[keras.callbacks.CSVLogger(str(history_csv))]
    )
    read_report = report_summary(datasets["train"].report())
    print(f"[demo] {read_report}", flush=True)
    test_metrics = {}
    if datasets["test"] is not None:
        test_metrics = model.evaluate(datasets["test"], verbose=0, return_dict=True)
    model_dir = zoo.save_to_preset(model, out / "model")

    written = {}
    conditions = {c.name: c.name for c in modes.COLOURS} | {"future-thing-known": NOVEL_CONDITION}
    for i, (label, condition) in enumerate(conditions.items()):
        rolls = model.generate(condition=condition, num_samples=samples_per_condition, seed=seed + i)
        paths = model.to_midi(rolls, out / "generated" / label.lower())
        density = float((rolls > 0).mean())
        written[label] = (paths, density)

    hist = history.history
    main_loss = "reconstruction_loss" if "reconstruction_loss" in hist else "diffusion_loss" if "diffusion_loss" in hist else "loss"
    val_key = f"val_{main_loss}" if f"val_{main_loss}" in hist else main_loss
    first, last = hist[val_key][0], hist[val_key][-1]
    drop = 100.0 * (1.0 - last / first)
    lines = [
        f"# chroma_keras demo report ({preset})",
        "",
        f"- backend: {keras.config.backend()}, keras {keras.__version__}",
        f"- corpus: {corpus_path} ({read_report})",
        f"- split by {model.preset_config['training']['split']}: "
        + ", ".join(f"{k} {d.num_examples if d is not None else 0} segments" for k, d in datasets.items()),
        f"- epochs: {len(hist['loss'])}, wall time {time.time() - started:.0f} s",
        "",
        "| metric | first epoch | last epoch |",
        "|---|---|---|",
    ]
    for key in ("reconstruction_loss", "kl_loss", "diffusion_loss", "val_reconstruction_loss", "val_kl_loss", "val_diffusion_loss"):
        if key in hist:
            lines.append(f"| {key} | {_fmt(hist[key][0])} | {_fmt(hist[key][-1])} |")
    lines += [
        "",
        f"{'Validation' if val_key.startswith('val_') else 'Training'} {main_loss.replace('_', ' ')} fell by {drop:.1f}% "
        f"from the first epoch ({_fmt(first)} -> {_fmt(last)}).",
    ]
    if "reconstruction_loss" in test_metrics:
        lines.append(
            f"Held-out test songs: reconstruction {_fmt(test_metrics['reconstruction_loss'])}, KL {_fmt(test_metrics['kl_loss'])}."
        )
    elif "diffusion_loss" in test_metrics:
        lines.append(f"Held-out test songs: diffusion loss {_fmt(test_metrics['diffusion_loss'])}.")
    if main_loss == "reconstruction_loss":
        lines += [
            "",
            "Reconstruction loss is per segment: the sum over piano-roll cells of the note-on binary",
            "cross-entropy plus the squared velocity error on sounding cells.",
        ]
    elif main_loss == "diffusion_loss":
        lines += ["", "Diffusion loss is the mean squared error of the denoiser's prediction target at a random timestep."]
    lines += [
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
