"""Evolutionary search for segments a scorer rates as a target chromatic mode.

The source project's evolutionary loop made 50 candidates, scored each and kept the
best 3. This module does that as a genetic algorithm with an actual fitness (the
scorer's :func:`~chroma_keras.scoring.chromatic_match` against the target), elitism,
tournament selection and a per-generation log:

* generation 0 is ``population`` candidates from the generator;
* each later generation keeps the ``keep`` fittest candidates unchanged (so the best
  fitness never falls) and fills the rest with children of tournament-selected parents;
* a child of the conditional VAE is a latent vector: uniform crossover of two parents'
  latents (with probability ``crossover_rate``) or a copy of one, then Gaussian mutation
  of scale ``mutation_scale`` (prior standard deviations);
* generators without a latent space to breed in (diffusion) resample: children are fresh
  samples for the target, each reproducible from its ``(seed, index)``.

The searches are small classes with ``initial`` / ``breed`` / ``realize``, so
:func:`run_evolution` is the same loop for every genome type (and is tested on a
closed-form fitness).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import pathlib
from typing import Callable, Sequence

import numpy as np

from chroma_keras import modes
from chroma_keras.data import keys
from chroma_keras.errors import ModelInputError
from chroma_keras.scoring import chromatic_match

LOG_FIELDS = ("generation", "best", "mean", "median", "worst", "new_candidates")


@dataclasses.dataclass(frozen=True)
class EvolutionSettings:
    """How the search runs.

    Attributes:
        population: candidates per generation.
        keep: elites carried unchanged into the next generation, and candidates written out.
        generations: rounds of breeding after the initial population (generation 0).
        mutation_scale: standard deviation of the Gaussian latent mutation, in prior units.
        crossover_rate: probability that a child mixes two parents (else it mutates one).
        tournament_size: candidates drawn per parent selection; the fittest of them breeds.
        seed: seeds the initial population, selection, crossover and mutation.
    """

    population: int = 50
    keep: int = 3
    generations: int = 8
    mutation_scale: float = 0.3
    crossover_rate: float = 0.5
    tournament_size: int = 3
    seed: int = 0

    def validate(self) -> "EvolutionSettings":
        """Return self, or raise ``ModelInputError`` naming the first bad setting."""
        checks = [
            ("population", self.population >= 2, "an integer >= 2"),
            ("keep", 1 <= self.keep < self.population, f"an integer in [1, population - 1 = {self.population - 1}]"),
            ("generations", self.generations >= 0, "an integer >= 0"),
            ("mutation_scale", self.mutation_scale >= 0, "a number >= 0"),
            ("crossover_rate", 0 <= self.crossover_rate <= 1, "a number in [0, 1]"),
            ("tournament_size", 1 <= self.tournament_size <= self.population, "an integer in [1, population]"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ModelInputError(f"evolution setting {name} must be {expected}. Received: {name}={getattr(self, name)!r}")
        return self


@dataclasses.dataclass
class Candidate:
    """One evaluated candidate: its genome, rendered piano roll, fitness and the generation it was born in."""

    genome: object
    roll: np.ndarray
    fitness: float
    generation: int


@dataclasses.dataclass
class EvolutionResult:
    """What a search found: the best candidates (fittest first) and the per-generation fitness log."""

    best: list
    log: list
    settings: EvolutionSettings
    target: object

    def log_table(self) -> str:
        """The fitness log as a Markdown table (one row per generation)."""
        return "\n".join([LOG_TABLE_HEADER, *(format_log_row(row) for row in self.log)])


LOG_TABLE_HEADER = "| generation | best | mean | median | worst | new |\n|---:|---:|---:|---:|---:|---:|"


def format_log_row(row: dict) -> str:
    """One generation of the fitness log as a Markdown table row (see ``LOG_TABLE_HEADER``)."""
    return (
        f"| {row['generation']} | {row['best']:.4f} | {row['mean']:.4f} | {row['median']:.4f} | "
        f"{row['worst']:.4f} | {row['new_candidates']} |"
    )


class ChromaticFitness:
    """Fitness of piano rolls: the scorer's chromatic match to a target (higher is better, in [0, 1]).

    Scorers that read piano rolls get the rolls placed on their grid (pitch rows padded or
    cropped); token scorers get each roll written as MIDI and tokenized.

    Args:
        scorer: a :class:`~chroma_keras.models.Scorer` with a MIDI encoder.
        target: a colour or per-axis condition (see :func:`chromatic_match`).
        roll_spec: the generator's :class:`~chroma_keras.preprocessing.pianoroll.PianoRollSpec`.
    """

    def __init__(self, scorer, target, roll_spec):
        from chroma_keras.preprocessing.pianoroll import PianoRollSpec

        encoder = getattr(scorer, "encoders", {}).get("midi")
        if encoder is None or not hasattr(scorer, "score"):
            raise ModelInputError(
                "evolve needs a scorer with a MIDI encoder (e.g. scorer_midi_only). "
                f"Received: {type(scorer).__name__} with encoders {sorted(getattr(scorer, 'encoders', {}))}"
            )
        chromatic_match({axis: np.full(3, 1 / 3) for axis in modes.AXES} | {"confidence": 1.0}, target)  # validates
        self.scorer, self.target, self.roll_spec = scorer, target, roll_spec
        self.reads_rolls = keys.PIANO_ROLL in encoder.input_keys
        self.scorer_spec = PianoRollSpec.from_config(scorer.preset_config or {})

    def __call__(self, rolls: np.ndarray) -> np.ndarray:
        if self.reads_rolls:
            from chroma_keras.evaluation.chromatic_consistency import fit_rolls_to_spec

            inputs = {keys.PIANO_ROLL: fit_rolls_to_spec(rolls, self.roll_spec, self.scorer_spec)}
        else:
            from chroma_keras.preprocessing.pianoroll import piano_roll_to_midi_bytes

            inputs = [piano_roll_to_midi_bytes(roll, self.roll_spec) for roll in rolls]
        return chromatic_match(self.scorer.score(inputs), self.target).astype(np.float64)


class LatentSearch:
    """Genomes are latent vectors of a conditional VAE, decoded under the target condition.

    Args:
        vae: a :class:`~chroma_keras.models.ConditionalVAE`.
        condition: the condition to decode under (the evolution target).
        temperature: prior standard deviation of the initial population (default: the preset's).
        **decode_kwargs: passed to ``vae.decode`` (``decoding``, ``threshold``, ``rebracketing``).
    """

    kind = "latent"

    def __init__(self, vae, condition, temperature=None, **decode_kwargs):
        self.vae, self.condition = vae, condition
        self.temperature = float(vae.temperature if temperature is None else temperature)
        self.decode_kwargs = decode_kwargs

    def initial(self, count: int, rng: np.random.Generator) -> np.ndarray:
        return (rng.standard_normal((count, self.vae.latent_dim)) * self.temperature).astype(np.float32)

    def breed(self, genomes, fitness, count: int, rng: np.random.Generator, settings: EvolutionSettings) -> np.ndarray:
        first = genomes[tournament(fitness, count, settings.tournament_size, rng)]
        second = genomes[tournament(fitness, count, settings.tournament_size, rng)]
        crossed = rng.random(count) < settings.crossover_rate
        mask = (rng.random(first.shape) < 0.5) & crossed[:, None]
        children = np.where(mask, second, first)
        children = children + rng.standard_normal(children.shape) * settings.mutation_scale * self.temperature
        return children.astype(np.float32)

    def realize(self, genomes) -> np.ndarray:
        return self.vae.decode(np.asarray(genomes, np.float32), self.condition, seed=0, **self.decode_kwargs)

    @staticmethod
    def describe(genome) -> dict:
        return {"latent": [round(float(v), 6) for v in np.asarray(genome)]}


class ResampleSearch:
    """Genomes are ``(seed, index)`` of a generator's ``generate`` call; children are fresh samples.

    Args:
        generator: any piano-roll generator with ``generate(condition, num_samples, seed, ...)``.
        condition: the condition to generate for (the evolution target).
        **generate_kwargs: passed to ``generate`` (``num_steps``, ``guidance_scale``...).
    """

    kind = "resample"

    def __init__(self, generator, condition, **generate_kwargs):
        self.generator, self.condition, self.generate_kwargs = generator, condition, generate_kwargs
        self._rolls: dict = {}

    def _sample(self, count: int, rng: np.random.Generator) -> np.ndarray:
        seed = int(rng.integers(0, 2**31 - 1))
        rolls = self.generator.generate(condition=self.condition, num_samples=count, seed=seed, **self.generate_kwargs)
        genomes = np.empty(count, dtype=object)
        for index, roll in enumerate(rolls):
            genomes[index] = (seed, index, count)
            self._rolls[genomes[index]] = roll
        return genomes

    def initial(self, count: int, rng: np.random.Generator) -> np.ndarray:
        return self._sample(count, rng)

    def breed(self, genomes, fitness, count: int, rng: np.random.Generator, settings: EvolutionSettings) -> np.ndarray:
        return self._sample(count, rng)

    def realize(self, genomes) -> np.ndarray:
        return np.stack([self._rolls[genome] for genome in genomes])

    @staticmethod
    def describe(genome) -> dict:
        seed, index, count = genome
        return {"seed": seed, "index_in_batch": index, "batch_size": count}


def tournament(fitness: np.ndarray, count: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``count`` parents, each the fittest of ``size`` candidates drawn at random."""
    draws = rng.integers(0, len(fitness), size=(count, size))
    return draws[np.arange(count), np.argmax(fitness[draws], axis=1)]


def run_evolution(search, fitness_fn: Callable, settings: EvolutionSettings, progress: Callable | None = None):
    """The generic loop: evaluate, keep the elites, breed the rest, log every generation.

    Args:
        search: an object with ``initial(count, rng)``, ``breed(genomes, fitness, count, rng,
            settings)`` and ``realize(genomes) -> rolls``.
        fitness_fn: rolls ``[n, ...]`` -> fitness ``[n]`` (higher is better).
        settings: :class:`EvolutionSettings`.
        progress: called with each generation's log row.

    Returns:
        ``(candidates, log)``: the last population as :class:`Candidate` fittest first, and
        one dict per generation with ``LOG_FIELDS``.
    """
    settings.validate()
    rng = np.random.default_rng(settings.seed)
    genomes = search.initial(settings.population, rng)
    rolls = np.asarray(search.realize(genomes))
    fitness = np.asarray(fitness_fn(rolls), np.float64)
    born = np.zeros(settings.population, np.int64)
    log = [_log_row(0, fitness, settings.population)]
    if progress:
        progress(log[-1])
    for generation in range(1, settings.generations + 1):
        elite = np.argsort(-fitness, kind="stable")[: settings.keep]
        children = search.breed(genomes, fitness, settings.population - settings.keep, rng, settings)
        child_rolls = np.asarray(search.realize(children))
        child_fitness = np.asarray(fitness_fn(child_rolls), np.float64)
        genomes = np.concatenate([genomes[elite], children])
        rolls = np.concatenate([rolls[elite], child_rolls])
        fitness = np.concatenate([fitness[elite], child_fitness])
        born = np.concatenate([born[elite], np.full(len(children), generation)])
        log.append(_log_row(generation, fitness, len(children)))
        if progress:
            progress(log[-1])
    order = np.argsort(-fitness, kind="stable")
    candidates = [Candidate(genomes[i], rolls[i], float(fitness[i]), int(born[i])) for i in order]
    return candidates, log


def _log_row(generation: int, fitness: np.ndarray, new: int) -> dict:
    return {
        "generation": generation,
        "best": float(fitness.max()),
        "mean": float(fitness.mean()),
        "median": float(np.median(fitness)),
        "worst": float(fitness.min()),
        "new_candidates": int(new),
    }


def search_for(generator, target, **generate_kwargs):
    """The search that fits a generator: latent breeding for a VAE, resampling for the others."""
    if hasattr(generator, "decode") and hasattr(generator, "latent_dim"):
        temperature = generate_kwargs.pop("temperature", None)
        return LatentSearch(generator, target, temperature=temperature, **generate_kwargs)
    if hasattr(generator, "generate") and hasattr(generator, "roll_spec"):
        return ResampleSearch(generator, target, **generate_kwargs)
    raise ModelInputError(
        "evolve needs a piano-roll generator (a cvae_chromatic or diffusion run). "
        f"Received: {type(generator).__name__}"
    )


def evolve(generator, scorer, target, settings: EvolutionSettings | None = None, progress=None, **generate_kwargs) -> EvolutionResult:
    """Search a generator's output for segments the scorer rates as ``target``.

    Args:
        generator: a ``ConditionalVAE`` (latents are bred) or another piano-roll generator
            such as ``PianoRollDiffusion`` (candidates are resampled).
        scorer: a scorer with a MIDI encoder; fitness is its chromatic match to ``target``.
        target: a colour (``"Green"``) or per-axis condition (``"future,place,forgotten"``,
            ``{"temporal": "future"}``); the generator is conditioned on it too.
        settings: :class:`EvolutionSettings` (defaults: population 50, keep 3, 8 generations).
        progress: called with each generation's log row.
        **generate_kwargs: passed to the generator (``num_steps`` for diffusion,
            ``decoding`` / ``temperature`` for the VAE).

    Returns:
        :class:`EvolutionResult` with the ``keep`` best candidates and the fitness log.

    Raises:
        ModelInputError: bad settings, a generator or scorer of the wrong kind.
        LabelError: an unknown target.
    """
    settings = (settings or EvolutionSettings()).validate()
    search = search_for(generator, target, **generate_kwargs)
    fitness = ChromaticFitness(scorer, target, generator.roll_spec())
    candidates, log = run_evolution(search, fitness, settings, progress)
    best = candidates[: settings.keep]
    for candidate in best:
        candidate.genome = {"search": search.kind, **search.describe(candidate.genome)}
    return EvolutionResult(best=best, log=log, settings=settings, target=target)


def write_evolution(result: EvolutionResult, generator, out_dir, audio: str | None = None, sample_rate: int = 22050, extra: dict | None = None) -> pathlib.Path:
    """Write the best candidates (MIDI, PNG, optional WAV), ``fitness_log.csv`` and ``index.json``.

    Args:
        result: what :func:`evolve` returned.
        generator: the generator (its ``to_midi`` writes the files).
        out_dir: output folder (created).
        audio: ``"auto"``, ``"fluidsynth"`` or ``"additive"`` to render audio; None for none.
        sample_rate: audio rate in Hz.
        extra: more settings for the index (e.g. the runs used).

    Returns:
        the path of ``index.json``.
    """
    from chroma_keras.generation.sample_files import piano_roll_image

    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "fitness_log.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=LOG_FIELDS)
        writer.writeheader()
        writer.writerows(result.log)
    rolls = np.stack([candidate.roll for candidate in result.best])
    midi_paths = generator.to_midi(rolls, out, prefix="best")
    rows = []
    for rank, (candidate, midi_path) in enumerate(zip(result.best, midi_paths), start=1):
        row = {
            "rank": rank,
            "fitness": round(candidate.fitness, 6),
            "generation": candidate.generation,
            "midi": midi_path.name,
            "image": piano_roll_image(candidate.roll, midi_path.with_suffix(".png")).name,
            "audio": "",
            "genome": candidate.genome,
        }
        if audio is not None:
            import soundfile

            from chroma_keras.preprocessing.synthesis import render_midi

            wave = render_midi(midi_path.read_bytes(), sample_rate=sample_rate, backend=audio, source=str(midi_path))
            soundfile.write(midi_path.with_suffix(".wav"), wave, sample_rate)
            row["audio"] = midi_path.with_suffix(".wav").name
        rows.append(row)
    target = result.target if isinstance(result.target, str) else json.dumps(result.target, sort_keys=True)
    index = {
        "target": target,
        "settings": dataclasses.asdict(result.settings) | dict(extra or {}),
        "fitness_log": result.log,
        "best": rows,
    }
    path = out / "index.json"
    path.write_text(json.dumps(index, indent=2) + "\n")
    return path


__all__: Sequence[str] = (
    "EvolutionSettings",
    "EvolutionResult",
    "Candidate",
    "ChromaticFitness",
    "LatentSearch",
    "ResampleSearch",
    "evolve",
    "format_log_row",
    "run_evolution",
    "tournament",
    "write_evolution",
)
