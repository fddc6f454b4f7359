"""Bar-level infilling: FIM training rows (exact inverse, bar boundaries, determinism), the bar-count
constraint, ChromaticGPT.infill (kept bars note for note, exact bar count, errors) and a convergence test."""

import keras
import numpy as np
import pytest

from chroma_keras import modes, rebracketing
from chroma_keras.data import keys
from chroma_keras.errors import DataError, ModelInputError
from chroma_keras.generation.infilling import (
    InfillConstraint,
    fim_middle,
    fim_sequence,
    from_fim,
    infill_tokens,
    split_bars,
)
from chroma_keras.generation.samplers import SamplingConfig, sample_loop
from chroma_keras.models.chromatic_gpt import ChromaticGPT
from chroma_keras.tokenizers import ChromaticVocabulary
from chroma_keras.training.gpt_batches import GPTTokenBatches

MIDI_SPEC = {"tokenization": "remi", "positions_per_beat": 4, "num_velocities": 8}


@pytest.fixture(scope="module")
def vocab():
    return ChromaticVocabulary(midi=MIDI_SPEC)


def names_to_ids(vocab, names):
    miditok = vocab.midi_tokenizer.miditok
    return np.array([vocab.ranges["midi"][0] + miditok[n] for n in names], np.int32)


def note_names(vocab):
    miditok = vocab.midi_tokenizer.miditok.vocab
    velocity = sorted(n for n in miditok if n.startswith("Velocity_"))[-1]
    duration = next(n for n in miditok if n.startswith("Duration_1.0"))
    return velocity, duration


def bars_ids(vocab, bars):
    """REMI ids of bars, each a list of pitches played on beats 1, 2, ... (an empty list: an empty bar)."""
    velocity, duration = note_names(vocab)
    names = []
    for pitches in bars:
        names.append("Bar_None")
        for k, pitch in enumerate(pitches):
            names += [f"Position_{4 * k}", "Program_0", f"Pitch_{pitch}", velocity, duration]
    return names_to_ids(vocab, names)


def midi_of(vocab, bars):
    """On-grid MIDI bytes of ``bars`` (so the tokenizer reads it back exactly)."""
    data, report = vocab.decode_midi(bars_ids(vocab, bars))
    assert report["token_error_rate"] == 0.0
    return data


# --- FIM training rows ----------------------------------------------------------------------


