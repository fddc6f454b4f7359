"""MIDI -> mono audio: FluidSynth with a General MIDI SoundFont, or a numpy fallback synth.

Two backends render a Standard MIDI File (bytes) to a float32 mono waveform:

* ``"fluidsynth"`` runs the ``fluidsynth`` command-line program (Debian package
  ``fluidsynth``) with a GM SoundFont (``fluid-soundfont-gm``, see
  :func:`find_soundfont`) and reads the WAV it writes back with soundfile.
  Debian 12's fluidsynth 2.3.1 never finishes some files (DESIGN §6), so the
  MIDI is first closed off (sustain off + all notes off on every channel at its
  end, all sound off one tail later) and the program runs under a wall-clock
  timeout and an output-size limit; exceeding either kills it and raises
  :class:`~chroma_keras.errors.DataError` naming ``source``.
* ``"additive"`` is a pure-numpy synth for machines without fluidsynth: every
  pitched note is a sum of harmonics shaped by an ADSR envelope, with amplitude
  ``(velocity / 127) ** 2``; channel-10 drums are band-filtered noise bursts
  (low for kicks and toms, mid for snares, high for hats and cymbals). It knows
  no instruments: every program sounds the same.

``"auto"`` picks fluidsynth when both the program and a SoundFont are found.

Both backends return exactly ``round((midi_length + tail_seconds) * sample_rate)``
samples (or ``round(duration * sample_rate)`` when ``duration`` is given, cutting
or zero-padding), peak-normalised to ``peak`` so that nothing clips. A note-on
without a note-off (segments cut from longer files have these) sounds until the
end of the file.

Example:

>>> import io, mido
>>> midi = mido.MidiFile(ticks_per_beat=480)
>>> track = mido.MidiTrack([mido.Message("note_on", note=69, velocity=100),
...                         mido.Message("note_off", note=69, time=480)])
>>> midi.tracks.append(track)
>>> buffer = io.BytesIO(); midi.save(file=buffer)
>>> audio = render_midi(buffer.getvalue(), sample_rate=22050, backend="additive")
>>> audio.shape, audio.dtype  # 0.5 s of A4 + 1 s tail
((33075,), dtype('float32'))
"""

from __future__ import annotations

import functools
import io
import math
import os
import pathlib
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass

import mido
import numpy as np
import scipy.signal
import soundfile

from chroma_keras.errors import ChromaKerasError, DataError, MidiError

try:  # written by a sibling module; absent in older checkouts
    from chroma_keras.preprocessing.midi_validation import validate_midi_bytes as _validate_midi_bytes
except ImportError:  # pragma: no cover - depends on the checkout
    _validate_midi_bytes = None

BACKENDS = ("auto", "fluidsynth", "additive")
#: The program run by the fluidsynth backend (a name looked up on PATH, or a path).
FLUIDSYNTH_PROGRAM = "fluidsynth"
#: Environment variable naming a SoundFont to use when none is passed.
SOUNDFONT_ENV = "CHROMA_KERAS_SOUNDFONT"
#: Where Debian / Ubuntu / Fedora / Arch put a GM SoundFont, first match wins.
SOUNDFONT_CANDIDATES = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/soundfonts/default.sf2",
    "/usr/share/soundfonts/FluidR3_GM2-2.sf2",
)
DRUM_CHANNEL = 9  # channel 10, counted from 0
# fluidsynth's synth.sample-rate range.
_FLUIDSYNTH_RATES = (8000, 96000)
_POLL_SECONDS = 0.02


# ---------------------------------------------------------------------------
# Reading notes
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MidiNotes:
    """The notes of a MIDI file as parallel arrays, times in seconds.

    Attributes:
        pitch: int array, MIDI pitch 0-127.
        start: float array, onset time.
        end: float array, release time (``>= start``).
        velocity: int array, 1-127.
        channel: int array, 0-15 (9 = drums).
        length: the file's duration (time of its last event), seconds.
    """

    pitch: np.ndarray
    start: np.ndarray
    end: np.ndarray
    velocity: np.ndarray
    channel: np.ndarray
    length: float

    def __len__(self) -> int:
        return len(self.pitch)


