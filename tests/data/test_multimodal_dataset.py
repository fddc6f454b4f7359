"""MultimodalDataset: batches equal the reference encodings, splits by song, streams, survives hostile rows."""

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from chroma_keras import modes
from chroma_keras.config import load_preset_config
from chroma_keras.data import keys
from chroma_keras.data.demo_corpus import DEMO_SCHEMA, generate_demo_corpus
from chroma_keras.data.multimodal_dataset import MultimodalDataset, batches_to_arrays, ids_to_text, text_to_ids
from chroma_keras.data.segments import open_segments
from chroma_keras.errors import DataError
from chroma_keras.preprocessing.audio import AudioSpec, prepare_waveform
from chroma_keras.preprocessing.pianoroll import PianoRollSpec, midi_to_piano_roll

SAMPLE_RATE = 16000
OVERRIDES = {
    "preprocessing.audio.sample_rate": SAMPLE_RATE,
    "preprocessing.audio.duration": 3.0,  # shorter than the 4 s segments: exercises truncation
    "preprocessing.midi.piano_roll.frames_per_second": 4.0,
    "preprocessing.midi.piano_roll.num_frames": 16,
    "training.batch_size": 5,
}
ALL = ("text", "audio", "midi")


@pytest.fixture(scope="module")
def config():
    return load_preset_config("cvae_chromatic", OVERRIDES)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("mm") / "corpus.parquet"
    table = generate_demo_corpus(
        songs_per_colour=3, segments_per_song=2, segment_seconds=4.0, audio="additive", audio_sample_rate=SAMPLE_RATE
    )
    pq.write_table(table, path, row_group_size=10)  # several shards, to exercise streaming
    return path


def _fingerprints(arrays):
    return sorted(
        hashlib.sha1(arrays[keys.PIANO_ROLL][i].tobytes() + arrays[keys.AUDIO][i].tobytes()).hexdigest()
        for i in range(len(arrays[keys.PIANO_ROLL]))
    )


def test_batches_equal_the_reference_encodings(corpus, config):
    ds = MultimodalDataset(corpus, config, split="all", modalities=ALL, shuffle=False, augment=False)
    arrays = batches_to_arrays(ds)
    records = {r.segment_id: r for r in open_segments(corpus)}
    spec, audio_spec = PianoRollSpec.from_config(config), AudioSpec.from_config(config)
    assert len(ds.segment_ids()) == len(records) == len(arrays[keys.PIANO_ROLL])
    for i, segment_id in enumerate(ds.segment_ids()):
        record = records[segment_id]
        np.testing.assert_array_equal(arrays[keys.MODALITY_MASK][i], record.presence())
        if record.has_midi:
            np.testing.assert_array_equal(arrays[keys.PIANO_ROLL][i], midi_to_piano_roll(record.midi_bytes, spec))
        else:
            assert not arrays[keys.PIANO_ROLL][i].any()
        wave, mask = prepare_waveform(record.audio, record.audio_sample_rate, audio_spec, source=segment_id)
        np.testing.assert_allclose(arrays[keys.AUDIO][i], wave, atol=0)
        np.testing.assert_array_equal(arrays[keys.AUDIO_MASK][i], mask)
        assert ids_to_text(arrays[keys.TEXT_IDS][i]) == (record.lyric_text or record.concept)[:256]
        targets = modes.soft_targets(record.labels.condition)
        for axis, key in keys.AXIS_TARGETS.items():
            np.testing.assert_array_equal(arrays[key][i], targets[axis])
        assert arrays[keys.COLOUR_INDEX][i] == modes.parse_colour(record.labels.colour).index
        np.testing.assert_array_equal(arrays[keys.MODE_IDS][i], record.labels.condition.primary_ids())
        np.testing.assert_array_equal(arrays[keys.MODES][i], record.labels.condition.multi_hot())
        np.testing.assert_array_equal(arrays[keys.REBRACKETING][i], record.rebracketing)
    # The audio is 4 s per segment, cut to the preset's 3 s: every real mask is full.
    assert arrays[keys.AUDIO].shape == (len(records), 3 * SAMPLE_RATE)
    assert (arrays[keys.AUDIO_MASK][arrays[keys.MODALITY_MASK][:, 1] > 0] == 1).all()


