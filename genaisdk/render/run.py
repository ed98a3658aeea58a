"""`genai train --dry-run`: the run a plan describes, as text."""

from __future__ import annotations

from typing import TYPE_CHECKING

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
        f"  precision    {t.precision}, optimizer {t.optimizer}",
        f"  devices      {t.devices} x {t.hardware}, strategy {t.strategy}, recompute {t.recompute}, attention {t.attention}",
        f"  batch        {t.global_batch_sequences} sequences x {m.context} tokens = {fmt_count(t.global_batch_tokens)} tokens per step: "
        f"micro-batch {t.micro_batch} x {t.devices} devices x {t.grad_accumulation} accumulation step(s)",
        f"  schedule     {t.steps:,} steps, learning rate {t.learning_rate:g} (warmup {t.warmup_steps}, cosine to "
        f"{t.min_lr_ratio:g}x), weight decay {t.weight_decay:g}, grad clip {t.grad_clip if t.grad_clip is not None else 'none'}, seed {t.seed}",
    ]
    if settings.deviations:
        lines.append("deviations from the plan:")
        lines += [f"  {dv.field:<24} plan {dv.plan}  run {dv.run}  ({dv.why})" for dv in settings.deviations]
    else:
        lines.append("deviations from the plan: none")
    return "\n".join(lines)