class TokenReader:
    """A stand-in for the corpus reader: batches of local REMI ids with their masks and labels."""

    def __init__(self, vocab, segments, max_events, batch_size=4, scores=True):
        self.vocab, self.segments, self.max_events, self.batch_size = vocab, segments, max_events, batch_size
        self.scores = scores

    def __len__(self):
        return -(-len(self.segments) // self.batch_size)

    def __getitem__(self, index):
        chunk = self.segments[index * self.batch_size : (index + 1) * self.batch_size]
        tokens = np.zeros((len(chunk), self.max_events), np.int32)
        mask = np.zeros((len(chunk), self.max_events), np.float32)
        features = np.zeros((len(chunk), rebracketing.FEATURE_SIZE), np.float32)
        if self.scores:
            features[:, : len(rebracketing.SCORE_FIELDS)] = 0.4
            features[:, rebracketing.PRESENCE_INDEX] = 1.0
        for r, ids in enumerate(chunk):
            local = (ids - self.vocab.ranges["midi"][0])[: self.max_events]
            tokens[r, : len(local)] = local
            mask[r, : len(local)] = 1
        condition = np.stack([modes.resolve_condition("Red").multi_hot()] * len(chunk))
        return ({keys.MIDI_TOKENS: tokens, keys.MIDI_TOKEN_MASK: mask, keys.MODES: condition, keys.REBRACKETING: features},)


def demo_segments(vocab, count=12, seed=0):
    rng = np.random.default_rng(seed)
    segments = []
    for _ in range(count):
        bars = [list(rng.integers(48, 72, rng.integers(0, 4))) for _ in range(rng.integers(1, 6))]
        segments.append(bars_ids(vocab, bars))
    return segments


def rows_of(batches):
    out = []
    for i in range(len(batches)):
        (x,) = batches[i]
        out += [row[mask > 0] for row, mask in zip(x["token_ids"], x["padding_mask"])]
    return out


def test_fim_rows_are_an_exact_rearrangement_at_bar_boundaries(vocab):
    tokens = infill_tokens(vocab)
    segments = demo_segments(vocab)
    reader = TokenReader(vocab, segments, max_events=200)
    plain = rows_of(GPTTokenBatches(reader, vocab, 256, rebracketing_dropout=0.5, seed=3))
    fim = rows_of(GPTTokenBatches(reader, vocab, 256, rebracketing_dropout=0.5, seed=3, infill_rate=1.0))
    # Rate 0 is the plain layout, built here independently: prefix, the segment's tokens, <eos>.
    assert all(row[-1] == vocab.eos_id for row in plain)
    for row, segment in zip(plain, segments):
        np.testing.assert_array_equal(row[-len(segment) - 1 : -1], segment)
    for plain_row, fim_row in zip(plain, fim):
        # Every segment has a whole bar, so at rate 1 every row is in FIM form ...
        assert fim_row[-2:].tolist() == [tokens.fill_end, vocab.eos_id]
        # ... and putting the middle back gives the plain row token for token (the dropout draws are unchanged).
        np.testing.assert_array_equal(from_fim(fim_row, tokens), plain_row)
        hole, fill, end = (int(np.flatnonzero(fim_row == m)[0]) for m in (tokens.hole, tokens.fill, tokens.fill_end))
        before_end = int(np.flatnonzero(fim_row == tokens.separator)[0]) + 1
        before, after, middle = fim_row[before_end:hole], fim_row[hole + 1 : fill], fim_row[fill + 1 : end]
        # Bar boundaries: each part is whole bars.
        for part in (before, after, middle):
            assert part.size == 0 or part[0] == tokens.bar
        assert middle.size and (middle == tokens.bar).sum() >= 1


def test_infill_rate_zero_leaves_batches_unchanged_and_rows_are_seeded(vocab):
    reader = TokenReader(vocab, demo_segments(vocab), max_events=200)
    base = GPTTokenBatches(reader, vocab, 256, rebracketing_dropout=0.5, seed=1)
    zero = GPTTokenBatches(reader, vocab, 256, rebracketing_dropout=0.5, seed=1, infill_rate=0.0)
    half = GPTTokenBatches(reader, vocab, 256, rebracketing_dropout=0.5, seed=1, infill_rate=0.5)
    half_again = GPTTokenBatches(reader, vocab, 256, rebracketing_dropout=0.5, seed=1, infill_rate=0.5)
    tokens = infill_tokens(vocab)
    for i in range(len(base)):
        for key in ("token_ids", "padding_mask"):
            np.testing.assert_array_equal(base[i][0][key], zero[i][0][key])
            np.testing.assert_array_equal(half[i][0][key], half_again[i][0][key])
    plain, mixed = rows_of(base), rows_of(half)
    is_fim = [tokens.fill in row for row in mixed]
    assert 0 < sum(is_fim) < len(mixed)  # about half (12 rows)
    for p, m, f in zip(plain, mixed, is_fim):
        np.testing.assert_array_equal(from_fim(m, tokens) if f else m, p)
    half.on_epoch_end()
    assert any(not np.array_equal(a, b) for a, b in zip(rows_of(half), mixed))  # new spans next epoch


def test_fim_rows_fit_max_sequence_length_and_never_move_a_cut_bar(vocab):
    tokens = infill_tokens(vocab)
    long_segment = bars_ids(vocab, [[60, 62, 64, 65]] * 6)  # 6 bars of 21 tokens
    reader = TokenReader(vocab, [long_segment] * 8, max_events=200, batch_size=8)
    length = 80  # cuts the segment inside its 4th bar
    batches = GPTTokenBatches(reader, vocab, length, seed=0, infill_rate=1.0)
    for epoch in range(3):
        for row in rows_of(batches):
            assert len(row) <= length and row[-1] == tokens.fill_end  # cut: no <eos>
            fill, end = int(np.flatnonzero(row == tokens.fill)[0]), int(np.flatnonzero(row == tokens.fill_end)[0])
            middle = row[fill + 1 : end]
            assert len(middle) % 21 == 0 and len(middle) > 0  # whole bars only, never the cut one
            midi = from_fim(row, tokens)[int(np.flatnonzero(row == tokens.separator)[0]) + 1 :]
            np.testing.assert_array_equal(midi, long_segment[: len(midi)])  # the segment's first tokens, cut to fit
            assert len(row) == length
        batches.on_epoch_end()


def test_infill_rate_is_validated(vocab):
    reader = TokenReader(vocab, demo_segments(vocab, 2), max_events=50)
    with pytest.raises(DataError, match="infill_rate"):
        GPTTokenBatches(reader, vocab, 64, infill_rate=1.5)
    # Checked before it is compared with 0 for text / audio rows (a string used to raise a TypeError there).
    with pytest.raises(DataError, match=r"infill_rate must be a number in \[0, 1\]. Received: infill_rate='0.5'"):
        GPTTokenBatches(reader, vocab, 64, infill_rate="0.5", text_max_bytes=8)


def test_split_bars_and_fim_inverse(vocab):
    tokens = infill_tokens(vocab)
    ids = bars_ids(vocab, [[60], [], [62, 64], [65]])
    before, middle, after = split_bars(ids, (1, 3), tokens.bar)
    np.testing.assert_array_equal(np.concatenate([before, middle, after]), ids)
    assert (middle == tokens.bar).sum() == 2 and before[0] == after[0] == middle[0] == tokens.bar
    prefix = np.array([vocab.bos_id, vocab.separator_id("midi")], np.int32)
    for ended in (True, False):
        fim = fim_sequence(prefix, before, middle, after, tokens, ended=ended)
        expected = np.concatenate([prefix, ids, [vocab.eos_id] if ended else []])
        np.testing.assert_array_equal(from_fim(np.concatenate([fim, [vocab.pad_id] * 3]), tokens), expected)
    _, middle, after = split_bars(ids, (3, 4), tokens.bar)
    assert after.size == 0 and (middle == tokens.bar).sum() == 1
    with pytest.raises(ModelInputError, match="start must be smaller than end"):
        split_bars(ids, (2, 2), tokens.bar)
    with pytest.raises(ModelInputError, match="out of range: midi has 4 bars"):
        split_bars(ids, (2, 5), tokens.bar)
    with pytest.raises(ModelInputError, match="out of range"):
        split_bars(ids, (-1, 2), tokens.bar)
    with pytest.raises(ModelInputError, match="too few bars"):
        split_bars(ids[:0], (0, 1), tokens.bar)
    with pytest.raises(ModelInputError, match="two integers"):
        split_bars(ids, (1.0, 2), tokens.bar)
    with pytest.raises(ModelInputError, match="pair"):
        split_bars(ids, 3, tokens.bar)
    # A plain sequence is not a FIM one: the error names the missing marker.
    with pytest.raises(ModelInputError, match=rf"<mask> \(id {tokens.hole}\) appears 0 times"):
        from_fim(np.concatenate([prefix, ids]), tokens)
    with pytest.raises(ModelInputError, match=r"<infill_end> \(id \d+\) appears 2 times"):
        from_fim(np.concatenate([fim, [tokens.fill_end]]), tokens)


# --- the bar-count constraint, on random logits ------------------------------------------------


@pytest.mark.parametrize("grammar", [True, False])
def test_a_middle_holds_only_midi_tokens_with_audio_in_the_vocabulary(grammar):
    """With audio tokens, RemiGrammar lets <sep_audio> end a MIDI section after a complete note; inside a
    middle only <infill_end> may end it (a <sep_audio> there would break the splice)."""
    audio_vocab = ChromaticVocabulary(midi=MIDI_SPEC, audio_num_codebooks=2, audio_codebook_size=8)
    tokens = infill_tokens(audio_vocab)
    prompt = np.concatenate([[audio_vocab.bos_id, tokens.separator], bars_ids(audio_vocab, [[60]]), [tokens.hole, tokens.fill]])
    constraint = InfillConstraint(audio_vocab, num_bars=1, max_length=len(prompt) + 40, grammar=grammar)
    midi = audio_vocab.range_mask("midi")
    for written in (bars_ids(audio_vocab, [[62]]), bars_ids(audio_vocab, [[]])):  # a whole note; an empty bar
        allowed = constraint.allowed(np.concatenate([prompt, written]))
        assert allowed[tokens.fill_end] and not allowed[audio_vocab.separator_id("audio")]
        assert set(np.flatnonzero(allowed & ~midi)) == {tokens.fill_end}



@pytest.mark.parametrize("grammar", [True, False])
def test_constraint_writes_exactly_the_bars_asked_for_within_the_room(vocab, grammar):
    tokens = infill_tokens(vocab)
    prompt = np.concatenate([[vocab.bos_id, tokens.separator], bars_ids(vocab, [[60]]), [tokens.hole, tokens.fill]])
    rng = np.random.default_rng(0)
    for num_bars, room in ((1, 4), (2, 8), (3, 30), (2, 120)):
        max_length = len(prompt) + room
        constraint = InfillConstraint(vocab, num_bars, max_length, grammar=grammar)
        # Random logits favouring Bar: an unconstrained draw would overshoot the bar count.
        bias = np.zeros(vocab.vocabulary_size)
        bias[tokens.bar] = 3.0

        def step(sequences):
            return rng.normal(size=(len(sequences), vocab.vocabulary_size)) + bias

        rows = sample_loop(step, np.repeat(prompt[None], 4, 0), max_length, SamplingConfig("temperature"), seed=num_bars,
                           eos_id=vocab.eos_id, processors=[constraint])
        for row in rows:
            middle = row[len(prompt) :]
            end = np.flatnonzero(middle == tokens.fill_end)
            assert end.size == 1, (num_bars, room, middle)
            written = middle[: end[0]]
            assert (written == tokens.bar).sum() == num_bars and written[0] == tokens.bar
            assert vocab.range_mask("midi")[written].all()
            if grammar:
                report = vocab.decode_midi(written)[1]
                assert report["token_error_rate"] == 0.0, [vocab.token(i) for i in written]


def test_fim_middle_pads_or_cuts_to_the_bar_count(vocab):
    tokens = infill_tokens(vocab)
    two = bars_ids(vocab, [[60], [62]])
    row = np.concatenate([[tokens.fill], two])
    np.testing.assert_array_equal(fim_middle(row, tokens, 3), np.concatenate([two, [tokens.bar]]))
    np.testing.assert_array_equal(fim_middle(row, tokens, 1), bars_ids(vocab, [[60]]))
    np.testing.assert_array_equal(fim_middle(np.concatenate([row, [tokens.fill_end, vocab.eos_id]]), tokens, 2), two)


# --- ChromaticGPT.infill ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def model(vocab):
    return ChromaticGPT(vocab, hidden_dim=32, num_layers=2, num_heads=2, intermediate_dim=64, max_sequence_length=128,
                        dropout=0.0, seed=0)


SONG = [[60, 64], [62], [], [65, 67, 69], [60], [72, 71]]


# Spans at the start, inside and at the end; each decodes two rows (a new shape compiles once per backend).
@pytest.mark.parametrize("sampling, bars", [("greedy", (0, 2)), ("top_k", (1, 3)), ("top_p", (4, 6)), ("beam", (1, 3))])
def test_infill_keeps_other_bars_note_for_note(model, vocab, sampling, bars, tmp_path, notes_by_bar):
    data = midi_of(vocab, SONG)
    (tmp_path / "song.mid").write_bytes(data)
    given = notes_by_bar(data)
    kwargs = {"num_beams": 2} if sampling == "beam" else {"seed": 0, "top_k": 20, "top_p": 0.95, "temperature": 1.5}
    ids = model.infill(tmp_path / "song.mid", bars=bars, condition="Red", max_new_tokens=40, sampling=sampling, num_samples=2,
                       **kwargs)
    assert ids.shape[0] == 2
    for row in ids:
        report = model.to_midi(row)
        assert report["token_error_rate"] == 0.0
        out = notes_by_bar(report["midi"])
        for bar in range(len(SONG)):
            if not bars[0] <= bar < bars[1]:
                assert out.get(bar) == given.get(bar), (bars, bar)
        assert max(out, default=0) < len(SONG)  # nothing spills past the last bar
        midi = row[(row == vocab.separator_id("midi")).argmax() + 1 :]
        midi = midi[vocab.range_mask("midi")[midi]]
        assert (midi == infill_tokens(vocab).bar).sum() == len(SONG)  # the middle holds exactly end - start bars


def test_unconstrained_infill_still_writes_exactly_the_bars(model, vocab):
    data = midi_of(vocab, SONG)
    tokens = infill_tokens(vocab)
    ids = model.infill(data, bars=(1, 3), condition="Blue", max_new_tokens=40, sampling="top_p", seed=1, constrained=False,
                       num_samples=2)
    before, _, after = split_bars(vocab.encode_midi(data), (1, 3), tokens.bar)
    prefix = model.prompt_ids(condition="Blue")
    for row in ids:
        row = row[row != vocab.pad_id]
        np.testing.assert_array_equal(row[: len(prefix) + len(before)], np.concatenate([prefix, before]))
        np.testing.assert_array_equal(row[-len(after) - 1 :], np.concatenate([after, [vocab.eos_id]]))
        middle = row[len(prefix) + len(before) : -len(after) - 1]
        assert (middle == tokens.bar).sum() == 2 and vocab.range_mask("midi")[middle].all()


def test_infill_errors(model, vocab, monkeypatch):
    data = midi_of(vocab, SONG)
    with pytest.raises(ModelInputError, match=r"bars=\(4, 9\) is out of range: midi has 6 bars"):
        model.infill(data, bars=(4, 9))
    with pytest.raises(ModelInputError, match="start must be smaller than end"):
        model.infill(data, bars=(3, 3))
    with pytest.raises(ModelInputError, match=r"out of range: midi has 2 bars, so 0 <= start < end <= 2"):
        model.infill(midi_of(vocab, SONG[:2]), bars=(1, 4))  # too few bars for the span
    with pytest.raises(ModelInputError, match="leave room for"):
        model.infill(data, bars=(0, 6), max_new_tokens=5)
    with pytest.raises(ModelInputError, match="max_new_tokens"):
        model.infill(data, bars=(0, 1), max_new_tokens=0)
    with pytest.raises(ModelInputError, match="pass max_new_tokens"):
        model.infill(data, bars=(0, 1), max_length=50)
    with pytest.raises(ModelInputError, match="MIDI bytes or a path"):
        model.infill(123, bars=(0, 1))
    from chroma_keras.tokenizers import chromatic_vocabulary

    monkeypatch.setattr(chromatic_vocabulary, "SPECIAL_TOKENS", ("<pad>", "<bos>", "<eos>", "<sep_text>", "<sep_midi>", "<sep_audio>"))
    with pytest.raises(ModelInputError, match="lacks"):
        infill_tokens(ChromaticVocabulary(midi=MIDI_SPEC))
    monkeypatch.undo()
    with pytest.raises(ModelInputError, match="MIDI tokens"):
        infill_tokens(ChromaticVocabulary(midi=None))
    with pytest.raises(ModelInputError, match="num_bars"):
        InfillConstraint(vocab, 0, 64)


# --- convergence: a tiny GPT learns to fill a repeated bar -------------------------------------


STEPS = 160
LEARNING_RATE = 4e-3
SONG_BARS = 3


def test_a_tiny_gpt_learns_to_fill_a_repeated_bar(notes_by_bar):
    """Each song repeats one bar (one of 8 pitch pairs) three times; FIM rows hide a run of its bars.
    Before training the middle's tokens cost ~log(vocabulary) nats each; after 160 steps a model that
    copies the bar from the context pays little, and greedy infilling writes the hidden bars back."""
    keras.utils.set_random_seed(0)
    vocab = ChromaticVocabulary(midi=MIDI_SPEC, text=False)  # no byte tokens: a smaller LM head, faster steps
    pitches = list(range(60, 68))
    # The songs as the tokenizer reads their MIDI (with the Tempo token of the first bar), as infill will.
    songs = [vocab.encode_midi(midi_of(vocab, [[p, p + 4]] * SONG_BARS)) for p in pitches for _ in range(2)]
    reader = TokenReader(vocab, songs, max_events=64, batch_size=16, scores=False)
    batches = GPTTokenBatches(reader, vocab, 48, seed=0, infill_rate=1.0)
    xs = []
    for _ in range(STEPS):  # one batch per epoch: fresh spans every step
        xs.append(batches[0][0])
        batches.on_epoch_end()
    x = {k: np.concatenate([b[k] for b in xs]) for k in ("token_ids", "padding_mask")}
    model = ChromaticGPT(vocab, hidden_dim=48, num_layers=2, num_heads=2, intermediate_dim=96, max_sequence_length=48,
                         dropout=0.0, seed=0)
    model.compile(optimizer=keras.optimizers.AdamW(LEARNING_RATE))
    tokens = infill_tokens(vocab)

    def middle_loss(rows):
        ids, mask = rows["token_ids"], rows["padding_mask"]
        logits = keras.ops.convert_to_numpy(model({"token_ids": ids, "padding_mask": mask})).astype(np.float64)
        log_p = logits - logits.max(-1, keepdims=True)
        log_p -= np.log(np.exp(log_p).sum(-1, keepdims=True))
        losses = []
        for r, row in enumerate(ids):
            fill, end = int(np.flatnonzero(row == tokens.fill)[0]), int(np.flatnonzero(row == tokens.fill_end)[0])
            if (row[fill + 1 : end] == tokens.bar).sum() < SONG_BARS:  # the context holds at least one bar to copy
                losses += [-log_p[r, t - 1, row[t]] for t in range(fill + 1, end + 1)]
        return float(np.mean(losses))

    unseen = batches[0][0]  # the next epoch's spans, not trained on
    before = middle_loss(unseen)
    model.fit(x, batch_size=16, epochs=1, shuffle=False, verbose=0)
    after = middle_loss(unseen)
    # Measured: 6.09 -> 0.020 nats per middle token (torch), 6.16 -> 0.085 after only 120 steps (JAX).
    assert after < before / 10, (before, after)
    correct = 0
    for p in pitches:
        data = midi_of(vocab, [[p, p + 4]] * SONG_BARS)
        ids = model.infill(data, bars=(1, 3), condition="Red", max_new_tokens=32, sampling="greedy")
        correct += notes_by_bar(model.to_midi(ids[0])["midi"]) == notes_by_bar(data)
    assert correct >= 6, correct  # measured: 8 of 8 (torch, 160 steps), 7 of 8 (JAX, 120 steps)
