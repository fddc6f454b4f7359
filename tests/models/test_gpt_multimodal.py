"""gpt_multimodal_chromatic: the preset, text + MIDI + audio rows and their round trip, constrained audio
decoding, to_audio, a short training run on multimodal rows and the errors.

Audio codes come from a tiny random EnCodec (16 codes per codebook, the real model's 320-sample hop),
so every test takes seconds."""

import json

import keras
import numpy as np
import pytest
import soundfile
import symusic

import chroma_keras as ck
from chroma_keras.data import keys
from chroma_keras.errors import CheckpointError, DataError, ModelInputError, PresetError
from chroma_keras.generation.audio_grammar import AudioPatternGrammar
from chroma_keras.generation.remi_grammar import RemiGrammar
from chroma_keras.generation.sample_files import write_samples
from chroma_keras.generation.samplers import SamplingConfig, sample_loop
from chroma_keras.models.chromatic_gpt import ChromaticGPT
from chroma_keras.tokenizers import ChromaticVocabulary
from chroma_keras.tokenizers.chromatic_vocabulary import sequence_sections
from chroma_keras.tokenizers.gpt_audio import AudioCodeCache, audio_section_codes, gpt_audio_tokenizer, stand_in_audio_tokenizer
from chroma_keras.training.gpt_batches import GPTTokenBatches, multimodal_row, segment_prefix

K, CODES = 2, 1024  # codebooks and codes per codebook of EnCodec at 1.5 kbps
TINY_CODEC = {"num_filters": 2, "hidden_size": 8, "codebook_dim": 8, "num_lstm_layers": 1}
HOP = 320  # samples per EnCodec frame at 24 kHz
SMALL = {
    "model.gpt.hidden_dim": 32,
    "model.gpt.num_layers": 1,
    "model.gpt.num_heads": 2,
    "model.gpt.intermediate_dim": 64,
    "model.gpt.max_sequence_length": 256,
    "model.gpt.dropout": 0.0,
    }


@pytest.fixture(scope="module")
def codec():
    return stand_in_audio_tokenizer(TINY_CODEC)


@pytest.fixture(scope="module")
def vocab():
    return ChromaticVocabulary(midi={"tokenization": "remi"}, audio_num_codebooks=K, audio_codebook_size=CODES)


def _midi_bytes(num_notes=10):
    score = symusic.Score(480)
    track = symusic.Track(program=0)
    rng = np.random.default_rng(3)
    for _ in range(num_notes):
        start = int(rng.integers(0, 32)) * 120  # a sixteenth grid: REMI's 4 positions per beat
        track.notes.append(symusic.Note(start, int(rng.integers(1, 8)) * 120, int(rng.integers(40, 90)), 64))
    score.tracks.append(track)
    return score.dumps_midi()


