"""Stage 2: what every later stage reads, decided once and frozen: the precision
(`precision = auto`), the MFU, the peak FLOP/s and price of one device, the device count
when the spec fixes it, the training context and the vocabulary."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from genaisdk.core import codes
from genaisdk.diagnostics import SpecError
from genaisdk.estimate import constants
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
    """Dense peak FLOP/s of one device at the precision's compute dtype."""
    price: float | None
    """USD per device-hour: the spec's `price_per_hour`, else the hardware record's."""
    devices_fixed: int | None
    """The device count when the spec fixes it (or implies one: no count and no time)."""
    context: int
    """The training sequence length before `context = auto` is searched."""
    vocab: int | None

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
    return PlanContext(
        spec=spec,
        registry=registry,
        resolved=resolved,
        precision=precision,
        mfu=mfu,
        peak=float(hardware.peak_flops.get(precision.compute_dtype, 0.0)),
        price=price,
        devices_fixed=_devices_fixed(project, notes),
        context=context_of(project.model, resolved),
        vocab=project.model.vocab or project.data.vocab,
    )


def _mfu(project: Project, notes: Notes) -> float:
    if project.train.mfu is not None:
        notes.reason("train.mfu", project.train.mfu, "given in the spec")
        return float(project.train.mfu)
    notes.reason(
        "train.mfu",
        constants.DEFAULT_MFU,
        "default: PaLM Table 3 reports 21-46% MFU for large runs; 40% is what current GPU stacks with flash attention reach",
    )
    notes.assume("mfu", constants.DEFAULT_MFU, "Chowdhery et al. 2022 (PaLM), Table 3", "set train.mfu to change it")
    return constants.DEFAULT_MFU


def _precision(spec: Spec, resolved: Resolved, notes: Notes) -> Precision:
    """The spec's precision, or for `auto` the best the hardware computes in. The
    validation layer has checked that the hardware runs it (GS306); this re-checks for a
    plan of a method that trains nothing, where the peak only dates a serving replica."""
    hardware = resolved.hardware
    precision = resolved.precision
    if precision is None:
        precision, why = auto_precision(hardware, resolved.precisions)
        if precision is None:
            notes.diag(codes.NO_PEAK_FOR_PRECISION, why, "budget.hardware")
            raise SpecError(notes.diagnostics, spec.source)
        notes.reason("train.precision", precision.key, why)
    if resolved.adaptation.trains and not hardware.peak_flops:
        notes.diag(
            codes.NO_THROUGHPUT,
            f"{hardware.key} quotes no throughput: the plan answers memory, but has no training time or cost",
            "budget.hardware",
            hint=f"add the device's dense {precision.compute_dtype} peak, e.g. `{precision.compute_dtype} = 150 TFLOP/s`",
        )
    elif resolved.adaptation.trains and precision.compute_dtype not in hardware.peak_flops:
        supported = ", ".join(sorted(hardware.peak_flops))
        notes.diag(
            codes.NO_PEAK_FOR_PRECISION,
            f"{hardware.key} has no {precision.compute_dtype} arithmetic for precision `{precision.key}`",
            "train.precision",
            hint=f"{hardware.key} computes in: {supported}",
        )
        raise SpecError(notes.diagnostics, spec.source)
    return precision


def _devices_fixed(project: Project, notes: Notes) -> int | None:
    devices = project.budget.devices
    if isinstance(devices, int) and not is_auto(devices):
        return devices
    if devices is None and project.budget.time is None:
        notes.reason("budget.devices", 1, "the budget names one device and no time limit")
        return 1
    return None
