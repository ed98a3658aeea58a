"""`genai train` in words: the run a plan describes (`--dry-run`), its compiled step's
memory (`--dry-run --compile`), and the summary at the end of a run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from genaisdk.core.numbers import fmt_count

if TYPE_CHECKING:  # pragma: no cover
    from genaisdk.planning.run_settings import RunSettings


def run_settings_text(settings: RunSettings) -> str:
    """The model, the training configuration, the schedule and the deviations, one per line."""
    m, t, a, d = settings.model, settings.train, settings.adapt, settings.model.dims
    shape = f"{d.layers} layers x d_model {d.d_model}, {d.heads} heads" + (f" ({d.n_kv_heads} kv)" if d.n_kv_heads != d.heads else "")
    adapt = a.method + (f" of {a.base}" if a.base else "") + (f", rank {a.rank} on {', '.join(a.targets)}" if a.rank else "")
    lines = [
        f"run of {settings.project} ({settings.spec_file}), as planned" + ("" if not settings.deviations else ", but for the deviations below"),
        f"  model        {m.architecture} ({m.family}), {m.objective}, {fmt_count(m.params)} params ({int(m.params):,}): {shape}, "
        f"d_ff {d.d_ff}, vocab {d.vocab}, context {m.context}" + (f", preset {m.preset}" if m.preset else ""),
        f"  adaptation   {adapt}",
        f"  precision    {t.precision}, optimizer {t.optimizer} (state in {t.optimizer_state})",
        f"  devices      {t.devices} x {t.hardware}, strategy {t.strategy}, recompute {t.recompute}, attention {t.attention}",
        *_layout(t),
        f"  batch        {t.global_batch_sequences} sequences x {m.context} tokens = {fmt_count(t.global_batch_tokens)} tokens per step: "
        f"micro-batch {t.micro_batch} x {_groups(t)} x {t.grad_accumulation} accumulation step(s)",
        f"  schedule     {t.steps:,} steps, learning rate {t.learning_rate:g} (warmup {t.warmup_steps}, cosine to "
        f"{t.min_lr_ratio:g}x), weight decay {t.weight_decay:g}, grad clip {t.grad_clip if t.grad_clip is not None else 'none'}, seed {t.seed}",
    ]
    if settings.deviations:
        lines.append("deviations from the plan:")
        lines += [f"  {dv.field:<24} plan {dv.plan}  run {dv.run}  ({dv.why})" for dv in settings.deviations]
    else:
        lines.append("deviations from the plan: none")
    return "\n".join(lines)


def train_summary(result: Any) -> str:
    """The lines printed at the end of a run (a `genaisdk.backend.jax.train.TrainResult`)."""
    from genaisdk.core.numbers import fmt_bytes, fmt_percent, fmt_rate

    def number(value: float | None, digits: int = 4) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    lines = [
        f"{result.status}: {result.project}, steps {result.start_step} -> {result.steps} of "
        f"{result.total_steps} in {result.seconds:.1f} s"
    ]
    if result.message:
        lines.append(f"  {result.message}")
    lines.append(
        f"  final loss      {number(result.final_loss)}   held-out loss {number(result.eval_loss)}   "
        f"perplexity {number(result.perplexity, 2)}"
    )
    mfu = fmt_percent(result.mfu) if result.mfu is not None else f"- (no peak FLOP/s known for {result.platform})"
    lines.append(f"  throughput      {fmt_rate(result.tokens_per_s)}   MFU {mfu}")
    if result.peak_memory_bytes is not None:
        memory = f"measured peak {fmt_bytes(result.peak_memory_bytes)} per device"
        if result.planned_memory_bytes:
            ratio = result.peak_memory_bytes / result.planned_memory_bytes
            memory += f" vs planned {fmt_bytes(result.planned_memory_bytes)} (x{ratio:.2f})"
            if result.planned_devices not in (None, result.devices):
                memory += f"; planned for {result.planned_devices} device(s), run on {result.devices}"
    else:
        memory = f"not reported by {result.platform} devices"
    if getattr(result, "compiled_memory_bytes", None) is not None:
        memory += f"; the compiled step needs {fmt_bytes(result.compiled_memory_bytes)}"
    lines.append(f"  memory          {memory}")
    latest = f" (latest step {result.last_checkpoint})" if result.last_checkpoint is not None else ""
    lines.append(f"  checkpoints     {result.checkpoint_dir}{latest}")
    lines.append(f"  metrics         {result.metrics_path}")
    return "\n".join(lines)


def compiled_text(check: Any) -> str:
    """`genai train --dry-run --compile`: XLA's memory_analysis of the compiled step per
    device, next to the plan's figure and the device's capacity (a
    `genaisdk.backend.jax.compile.MemoryCheck`)."""
    from genaisdk.core.numbers import fmt_bytes

    m = check.memory
    lines = [
        "compiled step, per device (XLA memory_analysis; nothing allocated):",
        f"  arguments      {fmt_bytes(m.arguments):>10}   train state and batch",
        f"  temporaries    {fmt_bytes(m.temporaries):>10}   gradients, activations, collectives' buffers",
        f"  outputs        {fmt_bytes(m.outputs):>10}   of which {fmt_bytes(m.aliased)} reuse the donated inputs",
        f"  generated code {fmt_bytes(m.generated_code):>10}",
    ]
    need = f"  need           {fmt_bytes(check.need):>10}   arguments + temporaries + outputs - aliased"
    lines.append(need)
    if check.planned_without_overheads:
        plan = (
            f"  plan           {fmt_bytes(check.planned_without_overheads):>10}   without runtime overheads "
            f"(XLA / plan x{check.ratio:.2f}); {fmt_bytes(check.planned)} with them"
        )
        if check.planned_devices != check.run_devices:
            plan += f"; planned for {check.planned_devices} device(s), compiled for {check.run_devices}"
        lines.append(plan)
    if check.capacity is None:
        lines.append("  device                unknown   (not checked)")
    else:
        verdict = "fits" if check.fits else "does NOT fit"
        lines.append(f"  device         {fmt_bytes(check.capacity.bytes):>10}   {check.capacity.source}: {verdict}")
    return "\n".join(lines)


def _groups(t) -> str:
    if t.tensor_parallel == 1:
        return f"{t.devices} devices"
    return f"{t.devices // t.tensor_parallel} data-parallel groups"


def _layout(t) -> list[str]:
    """The tensor-parallel layout line, when there is one."""
    if t.tensor_parallel == 1 and not t.sequence_parallel:
        return []
    sequence = ", sequence parallel" if t.sequence_parallel else ""
    return [f"  layout       tensor parallel {t.tensor_parallel} x data parallel {t.devices // t.tensor_parallel}{sequence}"]
