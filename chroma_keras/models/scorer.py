"""``Scorer``: modality encoders + a fusion strategy + chromatic heads (the fitness function).

The scorer predicts, for a segment, a distribution over the three modes of each
axis (temporal, spatial, ontological), a confidence that the segment has a
chromatic identity at all (0 for Black/White), and the colour (9-way). Its
``score()`` accepts whatever the user has — MIDI bytes, a path, a piano roll or
a full batch — and modalities it is not given are treated as absent (the fusion
uses its learned null embeddings), so MIDI-only scoring works on a multimodal
scorer.

Loss (weights from ``model.scorer.loss_weights``)::

    sum_axis w_axis * KL(target_axis || p_axis)      (rows with labels; targets normalised to sum 1)
    + w_confidence * BCE(confidence_target, p_confidence)
    + w_colour * CE(colour_index, p_colour)          (rows with a colour)
"""

from __future__ import annotations

import pathlib
from typing import Mapping

import keras
import numpy as np
from keras import ops

from chroma_keras import modes
from chroma_keras.data import keys
from chroma_keras.errors import ModelInputError, PresetError
from chroma_keras.models.encoders.base import build_encoder
from chroma_keras.models.fusion.base import build_fusion
from chroma_keras.training.macro_f1 import MacroF1

HEADS = ("temporal", "spatial", "ontological")
# The outputs Scorer.score returns.
SCORE_OUTPUTS = (*HEADS, "confidence", "colour", "embedding")
DEFAULT_LOSS_WEIGHTS = {"temporal": 1.0, "spatial": 1.0, "ontological": 1.0, "confidence": 0.5, "colour": 0.5}
_EPSILON = 1e-7


