"""Colour recognition of generated segments: grid re-placement, confusion counting and errors."""

import numpy as np
import pytest

from chroma_keras import modes
from chroma_keras.data import keys
from chroma_keras.errors import LabelError, ModelInputError
from chroma_keras.evaluation.chromatic_consistency import (
    DEFAULT_COLOURS,
    chromatic_consistency,
    colour_recognition,
    fit_rolls_to_spec,
)
from chroma_keras.preprocessing.pianoroll import PianoRollSpec


class _RegisterGenerator:
    """Puts one note per roll at a pitch row that encodes the colour asked for."""

    lowest_pitch, num_pitches, frames_per_second, num_frames = 40, 16, 4.0, 8

    def __init__(self, wrong=()):
        self.wrong = set(wrong)
        self.calls = []

    def roll_spec(self):
        return PianoRollSpec(self.lowest_pitch, self.num_pitches, self.frames_per_second, self.num_frames)

    def generate(self, condition, num_samples, seed, **kwargs):
        self.calls.append((condition, num_samples, seed, kwargs))
        index = modes.parse_colour(condition).index
        rolls = np.zeros((num_samples, self.num_pitches, self.num_frames), np.float32)
        rolls[:, index, :] = 0.8
        if condition in self.wrong:  # the first sample of these colours sounds like Red
            rolls[0] = 0.0
            rolls[0, modes.parse_colour("Red").index, :] = 0.8
        return rolls


class _RowScorer:
    """Names the colour whose index is the (scorer-grid) row that sounds, offset by the grid shift."""

    class _Encoder:
        input_keys = (keys.PIANO_ROLL,)

    def __init__(self, spec):
        self.encoders = {"midi": self._Encoder()}
        self.preset_config = {"preprocessing": {"midi": {"piano_roll": spec}}}
        self.shift = 40 - spec["lowest_pitch"]

    def score(self, batch):
        rolls = batch[keys.PIANO_ROLL]
        rows = np.argmax(rolls.sum(axis=2), axis=1) - self.shift
        # Every axis votes for mode 0 (past / thing / imagined).
        axes = {axis: np.tile([[0.6, 0.3, 0.1]], (len(rows), 1)) for axis in modes.AXES}
        return {"colour": np.eye(modes.NUM_COLOURS)[rows], **axes}


SCORER_GRID = {"lowest_pitch": 36, "num_pitches": 24, "frames_per_second": 4.0, "num_frames": 8}


def test_fit_rolls_to_spec_pads_and_crops_pitch_rows():
    rolls = np.arange(2 * 4 * 3, dtype=np.float32).reshape(2, 4, 3)
    source = PianoRollSpec(60, 4, 2.0, 3)
    padded = fit_rolls_to_spec(rolls, source, PianoRollSpec(58, 8, 2.0, 3))
    np.testing.assert_array_equal(padded[:, 2:6], rolls)
    assert not padded[:, :2].any() and not padded[:, 6:].any()
    cropped = fit_rolls_to_spec(rolls, source, PianoRollSpec(61, 2, 2.0, 3))
    np.testing.assert_array_equal(cropped, rolls[:, 1:3])
    with pytest.raises(ModelInputError, match="time axis"):
        fit_rolls_to_spec(rolls, source, PianoRollSpec(60, 4, 4.0, 3))


def test_confusion_and_rates_count_what_the_scorer_names():
    generator = _RegisterGenerator(wrong={"Blue", "Black"})
    report = colour_recognition(generator, _RowScorer(SCORER_GRID), samples_per_colour=4, seed=10, num_steps=7)
    assert report.colours == DEFAULT_COLOURS and "White" not in report.colours
    assert report.rates["Blue"] == 0.75 and report.rates["Black"] == 0.75 and report.rates["Green"] == 1.0
    red = DEFAULT_COLOURS.index("Red")
    assert report.confusion[DEFAULT_COLOURS.index("Blue"), red] == 1
    assert report.confusion.sum() == 4 * len(DEFAULT_COLOURS) and set(report.counts.values()) == {4}
    # Mode 0 is right for the colours whose mode on that axis is mode 0; Black names no mode and is left out.
    for axis in modes.AXES:
        named = [c for c in DEFAULT_COLOURS if modes.resolve_condition(c).ids()[modes.AXES.index(axis)]]
        right = [c for c in named if 0 in modes.resolve_condition(c).ids()[modes.AXES.index(axis)]]
        assert report.axis_rates[axis] == pytest.approx(len(right) / len(named))
    assert report.rate == pytest.approx(30 / 32) and report.chance == pytest.approx(1 / 8)
    # Colour i is generated with seed + i and the generation settings are passed through and recorded.
    assert [c[2] for c in generator.calls] == list(range(10, 18)) and generator.calls[0][3] == {"num_steps": 7}
    assert report.settings == {"num_steps": 7} and "| Blue | 4 | 75.0% |" in report.to_markdown()


def test_bad_inputs_raise_clear_errors():
    generator = _RegisterGenerator()
    with pytest.raises(ModelInputError, match="piano-roll MIDI encoder"):
        colour_recognition(generator, object())
    with pytest.raises(ModelInputError, match="samples_per_colour"):
        colour_recognition(generator, _RowScorer(SCORER_GRID), samples_per_colour=0)
    with pytest.raises(LabelError, match="Mauve"):
        colour_recognition(generator, _RowScorer(SCORER_GRID), colours=["Red", "Mauve"])
    with pytest.raises(ModelInputError, match="time axis"):
        colour_recognition(generator, _RowScorer({**SCORER_GRID, "num_frames": 16}))


def test_chromatic_consistency_of_given_segments():
    generator = _RegisterGenerator()
    scorer = _RowScorer(SCORER_GRID)
    spec = PianoRollSpec(40, 16, 4.0, 8)
    rolls = np.concatenate([generator.generate("Red", 3, 0), generator.generate("Blue", 2, 0)])
    targets = ["Red", "R", "Red", "Blue", "Violet"]  # the last is made for Violet but sounds Blue
    report = chromatic_consistency(rolls, targets, scorer, sample_spec=spec, colours=["Red", "Blue", "Violet"])
    assert report.counts == {"Red": 3, "Blue": 1, "Violet": 1}
    assert report.rates == {"Red": 1.0, "Blue": 1.0, "Violet": 0.0}
    assert report.confusion[2, 1] == 1 and report.rate == pytest.approx(4 / 5)
    estimate = report.rate_interval()
    assert estimate.low <= 0.8 <= estimate.high and "95% bootstrap CI" in report.to_markdown()
    with pytest.raises(ModelInputError, match="not among the colours"):
        chromatic_consistency(rolls, targets, scorer, sample_spec=spec, colours=["Red", "Blue"])
    with pytest.raises(ModelInputError, match="and 5 targets"):
        chromatic_consistency(rolls[:4], targets, scorer, sample_spec=spec)
