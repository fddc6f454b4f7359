"""The built-in demo corpus: synthetic MIDI segments with known structure per axis.

It is laid out exactly like the user's ``training_segments_media.parquet``
(DESIGN §3: same columns, arrow types, id scheme, nullable MIDI, stale duplicate
rows), and its music follows the three chromatic axes with one separable trait
each, so that a model can learn every axis on its own:

============  ==========  ==========================================================
axis          mode        musical trait
============  ==========  ==========================================================
temporal      past        slow (60-75 bpm), steady long notes on every beat
temporal      present     medium (95-110 bpm), straight eighth notes
temporal      future      fast (135-160 bpm), syncopated sixteenth notes
spatial       thing       low register (MIDI 28-50), bass instruments, a bass line
spatial       place       middle register (48-72), strings/pads, sustained chords
spatial       person      high register (64-90), voice/flute, a stepwise melody
ontological   imagined    lydian: major-7th chords, raised 4th; loud (80-110)
ontological   forgotten   natural minor, dropped notes and silent half bars; soft (40-60)
ontological   known       major scale, plain major triads; medium (60-90)
============  ==========  ==========================================================

Where a colour names no mode on an axis (Black everywhere; Indigo on the
temporal and spatial axes) each song picks that axis' trait at random, so its
label stays "no mode" while the music still varies. Indigo's "Known, Forgotten"
picks one of the two harmony styles bar by bar. The song-level
``rebracketing_intensity`` (0-12, spread evenly over each colour's songs) adds
passing notes: about four times as many notes at 12 as at 0.

Every song is a short pattern played over and over, like a riff or a loop:
:data:`PATTERN_BARS` (2) bars, drawn once per song with all of the traits above
(rhythm, pitches, velocities, its style's four-chord progression, one chord per
half bar, passing notes, "forgotten" drops and rests), then repeated for the whole
song. Each repetition changes at most a note or two (:data:`VARIATION_PROBABILITY`,
:data:`FORGOTTEN_EXTRA_DROP_PROBABILITY`), so a segment is almost entirely
predictable from its first two bars, while songs differ from each other. This is
what a generative model needs to reconstruct segments at all. A pattern has only a
few dozen notes, so its shares (bass roots, colour tones, drops, rests, passing
notes per note) are drawn by quota rather than note by note: that keeps every
song's traits close to their mode's value.

Everything is deterministic: one numpy Generator per song, seeded from
``(seed, song index)`` (plus small ones for text, missing MIDI and duplicates),
so the same arguments give an identical table with byte-identical MIDI.

Example:

>>> from chroma_keras.data.demo_corpus import generate_demo_corpus
>>> table = generate_demo_corpus(songs_per_colour=1, segments_per_song=2)
>>> table.num_rows  # 8 colours x 1 song x 2 segments + 2 stale duplicates
18
"""

from __future__ import annotations

import io
import json
import pathlib
from dataclasses import dataclass

import numpy as np
import pretty_midi
import pyarrow as pa

from chroma_keras import modes
from chroma_keras.errors import DataError
from chroma_keras.preprocessing.pianoroll import PianoRollSpec
from chroma_keras.rebracketing import REBRACKETING_TYPES, SCORE_FIELDS

DEMO_SPEC = PianoRollSpec()  # pitches 24..95, 8 fps, 128 frames = 16 s windows
SAMPLE_RATE = 44100
MAX_INTENSITY = 12.0
ROW_GROUP_SIZE = 500

DEMO_SCHEMA = pa.schema(
    [
        ("segment_id", pa.string()),
        ("song_id", pa.string()),
        ("start_seconds", pa.float64()),
        ("end_seconds", pa.float64()),
        ("duration_seconds", pa.float64()),
        ("has_audio", pa.bool_()),
        ("has_midi", pa.bool_()),
        ("lyric_text", pa.string()),
        ("concept", pa.string()),
        ("track_description", pa.string()),
        ("audio_waveform", pa.binary()),
        ("audio_sample_rate", pa.int32()),
        ("midi_binary", pa.binary()),
        ("rainbow_color", pa.string()),
        (modes.AXIS_COLUMNS["temporal"], pa.string()),
        (modes.AXIS_COLUMNS["spatial"], pa.string()),
        (modes.AXIS_COLUMNS["ontological"], pa.string()),
        ("training_data", pa.string()),
    ]
)

