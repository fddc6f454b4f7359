"""Write generated segments as files a musician can open: MIDI, piano-roll images, audio, and an index.

:func:`write_samples` is what ``chroma-keras generate`` runs. For sample ``i`` it writes
``sample_<i>.mid``, ``sample_<i>.png`` (pitch up, time right; darker = louder) and,
when ``audio`` is set, ``sample_<i>.wav`` rendered from the MIDI (fluidsynth when
installed, else the additive synth); ``index.json`` and ``index.csv`` list each sample
with its files, seed, condition and the sampling settings. A token generator (``ChromaticGPT``)
writes the MIDI its sequences decode to, and the image is that MIDI drawn on its preset's grid.
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
        model: a piano-roll generator (``ConditionalVAE``, ``PianoRollDiffusion``) or a token
            generator (``ChromaticGPT``, whose sequences are decoded to MIDI and drawn on the
            preset's piano-roll grid).
        condition: a colour, a per-axis dict or a ``"future,place,forgotten"`` string (None for a
            token generator given ``prompt=``).
        out_dir: output folder (created).
        num_samples: samples to generate.
        seed: generation seed (recorded in the index).
        audio: ``"auto"``, ``"fluidsynth"`` or ``"additive"`` to render ``.wav`` files; None for none.
        sample_rate: audio rate in Hz.
        **generate_kwargs: passed to ``model.generate`` and recorded (for a token generator:
            ``prompt``, ``constrained`` (default True), ``sampling``, ``max_length``...).

    Returns:
        the path of ``index.json``. A token generator's rows also hold ``valid``,
        ``token_error_rate``, ``num_notes`` and ``num_tokens``; a sequence miditok cannot decode
        gets no files and an empty ``midi`` cell.

    Example:
    >>> write_samples(ck.from_preset("runs/cvae/model"), "Green", "samples/green", audio=None)  # doctest: +SKIP
    PosixPath('samples/green/index.json')
    """
    from chroma_keras.generation.token_midi import CONSTRAINED_BY_DEFAULT, is_token_generator

    if int(num_samples) < 1:
        raise ModelInputError(f"num_samples must be >= 1. Received: num_samples={num_samples!r}")
    out = pathlib.Path(out_dir)
    label = condition if isinstance(condition, str) or condition is None else json.dumps(condition, sort_keys=True)
    if is_token_generator(model):
        generate_kwargs.setdefault("constrained", CONSTRAINED_BY_DEFAULT)
        samples = _token_samples(model, condition, out, int(num_samples), int(seed), generate_kwargs)
    else:
        rolls = model.generate(condition=condition, num_samples=int(num_samples), seed=int(seed), **generate_kwargs)
        out.mkdir(parents=True, exist_ok=True)  # only once generation worked: bad input leaves no folder behind
        samples = [(roll, path, {}) for roll, path in zip(rolls, model.to_midi(rolls, out))]
    settings = dict((getattr(model, "preset_config", None) or {}).get("generation", {}).get("sampling", {}))
    # A guidance function is recorded by its description (scorer_guidance sets one), not as an object.
    settings.update({k: getattr(v, "description", repr(v)) if callable(v) else v for k, v in generate_kwargs.items()})
    rows = []
    for i, (roll, midi_path, extra) in enumerate(samples):
        row = {
            "index": i,
            "midi": midi_path.name if midi_path else "",
            "image": piano_roll_image(roll, midi_path.with_suffix(".png")).name if midi_path else "",
            "audio": "",
            "seed": int(seed),
            "condition": label or "",
            "notes_fraction": round(float((roll > 0).mean()), 5),
            **extra,
        }
        if audio is not None and midi_path and extra.get("num_notes", 1):
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


def _token_samples(model, condition, out: pathlib.Path, num_samples: int, seed: int, generate_kwargs: dict) -> list:
    """A token generator's samples as ``(roll, midi path or None, index columns)``, their MIDI written."""
    from chroma_keras.generation.token_midi import decoded_rolls, generate_midi
    from chroma_keras.preprocessing.pianoroll import PianoRollSpec

    spec = PianoRollSpec.from_config(getattr(model, "preset_config", None) or {})
    ids, decoded = generate_midi(model, condition=condition, num_samples=num_samples, seed=seed, **generate_kwargs)
    rolls = decoded_rolls(decoded, spec)
    out.mkdir(parents=True, exist_ok=True)
    samples = []
    for i, (sample, roll) in enumerate(zip(decoded, rolls)):
        extra = {
            "valid": sample["valid"],
            "token_error_rate": round(sample["token_error_rate"], 5),
            "num_notes": sample["num_notes"],
            "num_tokens": sample["num_tokens"],
        }
        if getattr(model, "multimodal", False):
            extra.update(_multimodal_columns(model, ids[i], out / f"sample_{i:03d}_tokens.wav"))
        if sample["midi"] is None:
            samples.append((roll, None, extra))
            continue
        path = out / f"sample_{i:03d}.mid"
        path.write_bytes(sample["midi"])
        samples.append((roll, path, extra))
    return samples


def _multimodal_columns(model, ids, wav_path: pathlib.Path) -> dict:
    """A multimodal GPT's own text and audio sections: the text, and the audio decoded by EnCodec into ``wav_path``."""
    columns = {"text": model.to_text(ids) if model.vocabulary.text else "", "token_audio": "", "audio_frames": 0, "token_audio_error": ""}
    if model.vocabulary.audio_num_codebooks:
        try:
            report = model.to_audio(ids)
        except ModelInputError as exc:  # unconstrained samples may leave the codebook pattern
            columns["token_audio_error"] = str(exc)
            return columns
        if report["num_frames"]:
            import soundfile

            soundfile.write(wav_path, report["audio"], report["sample_rate"])
            columns.update(token_audio=wav_path.name, audio_frames=report["num_frames"])
    return columns


__all__ = ["PIXELS_PER_CELL", "piano_roll_image", "write_samples"]