def _notes(data):
    score = symusic.Score.from_midi(data)
    return sorted((n.pitch, n.time * 480 // score.ticks_per_quarter, n.duration * 480 // score.ticks_per_quarter) for t in score.tracks for n in t.notes)


# --- preset -------------------------------------------------------------------------------------


def test_preset_loads_with_text_and_audio_tokens(tmp_path):
    assert "gpt_multimodal_chromatic" in dict(ck.list_presets())
    config = ck.config.load_preset_config("gpt_multimodal_chromatic")
    gpt = config["model"]["gpt"]
    assert (gpt["audio_num_codebooks"], gpt["audio_codebook_size"], gpt["audio_pattern"]) == (2, 1024, "delay")
    assert gpt["text_max_bytes"] == 128 and gpt["encodec_weights"] is None
    assert config["preprocessing"]["audio"]["sample_rate"] == 24000
    assert config["preprocessing"]["midi"]["augmentations"]["transpose_semitones"] == 0
    assert config["training"] == ck.config.load_preset_config("gpt_remi_chromatic")["training"]  # extends the REMI preset
    model = ck.from_preset("gpt_multimodal_chromatic", **SMALL)
    assert isinstance(model, ChromaticGPT) and model.multimodal
    assert model.vocabulary.ranges["audio"][1] - model.vocabulary.ranges["audio"][0] == 2 * 1024
    assert model.required_modalities == () and model.corpus_modalities == ("midi", "text", "audio")
    # The new keys survive save / load.
    ck.save_to_preset(model, tmp_path / "m")
    again = ck.from_preset(str(tmp_path / "m"))
    assert (again.text_max_bytes, again.audio_pattern, again.vocabulary) == (128, "delay", model.vocabulary)


def test_preset_errors_name_the_keys(tmp_path):
    with pytest.raises(PresetError, match=r"model\.gpt\.text_max_bytes=16.*model\.gpt\.text_tokens"):
        ck.from_preset("gpt_multimodal_chromatic", **{**SMALL, "model.gpt.text_max_bytes": 16, "model.gpt.text_tokens": False})
    with pytest.raises(PresetError, match=r"audio_pattern"):
        ck.from_preset("gpt_multimodal_chromatic", **{**SMALL, "model.gpt.audio_pattern": "interleave"})
    missing = tmp_path / "no_encodec_here"
    with pytest.raises(CheckpointError, match=r"model\.gpt\.encodec_weights=.*no_encodec_here.*no such file"):
        ck.from_preset("gpt_multimodal_chromatic", **{**SMALL, "model.gpt.encodec_weights": str(missing)})


def test_codec_checks_name_the_keys_and_the_stand_in_is_one_fixed_draw(codec):
    with pytest.raises(ModelInputError, match=r"model\.gpt\.audio_num_codebooks=3.*\[2, 4, 8, 16, 32\]"):
        gpt_audio_tokenizer(None, 3, CODES, codec)
    with pytest.raises(ModelInputError, match=r"model\.gpt\.audio_codebook_size=16.*1024 codes"):
        gpt_audio_tokenizer(None, 2, 16, codec)
    assert gpt_audio_tokenizer(None, 2, CODES, codec)[1] == 1.5
    # The stand-in is one fixed draw: the same codes in every process and backend.
    again = stand_in_audio_tokenizer(TINY_CODEC)
    wave = np.sin(np.arange(2400) / 7.0).astype("float32")
    np.testing.assert_array_equal(again.encode(wave, 24000, 1.5), codec.encode(wave, 24000, 1.5))


def test_null_weights_use_the_stand_in_and_warn(monkeypatch):
    import chroma_keras.tokenizers.gpt_audio as gpt_audio

    # The full-size stand-in takes seconds to build; the warning and the choice are what is tested.
    monkeypatch.setattr(gpt_audio, "stand_in_audio_tokenizer", lambda: stand_in_audio_tokenizer(TINY_CODEC))
    with pytest.warns(gpt_audio.RandomEncodecWarning, match=r"encodec_weights is null.*random-init EnCodec stand-in"):
        tokenizer, bandwidth = gpt_audio.gpt_audio_tokenizer(None, 2, CODES)
    assert bandwidth == 1.5 and tokenizer.codebook_size == CODES


# --- rows -----------------------------------------------------------------------------------------


def test_row_round_trip_gives_back_text_notes_and_codes(vocab, codec):
    text = "Crimson door — the past, a thing, known ✓ " * 3
    quantized, _ = vocab.decode_midi(vocab.encode_midi(_midi_bytes()))
    midi = vocab.encode_midi(quantized)
    wave = (0.3 * np.sin(np.arange(24000 // 2) * 0.05)).astype("float32")
    codes = codec.encode(wave, 24000, 1.5)
    assert codes.shape == (K, 38)  # ceil(12000 / 320) frames
    modes_vector = np.zeros(9, np.float32)
    modes_vector[[0, 3, 6]] = 1  # past / thing / known
    prefix = segment_prefix(vocab, modes_vector, np.zeros(14, np.float32))
    row = multimodal_row(vocab, prefix, text, midi, True, codes, "delay", text_max_bytes=40)
    tokens = [vocab.token(i) for i in row]
    order = [tokens.index(t) for t in ("<bos>", "<temporal:past>", "<sep_text>", "<sep_midi>", "<sep_audio>")]
    assert order == sorted(order) and tokens[-1] == "<eos>"
    sections = sequence_sections(row, vocab)
    kept = text.encode("utf-8")[:40].decode("utf-8", errors="ignore")
    assert vocab.decode_text(sections["text"]) == kept and len(kept.encode()) <= 40
    data, report = vocab.decode_midi(sections["midi"])
    assert _notes(data) == _notes(quantized) and report["token_error_rate"] == 0.0
    np.testing.assert_array_equal(vocab.decode_audio(sections["audio"], "delay"), codes)
    np.testing.assert_array_equal(audio_section_codes(vocab, sections["audio"], "delay"), codes)
    # A missing modality has no section; flatten lays the same codes out frame by frame.
    bare = multimodal_row(vocab, prefix, None, midi, True, None, text_max_bytes=40)
    assert vocab.separator_id("text") not in bare and vocab.separator_id("audio") not in bare
    audio_only = multimodal_row(vocab, prefix, "", None, True, codes, "flatten", text_max_bytes=40)
    assert vocab.separator_id("midi") not in audio_only
    np.testing.assert_array_equal(vocab.decode_audio(sequence_sections(audio_only, vocab)["audio"], "flatten"), codes)


class _Batches(keras.utils.PyDataset):
    """One corpus-reader batch of three segments: all modalities, no audio, no MIDI."""

    def __init__(self, vocab, wave):
        super().__init__()
        tokens = vocab.midi_tokenizer.miditok.encode(symusic.Score.from_midi(_midi_bytes(4))).ids
        self.batch = {
            keys.MIDI_TOKENS: np.zeros((3, 64), np.int32),
            keys.MIDI_TOKEN_MASK: np.zeros((3, 64), np.float32),
            keys.MODES: np.zeros((3, 9), np.float32),
            keys.REBRACKETING: np.zeros((3, 14), np.float32),
            keys.TEXT_IDS: np.zeros((3, 16), np.int32),
            keys.AUDIO: np.zeros((3, len(wave) + 100), np.float32),
            keys.AUDIO_MASK: np.zeros((3, len(wave) + 100), np.float32),
            keys.MODALITY_MASK: np.array([[1, 1, 1], [1, 0, 1], [1, 1, 0]], np.float32),
        }
        for r in range(3):
            self.batch[keys.TEXT_IDS][r, :3] = np.frombuffer(b"Red", np.uint8) + 1
        for r in (0, 1):
            self.batch[keys.MIDI_TOKENS][r, : len(tokens)] = tokens
            self.batch[keys.MIDI_TOKEN_MASK][r, : len(tokens)] = 1
        for r in (0, 2):
            self.batch[keys.AUDIO][r, : len(wave)] = wave
            self.batch[keys.AUDIO_MASK][r, : len(wave)] = 1

    def __len__(self):
        return 1

    def __getitem__(self, index):
        return (self.batch,)


def test_token_batches_build_multimodal_rows_and_cache_the_codes(vocab, codec):
    wave = (0.2 * np.sin(np.arange(1000) * 0.3)).astype("float32")
    cache = AudioCodeCache(codec, 1.5)
    batches = GPTTokenBatches(_Batches(vocab, wave), vocab, 200, text_max_bytes=8, audio_codes=cache.encode)
    batches.audio_sample_rate = 24000
    (out,) = batches[0][:1]
    rows = [ids[mask > 0] for ids, mask in zip(out["token_ids"], out["padding_mask"])]
    expected = codec.encode(wave, 24000, 1.5)  # the real samples only (the mask cuts the zero padding)
    for r, row in enumerate(rows):
        sections = sequence_sections(row, vocab)
        assert vocab.decode_text(sections["text"]) == "Red"
        assert (sections["midi"].size > 0) == (r != 2)
        if r == 1:
            assert vocab.separator_id("audio") not in row
        else:
            np.testing.assert_array_equal(vocab.decode_audio(sections["audio"]), expected)
        assert row[-1] == vocab.eos_id
    assert (cache.misses, cache.hits) == (1, 1)  # row 2's clip is row 0's: encoded once


def test_bad_audio_and_codes_name_the_segment(vocab, codec):
    cache = AudioCodeCache(codec, 1.5)
    with pytest.raises(ModelInputError, match=r"song-7/seg-2: audio must be a mono clip \[samples\].*\(2, 640\)"):
        cache.encode(np.zeros((2, 640), np.float32), 24000, source="song-7/seg-2")
    with pytest.raises(ModelInputError, match=r"song-7/seg-2: audio codes must be integers of shape \[2, T\]"):
        multimodal_row(vocab, [vocab.bos_id], None, None, True, np.zeros((3, 5), np.int32), source="song-7/seg-2")
    with pytest.raises(DataError, match="infill_rate"):
        GPTTokenBatches(_Batches(vocab, np.zeros(10, np.float32)), vocab, 64, infill_rate=0.5, text_max_bytes=4)


# --- constrained audio decoding -----------------------------------------------------------------


def _expected_slot(vocab, j, frames, pattern):
    """The codebook (or 'pad') position j of an audio section holds, for a section of `frames` frames."""
    step, slot = divmod(j, K)
    if pattern == "flatten":
        return slot
    frame = step - slot
    return slot if 0 <= frame < frames else "pad"


@pytest.mark.parametrize("pattern", ["delay", "flatten"])
@pytest.mark.parametrize("num_frames", [None, 5])
def test_audio_grammar_keeps_every_token_in_its_codebook(vocab, pattern, num_frames):
    grammar = AudioPatternGrammar(vocab, pattern, num_frames=num_frames)
    start = vocab.ranges["audio"][0]
    prompt = np.array([vocab.bos_id, vocab.separator_id("audio")])
    rng = np.random.default_rng(0)
    # Adversarial logits: every token (other codebooks, <eos>, <audio_pad>, MIDI) is likely everywhere.
    # The specials get a head start, so <eos> and <audio_pad> are tried wherever they are masked or allowed.
    boost = np.where(np.arange(vocab.vocabulary_size) < vocab.ranges["mode"][0], 6.0, 0.0)
    step_fn = lambda seqs: rng.normal(0, 3, (len(seqs), vocab.vocabulary_size)) + boost
    config = SamplingConfig("temperature", temperature=1.0)
    out = sample_loop(step_fn, np.repeat(prompt[None], 16, 0), 60, config, seed=1, eos_id=vocab.eos_id, pad_id=vocab.pad_id, processors=[grammar])
    ended = 0
    for row in out:
        section = row[2:]
        stop = np.flatnonzero(section == vocab.eos_id)
        audio = section[: stop[0]] if stop.size else section[section != vocab.pad_id]
        ended += bool(stop.size)
        codes = audio_section_codes(vocab, audio, pattern)
        frames = codes.shape[1]
        if stop.size:
            # A finished section is exactly an encoded sequence of its frames.
            np.testing.assert_array_equal(vocab.encode_audio(codes, pattern), audio)
            if num_frames is not None:
                assert frames == num_frames
        for j, token in enumerate(audio):
            slot = _expected_slot(vocab, j, frames if stop.size else 10**6, pattern)
            if slot == "pad":
                assert token == vocab.audio_pad_id, (j, vocab.token(token))
            elif token != vocab.audio_pad_id or pattern == "flatten" or j % K:
                assert (token - start) // CODES == slot, (j, vocab.token(token))
    assert ended >= 8  # most rows end within 60 tokens


def test_remi_grammar_opens_the_audio_section_after_a_whole_note(vocab):
    midi_only = ChromaticVocabulary(midi={"tokenization": "remi"})
    ids = vocab.encode_midi(_midi_bytes(2))
    done = np.concatenate([[vocab.bos_id, vocab.separator_id("midi")], ids])  # ends with a Duration
    assert RemiGrammar(vocab).allowed(done)[vocab.separator_id("audio")]
    assert not RemiGrammar(vocab).allowed(done[:-1])[vocab.separator_id("audio")]  # mid-note
    assert not RemiGrammar(midi_only).allowed(done)[midi_only.separator_id("audio")]


def test_generate_writes_audio_of_the_requested_length(codec, tmp_path):
    model = ck.from_preset("gpt_multimodal_chromatic", **SMALL)
    model.set_audio_tokenizer(codec)
    prompt = np.concatenate([model.prompt_ids("Red", text="a red door"), _midi_ids(model), [model.vocabulary.separator_id("audio")]])
    frames = 6
    ids = model.generate(prompt=prompt.astype(np.int32), max_length=len(prompt) + K * (frames + K - 1) + 1,
                         sampling="top_k", top_k=50, seed=0, num_samples=2, constrained=True, audio_frames=frames)
    assert (ids[:, -1] == model.vocabulary.eos_id).all()
    reports = model.to_audio(ids, tmp_path / "wav")
    for report in reports:
        assert report["num_frames"] == frames and report["audio"].shape == (frames * HOP,)
        assert np.isfinite(report["audio"]).all() and report["sample_rate"] == 24000
        np.testing.assert_allclose(report["audio"], codec.decode(report["codes"]), atol=1e-6)
    assert (tmp_path / "wav" / "sample_001.wav").exists()
    assert model.to_text(ids[0]) == "a red door"
    assert model.to_midi(ids[0])["num_notes"] == 3
    # Unconstrained samples may put a token in the wrong codebook: to_audio says so.
    first, second, pad = model.vocabulary.ranges["audio"][0], model.vocabulary.ranges["audio"][0] + CODES, model.vocabulary.audio_pad_id
    wrong = np.concatenate([prompt, [second, pad, second, first, first, second]]).astype(np.int32)  # codebook 1 in codebook 0's slot
    with pytest.raises(ModelInputError, match=r"codebook 0.*constrained=True"):
        model.to_audio(wrong)
    with pytest.raises(ModelInputError, match=r"audio_frames=4 needs constrained=True"):
        model.generate(prompt=prompt.astype(np.int32), audio_frames=4)
    # `chroma-keras generate` writes the model's own text and audio next to the MIDI.
    index = write_samples(model, None, tmp_path / "cli", num_samples=1, audio=None, prompt=prompt.astype(np.int32),
                          max_length=len(prompt) + K * (frames + K - 1) + 1, sampling="greedy", audio_frames=frames)
    (row,) = json.loads(index.read_text())["samples"]
    assert (row["text"], row["audio_frames"], row["token_audio_error"]) == ("a red door", frames, "")
    assert soundfile.info(str(tmp_path / "cli" / row["token_audio"])).frames == frames * HOP


def _midi_ids(model):
    return model.vocabulary.encode_midi(_midi_bytes(3))


# --- training -----------------------------------------------------------------------------------


def test_tiny_model_learns_multimodal_rows(vocab, codec):
    """Eight segments (text, MIDI, audio codes): 40 full-batch steps cut the loss 8x or more
    (measured 7.98 -> 0.53 nats, 15x, under JAX)."""
    keras.utils.set_random_seed(0)
    rows = []
    for i in range(8):
        modes_vector = np.zeros(9, np.float32)
        modes_vector[[i % 3, 3 + i % 3, 6 + i % 2]] = 1
        prefix = segment_prefix(vocab, modes_vector, np.zeros(14, np.float32))
        wave = (0.3 * np.sin(np.arange(1600) * (0.02 + 0.03 * (i % 4)))).astype("float32")
        rows.append(multimodal_row(vocab, prefix, f"segment {i % 4}", vocab.encode_midi(_midi_bytes(2 + i % 3)), True,
                                   codec.encode(wave, 24000, 1.5), "delay", text_max_bytes=12))
    length = max(map(len, rows))
    ids = np.zeros((8, length), np.int32)
    mask = np.zeros_like(ids)
    for r, row in enumerate(rows):
        ids[r, : len(row)], mask[r, : len(row)] = row, 1
    model = ChromaticGPT(vocab, hidden_dim=32, num_layers=2, num_heads=2, intermediate_dim=64, max_sequence_length=length, dropout=0.0, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    x = {"token_ids": ids, "padding_mask": mask}
    first = float(model.evaluate(x, batch_size=8, verbose=0))
    model.fit(x, batch_size=8, epochs=40, verbose=0)
    last = float(model.evaluate(x, batch_size=8, verbose=0))
    assert last < first / 8, (first, last)


def test_a_bad_audio_pattern_is_refused_naming_where_it_came_from(vocab):
    """One public check for the codebook layout: the model names its own argument, the vocabulary and the
    audio grammar name ``pattern``."""
    with pytest.raises(ModelInputError, match=r"audio_pattern must be one of \['delay', 'flatten'\]. Received: audio_pattern='stack'"):
        ChromaticGPT(vocab, hidden_dim=8, num_layers=1, num_heads=1, intermediate_dim=8, max_sequence_length=16, audio_pattern="stack")
    with pytest.raises(ModelInputError, match=r"^pattern must be one of \['delay', 'flatten'\]. Received: pattern='stack'"):
        vocab.encode_audio(np.zeros((K, 2), np.int32), "stack")
    with pytest.raises(ModelInputError, match=r"^pattern must be one of"):
        AudioPatternGrammar(vocab, "stack")
    with pytest.raises(ModelInputError, match=r"^pattern must be one of"):
        audio_section_codes(vocab, [], "stack")
