"""The derivations `genai explain` prints: each number of the plan as its formula, the
formula with the values in, and the result.

The result of every term is the number the estimators returned (the plan's own number), and
the substituted operands are the same inputs the estimators were given; where the
expression is a plain product, quotient or sum, `Term.check` holds it evaluated from those
operands, so a derivation that drifted from its estimator shows up (a test asserts
`check == value` for every term of every example spec).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs
import numpy as np

from genaisdk.core.numbers import fmt_bytes, fmt_num, fmt_recompute
from genaisdk.estimate import activations as act
from genaisdk.estimate import flops as flops_math
from genaisdk.estimate import params as params_math
from genaisdk.estimate import quantization as quant
from genaisdk.estimate.adaptation import ADAPTER_PRECISION_SOURCE as ADAPTER_SOURCE
from genaisdk.estimate.adaptation import adapter_state_bytes
from genaisdk.estimate.constants import PF_DAY, SECONDS_PER_DAY, SECONDS_PER_HOUR
from genaisdk.estimate.constants import DTYPE_BYTES
from genaisdk.estimate.inference import KV_FACTOR, LOGIT_BYTES, widest_values
from genaisdk.estimate.memory import optimizer_state_bytes, optimizer_state_dtype
from genaisdk.estimate.scaling import CHINCHILLA
from genaisdk.estimate.derivations import NamedTerm, parallelism_terms, step_time_terms
from genaisdk.estimate.parallel import layer_activation_parts, stage_activations, stage_memory, stage_parameters
from genaisdk.planning.grid import activation_parts, chosen_arguments, chosen_step, memory_for, precision_arrays, strategy_arrays
from genaisdk.plans import Term

if TYPE_CHECKING:  # pragma: no cover
    from genaisdk.planning.fit import Fitted
    from genaisdk.planning.stages import Stages
    from genaisdk.plans import Plan


num = fmt_num
"""Operands as people write them (`genaisdk.core.numbers.fmt_num`)."""


def _product(values: Sequence[float], divisors: Sequence[float] = ()) -> float:
    out = 1.0
    for v in values:
        out *= float(v)
    for v in divisors:
        out /= float(v)
    return out


def product_term(
    name: str,
    formula: str,
    factors: Sequence[tuple[float, str]],
    value: float,
    unit: str,
    *,
    divisors: Sequence[tuple[float, str]] = (),
    source: str = "",
) -> Term:
    """A term whose value is Π factors / Π divisors; each operand with a label ("B (bf16)")."""
    text = " × ".join(f"{num(v)}{(' ' + label) if label else ''}" for v, label in factors)
    if divisors:
        text += " / " + " / ".join(f"{num(v)}{(' ' + label) if label else ''}" for v, label in divisors)
    check = _product([v for v, _ in factors], [v for v, _ in divisors])
    return Term(name=name, formula=formula, substituted=text, value=float(value), unit=unit, source=source, check=check)


def sum_term(name: str, formula: str, parts: Sequence[tuple[float, str]], value: float, unit: str, source: str = "") -> Term:
    fmt = fmt_bytes if unit == "bytes" else num
    text = ""
    for i, (v, label) in enumerate(parts):
        sign = ("− " if i == 0 else " − ") if v < 0 else ("" if i == 0 else " + ")
        text += f"{sign}{fmt(abs(v))}{(' ' + label) if label else ''}"
    return Term(name=name, formula=formula, substituted=text, value=float(value), unit=unit, source=source, check=float(sum(v for v, _ in parts)))


def value_term(name: str, formula: str, value: float, unit: str, source: str = "", substituted: str = "") -> Term:
    return Term(name=name, formula=formula, substituted=substituted or formula, value=float(value), unit=unit, source=source)


def derivations(plan: Plan, stages: Stages) -> dict[str, tuple[Term, ...]]:
    """Per topic, the terms of each number of `plan`, from the stages it was made from."""
    out = {
        "params": _params(plan, stages),
        "flops": _flops(plan, stages),
        "memory": _memory(plan, stages),
        "activations": _activations(plan, stages),
        "scaling": _scaling(plan),
        "parallelism": _parallelism(plan, stages),
        "time": _time(plan, stages),
        "cost": _cost(plan, stages),
        "inference": _inference(plan, stages),
    }
    return {k: tuple(v) for k, v in out.items() if v}


def _params(plan: Plan, stages: Stages) -> list[Term]:
    dims = stages.dims
    m = plan.model
    terms = []
    family = m.family
    if family != "encoder_decoder":
        q, kv = dims.heads * dims.d_head, dims.n_kv_heads * dims.d_head
        attn = params_math.attention_params(dims)
        bias = (q + 2 * kv + dims.d_model) if dims.biases else 0
        terms.append(
            Term(
                name="attention per block",
                formula="d·H·Q + 2·d·K·Q + H·Q·d (+ biases)",
                substituted=f"{dims.d_model}·{q} + 2·{dims.d_model}·{kv} + {q}·{dims.d_model}" + (f" + {bias}" if bias else ""),
                value=float(attn),
                unit="params",
                source="Vaswani et al. 2017; K = kv heads (Ainslie et al. 2023)",
                check=float(dims.d_model * q + 2 * dims.d_model * kv + q * dims.d_model + bias),
            )
        )
        ffn = params_math.ffn_params(dims)
        mats = 3 if dims.ffn == "gated" else 2
        fbias = ((2 * dims.d_ff + dims.d_model) if dims.ffn == "gated" else (dims.d_ff + dims.d_model)) if dims.biases else 0
        terms.append(
            Term(
                name="FFN per block",
                formula=f"{mats}·d·d_ff (+ biases)" + (" (gated: gate, up, down)" if mats == 3 else ""),
                substituted=f"{mats}·{dims.d_model}·{dims.d_ff}" + (f" + {fbias}" if fbias else ""),
                value=float(ffn),
                unit="params",
                source="Shazeer 2020 (gated)" if mats == 3 else "Vaswani et al. 2017, Eq. 2",
                check=float(mats * dims.d_model * dims.d_ff + fbias),
            )
        )
    groups: dict[str, float] = {}
    for key, value in m.params_breakdown.items():
        groups[key] = groups.get(key, 0.0) + float(value)
    parts = sorted(groups.items(), key=lambda kv: -kv[1])
    terms.append(
        sum_term(
            "total parameters",
            "Σ parts" + ("" if dims.tied_embeddings else " (untied output projection counted)"),
            [(v, k) for k, v in parts],
            m.params,
            "params",
            source="exact count, genaisdk.estimate.params",
        )
    )
    if m.embedding_params:
        terms.append(value_term("embedding parameters", "vocabulary and position tables (Kaplan et al. 2020 leave them out of N)", m.embedding_params, "params"))
    lora = stages.trainable.lora
    if lora is not None:
        terms.append(
            value_term(
                "trainable (adapters)",
                "r · Σ (d_in + d_out) over adapted matrices, every block",
                stages.trained_params,
                "params",
                source="Hu et al. 2021, Sec. 4.1",
                substituted=f"r = {lora.rank} on {', '.join(lora.targets)}",
            )
        )
    return terms


def _flops(plan: Plan, stages: Stages) -> list[Term]:
    c, m, d = plan.compute, plan.model, plan.data
    terms = []
    if not c.model_flops:
        return [value_term("training FLOPs", "nothing trains or no data", 0.0, "FLOPs")]
    n = m.active_params
    terms.append(
        product_term(
            "training FLOPs C", "6 · N · D", [(6, ""), (n, "params"), (d.tokens, "tokens")], c.flops, "FLOPs",
            source="Kaplan et al. 2020, Sec. 2.1; Brown et al. 2020, Table D.1",
        )
    )
    from genaisdk.estimate.flops import model_flops_per_token

    itemized = model_flops_per_token(stages.dims, family=m.family, context=m.context)
    per_token = c.model_flops / d.tokens
    dense, attention = float(itemized.dense), float(itemized.attention)
    if m.family != "encoder_decoder":
        dims = stages.dims
        terms.append(
            product_term(
                "attention FLOPs per token",
                "12 · L · H · Q · T",
                [(12, ""), (dims.layers, "layers"), (dims.heads, "heads"), (dims.d_head, "head size"), (m.context, "context")],
                attention,
                "FLOPs",
                source="Chowdhery et al. 2022 (PaLM), App. B; not halved for causal masking",
            )
        )
    lora = stages.trainable.lora if stages.trainable.trains else None
    skipped = adapters = 0.0
    if lora is not None:
        from genaisdk.estimate.adaptation import lora_flops_per_token

        skipped, adapters = lora_flops_per_token(stages.dims, rank=lora.rank, targets=lora.targets, family=stages.trainable.family,
                                                 context=m.context)
    if lora is not None and abs(dense + attention - skipped + adapters - per_token) <= 1e-6 * per_token:
        terms.append(
            sum_term("model FLOPs per token", "6·N_matmul + attention − 2·N_matmul (the frozen base's weight gradients) + 6·N_adapters",
                     [(dense, "dense"), (attention, "attention"), (-skipped, "frozen base"), (adapters, "adapters")], per_token, "FLOPs",
                     source="Chowdhery et al. 2022 (PaLM), App. B; Hu et al. 2021, Sec. 4.2 (genaisdk.estimate.adaptation)")
        )
    elif abs(dense + attention - per_token) <= 1e-6 * per_token:
        terms.append(
            sum_term("model FLOPs per token", "6·N_matmul + attention", [(dense, "dense"), (attention, "attention")], per_token, "FLOPs",
                     source="Chowdhery et al. 2022 (PaLM), App. B")
        )
    else:
        terms.append(value_term("model FLOPs per token", "the architecture's own count", per_token, "FLOPs"))
    terms.append(product_term("model FLOPs", "per token · D", [(per_token, "FLOPs/token"), (d.tokens, "tokens")], c.model_flops, "FLOPs"))
    extra = float(flops_math.hardware_flops_per_token(stages.dims, family=m.family, context=m.context, recompute=plan.train.recompute).recompute)
    terms.append(
        sum_term(
            "hardware FLOPs",
            f"model FLOPs + recomputation ({plan.train.recompute}) · D",
            [(c.model_flops, "model"), (extra * d.tokens, "recomputed")],
            c.hardware_flops,
            "FLOPs",
            source="Korthikanti et al. 2022, Sec. 6",
        )
    )
    terms.append(product_term("petaflop/s-days", "C / 8.64e19", [(c.flops, "FLOPs")], c.pf_days, "PF-days", divisors=[(PF_DAY, "FLOPs per PF-day")],
                              source="Brown et al. 2020, Table D.1"))
    return terms


def _chosen_memory(stages: Stages):
    """training_memory for the chosen configuration, through the same call the grid made
    (with parallel layouts: `stage_memory` of the most loaded stage)."""
    f = stages.fitted
    assert f is not None
    c = f.choice
    if f.case.layouts:
        common, memory = chosen_arguments(f.case, f.grid, c.index)
        stage = float(f.result.most_loaded_stage[c.index])
        return stage_memory(f.case.dims, stage=stage, **common, **memory), None
    arrays = precision_arrays(
        [c.precision], stages.ctx.hardware, axis=0, ndim=1, optimizer=f.case.optimizer, optimizer_state=f.case.optimizer_state
    )
    prec = {k: v.reshape(1) for k, v in arrays.items()}
    strat = {k: v.reshape(1) for k, v in strategy_arrays([c.strategy], axis=0, ndim=1).items()}
    mem, parts = memory_for(f.case, precision_arrays=prec, strategy_arrays=strat, dp=np.array([float(c.devices)]), micro_batch=np.array([float(c.micro_batch)]), recompute=c.recompute)
    return mem, parts


def _resident(f: Fitted) -> tuple[float, float, int, str]:
    """(parameters on one device, of which trained, the degree state is sharded over, what
    the parameters are): the model's on every device without model parallelism; the most
    loaded pipeline stage's on one tensor-parallel rank with it."""
    c = f.choice
    if not f.case.layouts:
        return f.case.params, f.case.trainable, c.devices, "devices"
    lay = c.layout
    stage = float(f.result.most_loaded_stage[c.index])
    params = float(stage_parameters(f.case.dims, family=f.case.family, tensor_parallel=lay.tensor, pipeline_parallel=lay.pipeline,
                                    virtual_stages=lay.virtual_stages, stage=stage))
    return params, params, c.data_parallel, "data-parallel replicas"


