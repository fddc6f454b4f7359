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

# The runtime-only loader that chroma-keras export also ships as sample.py; imported by path so that
# the chroma_keras package itself is never imported here.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "chroma_keras" / "export"))
from sample_runner import load_function as function_runner  # noqa: E402


def serve(export_dir, cases_dir):
    """Run every function of one export on every case; returns ``(format, number of calls)``."""
    manifest = json.loads((export_dir / "manifest.json").read_text())
    calls = 0
    for name, entry in manifest["functions"].items():
        run = function_runner(export_dir, manifest, name)
        for case in sorted(p for p in (cases_dir / name).iterdir() if p.is_dir()):
            outputs = run(*[np.load(case / f"{spec['name']}.npy") for spec in entry["inputs"]])
            target = export_dir / "served" / name / case.name
            target.mkdir(parents=True)
            for key, value in zip(entry["outputs"], outputs):
                np.save(target / f"{key}.npy", value)
            calls += 1
    return manifest["format"], calls


def main(cases_dir, *export_dirs):
    served = [serve(pathlib.Path(d), pathlib.Path(cases_dir)) for d in export_dirs]
    imported = sorted({m.split(".")[0] for m in sys.modules} & {"chroma_keras", "keras"})
    assert "chroma_keras" not in imported, "the runtime side imported chroma_keras"
    print(json.dumps({"served": dict(served), "imported": imported}))


if __name__ == "__main__":
    main(*sys.argv[1:])
