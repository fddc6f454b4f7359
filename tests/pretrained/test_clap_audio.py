"""CLAP's audio branch against transformers' ClapModel / ClapFeatureExtractor (random weights, built from configs).

Tolerances (float32 everywhere):
* model outputs and every hidden state: ``atol=1e-4, rtol=1e-4`` (measured max abs error ~1e-5);
* log-mel features in dB: ``atol=1e-4, rtol=1e-4`` for the float64 NumPy path on any signal and for the
  in-graph float32 path on broadband signals; for a pure tone the in-graph path is held to that only in
  bands within 60 dB of the frame's peak (a float32 STFT has a noise floor ~130 dB under the peak).
"""

import json

import keras
import numpy as np
import pytest

from chroma_keras import pretrained
from chroma_keras.data import keys
from chroma_keras.errors import CheckpointError, ModelInputError, PresetError
from chroma_keras.pretrained import clap_audio
from chroma_keras.pretrained.clap_features import ClapFrontEnd, clap_features, fit_to_length

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

SR = 48000
TOL = dict(atol=1e-4, rtol=1e-4)
# A small HTS-AT with every feature of the real one: 3 stages with shifted windows in the first two,
# an unshifted last stage whose grid equals the window, patch merging, and frame resampling (201 -> 256).
TINY_AUDIO = dict(
    spec_size=64, num_mel_bins=16, window_size=4, patch_embeds_hidden_size=8, depths=[1, 2, 1],
    num_attention_heads=[2, 2, 4], hidden_size=32, aff_block_r=2,
)
TINY_TEXT = dict(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16, max_position_embeddings=20)


def to_np(x):
    return keras.ops.convert_to_numpy(x)


def _randomise(module):
    """Non-trivial values for the tensors random init leaves constant (bias tables, BatchNorm statistics)."""
    torch.manual_seed(1)
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            if "relative_position_bias_table" in name:
                parameter.normal_(0, 0.5)
        for layer in module.modules():
            if isinstance(layer, torch.nn.BatchNorm2d):
                layer.running_mean.normal_(0, 1)
                layer.running_var.uniform_(0.5, 2.0)
                layer.weight.normal_(1, 0.2)
                layer.bias.normal_(0, 0.2)
    return module.eval()


def _reference(fusion, tmp_path_factory):
    torch.manual_seed(0)
    config = transformers.ClapConfig(
        audio_config={**TINY_AUDIO, "enable_fusion": fusion}, text_config=TINY_TEXT, projection_dim=12
    )
    model = _randomise(transformers.ClapModel(config))
    directory = tmp_path_factory.mktemp("clap_fused" if fusion else "clap")
    model.save_pretrained(directory)
    return model, directory


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    model, directory = _reference(False, tmp_path_factory)
    converted, config, metadata = pretrained.convert_checkpoint("clap_audio", directory)
    return model, directory, converted, config, metadata


def _features(batch=2, channels=1, frames=201, mels=16, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(batch, channels, frames, mels)) * 10 - 40).astype("float32")


def _compare(keras_model, hf_model, features, is_longer=None):
    longer = np.zeros(len(features), bool) if is_longer is None else is_longer
    with torch.no_grad():
        ref = hf_model.audio_model(
            input_features=torch.from_numpy(features), is_longer=torch.from_numpy(longer)[:, None], output_hidden_states=True
        )
        projected = hf_model.audio_projection(ref.pooler_output).numpy()
        normalised = hf_model.get_audio_features(input_features=torch.from_numpy(features), is_longer=torch.from_numpy(longer)[:, None])
    ours = keras_model({"input_features": features, "is_longer": longer}, output_hidden_states=True)
    np.testing.assert_allclose(to_np(ours["pooler_output"]), ref.pooler_output.numpy(), **TOL)
    np.testing.assert_allclose(to_np(ours["audio_embeds"]), projected, **TOL)
    embeds = to_np(ours["audio_embeds"])
    expected_normalised = getattr(normalised, "pooler_output", normalised)
    np.testing.assert_allclose(embeds / np.linalg.norm(embeds, axis=-1, keepdims=True), expected_normalised.numpy(), **TOL)
    np.testing.assert_allclose(np.transpose(to_np(ours["last_hidden_state"]), (0, 3, 1, 2)), ref.last_hidden_state.numpy(), **TOL)
    assert len(ours["hidden_states"]) == len(ref.hidden_states) == len(TINY_AUDIO["depths"]) + 1
    for mine, theirs in zip(ours["hidden_states"], ref.hidden_states):
        np.testing.assert_allclose(np.transpose(to_np(mine), (0, 3, 1, 2)), theirs.numpy(), **TOL)
    return ours


