"""The VAE reparameterization trick as a seeded layer."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="chroma_keras")
class Reparameterization(keras.layers.Layer):
    """Draws ``z = mean + exp(log_var / 2) * eps`` with ``eps ~ N(0, I)``.

    The noise comes from the layer's own ``keras.random.SeedGenerator``, so a
    seeded layer gives the same draws on every run of the same backend.

    Args:
        seed: seed of the layer's SeedGenerator.
        sample_at_inference: when False (default), inference returns ``mean``
            (a deterministic reconstruction); when True it samples as in training.

    Call arguments:
        mean: float tensor ``[batch, latent_dim]``.
        log_var: float tensor ``[batch, latent_dim]``.
        training: whether to sample.

    Returns:
        float tensor ``[batch, latent_dim]``.
    """

    def __init__(self, seed=None, sample_at_inference=False, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.sample_at_inference = bool(sample_at_inference)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, mean, log_var, training=False):
        if not training and not self.sample_at_inference:
            return mean
        eps = keras.random.normal(ops.shape(mean), dtype=mean.dtype, seed=self.seed_generator)
        return mean + ops.exp(0.5 * log_var) * eps

    def compute_output_shape(self, mean_shape, log_var_shape=None):
        return mean_shape

    def get_config(self):
        config = super().get_config()
        config.update({"seed": self.seed, "sample_at_inference": self.sample_at_inference})
        return config