def _memory(plan: Plan, stages: Stages) -> list[Term]:
    f = stages.fitted
    b = plan.memory.per_device
    if f is None:
        return [
            value_term("weights", "params × bytes per weight", b.weights, "bytes"),
            value_term("total", "one serving replica (prompting only)", b.total, "bytes"),
        ]
    c = f.choice
    p, s = c.precision, c.strategy
    mem, _ = _chosen_memory(stages)
    resident, trainable, dp, over = _resident(f)
    kept = f.case.kept_params
    frozen = resident - trainable - kept
    # What a trained parameter costs: the precision's bytes, or LoRA adapters' own (fp32
    # under mixed precision, no separate master: `adapter_state_bytes`).
    tw, tg, tm = (float(x) for x in (
        adapter_state_bytes(p.weight_bytes, p.gradient_bytes, p.master_bytes)
        if f.case.adapters else (p.weight_bytes, p.gradient_bytes, p.master_bytes)
    ))
    trained = "adapters" if f.case.adapters else "trainable"
    terms = []
    if f.case.layouts and c.layout.model_parallel > 1:
        lay = c.layout
        terms.append(value_term(
            "parameters on this device",
            "the most loaded stage's layers and embedding / output layer, split over t (`genai explain SPEC parallelism`)",
            resident, "params", source="Shoeybi et al. 2019, Sec. 3; Narayanan et al. 2021",
            substituted=f"stage {int(f.result.most_loaded_stage[c.index])} of {lay.pipeline}, tensor parallel {lay.tensor}",
        ))
    w_div = [(dp, f"{over} (sharded)")] if s.shards_weights else []
    if frozen > 0.5:
        fb = f.case.frozen_weight_bytes if f.case.frozen_weight_bytes is not None else p.weight_bytes
        kept_text = f" + {num(kept)} unquantized × {num(p.weight_bytes)} B" if kept else ""
        terms.append(
            Term(
                name="weights",
                formula=f"{trained} × bytes + frozen × frozen bytes"
                + (" + unquantized (embeddings, norms, output) × bytes" if kept else "")
                + (" / devices" if s.shards_weights else ""),
                substituted=f"({num(trainable)} × {num(tw)} B + {num(frozen)} × {num(fb)} B{kept_text})"
                + (f" / {dp}" if s.shards_weights else ""),
                value=b.weights,
                unit="bytes",
                check=(trainable * tw + kept * p.weight_bytes + frozen * fb) / (dp if s.shards_weights else 1) * (0 if s.offload_weights else 1),
                source="; ".join(
                    x for x in (
                        "bitsandbytes quantizes linear layers only (transformers `replace_with_bnb_linear`)" if kept else "",
                        ADAPTER_SOURCE if f.case.adapters and tw != p.weight_bytes else "",
                    ) if x
                ),
            )
        )
    else:
        terms.append(
            product_term(
                "weights",
                "params × bytes per weight" + (" / devices" if s.shards_weights else ""),
                [(resident, "params"), (p.weight_bytes, f"B ({p.key})")] + ([(0, "(offloaded to host)")] if s.offload_weights else []),
                b.weights,
                "bytes",
                divisors=w_div,
                source="Rajbhandari et al. 2020 (ZeRO), Sec. 3.1" + ("; stage 3 shards it" if s.shards_weights else ""),
            )
        )
    offload_grads = s.offload_optimizer and s.shards_gradients
    terms.append(
        product_term(
            "gradients",
            "trainable params × gradient bytes" + (" / devices" if s.shards_gradients else ""),
            [(trainable, "params"), (tg, f"B ({'fp32 adapter' if tg != p.gradient_bytes else p.key} gradients)")]
            + ([(0, "(offloaded to host)")] if offload_grads else []),
            b.gradients,
            "bytes",
            divisors=[(dp, f"{over} (sharded)")] if s.shards_gradients else [],
            source="ZeRO stage 2 shards them" if s.shards_gradients else "kept whole on every device",
        )
    )
    opt = stages.ctx.resolved.optimizer
    state_dtype = optimizer_state_dtype(opt.state_dtype, p.optimizer_state_dtype, f.case.optimizer_state)
    state_bytes = float(optimizer_state_bytes(opt.state_bytes, opt.state_dtype, state_dtype))
    terms.append(
        product_term(
            "optimizer",
            "trainable params × (optimizer state + master copy) bytes" + (" / devices" if s.shards_optimizer else ""),
            [(trainable, "params"), (state_bytes + tm, f"B ({opt.key} {num(state_bytes)} in {state_dtype} + master {num(tm)})")]
            + ([(0, "(offloaded to host)")] if s.offload_optimizer else []),
            b.optimizer,
            "bytes",
            divisors=[(dp, f"{over} (sharded)")] if s.shards_optimizer else [],
            source=("the optimizer's state alone: the fp32 adapters are their own master copy" if f.case.adapters and tm != p.master_bytes
                    else "ZeRO's K (12 for mixed-precision Adam), Sec. 3.1") + ("; stage 1 shards it" if s.shards_optimizer else ""),
        )
    )
    per_param = float(tw + tg + state_bytes + tm)
    terms.append(
        sum_term(
            "model state per parameter" if not f.case.adapters else "model state per adapter parameter",
            "weight + gradient + optimizer state + master bytes (unsharded)",
            [(tw, "weight"), (tg, "gradient"), (state_bytes, f"optimizer state ({state_dtype})"), (tm, "master")],
            per_param,
            "B/param",
            source="fp32 Adam: 4 + 4 + 8 = 16; mixed-precision Adam: 2 + 2 + 12 = 16 (ZeRO, Sec. 3.1)"
            + ("; fp32 adapters under mixed precision: 4 + 4 + 8 (estimate.adaptation.adapter_state_bytes)" if f.case.adapters else ""),
        )
    )
    terms.append(
        sum_term(
            "activations",
            f"stored for backward + the larger of the loss buffers and the rebuilt layer (micro-batch {c.micro_batch}, {fmt_recompute(c.recompute)})",
            [(float(act_part), name) for name, act_part in _activation_groups(f).items()],
            b.activations,
            "bytes",
            source="Korthikanti et al. 2022 (see `genai explain SPEC activations`)",
        )
    )
    for name, value in b.overheads.items():
        terms.append(value_term(f"overhead: {name}", _OVERHEAD_FORMULA.get(name, name), value, "bytes"))
    phases = {k: float(np.ravel(v)[0]) for k, v in mem.phases.items()}
    worst = str(np.asarray(mem.worst_phase).ravel()[0])
    persistent = float(np.ravel(mem.persistent)[0])
    terms.append(
        sum_term(
            "persistent",
            "weights + optimizer + runtime (gradients are part of the phases that hold them)",
            [(b.weights, "weights"), (b.optimizer, "optimizer"), (b.overheads.get("runtime", 0.0), "runtime")],
            persistent,
            "bytes",
        )
    )
    frag = b.overheads.get("fragmentation", 0.0)
    terms.append(
        sum_term(
            "peak total",
            f"persistent + worst phase ({worst}) + fragmentation; phases: "
            + ", ".join(f"{k} {fmt_bytes(v)}" for k, v in phases.items()),
            [(persistent, "persistent"), (phases[worst], worst), (frag, "fragmentation")],
            b.total,
            "bytes",
            source="peak = persistent state + the worst transient phase, not a max of components",
        )
    )
    inference_weights = plan.model.params * p.weight_bytes
    terms.append(
        product_term(
            "training / inference weights",
            f"peak total / weights alone at {p.key}",
            [(b.total, "B")],
            b.total / inference_weights if inference_weights else 0.0,
            "x",
            divisors=[(inference_weights, "B")],
        )
    )
    return terms


