"""Per-axis chromatic conditioning: one embedding per axis value plus a learned "none"."""

import keras
from keras import ops

from chroma_keras import modes, rebracketing


@keras.saving.register_keras_serializable(package="chroma_keras")
class ChromaticConditionEmbedding(keras.layers.Layer):
    """Embeds a per-axis chromatic condition and the rebracketing parameters.

    Each axis (temporal, spatial, ontological) has its own table of three mode
    embeddings and a learned "none" embedding. The axis input is a weight vector
    over its three modes (``modes.ModeCondition.multi_hot``): one-hot for one
    mode, 0.5/0.5 for Indigo's two ontological modes, all zeros for no mode.
    An axis' embedding is the weighted mix of its mode embeddings, plus the
    "none" embedding scaled by the missing weight. Because axes are embedded
    independently, the layer accepts combinations no album has.

    In training, ``condition_dropout`` replaces each axis (and, separately, the
    rebracketing vector) by "none"/"unknown" with that probability, so the same
    model also samples unconditionally and per partial condition.

    Args:
        output_dim: size of the returned condition vector.
        axis_dim: size of each axis' embedding. Defaults to ``output_dim``.
        condition_dropout: probability of dropping each axis in training.
        seed: seed of the dropout's SeedGenerator.

    Call arguments:
        modes_vector: float tensor ``[batch, modes.MODE_VECTOR_SIZE]``.
        rebracketing_vector: float tensor ``[batch, rebracketing.FEATURE_SIZE]``.
        training: whether condition dropout applies.

    Returns:
        float tensor ``[batch, output_dim]``.

    Example:
    >>> layer = ChromaticConditionEmbedding(output_dim=16)
    >>> cond = modes.resolve_condition("Red").multi_hot()[None]
    >>> layer(cond, np.zeros((1, rebracketing.FEATURE_SIZE), "float32")).shape
    (1, 16)
    """

    def __init__(self, output_dim, axis_dim=None, condition_dropout=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= condition_dropout < 1.0:
            raise ValueError(f"condition_dropout must be in [0, 1). Received: condition_dropout={condition_dropout}")
        self.output_dim = int(output_dim)
        self.axis_dim = int(axis_dim or output_dim)
        self.condition_dropout = float(condition_dropout)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.rebracketing_projection = keras.layers.Dense(
            self.axis_dim, activation="silu", name="rebracketing_projection", dtype=self.dtype_policy
        )
        self.output_projection = keras.layers.Dense(
            self.output_dim, activation="silu", name="output_projection", dtype=self.dtype_policy
        )

    def build(self, modes_vector_shape=None, rebracketing_vector_shape=None):
        num_axes = len(modes.AXES)
        self.mode_embeddings = self.add_weight(
            shape=(num_axes, modes.MODES_PER_AXIS, self.axis_dim),
            initializer=keras.initializers.RandomNormal(stddev=0.1),
            name="mode_embeddings",
        )
        self.none_embeddings = self.add_weight(
            shape=(num_axes, self.axis_dim),
            initializer=keras.initializers.RandomNormal(stddev=0.1),
            name="none_embeddings",
        )
        self.rebracketing_projection.build((None, rebracketing.FEATURE_SIZE))
        self.output_projection.build((None, (num_axes + 1) * self.axis_dim))
        self.built = True

    def call(self, modes_vector, rebracketing_vector, training=False):
        num_axes = len(modes.AXES)
        weights = ops.reshape(ops.cast(modes_vector, self.compute_dtype), (-1, num_axes, modes.MODES_PER_AXIS))
        features = ops.cast(rebracketing_vector, self.compute_dtype)
        if training and self.condition_dropout > 0.0:
            batch = ops.shape(weights)[0]
            draws = keras.random.uniform((batch, num_axes + 1), seed=self.seed_generator)
            keep = ops.cast(draws >= self.condition_dropout, self.compute_dtype)
            weights = weights * keep[:, :num_axes, None]
            features = features * keep[:, num_axes:]
        presence = ops.minimum(ops.sum(weights, axis=-1), 1.0)  # [batch, axes]
        axis_embeddings = ops.einsum("bam,amd->bad", weights, self.mode_embeddings)
        axis_embeddings = axis_embeddings + (1.0 - presence)[..., None] * self.none_embeddings[None]
        flat = ops.reshape(axis_embeddings, (-1, num_axes * self.axis_dim))
        combined = ops.concatenate([flat, self.rebracketing_projection(features)], axis=-1)
        return self.output_projection(combined)

    def compute_output_shape(self, modes_vector_shape, rebracketing_vector_shape=None):
        return (modes_vector_shape[0], self.output_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "output_dim": self.output_dim,
                "axis_dim": self.axis_dim,
                "condition_dropout": self.condition_dropout,
                "seed": self.seed,
            }
        )
        return config
