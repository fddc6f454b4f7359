"""The ``chroma-keras`` command."""

from __future__ import annotations

import argparse
import sys

from chroma_keras.errors import ChromaKerasError


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
    from chroma_keras import config
    from chroma_keras.demo import run_demo

    overrides = config.parse_overrides(args.set) if args.set else {}
    audio = None if args.audio == "none" else args.audio
    run_demo(args.out, preset=args.preset, epochs=args.epochs, seed=args.seed, audio=audio, **_flatten(overrides))
    return 0


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
