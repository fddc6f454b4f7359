"""Prompts of the GPT generator: structured prompts, a free-text parser, and prefix tokens.

A :class:`StructuredPrompt` holds what a generated segment should be: the mode on each
chromatic axis (from a colour or given per axis, including combinations no album has),
rebracketing levels (normalised to [0, 1]) and a rebracketing type. :func:`prompt_ids` turns
it into the prefix a :class:`~chroma_keras.models.ChromaticGPT` continues:

``<bos> <temporal:..> <spatial:..> <ontological:..> [rebracketing tokens] <sep_midi>``

:func:`parse_prompt` reads short English requests into a structured prompt:

>>> parse_prompt("Generate a RED segment with high temporal complexity").describe()
'past/thing/known; temporal_complexity_score=0.85'
>>> parse_prompt("a Violet piece, past / person / forgotten, low rebracketing").describe()
'past/person/forgotten; rebracketing_intensity=0.15'

What it understands (case-insensitive; commas, "with", "and" and slashes separate phrases):

* a colour name or letter: ``red``, ``Violet``, ``colour R``;
* axis modes: ``past`` / ``present`` / ``future``, ``thing`` / ``place`` / ``person``,
  ``imagined`` / ``forgotten`` / ``known`` (an explicit mode replaces the colour's on that axis;
  ``no temporal mode`` clears an axis);
* a level and a rebracketing score in either order: ``high temporal complexity``,
  ``rebracketing intensity low``; levels ``very low``, ``low``, ``medium`` / ``moderate``,
  ``high``, ``very high``, or a number in [0, 1]; scores ``rebracketing`` / ``rebracketing
  intensity``, ``coverage``, ``ontological uncertainty``, ``memory discrepancy``,
  ``temporal complexity``, ``boundary fluidity``;
* a rebracketing type: ``causal rebracketing`` ... ``temporal rebracketing``;
* filler words (generate, make, a, the, segment, piece, song, mode, colour, ...).

Anything else raises :class:`~chroma_keras.errors.ModelInputError` naming the phrase.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from chroma_keras import modes, rebracketing
from chroma_keras.errors import LabelError, ModelInputError

# Normalised level of each level word (the middle of a low / medium / high third, roughly).
LEVELS = {"very low": 0.05, "low": 0.15, "medium": 0.5, "moderate": 0.5, "high": 0.85, "very high": 0.95}
# Phrases naming a rebracketing score, longest first when matched.
SCORE_PHRASES = {
    "rebracketing intensity": "rebracketing_intensity",
    "intensity": "rebracketing_intensity",
    "rebracketing": "rebracketing_intensity",
    "rebracketing coverage": "rebracketing_coverage",
    "coverage": "rebracketing_coverage",
    "ontological uncertainty": "ontological_uncertainty",
    "uncertainty": "ontological_uncertainty",
    "memory discrepancy severity": "memory_discrepancy_severity",
    "memory discrepancy": "memory_discrepancy_severity",
    "temporal complexity score": "temporal_complexity_score",
    "temporal complexity": "temporal_complexity_score",
    "boundary fluidity score": "boundary_fluidity_score",
    "boundary fluidity": "boundary_fluidity_score",
}
FILLER = {
    "generate", "make", "create", "compose", "write", "give", "me", "please", "a", "an", "the", "one",
    "segment", "segments", "piece", "song", "track", "clip", "music", "midi", "in", "of", "for", "some",
    "mode", "modes", "colour", "color", "album", "style", "level", "levels", "score", "that", "is", "has",
    "sounds", "like",
}  # fmt: skip
_MODE_AXIS = {mode: axis for axis in modes.AXES for mode in modes.AXIS_MODES[axis]}


@dataclass
class StructuredPrompt:
    """What a generated segment should be.

    Args:
        condition: the per-axis modes (anything :func:`chroma_keras.modes.resolve_condition`
            accepts is converted: "Red", a per-axis dict, "future,thing,known", None).
        rebracketing: ``{score field: normalised level in [0, 1]}`` (see
            :func:`chroma_keras.tokenizers.chromatic_vocabulary.normalise_score` for data units).
        rebracketing_type: one of :data:`chroma_keras.rebracketing.REBRACKETING_TYPES` or None.
        modality: the section the model writes after the prefix (``"midi"`` here).

    Example:
    >>> StructuredPrompt("Red", {"temporal_complexity_score": 0.85}).describe()
    'past/thing/known; temporal_complexity_score=0.85'
    """

    condition: object = None
    rebracketing: dict = field(default_factory=dict)
    rebracketing_type: str | None = None
    modality: str = "midi"

    def __post_init__(self):
        try:
            self.condition = modes.resolve_condition(self.condition)
        except LabelError as exc:
            raise ModelInputError(f"prompt condition: {exc}") from None
        self.rebracketing = dict(self.rebracketing or {})
        for key, value in self.rebracketing.items():
            if key not in rebracketing.SCORE_FIELDS:
                raise ModelInputError(f"Unknown rebracketing field {key!r}. Expected among {list(rebracketing.SCORE_FIELDS)}.")
            if not 0.0 <= float(value) <= 1.0:
                raise ModelInputError(f"rebracketing level {key} must be in [0, 1] (normalised). Received: {value!r}")
        if self.rebracketing_type is not None and self.rebracketing_type not in rebracketing.REBRACKETING_TYPES:
            raise ModelInputError(
                f"rebracketing_type must be one of {list(rebracketing.REBRACKETING_TYPES)}. Received: {self.rebracketing_type!r}"
            )

    def describe(self) -> str:
        """A short readable form, e.g. ``'past/thing/known; temporal_complexity_score=0.85'``."""
        parts = [self.condition.describe()]
        parts += [f"{k}={v:g}" for k, v in sorted(self.rebracketing.items(), key=lambda kv: rebracketing.SCORE_FIELDS.index(kv[0]))]
        if self.rebracketing_type:
            parts.append(f"type={self.rebracketing_type}")
        return "; ".join(parts)


def _accepted() -> str:
    return (
        f"colours {list(modes.COLOUR_NAMES)}; modes {sorted(_MODE_AXIS)}; levels {list(LEVELS)} or a number in [0, 1] "
        f"with a score among {sorted(set(SCORE_PHRASES))}; '<type> rebracketing' with type among "
        f"{list(rebracketing.REBRACKETING_TYPES)}"
    )


def parse_prompt(text: str) -> StructuredPrompt:
    """Read a free-text request into a :class:`StructuredPrompt` (see the module docstring).

    Args:
        text: e.g. ``"Generate a RED segment with high temporal complexity"``.

    Returns:
        The structured prompt.

    Raises:
        ModelInputError: naming the phrase it could not read and listing what it accepts.
    """
    if not isinstance(text, str) or not text.strip():
        raise ModelInputError(f"a text prompt must be a non-empty string. Received: {text!r}")
    colour = None
    axis_modes: dict[str, list[str]] = {}
    cleared: set[str] = set()
    levels: dict[str, float] = {}
    kind = None
    phrases = [p.strip() for p in re.split(r"[,;/]|\bwith\b|\band\b|\.(?!\d)", text.lower())]
    for phrase in phrases:
        words = [w for w in re.findall(r"[a-z]+|\d+(?:\.\d+)?", phrase) if w not in FILLER]
        i, level, score = 0, None, None
        while i < len(words):
            two = " ".join(words[i : i + 2])
            three = " ".join(words[i : i + 3])
            matched = 1
            if words[i] in rebracketing.REBRACKETING_TYPES and i + 1 < len(words) and words[i + 1] == "rebracketing":
                kind, matched = words[i], 2
            elif three in SCORE_PHRASES or two in SCORE_PHRASES or words[i] in SCORE_PHRASES:
                key = three if three in SCORE_PHRASES else two if two in SCORE_PHRASES else words[i]
                score, matched = SCORE_PHRASES[key], len(key.split())
            elif two in LEVELS:
                level, matched = LEVELS[two], 2
            elif words[i] in LEVELS:
                level = LEVELS[words[i]]
            elif re.fullmatch(r"\d+(?:\.\d+)?", words[i]):
                level = float(words[i])
                if not 0.0 <= level <= 1.0:
                    raise ModelInputError(f"prompt {text!r}: the level in {phrase!r} must be in [0, 1]. Received: {words[i]}")
            elif words[i] == "no" and i + 1 < len(words) and words[i + 1] in modes.AXES:
                cleared.add(words[i + 1])
                matched = 2
            elif words[i] in _MODE_AXIS:
                axis_modes.setdefault(_MODE_AXIS[words[i]], []).append(words[i])
            else:
                try:
                    found = modes.parse_colour(words[i])
                except LabelError:
                    raise ModelInputError(
                        f"prompt {text!r}: cannot read {phrase!r} (at {words[i]!r}). It accepts: {_accepted()}."
                    ) from None
                if colour is not None and found != colour:
                    raise ModelInputError(f"prompt {text!r} names two colours ({colour.name}, {found.name}); name one.")
                colour = found
            if score is not None and level is not None:
                levels[score] = level
                score = level = None
            i += matched
        if score is not None or level is not None:
            missing = "a level (low, medium, high, ...)" if level is None else "a score (temporal complexity, ...)"
            raise ModelInputError(f"prompt {text!r}: {phrase!r} needs {missing}. It accepts: {_accepted()}.")
    condition = {axis: colour.condition().axis_modes(axis) if colour else () for axis in modes.AXES}
    for axis, chosen in axis_modes.items():
        condition[axis] = tuple(dict.fromkeys(chosen))
    for axis in cleared:
        condition[axis] = ()
    return StructuredPrompt(modes.ModeCondition(**condition), levels, kind)


def resolve_prompt(prompt=None, condition=None, rebracketing_levels=None, rebracketing_type=None) -> StructuredPrompt:
    """Any prompt form as a :class:`StructuredPrompt`.

    Args:
        prompt: free text (:func:`parse_prompt`), a :class:`StructuredPrompt`, a mapping with
            its fields (``{"condition": "Red", "rebracketing": {...}}``), or None.
        condition: a condition instead of (or, for a text prompt, overriding) the prompt's.
        rebracketing_levels: normalised rebracketing levels merged over the prompt's.
        rebracketing_type: a rebracketing type overriding the prompt's.
    """
    if prompt is None:
        structured = StructuredPrompt()
    elif isinstance(prompt, StructuredPrompt):
        structured = StructuredPrompt(prompt.condition, dict(prompt.rebracketing), prompt.rebracketing_type, prompt.modality)
    elif isinstance(prompt, str):
        structured = parse_prompt(prompt)
    elif isinstance(prompt, Mapping):
        allowed = {"condition", "rebracketing", "rebracketing_type", "modality"}
        unknown = sorted(set(prompt) - allowed)
        if unknown:
            raise ModelInputError(f"prompt: unknown keys {unknown}. Expected among {sorted(allowed)}.")
        structured = StructuredPrompt(**prompt)
    else:
        raise ModelInputError(
            f"prompt must be text, a StructuredPrompt, a mapping of its fields, token ids or None. Received: {type(prompt).__name__}"
        )
    if condition is not None:
        structured.condition = StructuredPrompt(condition).condition
    if rebracketing_levels:
        structured = StructuredPrompt(structured.condition, {**structured.rebracketing, **rebracketing_levels}, structured.rebracketing_type)
    if rebracketing_type is not None:
        structured = StructuredPrompt(structured.condition, structured.rebracketing, rebracketing_type)
    return structured


def prompt_ids(prompt: StructuredPrompt, vocabulary) -> np.ndarray:
    """The prefix tokens of a structured prompt (see the module docstring), int32."""
    ids = [vocabulary.bos_id]
    ids += vocabulary.mode_ids(prompt.condition)
    ids += vocabulary.rebracketing_ids(prompt.rebracketing, prompt.rebracketing_type)
    ids.append(vocabulary.separator_id(prompt.modality))
    return np.asarray(ids, np.int32)