# --- Traits per mode --------------------------------------------------------

TEMPO_RANGES = {"past": (60.0, 75.0), "present": (95.0, 110.0), "future": (135.0, 160.0)}
STEP_BEATS = {"past": 1.0, "present": 0.5, "future": 0.25}  # the rhythmic grid, in beats
# Onset probability at each sixteenth of a beat for "future": off-beats favoured (syncopation).
FUTURE_ONSET_PROBABILITY = (0.25, 0.8, 0.3, 0.7)
REGISTERS = {"thing": (28, 50), "place": (48, 72), "person": (64, 90)}
PAD_OCTAVES = (48, 60)  # "place" pads alternate between these octaves (lowest pitch of each)
PROGRAMS = {
    "thing": (32, 33, 38, 43),  # acoustic, finger, synth bass, contrabass
    "place": (48, 49, 88, 89),  # string ensembles, pads
    "person": (73, 52, 53, 74),  # flute, choir aahs, voice oohs, recorder
}
SCALES = {
    "imagined": (0, 2, 4, 6, 7, 9, 11),  # lydian
    "forgotten": (0, 2, 3, 5, 7, 8, 10),  # natural minor
    "known": (0, 2, 4, 5, 7, 9, 11),  # major
}
CHORDS = {
    "imagined": ((0, 4, 7, 11), (2, 6, 9), (0, 4, 6, 11), (7, 11, 2, 6)),  # Imaj7, II, Imaj7#11, Vmaj7
    "forgotten": ((0, 3, 7), (5, 8, 0), (7, 10, 2), (8, 0, 3)),  # i, iv, v, VI
    "known": ((0, 4, 7), (5, 9, 0), (7, 11, 2), (0, 4, 7)),  # I, IV, V, I
}
VELOCITIES = {"imagined": (80, 110), "forgotten": (40, 60), "known": (60, 90)}
# "Imagined" single lines land on the raised 4th or the major 7th this often.
COLOUR_TONES = (6, 11)
COLOUR_TONE_PROBABILITY = 0.35
BASS_POOL_SHARES = (0.6, 0.25, 0.15)  # "thing" bass notes: root, fifth, any chord tone
FORGOTTEN_DROP_PROBABILITY = 0.25  # share of a pattern's "forgotten" notes left out
FORGOTTEN_REST_PROBABILITY = 0.2  # share of a pattern's "forgotten" half bars (but the first) left silent
# Every song repeats one pattern of this many bars, drawn once per song, with a chord
# every CHORD_BEATS beats (so the pattern plays its style's whole four-chord progression).
PATTERN_BARS = 2
CHORD_BEATS = 2
VARIATION_PROBABILITY = 0.12  # a repetition has one note moved to a scale neighbour or dropped
FORGOTTEN_EXTRA_DROP_PROBABILITY = 0.15  # a repetition drops one more of its "forgotten" notes
LYRIC_PROBABILITY = 0.6
BEATS_PER_BAR = 4
# Rebracketing: each note event is followed by up to this many passing notes, on average
# PASSING_NOTES_MAX * intensity / MAX_INTENSITY, starting these fractions of a grid step after it.
PASSING_NOTES_MAX = 3
PASSING_OFFSETS = (0.5, 0.25, 0.75)

_TEMPORAL_TEXT = {
    "past": "looks back at the past, at what already happened",
    "present": "stays in the present, in what is happening now",
    "future": "leans toward the future, toward what has not happened yet",
    None: "is fixed to no time, neither past, present nor future",
}
_SPATIAL_TEXT = {
    "thing": "circles a thing, an object that can be held",
    "place": "is rooted in a place, a room or a landscape",
    "person": "is addressed to a person",
    None: "is about no particular thing, place or person",
}
_ONTOLOGICAL_TEXT = {
    "imagined": "imagined, never real",
    "forgotten": "forgotten, half erased",
    "known": "known, plainly and for certain",
}
_LYRIC_WORDS = {
    "past": ("yesterday", "remember", "once", "old", "before", "was"),
    "present": ("now", "today", "here", "breathing", "this", "is"),
    "future": ("tomorrow", "someday", "soon", "will", "ahead", "next"),
    "thing": ("stone", "glass", "key", "machine", "letter", "coin"),
    "place": ("city", "field", "room", "shore", "street", "valley"),
    "person": ("you", "her", "him", "stranger", "friend", "mother"),
    "imagined": ("dream", "invent", "maybe", "unreal", "pretend", "wonder"),
    "forgotten": ("lost", "faded", "erased", "gone", "blank", "missing"),
    "known": ("true", "certain", "plain", "known", "sure", "clear"),
}
_LYRIC_FILLERS = ("the", "and", "of", "in", "we", "all", "a", "to", "my", "still")
_TITLE_ADJECTIVES = ("Quiet", "Broken", "Silver", "Hollow", "Bright", "Distant", "Slow", "Paper")
_TITLE_NOUNS = ("Engine", "Harbour", "Letter", "Garden", "Signal", "Mirror", "Orchard", "Station")


