"""EnCodec in Keras against transformers' EncodecModel: same continuous embeddings, codes and decoded audio.

The reference models are built from configs with random weights (nothing is
downloaded); their codebooks, all zero after random initialisation, are
filled with random values so the codes are meaningful. Tolerances (float32):
embeddings ``rtol = atol = 1e-4``, decoded audio ``rtol = atol = 1e-3``, codes
identical on at least 99.9 % of the (frame, codebook) entries.
"""

import re

import keras
import numpy as np
import pytest

import chroma_keras as ck
from chroma_keras import pretrained
from chroma_keras.errors import CheckpointError, ModelInputError
from chroma_keras.pretrained.encodec import ENCODEC_24KHZ, Encodec, config_from_reference
from chroma_keras.tokenizers import AudioTokenizer

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

# 800 Hz, hop 8: 100 frames/s, 6 bits per codebook -> 2 / 5 / 10 codebooks at 1.5 / 3 / 6 kbps.
SMALL = dict(
    sampling_rate=800, num_filters=4, hidden_size=16, codebook_size=64, upsampling_ratios=[4, 2],
    target_bandwidths=[1.5, 3.0, 6.0], num_lstm_layers=2,
)
VARIANTS = {
    "causal_reflect": {},
    "noncausal_constant_identity_shortcut": dict(
        use_causal_conv=False, pad_mode="constant", use_conv_shortcut=False, num_residual_layers=2, compress=4,
    ),
    "causal_trim_half_odd_kernels": dict(trim_right_ratio=0.5, kernel_size=5, last_kernel_size=3, upsampling_ratios=[3, 2]),
}
# 24 kHz rate (so the tokenizer resamples to 24000) with tiny widths: 75 frames/s, 5 bits -> 4 / 8 / 16 codebooks.
TINY_24K = dict(num_filters=2, hidden_size=8, codebook_size=32, num_lstm_layers=1, target_bandwidths=[1.5, 3.0, 6.0])
EMBED_TOL = dict(rtol=1e-4, atol=1e-4)
AUDIO_TOL = dict(rtol=1e-3, atol=1e-3)


def _reference(config_kwargs, seed=0):
    torch.manual_seed(seed)
    model = transformers.EncodecModel(transformers.EncodecConfig(**config_kwargs)).eval()
    with torch.no_grad():
        for layer in model.quantizer.layers:
            layer.codebook.embed.normal_()
            layer.codebook.embed_avg.copy_(layer.codebook.embed)
            layer.codebook.cluster_size.fill_(1.0)
    return model


def _saved(model, directory):
    model.save_pretrained(directory)
    return directory


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _reference_outputs(model, wave, bandwidth):
    with torch.no_grad():
        x = torch.from_numpy(wave)
        embedding = model.encoder(x).numpy()
        encoded = model.encode(x, bandwidth=bandwidth)
        codes = encoded.audio_codes[0].numpy()
        audio = model.decode(encoded.audio_codes, encoded.audio_scales)[0].numpy()
    return embedding, codes, audio


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def converted_pair(request, tmp_path_factory):
    reference = _reference({**SMALL, **VARIANTS[request.param]})
    directory = _saved(reference, tmp_path_factory.mktemp(request.param))
    model, config, metadata = pretrained.convert_checkpoint("encodec", directory)
    return reference, model, config, metadata, directory