_OVERHEAD_FORMULA = {
    "runtime": "CUDA context, cuBLAS and NCCL workspaces (an assumption, ~1 GB)",
    "gather_buffers": "~2 unsharded layers × weight bytes (FSDP / ZeRO-3 all-gather and prefetch)",
    "gradient_bucket": "one unsharded layer of gradients before its reduce-scatter",
    "step_buffers": "fp32 copy of the gradient partition for the optimizer step",
    "update_buffer": "the optimizer step's temporaries: trainable params × update bytes (Adam: sqrt(v̂) + ε at the state dtype)",
    "fragmentation": "5% of the allocated peak (caching allocator; an assumption)",
}


def _activation_groups(f: Fitted) -> dict[str, float]:
    c = f.choice
    if f.case.layouts:
        held = _held(f)
        stored, loss, rebuilt = float(held.stored), float(held.loss), float(held.backward)
    else:
        parts = activation_parts(f.case, micro_batch=c.micro_batch, recompute=c.recompute, bytes_per_value=c.precision.activation_bytes)
        stored, loss, rebuilt = float(act.stored_bytes(parts)), float(act.loss_bytes(parts)), float(act.backward_bytes(parts))
    # The loss buffers and the layer full recomputation rebuilds are never alive together.
    return {"stored": stored, ("loss buffers" if loss >= rebuilt else "rebuilt layer"): max(loss, rebuilt)}