def test_converted_clap_model_matches_transformers(reference):
    hf_model, _, converted, config, metadata = reference
    assert config["enable_fusion"] is False and config["projection_dim"] == 12
    assert metadata["config_source"] == "config.json next to the checkpoint"
    assert metadata["tensors_copied"] == len(converted.weights)
    _compare(converted, hf_model, _features())
    # Exactly as many frames as the image holds (no resampling) works too.
    _compare(converted, hf_model, _features(batch=1, frames=converted.max_frames, seed=1))


def test_fusion_branch_matches_transformers(tmp_path_factory):
    hf_model, directory = _reference(True, tmp_path_factory)
    converted, config, _ = pretrained.convert_checkpoint("clap_audio", directory)
    assert config["enable_fusion"] is True
    # One clip takes the fusion branch (is_longer), the other only the global map.
    _compare(converted, hf_model, _features(batch=2, channels=4, seed=2), is_longer=np.array([True, False]))


def test_audio_model_with_projection_checkpoint_converts(tmp_path):
    torch.manual_seed(3)
    config = transformers.ClapAudioConfig(**TINY_AUDIO, projection_dim=12)
    hf_model = _randomise(transformers.ClapAudioModelWithProjection(config))
    hf_model.save_pretrained(tmp_path)
    converted, ours_config, _ = pretrained.convert_checkpoint("clap_audio", tmp_path)
    assert ours_config["projection_dim"] == 12
    features = _features(seed=3)
    with torch.no_grad():
        expected = hf_model(input_features=torch.from_numpy(features)).audio_embeds.numpy()
    np.testing.assert_allclose(to_np(converted(features)["audio_embeds"]), expected, **TOL)


def test_waveform_to_embedding_matches_the_reference_pipeline(reference):
    """ClapFeatureExtractor + ClapModel vs ClapFrontEnd + our model, from raw 48 kHz audio."""
    hf_model, _, converted, _, _ = reference
    extractor = transformers.ClapFeatureExtractor(feature_size=16, sampling_rate=SR, max_length_s=2, truncation="rand_trunc", frequency_min=50)
    rng = np.random.default_rng(4)
    clips = [rng.normal(size=int(0.7 * SR)).astype("float32") * 0.2, rng.normal(size=2 * SR).astype("float32") * 0.05]
    inputs = extractor(clips, sampling_rate=SR, return_tensors="pt")
    with torch.no_grad():
        expected = hf_model.audio_projection(hf_model.audio_model(**inputs).pooler_output).numpy()
    front = ClapFrontEnd(n_mels=16, max_length_s=2)
    audio = np.zeros((2, 2 * SR), "float32")
    mask = np.zeros_like(audio)
    for i, clip in enumerate(clips):
        audio[i, : len(clip)], mask[i, : len(clip)] = clip, 1.0
    features, _ = front(audio, sample_mask=mask)
    np.testing.assert_allclose(to_np(features), inputs["input_features"].numpy(), **TOL)
    np.testing.assert_allclose(to_np(converted(features)["audio_embeds"]), expected, **TOL)


def _clips():
    rng = np.random.default_rng(5)
    t = np.arange(int(1.3 * SR)) / SR
    return {
        "noise": (rng.normal(size=int(0.7 * SR)) * 0.1).astype("float32"),
        "tone": (0.5 * np.sin(2 * np.pi * 440 * t)).astype("float32"),
        "quiet": (rng.normal(size=int(1.1 * SR)) * 1e-4).astype("float32"),
        "long": (rng.normal(size=int(2.9 * SR)) * 0.3).astype("float32"),
        "barely_long": (rng.normal(size=2 * SR + 100) * 0.3).astype("float32"),
    }


@pytest.mark.parametrize("truncation", ["rand_trunc", "fusion"])
def test_front_end_matches_clap_feature_extractor(truncation):
    extractor = transformers.ClapFeatureExtractor(sampling_rate=SR, max_length_s=2, truncation=truncation, frequency_min=50)
    front = ClapFrontEnd(max_length_s=2, truncation=truncation)
    for name, clip in _clips().items():
        np.random.seed(7)  # the reference draws its crops from NumPy's global generator
        expected = extractor(clip, sampling_rate=SR, return_tensors="np")
        ours = clap_features(clip, front_end=front, seed=7)
        assert ours["input_features"].shape == expected["input_features"].shape, name
        np.testing.assert_allclose(ours["input_features"], expected["input_features"], **TOL, err_msg=name)
        np.testing.assert_array_equal(ours["is_longer"], expected["is_longer"].ravel(), err_msg=name)
        if len(clip) > front.max_length:
            continue
        graph, is_longer = front(clip[None])
        graph = to_np(graph)
        reference_db = expected["input_features"]
        if name == "tone":  # compare the bands a float32 STFT resolves: within 60 dB of the frame's peak
            resolved = reference_db >= reference_db.max(axis=-1, keepdims=True) - 60
            graph, reference_db = graph[resolved], reference_db[resolved]
        np.testing.assert_allclose(graph, reference_db, **TOL, err_msg=name)
        assert not to_np(is_longer).any()


