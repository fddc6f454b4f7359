"""One HTML page that evaluates a generator against real segments, with its figures.

:func:`evaluation_report` generates ``samples_per_colour`` segments for each colour,
reads the real segments of one split, and writes ``report.html`` beside its figures:

* colour recognition by a scorer, generated and real, with bootstrap intervals and the
  generated segments' confusion matrix (``confusion.png``);
* Fréchet distances between real and generated sets over two embeddings — the symbolic
  statistics (5 numbers per segment) and the scorer's fused embedding — each refused with
  the reason when the sets are too small for the embedding's width;
* symbolic statistics (mean with a bootstrap interval, real beside generated) and
  diversity (mean pairwise distance of the statistics);
* a 2-D projection (PCA) coloured by colour: the VAE's posterior means of the real
  segments, or for other generators the scorer's embedding of real and generated
  segments (``projection.png``, coordinates in ``projection.csv``);
* piano rolls: one generated and one real segment per colour;
* for a token generator (the GPT): token validity — the share of sequences that decode to valid
  MIDI and miditok's token error rate, for the evaluated samples and, with
  ``validity_samples_per_colour``, for constrained and free sampling side by side.

A token generator's sequences are decoded and drawn on the scorer's piano-roll grid
(:func:`~chroma_keras.generation.token_midi.sequence_rolls`, as ``evaluate-generation`` does); the
real segments are read on that grid too. A sequence that is not valid MIDI counts as a segment the
scorer recognises as no colour, and is left out of the statistics and distances.

Every figure carries its settings (backend, seed, sample counts, split, embedding).
"""

from __future__ import annotations

import csv
import html
import pathlib

import numpy as np

from chroma_keras import modes
from chroma_keras.data import keys
from chroma_keras.errors import ModelInputError

FRAMES_PER_BEAT_AT_120_BPM = 0.5  # seconds per beat; a bar of 4/4 at 120 bpm lasts 2 s


def _real_rolls(config, corpus, split, colours):
    """The real segments of ``split`` on the grid of ``config`` (a preset config), with their colour names."""
    from chroma_keras.data.multimodal_dataset import MultimodalDataset

    dataset = MultimodalDataset(corpus, config, split=split, require=("midi",), shuffle=False, augment=False)
    rolls, names = [], []
    for index in range(len(dataset)):
        (batch,) = dataset[index]
        for roll, colour_index in zip(batch[keys.PIANO_ROLL], batch[keys.COLOUR_INDEX]):
            if colour_index >= 0 and modes.COLOURS[int(colour_index)].name in colours:
                rolls.append(np.asarray(roll, np.float32))
                names.append(modes.COLOURS[int(colour_index)].name)
    if not rolls:
        raise ModelInputError(f"evaluate: the {split} split of {corpus} has no MIDI segments of the colours {list(colours)}.")
    return np.stack(rolls), names


def _statistics(rolls, spec) -> dict[str, np.ndarray]:
    from chroma_keras.evaluation.symbolic import symbolic_statistics

    frames_per_bar = max(1, int(round(spec.frames_per_second * 4 * FRAMES_PER_BEAT_AT_120_BPM)))
    return symbolic_statistics(rolls, spec.frames_per_second, frames_per_bar, spec.lowest_pitch)


def _frechet_row(name, real, generated, seed):
    from chroma_keras.evaluation.frechet import frechet_distance

    # FD∞ fits on half-size subsets, so it needs twice the samples of the plain estimate: try it first,
    # then the plain estimate alone, and report the refusal's reason when neither is possible.
    try:
        result = frechet_distance(real, generated, extrapolate=True, seed=seed, embedding=name)
    except ModelInputError:
        try:
            result = frechet_distance(real, generated, extrapolate=False, seed=seed, embedding=name)
        except ModelInputError as exc:
            return {"embedding": name, "value": None, "fd_inf": None, "detail": str(exc), "dim": real.shape[1]}
        detail = f"{result}; too few samples for FD∞"
        return {"embedding": name, "value": result.value, "fd_inf": None, "detail": detail, "dim": result.dim, "interval": _fd_interval(real, generated, seed)}
    return {"embedding": name, "value": result.value, "fd_inf": result.fd_inf, "detail": str(result), "dim": result.dim, "interval": _fd_interval(real, generated, seed)}


def _fd_interval(real, generated, seed) -> str:
    from chroma_keras.evaluation.frechet import frechet_interval

    estimate = frechet_interval(real, generated, seed=seed)
    return f"[{estimate.low:.4g}, {estimate.high:.4g}]"


def _pca_2d(points: np.ndarray) -> np.ndarray:
    centred = points - points.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T


