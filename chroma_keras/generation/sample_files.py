"""Write generated piano rolls as files a musician can open: MIDI, piano-roll images, audio, and an index.

:func:`write_samples` is what ``chroma-keras generate`` runs. For sample ``i`` it writes
``sample_<i>.mid``, ``sample_<i>.png`` (pitch up, time right; darker = louder) and,
when ``audio`` is set, ``sample_<i>.wav`` rendered from the MIDI (fluidsynth when
installed, else the additive synth); ``index.json`` and ``index.csv`` list each sample
with its files, seed, condition and the sampling settings.
"""

from __future__ import annotations

import csv
import json
import pathlib

import numpy as np

from chroma_keras.errors import ModelInputError

# Each piano-roll cell becomes a block of this many pixels (pitch rows, frame columns).
PIXELS_PER_CELL = (4, 4)


def piano_roll_image(roll, path) -> pathlib.Path:
    """Save one roll ``[pitches, frames]`` as a greyscale PNG, lowest pitch at the bottom."""
    from PIL import Image

    roll = np.asarray(roll, np.float32)
    if roll.ndim != 2:
        raise ModelInputError(f"piano_roll_image needs one roll [pitches, frames]. Received shape {roll.shape}")
    pixels = (255.0 * (1.0 - np.clip(roll[::-1], 0.0, 1.0))).astype(np.uint8)
    pixels = np.kron(pixels, np.ones(PIXELS_PER_CELL, np.uint8))
    path = pathlib.Path(path)
    Image.fromarray(pixels, mode="L").save(path)
    return path


def write_samples(model, condition, out_dir, num_samples: int = 4, seed: int = 0, audio: str | None = "auto", sample_rate: int = 22050, **generate_kwargs):
    """Generate for one condition and write MIDI, images, optional audio and an index.

    Args:
        model: a piano-roll generator (``ConditionalVAE``, ``PianoRollDiffusion``).
        condition: a colour, a per-axis dict or a ``"future,place,forgotten"`` string.
        out_dir: output folder (created).
        num_samples: samples to generate.
        seed: generation seed (recorded in the index).
        audio: ``"auto"``, ``"fluidsynth"`` or ``"additive"`` to render ``.wav`` files; None for none.
        sample_rate: audio rate in Hz.
        **generate_kwargs: passed to ``model.generate`` and recorded.

    Returns:
        the path of ``index.json``.
    """
    if int(num_samples) < 1:
        raise ModelInputError(f"num_samples must be >= 1. Received: num_samples={num_samples!r}")
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rolls = model.generate(condition=condition, num_samples=int(num_samples), seed=int(seed), **generate_kwargs)
    midi_paths = model.to_midi(rolls, out)
    settings = dict((getattr(model, "preset_config", None) or {}).get("generation", {}).get("sampling", {}))
    settings.update(generate_kwargs)
    rows = []
    for i, (roll, midi_path) in enumerate(zip(rolls, midi_paths)):
        row = {
            "index": i,
            "midi": midi_path.name,
            "image": piano_roll_image(roll, midi_path.with_suffix(".png")).name,
            "audio": "",
            "seed": int(seed),
            "condition": condition if isinstance(condition, str) else json.dumps(condition, sort_keys=True),
            "notes_fraction": round(float((roll > 0).mean()), 5),
        }
        if audio is not None:
            import soundfile

            from chroma_keras.preprocessing.synthesis import render_midi

            wave = render_midi(midi_path.read_bytes(), sample_rate=sample_rate, backend=audio, source=str(midi_path))
            wav_path = midi_path.with_suffix(".wav")
            soundfile.write(wav_path, wave, sample_rate)
            row["audio"] = wav_path.name
        rows.append(row)
    index = {"model": getattr(model, "name", type(model).__name__), "settings": settings, "samples": rows}
    index_path = out / "index.json"
    index_path.write_text(json.dumps(index, indent=2, default=str) + "\n")
    with open(out / "index.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return index_path


__all__ = ["PIXELS_PER_CELL", "piano_roll_image", "write_samples"]
