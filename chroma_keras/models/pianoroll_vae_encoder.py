"""Convolutional piano-roll encoder of the conditional VAE."""

import keras
from keras import ops

from chroma_keras.data import keys
from chroma_keras.models.pianoroll_vae_config import PianoRollVAEConfigMixin, z_layout


@keras.saving.register_keras_serializable(package="chroma_keras")
class PianoRollVAEEncoder(PianoRollVAEConfigMixin, keras.Model):
    """Maps a piano roll and a condition vector to a Gaussian posterior.

    Stride-2 convolution blocks halve pitch and time per block, the result is
    flattened, joined with the roll's pitch profile (each row's mean over time),
    its time profile (each frame's mean over pitches) and the condition vector,
    and projected to the mean and log-variance of ``q(z | roll, condition)``.
    The profiles hand the dense layers which pitches (key, scale, register) and
    which frames (rhythm) a segment uses at full resolution, which the strided
    convolutions only pass on mixed into coarse cells.

    With ``span_latent_dim > 0``, z is followed by ``spans * span_latent_dim``
    entries of per-time-span latents, one span per column of the coarsest conv grid
    (16 frames for four blocks). A dense stack shared by all spans reads each
    span's grid column, its own pitch and time profiles and the whole-segment
    hidden state, and gives that span's posterior; the first ``latent_dim``
    entries stay the whole-segment latent.

    Args:
        num_pitches: piano-roll height; divisible by ``2 ** len(filters)``.
        num_frames: piano-roll width; divisible by ``2 ** len(filters)``.
        latent_dim: size of the whole-segment latent.
        condition_dim: size of the condition vector.
        filters: channels of each conv block.
        hidden_dim: width of the dense layer before the posterior heads.
        span_latent_dim: size of each time span's latent; 0 for one whole-segment z.

    Call arguments:
        inputs: dict with ``keys.PIANO_ROLL`` ``[batch, num_pitches, num_frames]``
            and ``"condition"`` ``[batch, condition_dim]``.

    Returns:
        dict with ``"z_mean"`` and ``"z_log_var"``, each ``[batch, latent_dim + spans * span_latent_dim]``.
    """

    def __init__(self, num_pitches, num_frames, latent_dim, condition_dim, filters=(32, 64, 128), hidden_dim=256, span_latent_dim=0, **kwargs):
        _, spans = z_layout(latent_dim, span_latent_dim, num_frames, filters)
        # === Layers ===
        conv_blocks = [
            keras.layers.Conv2D(f, 3, strides=2, padding="same", activation="silu", name=f"conv_{i}")
            for i, f in enumerate(filters)
        ]
        flatten = keras.layers.Flatten(name="flatten")
        # The roll is [batch, pitches, frames]: "channels_first" averages over frames.
        pitch_profile = keras.layers.GlobalAveragePooling1D(data_format="channels_first", name="pitch_profile")
        time_profile = keras.layers.GlobalAveragePooling1D(data_format="channels_last", name="time_profile")
        hidden = keras.layers.Dense(hidden_dim, activation="silu", name="hidden")
        mean_head = keras.layers.Dense(latent_dim, name="z_mean")
        # Starts near log_var = 0 so early KL terms are moderate.
        log_var_head = keras.layers.Dense(latent_dim, kernel_initializer="zeros", name="z_log_var")

        # === Functional Model ===
        roll_input = keras.Input((num_pitches, num_frames), name=keys.PIANO_ROLL)
        condition_input = keras.Input((condition_dim,), name="condition")
        x = keras.layers.Reshape((num_pitches, num_frames, 1), name="add_channel")(roll_input)
        for block in conv_blocks:
            x = block(x)
        grid = x
        frame_means = time_profile(roll_input)
        x = keras.layers.Concatenate(name="join_condition")(
            [flatten(grid), pitch_profile(roll_input), frame_means, condition_input]
        )
        h = hidden(x)
        z_mean, z_log_var = mean_head(h), log_var_head(h)
        if spans:
            span_mean, span_log_var = _span_posterior(roll_input, frame_means, grid, h, spans, span_latent_dim, hidden_dim)
            z_mean = keras.layers.Concatenate(name="join_span_means")([z_mean, span_mean])
            z_log_var = keras.layers.Concatenate(name="join_span_log_vars")([z_log_var, span_log_var])
        outputs = {"z_mean": z_mean, "z_log_var": z_log_var}
        super().__init__(inputs={keys.PIANO_ROLL: roll_input, "condition": condition_input}, outputs=outputs, **kwargs)

        # === Config ===
        self._store_grid_config(num_pitches, num_frames, latent_dim, condition_dim, filters, hidden_dim, span_latent_dim)


def _span_posterior(roll, frame_means, grid, hidden, spans, span_latent_dim, hidden_dim):
    """Per-span posterior heads, flattened to ``[batch, spans * span_latent_dim]`` each.
    ``frame_means`` is the roll's time profile ``[batch, num_frames]``, cut here into spans."""
    num_pitches, num_frames = roll.shape[1], roll.shape[2]
    span_frames = num_frames // spans
    # Grid [batch, grid_pitches, spans, channels] -> one feature row per span.
    columns = keras.layers.Permute((2, 1, 3), name="span_columns")(grid)
    columns = keras.layers.Reshape((spans, grid.shape[1] * grid.shape[3]), name="span_column_features")(columns)
    cells = keras.layers.Reshape((num_pitches, spans, span_frames), name="span_cells")(roll)
    pitch_profile = keras.layers.Permute((2, 1), name="span_pitch_profile")(ops.mean(cells, axis=-1))
    time_profile = keras.layers.Reshape((spans, span_frames), name="span_time_profile")(frame_means)
    context = keras.layers.RepeatVector(spans, name="segment_context")(hidden)
    x = keras.layers.Concatenate(name="span_features")([columns, pitch_profile, time_profile, context])
    x = keras.layers.Dense(hidden_dim, activation="silu", name="span_hidden")(x)
    mean = keras.layers.Dense(span_latent_dim, name="span_z_mean")(x)
    log_var = keras.layers.Dense(span_latent_dim, kernel_initializer="zeros", name="span_z_log_var")(x)
    flat = (spans * span_latent_dim,)
    return keras.layers.Reshape(flat, name="span_means")(mean), keras.layers.Reshape(flat, name="span_log_vars")(log_var)
