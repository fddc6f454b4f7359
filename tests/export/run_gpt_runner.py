"""Run GPT exports' own ``sample.py`` runners with their runtime alone — no chroma_keras, no Keras.

Usage: ``python run_gpt_runner.py JOBS_JSON``

``JOBS_JSON`` lists ``{"export_dir": ..., "argv": [...]}`` jobs; each imports that export's
``sample.py`` by path and calls its ``main(argv)`` (which writes the ``--out`` file). The last
line printed is JSON naming the jobs run and whether chroma_keras / keras were imported.
"""

import importlib.util
import json
import pathlib
import sys


def run(index, job):
    path = pathlib.Path(job["export_dir"]) / "sample.py"
    spec = importlib.util.spec_from_file_location(f"export_runner_{index}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main([*job["argv"], "--export-dir", str(job["export_dir"])])


def main(jobs_path):
    jobs = json.loads(pathlib.Path(jobs_path).read_text())
    for index, job in enumerate(jobs):
        run(index, job)
    imported = sorted({m.split(".")[0] for m in sys.modules} & {"chroma_keras", "keras"})
    assert "chroma_keras" not in imported, "the runtime side imported chroma_keras"
    print(json.dumps({"jobs": len(jobs), "imported": imported}))


if __name__ == "__main__":
    main(sys.argv[1])
