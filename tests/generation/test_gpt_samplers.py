"""Decoding strategies: properties checked on logits and toy models whose scores the test sets."""

import itertools

import numpy as np
import pytest

from chroma_keras.errors import ModelInputError
from chroma_keras.generation.samplers import (
    SamplingConfig,
    apply_repetition_penalty,
    beam_search,
    log_softmax,
    sample_loop,
    select_next,
    softmax,
    top_k_filter,
    top_p_filter,
)

EMPTY = np.zeros((1, 0), np.int64)


def _rows(logits, n):
    return np.repeat(np.asarray(logits, np.float64)[None, :], n, axis=0), np.zeros((n, 0), np.int64)


def test_greedy_is_argmax():
    logits = np.random.default_rng(0).normal(size=(16, 50))
    picks = select_next(logits, np.zeros((16, 0), int), SamplingConfig("greedy"), np.random.default_rng(0))
    np.testing.assert_array_equal(picks, logits.argmax(-1))


def test_top_k_never_leaves_the_k_best():
    base = np.random.default_rng(1).permutation(40).astype(float) / 4.0  # distinct logits
    best = set(np.argsort(-base)[:5])
    logits, previous = _rows(base, 4000)
    picks = select_next(logits, previous, SamplingConfig("top_k", top_k=5, temperature=3.0), np.random.default_rng(0))
    assert set(picks) == best  # every one of the k best is drawn, nothing else
    assert np.isfinite(top_k_filter(base[None], 5)).sum() == 5


def test_top_p_never_leaves_the_nucleus():
    probabilities = np.array([0.05, 0.4, 0.05, 0.3, 0.2])
    logits, previous = _rows(np.log(probabilities), 4000)
    # 0.4 + 0.3 = 0.7 < 0.75, so the nucleus of 0.75 needs the 0.2 token too; of 0.65 it does not.
    for p, nucleus in ((0.75, {1, 3, 4}), (0.65, {1, 3}), (0.3, {1})):
        picks = select_next(logits, previous, SamplingConfig("top_p", top_p=p), np.random.default_rng(0))
        assert set(picks) == nucleus, p
        assert set(np.flatnonzero(np.isfinite(top_p_filter(np.log(probabilities)[None], p)[0]))) == nucleus


def test_top_k_then_top_p():
    probabilities = np.array([0.3, 0.25, 0.2, 0.15, 0.1])
    logits, previous = _rows(np.log(probabilities), 3000)
    # top-3 renormalises to 0.4 / 0.333 / 0.267; its 0.7-nucleus is the first two.
    picks = select_next(logits, previous, SamplingConfig("top_k_top_p", top_k=3, top_p=0.7), np.random.default_rng(0))
    assert set(picks) == {0, 1}


def test_sampling_frequencies_follow_the_tempered_distribution():
    probabilities = np.array([0.5, 0.3, 0.2])
    logits, previous = _rows(np.log(probabilities), 20000)
    picks = select_next(logits, previous, SamplingConfig("temperature", temperature=2.0), np.random.default_rng(0))
    expected = softmax(np.log(probabilities)[None] / 2.0)[0]
    observed = np.bincount(picks, minlength=3) / len(picks)
    np.testing.assert_allclose(observed, expected, atol=0.015)


@pytest.mark.parametrize("strategy", ["temperature", "top_k", "top_p", "top_k_top_p"])
@pytest.mark.parametrize("temperature", [0.0, 1e-6])
def test_temperature_to_zero_is_greedy(strategy, temperature):
    logits = np.random.default_rng(2).normal(size=(64, 30))
    config = SamplingConfig(strategy, temperature=temperature, top_k=10, top_p=0.9)
    picks = select_next(logits, np.zeros((64, 0), int), config, np.random.default_rng(0))
    np.testing.assert_array_equal(picks, logits.argmax(-1))


def test_repetition_penalty_formula():
    logits = np.array([[2.0, -1.0, 0.5, 3.0]])
    previous = np.array([[0, 1, 1]])
    penalised = apply_repetition_penalty(logits, previous, 2.0)
    np.testing.assert_allclose(penalised, [[1.0, -2.0, 0.5, 3.0]])  # positive / 2, negative * 2, unseen unchanged
    before, after = softmax(logits)[0], softmax(penalised)[0]
    assert after[0] < before[0] and after[1] < before[1]
    assert after[3] > before[3]
    np.testing.assert_array_equal(apply_repetition_penalty(logits, previous, 1.0), logits)


def test_repetition_penalty_changes_greedy_choice():
    logits = np.array([[3.0, 2.0, 0.0]])
    config = SamplingConfig("greedy", repetition_penalty=2.0)
    assert select_next(logits, np.array([[0]]), config, np.random.default_rng(0))[0] == 1
    assert select_next(logits, np.array([[2]]), config, np.random.default_rng(0))[0] == 0


# --- toy models --------------------------------------------------------------------------

EOS, PAD = 1, 0


def markov_step(table):
    """A 'model' whose next-token logits depend only on the last token: logits = table[last]."""

    def step(sequences):
        return table[np.asarray(sequences)[:, -1]]

    return step


def random_table(vocab=5, seed=0):
    table = np.random.default_rng(seed).normal(size=(vocab, vocab)) * 2
    table[:, PAD] = -1e9  # the toy never emits padding
    return table


