"""Preset configs: loading, extends, overrides, validation and error messages.

Pure Python: nothing here imports keras.
"""

import pathlib
import textwrap

import pytest

from chroma_keras.config import (
    PRESET_FILENAME,
    PRESETS_DIR,
    apply_overrides,
    dump_config,
    get_path,
    list_builtin_presets,
    load_preset_config,
    parse_overrides,
    resolve_preset_path,
    validate_config,
)
from chroma_keras.config import schema
from chroma_keras.errors import PresetError

DOCS = pathlib.Path(__file__).resolve().parents[2] / "docs" / "presets.md"


def write(directory, name, text):
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def load_error(path_or_name, overrides=None) -> str:
    with pytest.raises(PresetError) as info:
        load_preset_config(path_or_name, overrides=overrides)
    return str(info.value)


def minimal(tmp_path, body="", name="p.yaml"):
    return write(tmp_path, name, "name: test\n" + textwrap.dedent(body))


# --- Built-in presets ---------------------------------------------------------


def test_builtin_preset_loads_with_expected_values():
    config = load_preset_config("cvae_chromatic")
    assert config["name"] == "cvae_chromatic"
    assert config["model"]["generative"]["type"] == "vae"
    vae = config["model"]["vae"]
    assert vae["latent_dim"] == 64 and vae["span_latent_dim"] == 8 and vae["condition_on_transposition"] is True
    assert vae["encoder_filters"] == [16, 32, 64, 64]
    assert vae["kl_annealing"] == {"schedule": "linear", "warmup_steps": 400, "cycles": 1}
    roll = config["preprocessing"]["midi"]["piano_roll"]
    assert roll == {"lowest_pitch": 28, "num_pitches": 64, "frames_per_second": 8.0, "num_frames": 128}
    assert isinstance(roll["frames_per_second"], float)  # int in the YAML, converted
    assert config["preprocessing"]["midi"]["augmentations"] == {
        "transpose_semitones": 12,
        "velocity_jitter": 0.0,
        "quantize_steps_per_quarter": 0,
        "out_of_range": "fold",
    }
    assert config["training"]["learning_rate"] == 0.002
    assert config["generation"]["sampling"]["top_k"] == 0  # default filled
    assert "extends" not in config
    # Optional sections stay absent unless asked for.
    assert "diffusion" not in config["model"] and "audio" not in config["preprocessing"]


def test_list_builtin_presets():
    presets = list_builtin_presets()
    names = [name for name, _ in presets]
    assert names == sorted(names)
    assert "cvae_chromatic" in names
    assert dict(presets)["cvae_chromatic"].startswith("Conditional VAE")
    assert set(names) == {p.stem for p in PRESETS_DIR.glob("*.yaml")}


@pytest.mark.parametrize("name", [p.stem for p in PRESETS_DIR.glob("*.yaml")])
def test_every_builtin_preset_is_valid_and_named_after_its_file(name):
    assert load_preset_config(name)["name"] == name


def test_resolve_preset_path_forms(tmp_path, monkeypatch):
    assert resolve_preset_path("cvae_chromatic") == PRESETS_DIR / "cvae_chromatic.yaml"
    file = minimal(tmp_path, name="mine.yml")
    assert resolve_preset_path(file) == file
    assert resolve_preset_path(str(file)) == file
    directory = tmp_path / "saved"
    saved = minimal(directory, name=PRESET_FILENAME)
    assert resolve_preset_path(directory) == saved
    assert load_preset_config(str(directory))["name"] == "test"
    monkeypatch.chdir(tmp_path)
    assert resolve_preset_path("saved") == pathlib.Path("saved") / PRESET_FILENAME  # bare local directory


def test_schema_defaults_pass_their_own_checks_and_docs_are_one_line():
    for path, field in schema.iter_fields():
        assert field.doc and "\n" not in field.doc, path
        if isinstance(field, schema.Section) or field.required or field.default is None:
            continue
        value = field.check(field.default)
        assert value == field.default and type(value) is type(field.default), path


def test_defaults_filled_from_name_only(tmp_path):
    config = load_preset_config(minimal(tmp_path))
    assert config["description"] == ""
    assert config["model"] == {"generative": {"type": None}}
    assert config["training"]["batch_size"] == 32
    assert config["preprocessing"]["midi"]["piano_roll"]["num_pitches"] == 72


