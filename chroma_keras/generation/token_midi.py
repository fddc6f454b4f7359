"""Generated token sequences as MIDI: what ``generate``, ``evaluate-generation`` and the validity metric share.

A *token generator* (:class:`~chroma_keras.models.ChromaticGPT`) returns token ids, not piano rolls.
:func:`generate_midi` samples sequences for a condition or a prompt and decodes each one on its own
with :func:`decode_sequence`, so one sequence miditok cannot decode is reported, not raised, and the
others still come back.

A sequence is **valid** when miditok decodes its MIDI section, the Standard MIDI File it writes reads
back (symusic), and it holds at least one note. Its **token error rate** is miditok's
``tokens_errors``: the share of MIDI tokens whose type cannot follow the previous token's, plus
positions that go back in time and repeated pitches at one position (0 for a grammatical sequence).

Example:

>>> import chroma_keras as ck
>>> from chroma_keras.generation.token_midi import generate_midi
>>> gpt = ck.from_preset("gpt_remi_chromatic")
>>> ids, decoded = generate_midi(gpt, condition="Red", num_samples=2, seed=0, max_length=64)
>>> [d["valid"] for d in decoded]  # doctest: +SKIP
[True, True]
"""

from __future__ import annotations

import numpy as np

from chroma_keras.errors import DataError, ModelInputError

# Token generators decode under REMI's grammar unless asked not to (generate_midi, write_samples, evolve, evaluate).
CONSTRAINED_BY_DEFAULT = True


def is_token_generator(model) -> bool:
    """True for a generator whose ``generate`` returns token ids that its vocabulary decodes to MIDI.

    Args:
        model: any model.

    Returns:
        whether ``model`` has a ``vocabulary`` with MIDI tokens and ``prompt_ids`` (a ``ChromaticGPT``).

    Example:
    >>> is_token_generator(ck.from_preset("gpt_remi_chromatic"))  # doctest: +SKIP
    True
    """
    vocabulary = getattr(model, "vocabulary", None)
    return callable(getattr(model, "prompt_ids", None)) and getattr(vocabulary, "midi_spec", None) is not None


def miditok_error_rate(vocabulary, midi_ids) -> float:
    """miditok's ``tokens_errors`` of MIDI tokens given in the vocabulary's id space.

    Args:
        vocabulary: a :class:`~chroma_keras.tokenizers.ChromaticVocabulary` with a MIDI tokenizer.
        midi_ids: ids in the vocabulary's ``midi`` range (others are ignored).

    Returns:
        errors / tokens in [0, 1]; 0 for no MIDI token.

    Example:
    >>> miditok_error_rate(gpt.vocabulary, gpt.vocabulary.encode_midi(open("a.mid", "rb").read()))  # doctest: +SKIP
    0.0
    """
    import miditok

    start, stop = vocabulary.ranges["midi"]
    ids = np.asarray(midi_ids).ravel()
    local = ids[(ids >= start) & (ids < stop)] - start
    local = local[local != vocabulary.midi_tokenizer.pad_id]
    if local.size == 0:
        return 0.0
    return float(vocabulary.midi_tokenizer.miditok.tokens_errors(miditok.TokSequence(ids=[int(i) for i in local])))


def decode_sequence(vocabulary, ids) -> dict:
    """Decode one generated sequence's MIDI section and say whether it is valid MIDI.

    Args:
        vocabulary: the generator's :class:`~chroma_keras.tokenizers.ChromaticVocabulary`.
        ids: one sequence ``[T]`` as ``generate`` returns it (prefix, ``<sep_midi>``, MIDI tokens,
            maybe ``<eos>`` and padding).

    Returns:
        ``{"valid", "midi", "num_tokens", "num_notes", "token_error_rate", "ended", "error"}``:
        ``midi`` is the Standard MIDI File (None when miditok cannot decode it), ``ended`` says
        whether the sequence holds ``<eos>``, ``error`` why it is not valid ("" when it is).

    Example:
    >>> decode_sequence(gpt.vocabulary, ids[0])["token_error_rate"]  # doctest: +SKIP
    0.0
    """
    import symusic

    from chroma_keras.tokenizers.chromatic_vocabulary import sequence_sections

    ids = np.asarray(ids)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise ModelInputError(f"decode_sequence needs one integer sequence [T]. Received: shape={ids.shape}, dtype={ids.dtype}")
    midi_ids = sequence_sections(ids, vocabulary)["midi"]
    ended = bool(np.any(ids == vocabulary.eos_id))
    try:
        data, report = vocabulary.decode_midi(midi_ids)
    except DataError as exc:
        return {
            "valid": False,
            "midi": None,
            "num_tokens": int(midi_ids.size),
            "num_notes": 0,
            "token_error_rate": miditok_error_rate(vocabulary, midi_ids),
            "ended": ended,
            "error": str(exc),
        }
    try:
        num_notes = int(symusic.Score.from_midi(data).note_num())
        error = "" if num_notes else "no notes"
    except Exception as exc:  # symusic raises RuntimeError / ValueError on a file it cannot read
        num_notes, error = 0, f"the decoded file does not read back: {exc}"
    return {
        "valid": not error,
        "midi": data,
        "num_tokens": int(report["num_tokens"]),
        "num_notes": num_notes,
        "token_error_rate": float(report["token_error_rate"]),
        "ended": ended,
        "error": error,
    }


