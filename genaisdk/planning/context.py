"""Stage 2: what every later stage reads, decided once and frozen: the precision
(`precision = auto`), the optimizer state's dtype, the MFU, the peak FLOP/s and price of one
device, the hardware's figures for the step-time model (`Cluster`), the device count when
the spec fixes it, the training context and the vocabulary."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from genaisdk.core import codes
from genaisdk.diagnostics import SpecError
from genaisdk.estimate import constants
from genaisdk.estimate.comm import Cluster
from genaisdk.estimate.memory import optimizer_state_dtype
from genaisdk.planning.notes import Notes
from genaisdk.planning.resolve import Resolved, auto_precision
from genaisdk.planning.sizing import context_of
from genaisdk.records import Hardware, Precision
from genaisdk.spec.model import Project, Spec, is_auto

if TYPE_CHECKING:  # pragma: no cover
    from genaisdk.registry import Registry


@attrs.frozen(kw_only=True)
class PlanContext:
    """The frozen inputs of one planning run, after names and precision are resolved."""

    spec: Spec
    registry: Registry
    resolved: Resolved
    precision: Precision
    """The training precision (the spec's, or `auto_precision`'s choice)."""
    mfu: float
    peak: float
    """Dense peak FLOP/s of one device at the precision's compute dtype (or at `peak_dtype`,
    the nearest format the hardware quotes, when it quotes none for that dtype); 0.0 when
    none stands in (the plan then has no time, GP406)."""
    peak_dtype: str
    """The dtype `peak` is quoted for: the compute dtype, or the stand-in `Hardware.peak_for`
    chose (the validation layer's GS306 warning says so); "" when `peak` is 0.0."""
    optimizer_state: str
    """The dtype of the optimizer's state (`train.optimizer_state`, else the records')."""
    price: float | None
    """USD per device-hour: the spec's `price_per_hour`, else the hardware record's."""
    devices_fixed: int | None
    """The device count when the spec fixes it (or implies one: no count and no time)."""
    host_capacity: float | None = None
    """Host memory per device an offload strategy may fill: the spec's `budget.host_memory`,
    else the hardware record's `host_memory_bytes`; None when neither says (offload's fit on
    the host is then unchecked, and the plan warns)."""
    context: int
    """The training sequence length before `context = auto` is searched."""
    vocab: int | None
    cluster: Cluster | None = None
    """The device and its node for the step-time model (`hardware_cluster`); None when the
    hardware record lacks a figure it needs (`cluster_missing`)."""
    cluster_missing: tuple[str, ...] = ()
    """The hardware record's fields the step-time model needs and that it leaves unset."""
    mfu_given: bool = False
    """The spec sets `train.mfu`: it overrides the step-time model's derived MFU."""

    @property
    def project(self) -> Project:
        return self.spec.project

    @property
    def hardware(self) -> Hardware:
        return self.resolved.hardware

    @property
    def flash(self) -> bool:
        return (self.project.train.attention or "flash") != "materialized"


def build_context(spec: Spec, registry: Registry, resolved: Resolved, notes: Notes) -> PlanContext:
    """Decide the precision, MFU, peak, price and fixed device count (each with its reason)."""
    project = spec.project
    hardware = resolved.hardware
    precision = _precision(spec, resolved, notes)
    mfu = _mfu(project, notes)
    price = project.budget.price_per_hour if project.budget.price_per_hour is not None else hardware.price_per_hour
    peak, peak_dtype = hardware.peak_for(precision.compute_dtype)
    devices = _devices_fixed(project, notes)
    cluster, missing = hardware_cluster(hardware, peak, devices)
    return PlanContext(
        spec=spec,
        registry=registry,
        resolved=resolved,
        precision=precision,
        optimizer_state=_optimizer_state(project, resolved, precision, notes),
        mfu=mfu,
        peak=peak,
        peak_dtype=peak_dtype,
        price=price,
        devices_fixed=devices,
        host_capacity=project.budget.host_memory if project.budget.host_memory is not None else hardware.host_memory_bytes,
        context=context_of(project.model, resolved),
        vocab=project.model.vocab or project.data.vocab,
        cluster=cluster,
        cluster_missing=missing,
        mfu_given=project.train.mfu is not None,
    )


CLUSTER_FIELDS = {
    "intra_node_bytes_per_s": "intra_node_gb_s",
    "inter_node_bytes_per_s": "inter_node_gb_s",
    "devices_per_node": "devices_per_node",
}
"""Hardware record field -> its name in the catalog's TOML, for messages."""


def hardware_cluster(hardware: Hardware, peak: float, devices: int | None) -> tuple[Cluster | None, tuple[str, ...]]:
    """The hardware record's figures as a `Cluster` for the step-time model, and the fields
    it needs that the record leaves unset (then no Cluster: the plan's time comes from an
    MFU, and the plan says which fields were missing).

    What is needed depends on the devices: one device sends nothing; devices within one
    node use only the in-node link; a searched count may span nodes, so it needs the node
    size and both links. A link the layouts cannot use is set to infinity (it carries
    nothing, so no figure of it enters any time)."""
    intra, inter, per_node = hardware.intra_node_bytes_per_s, hardware.inter_node_bytes_per_s, hardware.devices_per_node
    if not peak or not hardware.bandwidth_bytes_per_s:
        return None, ()
    if devices == 1:
        needed: tuple[str, ...] = ()
    elif devices is not None and per_node is not None and devices <= per_node:
        needed = ("intra_node_bytes_per_s",)
    else:
        needed = ("intra_node_bytes_per_s", "inter_node_bytes_per_s", "devices_per_node")
    missing = tuple(CLUSTER_FIELDS[f] for f in needed if getattr(hardware, f) is None)
    if missing:
        return None, missing
    unused = float("inf")
    return (
        Cluster(
            peak_flops=peak,
            memory_bytes=float(hardware.memory_bytes),
            memory_bandwidth=float(hardware.bandwidth_bytes_per_s),
            intra_node_bandwidth=float(intra) if intra is not None else unused,
            inter_node_bandwidth=float(inter) if inter is not None else unused,
            devices_per_node=int(per_node) if per_node is not None else max(1, devices or 1),
            host_bandwidth=float(hardware.host_link_bytes_per_s) if hardware.host_link_bytes_per_s else None,
        ),
        (),
    )


DEFAULT_MFU_WHY = "PaLM Table 3 reports 21-46% MFU for large runs; 40% is what current GPU stacks with flash attention reach"


def _mfu(project: Project, notes: Notes) -> float:
    """The MFU the plan assumes where the step-time model does not give one: the spec's
    `train.mfu`, else the documented default. (`planning.assemble` writes the `train.mfu`
    reason, once it knows whether time comes from the step-time model.)"""
    if project.train.mfu is not None:
        return float(project.train.mfu)
    notes.assume(
        "mfu",
        constants.DEFAULT_MFU,
        "Chowdhery et al. 2022 (PaLM), Table 3",
        "used only where the step-time model is not: sizing for a budget, the first device count tried, "
        "and time for what the model does not cover; set train.mfu to change it",
    )
    return constants.DEFAULT_MFU


def _precision(spec: Spec, resolved: Resolved, notes: Notes) -> Precision:
    """The spec's precision, or for `auto` the best the hardware computes in. A precision
    the hardware has no arithmetic for is still planned: memory does not depend on it, and
    time takes the nearest format the hardware quotes (`Hardware.peak_for`; the validation
    layer warns, GS306). Where no quoted format stands in (a device described without
    throughput), the plan has no time or cost (GP406)."""
    hardware = resolved.hardware
    precision = resolved.precision
    if precision is None:
        precision, why = auto_precision(hardware, resolved.precisions)
        if precision is None:
            notes.diag(codes.NO_TRAINING_FORMAT, why, "budget.hardware")
            raise SpecError(notes.diagnostics, spec.sources)
        notes.reason("train.precision", precision.key, why)
    if resolved.adaptation.trains and not hardware.peak_for(precision.compute_dtype)[1]:
        # No quoted format stands in (`Hardware.peak_for`): memory is answered, time is not.
        what = "no throughput" if not hardware.peak_flops else f"no floating-point throughput for {precision.compute_dtype}"
        notes.diag(
            codes.NO_THROUGHPUT,
            f"{hardware.key} quotes {what}: the plan answers memory, but has no training time or cost",
            "budget.hardware",
            hint=f"add the device's dense {precision.compute_dtype} peak, e.g. `{precision.compute_dtype} = 150 TFLOP/s`",
        )
    return precision


def _optimizer_state(project: Project, resolved: Resolved, precision: Precision, notes: Notes) -> str:
    """The optimizer state's dtype (`estimate.memory.optimizer_state_dtype`), with its reason."""
    optimizer = resolved.optimizer
    requested = project.train.optimizer_state
    dtype = optimizer_state_dtype(optimizer.state_dtype, precision.optimizer_state_dtype, requested)
    if requested:
        why = "given in the spec"
    elif optimizer.state_dtype != "fp32":
        why = f"the format of optimizer `{optimizer.key}`"
    else:
        why = f"precision `{precision.key}` keeps optimizer moments in {dtype} (set train.optimizer_state to change it)"
    if optimizer.state_bytes > 0:
        notes.reason("train.optimizer_state", dtype, why)
    return dtype


def _devices_fixed(project: Project, notes: Notes) -> int | None:
    devices = project.budget.devices
    if isinstance(devices, int) and not is_auto(devices):
        return devices
    if devices is None and project.budget.time is None:
        notes.reason("budget.devices", 1, "the budget names one device and no time limit")
        return 1
    return None