def test_seeded_sampling_is_reproducible():
    step = markov_step(random_table(8, seed=3))
    prompt = np.full((4, 1), 2)
    config = SamplingConfig("top_p", top_p=0.95)
    a = sample_loop(step, prompt, 30, config, seed=7, eos_id=None)
    b = sample_loop(step, prompt, 30, config, seed=7, eos_id=None)
    c = sample_loop(step, prompt, 30, config, seed=8, eos_id=None)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_sample_loop_stops_rows_at_eos_and_pads():
    table = np.full((4, 4), -1e9)
    table[2, 3] = 0.0  # 2 -> 3 -> eos
    table[3, EOS] = 0.0
    table[EOS, 2] = 0.0
    out = sample_loop(markov_step(table), np.array([[2], [2]]), 10, SamplingConfig("greedy"), eos_id=EOS, pad_id=PAD)
    np.testing.assert_array_equal(out, [[2, 3, EOS], [2, 3, EOS]])


def _greedy(table, prompt, max_length):
    return sample_loop(markov_step(table), np.array([prompt]), max_length, SamplingConfig("greedy"), eos_id=EOS, pad_id=PAD)[0]


@pytest.mark.parametrize("seed", range(5))
def test_one_beam_is_greedy(seed):
    table = random_table(6, seed)
    greedy = _greedy(table, [2], 12)
    beams, _ = beam_search(markov_step(table), [2], 12, num_beams=1, length_penalty=0.0, eos_id=EOS, pad_id=PAD)
    np.testing.assert_array_equal(beams[0][: len(greedy)], greedy)


def _log_probability(table, sequence):
    return sum(log_softmax(table[a][None])[0, b] for a, b in zip(sequence, sequence[1:]))


def _exhaustive_best(table, prompt, new_tokens):
    """Best sequence by total log-probability among all that end at eos or run new_tokens long."""
    vocab = table.shape[0]
    candidates = []
    for n in range(1, new_tokens + 1):
        for tail in itertools.product(range(2, vocab), repeat=n - 1):
            candidates.append(list(prompt) + list(tail) + [EOS])
        if n == new_tokens:
            candidates += [list(prompt) + list(t) for t in itertools.product(range(2, vocab), repeat=n)]
    return max(candidates, key=lambda s: _log_probability(table, s))


@pytest.mark.parametrize("seed", range(4))
def test_wide_beam_finds_the_exhaustive_best(seed):
    table = random_table(4, seed + 10)
    best = _exhaustive_best(table, [2], 4)
    beams, scores = beam_search(markov_step(table), [2], 5, num_beams=16, length_penalty=0.0, eos_id=EOS, pad_id=PAD)
    assert list(beams[0][: len(best)]) == best
    assert scores[0] == pytest.approx(_log_probability(table, best))


def test_beam_beats_greedy_on_a_known_trap():
    # From 2: "3" (p 0.5) leads to a flat distribution, "4" (p 0.4) almost surely to eos.
    table = np.full((5, 5), -1e9)
    table[2, [3, 4, EOS]] = np.log([0.5, 0.4, 0.1])
    table[3, [2, 3, 4, EOS]] = np.log(0.25)
    table[4, [3, EOS]] = np.log([0.05, 0.95])
    greedy = _greedy(table, [2], 4)
    assert greedy[1] == 3
    beams, _ = beam_search(markov_step(table), [2], 4, num_beams=2, length_penalty=0.0, eos_id=EOS, pad_id=PAD)
    assert list(beams[0]) == [2, 4, EOS]


def test_length_penalty_trades_length_for_probability():
    table = np.full((4, 4), -1e9)
    table[2, [EOS, 3]] = np.log([0.6, 0.4])
    table[3, [EOS, 3]] = np.log([0.9, 0.1])
    short, _ = beam_search(markov_step(table), [2], 6, num_beams=2, length_penalty=0.0, eos_id=EOS, pad_id=PAD)
    long, _ = beam_search(markov_step(table), [2], 6, num_beams=2, length_penalty=2.0, eos_id=EOS, pad_id=PAD)
    assert list(short[0]) == [2, EOS]  # log 0.6 = -0.51 beats log 0.36 = -1.02
    assert list(long[0]) == [2, 3, EOS]  # -1.02 / 2**2 = -0.26 beats -0.51 / 1


def test_beam_search_reorders_the_state():
    calls = []
    table = random_table(5, 1)
    beam_search(markov_step(table), [2], 6, num_beams=3, eos_id=None, reorder_fn=calls.append)
    assert len(calls) == 5 and all(c.shape == (3,) for c in calls)


def test_config_errors():
    with pytest.raises(ModelInputError, match="sampling must be one of"):
        SamplingConfig("nucleus")
    with pytest.raises(ModelInputError, match="top_k >= 1"):
        SamplingConfig("top_k", top_k=0)
    with pytest.raises(ModelInputError, match=r"top_p must be in \(0, 1\]"):
        SamplingConfig("top_p", top_p=0.0)
    with pytest.raises(ModelInputError, match="temperature must be >= 0"):
        SamplingConfig("temperature", temperature=-1.0)
    with pytest.raises(ModelInputError, match="repetition_penalty must be > 0"):
        SamplingConfig(repetition_penalty=0.0)
    with pytest.raises(ModelInputError, match="num_beams >= 1"):
        SamplingConfig("beam", num_beams=0)
    with pytest.raises(ModelInputError, match="beam_search"):
        sample_loop(markov_step(random_table()), np.array([[2]]), 4, SamplingConfig("beam"))