def training_colours() -> tuple[modes.Colour, ...]:
    """The colours with training data (all of :data:`modes.COLOURS` but White), in table order."""
    return tuple(c for c in modes.COLOURS if c.has_training_data)


def song_id_for(colour: modes.Colour, song_number: int) -> str:
    """The user's song id scheme: album = 1-based position in ``modes.COLOURS``, then track."""
    return f"{colour.index + 1:02d}_{song_number:02d}"


def segment_id_for(song_id: str, segment_index: int) -> str:
    """``{song_id}_seg_{i+1:04d}_track_01`` for the 0-based ``segment_index``."""
    return f"{song_id}_seg_{segment_index + 1:04d}_track_01"


@dataclass(frozen=True)
class SongPlan:
    """What one demo song is: its labels (from the colour) and the traits it is played with.

    ``temporal`` / ``spatial`` / ``ontological`` are the traits actually used
    (drawn at random on an axis where the colour names no mode); the labels
    stay those of ``colour``.
    """

    colour: modes.Colour
    song_number: int
    song_id: str
    temporal: str
    spatial: str
    ontological: tuple[str, ...]
    bpm: float
    tonic: int
    program: int
    beats_per_step: float
    training_data: dict

    @property
    def track_description(self) -> str:
        return pretty_midi.program_to_instrument_name(self.program)


# --- Generation -------------------------------------------------------------


def _plan_song(colour: modes.Colour, song_number: int, intensity: float, rng: np.random.Generator) -> SongPlan:
    def pick(axis, named):
        if len(named) == 1:
            return named[0]
        return modes.AXIS_MODES[axis][int(rng.integers(len(modes.AXIS_MODES[axis])))]

    temporal = pick("temporal", colour.temporal)
    spatial = pick("spatial", colour.spatial)
    ontological = colour.ontological if colour.ontological else (pick("ontological", ()),)
    low, high = TEMPO_RANGES[temporal]
    bpm = round(float(rng.uniform(low, high)), 1)
    tonic = int(rng.integers(12))
    program = int(rng.choice(PROGRAMS[spatial]))
    beats_per_step = STEP_BEATS[temporal]
    training_data = {"rebracketing_type": str(rng.choice(REBRACKETING_TYPES))}
    for field in SCORE_FIELDS:
        value = intensity if field == "rebracketing_intensity" else rng.uniform(0.0, 1.0)
        training_data[field] = round(float(value), 4)
    return SongPlan(
        colour=colour,
        song_number=song_number,
        song_id=song_id_for(colour, song_number),
        temporal=temporal,
        spatial=spatial,
        ontological=tuple(ontological),
        bpm=bpm,
        tonic=tonic,
        program=program,
        beats_per_step=beats_per_step,
        training_data=training_data,
    )


def _pitches_of(pc_set, tonic, low, high):
    """All pitches in [low, high] whose pitch class (relative to tonic) is in pc_set."""
    wanted = {(tonic + pc) % 12 for pc in pc_set}
    return [p for p in range(low, high + 1) if p % 12 in wanted]


def _nearest(candidates, target, avoid=None):
    options = [p for p in candidates if p != avoid] or list(candidates)
    return min(options, key=lambda p: (abs(p - target), p))


