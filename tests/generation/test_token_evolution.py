"""Evolution of a token generator (GPT): mutation by infilling keeps the other bars, crossover splices
grammatical bars of both parents, the loop's best never falls and rises, and the evolve command."""

import csv
import json

import numpy as np
import pytest

import chroma_keras as ck
from chroma_keras.cli import main
from chroma_keras.errors import ModelInputError
from chroma_keras.generation.evolution import ChromaticFitness, EvolutionSettings, run_evolution, search_for
from chroma_keras.generation.infilling import bar_starts
from chroma_keras.generation.token_evolution import TokenSearch
from chroma_keras.generation.token_midi import miditok_error_rate, sequence_rolls
from chroma_keras.models.chromatic_gpt import ChromaticGPT
from chroma_keras.preprocessing.pianoroll import PianoRollSpec
from chroma_keras.tokenizers import ChromaticVocabulary

MIDI_SPEC = {"tokenization": "remi", "positions_per_beat": 4, "num_velocities": 8}
# 16 frames at 2 fps: 8 s, four 4/4 bars at 120 bpm.
SPEC = PianoRollSpec(lowest_pitch=24, num_pitches=72, frames_per_second=2, num_frames=16)
HIGH = 72  # the closed-form fitness counts the cells at or above this pitch
LOW_SONGS = [[[48, 52], [50], [55, 57, 59], [53]], [[60], [62, 64], [], [57, 59]], [[45], [47, 50], [52], [55, 43]]]


@pytest.fixture(scope="module")
def vocab():
    return ChromaticVocabulary(midi=MIDI_SPEC)


@pytest.fixture(scope="module")
def model(vocab):
    # Untrained: its infilled bars are random notes, which is all the tests need.
    return ChromaticGPT(vocab, hidden_dim=32, num_layers=2, num_heads=2, intermediate_dim=64, max_sequence_length=128,
                        max_length=100, dropout=0.0, seed=0)


def bars_ids(vocab, bars):
    """REMI ids of bars, each a list of pitches played on beats 1, 2, ... (an empty list: an empty bar)."""
    miditok = vocab.midi_tokenizer.miditok
    velocity = sorted(n for n in miditok.vocab if n.startswith("Velocity_"))[-1]
    duration = next(n for n in miditok.vocab if n.startswith("Duration_1.0"))
    names = []
    for pitches in bars:
        names.append("Bar_None")
        for k, pitch in enumerate(pitches):
            names += [f"Position_{4 * k}", "Program_0", f"Pitch_{pitch}", velocity, duration]
    return np.array([vocab.ranges["midi"][0] + miditok[n] for n in names], np.int32)


def genome(model, bars, condition="Red"):
    return np.concatenate([model.prompt_ids(condition=condition), bars_ids(model.vocabulary, bars), [model.vocabulary.eos_id]]).astype(np.int32)


def bar_runs(search, ids):
    """A genome's bars, each its REMI ids."""
    _, midi, _ = search.parts(ids)
    starts = list(bar_starts(midi, search.tokens.bar)) + [len(midi)]
    return [tuple(midi[a:b]) for a, b in zip(starts, starts[1:])]


def high_notes(rolls):
    return (np.asarray(rolls)[:, HIGH - SPEC.lowest_pitch :, :] > 0).sum(axis=(1, 2)).astype(np.float64)


def test_mutation_regenerates_one_run_of_bars_and_keeps_the_others_note_for_note(model, notes_by_bar):
    search = TokenSearch(model, "Red", SPEC, sampling="top_k", top_k=50, temperature=1.5, max_length=72)
    parent = genome(model, [[48, 52], [50], [55, 57, 59], [53], [60, 62]])
    parent_bars, parent_notes = bar_runs(search, parent), notes_by_bar(search.midi(parent))
    rng = np.random.default_rng(0)
    widths = []
    for _ in range(4):
        child = search.mutate(parent, rng, max_bars=2)
        assert len(child) <= 72
        child_bars = bar_runs(search, child)
        assert len(child_bars) == len(parent_bars)
        changed = [i for i, (a, b) in enumerate(zip(parent_bars, child_bars)) if a != b]
        # The changed bars are one run of at most 2 (a regenerated bar may, rarely, come out the same).
        assert not changed or changed[-1] - changed[0] < 2, changed
        widths.append(len(changed))
        assert miditok_error_rate(model.vocabulary, child) == 0.0  # constrained infilling
        child_notes = notes_by_bar(search.midi(child))
        for bar in range(len(parent_bars)):
            if bar not in changed:
                assert child_notes.get(bar) == parent_notes.get(bar), bar
        np.testing.assert_array_equal(child[: len(model.prompt_ids(condition="Red"))], model.prompt_ids(condition="Red"))
    assert max(widths) >= 1  # mutation does change something


def test_crossover_children_are_grammatical_bars_of_both_parents(model, notes_by_bar):
    search = TokenSearch(model, "Red", SPEC)
    first, second = genome(model, LOW_SONGS[0]), genome(model, [[70], [72, 74], [76], [77, 79], [81]])
    first_bars, second_bars = bar_runs(search, first), bar_runs(search, second)
    first_notes, second_notes = notes_by_bar(search.midi(first)), notes_by_bar(search.midi(second))
    rng = np.random.default_rng(0)
    cuts = set()
    for _ in range(12):
        child = search.crossover(first, second, rng)
        assert miditok_error_rate(model.vocabulary, child) == 0.0
        child_bars = bar_runs(search, child)
        cut = next(k for k in range(1, 4) if child_bars == first_bars[:k] + second_bars[k:])
        cuts.add(cut)
        notes = notes_by_bar(search.midi(child))
        assert all(notes.get(bar) == first_notes.get(bar) for bar in range(cut))
        assert all(notes.get(bar) == second_notes.get(bar) for bar in range(cut, len(second_bars)))
    assert cuts == {1, 2, 3}  # every boundary both parents share
    # A splice miditok finds ungrammatical (a note cut after its pitch), or too long, is refused.
    broken = np.concatenate([genome(model, [[60]])[:-3], bars_ids(model.vocabulary, [[62], [64]]), [model.vocabulary.eos_id]])
    assert miditok_error_rate(model.vocabulary, broken) > 0
    assert search.crossover(broken, second, rng) is None
    short = TokenSearch(model, "Red", SPEC, max_length=len(first) - 1)
    assert all(short.crossover(first, first, rng) is None for _ in range(3))
    assert search.crossover(genome(model, [[60]]), second, rng) is None  # one bar: no inner boundary


