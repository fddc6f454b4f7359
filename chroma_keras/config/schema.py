"""The declarative schema of a preset config.

A preset is a nested mapping. :data:`SCHEMA` describes it with small field
objects: each knows its type, its allowed values, its default and a one-line
doc (shown in error messages and in ``docs/presets.md``). The loader
(:mod:`chroma_keras.config.loader`) walks the schema; nothing here reads files.

Adding a key is one line in :data:`SCHEMA`, e.g. in the ``vae`` section::

    "dropout": FloatField(0, 1, max_exclusive=True, default=0.0, doc="Dropout after the hidden layer."),

then regenerate the table in ``docs/presets.md`` with
``python -c "from chroma_keras.config.schema import render_markdown; print(render_markdown())"``.
Rules that tie several keys together live in ``CROSS_FIELD_RULES`` in the loader.
"""

from __future__ import annotations

import copy
import difflib
import math
import numbers
from typing import Any, Iterator, Mapping, Sequence


class _Missing:
    """Marker default of a required field."""

    def __repr__(self) -> str:
        return "<required>"


MISSING = _Missing()


class Invalid(Exception):
    """Raised by :meth:`Field.check`: ``reason`` says what is wrong, ``hint`` how to fix it."""

    def __init__(self, reason: str, hint: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.hint = hint


def format_number(x) -> str:
    """A number as a user would write it in YAML (``1000000000``, ``0.15``)."""
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e16:
        return str(int(x)) if abs(x) >= 1e6 else repr(x)
    return repr(x)


class Field:
    """Base of every leaf field.

    Args:
        doc: one-line description (required).
        default: value used when the key is absent; :data:`MISSING` makes the key required.
        nullable: whether ``null`` is accepted.
        keep: False for keys the loader consumes and never returns (``extends``).
    """

    def __init__(self, *, doc: str, default: Any = MISSING, nullable: bool = False, keep: bool = True):
        self.doc = doc
        self.default = default
        self.nullable = nullable
        self.keep = keep

    @property
    def required(self) -> bool:
        return self.default is MISSING

    def describe(self) -> str:
        """What is allowed, e.g. ``an integer in [1, 4096]`` (``or null`` when nullable)."""
        text = self._describe()
        return f"{text}, or null" if self.nullable else text

    def _describe(self) -> str:
        raise NotImplementedError

    def check(self, value: Any) -> Any:
        """Return ``value`` converted to the field's type; raise :class:`Invalid`. Never sees ``None``."""
        raise NotImplementedError

    def default_value(self) -> Any:
        return copy.deepcopy(self.default)


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


class IntField(Field):
    """An integer in ``[min, max]`` (booleans and floats are rejected)."""

    def __init__(self, min: int | None = None, max: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.min, self.max = min, max

    def _describe(self) -> str:
        if self.min is not None and self.max is not None:
            return f"an integer in [{format_number(self.min)}, {format_number(self.max)}]"
        if self.min is not None:
            return f"an integer >= {format_number(self.min)}"
        if self.max is not None:
            return f"an integer <= {format_number(self.max)}"
        return "an integer"

    def check(self, value):
        if isinstance(value, bool):
            raise Invalid("wrong type (true/false is a boolean, not an integer)")
        if not _is_int(value):
            hint = ""
            if _is_real(value) and math.isfinite(value) and float(value).is_integer():
                hint = f" Write {int(value)} without a decimal point."
            raise Invalid("wrong type", hint)
        value = int(value)
        if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
            raise Invalid("out of range")
        return value


class FloatField(Field):
    """A number in a range; an int is accepted and converted to float, a boolean is not."""

    def __init__(
        self,
        min: float | None = None,
        max: float | None = None,
        *,
        min_exclusive: bool = False,
        max_exclusive: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.min, self.max = min, max
        self.min_exclusive, self.max_exclusive = min_exclusive, max_exclusive

    def _describe(self) -> str:
        lo = "(" if self.min_exclusive else "["
        hi = ")" if self.max_exclusive else "]"
        if self.min is not None and self.max is not None:
            return f"a number in {lo}{format_number(self.min)}, {format_number(self.max)}{hi}"
        if self.min is not None:
            return f"a number {'>' if self.min_exclusive else '>='} {format_number(self.min)}"
        if self.max is not None:
            return f"a number {'<' if self.max_exclusive else '<='} {format_number(self.max)}"
        return "a number"

    def check(self, value):
        if isinstance(value, bool):
            raise Invalid("wrong type (true/false is a boolean, not a number)")
        if not _is_real(value):
            raise Invalid("wrong type")
        value = float(value)
        if math.isnan(value):
            raise Invalid("not a number (nan)")
        if self.min is not None and (value <= self.min if self.min_exclusive else value < self.min):
            raise Invalid("out of range")
        if self.max is not None and (value >= self.max if self.max_exclusive else value > self.max):
            raise Invalid("out of range")
        return value


class ChoiceField(Field):
    """One of a fixed set of values (strings or ints; compared with their type)."""

    def __init__(self, choices: Sequence, **kwargs):
        super().__init__(**kwargs)
        self.choices = tuple(choices)

    def _describe(self) -> str:
        return "one of " + ", ".join(repr(c) if isinstance(c, str) else format_number(c) for c in self.choices)

    def check(self, value):
        for choice in self.choices:
            if _is_int(choice) and _is_int(value) and value == choice:
                return choice
            if type(value) is type(choice) and value == choice:
                return value
        if isinstance(value, bool):
            raise Invalid("wrong type (true/false is a boolean)")
        if not any(isinstance(value, type(c)) or (_is_int(c) and _is_int(value)) for c in self.choices):
            raise Invalid("wrong type")
        hint = ""
        if isinstance(value, str):
            lowered = {c.lower(): c for c in self.choices if isinstance(c, str)}
            close = difflib.get_close_matches(value.lower(), list(lowered), n=1)
            if close:
                hint = f" Did you mean {lowered[close[0]]!r}?"
        raise Invalid("not one of the allowed choices", hint)


class StrField(Field):
    """A string (optionally non-empty)."""

    def __init__(self, *, non_empty: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.non_empty = non_empty

    def _describe(self) -> str:
        return "a non-empty string" if self.non_empty else "a string"

    def check(self, value):
        if not isinstance(value, str):
            raise Invalid("wrong type")
        if self.non_empty and not value.strip():
            raise Invalid("empty string")
        return value


class BoolField(Field):
    """``true`` or ``false`` (0/1 and strings are rejected)."""

    def _describe(self) -> str:
        return "true or false"

    def check(self, value):
        if not isinstance(value, bool):
            raise Invalid("wrong type")
        return value


class ListField(Field):
    """A list whose items all match ``item`` (checked one by one by the loader)."""

    def __init__(self, item: Field, *, min_len: int = 0, max_len: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.item, self.min_len, self.max_len = item, min_len, max_len

    def _describe(self) -> str:
        if self.max_len is None:
            size = f"at least {self.min_len} items" if self.min_len else "any number of items"
        elif self.min_len == self.max_len:
            size = f"exactly {self.max_len} items"
        else:
            size = f"{self.min_len} to {self.max_len} items"
        return f"a list of {size}, each {self.item.describe()}"

    def check(self, value):
        """Checks the container only; see :meth:`length_problem` and ``item``."""
        if not isinstance(value, (list, tuple)):
            raise Invalid("wrong type")
        return list(value)

    def length_problem(self, value: list) -> str | None:
        if len(value) < self.min_len:
            return f"too few items ({len(value)})"
        if self.max_len is not None and len(value) > self.max_len:
            return f"too many items ({len(value)})"
        return None


class Section:
    """A nested mapping of named fields.

    Args:
        fields: key -> :class:`Field` or :class:`Section`, in output order.
        optional: an optional section is only in the output when the preset has it
            (or ``include_when`` holds); a non-optional one is always filled with defaults.
        include_when: ``("dotted.path", value)``: also fill this optional section with
            defaults when that key of the resolved config equals ``value``.
        doc: one-line description.
    """

    def __init__(
        self,
        fields: Mapping[str, "Field | Section"],
        *,
        doc: str,
        optional: bool = False,
        include_when: tuple[str, Any] | None = None,
    ):
        self.fields = dict(fields)
        self.doc = doc
        self.optional = optional
        self.include_when = include_when

    def describe(self) -> str:
        return "a mapping (section)"

    def default_value(self) -> dict:
        """The defaults of every non-optional key (required keys are left out)."""
        out = {}
        for name, field in self.fields.items():
            if isinstance(field, Section):
                if not field.optional:
                    out[name] = field.default_value()
            elif not field.required and field.keep:
                out[name] = field.default_value()
        return out


SCHEMA = Section(
    {
        "name": StrField(non_empty=True, doc="Preset name, stored with saved models."),
        "description": StrField(default="", doc="One-line human description of the preset."),
        "extends": StrField(
            non_empty=True,
            default=None,
            nullable=True,
            keep=False,
            doc="Parent preset, a built-in name or a path relative to this file, merged under this one; "
            "consumed by the loader.",
        ),
        "model": Section(
            {
                "generative": Section(
                    {
                        "type": ChoiceField(
                            ["vae", "diffusion", "autoregressive"],
                            default=None,
                            nullable=True,
                            doc="Generative family of the model; null for scorers and encoders.",
                        ),
                    },
                    doc="Which generator the model has.",
                ),
                "vae": Section(
                    {
                        "latent_dim": IntField(1, 4096, default=64, doc="Size of the whole-segment latent (all of z without span latents)."),
                        "beta": FloatField(0, 100, default=1.0, doc="Weight of the KL term of the VAE loss, as in beta-VAE."),
                        "encoder_filters": ListField(
                            IntField(1, 4096, doc="Filters of one encoder conv block."),
                            min_len=1,
                            max_len=6,
                            default=[32, 64, 128],
                            doc="Conv filters per encoder block; each block halves pitch and time.",
                        ),
                        "hidden_dim": IntField(
                            1, 65536, default=256, doc="Width of the dense layer before the latent heads."
                        ),
                        "span_latent_dim": IntField(
                            0,
                            4096,
                            default=0,
                            doc="Size of each time span's latent (one span per 2**len(encoder_filters) frames), "
                            "appended to z after the latent_dim whole-segment entries; 0 keeps one whole-segment z.",
                        ),
                        "condition_on_transposition": BoolField(
                            default=False,
                            doc="Add the training batch's transposition (semitones) to the condition, so the "
                            "latent need not carry the register shift; generate(transpose=) then moves the register.",
                        ),
                        "condition_dim": IntField(
                            1, 4096, default=32, doc="Size of the chromatic-mode condition embedding."
                        ),
                        "condition_dropout": FloatField(
                            0,
                            1,
                            max_exclusive=True,
                            default=0.1,
                            doc="Probability of dropping the condition in training, for guidance.",
                        ),
                        "velocity_loss_weight": FloatField(
                            0, 100, default=1.0, doc="Weight of the note-velocity reconstruction loss."
                        ),
                        "free_bits": FloatField(
                            0, 10, default=0.0, doc="Minimum KL per latent dimension, in nats; 0 disables it."
                        ),
                        "kl_annealing": Section(
                            {
                                "schedule": ChoiceField(
                                    ["none", "linear", "cyclical", "sigmoid"],
                                    default="linear",
                                    doc="Shape of the KL-weight ramp; 'none' uses beta from step 0.",
                                ),
                                "warmup_steps": IntField(
                                    0, 10**9, default=400, doc="Steps for the KL weight to ramp from 0 to beta."
                                ),
                                "cycles": IntField(
                                    1, 1000, default=1, doc="Number of ramps of the cyclical schedule."
                                ),
                            },
                            doc="Schedule of the KL weight during training.",
                        ),
                    },
                    optional=True,
                    include_when=("model.generative.type", "vae"),
                    doc="Conditional VAE over piano rolls.",
                ),
                "gpt": Section(
                    {
                        "hidden_dim": IntField(8, 8192, default=256, doc="GPT: token width."),
                        "num_layers": IntField(1, 96, default=4, doc="GPT: causal transformer blocks."),
                        "num_heads": IntField(1, 128, default=4, doc="GPT: attention heads (must divide hidden_dim)."),
                        "intermediate_dim": IntField(8, 65536, default=1024, doc="GPT: width of each block's MLP."),
                        "max_sequence_length": IntField(
                            8, 65536, default=512, doc="GPT: longest sequence (prefix + tokens) the position embedding covers."
                        ),
                        "dropout": FloatField(0, 1, max_exclusive=True, default=0.1, doc="GPT: dropout in training."),
                        "tie_embeddings": BoolField(default=True, doc="GPT: share the token embedding with the LM head."),
                        "rebracketing_buckets": IntField(
                            1, 100, default=8, doc="GPT vocabulary: buckets of each normalised rebracketing score."
                        ),
                        "text_tokens": BoolField(default=True, doc="GPT vocabulary: include the 256 UTF-8 byte tokens."),
                        "audio_num_codebooks": IntField(
                            0, 32, default=0, doc="GPT vocabulary: EnCodec codebooks with their own id range; 0 = no audio tokens."
                        ),
                        "audio_codebook_size": IntField(1, 65536, default=1024, doc="GPT vocabulary: codes per EnCodec codebook."),
                        "rebracketing_dropout": FloatField(
                            0,
                            1,
                            default=0.5,
                            doc="GPT training: chance that each rebracketing token is left out of a segment's prefix, so "
                            "prompts naming only some scores stay in distribution.",
                        ),
                        "infill_rate": FloatField(
                            0,
                            1,
                            default=0.0,
                            doc="GPT training: share of sequences turned into fill-in-the-middle form (bars before, bars "
                            "after, then the missing bars) so ChromaticGPT.infill can regenerate bars; 0 = plain sequences only.",
                        ),
                        "text_max_bytes": IntField(
                            0,
                            65536,
                            default=0,
                            doc="GPT training rows: UTF-8 bytes of the segment's text kept in a <sep_text> section before the "
                            "MIDI (needs text_tokens); 0 = no text section.",
                        ),
                        "audio_pattern": ChoiceField(
                            ["delay", "flatten"],
                            default="delay",
                            doc="GPT: how the EnCodec codes [codebooks, frames] of the <sep_audio> section are laid out "
                            "(MusicGen's delay pattern or frame by frame).",
                        ),
                        "encodec_weights": StrField(
                            non_empty=True,
                            default=None,
                            nullable=True,
                            doc="GPT audio tokens: a converted EnCodec 24 kHz directory or checkpoint (local; nothing is "
                            "downloaded); null = a seeded random-init stand-in (pipeline tests only, warns).",
                        ),
                    },
                    optional=True,
                    include_when=("model.generative.type", "autoregressive"),
                    doc="GPT generator over the unified token vocabulary (see docs/models/gpt.md).",
                ),
                "diffusion": Section(
                    {
                        "num_steps": IntField(1, 10000, default=1000, doc="Diffusion steps in training."),
                        "noise_schedule": ChoiceField(
                            ["linear", "scaled_linear", "cosine"], default="linear", doc="Noise (beta) schedule."
                        ),
                        "prediction_type": ChoiceField(
                            ["epsilon", "v", "sample"], default="epsilon", doc="What the denoiser predicts."
                        ),
                        "beta_start": FloatField(
                            0, 1, min_exclusive=True, max_exclusive=True, default=1e-4, doc="First beta of the linear / scaled_linear schedules."
                        ),
                        "beta_end": FloatField(
                            0, 1, min_exclusive=True, max_exclusive=True, default=0.02, doc="Last beta of the linear / scaled_linear schedules."
                        ),
                        "variance_type": ChoiceField(
                            ["fixed_small", "fixed_small_log", "fixed_large", "fixed_large_log", "learned", "learned_range"],
                            default="fixed_small",
                            doc="DDPM reverse-step variance.",
                        ),
                        "denoiser": ChoiceField(
                            ["unet", "transformer"], default="unet", doc="Denoiser backbone: conditional U-Net or DiT-style transformer."
                        ),
                        "condition_dim": IntField(
                            1, 4096, default=64, doc="Width of the chromatic condition vector fed to the denoiser."
                        ),
                        "condition_dropout": FloatField(
                            0, 1, max_exclusive=True, default=0.1, doc="Probability of dropping one condition axis in training."
                        ),
                        "unconditional_probability": FloatField(
                            0,
                            1,
                            max_exclusive=True,
                            default=0.1,
                            doc="Probability of dropping the whole condition in training (needed for classifier-free guidance).",
                        ),
                        "note_threshold": FloatField(
                            0,
                            1,
                            min_exclusive=True,
                            max_exclusive=True,
                            default=0.15,
                            doc="Generated velocity above which a piano-roll cell is a note.",
                        ),
                        "dropout": FloatField(0, 1, max_exclusive=True, default=0.0, doc="Dropout inside the denoiser."),
                        "channels": ListField(
                            IntField(1, 4096, doc="Channels of one U-Net level."),
                            min_len=1,
                            max_len=6,
                            default=[32, 64, 128],
                            doc="U-Net channels per resolution level; each level below the first halves pitch and time.",
                        ),
                        "num_res_blocks": IntField(1, 8, default=2, doc="U-Net residual blocks per level."),
                        "position_channels": IntField(
                            0, 32, default=0, doc="U-Net: sinusoid pairs of each cell's pitch and frame index fed with the sample; 0 = none."
                        ),
                        "condition_row_channels": IntField(
                            0,
                            32,
                            default=0,
                            doc="U-Net: learned maps from the condition to one value per pitch row, fed with the sample; 0 = none.",
                        ),
                        "attention": BoolField(default=True, doc="Self-attention at the U-Net's lowest resolution."),
                        "norm_groups": IntField(1, 64, default=8, doc="Group-norm groups in the U-Net (must divide every level's channels)."),
                        "num_heads": IntField(1, 64, default=4, doc="Attention heads (U-Net attention and transformer blocks)."),
                        "hidden_dim": IntField(8, 4096, default=128, doc="Transformer token width."),
                        "num_layers": IntField(1, 48, default=4, doc="Transformer blocks."),
                        "patch_size": ListField(
                            IntField(1, 64, doc="Patch extent along one axis."),
                            min_len=1,
                            max_len=2,
                            default=[4, 4],
                            doc="Transformer patch size (pitch, frames); one value for sequences.",
                        ),
                        "mlp_ratio": FloatField(0, 16, min_exclusive=True, default=4.0, doc="Transformer MLP width over hidden_dim."),
                        "position_embedding": ChoiceField(
                            ["sinusoidal", "learned"], default="sinusoidal", doc="Transformer patch-position embedding."
                        ),
                    },
                    optional=True,
                    include_when=("model.generative.type", "diffusion"),
                    doc="Diffusion generator.",
                ),
                "audio_encoder": Section(
                    {
                        "type": ChoiceField(
                            ["mel_cnn", "wav2vec2", "clap", "precomputed"],
                            default="mel_cnn",
                            doc="Audio encoder architecture.",
                        ),
                        "pretrained_model": StrField(
                            default=None,
                            nullable=True,
                            doc="Wav2Vec2 / CLAP: a directory written by `chroma-keras convert --model wav2vec2|clap_audio`, "
                            "or a pretrained preset name (wav2vec2_base, clap_audio_larger_music; randomly initialised); "
                            "null builds a small backbone (Wav2Vec2: from the size keys below).",
                        ),
                        "hidden_dim": IntField(1, 65536, default=512, doc="Width of the audio embedding."),
                        "n_fft": IntField(16, 65536, default=2048, doc="Mel-CNN: STFT window length in samples."),
                        "hop_length": IntField(1, 65536, default=512, doc="Mel-CNN: STFT hop in samples."),
                        "n_mels": IntField(1, 512, default=64, doc="Mel-CNN: mel bands."),
                        "top_db": FloatField(1, 200, default=80.0, doc="Mel-CNN: dynamic range kept below the peak, in dB."),
                        "filters": ListField(
                            IntField(1, 4096, doc="Channels."),
                            min_len=1,
                            max_len=6,
                            default=[32, 64, 128],
                            doc="Mel-CNN: channels of each conv block.",
                        ),
                        "dropout": FloatField(
                            0, 1, max_exclusive=True, default=0.1, doc="Mel-CNN, Wav2Vec2: dropout before the projection."
                        ),
                        "freeze_backbone": BoolField(
                            default=False, doc="Wav2Vec2, CLAP: keep the backbone's weights fixed; only the projection trains."
                        ),
                        "conv_channels": IntField(
                            1, 4096, default=256, doc="Wav2Vec2 from scratch: channels of the 7 feature-extractor convs."
                        ),
                        "transformer_dim": IntField(
                            16, 4096, default=256, doc="Wav2Vec2 from scratch: transformer width; a multiple of 16 and of num_heads."
                        ),
                        "num_layers": IntField(1, 48, default=4, doc="Wav2Vec2 from scratch: transformer layers."),
                        "num_heads": IntField(1, 64, default=4, doc="Wav2Vec2 from scratch: attention heads."),
                        "intermediate_dim": IntField(1, 65536, default=1024, doc="Wav2Vec2 from scratch: feed-forward width."),
                        "max_length_s": FloatField(
                            0, 600, min_exclusive=True, default=10.0, doc="CLAP: clip length the front end fits each waveform to, in seconds."
                        ),
                        "padding": ChoiceField(
                            ["repeatpad", "repeat", "pad"], default="repeatpad", doc="CLAP: how a shorter clip is filled to max_length_s."
                        ),
                    },
                    optional=True,
                    doc="Audio encoder.",
                ),
                "midi_encoder": Section(
                    {
                        "type": ChoiceField(
                            ["pianoroll_cnn", "event_transformer", "music_transformer"],
                            default="pianoroll_cnn",
                            doc="MIDI encoder architecture.",
                        ),
                        "vocab_size": IntField(
                            1,
                            10_000_000,
                            default=None,
                            nullable=True,
                            doc="Token vocabulary size; null takes it from the tokenizer.",
                        ),
                        "hidden_dim": IntField(1, 65536, default=512, doc="Width of the MIDI embedding."),
                        "filters": ListField(
                            IntField(1, 4096, doc="Channels."),
                            min_len=3,
                            max_len=3,
                            default=[32, 64, 128],
                            doc="Channels of the piano-roll CNN's three conv blocks.",
                        ),
                        "num_layers": IntField(1, 64, default=2, doc="Transformer layers (token encoders)."),
                        "num_heads": IntField(1, 64, default=4, doc="Attention heads; must divide hidden_dim."),
                        "intermediate_dim": IntField(
                            1, 65536, default=None, nullable=True, doc="Feed-forward width; null is 4 x hidden_dim."
                        ),
                        "dropout": FloatField(0, 1, max_exclusive=True, default=0.1, doc="Dropout in the transformer."),
                        "max_sequence_length": IntField(
                            1, 1_000_000, default=None, nullable=True, doc="Longest token sequence; null is preprocessing.midi.max_events."
                        ),
                        "max_relative_position": IntField(
                            1, 1_000_000, default=None, nullable=True, doc="Music Transformer relative-distance clip; null is the sequence length."
                        ),
                        "use_bar_embedding": BoolField(default=True, doc="Music Transformer: add bar-index and position-in-bar embeddings (REMI)."),
                        "max_bars": IntField(1, 100_000, default=64, doc="Bars with their own bar-index embedding."),
                    },
                    optional=True,
                    doc="MIDI encoder.",
                ),
                "text_encoder": Section(
                    {
                        "type": ChoiceField(["bert", "precomputed"], default="bert", doc="Text encoder architecture."),
                        "pretrained_model": StrField(
                            default=None,
                            nullable=True,
                            doc="Pretrained BERT backbone: all_minilm_l6_v2 or a directory written by "
                            "`chroma-keras convert --model minilm`; the text is then tokenized with its WordPiece "
                            "vocabulary. null: a randomly initialised byte-level BERT of the sizes below.",
                        ),
                        "freeze_backbone": BoolField(
                            default=False, doc="Keep the pretrained backbone's weights fixed (only the projection trains)."
                        ),
                        "hidden_dim": IntField(1, 65536, default=384, doc="Width of the text embedding."),
                        "num_layers": IntField(1, 64, default=2, doc="BERT: transformer layers."),
                        "num_heads": IntField(1, 64, default=4, doc="BERT: attention heads; must divide transformer_dim."),
                        "transformer_dim": IntField(1, 65536, default=256, doc="BERT: width inside the transformer."),
                        "intermediate_dim": IntField(1, 262144, default=1024, doc="BERT: feed-forward width."),
                        "dropout": FloatField(0, 1, max_exclusive=True, default=0.1, doc="BERT: dropout in the transformer."),
                        "max_sequence_length": IntField(1, 1_000_000, default=512, doc="BERT: longest byte sequence."),
                    },
                    optional=True,
                    doc="Text (lyrics, concept) encoder.",
                ),
                "scorer": Section(
                    {
                        "fusion_dim": IntField(1, 65536, default=512, doc="Width of the fused vector."),
                        "head_dim": IntField(1, 65536, default=256, doc="Width of the shared layer before the heads."),
                        "dropout": FloatField(0, 1, max_exclusive=True, default=0.1, doc="Dropout before the heads."),
                        "modality_dropout": FloatField(
                            0, 1, max_exclusive=True, default=0.1, doc="Training-time probability of dropping a present modality."
                        ),
                        "exempt_modalities": ListField(
                            ChoiceField(["text", "audio", "midi"], doc="A modality."),
                            default=[],
                            doc="Modalities never dropped by modality dropout.",
                        ),
                        "loss_weights": Section(
                            {
                                "temporal": FloatField(0, 100, default=1.0, doc="Weight of the temporal KL."),
                                "spatial": FloatField(0, 100, default=1.0, doc="Weight of the spatial KL."),
                                "ontological": FloatField(0, 100, default=1.0, doc="Weight of the ontological KL."),
                                "confidence": FloatField(0, 100, default=0.5, doc="Weight of the confidence BCE."),
                                "colour": FloatField(0, 100, default=0.5, doc="Weight of the colour cross-entropy."),
                            },
                            doc="Weights of the scorer's loss terms.",
                        ),
                        "encoder_learning_rate_multiplier": FloatField(
                            0, 10, default=1.0, doc="Encoders learn at this multiple of training.learning_rate."
                        ),
                        "gradient_norm_every_n_steps": IntField(
                            0,
                            1_000_000,
                            default=0,
                            doc="Log each encoder's gradient norm on a probe batch every N steps and at epoch ends (0: off).",
                        ),
                        "gradient_imbalance_ratio": FloatField(
                            1.0, 1e9, default=10.0, doc="Warn when one encoder's gradient norm exceeds another's by this factor."
                        ),
                    },
                    optional=True,
                    doc="Chromatic scorer heads, loss and fusion width.",
                ),
                "fusion": Section(
                    {
                        "strategy": ChoiceField(
                            ["early", "late", "cross_attention", "gated"],
                            default="late",
                            doc="How modality embeddings are combined.",
                        ),
                        "attention_heads": IntField(1, 64, default=4, doc="Heads of cross-attention fusion."),
                        "dropout": FloatField(0, 1, max_exclusive=True, default=0.1, doc="Dropout in the fusion block."),
                    },
                    optional=True,
                    doc="Fusion of several modality encoders.",
                ),
            },
            doc="Model architecture.",
        ),
        "preprocessing": Section(
            {
                "audio": Section(
                    {
                        "sample_rate": ChoiceField(
                            [16000, 22050, 24000, 32000, 44100, 48000], default=44100, doc="Audio sample rate in Hz."
                        ),
                        "duration": FloatField(
                            0, 600, min_exclusive=True, default=30.0, doc="Length of an audio segment in seconds."
                        ),
                        "augmentations": Section(
                            {
                                "gain_db": FloatField(0, 60, default=0.0, doc="Maximum random gain change in dB."),
                                "noise_snr_db": FloatField(
                                    0,
                                    120,
                                    default=None,
                                    nullable=True,
                                    doc="SNR in dB of added noise; null adds none.",
                                ),
                                "pitch_shift_semitones": FloatField(
                                    0, 12, default=0.0, doc="Maximum random pitch shift in semitones."
                                ),
                                "time_stretch": FloatField(
                                    0, 0.5, default=0.0, doc="Maximum random relative tempo change."
                                ),
                            },
                            doc="Random audio augmentations in training.",
                        ),
                    },
                    optional=True,
                    doc="Audio loading.",
                ),
                "midi": Section(
                    {
                        "tokenization": ChoiceField(
                            ["pianoroll", "remi", "cpword"], default="pianoroll", doc="MIDI representation."
                        ),
                        "max_events": IntField(
                            1, 1_000_000, default=1024, doc="Maximum tokens per segment for token encodings."
                        ),
                        "piano_roll": Section(
                            {
                                "lowest_pitch": IntField(0, 127, default=24, doc="MIDI pitch of the roll's first row."),
                                "num_pitches": IntField(1, 128, default=72, doc="Rows (pitches) of the roll."),
                                "frames_per_second": FloatField(
                                    0,
                                    1000,
                                    min_exclusive=True,
                                    default=8.0,
                                    doc="Time resolution of the roll in frames per second.",
                                ),
                                "num_frames": IntField(1, 100000, default=128, doc="Columns (frames) of the roll."),
                            },
                            doc="Piano-roll geometry.",
                        ),
                        "augmentations": Section(
                            {
                                "transpose_semitones": IntField(
                                    0, 12, default=0, doc="Maximum random transposition in semitones."
                                ),
                                "velocity_jitter": FloatField(
                                    0, 1, default=0.0, doc="Maximum random relative velocity change."
                                ),
                                "quantize_steps_per_quarter": IntField(
                                    0, 64, default=0, doc="Snap note times to this grid per quarter note; 0 disables it."
                                ),
                                "out_of_range": ChoiceField(
                                    ["fold", "drop"],
                                    default="fold",
                                    doc="Transposed notes outside 0..127: fold back by octaves, or drop them.",
                                ),
                            },
                            doc="Random MIDI augmentations in training.",
                        ),
                        "tokens": Section(
                            {
                                "cpword_layout": ChoiceField(
                                    ["compound", "separate"],
                                    default="compound",
                                    doc="CPWord ids as [events, fields] (compound) or flattened into one sequence.",
                                ),
                                "positions_per_beat": IntField(1, 32, default=8, doc="Time grid of REMI/CPWord positions."),
                                "num_velocities": IntField(1, 127, default=32, doc="Velocity bins of the token vocabulary."),
                                "use_tempos": BoolField(default=True, doc="Emit tempo tokens."),
                            },
                            doc="miditok token settings (tokenization remi or cpword).",
                        ),
                    },
                    doc="MIDI loading.",
                ),
            },
            doc="Turning data files into model inputs.",
        ),
        "training": Section(
            {
                "batch_size": IntField(1, 65536, default=32, doc="Examples per training batch."),
                "epochs": IntField(1, 100000, default=40, doc="Training epochs."),
                "learning_rate": FloatField(
                    0, 10, min_exclusive=True, default=0.001, doc="Optimizer learning rate."
                ),
                "optimizer": ChoiceField(["adam", "adamw", "sgd"], default="adam", doc="Optimizer."),
                "split": ChoiceField(
                    ["song", "segment"],
                    default="song",
                    doc="Split unit: whole songs (no leakage) or segments.",
                ),
                "validation_fraction": FloatField(0, 0.9, default=0.15, doc="Fraction held out for validation."),
                "test_fraction": FloatField(0, 0.9, default=0.15, doc="Fraction held out for testing."),
                "seed": IntField(0, 2**31 - 1, default=0, doc="Random seed of splits, shuffling and init."),
                "gradient_accumulation_steps": IntField(
                    1, 4096, default=1, doc="Micro-batches whose gradients are summed into one update."
                ),
                "lr_schedule": ChoiceField(
                    ["constant", "cosine"],
                    default="constant",
                    doc="Learning-rate schedule: constant, or cosine decay to 1% over the run (with optional warmup).",
                ),
                "warmup_steps": IntField(
                    0, 10**9, default=0, doc="Steps of linear warmup from 0 before the cosine decay (cosine only)."
                ),
                "early_stopping_patience": IntField(
                    0, 100000, default=0, doc="Epochs without improvement before stopping; 0 disables it."
                ),
                "reduce_lr_patience": IntField(
                    0, 100000, default=0, doc="Epochs without improvement before halving the learning rate; 0 disables it."
                ),
            },
            doc="Training loop.",
        ),
        "generation": Section(
            {
                "sampling": Section(
                    {
                        "temperature": FloatField(
                            0, 100, min_exclusive=True, default=1.0, doc="Sampling temperature."
                        ),
                        "top_k": IntField(
                            0, 1_000_000, default=0, doc="Keep only the k most likely tokens; 0 disables it."
                        ),
                        "top_p": FloatField(
                            0, 1, min_exclusive=True, default=1.0, doc="Nucleus sampling mass; 1 disables it."
                        ),
                        "num_steps": IntField(1, 10000, default=50, doc="Denoising or decoding steps."),
                        "strategy": ChoiceField(
                            ["greedy", "temperature", "top_k", "top_p", "top_k_top_p", "beam"],
                            default="top_p",
                            doc="Token decoding strategy of autoregressive models (see docs/sampling.md).",
                        ),
                        "repetition_penalty": FloatField(
                            0, 100, min_exclusive=True, default=1.0, doc="CTRL repetition penalty on tokens already present; 1 disables it."
                        ),
                        "num_beams": IntField(1, 256, default=4, doc="Beams of strategy: beam."),
                        "length_penalty": FloatField(
                            -10, 10, default=1.0, doc="Beam score = log p / length ** length_penalty; > 0 favours longer sequences."
                        ),
                        "max_length": IntField(
                            2, 65536, default=256, doc="Longest sequence an autoregressive model generates, prompt included."
                        ),
                        "threshold": FloatField(
                            0,
                            1,
                            min_exclusive=True,
                            max_exclusive=True,
                            default=0.5,
                            doc="Probability above which a piano-roll cell is a note (decoding: threshold).",
                        ),
                        "decoding": ChoiceField(
                            ["expected_count", "threshold", "bernoulli"],
                            default="expected_count",
                            doc="How note probabilities become notes: the round(sum p) most likely cells, "
                            "cells above threshold, or independent Bernoulli draws.",
                        ),
                        "guidance_scale": FloatField(
                            0, 100, default=1.0, doc="Classifier-free guidance scale; 1 disables it."
                        ),
                        "scheduler": ChoiceField(["ddim", "ddpm"], default="ddim", doc="Diffusion sampler."),
                        "timestep_spacing": ChoiceField(
                            ["linspace", "leading", "trailing"], default="leading", doc="How the sampler picks its timesteps."
                        ),
                        "eta": FloatField(0, 1, default=0.0, doc="DDIM noise: 0 deterministic, 1 DDPM-like."),
                        "clip_sample": BoolField(default=True, doc="Clip the predicted clean sample to clip_sample_range."),
                        "clip_sample_range": FloatField(
                            0, 1000, min_exclusive=True, default=1.0, doc="Bound of the clipped clean sample."
                        ),
                    },
                    doc="Sampling parameters.",
                ),
            },
            doc="Generation defaults.",
        ),
    },
    doc="A preset.",
)


def iter_fields(section: Section = SCHEMA, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every ``(path, field_or_section)`` under ``section``, depth first, sections before their keys."""
    for name, field in section.fields.items():
        path = prefix + (name,)
        yield path, field
        if isinstance(field, Section):
            yield from iter_fields(field, path)


def _format_default(field) -> str:
    if isinstance(field, Section):
        if field.optional and field.include_when:
            path, value = field.include_when
            return f"absent unless given or `{path}` is `{value}`"
        return "absent unless given" if field.optional else "always present"
    if field.required:
        return "**required**"
    value = field.default
    if value is None:
        return "`null`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f'`"{value}"`' if value == "" else f"`{value}`"
    if isinstance(value, list):
        return "`[" + ", ".join(format_number(v) for v in value) + "]`"
    return f"`{format_number(value)}`"


def render_markdown(section: Section = SCHEMA) -> str:
    """The schema as markdown: one table per top-level section (pasted into docs/presets.md)."""
    top_rows = []
    blocks = []
    for name, field in section.fields.items():
        if not isinstance(field, Section):
            top_rows.append((name, field))
            continue
        rows = [((name,), field)] + [((name,) + p, f) for p, f in iter_fields(field)]
        blocks.append((name, field, rows))

    def table(rows) -> list[str]:
        lines = ["| Key | Allowed | Default | Description |", "| --- | --- | --- | --- |"]
        for path, field in rows:
            key = ".".join(path)
            allowed = "section" if isinstance(field, Section) else field.describe().replace("|", "\\|")
            lines.append(f"| `{key}` | {allowed} | {_format_default(field)} | {field.doc} |")
        return lines

    out = ["### Top level", "", *table([((n,), f) for n, f in top_rows])]
    for name, field, rows in blocks:
        out += ["", f"### `{name}`", "", *table(rows)]
    return "\n".join(out) + "\n"
