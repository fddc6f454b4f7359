"""The canonical chromatic table (DESIGN §2), label parsing and conditioning ids."""

import numpy as np
import pytest

from chroma_keras import modes
from chroma_keras.errors import LabelError

# Golden soft targets from DESIGN §2 (axis order: temporal, spatial, ontological).
U = [1 / 3, 1 / 3, 1 / 3]
GOLDEN_TARGETS = {
    "Red": ([0.8, 0.1, 0.1], [0.8, 0.1, 0.1], [0.1, 0.1, 0.8]),
    "Orange": ([0.8, 0.1, 0.1], [0.8, 0.1, 0.1], [0.8, 0.1, 0.1]),
    "Yellow": ([0.1, 0.1, 0.8], [0.1, 0.8, 0.1], [0.8, 0.1, 0.1]),
    "Green": ([0.1, 0.1, 0.8], [0.1, 0.8, 0.1], [0.1, 0.8, 0.1]),
    "Blue": ([0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.1, 0.8, 0.1]),
    "Indigo": (U, U, [0.1, 0.4, 0.4]),
    "Violet": ([0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.1, 0.1, 0.8]),
    "Black": (U, U, U),
    "White": (U, U, U),
}


@pytest.mark.parametrize("colour", list(GOLDEN_TARGETS))
def test_soft_targets_match_the_canonical_table(colour):
    targets = modes.soft_targets(colour)
    for axis, expected in zip(modes.AXES, GOLDEN_TARGETS[colour]):
        np.testing.assert_allclose(targets[axis], expected, atol=1e-7)


def test_indigo_ontological_target_sums_to_point_nine_by_design():
    assert modes.soft_targets("Indigo")["ontological"].sum() == pytest.approx(0.9)


def test_confidence_is_zero_only_for_black_and_white():
    assert {c.name for c in modes.COLOURS if modes.confidence(c) == 0} == {"Black", "White"}
    assert modes.confidence("Red") == 1.0


def test_no_two_non_uniform_colours_share_a_target():
    seen = {}
    for colour in modes.COLOURS:
        key = tuple(np.round(np.concatenate(list(modes.soft_targets(colour).values())), 4))
        if colour.name in ("Black", "White"):
            continue
        assert key not in seen, f"{colour.name} repeats {seen.get(key)}"
        seen[key] = colour.name


@pytest.mark.parametrize("label", ["Red", "red", "R", " r ", "RED"])
def test_parse_colour_accepts_names_and_letters(label):
    assert modes.parse_colour(label).name == "Red"


def test_white_is_letter_a_and_has_no_training_data():
    white = modes.parse_colour("A")
    assert white.name == "White" and not white.has_training_data


def test_unknown_colour_names_the_label_and_suggests():
    with pytest.raises(LabelError, match=r"'Redd'.*Did you mean 'red'"):
        modes.parse_colour("Redd")


@pytest.mark.parametrize(
    "axis,label,expected",
    [
        ("temporal", "Past", ("past",)),
        ("spatial", "Person", ("person",)),
        ("ontological", "Known, Forgotten", ("known", "forgotten")),
        ("ontological", ["Imagined"], ("imagined",)),
        ("temporal", None, ()),
        ("temporal", "", ()),
        ("temporal", float("nan"), ()),
        ("spatial", "None", ()),
    ],
)
def test_parse_axis_modes(axis, label, expected):
    assert modes.parse_axis_modes(axis, label) == expected


def test_unknown_axis_mode_names_axis_label_and_allowed_values():
    with pytest.raises(LabelError, match=r"Unknown ontological mode 'Knwn'.*'Known, Knwn'.*Imagined.*Forgotten.*Known"):
        modes.parse_axis_modes("ontological", "Known, Knwn")
    with pytest.raises(LabelError, match="Unknown axis 'temporl'.*Did you mean 'temporal'"):
        modes.parse_axis_modes("temporl", "Past")


def test_condition_ids_and_multi_hot():
    red = modes.resolve_condition("Red")
    assert red.ids() == ((0,), (0,), (2,))
    assert red.primary_ids() == (0, 0, 2)
    np.testing.assert_array_equal(red.multi_hot(), [1, 0, 0, 1, 0, 0, 0, 0, 1])
    indigo = modes.resolve_condition("Indigo")
    assert indigo.primary_ids() == (modes.NONE_ID, modes.NONE_ID, modes.NONE_ID)
    np.testing.assert_allclose(indigo.multi_hot(), [0, 0, 0, 0, 0, 0, 0, 0.5, 0.5])
    np.testing.assert_array_equal(modes.resolve_condition(None).multi_hot(), np.zeros(modes.MODE_VECTOR_SIZE))


def test_conditions_can_name_combinations_no_album_has():
    novel = modes.resolve_condition({"temporal": "Future", "spatial": "thing", "ontological": "known"})
    assert novel.colour() is None
    assert novel.describe() == "future/thing/known"
    assert modes.resolve_condition("future,thing,known") == novel
    assert modes.resolve_condition("future,-,known").spatial == ()


def test_every_colour_round_trips_through_its_condition():
    for colour in modes.COLOURS:
        back = colour.condition().colour()
        # White has Black's (empty) modes; it maps to Black, the colour with training data.
        assert back.name == ("Black" if colour.name == "White" else colour.name)


def test_bad_conditions_raise_clear_errors():
    with pytest.raises(LabelError, match="Unknown axis 'tempo'"):
        modes.resolve_condition({"tempo": "past"})
    with pytest.raises(LabelError, match="lists 2 modes; expected one per axis"):
        modes.resolve_condition("future,thing")
    with pytest.raises(LabelError, match="Cannot use 3"):
        modes.resolve_condition(3)


def test_modes_from_the_data_label_columns():
    cond = modes.modes_from_labels("Present", "Person", "Known, Forgotten")
    assert cond.ids() == ((1,), (2,), (2, 1))
