"""Data-parallel training over several devices with ``keras.distribution`` (JAX backend).

``chroma-keras train --devices N`` calls :func:`use_devices` before the model is built:
on the JAX backend it sets a global ``keras.distribution.DataParallel`` over the first
``N`` of ``jax.devices()``, so every variable created afterwards is replicated on the ``N``
devices and every batch ``fit()`` receives is split along its first axis, one slice per
device. The gradient of a step is the mean over the whole (global) batch, exactly as on
one device; only the order of the floating-point sums changes (see docs/cli.md).

Simulated CPU devices (``XLA_FLAGS=--xla_force_host_platform_device_count=N``) share XLA's CPU
thread pool, sized by ``PJRT_NPROC`` (default: the CPU count). With fewer threads than devices, a
step's all-reduce can wait for devices that never get a thread, and XLA aborts the process after
40 s (seen on a 2-core machine with 4 devices); :func:`use_devices` refuses that setup and says to
set ``PJRT_NPROC=N``. Two threads per device leave a margin (a device may wait in more than one
collective at a time, notably with ``--xla_backend_optimization_level=0``, which keeps the gradient's
all-reduces apart), and ``--xla_cpu_collective_call_terminate_timeout_seconds`` raises the 40 s on a
machine where devices wait for CPU time.

Rules that keep a data-parallel run equivalent to a single-device one:

* The global batch size (``training.batch_size``) must be a multiple of ``N``
  (:func:`check_batch_size`): each device then gets ``batch_size / N`` rows.
* An epoch's last batch is often partial. :class:`DivisibleBatches` trims it to the
  largest multiple of ``N`` rows (at most ``N - 1`` rows of an epoch are not seen; the
  training split is reshuffled every epoch, so different rows each time), and drops it
  when it has fewer than ``N`` rows. :func:`chroma_keras.demo.train_on_corpus` applies it
  to the training and validation data whenever a data-parallel distribution is set.

What the other backends offer, and why we do not support them (yet):

* TensorFlow: ``tf.distribute.MirroredStrategy`` (model built and compiled inside
  ``strategy.scope()``; Keras' TF trainer then runs ``fit`` per replica and all-reduces the
  gradients). Keras' own ``keras.distribution`` for TF is an unfinished DTensor prototype.
* PyTorch: ``torch.nn.parallel.DistributedDataParallel``, one process per device started
  by ``torchrun``, each with a ``DistributedSampler`` shard; Keras' torch ``fit`` does not
  wrap a model in DDP, so it needs a custom training loop.

Neither is wired into chroma_keras; :func:`use_devices` says so instead of silently
training on one device.
"""

from __future__ import annotations

import os

import keras
import numpy as np

from chroma_keras.errors import DeviceError

#: How to get N CPU devices from JAX on a machine without accelerators.
SIMULATE_HINT = "XLA_FLAGS=--xla_force_host_platform_device_count=N"


def available_devices() -> list:
    """The devices a data-parallel run can use: ``jax.devices()`` (accelerators if any, else CPUs).

    Returns:
        A list of ``jax.Device`` on the JAX backend.

    Raises:
        DeviceError: on another backend (only JAX is supported).
    """
    backend = keras.config.backend()
    if backend != "jax":
        raise DeviceError(_unsupported_backend_message(backend, None))
    import jax

    return list(jax.devices())