def test_conditional_and_optional_sections(tmp_path):
    config = load_preset_config(minimal(tmp_path, "model: {generative: {type: diffusion}}\n"))
    diffusion = config["model"]["diffusion"]
    assert {"num_steps": 1000, "noise_schedule": "linear", "prediction_type": "epsilon", "denoiser": "unet"}.items() <= diffusion.items()
    assert diffusion["channels"] == [32, 64, 128] and diffusion["unconditional_probability"] == 0.1
    assert "vae" not in config["model"]
    config = load_preset_config(
        minimal(tmp_path, "model: {fusion: {}}\npreprocessing: {audio: {augmentations: {noise_snr_db: 20}}}\n")
    )
    assert config["model"]["fusion"] == {"strategy": "late", "attention_heads": 4, "dropout": 0.1}
    assert config["preprocessing"]["audio"]["sample_rate"] == 44100
    assert config["preprocessing"]["audio"]["augmentations"]["noise_snr_db"] == 20.0
    # vae section filled when the type asks for it, in schema key order.
    config = load_preset_config(minimal(tmp_path, "model: {generative: {type: vae}}\n"))
    assert list(config["model"]) == ["generative", "vae"]
    assert config["model"]["vae"]["latent_dim"] == 64


def test_int_accepted_for_float_and_exponent_without_dot(tmp_path):
    config = load_preset_config(minimal(tmp_path, "training: {learning_rate: 1e-4, epochs: 3}\nmodel: {vae: {beta: 2}}\n"))
    assert config["training"]["learning_rate"] == pytest.approx(1e-4)
    assert config["model"]["vae"]["beta"] == 2.0 and isinstance(config["model"]["vae"]["beta"], float)


# --- extends ------------------------------------------------------------------


def test_extends_builtin_parent_deep_merges(tmp_path):
    path = write(
        tmp_path,
        "child.yaml",
        """
        extends: cvae_chromatic
        name: child
        model:
          vae:
            latent_dim: 16
            encoder_filters: [8, 16]
            kl_annealing: {schedule: cyclical}
        """,
    )
    config = load_preset_config(path)
    vae = config["model"]["vae"]
    assert config["name"] == "child"
    assert config["description"].startswith("Conditional VAE")  # inherited
    assert vae["latent_dim"] == 16
    assert vae["beta"] == 1.0  # sibling kept from the parent
    assert vae["encoder_filters"] == [8, 16]  # list replaced, not merged
    assert vae["kl_annealing"] == {"schedule": "cyclical", "warmup_steps": 400, "cycles": 1}
    assert config["preprocessing"]["midi"]["augmentations"]["transpose_semitones"] == 12
    assert vae["span_latent_dim"] == 8  # sibling kept from the parent
    assert "extends" not in config


def test_extends_relative_path_chain(tmp_path):
    write(tmp_path, "base/grand.yaml", "name: grand\ntraining: {epochs: 5, batch_size: 4}\n")
    write(tmp_path, "base/parent.yaml", "extends: grand.yaml\nname: parent\ntraining: {epochs: 7}\n")
    child = write(tmp_path, "presets/child.yaml", "extends: ../base/parent.yaml\ntraining: {seed: 3}\n")
    config = load_preset_config(child)
    assert config["name"] == "parent"
    assert config["training"]["epochs"] == 7
    assert config["training"]["batch_size"] == 4
    assert config["training"]["seed"] == 3


def test_extends_preset_directory(tmp_path):
    minimal(tmp_path / "saved", "training: {epochs: 9}\n", name=PRESET_FILENAME)
    child = write(tmp_path, "child.yaml", "extends: saved\nname: c\n")
    assert load_preset_config(child)["training"]["epochs"] == 9


def test_error_from_parent_names_parent_file(tmp_path):
    write(tmp_path, "parent.yaml", "name: p\ntraining: {epochs: 0}\n")
    child = write(tmp_path, "child.yaml", "extends: parent.yaml\nname: c\n")
    message = load_error(child)
    assert "parent.yaml: training.epochs: out of range" in message


# --- Overrides ----------------------------------------------------------------


