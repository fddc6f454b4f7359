"""The chromatic modes: the one place that knows colours and their axes.

Three independent axes, each with three modes, in this fixed order:

* temporal: past, present, future
* spatial: thing, place, person (the data calls this axis "objectional")
* ontological: imagined, forgotten, known

A colour (album) names at most one mode per axis, except Indigo whose
ontological axis is "Known, Forgotten". Black and White name no mode at all.

Conditioning is per axis: a :class:`ModeCondition` holds the modes chosen on
each axis (possibly none, possibly combinations no album has), and turns them
into integer ids or a multi-hot vector that models embed axis by axis.

Example:

>>> from chroma_keras import modes
>>> modes.soft_targets("Indigo")["ontological"]
array([0.1, 0.4, 0.4], dtype=float32)
>>> modes.resolve_condition({"temporal": "future", "spatial": "thing", "ontological": "known"}).ids()
((2,), (0,), (2,))
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Iterable, Mapping, Union

import numpy as np

from chroma_keras.errors import LabelError

AXES = ("temporal", "spatial", "ontological")
AXIS_MODES = {
    "temporal": ("past", "present", "future"),
    "spatial": ("thing", "place", "person"),
    "ontological": ("imagined", "forgotten", "known"),
}
MODES_PER_AXIS = 3
# Per-axis id of the learned "no mode on this axis" embedding.
NONE_ID = MODES_PER_AXIS
# Length of the multi-hot mode vector: one block of MODES_PER_AXIS per axis, in AXES order.
MODE_VECTOR_SIZE = len(AXES) * MODES_PER_AXIS
# The data's column for each axis (DESIGN §3); the spatial axis is "objectional" there.
AXIS_COLUMNS = {
    "temporal": "rainbow_color_temporal_mode",
    "spatial": "rainbow_color_objectional_mode",
    "ontological": "rainbow_color_ontological_mode",
}

PRIMARY_WEIGHT = 0.8
SECONDARY_WEIGHT = 0.1
# Indigo's two ontological modes each get this weight; the third keeps SECONDARY_WEIGHT,
# so the vector sums to 0.9 on purpose (canonical table, DESIGN §2).
SHARED_WEIGHT = 0.4

_NONE_LABELS = {"", "none", "null", "nan", "-", "—"}


@dataclass(frozen=True)
class Colour:
    """One row of the canonical chromatic table.

    Attributes:
        name: colour name, e.g. "Red".
        letter: one-letter mnemonic, e.g. "R" (White is "A").
        temporal: modes on the temporal axis (empty when the colour names none).
        spatial: modes on the spatial axis.
        ontological: modes on the ontological axis (Indigo names two).
        confidence: the confidence target: 0 for Black and White, 1 otherwise.
        hex: display colour as "#RRGGBB".
        has_training_data: False only for White, the album being generated.
    """

    name: str
    letter: str
    temporal: tuple[str, ...]
    spatial: tuple[str, ...]
    ontological: tuple[str, ...]
    confidence: float
    hex: str
    has_training_data: bool = True

    @property
    def index(self) -> int:
        """Position of this colour in :data:`COLOURS` (the colour head's class id)."""
        return COLOUR_NAMES.index(self.name)

    def condition(self) -> "ModeCondition":
        """The per-axis condition this colour stands for."""
        return ModeCondition(self.temporal, self.spatial, self.ontological)


COLOURS = (
    Colour("Black", "Z", (), (), (), 0.0, "#231F20"),
    Colour("Red", "R", ("past",), ("thing",), ("known",), 1.0, "#AE1E36"),
    Colour("Orange", "O", ("past",), ("thing",), ("imagined",), 1.0, "#EF7143"),
    Colour("Yellow", "Y", ("future",), ("place",), ("imagined",), 1.0, "#FFFF00"),
    Colour("Green", "G", ("future",), ("place",), ("forgotten",), 1.0, "#ABD96D"),
    Colour("Blue", "B", ("present",), ("person",), ("forgotten",), 1.0, "#042A7B"),
    Colour("Indigo", "I", (), (), ("known", "forgotten"), 1.0, "#26294A"),
    Colour("Violet", "V", ("present",), ("person",), ("known",), 1.0, "#AD85D6"),
    Colour("White", "A", (), (), (), 0.0, "#F6F6F6", has_training_data=False),
)
COLOUR_NAMES = tuple(c.name for c in COLOURS)
NUM_COLOURS = len(COLOURS)
_BY_NAME = {c.name.lower(): c for c in COLOURS}
_BY_LETTER = {c.letter.lower(): c for c in COLOURS}


def _suggest(value: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def parse_colour(label: Union[str, Colour]) -> Colour:
    """Return the :class:`Colour` for a colour name or letter (case-insensitive).

    Args:
        label: "Red", "red", "R", or a :class:`Colour`.

    Raises:
        LabelError: for anything that is not one of the nine colours.
    """
    if isinstance(label, Colour):
        return label
    if isinstance(label, str):
        key = label.strip().lower()
        if key in _BY_NAME:
            return _BY_NAME[key]
        if key in _BY_LETTER:
            return _BY_LETTER[key]
        hint = _suggest(key, list(_BY_NAME))
    else:
        hint = ""
    raise LabelError(
        f"Unknown colour {label!r}. Expected one of the colour names "
        f"{list(COLOUR_NAMES)} or letters {[c.letter for c in COLOURS]}.{hint}"
    )


def _is_none_label(label) -> bool:
    if label is None:
        return True
    if isinstance(label, float) and math.isnan(label):
        return True
    return isinstance(label, str) and label.strip().lower() in _NONE_LABELS


def parse_axis_modes(axis: str, label) -> tuple[str, ...]:
    """Parse one axis label from the data into a tuple of canonical mode names.

    Accepts a single mode ("Past"), a ", "-joined list ("Known, Forgotten"), a
    list of modes, or a missing value (None, "", NaN, "None") meaning no mode.

    Args:
        axis: one of :data:`AXES`.
        label: the label as stored in the data.

    Returns:
        Modes in the order given, lower case, without duplicates.

    Raises:
        LabelError: for an unknown axis or mode.
    """
    if axis not in AXIS_MODES:
        raise LabelError(f"Unknown axis {axis!r}. Expected one of {list(AXES)}.{_suggest(str(axis), AXES)}")
    if _is_none_label(label):
        return ()
    if isinstance(label, str):
        parts = [p.strip() for p in label.split(",")]
    elif isinstance(label, (list, tuple)):
        parts = [str(p).strip() for p in label]
    else:
        raise LabelError(f"The {axis} mode label must be a string or a list of strings. Received: {label!r}")
    allowed = AXIS_MODES[axis]
    modes: list[str] = []
    for part in parts:
        if _is_none_label(part):
            continue
        mode = part.lower()
        if mode not in allowed:
            raise LabelError(
                f"Unknown {axis} mode {part!r} in label {label!r}. Expected one of "
                f"{[m.capitalize() for m in allowed]} (or empty for no mode).{_suggest(mode, allowed)}"
            )
        if mode not in modes:
            modes.append(mode)
    return tuple(modes)


@dataclass(frozen=True)
class ModeCondition:
    """The modes chosen on each axis; an empty tuple means "no mode" on that axis.

    Any combination is allowed, including ones no album has (e.g. future/thing/known).
    """

    temporal: tuple[str, ...] = ()
    spatial: tuple[str, ...] = ()
    ontological: tuple[str, ...] = ()

    def __post_init__(self):
        for axis in AXES:
            object.__setattr__(self, axis, parse_axis_modes(axis, list(getattr(self, axis))))

    def axis_modes(self, axis: str) -> tuple[str, ...]:
        """Modes on one axis."""
        return getattr(self, axis)

    def ids(self) -> tuple[tuple[int, ...], ...]:
        """Per-axis mode ids (0..2 in :data:`AXIS_MODES` order), one tuple per axis."""
        return tuple(tuple(AXIS_MODES[a].index(m) for m in self.axis_modes(a)) for a in AXES)

    def primary_ids(self) -> tuple[int, ...]:
        """One id per axis: the single mode's id, or :data:`NONE_ID` when the axis has
        no mode or more than one (use :meth:`multi_hot` to keep those)."""
        return tuple(ids[0] if len(ids) == 1 else NONE_ID for ids in self.ids())

    def multi_hot(self) -> np.ndarray:
        """A float32 vector of length :data:`MODE_VECTOR_SIZE`: per axis, the chosen
        modes share weight 1 (Indigo's ontological block is [0, 0.5, 0.5]); an axis
        with no mode is all zeros, which models map to their learned "none" embedding."""
        vector = np.zeros(MODE_VECTOR_SIZE, dtype=np.float32)
        for a, ids in enumerate(self.ids()):
            for i in ids:
                vector[a * MODES_PER_AXIS + i] = 1.0 / len(ids)
        return vector

    def colour(self) -> Colour | None:
        """The album whose modes these are, or None for a combination no album has.
        An all-empty condition maps to Black (White has the same modes but no data)."""
        for c in COLOURS:
            if (c.temporal, c.spatial, tuple(sorted(c.ontological))) == (
                self.temporal,
                self.spatial,
                tuple(sorted(self.ontological)),
            ):
                return c
        return None

    def describe(self) -> str:
        """A short human-readable form, e.g. "future/thing/known" ("-" for no mode)."""
        return "/".join("+".join(self.axis_modes(a)) or "-" for a in AXES)


ConditionLike = Union[str, Colour, ModeCondition, Mapping[str, object], None]


def resolve_condition(condition: ConditionLike) -> ModeCondition:
    """Turn any user-facing condition into a :class:`ModeCondition`.

    Args:
        condition: a colour name or letter ("Red", "R"); a mapping from axis to
            mode(s) (``{"temporal": "future", "ontological": ["known"]}``, missing
            axes mean no mode); a comma-separated list of modes, one per axis in
            :data:`AXES` order ("future,place,forgotten", "-" or "none" for no mode);
            a :class:`Colour` or :class:`ModeCondition`; or None (no mode anywhere:
            unconditional).

    Raises:
        LabelError: naming the bad part and what is allowed.
    """
    if condition is None:
        return ModeCondition()
    if isinstance(condition, ModeCondition):
        return condition
    if isinstance(condition, Colour):
        return condition.condition()
    if isinstance(condition, Mapping):
        unknown = [k for k in condition if k not in AXES]
        if unknown:
            raise LabelError(
                f"Unknown axis {unknown[0]!r} in condition {dict(condition)!r}. Expected keys among "
                f"{list(AXES)}.{_suggest(str(unknown[0]), AXES)}"
            )
        values = {}
        for axis in AXES:
            value = condition.get(axis)
            values[axis] = parse_axis_modes(axis, list(value) if isinstance(value, (list, tuple)) else value)
        return ModeCondition(**values)
    if isinstance(condition, str):
        if "," in condition or "/" in condition:
            parts = [p.strip() for p in condition.replace("/", ",").split(",")]
            if len(parts) != len(AXES):
                raise LabelError(
                    f"Condition {condition!r} lists {len(parts)} modes; expected one per axis "
                    f"({', '.join(AXES)}), with '-' for no mode, e.g. 'future,place,forgotten'."
                )
            return ModeCondition(*(parse_axis_modes(a, p.replace("+", ",")) for a, p in zip(AXES, parts)))
        return parse_colour(condition).condition()
    raise LabelError(
        f"Cannot use {condition!r} as a condition. Expected a colour name or letter, a mapping from "
        f"axis to mode, a comma-separated 'temporal,spatial,ontological' string, or None."
    )


def modes_from_labels(temporal, spatial, ontological) -> ModeCondition:
    """Build the condition from the data's three label columns (DESIGN §3)."""
    return ModeCondition(
        parse_axis_modes("temporal", temporal),
        parse_axis_modes("spatial", spatial),
        parse_axis_modes("ontological", ontological),
    )


def soft_target_for_modes(modes: tuple[str, ...], axis: str) -> np.ndarray:
    """The soft target of one axis: 0.8/0.1/0.1 for one mode, 0.4/0.4/0.1 for two
    (sums to 0.9 by design), uniform for none or all three."""
    ids = [AXIS_MODES[axis].index(m) for m in parse_axis_modes(axis, list(modes))]
    if len(ids) in (0, MODES_PER_AXIS):
        return np.full(MODES_PER_AXIS, 1.0 / MODES_PER_AXIS, dtype=np.float32)
    weight = PRIMARY_WEIGHT if len(ids) == 1 else SHARED_WEIGHT
    target = np.full(MODES_PER_AXIS, SECONDARY_WEIGHT, dtype=np.float32)
    target[ids] = weight
    return target


def soft_targets(condition: ConditionLike) -> dict[str, np.ndarray]:
    """Soft targets per axis for a colour or condition (see DESIGN §2)."""
    cond = resolve_condition(condition)
    return {axis: soft_target_for_modes(cond.axis_modes(axis), axis) for axis in AXES}


def confidence(colour: Union[str, Colour]) -> float:
    """Confidence target of a colour: 0 for Black and White, 1 for the rest."""
    return parse_colour(colour).confidence