def use_devices(devices: int, batch_size: int | None = None):
    """Train on ``devices`` devices: set a global ``keras.distribution.DataParallel`` (JAX).

    Call it before the model is built: variables created before a distribution is set
    stay on one device. ``devices=1`` changes nothing (and works on every backend).

    Args:
        devices: number of devices, ``>= 1``; the first ``devices`` of ``jax.devices()`` are used.
        batch_size: the global batch size; when given it must be a multiple of ``devices``.

    Returns:
        The ``keras.distribution.DataParallel`` that was set, or None for ``devices=1``.

    Raises:
        DeviceError: ``devices`` is not a positive integer, exceeds the devices JAX sees
            (the message says how many there are and how to simulate more on CPU), the
            devices are simulated CPUs with fewer XLA runtime threads than devices
            (:func:`cpu_runtime_threads`; set ``PJRT_NPROC``), the backend is not JAX, or
            ``batch_size`` is not a multiple of ``devices``.

    Example:

    >>> # XLA_FLAGS=--xla_force_host_platform_device_count=4 KERAS_BACKEND=jax python ...
    >>> distribution = use_devices(4, batch_size=16)  # doctest: +SKIP
    >>> model = ck.from_preset("scorer_midi_only")  # doctest: +SKIP
    """
    if isinstance(devices, bool) or not isinstance(devices, (int, np.integer)) or devices < 1:
        raise DeviceError(f"--devices: expected a whole number of devices >= 1. Received: devices={devices!r}")
    devices = int(devices)
    if devices == 1:
        return None
    backend = keras.config.backend()
    if backend != "jax":
        raise DeviceError(_unsupported_backend_message(backend, devices))
    found = available_devices()
    if devices > len(found):
        kinds = sorted({d.platform for d in found})
        raise DeviceError(
            f"--devices {devices}: JAX sees only {len(found)} device(s) here ({', '.join(kinds)}: "
            f"{', '.join(str(d) for d in found)}). Use --devices {len(found)} or fewer; to try data "
            f"parallelism on CPU, simulate N CPU devices by starting Python with {SIMULATE_HINT} "
            f"(e.g. PJRT_NPROC={devices} XLA_FLAGS=--xla_force_host_platform_device_count={devices}: both must be "
            f"set before JAX starts; PJRT_NPROC gives XLA's CPU runtime a thread per device)."
        )
    if found[0].platform == "cpu":
        threads, source = cpu_runtime_threads()
        if devices > threads:
            raise DeviceError(
                f"--devices {devices} on CPU: XLA's CPU runtime runs the {devices} simulated devices on {threads} "
                f"thread(s) ({source}); with fewer threads than devices a step's all-reduce can wait forever for "
                f"devices that get no thread, and XLA aborts the run after 40 s. Start Python with "
                f"PJRT_NPROC={devices} (or more) next to XLA_FLAGS, e.g. PJRT_NPROC={devices} "
                f"XLA_FLAGS=--xla_force_host_platform_device_count={devices} KERAS_BACKEND=jax chroma-keras train ..."
            )
    if batch_size is not None:
        check_batch_size(batch_size, devices)
    distribution = keras.distribution.DataParallel(devices=found[:devices])
    keras.distribution.set_distribution(distribution)
    return distribution


def cpu_runtime_threads() -> tuple[int, str]:
    """Threads XLA's CPU runtime (PJRT) runs computations on, and where that number comes from.

    PJRT sizes its CPU thread pool from the ``PJRT_NPROC`` or ``NPROC`` environment variable when
    set (read once, when JAX starts its CPU client), else from the CPUs this process may run on.

    Returns:
        ``(threads, source)``, e.g. ``(4, "PJRT_NPROC=4")``.
    """
    for name in ("PJRT_NPROC", "NPROC"):
        value = os.environ.get(name, "")
        if value.strip().isdigit():
            return int(value), f"{name}={value.strip()}"
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return count, f"the {count} CPU(s) this process may use; PJRT_NPROC is not set"