def _plot_confusion(report, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5.5, 4.5))
    image = axes.imshow(report.confusion, cmap="Blues")
    axes.set_xticks(range(len(report.colours)), report.colours, rotation=45, ha="right")
    axes.set_yticks(range(len(report.colours)), report.colours)
    axes.set_xlabel("named by the scorer")
    axes.set_ylabel("asked of the generator")
    for (i, j), count in np.ndenumerate(report.confusion):
        axes.text(j, i, str(count), ha="center", va="center", fontsize=8)
    figure.colorbar(image)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _plot_projection(points, names, kinds, title, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 5))
    for kind, marker in (("real", "o"), ("generated", "x")):
        for colour in dict.fromkeys(names):
            rows = [i for i, (n, k) in enumerate(zip(names, kinds)) if n == colour and k == kind]
            if rows:
                face = colour.lower() if colour not in ("White", "Black") else ("lightgrey" if colour == "White" else "black")
                axes.scatter(points[rows, 0], points[rows, 1], c=face, marker=marker, s=18, label=f"{colour} ({kind})", alpha=0.8)
    axes.set_title(title)
    axes.set_xlabel("first principal component")
    axes.set_ylabel("second principal component")
    axes.legend(fontsize=6, ncol=2)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _table(header, rows) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _estimate(values, seed) -> str:
    from chroma_keras.evaluation.intervals import bootstrap_interval

    values = np.asarray(values, np.float64)
    if len(values) < 2:
        return f"{values.mean():.4f}"
    estimate = bootstrap_interval(values, seed=seed)
    return f"{estimate.value:.4f} [{estimate.low:.4f}, {estimate.high:.4f}]"


