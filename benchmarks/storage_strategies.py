"""Three ways to store segment audio, timed to model-ready log-mel features per epoch.

Builds one seeded corpus (by default 200 segments of 10 s mono audio at 44.1 kHz, each
with MIDI and labels, from the demo-corpus generator) and stores it three ways:

* **(a) raw in parquet**: the media-parquet layout of DESIGN §3 (raw float32 PCM bytes
  in ``audio_waveform``, zstd, row groups of 500), read with ``open_segments(path)``.
  This is the reference: every ratio is against (a) in the same run.
* **(b) files on disk**: one audio file and one ``.mid`` per segment plus a
  ``labels.csv``, read with ``open_segments(folder)``; twice, as 32-bit float WAV
  (bit-exact) and as 16-bit FLAC (lossless compression of 16-bit samples).
* **(c) feature cache**: a :class:`~chroma_keras.data.feature_cache.FeatureCache` of
  the log-mel features. The first epoch streams (a), computes the features and stores
  them; later epochs read labels and MIDI from the parquet *without* its audio column
  (``columns=``) and the features from the cache.

Every strategy delivers the same thing per segment: labels, MIDI bytes and a
``[862, 128]`` log-mel computed by :class:`chroma_keras.layers.LogMelSpectrogram`
(44.1 kHz, n_fft 2048, hop 512, 128 mels) in batches of ``--batch`` waveforms,
after :func:`chroma_keras.preprocessing.audio.prepare_waveform`. Before each epoch the
benchmark's files are dropped from the OS page cache (fsync + ``posix_fadvise
DONTNEED``), so every epoch reads from disk, as it must when the data is larger than
RAM (the real media parquet is ~15 GB).

Finally it shows that a changed preprocessing config gets another cache hash, and so
another folder in which the old entries are never found.

``--audio noise`` (default) fills the audio with seeded white noise at -20 dBFS: the
worst case for compression (zstd and FLAC gain almost nothing), and fast to make.
``--audio additive`` renders the demo corpus' MIDI with the additive synth (tonal,
compressible; 25-70 s more to generate here, depending on the machine's load).

Usage:

    KERAS_BACKEND=torch .venv/bin/python benchmarks/storage_strategies.py [--segments 200] \
        [--seconds 10] [--audio noise|additive] [--batch 16] [--workdir /tmp] [--keep]
"""

from __future__ import annotations

import argparse
import csv
import inspect
import math
import os
import pathlib
import shutil
import tempfile
import time

import numpy as np

SAMPLE_RATE = 44100
SEGMENTS_PER_SONG = 5
NUM_COLOURS = 8  # colours with training data in the demo corpus
NOISE_STD = 0.1  # -20 dBFS
TOTAL, WALL = "total", "wall"
LOG_MEL = {"sample_rate": SAMPLE_RATE, "n_fft": 2048, "hop_length": 512, "n_mels": 128}


# === Building the corpus ===


def build_table(segments: int, seconds: float, audio: str, seed: int):
    """The demo corpus with audio, ``segments`` rows (rounded up to whole songs), no duplicates."""
    import pyarrow as pa

    from chroma_keras.data.demo_corpus import generate_demo_corpus

    songs_per_colour = max(1, math.ceil(segments / (NUM_COLOURS * SEGMENTS_PER_SONG)))
    table = generate_demo_corpus(
        songs_per_colour=songs_per_colour,
        segments_per_song=SEGMENTS_PER_SONG,
        segment_seconds=seconds,
        seed=seed,
        duplicate_rows=0,
        audio="additive" if audio == "additive" else None,
        audio_sample_rate=SAMPLE_RATE,
    )
    if audio == "noise":
        samples = int(round(seconds * SAMPLE_RATE))
        waves = []
        for i in range(table.num_rows):
            rng = np.random.default_rng([seed, 100, i])
            waves.append(np.clip(NOISE_STD * rng.standard_normal(samples), -1, 1).astype("<f4").tobytes())
        column = table.schema.get_field_index("audio_waveform")
        table = table.set_column(column, "audio_waveform", pa.array(waves, pa.binary()))
        column = table.schema.get_field_index("has_audio")
        table = table.set_column(column, "has_audio", pa.array([True] * table.num_rows))
    return table


def write_parquet(table, path: pathlib.Path) -> None:
    """The media layout: zstd, row groups of 500 (as ``write_demo_corpus``)."""
    import pyarrow.parquet as pq

    from chroma_keras.data.demo_corpus import ROW_GROUP_SIZE

    pq.write_table(table, path, compression="zstd", row_group_size=ROW_GROUP_SIZE)


