"""ChromaticGPT: KV cache against the full forward pass, generation, saving, errors."""

import keras
import numpy as np
import pytest

from chroma_keras.errors import ModelInputError
from chroma_keras.generation.samplers import top_k_filter
from chroma_keras.models.chromatic_gpt import ChromaticGPT
from chroma_keras.tokenizers import ChromaticVocabulary

# float32 logits of the cached and uncached paths agree to within this (measured ~1e-7).
ATOL = 1e-5


def tiny_gpt(**kwargs):
    config = dict(
        vocabulary=ChromaticVocabulary(midi={"tokenization": "remi", "positions_per_beat": 4, "num_velocities": 8}),
        hidden_dim=32,
        num_layers=2,
        num_heads=2,
        intermediate_dim=64,
        max_sequence_length=64,
        dropout=0.0,
        seed=0,
    )
    config.update(kwargs)
    return ChromaticGPT(**config)


@pytest.fixture(scope="module")
def model():
    return tiny_gpt()


def full_logits(model, ids):
    """The uncached forward pass. Rows are padded to max_sequence_length so every call has one
    shape (no recompilation); causal attention keeps the padding out of the real positions."""
    ids = np.asarray(ids, np.int32)
    padded = np.zeros((len(ids), model.max_sequence_length), np.int32)
    padded[:, : ids.shape[1]] = ids
    mask = (np.arange(model.max_sequence_length) < ids.shape[1]).astype(np.int32)[None].repeat(len(ids), 0)
    logits = model({"token_ids": padded, "padding_mask": mask})
    return keras.ops.convert_to_numpy(logits)[:, : ids.shape[1]]


def test_prefill_and_decode_steps_match_the_full_forward(model):
    ids = np.random.default_rng(0).integers(1, model.vocabulary.vocabulary_size, (2, 24)).astype(np.int32)
    full = full_logits(model, ids)
    logits, cache = model.prefill(ids[:, :9], cache_length=32)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(logits), full[:, :9], atol=ATOL)
    for t in range(9, 24):
        step, cache = model.decode_step(ids[:, t], cache, t)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(step), full[:, t], atol=ATOL)


def test_cached_greedy_equals_uncached_greedy_token_for_token(model):
    prompt = model.prompt_ids("Red with high temporal complexity")
    cached = model.generate(prompt="Red with high temporal complexity", max_length=40, sampling="greedy")[0]
    sequence = list(prompt)
    while len(sequence) < 40:
        logits = full_logits(model, [sequence])[0, -1]
        sequence.append(int(np.argmax(logits)))
        if sequence[-1] == model.vocabulary.eos_id:
            break
    np.testing.assert_array_equal(cached[: len(sequence)], sequence)


def test_one_beam_equals_greedy(model):
    greedy = model.generate(prompt="Violet", max_length=30, sampling="greedy")
    beam = model.generate(prompt="Violet", max_length=30, sampling="beam", num_beams=1)
    np.testing.assert_array_equal(beam[0][: greedy.shape[1]], greedy[0])


def test_beam_search_scores_at_least_greedy(model):
    def log_probability(sequence, start):
        sequence = [int(t) for t in sequence if t != model.vocabulary.pad_id]
        logits = full_logits(model, [sequence])[0].astype(np.float64)
        log_p = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) - logits.max(-1, keepdims=True)
        return sum(log_p[i - 1, sequence[i]] for i in range(start, len(sequence)))

    start = len(model.prompt_ids("Blue"))
    greedy = model.generate(prompt="Blue", max_length=16, sampling="greedy")[0]
    beam = model.generate(prompt="Blue", max_length=16, sampling="beam", num_beams=4, length_penalty=0.0)[0]
    assert log_probability(beam, start) >= log_probability(greedy, start) - 1e-4


@pytest.mark.parametrize("sampling", ["temperature", "top_k", "top_p", "top_k_top_p"])
def test_seeded_sampling_is_reproducible(model, sampling):
    kwargs = dict(prompt="Green", max_length=30, sampling=sampling, top_k=20, top_p=0.9, num_samples=2)
    a = model.generate(seed=3, **kwargs)
    b = model.generate(seed=3, **kwargs)
    np.testing.assert_array_equal(a, b)
    assert a.shape[0] == 2 and a.dtype == np.int32
    np.testing.assert_array_equal(a[:, : len(model.prompt_ids("Green"))], np.repeat(model.prompt_ids("Green")[None], 2, 0))
    assert not np.array_equal(a, model.generate(seed=4, **kwargs))


