"""Batch key names: the one place that defines what a batch dict holds.

Models, datasets and losses import these names instead of spelling strings.
"""

# Model inputs.
PIANO_ROLL = "piano_roll"  # float32 [batch, pitches, frames], velocity in [0, 1]
MODES = "modes"  # float32 [batch, modes.MODE_VECTOR_SIZE], per-axis multi-hot
REBRACKETING = "rebracketing"  # float32 [batch, rebracketing.FEATURE_SIZE]

# Per-segment metadata carried next to the inputs (not fed to models).
SEGMENT_ID = "segment_id"
SONG_ID = "song_id"
COLOUR = "colour"

CONDITION_KEYS = (MODES, REBRACKETING)
