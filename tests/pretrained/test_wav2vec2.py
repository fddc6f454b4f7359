"""Wav2Vec2 in Keras against transformers' Wav2Vec2Model: hidden-state parity, checkpoint formats, round trips, errors.

The references are built from configs with random weights (nothing is
downloaded), saved with ``save_pretrained`` and converted with our converter.
Parity: every hidden state, the last hidden state and the conv features agree
within ``atol = rtol = 1e-4`` in float32 (measured max abs error ~2e-6 on the
tiny configs, ~1e-5 at the full base config).
"""

import json
import time

import keras
import numpy as np
import pytest

import chroma_keras as ck
from chroma_keras import pretrained
from chroma_keras.errors import CheckpointError, ModelInputError
from chroma_keras.pretrained import wav2vec2

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

ATOL = RTOL = 1e-4

# Two tiny configs: wav2vec2-base's layout (group-norm conv stack, post-norm layers, no conv bias)
# and the large models' (layer-norm conv stack, pre-norm "stable" layers, conv bias).
TINY = dict(
    hidden_size=16,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=32,
    conv_dim=(8, 12),
    conv_kernel=(10, 3),
    conv_stride=(5, 2),
    num_conv_pos_embeddings=8,
    num_conv_pos_embedding_groups=2,
)
VARIANTS = {
    "base_layout": dict(feat_extract_norm="group", do_stable_layer_norm=False, conv_bias=False),
    "large_layout": dict(feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True, num_conv_pos_embeddings=7),
}


def _reference(variant="base_layout", head=None, seed=0, **overrides):
    torch.manual_seed(seed)
    config = transformers.Wav2Vec2Config(**{**TINY, **VARIANTS[variant], **overrides})
    cls = getattr(transformers, head or "Wav2Vec2Model")
    model = cls(config).eval()
    with torch.no_grad():  # non-trivial norms and biases, so a swapped weight / bias cannot pass unnoticed
        for name, param in model.named_parameters():
            if name.endswith("bias") or "layer_norm.weight" in name:
                param.add_(0.1 * torch.randn_like(param))
    return model


def _batch(samples=1200, real=(1200, 700), seed=0):
    audio = np.random.default_rng(seed).normal(size=(len(real), samples)).astype("float32")
    mask = np.zeros_like(audio)
    for row, length in enumerate(real):
        mask[row, :length] = 1.0
    return audio * mask, mask


def _reference_outputs(model, audio, mask=None):
    with torch.no_grad():
        out = model(
            torch.from_numpy(audio),
            attention_mask=None if mask is None else torch.from_numpy(mask).long(),
            output_hidden_states=True,
        )
    return out


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def _assert_parity(keras_out, reference_out):
    assert len(keras_out["hidden_states"]) == len(reference_out.hidden_states)
    for i, (ours, theirs) in enumerate(zip(keras_out["hidden_states"], reference_out.hidden_states)):
        np.testing.assert_allclose(_numpy(ours), theirs.numpy(), atol=ATOL, rtol=RTOL, err_msg=f"hidden state {i}")
    np.testing.assert_allclose(_numpy(keras_out["sequence_output"]), reference_out.last_hidden_state.numpy(), atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(_numpy(keras_out["extract_features"]), reference_out.extract_features.numpy(), atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "padded_batch_with_mask"])
def test_every_hidden_state_matches_transformers(variant, masked, tmp_path):
    reference = _reference(variant)
    reference.save_pretrained(tmp_path)
    model, config, metadata = pretrained.convert_checkpoint("wav2vec2", tmp_path)
    assert metadata["config_source"] == "config.json next to the checkpoint"
    assert config["feat_extract_norm"] == VARIANTS[variant]["feat_extract_norm"]
    audio, mask = _batch()
    if masked:
        out = model({"audio": audio, "padding_mask": mask})
        _assert_parity(out, _reference_outputs(reference, audio, mask))
        # The mask matters: the padded row's real frames differ from an unmasked run.
        unmasked = _numpy(model(audio)["sequence_output"])
        frames = int(np.sum(_numpy(out["padding_mask"])[1]))
        assert frames == int(model.num_frames(700)) < unmasked.shape[1]
        assert np.abs(_numpy(out["sequence_output"])[1, :frames] - unmasked[1, :frames]).max() > 1e-3
    else:
        _assert_parity(model(audio), _reference_outputs(reference, audio))


