"""Constrained decoding for REMI: a logits mask that only lets grammatical MIDI tokens through.

REMI (with programs, one stream) follows a small grammar: ``Bar`` then ``Position``, an optional
``Tempo``, then notes ``Program Pitch Velocity Duration``, more notes or a new ``Position`` / ``Bar``.
miditok's decoder skips tokens that break it and its ``tokens_errors`` counts them, with two checks on
values besides types: a ``Position`` must move forward within a bar, and a pitch may sound only once per
position and program. :class:`RemiGrammar` applies the same rules before the choice, as a logits
processor for every strategy of :mod:`chroma_keras.generation.samplers`:

* inside the MIDI section (after the last ``<sep_midi>``) only MIDI tokens of a type that may follow the
  previous token's type keep their logits (the first MIDI token is a ``Bar``);
* ``Position`` tokens at or before the current position in the bar, and pitches already played at the
  current position by the current program, are masked; after a drum ``Program`` (-1) only ``PitchDrum``
  follows, after any other only ``Pitch``;
* ``<eos>`` may end the section after a complete note (``Duration``) or a ``Bar``; so may
  ``<sep_audio>`` when the vocabulary has audio tokens (the audio section then follows, kept in its
  codebook pattern by :class:`~chroma_keras.generation.audio_grammar.AudioPatternGrammar`).

So every decoded sequence has a token error rate of 0 under miditok's own count.

Example:

>>> import chroma_keras as ck
>>> model = ck.from_preset("gpt_remi_chromatic")
>>> ids = model.generate(prompt="Red", max_length=64, sampling="top_p", seed=0, constrained=True)
>>> model.to_midi(ids[0])["token_error_rate"]
0.0
"""

from __future__ import annotations

import numpy as np

from chroma_keras.errors import ModelInputError
from chroma_keras.generation.samplers import AllowedTokensProcessor

# Types after which <eos> may end the MIDI section.
_END_TYPES = ("Duration", "Bar")
_IGNORED_TYPES = ("PAD", "BOS", "EOS")
# steps_to_end of a token type from which no end type can be reached without a Bar.
UNREACHABLE_STEPS = 10**6