def test_streamed_batches_equal_cached_ones(corpus, config):
    cached = MultimodalDataset(corpus, config, split="all", modalities=ALL, shuffle=False, cache=True)
    streamed = MultimodalDataset(corpus, config, split="all", modalities=ALL, shuffle=False, cache=False)
    assert len(cached) == len(streamed)
    for i in (0, 3, 1, len(cached) - 1):  # out of order too: the stream restarts
        a, b = cached[i][0], streamed[i][0]
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.mark.parametrize("cache", [True, False])
def test_shuffled_epochs_cover_every_segment_once_and_are_reproducible(corpus, config, cache):
    reference = _fingerprints(batches_to_arrays(MultimodalDataset(corpus, config, split="all", modalities=ALL, shuffle=False)))
    ds = MultimodalDataset(corpus, config, split="all", modalities=ALL, shuffle=True, augment=False, cache=cache, shuffle_buffer=7)
    first = batches_to_arrays(ds)
    assert _fingerprints(first) == reference
    again = batches_to_arrays(MultimodalDataset(corpus, config, split="all", modalities=ALL, shuffle=True, augment=False, cache=cache, shuffle_buffer=7))
    np.testing.assert_array_equal(first[keys.PIANO_ROLL], again[keys.PIANO_ROLL])
    ds.on_epoch_end()
    second = batches_to_arrays(ds)
    assert _fingerprints(second) == reference
    assert not np.array_equal(first[keys.AUDIO], second[keys.AUDIO])  # a new order


def test_splits_group_by_song_and_cover_the_corpus(corpus, config):
    parts = {s: MultimodalDataset(corpus, config, split=s, shuffle=False) for s in ("train", "validation", "test")}
    songs = {s: set(d.source.song_ids()) for s, d in parts.items()}
    assert not songs["train"] & songs["validation"] and not songs["train"] & songs["test"]
    assert not songs["validation"] & songs["test"]
    everything = MultimodalDataset(corpus, config, split="all", shuffle=False)
    assert sum(d.num_examples for d in parts.values()) == everything.num_examples
    # Three songs per colour: each colour gives one song to validation and one to test.
    assert len(songs["validation"]) == len(songs["test"]) == 8


def test_segment_level_split_when_asked(corpus):
    config = load_preset_config("cvae_chromatic", {**OVERRIDES, "training.split": "segment"})
    parts = {s: MultimodalDataset(corpus, config, split=s, shuffle=False) for s in ("train", "validation", "test")}
    ids = {s: set(d.segment_ids()) for s, d in parts.items()}
    assert not ids["train"] & ids["validation"] and not ids["train"] & ids["test"]
    assert sum(len(v) for v in ids.values()) == len(open_segments(corpus))


def test_transposition_augments_training_batches_only(corpus, config):
    plain = MultimodalDataset(corpus, config, split="train", shuffle=False, augment=False)[0][0][keys.PIANO_ROLL]
    augmented = MultimodalDataset(corpus, config, split="train", shuffle=False)[0][0][keys.PIANO_ROLL]
    assert not np.array_equal(plain, augmented)
    # Transposition moves notes along the pitch axis only: the per-frame note count is kept
    # unless a note leaves the roll.
    assert (augmented.sum(axis=1) <= plain.sum(axis=1) + 1e-6).all()
    validation = MultimodalDataset(corpus, config, split="validation", shuffle=False)
    assert not validation.augment and not validation.shuffle
    assert (validation[0][0][keys.TRANSPOSITION] == 0).all()


