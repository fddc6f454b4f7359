"""PianoRollDiffusion: training through fit(), the compiled sampling loop against an eager reference,
classifier-free and classifier guidance, save/load, and input errors."""

import keras
import numpy as np
import pyarrow.parquet as pq
import pytest
from keras import ops

import chroma_keras as ck
from chroma_keras import conditioning
from chroma_keras.data import keys
from chroma_keras.data.demo_corpus import generate_demo_corpus
from chroma_keras.data.multimodal_dataset import MultimodalDataset
from chroma_keras.errors import LabelError, ModelInputError
from chroma_keras.generation.guidance import classifier_guidance, input_gradient
from chroma_keras.generation.sampling_noise import step_noise

GRID = {
    "preprocessing.midi.piano_roll.num_pitches": 16,
    "preprocessing.midi.piano_roll.lowest_pitch": 48,
    "preprocessing.midi.piano_roll.num_frames": 32,
    "preprocessing.midi.piano_roll.frames_per_second": 2.0,
    "model.diffusion.num_steps": 100,
    "model.diffusion.condition_dim": 16,
    "generation.sampling.num_steps": 8,
    "training.batch_size": 16,
    "training.learning_rate": 0.002,
}
UNET = {**GRID, "model.diffusion.channels": [8, 16], "model.diffusion.attention": False}
DIT = {
    **GRID,
    "model.diffusion.hidden_dim": 32,
    "model.diffusion.num_layers": 2,
    "model.diffusion.num_heads": 2,
    "model.diffusion.patch_size": [4, 4],
}
PRESETS = [("diffusion_pianoroll_chromatic", UNET), ("diffusion_transformer_chromatic", DIT)]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("diffusion") / "corpus.parquet"
    pq.write_table(generate_demo_corpus(songs_per_colour=2, segments_per_song=4, segment_seconds=16.0, seed=0), path)
    return path


def _model(name, small, **extra):
    keras.utils.set_random_seed(0)
    return ck.from_preset(name, **small, **extra)


def _eager_reference(model, condition, num_samples, num_steps, guidance_scale, seed, scheduler=None):
    """The sampling loop written out step by step, outside any compiled function."""
    sampler = model.make_scheduler(scheduler)
    shape = (num_samples, model.num_pitches, model.num_frames)
    arrays = conditioning.condition_arrays(condition, num_samples)
    empty = conditioning.condition_arrays(None, num_samples)
    cond = model.condition_vector(arrays[keys.MODES], arrays[keys.REBRACKETING])
    uncond = model.condition_vector(empty[keys.MODES], empty[keys.REBRACKETING])
    sample = step_noise(shape, seed, 0)
    grid = sampler.timesteps(num_steps)
    for i, t in enumerate(grid):
        timesteps = ops.full((num_samples,), int(t), "int32")
        out_c = model.denoiser({"sample": sample, "timestep": timesteps, "condition": cond})
        out_u = model.denoiser({"sample": sample, "timestep": timesteps, "condition": uncond})
        output = out_u + guidance_scale * (out_c - out_u)
        prev_t = int(grid[i + 1]) if i + 1 < len(grid) else -1
        noise = step_noise(shape, seed, i + 1)
        sample, _ = sampler.step(output, int(t), sample, num_inference_steps=num_steps, prev_timestep=prev_t, noise=noise)
    return np.clip((ops.convert_to_numpy(sample) + 1.0) / 2.0, 0.0, 1.0)


@pytest.mark.parametrize("name,small,epochs", [(*PRESETS[0], 6), (*PRESETS[1], 12)])
def test_fit_lowers_the_denoising_loss(name, small, epochs, corpus):
    model = _model(name, small)
    train = MultimodalDataset(corpus, model, split="all", require=("midi",))
    losses = model.fit(train, epochs=epochs, verbose=0).history["diffusion_loss"]
    # The v-prediction MSE starts near 1 (the zero-initialised output predicts 0; E[v^2] is about 1).
    assert losses[0] > 0.5 and losses[-1] < 0.6 * losses[0], losses


