"""Shared by the diffusion benchmarks: their command-line options and the per-backend worker subprocess."""

import argparse
import json
import os
import subprocess
import sys


def parse_arguments(doc):
    """``--steps``, ``--samples``, ``--channels`` and ``--backends``; ``channels`` comes back as a list of ints."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20, help="sampling steps timed")
    parser.add_argument("--samples", type=int, default=4, help="samples per generate call")
    parser.add_argument("--channels", default="16,32,64", help="U-Net channels per level (the preset's: 32,64,128)")
    parser.add_argument("--backends", default="jax,tensorflow,torch")
    args = parser.parse_args()
    args.channels = [int(c) for c in args.channels.split(",")]
    return args


def run_worker(worker, backend, args):
    """Run a worker script template (formatted with steps, samples, channels) under ``backend``; its last
    stdout line is JSON, returned parsed."""
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    code = worker.format(steps=args.steps, samples=args.samples, channels=args.channels)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])
