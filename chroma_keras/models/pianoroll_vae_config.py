"""The constructor arguments the piano-roll VAE encoder and decoder share."""

from chroma_keras.errors import ModelInputError

GRID_CONFIG_KEYS = ("num_pitches", "num_frames", "latent_dim", "condition_dim", "filters", "hidden_dim", "span_latent_dim")


def num_time_spans(num_frames, filters):
    """How many time spans a segment splits into: one per column of the coarsest conv grid."""
    return int(num_frames) // 2 ** len(filters)


def z_layout(latent_dim, span_latent_dim, num_frames, filters):
    """``(z_dim, spans)``: z holds the whole-segment latent (``latent_dim`` entries) followed by
    ``spans`` per-span latents of ``span_latent_dim`` each (z = [segment, span_0, span_1, ...])."""
    if int(span_latent_dim) < 0:
        raise ModelInputError(f"span_latent_dim must be >= 0. Received: span_latent_dim={span_latent_dim}")
    spans = num_time_spans(num_frames, filters) if span_latent_dim else 0
    return int(latent_dim) + spans * int(span_latent_dim), spans


class PianoRollVAEConfigMixin:
    """Stores the shared constructor arguments and serializes them (KerasHub-style
    functional subclasses return their constructor arguments, not the graph)."""

    def _store_grid_config(self, num_pitches, num_frames, latent_dim, condition_dim, filters, hidden_dim, span_latent_dim=0):
        self.num_pitches = int(num_pitches)
        self.num_frames = int(num_frames)
        self.latent_dim = int(latent_dim)
        self.condition_dim = int(condition_dim)
        self.filters = tuple(int(f) for f in filters)
        self.hidden_dim = int(hidden_dim)
        self.span_latent_dim = int(span_latent_dim)

    def get_config(self):
        config = {"name": self.name, "trainable": self.trainable}
        config.update({key: getattr(self, key) for key in GRID_CONFIG_KEYS})
        config["filters"] = list(self.filters)
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)