def _onsets(plan: SongPlan, total_beats: float, rng: np.random.Generator):
    """(onset_beats, duration_beats, strong) over ``total_beats`` for the pattern's rhythm (temporal trait)."""
    step = plan.beats_per_step
    events = []
    n_steps = int(np.ceil(total_beats / step))
    for k in range(n_steps):
        onset = k * step
        strong = (onset % 1.0) == 0.0
        if plan.temporal == "past":
            events.append((onset, 0.95 * step, True))
        elif plan.temporal == "present":
            events.append((onset, 0.85 * step, strong))
        else:
            position = k % 4
            if rng.random() < FUTURE_ONSET_PROBABILITY[position]:
                length = 2 if rng.random() < 0.3 else 1
                # A long note never runs past the pattern's end into its next repetition.
                events.append((onset, min(0.9 * step * length, total_beats - onset - 0.1 * step), strong))
    return events


@dataclass(frozen=True)
class _PatternNote:
    """One note of a song's pattern, in beats from the pattern's start."""

    pitch: int
    start: float
    end: float
    velocity: int
    style: str  # the harmony style of its bar: its scale for variations, "forgotten" drops


def _passing_counts(n_events: int, intensity: float, rng: np.random.Generator) -> list[int]:
    """Passing notes per note event: intensity * PASSING_NOTES_MAX on average, spread evenly.

    The pattern's total is fixed by intensity (rounded), and only where the extra
    notes go is random, so intensity sets a song's density directly.
    """
    total = int(round(intensity * PASSING_NOTES_MAX * n_events))
    base, extra = divmod(total, n_events) if n_events else (0, 0)
    counts = [base] * n_events
    for i in rng.permutation(n_events)[:extra].tolist():
        counts[i] += 1
    return counts


def _quota(shares, n: int, rng: np.random.Generator) -> list[int]:
    """n category ids, category i about shares[i] * n times (the last takes the rest), shuffled.

    A pattern has only a few dozen notes; drawing its choices by quota instead of
    one by one keeps each song's share of, say, bass roots at the trait's value.
    """
    counts = [int(round(share * n)) for share in shares[:-1]]
    counts.append(max(n - sum(counts), 0))
    ids = np.repeat(np.arange(len(shares)), counts)[:n]
    return rng.permutation(ids).tolist()


