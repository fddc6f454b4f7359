"""Constrained REMI decoding: the grammar mask, and error-free MIDI from every strategy."""

import numpy as np
import pytest

from chroma_keras.errors import ModelInputError
from chroma_keras.generation.remi_grammar import RemiGrammar
from chroma_keras.tokenizers import ChromaticVocabulary


@pytest.fixture(scope="module")
def vocab():
    return ChromaticVocabulary(midi={"tokenization": "remi", "positions_per_beat": 4, "num_velocities": 8})


def ids_of(vocab, *names):
    miditok = vocab.midi_tokenizer.miditok
    return [vocab.ranges["midi"][0] + miditok[name] for name in names]


def allowed_names(grammar, vocab, sequence):
    allowed = grammar.allowed(sequence)
    start, stop = vocab.ranges["midi"]
    names = {vocab.midi_tokenizer.miditok[i - start] for i in np.flatnonzero(allowed) if start <= i < stop}
    return names, bool(allowed[vocab.eos_id]), bool(allowed[: start].any() or allowed[stop:].any())


def test_grammar_masks(vocab):
    grammar = RemiGrammar(vocab)
    prefix = [vocab.bos_id, *vocab.mode_ids("Red"), vocab.separator_id("midi")]
    names, eos, other = allowed_names(grammar, vocab, prefix)
    assert names == {"Bar_None"} and not eos and not other
    bar = prefix + ids_of(vocab, "Bar_None")
    names, eos, _ = allowed_names(grammar, vocab, bar)
    assert {n.split("_")[0] for n in names} == {"Bar", "Position"} and eos
    at_5 = bar + ids_of(vocab, "Position_5")
    names, eos, _ = allowed_names(grammar, vocab, at_5)
    assert {n.split("_")[0] for n in names} == {"Program", "Tempo"} and not eos
    # After a complete note: positions after 5 only, a new note, or a bar; <eos> may end here.
    velocity = next(n for n in vocab.midi_tokenizer.miditok.vocab if n.startswith("Velocity_"))
    duration = next(n for n in vocab.midi_tokenizer.miditok.vocab if n.startswith("Duration_"))
    note = at_5 + ids_of(vocab, "Program_0", "Pitch_60", velocity, duration)
    names, eos, _ = allowed_names(grammar, vocab, note)
    positions = {int(n.split("_")[1]) for n in names if n.startswith("Position_")}
    assert positions and min(positions) == 6 and eos
    assert {n.split("_")[0] for n in names} == {"Position", "Program", "Bar"}
    # The same program may not replay pitch 60 at position 5; another program may.
    names, _, _ = allowed_names(grammar, vocab, note + ids_of(vocab, "Program_0"))
    assert "Pitch_60" not in names and "Pitch_61" in names
    names, _, _ = allowed_names(grammar, vocab, note + ids_of(vocab, "Program_1"))
    assert "Pitch_60" in names
    # Drums take PitchDrum tokens only.
    names, _, _ = allowed_names(grammar, vocab, note + ids_of(vocab, "Program_-1"))
    assert names and all(n.startswith("PitchDrum_") for n in names)
    # Outside a MIDI section the grammar leaves the logits alone.
    assert grammar.allowed([vocab.bos_id, *vocab.mode_ids("Red")]) is None
    logits = np.zeros((1, vocab.vocabulary_size))
    np.testing.assert_array_equal(grammar(np.array([[vocab.bos_id]]), logits), logits)


def test_grammar_needs_remi():
    with pytest.raises(ModelInputError, match="REMI"):
        RemiGrammar(ChromaticVocabulary(midi=None))


@pytest.fixture(scope="module")
def model(vocab):
    from chroma_keras.models.chromatic_gpt import ChromaticGPT

    return ChromaticGPT(vocab, hidden_dim=32, num_layers=2, num_heads=2, intermediate_dim=64, max_sequence_length=64, dropout=0.0, seed=0)


@pytest.mark.parametrize("sampling", ["greedy", "temperature", "top_k", "top_p", "top_k_top_p", "beam"])
def test_every_strategy_decodes_without_token_errors(model, sampling):
    kwargs = {"num_beams": 2} if sampling == "beam" else {"seed": 0, "top_k": 30, "top_p": 0.95, "temperature": 1.5}
    ids = model.generate(prompt="Red with high temporal complexity", max_length=48, sampling=sampling, constrained=True, **kwargs)
    report = model.to_midi(ids[0])
    assert report["token_error_rate"] == 0.0
    assert report["num_tokens"] > 0
    if sampling not in ("greedy", "beam"):  # the untrained model's argmax loops on Bar; draws write notes
        assert report["num_notes"] > 0
    free = model.generate(prompt="Red with high temporal complexity", max_length=48, sampling=sampling, **kwargs)
    # The untrained model without the grammar writes mostly ungrammatical tokens.
    assert sampling in ("greedy", "beam") or model.to_midi(free[0])["token_error_rate"] > 0.2


def test_steps_to_end_counts_the_tokens_that_finish_a_note(vocab):
    """REMI notes are Program Pitch Velocity Duration, after a Position (and maybe a Tempo): the fewest
    tokens after each type until the section may end (InfillConstraint's length budget)."""
    from chroma_keras.generation.remi_grammar import UNREACHABLE_STEPS

    grammar = RemiGrammar(vocab)
    steps = grammar.steps_to_end()
    by_type = {kind: set(steps[grammar.types == kind].tolist()) for kind in set(grammar.types)}
    assert by_type == {
        "Bar": {0}, "Duration": {0}, "Velocity": {1}, "Pitch": {2}, "PitchDrum": {2}, "Program": {3},
        "Position": {4}, "Tempo": {4}, "PAD": {UNREACHABLE_STEPS}, "BOS": {UNREACHABLE_STEPS}, "EOS": {UNREACHABLE_STEPS},
    }
