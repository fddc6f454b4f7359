"""Does data loading keep up with training? Input-pipeline batches/s vs training steps/s, per backend.

For the ``scorer_midi_only`` preset (full size) on the demo corpus (``--data demo``, what
``chroma-keras train scorer_midi_only --data demo`` reads), each backend runs in its own subprocess:

1. the training dataset is built exactly as :func:`chroma_keras.demo.train_on_corpus` builds it
   (:func:`chroma_keras.demo.corpus_datasets`: song split, shuffling, transposition augmentation,
   ``cache="auto"``, which holds the demo corpus' decoded piano rolls in memory); its construction
   time (reading the parquet, validating and decoding every MIDI file) is printed separately;
2. **pipeline**: every batch of ``--pipeline-epochs`` epochs is fetched the way Keras' ``fit`` fetches
   a ``PyDataset`` with ``workers=1`` (``dataset[i]`` in the training thread, ``on_epoch_end`` between
   epochs), in batches/s;
3. **training**: after a warm-up epoch (tracing / compilation), ``model.fit`` runs ``--epochs`` epochs
   on the same dataset, in steps/s. Those steps include fetching their batches, as in a real run.

The ratio pipeline / training is how many times faster batches are made than consumed (goal >= 3).
The same is printed for the streamed dataset (``cache=False``: re-read and decoded every epoch, what the
15 GB media parquet gets), for reference. Usage:

    .venv/bin/python benchmarks/input_pipeline.py [--backends jax,tensorflow,torch] [--epochs 2]
"""

import argparse
import json
import os
import subprocess
import sys

WORKER = r"""
import json, time
import keras
from chroma_keras import zoo
from chroma_keras.data.multimodal_dataset import MultimodalDataset
from chroma_keras.demo import corpus_datasets

keras.utils.set_random_seed(0)
model = zoo.from_preset("scorer_midi_only")
start = time.perf_counter()
train = corpus_datasets(model, "demo")["train"]
construct = time.perf_counter() - start
require = tuple(getattr(model, "required_modalities", ()))
streamed = MultimodalDataset("demo", model.preset_config, split="train", require=require, cache=False)


def pipeline(dataset, epochs):
    start, batches = time.perf_counter(), 0
    for _ in range(epochs):
        for index in range(len(dataset)):
            dataset[index]
            batches += 1
        dataset.on_epoch_end()
    return batches / (time.perf_counter() - start)


cached_rate = pipeline(train, {pipeline_epochs})
streamed_rate = pipeline(streamed, {pipeline_epochs})
model.fit(train, epochs=1, verbose=0)  # warm-up: tracing and compilation
start = time.perf_counter()
model.fit(train, epochs={epochs}, verbose=0)
steps = (time.perf_counter() - start) / ({epochs} * len(train))
print(json.dumps({{
    "examples": train.num_examples, "batch_size": train.batch_size, "batches": len(train), "cached": train.cache,
    "params": model.count_params(), "construct_s": construct, "pipeline_batches_per_s": cached_rate,
    "streamed_batches_per_s": streamed_rate, "train_steps_per_s": 1.0 / steps,
}}))
"""


def main():
    """Run the worker under each backend and print batches/s, steps/s and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="jax,tensorflow,torch", help="comma-separated Keras backends")
    parser.add_argument("--epochs", type=int, default=2, help="timed training epochs (after one warm-up epoch)")
    parser.add_argument("--pipeline-epochs", type=int, default=5, help="timed epochs of the input pipeline alone")
    args = parser.parse_args()
    results = {}
    for backend in args.backends.split(","):
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
        source = WORKER.format(epochs=args.epochs, pipeline_epochs=args.pipeline_epochs)
        out = subprocess.run([sys.executable, "-c", source], env=env, capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"{backend} worker failed:\n{out.stderr[-3000:]}")
        results[backend] = json.loads(out.stdout.strip().splitlines()[-1])
    first = next(iter(results.values()))
    print(
        f"scorer_midi_only ({first['params']:,} parameters) on the demo corpus: {first['examples']} training "
        f"segments, {first['batches']} batches of {first['batch_size']} per epoch, decoded piano rolls cached: "
        f"{first['cached']} (construction {first['construct_s']:.2f} s)"
    )
    print("backend      pipeline batches/s   train steps/s   ratio   | streamed batches/s   ratio")
    for backend, r in results.items():
        train = r["train_steps_per_s"]
        print(
            f"{backend:11s} {r['pipeline_batches_per_s']:18.1f} {train:15.2f} {r['pipeline_batches_per_s'] / train:7.0f}x"
            f"   | {r['streamed_batches_per_s']:18.1f} {r['streamed_batches_per_s'] / train:6.0f}x"
        )


if __name__ == "__main__":
    main()
