"""Structured and free-text prompts of the GPT generator."""

import numpy as np
import pytest

from chroma_keras.errors import ModelInputError
from chroma_keras.generation.prompts import StructuredPrompt, parse_prompt, prompt_ids, resolve_prompt
from chroma_keras.tokenizers import ChromaticVocabulary


@pytest.mark.parametrize(
    "text, modes, levels, kind",
    [
        ("Generate a RED segment with high temporal complexity", "past/thing/known", {"temporal_complexity_score": 0.85}, None),
        ("a Violet piece, past / person / forgotten, low rebracketing", "past/person/forgotten", {"rebracketing_intensity": 0.15}, None),
        ("red", "past/thing/known", {}, None),
        ("Make an Indigo song", "-/-/known+forgotten", {}, None),
        ("colour Y with very high boundary fluidity and coverage medium", "future/place/imagined", {"boundary_fluidity_score": 0.95, "rebracketing_coverage": 0.5}, None),
        ("future, thing, known; causal rebracketing; rebracketing intensity 0.3", "future/thing/known", {"rebracketing_intensity": 0.3}, "causal"),
        ("Green with no temporal mode", "-/place/forgotten", {}, None),
        ("a Blue segment with moderate memory discrepancy and low ontological uncertainty.", "present/person/forgotten", {"memory_discrepancy_severity": 0.5, "ontological_uncertainty": 0.15}, None),
        ("the past", "past/-/-", {}, None),
    ],
)
def test_phrasings(text, modes, levels, kind):
    prompt = parse_prompt(text)
    assert prompt.condition.describe() == modes
    assert prompt.rebracketing == pytest.approx(levels)
    assert prompt.rebracketing_type == kind


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("a purple segment", "cannot read 'a purple segment' (at 'purple')"),
        ("Red with high temporal", "cannot read 'high temporal' (at 'temporal')"),
        ("Red, high", "'high' needs a score"),
        ("Red with temporal complexity", "'temporal complexity' needs a level"),
        ("red and blue", "names two colours (Red, Blue)"),
        ("Red with rebracketing 3", "must be in [0, 1]"),
        ("   ", "non-empty string"),
    ],
)
def test_errors_name_the_phrase(text, fragment):
    with pytest.raises(ModelInputError) as info:
        parse_prompt(text)
    assert fragment in str(info.value)


def test_errors_list_what_is_accepted():
    with pytest.raises(ModelInputError) as info:
        parse_prompt("a jazzy segment")
    message = str(info.value)
    for accepted in ("Violet", "forgotten", "very high", "temporal complexity", "'<type> rebracketing'"):
        assert accepted in message


def test_prompt_ids_layout():
    vocab = ChromaticVocabulary(midi={"tokenization": "remi"})
    ids = prompt_ids(parse_prompt("Generate a RED segment with high temporal complexity"), vocab)
    assert [vocab.token(i) for i in ids] == [
        "<bos>",
        "<temporal:past>",
        "<spatial:thing>",
        "<ontological:known>",
        "<temporal_complexity_score:6>",
        "<sep_midi>",
    ]
    assert ids.dtype == np.int32


def test_resolve_prompt_forms_and_overrides():
    assert resolve_prompt(None).condition.describe() == "-/-/-"
    structured = resolve_prompt({"condition": "Red", "rebracketing": {"rebracketing_intensity": 0.5}})
    assert structured.describe() == "past/thing/known; rebracketing_intensity=0.5"
    # A condition given next to a text prompt replaces the text's modes; levels merge.
    merged = resolve_prompt("Red with low coverage", condition="Violet", rebracketing_levels={"temporal_complexity_score": 1.0})
    assert merged.describe() == "present/person/known; rebracketing_coverage=0.15; temporal_complexity_score=1"
    novel = resolve_prompt(StructuredPrompt({"temporal": "future", "spatial": "thing", "ontological": "known"}))
    assert novel.condition.colour() is None


def test_structured_prompt_errors():
    with pytest.raises(ModelInputError, match="prompt condition"):
        StructuredPrompt("Purple")
    with pytest.raises(ModelInputError, match="Unknown rebracketing field"):
        StructuredPrompt("Red", {"complexity": 0.5})
    with pytest.raises(ModelInputError, match=r"\[0, 1\]"):
        StructuredPrompt("Red", {"rebracketing_intensity": 8.0})
    with pytest.raises(ModelInputError, match="rebracketing_type"):
        StructuredPrompt("Red", rebracketing_type="chaotic")
    with pytest.raises(ModelInputError, match="unknown keys"):
        resolve_prompt({"colour": "Red"})
    with pytest.raises(ModelInputError, match="prompt must be"):
        resolve_prompt(3.5)