def evaluation_report(
    generator,
    scorer,
    corpus,
    out_dir,
    samples_per_colour: int = 16,
    split: str = "test",
    seed: int = 0,
    colours=None,
    names: dict | None = None,
    validity_samples_per_colour: int = 0,
    **generate_kwargs,
) -> pathlib.Path:
    """Evaluate a generator against the real segments of a split and write ``report.html``.

    Args:
        generator: a piano-roll generator (``ConditionalVAE``, ``PianoRollDiffusion``) or a token
            generator (``ChromaticGPT``), whose sequences are drawn on the scorer's grid.
        scorer: a scorer with a piano-roll MIDI encoder on the generator's time axis.
        corpus: the segment source (parquet, folder, ``"demo"``) the real segments come from.
        out_dir: folder for ``report.html`` and its figures (created).
        samples_per_colour: generated segments per colour.
        split: the real segments' split (``"test"``, ``"validation"``, ``"train"`` or ``"all"``).
        seed: generation seed (colour ``i`` uses ``seed + i``) and bootstrap seed.
        colours: colours evaluated (default: those with training data).
        names: how to name the generator and scorer in the settings (e.g. their run folders).
        validity_samples_per_colour: token generator: also sample this many sequences per colour
            with and without constrained decoding for the validity table (0: only the evaluated
            samples' row).
        **generate_kwargs: passed to ``generate`` (``num_steps``...; ``constrained``,
            ``sampling``, ``max_length``... for a token generator), recorded in the settings.

    Returns:
        the path of ``report.html``.

    Raises:
        ModelInputError: a scorer that does not read piano rolls, mismatched time axes,
            ``samples_per_colour < 1``, a split without MIDI segments, or a token generator none
            of whose sequences decodes to MIDI with notes.
    """
    import keras

    from chroma_keras.evaluation.chromatic_consistency import (
        DEFAULT_COLOURS,
        chromatic_consistency,
        check_scorer_reads_piano_rolls,
        fit_rolls_to_spec,
        reference_recognition,
    )
    from chroma_keras.generation.sample_files import piano_roll_image
    from chroma_keras.generation.token_midi import is_token_generator, valid_rolls
    from chroma_keras.preprocessing.pianoroll import PianoRollSpec

    check_scorer_reads_piano_rolls(scorer)
    if int(samples_per_colour) < 1:
        raise ModelInputError(f"samples_per_colour must be >= 1. Received: samples_per_colour={samples_per_colour!r}")
    colours = tuple(modes.parse_colour(c).name for c in (colours or DEFAULT_COLOURS))
    out = pathlib.Path(out_dir)
    (out / "rolls").mkdir(parents=True, exist_ok=True)
    tokens = is_token_generator(generator)
    scorer_spec = PianoRollSpec.from_config(scorer.preset_config or {})
    spec = scorer_spec if tokens else generator.roll_spec()

    generated, targets, unscored, decoded = [], [], {}, []
    for i, colour in enumerate(colours):
        kwargs = dict(condition=colour, num_samples=int(samples_per_colour), seed=int(seed) + i, **generate_kwargs)
        if tokens:
            rolls, part = valid_rolls(generator, spec, **kwargs)
            decoded += part
            unscored[colour] = int(samples_per_colour) - len(rolls)
        else:
            rolls = generator.generate(**kwargs)
        generated.append(rolls)
        targets += [colour] * len(rolls)
    generated = np.concatenate(generated)
    if not len(generated):
        raise ModelInputError(
            f"evaluate: none of the {len(decoded)} generated sequences decodes to MIDI with notes; nothing to compare "
            "(try constrained decoding, a larger --max-length, or a trained model)."
        )
    real, real_names = _real_rolls(scorer.preset_config if tokens else generator.preset_config, corpus, split, colours)

    recognition = chromatic_consistency(generated, targets, scorer, sample_spec=spec, colours=colours, unscored=unscored)
    reference = reference_recognition(scorer, corpus, split=split, colours=colours)
    _plot_confusion(recognition, out / "confusion.png")

    stats_real, stats_generated = _statistics(real, spec), _statistics(generated, spec)
    stat_names = list(stats_real)
    features_real = np.stack([stats_real[n] for n in stat_names], axis=1)
    features_generated = np.stack([stats_generated[n] for n in stat_names], axis=1)
    embed_real = scorer.score({keys.PIANO_ROLL: fit_rolls_to_spec(real, spec, scorer_spec)})["embedding"]
    embed_generated = scorer.score({keys.PIANO_ROLL: fit_rolls_to_spec(generated, spec, scorer_spec)})["embedding"]
    frechet = [
        _frechet_row("symbolic statistics", features_real, features_generated, seed),
        _frechet_row("scorer embedding", embed_real, embed_generated, seed),
    ]

    if hasattr(generator, "encode"):
        latent, _ = generator.encode(real, condition=real_names)
        points, point_names, kinds = _pca_2d(latent), real_names, ["real"] * len(real_names)
        projection_title = "VAE posterior means of the real segments (PCA)"
    else:
        points = _pca_2d(np.concatenate([embed_real, embed_generated]))
        point_names, kinds = real_names + targets, ["real"] * len(real_names) + ["generated"] * len(targets)
        projection_title = "scorer embedding of real and generated segments (PCA)"
    _plot_projection(points, point_names, kinds, projection_title, out / "projection.png")
    with open(out / "projection.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["x", "y", "colour", "kind"])
        writer.writerows((f"{x:.6f}", f"{y:.6f}", n, k) for (x, y), n, k in zip(points, point_names, kinds))

    roll_rows = []
    for colour in colours:
        cells = [colour]
        for kind, rolls, labels in (("generated", generated, targets), ("real", real, real_names)):
            index = next((i for i, name in enumerate(labels) if name == colour), None)
            if index is None:
                cells.append("")
                continue
            image = piano_roll_image(rolls[index], out / "rolls" / f"{kind}_{colour.lower()}.png")
            cells.append(f'<img src="rolls/{image.name}" alt="{kind} {colour}" width="256">')
        roll_rows.append(cells)

    settings = {
        "backend": keras.config.backend(),
        "keras": keras.__version__,
        "seed": int(seed),
        "samples per colour": int(samples_per_colour),
        "generated segments": len(generated),
        "real segments": f"{len(real)} ({split} split of {corpus})",
        "grid": f"{spec.num_pitches} pitches x {spec.num_frames} frames at {spec.frames_per_second} fps",
        **{k: str(v) for k, v in (names or {}).items()},
        **{k: str(v) for k, v in generate_kwargs.items()},
    }
    interval = recognition.rate_interval(seed=int(seed))
    reference_interval = reference.rate_interval(seed=int(seed))
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>chroma_keras evaluation</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:.2em .5em;text-align:right}</style></head><body>",
        f"<h1>Evaluation of {html.escape(str(generator.preset_config.get('name', type(generator).__name__)))}</h1>",
        "<h2>Settings</h2>",
        _table(["setting", "value"], settings.items()),
        "<h2>Colour recognition</h2>",
        f"<p>Generated: <b>{recognition.rate:.1%}</b> (95% bootstrap CI {interval.low:.1%}–{interval.high:.1%}); "
        f"real {split} segments: <b>{reference.rate:.1%}</b> (CI {reference_interval.low:.1%}–{reference_interval.high:.1%}); "
        f"chance {recognition.chance:.1%}. The scorer names the colour it finds likeliest.</p>",
        _table(
            ["colour", "generated", "recognised", "real", "recognised (real)"],
            [
                (c, recognition.counts[c], f"{recognition.rates[c]:.1%}", reference.counts.get(c, 0), f"{reference.rates.get(c, 0.0):.1%}")
                for c in colours
            ],
        ),
        "<p>Likeliest mode is the colour's (generated): "
        + html.escape(", ".join(f"{a} {r:.1%}" for a, r in recognition.axis_rates.items()))
        + "</p>",
        '<img src="confusion.png" alt="confusion matrix of the generated segments">',
        "<h2>Fréchet distance, real vs generated</h2>",
        _table(
            ["embedding", "dim", "FD", "FD∞", "95% bootstrap CI of FD", "detail"],
            [
                (
                    r["embedding"],
                    r["dim"],
                    "refused" if r["value"] is None else f"{r['value']:.4g}",
                    "" if r["fd_inf"] is None else f"{r['fd_inf']:.4g}",
                    r.get("interval", ""),
                    r["detail"],
                )
                for r in frechet
            ],
        ),
        "<h2>Symbolic statistics (mean, 95% bootstrap CI)</h2>",
        _table(
            ["statistic", "real", "generated"],
            [(n, _estimate(stats_real[n], seed), _estimate(stats_generated[n], seed)) for n in stat_names],
        ),
        "<p>Diversity (mean pairwise distance of the standardised statistics, 95% bootstrap CI over segments): real "
        f"{_diversity(_standardise(features_real, features_real), seed)}, generated "
        f"{_diversity(_standardise(features_generated, features_real), seed)}.</p>",
        f"<h2>Projection</h2><p>{html.escape(projection_title)}; coordinates in projection.csv.</p>",
        '<img src="projection.png" alt="2-D projection coloured by colour">',
        "<h2>Piano rolls</h2><p>Pitch up, time to the right, darker = louder.</p>",
        "<table><thead><tr><th>colour</th><th>generated</th><th>real</th></tr></thead><tbody>"
        + "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in roll_rows)
        + "</tbody></table>",
    ]
    if tokens:
        parts.append(_validity_section(generator, decoded, colours, validity_samples_per_colour, seed, generate_kwargs))
    parts.append("</body></html>")
    path = out / "report.html"
    path.write_text("\n".join(parts) + "\n")
    return path


