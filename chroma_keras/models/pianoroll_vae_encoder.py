"""Convolutional piano-roll encoder of the conditional VAE."""

import keras

from chroma_keras.data import keys
from chroma_keras.models.pianoroll_vae_config import PianoRollVAEConfigMixin


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

    Args:
        num_pitches: piano-roll height; divisible by ``2 ** len(filters)``.
        num_frames: piano-roll width; divisible by ``2 ** len(filters)``.
        latent_dim: size of z.
        condition_dim: size of the condition vector.
        filters: channels of each conv block.
        hidden_dim: width of the dense layer before the posterior heads.

    Call arguments:
        inputs: dict with ``keys.PIANO_ROLL`` ``[batch, num_pitches, num_frames]``
            and ``"condition"`` ``[batch, condition_dim]``.

    Returns:
        dict with ``"z_mean"`` and ``"z_log_var"``, each ``[batch, latent_dim]``.
    """

    def __init__(self, num_pitches, num_frames, latent_dim, condition_dim, filters=(32, 64, 128), hidden_dim=256, **kwargs):
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
        x = keras.layers.Concatenate(name="join_condition")(
            [flatten(x), pitch_profile(roll_input), time_profile(roll_input), condition_input]
        )
        x = hidden(x)
        outputs = {"z_mean": mean_head(x), "z_log_var": log_var_head(x)}
        super().__init__(inputs={keys.PIANO_ROLL: roll_input, "condition": condition_input}, outputs=outputs, **kwargs)

        # === Config ===
        self._store_grid_config(num_pitches, num_frames, latent_dim, condition_dim, filters, hidden_dim)
