"""Tests for chroma_keras.data.timestamps (pure Python; no keras)."""

import re

import pytest

from chroma_keras.data.timestamps import (
    format_lrc,
    format_smpte,
    parse_lrc,
    parse_lrc_line,
    parse_smpte,
    parse_timestamp,
)
from chroma_keras.errors import DataError

# --- LRC ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("[00:00.00]", 0.0),
        ("[01:02.50]", 62.5),
        ("[01:02.5]", 62.5),
        ("[03:07.123]", 187.123),
        ("[00:59]", 59.0),
        ("  [12:00.01] ", 720.01),
        ("02:03.45", 123.45),  # brackets optional
        ("[125:30.00]", 7530.0),  # minutes past 99
    ],
)
def test_parse_lrc_golden(text, seconds):
    assert parse_lrc(text) == pytest.approx(seconds, abs=1e-12)


@pytest.mark.parametrize(
    "seconds, decimals, text",
    [
        (62.5, 2, "[01:02.50]"),
        (187.123, 3, "[03:07.123]"),
        (59.0, 0, "[00:59]"),
        (59.996, 2, "[01:00.00]"),  # rounds up across the minute
        (0.004, 2, "[00:00.00]"),
        (7530.0, 2, "[125:30.00]"),
    ],
)
def test_format_lrc_golden(seconds, decimals, text):
    assert format_lrc(seconds, decimals=decimals) == text


@pytest.mark.parametrize("decimals", [2, 3])
def test_lrc_round_trip(decimals):
    for units in range(0, 400_000, 997):
        seconds = units / 10**decimals
        assert parse_lrc(format_lrc(seconds, decimals=decimals)) == pytest.approx(seconds, abs=1e-9)


@pytest.mark.parametrize(
    "text", ["", "[]", "[1:2:3]", "[00:60.00]", "[00:5.1234]", "[ab:cd]", "[01:02.50", "01.02", "-[00:01.00]", None]
)
def test_parse_lrc_errors_name_the_string_and_pattern(text):
    with pytest.raises(DataError, match=r"lyrics.lrc: .*" + (repr(text).replace("[", r"\[").replace(".", r"\."))):
        parse_lrc(text, source="lyrics.lrc")
    with pytest.raises(DataError, match=r"expected \[MM:SS\.xx\], \[MM:SS\.xxx\] or \[MM:SS\]"):
        parse_lrc(text)


def test_format_lrc_errors():
    with pytest.raises(DataError, match="seconds >= 0. Received: seconds=-1.0"):
        format_lrc(-1.0)
    with pytest.raises(DataError, match="decimals must be 0, 2 or 3"):
        format_lrc(1.0, decimals=1)


def test_parse_lrc_line():
    assert parse_lrc_line("[00:12.00][01:30.50] and the chorus again") == ([12.0, 90.5], "and the chorus again")
    assert parse_lrc_line("[ar:Some Artist]") == ([], "[ar:Some Artist]")
    assert parse_lrc_line("no tags here") == ([], "no tags here")
    with pytest.raises(DataError, match=r"song.lrc: LRC timestamp '00:75.00' has seconds >= 60"):
        parse_lrc_line("[00:75.00]text", source="song.lrc")


# --- SMPTE ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, rate, seconds",
    [
        ("00:00:01:12", 25, 1.48),
        ("00:00:01:12.50", 25, 1.5),  # half a frame
        ("01:02:03:04", 24, 3723 + 4 / 24),
        ("00:00:10:15", 30, 10.5),
        ("00:00:00:29.5", 30, 29.5 / 30),
        ("00:00:00:59", 60, 59 / 60),
        ("00:00:01:00", 23.976, 1.001),
        # 29.97 non-drop: labels count 30 per timecode second, 0.1 % slower than the clock.
        ("01:00:00:00", 29.97, 3603.6),
        # 29.97 drop-frame: an hour of labels is 107892 frames.
        ("01:00:00;00", 29.97, 107892 * 1001 / 30000),
        ("00:00:59;29", 29.97, 1799 * 1001 / 30000),
        ("00:01:00;02", 29.97, 1800 * 1001 / 30000),  # first label of minute 1
        ("00:10:00;00", 29.97, 17982 * 1001 / 30000),  # tenth minutes keep frames 0 and 1
        ("00:10:00;00", 30000 / 1001, 17982 * 1001 / 30000),
        ("00;01;00;02", 29.97, 1800 * 1001 / 30000),  # all-semicolon notation
        ("00:01:00;04.25", 59.94, (3600 + 0.25) * 1001 / 60000),
    ],
)
def test_parse_smpte_golden(text, rate, seconds):
    assert parse_smpte(text, rate) == pytest.approx(seconds, abs=1e-9)


