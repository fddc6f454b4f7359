"""Token validity of a token generator: how much of what it writes is usable MIDI.

:func:`token_validity` samples sequences for each colour with and without constrained decoding and
reports, per setting, the fraction that decode to **valid MIDI** (miditok decodes the MIDI section,
the file reads back, it has notes; see :mod:`chroma_keras.generation.token_midi`) and miditok's
**token error rate** (``MusicTokenizer.tokens_errors``: token types that cannot follow the previous
one, positions that go back in time, repeated pitches at one position, over the MIDI tokens).
Constrained decoding should give 100% and 0; free sampling shows what the model learned on its own.

Example:

>>> import chroma_keras as ck
>>> from chroma_keras.evaluation.token_validity import token_validity
>>> report = token_validity(ck.from_preset("runs/gpt/model"), samples_per_colour=4)  # doctest: +SKIP
>>> print(report.to_markdown())  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from chroma_keras.errors import ModelInputError


@dataclass
class ValidityRow:
    """The validity of one set of sequences (e.g. all constrained samples).

    Attributes:
        label: what the set is ("constrained", "unconstrained").
        sequences: sequences decoded.
        valid: fraction that decode to valid MIDI.
        error_free: fraction with a token error rate of 0.
        token_error_rate: mean of miditok's token error rate over the sequences.
        max_token_error_rate: the largest one.
        ended: fraction that end with ``<eos>`` (the others ran to ``max_length``).
        mean_notes: mean notes per decoded sequence.
        mean_tokens: mean MIDI tokens per sequence.
    """

    label: str
    sequences: int
    valid: float
    error_free: float
    token_error_rate: float
    max_token_error_rate: float
    ended: float
    mean_notes: float
    mean_tokens: float

    def cells(self) -> tuple:
        """The row as table cells: label, sequences, valid MIDI, error-free, token error rate (mean / max),
        ended with eos, notes, MIDI tokens (the markdown table and the evaluate report both print these)."""
        return (
            self.label,
            str(self.sequences),
            f"{self.valid:.1%}",
            f"{self.error_free:.1%}",
            f"{self.token_error_rate:.4f} / {self.max_token_error_rate:.4f}",
            f"{self.ended:.1%}",
            f"{self.mean_notes:.1f}",
            f"{self.mean_tokens:.1f}",
        )


def validity_row(label: str, decoded) -> ValidityRow:
    """Summarise :func:`~chroma_keras.generation.token_midi.decode_sequence` results.

    Args:
        label: the row's name.
        decoded: a non-empty list of ``decode_sequence`` dicts.

    Returns:
        a :class:`ValidityRow`.

    Example:
    >>> validity_row("constrained", [decode_sequence(vocab, row) for row in ids])  # doctest: +SKIP
    """
    decoded = list(decoded)
    if not decoded:
        raise ModelInputError(f"validity_row {label!r}: no decoded sequences.")
    rates = np.asarray([d["token_error_rate"] for d in decoded], np.float64)
    return ValidityRow(
        label=label,
        sequences=len(decoded),
        valid=float(np.mean([d["valid"] for d in decoded])),
        error_free=float(np.mean(rates == 0.0)),
        token_error_rate=float(rates.mean()),
        max_token_error_rate=float(rates.max()),
        ended=float(np.mean([d["ended"] for d in decoded])),
        mean_notes=float(np.mean([d["num_notes"] for d in decoded])),
        mean_tokens=float(np.mean([d["num_tokens"] for d in decoded])),
    )


@dataclass
class ValidityReport:
    """What :func:`token_validity` measured: one :class:`ValidityRow` per decoding setting.

    Attributes:
        rows: the rows, constrained first.
        settings: the sampling settings shared by the rows.
    """

    rows: list
    settings: dict = field(default_factory=dict)

    def row(self, label: str) -> ValidityRow:
        """The row named ``label``."""
        for row in self.rows:
            if row.label == label:
                return row
        raise ModelInputError(f"no validity row {label!r}; the rows are {[r.label for r in self.rows]}.")

    def to_markdown(self) -> str:
        """A table: per setting, valid MIDI, error-free sequences, token error rate, ``<eos>``, notes, tokens."""
        settings = ", ".join(f"{k}={v}" for k, v in self.settings.items())
        lines = [
            f"Token validity{' (' + settings + ')' if settings else ''}:",
            "",
            "| decoding | sequences | valid MIDI | error-free | token error rate (mean / max) | ended with eos | notes | MIDI tokens |",
            "|---|---|---|---|---|---|---|---|",
        ]
        lines += ["| " + " | ".join(r.cells()) + " |" for r in self.rows]
        lines += [
            "",
            "Valid MIDI: miditok decodes the MIDI section to a file with notes. Token error rate: miditok's "
            "tokens_errors (wrong token type, position going back, repeated pitch) over the MIDI tokens.",
        ]
        return "\n".join(lines)


def token_validity(model, colours=None, samples_per_colour: int = 4, seed: int = 0, constrained=(True, False), **generate_kwargs) -> ValidityReport:
    """Sample from a token generator with and without constrained decoding and measure validity.

    Args:
        model: a token generator (``ChromaticGPT``).
        colours: colours prompted, ``samples_per_colour`` each (default: the eight with training data).
        samples_per_colour: sequences per colour and setting.
        seed: colour ``i`` uses ``seed + i`` (the same draws for both settings).
        constrained: the settings measured, each a row (True: ``"constrained"``, False: ``"unconstrained"``);
            a single bool measures that setting alone.
        **generate_kwargs: sampling arguments of ``generate`` (``sampling``, ``max_length``, ``temperature``...).

    Returns:
        a :class:`ValidityReport`.

    Raises:
        ModelInputError: not a token generator, ``samples_per_colour < 1``, no colours or no setting.
        LabelError: an unknown colour.

    Example:
    >>> token_validity(gpt, colours=["Red"], samples_per_colour=2, max_length=64).row("constrained").valid  # doctest: +SKIP
    1.0
    """
    from chroma_keras import modes
    from chroma_keras.evaluation.chromatic_consistency import DEFAULT_COLOURS
    from chroma_keras.generation.token_midi import generate_midi, is_token_generator

    if not is_token_generator(model):
        raise ModelInputError(f"token_validity needs a token generator (a ChromaticGPT). Received: {type(model).__name__}")
    if int(samples_per_colour) < 1:
        raise ModelInputError(f"samples_per_colour must be >= 1. Received: samples_per_colour={samples_per_colour!r}")
    colours = [modes.parse_colour(c).name for c in (DEFAULT_COLOURS if colours is None else colours)]
    settings = [constrained] if isinstance(constrained, (bool, np.bool_)) else [bool(c) for c in constrained]
    if not colours or not settings:
        raise ModelInputError(f"token_validity needs at least one colour and one setting. Received: colours={colours}, constrained={settings}")
    rows = []
    for flag in settings:
        decoded = []
        for i, colour in enumerate(colours):
            _, part = generate_midi(model, condition=colour, num_samples=samples_per_colour, seed=int(seed) + i, constrained=flag, **generate_kwargs)
            decoded += part
        rows.append(validity_row("constrained" if flag else "unconstrained", decoded))
    return ValidityReport(rows, {"samples_per_colour": int(samples_per_colour), **generate_kwargs})


__all__ = ["ValidityReport", "ValidityRow", "token_validity", "validity_row"]