class RemiGrammar(AllowedTokensProcessor):
    """A logits processor ``f(sequences, logits) -> logits`` that masks ungrammatical REMI tokens.

    Args:
        vocabulary: a :class:`~chroma_keras.tokenizers.ChromaticVocabulary` with a REMI MIDI range.

    Example:
    >>> grammar = RemiGrammar(model.vocabulary)                            # doctest: +SKIP
    >>> ids = model.generate(prompt="Blue", logits_processors=[grammar])  # doctest: +SKIP
    """

    def __init__(self, vocabulary):
        spec = vocabulary.midi_spec
        if spec is None or spec.tokenization != "remi":
            raise ModelInputError(
                f"constrained decoding needs a vocabulary with REMI MIDI tokens. Received: midi={None if spec is None else spec.tokenization!r}"
            )
        self.vocabulary = vocabulary
        tokenizer = vocabulary.midi_tokenizer.miditok
        self.start, self.stop = vocabulary.ranges["midi"]
        size = self.stop - self.start
        names = [tokenizer[i] for i in range(size)]
        self.types = np.array([n.split("_")[0] for n in names], dtype=object)
        values = []
        for n in names:
            try:
                values.append(int(n.split("_", 1)[1]))
            except ValueError:
                values.append(-10**6)
        self.values = np.array(values)
        graph = tokenizer.tokens_types_graph
        self.type_masks = {}
        for kind in set(self.types):
            if kind in _IGNORED_TYPES:
                continue
            allowed = {t for t in graph.get(kind, ()) if t not in _IGNORED_TYPES}
            self.type_masks[kind] = np.isin(self.types, sorted(allowed))
        self.first_mask = self.types == "Bar"
        self.eos_id = vocabulary.eos_id
        self.separator = vocabulary.separator_id("midi")
        self.audio_separator = vocabulary.separator_id("audio") if vocabulary.audio_num_codebooks else None

    def allowed(self, sequence) -> np.ndarray | None:
        """Bool ``[vocabulary_size]`` of the tokens that may come next, or None outside a MIDI section."""
        sequence = np.asarray(sequence)
        separators = np.flatnonzero(sequence == self.separator)
        if separators.size == 0:
            return None
        midi = sequence[separators[-1] + 1 :] - self.start
        if midi.size and (midi.min() < 0 or midi.max() >= self.stop - self.start):
            return None  # the section holds non-MIDI tokens (ended, or written by hand): leave it alone
        out = np.zeros(self.vocabulary.vocabulary_size, bool)
        if midi.size == 0:
            out[self.start : self.stop] = self.first_mask
            return out
        kinds = self.types[midi]
        last = kinds[-1]
        mask = self.type_masks.get(last, np.zeros(len(self.types), bool)).copy()
        bars = np.flatnonzero(kinds == "Bar")
        bar_tokens = midi[bars[-1] :] if bars.size else midi
        bar_kinds = self.types[bar_tokens]
        positions = np.flatnonzero(bar_kinds == "Position")
        current_position = self.values[bar_tokens[positions[-1]]] if positions.size else -1
        mask &= ~((self.types == "Position") & (self.values <= current_position))
        if last == "Program":
            program = self.values[midi[-1]]
            mask &= self.types == ("PitchDrum" if program == -1 else "Pitch")
            # Pitches this program already played at the current position.
            since = bar_tokens[(positions[-1] + 1) if positions.size else 0 :]
            since_kinds = self.types[since]
            played, current = set(), None
            for token, kind in zip(since, since_kinds):
                if kind == "Program":
                    current = self.values[token]
                elif kind in ("Pitch", "PitchDrum") and current == program:
                    played.add(self.values[token])
            if played:
                mask &= ~(np.isin(self.values, sorted(played)) & np.isin(self.types, ["Pitch", "PitchDrum"]))
        if not mask.any():  # nothing grammatical left (e.g. every pitch used): fall back to the type rule
            mask = self.type_masks.get(last, self.first_mask)
        out[self.start : self.stop] = mask
        if last in _END_TYPES:
            out[self.eos_id] = True
            if self.audio_separator is not None:
                out[self.audio_separator] = True
        return out

    def steps_to_end(self) -> np.ndarray:
        """For each MIDI token, the fewest grammatical tokens after it, none of them a ``Bar``, until the
        section may end (after a complete note or a ``Bar``).

        What a length budget needs: after a token of this type, that many tokens finish the current bar's
        note before the section (or an infilled middle, which may not open another bar) can end.

        Returns:
            int64 ``[MIDI range size]``, indexed by MIDI id minus the range's start; 0 for the end types,
            :data:`UNREACHABLE_STEPS` for types that never reach one.

        Example:
        >>> steps = RemiGrammar(vocab).steps_to_end()  # doctest: +SKIP
        >>> int(steps[vocab.midi_tokenizer.miditok["Pitch_60"]])  # doctest: +SKIP
        2
        """
        graph = self.vocabulary.midi_tokenizer.miditok.tokens_types_graph
        # PAD / BOS / EOS may be followed by anything in miditok's graph; the grammar never writes them.
        graph = {
            kind: set(nexts) - set(_IGNORED_TYPES) - {"Bar"} for kind, nexts in graph.items() if kind not in _IGNORED_TYPES
        }
        steps = {kind: 0 for kind in graph if kind in _END_TYPES}
        changed = True
        while changed:
            changed = False
            for kind, nexts in graph.items():
                options = [steps[n] + 1 for n in nexts if n in steps]
                if options and min(options) < steps.get(kind, UNREACHABLE_STEPS):
                    steps[kind] = min(options)
                    changed = True
        return np.array([steps.get(kind, UNREACHABLE_STEPS) for kind in self.types], np.int64)