def test_override_list_strings_with_yaml_values():
    config = load_preset_config(
        "cvae_chromatic",
        overrides=[
            "model.vae.latent_dim=128",
            "model.vae.beta=0.5",
            "training.optimizer=adamw",
            "model.vae.encoder_filters=[16, 32]",
            "model.audio_encoder.pretrained_model=null",
            "training.learning_rate=3e-4",
        ],
    )
    assert config["model"]["vae"]["latent_dim"] == 128
    assert config["model"]["vae"]["beta"] == 0.5
    assert config["training"]["optimizer"] == "adamw"
    assert config["model"]["vae"]["encoder_filters"] == [16, 32]
    assert config["model"]["audio_encoder"]["pretrained_model"] is None
    assert config["training"]["learning_rate"] == pytest.approx(3e-4)


def test_override_bool_value_parsed_as_yaml():
    assert parse_overrides(["name=true", "training.seed=0x10", "model.fusion.dropout=.5"]) == {
        "name": True,
        "training": {"seed": 16},
        "model": {"fusion": {"dropout": 0.5}},
    }
    assert parse_overrides(["model.generative.type=null"]) == {"model": {"generative": {"type": None}}}
    assert parse_overrides(["training.epochs= 12"]) == {"training": {"epochs": 12}}


@pytest.mark.parametrize(
    "overrides",
    [
        {"model.vae.latent_dim": 8},
        {"model__vae__latent_dim": 8},
        {"model": {"vae": {"latent_dim": 8}}},
        {"latent_dim": 8},
        {"vae.latent_dim": 8},
        {"vae": {"latent_dim": 8}},
        ["latent_dim=8"],
        ["model__vae__latent_dim=8"],
        "model.vae.latent_dim=8",
    ],
)
def test_override_key_forms(overrides):
    assert parse_overrides(overrides) == {"model": {"vae": {"latent_dim": 8}}}
    config = load_preset_config("cvae_chromatic", overrides=overrides)
    assert config["model"]["vae"]["latent_dim"] == 8
    assert config["model"]["vae"]["beta"] == 1.0  # nested dict merges, does not replace


def test_later_override_wins_and_parse_is_nested():
    assert parse_overrides(["latent_dim=4", "model.vae.latent_dim=5", "training.seed=1"]) == {
        "model": {"vae": {"latent_dim": 5}},
        "training": {"seed": 1},
    }
    assert parse_overrides(None) == {}
    assert parse_overrides({}) == {}


def test_apply_overrides_does_not_validate_or_mutate():
    base = load_preset_config("cvae_chromatic")
    out = apply_overrides(base, {"latent_dim": -1, "training.epochs": 2})
    assert out["model"]["vae"]["latent_dim"] == -1
    assert out["training"]["epochs"] == 2
    assert base["model"]["vae"]["latent_dim"] == 64 and base["training"]["epochs"] == 100
    with pytest.raises(PresetError, match="latent_dim: out of range"):
        validate_config(out, source="save_to_preset")


def test_override_reaches_optional_section(tmp_path):
    config = load_preset_config(minimal(tmp_path), overrides={"model.diffusion.num_steps": 10})
    assert config["model"]["diffusion"]["num_steps"] == 10
    assert config["model"]["diffusion"]["prediction_type"] == "epsilon"


# --- dump / get_path ----------------------------------------------------------


def test_dump_config_round_trip(tmp_path):
    config = load_preset_config(
        "cvae_chromatic",
        overrides={"model.fusion.dropout": 0.2, "training.learning_rate": 1e-5, "description": "1e3"},
    )
    text = dump_config(config)
    assert "encoder_filters: [16, 32, 64, 64]" in text
    assert text.index("name:") < text.index("model:") < text.index("training:")  # order kept
    path = tmp_path / "dumped.yaml"
    path.write_text(text)
    assert load_preset_config(path) == config
    assert load_preset_config(path)["description"] == "1e3"  # strings that look like numbers stay strings


def test_get_path():
    config = load_preset_config("cvae_chromatic")
    assert get_path(config, "model.vae.latent_dim") == 64
    assert get_path(config, "model.vae.encoder_filters.1") == 32
    assert get_path(config, "model.diffusion.num_steps", default=None) is None
    with pytest.raises(PresetError, match=r"model.vae has no key 'latnt_dim'. Did you mean 'latent_dim'\?"):
        get_path(config, "model.vae.latnt_dim")


