"""ChromaticGPT exports: ``prefill`` and ``decode_step`` graphs in every format, the ``sample.py`` token runner
and ``verify``.

The weights are set under JAX (seeded noise on every weight, as training would
move them) and saved as a preset in a subprocess; this backend (TensorFlow or torch) loads those weights and
exports them. The exports are served in fresh interpreters by the runtime alone (TensorFlow, plain torch,
onnxruntime; no chroma_keras): the graphs equal the live model within 1e-5, and the runner's greedy tokens
equal both the live model's ``generate(..., sampling="greedy")`` and the JAX model's, token for token.
"""

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

import chroma_keras as ck
from chroma_keras.cli import main
from chroma_keras.errors import ExportError
from chroma_keras.export import FORMATS, export_model, model_functions
from chroma_keras.export.api import select_functions
from chroma_keras.export.verify import verify_gpt_export

_spec = importlib.util.spec_from_file_location("export_cases", pathlib.Path(__file__).with_name("export_cases.py"))
cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cases)

RUNNER_SCRIPT = pathlib.Path(__file__).with_name("run_gpt_runner.py")
EXPORT_DIR = pathlib.Path(__file__).parents[2] / "chroma_keras" / "export"
# One block, short sequences: seconds per format. Weights scaled so that greedy decoding varies its tokens.
TINY_GPT = {
    "model.gpt.hidden_dim": 16,
    "model.gpt.num_layers": 1,
    "model.gpt.num_heads": 2,
    "model.gpt.intermediate_dim": 32,
    "model.gpt.max_sequence_length": 32,
    "model.gpt.dropout": 0.0,
    "generation.sampling.max_length": 24,
}
NEW_TOKENS, NUM_SAMPLES = 12, 2
# The quickest format of each backend to write, for the tests that export again.
QUICK = {"tensorflow": "savedmodel", "torch": "torchscript"}

# Under JAX: seeded weights, saved as a preset; the reference tokens and logits of the JAX model.
WEIGHTS_UNDER_JAX = """
import json, pathlib
import keras
import numpy as np
import chroma_keras as ck

out = pathlib.Path({out!r})
keras.utils.set_random_seed(0)
model = ck.from_preset("gpt_remi_chromatic", **json.loads({overrides!r}))
rng = np.random.default_rng(0)
for variable in model.trainable_variables:
    variable.assign(np.asarray(variable) + rng.normal(0.0, 0.5, variable.shape).astype("float32"))
ck.save_to_preset(model, out / "model")
prompt = model.prompt_ids(condition="Red")
tokens = model.generate(prompt=prompt, max_length=len(prompt) + {new}, sampling="greedy", num_samples={num})
logits, _ = model.prefill(prompt[None, :])
np.savez(out / "reference.npz", tokens=tokens, prefill_logits=keras.ops.convert_to_numpy(logits)[:, -1])
print(json.dumps({{"backend": keras.config.backend()}}))
"""


def _subprocess(command, env_backend=None, timeout=300):
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    if env_backend:
        env["KERAS_BACKEND"] = env_backend
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{command[1]} failed:\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def jax_run(tmp_path_factory):
    """A preset directory whose weights were set under JAX, and the JAX model's reference outputs."""
    out = tmp_path_factory.mktemp("gpt_jax_run")
    source = WEIGHTS_UNDER_JAX.format(out=str(out), overrides=json.dumps(TINY_GPT), new=NEW_TOKENS, num=NUM_SAMPLES)
    report = _subprocess([sys.executable, "-c", source], env_backend="jax")
    assert report["backend"] == "jax"
    return out


@pytest.fixture(scope="module")
def exported(jax_run, tmp_path_factory):
    """The JAX weights loaded under this backend, and their export in every format this backend writes."""
    model = ck.from_preset(str(jax_run / "model"))
    root = tmp_path_factory.mktemp("gpt_exports")
    backend = keras.config.backend()
    results = {fmt: export_model(model, root / fmt, format=fmt) for fmt, (writer, _) in FORMATS.items() if writer == backend}
    return model, results, root


