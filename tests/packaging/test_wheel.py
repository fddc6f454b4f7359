"""The built wheel ships the YAML presets: from_preset works from an installed copy."""

import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.backends("jax", reason="packaging does not depend on the backend; one run is enough")
def test_wheel_installs_with_presets(tmp_path):
    wheel_dir, site = tmp_path / "wheel", tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation", "-w", str(wheel_dir), "-q"],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    (wheel,) = wheel_dir.glob("chroma_keras-*.whl")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(site), str(wheel), "-q"],
        check=True,
        capture_output=True,
    )
    code = (
        "import chroma_keras as ck, pathlib; "
        "assert pathlib.Path(ck.__file__).resolve().is_relative_to(pathlib.Path(r'%s').resolve()), ck.__file__; "
        "m = ck.from_preset('cvae_chromatic'); "
        "print(dict(ck.list_presets()).keys(), m.generate(condition='Red', num_samples=2, seed=0).shape)"
    ) % site
    env = dict(os.environ, PYTHONPATH=str(site), KERAS_BACKEND="jax")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "cvae_chromatic" in proc.stdout and "(2, 64, 128)" in proc.stdout
