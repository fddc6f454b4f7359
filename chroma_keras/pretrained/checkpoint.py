"""Reading published checkpoints (safetensors, PyTorch state dicts) into NumPy and assigning them to Keras variables.

Everything here reads local files only: no model hub is contacted. A checkpoint
is flattened to ``{tensor name: np.ndarray}``; :class:`StateDictLoader` then
copies named tensors into Keras variables (with an optional transform such as a
transpose) and, at :meth:`StateDictLoader.finish`, raises one
:class:`~chroma_keras.errors.CheckpointError` that lists every missing,
unexpected and mis-shaped tensor, so a wrong or partial checkpoint is diagnosed
in one go.
"""

from __future__ import annotations

import fnmatch
import json
import pathlib
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from chroma_keras.errors import CheckpointError

# File names a Hugging Face model directory holds its weights under, in order of preference.
HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
TORCH_SUFFIXES = (".bin", ".pt", ".pth", ".th", ".ckpt")
# Keys some trainers wrap a state dict in ({"state_dict": {...}}, {"model": {...}}, ...).
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "best_state")
# How many names an error message lists per category before it summarises.
_LISTED = 20


def _find_weight_file(path: pathlib.Path) -> pathlib.Path:
    if path.is_dir():
        for name in HF_WEIGHT_FILES:
            if (path / name).is_file():
                return path / name
        sharded = sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin"))
        if len(sharded) == 1:
            return sharded[0]
        raise CheckpointError(
            f"{path}: a checkpoint directory must hold one of {', '.join(HF_WEIGHT_FILES)} "
            f"(or a single .safetensors / .bin file); found {sorted(p.name for p in path.iterdir())[:10]}."
        )
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file or directory.")
    return path


def _to_numpy(value, path, name) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "detach"):  # torch.Tensor
        tensor = value.detach().cpu()
        if str(tensor.dtype) == "torch.bfloat16":
            tensor = tensor.float()
        return tensor.numpy()
    raise CheckpointError(f"{path}: entry {name!r} is a {type(value).__name__}, not a tensor.")


def _flatten(tree, path, prefix="") -> dict[str, np.ndarray]:
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, path, name + "."))
        elif value is None or isinstance(value, (int, float, str, bool, list, tuple)):
            continue  # training metadata (epoch counters, args) stored next to the tensors
        else:
            flat[name] = _to_numpy(value, path, name)
    return flat


def read_checkpoint(path) -> dict[str, np.ndarray]:
    """Every tensor of a checkpoint as ``{name: np.ndarray}``.

    Args:
        path: a ``.safetensors`` file, a PyTorch file (``.bin``, ``.pt``,
            ``.pth``, ``.th``, ``.ckpt``: a state dict, possibly wrapped under
            ``state_dict`` / ``model`` / ``best_state``), or a Hugging Face model
            directory holding ``model.safetensors`` or ``pytorch_model.bin``.

    Raises:
        CheckpointError: the file is missing, of an unknown kind, unreadable or
            holds no tensors.
    """
    path = _find_weight_file(pathlib.Path(path))
    try:
        if path.suffix == ".safetensors":
            from safetensors.numpy import load_file

            try:
                return load_file(str(path))
            except TypeError:  # bfloat16 tensors have no NumPy dtype: read through torch
                from safetensors.torch import load_file as load_torch_file

                return _flatten(load_torch_file(str(path)), path)
        if path.suffix in TORCH_SUFFIXES:
            import torch

            tree = torch.load(str(path), map_location="cpu", weights_only=True)
        else:
            raise CheckpointError(
                f"{path}: unknown checkpoint kind {path.suffix!r}; expected .safetensors or a PyTorch "
                f"file ({', '.join(TORCH_SUFFIXES)})."
            )
    except CheckpointError:
        raise
    except Exception as exc:  # corrupt files raise many different library errors
        raise CheckpointError(f"{path}: cannot read the checkpoint ({type(exc).__name__}: {exc}).") from exc
    if not isinstance(tree, Mapping):
        raise CheckpointError(f"{path}: expected a state dict (a mapping of names to tensors), got {type(tree).__name__}.")
    for key in _WRAPPER_KEYS:
        if key in tree and isinstance(tree[key], Mapping) and len(tree) <= 8:
            tree = tree[key]
            break
    flat = _flatten(tree, path)
    if not flat:
        raise CheckpointError(f"{path}: the checkpoint holds no tensors.")
    return flat