def _parse_midi(midi_bytes, name: str) -> mido.MidiFile:
    if not isinstance(midi_bytes, (bytes, bytearray, memoryview)):
        raise MidiError(
            f"{name}: expected MIDI as bytes (a Standard MIDI File). Received: {type(midi_bytes).__name__}"
        )
    data = bytes(midi_bytes)
    if _validate_midi_bytes is not None:
        _validate_midi_bytes(data, source=name)
    if not data.startswith(b"MThd"):
        raise MidiError(
            f"{name}: not a Standard MIDI File; expected data starting with b'MThd'. Received first bytes: {data[:8]!r}"
        )
    try:
        midi_file = mido.MidiFile(file=io.BytesIO(data))
    except Exception as exc:  # mido raises EOFError, OSError, ValueError, KeyError... on malformed data
        raise MidiError(f"{name}: cannot parse the Standard MIDI File: {type(exc).__name__}: {exc}") from None
    if midi_file.type == 2:
        raise MidiError(f"{name}: MIDI format 2 (independent sequences) is not supported; expected format 0 or 1.")
    if midi_file.ticks_per_beat < 0:  # mido reads an SMPTE division as a negative number
        raise MidiError(
            f"{name}: SMPTE time division (frames x ticks per frame) is not supported; expected a file "
            f"timed in ticks per beat. Received division: {midi_file.ticks_per_beat & 0xFFFF:#06x}"
        )
    if midi_file.ticks_per_beat == 0:
        raise MidiError(f"{name}: the MIDI header's division (ticks per beat) is 0; expected a positive value.")
    return midi_file


def read_notes(midi_bytes, *, source: str | None = None) -> MidiNotes:
    """Read every note (drums included) of a Standard MIDI File.

    Tempo changes are honoured (mido merges the tracks in time order). A note-on
    with velocity 0 is a note-off; repeated note-ons of one key on one channel are
    closed first in, first out; a note-on never closed lasts to the end of the file.

    Args:
        midi_bytes: a Standard MIDI File, format 0 or 1.
        source: what to name in error messages (segment_id or path).

    Returns:
        A :class:`MidiNotes`, sorted by onset.

    Raises:
        MidiError: for bytes that are not a readable format 0/1 MIDI file, naming ``source``.
    """
    name = source or "<midi bytes>"
    return _read_notes(_parse_midi(midi_bytes, name), name)


def _read_notes(midi_file: mido.MidiFile, name: str) -> MidiNotes:
    rows = []
    open_notes: dict[tuple[int, int], list[tuple[float, int]]] = {}
    now = 0.0
    try:
        for msg in midi_file:  # msg.time is the delta in seconds here
            now += msg.time
            if msg.type not in ("note_on", "note_off"):
                continue
            key = (msg.channel, msg.note)
            if msg.type == "note_on" and msg.velocity > 0:
                open_notes.setdefault(key, []).append((now, msg.velocity))
            elif open_notes.get(key):
                start, velocity = open_notes[key].pop(0)
                rows.append((msg.note, start, now, velocity, msg.channel))
    except Exception as exc:
        raise MidiError(f"{name}: cannot read the MIDI events: {type(exc).__name__}: {exc}") from None
    for (channel, pitch), pending in open_notes.items():
        rows.extend((pitch, start, now, velocity, channel) for start, velocity in pending)
    rows.sort(key=lambda r: (r[1], r[0]))
    table = np.array(rows, dtype=np.float64).reshape(-1, 5)
    return MidiNotes(
        pitch=table[:, 0].astype(np.int64),
        start=table[:, 1],
        end=table[:, 2],
        velocity=table[:, 3].astype(np.int64),
        channel=table[:, 4].astype(np.int64),
        length=float(now),
    )


# ---------------------------------------------------------------------------
# Finding fluidsynth and a SoundFont
# ---------------------------------------------------------------------------


def find_fluidsynth() -> str | None:
    """The full path of the fluidsynth program (:data:`FLUIDSYNTH_PROGRAM`), or None when absent."""
    return shutil.which(FLUIDSYNTH_PROGRAM)


