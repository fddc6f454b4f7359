"""What the piano-roll generators share: their grid, roll checks, MIDI output and colour names."""

from __future__ import annotations

import pathlib

import numpy as np

from chroma_keras import modes
from chroma_keras.errors import ModelInputError


class PianoRollGeneratorMixin:
    """Mixed into generators that make piano rolls (``ConditionalVAE``, ``PianoRollDiffusion``).

    The class sets ``num_pitches``, ``num_frames``, ``lowest_pitch`` and ``frames_per_second``.
    """

    # Segments without MIDI carry nothing to learn from: datasets skip them.
    required_modalities = ("midi",)

    def roll_spec(self):
        """The :class:`~chroma_keras.preprocessing.pianoroll.PianoRollSpec` of this model's rolls."""
        from chroma_keras.preprocessing.pianoroll import PianoRollSpec

        return PianoRollSpec(self.lowest_pitch, self.num_pitches, self.frames_per_second, self.num_frames)

    def _check_rolls(self, piano_rolls):
        rolls = np.asarray(piano_rolls, dtype=np.float32)
        if rolls.ndim == 2:
            rolls = rolls[None]
        expected = (self.num_pitches, self.num_frames)
        if rolls.ndim != 3 or rolls.shape[1:] != expected:
            raise ModelInputError(
                f"piano_rolls must have shape [batch, {expected[0]}, {expected[1]}] (pitches, frames). "
                f"Received: shape={np.shape(piano_rolls)}"
            )
        if not np.all(np.isfinite(rolls)) or rolls.min() < 0 or rolls.max() > 1:
            raise ModelInputError("piano_rolls must hold finite velocities in [0, 1].")
        return rolls

    def to_midi(self, piano_rolls, directory, prefix="sample", program=0):
        """Write piano rolls as ``<directory>/<prefix>_<i>.mid`` files; returns their paths."""
        from chroma_keras.preprocessing.pianoroll import write_midi

        spec = self.roll_spec()
        rolls = self._check_rolls(piano_rolls)
        directory = pathlib.Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        return [write_midi(roll, directory / f"{prefix}_{i:03d}.mid", spec, program=program) for i, roll in enumerate(rolls)]

    def colour_names(self):
        """The colours this model can be conditioned on by name."""
        return list(modes.COLOUR_NAMES)
