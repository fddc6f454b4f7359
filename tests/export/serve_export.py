"""Run an export with its runtime alone — no chroma_keras, no Keras — as a user's server would.

Usage: ``python serve_export.py CASES_DIR EXPORT_DIR [EXPORT_DIR ...]``

``CASES_DIR/<function>/<case>/<input>.npy`` hold the inputs; this script writes each
output to ``EXPORT_DIR/served/<function>/<case>/<output>.npy`` and prints one JSON line
naming the formats served, the number of calls, and whether chroma_keras / keras were imported.
"""

import json
import pathlib
import sys

import numpy as np


def run_savedmodel(export_dir, manifest, calls):
    import tensorflow as tf

    loaded = tf.saved_model.load(str(export_dir / "savedmodel"))
    for name, entry, inputs in calls:
        outputs = loaded.signatures[name](**{spec["name"]: tf.constant(inputs[spec["name"]]) for spec in entry["inputs"]})
        yield name, {key: outputs[key].numpy() for key in entry["outputs"]}


def run_torch(export_dir, manifest, calls, loader):
    import torch

    modules = {}
    for name, entry, inputs in calls:
        if name not in modules:
            modules[name] = loader(str(export_dir / entry["file"]))
        with torch.no_grad():
            outputs = modules[name](*[torch.from_numpy(inputs[spec["name"]]) for spec in entry["inputs"]])
        yield name, {key: value.numpy() for key, value in zip(entry["outputs"], outputs)}


def run_onnx(export_dir, manifest, calls):
    import onnxruntime

    sessions = {}
    for name, entry, inputs in calls:
        if name not in sessions:
            sessions[name] = onnxruntime.InferenceSession(str(export_dir / entry["file"]), providers=["CPUExecutionProvider"])
        values = sessions[name].run(entry["outputs"], {spec["name"]: inputs[spec["name"]] for spec in entry["inputs"]})
        yield name, dict(zip(entry["outputs"], values))


def serve(export_dir, cases_dir):
    """Run every function of one export on every case; returns the number of calls."""
    manifest = json.loads((export_dir / "manifest.json").read_text())
    calls, targets = [], []
    for name, entry in manifest["functions"].items():
        for case in sorted(p for p in (cases_dir / name).iterdir() if p.is_dir()):
            calls.append((name, entry, {spec["name"]: np.load(case / f"{spec['name']}.npy") for spec in entry["inputs"]}))
            targets.append(export_dir / "served" / name / case.name)
    fmt = manifest["format"]
    if fmt == "savedmodel":
        results = run_savedmodel(export_dir, manifest, calls)
    elif fmt == "torch":
        import torch

        results = run_torch(export_dir, manifest, calls, lambda path: torch.export.load(path).module())
    elif fmt == "torchscript":
        import torch

        results = run_torch(export_dir, manifest, calls, torch.jit.load)
    elif fmt == "onnx":
        results = run_onnx(export_dir, manifest, calls)
    else:
        raise SystemExit(f"unknown format {fmt!r}")
    for target, (_, outputs) in zip(targets, results):
        target.mkdir(parents=True)
        for key, value in outputs.items():
            np.save(target / f"{key}.npy", value)
    return fmt, len(calls)


def main(cases_dir, *export_dirs):
    served = [serve(pathlib.Path(d), pathlib.Path(cases_dir)) for d in export_dirs]
    imported = sorted({m.split(".")[0] for m in sys.modules} & {"chroma_keras", "keras"})
    assert "chroma_keras" not in imported, "the runtime side imported chroma_keras"
    print(json.dumps({"served": dict(served), "imported": imported}))


if __name__ == "__main__":
    main(*sys.argv[1:])