def find_soundfont(path: str | os.PathLike | None = None) -> pathlib.Path | None:
    """Locate a General MIDI SoundFont.

    Args:
        path: an explicit ``.sf2`` file. When None, the file named by the
            ``CHROMA_KERAS_SOUNDFONT`` environment variable, then the first of
            :data:`SOUNDFONT_CANDIDATES` that exists.

    Returns:
        The SoundFont's path, or None when none is installed (only when ``path`` is None).

    Raises:
        DataError: when an explicit ``path`` (or the environment variable) names no file.
    """
    explicit = path if path is not None else os.environ.get(SOUNDFONT_ENV) or None
    if explicit is not None:
        found = pathlib.Path(explicit)
        if not found.is_file():
            origin = "soundfont" if path is not None else SOUNDFONT_ENV
            raise DataError(f"{origin}={str(explicit)!r}: no such SoundFont file; expected a path to a .sf2 file.")
        return found
    for candidate in SOUNDFONT_CANDIDATES:
        if pathlib.Path(candidate).is_file():
            return pathlib.Path(candidate)
    return None


def _resolve_backend(backend: str, soundfont) -> tuple[str, pathlib.Path | None]:
    if backend not in BACKENDS:
        raise ChromaKerasError(f"backend must be one of {BACKENDS}. Received: backend={backend!r}")
    if backend == "additive":
        return backend, None
    program, font = find_fluidsynth(), find_soundfont(soundfont)
    if backend == "auto":
        return ("fluidsynth", font) if program and font else ("additive", None)
    if program is None:
        raise ChromaKerasError(
            f"backend='fluidsynth' needs the {FLUIDSYNTH_PROGRAM!r} program, which is not on PATH "
            "(Debian: apt-get install fluidsynth). Use backend='additive' or 'auto' to render without it."
        )
    if font is None:
        raise ChromaKerasError(
            "backend='fluidsynth' needs a General MIDI SoundFont and none was found in "
            f"{list(SOUNDFONT_CANDIDATES)} (Debian: apt-get install fluid-soundfont-gm); pass soundfont=PATH "
            f"or set {SOUNDFONT_ENV}."
        )
    return backend, font


# ---------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------


def render_midi(
    midi_bytes,
    *,
    sample_rate: int = 44100,
    soundfont: str | os.PathLike | None = None,
    backend: str = "auto",
    duration: float | None = None,
    tail_seconds: float = 1.0,
    max_seconds: float = 600.0,
    timeout_seconds: float | None = None,
    peak: float = 0.9,
    seed: int = 0,
    source: str | None = None,
) -> np.ndarray:
    """Render a Standard MIDI File to mono audio.

    Args:
        midi_bytes: the MIDI file (bytes, format 0 or 1).
        sample_rate: output rate in Hz (fluidsynth accepts 8000-96000).
        soundfont: ``.sf2`` file for fluidsynth; None finds one (:func:`find_soundfont`).
        backend: ``"auto"``, ``"fluidsynth"`` or ``"additive"`` (see the module docs).
        duration: output length in seconds (cut or zero-padded); None means the
            MIDI's length plus ``tail_seconds``.
        tail_seconds: how long notes may ring after the MIDI's last event.
        max_seconds: refuse to render more than this many seconds (a guard against
            corrupt files that claim hours of music).
        timeout_seconds: wall-clock limit of the fluidsynth run; None means
            ``30 + 2 * rendered seconds``.
        peak: the output's peak absolute value after normalisation, in (0, 1].
            Silence stays all zeros.
        seed: seed of the additive backend's drum noise (output is deterministic).
        source: what to name in error messages (segment_id or path).

    Returns:
        float32 array ``[num_samples]``.

    Raises:
        MidiError: unreadable MIDI.
        DataError: bad arguments, a render longer than ``max_seconds``, or a fluidsynth
            run that failed, timed out or wrote more than expected (all naming ``source``).
        ChromaKerasError: ``backend="fluidsynth"`` without the program or a SoundFont.
    """
    name = source or "<midi bytes>"
    _check_arguments(name, sample_rate, duration, tail_seconds, max_seconds, timeout_seconds, peak)
    resolved, font = _resolve_backend(backend, soundfont)
    if resolved == "fluidsynth" and not _FLUIDSYNTH_RATES[0] <= sample_rate <= _FLUIDSYNTH_RATES[1]:
        raise DataError(
            f"{name}: fluidsynth renders at {_FLUIDSYNTH_RATES[0]}-{_FLUIDSYNTH_RATES[1]} Hz. "
            f"Received: sample_rate={sample_rate}"
        )
    midi_file = _parse_midi(midi_bytes, name)
    notes = _read_notes(midi_file, name)
    seconds = float(duration) if duration is not None else notes.length + tail_seconds
    if seconds > max_seconds:
        raise DataError(
            f"{name}: the render would last {seconds:.1f} s, above max_seconds={max_seconds}. Pass duration= "
            "to render only the start, or raise max_seconds."
        )
    num_samples = int(round(seconds * sample_rate))
    if resolved == "fluidsynth":
        stop = min(notes.length, seconds)
        closed = close_midi(midi_file, notes_off_seconds=stop, sound_off_seconds=max(seconds, stop))
        timeout = timeout_seconds if timeout_seconds is not None else 30.0 + 2.0 * seconds
        audio = _render_fluidsynth(closed, font, sample_rate, seconds, timeout, name)
    else:
        audio = render_additive(notes, sample_rate=sample_rate, seconds=seconds, seed=seed)
    return _fit_and_normalise(audio, num_samples, peak)


