"""What a run knows about its devices: the hardware record a device is, its peak FLOP/s,
its memory capacity and the peak memory it reported.

Every function takes JAX device objects (`jax.devices()`), so importing this module
imports nothing heavy.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

import attrs


def match_hardware(device_kind: str, records: Iterable) -> object | None:
    """The hardware record a JAX `device_kind` (e.g. 'NVIDIA H100 80GB HBM3') refers to, or None.

    A record matches when its model token (``h100``, ``a100``, ``v5p``) is in the device
    kind; among matches the one sharing most remaining tokens (memory size, form factor)
    wins; a PCIe record is preferred for a PCIe device and avoided otherwise.
    """
    kind = device_kind.lower().replace("v5 lite", "v5e").replace("v5lite", "v5e")
    tokens = set(re.split(r"[^a-z0-9]+", kind)) - {""}
    best, best_score = None, None
    for record in records:
        for name in (record.key, *getattr(record, "aliases", ())):
            parts = [p for p in re.split(r"[^a-z0-9]+", name.lower()) if p]
            if not parts:
                continue
            model_index = 1 if parts[0] == "tpu" and len(parts) > 1 else 0
            if parts[model_index] not in tokens:
                continue
            rest = parts[model_index + 1 :]
            score = sum(part in tokens for part in rest) - 0.1 * sum(part not in tokens for part in rest)
            if ("pcie" in rest) != ("pcie" in tokens):
                score -= 1.0  # PCIe cards run at lower clocks than their SXM siblings
            if best_score is None or score > best_score:
                best, best_score = record, score
    return best


def device_hardware(devices: list, registry: object) -> object | None:
    """The hardware record the training devices are, or None (CPU, or a device no hardware
    record describes)."""
    if not devices or devices[0].platform == "cpu":
        return None
    return match_hardware(devices[0].device_kind, registry.catalog("hardware").values())


def peak_flops_per_device(devices: list, compute_dtype: str, registry: object) -> float | None:
    """The datasheet peak FLOP/s of one training device for `compute_dtype`, or None (CPU,
    or a device no hardware record describes)."""
    record = device_hardware(devices, registry)
    if record is None:
        return None
    return record.peak_flops.get(compute_dtype) or record.peak_flops.get("bf16")


def _memory_stats(device: object) -> dict | None:
    try:
        return device.memory_stats()
    except Exception:  # some backends raise instead of returning None
        return None


def measured_peak_memory(devices: list) -> int | None:
    """Largest `peak_bytes_in_use` over this process's training devices, where reported."""
    peaks = []
    for device in devices:
        stats = _memory_stats(device)
        if stats and stats.get("peak_bytes_in_use"):
            peaks.append(int(stats["peak_bytes_in_use"]))
    return max(peaks) if peaks else None


@attrs.frozen(kw_only=True)
class Capacity:
    """The memory one training device can give a step, in bytes, and where the figure came from."""

    bytes: int
    source: str
    """'--device-memory', 'GENAISDK_DEVICE_MEMORY', 'the device (memory_stats bytes_limit)',
    'the hardware record h100-sxm', or 'host memory shared by N CPU devices'."""

    def to_json(self) -> dict:
        return {"bytes": self.bytes, "source": self.source}


def host_memory_bytes() -> int | None:
    """The machine's physical memory, or None where the OS does not say."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def device_capacity(devices: list, registry: object, configured: tuple[int, str] | None = None) -> Capacity | None:
    """The memory of one of `devices` (this process's training devices), in order of trust:

    1. `configured`: (bytes, where) set by the user (`--device-memory`, the environment);
    2. the runtime's own limit, `memory_stats()['bytes_limit']` (the smallest over the
       devices): what XLA's allocator may hand out on a GPU or TPU;
    3. the hardware record the device kind names (`match_hardware`);
    4. on CPU, the host's physical memory divided by the devices of this process, since
       every virtual CPU device allocates from the same host memory.

    None when nothing says (the step is then not checked).
    """
    if configured is not None:
        return Capacity(bytes=int(configured[0]), source=configured[1])
    if not devices:
        return None
    limits = [int(s["bytes_limit"]) for s in map(_memory_stats, devices) if s and s.get("bytes_limit")]
    if limits:
        return Capacity(bytes=min(limits), source="the device (memory_stats bytes_limit)")
    first = devices[0]
    if first.platform != "cpu":
        record = device_hardware(devices, registry)
        if record is not None:
            return Capacity(bytes=int(record.memory_bytes), source=f"the hardware record {record.key}")
        return None
    host = host_memory_bytes()
    if host is None:
        return None
    local = [d for d in devices if getattr(d, "process_index", 0) == getattr(first, "process_index", 0)]
    count = max(1, len(local))
    return Capacity(bytes=host // count, source=f"host memory shared by {count} CPU device(s)")
