"""The ``chroma-keras`` command."""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

from chroma_keras.errors import CheckpointError, ChromaKerasError


def _cmd_presets(args) -> int:
    from chroma_keras import config

    for name, description in config.list_builtin_presets():
        print(f"{name:28s} {description}")
    return 0


def _cmd_show(args) -> int:
    from chroma_keras import config

    resolved = config.load_preset_config(args.preset, overrides=args.set or None)
    print(config.dump_config(resolved), end="")
    return 0


def _cmd_demo_corpus(args) -> int:
    from chroma_keras.data.demo_corpus import write_demo_corpus

    audio = None if args.audio == "none" else args.audio
    path = write_demo_corpus(
        args.out,
        songs_per_colour=args.songs_per_colour,
        segments_per_song=args.segments_per_song,
        seed=args.seed,
        audio=audio,
        audio_sample_rate=args.sample_rate,
    )
    print(f"wrote {path}")
    return 0


def _cmd_demo(args) -> int:
    from chroma_keras.demo import run_demo

    audio = None if args.audio == "none" else args.audio
    run_demo(args.out, preset=args.preset, epochs=args.epochs, seed=args.seed, audio=audio, **_overrides(args))
    return 0


RUN_FILE = "run.json"  # what a run directory needs to resume: data source, epochs and devices


def _cmd_train(args) -> int:
    import json

    import keras

    from chroma_keras import config, zoo
    from chroma_keras.demo import train_on_corpus
    from chroma_keras.errors import ModelInputError
    from chroma_keras.training.best_checkpoint import WEIGHTS_FILE as BEST_WEIGHTS
    from chroma_keras.training.best_checkpoint import best_folder
    from chroma_keras.training.distribution import use_devices
    from chroma_keras.training.run_backup import RunBackup
    from chroma_keras.training.run_summary import training_summary

    if (args.preset is None) == (args.resume is None):
        raise ModelInputError("train: give a preset to start a run, or --resume RUN_DIR to continue one (not both).")
    if args.resume is not None:
        out = pathlib.Path(args.resume)
        if not (out / RUN_FILE).is_file():
            raise ModelInputError(f"train --resume {out}: not a run directory (no {RUN_FILE}); start it with train PRESET --out {out}.")
        run = json.loads((out / RUN_FILE).read_text())
        if (out / "model").is_dir() and not (out / "backup").exists():
            raise ModelInputError(f"train --resume {out}: this run already finished; its model is in {out / 'model'}.")
        preset, data, epochs = str(out / "config.yaml"), args.data or run["data"], args.epochs or run["epochs"]
        devices = args.devices if args.devices is not None else run.get("devices", 1)
        # The distribution must be set before any variable exists (keras.distribution).
        use_devices(devices, batch_size=config.load_preset_config(preset)["training"]["batch_size"])
        model = zoo.from_preset(preset)
    else:
        if args.out is None or args.data is None:
            raise ModelInputError("train: a new run needs --data and --out.")
        out = pathlib.Path(args.out)
        if (out / "backup").exists():
            raise ModelInputError(f"train: {out} holds an interrupted run; continue it with --resume {out}, or choose another --out.")
        if (out / RUN_FILE).exists():
            # Its history, checkpoints and best model would mix with the new run's.
            raise ModelInputError(f"train: {out} already holds a finished run; choose another --out or delete {out}.")
        overrides, devices = _overrides(args), 1 if args.devices is None else args.devices
        resolved = config.load_preset_config(args.preset, overrides=overrides or None)
        use_devices(devices, batch_size=resolved["training"]["batch_size"])
        model = zoo.from_preset(args.preset, **overrides)
        data, epochs = args.data, args.epochs or model.preset_config["training"]["epochs"]
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(config.dump_config(model.preset_config))
        run = {"preset": args.preset, "data": str(data), "epochs": epochs, "devices": devices}
        (out / RUN_FILE).write_text(json.dumps(run, indent=2) + "\n")
    print(
        f"training {model.preset_config['name']} ({model.count_params():,} parameters) on KERAS_BACKEND={keras.config.backend()}"
        + (f", data parallel over {devices} devices" if devices > 1 else ""),
        flush=True,
    )
    callbacks = [
        # The history row comes before the backup: a kill between them redoes that epoch (a repeated row),
        # never loses it.
        keras.callbacks.CSVLogger(str(out / "history.csv"), append=args.resume is not None),
        *_tensorboard(out / "logs", args.tensorboard),
        # Saves weights, optimizer state and the epoch after every epoch (atomically) and restores them
        # when the same run starts again; it deletes its backup when training ends.
        RunBackup(out / "backup"),
    ]
    checkpoints = out / "checkpoints"
    # A progress bar per epoch on a terminal; one line per epoch in logs and pipes.
    verbose = 1 if sys.stdout.isatty() else 2
    train_on_corpus(model, data, epochs=epochs, verbose=verbose, callbacks=callbacks, best_checkpoint_dir=checkpoints)
    model_dir = zoo.save_to_preset(model, out / "model")
    best = best_folder(checkpoints)
    if best is not None:
        model.load_weights(str(best / BEST_WEIGHTS))
        zoo.save_to_preset(model, out / "best")
    print(training_summary(out / "history.csv", best))
    print(f"saved the last epoch's model in {model_dir}" + (f" and the best epoch's in {out / 'best'}" if best else ""))
    return 0


