"""The conditional VAE over MIDI piano rolls (preset ``cvae_chromatic``)."""

from __future__ import annotations


import keras
import numpy as np
from keras import ops

from chroma_keras import conditioning
from chroma_keras.data import keys
from chroma_keras.errors import ModelInputError
from chroma_keras.generation.portable_noise import NOISE_MODES, portable_normal
from chroma_keras.layers import ChromaticConditionEmbedding, Reparameterization
from chroma_keras.models.pianoroll_generator import PianoRollGeneratorMixin
from chroma_keras.models.pianoroll_vae_config import z_layout
from chroma_keras.models.pianoroll_vae_decoder import PianoRollVAEDecoder
from chroma_keras.models.pianoroll_vae_encoder import PianoRollVAEEncoder
from chroma_keras.training.kl_annealing import KL_SCHEDULES, kl_annealing_factor

DECODINGS = ("expected_count", "threshold", "bernoulli")
SEMITONES_PER_OCTAVE = 12.0  # scale of the transposition condition


def notes_from_probabilities(probabilities, decoding="expected_count", threshold=0.5, seed=None):
    """Turn per-cell note probabilities ``[batch, pitches, frames]`` into a boolean mask.

    * ``expected_count``: per roll, the ``round(sum p)`` most probable cells sound, so a roll
      has as many sounding cells as the model expects. A VAE spreads probability over the
      plausible notes (e.g. seven scale tones), so no cell may clear 0.5 even when notes
      are expected; this keeps the most likely ones.
    * ``threshold``: cells with ``p > threshold``.
    * ``bernoulli``: each cell independently with probability ``p`` (NumPy generator seeded
      with ``seed``, the same on every backend); more varied, more fragmented.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    if decoding == "threshold":
        threshold = float(threshold)
        if not 0.0 < threshold < 1.0:
            raise ModelInputError(f"threshold must be in (0, 1). Received: threshold={threshold}")
        return p > threshold
    if decoding == "bernoulli":
        return np.random.default_rng(seed).random(p.shape) < p
    if decoding != "expected_count":
        raise ModelInputError(f"decoding must be one of {list(DECODINGS)}. Received: decoding={decoding!r}")
    flat = p.reshape(len(p), -1)
    counts = np.rint(flat.sum(axis=1)).astype(np.int64)
    order = np.argsort(-flat, axis=1, kind="stable")
    mask = np.zeros_like(flat, dtype=bool)
    for i, count in enumerate(counts):
        mask[i, order[i, :count]] = True
    return mask.reshape(p.shape)


@keras.saving.register_keras_serializable(package="chroma_keras")
class ConditionalVAE(PianoRollGeneratorMixin, keras.Model):
    """Conditional VAE over piano rolls, conditioned per chromatic axis and on rebracketing.

    Encoder ``q(z | roll, c)`` and decoder ``p(roll | z, c)`` share one
    :class:`ChromaticConditionEmbedding` ``c``. The decoder predicts, per cell,
    the logit that a note sounds and its velocity. The loss is

    ``reconstruction + beta * annealing(step) * KL``, with
    ``reconstruction = sum_cells BCE(active, note_logits)
    + velocity_loss_weight * sum_cells active * (velocity - target)^2``
    and the KL to ``N(0, I)`` summed over latent dimensions. With
    ``free_bits > 0`` each latent dimension's batch-mean KL is clamped from
    below at ``free_bits`` nats in the optimised loss (Kingma et al., 2016);
    the reported ``kl_loss`` is the unclamped KL.

    The loss lives in :meth:`compute_loss`, so the stock ``fit()`` trains it on
    every backend. The annealing step counter is a non-trainable variable
    advanced in training calls; it is saved with the weights, so a resumed run
    continues the schedule.

    Args:
        num_pitches: piano-roll height.
        num_frames: piano-roll width.
        lowest_pitch: MIDI pitch of row 0 (used to write MIDI).
        frames_per_second: time resolution (used to write MIDI).
        latent_dim: size of the whole-segment latent.
        condition_dim: size of the condition vector.
        encoder_filters: channels of the encoder's conv blocks.
        hidden_dim: width of the dense layers.
        span_latent_dim: size of each time span's latent (one span per
            ``2 ** len(encoder_filters)`` frames), appended to z after the
            whole-segment latent; 0 keeps a single whole-segment z.
        condition_on_transposition: add a learned direction times the batch's
            ``keys.TRANSPOSITION`` (semitones / 12, 0 when the key is absent) to the
            condition, so the latent need not explain a training transposition.
        beta: weight of the KL term after annealing.
        condition_dropout: per-axis condition dropout in training.
        velocity_loss_weight: weight of the velocity term.
        free_bits: KL floor per latent dimension, in nats.
        kl_schedule: one of ``none``, ``linear``, ``cyclical``, ``sigmoid``.
        kl_warmup_steps: ramp length of the schedule.
        kl_cycles: number of cycles of the ``cyclical`` schedule.
        seed: seed of the model's random layers.

    Call arguments:
        inputs: dict with ``keys.PIANO_ROLL``, ``keys.MODES``, ``keys.REBRACKETING``
            (and optionally ``keys.TRANSPOSITION``).
        training: sample z and apply condition dropout when True.

    Returns:
        dict with ``note_logits``, ``velocity`` ``[batch, pitches, frames]`` and
        ``z_mean``, ``z_log_var`` ``[batch, z_dim]``, where ``z_dim = latent_dim +
        num_spans * span_latent_dim`` (the model's ``z_dim`` attribute).

    Example:
    >>> import chroma_keras as ck
    >>> model = ck.from_preset("cvae_chromatic")
    >>> rolls = model.generate(condition="Red", num_samples=2, seed=0)  # [2, 72, 128]
    """

    def __init__(
        self,
        num_pitches=72,
        num_frames=128,
        lowest_pitch=24,
        frames_per_second=8.0,
        latent_dim=64,
        condition_dim=32,
        encoder_filters=(32, 64, 128),
        hidden_dim=256,
        span_latent_dim=0,
        condition_on_transposition=False,
        beta=1.0,
        condition_dropout=0.1,
        velocity_loss_weight=1.0,
        free_bits=0.0,
        kl_schedule="linear",
        kl_warmup_steps=400,
        kl_cycles=1,
        decoding="expected_count",
        threshold=0.5,
        temperature=1.0,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        scale = 2 ** len(encoder_filters)
        if num_pitches % scale or num_frames % scale:
            raise ModelInputError(
                f"num_pitches and num_frames must be divisible by 2 ** len(encoder_filters) = {scale}. "
                f"Received: num_pitches={num_pitches}, num_frames={num_frames}"
            )
        if decoding not in DECODINGS:
            raise ModelInputError(f"decoding must be one of {list(DECODINGS)}. Received: decoding={decoding!r}")
        if kl_schedule not in KL_SCHEDULES:
            raise ModelInputError(f"kl_schedule must be one of {list(KL_SCHEDULES)}. Received: kl_schedule={kl_schedule!r}")
        # === Layers ===
        self.condition_embedding = ChromaticConditionEmbedding(
            condition_dim, condition_dropout=condition_dropout, seed=seed, name="condition_embedding"
        )
        self.encoder = PianoRollVAEEncoder(
            num_pitches, num_frames, latent_dim, condition_dim, encoder_filters, hidden_dim, span_latent_dim, name="encoder"
        )
        self.decoder = PianoRollVAEDecoder(
            num_pitches, num_frames, latent_dim, condition_dim, encoder_filters, hidden_dim, span_latent_dim, name="decoder"
        )
        self.reparameterization = Reparameterization(seed=None if seed is None else seed + 1, name="reparameterization")
        self.condition_embedding.build()
        self.transposition_projection = None
        if condition_on_transposition:
            # No bias: transposition 0 (generation, validation, exports) leaves c unchanged.
            self.transposition_projection = keras.layers.Dense(condition_dim, use_bias=False, name="transposition_projection")
            self.transposition_projection.build((None, 1))
        self.kl_step = self.add_weight(shape=(), initializer="zeros", trainable=False, name="kl_step")
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_tracker = keras.metrics.Mean(name="kl_loss")
        self.kl_weight_tracker = keras.metrics.Mean(name="kl_weight")
        self.built = True

        # === Config ===
        self.num_pitches = int(num_pitches)
        self.num_frames = int(num_frames)
        self.lowest_pitch = int(lowest_pitch)
        self.frames_per_second = float(frames_per_second)
        self.latent_dim = int(latent_dim)
        self.z_dim, self.num_spans = z_layout(latent_dim, span_latent_dim, num_frames, encoder_filters)
        self.condition_dim = int(condition_dim)
        self.encoder_filters = tuple(int(f) for f in encoder_filters)
        self.hidden_dim = int(hidden_dim)
        self.span_latent_dim = int(span_latent_dim)
        self.condition_on_transposition = bool(condition_on_transposition)
        self.beta = float(beta)
        self.condition_dropout = float(condition_dropout)
        self.velocity_loss_weight = float(velocity_loss_weight)
        self.free_bits = float(free_bits)
        self.kl_schedule = kl_schedule
        self.kl_warmup_steps = int(kl_warmup_steps)
        self.kl_cycles = int(kl_cycles)
        self.decoding = decoding
        self.threshold = float(threshold)
        self.temperature = float(temperature)
        self.seed = seed

    # --- forward pass and loss -------------------------------------------------------------

    def condition_vector(self, inputs, training=False):
        """The shared condition vector ``c`` for a batch dict holding MODES and REBRACKETING
        (and TRANSPOSITION, used when the model conditions on it)."""
        condition = self.condition_embedding(inputs[keys.MODES], inputs[keys.REBRACKETING], training=training)
        shift = inputs.get(keys.TRANSPOSITION) if self.transposition_projection is not None else None
        if shift is not None:
            shift = ops.reshape(ops.cast(shift, "float32"), (-1, 1)) / SEMITONES_PER_OCTAVE
            condition = condition + ops.cast(self.transposition_projection(shift), condition.dtype)
        return condition

    def call(self, inputs, training=False):
        condition = self.condition_vector(inputs, training=training)
        posterior = self.encoder({keys.PIANO_ROLL: inputs[keys.PIANO_ROLL], "condition": condition})
        z = self.reparameterization(posterior["z_mean"], posterior["z_log_var"], training=training)
        decoded = self.decoder({"latent": z, "condition": condition})
        if training:
            self.kl_step.assign_add(ops.cast(1.0, self.kl_step.dtype))
        return {**decoded, **posterior}

    def kl_weight(self):
        """``beta`` times the annealing factor at the current training step."""
        factor = kl_annealing_factor(self.kl_step, self.kl_schedule, self.kl_warmup_steps, self.kl_cycles)
        return self.beta * factor

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        roll = ops.cast(x[keys.PIANO_ROLL], "float32")
        active = ops.cast(roll > 0.0, "float32")
        bce = ops.sum(
            ops.binary_crossentropy(active, ops.cast(y_pred["note_logits"], "float32"), from_logits=True), axis=(1, 2)
        )
        velocity_error = ops.sum(active * ops.square(ops.cast(y_pred["velocity"], "float32") - roll), axis=(1, 2))
        reconstruction = ops.mean(bce + self.velocity_loss_weight * velocity_error)
        mean = ops.cast(y_pred["z_mean"], "float32")
        log_var = ops.cast(y_pred["z_log_var"], "float32")
        kl_per_dim = ops.mean(-0.5 * (1.0 + log_var - ops.square(mean) - ops.exp(log_var)), axis=0)
        kl = ops.sum(kl_per_dim)
        kl_optimised = ops.sum(ops.maximum(kl_per_dim, self.free_bits)) if self.free_bits > 0 else kl
        kl_weight = self.kl_weight()
        loss = reconstruction + kl_weight * kl_optimised
        if self.losses:
            loss = loss + ops.sum(self.losses)
        self.reconstruction_tracker.update_state(reconstruction)
        self.kl_tracker.update_state(kl)
        self.kl_weight_tracker.update_state(kl_weight)
        return loss

    def compile(self, optimizer=None, **kwargs):
        """Compile with the model's own loss; the optimizer defaults to Adam(1e-3)."""
        if kwargs.get("loss") is not None:
            raise ModelInputError("ConditionalVAE owns its loss; do not pass loss= to compile().")
        kwargs.pop("loss", None)
        super().compile(optimizer=optimizer or keras.optimizers.Adam(1e-3), **kwargs)

    def get_compile_config(self):
        return super().get_compile_config()

    def compile_from_config(self, config):
        config = keras.saving.deserialize_keras_object(config)
        self.compile(optimizer=config.get("optimizer"))
        if self.optimizer is not None:
            self.optimizer.build(self.trainable_variables)

    # --- presets ------------------------------------------------------------------------------

    @classmethod
    def from_preset_config(cls, config):
        """Build the model from a resolved preset dict (see ``chroma_keras.config``)."""
        vae = config["model"]["vae"]
        roll = config["preprocessing"]["midi"]["piano_roll"]
        annealing = vae["kl_annealing"]
        sampling = config["generation"]["sampling"]
        return cls(
            num_pitches=roll["num_pitches"],
            num_frames=roll["num_frames"],
            lowest_pitch=roll["lowest_pitch"],
            frames_per_second=roll["frames_per_second"],
            latent_dim=vae["latent_dim"],
            condition_dim=vae["condition_dim"],
            encoder_filters=vae["encoder_filters"],
            hidden_dim=vae["hidden_dim"],
            span_latent_dim=vae["span_latent_dim"],
            condition_on_transposition=vae["condition_on_transposition"],
            beta=vae["beta"],
            condition_dropout=vae["condition_dropout"],
            velocity_loss_weight=vae["velocity_loss_weight"],
            free_bits=vae["free_bits"],
            kl_schedule=annealing["schedule"],
            kl_warmup_steps=annealing["warmup_steps"],
            kl_cycles=annealing["cycles"],
            decoding=sampling["decoding"],
            threshold=sampling["threshold"],
            temperature=sampling["temperature"],
            seed=config["training"]["seed"],
            name=config["name"],
        )

    def preset_overrides(self):
        """The preset keys this model's constructor arguments determine, as dotted overrides;
        the inverse of :meth:`from_preset_config`."""
        return {
            "preprocessing.midi.piano_roll.num_pitches": self.num_pitches,
            "preprocessing.midi.piano_roll.num_frames": self.num_frames,
            "preprocessing.midi.piano_roll.lowest_pitch": self.lowest_pitch,
            "preprocessing.midi.piano_roll.frames_per_second": self.frames_per_second,
            "model.generative.type": "vae",
            "model.vae.latent_dim": self.latent_dim,
            "model.vae.condition_dim": self.condition_dim,
            "model.vae.encoder_filters": list(self.encoder_filters),
            "model.vae.hidden_dim": self.hidden_dim,
            "model.vae.span_latent_dim": self.span_latent_dim,
            "model.vae.condition_on_transposition": self.condition_on_transposition,
            "model.vae.beta": self.beta,
            "model.vae.condition_dropout": self.condition_dropout,
            "model.vae.velocity_loss_weight": self.velocity_loss_weight,
            "model.vae.free_bits": self.free_bits,
            "model.vae.kl_annealing.schedule": self.kl_schedule,
            "model.vae.kl_annealing.warmup_steps": self.kl_warmup_steps,
            "model.vae.kl_annealing.cycles": self.kl_cycles,
            "generation.sampling.decoding": self.decoding,
            "generation.sampling.threshold": self.threshold,
            "generation.sampling.temperature": self.temperature,
        }

    # --- inference helpers ----------------------------------------------------------------

    def _transposition_array(self, transpose, num_samples):
        """``transpose`` (one number or one per sample) as float32 ``[num_samples]``, or a clear error."""
        shifts = np.asarray(transpose, dtype=np.float32)
        if shifts.ndim == 0:
            shifts = np.full(num_samples, shifts, np.float32)
        if shifts.shape != (num_samples,) or not np.all(np.isfinite(shifts)):
            raise ModelInputError(
                f"transpose must be one finite number of semitones or one per sample ({num_samples}). "
                f"Received: transpose={transpose!r}"
            )
        if self.transposition_projection is None and np.any(shifts != 0):
            raise ModelInputError(
                f"{self.name} was not trained with a transposition condition, so transpose= must be 0; "
                "build it with model.vae.condition_on_transposition: true. "
                f"Received: transpose={transpose!r}"
            )
        return shifts

    def _condition_inputs(self, condition, num_samples, rebracketing, transpose=0):
        arrays = conditioning.condition_arrays(condition, num_samples, rebracketing)
        arrays[keys.TRANSPOSITION] = self._transposition_array(transpose, num_samples)
        arrays = {k: ops.convert_to_tensor(v) for k, v in arrays.items()}
        return arrays, self.condition_vector(arrays)

    def encode(self, piano_rolls, condition=None, rebracketing=None, transpose=0):
        """Posterior mean and log-variance of piano rolls under a condition.

        Args:
            piano_rolls: array ``[batch, pitches, frames]`` (or one roll ``[pitches, frames]``).
            condition: one condition or one per roll (see :func:`conditioning.condition_arrays`).
            rebracketing: rebracketing values (see :func:`conditioning.condition_arrays`).
            transpose: semitones the rolls are transposed by relative to their written
                register (one number or one per roll); only for a model built with
                ``condition_on_transposition``.

        Returns:
            ``(z_mean, z_log_var)`` as NumPy arrays ``[batch, z_dim]``.
        """
        rolls = self._check_rolls(piano_rolls)
        _, cond = self._condition_inputs(condition, len(rolls), rebracketing, transpose)
        posterior = self.encoder({keys.PIANO_ROLL: ops.convert_to_tensor(rolls), "condition": cond})
        return keras.ops.convert_to_numpy(posterior["z_mean"]), keras.ops.convert_to_numpy(posterior["z_log_var"])

    def decode(
        self,
        latents,
        condition=None,
        rebracketing=None,
        threshold=None,
        decoding=None,
        seed=None,
        return_probabilities=False,
        transpose=0,
    ):
        """Decode latent vectors into piano rolls.

        Args:
            latents: array ``[batch, z_dim]``.
            condition: one condition or one per latent.
            rebracketing: rebracketing values.
            threshold: note-probability threshold for ``decoding="threshold"``
                (default: the preset's ``generation.sampling.threshold``).
            decoding: how note probabilities become notes (default: the preset's
                ``generation.sampling.decoding``), see :func:`notes_from_probabilities`.
            seed: seed of ``decoding="bernoulli"``.
            return_probabilities: also return the note probabilities.
            transpose: register shift in semitones the decoder is asked for (one number
                or one per latent); only for a model built with ``condition_on_transposition``.

        Returns:
            piano rolls ``[batch, pitches, frames]`` with velocities in [0, 1]
            (and the probabilities when asked).
        """
        z = self._check_latents(latents)
        _, cond = self._condition_inputs(condition, len(z), rebracketing, transpose)
        decoded = self.decoder({"latent": ops.convert_to_tensor(z), "condition": cond})
        probabilities = keras.ops.convert_to_numpy(ops.sigmoid(decoded["note_logits"]))
        velocity = keras.ops.convert_to_numpy(decoded["velocity"])
        sounding = notes_from_probabilities(
            probabilities,
            decoding=self.decoding if decoding is None else decoding,
            threshold=self.threshold if threshold is None else threshold,
            seed=seed,
        )
        rolls = np.where(sounding, np.clip(velocity, 1.0 / 127.0, 1.0), 0.0).astype(np.float32)
        return (rolls, probabilities) if return_probabilities else rolls

    def sample_latents(self, num_samples, seed=None, temperature=1.0, noise="backend"):
        """Draw ``num_samples`` latents from the prior ``N(0, temperature^2 I)`` (seeded).

        ``noise="portable"`` draws them with NumPy keyed by ``(seed, 0)``
        (:mod:`chroma_keras.generation.portable_noise`), the same in every backend and
        in the ``sample.py`` runner next to an export; ``"backend"`` uses ``keras.random``.
        """
        if temperature <= 0:
            raise ModelInputError(f"temperature must be > 0. Received: temperature={temperature}")
        if noise not in NOISE_MODES:
            raise ModelInputError(f"noise must be one of {list(NOISE_MODES)}. Received: noise={noise!r}")
        if noise == "portable":
            if seed is None:
                raise ModelInputError("noise='portable' needs an integer seed. Received: seed=None")
            return portable_normal(seed, 0, (num_samples, self.z_dim)) * np.float32(temperature)
        z = keras.random.normal((num_samples, self.z_dim), seed=seed)
        return keras.ops.convert_to_numpy(z) * float(temperature)

    def _check_latents(self, latents):
        """``latents`` as a float32 array ``[batch, z_dim]``, or a clear error."""
        z = np.asarray(latents, dtype=np.float32)
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ModelInputError(f"latents must have shape [batch, {self.z_dim}]. Received: shape={z.shape}")
        return z

    def span_latent_slice(self, span):
        """The entries of z that hold time span ``span`` (frames
        ``span * num_frames // num_spans`` onwards) as a ``slice``."""
        if not self.num_spans:
            raise ModelInputError("this model has no per-span latents; build it with model.vae.span_latent_dim > 0.")
        if not 0 <= int(span) < self.num_spans:
            raise ModelInputError(f"span must be in [0, {self.num_spans}). Received: span={span}")
        start = self.latent_dim + int(span) * self.span_latent_dim
        return slice(start, start + self.span_latent_dim)

    def resample_spans(self, latents, spans, seed=None, temperature=1.0):
        """Redraw the latents of some time spans from the prior and keep the rest of z.

        Decoding the result keeps the segment's whole-segment character and the
        other spans' notes (up to the decoder's reach of about one span either side)
        while the chosen spans get new material: "regenerate bars 5-8".

        Args:
            latents: array ``[batch, z_dim]`` (e.g. from :meth:`encode`).
            spans: indices of the spans to redraw.
            seed: seed of the NumPy draw.
            temperature: standard deviation of the draw.

        Returns:
            a new array ``[batch, z_dim]``.
        """
        z = self._check_latents(latents).copy()
        rng = np.random.default_rng(seed)
        for span in spans:
            part = self.span_latent_slice(span)
            z[:, part] = rng.standard_normal((len(z), self.span_latent_dim)) * float(temperature)
        return z

    def generate(
        self,
        condition=None,
        num_samples=1,
        seed=None,
        temperature=None,
        threshold=None,
        rebracketing=None,
        decoding=None,
        noise="backend",
        transpose=0,
    ):
        """Sample new piano rolls for a condition.

        Args:
            condition: a colour ("Red", "R"), a per-axis dict
                (``{"temporal": "future", "spatial": "thing", "ontological": "known"}``),
                a "temporal,spatial,ontological" string, a list with one per
                sample, or None for unconditional samples.
            num_samples: how many rolls to make.
            seed: integer seed; the same seed gives the same rolls on a backend.
            temperature: scale of the prior's standard deviation (default: the
                preset's ``generation.sampling.temperature``).
            threshold: note-probability threshold of ``decoding="threshold"``.
            rebracketing: rebracketing values, e.g. ``{"rebracketing_intensity": 8.0}``.
            decoding: ``expected_count``, ``threshold`` or ``bernoulli`` (see
                :func:`notes_from_probabilities`; default: the preset's).
            noise: ``"backend"`` (``keras.random``) or ``"portable"`` (NumPy keyed by
                the seed: what an export's ``sample.py`` draws, the same on every backend).
            transpose: semitones to move the colour's register by (one number or one per
                sample); only for a model built with ``model.vae.condition_on_transposition``.

        Returns:
            NumPy array ``[num_samples, pitches, frames]``, velocities in [0, 1].
        """
        conditioning.condition_arrays(condition, num_samples, rebracketing)  # validate before sampling
        self._transposition_array(transpose, num_samples)
        temperature = self.temperature if temperature is None else temperature
        z = self.sample_latents(num_samples, seed=seed, temperature=temperature, noise=noise)
        return self.decode(
            z, condition, rebracketing, threshold=threshold, decoding=decoding, seed=seed, transpose=transpose
        )

    def reconstruct(self, piano_rolls, condition=None, rebracketing=None, threshold=None, decoding=None, transpose=0):
        """Encode then decode (from the posterior mean) under the same condition and transposition."""
        mean, _ = self.encode(piano_rolls, condition, rebracketing, transpose)
        return self.decode(mean, condition, rebracketing, threshold=threshold, decoding=decoding, transpose=transpose)

    # --- config ------------------------------------------------------------------------------

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "num_pitches": self.num_pitches,
            "num_frames": self.num_frames,
            "lowest_pitch": self.lowest_pitch,
            "frames_per_second": self.frames_per_second,
            "latent_dim": self.latent_dim,
            "condition_dim": self.condition_dim,
            "encoder_filters": list(self.encoder_filters),
            "hidden_dim": self.hidden_dim,
            "span_latent_dim": self.span_latent_dim,
            "condition_on_transposition": self.condition_on_transposition,
            "beta": self.beta,
            "condition_dropout": self.condition_dropout,
            "velocity_loss_weight": self.velocity_loss_weight,
            "free_bits": self.free_bits,
            "kl_schedule": self.kl_schedule,
            "kl_warmup_steps": self.kl_warmup_steps,
            "kl_cycles": self.kl_cycles,
            "decoding": self.decoding,
            "threshold": self.threshold,
            "temperature": self.temperature,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
