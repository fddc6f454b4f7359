"""What every denoiser shares: building from a preset's ``model.diffusion`` section and its Keras config."""

from __future__ import annotations

import keras


class Denoiser(keras.Model):
    """Base of the denoisers: ``{"sample", "timestep", "condition"} -> tensor shaped like sample``.

    A subclass lists in ``PRESET_DEFAULTS`` the ``model.diffusion`` keys it reads
    (with their defaults) and in ``CONFIG_ATTRIBUTES`` the constructor arguments
    kept as attributes of the same name, which ``get_config`` serialises.
    """

    PRESET_DEFAULTS: dict = {}
    CONFIG_ATTRIBUTES: tuple = ()

    @classmethod
    def from_preset_config(cls, config, spatial_dims=2):
        """Build from a resolved preset's ``model.diffusion`` section (absent keys keep ``PRESET_DEFAULTS``)."""
        section = ((config or {}).get("model") or {}).get("diffusion") or {}
        kwargs = {key: section.get(key) if section.get(key) is not None else value for key, value in cls.PRESET_DEFAULTS.items()}
        kwargs = {key: tuple(value) if isinstance(value, list) else value for key, value in kwargs.items()}
        return cls(condition_dim=section.get("condition_dim", 64), spatial_dims=spatial_dims, name="denoiser", **kwargs)

    def get_config(self):
        config = {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.saving.serialize_keras_object(self.dtype_policy),
        }
        for attribute in self.CONFIG_ATTRIBUTES:
            value = getattr(self, attribute)
            config[attribute] = list(value) if isinstance(value, tuple) else value
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.saving.deserialize_keras_object(config["dtype"])
        return cls(**config)
