"""Raw float32 PCM decoding and audio file reading: exact values and every rejection reason."""

import numpy as np
import pyarrow as pa
import pytest
import soundfile

from chroma_keras.data.audio_bytes import (
    DEFAULT_SAMPLE_RATES,
    AudioDataError,
    decode_pcm_float32,
    read_audio_file,
    validate_sample_rate,
)
from chroma_keras.errors import DataError


def test_decode_golden_bytes():
    # IEEE-754 little endian: 0x3f800000 = 1.0, 0xbf000000 = -0.5, 0x00000000 = 0.
    data = b"\x00\x00\x80\x3f" + b"\x00\x00\x00\xbf" + b"\x00\x00\x00\x00"
    out = decode_pcm_float32(data, source="seg")
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [1.0, -0.5, 0.0])


def test_decode_round_trips_and_owns_its_memory():
    wave = np.sin(np.linspace(0, 20, 4410, dtype=np.float32)).astype("<f4")
    raw = bytearray(wave.tobytes())
    out = decode_pcm_float32(raw, source="seg", sample_rate=44100)
    np.testing.assert_array_equal(out, wave)
    raw[:4] = b"\x00\x00\x00\x00"  # mutating the source must not change the result
    assert out[0] == wave[0] and out.flags.writeable
    # Zero-copy views from pyarrow and memoryviews decode the same.
    np.testing.assert_array_equal(decode_pcm_float32(pa.py_buffer(wave.tobytes()), source="seg"), wave)
    np.testing.assert_array_equal(decode_pcm_float32(memoryview(wave.tobytes()), source="seg"), wave)


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty"),
        (None, "empty"),
        (b"\x00" * 7, "length_not_multiple_of_4"),
        (np.float32([0.1, np.nan, 0.2]).tobytes(), "non_finite"),
        (np.float32([np.inf]).tobytes(), "non_finite"),
        (np.float32([0.0, -np.inf]).tobytes(), "non_finite"),
    ],
)
def test_bad_bytes_raise_with_reason_and_segment(data, reason):
    with pytest.raises(AudioDataError, match="seg_042") as info:
        decode_pcm_float32(data, source="seg_042")
    assert info.value.reason == reason and info.value.source == "seg_042"
    assert isinstance(info.value, DataError)


def test_non_finite_message_counts_samples():
    with pytest.raises(AudioDataError, match=r"2 NaN/Inf sample\(s\) \(first at sample 1\)"):
        decode_pcm_float32(np.float32([0, np.nan, 1, np.inf]).tobytes(), source="s")


def test_sample_rates():
    assert DEFAULT_SAMPLE_RATES == {16000, 22050, 24000, 32000, 44100, 48000}
    assert validate_sample_rate(np.int32(44100), source="s") == 44100
    for bad in (12345, None, "44100", 44100.5):
        with pytest.raises(AudioDataError, match=r"s: unexpected audio sample rate") as info:
            validate_sample_rate(bad, source="s")
        assert info.value.reason == "unexpected_sample_rate"
    assert validate_sample_rate(8000, source="s", allowed={8000}) == 8000
    with pytest.raises(AudioDataError, match="expected one of"):
        decode_pcm_float32(np.float32([0.1]).tobytes(), source="s", sample_rate=11025)


def test_read_audio_file_mixes_down_exactly(tmp_path):
    rng = np.random.default_rng(0)
    stereo = rng.uniform(-0.5, 0.5, size=(2205, 2)).astype(np.float32)
    path = tmp_path / "x.wav"
    soundfile.write(path, stereo, 22050, subtype="FLOAT")
    wave, rate = read_audio_file(path, source="seg")
    assert rate == 22050
    np.testing.assert_allclose(wave, stereo.mean(axis=1), rtol=0, atol=1e-7)
    # A window of a whole-song file: [0.02 s, 0.05 s) = samples 441..1102.
    part, _ = read_audio_file(path, source="seg", start_seconds=0.02, end_seconds=0.05)
    np.testing.assert_allclose(part, stereo[441:1102].mean(axis=1), rtol=0, atol=1e-7)


def test_read_audio_file_flac_matches_soundfile(tmp_path):
    wave = (0.3 * np.sin(np.arange(4800) / 7.0)).astype(np.float32)
    path = tmp_path / "x.flac"
    soundfile.write(path, wave, 48000)  # 16-bit FLAC: compare against soundfile's own decoding
    expected, _ = soundfile.read(path, dtype="float32")
    out, rate = read_audio_file(path, source="seg")
    assert rate == 48000
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_allclose(out, wave, atol=2 / 32768)


def test_read_audio_file_errors(tmp_path):
    with pytest.raises(AudioDataError, match="not found") as info:
        read_audio_file(tmp_path / "none.wav", source="seg")
    assert info.value.reason == "file_missing"
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not audio at all")
    with pytest.raises(AudioDataError, match="junk.wav") as info:
        read_audio_file(junk, source="seg")
    assert info.value.reason == "unreadable"
    slow = tmp_path / "slow.wav"
    soundfile.write(slow, np.zeros(100, np.float32), 11025)
    with pytest.raises(AudioDataError, match="11025") as info:
        read_audio_file(slow, source="seg")
    assert info.value.reason == "unexpected_sample_rate"
    nan = tmp_path / "nan.wav"
    soundfile.write(nan, np.float32([0.0, np.nan]), 16000, subtype="FLOAT")
    with pytest.raises(AudioDataError) as info:
        read_audio_file(nan, source="seg")
    assert info.value.reason == "non_finite"
