"""ChromaticGPT's compiled whole-loop decoding against the NumPy loop and against replayed logits."""

import keras
import numpy as np
import pytest

from chroma_keras.backend.compiled_decoding import compile_decode_loop
from chroma_keras.errors import ModelInputError
from chroma_keras.generation.compiled_loop import loop_spec
from chroma_keras.generation.samplers import SamplingConfig, sample_loop
from chroma_keras.models.chromatic_gpt import ChromaticGPT, _CachedStepper
from chroma_keras.tokenizers import ChromaticVocabulary

MAX_LENGTH = 40
# Replayed float32 logits differ from the loop's by ~1e-7; a token on the edge of a top-k set or a
# nucleus may sit within this of the edge and still count as inside.
EDGE_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def model():
    vocabulary = ChromaticVocabulary(midi={"tokenization": "remi", "positions_per_beat": 4, "num_velocities": 8})
    return ChromaticGPT(
        vocabulary, hidden_dim=32, num_layers=2, num_heads=2, intermediate_dim=64, max_sequence_length=64, dropout=0.0, seed=0,
        tie_embeddings=False,  # tied, the untrained model's greedy choice repeats the last token forever
    )


@pytest.fixture(scope="module")
def prompts(model):
    """Three different prompts of one length (one per colour)."""
    rows = [model.prompt_ids(condition=colour) for colour in ("Red", "Blue", "Violet")]
    assert len({len(row) for row in rows}) == 1 and len({tuple(row) for row in rows}) == 3
    return np.stack(rows).astype(np.int32)


def numpy_greedy(model, prompts, eos_id):
    stepper = _CachedStepper(model, len(prompts), MAX_LENGTH)
    return sample_loop(stepper, prompts, MAX_LENGTH, SamplingConfig("greedy"), eos_id=eos_id, pad_id=model.vocabulary.pad_id)


def compiled_greedy(model, prompts, eos_id):
    spec = loop_spec(SamplingConfig("greedy"), MAX_LENGTH, eos_id, model.vocabulary.pad_id)
    return compile_decode_loop(model)(prompts, 0, 1.0, 1.0, spec)


def replayed_logits(model, ids):
    """float64 next-token logits of every position of ``ids`` (one prefill over the whole sequences)."""
    logits, _ = model.prefill(ids, cache_length=ids.shape[1])
    return keras.ops.convert_to_numpy(keras.ops.cast(logits, "float32")).astype(np.float64)


def generated_steps(model, ids, prompt_length):
    """(row, position, logits before it) of every generated token up to and including <eos>."""
    logits = replayed_logits(model, ids)
    for row in range(len(ids)):
        for position in range(prompt_length, ids.shape[1]):
            yield row, position, logits[row, position - 1]
            if ids[row, position] == model.vocabulary.eos_id:
                break


def test_greedy_compiled_equals_the_numpy_loop_without_an_end_token(model, prompts):
    expected = numpy_greedy(model, prompts, eos_id=None)
    got = compiled_greedy(model, prompts, eos_id=None)
    assert expected.shape == (3, MAX_LENGTH)
    assert len({tuple(row) for row in expected}) == 3  # the rows really differ
    np.testing.assert_array_equal(got, expected)


def test_greedy_compiled_equals_the_numpy_loop_with_rows_ending_at_different_steps(model, prompts):
    free = numpy_greedy(model, prompts, eos_id=None)
    prompt_length = prompts.shape[1]
    # A token greedy writes in row 0 plays <eos>: chosen so that the rows stop at different steps (or never).
    def first_steps(token):
        return tuple(int(np.argmax(row == token)) if (row == token).any() else -1 for row in free[:, prompt_length:])

    end = next(int(t) for t in free[0, prompt_length:] if len(set(first_steps(t))) > 1)
    stop = first_steps(end)[0]
    expected = numpy_greedy(model, prompts, eos_id=end)
    np.testing.assert_array_equal(compiled_greedy(model, prompts, eos_id=end), expected)
    assert expected[0, prompt_length + stop] == end and (expected[0, prompt_length + stop + 1 :] == model.vocabulary.pad_id).all()
    # A token every row writes at one early step: both loops stop there, with the same shorter length.
    early = next(int(t) for t in free[0, prompt_length:] if len(set(first_steps(t))) == 1 and first_steps(t)[0] >= 0)
    expected = numpy_greedy(model, prompts, eos_id=early)
    assert expected.shape[1] < MAX_LENGTH
    np.testing.assert_array_equal(compiled_greedy(model, prompts, eos_id=early), expected)

def test_generate_greedy_is_identical_compiled_or_not(model):
    kwargs = dict(prompt="Red with high temporal complexity", max_length=MAX_LENGTH, sampling="greedy", num_samples=2)
    np.testing.assert_array_equal(model.generate(compiled=True, **kwargs), model.generate(compiled=False, **kwargs))


def test_top_k_draws_stay_in_the_k_best_logits(model):
    ids = model.generate(prompt="Red", max_length=MAX_LENGTH, sampling="top_k", top_k=3, seed=0, num_samples=4, compiled=True)
    prompt_length = len(model.prompt_ids("Red"))
    not_argmax = 0
    for row, position, logits in generated_steps(model, ids, prompt_length):
        token = ids[row, position]
        third_best = np.sort(logits)[-3]
        assert logits[token] >= third_best - EDGE_TOLERANCE, (row, position)
        not_argmax += token != np.argmax(logits)
    assert not_argmax > 10  # the draws use the whole top 3, not only the argmax


