"""Stage 7: the Plan, from the frozen stage outputs: FLOPs, time, cost and energy, the
memory of the chosen configuration and of the other strategies and precisions, the batch
actually trained, scaling-law figures, serving memory, and every assumption itemized.

No formula lives here: numbers come from `genaisdk.estimate` and the registry's records.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from genaisdk.estimate import constants, scaling
from genaisdk.estimate import cost as cost_math
from genaisdk.estimate import flops as flops_math
from genaisdk.estimate.frameworks import framework
from genaisdk.estimate.data import epochs_over, mix_tokens, raw_tokens_needed, usable_tokens
from genaisdk.estimate.constants import DTYPE_BYTES
from genaisdk.estimate.inference import inference_memory
from genaisdk.estimate.inference import InferenceMemory as InferenceMemoryParts
from genaisdk.estimate.memory import optimizer_state_bytes, update_buffer_bytes
from genaisdk.estimate.parallel import stage_layers
from genaisdk.estimate.quantization import weight_format
from genaisdk.planning.advice import domain_share
from genaisdk.planning.context import DEFAULT_MFU_WHY
from genaisdk.planning.grid import PHASES, Grid, GridResult, evaluate, powers_of_two, stage_memories
from genaisdk.planning.notes import Notes
from genaisdk.plans import (
    AdaptSection,
    BudgetSection,
    ComputeSection,
    CostSection,
    DataSection,
    InferenceMemory,
    InferenceSection,
    MemoryBreakdown,
    MemoryOption,
    MemorySection,
    ModelSection,
    Plan,
    ProjectSection,
    ScalingSection,
    StageMemory,
    StepSection,
    TimeSection,
    TrainSection,
)

if TYPE_CHECKING:  # pragma: no cover
    from genaisdk.dims import Dimensions
    from genaisdk.planning.context import PlanContext
    from genaisdk.planning.fit import Fitted
    from genaisdk.planning.stages import Stages
    from genaisdk.records import ParamCount, Precision


def batch(requested_tokens: float, seq: int, micro: int, replicas: int) -> tuple[int, int | None]:
    """(global batch in sequences, accumulation steps): every data-parallel replica (d =
    devices / (tensor x pipeline)) runs whole micro-batches, so the batch trained is
    accumulation x micro-batch x replicas sequences, the request rounded up. Nothing trains
    (micro 0): the request and no accumulation."""
    requested_seq = max(1, int(round(requested_tokens / seq)))
    if not micro:
        return requested_seq, None
    accumulation = max(1, math.ceil(requested_seq / (micro * replicas)))
    return accumulation * micro * replicas, accumulation


def predicted_loss(ctx: PlanContext, params: float, tokens: float, vocab: int) -> tuple[float, float | None]:
    """(Chinchilla's L(N, D) capped at a uniform guess over the vocabulary, the D it uses):
    for a run from scratch D is this run's tokens; for an adaptation, the base model's
    pretraining tokens (a fine-tune's few million tokens do not move it along that curve);
    infinity where D is unknown."""
    r = ctx.resolved
    if r.adaptation.from_scratch:
        loss_tokens = tokens or None
    else:
        loss_tokens = r.preset.training_tokens if r.preset is not None else None
    return (float(scaling.bounded_loss(params, loss_tokens, vocab)) if loss_tokens else math.inf), loss_tokens


def inference_parts(
    ctx: PlanContext, dims: Dimensions, count: ParamCount, precision: Precision, context: int, batch_size: int, *, kv_dtype: str | None = None
) -> InferenceMemoryParts:
    """One serving replica's memory (`genaisdk.estimate.inference.inference_memory`): the
    weights in the precision's serving format (a quantized one with its constants), the
    KV cache in `kv_dtype` (default: the precision's activation bytes), one step of at most
    `prefill_tokens(ctx)` tokens."""
    return inference_memory(
        dims,
        params=float(count.total),
        family=ctx.resolved.family,
        weight_bytes=float(precision.weight_bytes),
        weight_format=weight_format(precision.param_dtype),
        context=context,
        batch=batch_size,
        kv_bytes=float(DTYPE_BYTES[kv_dtype]) if kv_dtype else float(precision.activation_bytes),
        activation_bytes=float(precision.activation_bytes),
        prefill_tokens=prefill_tokens(ctx),
    )


def price_citation(ctx: PlanContext) -> dict[str, str | None]:
    """`price_source` and `price_date` of the price the plan uses: the spec's when it gives
    one (no date), else the hardware record's citation and date; both None without a price."""
    if ctx.price is None:
        return {"price_source": None, "price_date": None}
    if ctx.project.budget.price_per_hour is not None:
        return {"price_source": "the spec's budget.price_per_hour", "price_date": None}
    hw = ctx.hardware
    return {"price_source": hw.price_citation or hw.price_source or None, "price_date": hw.price_date or None}


def serving(ctx: PlanContext, dims: Dimensions, count: ParamCount, context: int) -> tuple[int, int]:
    """(context, batch) of the serving replica: the serve block's, else the training context, 1."""
    serve = ctx.project.serve
    return ((serve.context if serve and serve.context else None) or context), ((serve.batch if serve and serve.batch else None) or 1)


def prefill_tokens(ctx: PlanContext) -> int:
    """Tokens one serving step processes at most: the spec's `serve.prefill_tokens`, else
    vLLM's default token budget (`genaisdk.estimate.constants.SERVE_PREFILL_TOKENS`)."""
    serve = ctx.project.serve
    return int(serve.prefill_tokens) if serve is not None and serve.prefill_tokens else constants.SERVE_PREFILL_TOKENS


def assemble(stages: Stages, notes: Notes) -> Plan:
    """The Plan (without diagnostics, reasons and derivations: the pipeline adds them)."""
    ctx, f = stages.ctx, stages.fitted
    p, r = ctx.project, ctx.resolved
    dims, count = stages.dims, stages.count
    seq = stages.context
    tokens = stages.tokens
    n = float(count.active)
    family = r.family
    trains = r.adaptation.trains
    if f is not None:
        c = f.choice
        recompute, strategy, devices, micro = c.recompute, c.strategy.key, c.devices, c.micro_batch
        layout, replicas = c.layout, c.data_parallel
    else:
        recompute, strategy, micro = "none", "none", 0
        devices = ctx.devices_fixed or 1
        layout, replicas = None, devices
    global_seq, accumulation = batch(stages.batch_tokens, seq, micro, replicas)
    batch_tokens = float(global_seq * seq)
    requested_seq = max(1, int(round(stages.batch_tokens / seq)))
    if global_seq != requested_seq:
        notes.reason(
            "train.batch",
            batch_tokens,
            f"{stages.batch_tokens:.3g} tokens ({requested_seq} sequences) rounded up to {global_seq} sequences"
            f" = {accumulation} accumulation step(s) x {int(micro)} x {int(replicas)} "
            + ("devices" if replicas == devices else "data-parallel replicas"),
        )
    steps = None
    if trains and p.train.steps:
        steps = int(p.train.steps)  # the pipeline made tokens = steps x this batch
    elif trains and tokens and batch_tokens:
        steps = int(math.ceil(tokens / batch_tokens))

    train_flops = float(flops_math.training_flops(n, tokens)) if trains else 0.0
    per_token = stages.trainable.flops_per_token(dims, float(r.architecture.flops_per_token(dims, seq)), context=seq)
    model_flops = per_token * tokens if trains else 0.0
    hw_per_token = flops_math.hardware_flops_per_token(dims, family=family, context=seq, recompute=recompute)
    hardware_flops = model_flops + float(hw_per_token.recompute) * tokens if trains else 0.0

    # time and cost
    hw = ctx.hardware
    seconds: float | None
    step = _step(f, tokens, global_seq * seq, model_flops, devices, ctx.peak) if (f is not None and model_flops and ctx.peak > 0) else None
    if model_flops and not ctx.peak > 0:
        # the device quotes no throughput (GP406): memory is answered, no time, no cost
        seconds, mfu, time_model = None, ctx.mfu, "none"
    elif step is not None and not ctx.mfu_given:
        seconds = tokens / (global_seq * seq) * step.seconds
        mfu, time_model = model_flops / (seconds * devices * ctx.peak), "step-time"
    else:
        seconds = float(cost_math.training_seconds(model_flops, devices=devices, peak_flops=ctx.peak, mfu=ctx.mfu)) if model_flops else 0.0
        mfu, time_model = ctx.mfu, ("train.mfu" if ctx.mfu_given else "default-mfu")
    if trains:
        _mfu_reason(ctx, f, notes, mfu, step, time_model)
    hours = float(cost_math.device_hours(seconds, devices)) if seconds is not None else None
    usd = float(cost_math.cost_usd(hours, ctx.price)) if (ctx.price is not None and hours is not None) else None
    energy = float(cost_math.energy_kwh(seconds, devices=devices, power_watts=hw.power_watts)) if (hw.power_watts and seconds is not None) else None
    b = p.budget
    budget = BudgetSection(
        time_seconds=b.time.value if b.time else None,
        cost_usd=b.cost.value if b.cost else None,
        time_ratio=seconds / b.time.value if (b.time and b.time.value and seconds is not None) else None,
        cost_ratio=(usd / b.cost.value) if (b.cost and b.cost.value and usd is not None) else None,
    )
    memory = _memory_section(ctx, f) if f is not None else _prompt_memory(ctx, dims, count, devices, seq)

    # scaling
    c_opt = train_flops if train_flops > 0 else float(flops_math.training_flops(n, constants.CHINCHILLA_TOKENS_PER_PARAM * n))
    n_opt, d_opt = (float(x) for x in scaling.tokens_per_param_optimal(c_opt))
    loss, loss_tokens = predicted_loss(ctx, n, tokens, dims.vocab)
    fit_loss = float(scaling.chinchilla_loss(n, loss_tokens)) if loss_tokens else None
    in_range = bool(scaling.chinchilla_in_range(n, loss_tokens)) if loss_tokens else None
    optimum = stages.size.budget_optimum or (None, None)
    scaling_section = ScalingSection(
        optimal_params=n_opt,
        optimal_tokens=d_opt,
        tokens_per_param=tokens / n if n else 0.0,
        predicted_loss=loss,
        budget_flops=stages.size.budget_model_flops,
        optimal_params_for_budget=optimum[0],
        optimal_tokens_for_budget=optimum[1],
        loss_tokens=loss_tokens,
        fit_loss=fit_loss,
        loss_in_fit_range=in_range,
        uniform_loss=float(scaling.uniform_loss(dims.vocab)),
    )

    d = p.data
    mix = dict(d.mix)
    domain_tokens = None
    found = domain_share(p.domain, mix)
    if found and tokens:
        try:
            domain_tokens = float(mix_tokens(tokens, mix)[found[0]])
        except ValueError:  # fractions that do not sum to one
            domain_tokens = None
    keep = d.keep
    epochs = float(epochs_over(tokens, usable_tokens(d.raw_tokens, keep))) if (d.raw_tokens and keep and tokens) else None
    data = DataSection(
        tokens=tokens,
        raw_tokens=d.raw_tokens,
        keep=keep,
        raw_tokens_needed=float(raw_tokens_needed(d_opt, keep)) if keep else None,
        mix=mix,
        domain_tokens=domain_tokens,
        epochs=epochs,
    )
    train = TrainSection(
        precision=ctx.precision.key,
        optimizer=r.optimizer.key,
        strategy=strategy,
        devices=int(devices),
        hardware=hw.key,
        micro_batch=int(micro),
        recompute=recompute,
        mfu=mfu,
        optimizer_state=ctx.optimizer_state,
        master_weights="fp32" if ctx.precision.master_bytes >= 4 else (None if not ctx.precision.master_bytes else "bf16"),
        attention=p.train.attention or "flash",
        framework=p.train.framework,
        adaptation=r.adaptation.key,
        global_batch_tokens=batch_tokens,
        global_batch_sequences=global_seq,
        grad_accumulation=accumulation,
        steps=steps,
        tensor_parallel=layout.tensor if layout else 1,
        pipeline_parallel=layout.pipeline if layout else 1,
        data_parallel=int(replicas),
        sequence_parallel=layout.sequence_parallel if layout else False,
        virtual_stages=layout.virtual_stages if layout else 1,
    )
    lora = stages.trainable.lora
    return Plan(
        spec_file=ctx.spec.filename,
        project=ProjectSection(name=p.name, task=r.task.key if r.task else p.task, scope=p.scope, domain=p.domain),
        model=ModelSection.of(
            dims,
            family=family,
            architecture=r.architecture.key,
            objective=r.objective.key,
            count=count,
            context=int(seq),
            trainable_params=float(stages.trained_params),
            preset=r.preset.key if r.preset else None,
        ),
        adapt=AdaptSection(
            method=r.adaptation.key,
            base=r.preset.key if (r.preset is not None and not r.adaptation.from_scratch) else None,
            rank=lora.rank if lora else None,
            targets=lora.targets if lora else (),
            frozen_precision=lora.frozen_precision if lora else None,
            alpha=(lora.alpha if lora.alpha is not None else float(lora.rank)) if lora else None,
            dropout=lora.dropout if lora else None,
        ),
        data=data,
        compute=ComputeSection(
            flops=train_flops,
            model_flops=model_flops,
            hardware_flops=hardware_flops,
            flops_per_token=model_flops / tokens if tokens else per_token,
            pf_days=float(flops_math.pf_days(train_flops)),
        ),
        scaling=scaling_section,
        train=train,
        memory=memory,
        time=TimeSection(
            seconds=seconds, days=float(cost_math.seconds_to_days(seconds)) if seconds is not None else None, gpu_hours=hours,
            model=time_model, step=step,
        ),
        cost=CostSection(usd=usd, price_per_hour=ctx.price, energy_kwh=energy, **price_citation(ctx)),
        budget=budget,
        inference=_inference(ctx, dims, count, seq, notes),
    )


def breakdown(result: GridResult, idx: tuple[int, ...]) -> MemoryBreakdown:
    """The memory of one grid cell, as the plan reports it."""
    return MemoryBreakdown(
        weights=float(result.weights[idx]),
        gradients=float(result.gradients[idx]),
        optimizer=float(result.optimizer[idx]),
        activations=float(result.activations[idx]),
        overheads={k: float(v[idx]) for k, v in result.overheads.items()},
        total=float(result.total[idx]),
        host=float(result.host[idx]),
        peak_phase=PHASES[int(result.peak_phase[idx])],
        at_peak={k: float(v[idx]) for k, v in result.at_peak.items()},
    )


def _step(f: Fitted, tokens: float, step_tokens: float, model_flops: float, devices: int, peak: float) -> StepSection | None:
    """The chosen configuration's step by the step-time model (None where it does not cover
    the run): the grid's own numbers at the choice's index."""
    result, idx = f.result, f.choice.index
    if result.step is None:
        return None
    step = result.step

    def at(array) -> float:
        return float(np.broadcast_to(array, result.grid.shape)[idx])

    seconds = at(step.seconds)
    hardware_flops = at(step.hardware_flops)
    step_model = at(step.model_flops)
    return StepSection(
        seconds=seconds,
        micro_batches=int(at(step.micro_batches)),
        parts={name: at(value) for name, value in step.parts.items()},
        mfu=step_model / (seconds * devices * peak),
        hfu=hardware_flops / (seconds * devices * peak),
        bubble_fraction=at(step.parts["bubble"]) / seconds,
    )


def _mfu_reason(ctx: PlanContext, f: Fitted | None, notes: Notes, mfu: float, step: StepSection | None, model: str) -> None:
    if model == "step-time":
        notes.reason(
            "train.mfu",
            mfu,
            "derived by the step-time model: model FLOPs per device-second of the chosen layout over the peak "
            "(Chowdhery et al. 2022, App. B; docs/parallelism.md)",
        )
    elif model == "none":
        notes.reason("train.mfu", mfu, f"{ctx.hardware.key} quotes no throughput: no time, so no MFU is used (GP406)")
    elif model == "train.mfu":
        derived = f"; the step-time model gives {step.mfu:.1%} for this layout" if step is not None else ""
        notes.reason("train.mfu", mfu, "given in the spec: it overrides the step-time model" + derived if step else "given in the spec")
    else:
        why = f.layouts_why if f is not None and f.layouts_why else (
            f"the hardware record lacks {', '.join(ctx.cluster_missing)}" if ctx.cluster_missing else "the step-time model does not cover this run"
        )
        notes.reason("train.mfu", mfu, f"default, since the step-time model does not apply ({why}): {DEFAULT_MFU_WHY}")


def _memory_section(ctx: PlanContext, f: Fitted) -> MemorySection:
    per_device = breakdown(f.result, f.choice.index)
    offloads = f.choice.strategy.offload_optimizer or f.choice.strategy.offload_weights
    stages = _stages(f, per_device)
    return MemorySection(
        per_device=per_device,
        device_capacity=float(ctx.hardware.memory_bytes),
        fits=bool(f.choice.fits),
        options=_options(ctx, f),
        host_capacity=ctx.host_capacity,
        host_fits=(per_device.host <= ctx.host_capacity) if (offloads and ctx.host_capacity is not None) else None,
        stages=stages,
        most_loaded_stage=int(f.result.most_loaded_stage[f.choice.index]),
    )


def _stages(f: Fitted, per_device: MemoryBreakdown) -> tuple[StageMemory, ...]:
    """Every pipeline stage's memory (`grid.stage_memories`); without the layout
    estimators, one stage: the device."""
    cap = f.result.capacity
    case, c = f.case, f.choice
    if not case.layouts:
        layers = case.dims.layers + (case.dims.n_decoder_layers if case.family == "encoder_decoder" else 0)
        b = per_device
        return (StageMemory(stage=0, layers=layers, weights=b.weights, gradients=b.gradients, optimizer=b.optimizer,
                            activations=b.activations, total=b.total, fits=b.total <= cap),)
    memory = stage_memories(case, f.grid, c.index)
    p = c.layout.pipeline
    layers = stage_layers(case.dims.layers, pipeline_parallel=p, virtual_stages=c.layout.virtual_stages, stage=np.arange(p))

    def per_stage(array) -> np.ndarray:
        return np.broadcast_to(np.asarray(array, dtype=float), (p,))

    w, g, o, a, t = (per_stage(x) for x in (memory.weights, memory.gradients, memory.optimizer, memory.activations, memory.total))
    return tuple(
        StageMemory(stage=r, layers=int(layers[r]), weights=float(w[r]), gradients=float(g[r]), optimizer=float(o[r]),
                    activations=float(a[r]), total=float(t[r]), fits=bool(t[r] <= cap))
        for r in range(p)
    )


def _options(ctx: PlanContext, f: Fitted) -> tuple[MemoryOption, ...]:
    """The same model under every strategy and every trainable precision the hardware
    runs, at the chosen device count, layout and recomputation, each with its largest
    fitting micro-batch (1 when none fits; the plan's own row, the plan's micro-batch)."""
    c = f.choice
    hw = ctx.hardware
    # The chosen precision, full fp32 (the teaching baseline) and fp8 where the hardware has it.
    precisions = [c.precision] + [
        p
        for p in ctx.resolved.precisions
        if p.trainable and p.key != c.precision.key and p.compute_dtype in hw.peak_flops and p.key in ("fp32", "fp8")
    ]
    grid = Grid(
        precisions=precisions,
        strategies=ctx.resolved.strategies,
        devices=(c.devices,),
        micro_batches=f.grid.micro_batches if len(f.grid.micro_batches) > 1 else powers_of_two(1, max(f.grid.micro_batches)),
        recomputes=(c.recompute,),
        layouts=(c.layout,),
    )
    result = evaluate(f.case, grid)
    rows = []
    for i, prec in enumerate(grid.precisions):
        for j, strat in enumerate(grid.strategies):
            fits = result.fits[i, j, 0, :, 0, 0]
            chosen = prec.key == c.precision.key and strat.key == c.strategy.key
            if chosen and c.micro_batch in grid.micro_batches:
                k = list(grid.micro_batches).index(c.micro_batch)  # the plan's own row: its micro-batch
            else:
                k = int(np.nonzero(fits)[0][-1]) if fits.any() else 0
            idx = (i, j, 0, k, 0, 0)
            rows.append(
                MemoryOption(
                    strategy=strat.key,
                    precision=prec.key,
                    recompute=c.recompute,
                    micro_batch=int(grid.micro_batches[k]),
                    per_device=breakdown(result, idx),
                    fits=bool(result.fits[idx]),
                    chosen=chosen,
                    why_not=_why_not(result, idx),
                )
            )
    return tuple(rows)


def _why_not(result, idx) -> str:
    """`MemoryOption.why_not` of one grid cell."""
    if result.fits[idx]:
        return ""
    if not result.valid[idx]:
        return "not runnable"
    return "over capacity" if result.total[idx] > result.capacity else "host memory"


def _prompt_memory(ctx: PlanContext, dims: Dimensions, count: ParamCount, devices: int, seq: int) -> MemorySection:
    inf = inference_parts(ctx, dims, count, ctx.precision, seq, 1)
    per = MemoryBreakdown(
        weights=float(inf.weights),
        gradients=0.0,
        optimizer=0.0,
        activations=float(inf.kv_cache + inf.workspace),
        overheads={k: float(v) for k, v in inf.overheads.items()},
        total=float(inf.total),
    )
    cap = ctx.hardware.memory_bytes
    return MemorySection(per_device=per, device_capacity=float(cap), fits=per.total <= cap)


def _inference(ctx: PlanContext, dims: Dimensions, count: ParamCount, seq: int, notes: Notes) -> InferenceSection:
    precision, kv_dtype = ctx.resolved.serve_precision, ctx.resolved.kv_dtype
    context, batch_size = serving(ctx, dims, count, seq)
    if ctx.project.serve is None:
        notes.reason("serve.context", int(context), "no serve block: one replica, batch 1, the training context")
    inf = inference_parts(ctx, dims, count, precision, context, batch_size, kv_dtype=kv_dtype)
    total = float(inf.total)
    cap = float(ctx.hardware.memory_bytes)
    return InferenceSection(
        precision=precision.key,
        kv_precision=kv_dtype,
        context=int(context),
        batch=int(batch_size),
        prefill_tokens=prefill_tokens(ctx),
        memory=InferenceMemory(
            weights=float(inf.weights),
            weight_constants=float(inf.weight_constants),
            kv_cache=float(inf.kv_cache),
            workspace=float(inf.workspace),
            runtime=float(inf.overheads.get("runtime", 0.0)),
            total=total,
        ),
        fits=total <= cap,
        devices_per_replica=max(1, math.ceil(total / cap)),
    )


def assumptions(stages: Stages, plan: Plan, notes: Notes) -> None:
    """Every constant the numbers rest on, itemized (never folded into one figure)."""
    ctx = stages.ctx
    a = notes.assume
    prec, opt, dims, hw = ctx.precision, ctx.resolved.optimizer, stages.dims, ctx.hardware
    if ctx.peak_dtype and ctx.peak_dtype != prec.compute_dtype:
        a(
            "peak_flops",
            ctx.peak,
            f"{hw.key} dense {ctx.peak_dtype} peak standing in for {prec.compute_dtype}, which it quotes no figure for; "
            f"{hw.source or 'hardware record'}",
            f"{prec.compute_dtype} arithmetic runs at most this fast there: the time is a lower bound",
        )
    else:
        a("peak_flops", ctx.peak, f"{hw.key} dense {prec.compute_dtype} peak; {hw.source or 'hardware record'}")
    a("weight_bytes", prec.weight_bytes, f"precision `{prec.key}`: working copy of the weights ({prec.param_dtype})")
    a(
        "gradient_bytes",
        prec.gradient_bytes,
        f"precision `{prec.key}`",
        "gradients in the working dtype (ZeRO's 16 B/param); fp32 main gradients would give Megatron-LM's 18",
    )
    a("master_bytes", prec.master_bytes, f"precision `{prec.key}`: fp32 master copy for the update" if prec.master_bytes else f"precision `{prec.key}`: no master copy")
    state = float(optimizer_state_bytes(opt.state_bytes, opt.state_dtype, ctx.optimizer_state))
    a("optimizer_state_bytes", state, f"optimizer `{opt.key}` in {ctx.optimizer_state}", opt.state_note)
    update = float(update_buffer_bytes(opt.update_buffers, ctx.optimizer_state))
    a(
        "update_buffer_bytes",
        update,
        f"optimizer `{opt.key}`: {opt.update_buffers:g} parameter-sized buffer(s) at {ctx.optimizer_state} in the step"
        if update
        else f"optimizer `{opt.key}` in {ctx.optimizer_state}: the update needs no parameter-sized temporary",
        "PyTorch's multi-tensor Adam (`_foreach_sqrt`); a fused optimizer kernel needs none",
    )
    a(
        "gradient_lifetime",
        "backward to step",
        "gradients are freed after each step (PyTorch zero_grad(set_to_none=True), a functional JAX step)",
        "with gradient accumulation they are held through every micro-batch's forward pass",
    )
    a("activation_bytes", prec.activation_bytes, f"precision `{prec.key}`; dropout masks 1 byte (Korthikanti et al. 2022, Sec. 4.1)")
    a("attention", plan.train.attention, "flash attention keeps no s x s scores (Dao et al. 2022)" if plan.train.attention != "materialized" else "materialized scores: 5·a·s²·b bytes per layer")
    if plan.time.model == "step-time":
        stack = framework(plan.train.framework)
        a("framework_efficiency", stack.efficiency, f"{stack.description}: {stack.source}",
          "throughput against the step-time model's Megatron-LM; the step's `framework` part")
    a("tied_embeddings", dims.tied_embeddings, "the model's dimensions", "an untied output projection adds vocab x d_model parameters")
    a("causal_halving", False, "Chowdhery et al. 2022 (PaLM), App. B", "attention FLOPs are not halved for the causal mask")
    a("runtime_bytes", constants.RUNTIME_CONTEXT_BYTES, "CUDA context and library workspaces (genaisdk.estimate.constants)")
    a("allocator_fragmentation", constants.ALLOCATOR_FRAGMENTATION, "fraction of the allocated peak (genaisdk.estimate.constants)")
    if plan.train.strategy in ("fsdp", "fsdp-offload") or any(s.shards_weights for s in ctx.resolved.strategies if s.key == plan.train.strategy):
        a("fsdp_gather_layers", constants.FSDP_GATHER_LAYERS, "Rajbhandari et al. 2020, Sec. 5.3; PyTorch FSDP prefetch")
    a("tokens_per_param_optimal", constants.CHINCHILLA_TOKENS_PER_PARAM, "Hoffmann et al. 2022, Table 3")
    fit = scaling.CHINCHILLA
    a("loss_fit", f"E={fit.E} A={fit.A} B={fit.B} α={fit.alpha} β={fit.beta}", fit.source, "nats/token on MassiveText; a relative guide")
    if ctx.price is not None:
        source = "the spec's price_per_hour" if ctx.project.budget.price_per_hour is not None else (hw.price_citation or "hardware record")
        a("price_per_hour", ctx.price, source)
    if hw.power_watts:
        a("power_watts", hw.power_watts, f"{hw.key} rated board power", "energy is an upper bound for the accelerators alone")
    kv = ctx.resolved.kv_dtype
    a("kv_cache_bytes", DTYPE_BYTES[kv], f"KV cache type `{kv}` (serve.kv_precision)", "fp8 or int8 halves a 16-bit cache")
    a("serve_prefill_tokens", prefill_tokens(ctx), "tokens one serving step processes at most: vLLM's max_num_batched_tokens default (SchedulerConfig)",
      "a longer prompt is prefilled in chunks of this many tokens; set serve.prefill_tokens to change it")
