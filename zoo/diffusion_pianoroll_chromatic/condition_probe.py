"""How much a trained piano-roll diffusion model relies on its condition.

Prints, for a trained run and its corpus:

* the oracle: the squared error of predicting each training roll (in [-1, 1]) by the mean roll over all
  songs against by the mean roll of its colour, each averaged over frames. At pure noise that is the best a
  denoiser can do without and with the condition, so the ratio is the most the condition can lower the loss;
* the validation loss at fixed timesteps (the same noise for every variant) with the true condition,
  another segment's modes (the batch rolled by half; rebracketing kept), and no condition;
* the mean sounding pitch row and the share of sounding cells of DDIM samples for four colours.

Usage (the model card's numbers):

    KERAS_BACKEND=jax python zoo/diffusion_pianoroll_chromatic/condition_probe.py RUN/model corpus.parquet
"""

import argparse

import numpy as np
from keras import ops

import chroma_keras as ck
from chroma_keras import conditioning
from chroma_keras.data import MultimodalDataset, keys


def batches(model, corpus, split, limit=None):
    dataset = MultimodalDataset(corpus, model, split=split, require=("midi",), shuffle=False)
    count = len(dataset) if limit is None else min(limit, len(dataset))
    fetched = [dataset[i] for i in range(count)]
    return [item[0] if isinstance(item, tuple) else item for item in fetched]


def oracle(model, corpus):
    parts = batches(model, corpus, "train")
    rolls = np.concatenate([b[keys.PIANO_ROLL] for b in parts]) * 2.0 - 1.0
    colours = np.concatenate([b["colour_index"] for b in parts])
    overall = ((rolls - rolls.mean(axis=(0, 2), keepdims=True)) ** 2).mean()
    per_colour = sum(((rolls[colours == c] - rolls[colours == c].mean(axis=(0, 2), keepdims=True)) ** 2).sum() for c in np.unique(colours))
    per_colour /= rolls.size
    print(f"oracle x0 MSE at pure noise: overall row mean {overall:.4f}, colour row mean {per_colour:.4f} (ratio {per_colour / overall:.3f})")


def loss_by_condition(model, corpus, timesteps=(100, 400, 700, 900, 990)):
    parts = batches(model, corpus, "validation", limit=4)
    batch = {key: np.concatenate([b[key] for b in parts]) for key in (keys.PIANO_ROLL, keys.MODES, keys.REBRACKETING)}
    x0 = ops.convert_to_tensor(batch[keys.PIANO_ROLL] * 2.0 - 1.0)
    n = batch[keys.PIANO_ROLL].shape[0]
    noise = ops.convert_to_tensor(np.random.default_rng(0).standard_normal(tuple(x0.shape)).astype("float32"))
    other = np.roll(np.arange(n), n // 2)
    none = conditioning.condition_arrays(None, n)
    variants = {
        "true": model.condition_vector(batch[keys.MODES], batch[keys.REBRACKETING]),
        "another segment's modes": model.condition_vector(batch[keys.MODES][other], batch[keys.REBRACKETING]),
        "none": model.condition_vector(none[keys.MODES], none[keys.REBRACKETING]),
    }
    print(f"validation loss ({n} segments) with the condition: " + " / ".join(variants))
    for t in timesteps:
        ts = ops.convert_to_tensor(np.full((n,), t, "int32"))
        noisy = model.schedule.add_noise(x0, noise, ts)
        target = ops.convert_to_numpy(model.schedule.training_target(x0, noise, ts))
        losses = [
            float(np.mean((ops.convert_to_numpy(model.denoiser({"sample": noisy, "timestep": ts, "condition": c})) - target) ** 2))
            for c in variants.values()
        ]
        print(f"  t={t:4d}: " + " / ".join(f"{value:.4f}" for value in losses))


def sample_registers(model, colours=("Red", "Violet", "Orange", "Blue"), num_samples=8, num_steps=50):
    rows = np.arange(model.num_pitches)
    for colour in colours:
        rolls = model.generate(condition=colour, num_samples=num_samples, num_steps=num_steps, scheduler="ddim", seed=1)
        weight = (rolls > 0).sum(axis=(0, 2))
        print(f"{colour:7s} DDIM {num_steps}: mean sounding row {(weight * rows).sum() / max(weight.sum(), 1):.1f}, sounding {(rolls > 0).mean():.3f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a trained diffusion run or preset directory")
    parser.add_argument("corpus", help="the corpus it was trained on (parquet)")
    args = parser.parse_args()
    model = ck.from_preset(args.run)
    oracle(model, args.corpus)
    loss_by_condition(model, args.corpus)
    sample_registers(model)


if __name__ == "__main__":
    main()
