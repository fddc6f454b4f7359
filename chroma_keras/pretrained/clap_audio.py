"""CLAP's audio branch: the HTS-AT Swin-transformer audio encoder and its projection head, in Keras 3.

The model takes the log-mel features :mod:`.clap_features` computes
(``[batch, channels, frames, mels]``: one channel, or four with feature fusion)
and returns the pooled audio embedding and its projection into CLAP's joint
audio-text space. Registered as the pretrained architecture ``"clap_audio"``;
:func:`load_state_dict` converts a Hugging Face ``ClapModel`` (or
``ClapAudioModelWithProjection``) checkpoint.

The forward pass, step by step (``R = spec_size // num_mel_bins``):

1. BatchNorm over the mel axis (inference: running statistics).
2. Frames are resampled to ``spec_size * R`` with bicubic interpolation
   (``align_corners=True``) when fewer; more frames are an error.
3. The ``[frames, mels]`` map is cut into ``R`` consecutive time chunks that
   are stacked along the frequency axis: a ``spec_size x spec_size`` image.
4. Patch embedding, then Swin stages (window attention, shifted windows on odd
   blocks, patch merging between stages), a final LayerNorm.
5. ``pooler_output`` is the mean over all final tokens; ``audio_embeds`` is
   ``Linear -> act -> Linear`` of it (L2-normalise it for CLAP similarities).
"""

from __future__ import annotations

import copy

import keras
import numpy as np
from keras import ops

from chroma_keras.errors import CheckpointError, ModelInputError
from chroma_keras.pretrained.clap_swin_layers import (
    TORCH_NORM_EPSILON,
    ClapPatchEmbedding,
    PatchMerging,
    SwinBlock,
    activation_fn,
)
from chroma_keras.pretrained.registry import PretrainedArchitecture, register_architecture

ARCHITECTURE = "clap_audio"

# The audio config of Hugging Face's ClapAudioConfig defaults (laion/clap-htsat-unfused), in our key names
# (which are Hugging Face's, so a config.json maps one to one).
DEFAULT_CONFIG = {
    "spec_size": 256,
    "num_mel_bins": 64,
    "window_size": 8,
    "patch_size": 4,
    "patch_stride": [4, 4],
    "patch_embeds_hidden_size": 96,
    "depths": [2, 2, 6, 2],
    "num_attention_heads": [4, 8, 16, 32],
    "hidden_size": 768,
    "mlp_ratio": 4.0,
    "hidden_act": "gelu",
    "qkv_bias": True,
    "layer_norm_eps": 1e-5,
    "enable_patch_layer_norm": True,
    "enable_fusion": False,
    "aff_block_r": 4,
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.0,
    "drop_path_rate": 0.0,
    "projection_dim": 512,
    "projection_hidden_act": "relu",
}

PRESETS = {
    "clap_audio_larger_music": {
        "config": {**DEFAULT_CONFIG, "patch_embeds_hidden_size": 128, "depths": [2, 2, 12, 2], "hidden_size": 1024},
        "description": (
            "CLAP audio branch of laion/larger_clap_music: HTS-AT (Swin, 128-wide patches, depths 2-2-12-2, "
            "1024-d pooled) + 512-d projection; no feature fusion; 48 kHz, 10 s clips, 64 Slaney mels."
        ),
        "reference": "laion/larger_clap_music",
    },
}


def _pair(value):
    if isinstance(value, (int, np.integer)):
        return [int(value), int(value)]
    return [int(v) for v in value]