def _live_cases(model, cases_dir):
    """Inputs of prefill / decode_step at batch 3 and 1 under ``cases_dir``; returns the live outputs."""
    rng = np.random.default_rng(1)
    vocab = model.vocabulary.vocabulary_size
    expected = {}
    for case, (batch, length) in {"b3": (3, 5), "b1": (1, 9)}.items():
        ids = rng.integers(0, vocab, (batch, length)).astype(np.int32)
        ids[0] = np.resize(model.prompt_ids(condition="Red"), length)
        logits, cache = model.prefill(ids)
        step_ids = rng.integers(0, vocab, (batch, 1)).astype(np.int32)
        step_logits, next_cache = model.decode_step(step_ids, cache, length)
        numpy = keras.ops.convert_to_numpy
        inputs = {
            "prefill": {"token_ids": ids},
            "decode_step": {"token_ids": step_ids, "cache": numpy(cache), "index": np.asarray(length, np.int32)},
        }
        outputs = {
            "prefill": {"logits": numpy(logits)[:, -1], "cache": numpy(cache)},
            "decode_step": {"logits": numpy(step_logits), "next_cache": numpy(next_cache)},
        }
        for name, arrays in inputs.items():
            folder = cases_dir / name / case
            folder.mkdir(parents=True)
            for key, value in arrays.items():
                np.save(folder / f"{key}.npy", value)
            expected[(name, case)] = outputs[name]
    return expected


def _live_generate_cases(model, cases_dir):
    """Inputs of the SavedModel ``generate`` function (two prompts, seeds and temperatures) under ``cases_dir``;
    returns the live model's compiled ``generate`` for them, padded to the exported length."""
    expected = {}
    max_length = min(model.max_length, model.max_sequence_length)
    for case, (colour, rows, seed, temperature) in {"b2": ("Red", 2, 3, 1.0), "b1": ("Blue", 1, 7, 0.7)}.items():
        prompt = model.prompt_ids(condition=colour)
        live = model.generate(prompt=prompt, num_samples=rows, seed=seed, temperature=temperature, compiled=True)
        padded = np.full((rows, max_length), model.vocabulary.pad_id, np.int32)
        padded[:, : live.shape[1]] = live
        inputs = {
            "token_ids": np.repeat(prompt[None, :], rows, axis=0).astype(np.int32),
            "seed": np.asarray(seed, np.int32),
            "temperature": np.asarray(temperature, np.float32),
            "top_p": np.asarray(model.sampling_config.top_p, np.float32),
        }
        folder = cases_dir / "generate" / case
        folder.mkdir(parents=True)
        for key, value in inputs.items():
            np.save(folder / f"{key}.npy", value)
        expected[("generate", case)] = {"sequences": padded, "length": np.asarray(live.shape[1], np.int32)}
    return expected


def _run_runners(root, jobs):
    (root / "jobs.json").write_text(json.dumps(jobs))
    report = _subprocess([sys.executable, str(RUNNER_SCRIPT), str(root / "jobs.json")])
    assert "chroma_keras" not in report["imported"] and report["jobs"] == len(jobs), report  # (TensorFlow imports keras)
    return report


@pytest.mark.backends("tensorflow", "torch", reason="every export format is written from TensorFlow or torch")
def test_prefill_and_decode_step_serve_like_the_live_model(exported, jax_run):
    model, results, root = exported
    for fmt, result in results.items():
        manifest = result.manifest
        # The whole decoding loop is SavedModel's alone (its seeded draws have no torch / ONNX counterpart).
        functions = {"prefill", "decode_step", "generate"} if fmt == "savedmodel" else {"prefill", "decode_step"}
        assert set(manifest["functions"]) == functions and manifest["runner"] == "sample.py", fmt
        prefill, step = manifest["functions"]["prefill"], manifest["functions"]["decode_step"]
        assert [(s["name"], s["dtype"], s["shape"]) for s in prefill["inputs"]] == [("token_ids", "int32", [None, "prompt_length"])]
        cache_shape = [None, 1, 2, 32, 2, 8]  # [batch, layer, key/value, position, head, head_dim]
        assert [(s["name"], s["dtype"], s["shape"]) for s in step["inputs"]] == [
            ("token_ids", "int32", [None, 1]),
            ("cache", "float32", cache_shape),
            ("index", "int32", []),
        ]
        assert manifest["settings"]["gpt"]["cache_shape"] == cache_shape
        assert manifest["settings"]["gpt"]["prompts"]["Red"] == model.prompt_ids(condition="Red").tolist()
    expected = _live_cases(model, root / "cases")
    expected_generate = _live_generate_cases(model, root / "cases") if "savedmodel" in results else {}
    report = cases.serve(root / "cases", [root / fmt for fmt in results])
    assert "chroma_keras" not in report["imported"], report
    for fmt in results:
        cases.assert_served_matches(expected, root / fmt)
        if fmt == "savedmodel":
            # The exported loop draws what the live compiled loop draws: same tokens for the same seed.
            assert report["served"][fmt] == 6, report
            cases.assert_served_matches(expected_generate, root / fmt, atol=0)
            served = {case: np.load(root / fmt / "served" / "generate" / case / "sequences.npy") for case in ("b1", "b2")}
            assert not np.array_equal(served["b2"][0], served["b2"][1]), "two rows of one seed drew the same tokens"
        else:
            assert report["served"][fmt] == 4, report
    # The weights are the JAX model's: its prefill logits, to the same tolerance.
    reference = np.load(jax_run / "reference.npz")["prefill_logits"]
    red = np.asarray(model.prompt_ids(condition="Red"))[None, :]
    live, _ = model.prefill(red)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(live)[:, -1], reference, rtol=0, atol=cases.TOLERANCE)


