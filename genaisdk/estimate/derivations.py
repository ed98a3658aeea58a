"""Named terms of the parallel-layout estimates, for explanations (`genai explain SPEC time`,
`SPEC parallelism`): each term is `name = formula = substituted = value unit` with its
source, computed from the same functions the search and the plan use, for one layout.

The units are those of the plan's derivation terms: 's', 'bytes', 'params', 'FLOPs',
'FLOP/s', '' (a plain number).
"""

from __future__ import annotations

import attrs
import numpy as np

from genaisdk.dims import Dimensions
from genaisdk.estimate.parallel import RECOMPUTE_CODES, every_stage_memory, in_flight, micro_batches, stage_layers, stage_params
from genaisdk.estimate.steptime import StepTime


@attrs.frozen(kw_only=True)
class NamedTerm:
    """One line of a derivation (the plan's `Term` fields, without depending on the plan)."""

    name: str
    formula: str
    substituted: str
    value: float
    unit: str = ""
    source: str = ""


def _si(value: float, unit: str) -> str:
    """A number in engineering notation with its unit: 117 MB, 180 GB/s, 45.2 ms."""
    value = float(value)
    if unit == "s":
        for scale, suffix in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
            if abs(value) >= scale or scale == 1e-6:
                return f"{value / scale:.3g} {suffix}"
    for scale, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}".strip()


def _at(array, index) -> float:
    return float(np.asarray(array)[index]) if np.ndim(array) else float(array)


_SOURCES = {
    "schedule": "Narayanan et al. 2021, Sec. 2.2",
    "products": "Calculon (Isaev et al. 2023) efficiency tables; genaisdk.estimate.efficiency",
    "collective": "ring volumes, Patarasuk & Yuan 2009; link efficiency, Calculon",
    "tensor": "Shoeybi et al. 2019, Sec. 3; Korthikanti et al. 2022, Sec. 4.2.2",
    "zero": "Rajbhandari et al. 2020, Sec. 7",
    "mfu": "Chowdhery et al. 2022, App. B",
}


