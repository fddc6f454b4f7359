"""A listening-test session folder: media under opaque ids and the key of which item is which."""

from __future__ import annotations

import json
import pathlib
import secrets
import shutil

import numpy as np

from chroma_keras import modes
from chroma_keras.errors import ModelInputError

ITEMS_FILE = "items.json"
MEDIA_DIR = "media"


def _generated_items(folder: pathlib.Path) -> list[dict]:
    """The samples a ``chroma-keras generate`` folder lists in its ``index.json``."""
    index_path = folder / "index.json"
    if not index_path.is_file():
        raise ModelInputError(f"listen: {folder} has no index.json; pass a folder written by chroma-keras generate.")
    index = json.loads(index_path.read_text())
    items = []
    for sample in index["samples"]:
        if not sample.get("audio"):
            raise ModelInputError(
                f"listen: {folder / sample['midi']} has no audio render; run chroma-keras generate with --audio auto|additive."
            )
        colour = sample.get("condition") if sample.get("condition") in modes.COLOUR_NAMES else ""
        items.append({"kind": "generated", "colour": colour, "audio": folder / sample["audio"], "image": folder / sample["image"]})
    return items


def _real_items(corpus, spec, num: int, split: str, seed: int, work: pathlib.Path) -> list[dict]:
    """``num`` real segments of a split rendered to audio and piano-roll images."""
    import soundfile

    from chroma_keras.data.segments import open_segments
    from chroma_keras.generation.sample_files import piano_roll_image
    from chroma_keras.preprocessing.pianoroll import midi_to_piano_roll
    from chroma_keras.preprocessing.synthesis import render_midi

    source = open_segments(corpus, columns=["segment_id", "song_id", "midi_binary", "midi_path"])
    if split != "all":
        source = source.split_by_song(0.15, 0.15, seed)[split]
    records = [r for r in source if r.has_midi]
    if not records:
        raise ModelInputError(f"listen: the {split} split of {corpus} has no segments with MIDI.")
    chosen = np.random.default_rng(seed).choice(len(records), size=min(num, len(records)), replace=False)
    items = []
    for n, index in enumerate(sorted(chosen)):
        record = records[index]
        audio, image = work / f"real_{n}.wav", work / f"real_{n}.png"
        soundfile.write(audio, render_midi(record.midi_bytes, sample_rate=22050, backend="auto", source=record.segment_id), 22050)
        piano_roll_image(midi_to_piano_roll(record.midi_bytes, spec, source=record.segment_id), image)
        colour = record.labels.colour if record.labels is not None and record.labels.colour else ""
        items.append({"kind": "real", "colour": colour, "audio": audio, "image": image, "segment_id": record.segment_id})
    return items


def build_session(session_dir, generated_dirs, corpus, num_real: int = 8, split: str = "test", seed: int = 0, spec=None) -> pathlib.Path:
    """Make a session folder for ``chroma-keras listen``.

    Args:
        session_dir: the folder (created); it must not hold a session already.
        generated_dirs: folders written by ``chroma-keras generate`` (with audio).
        corpus: where the real segments come from (parquet, folder, ``"demo"``).
        num_real: real segments to include.
        split: the real segments' split (``"test"`` keeps them unseen by the generator).
        seed: picks the real segments and names the media.
        spec: the piano-roll grid of the real segments' images (default: 64 pitches from 28, 8 fps, 16 s).

    Returns:
        the path of ``items.json``.

    Raises:
        ModelInputError: an existing session, a generated folder without index or audio, a split without MIDI.
    """
    from chroma_keras.preprocessing.pianoroll import PianoRollSpec

    out = pathlib.Path(session_dir)
    if (out / ITEMS_FILE).exists():
        raise ModelInputError(f"listen: {out} already holds a session; serve it with chroma-keras listen --session {out}.")
    media = out / MEDIA_DIR
    media.mkdir(parents=True, exist_ok=True)
    work = out / "real_renders"
    work.mkdir(exist_ok=True)
    items = [item for folder in generated_dirs for item in _generated_items(pathlib.Path(folder))]
    items += _real_items(corpus, spec or PianoRollSpec(), int(num_real), split, int(seed), work)
    keyed = []
    for item in items:
        # Opaque names: nothing the page or its URLs show tells real from generated.
        token = secrets.token_hex(8)
        audio = media / f"{token}.wav"
        image = media / f"{token}.png"
        shutil.copyfile(item["audio"], audio)
        shutil.copyfile(item["image"], image)
        keyed.append({"id": token, "kind": item["kind"], "colour": item["colour"], "source": str(item.get("segment_id") or item["audio"])})
    shutil.rmtree(work)
    path = out / ITEMS_FILE
    path.write_text(json.dumps({"seed": int(seed), "items": keyed}, indent=2) + "\n")
    return path


def load_items(session_dir) -> list[dict]:
    """The items of a session (id, kind, colour, source)."""
    path = pathlib.Path(session_dir) / ITEMS_FILE
    if not path.is_file():
        raise ModelInputError(f"listen: {session_dir} is not a session folder (no {ITEMS_FILE}); create it with --generated and --real.")
    return json.loads(path.read_text())["items"]
