"""Forward process, schedules, timestep grids, config and preset loading of the diffusion schedulers.

Parity references: diffusers' DDPMScheduler / DDIMScheduler (a test-only dependency),
and the closed forms of the papers. Tolerance: rtol = atol = 1e-5 in float32 unless stated.
"""

import keras
import numpy as np
import pytest
from keras import ops

from chroma_keras.config import validate_config
from chroma_keras.errors import ModelInputError, PresetError
from chroma_keras.generation.schedulers import (
    DDIMScheduler,
    DDPMScheduler,
    NoiseSchedule,
    make_betas,
    make_timesteps,
    scheduler_from_preset_config,
)

diffusers = pytest.importorskip("diffusers")
torch = pytest.importorskip("torch")

DIFFUSERS_SCHEDULE = {"linear": "linear", "scaled_linear": "scaled_linear", "cosine": "squaredcos_cap_v2"}
TOL = dict(rtol=1e-5, atol=1e-5)


def _np(x):
    return np.asarray(ops.convert_to_numpy(x))


# === Schedules ===


@pytest.mark.parametrize("schedule", ["linear", "scaled_linear", "cosine"])
@pytest.mark.parametrize("T", [1000, 50])
def test_betas_and_alphas_cumprod_match_diffusers(schedule, T):
    ours = NoiseSchedule(T, schedule, beta_start=1e-4, beta_end=0.02)
    ref = diffusers.DDPMScheduler(num_train_timesteps=T, beta_schedule=DIFFUSERS_SCHEDULE[schedule])
    # diffusers stores float32 tables; ours are float64, so compare at float32 precision.
    np.testing.assert_allclose(ours.betas, ref.betas.numpy(), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(ours.alphas_cumprod, ref.alphas_cumprod.numpy(), rtol=1e-5, atol=1e-7)


def test_cosine_schedule_follows_nichol_dhariwal_closed_form():
    T, s = 1000, 0.008
    schedule = NoiseSchedule(T, "cosine")
    f = np.cos((np.arange(T + 1) / T + s) / (1 + s) * np.pi / 2) ** 2
    uncapped = schedule.betas < 0.999  # alpha_bar_t = f(t) / f(0) where the 0.999 cap is inactive
    np.testing.assert_allclose(schedule.alphas_cumprod[uncapped], (f[1:] / f[0])[uncapped], rtol=1e-12)
    assert schedule.betas.max() == pytest.approx(0.999)  # the cap bites at t = T-1
    np.testing.assert_allclose(make_betas("linear", 3, 0.1, 0.3), [0.1, 0.2, 0.3])
    np.testing.assert_allclose(make_betas("scaled_linear", 3, 0.01, 0.09), [0.01, 0.04, 0.09])


# === Timestep grids ===


@pytest.mark.parametrize("spacing", ["linspace", "leading", "trailing"])
@pytest.mark.parametrize("steps_offset", [0, 1])
def test_timesteps_match_diffusers_for_every_spacing(spacing, steps_offset):
    T = 1000
    for n in (1, 7, 10, 50, 333, 999, 1000):
        if spacing == "leading" and steps_offset and n == T:
            continue  # would reach timestep T; checked in test_bad_arguments
        ours = DDIMScheduler(T, timestep_spacing=spacing, steps_offset=steps_offset).timesteps(n)
        for ref_cls in (diffusers.DDIMScheduler, diffusers.DDPMScheduler):
            ref = ref_cls(num_train_timesteps=T, timestep_spacing=spacing, steps_offset=steps_offset)
            ref.set_timesteps(n)
            np.testing.assert_array_equal(ours, ref.timesteps.numpy(), err_msg=f"{spacing} n={n}")
        assert ours.dtype == np.int32 and len(ours) == n and np.all(np.diff(ours) < 0)


def test_trailing_spacing_keeps_exactly_n_steps():
    # np.arange(1000, 0, -1000/61) returns 62 values by round-off; the grid must have 61.
    grid = make_timesteps(1000, 61, "trailing")
    ref = diffusers.DDIMScheduler(timestep_spacing="trailing")
    ref.set_timesteps(61)
    assert len(grid) == 61 and grid[0] == 999 and grid[-1] >= 0
    np.testing.assert_array_equal(grid, ref.timesteps.numpy()[:61])


def test_previous_timestep_walks_the_grid():
    scheduler = DDIMScheduler(1000, timestep_spacing="linspace")
    grid = scheduler.timesteps(10)
    prev = _np(scheduler.previous_timestep(ops.convert_to_tensor(grid), num_inference_steps=10))
    np.testing.assert_array_equal(prev, np.append(grid[1:], -1))
    # Off-grid timesteps step to the largest grid timestep below them; DDPM's full chain steps by 1.
    assert int(_np(scheduler.previous_timestep(500, num_inference_steps=10))) == 444
    np.testing.assert_array_equal(_np(DDPMScheduler(1000).previous_timestep(np.array([999, 1, 0]))), [998, 0, -1])


# === Forward process ===


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_add_noise_and_velocity_match_diffusers(schedule):
    rng = np.random.default_rng(0)
    x0 = rng.uniform(-1, 1, (4, 3, 8)).astype("float32")
    noise = rng.standard_normal((4, 3, 8)).astype("float32")
    t = np.array([0, 250, 777, 999])
    ours = NoiseSchedule(1000, schedule)
    ref = diffusers.DDPMScheduler(beta_schedule=DIFFUSERS_SCHEDULE[schedule])
    tt = [torch.tensor(v) for v in (x0, noise, t)]
    np.testing.assert_allclose(_np(ours.add_noise(x0, noise, t)), ref.add_noise(*tt).numpy(), **TOL)
    np.testing.assert_allclose(_np(ours.get_velocity(x0, noise, t)), ref.get_velocity(*tt).numpy(), **TOL)
    # A scalar (Python int) timestep broadcasts over the batch.
    np.testing.assert_allclose(
        _np(ours.add_noise(x0, noise, 250)),
        ref.add_noise(tt[0], tt[1], torch.tensor([250] * 4)).numpy(),
        **TOL,
    )


@pytest.mark.parametrize("prediction_type", ["epsilon", "v", "sample"])
def test_training_target_inverts_to_x0_and_noise(prediction_type):
    rng = np.random.default_rng(1)
    x0 = rng.uniform(-1, 1, (3, 5, 2)).astype("float32")
    noise = rng.standard_normal((3, 5, 2)).astype("float32")
    t = np.array([10, 400, 900])
    schedule = NoiseSchedule(1000, "cosine", prediction_type=prediction_type)
    x_t = schedule.add_noise(x0, noise, t)
    target = schedule.training_target(x0, noise, t)
    pred_x0, pred_eps = schedule.predict_original_and_epsilon(target, x_t, t)
    np.testing.assert_allclose(_np(pred_x0), x0, atol=2e-4)
    np.testing.assert_allclose(_np(pred_eps), noise, atol=2e-4)


def test_sample_timesteps_are_uniform_over_the_chain():
    schedule = NoiseSchedule(50)
    t = _np(schedule.sample_timesteps(20000, seed=3))
    assert t.dtype == np.int32 and t.min() == 0 and t.max() == 49
    counts = np.bincount(t, minlength=50)
    assert counts.min() > 300 and counts.max() < 500  # expected 400 each
    np.testing.assert_array_equal(t, _np(schedule.sample_timesteps(20000, seed=3)))


# === Config ===


@pytest.mark.parametrize(
    "scheduler",
    [
        NoiseSchedule(200, "squaredcos_cap_v2", prediction_type="v_prediction"),
        DDPMScheduler(500, "scaled_linear", variance_type="learned_range", num_inference_steps=25, clip_sample=False),
        DDIMScheduler(1000, eta=0.3, timestep_spacing="trailing", set_alpha_to_one=False, thresholding=True),
    ],
    ids=["noise_schedule", "ddpm", "ddim"],
)
def test_config_round_trips(scheduler):
    config = scheduler.get_config()
    rebuilt = type(scheduler).from_config(config)
    assert rebuilt.get_config() == config
    np.testing.assert_array_equal(rebuilt.alphas_cumprod, scheduler.alphas_cumprod)
    # Registered with Keras, so a model's get_config can nest it (serialize_keras_object
    # itself is not called: on non-layers it imports TensorFlow, 6 s under other backends).
    name = keras.saving.get_registered_name(type(scheduler))
    assert name == f"chroma_keras>{type(scheduler).__name__}"
    assert keras.saving.get_registered_object(name) is type(scheduler)
    if isinstance(scheduler, NoiseSchedule) and type(scheduler) is NoiseSchedule:
        # diffusers' names are accepted and stored under ours.
        assert config["noise_schedule"] == "cosine" and config["prediction_type"] == "v"


# === Bad arguments ===


@pytest.mark.parametrize(
    "build, argument, allowed",
    [
        (lambda: DDIMScheduler(noise_schedule="quadratic"), "noise_schedule", "'linear', 'scaled_linear', 'cosine'"),
        (lambda: DDPMScheduler(prediction_type="x0"), "prediction_type", "'epsilon', 'v', 'sample'"),
        (lambda: DDIMScheduler(timestep_spacing="uniform"), "timestep_spacing", "'linspace', 'leading', 'trailing'"),
        (lambda: DDPMScheduler(variance_type="huge"), "variance_type", "'fixed_small'"),
        (lambda: DDIMScheduler(eta=1.5), "eta", "[0.0, 1.0]"),
        (lambda: DDIMScheduler(eta=-0.1), "eta", "[0.0, 1.0]"),
        (lambda: NoiseSchedule(num_train_timesteps=0), "num_train_timesteps", ">= 1"),
        (lambda: NoiseSchedule(beta_end=1.5), "beta_end", "(0.0, 1.0)"),
        (lambda: DDIMScheduler(100, num_inference_steps=101), "num_inference_steps", "[1, 100]"),
        (lambda: DDIMScheduler(100).timesteps(101), "num_inference_steps", "[1, 100]"),
        (lambda: DDIMScheduler(100).timesteps(0), "num_inference_steps", "[1, 100]"),
        (lambda: DDIMScheduler(100, steps_offset=1).timesteps(100), "num_inference_steps", "steps_offset=1"),
        (lambda: DDIMScheduler(clip_sample="yes"), "clip_sample", "true or false"),
        (lambda: NoiseSchedule(100).add_noise(np.zeros(2), np.zeros(2), 100), "timestep", "[0, 99]"),
    ],
)
def test_bad_arguments_name_the_argument_and_allowed_values(build, argument, allowed):
    with pytest.raises(ModelInputError) as info:
        build()
    message = str(info.value)
    assert f"`{argument}`" in message and allowed in message and "Received:" in message


def test_from_config_rejects_unknown_keys():
    with pytest.raises(ModelInputError, match=r"unknown key\(s\) \['beta_schedule'\].*allowed keys"):
        DDIMScheduler.from_config({"beta_schedule": "linear"})


# === Presets ===


def test_scheduler_from_validated_preset_uses_schema_defaults():
    config = validate_config({"name": "d", "model": {"generative": {"type": "diffusion"}}})
    scheduler = scheduler_from_preset_config(config)
    assert isinstance(scheduler, DDIMScheduler)
    assert (scheduler.num_train_timesteps, scheduler.noise_schedule, scheduler.prediction_type) == (
        1000,
        "linear",
        "epsilon",
    )
    assert scheduler.num_inference_steps == config["generation"]["sampling"]["num_steps"]
    assert len(scheduler.timesteps()) == scheduler.num_inference_steps


def test_scheduler_from_preset_reads_every_key():
    config = {
        "model": {
            "diffusion": {
                "num_steps": 400,
                "noise_schedule": "cosine",
                "prediction_type": "v",
                "variance_type": "fixed_large",
            }
        },
        "generation": {
            "sampling": {
                "scheduler": "ddpm",
                "num_steps": 40,
                "timestep_spacing": "trailing",
                "eta": 0.7,  # DDIM-only: ignored by DDPM
                "clip_sample": False,
                "clip_sample_range": 2.0,
            }
        },
    }
    ddpm = scheduler_from_preset_config(config)
    assert isinstance(ddpm, DDPMScheduler)
    expected = dict(num_train_timesteps=400, noise_schedule="cosine", prediction_type="v", variance_type="fixed_large")
    expected.update(num_inference_steps=40, timestep_spacing="trailing", clip_sample=False, clip_sample_range=2.0)
    assert {k: ddpm.get_config()[k] for k in expected} == expected
    ddim = scheduler_from_preset_config(config, scheduler="ddim")
    assert isinstance(ddim, DDIMScheduler) and ddim.eta == 0.7


@pytest.mark.parametrize(
    "config, key",
    [
        ({"model": {"diffusion": {"num_steps": 10}}, "generation": {"sampling": {"num_steps": 50}}}, "generation.sampling.num_steps"),
        ({"model": {"diffusion": {"noise_schedule": "sigmoid"}}}, "model.diffusion.noise_schedule"),
        ({"model": {"diffusion": {}}, "generation": {"sampling": {"eta": 2.0}}}, "generation.sampling.eta"),
        ({"model": {"diffusion": {}}, "generation": {"sampling": {"scheduler": "euler"}}}, "generation.sampling.scheduler"),
        ({"model": {}}, "model.diffusion"),
    ],
)
def test_preset_errors_name_the_key(config, key):
    with pytest.raises(PresetError) as info:
        scheduler_from_preset_config(config)
    assert str(info.value).startswith(key + ":") and "Received" in str(info.value)
