"""Bar-level infilling (fill-in-the-middle) for the GPT generator.

A plain GPT sequence holds a segment's REMI tokens in order::

    <bos> <modes> [<rebracketing>] <sep_midi> BEFORE MIDDLE AFTER [<eos>]

where ``BEFORE``, ``MIDDLE`` and ``AFTER`` are runs of whole bars (each bar starts at a ``Bar``
token). Its fill-in-the-middle ("FIM") form moves the middle bars to the end, after both sides
(Bavarian et al., 2022, "prefix-suffix-middle")::

    <bos> <modes> [<rebracketing>] <sep_midi> BEFORE <mask> AFTER <infill> MIDDLE <infill_end> [<eos>]

``<sep_midi>`` opens the bars before, ``<mask>`` marks the hole and opens the bars after, ``<infill>``
opens the missing bars and ``<infill_end>`` closes them (the tokens
:mod:`chroma_keras.tokenizers.chromatic_vocabulary` reserves for this). A model trained on both
forms (:class:`~chroma_keras.training.gpt_batches.GPTTokenBatches` with ``infill_rate > 0``) writes
a middle that fits both sides when prompted with everything up to ``<infill>``;
:func:`infill_midi` (``ChromaticGPT.infill``) builds that prompt from a MIDI file, decodes the
middle under :class:`InfillConstraint` (exactly as many bars as were cut, then ``<infill_end>``)
and splices it back between the untouched bars.

Bars are numbered from 0 and a span ``(start, end)`` is half-open, like a Python slice: bars
5–8 of a score, counted from 1 as musicians do, are ``bars=(4, 8)``.

Example:

>>> tokens = infill_tokens(vocabulary)                                       # doctest: +SKIP
>>> before, middle, after = split_bars(midi_ids, (1, 3), tokens.bar)         # doctest: +SKIP
>>> fim = fim_sequence(prefix, before, middle, after, tokens, ended=True, eos_id=vocabulary.eos_id)  # doctest: +SKIP
>>> bool((from_fim(fim, tokens) == np.concatenate([prefix, midi_ids, [vocabulary.eos_id]])).all())  # doctest: +SKIP
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chroma_keras.errors import ModelInputError
from chroma_keras.generation.samplers import AllowedTokensProcessor

# <hole / start of the bars after>, <start of the missing bars>, <end of the missing bars>.
HOLE_TOKEN, FILL_TOKEN, FILL_END_TOKEN = "<mask>", "<infill>", "<infill_end>"
BAR_TOKEN = "Bar_None"
# Marker tokens a FIM sequence adds to its plain form.
NUM_MARKERS = 3


@dataclass(frozen=True)
class InfillTokens:
    """The ids infilling needs.

    Args:
        hole: ``<mask>``, between the bars before and the bars after.
        fill: ``<infill>``, before the missing bars.
        fill_end: ``<infill_end>``, after them.
        bar: REMI's ``Bar`` token (in the vocabulary's MIDI range).
        separator: ``<sep_midi>``.
        eos: ``<eos>``.
        pad: ``<pad>``.
    """

    hole: int
    fill: int
    fill_end: int
    bar: int
    separator: int
    eos: int
    pad: int


def infill_tokens(vocabulary) -> InfillTokens:
    """The infilling ids of a :class:`~chroma_keras.tokenizers.ChromaticVocabulary`.

    Raises:
        ModelInputError: the vocabulary has no ``<mask>`` / ``<infill>`` / ``<infill_end>`` tokens,
            no MIDI range, or a MIDI tokenizer without a ``Bar`` token.
    """
    specials = {vocabulary.token(i) for i in range(*vocabulary.ranges["special"])}
    missing = [t for t in (HOLE_TOKEN, FILL_TOKEN, FILL_END_TOKEN) if t not in specials]
    if missing:
        raise ModelInputError(
            f"infilling needs the vocabulary's {HOLE_TOKEN}, {FILL_TOKEN} and {FILL_END_TOKEN} tokens; this vocabulary "
            f"lacks {missing}. Use a ChromaticVocabulary whose special tokens include them."
        )
    if vocabulary.midi_tokenizer is None:
        raise ModelInputError("infilling needs a vocabulary with MIDI tokens; build it with midi={'tokenization': 'remi', ...}.")
    miditok = vocabulary.midi_tokenizer.miditok
    if BAR_TOKEN not in miditok.vocab:
        raise ModelInputError(
            f"infilling cuts at REMI bars; the vocabulary's MIDI tokenizer ({vocabulary.midi_spec.tokenization}) has no "
            f"{BAR_TOKEN!r} token. Use tokenization 'remi'."
        )
    return InfillTokens(
        hole=vocabulary.token_id(HOLE_TOKEN),
        fill=vocabulary.token_id(FILL_TOKEN),
        fill_end=vocabulary.token_id(FILL_END_TOKEN),
        bar=vocabulary.ranges["midi"][0] + int(miditok.vocab[BAR_TOKEN]),
        separator=vocabulary.separator_id("midi"),
        eos=vocabulary.eos_id,
        pad=vocabulary.pad_id,
    )


# --- cutting and rearranging -----------------------------------------------------------------


def bar_starts(midi_ids, bar_id: int) -> np.ndarray:
    """Indices of the ``Bar`` tokens in a run of MIDI ids: bar ``i`` starts at ``bar_starts[i]``."""
    return np.flatnonzero(np.asarray(midi_ids) == bar_id)


def split_bars(midi_ids, bars, bar_id: int, source: str = "midi"):
    """Cut MIDI ids into the bars before ``bars``, the bars in it and the bars after.

    Args:
        midi_ids: REMI ids (vocabulary ids) of a segment.
        bars: ``(start, end)``, 0-based and half-open: bars ``start .. end - 1`` form the middle.
        bar_id: the ``Bar`` token's id.
        source: name of the input in error messages.

    Returns:
        ``(before, middle, after)`` int32 arrays; their concatenation is ``midi_ids``.

    Raises:
        ModelInputError: ``bars`` is not two integers with ``0 <= start < end <= number of bars``,
            or the segment has no bars.
    """
    midi_ids = np.asarray(midi_ids, np.int32)
    try:
        start, end = bars
    except (TypeError, ValueError):
        raise ModelInputError(f"bars must be a pair (start, end) of bar indices. Received: bars={bars!r}") from None
    if not all(isinstance(b, (int, np.integer)) and not isinstance(b, bool) for b in (start, end)):
        raise ModelInputError(f"bars must be two integers (start, end). Received: bars={bars!r}")
    starts = bar_starts(midi_ids, bar_id)
    count = len(starts)
    if count == 0:
        raise ModelInputError(f"{source}: has too few bars to infill (0 bars; it needs at least 1).")
    if start >= end:
        raise ModelInputError(
            f"bars=({start}, {end}): start must be smaller than end (bars are 0-based and end is exclusive: bars 5-8 "
            f"counted from 1 are bars=(4, 8))."
        )
    if start < 0 or end > count:
        raise ModelInputError(
            f"bars=({start}, {end}) is out of range: {source} has {count} bars, so 0 <= start < end <= {count} "
            f"(0-based, end exclusive)."
        )
    cut_start = starts[start]
    cut_end = starts[end] if end < count else len(midi_ids)
    return midi_ids[:cut_start], midi_ids[cut_start:cut_end], midi_ids[cut_end:]


def fim_sequence(prefix, before, middle, after, tokens: InfillTokens, ended: bool, eos_id: int | None = None) -> np.ndarray:
    """The FIM form ``prefix BEFORE <mask> AFTER <infill> MIDDLE <infill_end> [<eos>]`` (int32).

    Args:
        prefix: ids up to and including ``<sep_midi>``.
        before, middle, after: the three runs of bars (:func:`split_bars`).
        tokens: :func:`infill_tokens`.
        ended: append ``<eos>`` (the segment ended there, as a plain sequence would).
        eos_id: defaults to ``tokens.eos``.
    """
    eos = [tokens.eos if eos_id is None else eos_id] if ended else []
    parts = [prefix, before, [tokens.hole], after, [tokens.fill], middle, [tokens.fill_end], eos]
    return np.concatenate([np.asarray(p, np.int32).ravel() for p in parts]).astype(np.int32)


def fim_prompt(prefix, before, after, tokens: InfillTokens) -> np.ndarray:
    """What the model continues to write the middle: ``prefix BEFORE <mask> AFTER <infill>`` (int32)."""
    parts = [prefix, before, [tokens.hole], after, [tokens.fill]]
    return np.concatenate([np.asarray(p, np.int32).ravel() for p in parts]).astype(np.int32)


def from_fim(ids, tokens: InfillTokens) -> np.ndarray:
    """The plain sequence of a FIM sequence: ``prefix BEFORE MIDDLE AFTER [<eos>]`` (inverse of :func:`fim_sequence`).

    Trailing ``<pad>`` is dropped; a sequence without the three markers raises ``ModelInputError``.
    """
    ids = np.asarray(ids, np.int32).ravel()
    positions = []
    for marker, name in ((tokens.hole, HOLE_TOKEN), (tokens.fill, FILL_TOKEN), (tokens.fill_end, FILL_END_TOKEN)):
        found = np.flatnonzero(ids == marker)
        if found.size != 1:
            raise ModelInputError(f"a FIM sequence holds each marker once; {name} (id {marker}) appears {found.size} times.")
        positions.append(int(found[0]))
    hole, fill, fill_end = positions
    if not hole < fill < fill_end:
        raise ModelInputError("a FIM sequence holds <mask>, <infill> and <infill_end> in this order.")
    tail = ids[fill_end + 1 :]
    tail = tail[tail != tokens.pad]
    return np.concatenate([ids[:hole], ids[fill + 1 : fill_end], ids[hole + 1 : fill], tail]).astype(np.int32)


def fim_training_example(prefix, midi_ids, ended: bool, max_sequence_length: int, rng, tokens: InfillTokens):
    """A random FIM training sequence of one segment, or None when it has no whole bar to cut out.

    The MIDI ids are first cut so the FIM form fits ``max_sequence_length`` (a cut segment gets no
    ``<eos>``); the middle is a uniformly drawn run of whole bars: its first bar is drawn among the
    complete bars, its last among those from there on. A bar is complete when another bar follows
    it or the segment ended, so a cut-off last bar never becomes the middle (the model must not
    learn that a middle can stop mid-bar).

    Args:
        prefix: ids up to and including ``<sep_midi>``.
        midi_ids: the segment's REMI ids (vocabulary ids).
        ended: the segment ends after ``midi_ids`` (its plain sequence ends with ``<eos>``).
        max_sequence_length: longest sequence.
        rng: a ``numpy.random.Generator``.
        tokens: :func:`infill_tokens`.

    Returns:
        int32 ids of at most ``max_sequence_length``, or None.
    """
    midi_ids = np.asarray(midi_ids, np.int32)
    room = int(max_sequence_length) - len(prefix) - NUM_MARKERS - (1 if ended else 0)
    if room <= 0:
        return None
    if len(midi_ids) > room:
        midi_ids, ended = midi_ids[: int(max_sequence_length) - len(prefix) - NUM_MARKERS], False
    count = len(bar_starts(midi_ids, tokens.bar))
    complete = count if ended else count - 1
    if complete < 1:
        return None
    start = int(rng.integers(0, complete))
    end = int(rng.integers(start + 1, complete + 1))
    before, middle, after = split_bars(midi_ids, (start, end), tokens.bar)
    return fim_sequence(prefix, before, middle, after, tokens, ended)


def fim_middle(row, tokens: InfillTokens, num_bars: int) -> np.ndarray:
    """The middle bars a FIM generation wrote: the MIDI tokens after ``<infill>``, up to ``<infill_end>``.

    A middle cut short (no ``<infill_end>``, e.g. decoding without the bar constraint ran out of room)
    is padded with empty bars, one past ``num_bars`` bars is cut before its extra ``Bar``, so the
    bars after always land where they were.
    """
    row = np.asarray(row, np.int32).ravel()
    fills = np.flatnonzero(row == tokens.fill)
    middle = row[fills[-1] + 1 :] if fills.size else row[:0]
    stops = np.flatnonzero(np.isin(middle, [tokens.fill_end, tokens.eos, tokens.pad]))
    if stops.size:
        middle = middle[: stops[0]]
    starts = bar_starts(middle, tokens.bar)
    if len(starts) > num_bars:
        middle = middle[: starts[num_bars]]
    missing = num_bars - min(len(starts), num_bars)
    return np.concatenate([middle, np.full(missing, tokens.bar, np.int32)]).astype(np.int32)


# --- the decoding constraint ----------------------------------------------------------------


class InfillConstraint(AllowedTokensProcessor):
    """A logits processor that makes a FIM generation write exactly ``num_bars`` bars, then stop.

    After the last ``<infill>`` of a row: the first token is a ``Bar``; only MIDI tokens follow;
    ``<infill_end>`` is allowed only once ``num_bars`` bars are open (and, with the grammar, where
    :class:`~chroma_keras.generation.remi_grammar.RemiGrammar` would allow ``<eos>``, i.e. after a
    complete note or a ``Bar``), a further ``Bar`` never; after ``<infill_end>`` only ``<eos>``.
    With ``grammar=True`` the middle also follows REMI's grammar (the same rules as
    ``generate(constrained=True)``), so the spliced sequence decodes with no token errors.

    The room left before ``max_length`` is budgeted: a token is allowed only if the bars still
    missing (and, with the grammar, the tokens needed to finish the current note) still fit after
    it, so a middle always ends with ``<infill_end>`` in time.

    Args:
        vocabulary: a :class:`~chroma_keras.tokenizers.ChromaticVocabulary` with REMI MIDI tokens.
        num_bars: bars the middle must hold (>= 1).
        max_length: length of the generated sequences, prompt included.
        grammar: also apply REMI's grammar to the middle.

    Example:
    >>> constraint = InfillConstraint(model.vocabulary, num_bars=4, max_length=512)   # doctest: +SKIP
    >>> ids = model.generate(prompt=fim_prompt_ids, logits_processors=[constraint])     # doctest: +SKIP
    """

    def __init__(self, vocabulary, num_bars: int, max_length: int, grammar: bool = True):
        from chroma_keras.generation.remi_grammar import RemiGrammar

        self.tokens = infill_tokens(vocabulary)
        if not (isinstance(num_bars, (int, np.integer)) and num_bars >= 1):
            raise ModelInputError(f"num_bars must be an integer >= 1. Received: num_bars={num_bars!r}")
        self.num_bars = int(num_bars)
        self.max_length = int(max_length)
        self.vocabulary_size = vocabulary.vocabulary_size
        self.midi_mask = vocabulary.range_mask("midi")
        self.grammar = RemiGrammar(vocabulary) if grammar else None
        # Tokens needed after a token of each id before a Bar (or <infill_end>) may follow.
        self.distance = np.zeros(self.vocabulary_size, np.int64)
        if grammar:
            start, stop = vocabulary.ranges["midi"]
            self.distance[start:stop] = self.grammar.steps_to_end()

    def allowed(self, sequence) -> np.ndarray | None:
        """Bool ``[vocabulary_size]`` of the tokens that may come next, or None outside a middle."""
        t = self.tokens
        sequence = np.asarray(sequence)
        fills = np.flatnonzero(sequence == t.fill)
        if fills.size == 0:
            return None
        middle = sequence[fills[-1] + 1 :]
        out = np.zeros(self.vocabulary_size, bool)
        if middle.size and middle[-1] == t.fill_end:
            out[t.eos] = True
            return out
        if np.isin(middle, [t.fill_end, t.eos, t.pad]).any():
            return None  # the row has ended
        count = int((middle == t.bar).sum())
        if self.grammar is not None:
            grammatical = self.grammar.allowed(np.concatenate([[t.separator], middle]))
            out[:] = self.midi_mask if grammatical is None else grammatical
            may_end = bool(out[t.eos]) and count > 0
            # Where the grammar would end the MIDI section (<eos>, or <sep_audio> with audio tokens), the
            # middle may end with <infill_end> instead (below); nothing but MIDI tokens goes in it.
            out &= self.midi_mask
        else:
            out[:] = self.midi_mask if middle.size else False
            out[t.bar] = True  # a middle opens with a Bar
            may_end = middle.size > 0
        out[t.bar] &= count < self.num_bars
        out[t.fill_end] = may_end and count == self.num_bars
        # Room budget: after this token, the missing Bars, the tokens to reach a Bar and <infill_end> must fit.
        room_after = self.max_length - len(sequence) - 1
        bars_after = self.num_bars - count - (np.arange(self.vocabulary_size) == t.bar)
        fits = self.distance + bars_after + 1 <= room_after
        fits[t.fill_end] = room_after >= 0
        budgeted = out & fits
        if budgeted.any():
            return budgeted
        if out.any():
            return out
        out[t.bar if count < self.num_bars else t.fill_end] = True
        return out


# --- the model-facing entry point -----------------------------------------------------------


def read_midi_bytes(midi, what: str = "midi"):
    """``(bytes, source name)`` of MIDI given as bytes or a path (``infill`` and ``continue_midi`` read their input with it).

    Args:
        midi: a Standard MIDI File as bytes, or the path of one.
        what: the input's name in errors and as the source name of bytes.

    Returns:
        ``(data, source)``: the file's bytes and the path (or ``what``) for later error messages.

    Raises:
        ModelInputError: an unreadable path, or neither bytes nor a path.

    Example:
    >>> read_midi_bytes(b"MThd...")
    (b'MThd...', 'midi')
    """
    import pathlib

    if isinstance(midi, (str, pathlib.Path)):
        try:
            return pathlib.Path(midi).read_bytes(), str(midi)
        except OSError as exc:
            raise ModelInputError(f"{midi}: cannot read the MIDI file ({exc}).") from exc
    if isinstance(midi, (bytes, bytearray)):
        return bytes(midi), what
    raise ModelInputError(f"{what} must be MIDI bytes or a path. Received: {type(midi).__name__}")


def infill_midi(model, midi, bars, prompt=None, condition=None, rebracketing=None, max_new_tokens=256, constrained=True, **generate_kwargs):
    """Regenerate bars ``[start, end)`` of a MIDI segment with a GPT, keeping every other bar.

    See :meth:`chroma_keras.models.ChromaticGPT.infill` (which calls this) for the arguments.

    Returns:
        int32 ``[num_samples, length]`` plain sequences ``prefix BEFORE NEW_MIDDLE AFTER <eos>``
        (``<pad>`` after a shorter row), ready for ``model.to_midi``.
    """
    vocab = model.vocabulary
    tokens = infill_tokens(vocab)
    data, source = read_midi_bytes(midi)
    prefix = model.prompt_ids(prompt, condition, rebracketing)
    if prefix[-1] != tokens.separator:
        raise ModelInputError("infill needs a MIDI prompt (its prefix must end with <sep_midi>).")
    given = vocab.encode_midi(data, source=source)
    return infill_ids(model, prefix, given, bars, max_new_tokens=max_new_tokens, constrained=constrained, source=source, **generate_kwargs)


def infill_ids(model, prefix, midi_ids, bars, max_new_tokens=256, constrained=True, source="midi", **generate_kwargs):
    """Regenerate bars ``[start, end)`` of a segment given as token ids, keeping every other token.

    :func:`infill_midi` calls this after encoding its MIDI; the evolutionary search
    (:mod:`chroma_keras.generation.token_evolution`) calls it on its genomes directly, so the kept
    bars are the parent's tokens themselves, not a re-encoding of its MIDI.

    Args:
        model: a ``ChromaticGPT`` whose vocabulary has the infill tokens.
        prefix: the prompt ids, ending with ``<sep_midi>``.
        midi_ids: the segment's REMI ids (vocabulary ids, no ``<eos>`` or padding).
        bars: ``(start, end)``, 0-based and half-open.
        max_new_tokens: the most tokens the new bars may take (``<infill_end>`` included).
        constrained: the new bars follow REMI's grammar.
        source: name of the segment in error messages.
        **generate_kwargs: sampling arguments of ``generate``.

    Returns:
        int32 ``[num_samples, length]`` plain sequences ``prefix BEFORE NEW_MIDDLE AFTER <eos>``
        (``<pad>`` after a shorter row).

    Raises:
        ModelInputError: see :meth:`chroma_keras.models.ChromaticGPT.infill`.

    Example:
    >>> rows = infill_ids(gpt, prefix, midi_ids, bars=(1, 2), max_new_tokens=40, seed=0)  # doctest: +SKIP
    """
    tokens = infill_tokens(model.vocabulary)
    prefix = np.asarray(prefix, np.int32).ravel()
    if prefix.size == 0 or prefix[-1] != tokens.separator:
        raise ModelInputError("infill needs a MIDI prompt (its prefix must end with <sep_midi>).")
    before, middle, after = split_bars(midi_ids, bars, tokens.bar, source=source)
    num_bars = int(bars[1]) - int(bars[0])
    fim = fim_prompt(prefix, before, after, tokens)
    if not (isinstance(max_new_tokens, (int, np.integer)) and not isinstance(max_new_tokens, bool) and max_new_tokens >= 1):
        raise ModelInputError(f"max_new_tokens must be an integer >= 1. Received: max_new_tokens={max_new_tokens!r}")
    max_length = min(len(fim) + int(max_new_tokens), model.max_sequence_length)
    # The smallest middle: num_bars empty bars and <infill_end>.
    if max_length - len(fim) < num_bars + 1:
        raise ModelInputError(
            f"{source}: the prefix ({len(prefix)} tokens), the kept bars ({len(before) + len(after)} REMI tokens) and "
            f"the infill markers leave room for {max(0, max_length - len(fim))} new tokens within "
            f"max_new_tokens={max_new_tokens} and max_sequence_length={model.max_sequence_length}; "
            f"{num_bars} bars need at least {num_bars + 1}. Pass a shorter segment or a larger max_new_tokens."
        )
    if generate_kwargs.get("max_length") is not None:
        raise ModelInputError("infill sets max_length from max_new_tokens; pass max_new_tokens instead.")
    generate_kwargs.pop("max_length", None)
    processors = [InfillConstraint(model.vocabulary, num_bars, max_length, grammar=bool(constrained))]
    processors += list(generate_kwargs.pop("logits_processors", ()))
    rows = model.generate(prompt=fim, max_length=max_length, logits_processors=processors, **generate_kwargs)
    spliced = [np.concatenate([prefix, before, fim_middle(row, tokens, num_bars), after, [tokens.eos]]) for row in rows]
    out = np.full((len(spliced), max(len(s) for s in spliced)), tokens.pad, np.int32)
    for i, row in enumerate(spliced):
        out[i, : len(row)] = row
    return out


__all__ = [
    "InfillConstraint",
    "InfillTokens",
    "bar_starts",
    "fim_middle",
    "fim_prompt",
    "fim_sequence",
    "fim_training_example",
    "from_fim",
    "infill_ids",
    "infill_midi",
    "infill_tokens",
    "split_bars",
]