@pytest.mark.parametrize("guidance_scale", [1.0, 2.5])
@pytest.mark.parametrize("scheduler", ["ddim", "ddpm"])
def test_compiled_sampling_loop_equals_the_eager_loop(corpus, scheduler, guidance_scale):
    model = _model(*PRESETS[0])
    model.fit(MultimodalDataset(corpus, model, split="all", require=("midi",)), epochs=1, verbose=0)
    got = model.generate("Red", num_samples=2, num_steps=6, guidance_scale=guidance_scale, seed=3, scheduler=scheduler, return_velocities=True)
    want = _eager_reference(model, "Red", 2, 6, guidance_scale, seed=3, scheduler=scheduler)
    np.testing.assert_allclose(got, want, atol=2e-4)


def test_generate_properties_and_seeds():
    model = _model(*PRESETS[0])
    rolls = model.generate("Violet", num_samples=3, seed=0)
    assert rolls.shape == (3, 16, 32) and rolls.dtype == np.float32
    # Cells are silent or a note whose velocity clears the note threshold.
    assert np.all((rolls == 0) | ((rolls > model.note_threshold) & (rolls <= 1)))
    np.testing.assert_array_equal(rolls, model.generate("Violet", num_samples=3, seed=0))
    a = model.generate({"temporal": "future", "spatial": "thing", "ontological": "known"}, num_samples=2, seed=1, return_velocities=True)
    b = model.generate({"temporal": "future", "spatial": "thing", "ontological": "known"}, num_samples=2, seed=2, return_velocities=True)
    assert not np.allclose(a, b)


def test_classifier_guidance_raises_the_classifier_log_probability():
    model = _model(*PRESETS[0])

    # A fixed differentiable "classifier": class 1 = energy in the top half of the pitch range.
    class Register(keras.layers.Layer):
        def call(self, rolls, training=False):
            high = ops.mean(rolls[:, 8:, :], axis=(1, 2))
            low = ops.mean(rolls[:, :8, :], axis=(1, 2))
            return ops.stack([20.0 * low, 20.0 * high], axis=-1)

    guidance = classifier_guidance(Register(), 1)
    plain = model.generate("Red", num_samples=4, num_steps=6, seed=0, return_velocities=True)
    guided = model.generate(
        "Red", num_samples=4, num_steps=6, seed=0, classifier_guidance=guidance, classifier_scale=5.0, return_velocities=True
    )
    score = lambda rolls: ops.convert_to_numpy(guidance(ops.convert_to_tensor(rolls))).mean()
    assert score(guided) > score(plain) + 0.5


@pytest.mark.parametrize("scheduler", ["ddim", "ddpm"])
def test_classifier_guided_loop_compiles_and_equals_the_eager_loop(corpus, scheduler):
    model = _model(*PRESETS[0])
    model.fit(MultimodalDataset(corpus, model, split="all", require=("midi",)), epochs=1, verbose=0)
    weights = np.linspace(-1.0, 1.0, 16, dtype=np.float32)[None, :, None]  # "high notes are good"
    guidance = lambda rolls: 10.0 * ops.mean(rolls * ops.convert_to_tensor(weights), axis=(1, 2))
    got = model.generate(
        "Red", num_samples=2, num_steps=6, seed=3, scheduler=scheduler, classifier_guidance=guidance, classifier_scale=4.0,
        return_velocities=True,
    )
    # The same steps, one eager call at a time.
    sampler = model.make_scheduler(scheduler)
    shape = (2, 16, 32)
    body = model._loop_body(sampler, 6, model.guidance_scale, shape, (guidance, 4.0))
    arrays, empty = conditioning.condition_arrays("Red", 2), conditioning.condition_arrays(None, 2)
    conditions = ops.concatenate(
        [model.condition_vector(arrays[keys.MODES], arrays[keys.REBRACKETING]), model.condition_vector(empty[keys.MODES], empty[keys.REBRACKETING])],
        axis=0,
    )
    want = model._eager_loop(body, 6)(step_noise(shape, 3, 0), conditions, 3)
    want = np.clip((ops.convert_to_numpy(want) + 1.0) / 2.0, 0.0, 1.0)
    np.testing.assert_allclose(got, want, atol=2e-4)
    plain = model.generate("Red", num_samples=2, num_steps=6, seed=3, scheduler=scheduler, return_velocities=True)
    assert (got * weights[0]).mean() > (plain * weights[0]).mean() + 0.01