def validate_config(config: dict) -> dict:
    """A complete, checked copy of a ``clap_audio`` config (defaults filled in).

    Raises:
        CheckpointError: naming the key of an option the port does not support
            or of inconsistent sizes.
    """
    unknown = sorted(set(config) - set(DEFAULT_CONFIG))
    if unknown:
        raise CheckpointError(f"clap_audio config: unknown key(s) {unknown}; expected keys among {sorted(DEFAULT_CONFIG)}.")
    merged = {**copy.deepcopy(DEFAULT_CONFIG), **copy.deepcopy(dict(config))}
    merged["patch_stride"] = _pair(merged["patch_stride"])
    merged["patch_size"] = merged["patch_size"] if isinstance(merged["patch_size"], int) else _pair(merged["patch_size"])
    merged["depths"] = [int(d) for d in merged["depths"]]
    merged["num_attention_heads"] = [int(h) for h in merged["num_attention_heads"]]
    if len(merged["depths"]) != len(merged["num_attention_heads"]):
        raise CheckpointError(
            f"num_attention_heads={merged['num_attention_heads']}: needs one entry per stage of depths={merged['depths']}."
        )
    spec, mels = merged["spec_size"], merged["num_mel_bins"]
    if spec % mels or spec < mels:
        raise CheckpointError(f"spec_size={spec}: must be a multiple of num_mel_bins={mels} (the time chunks are stacked along frequency).")
    num_features = merged["patch_embeds_hidden_size"] * 2 ** (len(merged["depths"]) - 1)
    if merged["hidden_size"] != num_features:
        raise CheckpointError(
            f"hidden_size={merged['hidden_size']}: must equal patch_embeds_hidden_size * 2**(len(depths) - 1) = {num_features}."
        )
    activation_fn(merged["hidden_act"], "hidden_act")
    activation_fn(merged["projection_hidden_act"], "projection_hidden_act")
    final_height = stage_resolutions(merged)[-1][0]
    ratio = spec // mels
    if final_height < ratio or final_height % ratio:
        raise CheckpointError(
            f"depths={merged['depths']}: the last stage's grid height {final_height} must be a multiple of "
            f"spec_size // num_mel_bins = {ratio} (the pooled map is regrouped into that many time chunks)."
        )
    for resolution in stage_resolutions(merged):
        if min(resolution) < merged["window_size"]:
            raise CheckpointError(
                f"window_size={merged['window_size']}: a stage's token grid {tuple(resolution)} is smaller than the window; "
                f"the published model only supports grids at least as large as the window (lower window_size or raise spec_size)."
            )
    return merged


