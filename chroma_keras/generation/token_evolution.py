"""Evolutionary search over a token generator's sequences (the GPT), bar by bar.

:class:`TokenSearch` plugs into :func:`~chroma_keras.generation.evolution.run_evolution` like the
latent and resampling searches. A genome is one token sequence: the condition prefix (up to
``<sep_midi>``), the segment's REMI tokens and ``<eos>`` when it ended.

* generation 0 samples ``population`` sequences for the target (constrained decoding by default);
* **mutation** regenerates a random run of 1 to ``mutation_bars`` bars of a parent by infilling
  (:func:`~chroma_keras.generation.infilling.infill_ids`): the model sees the bars before and after
  the run and writes exactly as many new bars; every other bar keeps the parent's tokens, so it
  plays note for note as before;
* **crossover** (probability ``crossover_rate``) takes bars ``0 .. k-1`` of one parent and bars
  ``k ..`` of the other, cut at a bar boundary ``k`` both share, so every bar keeps its place in
  time. A child miditok finds ungrammatical (``tokens_errors`` > 0) or longer than the
  generation's ``max_length`` is dropped, and the first parent is mutated instead;
* :meth:`TokenSearch.realize` decodes the sequences and draws them on the scorer's piano-roll grid
  with :func:`~chroma_keras.generation.token_midi.sequence_rolls`, as ``evaluate-generation`` does.

Each mutation is one ``generate`` call with its own prompt, so a generation costs about
``population - keep`` short decodes: slower per candidate than decoding a batch of VAE latents.

Example:

>>> from chroma_keras.generation.evolution import EvolutionSettings, evolve
>>> result = evolve(gpt, scorer, "Green", EvolutionSettings(population=16, keep=2, generations=4))  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np

from chroma_keras.errors import ModelInputError
from chroma_keras.generation.token_midi import CONSTRAINED_BY_DEFAULT


class TokenSearch:
    """Genomes are token sequences of a token generator; children are infilled or spliced at bars.

    Args:
        model: a token generator (``ChromaticGPT``) whose vocabulary has the infill tokens.
        condition: the target (a colour, per-axis dict or ``"future,place,forgotten"``).
        roll_spec: the grid candidates are drawn on for the fitness (the scorer's
            :class:`~chroma_keras.preprocessing.pianoroll.PianoRollSpec`).
        constrained: decode (and infill) under REMI's grammar.
        **generate_kwargs: sampling arguments of ``generate`` (``sampling``, ``max_length``,
            ``temperature``, ``top_k``, ``top_p``...), used for generation 0 and for infilling.

    Raises:
        ModelInputError: ``model`` is not a token generator or cannot infill (no ``<mask>`` /
            ``<infill>`` tokens, no REMI ``Bar``).

    Example:
    >>> search = TokenSearch(gpt, "Green", PianoRollSpec.from_config(scorer.preset_config), max_length=256)  # doctest: +SKIP
    >>> candidates, log = run_evolution(search, ChromaticFitness(scorer, "Green", search.roll_spec), settings)  # doctest: +SKIP
    """

    kind = "tokens"

    def __init__(self, model, condition, roll_spec, constrained: bool = CONSTRAINED_BY_DEFAULT, **generate_kwargs):
        from chroma_keras.generation.infilling import infill_tokens
        from chroma_keras.generation.token_midi import is_token_generator

        if not is_token_generator(model):
            raise ModelInputError(f"TokenSearch needs a token generator (a ChromaticGPT). Received: {type(model).__name__}")
        self.model, self.condition, self.roll_spec = model, condition, roll_spec
        self.constrained = bool(constrained)
        self.tokens = infill_tokens(model.vocabulary)
        self.generate_kwargs = dict(generate_kwargs)
        limit = generate_kwargs.get("max_length")
        self.max_length = min(int(model.max_length if limit is None else limit), model.max_sequence_length)
        # A FIM prompt is the genome minus the middle plus 2 markers, and the model ends the middle with
        # <infill_end>: decoding up to max_length + 2 keeps every child within max_length tokens.
        self.infill_length = min(self.max_length + 2, model.max_sequence_length)
        self.infill_kwargs = {k: v for k, v in generate_kwargs.items() if k not in ("max_length", "prompt")}

    # --- genomes ------------------------------------------------------------------------------

    def parts(self, genome):
        """``(prefix, midi_ids, ended)`` of a genome: ids up to ``<sep_midi>``, its REMI ids, and whether it holds ``<eos>``."""
        genome = np.asarray(genome, np.int32)
        separators = np.flatnonzero(genome == self.tokens.separator)
        if separators.size == 0:
            raise ModelInputError("a token genome holds <sep_midi> before its MIDI tokens.")
        prefix = genome[: separators[0] + 1]
        rest = genome[separators[0] + 1 :]
        ended = bool(np.any(rest == self.tokens.eos))
        if ended:
            rest = rest[: int(np.argmax(rest == self.tokens.eos))]
        midi = rest[self.model.vocabulary.range_mask("midi")[rest]]
        return prefix, midi.astype(np.int32), ended

    def join(self, prefix, midi_ids, ended: bool) -> np.ndarray:
        """The genome of a prefix, REMI ids and an end flag (the inverse of :meth:`parts`)."""
        tail = [self.tokens.eos] if ended else []
        return np.concatenate([prefix, midi_ids, tail]).astype(np.int32)

    def bars(self, genome) -> int:
        """How many bars a genome holds."""
        from chroma_keras.generation.infilling import bar_starts

        return len(bar_starts(self.parts(genome)[1], self.tokens.bar))

    @staticmethod
    def _objects(rows) -> np.ndarray:
        out = np.empty(len(rows), dtype=object)
        for i, row in enumerate(rows):
            out[i] = np.asarray(row, np.int32)
        return out

    def _strip(self, row) -> np.ndarray:
        row = np.asarray(row, np.int32)
        return row[row != self.tokens.pad]

    # --- the search protocol ------------------------------------------------------------------

    def sample(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """``count`` fresh sequences for the target (an object array of 1-D int32 genomes)."""
        ids = self.model.generate(
            condition=self.condition,
            num_samples=int(count),
            seed=int(rng.integers(0, 2**31 - 1)),
            constrained=self.constrained,
            **self.generate_kwargs,
        )
        return self._objects([self._strip(row) for row in ids])

    def initial(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """Generation 0: ``count`` sampled sequences."""
        return self.sample(count, rng)

    def mutate(self, genome, rng: np.random.Generator, max_bars: int) -> np.ndarray:
        """Regenerate a random run of 1 to ``max_bars`` bars of ``genome`` by infilling.

        Every bar outside the run keeps its tokens. A genome without bars is replaced by a fresh
        sample; one with no room left to infill (its kept bars fill ``max_length``) is copied.
        """
        from chroma_keras.generation.infilling import NUM_MARKERS, infill_ids, split_bars

        prefix, midi, ended = self.parts(genome)
        count = self.bars(genome)
        if count == 0:
            return self.sample(1, rng)[0]
        width = int(rng.integers(1, min(int(max_bars), count) + 1))
        start = int(rng.integers(0, count - width + 1))
        before, middle, after = split_bars(midi, (start, start + width), self.tokens.bar)
        room = self.infill_length - (len(prefix) + len(before) + len(after) + NUM_MARKERS - 1)
        if room < width + 1:
            return np.asarray(genome, np.int32).copy()
        rows = infill_ids(
            self.model,
            prefix,
            midi,
            (start, start + width),
            max_new_tokens=room,
            constrained=self.constrained,
            num_samples=1,
            seed=int(rng.integers(0, 2**31 - 1)),
            **self.infill_kwargs,
        )
        child = self._strip(rows[0])
        if not ended:
            # infill_ids ends every row with <eos>; a parent cut at max_length stays open-ended.
            child = child[:-1] if len(child) and child[-1] == self.tokens.eos else child
        return child

    def crossover(self, first, second, rng: np.random.Generator):
        """Bars ``0 .. k-1`` of ``first`` then bars ``k ..`` of ``second`` at a random shared boundary ``k``.

        Returns:
            the child genome, or None when the parents share no inner bar boundary, or the child is
            ungrammatical (miditok ``tokens_errors`` > 0) or longer than ``max_length``.
        """
        from chroma_keras.generation.infilling import bar_starts
        from chroma_keras.generation.token_midi import miditok_error_rate

        prefix, midi_a, _ = self.parts(first)
        _, midi_b, ended_b = self.parts(second)
        starts_a, starts_b = bar_starts(midi_a, self.tokens.bar), bar_starts(midi_b, self.tokens.bar)
        shared = min(len(starts_a), len(starts_b))
        if shared < 2:
            return None
        cut = int(rng.integers(1, shared))
        child = self.join(prefix, np.concatenate([midi_a[: starts_a[cut]], midi_b[starts_b[cut] :]]), ended_b)
        if len(child) > self.max_length or miditok_error_rate(self.model.vocabulary, child) > 0:
            return None
        return child

    def breed(self, genomes, fitness, count: int, rng: np.random.Generator, settings) -> np.ndarray:
        """``count`` children of tournament-selected parents: a crossover with probability
        ``settings.crossover_rate`` (when it gives a grammatical child), else a mutation of the first parent."""
        from chroma_keras.generation.evolution import tournament

        first = tournament(fitness, count, settings.tournament_size, rng)
        second = tournament(fitness, count, settings.tournament_size, rng)
        crossed = rng.random(count) < settings.crossover_rate
        children = []
        for a, b, cross in zip(first, second, crossed):
            child = self.crossover(genomes[a], genomes[b], rng) if cross else None
            children.append(self.mutate(genomes[a], rng, settings.mutation_bars) if child is None else child)
        return self._objects(children)

    def realize(self, genomes) -> np.ndarray:
        """The genomes drawn on ``roll_spec`` (an empty roll for a sequence that is not valid MIDI)."""
        from chroma_keras.generation.token_midi import sequence_rolls

        return sequence_rolls(self.model.vocabulary, list(genomes), self.roll_spec)[0]

    def midi(self, genome) -> bytes | None:
        """The Standard MIDI File a genome decodes to (None when it is not valid MIDI)."""
        from chroma_keras.generation.token_midi import decode_sequence

        return decode_sequence(self.model.vocabulary, np.asarray(genome, np.int32))["midi"]

    def describe(self, genome) -> dict:
        """The genome as JSON: its token ids (``model.to_midi`` decodes them) and its bar count."""
        return {"token_ids": [int(i) for i in np.asarray(genome)], "bars": self.bars(genome)}


__all__ = ["TokenSearch"]