_ACTIVATION_ARGS = (
    "family", "seq", "global_batch", "micro_batch", "tensor_parallel", "pipeline_parallel", "data_parallel",
    "virtual_stages", "sequence_parallel", "recompute", "flash", "activation_bytes",
)


def _held(f: Fitted):
    """`stage_activations` of the chosen configuration's most loaded stage."""
    common, _ = chosen_arguments(f.case, f.grid, f.choice.index)
    stage = float(f.result.most_loaded_stage[f.choice.index])
    return stage_activations(f.case.dims, stage=stage, **{k: common[k] for k in _ACTIVATION_ARGS})


def _stage_activations(plan: Plan, f: Fitted) -> list[Term]:
    """The activations of the most loaded pipeline stage's device, term by term."""
    c, lay = f.choice, f.choice.layout
    common, _ = chosen_arguments(f.case, f.grid, c.index)
    stage = int(f.result.most_loaded_stage[c.index])
    held = _held(f)
    parts = layer_activation_parts(
        f.case.dims, recompute=c.recompute, family=f.case.family, seq=f.case.seq, micro_batch=c.micro_batch, flash=f.case.flash,
        bytes_per_value=common["activation_bytes"], tensor_parallel=lay.tensor, sequence_parallel=lay.sequence_parallel,
    )
    layer, layers, flight = float(held.layer), float(held.layers), float(held.in_flight)
    first, last = stage == 0, stage == lay.pipeline - 1
    setting = f"micro-batch {c.micro_batch}, {fmt_recompute(c.recompute)}, tensor parallel {lay.tensor}" + (
        ", sequence parallel" if lay.sequence_parallel else "")
    terms = [
        value_term("one layer, one micro-batch", f"Korthikanti et al. 2022 per-layer accounting ({setting})", layer, "bytes",
                   source="Korthikanti et al. 2022, Table 2"),
        value_term("layers on this stage", "L layers in p·v chunks, chunk j on stage j mod p", layers, "",
                   substituted=f"stage {stage} of {lay.pipeline}, {lay.virtual_stages} chunk(s) per stage"),
        value_term("micro-batches in flight", "min(p − r, m) (1F1B); interleaved: min(2(p−r−1) + (v−1)p + 1, m·v) / v", flight, "",
                   source="Narayanan et al. 2021, Sec. 2.2"),
    ]
    stored = [(layer * layers * flight, "layers × in flight")]
    if first:
        stored.append((float(parts["embedding"]) * flight, "embedding dropout mask × in flight"))
    if last:
        stored.append((float(parts["final_norm"]), "final norm input"))
    terms.append(sum_term("stored for backward", "layer × layers × in flight (+ embedding on the first stage, final norm on the last)",
                          stored, float(held.stored), "bytes"))
    terms.append(value_term("logits buffers", "the loss's logits, last stage only" if lay.pipeline > 1 else "the loss's logits",
                            float(held.loss), "bytes"))
    terms.append(value_term("backward-only buffers", "the layer rebuilt by full recomputation", float(held.backward), "bytes"))
    # The logits are freed by the loss's backward before full recomputation rebuilds a layer.
    loss, rebuilt = float(held.loss), float(held.backward)
    terms.append(sum_term("activations", "stored + the larger of logits and backward-only (never alive together)",
                          [(float(held.stored), "stored"), (max(loss, rebuilt), "logits" if loss >= rebuilt else "backward-only")],
                          plan.memory.per_device.activations, "bytes"))
    return terms


