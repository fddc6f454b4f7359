"""ChromaticVocabulary: layout, round trips of text, MIDI and audio codes, config, errors."""

import numpy as np
import pytest
import symusic

from chroma_keras import modes, rebracketing
from chroma_keras.errors import ModelInputError
from chroma_keras.tokenizers import ChromaticVocabulary
from chroma_keras.tokenizers.chromatic_vocabulary import normalise_score, sequence_sections


@pytest.fixture(scope="module")
def vocab():
    return ChromaticVocabulary(midi={"tokenization": "remi"}, audio_num_codebooks=4, audio_codebook_size=64)


def test_ranges_are_contiguous_and_disjoint(vocab):
    ranges = sorted(vocab.ranges.values())
    assert ranges[0][0] == 0
    for (_, stop), (start, _) in zip(ranges, ranges[1:]):
        assert stop == start
    assert ranges[-1][1] == vocab.vocabulary_size
    assert vocab.pad_id == 0
    assert vocab.ranges["audio"][1] - vocab.ranges["audio"][0] == 4 * 64
    assert vocab.ranges["text"][1] - vocab.ranges["text"][0] == 256
    assert vocab.ranges["midi"][1] - vocab.ranges["midi"][0] == vocab.midi_tokenizer.vocab_size


def test_mode_tokens_follow_the_modes_table(vocab):
    for colour in modes.COLOURS:
        ids = vocab.mode_ids(colour.name)
        assert set(vocab.modality_of(ids)) == {"mode"}
        assert vocab.condition_from_ids(ids) == colour.condition()
    assert [vocab.token(i) for i in vocab.mode_ids("Red")] == ["<temporal:past>", "<spatial:thing>", "<ontological:known>"]
    # Indigo names two ontological modes and no temporal / spatial mode.
    assert [vocab.token(i) for i in vocab.mode_ids("Indigo")] == [
        "<temporal:none>",
        "<spatial:none>",
        "<ontological:known>",
        "<ontological:forgotten>",
    ]
    novel = {"temporal": "future", "spatial": "thing", "ontological": "known"}
    assert vocab.condition_from_ids(vocab.mode_ids(novel)).describe() == "future/thing/known"


def test_rebracketing_buckets(vocab):
    assert vocab.bucket(0.0) == 0 and vocab.bucket(1.0) == vocab.rebracketing_buckets - 1
    ids = vocab.rebracketing_ids({"temporal_complexity_score": 0.9, "rebracketing_intensity": 0.1}, "causal")
    assert [vocab.token(i) for i in ids] == ["<rebracketing_intensity:0>", "<temporal_complexity_score:7>", "<rebracketing_type:causal>"]
    assert normalise_score("rebracketing_intensity", rebracketing.INTENSITY_SCALE) == pytest.approx(1.0)
    with pytest.raises(ModelInputError, match="temporal_complexity"):
        vocab.rebracketing_ids({"temporal_complexity": 0.5})
    with pytest.raises(ModelInputError, match=r"\[0, 1\]"):
        vocab.rebracketing_ids({"rebracketing_coverage": 1.5})


@pytest.mark.parametrize("text", ["Red", "", "Violet — past / person / forgotten ✓", "line\nbreak"])
def test_text_round_trip(vocab, text):
    ids = vocab.encode_text(text)
    assert set(vocab.modality_of(ids)) <= {"text"}
    assert vocab.decode_text(ids) == text
    # Other tokens around the text are ignored.
    assert vocab.decode_text(np.concatenate([[vocab.bos_id], ids, [vocab.eos_id]])) == text


def _midi_bytes():
    score = symusic.Score(480)
    track = symusic.Track(program=0)
    rng = np.random.default_rng(0)
    for i in range(24):
        start = int(rng.integers(0, 64)) * 60  # an eighth-of-a-beat grid at 480 tpq
        track.notes.append(symusic.Note(start, int(rng.integers(1, 16)) * 60, int(rng.integers(40, 90)), int(rng.integers(30, 120))))
    score.tracks.append(track)
    return score.dumps_midi()


def _notes(data):
    score = symusic.Score.from_midi(data)
    tpq = score.ticks_per_quarter
    return sorted(
        (t.program, n.pitch, n.time / tpq, n.duration / tpq, n.velocity) for t in score.tracks for n in t.notes
    )


