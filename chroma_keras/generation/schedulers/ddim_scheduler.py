"""DDIM sampling (Song et al. 2021), jit-friendly."""

from __future__ import annotations

import keras
from keras import ops

from chroma_keras.generation.schedulers.noise_schedule import (
    NoiseScheduleName,
    PredictionType,
    Scheduler,
    TimestepSpacing,
    _check_bool,
    _check_float,
)


@keras.saving.register_keras_serializable(package="chroma_keras")
class DDIMScheduler(Scheduler):
    """Denoising diffusion implicit model sampler (Song et al. 2021).

    DDIM reuses a DDPM-trained denoiser with a non-Markovian reverse process
    that can skip timesteps (Song et al. 2021, Eq. 12)::

        x_{t'} = sqrt(alpha_bar_{t'}) x0_hat
                 + sqrt(1 - alpha_bar_{t'} - sigma_t^2) eps_hat
                 + sigma_t z,
        sigma_t = eta * sqrt((1 - alpha_bar_{t'}) / (1 - alpha_bar_t))
                      * sqrt(1 - alpha_bar_t / alpha_bar_{t'})          (Eq. 16)

    ``eta = 0`` is deterministic (the same noise always gives the same sample, and
    the map noise -> sample is invertible, which latent interpolation needs);
    ``eta = 1`` matches the DDPM posterior variance. 20-100 steps usually suffice.

    Args:
        eta: weight ``eta`` in ``[0, 1]`` of the per-step noise (preset key
            ``generation.sampling.eta``). Default 0.0 (deterministic).
        set_alpha_to_one: on the last step there is no previous timestep; when True
            (default) ``alpha_bar`` there is 1 (a fully clean output), else
            ``alpha_bar_0`` (the original DDIM code's choice).
        use_clipped_model_output: re-derive ``eps_hat`` from the clipped ``x0_hat``
            (GLIDE's choice) instead of using the model's. Default False.
        Other args: see :class:`~chroma_keras.generation.schedulers.noise_schedule.Scheduler`
            (``num_inference_steps=None`` uses 50 steps).

    The step lands on the next timestep of the grid (:meth:`timesteps`). diffusers'
    DDIMScheduler lands on ``t - T // n`` whatever the spacing; the two agree for
    ``"leading"`` spacing and for ``"trailing"`` when ``n`` divides ``T``; pass
    ``prev_timestep=t - T // n`` to reproduce diffusers elsewhere.

    Example (``denoiser(x, t)`` is any model predicting ``prediction_type``)::

        scheduler = DDIMScheduler(num_train_timesteps=1000, timestep_spacing="trailing")
        x = keras.random.normal((1, 16, 4), seed=0)
        for t in scheduler.timesteps(25):
            x, x0_hat = scheduler.step(denoiser(x, t), t, x, num_inference_steps=25)
    """

    _default_inference_steps = 50

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        noise_schedule: NoiseScheduleName = "linear",
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        prediction_type: PredictionType = "epsilon",
        eta: float = 0.0,
        num_inference_steps: int | None = None,
        timestep_spacing: TimestepSpacing = "leading",
        steps_offset: int = 0,
        set_alpha_to_one: bool = True,
        use_clipped_model_output: bool = False,
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
        owner = type(self).__name__
        self.eta = _check_float(owner, "eta", eta, 0.0, 1.0)
        self.set_alpha_to_one = _check_bool(owner, "set_alpha_to_one", set_alpha_to_one)
        self.use_clipped_model_output = _check_bool(owner, "use_clipped_model_output", use_clipped_model_output)
        # alpha_bar "before" the last step: 1 (clean) or alpha_bar_0.
        self.final_alpha_cumprod = 1.0 if self.set_alpha_to_one else float(self.alphas_cumprod[0])

    def step(
        self,
        model_output,
        timestep,
        sample,
        *,
        num_inference_steps: int | None = None,
        prev_timestep=None,
        noise=None,
        seed=None,
    ):
        """One DDIM step ``x_t -> x_{t'}``, ``t'`` the previous timestep of the grid.

        Pure: keras.ops only and no Python branch on tensor values, so it runs
        inside ``jax.jit`` / ``tf.function`` with tensor timesteps.

        Args:
            model_output: denoiser output at ``(sample, timestep)``, shaped like ``sample``.
            timestep: current timestep ``t``, int scalar or ``[batch]`` (Python int or tensor).
            sample: the noisy sample ``x_t``, float tensor ``[batch, ...]``.
            num_inference_steps: the grid the sampling loop walks (see :meth:`timesteps`);
                None uses the configured default (50).
            prev_timestep: overrides the landing timestep ``t'`` (-1: the clean end).
            noise: the ``N(0, I)`` draw ``z`` (used when ``eta > 0``), shaped like
                ``sample``; otherwise drawn with ``keras.random.normal(seed=seed)``.
            seed: int or ``keras.random.SeedGenerator`` for the noise (see
                :meth:`DDPMScheduler.step` about ints in loops).

        Returns:
            ``(prev_sample, pred_original_sample)``, shaped and typed like ``sample``.
        """
        model_output, sample_c, dtype, out_dtype = self._step_inputs(model_output, sample)
        ndim = len(sample_c.shape)

        # 1. current and previous timestep (t' = -1 after the last step)
        timestep, prev_t = self._step_timesteps(timestep, prev_timestep, num_inference_steps)

        # 2. alphas, betas (alpha_bar_t' = final_alpha_cumprod past the end)
        c = self._step_coefficients(timestep, prev_t, ndim, dtype, self.final_alpha_cumprod)
        alpha_prod_t, alpha_prod_t_prev = c["alpha_prod_t"], c["alpha_prod_t_prev"]
        beta_prod_t, beta_prod_t_prev = c["beta_prod_t"], c["beta_prod_t_prev"]

        # 3. "predicted x_0" f_theta(x_t, t) and eps_theta(x_t, t) (Eq. 12), x_0 clipped or
        #    dynamically thresholded
        pred_original_sample, pred_epsilon = self._predict_clipped_original(model_output, sample_c, c)

        # 4. sigma_t(eta) (Eq. 16): sqrt((1 - a_t') / (1 - a_t)) * sqrt(1 - a_t / a_t')
        variance = beta_prod_t_prev / beta_prod_t * c["current_beta_t"]
        std_dev_t = self.eta * ops.sqrt(variance)
        if self.use_clipped_model_output:
            pred_epsilon = self._epsilon_from_original(sample_c, pred_original_sample, alpha_prod_t, beta_prod_t)

        # 5. "direction pointing to x_t" (Eq. 12): sqrt(1 - a_t' - sigma_t^2) * eps. Written as
        #    (1 - a_t') ((1 - eta^2)(1 - a_t) + eta^2 (a_t / a_t')(1 - a_t')) / (1 - a_t), a sum of
        #    positive terms: the plain difference cancels in float32 when sigma_t^2 ~ 1 - a_t'.
        eta_sq = self.eta**2
        direction_variance = (
            beta_prod_t_prev
            * ((1.0 - eta_sq) * beta_prod_t + eta_sq * c["current_alpha_t"] * beta_prod_t_prev)
            / beta_prod_t
        )
        pred_sample_direction = ops.sqrt(direction_variance) * pred_epsilon

        # 6. x_{t'} without noise, then + sigma_t z
        prev_sample = ops.sqrt(alpha_prod_t_prev) * pred_original_sample + pred_sample_direction
        if self.eta > 0:  # a config value, not a tensor
            prev_sample = prev_sample + std_dev_t * self._step_noise(noise, sample_c, seed, dtype)
        return ops.cast(prev_sample, out_dtype), ops.cast(pred_original_sample, out_dtype)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "eta": self.eta,
                "set_alpha_to_one": self.set_alpha_to_one,
                "use_clipped_model_output": self.use_clipped_model_output,
            }
        )
        return config
