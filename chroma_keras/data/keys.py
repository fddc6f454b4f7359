"""Batch key names and the modality order: the one place that defines what a batch dict holds.

Models, datasets and losses import these names instead of spelling strings.
"""

# Modality order, used by every presence mask (1 = present).
MODALITIES = ("text", "audio", "midi")

# Model inputs.
PIANO_ROLL = "piano_roll"  # float32 [batch, pitches, frames], velocity in [0, 1]
MODES = "modes"  # float32 [batch, modes.MODE_VECTOR_SIZE], per-axis multi-hot
REBRACKETING = "rebracketing"  # float32 [batch, rebracketing.FEATURE_SIZE]
MIDI_TOKENS = "midi_tokens"  # int32 [batch, max_events] (or [batch, max_events, fields] for compound CPWord)
MIDI_TOKEN_MASK = "midi_token_mask"  # float32 [batch, max_events], 1 = real token
AUDIO = "audio"  # float32 [batch, samples] at preprocessing.audio.sample_rate
AUDIO_MASK = "audio_mask"  # float32 [batch, samples], 1 = real sample
TEXT_IDS = "text_ids"  # int32 [batch, max_text_length], UTF-8 byte + 1 or WordPiece ids (0 = padding)
TEXT_MASK = "text_mask"  # float32 [batch, max_text_length]
TRANSPOSITION = "transposition"  # float32 [batch], semitones an augmentation moved the piano roll by (0 = as written)
MODALITY_MASK = "modality_mask"  # float32 [batch, len(MODALITIES)]
AUDIO_EMBEDDING = "audio_embedding"  # float32 [batch, dim], precomputed (e.g. CLAP) instead of raw audio
TEXT_EMBEDDING = "text_embedding"  # float32 [batch, dim], precomputed instead of text ids

# Targets and conditioning ids.
MODE_IDS = "mode_ids"  # int32 [batch, 3], one id per axis (modes.NONE_ID for none/several)
TEMPORAL_TARGET = "temporal_target"  # float32 [batch, 3] soft target (DESIGN §2)
SPATIAL_TARGET = "spatial_target"
ONTOLOGICAL_TARGET = "ontological_target"
AXIS_TARGETS = {"temporal": TEMPORAL_TARGET, "spatial": SPATIAL_TARGET, "ontological": ONTOLOGICAL_TARGET}
CONFIDENCE = "confidence"  # float32 [batch]
COLOUR_INDEX = "colour_index"  # int32 [batch], position in modes.COLOURS (-1 = none)
LABEL_MASK = "label_mask"  # float32 [batch], 0 when the row's labels were masked

# Per-segment metadata carried next to the inputs (not fed to models).
SEGMENT_ID = "segment_id"
SONG_ID = "song_id"
COLOUR = "colour"

CONDITION_KEYS = (MODES, REBRACKETING)