def test_docs_contain_the_rendered_schema_table():
    if not DOCS.exists():
        pytest.skip("docs/presets.md not in this checkout")
    assert schema.render_markdown() in DOCS.read_text(), (
        "docs/presets.md is out of date with the schema; paste the output of "
        "`python -c 'from chroma_keras.config.schema import render_markdown; print(render_markdown())'`"
    )


# --- Malformed presets: one kind per test -------------------------------------


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = write(tmp_path, "broken.yaml", "name: x\nmodel:\n  vae: {latent_dim: 3\ntraining: {}\n")
    message = load_error(path)
    assert "broken.yaml:" in message
    assert "invalid YAML at line 4" in message
    assert "started at line 3" in message


def test_yaml_bad_indentation_line(tmp_path):
    path = write(tmp_path, "indent.yaml", "name: x\ntraining:\n  epochs: 3\n   seed: 1\n")
    message = load_error(path)
    assert "indent.yaml:4:" in message and "line 4" in message


def test_duplicate_key(tmp_path):
    path = write(tmp_path, "dup.yaml", "name: x\ntraining:\n  epochs: 3\n  epochs: 4\n")
    message = load_error(path)
    assert "dup.yaml:4:3" in message and "duplicate key 'epochs' (first at line 3)" in message


def test_non_mapping_top_level(tmp_path):
    message = load_error(write(tmp_path, "list.yaml", "- name: x\n"))
    assert "list.yaml" in message and "top level of a preset must be a mapping" in message
    assert "Received: [{name: 'x'}] (list)" in message


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n"])
def test_empty_file(tmp_path, text):
    message = load_error(write(tmp_path, "empty.yaml", text))
    assert "empty.yaml: preset file is empty" in message


def test_unknown_key_with_suggestion(tmp_path):
    message = load_error(minimal(tmp_path, "model:\n  vae:\n    latnt_dim: 8\n"))
    assert "p.yaml: model.vae.latnt_dim: unknown key. Did you mean 'latent_dim'?" in message
    assert "Allowed keys in model.vae: latent_dim, beta" in message
    assert "Received: 8 (integer)" in message


def test_unknown_top_level_section(tmp_path):
    message = load_error(minimal(tmp_path, "trainig: {epochs: 3}\n"))
    assert "trainig: unknown key. Did you mean 'training'?" in message
    assert "Allowed keys in the top level:" in message


def test_wrong_type(tmp_path):
    message = load_error(minimal(tmp_path, "model: {vae: {latent_dim: big}}\n"))
    assert "p.yaml: model.vae.latent_dim: wrong type" in message
    assert "Allowed: an integer in [1, 4096]" in message
    assert "Received: 'big' (string)" in message
    assert "Size of the whole-segment latent" in message  # the field's doc


def test_float_for_int(tmp_path):
    message = load_error(minimal(tmp_path, "training: {batch_size: 8.0}\n"))
    assert "training.batch_size: wrong type" in message and "Write 8 without a decimal point" in message


@pytest.mark.parametrize(
    "body, path, received",
    [
        ("training: {batch_size: true}\n", "training.batch_size", "true (boolean)"),
        ("training: {learning_rate: false}\n", "training.learning_rate", "false (boolean)"),
    ],
)
def test_bool_is_not_a_number(tmp_path, body, path, received):
    message = load_error(minimal(tmp_path, body))
    assert f"{path}: wrong type (true/false is a boolean" in message
    assert f"Received: {received}" in message


