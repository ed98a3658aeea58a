"""The checks a senior engineer makes of a plan, as diagnostics with stable codes
(`genaisdk.core.codes`), each pointing at the spec line it is about and saying what would help.

- under-trained vs Chinchilla; data smaller than the budget's optimum; data repeated;
- fp16 overflow risk;
- does not fit at any setting, and what would (more devices, fsdp, offload, QLoRA, ...);
- time, cost and compute budgets exceeded (by how much) or mostly unused;
- pretraining from scratch where fine-tuning would do, and the domain-adaptation case where
  pretraining pays (BloombergGPT's 51% financial mix);
- a serving replica larger than one device.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import attrs
import numpy as np

from genaisdk.core import codes
from genaisdk.core.numbers import fmt_amount, fmt_bytes, fmt_count, fmt_fraction, fmt_recompute, fmt_seconds, fmt_usd
from genaisdk.estimate.constants import CHINCHILLA_TOKENS_PER_PARAM
from genaisdk.planning.defaults import (
    BUDGET_UNDERUSED,
    DOMAIN_SHARE_PAYS,
    MAX_USEFUL_EPOCHS,
    UNDER_TRAINED_RATIO,
)
from genaisdk.planning.grid import RECOMPUTE_ORDER, Grid, choose, evaluate, powers_of_two
from genaisdk.planning.notes import Notes
from genaisdk.planning.resolve import Resolved
from genaisdk.spec.model import is_auto

if TYPE_CHECKING:  # pragma: no cover
    from genaisdk.planning.context import PlanContext
    from genaisdk.planning.fit import Fitted
    from genaisdk.planning.stages import Stages
    from genaisdk.plans import Plan
    from genaisdk.spec.model import Spec

CHINCHILLA_RATIO = CHINCHILLA_TOKENS_PER_PARAM

SERVING_FORMATS = ("fp16", "bf16", "fp8", "int8", "int4")
"""Weight formats a serving replica can be offered (training-only ones, fp32 and tf32, are not)."""

SMALL_PREFILL = 512
"""The prefill chunk suggested when the workspace weighs: a quarter of the default step (an
engineering choice; a smaller chunk lowers the step's memory and takes more steps to prefill)."""

BLOOMBERG_DOMAIN_TOKENS = 363e9
"""BloombergGPT's financial tokens (FinPile), 51.27% of its 708.9B-token corpus (Wu et al.
2023, Table 1)."""


def domain_share(domain: str | None, mix) -> tuple[str, float] | None:
    """(mix key, fraction of the tokens) of the project's domain in the data mix. Mix keys are
    free words, so `domain = finance` finds `financial`: same word, or a shared stem of at
    least five letters."""
    if not domain or not mix:
        return None
    total = sum(mix.values()) or 1.0
    d = domain.strip().lower()
    for key in mix:
        k = key.strip().lower()
        if k == d or (min(len(k), len(d)) >= 5 and (k.startswith(d[:5]) and d.startswith(k[:5]))):
            return key, mix[key] / total
    return None


def review(plan: Plan, stages: Stages, notes: Notes) -> None:
    """Add the checks' diagnostics to `notes` (the pipeline copies them into the Plan)."""
    spec, resolved = stages.ctx.spec, stages.ctx.resolved
    _scaling(plan, spec, resolved, notes)
    _loss(plan, notes)
    _precision(plan, resolved, notes)
    _fit(plan, spec, resolved, notes, stages.fitted, stages.ctx)
    _budget(plan, spec, notes)
    _adaptation(plan, spec, resolved, notes)
    _serving(plan, stages, notes)
    _framework(plan, notes)


def _framework(plan: Plan, notes: Notes) -> None:
    """A layout the named training software cannot run (GP211)."""
    from genaisdk.estimate.frameworks import framework

    t = plan.train
    stack = framework(t.framework)
    if stack.model_parallel or (t.tensor_parallel <= 1 and t.pipeline_parallel <= 1):
        return
    notes.diag(
        codes.FRAMEWORK_LAYOUT,
        f"train.framework = {stack.key} shards data only, but the plan splits layers over devices (tensor "
        f"{t.tensor_parallel} x pipeline {t.pipeline_parallel}): its time is for software that can run that layout",
        "train.framework",
        hint="set train.tensor = 1 and train.pipeline = 1, or choose megatron-lm or megatron-deepspeed",
    )


def _scaling(plan: Plan, spec: Spec, r: Resolved, notes: Notes) -> None:
    if not r.adaptation.from_scratch or not plan.data.tokens:
        return
    n, d = plan.model.active_params or plan.model.params, plan.data.tokens
    ratio = d / n
    if ratio < CHINCHILLA_RATIO * UNDER_TRAINED_RATIO:
        smaller = d / CHINCHILLA_RATIO
        notes.diag(
            codes.UNDER_TRAINED,
            f"under-trained: {fmt_amount(ratio, 2)} tokens per parameter, against about 20 compute-optimal (Hoffmann et al. 2022); "
            f"{fmt_count(n)} parameters want {fmt_count(CHINCHILLA_RATIO * n)} tokens",
            "data.tokens" if spec.project.data.tokens else "model.size",
            hint=f"the same data trains a {fmt_count(smaller)}-parameter model compute-optimally; or find more data",
        )
    d_budget = plan.scaling.optimal_tokens_for_budget
    if d_budget:
        if d < 0.8 * d_budget:
            n_budget = plan.scaling.optimal_params_for_budget or 0.0
            sized_for_data = abs(n - d / CHINCHILLA_RATIO) <= 0.1 * n
            notes.diag(
                codes.DATA_BELOW_OPTIMUM,
                f"the data ({fmt_count(d)} tokens) is {fmt_fraction(d / d_budget)} of the {fmt_count(d_budget)} tokens "
                f"the budget's compute-optimal model ({fmt_count(n_budget)} parameters) wants",
                "data.tokens",
                hint=f"repeat it up to ~{MAX_USEFUL_EPOCHS:.0f} epochs (Muennighoff et al. 2023) or collect more"
                + ("; the plan sizes the model for the data you have" if sized_for_data else f", or train a {fmt_count(d / CHINCHILLA_RATIO)}-parameter model on it"),
            )
    epochs = plan.data.epochs
    if epochs is not None and epochs > 1.0:
        code = codes.TOO_MANY_EPOCHS if epochs > MAX_USEFUL_EPOCHS else codes.REPEATED_DATA
        notes.diag(
            code,
            f"training passes {fmt_amount(epochs)} times over the {fmt_count(plan.data.raw_tokens * plan.data.keep)} usable tokens",
            "data.tokens",
            hint=f"beyond ~{MAX_USEFUL_EPOCHS:.0f} epochs repeated data stops helping (Muennighoff et al. 2023)"
            if code == codes.TOO_MANY_EPOCHS
            else None,
        )


def _loss(plan: Plan, notes: Notes) -> None:
    """The loss fit is a guide inside the ranges it was fitted on, and never worse than a
    uniform guess: say when it is extrapolated, and when the cap replaced it."""
    s = plan.scaling
    if s.loss_in_fit_range is not False or s.loss_tokens is None:
        return
    n = plan.model.active_params or plan.model.params
    where = f"N = {fmt_count(n)} parameters, D = {fmt_count(s.loss_tokens)} tokens"
    if s.fit_loss is not None and s.fit_loss > s.predicted_loss:
        message = (
            f"the Chinchilla fit gives {s.fit_loss:.3g} nats/token for {where}, worse than a uniform guess over "
            f"{plan.model.vocab} tokens ({s.predicted_loss:.3g}): far outside the 70M-16B parameters, 5B-500B tokens "
            "it was fitted on, the plan shows the uniform bound"
        )
    else:
        message = (
            f"the predicted loss is extrapolated: {where} lie outside the 70M-16B parameters, 5B-500B tokens "
            "the Chinchilla fit was made on (Hoffmann et al. 2022)"
        )
    notes.diag(codes.LOSS_EXTRAPOLATED, message, "model.size", hint="read it as a trend across sizes, not a promise")


def _precision(plan: Plan, r: Resolved, notes: Notes) -> None:
    if plan.train.precision != "fp16" or not r.adaptation.trains:
        return
    has_bf16 = "bf16" in r.hardware.peak_flops
    notes.diag(
        codes.FP16_OVERFLOW,
        "fp16 overflows above 65,504 and underflows small gradients: training needs dynamic loss scaling "
        "(Micikevicius et al. 2018), and large models still diverge more often than in bf16",
        "train.precision",
        hint=f"use bf16: {r.hardware.key} runs it at the same speed" if has_bf16 else f"{r.hardware.key} has no bf16; keep loss scaling on and watch for skipped steps",
    )


def _fit(plan: Plan, spec: Spec, r: Resolved, notes: Notes, fitted: Fitted | None, ctx: PlanContext) -> None:
    if fitted is None:
        return
    cap = plan.memory.device_capacity
    strategy = next(s for s in r.strategies if s.key == plan.train.strategy) if plan.train.strategy != "none" else None
    offloads = strategy is not None and (strategy.offload_optimizer or strategy.offload_weights)
    host = plan.memory.per_device.host
    if offloads and plan.memory.host_capacity is None:
        notes.diag(
            codes.HOST_UNCHECKED,
            f"`{strategy.key}` keeps {fmt_bytes(host)} per device in host memory, and {r.hardware.key}'s record gives no "
            "host memory: that part of the fit is unchecked",
            "budget.hardware",
            hint="write the host memory per device in the budget block, e.g. `host_memory = 256 GB`",
        )
    if plan.memory.fits:
        if offloads:
            room = f" of {fmt_bytes(plan.memory.host_capacity)}" if plan.memory.host_capacity is not None else ""
            link = r.hardware.host_link_bytes_per_s
            timed = (f"the step time counts their transfers over the {fmt_amount(link / 1e9)} GB/s host link but not the host's "
                     "own optimizer step, so it is a lower bound" if link else
                     f"{r.hardware.key}'s record gives no host link bandwidth, so the step time leaves their transfers out")
            notes.diag(
                codes.OFFLOAD_ONLY,
                f"it fits only with `{strategy.key}`: {fmt_bytes(host)} per device{room} live in host memory; {timed}",
                "train.sharding",
                hint=_what_would_fit(plan, r, ctx, fitted),
            )
        return
    need = fmt_bytes(plan.memory.per_device.total)
    over_host = (
        f", and {fmt_bytes(host)} of host memory per device of {fmt_bytes(plan.memory.host_capacity)}"
        if plan.memory.host_fits is False
        else ""
    )
    # Would other settings of the fixed fields fit?
    t = spec.project.train
    keys = ("sharding", "micro_batch", "recompute", "tensor", "pipeline", "sequence_parallel", "virtual_stages")
    fixed = [name for name in keys if getattr(t, name) is not None and not is_auto(getattr(t, name))]
    relaxed = _relaxed_fit(r, fitted, ctx)
    if fixed and relaxed is not None:
        notes.diag(
            codes.FIXED_SETTINGS_DO_NOT_FIT,
            f"the spec's {', '.join('train.' + f for f in fixed)} need {need} per device, more than {fmt_bytes(cap)}",
            "train." + fixed[0],
            hint=f"{relaxed} fits; or set these to auto",
        )
        notes.diag(
            codes.DOES_NOT_FIT,
            f"does not fit: {need} per device of {fmt_bytes(cap)}{over_host} with the spec's settings" + _stages_text(plan),
            "train." + fixed[0],
            hint=relaxed + " would fit",
        )
        return
    notes.diag(
        codes.DOES_NOT_FIT,
        f"does not fit at any setting searched: at best {need} per device of {fmt_bytes(cap)}{over_host} "
        f"on {plan.train.devices} x {plan.train.hardware}"
        + _stages_text(plan),
        "budget.hardware",
        hint=_what_would_fit(plan, r, ctx, fitted),
    )


def _stages_text(plan: Plan) -> str:
    """' (t 8 x p 2 x d 1: stage 0 92 GB, stage 1 87 GB; 80 layers as 40 + 40)' when the
    closest configuration has several pipeline stages or model parallelism; '' otherwise."""
    tr, stages = plan.train, plan.memory.stages
    if tr.tensor_parallel == 1 and tr.pipeline_parallel == 1:
        return ""
    layout = f"t {tr.tensor_parallel} x p {tr.pipeline_parallel} x d {tr.data_parallel}"
    if len(stages) <= 1:
        return f" ({layout})"
    cap = plan.memory.device_capacity
    each = ", ".join(f"stage {s.stage} {fmt_bytes(s.total)} (over by {fmt_bytes(s.total - cap)})" if s.total > cap else
                     f"stage {s.stage} {fmt_bytes(s.total)}" for s in stages)
    return f" ({layout}: {each}; {' + '.join(str(s.layers) for s in stages)} layers)"


def _relaxed_fit(r: Resolved, fitted: Fitted, ctx: PlanContext) -> str | None:
    """The preferred configuration with every train setting free, at the same devices."""
    from genaisdk.planning.fit import layout_candidates

    case = fitted.case
    grid = Grid(
        precisions=fitted.grid.precisions,
        strategies=r.strategies,
        devices=fitted.grid.devices,
        micro_batches=powers_of_two(1, max(1, math.ceil(case.global_batch_sequences / min(fitted.grid.devices)))),
        recomputes=RECOMPUTE_ORDER,
    )
    if case.layouts:
        grid = attrs.evolve(grid, layouts=layout_candidates(ctx, case, fitted.grid.devices, free=True))
    result = evaluate(case, grid)
    c = choose(result)
    if not c.fits:
        return None
    layout = "" if c.layout.model_parallel == 1 else f" on {c.layout.describe(c.data_parallel)}"
    return f"{c.strategy.key} with micro-batch {c.micro_batch} and {fmt_recompute(c.recompute)}{layout}"


def _what_would_fit(plan: Plan, r: Resolved, ctx: PlanContext, fitted: Fitted) -> str:
    """Say what would make it fit: the devices FSDP (or, where layouts are searched,
    tensor and pipeline parallelism) needs, then QLoRA / int4 for a fine-tune, then a
    larger device."""
    from genaisdk.planning.fit import layout_candidates

    case = fitted.case
    ideas = []
    devices = tuple(plan.train.devices * 2**k for k in range(1, 15))
    strategies = [s for s in r.strategies if s.shards_weights and not (s.offload_optimizer or s.offload_weights)]
    if case.layouts:
        strategies += [s for s in r.strategies if not s.shards_gradients and not (s.offload_optimizer or s.offload_weights)]
    if strategies:
        grid = Grid(precisions=fitted.grid.precisions, strategies=strategies, devices=devices, micro_batches=(1,), recomputes=("full",))
        if case.layouts:
            grid = attrs.evolve(grid, layouts=layout_candidates(ctx, case, devices, free=True))
        result = evaluate(case, grid)
        ok = np.where(result.valid, result.total, np.inf) <= result.capacity  # precision x strategy x devices x 1 x 1 x layouts
        for k, count in enumerate(devices):
            hits = np.argwhere(ok[0, :, k, 0, 0, :])
            if hits.size:
                j, li = (int(x) for x in hits[0])
                layout = grid.layouts[li]
                how = f" as {layout.describe(count // layout.model_parallel)}" if layout.model_parallel > 1 else ""
                ideas.append(f"{count} devices with {strategies[j].key}{how} and full recomputation")
                break
    if not r.adaptation.from_scratch and r.adaptation.full:
        ideas.append("`adapt { method = qlora }` (a 4-bit frozen base with trainable adapters)")
    # A larger device helps only if the configuration's bytes per device fit on it.
    bigger = [h for h in ctx.registry.catalog("hardware").values() if h.memory_bytes > r.hardware.memory_bytes]
    if bigger:
        largest = max(bigger, key=lambda h: h.memory_bytes)
        if largest.memory_bytes >= plan.memory.per_device.total:
            ideas.append(f"a larger device ({largest.key}, {fmt_bytes(largest.memory_bytes)})")
    return "; or ".join(ideas) if ideas else "a smaller model"


def _budget(plan: Plan, spec: Spec, notes: Notes) -> None:
    b = plan.budget
    if b.time_ratio is not None and b.time_ratio > 1.0:
        need = math.ceil(plan.train.devices * b.time_ratio)
        notes.diag(
            codes.OVER_TIME,
            f"takes {fmt_seconds(plan.time.seconds)}, {b.time_ratio:.2f}x the {fmt_seconds(b.time_seconds)} budget",
            "budget.time",
            hint=f"about {need} devices at the same MFU would meet it, or fewer tokens or a smaller model",
        )
    if b.cost_ratio is not None and b.cost_ratio > 1.0:
        notes.diag(
            codes.OVER_COST,
            f"costs {fmt_usd(plan.cost.usd)}, {b.cost_ratio:.2f}x the {fmt_usd(b.cost_usd)} budget",
            "budget.cost",
            hint="cost does not depend on the device count at fixed MFU: train fewer tokens, a smaller model, or find a lower price",
        )
    compute = spec.project.budget.compute
    if compute is not None and plan.compute.flops > compute.value:
        notes.diag(
            codes.OVER_COMPUTE,
            f"{plan.compute.flops:.3g} training FLOPs is {plan.compute.flops / compute.value:.2f}x the compute budget",
            "budget.compute",
        )
    if plan.cost.price_per_hour is None and plan.compute.model_flops > 0:
        notes.diag(
            codes.NO_PRICE,
            f"no price per device-hour is known for {plan.train.hardware}: the plan has no cost",
            "budget.hardware",
            hint="write `price_per_hour = $2` in the budget block",
        )
    used = [x for x in (b.time_ratio, b.cost_ratio) if x is not None]
    if used and max(used) < BUDGET_UNDERUSED and plan.compute.model_flops > 0:
        notes.diag(
            codes.BUDGET_UNDERUSED,
            f"the run uses {fmt_fraction(max(used))} of its budget",
            "budget",
            hint="a larger model or more data would use it (see `genai plan --sweep`)",
        )


def _adaptation(plan: Plan, spec: Spec, r: Resolved, notes: Notes) -> None:
    a = r.adaptation
    p = spec.project
    if not a.from_scratch:
        return
    found = domain_share(p.domain, p.data.mix)
    share = found[1] if found else (0.0 if p.domain and p.data.mix else None)
    if share is not None and share >= DOMAIN_SHARE_PAYS:
        domain_tokens = plan.data.domain_tokens or 0.0
        notes.diag(
            codes.DOMAIN_PRETRAINING_PAYS,
            f"{fmt_fraction(share)} of the data is {p.domain}: the case where domain pretraining pays, as BloombergGPT's 51% "
            f"financial mix did (Wu et al. 2023); {fmt_count(domain_tokens)} {p.domain} tokens here vs its {fmt_count(BLOOMBERG_DOMAIN_TOKENS)}",
            "data.mix",
            hint=None
            if domain_tokens >= 0.1 * BLOOMBERG_DOMAIN_TOKENS
            else "with this little domain text, continued pretraining of a general model (Gururangan et al. 2020) is the cheaper route",
        )
        return
    generic_tasks = ("text-generation", "chat", "code-generation")
    if r.task is not None and r.task.key not in generic_tasks:
        reason = "no domain data in the mix" if share is None else f"only {fmt_fraction(share)} of the data is {p.domain}"
        notes.diag(
            codes.FINETUNE_WOULD_DO,
            f"pretraining from scratch for `{r.task.key}` with {reason}: fine-tuning a pretrained "
            f"{r.architecture.key} model costs a small fraction and usually does as well",
            "adapt.method",
            hint="`adapt { method = finetune }` (or lora) with `model { preset = ... }`; pretraining pays when most of a large corpus is in-domain (BloombergGPT: 51%)",
        )


def _serving(plan: Plan, stages: Stages, notes: Notes) -> None:
    """A replica larger than one device: every memory term named, and only the changes the
    spec has not already made (a precision lower than the one served, an fp8 cache when the
    cache is 16-bit, ...), each with what it saves."""
    i = plan.inference
    if i.fits:
        return
    m = i.memory
    cap = plan.memory.device_capacity
    notes.diag(
        codes.SERVING_DOES_NOT_FIT,
        f"one serving replica needs {fmt_bytes(m.total)} = {i.precision} weights {fmt_bytes(m.weights)}"
        f" + KV cache {fmt_bytes(m.kv_cache)} ({i.kv_precision}, {i.context} tokens x {i.batch} sequences)"
        f" + prefill workspace {fmt_bytes(m.workspace)} ({i.step_tokens} tokens per step)"
        f" + runtime {fmt_bytes(m.runtime)}, more than one {plan.train.hardware} ({fmt_bytes(cap)}):"
        f" {i.devices_per_replica} x {plan.train.hardware} per replica",
        "serve",
        hint=serving_options(plan, stages),
    )


def serving_options(plan: Plan, stages: Stages) -> str:
    """What would shrink the replica, largest saving first, none of it already in use."""
    from genaisdk.estimate.constants import DTYPE_BYTES

    i, m = plan.inference, plan.inference.memory
    registry, hw = stages.ctx.registry, stages.ctx.hardware
    served = stages.ctx.resolved.serve_precision
    options: list[tuple[float, str]] = []
    for p in registry.catalog("precisions").values():
        usable = p.compute_dtype in hw.peak_flops or not hw.peak_flops or not p.trainable
        if p.weight_bytes < served.weight_bytes and usable and p.key in SERVING_FORMATS:
            options.append((m.weights * (1 - p.weight_bytes / served.weight_bytes), f"`precision = {p.key}` weights"))
    kv_bytes = DTYPE_BYTES[i.kv_precision]
    if kv_bytes > DTYPE_BYTES["fp8"]:
        options.append((m.kv_cache * (1 - DTYPE_BYTES["fp8"] / kv_bytes), "`kv_precision = fp8`"))
    if i.batch > 1 or i.context > 1:
        options.append((m.kv_cache / 2, "a context or batch half as large"))
    if i.step_tokens > SMALL_PREFILL:
        width = m.workspace - i.batch * plan.model.vocab * 4.0
        options.append((width * (1 - SMALL_PREFILL / i.step_tokens), f"`prefill_tokens = {SMALL_PREFILL}`"))
    ranked = [f"{text} (saves {fmt_bytes(saving)})" for saving, text in sorted(options, key=lambda o: -o[0]) if saving > 0]
    ranked.append(f"or tensor parallel over {i.devices_per_replica} x {plan.train.hardware}")
    return "; ".join(ranked)
