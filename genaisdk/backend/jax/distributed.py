"""Bringing up JAX before training: device count, and the multi-host runtime.

Everything here must run before JAX creates its backends (the first `jax.devices()` or
array), because the CPU device count and the distributed client are fixed at that moment.

Several hosts use JAX's own distributed runtime (`jax.distributed.initialize`):

- explicit: ``--coordinator HOST:PORT --num-processes N --process-id I`` on every host;
- automatic: under SLURM (``srun``), on Cloud TPU pods, or with JAX's own
  ``JAX_COORDINATOR_ADDRESS`` environment, JAX finds the coordinator and ranks itself.

On CPU the collectives between processes need an implementation; gloo ships with jaxlib,
so it is selected before initializing (it changes nothing on GPU or TPU backends).
"""

from __future__ import annotations

import os

import attrs


MAX_CPU_DEVICES = 4096
"""The most devices one process asks for. A CPU process creates them as virtual devices
(and takes seconds per thousand to start them); an accelerator host has far fewer (8 GPUs,
or 4 to 8 TPU chips). A larger count is a typo or a plan for a cluster: it is refused at
once instead of starting a backend for minutes."""


class DistributedError(Exception):
    """Inconsistent multi-host or device settings; the message says what to change."""


def check_device_count(devices: int | None, *, what: str = "--devices") -> None:
    """Refuses, before JAX starts, a device count no single process can have (see
    `MAX_CPU_DEVICES`)."""
    if devices is None:
        return
    if devices < 1:
        raise DistributedError(f"{what} must be at least 1, got {devices}")
    if devices > MAX_CPU_DEVICES:
        raise DistributedError(
            f"{what} {devices:,} is more devices than one process can have: a CPU process simulates at most "
            f"{MAX_CPU_DEVICES:,}, an accelerator host has its own few; for a larger run start one process per host "
            "(--coordinator, --num-processes, --process-id), or plan fewer devices"
        )


@attrs.frozen(kw_only=True)
class Runtime:
    """What this process is part of, once JAX is up."""

    process_index: int
    process_count: int
    local_devices: int
    global_devices: int
    platform: str
    mode: str
    """'single', 'explicit' (coordinator flags) or 'auto' (SLURM, TPU pod, JAX env)."""

    @property
    def is_primary(self) -> bool:
        """Process 0 writes logs, metrics and the progress display."""
        return self.process_index == 0


def _auto_environment() -> str | None:
    """The cluster environment JAX can initialize from without flags, if any."""
    if os.environ.get("JAX_COORDINATOR_ADDRESS"):
        return "JAX_COORDINATOR_ADDRESS"
    if os.environ.get("SLURM_JOB_ID") and int(os.environ.get("SLURM_NTASKS", "1") or 1) > 1:
        return "SLURM"
    if os.environ.get("TPU_WORKER_HOSTNAMES", "").count(",") >= 1 or os.environ.get("MEGASCALE_COORDINATOR_ADDRESS"):
        return "TPU pod"
    return None


def _backends_started() -> bool:
    from jax._src import xla_bridge

    return bool(xla_bridge.backends_are_initialized())


def _distributed_started() -> bool:
    from jax._src import distributed

    return distributed.global_state.client is not None


def setup(
    *,
    devices: int | None = None,
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> Runtime:
    """Sets the CPU device count and joins the multi-host runtime where asked or detected.

    `devices` is the number of devices this process contributes: on CPU it creates that many
    host devices; on an accelerator it must not exceed the ones present (the mesh uses the
    first `devices`). Safe to call twice with the same settings (e.g. from tests).
    """
    import jax

    explicit = [coordinator is not None, num_processes is not None, process_id is not None]
    if any(explicit) and not all(explicit):
        raise DistributedError(
            "--coordinator, --num-processes and --process-id go together: give all three on every host"
        )
    check_device_count(devices)
    if coordinator is not None:
        if num_processes < 1 or not 0 <= process_id < num_processes:
            raise DistributedError(
                f"--process-id must be in [0, {num_processes}) for --num-processes {num_processes}, got {process_id}"
            )
        if ":" not in coordinator:
            raise DistributedError(f"--coordinator must be HOST:PORT, got {coordinator!r}")

    if devices is not None and not _backends_started():
        # Only the CPU backend reads this; on GPU or TPU the mesh takes the first `devices`.
        jax.config.update("jax_num_cpu_devices", int(devices))

    mode = "single"
    auto = None if coordinator is not None else _auto_environment()
    if coordinator is not None or auto is not None:
        mode = "explicit" if coordinator is not None else "auto"
        if not _distributed_started():
            if _backends_started():
                raise DistributedError(
                    "JAX was already in use before the multi-host runtime could start; "
                    "call genaisdk.train before any other JAX work in this process"
                )
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
            try:
                if coordinator is not None:
                    jax.distributed.initialize(
                        coordinator_address=coordinator,
                        num_processes=int(num_processes),
                        process_id=int(process_id),
                    )
                else:
                    jax.distributed.initialize()
            except (RuntimeError, ValueError) as exc:
                where = coordinator or auto
                raise DistributedError(f"cannot join the multi-host runtime ({where}): {exc}") from None

    local = jax.local_device_count()
    if devices is not None and devices > local:
        raise DistributedError(
            f"--devices {devices} asks for more devices than this process has ({local} "
            f"{jax.default_backend()} device(s))"
        )
    return Runtime(
        process_index=jax.process_index(),
        process_count=jax.process_count(),
        local_devices=devices if devices is not None else local,
        global_devices=(devices if devices is not None else local) * jax.process_count(),
        platform=jax.default_backend(),
        mode=mode,
    )


def local_devices(runtime: Runtime) -> list:
    """The devices this process trains on (the first `runtime.local_devices`)."""
    import jax

    return jax.local_devices()[: runtime.local_devices]


def training_devices(runtime: Runtime) -> list:
    """Every process's training devices, process by process: the mesh's device list."""
    import jax

    per_process: dict[int, list] = {}
    for device in jax.devices():
        per_process.setdefault(device.process_index, []).append(device)
    ordered = []
    for index in sorted(per_process):
        ordered.extend(sorted(per_process[index], key=lambda d: d.id)[: runtime.local_devices])
    return ordered