def step_time_terms(step: StepTime, index=()) -> list[NamedTerm]:
    """The step time of the layout at `index` of `step`'s arrays, term by term (module
    docstring of `genaisdk.estimate.steptime` for each formula)."""
    d = {k: _at(v, index) for k, v in step.details.items()}
    parts = {k: _at(v, index) for k, v in step.parts.items()}
    m = _at(step.micro_batches, index)
    t, p, dp, v = d["tensor"], d["pipeline"], d["data"], d["virtual_stages"]
    stage = _at(step.stage_seconds, index)
    seconds = _at(step.seconds, index)
    devices = _at(step.devices, index)
    peak = _at(step.peak_flops, index)
    model = _at(step.model_flops, index)
    achieved = model / (seconds * devices)
    rank = d.get("lora_rank", 0.0)
    terms = [
        NamedTerm(name="micro-batches", formula="m = global batch / (d × b)",
                  substituted=f"m = {m * dp * d['micro_batch']:.0f} / ({dp:.0f} × {d['micro_batch']:.0f})",
                  value=m, source=_SOURCES["schedule"]),
        NamedTerm(name="layer forward", formula="Σ products F/(η(F)·peak) + B/(η(B)·bandwidth) + element-wise traffic"
                  + (" + the adapters' rank-r products (+ a k-bit base's dequantization)" if rank else ""),
                  substituted=f"one layer, {d['tokens']:.0f} tokens, tensor parallel {t:.0f}" + (f", LoRA rank {rank:.0f}" if rank else ""),
                  value=d["layer_forward"], unit="s", source=_SOURCES["products"]),
        NamedTerm(name="layer backward",
                  formula="2 × the forward's products and traffic (fused attention 2.5×)" if not rank else
                  "the frozen products' input gradients (1 ×; no weight gradients) + 2 × traffic, attention and the adapters' products",
                  substituted="2 × products + 2 × traffic" if not rank else "1 × frozen products + 2 × the rest",
                  value=d["layer_backward"], unit="s",
                  source=_SOURCES["products"] + ("; Hu et al. 2021, Sec. 4.2" if rank else "")),
        NamedTerm(name="tensor-parallel collective", formula="2·(t−1)/t × b·s·h·bytes / bandwidth(t)",
                  substituted=f"2·{t - 1:.0f}/{t:.0f} × {_si(d['collective_bytes'], 'B')} / {_si(d['tensor_bandwidth'], 'B/s')}"
                  if t > 1 else "t = 1: none",
                  value=d["collective_seconds"] if t > 1 else 0.0, unit="s", source=_SOURCES["collective"]),
        NamedTerm(name="stage time", formula="T = (compute + recompute + tensor parallel + transfers) / m, slowest stage",
                  substituted=f"stage {d['most_loaded_stage']:.0f}, {d['stage_layers']:.0f} layers", value=stage, unit="s",
                  source=_SOURCES["schedule"]),
        NamedTerm(name="compute", formula="m × (layers × (forward + backward) + embedding/output + gradient accumulation)",
                  substituted=f"{m:.0f} × ({d['stage_layers']:.0f} × ({_si(d['layer_forward'], 's')} + "
                              f"{_si(d['layer_backward'], 's')}) + …)",
                  value=parts["compute"], unit="s", source=_SOURCES["products"]),
        NamedTerm(name="recompute", formula="m × layers × recomputed forward per layer",
                  substituted=f"{m:.0f} × {d['stage_layers']:.0f} × {_si(d['layer_recompute'], 's')}",
                  value=parts["recompute"], unit="s", source="Korthikanti et al. 2022, Sec. 5"),
        NamedTerm(name="tensor parallel", formula="m × (4 per layer, 5 with sequence parallelism, + embedding/output) × collective",
                  substituted=f"{m:.0f} × … × {_si(d['collective_seconds'], 's')}" if t > 1 else "t = 1: none",
                  value=parts["tensor_parallel"], unit="s", source=_SOURCES["tensor"]),
        NamedTerm(name="pipeline transfers", formula="m × 2v × b·s·h·bytes / t / bandwidth",
                  substituted=f"{m:.0f} × 2·{v:.0f} × {_si(d['collective_bytes'] / t, 'B')} / "
                              f"{_si(d['transfer_bandwidth'], 'B/s')}" if p > 1 else "p = 1: none",
                  value=parts["pipeline_transfer"], unit="s", source="Narayanan et al. 2021, Sec. 4.1"),
        NamedTerm(name="bubble", formula="(p − 1)/v × T", substituted=f"({p:.0f} − 1)/{v:.0f} × {_si(stage, 's')}",
                  value=parts["bubble"], unit="s", source=_SOURCES["schedule"]),
        NamedTerm(name="data parallel", formula="volume per device / bandwidth(d), what the backward pass does not hide",
                  substituted=f"{_si(d['data_bytes'], 'B')} / {_si(d['data_bandwidth'], 'B/s')}" if dp > 1 else "d = 1: none",
                  value=parts["data_parallel"], unit="s", source=_SOURCES["zero"]),
        NamedTerm(name="optimizer step", formula="parameters × (2·(state + master) + gradient + weight) bytes / (η·bandwidth)",
                  substituted=f"{_si(d['optimizer_bytes'], 'B')} of memory traffic", value=parts["optimizer"], unit="s",
                  source="genaisdk.estimate.efficiency"),
    ]
    if d.get("host_bytes", 0.0) > 0:
        terms.append(NamedTerm(
            name="offload", formula="bytes over the host link per step / its bandwidth, none hidden (the host's own optimizer step is not timed)",
            substituted=f"{_si(d['host_bytes'], 'B')} / {_si(d['host_bandwidth'], 'B/s')}" if d.get("host_bandwidth") else
            f"{_si(d['host_bytes'], 'B')}; the device's host link is unknown: not timed",
            value=parts.get("offload", 0.0), unit="s", source="Ren et al. 2021 (ZeRO-Offload), Sec. 4.1"))
    modelled = seconds - parts.get("framework", 0.0)
    step_formula = "compute + recompute + tensor parallel + transfers + bubble + data parallel + optimizer"
    if parts.get("offload", 0.0) > 0.0:
        step_formula += " + offload"
    if parts.get("framework", 0.0) > 0.0:
        efficiency = modelled / seconds
        terms.append(NamedTerm(
            name="framework", formula="(the parts above) × (1/efficiency − 1), the software's measured throughput against Megatron-LM's",
            substituted=f"{_si(modelled, 's')} × (1/{efficiency:.2f} − 1)", value=parts["framework"], unit="s",
            source="genaisdk.estimate.frameworks"))
        step_formula += " + framework"
    terms += [
        NamedTerm(name="step", formula=step_formula,
                  substituted=" + ".join(_si(parts[k], "s") for k in parts if k not in ("framework", "offload") or parts[k] > 0.0),
                  value=seconds, unit="s"),
        NamedTerm(name="achieved FLOP/s per device", formula="model FLOPs / (step × devices)",
                  substituted=f"{model:.3e} / ({_si(seconds, 's')} × {devices:.0f})", value=achieved, unit="FLOP/s",
                  source=_SOURCES["mfu"]),
        NamedTerm(name="MFU", formula="achieved FLOP/s / peak", substituted=f"{_si(achieved, 'FLOP/s')} / {_si(peak, 'FLOP/s')}",
                  value=achieved / peak, source=_SOURCES["mfu"]),
    ]
    return terms


