"""Export presets in every format of this backend and compare the served outputs with the live model.

Usage: ``KERAS_BACKEND=torch python tests/export/check_presets.py PRESET [PRESET ...]``

The same check as ``test_export_models.py`` (tiny configs from ``export_cases.TINY``, perturbed
weights, batch 3 and 1, served by the runtime alone, 1e-5 absolute), by hand for any preset with a tiny
config in ``export_cases.TINY``. Prints one line per preset and format; exits 1 on a failure.
"""

import importlib.util
import json
import pathlib
import sys
import tempfile

import keras
import numpy as np

import chroma_keras as ck
from chroma_keras.export import FORMATS, export_model

_spec = importlib.util.spec_from_file_location("export_cases", pathlib.Path(__file__).with_name("export_cases.py"))
cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cases)


def check(name, root):
    """Export ``name`` in every format this backend writes; returns ``{format: max abs difference}``."""
    keras.utils.set_random_seed(0)
    model = cases.perturb_weights(cases.build(name))
    formats = [f for f, (writer, _) in FORMATS.items() if writer == keras.config.backend()]
    results = {fmt: export_model(model, root / fmt, format=fmt) for fmt in formats}
    functions = {f.name: f for result in results.values() for f in result.functions}
    expected = cases.write_cases(model, functions.values(), root / "cases")
    cases.serve(root / "cases", [root / fmt for fmt in formats])
    worst = {}
    for fmt, result in results.items():
        held = [(key, output, value) for key, outputs in expected.items() if key[0] in result.manifest["functions"] for output, value in outputs.items()]
        worst[fmt] = max(float(np.abs(np.load(root / fmt / "served" / k[0] / k[1] / f"{o}.npy") - np.asarray(v)).max()) for k, o, v in held)
    return worst


def main(names):
    failed = False
    for name in names:
        for fmt, difference in check(name, pathlib.Path(tempfile.mkdtemp())).items():
            ok = difference <= cases.TOLERANCE
            failed |= not ok
            print(json.dumps({"preset": name, "format": fmt, "max_abs_difference": difference, "ok": ok}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