def _activations(plan: Plan, stages: Stages) -> list[Term]:
    f = stages.fitted
    if f is None:
        return []
    if f.case.layouts and f.choice.layout.model_parallel > 1:
        return _stage_activations(plan, f)
    c = f.choice
    dims = f.case.dims
    parts = activation_parts(f.case, micro_batch=c.micro_batch, recompute=c.recompute, bytes_per_value=c.precision.activation_bytes)
    terms = [
        value_term(f"activations: {name}", _PART_FORMULA.get(name, name), float(np.asarray(value)), "bytes")
        for name, value in parts.items()
        if float(np.asarray(value)) > 0
    ]
    total = float(sum(float(np.asarray(v)) for v in parts.values()))
    terms.append(sum_term("activations (one micro-batch)", "Σ parts", [(float(np.asarray(v)), k) for k, v in parts.items() if float(np.asarray(v)) > 0], total, "bytes"))
    s, b, h, a = f.case.seq, c.micro_batch, dims.d_model, dims.heads
    layers = dims.layers + (dims.n_decoder_layers if plan.model.family == "encoder_decoder" else 0)
    closed = float(act.korthikanti_layer_bytes(seq=s, micro_batch=b, hidden=h, heads=a, recompute=c.recompute if c.recompute in act.RECOMPUTE_KINDS else "none"))
    formula = {"none": "s·b·h·(34 + 5·a·s/h)", "selective": "34·s·b·h", "full": "2·s·b·h"}.get(c.recompute, "")
    terms.append(
        product_term(
            "Korthikanti closed form (reference)",
            f"layers × {formula} (16-bit, multi-head, 4h FFN, dropout, materialized attention)",
            [(layers, "layers"), (closed, "B per layer")],
            layers * closed,
            "bytes",
            source="Korthikanti et al. 2022, Eq. 1, Sec. 5, Table 2",
        )
    )
    return terms


