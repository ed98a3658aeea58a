"""Spec -> Plan: the stages in order, each a function over frozen inputs.

    >>> import genaisdk
    >>> plan = genaisdk.plan("specs/legal.genai")          # a path, spec text, or a Spec
    >>> plan.train.strategy, plan.memory.fits

1. validate (`genaisdk.spec.validate`, for a Spec built in code) and resolve names to
   records: family and objective when `auto` (`planning.resolve`);
2. the context: precision (`auto`: bf16 where the hardware has it, else fp16, else fp32),
   MFU, peak, price, fixed device count (`planning.context`);
3. the model: a preset, explicit dimensions, `size = 3B`, or `size = auto`: the
   compute-optimal size for what the budget buys (`planning.sizing`);
4. what trains: LoRA/QLoRA adapters, RLHF/DPO resident models (`planning.trainable`);
5. training tokens and batch (`planning.tokens`);
6. the configuration: strategy, micro-batch, recomputation, device count, context, searched
   over every value left `auto` (`planning.fit` over `planning.grid`);
7. the Plan: time, cost, energy, memory, scaling, serving (`planning.assemble`);
8. the senior-engineer checks (`planning.advice`) and the derivations `genai explain`
   prints (`planning.derive`).

Each `auto` gets a `Reason`, each problem a `Diagnostic`.
"""

from __future__ import annotations

import functools
import math
import os
from typing import TYPE_CHECKING, Any

import attrs

from genaisdk.core import codes
from genaisdk.core.numbers import fmt_count
from genaisdk.diagnostics import SpecError
from genaisdk.planning import advice
from genaisdk.planning.assemble import assemble, assumptions, batch
from genaisdk.planning.context import build_context
from genaisdk.planning.fit import fit
from genaisdk.planning.notes import Notes
from genaisdk.planning.resolve import Resolved, resolve
from genaisdk.planning.sizing import choose_size
from genaisdk.planning.stages import Planned, Stages
from genaisdk.planning.tokens import batch_tokens, training_tokens
from genaisdk.planning.trainable import trainable_for
from genaisdk.plans import Plan
from genaisdk.spec.model import Spec
from genaisdk.spec.validate import validate

if TYPE_CHECKING:  # pragma: no cover
    from genaisdk.records import Architecture
    from genaisdk.registry import Registry


def as_spec(spec: Any, *, overrides: Any = None, registry: Any = None) -> Spec:
    """A Spec from a Spec, a path or spec text (`genaisdk.spec.is_path` tells which)."""
    if isinstance(spec, Spec):
        if overrides:
            raise ValueError("overrides apply to spec text or a path; load the spec with them instead")
        return spec
    from genaisdk.spec import is_path, load, loads

    if isinstance(spec, (str, os.PathLike)) and is_path(spec):
        return load(spec, overrides=overrides, registry=registry)
    if isinstance(spec, str):
        return loads(spec, overrides=overrides, registry=registry)
    raise TypeError(f"plan() takes a Spec, a path or spec text, not {type(spec).__name__}")


def plan(spec: Spec | str | os.PathLike, *, registry: Registry | None = None, overrides: Any = None) -> Plan:
    """Plan a spec (a `Spec`, a path to a .genai file, or its text).

    Raises `SpecError` when the spec cannot be planned at all (unknown names, a precision the
    hardware cannot run); problems of the plan itself (does not fit, over budget) are the
    Plan's diagnostics.
    """
    return plan_stages(spec, registry=registry, overrides=overrides).plan


def plan_stages(spec: Spec | str | os.PathLike, *, registry: Registry | None = None, overrides: Any = None) -> Planned:
    """The Plan and the frozen stage outputs it was made from (`genai plan --sweep` reads
    them, so a sweep plans once)."""
    spec = as_spec(spec, overrides=overrides, registry=registry)
    if registry is None:
        from genaisdk.registry import get_registry

        registry = get_registry()
    notes = Notes(spec, validate(spec, registry))
    if notes.has_errors:
        raise SpecError(notes.diagnostics, spec.sources)
    resolved = resolve(spec, registry, notes)
    if resolved is None:
        raise SpecError(notes.diagnostics, spec.sources)
    try:
        return _run(spec, registry, resolved, notes)
    except SpecError:
        raise
    except Exception as exc:
        culprit = _plugin_in_traceback(exc, resolved.architecture)
        if culprit is None or _strict(registry):
            raise
        notes.diag(
            codes.PLUGIN_RAISED,
            f"plugin `{culprit}` raised while planning architecture `{resolved.architecture.key}`:"
            f" {type(exc).__name__}: {exc}",
            "model.family",
            hint="check the values this architecture's plugin expects (`genai catalog architectures`);"
            " GENAISDK_STRICT_PLUGINS=1 shows the traceback",
        )
        raise SpecError(notes.diagnostics, spec.sources) from exc


