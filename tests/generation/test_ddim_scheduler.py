"""DDIMScheduler against diffusers' DDIMScheduler, the golden values of diffusers' own tests,
and a compiled sampling loop.

Tolerance: rtol = atol = 1e-5, our steps in float32; references are diffusers with float64
tables (every timestep) and stock float32 diffusers (t >= 500; see test_ddpm_scheduler.py
for why float32 diffusers drifts at small t, where 1 - alpha_bar cancels).
"""

import keras
import numpy as np
import pytest
from keras import ops

from chroma_keras.errors import ModelInputError
from chroma_keras.generation.schedulers import DDIMScheduler, DDPMScheduler

diffusers = pytest.importorskip("diffusers")
torch = pytest.importorskip("torch")

DIFFUSERS_SCHEDULE = {"linear": "linear", "scaled_linear": "scaled_linear", "cosine": "squaredcos_cap_v2"}
DIFFUSERS_PREDICTION = {"epsilon": "epsilon", "v": "v_prediction", "sample": "sample"}
TOL = dict(rtol=1e-5, atol=1e-5)
SHAPE = (2, 3, 5)


def _np(x):
    return np.asarray(ops.convert_to_numpy(x))


def _pair(schedule="linear", prediction_type="epsilon", float64=False, **kwargs):
    """Our scheduler and diffusers' with the same options (``eta`` and
    ``use_clipped_model_output`` are step arguments in diffusers: see ``_ref_step``)."""
    ref_kwargs = {k: v for k, v in kwargs.items() if k not in ("eta", "use_clipped_model_output")}
    ours = DDIMScheduler(1000, schedule, prediction_type=prediction_type, **kwargs)
    ref = diffusers.DDIMScheduler(
        num_train_timesteps=1000,
        beta_schedule=DIFFUSERS_SCHEDULE[schedule],
        prediction_type=DIFFUSERS_PREDICTION[prediction_type],
        **ref_kwargs,
    )
    if float64:
        ref.betas = torch.tensor(ours.betas, dtype=torch.float64)
        ref.alphas = 1.0 - ref.betas
        ref.alphas_cumprod = torch.cumprod(ref.alphas, dim=0)
        ref.final_alpha_cumprod = torch.tensor(ours.final_alpha_cumprod, dtype=torch.float64)
    return ours, ref


def _ref_step(ref, ours, model_output, t, sample, noise, float64):
    dtype = torch.float64 if float64 else torch.float32
    out = ref.step(
        torch.tensor(model_output, dtype=dtype),
        int(t),
        torch.tensor(sample, dtype=dtype),
        eta=ours.eta,
        use_clipped_model_output=ours.use_clipped_model_output,
        variance_noise=torch.tensor(noise, dtype=dtype),
    )
    return out.prev_sample.numpy(), out.pred_original_sample.numpy()


def _golden_sample():
    """diffusers' ``dummy_sample_deter``: arange(768) / 768 as [3, 8, 8, 4], moved to [4, 3, 8, 8]."""
    return (np.arange(768).reshape(3, 8, 8, 4) / 768).transpose(3, 0, 1, 2).astype("float32")


def _golden_loop(scheduler, num_inference_steps=10):
    x = ops.convert_to_tensor(_golden_sample())
    for t in scheduler.timesteps(num_inference_steps):
        x, _ = scheduler.step(x * float(t) / (float(t) + 1), t, x, num_inference_steps=num_inference_steps)
    return _np(x)


# === Golden values (diffusers' tests/schedulers/test_scheduler_ddim.py) ===


@pytest.mark.parametrize("prediction_type, total, mean", [("epsilon", 172.0067, 0.223967), ("v", 52.5302, 0.0684)])
def test_full_loop_golden_values(prediction_type, total, mean):
    scheduler = DDIMScheduler(1000, "linear", 1e-4, 0.02, prediction_type=prediction_type, clip_sample=True, eta=0.0)
    x = _golden_loop(scheduler)
    assert abs(x.sum() - total) < 1e-2 and abs(x.mean() - mean) < 1e-3


# === Single steps ===