@pytest.mark.parametrize(
    "seconds, rate, kwargs, text",
    [
        (1.48, 25, {}, "00:00:01:12"),
        (1.5, 25, {"subframe_digits": 2}, "00:00:01:12.50"),
        (3723 + 4 / 24, 24, {}, "01:02:03:04"),
        (3603.6, 29.97, {"drop_frame": False}, "01:00:00:00"),
        (3600.0, 29.97, {}, "01:00:00;00"),  # drop-frame labels follow the clock (3.6 ms/hour)
        (3600.0, 29.97, {"drop_frame": False}, "00:59:56:12"),  # non-drop labels fall 3.6 s/hour behind
        (60.06, 29.97, {}, "00:01:00;02"),
        (599.9994, 29.97, {}, "00:10:00;00"),
        (3599.9964, 29.97, {}, "01:00:00;00"),
        (60.06, 59.94, {}, "00:01:00;04"),  # frame 3600, the first label of minute 1
        (60.0, 59.94, {}, "00:00:59;56"),
        (0.0, 30, {"subframe_digits": 3}, "00:00:00:00.000"),
    ],
)
def test_format_smpte_golden(seconds, rate, kwargs, text):
    assert format_smpte(seconds, rate, **kwargs) == text


@pytest.mark.parametrize("rate", [23.976, 24, 25, 29.97, 30, 59.94])
def test_smpte_round_trip_every_frame_of_eleven_minutes(rate):
    nominal = round(rate)
    for frame in range(0, 11 * 60 * nominal, 7):
        seconds = frame / rate if rate in (24, 25, 30) else frame * 1001 / (nominal * 1000)
        text = format_smpte(seconds, rate)
        assert parse_smpte(text, rate) == pytest.approx(seconds, abs=1e-9), text


@pytest.mark.parametrize("drop", [2, 4])
def test_drop_frame_labels_are_consecutive_and_skip_the_right_ones(drop):
    rate = 29.97 if drop == 2 else 59.94
    nominal = round(rate)
    labels = [format_smpte(f * 1001 / (nominal * 1000), rate) for f in range(11 * 60 * nominal)]
    assert len(set(labels)) == len(labels)
    first = {}
    for label in labels:
        first.setdefault(label[:5], label)
    # Minutes 0 and 10 start at frame 0; every other minute at frame `drop`.
    assert first["00:00"] == "00:00:00;00" and first["00:10"] == "00:10:00;00"
    assert [first[f"00:{m:02d}"] for m in range(1, 10)] == [f"00:{m:02d}:00;{drop:02d}" for m in range(1, 10)]


@pytest.mark.parametrize(
    "text, rate, why",
    [
        ("00:00:01:25", 25, "frames must be below 25"),
        ("00:00:01:30", 29.97, "frames must be below 30"),
        ("00:61:00:00", 25, "minutes and seconds must be below 60"),
        ("00:00:60:00", 25, "minutes and seconds must be below 60"),
        ("00:01:00;00", 29.97, "drop-frame skips frames 0-1 at the start of minute 1"),
        ("00:02:00;03", 59.94, "drop-frame skips frames 0-3 at the start of minute 2"),
        ("00:00:01;00", 25, r"drop-frame \(';'\) exists only at 29.97 and 59.94 fps"),
        ("00;00;01:00", 29.97, "';' before the frames marks drop-frame"),
        ("1:2:3:4", 25, "not a timecode"),
        ("00:00:01", 25, "not a timecode"),
        ("00:00:01:12.", 25, "not a timecode"),
    ],
)
def test_parse_smpte_errors_name_the_string_and_pattern(text, rate, why):
    with pytest.raises(DataError) as info:
        parse_smpte(text, rate, source="cues.txt")
    message = str(info.value)
    assert message.startswith(f"cues.txt: cannot parse SMPTE timecode {text!r}")
    assert "expected HH:MM:SS:FF or HH:MM:SS:FF.sub (drop-frame: HH:MM:SS;FF)" in message
    assert re.search(why, message), message


def test_smpte_rate_and_format_errors():
    with pytest.raises(DataError, match=r"unsupported SMPTE frame rate; expected one of .*Received: frame_rate=48"):
        parse_smpte("00:00:00:00", 48)
    with pytest.raises(DataError, match="frame_rate='25'"):
        parse_smpte("00:00:00:00", "25")
    with pytest.raises(DataError, match="drop-frame exists only at 29.97 and 59.94 fps. Received: frame_rate=25"):
        format_smpte(1.0, 25, drop_frame=True)
    with pytest.raises(DataError, match="subframe_digits must be an integer >= 0"):
        format_smpte(1.0, 25, subframe_digits=-1)
    with pytest.raises(DataError, match="finite number of seconds >= 0"):
        format_smpte(float("inf"), 25)


# --- auto-detection ------------------------------------------------------------------


def test_parse_timestamp_dispatches_on_shape():
    assert parse_timestamp("[01:02.50]") == 62.5
    assert parse_timestamp("00:00:01:12.50", frame_rate=25) == 1.5
    assert parse_timestamp("00:01:00;02", frame_rate=29.97) == pytest.approx(60.06)
    with pytest.raises(DataError, match="needs a frame_rate"):
        parse_timestamp("00:00:01:12")
    with pytest.raises(DataError, match="cannot parse timestamp '12:34:56'; expected LRC .* or SMPTE"):
        parse_timestamp("12:34:56")
