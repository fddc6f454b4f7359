"""The constructor arguments the piano-roll VAE encoder and decoder share."""

GRID_CONFIG_KEYS = ("num_pitches", "num_frames", "latent_dim", "condition_dim", "filters", "hidden_dim")


class PianoRollVAEConfigMixin:
    """Stores the shared constructor arguments and serializes them (KerasHub-style
    functional subclasses return their constructor arguments, not the graph)."""

    def _store_grid_config(self, num_pitches, num_frames, latent_dim, condition_dim, filters, hidden_dim):
        self.num_pitches = int(num_pitches)
        self.num_frames = int(num_frames)
        self.latent_dim = int(latent_dim)
        self.condition_dim = int(condition_dim)
        self.filters = tuple(int(f) for f in filters)
        self.hidden_dim = int(hidden_dim)

    def get_config(self):
        config = {"name": self.name, "trainable": self.trainable}
        config.update({key: getattr(self, key) for key in GRID_CONFIG_KEYS})
        config["filters"] = list(self.filters)
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)