def stage_resolutions(config: dict) -> list[tuple[int, int]]:
    """The token grid ``(height, width)`` each Swin stage sees."""
    stride = _pair(config["patch_stride"])
    patch = _pair(config["patch_size"])
    grid = [
        (config["spec_size"] + 2 * ((k - s) // 2) - k) // s + 1 for k, s in zip(patch, stride)
    ]
    return [(grid[0] // 2**i, grid[1] // 2**i) for i in range(len(config["depths"]))]


def bicubic_matrix(in_size: int, out_size: int) -> np.ndarray:
    """The ``[out_size, in_size]`` matrix of 1-D bicubic resampling with ``align_corners=True``.

    Cubic convolution with ``A = -0.75`` and indices clamped to the edges, as
    PyTorch's ``interpolate(mode="bicubic", align_corners=True)`` does along
    one axis; positions and weights are computed in float32 like the reference
    does for float32 features, so they round the same way.
    """
    f32 = np.float32
    a = f32(-0.75)

    def near(x):  # |x| <= 1
        return ((a + f32(2)) * x - (a + f32(3))) * x * x + f32(1)

    def far(x):  # 1 < |x| < 2
        return ((a * x - f32(5) * a) * x + f32(8) * a) * x - f32(4) * a

    matrix = np.zeros((out_size, in_size), np.float64)
    scale = f32(in_size - 1) / f32(out_size - 1) if out_size > 1 else f32(0)
    for i in range(out_size):
        source = f32(scale * f32(i))
        base = min(int(np.floor(source)), in_size - 1)
        t = min(max(f32(source - f32(base)), f32(0)), f32(1))
        weights = (far(t + f32(1)), near(t), near(f32(1) - t), far(f32(2) - t))
        for offset, weight in zip((-1, 0, 1, 2), weights):
            matrix[i, min(max(base + offset, 0), in_size - 1)] += weight
    return matrix


@keras.saving.register_keras_serializable(package="chroma_keras")
class ClapAudioModel(keras.Model):
    """HTS-AT audio encoder + CLAP audio projection (the audio branch of a CLAP model).

    Args:
        config: a ``clap_audio`` config dict (Hugging Face ``ClapAudioConfig``
            key names; see :data:`DEFAULT_CONFIG`); missing keys take the defaults.
        **kwargs: ``keras.Model`` arguments (``name``, ``dtype``).

    Call arguments:
        inputs: log-mel features ``[batch, channels, frames, num_mel_bins]``
            (``channels`` 4 with fusion, else 1; a 3-D ``[batch, frames, mels]``
            is read as one channel), or a dict ``{"input_features": ...,
            "is_longer": [batch] bool}`` (``is_longer`` matters with fusion only).
        training: dropout / BatchNorm mode.
        output_hidden_states: also return the token grid after the patch
            embedding and after each stage.

    Returns:
        A dict with ``"audio_embeds"`` ``[batch, projection_dim]`` (not
        normalised), ``"pooler_output"`` ``[batch, hidden_size]``,
        ``"last_hidden_state"`` ``[batch, f, R * t, hidden_size]`` (the final
        normalised grid with its ``R`` time chunks put back side by side, as the
        reference model reports it), and with ``output_hidden_states`` a list
        ``"hidden_states"`` of ``[batch, height, width, channels]`` grids.

    Example:

    >>> tiny = {"spec_size": 32, "num_mel_bins": 8, "window_size": 2, "patch_embeds_hidden_size": 8,
    ...         "depths": [1, 1], "num_attention_heads": [2, 2], "hidden_size": 16, "projection_dim": 4}
    >>> model = ClapAudioModel(tiny)
    >>> tuple(model(np.zeros((2, 1, 101, 8), "float32"))["audio_embeds"].shape)
    (2, 4)
    """

    def __init__(self, config: dict | None = None, **kwargs):
        super().__init__(**kwargs)
        self.config = validate_config(config or {})
        c = self.config
        policy = self.dtype_policy
        self.freq_ratio = c["spec_size"] // c["num_mel_bins"]
        self.channels = 4 if c["enable_fusion"] else 1
        self.batch_norm = keras.layers.BatchNormalization(axis=-1, epsilon=TORCH_NORM_EPSILON, momentum=0.9, name="batch_norm", dtype=policy)
        self.patch_embed = ClapPatchEmbedding(
            c["patch_embeds_hidden_size"],
            c["spec_size"],
            c["patch_size"],
            c["patch_stride"],
            enable_fusion=c["enable_fusion"],
            aff_reduction=c["aff_block_r"],
            layer_norm=c["enable_patch_layer_norm"],
            name="patch_embed",
            dtype=policy,
        )
        self.resolutions = stage_resolutions(c)
        rates = np.linspace(0.0, c["drop_path_rate"], sum(c["depths"])).tolist()
        self.stages, self.mergers = [], []
        for i, (depth, heads) in enumerate(zip(c["depths"], c["num_attention_heads"])):
            dim = c["patch_embeds_hidden_size"] * 2**i
            blocks = [
                SwinBlock(
                    dim,
                    self.resolutions[i],
                    heads,
                    c["window_size"],
                    shift=0 if j % 2 == 0 else c["window_size"] // 2,
                    mlp_ratio=c["mlp_ratio"],
                    hidden_act=c["hidden_act"],
                    qkv_bias=c["qkv_bias"],
                    layer_norm_epsilon=c["layer_norm_eps"],
                    hidden_dropout=c["hidden_dropout_prob"],
                    attention_dropout=c["attention_probs_dropout_prob"],
                    drop_path=rates[sum(c["depths"][:i]) + j],
                    name=f"stage_{i}_block_{j}",
                    dtype=policy,
                )
                for j in range(depth)
            ]
            self.stages.append(blocks)
            if i < len(c["depths"]) - 1:
                self.mergers.append(PatchMerging(dim, self.resolutions[i], name=f"stage_{i}_merge", dtype=policy))
        self.norm = keras.layers.LayerNormalization(epsilon=TORCH_NORM_EPSILON, name="norm", dtype=policy)
        self.projection_1 = keras.layers.Dense(c["projection_dim"], name="projection_1", dtype=policy)
        self.projection_2 = keras.layers.Dense(c["projection_dim"], name="projection_2", dtype=policy)
        self._projection_act = activation_fn(c["projection_hidden_act"], "projection_hidden_act")
        self._resample_cache: dict[int, np.ndarray] = {}

    @property
    def max_frames(self) -> int:
        """The most feature frames the model accepts (``spec_size * spec_size // num_mel_bins``)."""
        return self.config["spec_size"] * self.freq_ratio

    def build(self, input_shape=None):
        c = self.config
        self.batch_norm.build((None, None, None, c["num_mel_bins"]))
        self.patch_embed.build((None, c["spec_size"], c["spec_size"], self.channels))
        for i, blocks in enumerate(self.stages):
            dim = c["patch_embeds_hidden_size"] * 2**i
            for block in blocks:
                block.build((None, None, dim))
            if i < len(self.mergers):
                self.mergers[i].build((None, None, dim))
        self.norm.build((None, None, c["hidden_size"]))
        self.projection_1.build((None, c["hidden_size"]))
        self.projection_2.build((None, c["projection_dim"]))
        self.built = True

    def _check_features(self, features):
        shape = tuple(features.shape)
        if len(shape) == 3:
            shape = (shape[0], 1) + shape[1:]
        if len(shape) != 4 or shape[1] != self.channels or shape[3] != self.config["num_mel_bins"]:
            raise ModelInputError(
                f"ClapAudioModel: input_features must be [batch, {self.channels}, frames, {self.config['num_mel_bins']}] "
                f"({'4 channels: fusion is enabled' if self.channels == 4 else 'one channel: fusion is disabled'}). "
                f"Received: shape={tuple(features.shape)}"
            )
        frames = shape[2]
        if frames is None:
            raise ModelInputError("ClapAudioModel: the number of feature frames must be static (known when the model is traced).")
        if frames > self.max_frames:
            raise ModelInputError(
                f"ClapAudioModel: input_features has {frames} frames; this config accepts at most {self.max_frames} "
                f"(spec_size * spec_size // num_mel_bins). Shorten the clip or raise hop_length."
            )
        return shape

    def _image(self, features, training):
        """Steps 1-3: normalise, resample the frames, fold time chunks into a square image ``[b, S, S, ch]``."""
        _, channels, frames, mels = self._check_features(features)
        x = ops.reshape(features, (-1, channels, frames, mels))
        x = self.batch_norm(x, training=training)
        width = self.max_frames
        if frames < width:
            if frames not in self._resample_cache:
                self._resample_cache[frames] = bicubic_matrix(frames, width).astype("float32")
            x = ops.einsum("of,bcfm->bcom", ops.cast(self._resample_cache[frames], x.dtype), x)
        ratio, chunk = self.freq_ratio, width // self.freq_ratio
        x = ops.reshape(x, (-1, channels, ratio, chunk, mels))
        x = ops.transpose(x, (0, 2, 4, 3, 1))  # [b, ratio, mels, chunk, ch]
        return ops.reshape(x, (-1, ratio * mels, chunk, channels))

    def call(self, inputs, training=False, output_hidden_states=False):
        is_longer = None
        if isinstance(inputs, dict):
            if "input_features" not in inputs:
                raise ModelInputError(f"ClapAudioModel: a dict input needs 'input_features'. Received keys: {sorted(inputs)}")
            is_longer = inputs.get("is_longer")
            features = inputs["input_features"]
        else:
            features = inputs
        if is_longer is not None:
            is_longer = ops.reshape(is_longer, (-1,))
        tokens = self.patch_embed(self._image(features, training), is_longer=is_longer, training=training)
        hidden_states = [self._grid(tokens, self.resolutions[0])]
        for i, blocks in enumerate(self.stages):
            for block in blocks:
                tokens = block(tokens, training=training)
            resolution = self.resolutions[i]
            if i < len(self.mergers):
                tokens = self.mergers[i](tokens)
                resolution = ((resolution[0] + 1) // 2, (resolution[1] + 1) // 2)
            hidden_states.append(self._grid(tokens, resolution))
        final = self.norm(tokens)
        pooled = ops.mean(final, axis=1)
        embeds = self.projection_2(self._projection_act(self.projection_1(pooled)))
        outputs = {"audio_embeds": embeds, "pooler_output": pooled, "last_hidden_state": self._chunks_side_by_side(final)}
        if output_hidden_states:
            outputs["hidden_states"] = hidden_states
        return outputs

    @staticmethod
    def _grid(tokens, resolution):
        return ops.reshape(tokens, (-1, resolution[0], resolution[1], tokens.shape[-1]))

    def _chunks_side_by_side(self, final):
        height, width = self.resolutions[-1]
        ratio = self.freq_ratio
        x = ops.reshape(final, (-1, ratio, height // ratio, width, final.shape[-1]))
        x = ops.transpose(x, (0, 2, 1, 3, 4))
        return ops.reshape(x, (-1, height // ratio, ratio * width, final.shape[-1]))

    def get_config(self):
        return {"config": copy.deepcopy(self.config), "name": self.name}


def build(config: dict) -> ClapAudioModel:
    """A randomly initialised :class:`ClapAudioModel` with every variable created.

    Args:
        config: a ``clap_audio`` config (see :data:`DEFAULT_CONFIG`).

    Returns:
        The built model.
    """
    model = ClapAudioModel(config, name="clap_audio")
    model.build()
    return model


# Hugging Face ClapAudioConfig keys that change nothing in the audio forward pass (training heads,
# generation settings and the bookkeeping PretrainedConfig writes).
_IGNORED_REFERENCE_KEYS = {
    "num_classes", "num_hidden_layers", "initializer_factor", "model_type", "architectures", "torch_dtype",
    "dtype", "transformers_version", "_name_or_path", "fusion_num_hidden_layers", "projection_hidden_size",
    "id2label", "label2id", "chunk_size_feed_forward", "output_hidden_states", "output_attentions",
    "return_dict", "use_return_dict", "problem_type", "tie_word_embeddings", "is_encoder_decoder", "is_decoder",
    "add_cross_attention", "cross_attention_hidden_size", "tokenizer_class", "prefix", "bos_token_id",
    "pad_token_id", "eos_token_id", "sep_token_id", "decoder_start_token_id", "task_specific_params",
    "finetuning_task", "torchscript", "pruned_heads", "tf_legacy_loss", "use_bfloat16", "_commit_hash",
    "_attn_implementation_autoset", "max_length", "min_length", "do_sample", "early_stopping", "num_beams",
    "num_beam_groups", "diversity_penalty", "temperature", "top_k", "top_p", "typical_p", "repetition_penalty",
    "length_penalty", "no_repeat_ngram_size", "encoder_no_repeat_ngram_size", "bad_words_ids",
    "num_return_sequences", "output_scores", "return_dict_in_generate", "forced_bos_token_id",
    "forced_eos_token_id", "remove_invalid_values", "exponential_decay_length_penalty", "suppress_tokens",
    "begin_suppress_tokens", "chunk_size", "base_model_tp_plan", "base_model_pp_plan", "tie_encoder_decoder",
    "use_cache", "gradient_checkpointing", "initializer_range", "_attn_implementation", "attn_implementation",
    "xla_device", "output_past",
}


def config_from_reference(reference: dict) -> dict:
    """Map a Hugging Face ``ClapConfig`` (or ``ClapAudioConfig``) ``config.json`` to a ``clap_audio`` config.

    A full ``ClapConfig`` contributes its ``audio_config`` plus the top-level
    ``projection_dim`` / ``projection_hidden_act`` (which override the audio
    config's, as Hugging Face does); absent keys take ``ClapAudioConfig``'s defaults.

    Raises:
        CheckpointError: naming the key of an option this port does not support.
    """
    if not isinstance(reference, dict):
        raise CheckpointError(f"config: expected a ClapConfig JSON object, got {type(reference).__name__}.")
    model_type = reference.get("model_type")
    if model_type == "clap" or "audio_config" in reference:
        audio = dict(reference.get("audio_config") or {})
        for key in ("projection_dim", "projection_hidden_act"):
            if key in reference:
                audio[key] = reference[key]
        prefix = "audio_config."
    elif model_type in (None, "clap_audio_model"):
        audio, prefix = dict(reference), ""
    else:
        raise CheckpointError(f"config model_type={model_type!r}: expected 'clap' or 'clap_audio_model'.")
    checks = {
        "flatten_patch_embeds": (True, "the patch tokens are always flattened"),
        "patch_embed_input_channels": (1, "the spectrogram has one channel"),
    }
    for key, (expected, why) in checks.items():
        if key in audio and audio.pop(key) != expected:
            raise CheckpointError(f"{prefix}{key}: only {expected!r} is supported ({why}).")
    if audio.pop("fusion_type", None) == "channel_map":
        raise CheckpointError(f"{prefix}fusion_type='channel_map': not supported (only the attentional 2-D fusion, 'aff_2d' / null).")
    config = {}
    for key, value in audio.items():
        if key in DEFAULT_CONFIG:
            config[key] = value
        elif key not in _IGNORED_REFERENCE_KEYS:
            raise CheckpointError(f"{prefix}{key}={value!r}: unknown ClapAudioConfig option; this port cannot honour it.")
    try:
        return validate_config(config)
    except CheckpointError as exc:
        raise CheckpointError(f"{prefix.rstrip('.') or 'config'}: {exc}") from None


def _linear(loader, dense, name, bias=True):
    loader.assign(dense.kernel, f"{name}.weight", np.transpose)
    if bias and dense.use_bias:
        loader.assign(dense.bias, f"{name}.bias")


def _norm(loader, layer, name):
    loader.assign(layer.gamma, f"{name}.weight")
    loader.assign(layer.beta, f"{name}.bias")


def _batch_norm(loader, layer, name):
    _norm(loader, layer, name)
    loader.assign(layer.moving_mean, f"{name}.running_mean")
    loader.assign(layer.moving_variance, f"{name}.running_var")


def _conv(loader, conv, name):
    loader.assign(conv.kernel, f"{name}.weight", lambda w: np.transpose(w, (2, 3, 1, 0)))
    loader.assign(conv.bias, f"{name}.bias")


def load_state_dict(model: ClapAudioModel, loader) -> None:
    """Fill ``model`` from a Hugging Face CLAP state dict.

    Accepts a ``ClapModel`` checkpoint (``audio_model.audio_encoder.*`` and
    ``audio_projection.*``; the text branch and the logit scales are ignored)
    or a ``ClapAudioModelWithProjection`` one (the same names, nothing else).
    The relative-position index buffers and BatchNorm step counters are
    recomputed / unused, so they are ignored too.

    Raises:
        CheckpointError: listing every missing, unexpected and mis-shaped tensor.
    """
    if not model.built:
        model.build()
    encoder = "audio_model.audio_encoder"
    _batch_norm(loader, model.batch_norm, f"{encoder}.batch_norm")
    embed = model.patch_embed
    _conv(loader, embed.proj, f"{encoder}.patch_embed.proj")
    if embed.norm is not None:
        _norm(loader, embed.norm, f"{encoder}.patch_embed.norm")
    if embed.enable_fusion:
        _conv(loader, embed.mel_conv2d, f"{encoder}.patch_embed.mel_conv2d")
        fusion = f"{encoder}.patch_embed.fusion_model"
        # torch Sequential indices: conv, BN, ReLU, conv, BN (local); pool, conv, BN, ReLU, conv, BN (global).
        for layers, branch, indices in (
            (embed.fusion.local_layers, "local_att", (0, 1, 3, 4)),
            (embed.fusion.global_layers, "global_att", (1, 2, 4, 5)),
        ):
            _conv(loader, layers[0], f"{fusion}.{branch}.{indices[0]}")
            _batch_norm(loader, layers[1], f"{fusion}.{branch}.{indices[1]}")
            _conv(loader, layers[2], f"{fusion}.{branch}.{indices[2]}")
            _batch_norm(loader, layers[3], f"{fusion}.{branch}.{indices[3]}")
    for i, blocks in enumerate(model.stages):
        for j, block in enumerate(blocks):
            prefix = f"{encoder}.layers.{i}.blocks.{j}"
            attention = block.attention
            _norm(loader, block.layernorm_before, f"{prefix}.layernorm_before")
            loader.assign(attention.relative_position_bias_table, f"{prefix}.attention.self.relative_position_bias_table")
            for dense, name in ((attention.query, "query"), (attention.key, "key"), (attention.value, "value")):
                _linear(loader, dense, f"{prefix}.attention.self.{name}")
            _linear(loader, attention.output_dense, f"{prefix}.attention.output.dense")
            _norm(loader, block.layernorm_after, f"{prefix}.layernorm_after")
            _linear(loader, block.intermediate, f"{prefix}.intermediate.dense")
            _linear(loader, block.output_dense, f"{prefix}.output.dense")
        if i < len(model.mergers):
            merger = model.mergers[i]
            _norm(loader, merger.norm, f"{encoder}.layers.{i}.downsample.norm")
            _linear(loader, merger.reduction, f"{encoder}.layers.{i}.downsample.reduction", bias=False)
    _norm(loader, model.norm, f"{encoder}.norm")
    _linear(loader, model.projection_1, "audio_projection.linear1")
    _linear(loader, model.projection_2, "audio_projection.linear2")
    loader.finish(
        ignore=[
            "text_model.*",
            "text_projection.*",
            "logit_scale_a",
            "logit_scale_t",
            "*.relative_position_index",
            "*.num_batches_tracked",
        ]
    )


CLAP_AUDIO = register_architecture(
    PretrainedArchitecture(
        name=ARCHITECTURE,
        build=build,
        load_state_dict=load_state_dict,
        config_from_reference=config_from_reference,
        presets=PRESETS,
        default_preset="clap_audio_larger_music",
    )
)