def check_batch_size(batch_size: int, devices: int, source: str = "training.batch_size") -> None:
    """Raise unless the global batch size splits evenly over the devices.

    Args:
        batch_size: the global batch size (rows per step, all devices together).
        devices: number of data-parallel replicas.
        source: what to name in the message (a preset key or an option).

    Raises:
        DeviceError: ``batch_size`` is not a positive multiple of ``devices``.
    """
    if int(batch_size) < 1 or int(batch_size) % int(devices):
        below = (int(batch_size) // int(devices)) * int(devices)
        above = below + int(devices)
        choices = f"{below} or {above}" if below >= int(devices) else f"{above}"
        raise DeviceError(
            f"{source}={batch_size} does not split over {devices} devices: the global batch size must be a "
            f"multiple of --devices (each device gets batch_size / devices rows). Set "
            f"--set training.batch_size={choices}, or use a device count that divides {batch_size}."
        )


def data_parallel_replicas(distribution=None) -> int:
    """How many slices a batch is split into under a distribution (1 when none is set).

    Args:
        distribution: a ``keras.distribution.Distribution``; default: the global one.

    Returns:
        The size of the mesh's batch axis (``N`` for ``DataParallel`` over ``N`` devices).
    """
    if distribution is None:
        distribution = keras.distribution.distribution()
    if distribution is None:
        return 1
    mesh = distribution.device_mesh
    name = distribution.batch_dim_name
    if name is None or name not in mesh.axis_names:
        return 1
    return int(mesh.shape[list(mesh.axis_names).index(name)])


class DivisibleBatches(keras.utils.PyDataset):
    """A view of a batch dataset whose every batch has a multiple of ``replicas`` rows.

    A data-parallel step splits a batch into ``replicas`` equal slices, so a partial last
    batch (say 5 rows over 4 devices) cannot be placed. This view trims such a batch to
    the largest multiple of ``replicas`` (4 rows) and leaves it out when that is 0; other
    batches pass through unchanged. Epoch hooks are forwarded to the wrapped dataset, so its
    shuffling and augmentation go on as before.

    Args:
        dataset: a ``keras.utils.PyDataset`` yielding tuples (or a dict) of arrays with the
            batch on axis 0 (e.g. :class:`~chroma_keras.data.MultimodalDataset`). When it has
            ``num_examples`` and ``batch_size`` attributes, batches that would be empty are
            left out of its length; otherwise every batch is assumed to have ``replicas`` rows or more.
        replicas: the number of slices a batch is split into (``--devices``).

    Example:

    >>> ds = DivisibleBatches(MultimodalDataset("demo", "scorer_midi_only", split="train"), 4)  # doctest: +SKIP
    """

    def __init__(self, dataset, replicas: int):
        super().__init__(
            workers=getattr(dataset, "workers", 1),
            use_multiprocessing=getattr(dataset, "use_multiprocessing", False),
            max_queue_size=getattr(dataset, "max_queue_size", 10),
        )
        if int(replicas) < 1:
            raise DeviceError(f"replicas must be >= 1. Received: replicas={replicas!r}")
        self.dataset = dataset
        self.replicas = int(replicas)

    def __len__(self) -> int:
        batches = len(self.dataset)
        examples, batch_size = getattr(self.dataset, "num_examples", None), getattr(self.dataset, "batch_size", None)
        if batches and examples is not None and batch_size:
            last = int(examples) - (batches - 1) * int(batch_size)
            if 0 < last < self.replicas:
                return batches - 1
        return batches

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} out of range for {len(self)} batches")
        batch = self.dataset[index]
        rows = _leading_rows(batch)
        keep = (rows // self.replicas) * self.replicas
        if keep == 0:
            raise DeviceError(
                f"batch {index} of {type(self.dataset).__name__} has {rows} row(s), fewer than the "
                f"{self.replicas} devices it is split over; use a larger training.batch_size."
            )
        if keep == rows:
            return batch
        return keras.tree.map_structure(lambda a: a[:keep], batch)

    def on_epoch_begin(self):
        """Forwarded to the wrapped dataset."""
        hook = getattr(self.dataset, "on_epoch_begin", None)
        if hook is not None:
            hook()

    def on_epoch_end(self):
        """Forwarded to the wrapped dataset (a new shuffle order, new augmentation draws)."""
        hook = getattr(self.dataset, "on_epoch_end", None)
        if hook is not None:
            hook()


def for_replicas(dataset, replicas: int | None = None):
    """``dataset`` as :class:`DivisibleBatches` when batches are split over several devices, else as is.

    Args:
        dataset: a batch dataset, or None (returned as is).
        replicas: number of slices per batch; default :func:`data_parallel_replicas` of the
            global distribution.

    Returns:
        The dataset, wrapped only when ``replicas > 1``.
    """
    replicas = data_parallel_replicas() if replicas is None else int(replicas)
    if dataset is None or replicas <= 1:
        return dataset
    return DivisibleBatches(dataset, replicas)


def _leading_rows(batch) -> int:
    sizes = {int(np.shape(a)[0]) for a in keras.tree.flatten(batch) if np.ndim(a) > 0}
    if len(sizes) != 1:
        raise DeviceError(f"a batch's arrays must share their first (batch) axis. Received sizes: {sorted(sizes)}")
    return sizes.pop()


def _unsupported_backend_message(backend: str, devices: int | None) -> str:
    asked = f"--devices {devices}" if devices is not None else "multi-device training"
    offers = {
        "tensorflow": "TensorFlow's own route is tf.distribute.MirroredStrategy (build and compile the model "
        "inside strategy.scope(), then fit), which chroma_keras does not set up",
        "torch": "PyTorch's own route is DistributedDataParallel (one process per device under torchrun, "
        "a DistributedSampler per process), which Keras' torch fit() does not use and chroma_keras does not set up",
    }.get(backend, f"the {backend} backend has no keras.distribution support")
    return (
        f"{asked}: data-parallel training is supported on the JAX backend only (keras.distribution.DataParallel). "
        f"Received: KERAS_BACKEND={backend}; {offers}. Run with KERAS_BACKEND=jax, or use --devices 1."
    )


__all__ = [
    "DivisibleBatches",
    "SIMULATE_HINT",
    "available_devices",
    "check_batch_size",
    "cpu_runtime_threads",
    "data_parallel_replicas",
    "for_replicas",
    "use_devices",
]
