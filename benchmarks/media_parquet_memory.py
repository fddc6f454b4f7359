"""Peak memory of streaming a media parquet: 2,000 vs 8,000 segments (goal: ratio < 1.3).

Writes parquet files in the real layout (DESIGN §3: zstd, row groups of 500,
raw float32 audio bytes at 44.1 kHz, ~43% of rows with MIDI), each in its own
subprocess, then iterates every record through ``open_segments`` in a fresh
subprocess and reads its peak RSS (``resource.getrusage``). Files are written
one size at a time and deleted afterwards.

30 s of audio per segment is 5.3 MB decoded. With ``--audio tone`` (the
default) each segment holds a tone whose period is a whole number of samples,
which zstd compresses to a few KB, so the full 30 s fit on disk while a reader
still decodes 5.3 MB per segment: memory is measured at the real size. With
``--audio noise`` the files are incompressible (10.6 GB and 42 GB); the script
then checks free disk space and scales the audio duration down (the same
duration for every size) until the largest file fits in ``--max-disk-gb`` and
half the free space, and prints when it does.

Usage:

    .venv/bin/python benchmarks/media_parquet_memory.py [--sizes 2000 8000] [--seconds 30]
        [--audio tone|noise] [--max-disk-gb 8] [--workdir /tmp] [--batch-rows 16]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile

SAMPLE_RATE = 44100
ROW_GROUP_SIZE = 500
MIDI_FRACTION = 0.43
LAYOUTS = ("writer-default", "row-pages")


def _small_midi(seed: int) -> bytes:
    """A valid one-track SMF with a few notes (built by hand so the writer needs no MIDI library)."""
    events = bytearray()
    for k in range(8):
        pitch = 48 + (seed + 3 * k) % 24
        events += bytes([0x00, 0x90, pitch, 80, 0x60, 0x80, pitch, 0])
    events += b"\x00\xff\x2f\x00"
    header = b"MThd" + (6).to_bytes(4, "big") + (0).to_bytes(2, "big") + (1).to_bytes(2, "big")
    header += (96).to_bytes(2, "big")
    return header + b"MTrk" + len(events).to_bytes(4, "big") + bytes(events)


def generate(path: str, num_segments: int, seconds: float, layout: str, audio_kind: str = "tone") -> None:
    """Write ``num_segments`` rows in the media layout, one row group (500 rows) at a time.

    ``layout="writer-default"`` uses pyarrow's writer defaults, as the real file most likely
    does: each binary column chunk becomes one page (and a dictionary page), so a reader must
    hold a whole row group's audio at once. ``layout="row-pages"`` writes one page per row and
    no dictionary for the binary columns, which lets a reader hold only ``batch_rows`` rows.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from chroma_keras import modes
    from chroma_keras.data.demo_corpus import DEMO_SCHEMA

    colours = [c for c in modes.COLOURS if c.has_training_data]
    samples = int(round(seconds * SAMPLE_RATE))
    rng = np.random.default_rng(0)
    training_data = json.dumps(
        {"rebracketing_type": "temporal", "rebracketing_intensity": 3.0, "rebracketing_coverage": 0.5}
    )
    options = {}
    if layout == "row-pages":
        binary = ("audio_waveform", "midi_binary")
        options = {"write_batch_size": 1, "use_dictionary": [n for n in DEMO_SCHEMA.names if n not in binary]}
    with pq.ParquetWriter(path, DEMO_SCHEMA, compression="zstd", **options) as writer:
        for first in range(0, num_segments, ROW_GROUP_SIZE):
            rows = {name: [] for name in DEMO_SCHEMA.names}
            for i in range(first, min(first + ROW_GROUP_SIZE, num_segments)):
                song = i // 100
                colour = colours[song % len(colours)]
                if audio_kind == "tone":
                    # 441 * k Hz at 44.1 kHz repeats every 100 / k samples exactly: compressible.
                    k = (1, 2, 4, 5)[i % 4]
                    t = np.arange(samples)
                    audio = ((0.1 + 0.001 * (i % 100)) * np.sin(2 * np.pi * 441 * k * t / SAMPLE_RATE)).astype("<f4")
                else:
                    audio = (0.1 * rng.standard_normal(samples)).astype("<f4")
                has_midi = rng.random() < MIDI_FRACTION
                rows["segment_id"].append(f"{song // 10 + 1:02d}_{song % 10 + 1:02d}_seg_{i % 100 + 1:04d}_track_01")
                rows["song_id"].append(f"{song // 10 + 1:02d}_{song % 10 + 1:02d}")
                rows["start_seconds"].append((i % 100) * seconds)
                rows["end_seconds"].append((i % 100 + 1) * seconds)
                rows["duration_seconds"].append(seconds)
                rows["has_audio"].append(True)
                rows["has_midi"].append(bool(has_midi))
                rows["lyric_text"].append("words " * 10)
                rows["concept"].append("a concept " * 40)
                rows["track_description"].append("lead")
                rows["audio_waveform"].append(audio.tobytes())
                rows["audio_sample_rate"].append(SAMPLE_RATE)
                rows["midi_binary"].append(_small_midi(i) if has_midi else None)
                rows["rainbow_color"].append(colour.name)
                for axis in modes.AXES:
                    label = ", ".join(m.capitalize() for m in getattr(colour, axis)) or None
                    rows[modes.AXIS_COLUMNS[axis]].append(label)
                rows["training_data"].append(training_data)
            writer.write_table(pa.table(rows, schema=DEMO_SCHEMA), row_group_size=ROW_GROUP_SIZE)


