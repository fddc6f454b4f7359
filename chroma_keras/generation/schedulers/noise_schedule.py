"""The forward (noising) process of a diffusion model, and the base of its samplers.

:class:`NoiseSchedule` is the forward process ``q(x_t | x_0)`` of Ho et al. (2020):
a fixed variance schedule ``beta_1 .. beta_T`` and its cumulative products
``alpha_bar_t = prod_{s<=t} (1 - beta_s)``, so that

    x_t = sqrt(alpha_bar_t) * x_0 + sqrt(1 - alpha_bar_t) * eps,   eps ~ N(0, I).

It is all training needs: :meth:`~NoiseSchedule.add_noise`,
:meth:`~NoiseSchedule.training_target` and :meth:`~NoiseSchedule.sample_timesteps`.

:class:`Scheduler` adds what every reverse-process sampler shares: the inference
timestep grid (:meth:`~Scheduler.timesteps`), the step to the previous timestep,
clipping / dynamic thresholding of the predicted ``x_0`` and noise drawing.
:class:`~chroma_keras.generation.schedulers.DDPMScheduler` and
:class:`~chroma_keras.generation.schedulers.DDIMScheduler` implement ``step``.

Design: a scheduler holds an immutable config plus NumPy tables computed once
(``betas``, ``alphas_cumprod``). Everything that runs per sampling step is
``keras.ops`` on tensors: timesteps may be tensors (looked up with ``ops.take``,
never branched on in Python), so steps and whole sampling loops run inside
``jax.jit``, ``tf.function`` or eager PyTorch unchanged. Nothing is mutated by
``step``; the number of inference steps is an argument, not state.
"""

from __future__ import annotations

import functools
import inspect
from typing import Literal, get_args

import keras
import numpy as np
from keras import ops

from chroma_keras.errors import ModelInputError

NoiseScheduleName = Literal["linear", "scaled_linear", "cosine"]
PredictionType = Literal["epsilon", "v", "sample"]
TimestepSpacing = Literal["linspace", "leading", "trailing"]

NOISE_SCHEDULES = get_args(NoiseScheduleName)
PREDICTION_TYPES = get_args(PredictionType)
TIMESTEP_SPACINGS = get_args(TimestepSpacing)

# Names diffusers uses for the same options, accepted on input and stored under ours.
_ALIASES = {
    "noise_schedule": {"squaredcos_cap_v2": "cosine"},
    "prediction_type": {"v_prediction": "v"},
}

# Largest beta of the cosine schedule (Nichol & Dhariwal 2021, Sec. 3.2): without
# the cap, beta_T -> 1 and x_0 predictions near t = T blow up.
COSINE_MAX_BETA = 0.999
# Offset s of the cosine schedule, so that beta_1 is not vanishingly small.
COSINE_OFFSET = 0.008


# ---------------------------------------------------------------------------
# Argument checks (errors name the argument, what is allowed, what was received)
# ---------------------------------------------------------------------------


def _error(owner: str, argument: str, expected: str, value) -> ModelInputError:
    err = ModelInputError(f"{owner}: `{argument}` must be {expected}. Received: {argument}={value!r}")
    err.argument = argument  # lets preset loading name the YAML key instead
    return err


def _check_choice(owner, argument, value, allowed):
    value = _ALIASES.get(argument, {}).get(value, value) if isinstance(value, str) else value
    if not isinstance(value, str) or value not in allowed:
        raise _error(owner, argument, "one of " + ", ".join(repr(a) for a in allowed), value)
    return value


def _check_int(owner, argument, value, low, high=None):
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not ok or value < low or (high is not None and value > high):
        expected = f"an integer in [{low}, {high}]" if high is not None else f"an integer >= {low}"
        raise _error(owner, argument, expected, value)
    return int(value)


def _check_float(owner, argument, value, low, high, *, low_open=False, high_open=False):
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if ok:
        value = float(value)
        ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise _error(owner, argument, f"a number in {interval}", value)
    return value


def _check_bool(owner, argument, value):
    if not isinstance(value, (bool, np.bool_)):
        raise _error(owner, argument, "true or false", value)
    return bool(value)


# ---------------------------------------------------------------------------
# Pure NumPy schedules
# ---------------------------------------------------------------------------