def parallelism_terms(dims: Dimensions, *, family: str = "decoder", **layout) -> list[NamedTerm]:
    """Per-device memory of every pipeline stage of one layout (scalar arguments, those of
    `genaisdk.estimate.parallel.stage_memory` without `stage`), term by term: the layout,
    layers and micro-batches in flight per stage, parameters per device, each stage's peak,
    and the most loaded stage, the device's figure."""
    t = int(layout.get("tensor_parallel", 1))
    p = int(layout.get("pipeline_parallel", 1))
    d = int(layout.get("data_parallel", 1))
    v = int(layout.get("virtual_stages", 1))
    m = float(micro_batches(global_batch=layout["global_batch"], data_parallel=d, micro_batch=layout["micro_batch"]))
    stages = np.arange(p)
    layers = stage_layers(dims.layers, pipeline_parallel=p, virtual_stages=v, stage=stages)
    flight = in_flight(pipeline_parallel=p, micro_batches=m, virtual_stages=v, stage=stages)
    params = stage_params(dims, family=family, tensor_parallel=t, pipeline_parallel=p)
    memory = every_stage_memory(dims, family=family, **layout)
    totals = np.atleast_1d(memory.total)
    worst = int(np.argmax(totals))
    recompute = layout.get("recompute", "selective")
    if not isinstance(recompute, str):
        recompute = {code: kind for kind, code in RECOMPUTE_CODES.items()}[int(recompute)]
    schedule = "1F1B" if v == 1 else f"interleaved, {v} chunks per stage"
    terms = [
        NamedTerm(name="devices", formula="tensor × pipeline × data", substituted=f"{t} × {p} × {d}", value=t * p * d,
                  source="Narayanan et al. 2021, Sec. 3"),
        NamedTerm(name="layers per stage", formula="L layers in p·v chunks, chunk j on stage j mod p",
                  substituted=", ".join(f"{x:.0f}" for x in layers), value=float(layers[0])),
        NamedTerm(name="micro-batches in flight", formula="min(p − r, m)" if v == 1 else "min(2(p−r−1) + (v−1)p + 1, m·v) / v",
                  substituted=f"{schedule}, m = {m:.0f}: " + ", ".join(f"{x:.3g}" for x in flight), value=float(flight[0]),
                  source="Narayanan et al. 2021, Sec. 2.2; Megatron-LM's interleaved warm-up"),
        NamedTerm(name="parameters per layer per device", formula="one block split over t (heads, FFN, K/V replicated below t K/V heads), norms whole",
                  substituted=f"t = {t}, each of the {dims.layers} layers", value=float(params.block), unit="params",
                  source="Shoeybi et al. 2019, Sec. 3"),
        NamedTerm(name="first stage extra", formula="token embedding / t + position tables", substituted="embedding",
                  value=float(params.first_extra), unit="params"),
        NamedTerm(name="last stage extra", formula="final norm + output projection / t (tied: a copy when p > 1)",
                  substituted="output layer", value=float(params.last_extra), unit="params"),
    ]
    for r in range(p):
        terms.append(NamedTerm(
            name=f"stage {r} memory",
            formula="weights + gradients + optimizer + activations + overheads (peak phase)",
            substituted=(f"{_si(np.atleast_1d(memory.weights)[r], 'B')} + {_si(np.atleast_1d(memory.gradients)[r], 'B')} + "
                         f"{_si(np.atleast_1d(memory.optimizer)[r], 'B')} + {_si(np.atleast_1d(memory.activations)[r], 'B')} "
                         f"({recompute} recomputation) + overheads"),
            value=float(totals[r]), unit="bytes", source="Korthikanti et al. 2022, Table 2; Rajbhandari et al. 2020",
        ))
    terms.append(NamedTerm(name="per device", formula="the most loaded stage", substituted=f"stage {worst}",
                           value=float(totals[worst]), unit="bytes"))
    return terms
