"""A DDIM sampling loop written against an exported ``denoise`` function and its manifest alone.

Usage: ``python ddim_with_denoise.py CASE_DIR EXPORT_DIR``

``CASE_DIR`` holds ``initial_noise.npy`` ([B, P, F]), ``modes.npy`` and ``rebracketing.npy``; the loop
writes ``velocities.npy``. It follows the manifest's ``settings.diffusion``: the timestep grid,
``alphas_cumprod``, the prediction type, clipping and the classifier-free guidance scale
(deterministic DDIM, eta = 0). This is what a server without chroma_keras writes to sample from a
torch / TorchScript / ONNX export, which holds ``denoise`` but not the loop.
"""

import json
import pathlib
import sys

import numpy as np

from serve_export import function_runner


def ddim(denoise, settings, x, modes, rebracketing):
    """Sample from ``x`` (x_T) with deterministic DDIM; returns velocities in [0, 1]."""
    diffusion = settings["diffusion"]
    config = diffusion["scheduler"]
    if diffusion["scheduler"]["name"] != "ddim" or config["eta"] != 0.0 or config["thresholding"]:
        raise SystemExit(f"this loop covers deterministic DDIM with clipping only; the export asks for {config}")
    alphas = np.asarray(diffusion["alphas_cumprod"], np.float32)
    betas = np.asarray(diffusion["one_minus_alphas_cumprod"], np.float32)
    grid = diffusion["timesteps"]
    scale, kind = np.float32(diffusion["guidance_scale"]), diffusion["prediction_type"]
    batch = len(x)
    for i, t in enumerate(grid):
        prev = grid[i + 1] if i + 1 < len(grid) else -1
        timestep = np.full((batch,), t, np.int32)
        output = denoise(x, timestep, modes, rebracketing)
        if scale != 1.0:
            unconditional = denoise(x, timestep, np.zeros_like(modes), np.zeros_like(rebracketing))
            output = unconditional + scale * (output - unconditional)
        a_t, b_t = alphas[t], betas[t]
        a_prev, b_prev = (alphas[prev], betas[prev]) if prev >= 0 else (np.float32(1.0), np.float32(0.0))
        if kind == "v":
            x0 = np.sqrt(a_t) * x - np.sqrt(b_t) * output
            eps = np.sqrt(a_t) * output + np.sqrt(b_t) * x
        elif kind == "epsilon":
            eps = output
            x0 = (x - np.sqrt(b_t) * eps) / np.sqrt(a_t)
        else:  # sample
            x0 = output
            eps = (x - np.sqrt(a_t) * x0) / np.sqrt(b_t)
        if config["clip_sample"]:
            x0 = np.clip(x0, -config["clip_sample_range"], config["clip_sample_range"])
        x = (np.sqrt(a_prev) * x0 + np.sqrt(b_prev) * eps).astype(np.float32)
    return np.clip((x + 1.0) / 2.0, 0.0, 1.0)


def main(case_dir, export_dir):
    export_dir, case_dir = pathlib.Path(export_dir), pathlib.Path(case_dir)
    manifest = json.loads((export_dir / "manifest.json").read_text())
    run = function_runner(export_dir, manifest, "denoise")
    denoise = lambda *arrays: run(*arrays)[0]  # noqa: E731
    load = lambda name: np.load(case_dir / f"{name}.npy")  # noqa: E731
    velocities = ddim(denoise, manifest["settings"], load("initial_noise"), load("modes"), load("rebracketing"))
    np.save(case_dir / "velocities.npy", velocities)
    imported = sorted({m.split(".")[0] for m in sys.modules} & {"chroma_keras", "keras"})
    assert "chroma_keras" not in imported, "the runtime side imported chroma_keras"
    print(json.dumps({"format": manifest["format"], "steps": len(manifest["settings"]["diffusion"]["timesteps"]), "imported": imported}))


if __name__ == "__main__":
    main(*sys.argv[1:3])