_PART_FORMULA = {
    "attention": "per layer s·b·(p·(h + 2·H·Q + 2·K·Q) + mask·h)",
    "attention_scores": "per layer a·s²·b·(2p + 1), or flash's a·s·b fp32 statistics",
    "ffn": "per layer s·b·(p·(h + 2·d_ff) + mask·h) (gated: h + 4·d_ff)",
    "norms": "per layer 2·p·s·b·h",
    "layer_inputs": "full recomputation: per layer p·s·b·h",
    "recompute_buffer": "one layer rebuilt during the backward pass",
    "cross_attention": "decoder cross-attention inputs and encoder K/V",
    "cross_attention_scores": "cross-attention scores (or flash statistics)",
    "encoder_output": "the encoder output feeding every cross-attention",
    "embedding": "embedding dropout mask, s·b·h bytes",
    "final_norm": "final norm input, p·s·b·h",
    "logits": "s·b·V at the activation precision",
    "logits_fp32": "s·b·V fp32 log-probabilities the cross-entropy saves",
    "loss_gradients": "s·b·V·8: fp32 gradients w.r.t. the log-probabilities and the logits",
    "lora_inputs": "per layer and adapted matrix s·b·(d_in·(p + mask) + r·p): the adapter's input copy, its dropout mask and A's output",
    "lora_inputs_rebuilt": "full recomputation: the adapters' inputs of the one layer rebuilt, s·b·Σ(d_in·(p + mask) + r·p)",
    "kbit_upcast": "a k-bit-prepared model's fp32 residual stream and norm outputs: 2 more bytes per value (PEFT prepare_model_for_kbit_training)",
    "kbit_upcast_rebuilt": "the same for the one layer rebuilt under full recomputation",
}


def _scaling(plan: Plan) -> list[Term]:
    s, m, d, c = plan.scaling, plan.model, plan.data, plan.compute
    n = m.active_params
    terms = []
    if plan.train.adaptation != "pretrain":
        # Compute-optimal sizes are for training from scratch; the plan JSON still carries
        # the numbers (the contract), but explaining them for an adaptation would mislead.
        return [value_term(
            "compute-optimal size", f"not applicable: `{plan.train.adaptation}` adapts a trained model, and Chinchilla's "
            "compute-optimal N and D are for pretraining from scratch (Hoffmann et al. 2022)", math.nan, "",
            substituted="see `genai explain SPEC flops` and `time` for what this run costs")]
    if c.flops:
        terms.append(
            Term(
                name="compute-optimal N",
                formula="sqrt(C / (6 · 20))",
                substituted=f"sqrt({num(c.flops)} / 120)",
                value=s.optimal_params,
                unit="params",
                source="Hoffmann et al. 2022, ~20 tokens per parameter (Table 3)",
                check=math.sqrt(c.flops / 120.0),
            )
        )
        terms.append(product_term("compute-optimal D", "20 · N_opt", [(20, ""), (s.optimal_params, "params")], s.optimal_tokens, "tokens"))
    if d.tokens:
        terms.append(product_term("tokens per parameter", "D / N", [(d.tokens, "tokens")], s.tokens_per_param, "", divisors=[(n, "params")]))
    if s.loss_tokens:
        fit = CHINCHILLA
        loss = fit.E + fit.A / n**fit.alpha + fit.B / s.loss_tokens**fit.beta
        basis = "" if plan.train.adaptation == "pretrain" else " (D: the base model's pretraining tokens)"
        terms.append(
            Term(
                name="Chinchilla fit",
                formula="E + A / N^α + B / D^β" + basis,
                substituted=f"{fit.E} + {fit.A} / {num(n)}^{fit.alpha} + {fit.B} / {num(s.loss_tokens)}^{fit.beta}",
                value=s.fit_loss if s.fit_loss is not None else loss,
                unit="nats/token",
                source=fit.source
                + ("" if s.loss_in_fit_range else "; N or D outside the fitted 70M-16B parameters, 5B-500B tokens: an extrapolation"),
                check=loss,
            )
        )
        uniform = math.log(plan.model.vocab)
        terms.append(
            Term(
                name="predicted loss",
                formula="min(fit, ln V): never worse than a uniform guess over the vocabulary",
                substituted=f"min({num(loss)}, ln {plan.model.vocab} = {num(uniform)})",
                value=s.predicted_loss,
                unit="nats/token",
                check=min(loss, uniform),
            )
        )
    if s.budget_flops:
        terms.append(value_term("budget FLOPs", "what the binding budget buys (model FLOPs)", s.budget_flops, "FLOPs"))
    return terms


def _term(t: NamedTerm) -> Term:
    return Term(name=t.name, formula=t.formula, substituted=t.substituted, value=t.value, unit=t.unit, source=t.source)