@pytest.mark.parametrize(
    "body, path, allowed, received",
    [
        ("model: {vae: {latent_dim: 0}}\n", "model.vae.latent_dim", "an integer in [1, 4096]", "0 (integer)"),
        ("model: {vae: {latent_dim: 5000}}\n", "model.vae.latent_dim", "an integer in [1, 4096]", "5000 (integer)"),
        ("training: {learning_rate: 0}\n", "training.learning_rate", "a number in (0, 10]", "0 (integer)"),
        ("model: {vae: {condition_dropout: 1}}\n", "model.vae.condition_dropout", "a number in [0, 1)", "1 (integer)"),
        ("generation: {sampling: {threshold: 1.0}}\n", "generation.sampling.threshold", "(0, 1)", "1.0 (float)"),
        ("training: {seed: -1}\n", "training.seed", "an integer in [0, 2147483647]", "-1 (integer)"),
        ("training: {learning_rate: .nan}\n", "training.learning_rate", "a number in (0, 10]", "nan (float)"),
    ],
)
def test_out_of_range(tmp_path, body, path, allowed, received):
    message = load_error(minimal(tmp_path, body))
    assert f"p.yaml: {path}:" in message
    assert allowed in message and f"Received: {received}" in message


def test_bad_choice_with_suggestion(tmp_path):
    message = load_error(minimal(tmp_path, "training: {optimizer: Adamw}\n"))
    assert "training.optimizer: not one of the allowed choices" in message
    assert "Allowed: one of 'adam', 'adamw', 'sgd'" in message
    assert "Received: 'Adamw' (string)" in message and "Did you mean 'adamw'?" in message


def test_bad_int_choice(tmp_path):
    message = load_error(minimal(tmp_path, "preprocessing: {audio: {sample_rate: 44000}}\n"))
    assert "preprocessing.audio.sample_rate: not one of the allowed choices" in message
    assert "16000, 22050, 24000, 32000, 44100, 48000" in message


def test_null_where_not_nullable(tmp_path):
    message = load_error(minimal(tmp_path, "training: {optimizer: null}\n"))
    assert "training.optimizer: null is not allowed" in message and "Received: null" in message
    # ... but accepted where nullable.
    config = load_preset_config(minimal(tmp_path, "model: {midi_encoder: {vocab_size: null}}\n"))
    assert config["model"]["midi_encoder"]["vocab_size"] is None


def test_null_section_means_absent(tmp_path):
    config = load_preset_config(minimal(tmp_path, "training:\nmodel: {fusion: null}\n"))
    assert config["training"]["epochs"] == 40 and "fusion" not in config["model"]


def test_section_of_wrong_type(tmp_path):
    message = load_error(minimal(tmp_path, "model: {vae: 3}\n"))
    assert "model.vae: wrong type. Allowed: a mapping (section). Received: 3 (integer)" in message


def test_missing_required_name(tmp_path):
    message = load_error(write(tmp_path, "noname.yaml", "training: {epochs: 3}\n"))
    assert "noname.yaml: name: required key is missing. Allowed: a non-empty string" in message


def test_non_string_key(tmp_path):
    message = load_error(minimal(tmp_path, "training: {yes: 3}\n"))
    assert "keys must be strings. Received: true (boolean)" in message


def test_list_item_wrong_type(tmp_path):
    message = load_error(minimal(tmp_path, "model: {vae: {encoder_filters: [32, x, 0]}}\n"))
    assert "model.vae.encoder_filters[1]: wrong type" in message and "Received: 'x' (string)" in message
    assert "model.vae.encoder_filters[2]: out of range" in message and "Received: 0 (integer)" in message


def test_list_too_long_and_too_short(tmp_path):
    message = load_error(minimal(tmp_path, "model: {vae: {encoder_filters: [1, 2, 3, 4, 5, 6, 7]}}\n"))
    assert "model.vae.encoder_filters: too many items (7)" in message
    assert "a list of 1 to 6 items, each an integer in [1, 4096]" in message
    message = load_error(minimal(tmp_path, "model: {vae: {encoder_filters: []}}\n"))
    assert "model.vae.encoder_filters: too few items (0)" in message
    message = load_error(minimal(tmp_path, "model: {vae: {encoder_filters: 32}}\n"))
    assert "model.vae.encoder_filters: wrong type" in message


def test_unknown_preset_name_with_suggestion():
    message = load_error("cvae_chromatc")
    assert "Unknown preset 'cvae_chromatc'. Did you mean 'cvae_chromatic'?" in message
    assert "Built-in presets: cvae_chromatic" in message


def test_missing_file_and_bad_directory(tmp_path):
    message = load_error(str(tmp_path / "nope.yaml"))
    assert "nope.yaml: no such preset file or directory" in message
    message = load_error(tmp_path)
    assert f"directory has no {PRESET_FILENAME}" in message
    other = write(tmp_path, "preset.txt", "name: x\n")
    assert "expected a .yaml or .yml file" in load_error(other)


