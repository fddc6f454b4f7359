"""Time one cvae_chromatic training step under each Keras backend and print ratios to torch.

Each backend runs in its own subprocess on the same synthetic batch (batch 16, the preset's grid),
after a warm-up epoch that absorbs tracing/compilation. Usage:

    .venv/bin/python benchmarks/cvae_train_step.py [--steps 20]
"""

import argparse
import json
import os
import subprocess
import sys

WORKER = r"""
import json, time, numpy as np
import chroma_keras as ck
from chroma_keras import conditioning
model = ck.from_preset("cvae_chromatic")
rng = np.random.default_rng(0)
n = {steps} * 16
x = {{"piano_roll": (rng.random((n, model.num_pitches, model.num_frames)) > 0.95).astype("float32"),
      **conditioning.condition_arrays("Red", n)}}
model.fit(x, batch_size=16, epochs=1, verbose=0)
start = time.perf_counter()
model.fit(x, batch_size=16, epochs=2, verbose=0)
print(json.dumps({{"seconds_per_step": (time.perf_counter() - start) / (2 * {steps}), "params": model.count_params()}}))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    results = {}
    for backend in ("torch", "tensorflow", "jax"):
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
        out = subprocess.run([sys.executable, "-c", WORKER.format(steps=args.steps)], env=env, capture_output=True, text=True, check=True)
        results[backend] = json.loads(out.stdout.strip().splitlines()[-1])
    reference = results["torch"]["seconds_per_step"]
    print(f"cvae_chromatic train step, batch 16, {results['torch']['params']:,} parameters")
    print("backend      s/step   ratio to torch")
    for backend, r in results.items():
        print(f"{backend:11s} {r['seconds_per_step']:7.3f}   {r['seconds_per_step'] / reference:6.2f}")


if __name__ == "__main__":
    main()