def test_input_gradient_matches_the_analytic_gradient():
    x = np.linspace(-1.0, 1.0, 12, dtype=np.float32).reshape(2, 6)
    gradient = ops.convert_to_numpy(input_gradient(lambda v: ops.sum(v**3, axis=-1), ops.convert_to_tensor(x)))
    np.testing.assert_allclose(gradient, 3 * x**2, rtol=1e-6)


@pytest.mark.parametrize("name,small", PRESETS)
def test_save_to_preset_round_trips_generation(name, small, tmp_path):
    model = _model(name, small)
    ck.save_to_preset(model, tmp_path / "saved")
    restored = ck.from_preset(str(tmp_path / "saved"))
    np.testing.assert_allclose(
        restored.generate("Blue", num_samples=2, seed=4, return_velocities=True),
        model.generate("Blue", num_samples=2, seed=4, return_velocities=True),
        atol=1e-5,
    )


def test_bad_inputs_raise_clear_errors():
    model = _model(*PRESETS[0])
    with pytest.raises(ModelInputError, match="num_steps"):
        model.generate("Red", num_steps=0)
    with pytest.raises(ModelInputError, match="guidance_scale"):
        model.generate("Red", guidance_scale=-1.0)
    with pytest.raises(ModelInputError, match="scheduler"):
        model.generate("Red", scheduler="euler")
    with pytest.raises(LabelError, match="Chartreuse"):
        model.generate("Chartreuse")
    with pytest.raises(ModelInputError, match="piano_rolls"):
        model.to_midi(np.zeros((2, 5, 5)), "unused")


def test_scorer_guidance_places_rolls_on_the_scorers_pitch_rows():
    """A scorer on another pitch range guides through a differentiable pad/crop that equals the NumPy
    fit_rolls_to_spec the evaluation uses (1e-5), and its gradient reaches the generator's grid."""
    from chroma_keras.evaluation.chromatic_consistency import fit_rolls_to_spec
    from chroma_keras.generation.guidance import scorer_guidance
    from chroma_keras.preprocessing.pianoroll import PianoRollSpec

    model = _model(*PRESETS[0])
    scorer_grid = {
        "preprocessing.midi.piano_roll.lowest_pitch": 36,
        "preprocessing.midi.piano_roll.num_pitches": 24,  # MIDI 36-59 against the generator's 48-63
        "preprocessing.midi.piano_roll.num_frames": 32,
        "preprocessing.midi.piano_roll.frames_per_second": 2.0,
        "model.midi_encoder.filters": [4, 4, 4],
        "model.midi_encoder.hidden_dim": 8,
    }
    scorer = ck.from_preset("scorer_midi_only", **scorer_grid)
    rolls = np.random.default_rng(0).random((3, 16, 32)).astype("float32")
    guidance = scorer_guidance(scorer, "Violet", model.roll_spec())
    placed = fit_rolls_to_spec(rolls, model.roll_spec(), PianoRollSpec.from_config(scorer.preset_config))
    out = scorer({keys.PIANO_ROLL: ops.convert_to_tensor(placed)}, training=False)
    weights = conditioning.condition_arrays("Violet", 1)[keys.MODES].reshape(3, 3)
    expected = sum(
        (ops.convert_to_numpy(ops.log_softmax(out[f"{axis}_logits"], axis=-1)) * weights[i]).sum(axis=-1)
        for i, axis in enumerate(("temporal", "spatial", "ontological"))
    )
    np.testing.assert_allclose(ops.convert_to_numpy(guidance(ops.convert_to_tensor(rolls))), expected, atol=1e-5)
    gradient = ops.convert_to_numpy(input_gradient(guidance, ops.convert_to_tensor(rolls)))
    assert gradient.shape == rolls.shape
    assert np.abs(gradient[:, :12]).sum() > 0  # MIDI 48-59 are on the scorer's grid
    np.testing.assert_array_equal(gradient[:, 12:], 0.0)  # MIDI 60-63 are cropped away
    with pytest.raises(ModelInputError, match="time axis"):
        scorer_guidance(
            ck.from_preset("scorer_midi_only", **{**scorer_grid, "preprocessing.midi.piano_roll.num_frames": 16}), "Red", model.roll_spec()
        )