LABEL_FIELDS = (
    "segment_id",
    "song_id",
    "start_seconds",
    "end_seconds",
    "duration_seconds",
    "lyric_text",
    "concept",
    "track_description",
    "rainbow_color",
    "rainbow_color_temporal_mode",
    "rainbow_color_objectional_mode",
    "rainbow_color_ontological_mode",
    "training_data",
)


def write_folder(table, folder: pathlib.Path, extension: str, subtype: str) -> None:
    """One audio file + one .mid per segment, and a labels.csv naming them."""
    import soundfile

    folder.mkdir(parents=True)
    rows = table.to_pylist()
    with (folder / "labels.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(LABEL_FIELDS) + ["audio_path", "midi_path"])
        writer.writeheader()
        for row in rows:
            out = {name: "" if row[name] is None else row[name] for name in LABEL_FIELDS}
            audio_name = f"{row['segment_id']}{extension}"
            wave = np.frombuffer(row["audio_waveform"], dtype="<f4")
            soundfile.write(str(folder / audio_name), wave, row["audio_sample_rate"], subtype=subtype)
            out["audio_path"] = audio_name
            out["midi_path"] = ""
            if row["midi_binary"] is not None:
                out["midi_path"] = f"{row['segment_id']}.mid"
                (folder / out["midi_path"]).write_bytes(row["midi_binary"])
            writer.writerow(out)


# === Measuring ===


def disk_bytes(path: pathlib.Path) -> int:
    """Bytes of a file, or of every file under a folder."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def evict(*paths: pathlib.Path) -> None:
    """Drop these files from the OS page cache so the next read comes from disk."""
    files = []
    for path in paths:
        files += [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    for file in files:
        fd = os.open(file, os.O_RDONLY)
        try:
            os.fsync(fd)  # DONTNEED only drops clean pages
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


class Clock:
    """Wall seconds and CPU seconds (this process, all threads) since it was made."""

    def __init__(self):
        self.wall = time.perf_counter()
        self.cpu = time.process_time()

    def elapsed(self) -> dict:
        """``{"wall": seconds, "cpu": seconds}``."""
        return {"wall": time.perf_counter() - self.wall, "cpu": time.process_time() - self.cpu}


class Featurizer:
    """prepare_waveform + LogMelSpectrogram in batches; counts the seconds spent on features."""

    def __init__(self, seconds: float, batch: int):
        import keras

        from chroma_keras.layers.log_mel_spectrogram import LogMelSpectrogram
        from chroma_keras.preprocessing.audio import AudioSpec

        self.keras = keras
        self.spec = AudioSpec(sample_rate=SAMPLE_RATE, duration=seconds)
        self.layer = LogMelSpectrogram(**LOG_MEL)
        self.batch = batch
        self.spent = {"wall": 0.0, "cpu": 0.0}
        self.layer(np.zeros((batch, self.spec.num_samples), np.float32))  # build / warm up outside the timings

    def config(self) -> dict:
        """The preprocessing config the features depend on: the cache key."""
        # Every constructor argument, read back from the layer. Not layer.get_config(): Keras'
        # serialisation imports TensorFlow (seconds, and log noise) even under another backend.
        arguments = inspect.signature(type(self.layer).__init__).parameters
        log_mel = {k: getattr(self.layer, k) for k in arguments if k not in ("self", "kwargs")}
        return {
            "feature": "log_mel",
            "audio": {"sample_rate": self.spec.sample_rate, "duration": self.spec.duration},
            "log_mel": log_mel,
        }

    def __call__(self, records):
        """Yield ``(record, log_mel [frames, n_mels])`` for records with audio, batch by batch."""
        from chroma_keras.preprocessing.audio import prepare_waveform

        pending = []

        def flush():
            clock = Clock()
            waves = np.stack(
                [prepare_waveform(r.audio, r.audio_sample_rate, self.spec, source=r.segment_id)[0] for r in pending]
            )
            features = self.keras.ops.convert_to_numpy(self.layer(waves))
            for kind, seconds in clock.elapsed().items():
                self.spent[kind] += seconds
            out = list(zip(pending, features))
            pending.clear()
            return out

        for record in records:
            if record.audio is None:
                continue
            pending.append(record)
            if len(pending) == self.batch:
                yield from flush()
        if pending:
            yield from flush()


def _epoch(clock: Clock, features: dict, source, count: int, midi: int, **extra) -> dict:
    return {
        "total": clock.elapsed(),
        "features": dict(features),
        "segments": count,
        "midi": midi,
        "report": source.report().summary(),
        **extra,
    }


def stream_epoch(open_source, featurizer: Featurizer, files) -> dict:
    """One epoch of (a) or (b): open, read every segment, compute its log-mel."""
    evict(*files)
    featurizer.spent = {"wall": 0.0, "cpu": 0.0}
    clock = Clock()
    source = open_source()
    count = midi = 0
    for record, mel in featurizer(source):
        count += 1
        midi += record.midi_bytes is not None
    return _epoch(clock, featurizer.spent, source, count, midi)


def cache_fill_epoch(parquet: pathlib.Path, cache, featurizer: Featurizer) -> dict:
    """(c), first epoch: stream (a), compute, and store every segment's features."""
    from chroma_keras.data.segments import open_segments

    evict(parquet)
    featurizer.spent = {"wall": 0.0, "cpu": 0.0}
    clock = Clock()
    source = open_segments(parquet)
    count = midi = 0
    for record, mel in featurizer(source):
        cache.put(record.segment_id, {"log_mel": mel})
        count += 1
        midi += record.midi_bytes is not None
    return _epoch(clock, featurizer.spent, source, count, midi)


NON_AUDIO_COLUMNS = ["segment_id", "song_id", "start_seconds", "end_seconds", "duration_seconds", "midi_binary"]


def cache_read_epoch(parquet: pathlib.Path, cache) -> dict:
    """(c), later epochs: labels + MIDI from the parquet (no audio column), features from the cache."""
    from chroma_keras.data.segments import open_segments

    evict(parquet, cache.directory)
    clock = Clock()
    source = open_segments(parquet, columns=NON_AUDIO_COLUMNS)
    count = midi = missing = 0
    for record in source:
        arrays = cache.get(record.segment_id)
        if arrays is None:
            missing += 1
            continue
        _ = arrays["log_mel"]
        count += 1
        midi += record.midi_bytes is not None
    return _epoch(clock, {"wall": 0.0, "cpu": 0.0}, source, count, midi, missing=missing)


def show_config_hash(cache_root: pathlib.Path, featurizer: Featurizer, segment_ids) -> None:
    """A changed preprocessing config gets another hash and folder: old entries are not reused."""
    from chroma_keras.data.feature_cache import FeatureCache, config_hash

    config = featurizer.config()
    reordered = dict(reversed(list(config.items())))
    changed = {**config, "log_mel": {**config["log_mel"], "n_mels": 64}}
    print("\nCache keys (segment_id + hash of the preprocessing config):")
    print(f"  config as used            -> {config_hash(config)}")
    print(f"  same config, keys reordered -> {config_hash(reordered)}")
    print(f"  n_mels 128 -> 64          -> {config_hash(changed)}")
    old = FeatureCache(cache_root, config)
    new = FeatureCache(cache_root, changed)
    found_old = sum(old.get(i) is not None for i in segment_ids)
    found_new = sum(new.get(i) is not None for i in segment_ids)
    folders = sorted(p.name for p in cache_root.iterdir() if p.is_dir())
    print(f"  entries found under the old config: {found_old}/{len(segment_ids)}; under the changed one: "
          f"{found_new}/{len(segment_ids)} (all misses, recomputed on first use)")
    print(f"  folders under the cache root: {folders}")


# === Main ===


def cache_ids(cache) -> list[str]:
    """Segment ids stored in a cache folder (the demo ids are safe file names, so a file's stem is its id)."""
    return sorted(p.stem for p in cache.directory.glob("*.npz"))


def _row(name, disk, reference_disk, epochs, reference, kind):
    cells = f"{name:<34}{disk / 1e6:>9.1f}{disk / reference_disk:>7.2f}"
    for epoch, base in zip(epochs, reference):
        total, base_total = epoch["total"][kind], base["total"][kind]
        read, base_read = total - epoch["features"][kind], base_total - base["features"][kind]
        cells += f"{total:>8.1f}{read:>7.2f}{total / base_total:>7.2f}{read / base_read:>7.2f}"
    return cells


def main() -> None:
    """Build the corpus, store it three ways, time two epochs of each, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--segments", type=int, default=200, help="segments (rounded up to 8 colours x songs of 5 segments, >= 40)"
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="audio per segment")
    parser.add_argument("--audio", choices=("noise", "additive"), default="noise")
    parser.add_argument("--batch", type=int, default=16, help="waveforms per LogMelSpectrogram call")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default=tempfile.gettempdir())
    parser.add_argument("--keep", action="store_true", help="keep the files (printed) instead of deleting them")
    args = parser.parse_args()

    import keras

    from chroma_keras.data.feature_cache import FeatureCache
    from chroma_keras.data.segments import open_segments

    started = time.perf_counter()
    load = os.getloadavg()[0]
    print(f"{os.cpu_count()} CPU cores, load average {load:.1f} at start (timings stretch when it exceeds the cores)")
    tmp = pathlib.Path(tempfile.mkdtemp(dir=args.workdir, prefix="storage_strategies_"))
    try:
        t = time.perf_counter()
        table = build_table(args.segments, args.seconds, args.audio, args.seed)
        raw_mb = sum(len(b) for b in table.column("audio_waveform").to_pylist() if b) / 1e6
        print(
            f"corpus: {table.num_rows} segments x {args.seconds:g} s at {SAMPLE_RATE} Hz ({args.audio} audio, "
            f"{raw_mb:.0f} MB of raw float32), {sum(v is not None for v in table.column('midi_binary').to_pylist())} "
            f"with MIDI; built in {time.perf_counter() - t:.1f} s; backend {keras.backend.backend()}"
        )
        parquet = tmp / "media.parquet"
        wav_dir, flac_dir = tmp / "wav", tmp / "flac"
        t = time.perf_counter()
        write_parquet(table, parquet)
        write_folder(table, wav_dir, ".wav", "FLOAT")
        write_folder(table, flac_dir, ".flac", "PCM_16")
        print(f"wrote the parquet, WAV and FLAC folders in {time.perf_counter() - t:.1f} s under {tmp}")
        first_id = table.column("segment_id")[0].as_py()
        original = np.frombuffer(table.column("audio_waveform")[0].as_py(), "<f4")
        flac = next(iter(open_segments(flac_dir))).audio
        print(f"FLAC 16-bit round trip of {first_id}: max |error| {np.max(np.abs(flac - original)):.1e} "
              f"(WAV float and parquet are bit-exact)")
        del table

        featurizer = Featurizer(args.seconds, args.batch)
        cache = FeatureCache(tmp / "cache", featurizer.config())
        results = {}
        for name, opener, files in (
            ("(a) raw float32 in parquet", lambda: open_segments(parquet), [parquet]),
            ("(b) WAV float32 + .mid + csv", lambda: open_segments(wav_dir), [wav_dir]),
            ("(b) FLAC 16-bit + .mid + csv", lambda: open_segments(flac_dir), [flac_dir]),
        ):
            results[name] = [stream_epoch(opener, featurizer, files) for _ in range(2)]
            print(f"{name}: epochs done in {', '.join(f'{e[TOTAL][WALL]:.1f} s' for e in results[name])}")
        cache_name = "(c) log-mel FeatureCache (.npz)"
        results[cache_name] = [cache_fill_epoch(parquet, cache, featurizer), cache_read_epoch(parquet, cache)]
        print(f"{cache_name}: epochs done in {', '.join(f'{e[TOTAL][WALL]:.1f} s' for e in results[cache_name])}")

        disks = {
            "(a) raw float32 in parquet": disk_bytes(parquet),
            "(b) WAV float32 + .mid + csv": disk_bytes(wav_dir),
            "(b) FLAC 16-bit + .mid + csv": disk_bytes(flac_dir),
            cache_name: disk_bytes(cache.directory),
        }
        reference = results["(a) raw float32 in parquet"]
        reference_disk = disks["(a) raw float32 in parquet"]
        for kind, title in ((WALL, "wall-clock seconds"), ("cpu", "CPU seconds of this process (all threads)")):
            print(
                f"\n{title}\n{'':<34}{'disk':>16}{'epoch 1':>28}{'epoch 2':>28}\n"
                f"{'strategy':<34}{'MB':>9}{'x (a)':>7}" + f"{'total':>8}{'read':>7}{'x (a)':>7}{'read x':>7}" * 2
            )
            for name, epochs in results.items():
                print(_row(name, disks[name], reference_disk, epochs, reference, kind))
        print(
            f"(c)'s disk is the cache alone; it is kept next to its source (labels and MIDI are still read from "
            f"it): {(disks[cache_name] + reference_disk) / 1e6:.1f} MB together."
        )
        print(
            "total: seconds for the epoch; read: total minus the seconds in prepare_waveform + LogMelSpectrogram "
            "(opening, reading, decoding, cache writes); x (a): ratio to (a) in this run. CPU seconds vary less "
            "than wall seconds on a shared machine but leave out waiting for the disk."
        )
        print("Every epoch starts with the files dropped from the OS page cache (cold reads).")
        for name, (first, second) in results.items():
            segments = {first["segments"], second["segments"]}
            midi = {first["midi"], second["midi"]}
            print(f"  {name}: segments with features per epoch {sorted(segments)}, with MIDI {sorted(midi)}")
        print(f"  (c) epoch 2 cache misses: {results[cache_name][1]['missing']}")
        print(
            f"  reader report, (c) epoch 2: {results[cache_name][1]['report']} "
            "(audio:missing = the audio column was not read, by choice)"
        )
        print(f"  reader report, (a) epoch 2: {reference[1]['report']}")

        show_config_hash(tmp / "cache", featurizer, cache_ids(cache))
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"\ntotal run time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
