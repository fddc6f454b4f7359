"""Decoding strategies for autoregressive models: greedy, temperature, top-k, top-p, beam search.

The functions here work on NumPy logits and know nothing about the model: a decoding loop
asks a ``step_fn(sequences) -> logits`` for the next-token logits of every row
(``ChromaticGPT`` answers from its KV cache), so they run unchanged on every Keras backend
and are tested on toy "models" whose scores the test sets.

Why not keras-hub's samplers: they cover greedy / top-k / top-p / beam, but fold the
model call into a compiled loop with no place for a repetition penalty, a length
penalty or per-step logit masks (the constrained grammar decoding that comes next), and
draw their randomness from backend ops, so the same seed gives different draws per
backend. Here each step's filters are explicit functions and draws come from one
``numpy.random.Generator`` seeded by ``seed``.

Per step, logits go through, in this order (the order of Keskar et al. 2019 and of most
libraries): logit processors (masks) -> repetition penalty -> temperature -> top-k -> top-p,
then the strategy picks a token.

Example:

>>> import numpy as np
>>> config = SamplingConfig("top_p", top_p=0.9, temperature=0.8)
>>> logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05]]))
>>> select_next(logits, np.zeros((1, 0), int), config, np.random.default_rng(0)).shape
(1,)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np

from chroma_keras.errors import ModelInputError

STRATEGIES = ("greedy", "temperature", "top_k", "top_p", "top_k_top_p", "beam")

StepFn = Callable[[np.ndarray], np.ndarray]
LogitsProcessor = Callable[[np.ndarray, np.ndarray], np.ndarray]


class AllowedTokensProcessor:
    """Base of the logits processors that allow a set of tokens per row (grammars, infilling bounds).

    A subclass implements ``allowed(sequence) -> bool [vocab] | None`` (None: no restriction for
    that row); calling the processor sets every other token's logit to ``-inf``.
    """

    def allowed(self, sequence: np.ndarray) -> np.ndarray | None:
        """The tokens allowed after ``sequence`` (one row's ids so far), or None for no restriction."""
        raise NotImplementedError

    def __call__(self, sequences: np.ndarray, logits: np.ndarray) -> np.ndarray:
        logits = np.array(logits, dtype=np.float64)
        for row, sequence in enumerate(np.asarray(sequences)):
            allowed = self.allowed(sequence)
            if allowed is not None:
                logits[row, ~allowed] = -np.inf
        return logits


@dataclass(frozen=True)
class SamplingConfig:
    """How the next token is chosen.

    Args:
        strategy: one of :data:`STRATEGIES`:

            * ``greedy``: the most likely token;
            * ``temperature``: a draw from ``softmax(logits / temperature)``;
            * ``top_k``: a draw among the ``top_k`` most likely tokens (Fan et al., 2018);
            * ``top_p``: a draw from the nucleus, the fewest most-likely tokens whose
              probability reaches ``top_p`` (Holtzman et al., 2020);
            * ``top_k_top_p``: top-k, then the nucleus of what is left;
            * ``beam``: beam search with ``num_beams`` beams and ``length_penalty``.
        temperature: divides the logits before sampling; 0 means greedy.
        top_k: tokens kept by ``top_k`` / ``top_k_top_p``.
        top_p: nucleus mass of ``top_p`` / ``top_k_top_p``, in (0, 1].
        repetition_penalty: CTRL's penalty (Keskar et al., 2019) on tokens already in the
            sequence: a positive logit is divided by it, a negative one multiplied; 1 disables it.
        num_beams: beams of ``beam``.
        length_penalty: a finished beam's score is ``sum log p / length ** length_penalty``;
            > 0 favours longer sequences, < 0 shorter, 0 compares raw log-probabilities.
    """

    strategy: str = "top_p"
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    num_beams: int = 4
    length_penalty: float = 1.0

    def __post_init__(self):
        problems = []
        if self.strategy not in STRATEGIES:
            problems.append(f"sampling must be one of {list(STRATEGIES)}. Received: sampling={self.strategy!r}")
        if not (np.isfinite(self.temperature) and self.temperature >= 0):
            problems.append(f"temperature must be >= 0. Received: temperature={self.temperature!r}")
        if self.strategy in ("top_k", "top_k_top_p") and not (isinstance(self.top_k, (int, np.integer)) and self.top_k >= 1):
            problems.append(f"sampling={self.strategy!r} needs top_k >= 1. Received: top_k={self.top_k!r}")
        if not 0 < self.top_p <= 1:
            problems.append(f"top_p must be in (0, 1]. Received: top_p={self.top_p!r}")
        if not self.repetition_penalty > 0:
            problems.append(f"repetition_penalty must be > 0. Received: repetition_penalty={self.repetition_penalty!r}")
        if self.strategy == "beam" and not (isinstance(self.num_beams, (int, np.integer)) and self.num_beams >= 1):
            problems.append(f"sampling='beam' needs num_beams >= 1. Received: num_beams={self.num_beams!r}")
        if not np.isfinite(self.length_penalty):
            problems.append(f"length_penalty must be finite. Received: length_penalty={self.length_penalty!r}")
        if problems:
            raise ModelInputError("; ".join(problems))

    def updated(self, **changes) -> "SamplingConfig":
        """A copy with the given (non-None) fields changed."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


# --- logit filters ---------------------------------------------------------------------------


def apply_repetition_penalty(logits: np.ndarray, previous_ids: np.ndarray, penalty: float) -> np.ndarray:
    """CTRL's repetition penalty: for every token already in a row's sequence, a positive
    logit is divided by ``penalty`` and a negative one multiplied by it.

    Args:
        logits: ``[batch, vocab]``.
        previous_ids: ``[batch, length]`` tokens so far (prompt included).
        penalty: > 1 discourages repeats; 1 leaves the logits as they are.

    Returns:
        The penalised logits (a new array).
    """
    logits = np.array(logits, dtype=np.float64)
    if penalty == 1.0 or previous_ids.size == 0:
        return logits
    seen = np.zeros(logits.shape, bool)
    np.put_along_axis(seen, np.asarray(previous_ids, np.int64), True, axis=-1)
    penalised = np.where(logits > 0, logits / penalty, logits * penalty)
    return np.where(seen, penalised, logits)


def top_k_filter(logits: np.ndarray, k: int) -> np.ndarray:
    """Set every logit outside a row's ``k`` largest to ``-inf`` (exactly ``k`` survive; ties
    are broken by position)."""
    logits = np.array(logits, dtype=np.float64)
    if k >= logits.shape[-1]:
        return logits
    keep = np.argpartition(-logits, k - 1, axis=-1)[:, :k]
    out = np.full_like(logits, -np.inf)
    np.put_along_axis(out, keep, np.take_along_axis(logits, keep, axis=-1), axis=-1)
    return out


def top_p_filter(logits: np.ndarray, p: float) -> np.ndarray:
    """Keep a row's nucleus: the fewest most likely tokens whose probabilities sum to at least ``p``
    (the most likely token always survives); the rest get ``-inf``."""
    logits = np.array(logits, dtype=np.float64)
    if p >= 1.0:
        return logits
    order = np.argsort(-logits, axis=-1, kind="stable")
    probabilities = np.take_along_axis(softmax(logits), order, axis=-1)
    before = np.cumsum(probabilities, axis=-1) - probabilities  # mass of the more likely tokens
    keep_sorted = before < p
    keep = np.zeros(logits.shape, bool)
    np.put_along_axis(keep, order, keep_sorted, axis=-1)
    return np.where(keep, logits, -np.inf)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 (``-inf`` logits get probability 0)."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - np.max(logits, axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax in float64."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - np.max(logits, axis=-1, keepdims=True)
    with np.errstate(divide="ignore"):
        return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def process_logits(
    logits: np.ndarray,
    previous_ids: np.ndarray,
    config: SamplingConfig,
    processors: Sequence[LogitsProcessor] = (),
) -> np.ndarray:
    """Run a step's filters: processors, repetition penalty, then (sampling strategies only)
    temperature, top-k and top-p. Returns float64 logits with ``-inf`` on excluded tokens."""
    logits = np.asarray(logits, dtype=np.float64)
    for processor in processors:
        logits = np.asarray(processor(previous_ids, logits), dtype=np.float64)
    logits = apply_repetition_penalty(logits, previous_ids, config.repetition_penalty)
    if config.strategy in ("greedy", "beam") or config.temperature == 0:
        return logits
    logits = logits / config.temperature
    if config.strategy in ("top_k", "top_k_top_p"):
        logits = top_k_filter(logits, config.top_k)
    if config.strategy in ("top_p", "top_k_top_p"):
        logits = top_p_filter(logits, config.top_p)
    return logits


def select_next(
    logits: np.ndarray,
    previous_ids: np.ndarray,
    config: SamplingConfig,
    rng: np.random.Generator,
    processors: Sequence[LogitsProcessor] = (),
) -> np.ndarray:
    """The next token of every row under ``config`` (not for ``beam``; see :func:`beam_search`).

    Args:
        logits: ``[batch, vocab]`` next-token logits.
        previous_ids: ``[batch, length]`` tokens so far.
        config: the strategy and its parameters.
        rng: the generator draws come from.
        processors: extra ``f(previous_ids, logits) -> logits`` masks, applied first.

    Returns:
        int64 ``[batch]``.
    """
    processed = process_logits(logits, previous_ids, config, processors)
    if config.strategy == "greedy" or config.temperature == 0:
        return np.argmax(processed, axis=-1)
    probabilities = softmax(processed)
    cumulative = np.cumsum(probabilities, axis=-1)
    draws = rng.random(len(probabilities)) * cumulative[:, -1]
    # The first index whose cumulative mass exceeds the draw: never a zero-probability token.
    picks = np.array([np.searchsorted(row, u, side="right") for row, u in zip(cumulative, draws)])
    return np.minimum(picks, probabilities.shape[-1] - 1)


# --- decoding loops ---------------------------------------------------------------------------


def sample_loop(
    step_fn: StepFn,
    prompt_ids: np.ndarray,
    max_length: int,
    config: SamplingConfig,
    seed=None,
    eos_id: int | None = None,
    pad_id: int = 0,
    processors: Sequence[LogitsProcessor] = (),
) -> np.ndarray:
    """Extend every row of ``prompt_ids`` token by token until ``eos_id`` or ``max_length``.

    Args:
        step_fn: ``sequences [batch, length] -> logits [batch, vocab]`` of the next token.
        prompt_ids: ``[batch, prompt_length]`` ints.
        max_length: length of the longest returned sequence, prompt included.
        config: a non-beam :class:`SamplingConfig`.
        seed: int seed of the draws (or a ``numpy.random.Generator``); the same seed and logits
            give the same tokens.
        eos_id: a row ends after this token; later positions hold ``pad_id``.
        pad_id: filler after a row's end.
        processors: per-step logit masks (see :func:`select_next`).

    Returns:
        int32 ``[batch, length]``, ``length <= max_length`` (the loop stops when every row ended).
    """
    if config.strategy == "beam":
        raise ModelInputError("sample_loop does not run beam search; call beam_search.")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    sequences = np.asarray(prompt_ids, np.int64)
    done = np.zeros(len(sequences), bool)
    while sequences.shape[1] < max_length and not done.all():
        logits = np.asarray(step_fn(sequences))
        tokens = select_next(logits, sequences, config, rng, processors)
        tokens = np.where(done, pad_id, tokens)
        sequences = np.concatenate([sequences, tokens[:, None]], axis=1)
        if eos_id is not None:
            done |= tokens == eos_id
    return sequences.astype(np.int32)


def beam_search(
    step_fn: StepFn,
    prompt_ids: np.ndarray,
    max_length: int,
    num_beams: int,
    length_penalty: float = 1.0,
    eos_id: int | None = None,
    pad_id: int = 0,
    reorder_fn: Callable[[np.ndarray], None] | None = None,
    repetition_penalty: float = 1.0,
    num_return: int = 1,
    processors: Sequence[LogitsProcessor] = (),
) -> tuple[np.ndarray, np.ndarray]:
    """Beam search: keep the ``num_beams`` most likely partial sequences, step by step.

    Each step extends every live beam by every token, keeps the ``2 * num_beams`` best
    extensions, moves those ending in ``eos_id`` to the finished set (scored
    ``sum log p / generated_length ** length_penalty``) and the best ``num_beams`` others on.
    The search stops at ``max_length``, or once ``num_beams`` beams have finished and the best
    live beam, scored at its current length, cannot beat the worst of them. Live beams at the
    end count as finished.

    Args:
        step_fn: ``sequences [num_beams, length] -> logits [num_beams, vocab]``.
        prompt_ids: ``[prompt_length]`` or ``[1, prompt_length]``: one prompt.
        max_length: longest sequence, prompt included.
        num_beams: beams kept.
        length_penalty: exponent of the length normalisation.
        eos_id: the end token (None: every beam runs to ``max_length``).
        pad_id: filler after a sequence's end in the returned array.
        reorder_fn: called with the parent beam of each new beam (``[num_beams]``) before the
            next ``step_fn`` call, so a model can reorder its KV cache.
        repetition_penalty: CTRL penalty, as in sampling.
        num_return: how many of the best finished sequences to return (<= ``num_beams``).
        processors: per-step logit masks.

    Returns:
        ``(sequences, scores)``: int32 ``[num_return, length]`` best first, and their float64
        length-normalised scores.
    """
    prompt = np.asarray(prompt_ids, np.int64).reshape(1, -1)
    if not 1 <= num_return <= num_beams:
        raise ModelInputError(f"num_return must be in [1, num_beams={num_beams}]. Received: {num_return}")
    prompt_length = prompt.shape[1]
    sequences = np.repeat(prompt, num_beams, axis=0)
    # Only beam 0 is live at first, so the first step does not pick the same token num_beams times.
    scores = np.full(num_beams, -np.inf)
    scores[0] = 0.0
    finished: list[tuple[float, np.ndarray]] = []

    def normalised(score, length):
        return score / (max(length, 1) ** length_penalty)

    while sequences.shape[1] < max_length:
        logits = np.asarray(step_fn(sequences), np.float64)
        for processor in processors:
            logits = np.asarray(processor(sequences, logits), np.float64)
        logits = apply_repetition_penalty(logits, sequences, repetition_penalty)
        candidates = scores[:, None] + log_softmax(logits)  # [beams, vocab]
        flat = candidates.ravel()
        best = np.argsort(-flat, kind="stable")[: 2 * num_beams]
        generated = sequences.shape[1] + 1 - prompt_length
        parents, tokens, new_scores = [], [], []
        for rank, index in enumerate(best):
            if not np.isfinite(flat[index]):
                break
            parent, token = divmod(int(index), logits.shape[-1])
            if eos_id is not None and token == eos_id:
                if rank < num_beams:  # an end only counts when it is among the best num_beams extensions
                    finished.append((normalised(flat[index], generated), np.append(sequences[parent], token)))
                continue
            parents.append(parent)
            tokens.append(token)
            new_scores.append(flat[index])
            if len(parents) == num_beams:
                break
        if not parents:
            break
        while len(parents) < num_beams:  # fewer live candidates than beams: pad with dead copies
            parents.append(parents[0])
            tokens.append(tokens[0])
            new_scores.append(-np.inf)
        parents = np.asarray(parents)
        if reorder_fn is not None:
            reorder_fn(parents)
        sequences = np.concatenate([sequences[parents], np.asarray(tokens)[:, None]], axis=1)
        scores = np.asarray(new_scores)
        if len(finished) >= num_beams:
            worst_kept = sorted(s for s, _ in finished)[-num_beams]
            if normalised(scores.max(), generated) <= worst_kept:
                break
    if not finished or len(finished) < num_return or sequences.shape[1] >= max_length:
        generated = sequences.shape[1] - prompt_length
        finished += [(normalised(s, generated), seq) for s, seq in zip(scores, sequences) if np.isfinite(s)]
    finished.sort(key=lambda item: -item[0])
    chosen = finished[:num_return]
    length = max(len(seq) for _, seq in chosen)
    out = np.full((len(chosen), length), pad_id, np.int32)
    for row, (_, seq) in enumerate(chosen):
        out[row, : len(seq)] = seq
    return out, np.array([s for s, _ in chosen])