def _tensorboard(log_dir, choice: str) -> list:
    """A TensorBoard callback when asked for and possible (Keras writes the logs with tensorflow.summary)."""
    import importlib.util

    import keras

    from chroma_keras.errors import ModelInputError

    if choice == "off":
        return []
    missing = [name for name in ("tensorflow", "tensorboard") if importlib.util.find_spec(name) is None]
    if missing:
        if choice == "on":
            raise ModelInputError(
                f"train --tensorboard on: Keras writes TensorBoard logs with tensorflow and tensorboard; {' and '.join(missing)} "
                "not installed. pip install 'chroma-keras[tensorflow]', or pass --tensorboard off."
            )
        print(f"TensorBoard logs skipped: {' and '.join(missing)} not installed (pip install 'chroma-keras[tensorflow]').")
        return []
    return [keras.callbacks.TensorBoard(log_dir=str(log_dir), write_graph=False, update_freq="epoch")]


def _cmd_evaluate_generation(args) -> int:
    from chroma_keras import zoo
    from chroma_keras.evaluation.chromatic_consistency import DEFAULT_COLOURS, colour_recognition, reference_recognition
    from chroma_keras.generation.token_midi import is_token_generator

    generator = zoo.from_preset(_model_path(args.generator))
    scorer = zoo.from_preset(_model_path(args.scorer))
    generate_kwargs = _generate_kwargs(generator, args, "evaluate-generation")
    colours = args.colours.split(",") if args.colours else DEFAULT_COLOURS
    guide, scale = _guide_scorer(args, "evaluate-generation")
    if guide is not None:
        generate_kwargs.update(guide=guide, guide_scale=scale)
    report = colour_recognition(
        generator, scorer, colours=colours, samples_per_colour=args.samples_per_colour, seed=args.seed, **generate_kwargs
    )
    text = report.to_markdown()
    if is_token_generator(generator) and args.validity_samples_per_colour:
        from chroma_keras.evaluation.token_validity import token_validity

        sampling = {k: v for k, v in generate_kwargs.items() if k != "constrained"}
        validity = token_validity(generator, colours=colours, samples_per_colour=args.validity_samples_per_colour, seed=args.seed, **sampling)
        text += "\n\n" + validity.to_markdown()
    if args.data:
        reference = reference_recognition(scorer, args.data, split=args.split, colours=colours)
        text += f"\n\nThe same scorer on real segments ({args.split} split of {args.data}):\n\n" + reference.to_markdown()
    print(text)
    if args.out:
        pathlib.Path(args.out).write_text(text + "\n")
    return 0


# Options of `generate` / `evaluate-generation` that only one kind of generator reads.
PIANO_ROLL_OPTIONS = {"num_steps": "--num-steps", "scheduler": "--scheduler", "guidance_scale": "--guidance-scale"}
TOKEN_OPTIONS = {"prompt": "--prompt", "sampling": "--sampling", "max_length": "--max-length", "unconstrained": "--unconstrained"}


