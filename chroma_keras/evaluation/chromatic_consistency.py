"""Chromatic consistency: does a segment generated for Red sound Red to a scorer?

The measure behind the generators' model cards. A chromatic
:class:`~chroma_keras.models.Scorer` with a piano-roll MIDI encoder (e.g.
``scorer_midi_only``, trained on other songs) names the colour and the per-axis
modes of each segment, and the report counts how often it names the target:

* :func:`chromatic_consistency` — segments you already have, with their targets;
* :func:`colour_recognition` — generates ``samples_per_colour`` segments per colour first;
* :func:`reference_recognition` — the same on real held-out segments, the ceiling to read the others against.

Chance is one over the number of colours evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from chroma_keras import modes
from chroma_keras.data import keys
from chroma_keras.errors import ModelInputError
from chroma_keras.preprocessing.pianoroll import PianoRollSpec

# The colours a recognition run asks for by default: the eight with training data
# (White, the album being generated, has none; Black names no mode but has songs).
DEFAULT_COLOURS = tuple(c.name for c in modes.COLOURS if c.has_training_data)


@dataclass
class RecognitionReport:
    """What :func:`colour_recognition` (or :func:`reference_recognition`) measured.

    Attributes:
        colours: the colours asked for, in order.
        rates: colour → fraction of its segments the scorer named as that colour.
        confusion: ``[asked, named]`` counts over ``colours`` (a segment named as a
            colour outside ``colours`` counts in no column).
        counts: colour → segments scored.
        axis_rates: axis → fraction of the segments whose colour has a mode on that
            axis for which the scorer's likeliest mode is one of the colour's.
        settings: the generation settings used (scheduler, steps, guidance...) or the data read.
    """

    colours: tuple
    rates: dict
    confusion: np.ndarray
    counts: dict
    axis_rates: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Recognition rate over all segments."""
        return float(np.trace(self.confusion) / max(1, sum(self.counts.values())))

    def rate_interval(self, confidence: float = 0.95, seed: int = 0):
        """The overall rate with a bootstrap confidence interval over segments (an :class:`Estimate`)."""
        from chroma_keras.evaluation.intervals import bootstrap_interval

        total = sum(self.counts.values())
        hits = np.zeros(total)
        hits[: int(np.trace(self.confusion))] = 1.0
        return bootstrap_interval(hits, confidence=confidence, seed=seed)

    @property
    def chance(self) -> float:
        """The rate of a scorer that names one of the colours at random."""
        return 1.0 / len(self.colours)

    def to_markdown(self) -> str:
        """A table of per-colour rates with the overall rate, chance and per-axis rates."""
        settings = ", ".join(f"{k}={v}" for k, v in self.settings.items())
        lines = [
            f"Colour recognition ({sum(self.counts.values())} segments{', ' + settings if settings else ''}):",
            "",
            "| colour | segments | recognised |",
            "|---|---|---|",
        ]
        lines += [f"| {colour} | {self.counts[colour]} | {self.rates[colour]:.1%} |" for colour in self.colours]
        overall = f"Overall {self.rate:.1%}"
        if sum(self.counts.values()) >= 2:
            estimate = self.rate_interval()
            overall += f" (95% bootstrap CI {estimate.low:.1%}–{estimate.high:.1%})"
        lines += ["", f"{overall}; chance {self.chance:.1%}."]
        if self.axis_rates:
            lines.append("Likeliest mode is the colour's: " + ", ".join(f"{a} {r:.1%}" for a, r in self.axis_rates.items()) + ".")
        return "\n".join(lines)


def check_time_axes(source: PianoRollSpec, target: PianoRollSpec) -> None:
    """Raise a clear error unless a generator's grid ``source`` and a scorer's grid ``target``
    share the time axis (frame rate and frame count); pitch rows may differ."""
    if source.frames_per_second != target.frames_per_second or source.num_frames != target.num_frames:
        raise ModelInputError(
            "the scorer's piano roll must have the generator's time axis. Received: generator "
            f"{source.num_frames} frames at {source.frames_per_second} fps, scorer {target.num_frames} frames at "
            f"{target.frames_per_second} fps; set the scorer's preprocessing.midi.piano_roll to match."
        )