def test_front_end_reads_only_the_real_samples_and_takes_the_first_window():
    front = ClapFrontEnd(n_mels=16, max_length_s=0.5)
    rng = np.random.default_rng(6)
    short, long = rng.normal(size=9000).astype("float32"), rng.normal(size=40000).astype("float32")
    audio = np.full((2, 40000), 0.7, "float32")  # garbage beyond the mask must not matter
    audio[0, :9000], audio[1] = short, long
    mask = np.zeros_like(audio)
    mask[0, :9000], mask[1] = 1.0, 1.0
    batched, _ = front(audio, sample_mask=mask)
    for row, clip in enumerate((short, long)):
        alone = clap_features(clip, front_end=front, seed=None, precision="float32")["input_features"]
        np.testing.assert_allclose(to_np(batched)[row], alone[0], atol=1e-5)
    for padding in ("repeatpad", "repeat", "pad"):
        fitted = to_np(ClapFrontEnd(max_length_s=0.5, padding=padding).fit_length(short[None]))[0]
        np.testing.assert_array_equal(fitted, fit_to_length(short, 24000, padding))
    assert fit_to_length(np.arange(5.0), 3, crop_start=2).tolist() == [2.0, 3.0, 4.0]
    with pytest.raises(ModelInputError, match="padding must be one of"):
        ClapFrontEnd(padding="mirror")
    with pytest.raises(ModelInputError, match=r"audio must be float \[batch, samples\]"):
        front(np.zeros((2, 100, 2), "float32"))


def test_convert_save_load_round_trip_is_identical(reference, tmp_path):
    import chroma_keras as ck

    _, directory, converted, config, metadata = reference
    out = pretrained.save_converted(converted, tmp_path / "converted", "clap_audio", config, metadata)
    features = _features(seed=8)
    expected = to_np(converted(features)["audio_embeds"])
    for loaded in (pretrained.load_converted(out), ck.from_preset(str(out))):
        assert isinstance(loaded, clap_audio.ClapAudioModel)
        np.testing.assert_array_equal(to_np(loaded(features)["audio_embeds"]), expected)
    assert json.loads((out / "config.json").read_text())["architecture"] == "clap_audio"


