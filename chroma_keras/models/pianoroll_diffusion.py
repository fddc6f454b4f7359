"""Diffusion over piano rolls, conditioned per chromatic axis (presets ``diffusion_*_chromatic``).

A piano roll with velocities ``v`` in [0, 1] (0 = silent) is mapped to
``x0 = 2 v - 1`` in [-1, 1]: silence is -1, a loud note near +1. The denoiser
(U-Net or DiT, :mod:`chroma_keras.models.denoisers`) learns the preset's
prediction target (epsilon, v or sample) at a random timestep; sampling walks a
DDIM or DDPM scheduler back from noise. A generated cell is a note when its
velocity ``(x0 + 1) / 2`` exceeds ``note_threshold``.
"""

from __future__ import annotations

import contextlib

import keras
import numpy as np
from keras import ops

from chroma_keras import conditioning
from chroma_keras.data import keys
from chroma_keras.errors import ModelInputError
from chroma_keras.generation.guidance import input_gradient
from chroma_keras.generation.portable_noise import NOISE_MODES, portable_normal
from chroma_keras.generation.sampling_noise import step_noise
from chroma_keras.generation.schedulers import DDIMScheduler, DDPMScheduler, NoiseSchedule
from chroma_keras.layers import ChromaticConditionEmbedding
from chroma_keras.models.pianoroll_generator import PianoRollGeneratorMixin

SCHEDULERS = {"ddim": DDIMScheduler, "ddpm": DDPMScheduler}


def _no_autograd():
    """PyTorch records every eager op for backprop unless told not to; sampling needs no graph."""
    if keras.config.backend() == "torch":
        import torch

        return torch.no_grad()
    return contextlib.nullcontext()