def _guide_scorer(args, command: str):
    """``(scorer, scale)`` of ``--guide-scorer`` / ``--classifier-scale`` (classifier guidance; the scale
    defaults to 1), or ``(None, None)``; ``--classifier-scale`` alone is an error."""
    from chroma_keras import zoo
    from chroma_keras.errors import ModelInputError

    if args.guide_scorer is None:
        if args.classifier_scale is not None:
            raise ModelInputError(f"{command}: --classifier-scale needs --guide-scorer (the scorer whose gradients guide sampling).")
        return None, None
    scale = 1.0 if args.classifier_scale is None else args.classifier_scale
    return zoo.from_preset(_model_path(args.guide_scorer)), scale


def _add_classifier_guidance_options(p) -> None:
    p.add_argument(
        "--guide-scorer",
        default=None,
        help="diffusion: a trained scorer with a piano-roll MIDI encoder whose gradients steer sampling toward the colour (classifier guidance)",
    )
    p.add_argument("--classifier-scale", type=float, default=None, help="classifier-guidance step size (default: 1.0)")


def _generate_kwargs(model, args, command: str) -> dict:
    """The ``generate`` keyword arguments the command line asks for, checked against the kind of model.

    A token generator (GPT) decodes with the grammar constraint unless ``--unconstrained``; its
    other sampling settings come from the preset (``--set generation.sampling.KEY=VALUE``)
    unless ``--sampling`` / ``--max-length`` are given.
    """
    from chroma_keras.errors import ModelInputError
    from chroma_keras.generation.token_midi import is_token_generator

    given = {key: getattr(args, key, None) for key in (*PIANO_ROLL_OPTIONS, *TOKEN_OPTIONS)}
    # Not `value not in (None, False)`: 0 == False, and --guidance-scale 0 / --max-length 0 must reach generate.
    given = {key: value for key, value in given.items() if value is not None and value is not False}
    tokens = is_token_generator(model)
    foreign = PIANO_ROLL_OPTIONS if tokens else TOKEN_OPTIONS
    wrong = [flag for key, flag in foreign.items() if key in given]
    if wrong:
        kind = "a token generator (GPT)" if tokens else f"a piano-roll generator ({type(model).__name__})"
        raise ModelInputError(f"{command}: {', '.join(wrong)} do not apply to {kind}; options for it: {', '.join((PIANO_ROLL_OPTIONS if tokens else TOKEN_OPTIONS).values())}.")
    if not tokens:
        return given
    kwargs = {"constrained": not given.pop("unconstrained", False)}
    kwargs.update(given)
    return kwargs


def _cmd_evaluate(args) -> int:
    from chroma_keras import zoo
    from chroma_keras.evaluation.report import evaluation_report

    generator = zoo.from_preset(_model_path(args.generator))
    scorer = zoo.from_preset(_model_path(args.scorer))
    generate_kwargs = _generate_kwargs(generator, args, "evaluate")
    colours = args.colours.split(",") if args.colours else None
    path = evaluation_report(
        generator,
        scorer,
        args.data,
        args.out,
        samples_per_colour=args.samples_per_colour,
        split=args.split,
        seed=args.seed,
        colours=colours,
        names={"generator": args.generator, "scorer": args.scorer},
        validity_samples_per_colour=args.validity_samples_per_colour,
        **generate_kwargs,
    )
    print(f"wrote {path}")
    return 0


def _cmd_compare_scorers(args) -> int:
    from chroma_keras.training.scorer_comparison import compare_scorers, comparison_table

    presets = args.presets or list(SCORER_PRESETS)

    def progress(row):
        print(f"{row.preset} ({row.split} split, {row.epochs} epochs): mean mode accuracy {row.metrics['mean_mode_accuracy']:.3f}", flush=True)

    rows = compare_scorers(presets, args.data, epochs=args.epochs, overrides=_overrides(args), progress=progress)
    table = comparison_table(rows)
    print(table)
    if args.out:
        pathlib.Path(args.out).write_text(table + "\n")
    return 0