def test_wrong_or_partial_checkpoints_raise_checkpoint_errors(reference, tmp_path):
    from safetensors.numpy import save_file

    _, directory, _, _, _ = reference
    tensors = pretrained.read_checkpoint(directory)
    partial = {k: v for k, v in tensors.items() if "layers.1.blocks.1.attention.self.query" not in k}
    partial["audio_model.audio_encoder.extra.weight"] = np.zeros(3, "float32")
    save_file(partial, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text((directory / "config.json").read_text())
    with pytest.raises(CheckpointError) as info:
        pretrained.convert_checkpoint("clap_audio", tmp_path)
    assert "audio_model.audio_encoder.layers.1.blocks.1.attention.self.query.weight" in info.value.missing
    assert info.value.unexpected == ["audio_model.audio_encoder.extra.weight"]
    # A checkpoint of another size: every mis-shaped tensor is named.
    with pytest.raises(CheckpointError, match="mis-shaped") as info:
        pretrained.convert_checkpoint("clap_audio", directory, config={**TINY_AUDIO, "patch_embeds_hidden_size": 16, "hidden_size": 64})
    assert any("patch_embed.proj.weight" in name for name, _, _ in info.value.mis_shaped)
    # Options the port cannot honour are refused by name.
    reference_config = json.loads((directory / "config.json").read_text())
    for key, value, match in [
        ("fusion_type", "channel_map", "audio_config.fusion_type='channel_map'"),
        ("flatten_patch_embeds", False, "audio_config.flatten_patch_embeds"),
        ("window_size", 8, "window_size=8"),
        ("hidden_act", "mish", "hidden_act='mish'"),
        ("spec_distortion", 1, "audio_config.spec_distortion"),
    ]:
        bad = json.loads(json.dumps(reference_config))
        bad["audio_config"][key] = value
        with pytest.raises(CheckpointError, match=match):
            clap_audio.config_from_reference(bad)


def test_bad_features_raise_model_input_errors(reference):
    _, _, converted, _, _ = reference
    with pytest.raises(ModelInputError, match=r"\[batch, 1, frames, 16\].*shape=\(2, 1, 201, 12\)"):
        converted(_features(mels=12))
    with pytest.raises(ModelInputError, match="257 frames; this config accepts at most 256"):
        converted(_features(frames=257))
    with pytest.raises(ModelInputError, match="needs 'input_features'"):
        converted({"features": _features()})


def test_presets_are_registered_and_match_larger_clap_music():
    presets = pretrained.pretrained_presets()
    assert presets["clap_audio_larger_music"].name == "clap_audio"
    preset = clap_audio.PRESETS["clap_audio_larger_music"]
    assert preset["reference"] == "laion/larger_clap_music"
    # laion/larger_clap_music's config.json (audio part as published).
    published = {
        "architectures": ["ClapModel"], "model_type": "clap", "projection_dim": 512, "projection_hidden_act": "relu",
        "audio_config": {"depths": [2, 2, 12, 2], "hidden_size": 1024, "model_type": "clap_audio_model", "patch_embeds_hidden_size": 128},
        "text_config": {"model_type": "clap_text_model"}, "logit_scale_init_value": 14.285714285714285,
    }
    assert clap_audio.config_from_reference(published) == clap_audio.validate_config(preset["config"])


# === The scorer's audio encoder ===

def _scorer_config(**audio_encoder):
    from chroma_keras.config import load_preset_config

    config = load_preset_config(
        "scorer_late_fusion",
        {
            "model.audio_encoder.type": "clap",
            "model.audio_encoder.hidden_dim": 16,
            "model.audio_encoder.dropout": 0.0,
            "model.scorer.fusion_dim": 16,
            "model.scorer.head_dim": 16,
            "model.scorer.dropout": 0.0,
            "preprocessing.audio.sample_rate": SR,
            "preprocessing.audio.duration": 0.5,
        },
    )
    config["model"]["text_encoder"] = None
    config["model"]["midi_encoder"] = None
    # Keys the schema does not know yet are read with .get() by the encoder. A 1 s clip is 101 frames:
    # an 8-mel, 32 x 32 HTS-AT holds 128.
    backbone = dict(spec_size=32, num_mel_bins=8, window_size=4, patch_embeds_hidden_size=8, depths=[1, 1],
                    num_attention_heads=[1, 2], hidden_size=16, projection_dim=8)
    config["model"]["audio_encoder"].update({"max_length_s": 1.0, "backbone": backbone, **audio_encoder})
    return config


def _labelled_batch(n=8, samples=SR // 2):
    from chroma_keras import modes

    rng = np.random.default_rng(9)
    colours = [c for c in modes.COLOURS if c.has_training_data]
    labels = [colours[i] for i in rng.integers(len(colours), size=n)]
    batch = {
        keys.AUDIO: (rng.normal(size=(n, samples)) * 0.1).astype("float32"),
        keys.AUDIO_MASK: np.ones((n, samples), "float32"),
        keys.COLOUR_INDEX: np.array([c.index for c in labels], "int32"),
        keys.CONFIDENCE: np.ones(n, "float32"),
        keys.LABEL_MASK: np.ones(n, "float32"),
    }
    for axis, key in keys.AXIS_TARGETS.items():
        batch[key] = np.stack([modes.soft_targets(c.condition())[axis] for c in labels]).astype("float32")
    return batch


def test_a_scorer_with_the_clap_encoder_trains_and_round_trips(tmp_path):
    from chroma_keras.models.encoders.clap_audio_encoder import ClapAudioEncoder
    from chroma_keras.models.scorer import Scorer

    keras.utils.set_random_seed(0)
    model = Scorer.from_preset_config(_scorer_config())
    encoder = model.encoders["audio"]
    assert isinstance(encoder, ClapAudioEncoder) and encoder.backbone_config["num_mel_bins"] == 8
    batch = _labelled_batch()
    model.compile(keras.optimizers.Adam(3e-3))
    losses = model.fit(batch, batch_size=8, epochs=6, verbose=0).history["loss"]
    assert losses[-1] < 0.95 * losses[0], losses
    # get_config / from_config rebuilds the same function; a .keras file restores it.
    audio = {keys.AUDIO: batch[keys.AUDIO][:2], keys.AUDIO_MASK: batch[keys.AUDIO_MASK][:2]}
    clone = ClapAudioEncoder.from_config(encoder.get_config())
    clone(audio)
    clone.set_weights(encoder.get_weights())
    np.testing.assert_allclose(to_np(clone(audio)["embedding"]), to_np(encoder(audio)["embedding"]), atol=1e-5)
    assert clone.get_config() == encoder.get_config()
    model.save(tmp_path / "scorer.keras")
    restored = keras.saving.load_model(tmp_path / "scorer.keras")
    np.testing.assert_allclose(to_np(restored(audio)["colour"]), to_np(model(audio)["colour"]), atol=1e-5)


def test_the_encoder_loads_a_converted_directory_and_can_be_frozen(reference, tmp_path):
    from chroma_keras.models.encoders.base import build_encoder

    _, _, converted, config, metadata = reference
    out = pretrained.save_converted(converted, tmp_path / "clap", "clap_audio", config, metadata)
    encoder = build_encoder("audio", _scorer_config(pretrained_model=str(out), freeze_backbone=True, max_length_s=2.0))
    audio = {keys.AUDIO: _labelled_batch(n=2, samples=SR)[keys.AUDIO]}
    encoder(audio)
    features, _ = encoder.front_end(audio[keys.AUDIO])
    np.testing.assert_array_equal(
        to_np(encoder.backbone(features)["audio_embeds"]), to_np(converted(features)["audio_embeds"])
    )
    assert not encoder.backbone.trainable and encoder.backbone.trainable_weights == []
    assert len(encoder.trainable_weights) == 4  # the two output Dense layers


def test_encoder_configuration_errors_name_the_preset_keys(tmp_path):
    from chroma_keras.models.encoders.base import build_encoder

    config = _scorer_config()
    config["preprocessing"]["audio"]["sample_rate"] = 44100
    with pytest.raises(PresetError, match="preprocessing.audio.sample_rate: 44100.*model.audio_encoder.type: clap"):
        build_encoder("audio", config)
    with pytest.raises(PresetError, match="model.audio_encoder.pretrained_model"):
        build_encoder("audio", _scorer_config(pretrained_model=str(tmp_path / "nothing")))
    with pytest.raises(PresetError, match="max_length_s=20.0"):
        build_encoder("audio", _scorer_config(max_length_s=20.0))


@pytest.mark.slow
def test_full_larger_clap_music_audio_branch_matches_transformers(tmp_path):
    """The real size (68.6 M audio parameters), random weights, one 10 s clip's features."""
    preset = clap_audio.PRESETS["clap_audio_larger_music"]["config"]
    torch.manual_seed(0)
    audio_config = {k: preset[k] for k in ("depths", "hidden_size", "patch_embeds_hidden_size")}
    hf_model = _randomise(transformers.ClapModel(transformers.ClapConfig(audio_config=audio_config, text_config=TINY_TEXT)))
    hf_model.save_pretrained(tmp_path)
    converted, config, _ = pretrained.convert_checkpoint("clap_audio", tmp_path)
    assert config == clap_audio.validate_config(preset)
    features = _features(batch=1, frames=1001, mels=64, seed=10)
    with torch.no_grad():
        ref = hf_model.audio_model(input_features=torch.from_numpy(features), output_hidden_states=True)
        expected = hf_model.audio_projection(ref.pooler_output).numpy()
    ours = converted(features, output_hidden_states=True)
    np.testing.assert_allclose(to_np(ours["pooler_output"]), ref.pooler_output.numpy(), **TOL)
    np.testing.assert_allclose(to_np(ours["audio_embeds"]), expected, **TOL)
    for mine, theirs in zip(ours["hidden_states"], ref.hidden_states):
        np.testing.assert_allclose(np.transpose(to_np(mine), (0, 3, 1, 2)), theirs.numpy(), **TOL)


def test_stochastic_depth_and_dropout_act_only_in_training():
    keras.utils.set_random_seed(11)
    model = clap_audio.build({**TINY_AUDIO, "projection_dim": 4, "drop_path_rate": 0.5, "hidden_dropout_prob": 0.2})
    features = _features(seed=11)
    inference = [to_np(model(features)["audio_embeds"]) for _ in range(2)]
    np.testing.assert_array_equal(inference[0], inference[1])
    trained = to_np(model(features, training=True)["audio_embeds"])
    assert np.isfinite(trained).all() and not np.allclose(trained, inference[0])