def pitch_row_overlap(source: PianoRollSpec, target: PianoRollSpec) -> tuple[int, int]:
    """The MIDI pitches ``[low, high)`` both grids hold (``high <= low`` when they share none)."""
    low = max(source.lowest_pitch, target.lowest_pitch)
    high = min(source.lowest_pitch + source.num_pitches, target.lowest_pitch + target.num_pitches)
    return low, high


def fit_rolls_to_spec(rolls: np.ndarray, source: PianoRollSpec, target: PianoRollSpec) -> np.ndarray:
    """Re-place piano rolls on another grid with the same time axis: pitch rows are padded or cropped.

    Args:
        rolls: ``[batch, source.num_pitches, source.num_frames]``.
        source: the grid the rolls are on.
        target: the grid wanted.

    Returns:
        ``[batch, target.num_pitches, target.num_frames]`` float32; notes outside the
        target's pitch range are dropped.

    Raises:
        ModelInputError: when the time axes differ (frame rate or frame count).
    """
    check_time_axes(source, target)
    rolls = np.asarray(rolls, np.float32)
    out = np.zeros((rolls.shape[0], target.num_pitches, target.num_frames), np.float32)
    low, high = pitch_row_overlap(source, target)
    if high > low:
        out[:, low - target.lowest_pitch : high - target.lowest_pitch] = rolls[:, low - source.lowest_pitch : high - source.lowest_pitch]
    return out


def check_scorer_reads_piano_rolls(scorer) -> None:
    """Raise a clear error unless ``scorer`` is a chromatic scorer with a piano-roll MIDI encoder."""
    encoder = getattr(scorer, "encoders", {}).get("midi")
    if encoder is None or keys.PIANO_ROLL not in getattr(encoder, "input_keys", ()):
        raise ModelInputError(
            "colour recognition needs a scorer with a piano-roll MIDI encoder (e.g. scorer_midi_only). "
            f"Received: {type(scorer).__name__} with encoders {sorted(getattr(scorer, 'encoders', {}))}"
        )


class _Tally:
    """Counts the scorer's colour and per-axis verdicts for segments asked to be given colours."""

    def __init__(self, colours):
        self.colours = colours
        self.confusion = np.zeros((len(colours), len(colours)), np.int64)
        self.counts = dict.fromkeys(colours, 0)
        self.axis_hits = dict.fromkeys(modes.AXES, 0)
        self.axis_totals = dict.fromkeys(modes.AXES, 0)

    def add(self, colour: str, scores: dict) -> None:
        i = self.colours.index(colour)
        self.counts[colour] += len(scores["colour"])
        for index in np.argmax(scores["colour"], axis=-1):
            name = modes.COLOUR_NAMES[int(index)]
            if name in self.colours:
                self.confusion[i, self.colours.index(name)] += 1
        wanted = modes.resolve_condition(colour).ids()
        for axis, ids in zip(modes.AXES, wanted):
            if ids:
                self.axis_hits[axis] += int(np.isin(np.argmax(scores[axis], axis=-1), ids).sum())
                self.axis_totals[axis] += len(scores[axis])

    def add_unscored(self, colour: str, count: int) -> None:
        """Segments asked to be ``colour`` that could not be scored (a token generator's undecodable
        sequences): they count as segments, recognised as no colour."""
        self.counts[colour] += int(count)
        wanted = modes.resolve_condition(colour).ids()
        for axis, ids in zip(modes.AXES, wanted):
            if ids:
                self.axis_totals[axis] += int(count)

    def report(self, settings) -> RecognitionReport:
        rates = {c: float(self.confusion[i, i] / max(1, self.counts[c])) for i, c in enumerate(self.colours)}
        axis_rates = {a: self.axis_hits[a] / self.axis_totals[a] for a in modes.AXES if self.axis_totals[a]}
        return RecognitionReport(self.colours, rates, self.confusion, self.counts, axis_rates, dict(settings))


def _colour_names(colours) -> tuple:
    names = tuple(modes.parse_colour(c).name for c in colours)
    if not names:
        raise ModelInputError("colour recognition needs at least one colour.")
    return names