def make_betas(
    noise_schedule: NoiseScheduleName,
    num_train_timesteps: int,
    beta_start: float = 1e-4,
    beta_end: float = 0.02,
) -> np.ndarray:
    """The forward-process variances ``beta_t`` of a named schedule, in float64.

    Args:
        noise_schedule: ``"linear"`` (Ho et al. 2020: ``beta`` evenly spaced from
            ``beta_start`` to ``beta_end``), ``"scaled_linear"`` (``sqrt(beta)``
            evenly spaced, then squared; the latent-diffusion schedule of Rombach
            et al. 2022) or ``"cosine"`` (Nichol & Dhariwal 2021, "squaredcos_cap_v2"
            in diffusers: ``alpha_bar(t) = cos^2((t/T + s) / (1 + s) * pi/2)``, betas
            capped at 0.999; ignores ``beta_start`` / ``beta_end``).
        num_train_timesteps: number of diffusion steps ``T``.
        beta_start: first beta of the linear schedules.
        beta_end: last beta of the linear schedules.

    Returns:
        float64 array ``[T]``.
    """
    noise_schedule = _check_choice("make_betas", "noise_schedule", noise_schedule, NOISE_SCHEDULES)
    if noise_schedule == "linear":
        return np.linspace(beta_start, beta_end, num_train_timesteps, dtype=np.float64)
    if noise_schedule == "scaled_linear":
        return np.linspace(beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=np.float64) ** 2
    fraction = np.arange(num_train_timesteps + 1, dtype=np.float64) / num_train_timesteps
    alpha_bar = np.cos((fraction + COSINE_OFFSET) / (1 + COSINE_OFFSET) * np.pi / 2) ** 2
    return np.minimum(1.0 - alpha_bar[1:] / alpha_bar[:-1], COSINE_MAX_BETA)


