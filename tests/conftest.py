"""Shared test configuration.

The suite runs once per Keras backend (``make test`` loops KERAS_BACKEND over
jax, tensorflow and torch). A test limited to some backends says so with
``@pytest.mark.backends("jax", "torch", reason="...")``; cross-backend tests
use the ``run_in_backend`` fixture, which runs code in a fresh subprocess.
"""

import os
import subprocess
import sys
import textwrap

import pytest

ALL_BACKENDS = ("jax", "tensorflow", "torch")


def current_backend():
    """The backend this pytest process runs under (without importing keras)."""
    return os.environ.get("KERAS_BACKEND", "tensorflow")


def pytest_report_header(config):
    return f"chroma_keras test run: KERAS_BACKEND={current_backend()}"


def pytest_configure(config):
    config.addinivalue_line("markers", "backends(*names, reason): run only under the named Keras backends")
    config.addinivalue_line("markers", "slow: long-running test (still part of make test)")


def pytest_collection_modifyitems(config, items):
    backend = current_backend()
    for item in items:
        marker = item.get_closest_marker("backends")
        if marker is None:
            continue
        names = marker.args
        unknown = [n for n in names if n not in ALL_BACKENDS]
        if unknown:
            raise pytest.UsageError(f"{item.nodeid}: unknown backend(s) {unknown} in @pytest.mark.backends")
        reason = marker.kwargs.get("reason")
        if not reason and set(names) != set(ALL_BACKENDS):
            raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.backends excluding a backend needs reason=...")
        if backend not in names:
            item.add_marker(pytest.mark.skip(reason=f"runs only under {', '.join(names)}: {reason}"))


@pytest.fixture
def backend():
    """The name of the Keras backend of this run."""
    return current_backend()


@pytest.fixture(scope="session")
def tiny_gpt_overrides():
    """Preset overrides for an untrained gpt_remi_chromatic small enough to sample in seconds."""
    return {
        "model.gpt.hidden_dim": 32,
        "model.gpt.num_layers": 2,
        "model.gpt.num_heads": 2,
        "model.gpt.intermediate_dim": 64,
        "model.gpt.max_sequence_length": 96,
        "model.gpt.dropout": 0.0,
        "generation.sampling.max_length": 48,
    }


@pytest.fixture(scope="session")
def tiny_scorer_overrides():
    """Preset overrides for an untrained scorer_midi_only on a coarse grid (2 frames/s, 16 frames)."""
    return {
        "preprocessing.midi.piano_roll.frames_per_second": 2,
        "preprocessing.midi.piano_roll.num_frames": 16,
        "model.midi_encoder.filters": [4, 4, 4],
        "model.midi_encoder.hidden_dim": 8,
    }


@pytest.fixture
def run_in_backend():
    """Run Python source in a fresh interpreter under a given backend.

    Returns a function ``run(backend, source, timeout=300) -> stdout`` that
    fails the test with the subprocess' stderr when it exits non-zero.
    """

    def run(backend_name, source, timeout=300):
        env = dict(os.environ, KERAS_BACKEND=backend_name, TF_CPP_MIN_LOG_LEVEL="3")
        proc = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(source)],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if proc.returncode != 0:
            pytest.fail(f"subprocess under KERAS_BACKEND={backend_name} failed:\n{proc.stderr[-4000:]}")
        return proc.stdout

    return run