@pytest.mark.backends("tensorflow", "torch", reason="every export format is written from TensorFlow or torch")
def test_the_runner_generates_the_live_and_the_jax_greedy_tokens(exported, jax_run):
    model, results, root = exported
    prompt = model.prompt_ids(condition="Red")
    live = model.generate(prompt=prompt, max_length=len(prompt) + NEW_TOKENS, sampling="greedy", num_samples=NUM_SAMPLES)
    np.testing.assert_array_equal(live, np.load(jax_run / "reference.npz")["tokens"])  # same weights, same tokens
    generated = live[0, len(prompt) :]
    assert len(generated) == NEW_TOKENS and len(set(generated.tolist())) >= 4, live  # a varied sequence
    greedy = ["--condition", "Red", "--num-samples", str(NUM_SAMPLES), "--max-new-tokens", str(NEW_TOKENS)]
    jobs = [{"export_dir": str(root / fmt), "argv": [*greedy, "--out", str(root / f"{fmt}_greedy.npz")]} for fmt in results]
    # Sampling, in one format: top-k 1 is greedy at any temperature; top-k 4 draws only among the 4 most
    # likely tokens; a seed repeats its draws.
    first = QUICK[keras.config.backend()]
    ids = ",".join(str(i) for i in prompt)
    for name, extra in {
        "top1": ["--sampling", "top_k", "--top-k", "1", "--temperature", "3.0", "--seed", "5"],
        "top4_a": ["--sampling", "top_k", "--top-k", "4", "--temperature", "2.0", "--seed", "5"],
        "top4_b": ["--sampling", "top_k", "--top-k", "4", "--temperature", "2.0", "--seed", "5"],
    }.items():
        argv = ["--prompt-ids", ids, "--num-samples", "3", "--max-new-tokens", str(NEW_TOKENS), *extra, "--out", str(root / f"{name}.npz")]
        jobs.append({"export_dir": str(root / first), "argv": argv})
    _run_runners(root, jobs)
    for fmt in results:
        np.testing.assert_array_equal(np.load(root / f"{fmt}_greedy.npz")["token_ids"], live, err_msg=fmt)
    np.testing.assert_array_equal(np.load(root / "top1.npz")["token_ids"], np.repeat(live[:1], 3, axis=0))
    sampled = np.load(root / "top4_a.npz")["token_ids"]
    np.testing.assert_array_equal(sampled, np.load(root / "top4_b.npz")["token_ids"])
    assert not np.array_equal(sampled[:, len(prompt) :], np.repeat(live[:1, len(prompt) :], 3, axis=0))  # it samples
    logits = keras.ops.convert_to_numpy(model(sampled[:, :-1]))  # the live next-token logits of every prefix
    for row in range(len(sampled)):
        for position in range(len(prompt), sampled.shape[1]):
            top4 = np.argsort(-logits[row, position - 1])[:4]
            assert sampled[row, position] in top4, (row, position)


