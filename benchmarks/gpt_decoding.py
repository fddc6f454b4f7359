"""GPT decoding speed: ChromaticGPT's compiled loop, its NumPy loop, no cache, and keras-hub's GPT2CausalLM.

In one process for the current ``KERAS_BACKEND`` (run it once per backend), after a warm-up
run of each that absorbs compilation, the script times (best of ``--repeats`` runs, alternating
between the four so that a change of machine load affects each alike) greedy generation of ``--tokens``
new tokens for a batch of ``--batch`` from a short prompt with

* ``compiled``: the whole generation in one compiled backend loop (what
  ``ChromaticGPT.generate(sampling="greedy")`` runs by default: prefill, then cache updates, the
  argmax and the end test inside ``keras.ops.while_loop``), called through
  ``compile_decode_loop`` with no end token so that it writes every token;
* ``cached``: ``generate(sampling="greedy", compiled=False)``: the NumPy loop, one compiled
  cached step per token;
* ``no_cache``: the same greedy loop, each step running the whole model on the sequence so far,
  padded to the final length so that one compiled forward (``predict_on_batch``) serves
  every step;
* ``keras_hub``: ``keras_hub.models.GPT2CausalLM.generate`` with a greedy sampler on a GPT-2
  backbone of the same width, depth, heads, feed-forward width and vocabulary size
  (its whole loop compiled by keras-hub), without a preprocessor.

It prints tokens per second and the ratios ``cached / no_cache`` (goal >= 5 at 512 tokens)
and ``compiled / keras_hub`` (goal >= 1.0), with ``cached / keras_hub`` for reference. The models are untrained: speed does not depend on
the weights, and ``--tokens`` tokens are generated however the draws go (no end token stops
the loops).

Usage:

    KERAS_BACKEND=jax .venv/bin/python benchmarks/gpt_decoding.py [--tokens 512] [--batch 1]
"""

import argparse
import json
import time

import keras
import numpy as np


def _timed(fns, repeats):
    """Best wall time of each function; the runs alternate so that load changes hit every one alike."""
    for fn in fns.values():
        fn()  # warm-up: compilation
    times = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name] = min(times[name], time.perf_counter() - start)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=512, help="new tokens per sequence")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2, help="timed runs of each (the best is kept)")
    parser.add_argument("--no-cache-tokens", type=int, default=None, help="new tokens of the no-cache run (default: --tokens)")
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=None,
        help="torch intra-op threads for every method (default: torch's own). On a machine busier than its cores, "
        "torch's spinning worker threads slow each eager step many times over; 1 avoids that.",
    )
    args = parser.parse_args()
    if args.torch_threads is not None and keras.config.backend() == "torch":
        import torch

        torch.set_num_threads(args.torch_threads)

    import chroma_keras as ck
    from chroma_keras.backend.compiled_decoding import compile_decode_loop
    from chroma_keras.generation.compiled_loop import loop_spec
    from chroma_keras.generation.samplers import SamplingConfig, sample_loop

    model = ck.from_preset("gpt_remi_chromatic")
    vocab = model.vocabulary
    prefix = model.prompt_ids(condition="Red")
    total = len(prefix) + args.tokens
    if total > model.max_sequence_length:
        raise SystemExit(f"--tokens {args.tokens}: the prompt plus new tokens exceed max_sequence_length {model.max_sequence_length}")
    prompts = np.repeat(prefix[None, :], args.batch, axis=0)
    greedy = SamplingConfig(strategy="greedy")

    # The end token is masked so that every run generates exactly --tokens tokens.
    def no_eos(sequences, logits):
        logits = np.array(logits)
        logits[:, vocab.eos_id] = -np.inf
        return logits

    def cached():
        return model.generate(
            condition="Red", max_length=total, sampling="greedy", num_samples=args.batch, logits_processors=[no_eos], compiled=False
        )

    run_loop = compile_decode_loop(model)
    spec = loop_spec(greedy, total, eos_id=None, pad_id=vocab.pad_id)

    def compiled():
        return run_loop(prompts, 0, 1.0, 1.0, spec)

    no_cache_total = len(prefix) + (args.no_cache_tokens or args.tokens)

    def full_forward(sequences):
        padded = np.full((len(sequences), no_cache_total), vocab.pad_id, np.int32)
        padded[:, : sequences.shape[1]] = sequences
        logits = model.predict_on_batch(padded)
        return np.asarray(logits)[:, sequences.shape[1] - 1, :]

    def no_cache():
        return sample_loop(full_forward, prompts, no_cache_total, greedy, seed=0, pad_id=vocab.pad_id, processors=[no_eos])

    import keras_hub

    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=vocab.vocabulary_size,
        num_layers=model.num_layers,
        num_heads=model.num_heads,
        hidden_dim=model.hidden_dim,
        intermediate_dim=model.intermediate_dim,
        max_sequence_length=model.max_sequence_length,
    )
    hub = keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None)
    hub.compile(sampler="greedy")
    hub_ids = np.zeros((args.batch, total), np.int32)
    hub_ids[:, : len(prefix)] = prefix
    hub_mask = np.zeros((args.batch, total), bool)
    hub_mask[:, : len(prefix)] = True

    def keras_hub_generate():
        return hub.generate({"token_ids": hub_ids, "padding_mask": hub_mask}, max_length=total, stop_token_ids=None)

    times = _timed({"compiled": compiled, "cached": cached, "no_cache": no_cache, "keras_hub": keras_hub_generate}, args.repeats)
    new_tokens = {"compiled": args.tokens, "cached": args.tokens, "no_cache": no_cache_total - len(prefix), "keras_hub": args.tokens}
    rates = {k: args.batch * new_tokens[k] / t for k, t in times.items()}
    print(
        json.dumps(
            {
                "backend": keras.config.backend(),
                "tokens": args.tokens,
                "batch": args.batch,
                "torch_threads": args.torch_threads,
                "parameters": int(model.count_params()),
                "tokens_per_second": {k: round(v, 1) for k, v in rates.items()},
                "cached_over_no_cache": round(rates["cached"] / rates["no_cache"], 2),
                "compiled_over_keras_hub": round(rates["compiled"] / rates["keras_hub"], 2),
                "cached_over_keras_hub": round(rates["cached"] / rates["keras_hub"], 2),
                "compiled_over_cached": round(rates["compiled"] / rates["cached"], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