def _run(spec: Spec, registry: Registry, resolved: Resolved, notes: Notes) -> Planned:
    ctx = build_context(spec, registry, resolved, notes)
    size = choose_size(ctx, notes)
    dims = size.dims
    arch = resolved.architecture
    count = arch.count_params(dims)
    trainable = trainable_for(ctx, dims, count, notes)
    trained_params = trainable.resident(dims, count)[1]
    tokens = training_tokens(ctx, count, size.budget_tokens, notes)
    requested = batch_tokens(ctx, count, ctx.context, notes)
    steps = spec.project.train.steps if resolved.adaptation.trains else None
    if steps:
        # The spec fixes the optimizer steps: the run trains steps x the global batch.
        tokens = float(steps * max(1, round(requested / ctx.context)) * ctx.context)
    fitted = None
    if resolved.adaptation.trains:
        fitted = fit(ctx, trainable, dims, tokens=tokens, batch_tokens=requested, notes=notes)
        dims = fitted.case.dims
        count = arch.count_params(dims)
        if steps:
            c = fitted.choice
            global_seq, _ = batch(requested, fitted.case.seq, c.micro_batch, c.data_parallel)
            tokens = float(steps * global_seq * fitted.case.seq)
            notes.reason("data.tokens", tokens, f"train.steps = {steps} steps x {global_seq} sequences x {fitted.case.seq} tokens")
            given = spec.project.data.tokens
            if given and abs(given - tokens) > 0.01 * tokens:
                notes.diag(
                    codes.ADJUSTED_VALUE,
                    f"train.steps = {steps} trains {fmt_count(tokens, 'tokens')}, not the {fmt_count(given, 'tokens')} of data.tokens "
                    f"(which would take {math.ceil(given / (global_seq * fitted.case.seq)):,} steps): the steps decide",
                    "train.steps",
                    hint="drop one of the two, or make them agree",
                )
    else:
        notes.diag(
            codes.PROMPT_ONLY,
            "adapt.method = prompt: nothing trains; memory is one serving replica at the training precision",
            "adapt.method",
        )
    stages = Stages(
        ctx=ctx,
        size=size,
        trainable=trainable,
        dims=dims,
        count=count,
        trained_params=trained_params,
        tokens=tokens,
        batch_tokens=requested,
        fitted=fitted,
    )
    the_plan = assemble(stages, notes)
    assumptions(stages, the_plan, notes)
    advice.review(the_plan, stages, notes)
    the_plan = attrs.evolve(
        the_plan,
        diagnostics=sorted(notes.diagnostics, key=lambda d: d.sort_key()),
        reasons=tuple(notes.reasons),
        assumptions=tuple(notes.assumptions),
        derive=functools.partial(_derivations, the_plan, stages),
    )
    return Planned(plan=the_plan, stages=stages)


def _derivations(plan: Plan, stages: Stages) -> dict:
    """The derivations `genai explain` prints, computed on first use (`Plan.derivations`)."""
    from genaisdk.planning import derive

    return derive.derivations(plan, stages)


def _plugin_in_traceback(exc: BaseException, architecture: Architecture) -> str | None:
    """The architecture's provider if the error was raised inside its (non-built-in) code.

    A plugin's record callables are the only third-party code a planning run executes; an
    exception from them is the plugin's to explain, and reaches the user as a Diagnostic
    naming the plugin rather than as a traceback. Errors in genaisdk itself still raise."""
    modules = {
        getattr(fn, "__module__", "") or ""
        for fn in (architecture.count_params, architecture.flops_per_token, architecture.activation_bytes)
    }
    packages = {m.split(".")[0] for m in modules if m and not m.startswith("genaisdk.")}
    if not packages:
        return None
    tb = exc.__traceback__
    while tb is not None:
        name = str(tb.tb_frame.f_globals.get("__name__", ""))
        if name.split(".")[0] in packages:
            return architecture.provider or name.split(".")[0]
        tb = tb.tb_next
    return None


def _strict(registry: Registry) -> bool:
    """Plugin errors re-raise: the registry's own setting, else GENAISDK_STRICT_PLUGINS."""
    strict = getattr(registry, "strict", None)
    if isinstance(strict, bool):
        return strict
    from genaisdk.registry import strict_from_env

    return strict_from_env()