@pytest.mark.parametrize("seed", [0, 1])
def test_token_search_best_never_falls_and_rises_on_a_reachable_fitness(model, seed):
    """Parents hold only low notes (fitness 0); children's infilled bars can hold notes >= 72."""
    search = TokenSearch(model, "Red", SPEC, sampling="top_k", top_k=50, temperature=1.5, max_length=64)
    search.initial = lambda count, rng: search._objects([genome(model, LOW_SONGS[i % len(LOW_SONGS)]) for i in range(count)])
    settings = EvolutionSettings(population=4, keep=2, generations=2, crossover_rate=0.3, mutation_bars=2, seed=seed)
    candidates, log = run_evolution(search, high_notes, settings)
    best = [row["best"] for row in log]
    assert best[0] == 0.0 and all(later >= earlier for earlier, later in zip(best, best[1:])), best
    # Measured (population 5, 3 generations, seeds 0-5, torch): best 17-41 high cells after 3 generations.
    assert best[-1] > 0.0 and log[-1]["mean"] > 0.0, log
    top = candidates[0]
    assert top.fitness == best[-1] and high_notes(sequence_rolls(model.vocabulary, [top.genome], SPEC)[0])[0] == top.fitness


def test_token_settings_and_models_are_checked(model):
    with pytest.raises(ModelInputError, match=r"evolution setting mutation_bars must be an integer >= 1 \(command line: --mutation-bars\)"):
        EvolutionSettings(mutation_bars=0).validate()
    with pytest.raises(ModelInputError, match="roll_spec"):
        search_for(model, "Red")
    assert isinstance(search_for(model, "Red", roll_spec=SPEC), TokenSearch)
    with pytest.raises(ModelInputError, match="token generator"):
        TokenSearch(object(), "Red", SPEC)
    with pytest.raises(ModelInputError, match="evolve --scorer: needs a scorer with a MIDI encoder"):
        ChromaticFitness(model, "Red", SPEC)


# --- the evolve command on a saved GPT run ---------------------------------------------------



def test_evolve_command_on_a_gpt_writes_its_token_midi(tmp_path, capsys, tiny_gpt_overrides, tiny_scorer_overrides):
    import pretty_midi

    gpt_dir = str(ck.save_to_preset(ck.from_preset("gpt_remi_chromatic", **tiny_gpt_overrides), tmp_path / "gpt"))
    scorer_dir = str(ck.save_to_preset(ck.from_preset("scorer_midi_only", **tiny_scorer_overrides), tmp_path / "scorer"))
    out = tmp_path / "evolved"
    argv = ["evolve", "--generator", gpt_dir, "--scorer", scorer_dir, "--target", "Green", "--out", str(out)]
    assert main([*argv, "--population", "4", "--keep", "2", "--generations", "2", "--mutation-bars", "1", "--max-length", "40"]) == 0
    assert "best 2:" in capsys.readouterr().out
    with open(out / "fitness_log.csv") as handle:
        log = list(csv.DictReader(handle))
    best = [float(row["best"]) for row in log]
    assert [int(row["generation"]) for row in log] == [0, 1, 2] and all(b >= a for a, b in zip(best, best[1:]))
    index = json.loads((out / "index.json").read_text())
    assert index["settings"]["mutation_bars"] == 1 and index["settings"]["constrained"] is True
    assert index["settings"]["max_length"] == 40
    model, scorer = ck.from_preset(gpt_dir), ck.from_preset(scorer_dir)
    fitness = ChromaticFitness(scorer, "Green", PianoRollSpec.from_config(scorer.preset_config))
    for row in index["best"]:
        assert row["genome"]["search"] == "tokens" and len(row["genome"]["token_ids"]) <= 40
        ids = np.array(row["genome"]["token_ids"], np.int32)
        # The file is the token MIDI itself (not a re-quantised roll), and it reads back.
        data = (out / row["midi"]).read_bytes()
        assert data == model.to_midi(ids)["midi"]
        assert pretty_midi.PrettyMIDI(str(out / row["midi"])).instruments is not None and (out / row["image"]).is_file()
        # The recorded fitness is the scorer's on the genome drawn on its grid.
        rolls, _ = sequence_rolls(model.vocabulary, [ids], fitness.scorer_spec)
        np.testing.assert_allclose(fitness(rolls)[0], row["fitness"], atol=1e-5)
    # Bad input names the option.
    assert main([*argv, "--mutation-bars", "0"]) == 2
    assert "--mutation-bars" in capsys.readouterr().err
    assert main([*argv, "--num-steps", "5"]) == 2
    assert "--num-steps do not apply to a token generator" in capsys.readouterr().err
    assert main(["evolve", "--generator", gpt_dir, "--scorer", gpt_dir, "--target", "Green", "--population", "3", "--keep", "1",
                 "--out", str(out)]) == 2
    assert "evolve --scorer: needs a scorer with a MIDI encoder" in capsys.readouterr().err