def test_weight_norm_stored_as_weight_g_weight_v_or_folded_converts_the_same(tmp_path):
    reference = _reference()
    state = {k: v.detach().clone() for k, v in reference.state_dict().items()}
    prefix = "encoder.pos_conv_embed.conv."
    g, v = state.pop(prefix + "parametrizations.weight.original0"), state.pop(prefix + "parametrizations.weight.original1")
    legacy = dict(state, **{prefix + "weight_g": g, prefix + "weight_v": v})
    folded = dict(state, **{prefix + "weight": reference.encoder.pos_conv_embed.conv.weight.detach().clone()})
    audio, _ = _batch()
    expected = _reference_outputs(reference, audio)
    for name, tensors in (("legacy.bin", legacy), ("folded.bin", folded)):
        torch.save(tensors, tmp_path / name)
        model, _, _ = pretrained.convert_checkpoint("wav2vec2", tmp_path / name, config=wav2vec2.config_from_reference(reference.config.to_dict()))
        _assert_parity(model(audio), expected)


# Wav2Vec2ForPreTraining is how facebook/wav2vec2-base itself is published (quantizer and projections next to the backbone).
@pytest.mark.parametrize("head", ["Wav2Vec2ForCTC", "Wav2Vec2ForPreTraining"])
def test_a_checkpoint_with_a_head_converts_its_backbone(head, tmp_path):
    reference = _reference(head=head, codevector_dim=8, proj_codevector_dim=8, num_codevectors_per_group=4)
    reference.save_pretrained(tmp_path)
    keys = pretrained.read_checkpoint(tmp_path)
    assert any(k.startswith("wav2vec2.") for k in keys) and any(not k.startswith("wav2vec2.") for k in keys)
    model, _, metadata = pretrained.convert_checkpoint("wav2vec2", tmp_path)
    audio, mask = _batch()
    _assert_parity(model({"audio": audio, "padding_mask": mask}), _reference_outputs(reference.wav2vec2, audio, mask))
    assert metadata["tensors_copied"] == len([k for k in keys if k.startswith("wav2vec2.") and "masked_spec_embed" not in k]) - 1


def test_convert_save_load_and_from_preset_give_identical_outputs(tmp_path):
    _reference("large_layout").save_pretrained(tmp_path / "hf")
    model, config, metadata = pretrained.convert_checkpoint("wav2vec2", tmp_path / "hf")
    pretrained.save_converted(model, tmp_path / "converted", "wav2vec2", config, metadata)
    assert json.loads((tmp_path / "converted" / "config.json").read_text())["config"] == json.loads(json.dumps(config))
    audio, mask = _batch()
    expected = _numpy(model({"audio": audio, "padding_mask": mask})["sequence_output"])
    for loaded in (pretrained.load_converted(tmp_path / "converted"), ck.from_preset(str(tmp_path / "converted"))):
        assert isinstance(loaded, wav2vec2.Wav2Vec2Backbone)
        np.testing.assert_array_equal(_numpy(loaded({"audio": audio, "padding_mask": mask})["sequence_output"]), expected)
    fresh = pretrained.load_converted(tmp_path / "converted", load_weights=False)
    assert np.abs(_numpy(fresh(audio)["sequence_output"]) - _numpy(model(audio)["sequence_output"])).max() > 1e-3


def test_keras_serialization_round_trips_the_architecture():
    model = wav2vec2.build(wav2vec2.config_from_reference({**TINY, **VARIANTS["base_layout"]}))
    restored = wav2vec2.Wav2Vec2Backbone.from_config(model.get_config())
    restored.set_weights(model.get_weights())
    audio, _ = _batch()
    np.testing.assert_array_equal(_numpy(restored(audio)["sequence_output"]), _numpy(model(audio)["sequence_output"]))


