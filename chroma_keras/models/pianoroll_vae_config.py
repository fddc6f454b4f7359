"""The constructor arguments the piano-roll VAE encoder and decoder share."""

from chroma_keras.errors import ModelInputError

GRID_CONFIG_KEYS = ("num_pitches", "num_frames", "latent_dim", "condition_dim", "filters", "hidden_dim", "span_latent_dim")


def num_time_spans(num_frames, filters):
    """How many time spans a segment splits into: one per column of the coarsest conv grid."""
    return int(num_frames) // 2 ** len(filters)


def split_latent_dim(latent_dim, span_latent_dim, num_frames, filters):
    """``(global_dim, spans)``: how z of size ``latent_dim`` divides into a whole-segment part
    and ``spans`` per-span parts of ``span_latent_dim`` each (z = [global, span_0, span_1, ...])."""
    spans = num_time_spans(num_frames, filters) if span_latent_dim else 0
    global_dim = int(latent_dim) - spans * int(span_latent_dim)
    if span_latent_dim < 0 or global_dim < 1:
        raise ModelInputError(
            f"latent_dim must exceed span_latent_dim x time spans ({span_latent_dim} x {spans} = "
            f"{spans * span_latent_dim}; one span per {2 ** len(filters)} frames) so that z keeps a "
            f"whole-segment part. Received: latent_dim={latent_dim}, span_latent_dim={span_latent_dim}"
        )
    return global_dim, spans


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