@pytest.mark.backends("tensorflow", "torch", reason="every export format is written from TensorFlow or torch")
def test_verify_passes_for_the_export_and_names_the_first_differing_token(exported, jax_run, tmp_path, capsys):
    model, results, root = exported
    fmt = QUICK[keras.config.backend()]
    report = verify_gpt_export(model, root / fmt)
    prompt = model.prompt_ids(condition="Red").tolist()
    assert report["prompt_ids"] == prompt and len(report["token_ids"][0]) == len(prompt) + 8
    # The live model drifts from the export (as after more training): verify names where the tokens part.
    saved = [np.asarray(v) for v in model.trainable_variables]
    try:
        rng = np.random.default_rng(3)
        for variable in model.trainable_variables:
            variable.assign(np.asarray(variable) + rng.normal(0.0, 0.5, variable.shape).astype("float32"))
        with pytest.raises(ExportError, match=r"differ from the live model's at row \d+, position (\d+) \(generated token \d+\): export \d+, live \d+") as info:
            verify_gpt_export(model, root / fmt)
        position = int(info.value.args[0].split("position ")[1].split(" ")[0])
        assert position >= len(prompt)
    finally:
        for variable, value in zip(model.trainable_variables, saved):
            variable.assign(value)
    # `chroma-keras export RUN --verify` (export_model(..., verify=True)) records what it checked.
    assert main(["export", str(jax_run), "--format", fmt, "--out", str(tmp_path / "verified"), "--verify"]) == 0
    assert "verified: sample.py's greedy tokens equal the live model's (2 x 13 tokens)" in capsys.readouterr().out
    assert json.loads((tmp_path / "verified" / "manifest.json").read_text())["verified"] == report


@pytest.mark.backends("tensorflow", "torch", reason="the export requests are checked once a format is writable")
def test_bad_gpt_export_requests_are_refused(exported, tmp_path):
    model, results, _ = exported
    fmt = QUICK[keras.config.backend()]
    with pytest.raises(ExportError, match=r"verify runs the GPT runner, which needs the functions \['prefill', 'decode_step'\]; this export holds \['prefill'\]"):
        export_model(model, tmp_path / "x", format=fmt, functions=["prefill"], verify=True)
    assert not (tmp_path / "x").exists()
    with pytest.raises(ExportError, match=r"the 'generate' function .* can only be exported as savedmodel; --format torchscript holds \['decode_step', 'prefill'\]"):
        select_functions(model_functions(model), "torchscript", ["generate"])
    # Beam search (or a repetition penalty) needs the NumPy loop: no exported generate for such a preset.
    beam = ck.from_preset("gpt_remi_chromatic", **{**TINY_GPT, "generation.sampling.strategy": "beam"})
    with pytest.raises(ExportError, match=r"no function 'generate'; expected one of \['decode_step', 'prefill'\]"):
        select_functions(model_functions(beam), "savedmodel", ["generate"])
    result = export_model(model, tmp_path / "prefill_only", format=fmt, functions=["prefill"])
    assert "runner" not in result.manifest and not (tmp_path / "prefill_only" / "sample.py").exists()


def _runner_module():
    sys.path.insert(0, str(EXPORT_DIR))
    try:
        import sample_runner
    finally:
        sys.path.pop(0)
    return sample_runner