@keras.saving.register_keras_serializable(package="chroma_keras")
class Scorer(keras.Model):
    """Multimodal chromatic scorer.

    Args:
        encoders: ``{modality: encoder layer}`` for a subset of ``keys.MODALITIES``.
        fusion: a ``MultimodalFusion`` over those modalities.
        head_dim: width of the shared layer before the heads.
        dropout: dropout before the heads.
        loss_weights: weights of ``temporal``, ``spatial``, ``ontological``,
            ``confidence`` and ``colour`` (missing keys: :data:`DEFAULT_LOSS_WEIGHTS`).
        **kwargs: ``keras.Model`` arguments.

    Call arguments:
        inputs: a batch dict (``data.keys`` names). ``modality_mask`` is taken
            from the batch when present, else built from which modality keys
            are present.

    Returns:
        dict: ``temporal``/``spatial``/``ontological`` ``[batch, 3]`` probabilities,
        ``confidence`` ``[batch, 1]``, ``colour`` ``[batch, 9]``, their ``*_logits``,
        and ``embedding`` (the fused vector, for Fréchet distances).
    """

    def __init__(self, encoders: Mapping, fusion, head_dim=256, dropout=0.1, loss_weights=None, encoder_learning_rate_multiplier=1.0, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= float(encoder_learning_rate_multiplier):
            raise ModelInputError(f"encoder_learning_rate_multiplier must be >= 0. Received: {encoder_learning_rate_multiplier!r}")
        self.encoder_learning_rate_multiplier = float(encoder_learning_rate_multiplier)
        unknown = [m for m in encoders if m not in keys.MODALITIES]
        if unknown or not encoders:
            raise ModelInputError(f"encoders must be a non-empty dict over {list(keys.MODALITIES)}. Received: {list(encoders)}")
        # Keep modality order fixed (keys.MODALITIES), whatever the dict order.
        self.modalities = tuple(m for m in keys.MODALITIES if m in encoders)
        self.encoders = {m: encoders[m] for m in self.modalities}
        self.fusion = fusion
        self.head_dim = int(head_dim)
        self.dropout_rate = float(dropout)
        self.loss_weights = {**DEFAULT_LOSS_WEIGHTS, **(loss_weights or {})}
        unknown = sorted(set(self.loss_weights) - set(DEFAULT_LOSS_WEIGHTS))
        if unknown:
            raise ModelInputError(f"unknown loss_weights keys {unknown}; expected among {list(DEFAULT_LOSS_WEIGHTS)}")
        self.hidden = keras.layers.Dense(self.head_dim, activation="gelu", name="head_hidden")
        self.head_dropout = keras.layers.Dropout(self.dropout_rate, name="head_dropout")
        self.heads = {axis: keras.layers.Dense(3, name=f"{axis}_head") for axis in HEADS}
        self.confidence_head = keras.layers.Dense(1, name="confidence_head")
        self.colour_head = keras.layers.Dense(len(modes.COLOURS), name="colour_head")
        self.trackers = {name: keras.metrics.Mean(name=f"{name}_loss") for name in DEFAULT_LOSS_WEIGHTS}
        self.accuracy = {axis: keras.metrics.Mean(name=f"{axis}_accuracy") for axis in HEADS}
        self.mean_mode_accuracy = keras.metrics.Mean(name="mean_mode_accuracy")
        self.colour_accuracy = keras.metrics.Mean(name="colour_accuracy")
        self.colour_f1 = MacroF1(len(modes.COLOURS), name="colour_macro_f1")
        self.preset_config = None

    # === Forward ===

    def _modality_mask(self, inputs):
        if keys.MODALITY_MASK in inputs:
            return ops.cast(inputs[keys.MODALITY_MASK], "float32")
        batch = _batch_size(inputs)
        columns = []
        for modality in keys.MODALITIES:
            present = modality in self.encoders and _has_inputs(self.encoders[modality], inputs)
            columns.append(ops.full((batch, 1), 1.0 if present else 0.0))
        return ops.concatenate(columns, axis=1)

    def call(self, inputs, training=False):
        batch = _batch_size(inputs)
        encoded = {}
        for modality, encoder in self.encoders.items():
            if _has_inputs(encoder, inputs):
                encoded[modality] = encoder(inputs, training=training)
            else:  # absent from this call: the fusion's null embedding stands in
                width = encoder.hidden_dim
                encoded[modality] = {
                    "embedding": ops.zeros((batch, width)),
                    "sequence": ops.zeros((batch, 1, width)),
                    "sequence_mask": ops.zeros((batch, 1)),
                }
        fused = self.fusion(encoded, self._modality_mask(inputs), training=training)
        h = self.head_dropout(self.hidden(fused), training=training)
        out = {"embedding": fused}
        for axis in HEADS:
            logits = self.heads[axis](h)
            out[f"{axis}_logits"] = logits
            out[axis] = ops.softmax(logits, axis=-1)
        out["confidence_logits"] = self.confidence_head(h)
        out["confidence"] = ops.sigmoid(out["confidence_logits"])
        out["colour_logits"] = self.colour_head(h)
        out["colour"] = ops.softmax(out["colour_logits"], axis=-1)
        return out

    # === Loss and metrics ===

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return self.weighted_loss(x, y_pred, update_metrics=True)

    def weighted_loss(self, x, y_pred, update_metrics: bool = False):
        """The training loss of a batch: weighted per-axis KL, confidence BCE and colour cross-entropy.

        Args:
            x: a labelled batch dict (targets, confidence, colour index, optional label mask).
            y_pred: the scorer's outputs on ``x``.
            update_metrics: also update the loss trackers and accuracy metrics (as ``fit`` does);
                False keeps the call free of side effects (e.g. inside a gradient probe).
        """
        labelled = ops.cast(x[keys.LABEL_MASK], "float32") if keys.LABEL_MASK in x else None
        total = 0.0
        correct = []
        for axis in HEADS:
            target = ops.cast(x[keys.AXIS_TARGETS[axis]], "float32")
            mass = ops.sum(target, axis=-1)
            weight = ops.cast(mass > 0, "float32") if labelled is None else labelled * ops.cast(mass > 0, "float32")
            target = target / ops.maximum(mass, _EPSILON)[:, None]
            log_p = ops.log_softmax(ops.cast(y_pred[f"{axis}_logits"], "float32"), axis=-1)
            kl = ops.sum(target * (ops.log(ops.maximum(target, _EPSILON)) - log_p), axis=-1)
            loss = ops.sum(kl * weight) / ops.maximum(ops.sum(weight), 1.0)
            total = total + self.loss_weights[axis] * loss
            if update_metrics:
                self.trackers[axis].update_state(loss)
            # Accuracy on rows whose target names one mode (argmax is meaningful).
            definite = weight * ops.cast(ops.max(target, axis=-1) > 0.5, "float32")
            hit = ops.cast(ops.argmax(log_p, axis=-1) == ops.argmax(target, axis=-1), "float32")
            if update_metrics:
                self.accuracy[axis].update_state(hit, sample_weight=definite)
            correct.append((hit, definite))
        mean_hit = sum(h * d for h, d in correct) / ops.maximum(sum(d for _, d in correct), 1.0)
        if update_metrics:
            self.mean_mode_accuracy.update_state(mean_hit, sample_weight=ops.cast(sum(d for _, d in correct) > 0, "float32"))

        confidence = ops.cast(ops.reshape(x[keys.CONFIDENCE], (-1, 1)), "float32")
        conf_weight = labelled if labelled is not None else ops.ones_like(confidence[:, 0])
        bce = ops.binary_crossentropy(confidence, ops.cast(y_pred["confidence_logits"], "float32"), from_logits=True)
        bce = ops.reshape(bce, (-1,))
        conf_loss = ops.sum(bce * conf_weight) / ops.maximum(ops.sum(conf_weight), 1.0)
        total = total + self.loss_weights["confidence"] * conf_loss
        if update_metrics:
            self.trackers["confidence"].update_state(conf_loss)

        colour = ops.cast(x[keys.COLOUR_INDEX], "int32")
        has_colour = ops.cast(colour >= 0, "float32")
        safe_colour = ops.maximum(colour, 0)
        ce = ops.sparse_categorical_crossentropy(safe_colour, ops.cast(y_pred["colour_logits"], "float32"), from_logits=True)
        colour_loss = ops.sum(ce * has_colour) / ops.maximum(ops.sum(has_colour), 1.0)
        total = total + self.loss_weights["colour"] * colour_loss
        if update_metrics:
            self.trackers["colour"].update_state(colour_loss)
        predicted = ops.argmax(y_pred["colour_logits"], axis=-1)
        if update_metrics:
            self.colour_accuracy.update_state(ops.cast(predicted == safe_colour, "float32"), sample_weight=has_colour)
            self.colour_f1.update_state(safe_colour, predicted, sample_weight=has_colour)
        if self.losses:
            total = total + ops.sum(self.losses)
        return total

    def compile(self, optimizer=None, **kwargs):
        """Compile with Adam(1e-3) unless an optimizer is given (the loss is the model's own).

        With ``encoder_learning_rate_multiplier != 1`` the optimizer is converted to one that
        updates the encoders' variables at that multiple of its learning rate
        (:func:`chroma_keras.training.lr_multipliers.with_learning_rate_multipliers`).
        """
        optimizer = optimizer or keras.optimizers.Adam(1e-3)
        if self.encoder_learning_rate_multiplier != 1.0:
            from chroma_keras.training.lr_multipliers import with_learning_rate_multipliers

            optimizer = with_learning_rate_multipliers(optimizer, self.encoder_learning_rate_multipliers)
        super().compile(optimizer=optimizer, **kwargs)

    def encoder_learning_rate_multipliers(self):
        """``[(variable, multiplier)]`` for every encoder variable (``model.scorer.encoder_learning_rate_multiplier``)."""
        return [(v, self.encoder_learning_rate_multiplier) for e in self.encoders.values() for v in e.trainable_variables]

    # === Scoring ===

    def score(self, inputs, batch_size: int = 64) -> dict[str, np.ndarray]:
        """Rate segments for every axis and colour.

        Args:
            inputs: a batch dict; or files — MIDI bytes, a MIDI or audio path (audio by suffix:
                ``.wav``, ``.flac``, ``.ogg``, ``.mp3``, ``.aiff``), a piano roll ``[pitches, frames]``,
                or a list / array of these. Each file fills one modality of its row; the
                others count as absent (the fusion's null embeddings stand in).
            batch_size: rows per forward pass.

        Returns:
            NumPy dict: ``temporal``, ``spatial``, ``ontological`` ``[n, 3]``,
            ``confidence`` ``[n, 1]``, ``colour`` ``[n, 9]``, ``embedding``.

        The forward passes run through Keras' predict function (``predict_on_batch``):
        XLA-compiled on JAX and TensorFlow unless the model was compiled with
        ``jit_compile=False``, eager without gradient tracking on torch. The first call
        of a given size compiles (seconds); later calls of that size reuse it, which is
        what repeated scoring (evolutionary search) needs.
        """
        read = {k for encoder in self.encoders.values() for k in encoder.input_keys} | {keys.MODALITY_MASK}
        batch = {k: v for k, v in self._as_batch(inputs).items() if k in read}
        n = _batch_size_np(batch)
        if int(batch_size) < 1:
            raise ModelInputError(f"score: batch_size must be >= 1. Received: batch_size={batch_size!r}")
        # Every chunk gets one shape (the last one is padded), so the compiled predict
        # function is traced once per call size and reused across calls of that size.
        size = min(int(batch_size), n)
        parts = []
        for start in range(0, n, size):
            chunk = {k: _pad_rows(v[start : start + size], size) for k, v in batch.items()}
            out = self.predict_on_batch(chunk)
            rows = min(size, n - start)
            parts.append({k: np.asarray(out[k])[:rows] for k in SCORE_OUTPUTS})
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def _as_batch(self, inputs) -> dict[str, np.ndarray]:
        if isinstance(inputs, Mapping):
            return {k: np.asarray(v) for k, v in inputs.items()}
        items = [inputs] if isinstance(inputs, (bytes, str, pathlib.Path)) else list(inputs)
        if isinstance(inputs, np.ndarray) and inputs.ndim == 2:
            items = [inputs]
        audio_rows = [i for i, item in enumerate(items) if is_audio_file(item)]
        midi_rows = [i for i in range(len(items)) if i not in set(audio_rows)]
        batch = {}
        if midi_rows:
            batch.update(self._rows_of("midi", len(items), midi_rows, self._midi_batch([items[i] for i in midi_rows])))
        if audio_rows:
            batch.update(self._rows_of("audio", len(items), audio_rows, self._audio_batch([items[i] for i in audio_rows])))
        if (audio_rows and midi_rows) or len(self.encoders) > 1:
            mask = np.zeros((len(items), len(keys.MODALITIES)), np.float32)
            mask[midi_rows, keys.MODALITIES.index("midi")] = 1.0
            mask[audio_rows, keys.MODALITIES.index("audio")] = 1.0
            batch[keys.MODALITY_MASK] = mask
        return batch

    def _rows_of(self, modality, total, rows, part):
        """Place a modality's arrays for ``rows`` into a batch of ``total`` rows (others: the preset's empty input)."""
        if len(rows) == total:
            return part
        full = example_inputs(self.preset_config or {}, [modality], batch_size=total)
        full.pop(keys.MODALITY_MASK)
        for key, values in part.items():
            full[key][rows] = values
        return full

    def _midi_batch(self, items) -> dict[str, np.ndarray]:
        if "midi" not in self.encoders:
            raise ModelInputError(
                f"this scorer has no MIDI encoder (its encoders: {list(self.encoders)}); "
                f"cannot score {_name(items[0])}. Pass a batch dict with its modalities."
            )
        encoder = self.encoders["midi"]
        if keys.PIANO_ROLL in encoder.input_keys:
            from chroma_keras.preprocessing.pianoroll import PianoRollSpec, midi_to_piano_roll

            spec = PianoRollSpec.from_config(self.preset_config or {})
            rolls = [
                np.asarray(item, np.float32) if isinstance(item, np.ndarray) else midi_to_piano_roll(item, spec)
                for item in items
            ]
            return {keys.PIANO_ROLL: np.stack(rolls)}
        from chroma_keras.preprocessing.midi_tokens import tokenize_midi_bytes, tokenizer_from_config

        tokenizer = tokenizer_from_config(self.preset_config or {})
        tokens = []
        for i, item in enumerate(items):
            data = pathlib.Path(item).read_bytes() if isinstance(item, (str, pathlib.Path)) else item
            tokens.append(tokenize_midi_bytes(data, tokenizer, source=str(item) if not isinstance(item, bytes) else f"input {i}"))
        return {
            keys.MIDI_TOKENS: np.stack([t.ids for t in tokens]).astype(np.int32),
            keys.MIDI_TOKEN_MASK: np.stack([t.mask for t in tokens]).astype(np.float32),
        }

    def _audio_batch(self, paths) -> dict[str, np.ndarray]:
        encoder = self.encoders.get("audio")
        if encoder is None or keys.AUDIO not in encoder.input_keys:
            what = "no audio encoder" if encoder is None else "an audio encoder that reads precomputed embeddings, not waveforms"
            raise ModelInputError(
                f"{paths[0]}: an audio file, but this scorer has {what} (its encoders: {list(self.encoders)}). "
                "Score audio with a scorer whose preset has model.audio_encoder.type: mel_cnn, wav2vec2 or clap."
            )
        from chroma_keras.preprocessing.audio import AudioSpec, load_audio_file, prepare_waveform

        spec = AudioSpec.from_config(self.preset_config or {})
        waves, masks = [], []
        for path in paths:
            waveform, rate = load_audio_file(path, sample_rate=None)
            wave, mask = prepare_waveform(waveform, rate, spec, source=str(path))
            waves.append(wave)
            masks.append(mask)
        return {keys.AUDIO: np.stack(waves), keys.AUDIO_MASK: np.stack(masks)}

    # === Presets and config ===

    @classmethod
    def from_preset_config(cls, config: Mapping) -> "Scorer":
        """Build a scorer from a resolved preset (encoders, fusion and ``model.scorer``)."""
        model_config = config["model"]
        modalities = [m for m, section in (("text", "text_encoder"), ("audio", "audio_encoder"), ("midi", "midi_encoder")) if model_config.get(section)]
        if not modalities:
            raise ModelInputError("a scorer preset needs at least one of model.text_encoder / audio_encoder / midi_encoder.")
        scorer_config = model_config.get("scorer") or {}
        encoders = {m: build_encoder(m, config) for m in modalities}
        fusion = build_fusion(
            config,
            modalities,
            hidden_dim=scorer_config.get("fusion_dim", 512),
            modality_dropout=scorer_config.get("modality_dropout", 0.0),
            exempt_modalities=scorer_config.get("exempt_modalities", []),
            seed=config["training"]["seed"],
        )
        model = cls(
            encoders,
            fusion,
            head_dim=scorer_config.get("head_dim", 256),
            dropout=scorer_config.get("dropout", 0.1),
            loss_weights=scorer_config.get("loss_weights"),
            encoder_learning_rate_multiplier=scorer_config.get("encoder_learning_rate_multiplier", 1.0),
        )
        model.preset_config = config
        # Build every weight now (as the zoo's other models do), so that weights load
        # into a fresh model and count_params() works before the first batch.
        model(example_inputs(config, model.modalities))
        return model

    def preset_overrides(self):
        """The preset keys to change when saving this scorer as a preset: none.

        A scorer is built from its resolved preset alone, so ``save_to_preset``
        writes ``self.preset_config`` unchanged.

        Raises:
            PresetError: when the scorer was not built from a preset (e.g. loaded
                from a ``.keras`` file), so there is no preset to write.
        """
        if self.preset_config is None:
            raise PresetError(
                "save_to_preset: this Scorer carries no preset config (it was not built by from_preset); "
                "save it with model.save('file.keras') instead."
            )
        return {}

    def get_config(self):
        config = super().get_config()
        config.update(
            encoders={m: keras.saving.serialize_keras_object(e) for m, e in self.encoders.items()},
            fusion=keras.saving.serialize_keras_object(self.fusion),
            head_dim=self.head_dim,
            dropout=self.dropout_rate,
            loss_weights=dict(self.loss_weights),
            encoder_learning_rate_multiplier=self.encoder_learning_rate_multiplier,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoders"] = {m: keras.saving.deserialize_keras_object(e) for m, e in config["encoders"].items()}
        config["fusion"] = keras.saving.deserialize_keras_object(config["fusion"])
        return cls(**config)


def example_inputs(config: Mapping, modalities, batch_size: int = 1) -> dict[str, np.ndarray]:
    """A zero batch with the input arrays a preset's scorer reads, shaped as its preprocessing makes them.

    Modalities read from precomputed embeddings are left out: their width comes
    from the data, not the preset.

    Args:
        config: a resolved preset config.
        modalities: the modalities to include.
        batch_size: rows of the batch.

    Returns:
        A dict keyed by :mod:`chroma_keras.data.keys` names, with all modalities present.
    """
    model_config, batch = config["model"], {}
    if "midi" in modalities:
        if (config["preprocessing"].get("midi") or {}).get("tokenization", "pianoroll") == "pianoroll":
            from chroma_keras.preprocessing.pianoroll import PianoRollSpec

            spec = PianoRollSpec.from_config(config)
            batch[keys.PIANO_ROLL] = np.zeros((batch_size, spec.num_pitches, spec.num_frames), np.float32)
        else:
            from chroma_keras.preprocessing.midi_tokens import tokenizer_from_config

            tokenizer = tokenizer_from_config(config)
            length = tokenizer.spec.max_events
            shape = (batch_size, length, len(tokenizer.field_sizes)) if tokenizer.spec.is_compound else (batch_size, length)
            batch[keys.MIDI_TOKENS] = np.full(shape, tokenizer.pad_id, np.int32)
            batch[keys.MIDI_TOKEN_MASK] = np.ones((batch_size, length), np.float32)
    if "audio" in modalities and model_config["audio_encoder"]["type"] != "precomputed":
        from chroma_keras.preprocessing.audio import AudioSpec

        num_samples = AudioSpec.from_config(config).num_samples
        batch[keys.AUDIO] = np.zeros((batch_size, num_samples), np.float32)
        batch[keys.AUDIO_MASK] = np.ones((batch_size, num_samples), np.float32)
    if "text" in modalities and model_config["text_encoder"]["type"] != "precomputed":
        from chroma_keras.preprocessing.text_tokens import text_sequence_length

        length = text_sequence_length(config)
        batch[keys.TEXT_IDS] = np.zeros((batch_size, length), np.int32)
        batch[keys.TEXT_MASK] = np.ones((batch_size, length), np.float32)
    batch[keys.MODALITY_MASK] = np.ones((batch_size, len(keys.MODALITIES)), np.float32)
    return batch


# Files with these suffixes are scored as audio; anything else given as a path is read as MIDI.
AUDIO_FILE_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")


def is_audio_file(item) -> bool:
    """Whether ``item`` is a path to an audio file (by its suffix, see ``AUDIO_FILE_SUFFIXES``)."""
    return isinstance(item, (str, pathlib.Path)) and pathlib.Path(item).suffix.lower() in AUDIO_FILE_SUFFIXES


def _name(item) -> str:
    return str(item) if isinstance(item, (str, pathlib.Path)) else f"a {type(item).__name__} input"


def _has_inputs(encoder, inputs) -> bool:
    return any(k in inputs for k in encoder.input_keys)


def _batch_size(inputs):
    for value in inputs.values():
        return ops.shape(value)[0]
    raise ModelInputError("empty input dict; expected at least one modality key.")


def _pad_rows(array: np.ndarray, rows: int) -> np.ndarray:
    """``array`` with zero rows appended up to ``rows`` (zero inputs give finite outputs, which are cut off)."""
    missing = rows - len(array)
    if missing <= 0:
        return array
    return np.concatenate([array, np.zeros((missing, *array.shape[1:]), array.dtype)])


def _batch_size_np(batch) -> int:
    sizes = {len(v) for v in batch.values()}
    if len(sizes) != 1:
        raise ModelInputError(f"inputs have different batch sizes: { {k: len(v) for k, v in batch.items()} }")
    return sizes.pop()