def make_timesteps(
    num_train_timesteps: int,
    num_inference_steps: int,
    timestep_spacing: TimestepSpacing = "leading",
    steps_offset: int = 0,
) -> np.ndarray:
    """The descending inference timesteps of a sampler (Lin et al. 2023, Table 2).

    Args:
        num_train_timesteps: ``T``.
        num_inference_steps: ``n``, the number of timesteps returned (``1 <= n <= T``).
        timestep_spacing: ``"linspace"`` (``round(linspace(0, T-1, n))``, both ends
            included), ``"leading"`` (``0, T//n, 2T//n, ...`` plus ``steps_offset``;
            the first step sits below ``T-1``) or ``"trailing"`` (``round(T - k T/n) - 1``;
            always starts at ``T-1``, the noisiest timestep, which suits few steps).
        steps_offset: added to every timestep of ``"leading"`` spacing only, as in diffusers.

    Returns:
        int32 array ``[n]``, strictly decreasing.
    """
    T = _check_int("make_timesteps", "num_train_timesteps", num_train_timesteps, 1)
    n = _check_int("make_timesteps", "num_inference_steps", num_inference_steps, 1, T)
    timestep_spacing = _check_choice("make_timesteps", "timestep_spacing", timestep_spacing, TIMESTEP_SPACINGS)
    if timestep_spacing == "linspace":
        grid = np.round(np.linspace(0, T - 1, n))[::-1]
    elif timestep_spacing == "leading":
        grid = (np.arange(n) * (T // n))[::-1] + steps_offset
    else:
        # T + k * (-T/n) is what np.arange(T, 0, -T/n) computes; indexing k keeps exactly
        # n values where arange can return n + 1 through round-off (e.g. T=1000, n=61).
        grid = np.round(T - np.arange(n) * (T / n)) - 1
    return grid.astype(np.int32)


@functools.lru_cache(maxsize=64)
def _previous_timestep_table(timesteps: tuple, num_train_timesteps: int) -> np.ndarray:
    """``table[t]`` = the largest grid timestep below ``t``, or -1 (shared: never mutate it)."""
    grid = np.sort(np.asarray(timesteps))
    below = np.searchsorted(grid, np.arange(num_train_timesteps), side="left") - 1
    return np.where(below >= 0, grid[np.maximum(below, 0)], -1).astype(np.int32)


# ---------------------------------------------------------------------------
# Tensor helpers
# ---------------------------------------------------------------------------


def _compute_dtype(x) -> str:
    dtype = keras.backend.standardize_dtype(x.dtype) if hasattr(x, "dtype") else "float32"
    return dtype if dtype in ("float32", "float64") else "float32"


def _as_timestep(timestep, owner: str, num_train_timesteps: int, argument: str = "timestep", allow_minus_one=False):
    """An int32 tensor; Python / NumPy values are range-checked (tensors cannot be under jit)."""
    if isinstance(timestep, (int, np.integer, np.ndarray, list, tuple)) and not isinstance(timestep, bool):
        values = np.asarray(timestep)
        low = -1 if allow_minus_one else 0
        high = num_train_timesteps - 1
        if values.dtype.kind not in "iu" or values.size == 0 or values.min() < low or values.max() > high:
            raise _error(owner, argument, f"an integer in [{low}, {high}] or a tensor of them", timestep)
    return ops.cast(ops.convert_to_tensor(timestep), "int32")


def _per_example(values, ndim: int):
    """Reshape per-timestep values ``[]`` or ``[batch]`` to broadcast against a ``ndim`` sample."""
    if len(values.shape) == 0 or ndim <= 1:
        return values
    return ops.reshape(values, (-1,) + (1,) * (ndim - 1))


# ---------------------------------------------------------------------------
# Forward process
# ---------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="chroma_keras")
class NoiseSchedule:
    """The forward (noising) process ``q(x_t | x_0)`` of a DDPM (Ho et al. 2020).

    Holds the config and the precomputed NumPy tables ``betas``, ``alphas`` and
    ``alphas_cumprod`` (float64, computed once); per-step methods use
    ``keras.ops`` only and accept scalar or per-example (``[batch]``) timesteps,
    Python ints or int tensors, inside compiled functions too.

    Args:
        num_train_timesteps: number of diffusion steps ``T`` the denoiser is
            trained with (preset key ``model.diffusion.num_steps``). Default 1000.
        noise_schedule: ``"linear"`` (default; Ho et al. 2020), ``"scaled_linear"``
            (latent diffusion) or ``"cosine"`` (Nichol & Dhariwal 2021; diffusers'
            ``"squaredcos_cap_v2"`` is accepted as an alias). See :func:`make_betas`.
        beta_start: first beta of the linear schedules. Default 1e-4.
        beta_end: last beta of the linear schedules. Default 0.02.
        prediction_type: what the denoiser outputs: ``"epsilon"`` (default; the
            added noise, Ho et al. 2020), ``"v"`` (the velocity
            ``sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) x_0`` of Salimans & Ho 2022;
            diffusers' ``"v_prediction"`` is accepted) or ``"sample"`` (``x_0`` itself).

    Example:

    >>> schedule = NoiseSchedule(1000, "cosine", prediction_type="v")
    >>> x0 = np.ones((2, 4), "float32"); eps = np.zeros((2, 4), "float32")
    >>> x_t = schedule.add_noise(x0, eps, np.array([0, 999]))
    """

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        noise_schedule: NoiseScheduleName = "linear",
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        prediction_type: PredictionType = "epsilon",
    ):
        owner = type(self).__name__
        self.num_train_timesteps = _check_int(owner, "num_train_timesteps", num_train_timesteps, 1)
        self.noise_schedule = _check_choice(owner, "noise_schedule", noise_schedule, NOISE_SCHEDULES)
        self.beta_start = _check_float(owner, "beta_start", beta_start, 0.0, 1.0, low_open=True, high_open=True)
        self.beta_end = _check_float(owner, "beta_end", beta_end, 0.0, 1.0, low_open=True, high_open=True)
        self.prediction_type = _check_choice(owner, "prediction_type", prediction_type, PREDICTION_TYPES)

        # === Precomputed tables (float64, read-only) ===
        self.betas = make_betas(self.noise_schedule, self.num_train_timesteps, self.beta_start, self.beta_end)
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = np.cumprod(self.alphas)
        # 1 - alpha_bar, kept as its own table: in float32, 1 - alpha_bar_t loses ~3 of its
        # ~7 digits near t = 0 (alpha_bar ~ 0.9999); rounding it once from float64 does not.
        self.one_minus_alphas_cumprod = -np.expm1(np.cumsum(np.log1p(-self.betas)))
        for table in (self.betas, self.alphas, self.alphas_cumprod, self.one_minus_alphas_cumprod):
            table.setflags(write=False)

    # === Lookups ===

    def _alpha_prod(self, timestep, ndim: int, dtype: str, final_alpha_cumprod: float = 1.0):
        """``(alpha_bar, 1 - alpha_bar)`` at ``timestep``, broadcastable to a ``ndim`` sample.

        Timestep -1 (past the last step) reads ``final_alpha_cumprod``.
        """
        index = ops.where(timestep < 0, self.num_train_timesteps, timestep)
        alpha = np.append(self.alphas_cumprod, final_alpha_cumprod)
        one_minus = np.append(self.one_minus_alphas_cumprod, 1.0 - final_alpha_cumprod)
        return tuple(
            _per_example(ops.take(ops.convert_to_tensor(table, dtype=dtype), index), ndim)
            for table in (alpha, one_minus)
        )

    def _sqrt_alphas(self, timestep, like):
        timestep = _as_timestep(timestep, type(self).__name__, self.num_train_timesteps)
        alpha_prod_t, beta_prod_t = self._alpha_prod(timestep, len(like.shape), _compute_dtype(like))
        return ops.sqrt(alpha_prod_t), ops.sqrt(beta_prod_t)

    # === Forward process ===

    def add_noise(self, original_sample, noise, timestep):
        """Draw ``x_t ~ q(x_t | x_0)`` with the given noise (Ho et al. 2020, Eq. 4).

        Args:
            original_sample: clean data ``x_0``, float tensor ``[batch, ...]``.
            noise: ``eps``, same shape.
            timestep: int scalar or ``[batch]``, in ``[0, T)``.

        Returns:
            ``sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps``, same shape and dtype.
        """
        original_sample = ops.convert_to_tensor(original_sample)
        noise = ops.cast(noise, original_sample.dtype)
        sqrt_alpha_prod, sqrt_one_minus_alpha_prod = self._sqrt_alphas(timestep, original_sample)
        return ops.cast(sqrt_alpha_prod * original_sample + sqrt_one_minus_alpha_prod * noise, original_sample.dtype)

    def get_velocity(self, original_sample, noise, timestep):
        """The velocity ``v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x_0`` (Salimans & Ho 2022, Sec. 4).

        Args:
            original_sample: ``x_0``, float tensor ``[batch, ...]``.
            noise: ``eps``, same shape.
            timestep: int scalar or ``[batch]``.

        Returns:
            ``v``, same shape and dtype as ``original_sample``.
        """
        original_sample = ops.convert_to_tensor(original_sample)
        noise = ops.cast(noise, original_sample.dtype)
        sqrt_alpha_prod, sqrt_one_minus_alpha_prod = self._sqrt_alphas(timestep, original_sample)
        return ops.cast(sqrt_alpha_prod * noise - sqrt_one_minus_alpha_prod * original_sample, original_sample.dtype)

    def training_target(self, original_sample, noise, timestep):
        """What the denoiser should output at ``x_t = add_noise(x_0, noise, t)`` for this ``prediction_type``.

        Args:
            original_sample: ``x_0``, float tensor ``[batch, ...]``.
            noise: ``eps``, same shape.
            timestep: int scalar or ``[batch]``.

        Returns:
            ``noise`` (epsilon), ``get_velocity(...)`` (v) or ``original_sample`` (sample).
        """
        if self.prediction_type == "epsilon":
            return ops.convert_to_tensor(noise)
        if self.prediction_type == "sample":
            return ops.convert_to_tensor(original_sample)
        return self.get_velocity(original_sample, noise, timestep)

    def sample_timesteps(self, batch_size: int, seed=None):
        """Uniform training timesteps ``t ~ U{0, ..., T-1}`` (Ho et al. 2020, Algorithm 1).

        Args:
            batch_size: number of timesteps.
            seed: int, ``keras.random.SeedGenerator`` or None.

        Returns:
            int32 tensor ``[batch_size]``.
        """
        return keras.random.randint((batch_size,), 0, self.num_train_timesteps, dtype="int32", seed=seed)

    def predict_original_and_epsilon(self, model_output, sample, timestep):
        """Convert a denoiser output into ``(pred_original_sample, pred_epsilon)``.

        Inverts ``x_t = sqrt(alpha_bar) x_0 + sqrt(1 - alpha_bar) eps`` for the
        quantity the model does not predict (Ho et al. 2020, Eq. 15; Salimans & Ho
        2022 for v). No clipping is applied.

        Args:
            model_output: the denoiser output at ``(sample, timestep)``.
            sample: the noisy sample ``x_t``.
            timestep: int scalar or ``[batch]``.

        Returns:
            ``(pred_original_sample, pred_epsilon)``, both shaped like ``sample``.
        """
        sample = ops.convert_to_tensor(sample)
        dtype = _compute_dtype(sample)
        timestep = _as_timestep(timestep, type(self).__name__, self.num_train_timesteps)
        alpha_prod_t, beta_prod_t = self._alpha_prod(timestep, len(sample.shape), dtype)
        x0, eps = self._original_and_epsilon(
            ops.cast(model_output, dtype), ops.cast(sample, dtype), alpha_prod_t, beta_prod_t
        )
        return ops.cast(x0, sample.dtype), ops.cast(eps, sample.dtype)

    def _original_and_epsilon(self, model_output, sample, alpha_prod_t, beta_prod_t):
        if self.prediction_type == "epsilon":
            pred_epsilon = model_output
            pred_original_sample = (sample - ops.sqrt(beta_prod_t) * pred_epsilon) / ops.sqrt(alpha_prod_t)
        elif self.prediction_type == "sample":
            pred_original_sample = model_output
            pred_epsilon = self._epsilon_from_original(sample, pred_original_sample, alpha_prod_t, beta_prod_t)
        else:  # v
            pred_original_sample = ops.sqrt(alpha_prod_t) * sample - ops.sqrt(beta_prod_t) * model_output
            pred_epsilon = ops.sqrt(alpha_prod_t) * model_output + ops.sqrt(beta_prod_t) * sample
        return pred_original_sample, pred_epsilon

    def output_for_original(self, original_sample, sample, timestep):
        """The denoiser output (for this ``prediction_type``) that predicts ``original_sample`` at ``(sample, timestep)``.

        The inverse of :meth:`predict_original_and_epsilon`'s clean-sample half: the noise
        is the one that takes ``original_sample`` to ``sample``. Used to re-express an
        edited clean-sample estimate (classifier guidance) as a model output.
        """
        sample = ops.convert_to_tensor(sample)
        dtype = _compute_dtype(sample)
        timestep = _as_timestep(timestep, type(self).__name__, self.num_train_timesteps)
        alpha_prod_t, beta_prod_t = self._alpha_prod(timestep, len(sample.shape), dtype)
        original_sample = ops.cast(original_sample, dtype)
        noise = self._epsilon_from_original(ops.cast(sample, dtype), original_sample, alpha_prod_t, beta_prod_t)
        return ops.cast(self.training_target(original_sample, noise, timestep), sample.dtype)

    @staticmethod
    def _epsilon_from_original(sample, pred_original_sample, alpha_prod_t, beta_prod_t):
        """``eps = (x_t - sqrt(alpha_bar_t) x_0) / sqrt(1 - alpha_bar_t)``: the noise that takes ``x_0`` to ``x_t``."""
        return (sample - ops.sqrt(alpha_prod_t) * pred_original_sample) / ops.sqrt(beta_prod_t)

    # === Config ===

    def get_config(self) -> dict:
        """Every constructor argument under its own name."""
        return {
            "num_train_timesteps": self.num_train_timesteps,
            "noise_schedule": self.noise_schedule,
            "beta_start": self.beta_start,
            "beta_end": self.beta_end,
            "prediction_type": self.prediction_type,
        }

    @classmethod
    def from_config(cls, config: dict):
        """Rebuild from :meth:`get_config`; unknown keys raise :class:`ModelInputError` naming them."""
        allowed = set(_constructor_args(cls))
        unknown = sorted(set(config) - allowed)
        if unknown:
            raise ModelInputError(
                f"{cls.__name__}.from_config: unknown key(s) {unknown}; allowed keys are {sorted(allowed)}. "
                f"Received: config={dict(config)!r}"
            )
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def _constructor_args(cls) -> list[str]:
    return [name for name in inspect.signature(cls.__init__).parameters if name != "self"]


# ---------------------------------------------------------------------------
# Reverse-process base
# ---------------------------------------------------------------------------


class Scheduler(NoiseSchedule):
    """Base of the reverse-process samplers: timestep grids, clipping and noise.

    Subclasses implement ``step(model_output, timestep, sample, ...)`` returning
    ``(prev_sample, pred_original_sample)``, built from the stages every step
    shares: :meth:`_step_inputs` (shape check and compute dtype),
    :meth:`_step_timesteps` and :meth:`_step_coefficients` (``t``, ``t'`` and
    the alphas between them), :meth:`_predict_clipped_original` (``x_0`` and
    ``eps`` from the model output, ``x_0`` clipped or thresholded) and
    :meth:`_step_noise` (the given or a freshly drawn ``z``).

    Args:
        num_train_timesteps, noise_schedule, beta_start, beta_end, prediction_type:
            see :class:`NoiseSchedule`.
        num_inference_steps: default number of sampling steps (preset key
            ``generation.sampling.num_steps``) used when a call passes none; None
            means the subclass default (DDPM: all ``T``; DDIM: 50).
        timestep_spacing: ``"leading"`` (default, as diffusers), ``"trailing"`` or
            ``"linspace"``; see :func:`make_timesteps`.
        steps_offset: added to ``"leading"`` timesteps (Stable Diffusion uses 1). Default 0.
        clip_sample: clip the predicted ``x_0`` to ``[-clip_sample_range, clip_sample_range]``
            (the data range; Ho et al. 2020 clip to ``[-1, 1]``). Default True.
        clip_sample_range: bound of ``clip_sample``. Default 1.0.
        thresholding: dynamic thresholding of the predicted ``x_0`` (Saharia et al.
            2022, Imagen): per example, ``s`` = the ``dynamic_thresholding_ratio``
            quantile of ``|x_0|`` clamped to ``[1, sample_max_value]``, then
            ``x_0 = clip(x_0, -s, s) / s``. Replaces ``clip_sample`` when on. Default False.
        dynamic_thresholding_ratio: quantile of ``thresholding``. Default 0.995.
        sample_max_value: largest ``s`` of ``thresholding``. Default 1.0.
    """

    _default_inference_steps = 50

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        noise_schedule: NoiseScheduleName = "linear",
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        prediction_type: PredictionType = "epsilon",
        num_inference_steps: int | None = None,
        timestep_spacing: TimestepSpacing = "leading",
        steps_offset: int = 0,
        clip_sample: bool = True,
        clip_sample_range: float = 1.0,
        thresholding: bool = False,
        dynamic_thresholding_ratio: float = 0.995,
        sample_max_value: float = 1.0,
    ):
        super().__init__(num_train_timesteps, noise_schedule, beta_start, beta_end, prediction_type)
        owner = type(self).__name__
        self.timestep_spacing = _check_choice(owner, "timestep_spacing", timestep_spacing, TIMESTEP_SPACINGS)
        self.steps_offset = _check_int(owner, "steps_offset", steps_offset, 0, self.num_train_timesteps - 1)
        self.num_inference_steps = None
        if num_inference_steps is not None:
            self.num_inference_steps = self._resolve_steps(num_inference_steps)
        self.clip_sample = _check_bool(owner, "clip_sample", clip_sample)
        self.clip_sample_range = _check_float(
            owner, "clip_sample_range", clip_sample_range, 0.0, float("inf"), low_open=True
        )
        self.thresholding = _check_bool(owner, "thresholding", thresholding)
        self.dynamic_thresholding_ratio = _check_float(
            owner, "dynamic_thresholding_ratio", dynamic_thresholding_ratio, 0.0, 1.0, low_open=True
        )
        self.sample_max_value = _check_float(owner, "sample_max_value", sample_max_value, 1.0, float("inf"))

    # === Timestep grid ===

    def _resolve_steps(self, num_inference_steps) -> int | None:
        """The step count to use; None means the full chain ``T-1, ..., 0`` (DDPM's default)."""
        if num_inference_steps is None:
            num_inference_steps = self.num_inference_steps
        if num_inference_steps is None:
            if self._default_inference_steps is None:
                return None
            num_inference_steps = min(self._default_inference_steps, self.num_train_timesteps)
        owner, T = type(self).__name__, self.num_train_timesteps
        n = _check_int(owner, "num_inference_steps", num_inference_steps, 1, T)
        if self.timestep_spacing == "leading" and (n - 1) * (T // n) + self.steps_offset >= T:
            raise _error(
                owner,
                "num_inference_steps",
                f"an integer in [1, {T}] whose 'leading' timesteps (k * {T}//n + steps_offset="
                f"{self.steps_offset}) stay below num_train_timesteps={T}",
                num_inference_steps,
            )
        return n

    def timesteps(self, num_inference_steps: int | None = None) -> np.ndarray:
        """The descending timesteps a sampling loop visits (a pure function of the config).

        Args:
            num_inference_steps: number of steps ``n`` in ``[1, T]``; None uses the
                configured default (for DDPM without one: the full chain ``T-1, ..., 0``).

        Returns:
            int32 NumPy array ``[n]``.
        """
        n = self._resolve_steps(num_inference_steps)
        if n is None:
            return np.arange(self.num_train_timesteps - 1, -1, -1, dtype=np.int32)
        return make_timesteps(self.num_train_timesteps, n, self.timestep_spacing, self.steps_offset)

    def previous_timestep(self, timestep, num_inference_steps: int | None = None):
        """The timestep a step from ``timestep`` lands on: the next, smaller one of the grid, or -1.

        For a ``timestep`` off the grid it is the largest grid timestep below it.

        Args:
            timestep: int scalar or ``[batch]`` (tensor or Python int).
            num_inference_steps: grid size; None uses the configured default.

        Returns:
            int32 tensor shaped like ``timestep``; -1 after the last step.
        """
        grid = self.timesteps(num_inference_steps)
        table = _previous_timestep_table(tuple(int(t) for t in grid), self.num_train_timesteps)
        timestep = _as_timestep(timestep, type(self).__name__, self.num_train_timesteps)
        return ops.take(ops.convert_to_tensor(table, dtype="int32"), timestep)

    def _step_coefficients(self, timestep, prev_timestep, ndim: int, dtype: str, final_alpha_cumprod: float = 1.0):
        """The cumulative and one-step alphas/betas between ``t`` and ``t' = prev_timestep``.

        Returns:
            dict of tensors broadcastable to a ``ndim`` sample: ``alpha_prod_t``,
            ``alpha_prod_t_prev``, ``beta_prod_t``, ``beta_prod_t_prev`` (``1 - alpha_bar``),
            ``current_alpha_t = alpha_bar_t / alpha_bar_t'`` and ``current_beta_t = 1 - current_alpha_t``.
        """
        alpha_prod_t, beta_prod_t = self._alpha_prod(timestep, ndim, dtype)
        alpha_prod_t_prev, beta_prod_t_prev = self._alpha_prod(prev_timestep, ndim, dtype, final_alpha_cumprod)
        current_alpha_t = alpha_prod_t / alpha_prod_t_prev
        # 1 - alpha_bar_t / alpha_bar_t' cancels in float32 when both are near 1; there the
        # equal form (beta_prod_t - beta_prod_t') / alpha_bar_t' keeps the digits.
        current_beta_t = ops.where(
            alpha_prod_t_prev > 0.5, (beta_prod_t - beta_prod_t_prev) / alpha_prod_t_prev, 1.0 - current_alpha_t
        )
        return {
            "alpha_prod_t": alpha_prod_t,
            "alpha_prod_t_prev": alpha_prod_t_prev,
            "beta_prod_t": beta_prod_t,
            "beta_prod_t_prev": beta_prod_t_prev,
            "current_alpha_t": current_alpha_t,
            "current_beta_t": current_beta_t,
        }

    def _step_timesteps(self, timestep, prev_timestep, num_inference_steps):
        owner, T = type(self).__name__, self.num_train_timesteps
        timestep = _as_timestep(timestep, owner, T)
        if prev_timestep is None:
            prev_timestep = self.previous_timestep(timestep, num_inference_steps)
        else:
            prev_timestep = _as_timestep(prev_timestep, owner, T, "prev_timestep", allow_minus_one=True)
        return timestep, prev_timestep

    # === Stages every step shares ===

    def _step_inputs(self, model_output, sample):
        """Checks that ``model_output`` has the shape of ``sample`` and casts both to the compute dtype.

        Args:
            model_output: the denoiser output (its prediction part), shaped like ``sample``.
            sample: the noisy sample ``x_t``.

        Returns:
            ``(model_output, sample, dtype, out_dtype)``: both tensors in the compute dtype
            ``dtype`` (float64 for a float64 sample, else float32) and ``out_dtype``, the
            dtype of ``sample`` that the step returns.

        Raises:
            ModelInputError: when the shapes differ.
        """
        sample = ops.convert_to_tensor(sample)
        model_output = ops.convert_to_tensor(model_output)
        self._check_same_shape(type(self).__name__, "model_output", model_output, sample)
        dtype = _compute_dtype(sample)
        return ops.cast(model_output, dtype), ops.cast(sample, dtype), dtype, sample.dtype

    def _predict_clipped_original(self, model_output, sample, c):
        """``(pred_original_sample, pred_epsilon)`` of a step, the predicted ``x_0`` clipped or thresholded.

        Args:
            model_output: the denoiser output in the compute dtype.
            sample: ``x_t`` in the compute dtype.
            c: the step's :meth:`_step_coefficients`.
        """
        pred_original_sample, pred_epsilon = self._original_and_epsilon(
            model_output, sample, c["alpha_prod_t"], c["beta_prod_t"]
        )
        return self._clip_or_threshold(pred_original_sample), pred_epsilon

    def _step_noise(self, noise, sample, seed, dtype):
        """The ``N(0, I)`` draw of a step: ``noise`` (shape-checked against ``sample``), else a fresh draw.

        Raises:
            ModelInputError: when ``noise`` is given with another shape than ``sample``.
        """
        if noise is not None:
            self._check_same_shape(type(self).__name__, "noise", noise, sample)
        return self._noise_like(sample, noise, seed, dtype)

    # === Predicted x_0 post-processing ===

    def _clip_or_threshold(self, pred_original_sample):
        if self.thresholding:
            return self._threshold_sample(pred_original_sample)
        if self.clip_sample:
            return ops.clip(pred_original_sample, -self.clip_sample_range, self.clip_sample_range)
        return pred_original_sample

    def _threshold_sample(self, sample):
        shape = ops.shape(sample)
        flat = ops.reshape(sample, (shape[0], -1))
        # "a certain percentile absolute pixel value" (Saharia et al. 2022, Sec. 2.3)
        s = ops.quantile(ops.abs(flat), self.dynamic_thresholding_ratio, axis=1, keepdims=True)
        s = ops.clip(s, 1.0, self.sample_max_value)  # s = 1 is plain clipping to [-1, 1]
        flat = ops.minimum(ops.maximum(flat, -s), s) / s
        return ops.reshape(flat, shape)

    # === Noise ===

    @staticmethod
    def _noise_like(sample, noise, seed, dtype):
        if noise is not None:
            return ops.cast(noise, dtype)
        return keras.random.normal(ops.shape(sample), dtype=dtype, seed=seed)

    @staticmethod
    def _check_same_shape(owner, name, value, sample):
        a, b = tuple(value.shape), tuple(sample.shape)
        if len(a) != len(b) or any(x is not None and y is not None and x != y for x, y in zip(a, b)):
            raise ModelInputError(f"{owner}.step: `{name}` must have the shape of `sample` {b}. Received: shape={a}")

    def step(self, model_output, timestep, sample, **kwargs):
        """One reverse step ``x_t -> x_{t_prev}``; see the subclasses."""
        raise NotImplementedError

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "num_inference_steps": self.num_inference_steps,
                "timestep_spacing": self.timestep_spacing,
                "steps_offset": self.steps_offset,
                "clip_sample": self.clip_sample,
                "clip_sample_range": self.clip_sample_range,
                "thresholding": self.thresholding,
                "dynamic_thresholding_ratio": self.dynamic_thresholding_ratio,
                "sample_max_value": self.sample_max_value,
            }
        )
        return config
