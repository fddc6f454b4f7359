"""Token validity: miditok's token error rate and valid-MIDI checks on hand-made REMI sequences."""

import miditok
import numpy as np
import pytest

from chroma_keras import config
from chroma_keras.errors import ModelInputError
from chroma_keras.evaluation.token_validity import ValidityReport, token_validity, validity_row
from chroma_keras.generation.token_midi import decode_sequence, miditok_error_rate
from chroma_keras.preprocessing.midi_tokens import MidiTokenizerSpec
from chroma_keras.tokenizers import ChromaticVocabulary


@pytest.fixture(scope="module")
def vocab():
    spec = MidiTokenizerSpec.from_config(config.load_preset_config("gpt_remi_chromatic"))
    return ChromaticVocabulary(midi=spec)


def _first(vocab, prefix):
    return next(token for token in vocab.midi_tokenizer.miditok.vocab if token.startswith(prefix))


def _note(vocab, pitch):
    return ["Program_0", f"Pitch_{pitch}", _first(vocab, "Velocity_"), _first(vocab, "Duration_")]


def _valid_tokens(vocab):
    # Two bars, three notes: 17 tokens that follow REMI's grammar.
    return ["Bar_None", "Position_0", *_note(vocab, 60), "Position_4", *_note(vocab, 64), "Bar_None", "Position_0", *_note(vocab, 67)]


def _sequence(vocab, tokens, eos=True):
    """A generated sequence: prefix, <sep_midi>, the tokens' ids, <eos>, padding."""
    local = [vocab.midi_tokenizer.miditok.vocab[t] for t in tokens]
    prefix = [vocab.bos_id, *vocab.mode_ids("Red"), vocab.separator_id("midi")]
    return np.asarray([*prefix, *vocab.midi_ids(local), *([vocab.eos_id] if eos else []), vocab.pad_id, vocab.pad_id], np.int32)


def _miditok(vocab, tokens):
    return vocab.midi_tokenizer.miditok.tokens_errors(miditok.TokSequence(tokens=list(tokens)))


def test_a_grammatical_sequence_has_no_token_errors_and_decodes_to_its_notes(vocab):
    tokens = _valid_tokens(vocab)
    assert _miditok(vocab, tokens) == 0
    decoded = decode_sequence(vocab, _sequence(vocab, tokens))
    assert decoded["valid"] and decoded["error"] == "" and decoded["ended"]
    assert decoded["token_error_rate"] == 0.0 and decoded["num_tokens"] == 17 and decoded["num_notes"] == 3
    assert decoded["midi"][:4] == b"MThd"


def test_known_errors_give_k_over_length_as_miditok_counts(vocab):
    valid = _valid_tokens(vocab)
    tempo = _first(vocab, "Tempo_")
    duration = _first(vocab, "Duration_")
    # Two type errors: a second Duration after a note's Duration, a second Tempo after a Tempo (each is
    # followed by a token its own type allows, so neither drags a second error along).
    typed = valid[:6] + [duration] + valid[6:7] + [tempo, tempo] + valid[7:]
    assert len(typed) == 20
    assert _miditok(vocab, typed) == pytest.approx(2 / 20)
    assert decode_sequence(vocab, _sequence(vocab, typed))["token_error_rate"] == pytest.approx(2 / 20)
    # A time error besides: a Position that does not move forward in its bar (miditok counts it too).
    backwards = typed + ["Position_0", *_note(vocab, 72)]
    assert _miditok(vocab, backwards) == pytest.approx(3 / 25)
    decoded = decode_sequence(vocab, _sequence(vocab, backwards, eos=False))
    assert decoded["token_error_rate"] == pytest.approx(3 / 25) and not decoded["ended"]
    # miditok skips what it cannot place and still writes the notes: the sequence is valid MIDI.
    assert decoded["valid"] and decoded["num_notes"] >= 3
    # The helper reads ids of the unified vocabulary and agrees with miditok on them.
    assert miditok_error_rate(vocab, _sequence(vocab, typed)) == pytest.approx(2 / 20)


def test_a_sequence_without_notes_is_not_valid_midi(vocab):
    decoded = decode_sequence(vocab, _sequence(vocab, ["Bar_None", "Bar_None"]))
    assert not decoded["valid"] and decoded["error"] == "no notes" and decoded["token_error_rate"] == 0.0
    empty = decode_sequence(vocab, np.asarray([vocab.bos_id, vocab.separator_id("midi"), vocab.eos_id]))
    assert not empty["valid"] and empty["num_tokens"] == 0
    with pytest.raises(ModelInputError, match="one integer sequence"):
        decode_sequence(vocab, np.zeros((2, 3), np.int32))


def test_validity_row_aggregates_and_the_report_prints_it(vocab):
    valid = _valid_tokens(vocab)
    typed = valid[:6] + [_first(vocab, "Duration_")] + valid[6:]  # one error in 18 tokens
    decoded = [decode_sequence(vocab, _sequence(vocab, t)) for t in (valid, typed)]
    decoded.append(decode_sequence(vocab, _sequence(vocab, ["Bar_None"], eos=False)))
    row = validity_row("unconstrained", decoded)
    assert row.sequences == 3 and row.valid == pytest.approx(2 / 3) and row.error_free == pytest.approx(2 / 3)
    assert row.token_error_rate == pytest.approx((0 + 1 / 18 + 0) / 3) and row.max_token_error_rate == pytest.approx(1 / 18)
    assert row.ended == pytest.approx(2 / 3) and row.mean_notes == pytest.approx(6 / 3) and row.mean_tokens == pytest.approx(36 / 3)
    text = ValidityReport([row], {"max_length": 64}).to_markdown()
    assert "| unconstrained | 3 | 66.7% | 66.7% | 0.0185 / 0.0556 | 66.7% | 2.0 | 12.0 |" in text and "max_length=64" in text
    with pytest.raises(ModelInputError, match="no decoded sequences"):
        validity_row("empty", [])


class _RollGenerator:
    """Stands in for a piano-roll generator: a generate() but no token vocabulary."""

    def generate(self, condition=None, num_samples=1, seed=0):
        return np.zeros((num_samples, 4, 8), np.float32)


def test_token_validity_refuses_a_piano_roll_generator():
    with pytest.raises(ModelInputError, match="token generator"):
        token_validity(_RollGenerator())


class _FixedTokenGenerator:
    """A token generator that returns the same grammatical sequence for every request, recording the settings."""

    def __init__(self, vocab):
        self.vocabulary, self.requests = vocab, []

    def prompt_ids(self, *args, **kwargs):
        return np.asarray([self.vocabulary.bos_id, self.vocabulary.separator_id("midi")], np.int32)

    def generate(self, num_samples=1, constrained=False, **kwargs):
        self.requests.append(constrained)
        return np.stack([_sequence(self.vocabulary, _valid_tokens(self.vocabulary))] * num_samples)


def test_token_validity_takes_one_setting_as_a_bool(vocab):
    """``constrained=True`` (as generate spells it) measures that setting alone, not a TypeError."""
    model = _FixedTokenGenerator(vocab)
    report = token_validity(model, colours=["Red", "Blue"], samples_per_colour=2, constrained=True)
    assert [r.label for r in report.rows] == ["constrained"] and model.requests == [True, True]
    assert report.row("constrained").sequences == 4 and report.row("constrained").valid == 1.0
    both = token_validity(model, colours=["Red"], samples_per_colour=1)
    assert [r.label for r in both.rows] == ["constrained", "unconstrained"] and model.requests[2:] == [True, False]