@pytest.mark.parametrize("jitter", [0.0, 0.2])
def test_training_batches_report_each_rows_transposition(corpus, config, jitter):
    from chroma_keras.data.pianoroll_dataset import transpose_piano_rolls

    config = load_preset_config("cvae_chromatic", {**OVERRIDES, "preprocessing.midi.augmentations.velocity_jitter": jitter})
    limit = config["preprocessing"]["midi"]["augmentations"]["transpose_semitones"]
    plain_ds = MultimodalDataset(corpus, config, split="train", shuffle=False, augment=False)
    augmented_ds = MultimodalDataset(corpus, config, split="train", shuffle=False)
    assert (plain_ds[0][0][keys.TRANSPOSITION] == 0).all()
    seen = []
    for index in range(len(augmented_ds)):
        plain, batch = plain_ds[index][0][keys.PIANO_ROLL], augmented_ds[index][0]
        shifts = batch[keys.TRANSPOSITION]
        assert shifts.dtype == np.float32 and shifts.shape == (len(plain),)
        assert (np.abs(shifts) <= limit).all() and (shifts == np.round(shifts)).all()
        expected = transpose_piano_rolls(plain, shifts.astype(np.int64))
        # The reported shift is the one applied (velocity jitter changes velocities, not which cells sound).
        np.testing.assert_array_equal(batch[keys.PIANO_ROLL] > 0, expected > 0)
        if not jitter:
            np.testing.assert_array_equal(batch[keys.PIANO_ROLL], expected)
        seen.extend(shifts.tolist())
    assert len(set(seen)) > 3  # shifts differ between rows


def test_require_skips_and_counts_segments_without_midi(corpus, config):
    ds = MultimodalDataset(corpus, config, split="all", require=("midi",))
    everything = MultimodalDataset(corpus, config, split="all")
    missing = int((everything._cached[keys.MODALITY_MASK][:, 2] == 0).sum())
    assert missing > 0 and ds.num_examples == everything.num_examples - missing
    assert ds.report()["skipped"]["missing:midi"] == missing
    assert (batches_to_arrays(ds)[keys.MODALITY_MASK][:, 2] == 1).all()


def test_midi_tokens_round_trip(corpus):
    from chroma_keras.preprocessing.midi_tokens import detokenize, tokenize_midi_bytes, tokenizer_from_config

    config = load_preset_config("cvae_chromatic", {**OVERRIDES, "preprocessing.midi.tokenization": "remi", "preprocessing.midi.max_events": 64, "model.generative.type": "autoregressive"})
    ds = MultimodalDataset(corpus, config, split="all", shuffle=False, require=("midi",))
    batch = ds[0][0]
    assert keys.PIANO_ROLL not in batch
    ids, mask = batch[keys.MIDI_TOKENS], batch[keys.MIDI_TOKEN_MASK]
    assert ids.shape == (5, 64) and ids.dtype == np.int32 and mask.any()
    tokenizer = tokenizer_from_config(config)
    again = tokenize_midi_bytes(detokenize(ids[0], tokenizer, mask=mask[0]), tokenizer, source="round trip")
    n = int(mask[0].sum())
    np.testing.assert_array_equal(np.asarray(again.ids)[:n], ids[0][:n])


def test_text_ids_round_trip_unicode():
    ids, mask = text_to_ids("Rêve – 夢", 32)
    assert ids_to_text(ids) == "Rêve – 夢" and mask.sum() == len("Rêve – 夢".encode())
    cut, _ = text_to_ids("ab夢", 3)  # a multi-byte character cut in half is dropped
    assert ids_to_text(cut) == "ab"