def _time(plan: Plan, stages: Stages) -> list[Term]:
    t, c = plan.time, plan.compute
    if not c.model_flops:
        return [value_term("seconds", "nothing to train", 0.0, "s")]
    if t.seconds is None:
        return [value_term("seconds", f"{plan.train.hardware} quotes no {stages.ctx.precision.compute_dtype} throughput: no time", math.nan, "s",
                           substituted="unknown (GP406)")]
    f = stages.fitted
    step = chosen_step(f.case, f.grid, f.choice.index) if f is not None else None
    terms: list[Term] = []
    if step is not None:
        terms += [_term(x) for x in step_time_terms(step)]
        batch_tokens = plan.train.global_batch_tokens or 0.0
        steps = plan.data.tokens / batch_tokens if batch_tokens else 0.0
        terms.append(product_term("optimizer steps", "tokens / (global batch × context)", [(plan.data.tokens, "tokens")], steps, "",
                                  divisors=[(batch_tokens, "tokens per step")]))
    if t.model == "step-time" and step is not None:
        terms.append(product_term("seconds", "optimizer steps × seconds per step", [(steps, "steps"), (float(step.seconds), "s")],
                                  t.seconds, "s", source="genaisdk.estimate.steptime (docs/parallelism.md)"))
        terms.append(product_term("MFU", "model FLOPs / (seconds × devices × peak)", [(c.model_flops, "FLOPs")], plan.train.mfu, "",
                                  divisors=[(t.seconds, "s"), (plan.train.devices, "devices"),
                                            (stages.ctx.peak, f"FLOP/s ({stages.ctx.precision.compute_dtype} peak)")],
                                  source="Chowdhery et al. 2022 (PaLM), App. B"))
    else:
        why = {"train.mfu": "the spec's train.mfu", "default-mfu": "the documented default MFU"}.get(t.model, "the MFU")
        terms.append(product_term(
            "seconds",
            f"model FLOPs / (devices × peak FLOP/s × MFU), at {why}",
            [(c.model_flops, "FLOPs")],
            t.seconds,
            "s",
            divisors=[(plan.train.devices, "devices"), (stages.ctx.peak, f"FLOP/s ({stages.ctx.peak_dtype or stages.ctx.precision.compute_dtype} peak)"), (plan.train.mfu, "MFU")],
            source="Chowdhery et al. 2022 (PaLM), App. B: the definition of MFU",
        ))
    terms += [
        product_term("days", "seconds / 86,400", [(t.seconds, "s")], t.days, "days", divisors=[(SECONDS_PER_DAY, "s/day")]),
        product_term(
            "device-hours", "seconds × devices / 3,600", [(t.seconds, "s"), (plan.train.devices, "devices")], t.gpu_hours, "h", divisors=[(SECONDS_PER_HOUR, "s/h")]
        ),
    ]
    return terms


def _parallelism(plan: Plan, stages: Stages) -> list[Term]:
    """The layout's devices, layers and micro-batches per stage, parameters per device and
    every stage's memory (`genaisdk.estimate.derivations.parallelism_terms`)."""
    f = stages.fitted
    if f is None:
        return []
    tr = plan.train
    if not f.case.layouts:
        return [value_term("devices", "data parallelism only: every device holds the whole model", tr.devices, "",
                           substituted=f"t 1 × p 1 × d {tr.devices}: {f.layouts_why}")]
    common, memory = chosen_arguments(f.case, f.grid, f.choice.index)
    family = common.pop("family")
    return [_term(x) for x in parallelism_terms(f.case.dims, family=family, **common, **memory)]


def _cost(plan: Plan, stages: Stages) -> list[Term]:
    hw = stages.ctx.hardware
    co, t = plan.cost, plan.time
    terms = []
    if co.usd is not None:
        terms.append(
            product_term("cost", "device-hours × price per device-hour", [(t.gpu_hours, "h"), (co.price_per_hour, "USD/h")], co.usd, "USD",
                         source=co.price_source or "hardware record")
        )
    elif co.price_per_hour is None:
        terms.append(value_term("cost", "no price per device-hour known", 0.0, "USD", source=hw.price_note))
    else:
        terms.append(value_term("cost", "no time, so no cost (GP406)", 0.0, "USD", source=co.price_source or ""))
    if co.energy_kwh is not None:
        terms.append(
            product_term(
                "energy",
                "devices × power × seconds / 3.6e6",
                [(plan.train.devices, "devices"), (hw.power_watts, "W"), (t.seconds, "s")],
                co.energy_kwh,
                "kWh",
                divisors=[(3.6e6, "J/kWh")],
                source="Patterson et al. 2021, Sec. 2 (rated power: an upper bound)",
            )
        )
    return terms