def test_top_k_in_the_model_stays_in_the_k_best(model):
    seen = []

    def record(previous, logits):
        seen.append((previous.shape[1], top_k_filter(logits, 3)))
        return logits

    ids = model.generate(prompt="Red", max_length=20, sampling="top_k", top_k=3, seed=0, num_samples=3, logits_processors=[record])
    for length, filtered in seen:
        if length < ids.shape[1]:
            chosen = ids[:, length]
            assert np.isfinite(filtered[np.arange(3), chosen]).all()


def test_generation_errors(model):
    with pytest.raises(ModelInputError, match="max_length must exceed"):
        model.generate(prompt="Red", max_length=3)
    with pytest.raises(ModelInputError, match="sampling must be one of"):
        model.generate(prompt="Red", max_length=10, sampling="nucleus")
    with pytest.raises(ModelInputError, match="at most num_beams"):
        model.generate(prompt="Red", max_length=10, sampling="beam", num_beams=2, num_samples=3)
    with pytest.raises(ModelInputError, match="cannot read"):
        model.generate(prompt="a purple piece", max_length=10)
    with pytest.raises(ModelInputError, match="prompt token ids must be in"):
        model.generate(prompt=[1, 10**6], max_length=10)
    with pytest.raises(ModelInputError, match="num_samples"):
        model.generate(prompt="Red", max_length=10, num_samples=0)
    with pytest.raises(ModelInputError, match="divisible by num_heads"):
        tiny_gpt(hidden_dim=30, num_heads=4)
    with pytest.raises(ModelInputError, match="owns its loss"):
        model.compile(loss="mse")


def test_token_id_prompts_and_max_sequence_length_cap(model):
    prefix = model.prompt_ids("Orange")
    out = model.generate(prompt=prefix, max_length=10**6, sampling="greedy")
    assert out.shape[1] <= model.max_sequence_length
    np.testing.assert_array_equal(out[0, : len(prefix)], prefix)


def test_to_midi_writes_files_and_reports_errors(model, tmp_path):
    ids = model.generate(prompt="Red", max_length=40, sampling="temperature", seed=0, num_samples=2)
    reports = model.to_midi(ids, tmp_path / "out")
    assert len(reports) == 2
    for report in reports:
        data = open(report["path"], "rb").read()
        assert data[:4] == b"MThd" and data == report["midi"]
        assert 0.0 <= report["token_error_rate"] <= 1.0
    # A valid REMI section decodes with no errors.
    vocab = model.vocabulary
    import symusic

    score = symusic.Score(480)
    track = symusic.Track(program=0)
    track.notes.append(symusic.Note(0, 480, 60, 80))
    score.tracks.append(track)
    sequence = np.concatenate([model.prompt_ids("Red"), vocab.encode_midi(score.dumps_midi()), [vocab.eos_id, 0, 0]])
    report = model.to_midi(sequence, tmp_path / "one.mid")
    assert report["token_error_rate"] == 0.0 and report["num_notes"] == 1
    with pytest.raises(ModelInputError, match="integer token ids"):
        model.to_midi(np.zeros((1, 2, 3), int))


def test_training_lowers_the_loss_and_masks_padding():
    model = tiny_gpt()
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    rng = np.random.default_rng(0)
    ids = rng.integers(3, 40, (8, 16)).astype(np.int32)
    mask = np.ones_like(ids)
    mask[:, 12:] = 0
    x = {"token_ids": ids, "padding_mask": mask}
    before = model.evaluate(x, verbose=0, batch_size=8)
    # Changing padded positions' ids leaves the loss unchanged: they are neither attended to nor targets.
    garbled = {"token_ids": np.where(mask > 0, ids, 7).astype(np.int32), "padding_mask": mask}
    assert model.evaluate(garbled, verbose=0, batch_size=8) == pytest.approx(before, rel=1e-5)
    history = model.fit(x, epochs=15, batch_size=8, verbose=0)
    assert history.history["loss"][-1] < before / 2


@pytest.mark.parametrize("tie", [True, False])
def test_config_and_keras_file_round_trip(tmp_path, tie):
    model = tiny_gpt(tie_embeddings=tie, sampling="top_k", top_k=7)
    again = ChromaticGPT.from_config(model.get_config())
    assert again.get_config() == model.get_config()
    assert again.count_params() == model.count_params()
    ids = np.random.default_rng(1).integers(1, 400, (1, 12)).astype(np.int32)
    path = tmp_path / "gpt.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(full_logits(loaded, ids), full_logits(model, ids), atol=1e-6)
    assert loaded.vocabulary == model.vocabulary
    assert loaded.sampling_config == model.sampling_config