@keras.saving.register_keras_serializable(package="chroma_keras")
class PianoRollDiffusion(PianoRollGeneratorMixin, keras.Model):
    """Conditional diffusion model over piano rolls.

    Training (``fit``): each example gets a timestep ``t ~ U{0..T-1}`` and noise
    ``eps``; the denoiser sees ``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps``,
    ``t`` and the condition vector, and the loss is the mean squared error to the
    prediction target. With probability ``unconditional_probability`` the whole
    condition (modes and rebracketing) is dropped, which is what classifier-free
    guidance needs; ``condition_dropout`` also drops single axes, so partial
    conditions work.

    Args:
        denoiser: a denoiser layer taking ``{"sample", "timestep", "condition"}``
            and returning a tensor shaped like ``sample``.
        num_pitches, num_frames, lowest_pitch, frames_per_second: piano-roll geometry.
        condition_dim: width of the condition vector.
        condition_dropout: per-axis condition dropout in training.
        unconditional_probability: probability of dropping the whole condition in training.
        num_train_timesteps, noise_schedule, beta_start, beta_end, prediction_type:
            the forward process (see :class:`~chroma_keras.generation.NoiseSchedule`).
        variance_type: DDPM reverse variance.
        scheduler: default sampler, ``"ddim"`` or ``"ddpm"``.
        num_inference_steps: default sampling steps.
        timestep_spacing, eta, clip_sample, clip_sample_range: sampler settings.
        guidance_scale: default classifier-free guidance scale (1 disables it).
        note_threshold: velocity above which a generated cell is a note.
        seed: seed of the training noise, timesteps and condition dropout.
    """

    def __init__(
        self,
        denoiser,
        num_pitches=64,
        num_frames=128,
        lowest_pitch=28,
        frames_per_second=8.0,
        condition_dim=64,
        condition_dropout=0.1,
        unconditional_probability=0.1,
        num_train_timesteps=1000,
        noise_schedule="linear",
        beta_start=1e-4,
        beta_end=0.02,
        prediction_type="epsilon",
        variance_type="fixed_small",
        scheduler="ddim",
        num_inference_steps=50,
        timestep_spacing="leading",
        eta=0.0,
        clip_sample=True,
        clip_sample_range=1.0,
        guidance_scale=1.0,
        note_threshold=0.15,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if scheduler not in SCHEDULERS:
            raise ModelInputError(f"scheduler must be one of {sorted(SCHEDULERS)}. Received: scheduler={scheduler!r}")
        if not 0.0 <= unconditional_probability < 1.0:
            raise ModelInputError(
                f"unconditional_probability must be in [0, 1). Received: unconditional_probability={unconditional_probability}"
            )
        if not 0.0 < note_threshold < 1.0:
            raise ModelInputError(f"note_threshold must be in (0, 1). Received: note_threshold={note_threshold}")
        self.denoiser = denoiser
        self.condition_embedding = ChromaticConditionEmbedding(
            condition_dim, condition_dropout=condition_dropout, seed=seed, name="condition_embedding"
        )
        self.schedule = NoiseSchedule(num_train_timesteps, noise_schedule, beta_start, beta_end, prediction_type)
        self.seed_generator = keras.random.SeedGenerator(None if seed is None else seed + 7)
        self.loss_tracker = keras.metrics.Mean(name="diffusion_loss")

        # === Config ===
        self.num_pitches = int(num_pitches)
        self.num_frames = int(num_frames)
        self.lowest_pitch = int(lowest_pitch)
        self.frames_per_second = float(frames_per_second)
        self.condition_dim = int(condition_dim)
        self.condition_dropout = float(condition_dropout)
        self.unconditional_probability = float(unconditional_probability)
        self.num_train_timesteps = int(num_train_timesteps)
        self.noise_schedule = noise_schedule
        self.beta_start = float(beta_start)
        self.beta_end = float(beta_end)
        self.prediction_type = prediction_type
        self.variance_type = variance_type
        self.scheduler_name = scheduler
        self.num_inference_steps = int(num_inference_steps)
        self.timestep_spacing = timestep_spacing
        self.eta = float(eta)
        self.clip_sample = bool(clip_sample)
        self.clip_sample_range = float(clip_sample_range)
        self.guidance_scale = float(guidance_scale)
        self.note_threshold = float(note_threshold)
        self.seed = seed
        self.make_scheduler()  # validate the sampler settings now, not at the first generate()
        self._compiled_loops = {}
        self._build_weights()
        self.built = True

    def _build_weights(self):
        rolls = np.zeros((1, self.num_pitches, self.num_frames), np.float32)
        arrays = conditioning.condition_arrays(None, 1)
        condition = self.condition_embedding(arrays[keys.MODES], arrays[keys.REBRACKETING])
        self.denoiser({"sample": ops.convert_to_tensor(rolls), "timestep": ops.zeros((1,), "int32"), "condition": condition})

    # === Training ===

    def condition_vector(self, modes_vector, rebracketing_vector, training=False):
        """The condition vector for per-axis mode weights ``[batch, 9]`` and rebracketing ``[batch, R]``."""
        return self.condition_embedding(modes_vector, rebracketing_vector, training=training)

    def call(self, inputs, training=False):
        roll = ops.cast(inputs[keys.PIANO_ROLL], "float32")
        x0 = roll * 2.0 - 1.0
        batch = ops.shape(x0)[0]
        modes_vector = ops.cast(inputs[keys.MODES], "float32")
        rebracketing_vector = ops.cast(inputs[keys.REBRACKETING], "float32")
        if training and self.unconditional_probability > 0.0:
            keep = ops.cast(keras.random.uniform((batch, 1), seed=self.seed_generator) >= self.unconditional_probability, "float32")
            modes_vector, rebracketing_vector = modes_vector * keep, rebracketing_vector * keep
        condition = self.condition_vector(modes_vector, rebracketing_vector, training=training)
        timesteps = keras.random.randint((batch,), 0, self.num_train_timesteps, seed=self.seed_generator, dtype="int32")
        noise = keras.random.normal(ops.shape(x0), seed=self.seed_generator)
        noisy = self.schedule.add_noise(x0, noise, timesteps)
        prediction = self.denoiser({"sample": noisy, "timestep": timesteps, "condition": condition}, training=training)
        return {"prediction": prediction, "target": self.schedule.training_target(x0, noise, timesteps)}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        error = ops.square(ops.cast(y_pred["prediction"], "float32") - ops.cast(y_pred["target"], "float32"))
        loss = ops.mean(error)
        if self.losses:
            loss = loss + ops.sum(self.losses)
        self.loss_tracker.update_state(loss)
        return loss

    def compile(self, optimizer=None, **kwargs):
        """Compile with the model's own loss; the optimizer defaults to Adam(1e-3)."""
        if kwargs.pop("loss", None) is not None:
            raise ModelInputError("PianoRollDiffusion owns its loss; do not pass loss= to compile().")
        super().compile(optimizer=optimizer or keras.optimizers.Adam(1e-3), **kwargs)

    def compile_from_config(self, config):
        config = keras.saving.deserialize_keras_object(config)
        self.compile(optimizer=config.get("optimizer"))
        if self.optimizer is not None:
            self.optimizer.build(self.trainable_variables)

    # === Sampling ===

    def make_scheduler(self, scheduler=None, eta=None):
        """The sampler with this model's forward process and sampling settings."""
        name = self.scheduler_name if scheduler is None else scheduler
        if name not in SCHEDULERS:
            raise ModelInputError(f"scheduler must be one of {sorted(SCHEDULERS)}. Received: scheduler={name!r}")
        kwargs = dict(
            num_train_timesteps=self.num_train_timesteps,
            noise_schedule=self.noise_schedule,
            beta_start=self.beta_start,
            beta_end=self.beta_end,
            prediction_type=self.prediction_type,
            timestep_spacing=self.timestep_spacing,
            clip_sample=self.clip_sample,
            clip_sample_range=self.clip_sample_range,
        )
        if name == "ddim":
            kwargs["eta"] = self.eta if eta is None else float(eta)
        else:
            kwargs["variance_type"] = self.variance_type
        return SCHEDULERS[name](**kwargs)

    def _guided_output(self, sample, timestep, conditions, guidance_scale):
        """Denoiser output with classifier-free guidance (``conditions`` stacks conditional then unconditional)."""
        batch = ops.shape(sample)[0]
        if guidance_scale == 1.0:
            # broadcast rather than ops.full: a traced export keeps a tensor timestep an input.
            t = ops.broadcast_to(ops.cast(timestep, "int32"), (batch,))
            return self.denoiser({"sample": sample, "timestep": t, "condition": conditions[:batch]})
        doubled = ops.concatenate([sample, sample], axis=0)
        t = ops.broadcast_to(ops.cast(timestep, "int32"), (2 * batch,))
        output = self.denoiser({"sample": doubled, "timestep": t, "condition": conditions})
        conditional, unconditional = output[:batch], output[batch:]
        return unconditional + guidance_scale * (conditional - unconditional)

    def _apply_classifier(self, output, sample, timestep, guidance_fn, scale):
        """Move the predicted clean roll up the gradient of ``guidance_fn`` and re-express the output."""
        x0, _ = self.schedule.predict_original_and_epsilon(output, sample, timestep)
        x0 = ops.clip(x0, -1.0, 1.0)
        # d log p / d x0 = 0.5 * d log p / d velocity, since velocity = (x0 + 1) / 2.
        gradient = 0.5 * input_gradient(guidance_fn, (x0 + 1.0) / 2.0)
        x0 = ops.clip(x0 + scale * gradient, -1.0, 1.0)
        return self.schedule.output_for_original(x0, sample, timestep)

    @staticmethod
    def is_stochastic(scheduler) -> bool:
        """Whether a sampling step draws noise (DDPM, or DDIM with ``eta > 0``)."""
        return isinstance(scheduler, DDPMScheduler) or scheduler.eta > 0

    def sampling_step(self, scheduler, num_steps, guidance_scale, classifier=None):
        """One sampling step with its noise given: ``step(i, sample, conditions, noise) -> sample``.

        ``i`` is the index into the ``num_steps`` timestep grid (a Python int or an
        int tensor); ``conditions`` stacks conditional then unconditional condition
        vectors when ``guidance_scale != 1``; ``noise`` is ignored by deterministic samplers.
        """
        grid = scheduler.timesteps(num_steps)
        previous = np.append(grid[1:], -1).astype(np.int32)
        grid_tensor = ops.convert_to_tensor(grid, "int32")
        previous_tensor = ops.convert_to_tensor(previous, "int32")

        def step(i, sample, conditions, noise):
            t, prev_t = grid_tensor[i], previous_tensor[i]
            output = self._guided_output(sample, t, conditions, guidance_scale)
            if classifier is not None:
                output = self._apply_classifier(output, sample, t, *classifier)
            sample, _ = scheduler.step(output, t, sample, num_inference_steps=num_steps, prev_timestep=prev_t, noise=noise)
            return sample

        return step

    def _loop_body(self, scheduler, num_steps, guidance_scale, shape, classifier=None):
        """One sampling step ``body(i, sample, conditions, seed)`` drawing its noise from the backend's
        stateless generator; ``classifier`` is ``(guidance_fn, scale)`` or None."""
        step = self.sampling_step(scheduler, num_steps, guidance_scale, classifier)
        stochastic = self.is_stochastic(scheduler)

        def body(i, sample, conditions, seed):
            noise = step_noise(shape, seed, i + 1) if stochastic else ops.zeros(shape)
            return step(i, sample, conditions, noise)

        return body

    def _portable_loop(self, scheduler, num_steps, guidance_scale, shape, classifier=None):
        """An eager loop whose noise comes from :func:`portable_normal` (what an export's ``sample.py`` draws)."""
        step = self.sampling_step(scheduler, num_steps, guidance_scale, classifier)
        stochastic = self.is_stochastic(scheduler)

        def run(sample, conditions, seed):
            for i in range(num_steps):
                noise = portable_normal(seed, i + 1, shape) if stochastic else np.zeros(shape, np.float32)
                sample = step(i, sample, conditions, ops.convert_to_tensor(noise))
            return sample

        return run

    @staticmethod
    def _eager_loop(body, num_steps):
        def run(sample, conditions, seed):
            for i in range(num_steps):
                sample = body(i, sample, conditions, seed)
            return sample

        return run

    def _compiled_loop(self, scheduler, num_steps, guidance_scale, shape, classifier=None):
        """The whole sampling loop as one compiled function (jax.jit / tf.function) or an eager loop (torch).

        The result is called as ``loop(initial_noise, conditions, seed)``; the seed is
        an argument, so one compiled loop serves every seed. With ``classifier``
        (``(guidance_fn, scale)``) each step also differentiates the guidance function
        inside the compiled loop (``jax.grad`` / ``tf.GradientTape``); its weights are
        read as constants, so a compiled loop belongs to one guidance function.
        """
        body = self._loop_body(scheduler, num_steps, guidance_scale, shape, classifier)
        backend = keras.config.backend()
        if backend == "jax":
            import jax

            variables = self.denoiser.trainable_variables + self.denoiser.non_trainable_variables

            def run(values, sample, conditions, seed):
                with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                    return ops.fori_loop(0, num_steps, lambda i, x: body(i, x, conditions, seed), sample)

            compiled = jax.jit(run)
            return lambda sample, conditions, seed: compiled([v.value for v in variables], sample, conditions, seed)
        if backend == "tensorflow":
            import tensorflow as tf

            compiled = tf.function(
                lambda sample, conditions, seed: ops.fori_loop(0, num_steps, lambda i, x: body(i, x, conditions, seed), sample)
            )
            return lambda sample, conditions, seed: compiled(sample, conditions, tf.constant(seed, tf.int64))

        return self._eager_loop(body, num_steps)

    def generate(
        self,
        condition=None,
        num_samples=1,
        num_steps=None,
        guidance_scale=None,
        seed=None,
        rebracketing=None,
        scheduler=None,
        eta=None,
        classifier_guidance=None,
        classifier_scale=1.0,
        return_velocities=False,
        noise="backend",
    ):
        """Sample piano rolls for a condition.

        Args:
            condition: a colour (``"Red"``), a per-axis dict, a list with one per
                sample, or None for unconditional samples.
            num_samples: how many rolls.
            num_steps: sampler steps (default: the preset's ``generation.sampling.num_steps``).
            guidance_scale: classifier-free guidance scale (default: the preset's; 1 disables it).
            seed: integer seed; the same seed gives the same rolls on a backend.
            rebracketing: rebracketing values (see :func:`conditioning.condition_arrays`).
            scheduler: ``"ddim"`` or ``"ddpm"`` (default: the preset's).
            eta: DDIM noise (default: the preset's).
            classifier_guidance: a function ``rolls [batch, pitches, frames] in [0, 1]
                -> log p(target) [batch]`` built with keras ops, e.g.
                :func:`chroma_keras.generation.guidance.scorer_guidance`. Each step's
                predicted clean roll moves up its gradient, inside the compiled loop
                (jax, tensorflow); the first call with a new function compiles again.
            classifier_scale: step size of classifier guidance.
            return_velocities: return the raw velocities ``(x0 + 1) / 2`` instead of rolls with notes thresholded.
            noise: ``"backend"`` draws the Gaussians from the backend's stateless generator
                (the loop compiles); ``"portable"`` draws them from NumPy keyed by
                ``(seed, step)`` (:mod:`chroma_keras.generation.portable_noise`), the same in
                every backend and in the ``sample.py`` runner next to an export, at the cost
                of an eager loop.

        Returns:
            NumPy array ``[num_samples, pitches, frames]``, velocities in [0, 1] (0 = silent).
        """
        arrays = conditioning.condition_arrays(condition, num_samples, rebracketing)
        num_steps = self.num_inference_steps if num_steps is None else num_steps
        if not isinstance(num_steps, (int, np.integer)) or num_steps < 1 or num_steps > self.num_train_timesteps:
            raise ModelInputError(f"num_steps must be an integer in [1, {self.num_train_timesteps}]. Received: num_steps={num_steps!r}")
        guidance_scale = float(self.guidance_scale if guidance_scale is None else guidance_scale)
        if guidance_scale < 0:
            raise ModelInputError(f"guidance_scale must be >= 0. Received: guidance_scale={guidance_scale}")
        sampler = self.make_scheduler(scheduler, eta)
        sampler.timesteps(num_steps)  # validates num_steps against the spacing
        seed = int(np.random.SeedSequence().entropy % (2**31)) if seed is None else int(seed)
        shape = (num_samples, self.num_pitches, self.num_frames)
        conditional = self.condition_vector(arrays[keys.MODES], arrays[keys.REBRACKETING])
        if guidance_scale != 1.0:
            empty = conditioning.condition_arrays(None, num_samples)
            unconditional = self.condition_vector(empty[keys.MODES], empty[keys.REBRACKETING])
            conditions = ops.concatenate([conditional, unconditional], axis=0)
        else:
            conditions = conditional
        if noise not in NOISE_MODES:
            raise ModelInputError(f"noise must be one of {list(NOISE_MODES)}. Received: noise={noise!r}")
        classifier = None if classifier_guidance is None else (classifier_guidance, float(classifier_scale))
        if noise == "portable":
            with _no_autograd():
                loop = self._portable_loop(sampler, num_steps, guidance_scale, shape, classifier)
                sample = loop(ops.convert_to_tensor(portable_normal(seed, 0, shape)), conditions, seed)
            return self._velocities_or_rolls(sample, return_velocities)
        sample = step_noise(shape, seed, 0)
        with _no_autograd():
            key = (self.scheduler_name if scheduler is None else scheduler, num_steps, guidance_scale, shape, eta, classifier)
            if key not in self._compiled_loops:
                self._compiled_loops = {key: self._compiled_loop(sampler, num_steps, guidance_scale, shape, classifier)}
            sample = self._compiled_loops[key](sample, conditions, seed)
        return self._velocities_or_rolls(sample, return_velocities)

    def _velocities_or_rolls(self, sample, return_velocities):
        velocities = np.clip((ops.convert_to_numpy(sample).astype(np.float32) + 1.0) / 2.0, 0.0, 1.0)
        if return_velocities:
            return velocities
        return np.where(velocities > self.note_threshold, velocities, 0.0).astype(np.float32)

    # === Presets and config ===

    @classmethod
    def from_preset_config(cls, config):
        """Build from a resolved preset (``model.diffusion``, the piano roll, ``generation.sampling``)."""
        from chroma_keras.models.denoisers import build_denoiser

        diffusion = config["model"]["diffusion"]
        roll = config["preprocessing"]["midi"]["piano_roll"]
        sampling = config["generation"]["sampling"]
        return cls(
            denoiser=build_denoiser(config),
            num_pitches=roll["num_pitches"],
            num_frames=roll["num_frames"],
            lowest_pitch=roll["lowest_pitch"],
            frames_per_second=roll["frames_per_second"],
            condition_dim=diffusion["condition_dim"],
            condition_dropout=diffusion["condition_dropout"],
            unconditional_probability=diffusion["unconditional_probability"],
            num_train_timesteps=diffusion["num_steps"],
            noise_schedule=diffusion["noise_schedule"],
            beta_start=diffusion["beta_start"],
            beta_end=diffusion["beta_end"],
            prediction_type=diffusion["prediction_type"],
            variance_type=diffusion["variance_type"],
            scheduler=sampling["scheduler"],
            num_inference_steps=sampling["num_steps"],
            timestep_spacing=sampling["timestep_spacing"],
            eta=sampling["eta"],
            clip_sample=sampling["clip_sample"],
            clip_sample_range=sampling["clip_sample_range"],
            guidance_scale=sampling["guidance_scale"],
            note_threshold=diffusion["note_threshold"],
            seed=config["training"]["seed"],
            name=config["name"],
        )

    def preset_overrides(self):
        """The preset keys this model's constructor arguments determine (the denoiser's come from the preset)."""
        return {
            "preprocessing.midi.piano_roll.num_pitches": self.num_pitches,
            "preprocessing.midi.piano_roll.num_frames": self.num_frames,
            "preprocessing.midi.piano_roll.lowest_pitch": self.lowest_pitch,
            "preprocessing.midi.piano_roll.frames_per_second": self.frames_per_second,
            "model.generative.type": "diffusion",
            "model.diffusion.num_steps": self.num_train_timesteps,
            "model.diffusion.noise_schedule": self.noise_schedule,
            "model.diffusion.prediction_type": self.prediction_type,
            "model.diffusion.beta_start": self.beta_start,
            "model.diffusion.beta_end": self.beta_end,
            "model.diffusion.variance_type": self.variance_type,
            "model.diffusion.condition_dim": self.condition_dim,
            "model.diffusion.condition_dropout": self.condition_dropout,
            "model.diffusion.unconditional_probability": self.unconditional_probability,
            "model.diffusion.note_threshold": self.note_threshold,
            "generation.sampling.scheduler": self.scheduler_name,
            "generation.sampling.num_steps": self.num_inference_steps,
            "generation.sampling.timestep_spacing": self.timestep_spacing,
            "generation.sampling.eta": self.eta,
            "generation.sampling.clip_sample": self.clip_sample,
            "generation.sampling.clip_sample_range": self.clip_sample_range,
            "generation.sampling.guidance_scale": self.guidance_scale,
        }

    def get_config(self):
        return {
            "name": self.name,
            "denoiser": keras.saving.serialize_keras_object(self.denoiser),
            "num_pitches": self.num_pitches,
            "num_frames": self.num_frames,
            "lowest_pitch": self.lowest_pitch,
            "frames_per_second": self.frames_per_second,
            "condition_dim": self.condition_dim,
            "condition_dropout": self.condition_dropout,
            "unconditional_probability": self.unconditional_probability,
            "num_train_timesteps": self.num_train_timesteps,
            "noise_schedule": self.noise_schedule,
            "beta_start": self.beta_start,
            "beta_end": self.beta_end,
            "prediction_type": self.prediction_type,
            "variance_type": self.variance_type,
            "scheduler": self.scheduler_name,
            "num_inference_steps": self.num_inference_steps,
            "timestep_spacing": self.timestep_spacing,
            "eta": self.eta,
            "clip_sample": self.clip_sample,
            "clip_sample_range": self.clip_sample_range,
            "guidance_scale": self.guidance_scale,
            "note_threshold": self.note_threshold,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["denoiser"] = keras.saving.deserialize_keras_object(config["denoiser"])
        return cls(**config)