def chromatic_consistency(samples, targets, scorer, sample_spec=None, colours=DEFAULT_COLOURS, unscored=None) -> RecognitionReport:
    """How often a scorer names each segment's target colour (and its target mode on each axis).

    Args:
        samples: piano rolls ``[n, pitches, frames]`` (velocities, 0 = silent).
        targets: ``n`` colour names (or letters), the colour each segment was made for.
        scorer: a scorer with a piano-roll MIDI encoder.
        sample_spec: the :class:`~chroma_keras.preprocessing.pianoroll.PianoRollSpec` of
            ``samples`` when it differs from the scorer's (pitch rows are then padded or
            cropped; the time axes must agree).
        colours: the colours of the confusion matrix; every target must be one of them.
        unscored: ``{colour: count}`` of further segments made for a colour that have no roll (a
            token generator's sequences that are not valid MIDI); they count as recognised as no colour.

    Returns:
        a :class:`RecognitionReport`.

    Raises:
        ModelInputError: a scorer without a piano-roll encoder, a count mismatch between
            samples and targets, a target outside ``colours`` or mismatched time axes.
        LabelError: an unknown colour name.
    """
    check_scorer_reads_piano_rolls(scorer)
    colours = _colour_names(colours)
    samples = np.asarray(samples, np.float32)
    targets = [modes.parse_colour(t).name for t in targets]
    if samples.ndim != 3 or len(samples) != len(targets):
        raise ModelInputError(
            f"chromatic_consistency needs samples [n, pitches, frames] and n targets. "
            f"Received samples of shape {samples.shape} and {len(targets)} targets."
        )
    unscored = {modes.parse_colour(c).name: int(n) for c, n in (unscored or {}).items()}
    outside = sorted((set(targets) | set(unscored)) - set(colours))
    if outside:
        raise ModelInputError(f"chromatic_consistency: targets {outside} are not among the colours evaluated {list(colours)}.")
    target_spec = PianoRollSpec.from_config(scorer.preset_config or {})
    if sample_spec is not None:
        samples = fit_rolls_to_spec(samples, sample_spec, target_spec)
    tally = _Tally(colours)
    if len(samples):
        scores = scorer.score({keys.PIANO_ROLL: samples})
        targets = np.asarray(targets)
        for colour in colours:
            rows = targets == colour
            if rows.any():
                tally.add(colour, {k: v[rows] for k, v in scores.items()})
    for colour, count in unscored.items():
        tally.add_unscored(colour, count)
    return tally.report({})