def _fake_export(tmp_path, vocab=6, eos=5, pad=0):
    manifest = {
        "format": "fake",
        "functions": {"prefill": {}, "decode_step": {}},
        "settings": {
            "gpt": {
                "vocabulary_size": vocab,
                "eos_id": eos,
                "pad_id": pad,
                "max_sequence_length": 12,
                "prompt_length_range": [2, 11],
                "prompts": {"none": [1, 2], "Red": [1, 3, 2]},
                "sampling": {"top_k": 3, "repetition_penalty": 1.0},
            }
        },
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    return manifest


def test_the_runner_loop_stops_at_eos_and_pads_like_generate(tmp_path, monkeypatch):
    """The runner's loop against chroma_keras' own sample_loop, with a deterministic fake model: row 0 ends
    with <eos> after 2 tokens, row 1 after 4, then <pad>; the loop stops when every row has ended."""
    from chroma_keras.generation.samplers import SamplingConfig, sample_loop

    runner = _runner_module()
    _fake_export(tmp_path)

    def next_logits(sequences):  # row r emits token 3 until its length reaches 5 + 2 r, then <eos> (5)
        logits = np.zeros((len(sequences), 6), np.float32)
        for row, sequence in enumerate(sequences):
            logits[row, 5 if len(sequence) >= 5 + 2 * row else 3] = 1.0
        return logits

    seen = []

    def fake_load(export_dir, manifest, name):
        if name == "prefill":
            return lambda ids: (next_logits(ids), ids.copy())
        def step(token, cache, index):
            assert token.dtype == np.int32 and index.dtype == np.int32 and int(index) == cache.shape[1]
            seen.append(int(index))
            cache = np.concatenate([cache, token], axis=1)
            return next_logits(cache), cache
        return step

    monkeypatch.setattr(runner, "load_function", fake_load)
    prompt = np.array([1, 3, 2], np.int32)
    served = runner.generate_tokens(tmp_path, prompt_ids=prompt, num_samples=2, max_new_tokens=8)["token_ids"]
    reference = sample_loop(next_logits, np.repeat(prompt[None], 2, axis=0), 11, SamplingConfig("greedy"), eos_id=5, pad_id=0)
    np.testing.assert_array_equal(served, reference)
    assert served.tolist() == [[1, 3, 2, 3, 3, 5, 0, 0], [1, 3, 2, 3, 3, 3, 3, 5]] and seen == [3, 4, 5, 6]


def test_the_runner_refuses_bad_prompts_and_options(tmp_path):
    runner = _runner_module()
    _fake_export(tmp_path)
    with pytest.raises(SystemExit, match=r"prompt token ids must be a 1-D sequence of integers; got dtype float32"):
        runner.generate_tokens(tmp_path, prompt_ids=np.array([1.0, 2.0], np.float32))
    with pytest.raises(SystemExit, match=r"the prompt must hold 2 to 11 token ids; got 1"):
        runner.generate_tokens(tmp_path, prompt_ids=[1])
    with pytest.raises(SystemExit, match=r"prompt token ids must be in \[0, 6\); got 1..9"):
        runner.generate_tokens(tmp_path, prompt_ids=[1, 9])
    with pytest.raises(SystemExit, match=r"unknown condition 'Purple'"):
        runner.generate_tokens(tmp_path, condition="Purple")
    with pytest.raises(SystemExit, match=r"sampling must be one of \['greedy', 'temperature', 'top_k'\]; got 'top_p'"):
        runner.generate_tokens(tmp_path, condition="red", sampling="top_p")
    with pytest.raises(SystemExit, match=r"--prompt-ids must be comma-separated integers; got '1,x'"):
        runner.main(["--export-dir", str(tmp_path), "--prompt-ids", "1,x", "--out", str(tmp_path / "t.npz")])


def test_the_runner_decodes_greedily_when_the_manifest_disables_top_k(tmp_path, monkeypatch):
    """The schema's default top_k is 0 ("disabled"): greedy and temperature decoding must still run, and
    only the top_k strategy needs top_k >= 1."""
    runner = _runner_module()
    manifest = _fake_export(tmp_path)
    manifest["settings"]["gpt"]["sampling"]["top_k"] = 0
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))

    def fake_load(export_dir, manifest, name):  # token 3 twice, then <eos> (5)
        def logits(length, rows):
            out = np.zeros((rows, 6), np.float32)
            out[:, 5 if length >= 5 else 3] = 1.0
            return out

        if name == "prefill":
            return lambda ids: (logits(ids.shape[1], len(ids)), np.asarray(ids.shape[1]))
        return lambda token, cache, index: (logits(int(index) + 1, len(token)), cache)

    monkeypatch.setattr(runner, "load_function", fake_load)
    greedy = runner.generate_tokens(tmp_path, prompt_ids=[1, 3, 2], max_new_tokens=8)["token_ids"]
    assert greedy.tolist() == [[1, 3, 2, 3, 3, 5]]
    hot = runner.generate_tokens(tmp_path, prompt_ids=[1, 3, 2], max_new_tokens=8, sampling="temperature", temperature=0.0)
    assert hot["token_ids"].tolist() == [[1, 3, 2, 3, 3, 5]]
    with pytest.raises(SystemExit, match=r"top_k >= 1 \(sampling top_k\).*got 1.0, 0,"):
        runner.generate_tokens(tmp_path, prompt_ids=[1, 3, 2], sampling="top_k")
