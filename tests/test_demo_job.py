"""The `make demo` job end to end, at a tiny size."""

import numpy as np
import pretty_midi

import chroma_keras as ck
from chroma_keras import modes
from chroma_keras.demo import run_demo

TINY = {
    "preprocessing.midi.piano_roll.frames_per_second": 1.0,
    "preprocessing.midi.piano_roll.num_frames": 16,
    "model.vae.encoder_filters": [4, 8],
    "model.vae.hidden_dim": 16,
    "model.vae.latent_dim": 4,
    "model.vae.condition_dim": 8,
}


def test_demo_writes_report_midi_and_a_loadable_model(tmp_path):
    report = run_demo(tmp_path, epochs=2, samples_per_condition=2, verbose=0, corpus_size={"songs_per_colour": 3, "segments_per_song": 2}, **TINY)
    text = report.read_text()
    assert "Validation reconstruction loss fell by" in text and "Held-out test songs" in text
    assert (tmp_path / "history.csv").read_text().count("\n") == 3  # header + 2 epochs
    for colour in modes.COLOURS:
        files = sorted((tmp_path / "generated" / colour.name.lower()).glob("*.mid"))
        assert len(files) == 2
        pretty_midi.PrettyMIDI(str(files[0]))  # readable
    assert len(list((tmp_path / "generated" / "future-thing-known").glob("*.mid"))) == 2
    model = ck.from_preset(tmp_path / "model")
    assert model.num_frames == 16 and float(np.asarray(model.kl_step)) > 0