def colour_recognition(
    generator,
    scorer,
    colours=DEFAULT_COLOURS,
    samples_per_colour: int = 16,
    seed: int = 0,
    guide=None,
    guide_scale: float = 1.0,
    **generate_kwargs,
):
    """Generate for each colour and count how often the scorer names the colour asked for.

    Args:
        generator: a piano-roll generator with ``generate(condition, num_samples, seed, ...)``
            and ``roll_spec()`` (``PianoRollDiffusion``, ``ConditionalVAE``), or a token
            generator (``ChromaticGPT``) whose sequences are decoded to MIDI and rendered on the
            scorer's grid (:func:`~chroma_keras.generation.token_midi.sequence_rolls`).
        scorer: a :class:`~chroma_keras.models.Scorer` with a piano-roll MIDI encoder; its
            grid must share a piano-roll generator's time axis (pitch rows are padded or cropped).
        colours: colour names to ask for.
        samples_per_colour: samples per colour.
        seed: generation seed; colour ``i`` uses ``seed + i``.
        guide: a scorer whose gradients steer each colour's samples toward it (classifier
            guidance, :func:`~chroma_keras.generation.guidance.scorer_guidance`; generators with
            ``classifier_guidance``, i.e. diffusion). Use a different scorer from ``scorer``, or
            the judge grades its own pull. Colours that name no mode (Black) are sampled unguided.
        guide_scale: classifier-guidance step size.
        **generate_kwargs: passed to ``generate`` (``num_steps``, ``scheduler``,
            ``guidance_scale``...; for a token generator ``constrained``, ``sampling``,
            ``max_length``...) and recorded in the report.

    Returns:
        a :class:`RecognitionReport`. A token generator's sequence that does not decode to
        MIDI with notes counts as a segment recognised as no colour.

    Raises:
        ModelInputError: a scorer without a piano-roll encoder, mismatched time axes,
            ``samples_per_colour < 1`` or an empty ``colours``.
        LabelError: an unknown colour name.
    """
    from chroma_keras.generation.token_midi import is_token_generator, valid_rolls

    check_scorer_reads_piano_rolls(scorer)
    if int(samples_per_colour) < 1:
        raise ModelInputError(f"samples_per_colour must be >= 1. Received: samples_per_colour={samples_per_colour!r}")
    colours = _colour_names(colours)
    target = PianoRollSpec.from_config(scorer.preset_config or {})
    tokens = is_token_generator(generator)
    source = None if tokens else generator.roll_spec()
    if guide is not None:
        from chroma_keras.generation.guidance import names_a_mode, scorer_guidance

        check_accepts_classifier_guidance(generator)
        check_scorer_reads_piano_rolls(guide)
    tally = _Tally(colours)
    for i, colour in enumerate(colours):
        kwargs = dict(condition=colour, num_samples=int(samples_per_colour), seed=int(seed) + i, **generate_kwargs)
        if guide is not None and names_a_mode(colour):
            # A colour that names no mode (Black) has nothing to pull toward: it is sampled unguided.
            kwargs.update(classifier_guidance=scorer_guidance(guide, colour, source), classifier_scale=float(guide_scale))
        if tokens:
            rolls, decoded = valid_rolls(generator, target, **kwargs)
            if len(rolls):
                tally.add(colour, scorer.score({keys.PIANO_ROLL: rolls}))
            tally.add_unscored(colour, len(decoded) - len(rolls))
        else:
            rolls = generator.generate(**kwargs)
            tally.add(colour, scorer.score({keys.PIANO_ROLL: fit_rolls_to_spec(rolls, source, target)}))
    settings = dict(generate_kwargs)
    if guide is not None:
        from chroma_keras.generation.guidance import model_label

        settings.update(classifier_guide=model_label(guide), classifier_scale=float(guide_scale))
    return tally.report(settings)


def check_accepts_classifier_guidance(generator) -> None:
    """Raise a clear error unless ``generator.generate`` takes ``classifier_guidance`` (diffusion models)."""
    import inspect

    if "classifier_guidance" not in inspect.signature(generator.generate).parameters:
        raise ModelInputError(
            f"classifier guidance steers a diffusion sampler; {generator.name} is a {type(generator).__name__}."
        )


def reference_recognition(scorer, corpus, split: str = "test", colours=DEFAULT_COLOURS):
    """The same measure on real segments: how often the scorer names a held-out segment's own colour.

    This is the ceiling to read :func:`colour_recognition` against: generated
    segments are recognised as often as real ones when the generator has learned
    what the scorer can hear.

    Args:
        scorer: a scorer with a piano-roll MIDI encoder (its preset sets the grid and the split).
        corpus: a segment parquet, folder, ``"demo"`` or an open source.
        split: ``"train"``, ``"validation"``, ``"test"`` or ``"all"``.
        colours: colours counted; segments of other colours are left out.

    Returns:
        a :class:`RecognitionReport` (``settings`` names the split).
    """
    from chroma_keras.data.multimodal_dataset import MultimodalDataset

    check_scorer_reads_piano_rolls(scorer)
    colours = _colour_names(colours)
    dataset = MultimodalDataset(corpus, scorer.preset_config, split=split, require=("midi",), shuffle=False, augment=False)
    tally = _Tally(colours)
    for index in range(len(dataset)):
        (batch,) = dataset[index]
        scores = scorer.score({keys.PIANO_ROLL: batch[keys.PIANO_ROLL]})
        for colour in colours:
            rows = batch[keys.COLOUR_INDEX] == modes.parse_colour(colour).index
            if rows.any():
                tally.add(colour, {k: v[rows] for k, v in scores.items()})
    return tally.report({"split": split})


__all__ = [
    "DEFAULT_COLOURS",
    "RecognitionReport",
    "check_scorer_reads_piano_rolls",
    "chromatic_consistency",
    "colour_recognition",
    "fit_rolls_to_spec",
    "reference_recognition",
]