# Columns of the token validity table (one row per set of sequences).
VALIDITY_HEADER = ("sequences", "decoding", "count", "valid MIDI", "error-free", "token error rate (mean / max)", "ended with eos", "notes", "MIDI tokens")


def _validity_section(generator, decoded, colours, samples_per_colour, seed, generate_kwargs) -> str:
    """The token validity table: the evaluated samples, then constrained and free sampling when asked for."""
    from chroma_keras.evaluation.token_validity import token_validity, validity_row
    from chroma_keras.generation.token_midi import CONSTRAINED_BY_DEFAULT

    # The evaluated samples came from generate_midi, which decodes constrained unless told otherwise.
    setting = "constrained" if generate_kwargs.get("constrained", CONSTRAINED_BY_DEFAULT) else "unconstrained"
    rows = [("evaluated samples", validity_row(setting, decoded))]
    if int(samples_per_colour) > 0:
        sampling = {k: v for k, v in generate_kwargs.items() if k != "constrained"}
        extra = token_validity(generator, colours=colours, samples_per_colour=int(samples_per_colour), seed=int(seed), **sampling)
        rows += [(f"{int(samples_per_colour)} more per colour", row) for row in extra.rows]
    cells = [(name, *r.cells()) for name, r in rows]
    return (
        "<h2>Token validity</h2><p>Valid MIDI: miditok decodes the sequence's MIDI section to a file with notes that "
        "reads back. Token error rate: miditok's tokens_errors (a token type that cannot follow the previous one, a "
        "position going back, a repeated pitch) over the MIDI tokens.</p>" + _table(VALIDITY_HEADER, cells)
    )


def _diversity(features, seed, num_resamples: int = 200) -> str:
    """Mean pairwise distance with a percentile bootstrap interval over resampled segments."""
    from chroma_keras.evaluation.symbolic import mean_pairwise_distance

    value = mean_pairwise_distance(features)
    rng = np.random.default_rng(seed)
    draws = [mean_pairwise_distance(features[rng.integers(0, len(features), len(features))]) for _ in range(num_resamples)]
    low, high = np.percentile(draws, [2.5, 97.5])
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def _standardise(features, reference):
    """Scale features by the real set's mean and spread, so each statistic counts alike in distances."""
    spread = reference.std(axis=0)
    return (features - reference.mean(axis=0)) / np.where(spread > 0, spread, 1.0)


__all__ = ["evaluation_report"]