def test_midi_round_trip_is_exact_on_quantized_input(vocab):
    # Quantize once (velocity bins, duration grid), then the round trip must be note-for-note exact.
    quantized, _ = vocab.decode_midi(vocab.encode_midi(_midi_bytes()))
    ids = vocab.encode_midi(quantized)
    assert set(vocab.modality_of(ids)) == {"midi"}
    again, report = vocab.decode_midi(ids)
    assert _notes(again) == _notes(quantized)
    assert report["token_error_rate"] == 0.0
    assert report["num_notes"] == 24
    # On-grid onsets and pitches survive the first quantization too.
    assert [n[1:3] for n in _notes(quantized)] == [n[1:3] for n in _notes(_midi_bytes())]


def test_midi_decoding_skips_ungrammatical_tokens_and_reports_them(vocab):
    start, stop = vocab.ranges["midi"]
    rng = np.random.default_rng(1)
    ids = rng.integers(start + 3, stop, 60)
    data, report = vocab.decode_midi(np.concatenate([[vocab.bos_id, vocab.separator_id("midi")], ids]))
    assert isinstance(data, bytes) and data[:4] == b"MThd"
    assert 0.0 < report["token_error_rate"] <= 1.0
    assert report["num_tokens"] == 60


@pytest.mark.parametrize("pattern", ["delay", "flatten"])
def test_audio_round_trip(vocab, pattern):
    codes = np.random.default_rng(0).integers(0, 64, (4, 7))
    ids = vocab.encode_audio(codes, pattern)
    expected_length = 4 * 7 if pattern == "flatten" else 4 * (7 + 3)
    assert ids.shape == (expected_length,)
    np.testing.assert_array_equal(vocab.decode_audio(ids, pattern), codes)


def test_delay_pattern_layout(vocab):
    codes = np.arange(8).reshape(4, 2) % 64
    grid = vocab.encode_audio(codes, "delay").reshape(-1, 4)  # [steps, codebooks]
    pad = vocab.audio_pad_id
    # Step s holds codebook k's frame s - k; codebook k is delayed k steps.
    assert grid.shape == (5, 4)
    assert grid[0, 0] != pad and (grid[0, 1:] == pad).all()
    assert (grid[4, :3] == pad).all() and grid[4, 3] != pad
    assert vocab.token(grid[3, 3]) == "audio:3:6"  # codebook 3, frame 0 (code 6)
    assert vocab.token(grid[0, 0]) == "audio:0:0"


def test_audio_errors(vocab):
    with pytest.raises(ModelInputError, match=r"shape \[4, T\]"):
        vocab.encode_audio(np.zeros((3, 5), int))
    with pytest.raises(ModelInputError, match=r"\[0, 64\)"):
        vocab.encode_audio(np.full((4, 5), 64))
    with pytest.raises(ModelInputError, match="pattern"):
        vocab.encode_audio(np.zeros((4, 5), int), "interleave")
    with pytest.raises(ModelInputError, match="multiple of 4"):
        vocab.decode_audio(np.zeros(5, int))
    shuffled = vocab.encode_audio(np.zeros((4, 3), int), "flatten")[::-1]
    with pytest.raises(ModelInputError, match="wrong codebook"):
        vocab.decode_audio(shuffled, "flatten")


def test_config_round_trip_and_missing_ranges(vocab):
    again = ChromaticVocabulary.from_config(vocab.to_config())
    assert again == vocab and again.vocabulary_size == vocab.vocabulary_size
    midi_only = ChromaticVocabulary(midi={"tokenization": "remi"})
    with pytest.raises(ModelInputError, match="no audio tokens"):
        midi_only.encode_audio(np.zeros((4, 3), int))
    with pytest.raises(ModelInputError, match="1-D ids"):
        ChromaticVocabulary(midi={"tokenization": "cpword", "cpword_layout": "compound"})
    with pytest.raises(ModelInputError, match="unknown MidiTokenizerSpec fields"):
        ChromaticVocabulary(midi={"tokenisation": "remi"})


def test_sequence_sections(vocab):
    ids = [vocab.bos_id, *vocab.mode_ids("Red"), vocab.separator_id("midi"), vocab.ranges["midi"][0] + 3, vocab.eos_id, 0]
    sections = sequence_sections(ids, vocab)
    assert list(sections["prefix"]) == [vocab.bos_id, *vocab.mode_ids("Red")]
    assert list(sections["midi"]) == [vocab.ranges["midi"][0] + 3]