def _check_arguments(name, sample_rate, duration, tail_seconds, max_seconds, timeout_seconds, peak):
    def positive(value, allow_zero=False):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            return False
        return math.isfinite(value) and (value >= 0 if allow_zero else value > 0)

    problems = []
    if not (isinstance(sample_rate, (int, np.integer)) and not isinstance(sample_rate, bool) and sample_rate > 0):
        problems.append(f"sample_rate must be a positive integer (Hz). Received: sample_rate={sample_rate!r}")
    if duration is not None and not positive(duration):
        problems.append(f"duration must be a positive number of seconds or None. Received: duration={duration!r}")
    if not positive(tail_seconds, allow_zero=True):
        problems.append(f"tail_seconds must be >= 0. Received: tail_seconds={tail_seconds!r}")
    if not positive(max_seconds):
        problems.append(f"max_seconds must be positive. Received: max_seconds={max_seconds!r}")
    if timeout_seconds is not None and not positive(timeout_seconds):
        problems.append(f"timeout_seconds must be positive or None. Received: timeout_seconds={timeout_seconds!r}")
    if not (positive(peak) and peak <= 1):
        problems.append(f"peak must lie in (0, 1]. Received: peak={peak!r}")
    if problems:
        raise DataError(f"{name}: " + "; ".join(problems))


def _fit_and_normalise(audio: np.ndarray, num_samples: int, peak: float) -> np.ndarray:
    out = np.zeros(num_samples, dtype=np.float64)
    count = min(num_samples, len(audio))
    out[:count] = audio[:count]
    top = float(np.max(np.abs(out))) if num_samples else 0.0
    if top > 0:
        out *= peak / top
    return out.astype(np.float32)


# ---------------------------------------------------------------------------
# fluidsynth
# ---------------------------------------------------------------------------


class _TempoMap:
    """Seconds -> ticks for a format 0/1 file (tempo changes of every track apply to all)."""

    def __init__(self, midi_file: mido.MidiFile):
        changes = []
        for track in midi_file.tracks:
            tick = 0
            for msg in track:
                tick += msg.time
                if msg.type == "set_tempo":
                    changes.append((tick, msg.tempo))
        changes.sort(key=lambda c: c[0])
        self.ticks_per_beat = midi_file.ticks_per_beat
        self.points = [(0, 0.0, 500_000)]  # (tick, seconds, tempo from here on)
        for tick, tempo in changes:
            last_tick, last_seconds, last_tempo = self.points[-1]
            seconds = last_seconds + mido.tick2second(tick - last_tick, self.ticks_per_beat, last_tempo)
            if tick == last_tick:
                self.points[-1] = (tick, seconds, tempo)
            else:
                self.points.append((tick, seconds, tempo))

    def to_ticks(self, seconds: float) -> int:
        tick, start, tempo = next(p for p in reversed(self.points) if p[1] <= seconds + 1e-12)
        return tick + int(math.ceil(mido.second2tick(seconds - start, self.ticks_per_beat, tempo) - 1e-6))