def _song_pattern(plan: SongPlan, rng: np.random.Generator) -> list[_PatternNote]:
    """The song's pattern: PATTERN_BARS bars of notes, drawn once and repeated for the whole song."""
    pattern_beats = PATTERN_BARS * BEATS_PER_BAR
    low, high = REGISTERS[plan.spatial]
    intensity = plan.training_data["rebracketing_intensity"] / MAX_INTENSITY

    # Harmony: a style per bar (Indigo mixes its two) and a chord per half bar, the style's
    # whole progression once: its first chord, then the other three in a random order.
    bar_style = []
    for bar in range(PATTERN_BARS):
        if len(plan.ontological) > 1:
            bar_style.append(plan.ontological[int(rng.integers(len(plan.ontological)))])
        else:
            bar_style.append(plan.ontological[0])
    n_spans = int(pattern_beats // CHORD_BEATS)
    order = [0] + (1 + rng.permutation(n_spans - 1)).tolist()
    span_style = [bar_style[int(h * CHORD_BEATS // BEATS_PER_BAR)] for h in range(n_spans)]
    span_chord = [CHORDS[style][order[h] % len(CHORDS[style])] for h, style in enumerate(span_style)]
    # Silent "forgotten" half bars (never the first), decided once, so they repeat.
    eligible = [h for h in range(1, n_spans) if span_style[h] == "forgotten"]
    rests = _quota((1 - FORGOTTEN_REST_PROBABILITY, FORGOTTEN_REST_PROBABILITY), len(eligible), rng)
    span_rest = [False] * n_spans
    for h, rest in zip(eligible, rests):
        span_rest[h] = bool(rest)

    # The note events that sound: "forgotten" drops are part of the pattern, so they repeat.
    events = []  # (onset, duration, strong, span)
    for onset, duration, strong in _onsets(plan, pattern_beats, rng):
        span = int(onset // CHORD_BEATS)
        if not span_rest[span]:
            events.append((onset, duration, strong, span))
    forgotten = [i for i, e in enumerate(events) if span_style[e[3]] == "forgotten"]
    shares = (1 - FORGOTTEN_DROP_PROBABILITY, FORGOTTEN_DROP_PROBABILITY)
    drops = {i for i, drop in zip(forgotten, _quota(shares, len(forgotten), rng)) if drop}
    events = [e for i, e in enumerate(events) if i not in drops]
    passing_counts = _passing_counts(len(events), intensity, rng)
    bass_pools = _quota(BASS_POOL_SHARES, len(events), rng)  # root / fifth / any chord tone
    colour_tones = _quota((1 - COLOUR_TONE_PROBABILITY, COLOUR_TONE_PROBABILITY), len(events), rng)

    notes: list[_PatternNote] = []
    sounding_until: dict[int, float] = {}  # pitch -> end of its latest note, in pattern beats

    def add(pitch, start, end, velocity, style):
        # Never overlap two notes of one pitch, so every MIDI parser reads the same notes.
        if start < sounding_until.get(pitch, -1.0):
            return
        sounding_until[pitch] = end
        notes.append(_PatternNote(int(pitch), float(start), float(end), int(velocity), style))

    previous = (low + high) // 2
    first_pitch = None
    pad_count = 0
    step = plan.beats_per_step
    for event_index, (onset, duration, strong, span) in enumerate(events):
        style, chord = span_style[span], span_chord[span]
        scale_pitches = _pitches_of(SCALES[style], plan.tonic, low, high)
        chord_pitches = _pitches_of(chord, plan.tonic, low, high)
        v_low, v_high = VELOCITIES[style]
        velocity = int(rng.integers(v_low, v_high + 1))
        if strong:
            velocity = min(velocity + 8, v_high)

        # The pitch of this event (spatial trait). A line never repeats its previous
        # pitch, so fast notes stay separate notes in a piano roll.
        if plan.spatial == "thing":
            # The root on each chord change, then roots, fifths and chord tones by quota.
            first_of_chord = event_index == 0 or events[event_index - 1][3] != span
            pool = chord[:1] if first_of_chord else (chord[:1], chord[2:3], chord)[bass_pools[event_index]]
            pitch = _nearest(_pitches_of(pool, plan.tonic, low, high), previous, avoid=previous)
            if pitch == previous:
                pitch = _nearest(chord_pitches, previous, avoid=previous)
        elif plan.spatial == "place":
            # Sustained pad: strike the next chord tone and let it ring for a whole cycle
            # through the chord (cut at the chord change), so the chord builds up and holds.
            # Cycles alternate between a low and a high octave, so a pitch is struck again
            # only after a gap and stays a separate note in a piano roll.
            cycle, position = divmod(pad_count, len(chord))
            pad_count += 1
            base = PAD_OCTAVES[cycle % 2]
            pitch = _nearest(_pitches_of(chord[position : position + 1], plan.tonic, base, base + 11), base + 6)
            duration = min(len(chord) * step * 0.95, (span + 1) * CHORD_BEATS - onset)
        else:
            # Stepwise melody on the scale, landing on chord tones on the beat.
            # The walk leans back toward the register's middle, so every pattern spans it.
            here = scale_pitches.index(_nearest(scale_pitches, previous))
            moves = (-2, -1, 1, 1, 2) if previous <= (low + high) // 2 else (-2, -1, -1, 1, 2)
            index = here + int(rng.choice(moves))
            if index < 0:  # reflect at the register's edges
                index = -index
            elif index >= len(scale_pitches):
                index = 2 * (len(scale_pitches) - 1) - index
            pitch = scale_pitches[index]
            if strong:
                pitch = _nearest(chord_pitches, pitch)
            if pitch == previous:
                pitch = _nearest(scale_pitches, pitch, avoid=previous)
        if style == "imagined" and plan.spatial != "place" and colour_tones[event_index]:
            pitch = _nearest(_pitches_of(COLOUR_TONES, plan.tonic, low, high), pitch, avoid=previous)
        if plan.spatial != "place" and event_index == len(events) - 1 and pitch == first_pitch != previous:
            # The pattern's last note leads into its first one when it repeats: keep them apart.
            pitch = _nearest(scale_pitches, pitch, avoid=first_pitch)
        previous = pitch
        first_pitch = pitch if first_pitch is None else first_pitch
        add(pitch, onset, onset + duration, velocity, style)

        # Rebracketing intensity: passing notes one, two, three scale steps away, each
        # over before the next grid step.
        index = scale_pitches.index(_nearest(scale_pitches, pitch))
        for j in range(passing_counts[event_index]):
            target = index + int(rng.choice((-1, 1))) * (j + 1)
            passing = scale_pitches[min(max(target, 0), len(scale_pitches) - 1)]
            offset = PASSING_OFFSETS[j]
            if passing != pitch:
                passing_end = onset + step * min(offset + 0.45, 0.95)
                add(passing, onset + step * offset, passing_end, max(v_low, velocity - 10), style)
    notes.sort(key=lambda n: (n.start, n.pitch))
    return notes


def _song_notes(plan: SongPlan, total_seconds: float, rng: np.random.Generator) -> list[tuple[int, float, float, int]]:
    """Every note of the song as (pitch, start_s, end_s, velocity), in song time.

    The song is its pattern (:func:`_song_pattern`) played over and over. Each
    repetition has, with probability VARIATION_PROBABILITY, one note moved to a
    scale neighbour or left out; repetitions with "forgotten" notes also lose one
    of them with probability FORGOTTEN_EXTRA_DROP_PROBABILITY.
    """
    beat = 60.0 / plan.bpm
    pattern = _song_pattern(plan, rng)
    pattern_beats = PATTERN_BARS * BEATS_PER_BAR
    n_repetitions = int(np.ceil(total_seconds / beat / pattern_beats)) + 1
    low, high = REGISTERS[plan.spatial]
    forgotten = [i for i, n in enumerate(pattern) if n.style == "forgotten"]

    notes = []
    sounding_until: dict[int, float] = {}  # pitch -> end time of its latest note

    for repetition in range(n_repetitions):
        pitches = [n.pitch for n in pattern]
        dropped = set()
        if pattern and rng.random() < VARIATION_PROBABILITY:
            i = int(rng.integers(len(pattern)))
            if rng.random() < 0.5:
                dropped.add(i)
            else:
                scale = _pitches_of(SCALES[pattern[i].style], plan.tonic, low, high)
                index = scale.index(_nearest(scale, pitches[i])) + int(rng.choice((-1, 1)))
                pitches[i] = scale[min(max(index, 0), len(scale) - 1)]
        if forgotten and rng.random() < FORGOTTEN_EXTRA_DROP_PROBABILITY:
            dropped.add(forgotten[int(rng.integers(len(forgotten)))])
        offset = repetition * pattern_beats
        for i, note in enumerate(pattern):
            if i in dropped:
                continue
            start, end = (offset + note.start) * beat, (offset + note.end) * beat
            # Never overlap two notes of one pitch (a varied note may meet its neighbour).
            if start < sounding_until.get(pitches[i], -1.0):
                continue
            sounding_until[pitches[i]] = end
            notes.append((pitches[i], start, end, note.velocity))
    notes.sort(key=lambda n: (n[1], n[0]))
    return notes


def _segment_midi(plan: SongPlan, notes, start: float, length: float) -> bytes:
    """A Standard MIDI File of the notes with onsets in [start, start + length), shifted to t=0.

    Notes sounding past the window end are cut at the window end.
    """
    pm = pretty_midi.PrettyMIDI(resolution=480, initial_tempo=plan.bpm)
    pm.time_signature_changes.append(pretty_midi.TimeSignature(BEATS_PER_BAR, 4, 0.0))
    instrument = pretty_midi.Instrument(program=plan.program, name=plan.track_description)
    end = start + length
    for pitch, note_start, note_end, velocity in notes:
        if start <= note_start < end:
            instrument.notes.append(
                pretty_midi.Note(
                    velocity=int(velocity),
                    pitch=int(pitch),
                    start=note_start - start,
                    end=min(note_end, end) - start,
                )
            )
    pm.instruments.append(instrument)
    buffer = io.BytesIO()
    pm.write(buffer)
    return buffer.getvalue()


def _concept(plan: SongPlan, title: str) -> str:
    colour = plan.colour
    temporal = colour.temporal[0] if colour.temporal else None
    spatial = colour.spatial[0] if colour.spatial else None
    if len(colour.ontological) == 1:
        ontological = f"what it describes is {_ONTOLOGICAL_TEXT[colour.ontological[0]]}"
    elif colour.ontological:
        ontological = f"what it describes is at once {' and '.join(colour.ontological)}"
    else:
        ontological = "whether what it describes is imagined, forgotten or known stays open"
    kind = plan.training_data["rebracketing_type"]
    article = "an" if colour.name[0] in "AEIOU" else "a"
    return (
        f'"{title}" is {article} {colour.name.lower()} song. '
        f"It {_TEMPORAL_TEXT[temporal]}; it {_SPATIAL_TEXT[spatial]}; "
        f"{ontological}. Its rebracketing is {kind}: the song reframes its own boundaries as it goes."
    )


def _lyric(plan: SongPlan, rng: np.random.Generator) -> str:
    pools = [_LYRIC_WORDS[plan.temporal], _LYRIC_WORDS[plan.spatial]] + [_LYRIC_WORDS[m] for m in plan.ontological]
    words = []
    for _ in range(int(rng.integers(4, 8))):
        if rng.random() < 0.35:
            words.append(str(rng.choice(_LYRIC_FILLERS)))
        else:
            pool = pools[int(rng.integers(len(pools)))]
            words.append(str(rng.choice(pool)))
    return " ".join(words).capitalize()


def _label(modes_on_axis: tuple[str, ...]):
    return ", ".join(m.capitalize() for m in modes_on_axis) if modes_on_axis else None


def generate_demo_corpus(
    songs_per_colour: int = 4,
    segments_per_song: int = 12,
    segment_seconds: float = 16.0,
    seed: int = 0,
    missing_midi_fraction: float = 0.05,
    duplicate_rows: int = 2,
    audio: str | None = None,
    audio_sample_rate: int = SAMPLE_RATE,
) -> pa.Table:
    """Build the demo corpus as a ``pyarrow.Table`` with :data:`DEMO_SCHEMA`.

    Args:
        songs_per_colour: songs for each of the 8 colours with training data.
        segments_per_song: consecutive windows per song.
        segment_seconds: window length (16 s = :data:`DEMO_SPEC`'s window).
        seed: the same seed (and arguments) gives the same table, MIDI bytes included.
        missing_midi_fraction: share of segments (chosen at random, rounded to a
            whole number) stored with ``has_midi`` False and null ``midi_binary``.
        duplicate_rows: stale duplicate rows appended after all originals: copies
            of existing ``segment_id`` s with different lyric and MIDI content, as in
            the user's file. Readers must keep the first row of each ``segment_id``.
        audio: None (no audio: ``has_audio`` False, null ``audio_waveform``) or a
            ``preprocessing.synthesis.render_midi`` backend (``"auto"``,
            ``"fluidsynth"``, ``"additive"``). Each song is rendered once and cut
            into its windows, stored as raw little-endian float32 bytes like the
            user's file; segments whose MIDI is null keep their audio (audio-only rows).
        audio_sample_rate: sample rate of the rendered audio (the user's file is
            always 44100; a lower rate renders and trains faster).

    Returns:
        One row per segment, ordered by colour (``modes.COLOURS`` order), song and
        segment, then the stale duplicates.
    """
    if int(songs_per_colour) < 1 or int(segments_per_song) < 1:
        raise DataError(
            "songs_per_colour and segments_per_song must be >= 1. "
            f"Received: songs_per_colour={songs_per_colour}, segments_per_song={segments_per_song}"
        )
    if not segment_seconds > 0:
        raise DataError(f"segment_seconds must be positive. Received: segment_seconds={segment_seconds}")
    if not 0.0 <= missing_midi_fraction <= 1.0:
        raise DataError(
            f"missing_midi_fraction must be in [0, 1]. Received: missing_midi_fraction={missing_midi_fraction}"
        )
    if int(duplicate_rows) < 0:
        raise DataError(f"duplicate_rows must be >= 0. Received: duplicate_rows={duplicate_rows}")

    if audio is not None:
        from chroma_keras.preprocessing.synthesis import BACKENDS, render_midi

        if audio not in BACKENDS:
            raise DataError(f"audio must be None or one of {list(BACKENDS)}. Received: audio={audio!r}")
    colours = training_colours()
    rows: dict[str, list] = {name: [] for name in DEMO_SCHEMA.names}
    segment_seconds = float(segment_seconds)
    song_index = 0
    for colour in colours:
        # Intensities spread evenly over [0, MAX_INTENSITY] within each colour (one song per
        # stratum), so intensity is not confounded with colour.
        strata_rng = np.random.default_rng([seed, 4, colour.index])
        n_songs = int(songs_per_colour)
        strata = (strata_rng.permutation(n_songs) + strata_rng.uniform(size=n_songs)) / n_songs * MAX_INTENSITY
        for song_number in range(1, n_songs + 1):
            rng = np.random.default_rng([seed, 0, song_index])
            text_rng = np.random.default_rng([seed, 1, song_index])
            song_index += 1
            plan = _plan_song(colour, song_number, float(strata[song_number - 1]), rng)
            notes = _song_notes(plan, segments_per_song * segment_seconds, rng)
            title = f"{text_rng.choice(_TITLE_ADJECTIVES)} {text_rng.choice(_TITLE_NOUNS)}"
            concept = _concept(plan, title)
            training_data = json.dumps(plan.training_data, sort_keys=True)
            song_seconds = segments_per_song * segment_seconds
            waveform = None
            if audio is not None:
                waveform = render_midi(
                    _segment_midi(plan, notes, 0.0, song_seconds),
                    sample_rate=int(audio_sample_rate),
                    backend=audio,
                    duration=song_seconds,
                    seed=song_index,
                    source=plan.song_id,
                )
            for i in range(int(segments_per_song)):
                start = i * segment_seconds
                has_lyric = bool(colour.name != "Green" and text_rng.random() < LYRIC_PROBABILITY)
                rows["segment_id"].append(segment_id_for(plan.song_id, i))
                rows["song_id"].append(plan.song_id)
                rows["start_seconds"].append(start)
                rows["end_seconds"].append(start + segment_seconds)
                rows["duration_seconds"].append(segment_seconds)
                rows["has_audio"].append(waveform is not None)
                rows["has_midi"].append(True)
                rows["lyric_text"].append(_lyric(plan, text_rng) if has_lyric else "")
                rows["concept"].append(concept)
                rows["track_description"].append(plan.track_description)
                if waveform is None:
                    rows["audio_waveform"].append(None)
                else:
                    first = int(round(start * audio_sample_rate))
                    last = int(round((start + segment_seconds) * audio_sample_rate))
                    rows["audio_waveform"].append(waveform[first:last].astype("<f4").tobytes())
                rows["audio_sample_rate"].append(int(audio_sample_rate))
                rows["midi_binary"].append(_segment_midi(plan, notes, start, segment_seconds))
                rows["rainbow_color"].append(colour.name)
                for axis in modes.AXES:
                    rows[modes.AXIS_COLUMNS[axis]].append(_label(getattr(colour, axis)))
                rows["training_data"].append(training_data)

    n_rows = len(rows["segment_id"])
    missing = np.random.default_rng([seed, 2]).permutation(n_rows)[: int(round(missing_midi_fraction * n_rows))]
    for i in sorted(missing.tolist()):
        rows["has_midi"][i] = False
        rows["midi_binary"][i] = None

    if int(duplicate_rows) > n_rows:
        raise DataError(
            f"duplicate_rows must be at most the number of segments ({n_rows}). "
            f"Received: duplicate_rows={duplicate_rows}"
        )
    originals = sorted(np.random.default_rng([seed, 3]).permutation(n_rows)[: int(duplicate_rows)].tolist())
    for i in originals:
        # A stale copy: same id and labels, other lyric and the MIDI of a neighbouring segment.
        neighbour = i + 1 if i + 1 < n_rows and rows["song_id"][i + 1] == rows["song_id"][i] else max(i - 1, 0)
        for name in DEMO_SCHEMA.names:
            rows[name].append(rows[name][i])
        rows["lyric_text"][-1] = "(stale) " + rows["lyric_text"][i] if rows["lyric_text"][i] else "(stale)"
        rows["midi_binary"][-1] = rows["midi_binary"][neighbour]
        rows["has_midi"][-1] = rows["midi_binary"][neighbour] is not None
    return pa.table(rows, schema=DEMO_SCHEMA)


def write_demo_corpus(path, **kwargs) -> pathlib.Path:
    """Build the demo corpus and write it as parquet (zstd, row groups of 500 rows).

    Args:
        path: the parquet file to write (parent folders are created).
        **kwargs: passed to :func:`generate_demo_corpus`.

    Returns:
        The path written.
    """
    import pyarrow.parquet as pq

    path = pathlib.Path(path)
    table = generate_demo_corpus(**kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd", row_group_size=ROW_GROUP_SIZE)
    return path
