"""Constrained decoding of the GPT's ``<sep_audio>`` section: every token in the codebook its slot expects.

Audio codes ``[K, T]`` are laid out in a pattern (:class:`~chroma_keras.tokenizers.ChromaticVocabulary`):
in ``"flatten"`` token ``j`` of the section belongs to codebook ``j % K``; in ``"delay"`` step
``s = j // K`` holds codebook ``c = j % K``'s frame ``s - c``, and ``<audio_pad>`` where that frame
does not exist (the first ``K - 1`` steps, and after the last frame). A token in another codebook's
range cannot be decoded. :class:`AudioPatternGrammar` masks every token but those the slot allows:

* delay pattern, frame ``s - c < 0``: only ``<audio_pad>``;
* otherwise codebook ``c``'s codes; codebook 0 may also write ``<audio_pad>`` from step 1 on, which
  ends the audio at ``T = s`` frames; the other codebooks then finish their delayed frames and pad,
  and ``<eos>`` follows the last step (``K * (T + K - 1)`` tokens in all);
* flatten pattern: ``<eos>`` may follow any whole frame;
* with ``num_frames``: exactly that many frames, then ``<eos>``.

Outside an audio section (or after its ``<eos>``) it leaves the logits alone, so it runs next to
:class:`~chroma_keras.generation.remi_grammar.RemiGrammar` (which lets ``<sep_audio>`` follow a
complete note or bar when the vocabulary has audio tokens).

Example:

>>> grammar = AudioPatternGrammar(model.vocabulary, "delay", num_frames=75)   # doctest: +SKIP
>>> ids = model.generate(prompt=prefix_ending_with_sep_audio, logits_processors=[grammar],
...                      max_length=len(prefix) + 2 * 76 + 1)                 # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np

from chroma_keras.errors import ModelInputError
from chroma_keras.generation.samplers import AllowedTokensProcessor
from chroma_keras.tokenizers.chromatic_vocabulary import check_audio_pattern


class AudioPatternGrammar(AllowedTokensProcessor):
    """A logits processor that keeps the audio section in its codebook pattern (see the module docstring).

    Args:
        vocabulary: a :class:`~chroma_keras.tokenizers.ChromaticVocabulary` with audio tokens.
        pattern: ``"delay"`` or ``"flatten"``.
        num_frames: exact frames to write (None: the model ends the audio).

    Example:
    >>> grammar = AudioPatternGrammar(model.vocabulary, "delay")           # doctest: +SKIP
    """

    def __init__(self, vocabulary, pattern: str = "delay", num_frames: int | None = None):
        if not vocabulary.audio_num_codebooks:
            raise ModelInputError("audio constraints need a vocabulary with audio tokens (model.gpt.audio_num_codebooks > 0).")
        check_audio_pattern(pattern)
        if num_frames is not None and not (isinstance(num_frames, (int, np.integer)) and num_frames >= 1):
            raise ModelInputError(f"num_frames must be an integer >= 1 or None. Received: num_frames={num_frames!r}")
        self.vocabulary = vocabulary
        self.k = vocabulary.audio_num_codebooks
        # One codebook has no delay: the delay pattern is then the flat one.
        self.pattern = "flatten" if self.k == 1 else pattern
        self.num_frames = None if num_frames is None else int(num_frames)
        self.separator = vocabulary.separator_id("audio")
        self.pad = vocabulary.audio_pad_id
        self.eos = vocabulary.eos_id
        start = vocabulary.ranges["audio"][0]
        size = vocabulary.audio_codebook_size
        self.codebooks = [np.arange(start + c * size, start + (c + 1) * size) for c in range(self.k)]

    def allowed(self, sequence) -> np.ndarray | None:
        """Bool ``[vocabulary_size]`` of the tokens the next audio slot allows, or None outside an audio section."""
        sequence = np.asarray(sequence)
        separators = np.flatnonzero(sequence == self.separator)
        if separators.size == 0:
            return None
        section = sequence[separators[-1] + 1 :]
        if (section == self.eos).any():
            return None
        step, slot = divmod(section.size, self.k)
        out = np.zeros(self.vocabulary.vocabulary_size, bool)
        if self.pattern == "flatten":
            if slot or self.num_frames is None or step < self.num_frames:
                out[self.codebooks[slot]] = True
            if slot == 0 and step > 0 and (self.num_frames is None or step >= self.num_frames):
                out[self.eos] = True
            return out
        frames = self.num_frames
        if frames is None:
            closed = np.flatnonzero(section[0 :: self.k][1:] == self.pad)  # codebook 0 padded: the audio ended
            frames = int(closed[0]) + 1 if closed.size else None
        if frames is not None and step >= frames + self.k - 1:
            out[self.eos] = True
            return out
        frame = step - slot
        if frame < 0 or (frames is not None and frame >= frames):
            out[self.pad] = True
        else:
            out[self.codebooks[slot]] = True
            if slot == 0 and frames is None and step >= 1:
                out[self.pad] = True
        return out
