"""Evolution: seconds per child of the GPT's token search against the VAE's latent search.

In one process for the current ``KERAS_BACKEND``, the script times one generation's breeding and
rendering (``breed`` then ``realize``, the part of :func:`~chroma_keras.generation.evolution.run_evolution`
that depends on the genome type; the scorer's fitness pass is the same for both and is left out) of
``--children`` children with

* ``tokens``: :class:`~chroma_keras.generation.token_evolution.TokenSearch` on an untrained GPT of
  the preset's shape reduced to ``--gpt-width`` (2 layers), constrained top-p decoding, parents
  sampled by the model itself (at most ``--max-length`` tokens; their bar and token counts are
  printed), crossover rate 0.5, up to 2 bars regenerated per mutation;
* ``latent``: :class:`~chroma_keras.generation.evolution.LatentSearch` on ``cvae_chromatic`` as the
  preset defines it (crossover, Gaussian mutation, one batched decode).

Each is run once as a warm-up (compilation), then ``--repeats`` times alternating, best time kept.
It prints seconds per child for both and the ratio ``tokens / latent`` (how many times slower a
token child is). Untrained weights: the speed does not depend on them, though how many tokens a
mutation writes does (bounded by ``--max-length``).

Usage:

    KERAS_BACKEND=jax .venv/bin/python benchmarks/evolution_breeding.py [--children 8] [--repeats 2]
"""

import argparse
import json
import time

import keras
import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--children", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--gpt-width", type=int, default=128)
    parser.add_argument("--max-length", type=int, default=128)
    args = parser.parse_args()

    import chroma_keras as ck
    from chroma_keras.generation.evolution import EvolutionSettings, LatentSearch
    from chroma_keras.generation.token_evolution import TokenSearch
    from chroma_keras.preprocessing.pianoroll import PianoRollSpec

    keras.utils.set_random_seed(0)
    width = args.gpt_width
    gpt = ck.from_preset(
        "gpt_remi_chromatic",
        **{
            "model.gpt.hidden_dim": width,
            "model.gpt.num_layers": 2,
            "model.gpt.num_heads": 2,
            "model.gpt.intermediate_dim": 4 * width,
            "model.gpt.max_sequence_length": 2 * args.max_length,
            "model.gpt.dropout": 0.0,
        },
    )
    vae = ck.from_preset("cvae_chromatic")
    spec = PianoRollSpec.from_config(vae.preset_config)
    settings = EvolutionSettings(population=args.children + 1, keep=1, crossover_rate=0.5, mutation_bars=2)
    token_search = TokenSearch(gpt, "Green", spec, constrained=True, sampling="top_p", max_length=args.max_length)
    latent_search = LatentSearch(vae, "Green")
    rng = np.random.default_rng(0)
    token_parents = token_search.initial(settings.population, rng)
    latent_parents = latent_search.initial(settings.population, rng)
    fitness = np.arange(settings.population, dtype=np.float64)

    def tokens():
        token_search.realize(token_search.breed(token_parents, fitness, args.children, rng, settings))

    def latent():
        latent_search.realize(latent_search.breed(latent_parents, fitness, args.children, rng, settings))

    runs = {"tokens": tokens, "latent": latent}
    for fn in runs.values():
        fn()
    best = {name: float("inf") for name in runs}
    for _ in range(args.repeats):
        for name, fn in runs.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    per_child = {name: seconds / args.children for name, seconds in best.items()}
    print(
        json.dumps(
            {
                "backend": keras.config.backend(),
                "children": args.children,
                "parent_bars": [token_search.bars(g) for g in token_parents],
                "parent_tokens": [len(g) for g in token_parents],
                "seconds_per_child": {k: round(v, 4) for k, v in per_child.items()},
                "ratio_tokens_over_latent": round(per_child["tokens"] / per_child["latent"], 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
