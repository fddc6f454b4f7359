"""Exceptions a user can cause, all rooted at :class:`ChromaKerasError`.

Every message names the input (file, segment_id, dotted key path) and what
was expected, so a user can fix the input without reading our code.
"""


class ChromaKerasError(Exception):
    """Base class of every error chroma_keras raises on bad user input."""


class PresetError(ChromaKerasError, ValueError):
    """A preset file, preset name or override is malformed or invalid."""


class LabelError(ChromaKerasError, ValueError):
    """A chromatic-mode label (colour, axis mode) cannot be parsed."""


class DataError(ChromaKerasError, ValueError):
    """A data file or a segment in it is malformed.

    Args:
        message: what is wrong, naming the file / segment_id and what was expected.
        reason: optional short machine-readable code (``"truncated"``, ``"nan"``, ...)
            that readers count in their skip/mask reports.
    """

    def __init__(self, message="", reason=None):
        super().__init__(message)
        self.reason = reason


class MidiError(DataError):
    """MIDI bytes or a MIDI file cannot be parsed or written."""


class ModelInputError(ChromaKerasError, ValueError):
    """Arguments passed to a model method (generate, encode, ...) are invalid."""


class DeviceError(ChromaKerasError, ValueError):
    """The devices asked for (``--devices N``, a distribution) cannot be used on this machine or backend."""


class ExportError(ChromaKerasError, ValueError):
    """A model cannot be exported as asked: wrong backend for the format, an unknown
    format or function, or a model the format cannot express."""


class CheckpointError(ChromaKerasError, ValueError):
    """A pretrained checkpoint cannot be read or does not fit the architecture.

    Attributes:
        missing: tensor names the architecture needs that the checkpoint lacks.
        unexpected: tensor names in the checkpoint that the architecture does not use.
        mis_shaped: ``(name, checkpoint_shape, expected_shape)`` for tensors of the wrong shape.
    """

    def __init__(self, message="", missing=(), unexpected=(), mis_shaped=()):
        super().__init__(message)
        self.missing = list(missing)
        self.unexpected = list(unexpected)
        self.mis_shaped = list(mis_shaped)