def read_reference_config(path) -> dict | None:
    """The ``config.json`` of a Hugging Face checkpoint (in its directory or next to its file), or None."""
    path = pathlib.Path(path)
    candidate = path / "config.json" if path.is_dir() else path.with_name("config.json")
    if not candidate.is_file():
        return None
    try:
        return json.loads(candidate.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{candidate}: not valid JSON ({exc}).") from exc


def _summary(label: str, items: Sequence) -> str:
    shown = "\n".join(f"    {item}" for item in items[:_LISTED])
    more = f"\n    ... and {len(items) - _LISTED} more" if len(items) > _LISTED else ""
    return f"  {label} ({len(items)}):\n{shown}{more}"


class StateDictLoader:
    """Copies checkpoint tensors into Keras variables and reports what did not fit.

    Args:
        state_dict: ``{name: np.ndarray}`` (from :func:`read_checkpoint`).
        source: where the tensors came from, for error messages.
        prefix: stripped from every requested name's front before lookup is
            tried without it too (``"wav2vec2."`` for a checkpoint saved from a
            model with a head); names are looked up with the prefix first.

    Example:

    >>> import keras
    >>> loader = StateDictLoader({"dense.weight": np.ones((3, 2))}, source="toy.bin")
    >>> layer = keras.layers.Dense(3); layer.build((None, 2))
    >>> loader.assign(layer.kernel, "dense.weight", np.transpose)
    >>> loader.finish(ignore=["dense.bias"])
    """

    def __init__(self, state_dict: Mapping[str, np.ndarray], source: str = "checkpoint", prefix: str = ""):
        self.state_dict = dict(state_dict)
        self.source = str(source)
        self.prefix = prefix
        self._used: set[str] = set()
        self._missing: list[str] = []
        self._mis_shaped: list[tuple[str, tuple, tuple]] = []
        self.assigned = 0

    def _key(self, name: str) -> str | None:
        for key in (self.prefix + name, name):
            if key in self.state_dict:
                return key
        return None

    def has(self, name: str) -> bool:
        """Whether the checkpoint holds ``name`` (with or without the prefix)."""
        return self._key(name) is not None

    def get(self, name: str) -> np.ndarray | None:
        """The tensor ``name`` (marked as used), or None (recorded as missing)."""
        key = self._key(name)
        if key is None:
            self._missing.append(self.prefix + name)
            return None
        self._used.add(key)
        return self.state_dict[key]

    def assign(self, variable, name: str, transform: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        """Copy tensor ``name`` (after ``transform``) into ``variable``; record it when absent or mis-shaped."""
        self.assign_from(variable, [name], (lambda t: transform(t)) if transform else (lambda t: t))

    def assign_from(self, variable, names: Sequence[str], combine: Callable[..., np.ndarray]) -> None:
        """Copy ``combine(*tensors)`` into ``variable`` (e.g. a weight-norm pair ``weight_g``, ``weight_v``)."""
        tensors = [self.get(name) for name in names]
        if any(t is None for t in tensors):
            return
        value = np.asarray(combine(*tensors))
        expected = tuple(int(d) for d in variable.shape)
        if tuple(value.shape) != expected:
            self._mis_shaped.append((" + ".join(names), tuple(value.shape), expected))
            return
        variable.assign(value.astype(np.dtype(variable.dtype) if variable.dtype != "bfloat16" else np.float32))
        self.assigned += 1

    def unused(self, ignore: Iterable[str] = ()) -> list[str]:
        """Checkpoint tensors nothing asked for, minus those matching an ``ignore`` glob pattern."""
        patterns = list(ignore)
        return sorted(
            key
            for key in self.state_dict
            if key not in self._used and not any(fnmatch.fnmatchcase(key, p) for p in patterns)
        )

    def finish(self, ignore: Iterable[str] = (), allow_unexpected: bool = False) -> None:
        """Raise one :class:`CheckpointError` listing every missing, unexpected and mis-shaped tensor.

        Args:
            ignore: glob patterns of checkpoint tensors the architecture
                deliberately does not use (e.g. ``"*.num_batches_tracked"``, a
                head the backbone does not have).
            allow_unexpected: accept unused tensors (a checkpoint of a bigger
                model whose backbone is all that is wanted).
        """
        unexpected = [] if allow_unexpected else self.unused(ignore)
        if not (self._missing or unexpected or self._mis_shaped):
            return
        parts = [f"{self.source}: the checkpoint does not fit the architecture."]
        if self._missing:
            parts.append(_summary("missing tensors", self._missing))
        if unexpected:
            parts.append(_summary("unexpected tensors", unexpected))
        if self._mis_shaped:
            parts.append(
                _summary(
                    "mis-shaped tensors (name: checkpoint shape, expected shape)",
                    [f"{n}: {list(got)}, expected {list(want)}" for n, got, want in self._mis_shaped],
                )
            )
        raise CheckpointError(
            "\n".join(parts), missing=self._missing, unexpected=unexpected, mis_shaped=self._mis_shaped
        )
