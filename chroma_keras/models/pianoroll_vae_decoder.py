"""Transposed-convolution piano-roll decoder of the conditional VAE."""

import keras
from keras import ops

from chroma_keras.models.pianoroll_vae_config import PianoRollVAEConfigMixin, z_layout


@keras.saving.register_keras_serializable(package="chroma_keras")
class PianoRollVAEDecoder(PianoRollVAEConfigMixin, keras.Model):
    """Maps a latent vector and a condition vector to note logits and velocities.

    The mirror of :class:`PianoRollVAEEncoder`: a dense projection to a coarse
    grid, stride-2 transposed convolutions doubling pitch and time per block,
    and a final pair of convolutions for note logits and velocity. Two dense
    heads on the first hidden layer add a logit per pitch row and per frame
    (broadcast over the other axis) to the note logits: which pitches and which
    frames a segment uses come straight from ``z`` at full resolution, and the
    convolutions model the cells' interplay on top.

    With ``span_latent_dim > 0`` (see :class:`PianoRollVAEEncoder`) a dense stack
    shared by all time spans maps each span's latent and the whole-segment hidden
    state to that span's column of the coarse grid and to a logit per pitch row
    for the span's frames, so which notes sound in each bar comes from that bar's
    own latent.

    Args:
        num_pitches: piano-roll height; divisible by ``2 ** len(filters)``.
        num_frames: piano-roll width; divisible by ``2 ** len(filters)``.
        latent_dim: size of the whole-segment latent.
        condition_dim: size of the condition vector.
        filters: channels of the encoder's conv blocks (used in reverse).
        hidden_dim: width of the first dense layer.
        span_latent_dim: size of each time span's latent; 0 for one whole-segment z.

    Call arguments:
        inputs: dict with ``"latent"`` ``[batch, latent_dim + spans * span_latent_dim]`` and
            ``"condition"`` ``[batch, condition_dim]``.

    Returns:
        dict with ``"note_logits"`` (logit that a cell is sounding) and
        ``"velocity"`` (in [0, 1]), each ``[batch, num_pitches, num_frames]``.
    """

    def __init__(self, num_pitches, num_frames, latent_dim, condition_dim, filters=(32, 64, 128), hidden_dim=256, span_latent_dim=0, **kwargs):
        z_dim, spans = z_layout(latent_dim, span_latent_dim, num_frames, filters)
        scale = 2 ** len(filters)
        grid = (num_pitches // scale, num_frames // scale, filters[-1])
        # === Layers ===
        hidden = keras.layers.Dense(hidden_dim, activation="silu", name="hidden")
        to_grid = keras.layers.Dense(grid[0] * grid[1] * grid[2], activation="silu", name="to_grid")
        deconv_blocks = [
            keras.layers.Conv2DTranspose(f, 3, strides=2, padding="same", activation="silu", name=f"deconv_{i}")
            for i, f in enumerate(reversed(filters))
        ]
        pitch_head = keras.layers.Dense(num_pitches, name="pitch_logits")
        time_head = keras.layers.Dense(num_frames, name="time_logits")
        note_conv = keras.layers.Conv2D(1, 3, padding="same", name="note_conv")
        velocity_conv = keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid", name="velocity_conv")

        # === Functional Model ===
        latent_input = keras.Input((z_dim,), name="latent")
        condition_input = keras.Input((condition_dim,), name="condition")
        segment_latent = latent_input[:, :latent_dim] if spans else latent_input
        x = keras.layers.Concatenate(name="join_condition")([segment_latent, condition_input])
        h = hidden(x)
        x = keras.layers.Reshape(grid, name="to_grid_shape")(to_grid(h))
        if spans:
            span_columns, span_rows = _span_decoder(latent_input[:, latent_dim:], h, grid, spans, span_latent_dim, num_pitches, num_frames, hidden_dim)
            x = keras.layers.Add(name="add_span_columns")([x, span_columns])
        for block in deconv_blocks:
            x = block(x)
        cell_logits = keras.layers.Reshape((num_pitches, num_frames), name="cell_logits")(note_conv(x))
        # Spelled out to the full grid rather than broadcast by Add: a Keras Add of [b, p, 1] and [b, 1, f]
        # traced with a dynamic batch gives wrong sums under TensorFlow at batch 1 when p == f (found by the
        # SavedModel export test).
        row_logits = keras.layers.Permute((2, 1), name="row_logits")(keras.layers.RepeatVector(num_frames, name="rows_over_frames")(pitch_head(h)))
        frame_logits = keras.layers.RepeatVector(num_pitches, name="frame_logits")(time_head(h))
        logit_terms = [cell_logits, row_logits, frame_logits] + ([span_rows] if spans else [])
        note_logits = keras.layers.Add(name="note_logits")(logit_terms)
        velocity = keras.layers.Reshape((num_pitches, num_frames), name="velocity")(velocity_conv(x))
        super().__init__(
            inputs={"latent": latent_input, "condition": condition_input},
            outputs={"note_logits": note_logits, "velocity": velocity},
            **kwargs,
        )

        # === Config ===
        self._store_grid_config(num_pitches, num_frames, latent_dim, condition_dim, filters, hidden_dim, span_latent_dim)


def _span_decoder(span_latents, hidden, grid, spans, span_latent_dim, num_pitches, num_frames, hidden_dim):
    """Each span's contribution: a grid column ``[batch, grid_pitches, spans, channels]`` and
    row logits spread over the span's frames ``[batch, num_pitches, num_frames]``."""
    z = keras.layers.Reshape((spans, span_latent_dim), name="span_latents")(span_latents)
    context = keras.layers.RepeatVector(spans, name="segment_context")(hidden)
    x = keras.layers.Concatenate(name="span_inputs")([z, context])
    x = keras.layers.Dense(hidden_dim, activation="silu", name="span_hidden")(x)
    columns = keras.layers.Dense(grid[0] * grid[2], activation="silu", name="span_to_grid")(x)
    columns = keras.layers.Reshape((spans, grid[0], grid[2]), name="span_column_shape")(columns)
    columns = keras.layers.Permute((2, 1, 3), name="span_columns")(columns)
    rows = keras.layers.Dense(num_pitches, name="span_pitch_logits")(x)
    rows = ops.repeat(rows, num_frames // spans, axis=1)
    return columns, keras.layers.Permute((2, 1), name="span_row_logits")(rows)