@pytest.mark.parametrize("schedule", ["linear", "scaled_linear", "cosine"])
@pytest.mark.parametrize("prediction_type", ["epsilon", "v", "sample"])
@pytest.mark.parametrize("eta, set_alpha_to_one", [(0.0, True), (0.5, False), (1.0, True)])
def test_single_step_matches_diffusers(schedule, prediction_type, eta, set_alpha_to_one):
    rng = np.random.default_rng(0)
    grid = DDIMScheduler(1000).timesteps(10)  # 900, ..., 100, 0 (leading): the last step lands on t' = -1
    for float64, timesteps in [(True, (999, *grid[[0, 4, 8, 9]], 1)), (False, grid[:5:2])]:
        ours, ref = _pair(schedule, prediction_type, float64, eta=eta, set_alpha_to_one=set_alpha_to_one, clip_sample=False)
        ref.set_timesteps(10)
        for t in timesteps:
            sample, model_output, noise = rng.standard_normal((3, *SHAPE)).astype("float32")
            want_prev, want_x0 = _ref_step(ref, ours, model_output, t, sample, noise, float64)
            prev, x0 = ours.step(model_output, t, sample, num_inference_steps=10, prev_timestep=max(int(t) - 100, -1), noise=noise)
            where = f"t={t} diffusers in {'float64' if float64 else 'float32'}"
            np.testing.assert_allclose(_np(x0), want_x0, **TOL, err_msg=where)
            np.testing.assert_allclose(_np(prev), want_prev, **TOL, err_msg=where)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v", "sample"])
def test_clipping_thresholding_and_clipped_model_output_match_diffusers(prediction_type):
    rng = np.random.default_rng(1)
    sample, model_output, noise = (3 * rng.standard_normal((3, *SHAPE))).astype("float32")
    options = [
        dict(clip_sample=True, clip_sample_range=0.5, eta=0.3),
        dict(clip_sample=True, use_clipped_model_output=True, eta=0.3),
        dict(thresholding=True, dynamic_thresholding_ratio=0.9, sample_max_value=2.5),
    ]
    for kwargs in options:
        ours, ref = _pair("linear", prediction_type, True, **kwargs)
        ref.set_timesteps(20)
        for t in (800, 50):
            want_prev, want_x0 = _ref_step(ref, ours, model_output, t, sample, noise, True)
            prev, x0 = ours.step(model_output, t, sample, num_inference_steps=20, noise=noise)
            np.testing.assert_allclose(_np(x0), want_x0, **TOL, err_msg=str(kwargs))
            np.testing.assert_allclose(_np(prev), want_prev, **TOL, err_msg=str(kwargs))