def close_midi(midi_file: mido.MidiFile, *, notes_off_seconds: float, sound_off_seconds: float) -> bytes:
    """Close a MIDI file off so that every synth stops: the fluidsynth hang guard.

    Events after ``notes_off_seconds`` are dropped. At ``notes_off_seconds`` every
    channel gets sustain off (CC 64) and all notes off (CC 123), so notes enter
    their release; at ``sound_off_seconds`` all sound off (CC 120) and the end of
    the track.

    Args:
        midi_file: a parsed format 0 or 1 file (not modified).
        notes_off_seconds: when notes are released.
        sound_off_seconds: when all sound stops (``>= notes_off_seconds``).

    Returns:
        The closed file as Standard MIDI File bytes.
    """
    tempo_map = _TempoMap(midi_file)
    notes_off = tempo_map.to_ticks(notes_off_seconds)
    sound_off = max(tempo_map.to_ticks(sound_off_seconds), notes_off)
    tracks = []
    for track in midi_file.tracks:
        tick, events = 0, []
        for msg in track:
            tick += msg.time
            if tick <= notes_off and not (msg.is_meta and msg.type == "end_of_track"):
                events.append((tick, msg))
        tracks.append(events)
    closing = [(notes_off, mido.Message("control_change", channel=c, control=64, value=0)) for c in range(16)]
    closing += [(notes_off, mido.Message("control_change", channel=c, control=123, value=0)) for c in range(16)]
    closing += [(sound_off, mido.Message("control_change", channel=c, control=120, value=0)) for c in range(16)]
    if midi_file.type == 0:
        tracks[0].extend(closing)
    else:
        tracks.append(closing)
    out = mido.MidiFile(type=midi_file.type, ticks_per_beat=midi_file.ticks_per_beat)
    for events in tracks:
        track, previous = mido.MidiTrack(), 0
        for tick, msg in events:
            track.append(msg.copy(time=tick - previous))
            previous = tick
        track.append(mido.MetaMessage("end_of_track", time=max(sound_off - previous, 0)))
        out.tracks.append(track)
    buffer = io.BytesIO()
    out.save(file=buffer)
    return buffer.getvalue()


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _render_fluidsynth(midi_bytes: bytes, soundfont, sample_rate: int, seconds: float, timeout: float, name: str):
    # fluidsynth writes stereo float32 and keeps going a few seconds past the MIDI's end;
    # twice the expected size (plus slack) is far beyond any legitimate render.
    max_bytes = int(2 * 4 * sample_rate * (2 * seconds + 10)) + (1 << 20)
    with tempfile.TemporaryDirectory(prefix="chroma_keras_render_") as tmp:
        midi_path, wav_path, log_path = (os.path.join(tmp, n) for n in ("in.mid", "out.wav", "stderr.txt"))
        with open(midi_path, "wb") as f:
            f.write(midi_bytes)
        argv = [
            find_fluidsynth() or FLUIDSYNTH_PROGRAM,
            "-n", "-i", "-q",  # no MIDI input, no shell, quiet
            "-F", wav_path, "-T", "wav", "-O", "float", "-r", str(sample_rate),
            str(soundfont), midi_path,
        ]  # fmt: skip
        with open(log_path, "wb") as log:
            # A session of its own, so that killing the group also ends any helper it spawned.
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
            began = time.monotonic()
            while proc.poll() is None:
                size = os.path.getsize(wav_path) if os.path.exists(wav_path) else 0
                if size > max_bytes:
                    _kill_group(proc)
                    raise DataError(
                        f"{name}: fluidsynth wrote more than {max_bytes} bytes for a {seconds:.1f} s render and was "
                        "stopped (fluidsynth 2.3.1 never finishes some files; upgrading to >= 2.3.4 fixes it)."
                    )
                if time.monotonic() - began > timeout:
                    _kill_group(proc)
                    raise DataError(
                        f"{name}: fluidsynth did not finish within timeout_seconds={timeout:g} and was stopped "
                        "(fluidsynth 2.3.1 never finishes some files; upgrading to >= 2.3.4 fixes it)."
                    )
                time.sleep(_POLL_SECONDS)
        with open(log_path, "rb") as log:
            message = log.read()[-2000:].decode("utf-8", "replace").strip()
        if proc.returncode != 0 or not os.path.exists(wav_path):
            raise DataError(f"{name}: fluidsynth failed (exit status {proc.returncode}): {message or 'no output'}")
        try:
            audio, rate = soundfile.read(wav_path, dtype="float32", always_2d=True)
        except Exception as exc:  # soundfile raises LibsndfileError / RuntimeError on truncated files
            raise DataError(f"{name}: cannot read the WAV fluidsynth wrote: {exc}") from None
    if rate != sample_rate:
        raise DataError(f"{name}: fluidsynth wrote {rate} Hz audio; expected sample_rate={sample_rate}.")
    return audio.mean(axis=1)


# ---------------------------------------------------------------------------
# Additive synth
# ---------------------------------------------------------------------------

