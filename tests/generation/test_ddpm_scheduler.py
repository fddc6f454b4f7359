"""DDPMScheduler against diffusers' DDPMScheduler (same injected noise) and its golden values.

Tolerance: rtol = atol = 1e-5, our steps in float32. Two references: diffusers with its
tables swapped for float64 ones (every timestep), and stock float32 diffusers (t >= 100).
Below t ~ 100, float32 diffusers is itself off by up to ~1e-4: ``1 - alpha_bar_t`` and
``1 - alpha_bar_t / alpha_bar_t'`` cancel in float32 when alpha_bar ~ 1; our steps read
``1 - alpha_bar`` from a table rounded once from float64 and stay within 1e-5 of the
float64 result there.
"""

import importlib

import keras
import numpy as np
import pytest
from keras import ops

from chroma_keras.errors import ModelInputError
from chroma_keras.generation.schedulers import DDPMScheduler

diffusers = pytest.importorskip("diffusers")
torch = pytest.importorskip("torch")

DIFFUSERS_SCHEDULE = {"linear": "linear", "scaled_linear": "scaled_linear", "cosine": "squaredcos_cap_v2"}
DIFFUSERS_PREDICTION = {"epsilon": "epsilon", "v": "v_prediction", "sample": "sample"}
TOL = dict(rtol=1e-5, atol=1e-5)
SHAPE = (2, 3, 5)  # [batch, channels, length]; channels-first as diffusers splits learned variance on axis 1


def _np(x):
    return np.asarray(ops.convert_to_numpy(x))


def _pair(schedule="linear", prediction_type="epsilon", float64=False, **kwargs):
    """Our scheduler and diffusers' with the same options; ``float64`` swaps diffusers' tables
    for float64 ones built from our betas (the precise reference, see the module docstring)."""
    ours = DDPMScheduler(1000, schedule, prediction_type=prediction_type, **kwargs)
    ref = diffusers.DDPMScheduler(
        num_train_timesteps=1000,
        beta_schedule=DIFFUSERS_SCHEDULE[schedule],
        prediction_type=DIFFUSERS_PREDICTION[prediction_type],
        **kwargs,
    )
    if float64:
        ref.betas = torch.tensor(ours.betas, dtype=torch.float64)
        ref.alphas = 1.0 - ref.betas
        ref.alphas_cumprod = torch.cumprod(ref.alphas, dim=0)
        ref.one = torch.tensor(1.0, dtype=torch.float64)
    return ours, ref


@pytest.fixture
def inject_noise(monkeypatch):
    """``inject_noise(z)``: diffusers' DDPM step then draws ``z`` (in the step's dtype)."""
    module = importlib.import_module(diffusers.DDPMScheduler.__module__)

    def inject(z):
        monkeypatch.setattr(module, "randn_tensor", lambda shape, dtype=None, **_: torch.tensor(z, dtype=dtype))

    return inject


def _ref_step(ref, model_output, t, sample, float64=False):
    dtype = torch.float64 if float64 else torch.float32
    out = ref.step(torch.tensor(model_output, dtype=dtype), int(t), torch.tensor(sample, dtype=dtype))
    return out.prev_sample.numpy(), out.pred_original_sample.numpy()


def test_posterior_variance_golden_values():
    scheduler = DDPMScheduler(1000, "linear", beta_start=1e-4, beta_end=0.02)
    for t, expected in [(0, 0.0), (487, 0.00979), (999, 0.02)]:
        assert abs(float(_np(scheduler.variance(t))) - expected) < 1e-5


@pytest.mark.parametrize("schedule", ["linear", "scaled_linear", "cosine"])
@pytest.mark.parametrize("prediction_type", ["epsilon", "v", "sample"])
@pytest.mark.parametrize("variance_type", ["fixed_small", "fixed_small_log", "fixed_large", "learned", "learned_range"])
def test_single_step_matches_diffusers(schedule, prediction_type, variance_type, inject_noise):
    rng = np.random.default_rng(0)
    learned = variance_type.startswith("learned")
    for float64, timesteps in [(True, (999, 487, 100, 10, 1, 0)), (False, (999, 487, 100))]:
        ours, ref = _pair(schedule, prediction_type, float64, variance_type=variance_type, clip_sample=False)
        for t in timesteps:
            sample, model_output, noise = rng.standard_normal((3, *SHAPE)).astype("float32")
            if variance_type == "learned":  # the model predicts sigma^2 itself
                predicted_variance = rng.uniform(1e-3, 2e-2, SHAPE).astype("float32")
            else:  # learned_range: v in [-1, 1]
                predicted_variance = rng.uniform(-1, 1, SHAPE).astype("float32")
            ref_input = np.concatenate([model_output, predicted_variance], axis=1) if learned else model_output
            inject_noise(noise)
            want_prev, want_x0 = _ref_step(ref, ref_input, t, sample, float64)
            prev, x0 = ours.step(
                model_output, t, sample, predicted_variance=predicted_variance if learned else None, noise=noise
            )
            where = f"t={t} diffusers in {'float64' if float64 else 'float32'}"
            np.testing.assert_allclose(_np(x0), want_x0, **TOL, err_msg=where)
            np.testing.assert_allclose(_np(prev), want_prev, **TOL, err_msg=where)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v", "sample"])