def test_embeddings_codes_and_audio_match_transformers_at_every_bandwidth(converted_pair):
    reference, model, config, metadata, _ = converted_pair
    assert metadata["config_source"] == "config.json next to the checkpoint"
    wave = np.random.default_rng(0).normal(scale=0.5, size=(2, 1, 203)).astype("float32")
    ours_embedding = _np(model.embed(wave))
    for bandwidth in config["target_bandwidths"]:
        embedding, codes, audio = _reference_outputs(reference, wave, bandwidth)
        np.testing.assert_allclose(ours_embedding, embedding, **EMBED_TOL)
        ours = _np(model.encode(wave, bandwidth))
        assert ours.shape == codes.shape == (2, model.num_codebooks(bandwidth), -(-203 // model.hop_length))
        assert np.mean(ours == codes) >= 0.999, f"{bandwidth} kbps: codes agree on {np.mean(ours == codes):.4%}"
        # Decoding the reference's own codes isolates the decoder from any near-tie code flip.
        np.testing.assert_allclose(_np(model.decode(codes)), audio, **AUDIO_TOL)


def test_inputs_shorter_than_the_padding_and_mono_batches(converted_pair):
    reference, model, config, _, _ = converted_pair
    wave = np.random.default_rng(5).normal(scale=0.5, size=(1, 1, 5)).astype("float32")
    embedding, codes, audio = _reference_outputs(reference, wave, 1.5)
    np.testing.assert_allclose(_np(model.embed(wave)), embedding, **EMBED_TOL)
    ours = _np(model.encode(wave[:, 0], 1.5))  # a mono model also takes [batch, samples]
    np.testing.assert_array_equal(ours, codes)
    np.testing.assert_allclose(_np(model.decode(ours)), audio, **AUDIO_TOL)


def test_number_of_codebooks_follows_the_frame_rate_and_codebook_size():
    model = Encodec(dict(num_filters=2, hidden_size=8, codebook_dim=8, num_lstm_layers=1))
    assert model.frame_rate == 75 and model.num_quantizers == 32
    assert [model.num_codebooks(b) for b in (1.5, 3.0, 6.0, 12.0, 24.0)] == [2, 4, 8, 16, 32]
    with pytest.raises(ModelInputError, match=r"bandwidth=5\.0: expected one of \[1\.5, 3\.0, 6\.0, 12\.0, 24\.0\]"):
        model.num_codebooks(5.0)
    with pytest.raises(ModelInputError, match=r"expected \[batch, samples\] or \[batch, 1, samples\]"):
        model.encode(np.zeros((1, 2, 640), "float32"), 6.0)


def _original_layout(reference):
    """The reference's state dict renamed the way facebookresearch/encodec names its tensors."""
    state = {}
    for name, tensor in reference.state_dict().items():
        name = name.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1", "weight_v")
        match = re.match(r"(encoder|decoder)\.layers\.(\d+)\.(.*)", name)
        if match:
            part, index, rest = match.groups()
            transposed = type(reference.get_submodule(f"{part}.layers.{index}")).__name__ == "EncodecConvTranspose1d"
            if rest.startswith("conv."):
                rest = ("convtr.convtr." if transposed else "conv.conv.") + rest[len("conv."):]
            else:  # residual block convs and shortcut: block.1.conv.x / shortcut.conv.x
                rest = re.sub(r"^(block\.\d+|shortcut)\.conv\.", r"\1.conv.conv.", rest)
            name = f"{part}.model.{index}.{rest}"
        name = re.sub(r"^quantizer\.layers\.(\d+)\.codebook\.", r"quantizer.vq.layers.\1._codebook.", name)
        state[name] = tensor.clone()
    return state


def test_original_and_legacy_weight_norm_layouts_give_the_same_model(converted_pair, tmp_path):
    reference, model, config, _, _ = converted_pair
    original = _original_layout(reference)
    assert "encoder.model.0.conv.conv.weight_g" in original and "quantizer.vq.layers.0._codebook.embed" in original
    assert any(".convtr.convtr.weight_v" in k for k in original)
    (tmp_path / "original").mkdir()
    torch.save(original, tmp_path / "original" / "encodec.th")
    legacy = {
        k.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1", "weight_v"): v
        for k, v in reference.state_dict().items()
    }
    torch.save({"state_dict": legacy}, tmp_path / "legacy.pt")
    expected = [_np(w) for w in model.weights]
    for path in (tmp_path / "original" / "encodec.th", tmp_path / "legacy.pt"):
        other, _, metadata = pretrained.convert_checkpoint("encodec", path, config=config)
        assert metadata["tensors_copied"] == len(model.weights)
        for got, want in zip((_np(w) for w in other.weights), expected):
            np.testing.assert_array_equal(got, want)


def test_convert_save_load_round_trip_is_identical(converted_pair, tmp_path):
    from chroma_keras import cli

    reference, model, config, metadata, directory = converted_pair
    out = pretrained.save_converted(model, tmp_path / "converted", "encodec", config, metadata)
    assert cli.main(["convert", "--model", "encodec", "--checkpoint", str(directory), "--out", str(tmp_path / "cli")]) == 0
    wave = np.random.default_rng(1).normal(size=(1, 1, 100)).astype("float32")
    codes = _np(model.encode(wave, 6.0))
    for loaded in (pretrained.load_converted(out), ck.from_preset(str(out)), ck.from_preset(str(tmp_path / "cli"))):
        assert isinstance(loaded, Encodec)
        np.testing.assert_array_equal(_np(loaded.embed(wave)), _np(model.embed(wave)))
        np.testing.assert_array_equal(_np(loaded.encode(wave, 6.0)), codes)
        np.testing.assert_array_equal(_np(loaded.decode(codes)), _np(model.decode(codes)))


def test_a_partial_checkpoint_lists_the_missing_tensors(tmp_path):
    reference = _reference(SMALL)
    state = {k: v for k, v in reference.state_dict().items()}
    del state["encoder.layers.0.conv.bias"], state["quantizer.layers.3.codebook.embed"]
    state["decoder.layers.1.lstm.weight_ih_l0"] = torch.zeros(3, 3)
    state["head.weight"] = torch.zeros(2)
    torch.save(state, tmp_path / "partial.bin")
    with pytest.raises(CheckpointError) as info:
        pretrained.convert_checkpoint("encodec", tmp_path / "partial.bin", config=config_from_reference(reference.config.to_dict()))
    error = info.value
    assert error.missing == ["encoder.layers.0.conv.bias", "quantizer.layers.3.codebook.embed"]
    assert error.unexpected == ["head.weight"]  # the codebooks' training buffers are ignored, not unexpected
    assert error.mis_shaped == [("decoder.layers.1.lstm.weight_ih_l0", (3, 3), (16, 64))]
    assert "partial.bin" in str(error) and "missing tensors (2)" in str(error)


@pytest.mark.parametrize(
    "key, value",
    [("normalize", True), ("chunk_length_s", 1.0), ("norm_type", "time_group_norm")],
)
def test_reference_configs_of_the_48khz_family_are_refused_naming_the_key(key, value):
    reference = transformers.EncodecConfig().to_dict()
    reference[key] = value
    with pytest.raises(CheckpointError, match=f"'{key}'"):
        config_from_reference(reference)


def test_the_default_reference_config_is_the_encodec_24khz_preset():
    assert config_from_reference(transformers.EncodecConfig().to_dict()) == ENCODEC_24KHZ
    assert pretrained.get_architecture("encodec").presets["encodec_24khz"]["reference"] == "facebook/encodec_24khz"
    assert "encodec_24khz" in pretrained.pretrained_presets()


@pytest.fixture(scope="module")
def tokenizer_pair(tmp_path_factory):
    reference = _reference(TINY_24K, seed=1)
    directory = _saved(reference, tmp_path_factory.mktemp("tiny24k"))
    return reference, AudioTokenizer.from_checkpoint(directory), directory


def test_tokenizer_resamples_to_24khz_like_librosa_soxr(tokenizer_pair):
    import librosa

    reference, tokenizer, _ = tokenizer_pair
    assert (tokenizer.sample_rate, tokenizer.frame_rate, tokenizer.codebook_size) == (24000, 75, 32)
    assert [tokenizer.num_codebooks(b) for b in tokenizer.bandwidths] == [4, 8, 16]
    rng = np.random.default_rng(2)
    clip = (0.3 * np.sin(2 * np.pi * 440 * np.arange(11025) / 44100) + 0.05 * rng.normal(size=11025)).astype("float32")
    codes = tokenizer.encode(clip, sample_rate=44100, bandwidth=3.0)
    at_24k = librosa.resample(clip, orig_sr=44100, target_sr=24000, res_type="soxr_hq")
    assert codes.shape == (8, -(-len(at_24k) // 320)) and codes.dtype == np.int32
    np.testing.assert_array_equal(codes, tokenizer.encode(at_24k, sample_rate=24000, bandwidth=3.0))
    with torch.no_grad():
        expected = reference.encode(torch.from_numpy(at_24k)[None, None], bandwidth=3.0).audio_codes[0, 0].numpy()
    assert np.mean(codes == expected) >= 0.999
    batch = tokenizer.encode(np.stack([clip, clip[::-1]]), sample_rate=44100, bandwidth=3.0)
    assert batch.shape == (2, 8, codes.shape[1])
    np.testing.assert_array_equal(batch[0], codes)
    audio = tokenizer.decode(codes)
    assert audio.shape == (codes.shape[1] * 320,) and audio.dtype == np.float32
    with torch.no_grad():
        expected_audio = reference.decode(torch.from_numpy(codes[None, None].astype("int64")), [None])[0][0, 0].numpy()
    np.testing.assert_allclose(audio, expected_audio, **AUDIO_TOL)
    assert tokenizer.decode(batch, length=len(at_24k)).shape == (2, len(at_24k))


def test_tokenizer_from_preset_with_converted_weights(tokenizer_pair, tmp_path):
    _, tokenizer, directory = tokenizer_pair
    model, config, metadata = pretrained.convert_checkpoint("encodec", directory)
    out = pretrained.save_converted(model, tmp_path / "converted", "encodec", config, metadata)
    clip = np.random.default_rng(3).normal(scale=0.2, size=4000).astype("float32")
    expected = tokenizer.encode(clip, 24000)
    for other in (AudioTokenizer.from_preset("encodec_24khz", weights=out), AudioTokenizer.from_checkpoint(out)):
        np.testing.assert_array_equal(other.encode(clip, 24000), expected)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda t: t.encode(np.array([0.0, np.nan, 1.0]), 24000), r"1 non-finite sample\(s\).*index \[1\]"),
        (lambda t: t.encode(np.zeros((1, 1, 100)), 24000), r"shape \(1, 1, 100\): expected mono audio \[samples\]"),
        (lambda t: t.encode(np.zeros(0), 24000), "at least one sample"),
        (lambda t: t.encode(np.zeros(100), "44k"), r"sample_rate='44k': expected a positive number"),
        (lambda t: t.encode(np.zeros(100), 0), r"sample_rate=0"),
        (lambda t: t.encode(np.zeros(100), True), r"sample_rate=True"),
        (lambda t: t.encode(np.zeros(100), 24000, bandwidth=5.0), r"bandwidth=5\.0: expected one of \[1\.5, 3\.0, 6\.0\]"),
        (lambda t: t.decode(np.full((4, 3), 32)), r"codes range over \[32, 32\]: expected values in \[0, 32\)"),
        (lambda t: t.decode(np.full((4, 3), -1)), r"expected values in \[0, 32\)"),
        (lambda t: t.decode(np.zeros((17, 3), int)), "expected 1 to 16 codebooks"),
        (lambda t: t.decode(np.zeros(3, int)), r"expected \[n_q, frames\] or \[batch, n_q, frames\]"),
        (lambda t: t.decode(np.zeros((4, 3))), "dtype float64: expected integer codes"),
    ],
)
def test_tokenizer_rejects_bad_input_naming_what_it_expected(tokenizer_pair, call, message):
    _, tokenizer, _ = tokenizer_pair
    with pytest.raises(ModelInputError, match=message):
        call(tokenizer)


@pytest.mark.slow
def test_full_24khz_config_matches_transformers(tmp_path):
    reference = _reference({})
    directory = _saved(reference, tmp_path / "full")
    model, config, _ = pretrained.convert_checkpoint("encodec", directory)
    assert config == ENCODEC_24KHZ and model.count_params() == sum(p.numel() for p in reference.parameters()) - sum(
        p.numel() for n, p in reference.named_parameters() if n.endswith("original0") or "bias_hh" in n
    ) + sum(layer.codebook.embed.numel() for layer in reference.quantizer.layers)
    wave = (0.3 * np.random.default_rng(4).normal(size=(1, 1, 24000))).astype("float32")
    for bandwidth in (1.5, 24.0):
        embedding, codes, audio = _reference_outputs(reference, wave, bandwidth)
        np.testing.assert_allclose(_np(model.embed(wave)), embedding, **EMBED_TOL)
        ours = _np(model.encode(wave, bandwidth))
        assert ours.shape == codes.shape == (1, {1.5: 2, 24.0: 32}[bandwidth], 75)
        assert np.mean(ours == codes) >= 0.999
        np.testing.assert_allclose(_np(model.decode(codes)), audio, **AUDIO_TOL)
