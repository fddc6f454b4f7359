"""The shared conversion machinery: reading checkpoints, the loader's mismatch report, converted directories, the CLI."""

import json

import keras
import numpy as np
import pytest

from chroma_keras import cli, pretrained
from chroma_keras.errors import CheckpointError, PresetError
from chroma_keras.pretrained import registry

torch = pytest.importorskip("torch")


def _toy_build(config):
    inputs = keras.Input((config["in_dim"],))
    outputs = keras.layers.Dense(config["out_dim"], name="proj")(inputs)
    return keras.Model(inputs, outputs)


def _toy_load(model, loader):
    layer = model.get_layer("proj")
    loader.assign(layer.kernel, "proj.weight", np.transpose)
    loader.assign(layer.bias, "proj.bias")
    loader.finish(ignore=["*.num_batches_tracked"])


TOY = pretrained.PretrainedArchitecture(
    name="toy_linear",
    build=_toy_build,
    load_state_dict=_toy_load,
    config_from_reference=lambda ref: {"in_dim": ref["in_features"], "out_dim": ref["out_features"]},
    presets={"toy_linear_3x2": {"config": {"in_dim": 3, "out_dim": 2}, "description": "toy", "reference": "torch.nn.Linear(3, 2)"}},
    default_preset="toy_linear_3x2",
)
pretrained.register_architecture(TOY)


@pytest.fixture
def linear_checkpoint(tmp_path):
    torch.manual_seed(0)
    linear = torch.nn.Linear(3, 2)
    state = {f"proj.{k}": v for k, v in linear.state_dict().items()}
    state["proj.num_batches_tracked"] = torch.tensor(3)
    path = tmp_path / "linear.bin"
    torch.save(state, path)
    return linear, path


def test_a_torch_state_dict_converts_to_the_same_function(linear_checkpoint):
    linear, path = linear_checkpoint
    model, config, metadata = pretrained.convert_checkpoint("toy_linear", path)
    x = np.random.default_rng(0).normal(size=(4, 3)).astype("float32")
    expected = linear(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x)), expected, rtol=1e-6, atol=1e-6)
    assert config == {"in_dim": 3, "out_dim": 2} and metadata["tensors_copied"] == 2
    assert metadata["config_source"].startswith("preset toy_linear_3x2")


def test_safetensors_and_wrapped_state_dicts_read_the_same_tensors(tmp_path, linear_checkpoint):
    from safetensors.numpy import save_file

    _, path = linear_checkpoint
    tensors = pretrained.read_checkpoint(path)
    save_file({k: v for k, v in tensors.items()}, str(tmp_path / "model.safetensors"))
    torch.save({"state_dict": torch.load(path), "epoch": 3}, tmp_path / "wrapped.pt")
    for other in (pretrained.read_checkpoint(tmp_path), pretrained.read_checkpoint(tmp_path / "wrapped.pt")):
        assert sorted(other) == sorted(tensors)
        for key in tensors:
            np.testing.assert_array_equal(other[key], tensors[key])


def test_a_config_json_next_to_the_checkpoint_sets_the_architecture(tmp_path):
    linear = torch.nn.Linear(5, 4)
    torch.save({f"proj.{k}": v for k, v in linear.state_dict().items()}, tmp_path / "pytorch_model.bin")
    (tmp_path / "config.json").write_text(json.dumps({"in_features": 5, "out_features": 4}))
    model, config, metadata = pretrained.convert_checkpoint("toy_linear", tmp_path)
    assert config == {"in_dim": 5, "out_dim": 4} and model.get_layer("proj").kernel.shape == (5, 4)
    assert metadata["config_source"] == "config.json next to the checkpoint"


def test_a_wrong_checkpoint_lists_missing_unexpected_and_mis_shaped_tensors(tmp_path):
    state = {"proj.weight": torch.zeros(7, 3), "head.weight": torch.zeros(1)}
    torch.save(state, tmp_path / "wrong.bin")
    with pytest.raises(CheckpointError) as info:
        pretrained.convert_checkpoint("toy_linear", tmp_path / "wrong.bin")
    error = info.value
    assert error.missing == ["proj.bias"] and error.unexpected == ["head.weight"]
    assert error.mis_shaped == [("proj.weight", (3, 7), (3, 2))]
    message = str(error)
    assert "wrong.bin" in message and "missing tensors (1)" in message and "head.weight" in message
    assert "proj.weight: [3, 7], expected [3, 2]" in message


@pytest.mark.parametrize(
    "content, name, expected",
    [
        (b"not a checkpoint", "bad.bin", "cannot read the checkpoint"),
        (b"x", "weights.npz", "unknown checkpoint kind '.npz'"),
    ],
)
def test_unreadable_checkpoints_name_the_file(tmp_path, content, name, expected):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(CheckpointError, match=expected) as info:
        pretrained.read_checkpoint(tmp_path / name)
    assert name in str(info.value)


def test_a_missing_checkpoint_and_an_unknown_architecture_are_named(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        pretrained.read_checkpoint(tmp_path / "absent.safetensors")
    with pytest.raises(CheckpointError, match="unknown pretrained architecture.*encodec"):
        pretrained.get_architecture("encodek")


def test_convert_command_writes_a_directory_from_preset_loads(tmp_path, linear_checkpoint, capsys):
    import chroma_keras as ck

    linear, path = linear_checkpoint
    out = tmp_path / "converted"
    assert cli.main(["convert", "--model", "toy_linear", "--checkpoint", str(path), "--out", str(out)]) == 0
    assert "2 tensors" in capsys.readouterr().out
    assert registry.is_converted_directory(out)
    x = np.ones((1, 3), "float32")
    expected = linear(torch.from_numpy(x)).detach().numpy()
    for model in (ck.from_preset(str(out)), ck.from_preset("toy_linear_3x2", weights=str(path)),
                  ck.from_preset("toy_linear_3x2", weights=str(out / "model.weights.h5"))):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x)), expected, rtol=1e-6, atol=1e-6)
    # A second convert into the same directory needs --overwrite.
    assert cli.main(["convert", "--model", "toy_linear", "--checkpoint", str(path), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    with pytest.raises(PresetError, match="takes no preset overrides"):
        ck.from_preset("toy_linear_3x2", out_dim=3)


def test_convert_command_reports_a_wrong_checkpoint_without_a_traceback(tmp_path, capsys):
    torch.save({"proj.weight": torch.zeros(2, 3)}, tmp_path / "partial.bin")
    code = cli.main(["convert", "--model", "toy_linear", "--checkpoint", str(tmp_path / "partial.bin"), "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err
    assert "partial.bin" in err and "proj.bias" in err