def _serving_weight_terms(plan: Plan, stages: Stages) -> list[Term]:
    """The serving weights: params × bytes for a dense format; for int8 or NF4 the codes,
    the quantization constants and the vectors kept in 16 bits, summed
    (`genaisdk.estimate.quantization.serving_weights`)."""
    i = plan.inference
    prec = stages.ctx.resolved.serve_precision
    fmt = quant.weight_format(prec.param_dtype)
    if fmt is None:
        return [product_term("weights", "params × serving bytes", [(plan.model.params, "params"), (prec.weight_bytes, f"B ({prec.key})")], i.memory.weights, "bytes")]
    served = quant.serving_weights(stages.dims, params=plan.model.params, weight_bytes=prec.weight_bytes, fmt=fmt, family=plan.model.family)
    q = served.quantized_params
    if fmt == "int8":
        how = "a bf16 scale per output channel: Σ over quantized matrices of size / contraction × 2 B"
        source = "Dettmers et al. 2022 (LLM.int8()), Sec. 3.1: vector-wise absmax scales"
        codes = ("quantized params × 1 B", f"{num(q)} params × 1 B (int8)")
    else:
        how = (f"per layer slice of a matrix: an 8-bit absmax per {quant.NF4_BLOCK} weights, an fp32 constant per "
               f"{quant.NF4_GROUP} absmaxes, an fp32 mean")
        source = "Dettmers et al. 2023 (QLoRA), Sec. 3: NF4 with double quantization, 0.127 bits per parameter"
        codes = (f"quantized params × 0.5 B, each slice padded to blocks of {quant.NF4_BLOCK}", f"{num(q)} params × 0.5 B (NF4, padded)")
    per_param = served.constants / q if q else 0.0
    terms = [
        value_term("weight codes", codes[0], served.codes, "bytes", substituted=codes[1]),
        value_term(
            "quantization constants", how, i.memory.weight_constants, "bytes", source=source,
            substituted=f"{num(q)} quantized params × {num(per_param)} B each",
        ),
    ]
    if served.per_tensor:
        vectors = plan.model.params - q
        terms.append(product_term("16-bit vectors", "params not quantized (norms, biases, small tables) × 2 B", [(vectors, "params"), (quant.QUANTIZED_VECTOR_BYTES, "B (bf16)")], served.unquantized, "bytes"))
    else:
        terms[1] = attrs.evolve(terms[1], formula=f"{how}; per parameter: this architecture's tensors are not itemized")
    parts = [(served.codes, "codes"), (i.memory.weight_constants, "constants")] + ([(served.unquantized, "vectors")] if served.per_tensor else [])
    terms.append(sum_term("weights", f"{prec.key} weights: codes + quantization constants" + (" + 16-bit vectors" if served.per_tensor else ""), parts, i.memory.weights, "bytes"))
    return terms


def _inference(plan: Plan, stages: Stages) -> list[Term]:
    i = plan.inference
    dims = stages.dims
    prec = stages.ctx.resolved.serve_precision
    family = plan.model.family
    kv_bytes = DTYPE_BYTES[i.kv_precision]
    terms = _serving_weight_terms(plan, stages)
    layers = dims.n_decoder_layers if family == "encoder_decoder" else dims.layers
    if family == "encoder":
        terms.append(value_term("KV cache", "an encoder keeps none", 0.0, "bytes"))
    else:
        copies = 2 if family == "encoder_decoder" else 1
        factors = [(KV_FACTOR, "(K and V)"), (layers, "layers"), (dims.n_kv_heads, "kv heads"), (dims.d_head, "head size"),
                   (i.context, "context"), (i.batch, "batch"), (kv_bytes, f"B ({i.kv_precision})")]
        if copies == 2:
            factors.append((2, "(self + cross attention)"))
        terms.append(
            product_term(
                "KV cache",
                "2 · layers · kv_heads · head_dim · context · batch · bytes",
                factors,
                i.memory.kv_cache,
                "bytes",
                source="Pope et al. 2022, Sec. 3.1; kv_heads, not heads (Ainslie et al. 2023); bytes of serve.kv_precision",
            )
        )
    width = widest_values(dims)
    activations = i.step_tokens * prec.activation_bytes * width
    logits = i.batch * dims.vocab * LOGIT_BYTES
    terms.append(
        product_term(
            "prefill step",
            "tokens per step × activation bytes × (d_model + widest intermediate)",
            [(i.step_tokens, f"tokens (prefill_tokens {i.prefill_tokens}, at most context × batch)"), (prec.activation_bytes, "B"), (width, "values per token")],
            activations,
            "bytes",
            source="chunked prefill: at most serve.prefill_tokens per step (vLLM max_num_batched_tokens, default 2048)",
        )
    )
    terms.append(product_term("logits", "batch × vocab × 4 B (fp32)", [(i.batch, "sequences"), (dims.vocab, "vocab"), (LOGIT_BYTES, "B")], logits, "bytes"))
    terms.append(sum_term("workspace", "prefill step + logits", [(activations, "prefill step"), (logits, "logits")], i.memory.workspace, "bytes"))
    terms.append(value_term("runtime", "CUDA context and library workspaces", i.memory.runtime, "bytes", source="genaisdk.estimate.constants.RUNTIME_CONTEXT_BYTES"))
    terms.append(
        sum_term(
            "total per replica",
            "weights + KV cache + workspace + runtime",
            [(i.memory.weights, "weights"), (i.memory.kv_cache, "KV cache"), (i.memory.workspace, "workspace"), (i.memory.runtime, "runtime")],
            i.memory.total,
            "bytes",
        )
    )
    cap = plan.memory.device_capacity
    terms.append(
        value_term(
            "devices per replica", "ceil(total / device memory)", i.devices_per_replica, "devices",
            substituted=f"ceil({fmt_bytes(i.memory.total)} / {fmt_bytes(cap)} ({plan.train.hardware}))",
        )
    )
    return terms
