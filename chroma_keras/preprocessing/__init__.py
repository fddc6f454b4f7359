"""Preprocessing: pure functions (numpy) that turn raw MIDI / audio into model inputs.

The piano-roll functions live in :mod:`chroma_keras.preprocessing.pianoroll`.
"""

from chroma_keras.preprocessing.pianoroll import (
    PianoRollSpec,
    midi_to_piano_roll,
    piano_roll_notes,
    piano_roll_to_midi,
    piano_roll_to_midi_bytes,
    write_midi,
)

__all__ = [
    "PianoRollSpec",
    "midi_to_piano_roll",
    "piano_roll_notes",
    "piano_roll_to_midi",
    "piano_roll_to_midi_bytes",
    "write_midi",
]
