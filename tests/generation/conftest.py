"""Fixtures shared by the generation tests."""

import pytest


@pytest.fixture(scope="session")
def notes_by_bar():
    """``f(midi_bytes) -> {bar: sorted (onset in the bar, duration, pitch, velocity, program)}`` (4/4 bars)."""
    import symusic

    def read(data):
        score = symusic.Score.from_midi(data)
        bar_ticks = 4 * score.ticks_per_quarter
        out = {}
        for track in score.tracks:
            for note in track.notes:
                bar, onset = divmod(int(note.time), bar_ticks)
                out.setdefault(bar, []).append((onset, int(note.duration), int(note.pitch), int(note.velocity), int(track.program)))
        return {bar: sorted(notes) for bar, notes in out.items()}

    return read
