"""Timestamps in the user's source files: LRC lyric tags and SMPTE timecode <-> float seconds.

LRC (lyrics) tags are ``[MM:SS.xx]`` (hundredths), ``[MM:SS.xxx]`` (milliseconds)
or ``[MM:SS]``; the brackets are optional here, minutes may exceed 59, seconds
may not. The digits after the point are a decimal fraction of a second
(``[01:02.5]`` is 62.5 s).

SMPTE timecode is ``HH:MM:SS:FF`` with an optional sub-frame fraction
(``HH:MM:SS:FF.sub``, ``.50`` = half a frame), read at a frame rate the caller
gives (a timecode does not say its rate):

=========  ============  ===================================================
rate       nominal fps   seconds of frame ``n``
=========  ============  ===================================================
24, 25,    24, 25,       ``n / rate``
30, 50, 60 30, 50, 60
23.976     24            ``n * 1001 / 24000`` (non-drop)
29.97      30            ``n * 1001 / 30000``; ``HH:MM:SS;FF`` is drop-frame
59.94      60            ``n * 1001 / 60000``; ``HH:MM:SS;FF`` is drop-frame
=========  ============  ===================================================

Drop-frame timecode (a ``;`` before the frames, or ``;`` everywhere) skips frame
labels 0 and 1 (0-3 at 59.94) at the start of every minute except every tenth,
so that its labels stay within 3.6 ms per hour of the wall clock; those labels do
not exist and are rejected. A ``:`` at 29.97 / 59.94 means non-drop timecode,
which runs 0.1 % slower than the wall clock (``01:00:00:00`` is 3603.6 s).

Frames must be below the nominal fps; minutes and seconds below 60.

Example:

>>> parse_lrc("[01:02.50]")
62.5
>>> parse_smpte("00:00:01:12.50", 25)
1.5
>>> format_smpte(60.06, 29.97)
'00:01:00;02'
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from chroma_keras.errors import DataError

LRC_PATTERN = "[MM:SS.xx], [MM:SS.xxx] or [MM:SS] (brackets optional)"
SMPTE_PATTERN = "HH:MM:SS:FF or HH:MM:SS:FF.sub (drop-frame: HH:MM:SS;FF)"

_LRC = re.compile(r"(\d+):(\d{1,2})(?:\.(\d{1,3}))?")
_SMPTE = re.compile(r"(\d{1,2})([:;])(\d{2})([:;])(\d{2})([:;])(\d{2})(?:\.(\d+))?")
# Several tags may open one LRC line: "[00:12.00][01:30.50]chorus text".
_LRC_TAG = re.compile(r"\[(\d+:\d{1,2}(?:\.\d{1,3})?)\]")


@dataclass(frozen=True)
class _Rate:
    nominal: int  # frame labels per timecode second
    scale: float  # wall-clock seconds per timecode second (1.001 for the NTSC rates)
    drop: int  # frame labels dropped per minute in drop-frame mode (0: no drop-frame)


_RATES = {
    24.0: _Rate(24, 1.0, 0),
    25.0: _Rate(25, 1.0, 0),
    30.0: _Rate(30, 1.0, 0),
    50.0: _Rate(50, 1.0, 0),
    60.0: _Rate(60, 1.0, 0),
    23.976: _Rate(24, 1.001, 0),
    29.97: _Rate(30, 1.001, 2),
    59.94: _Rate(60, 1.001, 4),
}


def _prefix(source: str | None) -> str:
    return f"{source}: " if source else ""


def _rate(frame_rate, source: str | None) -> tuple[float, _Rate]:
    if not isinstance(frame_rate, bool) and isinstance(frame_rate, (int, float)):
        for key, rate in _RATES.items():
            # 30000/1001 and 29.97 both name the NTSC rate.
            if abs(frame_rate - key) < 0.01:
                return key, rate
    raise DataError(
        f"{_prefix(source)}unsupported SMPTE frame rate; expected one of {sorted(_RATES)}. "
        f"Received: frame_rate={frame_rate!r}"
    )


def _check_seconds(seconds, what: str) -> float:
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds < 0:
        raise DataError(f"{what} formats a finite number of seconds >= 0. Received: seconds={seconds!r}")
    return float(seconds)


def parse_lrc(text: str, *, source: str | None = None) -> float:
    """Parse an LRC timestamp to seconds.

    Args:
        text: ``[MM:SS.xx]``, ``[MM:SS.xxx]`` or ``[MM:SS]`` (brackets optional,
            surrounding whitespace ignored).
        source: file name to put in error messages.

    Returns:
        Seconds as a float.

    Raises:
        DataError: naming ``text`` and the expected pattern when it does not match,
            or when seconds are 60 or more.
    """
    stripped = text.strip() if isinstance(text, str) else None
    if stripped and stripped.startswith("[") and stripped.endswith("]"):
        stripped = stripped[1:-1]
    match = _LRC.fullmatch(stripped) if stripped else None
    if match is None:
        raise DataError(f"{_prefix(source)}cannot parse LRC timestamp {text!r}; expected {LRC_PATTERN}.")
    minutes, seconds, fraction = match.groups()
    if int(seconds) >= 60:
        raise DataError(f"{_prefix(source)}LRC timestamp {text!r} has seconds >= 60; expected {LRC_PATTERN}.")
    value = int(minutes) * 60 + int(seconds)
    if fraction:
        value += int(fraction) / 10 ** len(fraction)
    return float(value)


def format_lrc(seconds: float, *, decimals: int = 2) -> str:
    """Format seconds as an LRC tag, rounded to the nearest unit shown.

    Args:
        seconds: a time >= 0.
        decimals: 2 (``[MM:SS.xx]``), 3 (``[MM:SS.xxx]``) or 0 (``[MM:SS]``).

    Returns:
        The tag, e.g. ``"[01:02.50]"``; minutes grow past 99 as needed.

    Raises:
        DataError: for negative or non-finite seconds, or other ``decimals``.
    """
    if decimals not in (0, 2, 3):
        raise DataError(f"format_lrc: decimals must be 0, 2 or 3. Received: decimals={decimals!r}")
    units = round(_check_seconds(seconds, "format_lrc") * 10**decimals)
    whole, fraction = divmod(units, 10**decimals)
    minutes, secs = divmod(whole, 60)
    return f"[{minutes:02d}:{secs:02d}.{fraction:0{decimals}d}]" if decimals else f"[{minutes:02d}:{secs:02d}]"


def parse_lrc_line(line: str, *, source: str | None = None) -> tuple[list[float], str]:
    """Split an LRC lyric line into its leading time tags and its text.

    Args:
        line: e.g. ``"[00:12.00][01:30.50]chorus text"``. Metadata lines
            (``[ar:Artist]``) and plain text have no time tags.
        source: file name for error messages.

    Returns:
        ``(times_in_seconds, text)``.

    Raises:
        DataError: for a time tag with seconds >= 60.
    """
    times = []
    rest = line
    while True:
        match = _LRC_TAG.match(rest)
        if match is None:
            break
        times.append(parse_lrc(match.group(1), source=source))
        rest = rest[match.end() :]
    return times, rest.strip() if times else line


def parse_smpte(text: str, frame_rate: float, *, source: str | None = None) -> float:
    """Parse SMPTE timecode to seconds.

    Args:
        text: ``HH:MM:SS:FF``, ``HH:MM:SS:FF.sub`` or drop-frame ``HH:MM:SS;FF``
            (``;`` may also replace the other separators).
        frame_rate: 23.976, 24, 25, 29.97 (or 30000/1001), 30, 50, 59.94 or 60.
        source: file name for error messages.

    Returns:
        Seconds as a float.

    Raises:
        DataError: naming ``text`` and the expected pattern when it does not match,
            for minutes/seconds >= 60, frames >= the nominal fps, drop-frame notation
            at a rate without drop-frame, or a label drop-frame skips.
    """
    key, rate = _rate(frame_rate, source)
    stripped = text.strip() if isinstance(text, str) else None
    match = _SMPTE.fullmatch(stripped) if stripped else None

    def fail(why: str):
        return DataError(
            f"{_prefix(source)}cannot parse SMPTE timecode {text!r} at {key:g} fps: {why}; expected {SMPTE_PATTERN}."
        )

    if match is None:
        raise fail("not a timecode")
    hh, sep1, mm, sep2, ss, sep3, ff, sub = match.groups()
    hours, minutes, secs, frames = int(hh), int(mm), int(ss), int(ff)
    drop_frame = sep3 == ";"
    if ";" in (sep1, sep2) and not drop_frame:
        raise fail("';' before the frames marks drop-frame; the other separators must not use it alone")
    if minutes >= 60 or secs >= 60:
        raise fail("minutes and seconds must be below 60")
    if frames >= rate.nominal:
        raise fail(f"frames must be below {rate.nominal}")
    if drop_frame and not rate.drop:
        raise fail("drop-frame (';') exists only at 29.97 and 59.94 fps")
    total_minutes = 60 * hours + minutes
    if drop_frame and secs == 0 and frames < rate.drop and total_minutes % 10:
        raise fail(f"drop-frame skips frames 0-{rate.drop - 1} at the start of minute {minutes}")
    index = (3600 * hours + 60 * minutes + secs) * rate.nominal + frames
    if drop_frame:
        index -= rate.drop * (total_minutes - total_minutes // 10)
    fraction = int(sub) / 10 ** len(sub) if sub else 0.0
    return (index + fraction) * rate.scale / rate.nominal


def format_smpte(
    seconds: float,
    frame_rate: float,
    *,
    drop_frame: bool | None = None,
    subframe_digits: int = 0,
) -> str:
    """Format seconds as SMPTE timecode.

    Args:
        seconds: a time >= 0.
        frame_rate: as for :func:`parse_smpte`.
        drop_frame: write drop-frame timecode (``;`` before the frames). None means
            yes at 29.97 and 59.94 fps, no elsewhere.
        subframe_digits: 0 rounds to the nearest frame; ``n > 0`` appends the
            fraction of a frame with ``n`` digits (``.50``).

    Returns:
        ``HH:MM:SS:FF`` (``HH:MM:SS;FF`` drop-frame), with ``.sub`` when asked.

    Raises:
        DataError: for negative seconds, an unknown rate, drop-frame at a rate without
            it, or a negative ``subframe_digits``.
    """
    key, rate = _rate(frame_rate, None)
    seconds = _check_seconds(seconds, "format_smpte")
    drop = bool(rate.drop) if drop_frame is None else bool(drop_frame)
    if drop and not rate.drop:
        raise DataError(f"format_smpte: drop-frame exists only at 29.97 and 59.94 fps. Received: frame_rate={key:g}")
    if isinstance(subframe_digits, bool) or not isinstance(subframe_digits, int) or subframe_digits < 0:
        raise DataError(f"format_smpte: subframe_digits must be an integer >= 0. Received: {subframe_digits!r}")
    scale = 10**subframe_digits
    units = round(seconds * rate.nominal / rate.scale * scale)
    index, sub = divmod(units, scale)
    if drop:
        # Re-insert the skipped labels: drop per minute, except every tenth minute.
        per_ten = 600 * rate.nominal - 9 * rate.drop
        per_minute = 60 * rate.nominal - rate.drop
        tens, rest = divmod(index, per_ten)
        index += 9 * rate.drop * tens
        if rest >= rate.drop:
            index += rate.drop * ((rest - rate.drop) // per_minute)
    frames = index % rate.nominal
    total_seconds = index // rate.nominal
    hours, remainder = divmod(total_seconds, 3600)
    minutes, secs = divmod(remainder, 60)
    text = f"{hours:02d}:{minutes:02d}:{secs:02d}{';' if drop else ':'}{frames:02d}"
    return f"{text}.{sub:0{subframe_digits}d}" if subframe_digits else text


def parse_timestamp(text: str, *, frame_rate: float | None = None, source: str | None = None) -> float:
    """Parse either an LRC tag or SMPTE timecode, told apart by their shape.

    Args:
        text: an LRC tag (one ``:``) or SMPTE timecode (three separators).
        frame_rate: required for SMPTE timecode.
        source: file name for error messages.

    Returns:
        Seconds as a float.

    Raises:
        DataError: when ``text`` is neither, or SMPTE timecode comes without ``frame_rate``.
    """
    stripped = text.strip() if isinstance(text, str) else ""
    if stripped.count(":") + stripped.count(";") == 3:
        if frame_rate is None:
            raise DataError(f"{_prefix(source)}SMPTE timecode {text!r} needs a frame_rate; none was given.")
        return parse_smpte(text, frame_rate, source=source)
    if stripped.count(":") == 1 and ";" not in stripped:
        return parse_lrc(text, source=source)
    raise DataError(
        f"{_prefix(source)}cannot parse timestamp {text!r}; expected LRC {LRC_PATTERN} or SMPTE {SMPTE_PATTERN}."
    )
