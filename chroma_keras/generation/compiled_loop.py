"""Whole-loop decoding in the backend: prefill, token choice, cache updates and the end test in one loop.

:func:`chroma_keras.generation.samplers.sample_loop` chooses every token in NumPy between compiled
model steps, which costs a round trip to NumPy per token. For the strategies that need no
per-step Python (greedy, temperature, top-k, top-p, top-k + top-p, without repetition penalty or
logit processors), :func:`decode_loop` does the same work with ``keras.ops`` inside one
``keras.ops.while_loop``, so a backend can compile the whole generation
(:func:`chroma_keras.backend.compiled_decoding.compile_decode_loop`).

The filters are those of :func:`~chroma_keras.generation.samplers.process_logits`: logits / temperature,
then top-k, then the nucleus. Greedy decoding picks the same tokens as the NumPy loop; draws come from
the backend's random generator (``draw(logits, seed, step)``, see the backend module), so sampled
tokens differ from the NumPy loop's draws for the same seed.

Example:

>>> spec = loop_spec(SamplingConfig("top_p", top_p=0.9), max_length=64, eos_id=2, pad_id=0)
>>> spec.nucleus, spec.top_k
(True, None)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from keras import ops

from chroma_keras.generation.samplers import SamplingConfig

# Strategies decode_loop runs (beam search keeps its NumPy loop).
COMPILED_STRATEGIES = ("greedy", "temperature", "top_k", "top_p", "top_k_top_p")

# Filtered-out logits: finite, so every backend's categorical draw accepts them, and far below any real logit.
_EXCLUDED = -1e9


@dataclass(frozen=True)
class LoopSpec:
    """The compile-time part of a decoding request (one compiled loop per distinct spec and shape).

    Args:
        greedy: pick the argmax (also for any strategy at temperature 0).
        top_k: candidates kept before drawing; None keeps the whole vocabulary.
        nucleus: apply the top-p cut (``top_p < 1``).
        max_length: longest sequence, prompt included (the cache length).
        eos_id: a row ends after this token; None never ends early.
        pad_id: filler after a row's end.
    """

    greedy: bool
    top_k: int | None
    nucleus: bool
    max_length: int
    eos_id: int | None
    pad_id: int


def unsupported_reason(config: SamplingConfig, processors: Sequence = (), constrained: bool = False) -> str | None:
    """Why a request cannot run in the compiled loop, or None when it can.

    Args:
        config: the sampling configuration.
        processors: per-step logit processors (NumPy callables; they need the NumPy loop).
        constrained: grammar-constrained decoding (a NumPy processor).

    Returns:
        A phrase naming the first feature that needs the NumPy loop, or None.
    """
    if config.strategy not in COMPILED_STRATEGIES:
        return f"sampling={config.strategy!r}"
    if config.repetition_penalty != 1.0:
        return f"repetition_penalty={config.repetition_penalty!r}"
    if constrained:
        return "constrained=True"
    if len(processors):
        return "logits_processors"
    return None


def loop_spec(config: SamplingConfig, max_length: int, eos_id: int | None, pad_id: int, vocabulary_size: int | None = None) -> LoopSpec:
    """The :class:`LoopSpec` of a request that :func:`unsupported_reason` accepts.

    Args:
        config: the sampling configuration.
        max_length: longest sequence, prompt included.
        eos_id: end token (None: run to ``max_length``).
        pad_id: filler after a row's end.
        vocabulary_size: when given, a ``top_k`` covering it is dropped (it would keep everything).

    Returns:
        The spec.
    """
    greedy = config.strategy == "greedy" or config.temperature == 0
    top_k = int(config.top_k) if config.strategy in ("top_k", "top_k_top_p") else None
    if top_k is not None and vocabulary_size is not None and top_k >= vocabulary_size:
        top_k = None
    nucleus = config.strategy in ("top_p", "top_k_top_p") and config.top_p < 1.0
    if greedy:
        top_k, nucleus = None, False
    return LoopSpec(bool(greedy), top_k, bool(nucleus), int(max_length), None if eos_id is None else int(eos_id), int(pad_id))


def choose_next(logits, spec: LoopSpec, temperature, top_p, draw, seed, step):
    """The next token of every row, with backend ops.

    Args:
        logits: float32 ``[batch, vocab]``.
        spec: the request's :class:`LoopSpec`.
        temperature, top_p: float32 scalars (tensors, so new values do not recompile).
        draw: ``draw(logits [batch, n], seed, step) -> int [batch]``, a categorical draw per row.
        seed, step: passed to ``draw``.

    Returns:
        int32 ``[batch]``.
    """
    if spec.greedy:
        return ops.cast(ops.argmax(logits, axis=-1), "int32")
    logits = logits / temperature
    if spec.top_k is None and not spec.nucleus:
        return ops.cast(draw(logits, seed, step), "int32")
    k = spec.top_k if spec.top_k is not None else ops.shape(logits)[-1]
    values, indices = ops.top_k(logits, k, sorted=True)
    if spec.nucleus:
        probabilities = ops.softmax(values, axis=-1)
        before = ops.cumsum(probabilities, axis=-1) - probabilities  # mass of the more likely candidates
        values = ops.where(before < top_p, values, _EXCLUDED)
    values = ops.where(values > _EXCLUDED, values, _EXCLUDED)  # -inf from the model, if any
    picks = ops.cast(draw(values, seed, step), "int32")
    return ops.cast(ops.take_along_axis(indices, picks[:, None], axis=-1)[:, 0], "int32")


def decode_loop(model, prompt_ids, seed, temperature, top_p, spec: LoopSpec, draw):
    """Prefill ``prompt_ids``, then generate to ``spec.max_length`` or until every row ended.

    Everything is ``keras.ops`` (one ``while_loop``), so the caller may trace it into one
    compiled function.

    Args:
        model: a model with ``init_cache(batch, length)`` and
            ``call_with_cache(token_ids, cache, index) -> (logits, cache)``.
        prompt_ids: int32 ``[batch, prompt_length]``.
        seed: the draws' seed (passed to ``draw``).
        temperature, top_p: float32 scalars.
        spec: the request's :class:`LoopSpec`.
        draw: see :func:`choose_next`.

    Returns:
        ``(sequences, length)``: int32 ``[batch, spec.max_length]`` (``pad_id`` past the end) and the
        int32 length actually generated, prompt included (the loop stops early when every row ended).
    """
    batch, prompt_length = ops.shape(prompt_ids)
    max_length = spec.max_length
    cache = model.init_cache(batch, max_length)
    logits, cache = model.call_with_cache(prompt_ids, cache, 0)
    padding = ops.full((batch, max_length - prompt_length), spec.pad_id, dtype="int32")
    sequences = ops.concatenate([ops.cast(prompt_ids, "int32"), padding], axis=1)
    state = (
        ops.convert_to_tensor(prompt_length, "int32"),
        sequences,
        cache,
        ops.cast(logits[:, -1, :], "float32"),
        ops.zeros((batch,), dtype="bool"),
    )

    def cond(index, sequences, cache, logits, done):
        return ops.logical_and(index < max_length, ops.logical_not(ops.all(done)))

    def body(index, sequences, cache, logits, done):
        token = choose_next(logits, spec, temperature, top_p, draw, seed, index)
        token = ops.where(done, spec.pad_id, token)
        sequences = ops.slice_update(sequences, (0, index), token[:, None])
        if spec.eos_id is not None:
            done = ops.logical_or(done, ops.equal(token, spec.eos_id))
        # The step after the last token is wasted work, but it keeps the body branch-free.
        logits, cache = model.call_with_cache(token[:, None], cache, index)
        return index + 1, sequences, cache, ops.cast(logits[:, -1, :], "float32"), done

    index, sequences, *_ = ops.while_loop(cond, body, state)
    return sequences, index


__all__ = ["COMPILED_STRATEGIES", "LoopSpec", "choose_next", "decode_loop", "loop_spec", "unsupported_reason"]