def test_a_partial_or_mis_shaped_checkpoint_is_reported(tmp_path):
    state = {k: v for k, v in _reference().state_dict().items()}
    del state["encoder.layers.1.final_layer_norm.bias"]
    state["encoder.layers.0.attention.q_proj.weight"] = torch.zeros(16, 8)
    state["decoder.weight"] = torch.zeros(3)
    torch.save(state, tmp_path / "broken.bin")
    reference_config = transformers.Wav2Vec2Config(**{**TINY, **VARIANTS["base_layout"]}).to_dict()
    ours = wav2vec2.config_from_reference(reference_config)
    with pytest.raises(CheckpointError) as info:
        pretrained.convert_checkpoint("wav2vec2", tmp_path / "broken.bin", config=ours)
    error = info.value
    assert error.missing == ["encoder.layers.1.final_layer_norm.bias"]
    assert error.unexpected == ["decoder.weight"]
    assert error.mis_shaped == [("encoder.layers.0.attention.q_proj.weight", (8, 16), (16, 16))]
    assert "broken.bin" in str(error)
    # A checkpoint of another size is refused tensor by tensor, not silently half-loaded.
    with pytest.raises(CheckpointError, match="mis-shaped"):
        pretrained.convert_checkpoint("wav2vec2", tmp_path / "broken.bin", config={**ours, "hidden_dim": 32})


@pytest.mark.parametrize(
    "key, value",
    [("add_adapter", True), ("feat_extract_norm", "batch"), ("hidden_act", "mish"), ("model_type", "hubert"),
     ("use_weighted_layer_sum", True)],
)
def test_unsupported_reference_options_name_the_key(key, value):
    with pytest.raises(CheckpointError, match=key):
        wav2vec2.config_from_reference({**TINY, key: value})


def test_config_from_reference_defaults_to_the_base_sizes():
    config = wav2vec2.config_from_reference({})
    preset = wav2vec2.PRESETS["wav2vec2_base"]["config"]
    for key in ("conv_dim", "conv_kernel", "conv_stride", "hidden_dim", "num_layers", "num_heads", "intermediate_dim",
                "num_conv_pos_embeddings", "num_conv_pos_embedding_groups", "stable_layer_norm", "feat_extract_norm"):
        assert config[key] == preset[key], key
    reference = transformers.Wav2Vec2Config().to_dict()
    assert (reference["hidden_size"], reference["conv_kernel"]) == (preset["hidden_dim"], preset["conv_kernel"])


def test_bad_inputs_raise_model_input_error():
    model = wav2vec2.build(wav2vec2.config_from_reference({**TINY, **VARIANTS["base_layout"]}))
    with pytest.raises(ModelInputError, match=r"\[batch, samples\]"):
        model(np.zeros((1, 1200, 2), "float32"))
    with pytest.raises(ModelInputError, match="at least 20"):
        model(np.zeros((1, 10), "float32"))
    with pytest.raises(ModelInputError, match="padding_mask must have the shape"):
        model({"audio": np.zeros((2, 1200), "float32"), "padding_mask": np.ones((2, 1000), "float32")})
    with pytest.raises(ModelInputError, match="needs 'audio'"):
        model({"waveform": np.zeros((2, 1200), "float32")})


@pytest.mark.slow
def test_full_base_config_matches_transformers_on_one_second(tmp_path):
    start = time.perf_counter()
    torch.manual_seed(0)
    reference = transformers.Wav2Vec2Model(transformers.Wav2Vec2Config()).eval()
    reference.save_pretrained(tmp_path)
    model, config, _ = pretrained.convert_checkpoint("wav2vec2", tmp_path)
    assert config["hidden_dim"] == 768 and config["num_layers"] == 12 and model.count_params() > 90_000_000
    audio, mask = _batch(samples=16000, real=(16000, 12000))
    out = model({"audio": audio, "padding_mask": mask})
    assert tuple(out["sequence_output"].shape) == (2, 49, 768)
    _assert_parity(out, _reference_outputs(reference, audio, mask))
    assert time.perf_counter() - start < 120