# ADSR of pitched notes: attack, decay, release in seconds; sustain as a level.
ATTACK, DECAY, SUSTAIN, RELEASE = 0.005, 0.1, 0.6, 0.15
NUM_HARMONICS = 8
# Drum families: (pitches, low cut Hz or None, high cut Hz or None, decay seconds).
_DRUM_KINDS = (
    ((35, 36), None, 150.0, 0.15),  # kicks
    ((41, 43, 45, 47, 48, 50), 80.0, 400.0, 0.2),  # toms
    ((37, 38, 39, 40), 800.0, 6000.0, 0.12),  # stick, snares, clap
    ((42, 44), 7000.0, None, 0.05),  # closed / pedal hi-hat
    ((46,), 7000.0, None, 0.3),  # open hi-hat
    ((49, 51, 52, 53, 55, 57, 59), 5000.0, None, 0.8),  # cymbals
)
_OTHER_DRUM = (2000.0, 8000.0, 0.1)


def _adsr(held_seconds: float, sample_rate: int) -> np.ndarray:
    held = max(int(round(held_seconds * sample_rate)), 1)
    t = np.arange(held) / sample_rate
    env = np.where(t < ATTACK, t / ATTACK, 1.0 - (1.0 - SUSTAIN) * np.clip((t - ATTACK) / DECAY, 0.0, 1.0))
    release = env[-1] * np.linspace(1.0, 0.0, max(int(round(RELEASE * sample_rate)), 1), endpoint=False)
    return np.concatenate([env, release])


def _tone(pitch: int, held_seconds: float, sample_rate: int) -> np.ndarray:
    env = _adsr(held_seconds, sample_rate)
    f0 = 440.0 * 2.0 ** ((pitch - 69) / 12.0)
    k = np.arange(1, NUM_HARMONICS + 1)
    k = k[k * f0 < sample_rate / 2]  # no aliasing
    t = np.arange(len(env)) / sample_rate
    wave = np.sin(2 * np.pi * f0 * t[:, None] * k[None, :]) @ (1.0 / k**1.5)
    return wave * env


@functools.lru_cache(maxsize=64)
def _drum_filter(low: float | None, high: float | None, sample_rate: int):
    nyquist = sample_rate / 2
    low = low if low is not None and low < nyquist * 0.95 else None
    high = high if high is not None and high < nyquist * 0.95 else None
    if low and high:
        return scipy.signal.butter(2, [low, high], btype="bandpass", fs=sample_rate, output="sos")
    if low:
        return scipy.signal.butter(2, low, btype="highpass", fs=sample_rate, output="sos")
    if high:
        return scipy.signal.butter(2, high, btype="lowpass", fs=sample_rate, output="sos")
    return None


def _drum(pitch: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    low, high, decay = next(((lo, hi, d) for pitches, lo, hi, d in _DRUM_KINDS if pitch in pitches), _OTHER_DRUM)
    n = max(int(round(4 * decay * sample_rate)), 1)
    noise = rng.standard_normal(n)
    sos = _drum_filter(low, high, sample_rate)
    if sos is not None:
        noise = scipy.signal.sosfilt(sos, noise)
        noise /= max(float(np.max(np.abs(noise))), 1e-12)
    return noise * np.exp(-np.arange(n) / (decay * sample_rate))


def render_additive(notes: MidiNotes, *, sample_rate: int, seconds: float, seed: int = 0) -> np.ndarray:
    """Render notes with the additive synth (no normalisation).

    Args:
        notes: from :func:`read_notes`.
        sample_rate: Hz.
        seconds: output length; sound past it is cut.
        seed: seed of the drum noise.

    Returns:
        float64 array of ``round(seconds * sample_rate)`` samples.
    """
    num_samples = int(round(seconds * sample_rate))
    out = np.zeros(num_samples, dtype=np.float64)
    rng = np.random.default_rng(seed)
    for pitch, start, end, velocity, channel in zip(notes.pitch, notes.start, notes.end, notes.velocity, notes.channel):
        first = int(round(start * sample_rate))
        if first >= num_samples:
            continue
        if channel == DRUM_CHANNEL:
            sound = _drum(int(pitch), sample_rate, rng)
        else:
            sound = _tone(int(pitch), end - start, sample_rate)
        sound = sound[: num_samples - first] * (velocity / 127.0) ** 2
        out[first : first + len(sound)] += sound
    return out