def generate_midi(model, condition=None, prompt=None, num_samples: int = 1, seed: int = 0, constrained: bool = CONSTRAINED_BY_DEFAULT, **generate_kwargs):
    """Sample token sequences from a token generator and decode each to MIDI.

    Args:
        model: a token generator (:func:`is_token_generator`).
        condition: a colour, per-axis dict or ``"future,place,forgotten"`` string; overrides the
            prompt's modes.
        prompt: free text ("a Red segment with high temporal complexity"), a structured prompt or None.
        num_samples: sequences to sample.
        seed: the draws' seed.
        constrained: mask tokens REMI's grammar does not allow (``generate(constrained=True)``), so
            every sequence decodes with a token error rate of 0.
        **generate_kwargs: the model's sampling arguments (``sampling``, ``max_length``,
            ``temperature``, ``top_k``, ``top_p``, ...).

    Returns:
        ``(ids, decoded)``: int32 ``[num_samples, T]`` and one :func:`decode_sequence` dict per row.

    Raises:
        ModelInputError: ``model`` is not a token generator, or a bad sampling argument.
        LabelError: an unknown colour or mode.

    Example:
    >>> ids, decoded = generate_midi(gpt, condition="Blue", num_samples=4, seed=0)  # doctest: +SKIP
    """
    if not is_token_generator(model):
        raise ModelInputError(f"generate_midi needs a token generator (a ChromaticGPT). Received: {type(model).__name__}")
    ids = model.generate(
        prompt=prompt, condition=condition, num_samples=int(num_samples), seed=int(seed), constrained=bool(constrained), **generate_kwargs
    )
    return ids, [decode_sequence(model.vocabulary, row) for row in ids]


def sequence_rolls(vocabulary, sequences, spec):
    """Decode token sequences and render each on a piano-roll grid (a scorer's).

    What ``evaluate-generation``, ``evaluate`` and ``evolve`` read a token generator's output as:
    each sequence is decoded with :func:`decode_sequence` and its MIDI drawn on ``spec`` (notes
    outside the grid are dropped). A sequence that is not valid MIDI gets an empty roll.

    Args:
        vocabulary: the generator's :class:`~chroma_keras.tokenizers.ChromaticVocabulary`.
        sequences: token sequences, an int array ``[n, T]`` or a list of 1-D int arrays.
        spec: the grid, a :class:`~chroma_keras.preprocessing.pianoroll.PianoRollSpec`.

    Returns:
        ``(rolls, decoded)``: float32 ``[n, spec.num_pitches, spec.num_frames]`` and one
        :func:`decode_sequence` dict per sequence.

    Example:
    >>> rolls, decoded = sequence_rolls(gpt.vocabulary, ids, PianoRollSpec.from_config(scorer.preset_config))  # doctest: +SKIP
    """
    decoded = [decode_sequence(vocabulary, np.asarray(row)) for row in sequences]
    return decoded_rolls(decoded, spec), decoded


def decoded_rolls(decoded, spec) -> np.ndarray:
    """:func:`decode_sequence` results drawn on ``spec``: each valid sequence's MIDI, an empty roll for the others.

    Args:
        decoded: ``decode_sequence`` dicts.
        spec: the grid, a :class:`~chroma_keras.preprocessing.pianoroll.PianoRollSpec`.

    Returns:
        float32 ``[len(decoded), spec.num_pitches, spec.num_frames]``.

    Example:
    >>> rolls = decoded_rolls(generate_midi(gpt, condition="Red", num_samples=2)[1], spec)  # doctest: +SKIP
    """
    from chroma_keras.preprocessing.pianoroll import midi_to_piano_roll

    rolls = np.zeros((len(decoded), *spec.shape), np.float32)
    for i, entry in enumerate(decoded):
        if entry["valid"]:
            rolls[i] = midi_to_piano_roll(entry["midi"], spec, source=f"generated sequence {i}")
    return rolls


def valid_rolls(model, spec, **generate_kwargs):
    """Sample with :func:`generate_midi` and draw the sequences that are valid MIDI on ``spec``.

    What ``evaluate-generation`` and ``evaluate`` score: a sequence that is not valid MIDI has no
    roll (they count it as a segment recognised as no colour).

    Args:
        model: a token generator.
        spec: the grid (a scorer's :class:`~chroma_keras.preprocessing.pianoroll.PianoRollSpec`).
        **generate_kwargs: :func:`generate_midi`'s arguments (``condition``, ``num_samples``, ``seed``...).

    Returns:
        ``(rolls, decoded)``: float32 ``[valid sequences, pitches, frames]`` and every sequence's
        :func:`decode_sequence` dict, in sampling order.

    Example:
    >>> rolls, decoded = valid_rolls(gpt, spec, condition="Red", num_samples=4, seed=0)  # doctest: +SKIP
    """
    _, decoded = generate_midi(model, **generate_kwargs)
    valid = [d for d in decoded if d["valid"]]
    return decoded_rolls(valid, spec), decoded


__all__ = [
    "CONSTRAINED_BY_DEFAULT",
    "decode_sequence",
    "decoded_rolls",
    "generate_midi",
    "is_token_generator",
    "miditok_error_rate",
    "sequence_rolls",
    "valid_rolls",
]