def measure(path: str, batch_rows: int) -> dict:
    """Iterate every record and report peak RSS (MB) before and after the pass."""
    import resource
    import time

    from chroma_keras.data.segments import open_segments

    def peak_mb():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux

    source = open_segments(path, batch_rows=batch_rows)
    count = len(source)  # the index pass (no binaries)
    baseline = peak_mb()
    start = time.perf_counter()
    samples = 0
    for record in source:
        samples += 0 if record.audio is None else record.audio.size
    return {
        "records": count,
        "samples": samples,
        "seconds": time.perf_counter() - start,
        "baseline_mb": baseline,
        "peak_mb": peak_mb(),
        "report": source.report().summary(),
    }


def _run(*args) -> str:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"subprocess {args[:2]} failed:\n{proc.stderr[-3000:]}")
    return proc.stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 8000])
    parser.add_argument("--seconds", type=float, default=30.0, help="audio per segment before any scaling")
    parser.add_argument("--max-disk-gb", type=float, default=8.0, help="largest file allowed on disk")
    parser.add_argument("--workdir", default=tempfile.gettempdir())
    parser.add_argument("--batch-rows", type=int, default=16)
    parser.add_argument("--layouts", nargs="+", default=list(LAYOUTS), choices=LAYOUTS)
    parser.add_argument("--audio", choices=("tone", "noise"), default="tone", help="audio content (see above)")
    parser.add_argument("--_generate", nargs=5, metavar=("PATH", "N", "SECONDS", "LAYOUT", "AUDIO"), help=argparse.SUPPRESS)
    parser.add_argument("--_measure", metavar="PATH", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._generate:
        generate(args._generate[0], int(args._generate[1]), float(args._generate[2]), args._generate[3], args._generate[4])
        return
    if args._measure:
        print(json.dumps(measure(args._measure, args.batch_rows)))
        return

    workdir = pathlib.Path(args.workdir)
    free = shutil.disk_usage(workdir).free
    bytes_per_second = SAMPLE_RATE * 4
    largest = max(args.sizes) * args.seconds * bytes_per_second / (1000 if args.audio == "tone" else 1)
    budget = min(args.max_disk_gb * 1e9, 0.5 * free)
    seconds = args.seconds
    print(f"free disk in {workdir}: {free / 1e9:.1f} GB; budget for the largest file: {budget / 1e9:.1f} GB")
    if largest > budget:
        seconds = max(int(budget / (max(args.sizes) * bytes_per_second) * 10) / 10, 0.1)
        print(
            f"{max(args.sizes)} segments x {args.seconds:g} s would take {largest / 1e9:.1f} GB: "
            f"scaled audio down to {seconds:g} s per segment for every size (segment counts kept)"
        )
    group_mb = ROW_GROUP_SIZE * seconds * bytes_per_second / 1e6
    print(f"a row group of {ROW_GROUP_SIZE} segments holds {group_mb:.0f} MB of audio")
    with tempfile.TemporaryDirectory(dir=workdir, prefix="media_parquet_memory_") as tmp:
        for layout in args.layouts:
            results = {}
            for size in args.sizes:
                path = pathlib.Path(tmp) / f"media_{size}.parquet"
                _run("--_generate", str(path), str(size), str(seconds), layout, args.audio)
                size_gb = path.stat().st_size / 1e9
                output = _run("--_measure", str(path), "--batch-rows", str(args.batch_rows))
                results[size] = r = json.loads(output.strip().splitlines()[-1])
                path.unlink()
                print(
                    f"[{layout}] {size:>6} segments x {seconds:g} s: file {size_gb:.2f} GB, {r['records']} records "
                    f"in {r['seconds']:.1f} s, peak RSS {r['peak_mb']:.0f} MB "
                    f"(after open + index: {r['baseline_mb']:.0f} MB)"
                )
            small, large = results[min(args.sizes)], results[max(args.sizes)]
            ratio = large["peak_mb"] / small["peak_mb"]
            verdict = "OK" if ratio < 1.3 else "FAIL"
            sizes = f"{max(args.sizes)} / {min(args.sizes)} segments"
            print(f"[{layout}] peak RSS ratio {sizes}: {ratio:.2f} (goal < 1.3): {verdict}")
            print(f"[{layout}] report of the last pass: {large['report']}")

if __name__ == "__main__":
    main()