def test_clipping_and_thresholding_match_diffusers(prediction_type, inject_noise):
    rng = np.random.default_rng(1)
    sample, model_output, noise = (3 * rng.standard_normal((3, *SHAPE))).astype("float32")
    options = [
        dict(clip_sample=True, clip_sample_range=0.5),
        dict(thresholding=True, dynamic_thresholding_ratio=0.9, sample_max_value=2.5),
    ]
    for kwargs in options:
        ours, ref = _pair("linear", prediction_type, True, **kwargs)
        for t in (800, 20):
            inject_noise(noise)
            want_prev, want_x0 = _ref_step(ref, model_output, t, sample, True)
            prev, x0 = ours.step(model_output, t, sample, noise=noise)
            np.testing.assert_allclose(_np(x0), want_x0, **TOL, err_msg=str(kwargs))
            np.testing.assert_allclose(_np(prev), want_prev, **TOL, err_msg=str(kwargs))


@pytest.mark.parametrize("spacing", ["linspace", "leading", "trailing"])
def test_respaced_sampling_loop_matches_diffusers(spacing, inject_noise):
    """A 20-step ancestral loop, the same noise in both, model ``sample * t / (t + 1)``."""
    ours, ref = _pair("cosine", "v", True, timestep_spacing=spacing, clip_sample=True)
    ref.set_timesteps(20)
    np.testing.assert_array_equal(ours.timesteps(20), ref.timesteps.numpy())
    rng = np.random.default_rng(2)
    x_ref = torch.tensor(rng.standard_normal(SHAPE), dtype=torch.float64)
    x = ops.convert_to_tensor(x_ref.numpy().astype("float32"))
    for t in ours.timesteps(20):
        noise = rng.standard_normal(SHAPE).astype("float32")
        inject_noise(noise)
        x_ref = ref.step(x_ref * float(t) / (float(t) + 1), int(t), x_ref).prev_sample
        x, _ = ours.step(x * float(t) / (float(t) + 1), t, x, num_inference_steps=20, noise=noise)
        np.testing.assert_allclose(_np(x), x_ref.numpy(), **TOL, err_msg=f"t={t}")


def test_learned_variance_is_split_off_the_last_axis():
    scheduler = DDPMScheduler(1000, variance_type="learned_range")
    rng = np.random.default_rng(3)
    sample = rng.standard_normal((2, 5, 3)).astype("float32")  # channels last
    prediction = rng.standard_normal((2, 5, 3)).astype("float32")
    v = rng.uniform(-1, 1, (2, 5, 3)).astype("float32")
    noise = rng.standard_normal((2, 5, 3)).astype("float32")
    joint = scheduler.step(np.concatenate([prediction, v], axis=-1), 300, sample, noise=noise)
    split = scheduler.step(prediction, 300, sample, predicted_variance=v, noise=noise)
    for a, b in zip(joint, split):
        np.testing.assert_allclose(_np(a), _np(b), rtol=1e-6)
    with pytest.raises(ModelInputError, match=r"needs 2 \* 3 channels on its last axis.*predicted_variance"):
        scheduler.step(prediction, 300, sample, noise=noise)
    with pytest.raises(ModelInputError, match="needs `predicted_variance`"):
        scheduler.variance(300)


def test_log_variants_equal_their_plain_forms():
    # diffusers returns NaN for fixed_large_log in step(); here it is beta_t computed via its log.
    rng = np.random.default_rng(4)
    args = [rng.standard_normal(SHAPE).astype("float32") for _ in range(3)]
    for plain in ("fixed_small", "fixed_large"):
        a = DDPMScheduler(1000, variance_type=plain).step(args[0], 600, args[1], noise=args[2])[0]
        b = DDPMScheduler(1000, variance_type=plain + "_log").step(args[0], 600, args[1], noise=args[2])[0]
        np.testing.assert_allclose(_np(a), _np(b), rtol=1e-5, atol=1e-6)
    beta_600 = 1e-4 + 600 * (0.02 - 1e-4) / 999  # fixed_large: sigma^2 = beta_t on the full chain
    assert float(_np(DDPMScheduler(1000, variance_type="fixed_large_log").variance(600))) == pytest.approx(beta_600, rel=1e-5)