def test_extends_missing_parent(tmp_path):
    path = write(tmp_path, "child.yaml", "extends: cvae_chromatik\nname: c\n")
    message = load_error(path)
    assert "child.yaml: extends: parent preset 'cvae_chromatik' not found" in message
    assert "Did you mean 'cvae_chromatic'?" in message
    path = write(tmp_path, "child2.yaml", "extends: ../missing.yaml\nname: c\n")
    assert "child2.yaml: extends: parent preset '../missing.yaml' not found" in load_error(path)


def test_extends_wrong_type(tmp_path):
    message = load_error(write(tmp_path, "child.yaml", "extends: [a, b]\nname: c\n"))
    assert "child.yaml: extends: expected a built-in preset name or a path" in message


def test_extends_cycle(tmp_path):
    write(tmp_path, "a.yaml", "extends: b.yaml\nname: a\n")
    write(tmp_path, "b.yaml", "extends: c.yaml\nname: b\n")
    write(tmp_path, "c.yaml", "extends: a.yaml\nname: c\n")
    message = load_error(tmp_path / "a.yaml")
    assert "extends cycle:" in message
    assert message.index("a.yaml") < message.index("b.yaml") < message.index("c.yaml")
    assert message.count("a.yaml") == 2
    write(tmp_path, "self.yaml", "extends: self.yaml\nname: s\n")
    assert "extends cycle" in load_error(tmp_path / "self.yaml")


@pytest.mark.parametrize("bad", ["model.vae.latent_dim", "=3", "latent_dim 8"])
def test_malformed_override_string(bad):
    message = load_error("cvae_chromatic", [bad])
    assert f"override {bad!r}: expected the form 'dotted.key=value'" in message


def test_override_bad_yaml_value():
    message = load_error("cvae_chromatic", ["model.vae.encoder_filters=[1, 2"])
    assert "override 'model.vae.encoder_filters=[1, 2': the value '[1, 2' is not valid YAML" in message


def test_override_wrong_container_and_item():
    with pytest.raises(PresetError, match="Overrides must be a list"):
        parse_overrides(3)
    with pytest.raises(PresetError, match="expected a string of the form 'dotted.key=value'"):
        parse_overrides([("latent_dim", 3)])


def test_ambiguous_bare_override():
    message = load_error("cvae_chromatic", {"hidden_dim": 8})
    assert "'hidden_dim' is ambiguous" in message
    for path in ("model.vae.hidden_dim", "model.audio_encoder.hidden_dim", "model.text_encoder.hidden_dim"):
        assert path in message
    assert "generation.sampling.num_steps" in load_error("cvae_chromatic", ["num_steps=3"])


def test_unknown_bare_override_with_suggestion():
    message = load_error("cvae_chromatic", ["latnt_dim=3"])
    assert "override 'latnt_dim=3': unknown key 'latnt_dim'" in message
    assert "Did you mean 'latent_dim' (model.vae.latent_dim)?" in message


def test_override_extends_rejected():
    assert "'extends' cannot be overridden" in load_error("cvae_chromatic", {"extends": "x"})


def test_invalid_override_value_names_override():
    message = load_error("cvae_chromatic", ["model.vae.latent_dim=abc"])
    assert "override 'model.vae.latent_dim=abc': model.vae.latent_dim: wrong type" in message
    assert "Received: 'abc' (string)" in message
    message = load_error("cvae_chromatic", {"model.vae.latnt_dim": 3})
    assert "override 'model.vae.latnt_dim=3': model.vae.latnt_dim: unknown key. Did you mean 'latent_dim'?" in message


def test_override_errors_reported_together():
    with pytest.raises(PresetError) as info:
        parse_overrides(["oops", "latnt_dim=1", "hidden_dim=3"])
    assert len(info.value.errors) == 3
    assert str(info.value).count("\n  - ") == 3


# --- Cross-field rules --------------------------------------------------------


