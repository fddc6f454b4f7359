"""Ancestral DDPM sampling (Ho et al. 2020), jit-friendly."""

from __future__ import annotations

from typing import Literal, get_args

import keras
from keras import ops

from chroma_keras.errors import ModelInputError
from chroma_keras.generation.schedulers.noise_schedule import (
    NoiseScheduleName,
    PredictionType,
    Scheduler,
    TimestepSpacing,
    _check_choice,
    _per_example,
)

VarianceType = Literal["fixed_small", "fixed_small_log", "fixed_large", "fixed_large_log", "learned", "learned_range"]
VARIANCE_TYPES = get_args(VarianceType)
LEARNED_VARIANCE_TYPES = ("learned", "learned_range")

# Floor of the posterior variance before its log (it is 0 on the last step).
_MIN_VARIANCE = 1e-20


@keras.saving.register_keras_serializable(package="chroma_keras")
class DDPMScheduler(Scheduler):
    """Denoising diffusion probabilistic model sampler (Ho et al. 2020, Algorithm 2).

    Each step draws ``x_{t'} ~ N(mu_t(x_t, x_0_hat), sigma_t^2 I)`` from the
    Gaussian posterior ``q(x_{t'} | x_t, x_0)`` with the predicted ``x_0`` plugged
    in (Eqs. 6-7), where ``t'`` is the previous timestep of the grid: ``t - 1`` on
    the full chain, further down with fewer inference steps (the "respaced" DDPM
    of Nichol & Dhariwal 2021, Sec. 4, with ``beta`` recomputed between grid
    points). Stochastic at every step but the last; slow (it wants ~all ``T``
    steps) but the reference sampler a model was trained for.

    Args:
        variance_type: the step's ``sigma_t^2``:

            - ``"fixed_small"`` (default): the posterior variance
              ``beta_tilde = (1 - alpha_bar_{t'}) / (1 - alpha_bar_t) * beta_t``, the
              lower bound of Ho et al. (best for ``x_0`` near a point);
            - ``"fixed_small_log"``: the same, computed through its log (as
              RL-diffuser; equal up to float rounding);
            - ``"fixed_large"``: ``beta_t``, the upper bound (Ho et al. found
              both give similar samples);
            - ``"fixed_large_log"``: ``beta_t`` computed through its log (GLIDE's
              ``max_log``). diffusers' DDPMScheduler returns NaN for this choice;
              here it equals ``"fixed_large"``;
            - ``"learned"``: the model predicts ``sigma_t^2`` itself;
            - ``"learned_range"``: the model predicts ``v`` in ``[-1, 1]`` and
              ``log sigma^2 = (v+1)/2 log beta_t + (1-v)/2 log beta_tilde``
              (Nichol & Dhariwal 2021, Eq. 15; improved DDPM, fewer steps).

            With a learned type the model outputs twice the channels of the
            sample, the variance half last on the **last** axis (channels-last,
            Keras' convention), or passes ``predicted_variance`` to :meth:`step`.
        Other args: see :class:`~chroma_keras.generation.schedulers.noise_schedule.Scheduler`.
            ``num_inference_steps=None`` samples the full chain ``T-1, ..., 0``.

    Example (``denoiser(x, t)`` is any model predicting ``prediction_type``)::

        scheduler = DDPMScheduler(num_train_timesteps=1000, noise_schedule="cosine")
        seed = keras.random.SeedGenerator(0)
        x = keras.random.normal((1, 16, 4), seed=seed)
        for t in scheduler.timesteps(100):
            x, x0_hat = scheduler.step(denoiser(x, t), t, x, num_inference_steps=100, seed=seed)
    """

    _default_inference_steps = None  # the full chain

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        noise_schedule: NoiseScheduleName = "linear",
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        prediction_type: PredictionType = "epsilon",
        variance_type: VarianceType = "fixed_small",
        num_inference_steps: int | None = None,
        timestep_spacing: TimestepSpacing = "leading",
        steps_offset: int = 0,
        clip_sample: bool = True,
        clip_sample_range: float = 1.0,
        thresholding: bool = False,
        dynamic_thresholding_ratio: float = 0.995,
        sample_max_value: float = 1.0,
    ):
        super().__init__(
            num_train_timesteps=num_train_timesteps,
            noise_schedule=noise_schedule,
            beta_start=beta_start,
            beta_end=beta_end,
            prediction_type=prediction_type,
            num_inference_steps=num_inference_steps,
            timestep_spacing=timestep_spacing,
            steps_offset=steps_offset,
            clip_sample=clip_sample,
            clip_sample_range=clip_sample_range,
            thresholding=thresholding,
            dynamic_thresholding_ratio=dynamic_thresholding_ratio,
            sample_max_value=sample_max_value,
        )
        self.variance_type = _check_choice(type(self).__name__, "variance_type", variance_type, VARIANCE_TYPES)

    def _variance(self, c, predicted_variance):
        """``sigma_t^2`` of the step, from the ``_step_coefficients`` ``c`` (Ho et al. 2020, Eqs. 6-7)."""
        current_beta_t = c["current_beta_t"]
        posterior_variance = c["beta_prod_t_prev"] / c["beta_prod_t"] * current_beta_t
        posterior_variance = ops.maximum(posterior_variance, _MIN_VARIANCE)
        if self.variance_type == "fixed_small":
            return posterior_variance
        if self.variance_type == "fixed_small_log":
            return ops.exp(ops.log(posterior_variance))
        if self.variance_type == "fixed_large":
            return current_beta_t
        if self.variance_type == "fixed_large_log":
            return ops.exp(ops.log(current_beta_t))
        if self.variance_type == "learned":
            return predicted_variance
        # learned_range: interpolate the log variance between the two bounds.
        frac = (predicted_variance + 1.0) / 2.0
        return ops.exp(frac * ops.log(current_beta_t) + (1.0 - frac) * ops.log(posterior_variance))

    def variance(self, timestep, *, num_inference_steps=None, prev_timestep=None, predicted_variance=None):
        """The variance ``sigma_t^2`` of the noise a step from ``timestep`` adds (before the last-step mask).

        Args:
            timestep: int scalar or ``[batch]``.
            num_inference_steps: grid size; None uses the configured default.
            prev_timestep: overrides the grid's previous timestep (-1: the end).
            predicted_variance: model output for the learned variance types.

        Returns:
            float32 tensor, scalar or ``[batch]`` (or the shape of ``predicted_variance``).
        """
        timestep, prev_t = self._step_timesteps(timestep, prev_timestep, num_inference_steps)
        dtype = "float32"
        ndim = 0 if predicted_variance is None else len(ops.shape(predicted_variance))
        if self.variance_type in LEARNED_VARIANCE_TYPES:
            if predicted_variance is None:
                raise ModelInputError(
                    f"DDPMScheduler.variance: variance_type={self.variance_type!r} needs `predicted_variance`. "
                    "Received: predicted_variance=None"
                )
            predicted_variance = ops.cast(predicted_variance, dtype)
        return self._variance(self._step_coefficients(timestep, prev_t, ndim, dtype), predicted_variance)

    def step(
        self,
        model_output,
        timestep,
        sample,
        *,
        num_inference_steps: int | None = None,
        prev_timestep=None,
        predicted_variance=None,
        noise=None,
        seed=None,
    ):
        """One ancestral step ``x_t -> x_{t'}``, ``t'`` the previous timestep of the grid.

        Pure: keras.ops only and no Python branch on tensor values, so it runs
        inside ``jax.jit`` / ``tf.function`` with tensor timesteps.

        Args:
            model_output: denoiser output at ``(sample, timestep)``; with a learned
                variance type and no ``predicted_variance``, twice the channels of
                ``sample`` on the last axis (prediction first, variance second).
            timestep: current timestep ``t``, int scalar or ``[batch]`` (Python int or tensor).
            sample: the noisy sample ``x_t``, float tensor ``[batch, ...]``.
            num_inference_steps: the grid the sampling loop walks (see :meth:`timesteps`);
                None uses the configured default (full chain unless set).
            prev_timestep: overrides the landing timestep ``t'`` (-1: the clean end).
            predicted_variance: the model's variance output for ``"learned"`` /
                ``"learned_range"``, shaped like ``sample``.
            noise: the ``N(0, I)`` draw to use, shaped like ``sample`` (makes the step
                deterministic); otherwise drawn with ``keras.random.normal(seed=seed)``.
            seed: int or ``keras.random.SeedGenerator`` for the noise. An int gives
                the same draw on every call: in a loop pass a SeedGenerator, or
                ``noise`` under ``jax.jit``.

        Returns:
            ``(prev_sample, pred_original_sample)``, shaped and typed like ``sample``.
        """
        owner = type(self).__name__
        sample = ops.convert_to_tensor(sample)
        model_output = ops.convert_to_tensor(model_output)

        # 0. split a learned variance off the model output (channels last)
        if self.variance_type in LEARNED_VARIANCE_TYPES and predicted_variance is None:
            channels = sample.shape[-1]
            if model_output.shape[-1] != 2 * channels:
                raise ModelInputError(
                    f"{owner}.step: with variance_type={self.variance_type!r}, `model_output` needs "
                    f"2 * {channels} channels on its last axis (prediction, then variance) or pass "
                    f"`predicted_variance`. Received: model_output shape={tuple(model_output.shape)}"
                )
            model_output, predicted_variance = model_output[..., :channels], model_output[..., channels:]
        model_output, sample_c, dtype, out_dtype = self._step_inputs(model_output, sample)
        if predicted_variance is not None:
            predicted_variance = ops.cast(predicted_variance, dtype)
        ndim = len(sample_c.shape)

        # 1. timesteps t, t' and alphas, betas (alpha_bar_t' = 1 past the end)
        timestep, prev_t = self._step_timesteps(timestep, prev_timestep, num_inference_steps)
        c = self._step_coefficients(timestep, prev_t, ndim, dtype)
        alpha_prod_t_prev = c["alpha_prod_t_prev"]
        beta_prod_t, beta_prod_t_prev = c["beta_prod_t"], c["beta_prod_t_prev"]
        current_alpha_t, current_beta_t = c["current_alpha_t"], c["current_beta_t"]

        # 2. predicted x_0 from the model output (Eq. 15 of Ho et al. 2020 for epsilon),
        #    clipped or dynamically thresholded
        pred_original_sample, _ = self._predict_clipped_original(model_output, sample_c, c)

        # 3. coefficients of x_0 and x_t in the posterior mean mu_t (Eq. 7)
        pred_original_sample_coeff = ops.sqrt(alpha_prod_t_prev) * current_beta_t / beta_prod_t
        current_sample_coeff = ops.sqrt(current_alpha_t) * beta_prod_t_prev / beta_prod_t

        # 4. posterior mean
        pred_prev_sample = pred_original_sample_coeff * pred_original_sample + current_sample_coeff * sample_c

        # 5. add sigma_t * z, except on the step that lands on the clean end (t' = -1)
        variance = self._variance(c, predicted_variance)
        variance_noise = self._step_noise(noise, sample_c, seed, dtype)
        not_last = _per_example(ops.cast(prev_t >= 0, dtype), ndim)
        prev_sample = pred_prev_sample + not_last * ops.sqrt(variance) * variance_noise
        return ops.cast(prev_sample, out_dtype), ops.cast(pred_original_sample, out_dtype)

    def get_config(self) -> dict:
        config = super().get_config()
        config["variance_type"] = self.variance_type
        return config