# The presets compare-scorers trains when none are named.
SCORER_PRESETS = ("scorer_midi_only", "scorer_text_only", "scorer_late_fusion", "scorer_early_fusion", "scorer_gated", "scorer_cross_attention")


def _cmd_listen(args) -> int:
    from chroma_keras.errors import ModelInputError
    from chroma_keras.evaluation.listening import RatingStore, build_session, load_items
    from chroma_keras.evaluation.listening.server import DB_FILE, make_server
    from chroma_keras.evaluation.listening.store import format_summary

    session = pathlib.Path(args.session)
    if args.generated:
        if args.real is None:
            raise ModelInputError("listen: a new session needs --real DATA (the real segments) besides --generated.")
        build_session(session, args.generated, args.real, num_real=args.num_real, split=args.split, seed=args.seed)
        print(f"created the session {session} ({len(load_items(session))} segments)")
    store = RatingStore(session / DB_FILE, load_items(session))
    if args.export or args.summary:
        if args.export:
            print(f"wrote {store.export_csv(args.export)}")
        if args.summary:
            print(format_summary(store.summary()))
        return 0
    server = make_server(session, host=args.host, port=args.port)
    print(f"listening test at http://{args.host}:{server.server_address[1]}/ (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    print(format_summary(store.summary()))
    return 0


def _model_path(path: str) -> str:
    """A run directory (``train --out``) holds its model in ``model/``; anything else is a preset."""
    run_model = pathlib.Path(path) / "model"
    return str(run_model) if run_model.is_dir() else path


def _cmd_generate(args) -> int:
    from chroma_keras import zoo
    from chroma_keras.errors import ModelInputError
    from chroma_keras.generation.sample_files import write_samples

    if args.colour is not None and args.modes is not None:
        raise ModelInputError("generate: give exactly one of --colour (e.g. Green) or --modes (e.g. future,place,forgotten).")
    if args.colour is None and args.modes is None and args.prompt is None:
        raise ModelInputError(
            "generate: give exactly one of --colour (e.g. Green) or --modes (e.g. future,place,forgotten)"
            " (or, for a GPT, --prompt TEXT)."
        )
    overrides = _overrides(args)
    model = zoo.from_preset(_model_path(args.model), **overrides)
    if not hasattr(model, "generate"):
        raise ModelInputError(f"generate: {args.model} is a {type(model).__name__}, not a generator.")
    generate_kwargs = _generate_kwargs(model, args, "generate")
    if args.transpose is not None:
        if not hasattr(model, "condition_on_transposition"):
            raise ModelInputError(f"generate: --transpose applies to a conditional VAE; {args.model} is a {type(model).__name__}.")
        generate_kwargs["transpose"] = args.transpose  # the model names the preset key when it lacks the condition
    condition = args.colour if args.colour is not None else args.modes
    guide, scale = _guide_scorer(args, "generate")
    if guide is not None:
        from chroma_keras.evaluation.chromatic_consistency import check_accepts_classifier_guidance
        from chroma_keras.generation.guidance import scorer_guidance

        check_accepts_classifier_guidance(model)
        generate_kwargs.update(classifier_guidance=scorer_guidance(guide, condition, model.roll_spec()), classifier_scale=scale)
    audio = None if args.audio == "none" else args.audio
    index = write_samples(model, condition, args.out, num_samples=args.num_samples, seed=args.seed, audio=audio, **generate_kwargs)
    label = condition if condition is not None else repr(args.prompt)
    print(f"wrote {args.num_samples} samples for {label} to {index.parent} (index: {index})")
    return 0


def _cmd_evolve(args) -> int:
    from chroma_keras import zoo
    from chroma_keras.errors import ModelInputError
    from chroma_keras.generation.evolution import LOG_TABLE_HEADER, EvolutionSettings, evolve, format_log_row, write_evolution

    if (args.target is None) == (args.modes is None):
        raise ModelInputError("evolve: give exactly one of --target (a colour, e.g. Green) or --modes (e.g. future,place,forgotten).")
    target = args.target if args.target is not None else args.modes
    settings = EvolutionSettings(
        population=args.population,
        keep=args.keep,
        generations=args.generations,
        mutation_scale=args.mutation_scale,
        crossover_rate=args.crossover_rate,
        seed=args.seed,
        mutation_bars=args.mutation_bars,
    ).validate()
    generator = zoo.from_preset(_model_path(args.generator))
    scorer = zoo.from_preset(_model_path(args.scorer))
    generate_kwargs = _generate_kwargs(generator, args, "evolve")
    print(f"evolving {settings.population} candidates for {target} over {settings.generations} generations", flush=True)
    print(LOG_TABLE_HEADER, flush=True)
    result = evolve(generator, scorer, target, settings, progress=lambda row: print(format_log_row(row), flush=True), **generate_kwargs)
    audio = None if args.audio == "none" else args.audio
    runs = {"generator": str(args.generator), "scorer": str(args.scorer), **generate_kwargs}
    index = write_evolution(result, generator, args.out, audio=audio, extra=runs)
    best = ", ".join(f"{c.fitness:.4f} (generation {c.generation})" for c in result.best)
    print(f"best {len(result.best)}: {best}; wrote {index.parent} (index: {index.name}, log: fitness_log.csv)")
    return 0


def _cmd_score(args) -> int:
    from chroma_keras import modes, zoo
    from chroma_keras.errors import ModelInputError
    from chroma_keras.scoring import chromatic_match

    scorer = zoo.from_preset(_model_path(args.scorer))
    if not hasattr(scorer, "score"):
        raise ModelInputError(f"score: {args.scorer} is a {type(scorer).__name__}, not a scorer.")
    missing = [f for f in args.files if not pathlib.Path(f).is_file()]
    if missing:
        raise ModelInputError(f"score: no such file: {', '.join(missing)}")
    prediction = scorer.score([pathlib.Path(f) for f in args.files])
    # Black and White name no mode, so no chromatic match can be computed for them.
    colours = [c for c in modes.COLOURS if any(modes.resolve_condition(c.name).ids())]
    matches = {c.name: chromatic_match(prediction, c.name) for c in colours}
    header = ["file", "likeliest colour", *[c.letter for c in colours]]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for i, path in enumerate(args.files):
        likeliest = modes.COLOUR_NAMES[int(np.argmax(prediction["colour"][i]))]
        cells = [f"{matches[c.name][i]:.2f}" for c in colours]
        print(f"| {path} | {likeliest} ({prediction['colour'][i].max():.0%}) | " + " | ".join(cells) + " |")
    print("\nColumns: chromatic match per colour (" + ", ".join(f"{c.letter} {c.name}" for c in colours) + "), higher is better.")
    return 0


def _cmd_export(args) -> int:
    from chroma_keras.export import export_model

    result = export_model(
        args.model,
        args.out,
        format=args.format,
        functions=args.function,
        num_steps=args.num_steps,
        overwrite=args.overwrite,
        verify=args.verify,
        **_overrides(args),
    )
    for name, entry in result.manifest["functions"].items():
        inputs = ", ".join(f"{i['name']} {i['dtype']}{i['shape']}" for i in entry["inputs"])
        print(f"{name}: {result.out_dir / entry['file']} ({inputs}) -> {', '.join(entry['outputs'])}")
    print(f"wrote {result.format} export of {result.manifest['model']} to {result.out_dir} (manifest: {result.manifest_path})")
    if "verified" in result.manifest:
        verified = result.manifest["verified"]["token_ids"]
        print(f"verified: sample.py's greedy tokens equal the live model's ({len(verified)} x {len(verified[0])} tokens)")
    return 0


def _cmd_convert(args) -> int:
    from chroma_keras import pretrained

    out = pathlib.Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise CheckpointError(f"--out {out}: the directory is not empty; pass --overwrite to replace its content.")
    keras_model, config, metadata = pretrained.convert_checkpoint(
        args.model, args.checkpoint, config=args.config, preset=args.preset
    )
    pretrained.save_converted(keras_model, out, args.model, config, metadata)
    print(
        f"converted {args.model} from {args.checkpoint}: {metadata['tensors_copied']} tensors, "
        f"{keras_model.count_params():,} parameters (config: {metadata['config_source']})"
    )
    print(f"wrote {out} (load it with chroma_keras.from_preset({str(out)!r}))")
    return 0


def _overrides(args) -> dict:
    """The ``--set KEY=VALUE`` options as ``from_preset`` keyword arguments (dotted keys)."""
    from chroma_keras import config

    return _flatten(config.parse_overrides(args.set)) if args.set else {}


def _flatten(tree, prefix=""):
    flat = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


# Audio rendering of the demo corpus: preprocessing.synthesis backends, or none.
AUDIO_CHOICES = ("auto", "fluidsynth", "additive", "none")


def _add_token_options(p, validity: bool = False) -> None:
    """The sampling options of a token generator (GPT); with ``validity``, the evaluation commands' token validity sample size."""
    from chroma_keras.generation.samplers import STRATEGIES

    p.add_argument("--sampling", choices=STRATEGIES, default=None, help="GPT: decoding strategy (default: the preset's generation.sampling.strategy)")
    p.add_argument("--max-length", type=int, default=None, help="GPT: longest sequence, prompt included (default: the preset's)")
    p.add_argument("--unconstrained", action="store_true", help="GPT: sample without REMI's grammar mask (default: constrained decoding)")
    if validity:
        p.add_argument(
            "--validity-samples-per-colour",
            type=int,
            default=4,
            metavar="N",
            help="GPT: also sample N sequences per colour with and without constrained decoding and report the share "
            "of valid MIDI and miditok's token error rate (default: 4; 0 skips them)",
        )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``chroma-keras``."""
    parser = argparse.ArgumentParser(prog="chroma-keras", description="Chromatic-mode music models in Keras 3.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("presets", help="list the built-in presets")
    p.set_defaults(func=_cmd_presets)

    p = sub.add_parser("show", help="print a preset's resolved YAML")
    p.add_argument("preset", help="built-in name, YAML file or preset directory")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="dotted override, e.g. model.vae.latent_dim=32")
    p.set_defaults(func=_cmd_show)

    p = sub.add_parser("demo-corpus", help="write the built-in demo corpus as a segment parquet")
    p.add_argument("--out", required=True, help="output .parquet path")
    p.add_argument("--songs-per-colour", type=int, default=4)
    p.add_argument("--segments-per-song", type=int, default=12)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--audio", choices=AUDIO_CHOICES, default="none", help="render audio for each segment (default: none)")
    p.add_argument("--sample-rate", type=int, default=44100, help="sample rate of rendered audio")
    p.set_defaults(func=_cmd_demo_corpus)

    p = sub.add_parser("demo", help="build the demo corpus, train a preset on it, generate MIDI and write a report")
    p.add_argument("--out", default="demo_output", help="output directory")
    p.add_argument("--preset", default="cvae_chromatic")
    p.add_argument("--epochs", type=int, default=None, help="default: the preset's training.epochs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="dotted preset override")
    p.add_argument("--audio", choices=AUDIO_CHOICES, default="auto", help="how the corpus' audio is rendered")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("train", help="train a preset on a segment parquet (or the demo corpus) and save it as a preset directory")
    p.add_argument("preset", nargs="?", default=None, help="built-in name, YAML file or preset directory")
    p.add_argument("--data", default=None, help="segment parquet, folder, or 'demo'")
    p.add_argument("--out", default=None, help="run directory: config.yaml, run.json, history.csv, logs/, checkpoints/, model/ (last epoch), best/ (best epoch)")
    p.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue an interrupted run from its last finished epoch")
    p.add_argument("--epochs", type=int, default=None, help="default: the preset's training.epochs")
    p.add_argument(
        "--devices",
        type=int,
        default=None,
        metavar="N",
        help="data-parallel training over N devices (JAX backend; default 1, or the run's on --resume); "
        "training.batch_size must be a multiple of N",
    )
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="dotted preset override")
    p.add_argument(
        "--tensorboard", choices=("auto", "on", "off"), default="auto", help="write TensorBoard logs to RUN/logs (auto: when tensorflow and tensorboard are installed)"
    )
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("generate", help="generate segments for a colour or per-axis modes: MIDI, images, audio, index")
    p.add_argument("model", help="a run directory (train --out), a preset directory or a built-in preset")
    p.add_argument("--colour", default=None, help="target colour, e.g. Green or G")
    p.add_argument("--modes", default=None, help="per-axis modes, e.g. future,place,forgotten")
    p.add_argument("--num-samples", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--audio", choices=AUDIO_CHOICES, default="auto", help="render .wav files (default: auto)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="dotted override, e.g. generation.sampling.num_steps=20")
    _add_token_options(p)
    p.add_argument("--prompt", default=None, help="GPT: free-text prompt, e.g. 'a Red segment with high temporal complexity' (--colour / --modes override its modes)")
    p.add_argument(
        "--transpose",
        type=float,
        default=None,
        help="VAE trained with model.vae.condition_on_transposition: move the colour's register by this many semitones",
    )
    _add_classifier_guidance_options(p)
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser("evolve", help="evolve a generator's segments toward a target colour, with a scorer as fitness")
    p.add_argument("--generator", required=True, help="a trained generator: CVAE, diffusion or GPT (run or preset directory)")
    p.add_argument("--scorer", required=True, help="a trained scorer with a MIDI encoder (run or preset directory)")
    p.add_argument("--target", default=None, help="target colour, e.g. Green or G")
    p.add_argument("--modes", default=None, help="target per-axis modes, e.g. future,place,forgotten")
    p.add_argument("--population", type=int, default=50, help="candidates per generation (default: 50)")
    p.add_argument("--keep", type=int, default=3, help="elites kept each generation and candidates written (default: 3)")
    p.add_argument("--generations", type=int, default=8, help="rounds of breeding after the initial population (default: 8)")
    p.add_argument("--mutation-scale", type=float, default=0.3, help="latent mutation std in prior units (VAE; default: 0.3)")
    p.add_argument(
        "--crossover-rate", type=float, default=0.5, help="share of children that mix two parents (VAE: latents; GPT: bars; default: 0.5)"
    )
    p.add_argument("--mutation-bars", type=int, default=2, help="GPT: most bars one mutation regenerates by infilling (default: 2)")
    p.add_argument("--num-steps", type=int, default=None, help="diffusion sampler steps (default: the preset's)")
    _add_token_options(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output folder: best_*.mid/.png, fitness_log.csv, index.json")
    p.add_argument("--audio", choices=AUDIO_CHOICES, default="none", help="render the best candidates as .wav (default: none)")
    p.set_defaults(func=_cmd_evolve)

    p = sub.add_parser("score", help="rate MIDI or audio files for every colour with a trained scorer")
    p.add_argument("scorer", help="a run directory, a preset directory or a built-in scorer preset")
    p.add_argument("files", nargs="+", help="MIDI files, or audio files (.wav .flac .ogg .mp3 .aiff) for a scorer with an audio encoder")
    p.set_defaults(func=_cmd_score)

    p = sub.add_parser("evaluate", help="write an HTML report: recognition, Fréchet distances, statistics, projection, piano rolls")
    p.add_argument("generator", help="a trained generator: piano roll (CVAE, diffusion) or GPT (run or preset directory)")
    p.add_argument("--scorer", required=True, help="a trained scorer with a piano-roll MIDI encoder (run or preset directory)")
    p.add_argument("--data", required=True, help="the real segments: a parquet, folder or 'demo'")
    p.add_argument("--split", choices=("train", "validation", "test", "all"), default="test", help="split of --data compared with")
    p.add_argument("--samples-per-colour", type=int, default=16)
    p.add_argument("--colours", default=None, help="comma-separated colour names (default: the eight with training data)")
    p.add_argument("--num-steps", type=int, default=None, help="diffusion sampler steps (default: the preset's)")
    _add_token_options(p, validity=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output folder: report.html and its figures")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("compare-scorers", help="train scorer presets with song and segment splits and compare their test accuracy")
    p.add_argument("presets", nargs="*", help="scorer presets (default: the six built-in scorer presets)")
    p.add_argument("--data", required=True, help="segment parquet, folder, or 'demo'")
    p.add_argument("--epochs", type=int, default=None, help="default: each preset's training.epochs")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="dotted override applied to every preset")
    p.add_argument("--out", default=None, help="also write the Markdown table here")
    p.set_defaults(func=_cmd_compare_scorers)

    p = sub.add_parser("listen", help="a blind listening test of real and generated segments in a local web page")
    p.add_argument("--session", required=True, help="session folder: media, items.json (the key), ratings.sqlite")
    p.add_argument("--generated", nargs="+", default=None, metavar="DIR", help="create the session from these generate folders (with audio)")
    p.add_argument("--real", default=None, help="where the real segments come from: a parquet, folder or 'demo'")
    p.add_argument("--num-real", type=int, default=8, help="real segments in a new session (default: 8)")
    p.add_argument("--split", choices=("train", "validation", "test", "all"), default="test", help="split the real segments come from")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--export", default=None, metavar="CSV", help="write the ratings to a CSV file instead of serving")
    p.add_argument("--summary", action="store_true", help="print the ratings' summary with confidence intervals instead of serving")
    p.set_defaults(func=_cmd_listen)

    p = sub.add_parser(
        "evaluate-generation", help="how often a scorer recognises generated segments as the colour they were asked for"
    )
    p.add_argument("generator", help="a trained generator: piano roll (CVAE, diffusion) or GPT (run or preset directory)")
    p.add_argument("--scorer", required=True, help="a trained scorer with a piano-roll MIDI encoder (run or preset directory)")
    p.add_argument("--samples-per-colour", type=int, default=16)
    p.add_argument("--colours", default=None, help="comma-separated colour names (default: the eight with training data, all but White)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-steps", type=int, default=None, help="diffusion sampler steps (default: the preset's)")
    p.add_argument("--scheduler", choices=("ddim", "ddpm"), default=None, help="diffusion sampler (default: the preset's)")
    p.add_argument("--guidance-scale", type=float, default=None, help="classifier-free guidance scale (default: the preset's)")
    _add_classifier_guidance_options(p)
    p.add_argument("--data", default=None, help="also score the real segments of this parquet, folder or 'demo', for reference")
    p.add_argument("--split", choices=("train", "validation", "test", "all"), default="test", help="split of --data scored")
    p.add_argument("--out", default=None, help="also write the markdown tables here")
    _add_token_options(p, validity=True)
    p.set_defaults(func=_cmd_evaluate_generation)

    p = sub.add_parser("export", help="export a model's serving functions as SavedModel, torch.export, TorchScript or ONNX")
    p.add_argument("model", help="a run directory (train --out), a preset directory or a built-in preset")
    p.add_argument(
        "--format",
        required=True,
        help="savedmodel (needs KERAS_BACKEND=tensorflow), torch, torchscript or onnx (need KERAS_BACKEND=torch)",
    )
    p.add_argument("--out", required=True, help="export directory (written with a manifest.json)")
    p.add_argument("--function", action="append", default=None, help="export only this function (repeatable; default: all the format holds)")
    p.add_argument("--num-steps", type=int, default=None, help="sampler steps of a diffusion model's generate signature (default: the preset's)")
    p.add_argument("--overwrite", action="store_true", help="replace the content of a non-empty --out")
    p.add_argument(
        "--verify", action="store_true", help="GPT: check that sample.py's greedy tokens equal the live model's (fails naming the first difference)"
    )
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="dotted preset override")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("convert", help="convert a published checkpoint (safetensors / PyTorch, local files) to Keras weights")
    p.add_argument("--model", required=True, help="architecture: wav2vec2, clap_audio, encodec or minilm")
    p.add_argument("--checkpoint", required=True, help="a .safetensors / .bin / .pt / .th file or a Hugging Face model directory")
    p.add_argument("--out", required=True, help="directory to write (config.json, model.weights.h5, metadata.json)")
    p.add_argument("--config", default=None, help="the checkpoint's config.json (default: the one next to the checkpoint)")
    p.add_argument("--preset", default=None, help="take the config from this pretrained preset instead")
    p.add_argument("--overwrite", action="store_true", help="replace the content of a non-empty --out")
    p.set_defaults(func=_cmd_convert)
    return parser


def main(argv=None) -> int:
    """Entry point of the ``chroma-keras`` command."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ChromaKerasError as exc:
        print(f"chroma-keras: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
