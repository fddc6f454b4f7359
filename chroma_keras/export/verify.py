"""``verify``: run a GPT export's ``sample.py`` runner and check its greedy tokens against the live model."""

from __future__ import annotations

import importlib.util
import itertools
import pathlib

import numpy as np

from chroma_keras.errors import ExportError

# What export_model(..., verify=True) generates: a short greedy run from the "Red" prompt, two rows.
VERIFY_CONDITION = "Red"
VERIFY_NEW_TOKENS = 8
VERIFY_SAMPLES = 2
_RUNNER_IDS = itertools.count()


def load_runner(export_dir):
    """The export's own ``sample.py`` as a module (imported by path, under a name of its own)."""
    path = pathlib.Path(export_dir) / "sample.py"
    if not path.is_file():
        raise ExportError(f"verify: {export_dir} holds no sample.py runner; export both prefill and decode_step.")
    spec = importlib.util.spec_from_file_location(f"_chroma_keras_export_runner_{next(_RUNNER_IDS)}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def first_difference(served: np.ndarray, live: np.ndarray):
    """``(row, position)`` of the first token where two ``[rows, length]`` arrays differ (a missing
    position counts as a difference), or None when they are equal."""
    rows = max(len(served), len(live))
    length = max(served.shape[1], live.shape[1])
    for position in range(length):
        for row in range(rows):
            a = served[row, position] if row < len(served) and position < served.shape[1] else None
            b = live[row, position] if row < len(live) and position < live.shape[1] else None
            if a != b:
                return row, position
    return None


def verify_gpt_export(model, export_dir, prompt_ids=None, max_new_tokens=VERIFY_NEW_TOKENS, num_samples=VERIFY_SAMPLES) -> dict:
    """Generate greedily with the export's runner and with the live model; raise unless the tokens are equal.

    Args:
        model: the live ``ChromaticGPT`` the export was written from.
        export_dir: the export directory (with ``sample.py``, ``prefill`` and ``decode_step``).
        prompt_ids: the prompt's token ids (default: the prefix of the ``"Red"`` prompt).
        max_new_tokens: tokens to generate.
        num_samples: rows generated (all from the same prompt).

    Returns:
        ``{"prompt_ids": [...], "token_ids": [[...], ...]}``: what both generated.

    Raises:
        ExportError: the tokens differ; the message names the first differing row and position
            and both tokens there.

    Example:
    >>> verify_gpt_export(gpt, "export/gpt_onnx")["token_ids"]  # doctest: +SKIP
    """
    prompt = model.prompt_ids(condition=VERIFY_CONDITION) if prompt_ids is None else model.prompt_ids(np.asarray(prompt_ids))
    runner = load_runner(export_dir)
    served = runner.generate_tokens(
        export_dir, prompt_ids=prompt, num_samples=num_samples, max_new_tokens=max_new_tokens, sampling="greedy"
    )["token_ids"]
    live = model.generate(
        prompt=prompt, max_length=len(prompt) + int(max_new_tokens), sampling="greedy", num_samples=num_samples
    )
    difference = first_difference(np.asarray(served), np.asarray(live))
    if difference is not None:
        row, position = difference
        token = lambda a: int(a[row, position]) if position < a.shape[1] else "nothing"  # noqa: E731
        raise ExportError(
            f"verify: the export's greedy tokens differ from the live model's at row {row}, position {position} "
            f"(generated token {position - len(prompt)}): export {token(served)}, live {token(live)}. "
            f"Prompt {prompt.tolist()}; export {served[row].tolist()}; live {live[row].tolist()}."
        )
    return {"prompt_ids": prompt.tolist(), "token_ids": np.asarray(live).tolist()}