def test_the_step_onto_the_clean_end_adds_no_noise():
    rng = np.random.default_rng(5)
    sample, model_output = rng.standard_normal((2, *SHAPE)).astype("float32")
    for scheduler, t, n in [(DDPMScheduler(1000, variance_type="fixed_large"), 0, None),
                            (DDPMScheduler(1000, variance_type="fixed_large", timestep_spacing="trailing"), 99, 10)]:
        quiet = scheduler.step(model_output, t, sample, num_inference_steps=n, noise=np.zeros(SHAPE, "float32"))[0]
        loud = scheduler.step(model_output, t, sample, num_inference_steps=n, noise=np.full(SHAPE, 9.0, "float32"))[0]
        np.testing.assert_array_equal(_np(quiet), _np(loud))


def test_seeded_noise_has_the_posterior_standard_deviation():
    scheduler = DDPMScheduler(1000, clip_sample=False)
    sample = np.zeros((40000,), "float32")
    model_output = np.zeros((40000,), "float32")
    mean = _np(scheduler.step(model_output, 500, sample, noise=np.zeros_like(sample))[0])
    draws = [_np(scheduler.step(model_output, 500, sample, seed=seed)[0]) for seed in (7, 7)]
    np.testing.assert_array_equal(draws[0], draws[1])  # an int seed is reproducible
    std = np.std(draws[0] - mean)
    assert std == pytest.approx(np.sqrt(float(_np(scheduler.variance(500)))), rel=0.02)
    generator = keras.random.SeedGenerator(1)
    first, second = (_np(scheduler.step(model_output, 500, sample, seed=generator)[0]) for _ in range(2))
    assert not np.allclose(first, second)  # a SeedGenerator advances


def test_batched_timesteps_equal_per_example_steps():
    scheduler = DDPMScheduler(1000, "cosine", prediction_type="v")
    rng = np.random.default_rng(6)
    sample, model_output, noise = rng.standard_normal((3, 3, 4, 2)).astype("float32")
    t = np.array([900, 450, 3])
    batched = scheduler.step(model_output, t, sample, noise=noise)[0]
    single = [scheduler.step(model_output[i : i + 1], int(t[i]), sample[i : i + 1], noise=noise[i : i + 1])[0] for i in range(3)]
    np.testing.assert_allclose(_np(batched), np.concatenate([_np(s) for s in single]), rtol=1e-6, atol=1e-6)


def test_shape_mismatch_is_reported():
    scheduler = DDPMScheduler(1000)
    with pytest.raises(ModelInputError, match=r"`model_output` must have the shape of `sample`"):
        scheduler.step(np.zeros((2, 3)), 10, np.zeros((2, 4)))
    with pytest.raises(ModelInputError, match=r"`timestep` must be an integer in \[0, 999\]"):
        scheduler.step(np.zeros((2, 3)), 1000, np.zeros((2, 3)))


def test_compiled_step_with_tensor_timesteps_equals_eager():
    """learned_range + dynamic thresholding + per-example timesteps, inside jax.jit / tf.function
    (XLA); torch runs it eagerly (torch.compile takes ~20 s on CPU, see test_ddim_scheduler.py)."""
    scheduler = DDPMScheduler(1000, "cosine", variance_type="learned_range", thresholding=True, sample_max_value=2.0)
    rng = np.random.default_rng(7)
    sample, prediction, v, noise = rng.standard_normal((4, 3, 6, 2)).astype("float32")
    model_output = np.concatenate([prediction, np.tanh(v)], axis=-1)
    timesteps = np.array([999, 500, 0], dtype="int32")

    def step(model_output, timesteps, sample, noise):
        return scheduler.step(model_output, timesteps, sample, num_inference_steps=100, noise=noise)

    backend = keras.backend.backend()
    compiled = step
    if backend == "jax":
        import jax

        compiled = jax.jit(step)
    elif backend == "tensorflow":
        import tensorflow as tf

        compiled = tf.function(step, jit_compile=True)
    args = [ops.convert_to_tensor(a) for a in (model_output, timesteps, sample, noise)]
    for got, want in zip(compiled(*args), step(model_output, [999, 500, 0], sample, noise)):
        np.testing.assert_allclose(_np(got), _np(want), rtol=1e-5, atol=1e-6)