def _hostile_corpus(path):
    rows = generate_demo_corpus(
        songs_per_colour=1, segments_per_song=4, segment_seconds=2.0, audio="additive", audio_sample_rate=SAMPLE_RATE,
        missing_midi_fraction=0.0, duplicate_rows=1,
    ).to_pylist()
    audio = rows[0]["audio_waveform"]
    midi = rows[0]["midi_binary"]
    nan_audio = np.frombuffer(audio, "<f4").copy()
    nan_audio[10] = np.nan
    inf_audio = nan_audio.copy()
    inf_audio[10] = np.inf
    cases = {
        1: {"midi_binary": midi[: len(midi) // 2]},  # truncated MIDI
        2: {"midi_binary": b""},  # zero-byte MIDI
        3: {"midi_binary": b"RIFF\x00\x00\x00\x00WAVEfmt "},  # not MIDI
        4: {"audio_waveform": nan_audio.tobytes()},
        5: {"audio_waveform": inf_audio.tobytes()},
        6: {"audio_waveform": audio[:-2]},  # byte length not a multiple of 4
        7: {"audio_waveform": b""},  # empty audio
        8: {"audio_sample_rate": 12345},  # unexpected rate
        9: {"rainbow_color": "Chartreuse", "rainbow_color_temporal_mode": None,
            "rainbow_color_objectional_mode": None, "rainbow_color_ontological_mode": None},  # unknown label
        10: {"training_data": "{not json"},
    }
    for i, change in cases.items():
        rows[i].update(change)
    pq.write_table(pa.Table.from_pylist(rows, schema=DEMO_SCHEMA), path)
    return {i: rows[i]["segment_id"] for i in cases}


@pytest.mark.parametrize("cache", [True, False])
def test_hostile_rows_are_masked_or_skipped_and_counted(tmp_path, config, cache):
    ids = _hostile_corpus(tmp_path / "hostile.parquet")
    ds = MultimodalDataset(tmp_path / "hostile.parquet", config, split="all", modalities=ALL, shuffle=False, cache=cache)
    arrays = batches_to_arrays(ds)
    for key, value in arrays.items():
        if value.dtype.kind == "f":
            assert np.isfinite(value).all(), key
    position = {s: i for i, s in enumerate(ds.segment_ids())} if cache else None
    if cache:
        for case in (1, 2, 3):
            assert arrays[keys.MODALITY_MASK][position[ids[case]], 2] == 0
            assert not arrays[keys.PIANO_ROLL][position[ids[case]]].any()
        for case in (4, 5, 6, 7, 8):
            assert arrays[keys.MODALITY_MASK][position[ids[case]], 1] == 0
            assert not arrays[keys.AUDIO][position[ids[case]]].any()
        assert ids[9] not in position  # unknown colour: row skipped
        assert arrays[keys.REBRACKETING][position[ids[10]]][-1] == 0  # malformed JSON: no rebracketing
    report = ds.report()
    assert report["skipped"]["label:unknown_colour"] == 1
    assert report["skipped"]["duplicate_segment_id"] == 1
    assert sum(n for r, n in report["masked"].items() if r.startswith("midi:")) == 3
    assert sum(n for r, n in report["masked"].items() if r.startswith("audio:")) == 5
    assert sum(n for r, n in report["masked"].items() if r.startswith("rebracketing")) == 1


def test_bad_arguments_raise_clear_errors(corpus, config):
    with pytest.raises(DataError, match="split must be one of"):
        MultimodalDataset(corpus, config, split="dev")
    with pytest.raises(DataError, match="modalities must be among"):
        MultimodalDataset(corpus, config, modalities=["video"])
    with pytest.raises(DataError, match="require=.*not loaded"):
        MultimodalDataset(corpus, config, modalities=["midi"], require=("audio",))
    with pytest.raises(DataError, match="no such file"):
        MultimodalDataset(corpus.parent / "missing.parquet", config)


@pytest.mark.parametrize("cache", [True, False])
def test_token_augmentation_transposes_every_pitched_note_by_one_shift(corpus, cache):
    import symusic

    from chroma_keras.preprocessing.midi_tokens import detokenize, tokenizer_from_config

    config = load_preset_config(
        "cvae_chromatic",
        {**OVERRIDES, "preprocessing.midi.tokenization": "remi", "preprocessing.midi.max_events": 512,
         "preprocessing.midi.augmentations.transpose_semitones": 3, "model.generative.type": "autoregressive"},
    )
    tokenizer = tokenizer_from_config(config)
    kwargs = dict(split="all", shuffle=False, require=("midi",), cache=cache)
    plain = MultimodalDataset(corpus, config, augment=False, **kwargs)[0][0]
    augmented = MultimodalDataset(corpus, config, augment=True, **kwargs)[0][0]
    shifts = set()
    for i in range(len(plain[keys.MIDI_TOKENS])):
        pitches = []
        for batch in (plain, augmented):
            score = symusic.Score.from_midi(detokenize(batch[keys.MIDI_TOKENS][i], tokenizer, mask=batch[keys.MIDI_TOKEN_MASK][i]))
            pitches.append(np.array(sorted(n.pitch for t in score.tracks for n in t.notes)))
        assert len(pitches[0]) == len(pitches[1]) > 0
        shift = set((pitches[1] - pitches[0]).tolist())
        assert len(shift) == 1 and abs(next(iter(shift))) <= 3  # one shift per segment, within the range
        shifts |= shift
    assert len(shifts) > 1  # segments draw different shifts


def test_velocity_jitter_changes_velocities_not_notes(corpus):
    config = load_preset_config("cvae_chromatic", {**OVERRIDES, "preprocessing.midi.augmentations.velocity_jitter": 0.3,
                                                    "preprocessing.midi.augmentations.transpose_semitones": 0})
    plain = MultimodalDataset(corpus, config, split="all", shuffle=False, augment=False, require=("midi",))[0][0][keys.PIANO_ROLL]
    jittered = MultimodalDataset(corpus, config, split="all", shuffle=False, augment=True, require=("midi",))[0][0][keys.PIANO_ROLL]
    np.testing.assert_array_equal(plain > 0, jittered > 0)
    assert not np.allclose(plain, jittered)


def test_entry_points_are_importable_from_the_data_package(corpus, config):
    from chroma_keras import data

    source = data.open_segments(corpus)
    assert isinstance(source, data.SegmentSource) and len(source) == len(open_segments(corpus))
    assert data.MultimodalDataset is MultimodalDataset


def test_text_only_audio_only_and_midi_only_rows(tmp_path, config):
    rows = generate_demo_corpus(
        songs_per_colour=1, segments_per_song=3, segment_seconds=2.0, audio="additive", audio_sample_rate=SAMPLE_RATE,
        missing_midi_fraction=0.0, duplicate_rows=0,
    ).to_pylist()
    rows[0].update(audio_waveform=None, has_audio=False, midi_binary=None, has_midi=False, lyric_text="only words")
    rows[1].update(midi_binary=None, has_midi=False, lyric_text="", concept="")  # audio only
    rows[2].update(audio_waveform=None, has_audio=False, lyric_text="", concept="")  # MIDI only
    pq.write_table(pa.Table.from_pylist(rows, schema=DEMO_SCHEMA), tmp_path / "partial.parquet")
    ds = MultimodalDataset(tmp_path / "partial.parquet", config, split="all", modalities=ALL, shuffle=False)
    arrays = batches_to_arrays(ds)
    mask = dict(zip(ds.segment_ids(), arrays[keys.MODALITY_MASK].tolist()))
    assert mask[rows[0]["segment_id"]] == [1.0, 0.0, 0.0]
    assert mask[rows[1]["segment_id"]] == [0.0, 1.0, 0.0]
    assert mask[rows[2]["segment_id"]] == [0.0, 0.0, 1.0]
    position = ds.segment_ids().index(rows[0]["segment_id"])
    assert ids_to_text(arrays[keys.TEXT_IDS][position]) == "only words"
    assert not arrays[keys.AUDIO][position].any() and not arrays[keys.PIANO_ROLL][position].any()


def test_fit_runs_on_dataset_batches_with_worker_threads(corpus, config):
    import keras

    ds = MultimodalDataset(corpus, config, split="train", modalities=ALL, require=("midi",), workers=2)
    roll = keras.Input((64, 16), name=keys.PIANO_ROLL)
    colour = keras.layers.Dense(len(modes.COLOURS))(keras.layers.Flatten()(roll))
    model = keras.Model({keys.PIANO_ROLL: roll}, colour)

    class ColourTargets(keras.utils.PyDataset):
        def __init__(self, inner):
            super().__init__(workers=inner.workers)
            self.inner = inner

        def __len__(self):
            return len(self.inner)

        def __getitem__(self, i):
            batch = self.inner[i][0]
            return {keys.PIANO_ROLL: batch[keys.PIANO_ROLL]}, batch[keys.COLOUR_INDEX]

    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(ColourTargets(ds), epochs=8, verbose=0)
    losses = history.history["loss"]
    assert np.isfinite(losses).all() and losses[-1] < 0.5 * losses[0]  # register and rhythm identify the colour


def test_modalities_not_loaded_are_not_reported_as_masked(corpus, config):
    ds = MultimodalDataset(corpus, config, split="all", modalities=["midi"])
    assert not any(r.startswith("audio:") for r in ds.report()["masked"]), ds.report()