@pytest.mark.parametrize("sampling", ["top_p", "top_k_top_p"])
def test_top_p_draws_stay_in_the_nucleus(model, sampling):
    # Temperature 0.02 sharpens the untrained model's near-flat logits so that nuclei hold a few tokens.
    temperature, top_p, top_k = 0.02, 0.8, 4
    ids = model.generate(
        prompt="Blue", max_length=MAX_LENGTH, sampling=sampling, temperature=temperature, top_p=top_p, top_k=top_k,
        seed=1, num_samples=4, compiled=True,
    )  # fmt: skip
    prompt_length = len(model.prompt_ids("Blue"))
    nucleus_sizes, not_argmax = [], 0
    for row, position, logits in generated_steps(model, ids, prompt_length):
        scaled = logits / temperature
        order = np.argsort(-scaled, kind="stable")
        if sampling == "top_k_top_p":
            assert scaled[ids[row, position]] >= scaled[order[top_k - 1]] - EDGE_TOLERANCE
            order = order[:top_k]
        probabilities = np.exp(scaled[order] - scaled[order].max())
        probabilities /= probabilities.sum()
        before = np.cumsum(probabilities) - probabilities  # mass of the more likely tokens
        rank = int(np.flatnonzero(order == ids[row, position])[0])
        assert before[rank] < top_p + EDGE_TOLERANCE, (row, position, before[rank])
        nucleus_sizes.append(int((before < top_p).sum()))
        not_argmax += rank > 0
    assert max(nucleus_sizes) > 1 and not_argmax > 0  # the check is not vacuous


def test_seeds_reproduce_and_differ(model):
    kwargs = dict(prompt="Green", max_length=MAX_LENGTH, sampling="top_k", top_k=3, num_samples=4, compiled=True)
    first = model.generate(seed=7, **kwargs)
    np.testing.assert_array_equal(first, model.generate(seed=7, **kwargs))
    assert not np.array_equal(first, model.generate(seed=8, **kwargs))
    assert len({tuple(row) for row in first}) > 1  # rows of one call draw differently


def test_auto_picks_the_compiled_loop_only_when_the_request_allows_it(model):
    kwargs = dict(prompt="Green", max_length=MAX_LENGTH, sampling="top_k", top_k=3, num_samples=4, seed=7)
    np.testing.assert_array_equal(model.generate(**kwargs), model.generate(compiled=True, **kwargs))
    penalised = dict(kwargs, repetition_penalty=1.1)
    np.testing.assert_array_equal(model.generate(**penalised), model.generate(compiled=False, **penalised))


def test_compiled_true_rejects_what_only_the_numpy_loop_runs(model):
    base = dict(prompt="Red", max_length=20, compiled=True)
    with pytest.raises(ModelInputError, match="compiled=True .* sampling='beam'"):
        model.generate(sampling="beam", num_beams=2, **base)
    with pytest.raises(ModelInputError, match="compiled=True .* constrained=True"):
        model.generate(sampling="top_p", constrained=True, **base)
    with pytest.raises(ModelInputError, match="compiled=True .* repetition_penalty=1.2"):
        model.generate(sampling="greedy", repetition_penalty=1.2, **base)
    with pytest.raises(ModelInputError, match="compiled=True .* logits_processors"):
        model.generate(sampling="greedy", logits_processors=[lambda ids, logits: logits], **base)
    with pytest.raises(ModelInputError, match="compiled must be True, False or 'auto'"):
        model.generate(prompt="Red", max_length=20, compiled="yes")


@pytest.mark.skipif(keras.config.backend() != "torch", reason="in-place cache writes exist only for PyTorch tensors")
def test_in_place_cached_steps_equal_the_functional_steps(model, prompts):
    import torch

    functional = model.init_cache(len(prompts), MAX_LENGTH)
    in_place = model.init_cache(len(prompts), MAX_LENGTH)
    with torch.no_grad():
        expected, functional = model.call_with_cache(prompts, functional, 0)
        got, returned = model.call_with_cache_in_place(keras.ops.convert_to_tensor(prompts), in_place, 0)
        assert returned is in_place
        np.testing.assert_allclose(keras.ops.convert_to_numpy(got), keras.ops.convert_to_numpy(expected), atol=1e-5)
        index = prompts.shape[1]
        for step, token in enumerate([7, 11, 13]):
            ids = np.full((len(prompts), 1), token, np.int32)
            position = torch.tensor(index + step, dtype=torch.int32)
            expected, functional = model.call_with_cache(ids, functional, position)
            got, in_place = model.call_with_cache_in_place(keras.ops.convert_to_tensor(ids), in_place, position)
            np.testing.assert_allclose(keras.ops.convert_to_numpy(got), keras.ops.convert_to_numpy(expected), atol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(in_place), keras.ops.convert_to_numpy(functional), atol=1e-6)


@pytest.mark.skipif(keras.config.backend() == "torch", reason="the other backends' tensors are immutable")
def test_in_place_cached_steps_are_refused_off_torch(model, prompts):
    with pytest.raises(ModelInputError, match="PyTorch"):
        model.call_with_cache_in_place(prompts, model.init_cache(len(prompts), MAX_LENGTH), 0)