def test_rule_pitch_range(tmp_path):
    message = load_error(minimal(tmp_path, "preprocessing: {midi: {piano_roll: {lowest_pitch: 100, num_pitches: 64}}}\n"))
    assert "preprocessing.midi.piano_roll.lowest_pitch + preprocessing.midi.piano_roll.num_pitches must be <= 128" in message
    assert "Received: lowest_pitch=100 + num_pitches=64 = 164" in message
    assert "num_pitches can be at most 28" in message


def test_rule_split_fractions(tmp_path):
    message = load_error(minimal(tmp_path, "training: {validation_fraction: 0.6, test_fraction: 0.4}\n"))
    assert "p.yaml: training.validation_fraction + training.test_fraction must be < 1" in message
    assert "Received: validation_fraction=0.6 + test_fraction=0.4 = 1.0" in message


def test_rule_vae_divisibility(tmp_path):
    body = """
    model: {generative: {type: vae}, vae: {encoder_filters: [8, 8, 8, 8]}}
    preprocessing: {midi: {piano_roll: {num_pitches: 72, num_frames: 100}}}
    """
    message = load_error(minimal(tmp_path, body))
    assert "preprocessing.midi.piano_roll.num_pitches must be divisible by 16 = 2 ** len(model.vae.encoder_filters)" in message
    assert "Received: num_pitches=72" in message and "64 or 80" in message
    assert "preprocessing.midi.piano_roll.num_frames must be divisible by 16" in message
    assert "Received: num_frames=100" in message and "96 or 112" in message
    # The default 3 filters need multiples of 8: 72 and 128 are fine; not a VAE: no rule.
    load_preset_config(minimal(tmp_path, "model: {generative: {type: vae}}\n"))
    load_preset_config(minimal(tmp_path, "preprocessing: {midi: {piano_roll: {num_frames: 100}}}\n"))


def test_rule_vae_needs_pianoroll(tmp_path):
    message = load_error("cvae_chromatic", ["preprocessing.midi.tokenization=remi"])
    assert "override 'preprocessing.midi.tokenization=remi'" in message
    assert "preprocessing.midi.tokenization must be 'pianoroll' when model.generative.type is 'vae'" in message
    assert "Received: tokenization='remi'" in message


def test_rule_skipped_when_its_fields_are_invalid(tmp_path):
    message = load_error(minimal(tmp_path, "training: {validation_fraction: x, test_fraction: 0.9}\n"))
    assert "validation_fraction: wrong type" in message and "must be < 1" not in message


def test_rule_source_names_file_and_override(tmp_path):
    path = minimal(tmp_path, "preprocessing: {midi: {piano_roll: {lowest_pitch: 60}}}\n")
    message = load_error(path, {"num_pitches": 72})
    assert message.startswith(f"{path} and override 'num_pitches=72': ")


def test_multiple_errors_reported_together(tmp_path):
    body = """
    model:
      generative: {type: vea}
      vae: {latent_dim: 0, beta: true}
    training: {optimizer: sgdd, validation_fraction: 0.9, test_fraction: 0.9}
    """
    path = write(tmp_path, "many.yaml", body)  # also no name
    with pytest.raises(PresetError) as info:
        load_preset_config(path, overrides=["training.epochs=0"])
    message = str(info.value)
    lines = message.splitlines()
    assert lines[0].startswith("Invalid preset") and "many.yaml" in lines[0] and "(7 errors)" in lines[0]
    assert len(info.value.errors) == 7 and len(lines) == 8
    for expected in (
        "name: required key is missing",
        "model.generative.type: not one of the allowed choices",
        "model.vae.latent_dim: out of range",
        "model.vae.beta: wrong type",
        "training.optimizer: not one of the allowed choices",
        "override 'training.epochs=0': training.epochs: out of range",
        "training.validation_fraction + training.test_fraction must be < 1",
    ):
        assert expected in message


def test_validate_config_rejects_non_mapping_and_drops_extends():
    with pytest.raises(PresetError, match="my source: the top level of a preset must be a mapping"):
        validate_config([1], "my source")
    config = validate_config({"name": "x", "extends": "cvae_chromatic"}, "inline")
    assert "extends" not in config and config["model"] == {"generative": {"type": None}}
    # Validating a validated config changes nothing.
    full = load_preset_config("cvae_chromatic")
    assert validate_config(full, "again") == full
