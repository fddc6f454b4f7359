"""Standard MIDI File bytes: structural checks, and the guarded way into symusic.

symusic parses MIDI in native code, ~100x faster than mido or pretty_midi, but its
parser trusts the file's declared sizes (DESIGN §6: malformed MIDI could crash it).
Every byte string we hand to symusic first goes through :func:`read_midi_layout`,
which walks the chunk structure in Python without reading any event:

* the data is non-empty bytes that start with an ``MThd`` header of >= 6 bytes;
* format is 0, 1 or 2, the header declares at least one track, and the division
  is a positive ticks-per-quarter value or a valid SMPTE code (24/25/29/30 fps,
  >= 1 tick per frame);
* the header is followed by as many ``MTrk`` chunks as it declares, each one
  lying entirely inside the data (data after the last declared chunk is ignored).

Errors are :class:`~chroma_keras.errors.MidiError` whose message names the
source and ends with ``(reason: <code>)``; the same code is set as the error's
``reason`` attribute, one of :data:`REASONS`.

Event-level problems (a data byte above 127, an unknown status byte, an event
running past its chunk) are left to the parser, which raises; :func:`parse_score`
turns symusic's error into a ``MidiError`` with reason ``"malformed_events"``.
A seeded fuzz test (tests/preprocessing/test_midi_validation.py) feeds thousands
of corrupted files through this path in a subprocess and checks that none takes
the process down.

Example:

>>> from chroma_keras.preprocessing.midi_validation import validate_midi_bytes
>>> validate_midi_bytes(b"MThd\\x00\\x00\\x00\\x06\\x00\\x00\\x00\\x01\\x01\\xe0"
...                     b"MTrk\\x00\\x00\\x00\\x04\\x00\\xff\\x2f\\x00", source="seg_1")
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import symusic

from chroma_keras.errors import MidiError

#: Machine-readable codes set as ``MidiError.reason`` by this module.
REASONS = (
    "not_bytes",
    "empty",
    "not_smf",
    "truncated",
    "bad_header",
    "bad_format",
    "bad_track_count",
    "bad_division",
    "bad_chunk",
    "unsupported",
    "malformed_events",
)

_HEADER = b"MThd"
_TRACK = b"MTrk"
_SMPTE_RATES = (24, 25, 29, 30)
# The largest delta time one variable-length quantity can hold (4 bytes).
MAX_DELTA_TICKS = 0x0FFFFFFF


def midi_error(source: str, reason: str, detail: str) -> MidiError:
    """Build a :class:`MidiError` naming ``source`` with a reason code.

    Args:
        source: the input to name (segment_id, path, "<bytes>").
        reason: one of :data:`REASONS`.
        detail: what is wrong and what was expected.

    Returns:
        The error (not raised), with ``error.reason == reason``.
    """
    error = MidiError(f"{source}: {detail} (reason: {reason})")
    error.reason = reason
    return error


@dataclass(frozen=True)
class MidiLayout:
    """Header fields and track-chunk positions of a structurally valid SMF.

    Args:
        format: 0 (one track), 1 (simultaneous tracks) or 2 (independent tracks).
        num_tracks: number of track chunks the header declares.
        division: the raw 16-bit division word.
        header_length: length of the MThd chunk's data (6 in nearly every file).
        tracks: ``(offset, length)`` of each MTrk chunk's event data in the bytes.
    """

    format: int
    num_tracks: int
    division: int
    header_length: int
    tracks: tuple[tuple[int, int], ...]

    @property
    def is_smpte(self) -> bool:
        """True when the division counts SMPTE frames rather than ticks per quarter."""
        return bool(self.division & 0x8000)

    @property
    def ticks_per_quarter(self) -> int | None:
        """Ticks per quarter note, or None for an SMPTE division."""
        return None if self.is_smpte else self.division


def _as_bytes(data, source: str) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise midi_error(
        source, "not_bytes", f"expected MIDI as bytes (a Standard MIDI File). Received: {type(data).__name__}"
    )


def read_midi_layout(data: bytes, *, source: str) -> MidiLayout:
    """Check the chunk structure of a Standard MIDI File and return where its tracks lie.

    Args:
        data: the file's bytes (bytes, bytearray or memoryview).
        source: the name used in error messages (segment_id, path).

    Returns:
        The file's :class:`MidiLayout`.

    Raises:
        MidiError: with a ``reason`` among :data:`REASONS`, naming ``source``.
    """
    data = _as_bytes(data, source)
    size = len(data)
    if size == 0:
        raise midi_error(source, "empty", "empty MIDI data; expected a Standard MIDI File (starting with b'MThd')")
    if not data.startswith(_HEADER):
        raise midi_error(
            source,
            "not_smf",
            f"not a Standard MIDI File; expected data starting with b'MThd'. Received first bytes: {data[:8]!r}",
        )
    if size < 14:
        raise midi_error(
            source, "truncated", f"the Standard MIDI File is truncated ({size} bytes; a header alone is 14)"
        )
    header_length, file_format, num_tracks, division = struct.unpack(">LHHH", data[4:14])
    if header_length < 6:
        raise midi_error(source, "bad_header", f"the MThd header declares {header_length} bytes; expected >= 6")
    if 8 + header_length > size:
        raise midi_error(
            source, "truncated", f"the MThd header declares {header_length} bytes but the data holds {size - 8}"
        )
    if file_format > 2:
        raise midi_error(source, "bad_format", f"MIDI format must be 0, 1 or 2. Received: format={file_format}")
    if num_tracks == 0:
        raise midi_error(source, "bad_track_count", "the MIDI header declares 0 tracks; expected at least one")
    if division & 0x8000:
        frames = -struct.unpack(">b", bytes([division >> 8]))[0]
        ticks_per_frame = division & 0xFF
        if frames not in _SMPTE_RATES or ticks_per_frame == 0:
            raise midi_error(
                source,
                "bad_division",
                f"invalid SMPTE division; expected 24, 25, 29 or 30 frames per second and >= 1 tick per frame. "
                f"Received: frames={frames}, ticks_per_frame={ticks_per_frame}",
            )
    elif division == 0:
        raise midi_error(source, "bad_division", "the MIDI header's division (ticks per quarter) is 0; expected > 0")

    tracks = []
    offset = 8 + header_length
    for index in range(num_tracks):
        if offset + 8 > size:
            raise midi_error(
                source,
                "truncated",
                f"the Standard MIDI File is truncated: the header declares {num_tracks} track(s) "
                f"but the data ends before track {index}",
            )
        chunk_id = data[offset : offset + 4]
        if chunk_id != _TRACK:
            raise midi_error(
                source,
                "bad_chunk",
                f"expected an MTrk chunk for track {index} at byte {offset}. Received: {chunk_id!r}",
            )
        (length,) = struct.unpack(">L", data[offset + 4 : offset + 8])
        start = offset + 8
        if start + length > size:
            raise midi_error(
                source,
                "truncated",
                f"the Standard MIDI File is truncated: track {index} declares {length} bytes "
                f"but only {size - start} remain",
            )
        tracks.append((start, length))
        offset = start + length
    return MidiLayout(file_format, num_tracks, division, header_length, tuple(tracks))


def validate_midi_bytes(data: bytes, *, source: str) -> None:
    """Raise unless ``data`` is a structurally valid Standard MIDI File.

    This is the guard that runs before bytes reach symusic's native parser; see the
    module docstring for what it checks.

    Args:
        data: the file's bytes.
        source: the name used in error messages (segment_id, path).

    Raises:
        MidiError: naming ``source``, with a ``reason`` among :data:`REASONS`
            (``empty``, ``not_smf``, ``truncated``, ``bad_header``, ``bad_format``,
            ``bad_track_count``, ``bad_division``, ``bad_chunk``, ``not_bytes``).
    """
    read_midi_layout(data, source=source)


# ---------------------------------------------------------------------------
# Closing notes that have no note-off
# ---------------------------------------------------------------------------


def _vlq(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    return bytes(reversed(out))


@functools.lru_cache(maxsize=1024)
def _note_offs(channel: int, pitches: range, repeats: int) -> bytes:
    """Note-offs (note-on, velocity 0) for every pitch of one channel, ``repeats`` times each.

    Every event has delta time 0; the first carries the status byte, the others use
    running status.
    """
    out = bytearray((0, 0x90 | channel))
    for position, pitch in enumerate(p for p in pitches for _ in range(repeats)):
        if position:
            out.append(0)
        out += bytes((pitch, 0))
    return bytes(out)


def close_dangling_notes(
    data: bytes,
    layout: MidiLayout,
    *,
    delay_ticks: int = 0,
    pitches: range = range(128),
    skip_channels: Iterable[int] = (),
    repeats: int = 2,
) -> bytes:
    """Append note-offs at the end of every track so notes without a note-off are kept.

    symusic (like pretty_midi) drops a note-on that never meets its note-off;
    segments cut from longer files have such notes. This rewrites each track so that,
    ``delay_ticks`` after its last event, a note-off follows for every pitch in
    ``pitches`` on every channel that may start a note in the track (a superset found
    from the chunk's bytes, see :func:`_note_channels`). A note-off that finds no sounding
    note is ignored by the parser, so closed notes are untouched. Each key gets
    ``repeats`` note-offs, which closes up to that many stacked note-ons of one key.

    Args:
        data: bytes that passed :func:`read_midi_layout`.
        layout: their layout.
        delay_ticks: ticks between a track's last event and the added note-offs
            (0 closes notes at the end of their track; at most :data:`MAX_DELTA_TICKS`).
        pitches: the pitches to close (a ``range``); others stay dangling, i.e. dropped.
        skip_channels: channels (0-15) not to close, e.g. ``(9,)`` for drums.
        repeats: note-offs per key.

    Returns:
        New SMF bytes (the same bytes when no track has a note event).
    """
    delay = _vlq(int(min(max(delay_ticks, 0), MAX_DELTA_TICKS)))
    pitches = range(pitches.start, pitches.stop, pitches.step)
    channels_by_track = _note_channels(data, layout)
    channels_by_track[:, list(skip_channels)] = False
    pieces = [data[: 8 + layout.header_length]]
    changed = False
    for (start, length), present in zip(layout.tracks, channels_by_track):
        body = data[start : start + length]
        if present.any() and len(pitches):
            # An empty text event takes the track's last delta (usually the end-of-track's),
            # another one comes ``delay_ticks`` later, then the note-offs and a new end-of-track.
            offs = (
                delay
                + b"\xff\x01\x00"
                + b"".join(_note_offs(c, pitches, repeats) for c in np.flatnonzero(present).tolist())
            )
            if body.endswith(b"\xff\x2f\x00"):
                body = body[:-3] + b"\xff\x01\x00" + offs + b"\x00\xff\x2f\x00"
            else:
                body = body + offs + b"\x00\xff\x2f\x00"
            changed = True
        pieces.append(_TRACK + struct.pack(">L", len(body)) + body)
    if not changed:
        return data
    return b"".join(pieces)


def _note_channels(data: bytes, layout: MidiLayout) -> np.ndarray:
    """``[num_tracks, 16]`` bool: channels that may start notes in each track (a superset).

    A note-on needs a note-on status byte (0x90-0x9F) followed by two data bytes
    (< 0x80) somewhere before it in its track (running status repeats only data
    bytes), so every byte triple of that shape marks its channel. This finds every
    channel with a note-on, plus a few false positives (e.g. delta times of 2048-4095
    ticks), which only cost unmatched note-offs.
    """
    buffer = np.frombuffer(data, np.uint8)
    present = np.zeros((len(layout.tracks), 16), bool)
    if len(buffer) < 3:
        return present
    is_data = buffer < 0x80
    positions = np.flatnonzero(((buffer[:-2] & 0xF0) == 0x90) & is_data[1:-1] & is_data[2:])
    # Triples in chunk headers land on a neighbouring track: a harmless false positive.
    track = np.searchsorted(np.array([start for start, _ in layout.tracks]), positions, side="right") - 1
    present[np.maximum(track, 0), buffer[positions] & 0x0F] = True
    return present


def parse_score(
    data: bytes,
    *,
    source: str,
    close_dangling: bool = True,
    dangling_delay_ticks: int = 0,
    dangling_pitches: Iterable[int] = range(128),
    skip_channels: Iterable[int] = (),
    layout: MidiLayout | None = None,
):
    """Validate MIDI bytes and parse them with symusic.

    Args:
        data: the file's bytes.
        source: the name used in error messages.
        close_dangling: keep notes that have no note-off, ending them
            ``dangling_delay_ticks`` after their track's last event (see
            :func:`close_dangling_notes`), instead of dropping them.
        dangling_delay_ticks: see above; 0 ends them where their track ends.
        dangling_pitches: pitches whose dangling notes are kept.
        skip_channels: channels whose dangling notes are dropped.
        layout: the layout if the caller already read it.

    Returns:
        A ``symusic.Score`` in ticks.

    Raises:
        MidiError: for structurally invalid bytes (see :func:`read_midi_layout`), an
            SMPTE division (reason ``unsupported``: symusic reads ticks per quarter
            only), or events symusic cannot parse (reason ``malformed_events``).
    """
    data = _as_bytes(data, source)
    if layout is None:
        layout = read_midi_layout(data, source=source)
    if layout.is_smpte:
        raise midi_error(
            source,
            "unsupported",
            "SMPTE time division is not supported here (symusic reads ticks per quarter only); "
            "expected a file whose division is ticks per quarter note",
        )
    if layout.header_length != 6:
        # symusic insists on a 6-byte header; the extra bytes carry nothing it reads.
        data = _HEADER + struct.pack(">L", 6) + data[8:14] + data[8 + layout.header_length :]
        layout = read_midi_layout(data, source=source)
    if close_dangling:
        data = close_dangling_notes(
            data, layout, delay_ticks=dangling_delay_ticks, pitches=dangling_pitches, skip_channels=skip_channels
        )
    try:
        return symusic.Score.from_midi(data)
    except RuntimeError as exc:
        raise midi_error(source, "malformed_events", f"cannot parse the MIDI events: {exc}") from None