@pytest.mark.parametrize("spacing", ["linspace", "leading", "trailing"])
def test_sampling_loops_match_diffusers_for_every_spacing(spacing):
    """Whole loops with eta = 0.4 and the same noise. diffusers steps to t - T // n; on our grid
    the step lands on the next grid timestep, so the loop passes diffusers' landing point."""
    T, n = 1000, 7
    ours, ref = _pair("scaled_linear", "epsilon", True, timestep_spacing=spacing, eta=0.4)
    ref.set_timesteps(n)
    grid = ours.timesteps(n)
    np.testing.assert_array_equal(grid, ref.timesteps.numpy())
    if spacing == "leading":  # the two rules agree
        np.testing.assert_array_equal(_np(ours.previous_timestep(grid, n)), np.append(grid[1:], -1))
        np.testing.assert_array_equal(np.append(grid[1:], -1), np.maximum(grid - T // n, -1))
    rng = np.random.default_rng(2)
    x_ref = torch.tensor(rng.standard_normal(SHAPE), dtype=torch.float64)
    x = ops.convert_to_tensor(x_ref.numpy().astype("float32"))
    for t in grid:
        noise = rng.standard_normal(SHAPE).astype("float32")
        x_ref = ref.step(x_ref * (float(t) / 1000), int(t), x_ref, eta=0.4, variance_noise=torch.tensor(noise, dtype=torch.float64)).prev_sample
        prev_t = max(int(t) - T // n, -1)
        x, _ = ours.step(x * (float(t) / 1000), t, x, num_inference_steps=n, prev_timestep=prev_t, noise=noise)
        np.testing.assert_allclose(_np(x), x_ref.numpy(), **TOL, err_msg=f"t={t}")


def test_eta_one_has_the_ddpm_posterior_variance():
    """Song et al. 2021, Eq. 16: at eta = 1 the DDIM noise is the DDPM posterior's."""
    ddim, ddpm = DDIMScheduler(1000, "cosine", eta=1.0), DDPMScheduler(1000, "cosine")
    rng = np.random.default_rng(3)
    sample, model_output, noise = rng.standard_normal((3, *SHAPE)).astype("float32")
    for t, prev_t in [(900, 850), (500, 300), (40, 0)]:
        quiet = ddim.step(model_output, t, sample, prev_timestep=prev_t, noise=np.zeros(SHAPE, "float32"))[0]
        loud = ddim.step(model_output, t, sample, prev_timestep=prev_t, noise=noise)[0]
        sigma = (_np(loud) - _np(quiet)) / noise
        expected = np.sqrt(float(_np(ddpm.variance(t, prev_timestep=prev_t))))
        np.testing.assert_allclose(sigma, expected, rtol=1e-3)


def test_eta_zero_is_deterministic_and_ignores_noise():
    scheduler = DDIMScheduler(1000, eta=0.0)
    rng = np.random.default_rng(4)
    sample, model_output, noise = rng.standard_normal((3, *SHAPE)).astype("float32")
    a = scheduler.step(model_output, 500, sample, noise=noise)[0]
    b = scheduler.step(model_output, 500, sample, seed=keras.random.SeedGenerator(0))[0]
    np.testing.assert_array_equal(_np(a), _np(b))


def test_set_alpha_to_one_chooses_the_last_steps_target():
    rng = np.random.default_rng(5)
    sample, model_output = rng.standard_normal((2, *SHAPE)).astype("float32")
    clean = DDIMScheduler(1000, set_alpha_to_one=True, clip_sample=False)
    prev, x0 = clean.step(model_output, 0, sample, num_inference_steps=10)
    np.testing.assert_allclose(_np(prev), _np(x0), rtol=1e-6)  # alpha_bar = 1: the output is x0_hat
    kept = DDIMScheduler(1000, set_alpha_to_one=False, clip_sample=False)
    assert kept.final_alpha_cumprod == pytest.approx(1 - 1e-4)
    prev, _ = kept.step(model_output, 0, sample, num_inference_steps=10)
    np.testing.assert_allclose(_np(prev), sample, rtol=1e-5, atol=1e-6)  # t = 0 -> alpha_bar_0: unchanged


# === Compiled sampling loop ===


def _compile(fn):
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.jit(fn)
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, jit_compile=True)
    # torch: torch.compile of one step works and matches, but takes ~20 s on CPU (and the
    # Python fori_loop recompiles per index), too slow for the suite; the loop with tensor
    # timesteps then runs eagerly, still checking that nothing branches on a tensor value.
    return fn


@pytest.mark.parametrize("eta", [0.0, 0.5])
def test_compiled_sampling_loop_equals_the_eager_loop(eta):
    scheduler = DDIMScheduler(1000, "linear", eta=eta, thresholding=eta > 0, sample_max_value=1.5)
    n = 10
    grid = scheduler.timesteps(n)
    x0 = _golden_sample()
    noises = np.random.default_rng(6).standard_normal((n, *x0.shape)).astype("float32")

    def sample_loop(x, noises):
        timesteps = ops.convert_to_tensor(grid)

        def body(i, x):
            t = ops.take(timesteps, i)
            tf_ = ops.cast(t, x.dtype)
            prev, _ = scheduler.step(x * tf_ / (tf_ + 1), t, x, num_inference_steps=n, noise=ops.take(noises, i, axis=0))
            return prev

        return ops.fori_loop(0, n, body, x)

    compiled = _np(_compile(sample_loop)(ops.convert_to_tensor(x0), ops.convert_to_tensor(noises)))
    eager = ops.convert_to_tensor(x0)
    for i, t in enumerate(grid):  # Python-int timesteps
        eager, _ = scheduler.step(eager * float(t) / (float(t) + 1), int(t), eager, num_inference_steps=n, noise=noises[i])
    np.testing.assert_allclose(compiled, _np(eager), rtol=1e-5, atol=1e-5)
    if eta == 0:
        assert abs(compiled.sum() - 172.0067) < 1e-2


# === Bad arguments ===


def test_bad_step_arguments_are_reported():
    scheduler = DDIMScheduler(100)
    x = np.zeros(SHAPE, "float32")
    with pytest.raises(ModelInputError, match=r"`num_inference_steps` must be an integer in \[1, 100\]"):
        scheduler.step(x, 10, x, num_inference_steps=101)
    with pytest.raises(ModelInputError, match=r"`prev_timestep` must be an integer in \[-1, 99\]"):
        scheduler.step(x, 10, x, prev_timestep=-2)
    with pytest.raises(ModelInputError, match=r"`noise` must have the shape of `sample`"):
        DDIMScheduler(100, eta=0.5).step(x, 10, x, noise=np.zeros((2, 3)))
    with pytest.raises(ModelInputError, match=r"`eta` must be a number in \[0.0, 1.0\]. Received: eta=1.01"):
        DDIMScheduler(100, eta=1.01)
