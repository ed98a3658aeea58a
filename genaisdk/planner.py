"""Spec -> Plan: fill every `auto` with a reason, size, fit, cost and serve the model, and
check the budget.

    >>> import genaisdk
    >>> plan = genaisdk.plan("specs/legal.genai")          # a path, spec text, or a Spec
    >>> plan.train.strategy, plan.memory.fits

The steps, in order (each `auto` gets a `Reason`, each problem a `Diagnostic`):

1. resolve the spec's names to registry records (`planning.resolve`): family and objective
   from the task when `auto`;
2. precision (`auto`: bf16 where the hardware has it, else fp16, else fp32);
3. the model: a preset, explicit dimensions, `size = 3B`, or `size = auto`: the
   compute-optimal size (Chinchilla, about 20 tokens per parameter) for the FLOPs the time
   (devices x peak x MFU x time) and the money (budget / price x peak x MFU) can buy;
4. parameters that train (LoRA/QLoRA adapters, RLHF/DPO resident models), training tokens;
5. the configuration: strategy, micro-batch, recomputation, device count, context: a
   vectorized search (`genaisdk.search`) over every value left `auto`, preferring the
   cheapest that fits (`search.preference_keys`);
6. time, cost and energy; the budget check; serving memory; scaling-law figures;
7. the senior-engineer checks (`planning.advice`) and the derivations for `genai explain`
   (`planning.derive`).

No formula lives here: numbers come from `genaisdk.estimate` and the registry's records.
"""

from __future__ import annotations

import math
import os
from typing import Any

import attrs
import numpy as np

from genaisdk.diagnostics import SpecError
from genaisdk.estimate import constants
from genaisdk.estimate import cost as cost_math
from genaisdk.estimate import flops as flops_math
from genaisdk.estimate import scaling
from genaisdk.estimate.adaptation import TARGET_NAMES, alignment_params, lora_params
from genaisdk.estimate.data import epochs_over, mix_tokens, raw_tokens_needed, usable_tokens
from genaisdk.estimate.inference import inference_memory
from genaisdk.plans import (
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
    TimeSection,
    TrainSection,
)
from genaisdk.planning import codes
from genaisdk.planning.advice import domain_share
from genaisdk.planning import model as model_choice
from genaisdk.planning.defaults import FINETUNE_BATCH_SEQUENCES, MAX_AUTO_CONTEXT, MIN_AUTO_CONTEXT, batch_tokens_for
from genaisdk.planning.notes import Notes
from genaisdk.planning.resolve import Resolved, auto_precision, resolve
from genaisdk.records import Precision
from genaisdk.core.numbers import fmt_count, fmt_sci
from genaisdk.search import (
    PHASES,
    RECOMPUTE_ORDER,
    Choice,
    Grid,
    GridResult,
    ModelCase,
    choose,
    evaluate,
    powers_of_two,
)
from genaisdk.spec.model import Spec, is_auto

MAX_DEVICE_DOUBLINGS = 12
"""`devices = auto` tries the count the time budget needs, then doublings of it, up to 4096x."""

MAX_AUTO_MICRO_BATCH = 1024


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


def plan(spec: Spec | str | os.PathLike, *, registry: Any = None, overrides: Any = None) -> Plan:
    """Plan a spec (a `Spec`, a path to a .genai file, or its text).

    Raises `SpecError` when the spec cannot be planned at all (unknown names, a precision the
    hardware cannot run); problems of the plan itself (does not fit, over budget) are the
    Plan's diagnostics.
    """
    spec = as_spec(spec, overrides=overrides, registry=registry)
    if registry is None:
        from genaisdk.registry import get_registry

        registry = get_registry()
    return planner_for(spec, registry).plan


def planner_for(spec: Spec, registry: Any) -> _Planner:
    """A finished planning run, its intermediate state kept (for `--sweep`)."""
    notes = Notes(spec)
    resolved = resolve(spec, registry, notes)
    if resolved is None:
        raise SpecError(notes.diagnostics, spec.source)
    planner = _Planner(spec, registry, resolved, notes)
    try:
        planner.plan = planner.run()
    except Exception as exc:
        culprit = _plugin_in_traceback(exc, resolved.architecture)
        if culprit is None or registry_is_strict(registry):
            raise
        notes.diag(
            codes.PLUGIN_RAISED,
            "error",
            f"plugin `{culprit}` raised while planning architecture `{resolved.architecture.key}`:"
            f" {type(exc).__name__}: {exc}",
            "model.family",
            hint="check the values this architecture's plugin expects (`genai catalog architectures`);"
            " GENAISDK_STRICT_PLUGINS=1 shows the traceback",
        )
        raise SpecError(notes.diagnostics, spec.source) from exc
    return planner


def _plugin_in_traceback(exc: BaseException, architecture: Any) -> str | None:
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


def registry_is_strict(registry: Any) -> bool:
    """GENAISDK_STRICT_PLUGINS=1 (or a registry made strict) re-raises plugin errors."""
    strict = getattr(registry, "strict", None)
    if isinstance(strict, bool):
        return strict
    from genaisdk.registry import strict_from_env

    return strict_from_env()


@attrs.frozen(kw_only=True)
class Fitted:
    """The chosen configuration and the grid it was chosen from."""

    case: ModelCase
    grid: Grid
    result: GridResult
    choice: Choice


class _Planner:
    """One planning run. Private: `plan()` is the interface."""

    def __init__(self, spec: Spec, registry: Any, resolved: Resolved, notes: Notes):
        self.spec = spec
        self.p = spec.project
        self.registry = registry
        self.r = resolved
        self.notes = notes
        self.hw = resolved.hardware

    # -- steps -----------------------------------------------------------------------

    def run(self) -> Plan:
        from genaisdk.planning import advice, derive

        self.mfu = self._mfu()
        self.precision = self._precision()
        self.peak = float(self.hw.peak_flops[self.precision.compute_dtype])
        self.price = self.p.budget.price_per_hour if self.p.budget.price_per_hour is not None else self.hw.price_per_hour
        self.devices_fixed = self._devices_fixed()
        self.context = model_choice.context_of(self.p.model, self.r)
        self.vocab = self.p.model.vocab or self.p.data.vocab
        self.dims = self._dims()
        self.count = model_choice.count(self.r, self.dims)
        self._trainable()
        self.tokens = self._tokens()
        self.batch_tokens = self._batch_tokens()
        trains = self.r.adaptation.trains

        if trains:
            fitted = self._fit()
            self.dims = fitted.case.dims
            self.context = fitted.case.seq
        else:
            fitted = None
            self.notes.diag(
                codes.PROMPT_ONLY,
                "info",
                "adapt.method = prompt: nothing trains; memory is one serving replica at the training precision",
                "adapt.method",
            )
        self.fitted = fitted
        plan = self._assemble(fitted)
        self._assumptions(plan)
        plan = advice.review(plan, spec=self.spec, resolved=self.r, notes=self.notes, planner=self)
        derivations = derive.derivations(plan, planner=self)
        return attrs.evolve(
            plan,
            diagnostics=sorted(self.notes.diagnostics, key=lambda d: d.sort_key()),
            reasons=tuple(self.notes.reasons),
            assumptions=tuple(self.notes.assumptions),
            derivations=derivations,
        )

    def _assumptions(self, plan: Plan) -> None:
        """Every constant the numbers rest on, itemized (never folded into one figure)."""
        a = self.notes.assume
        prec, opt, dims = self.precision, self.r.optimizer, self.dims
        a("peak_flops", self.peak, f"{self.hw.key} dense {prec.compute_dtype} peak; {self.hw.source or 'hardware record'}")
        a("weight_bytes", prec.weight_bytes, f"precision `{prec.key}`: working copy of the weights ({prec.param_dtype})")
        a(
            "gradient_bytes",
            prec.gradient_bytes,
            f"precision `{prec.key}`",
            "gradients in the working dtype (ZeRO's 16 B/param); fp32 main gradients would give Megatron-LM's 18",
        )
        a("master_bytes", prec.master_bytes, f"precision `{prec.key}`: fp32 master copy for the update" if prec.master_bytes else f"precision `{prec.key}`: no master copy")
        a("optimizer_state_bytes", opt.state_bytes, f"optimizer `{opt.key}`", opt.state_note)
        a("activation_bytes", prec.activation_bytes, f"precision `{prec.key}`; dropout masks 1 byte (Korthikanti et al. 2022, Sec. 4.1)")
        a("attention", plan.train.attention, "flash attention keeps no s x s scores (Dao et al. 2022)" if plan.train.attention != "materialized" else "materialized scores: 5·a·s²·b bytes per layer")
        a("tied_embeddings", dims.tied_embeddings, "the model's dimensions", "an untied output projection adds vocab x d_model parameters")
        a("causal_halving", False, "Chowdhery et al. 2022 (PaLM), App. B", "attention FLOPs are not halved for the causal mask")
        a("runtime_bytes", constants.RUNTIME_CONTEXT_BYTES, "CUDA context and library workspaces (genaisdk.estimate.constants)")
        a("allocator_fragmentation", constants.ALLOCATOR_FRAGMENTATION, "fraction of the allocated peak (genaisdk.estimate.constants)")
        if plan.train.strategy in ("fsdp", "fsdp-offload") or any(s.shards_weights for s in self.r.strategies if s.key == plan.train.strategy):
            a("fsdp_gather_layers", constants.FSDP_GATHER_LAYERS, "Rajbhandari et al. 2020, Sec. 5.3; PyTorch FSDP prefetch")
        a("tokens_per_param_optimal", constants.CHINCHILLA_TOKENS_PER_PARAM, "Hoffmann et al. 2022, Table 3")
        fit = scaling.CHINCHILLA
        a("loss_fit", f"E={fit.E} A={fit.A} B={fit.B} α={fit.alpha} β={fit.beta}", fit.source, "nats/token on MassiveText; a relative guide")
        if self.price is not None:
            source = "the spec's price_per_hour" if self.p.budget.price_per_hour is not None else (self.hw.price_citation or "hardware record")
            a("price_per_hour", self.price, source)
        if self.hw.power_watts:
            a("power_watts", self.hw.power_watts, f"{self.hw.key} rated board power", "energy is an upper bound for the accelerators alone")
        serve = self.r.serve_precision
        a("kv_cache_bytes", serve.activation_bytes, f"serving precision `{serve.key}`: keys and values stay 16-bit")

    def _mfu(self) -> float:
        if self.p.train.mfu is not None:
            self.notes.reason("train.mfu", self.p.train.mfu, "given in the spec")
            return float(self.p.train.mfu)
        self.notes.reason(
            "train.mfu",
            constants.DEFAULT_MFU,
            "default: PaLM Table 3 reports 21-46% MFU for large runs; 40% is what current GPU stacks with flash attention reach",
        )
        self.notes.assume("mfu", constants.DEFAULT_MFU, "Chowdhery et al. 2022 (PaLM), Table 3", "set train.mfu to change it")
        return constants.DEFAULT_MFU

    def _precision(self) -> Precision:
        precision = self.r.precision
        if precision is None:
            precision, why = auto_precision(self.hw, self.r.precisions)
            if precision is None:
                self.notes.diag(codes.UNSUPPORTED_DTYPE, "error", why, "budget.hardware")
                raise SpecError(self.notes.diagnostics, self.spec.source)
            self.notes.reason("train.precision", precision.key, why)
        if precision.compute_dtype not in self.hw.peak_flops:
            supported = ", ".join(sorted(self.hw.peak_flops))
            self.notes.diag(
                codes.UNSUPPORTED_DTYPE,
                "error",
                f"{self.hw.key} has no {precision.compute_dtype} throughput for precision `{precision.key}`",
                "train.precision",
                hint=f"{self.hw.key} computes in: {supported}",
            )
            raise SpecError(self.notes.diagnostics, self.spec.source)
        return precision

    def _devices_fixed(self) -> int | None:
        devices = self.p.budget.devices
        if isinstance(devices, int) and not is_auto(devices):
            return devices
        if devices is None and self.p.budget.time is None:
            self.notes.reason("budget.devices", 1, "the budget names one device and no time limit")
            return 1
        return None

    # -- the model -------------------------------------------------------------------

    def _dims(self):
        m = self.p.model
        if self.r.checkpoint is not None:
            dims = model_choice.from_checkpoint(self.r, self.notes, context=self.context)
            if self.notes.has_errors:
                raise SpecError(self.notes.diagnostics, self.spec.source)
            return dims
        if self.r.preset is not None:
            return model_choice.from_preset(m, self.r, self.notes, context=self.context, vocab=self.vocab)
        if model_choice.explicit_shape(m):
            return model_choice.from_explicit(m, self.r, self.notes, context=self.context, vocab=self.vocab)
        if not is_auto(m.size) and m.size:
            dims = model_choice.for_size(float(m.size), m, self.r, context=self.context, vocab=self.vocab)
            n = self.r.architecture.count_params(dims).total
            self.notes.reason("model.size", float(m.size), "given in the spec")
            self.notes.reason(
                "model.dims",
                "proposed",
                f"{dims.layers} layers x d_model {dims.d_model} gives {n / 1e9:.3g}B parameters: GPT-3 Table 2.1 aspect ratios "
                f"({self.r.family} block: {dims.ffn} FFN, {dims.norm}, {dims.positions} positions)",
            )
            return dims
        return self._dims_for_budget()

    def _budget_limits(self) -> list[tuple[str, float, str]]:
        """(what, model FLOPs it buys, how) for each budget that bounds compute."""
        b = self.p.budget
        limits = []
        rate = self.peak * self.mfu
        if b.time is not None and self.devices_fixed is not None:
            limits.append(
                (
                    "time",
                    self.devices_fixed * rate * b.time.value,
                    f"{self.devices_fixed} x {self.hw.key} x {b.time.value / 86400:.3g} days x {self.peak / 1e12:.0f} TFLOP/s x {self.mfu:.0%} MFU",
                )
            )
        if b.cost is not None and self.price:
            hours = b.cost.value / self.price
            limits.append(("cost", hours * 3600.0 * rate, f"${b.cost.value:,.0f} / ${self.price:.2f} per device-hour = {hours:,.0f} device-hours"))
        if b.compute is not None:
            limits.append(("compute", b.compute.value, "the compute budget"))
        return limits

    def _dims_for_budget(self):
        """`size = auto`: the compute-optimal size for what the budget buys (Chinchilla,
        about 20 tokens per parameter, C = 6·N·D). The budget buys model FLOPs (attention
        included), so the 6·N·D it affords is scaled by 6·N / (model FLOPs per token)."""
        m = self.p.model
        limits = self._budget_limits()
        if not limits:
            if self.p.data.tokens:
                n = float(scaling.optimal_params_for_tokens(self.p.data.tokens))
                dims = model_choice.for_size(n, m, self.r, context=self.context, vocab=self.vocab)
                self.notes.reason(
                    "model.size",
                    float(self.r.architecture.count_params(dims).total),
                    f"no compute budget: the size the data trains compute-optimally, {self.p.data.tokens:.3g} tokens / 20 tokens per parameter (Chinchilla)",
                )
                self._shape_reason(dims)
                return dims
            self.notes.diag(
                codes.NOTHING_TO_SIZE,
                "error",
                "`size = auto` needs a budget (time with a device count, cost, or compute) or data.tokens",
                "model.size",
                hint="give `size = 7B`, a `preset`, or a budget",
            )
            raise SpecError(self.notes.diagnostics, self.spec.source)
        what, budget_model_flops, how = min(limits, key=lambda t: t[1])
        self.budget_model_flops = budget_model_flops
        self.budget_binding = (what, how)
        # Fixed point: N_opt(C6) with C6 = budget x 6·N / (model FLOPs per token at N).
        # The ratio moves slowly with N; two or three rounds settle it within 2%.
        c6 = budget_model_flops
        dims, previous = None, 0.0
        for _ in range(4):
            n = float(scaling.tokens_per_param_optimal(c6)[0])
            if dims is not None and abs(n - previous) <= 0.02 * n:
                break
            previous = n
            dims = model_choice.for_size(n, m, self.r, context=self.context, vocab=self.vocab)
            if what == "compute":
                break
            total = self.r.architecture.count_params(dims).active
            per_token = float(self.r.architecture.flops_per_token(dims, self.context))
            c6 = budget_model_flops * 6.0 * total / per_token
        assert dims is not None
        n_budget = float(self.r.architecture.count_params(dims).total)
        self.budget_optimum = tuple(float(x) for x in scaling.tokens_per_param_optimal(c6))
        others = [f"the {w} budget {fmt_sci(f)}" for w, f, _ in limits if w != what]
        budget_why = (
            f"the {what} budget buys {fmt_sci(budget_model_flops)} model FLOPs ({how})"
            + (f"; {', '.join(others)}" if others else "")
            + f"; compute-optimal for it: {fmt_count(n_budget)} parameters (N = sqrt(C / (6·20)), C = {fmt_sci(c6)} as 6·N·D; "
            "Hoffmann et al. 2022, ~20 tokens per parameter)"
        )
        data = self.p.data.tokens or (
            float(usable_tokens(self.p.data.raw_tokens, self.p.data.keep)) if self.p.data.raw_tokens and self.p.data.keep else None
        )
        if data and float(scaling.optimal_params_for_tokens(data)) < n_budget:
            # The data cannot feed the budget's optimum: the compute-optimal model for the
            # data is smaller (Chinchilla's ~20 tokens per parameter); the rest of the
            # budget stays unused rather than under-training a larger model.
            n_data = float(scaling.optimal_params_for_tokens(data))
            dims = model_choice.for_size(n_data, m, self.r, context=self.context, vocab=self.vocab)
            self.notes.reason(
                "model.size",
                float(self.r.architecture.count_params(dims).total),
                f"limited by the data: {fmt_count(data)} tokens train {fmt_count(n_data)} parameters compute-optimally "
                f"(20 tokens per parameter); {budget_why}",
            )
        else:
            self.notes.reason("model.size", n_budget, budget_why)
            # The budget's optimum trains about 20 tokens per parameter: the tokens the
            # budget's model FLOPs buy for this exact shape. More data than that is left
            # over rather than spent past the budget.
            if what == "compute":  # a compute budget is counted as 6·N·D
                self.budget_tokens = budget_model_flops / (6.0 * float(self.r.architecture.count_params(dims).active))
            else:
                self.budget_tokens = budget_model_flops / float(self.r.architecture.flops_per_token(dims, self.context))
        self._shape_reason(dims)
        return dims

    def _shape_reason(self, dims) -> None:
        self.notes.reason(
            "model.dims",
            "proposed",
            f"{dims.layers} layers x d_model {dims.d_model}, {dims.heads} heads: GPT-3 Table 2.1 aspect ratios "
            f"({self.r.family} block: {dims.ffn} FFN, {dims.norm}, {dims.positions} positions)",
        )

    def _trainable(self) -> None:
        """What is resident and what trains, per the adaptation method; reasons recorded once."""
        a = self.r.adaptation
        self.frozen_weight_bytes: float | None = None
        self.lora: dict[str, Any] | None = None
        if a.trains and not a.full and not self._alignment():
            rank = self.p.adapt.rank or a.default_rank or 8
            targets = tuple(self.p.adapt.targets) or tuple(a.default_targets) or ("q", "v")
            unknown = [t for t in targets if str(t).strip().lower() not in TARGET_NAMES]
            if unknown:
                self.notes.diag(
                    codes.UNKNOWN_NAME,
                    "error",
                    f"unknown LoRA target{'s' if len(unknown) > 1 else ''} {', '.join(f'`{t}`' for t in unknown)}",
                    "adapt.targets",
                    hint=f"known: {', '.join(TARGET_NAMES)}",
                )
                raise SpecError(self.notes.diagnostics, self.spec.source)
            self.lora = {"rank": rank, "targets": targets}
            if a.frozen_precision:
                frozen = self.registry.get("precisions", a.frozen_precision)
                self.frozen_weight_bytes = float(frozen.weight_bytes) if frozen is not None else None
                if a.frozen_precision in ("int4", "nf4") and a.key == "qlora":
                    self.frozen_weight_bytes = constants.NF4_DOUBLE_QUANT_BYTES
                    self.notes.assume(
                        "frozen_weight_bytes",
                        constants.NF4_DOUBLE_QUANT_BYTES,
                        "Dettmers et al. 2023 (QLoRA), Sec. 3: 4-bit NormalFloat + double-quantized constants",
                    )
        self.params, self.trainable = self._resident(self.count)
        total = float(self.count.total)
        if self.lora is not None:
            adapters = self.trainable
            self.lora["params"] = adapters
            self.notes.reason(
                "adapt.rank",
                self.lora["rank"],
                f"LoRA rank {self.lora['rank']} on {', '.join(self.lora['targets'])}: {adapters / 1e6:.3g}M trainable parameters "
                f"({adapters / total:.2%} of the base) (Hu et al. 2021)",
            )
        elif self._alignment():
            resident = alignment_params(self._alignment(), policy_params=total)
            self.notes.reason(
                "adapt.resident",
                ", ".join(resident.models),
                f"{a.key}: {', '.join(n for n, t in resident.trainable.items() if t)} train; "
                f"{', '.join(n for n, t in resident.trainable.items() if not t) or 'none'} stay frozen ({a.source or 'adaptation record'})",
            )

    def _alignment(self) -> str | None:
        """'rlhf' or 'dpo' when several models are resident (Adaptation.resident_models)."""
        a = self.r.adaptation
        if len(a.resident_models) <= 1:
            return None
        if a.key in ("rlhf", "ppo", "dpo"):
            return a.key
        return "dpo" if len(a.resident_models) == 2 else "rlhf"

    def _resident(self, count) -> tuple[float, float]:
        """(parameters resident on the devices, parameters that train) for a model count."""
        a = self.r.adaptation
        total = float(count.total)
        if not a.trains:
            return total, 0.0
        if self._alignment():
            resident = alignment_params(self._alignment(), policy_params=total)
            return resident.total, resident.trainable_params
        if self.lora is not None:
            adapters = float(lora_params(self.dims, rank=self.lora["rank"], targets=self.lora["targets"], family=self.r.family))
            return total + adapters, adapters
        return total, total

    def _tokens(self) -> float:
        d = self.p.data
        a = self.r.adaptation
        budget_tokens = getattr(self, "budget_tokens", None)
        if d.tokens and budget_tokens and d.tokens > budget_tokens:
            self.notes.reason(
                "data.tokens",
                budget_tokens,
                f"the compute-optimal D for the budget: {fmt_count(budget_tokens)} of the {fmt_count(d.tokens)} tokens available "
                "(about 20 per parameter, Hoffmann et al. 2022)",
            )
            return budget_tokens
        if d.tokens:
            return float(d.tokens)
        if d.raw_tokens and d.keep:
            tokens = float(usable_tokens(d.raw_tokens, d.keep))
            self.notes.reason("data.tokens", tokens, f"{d.raw_tokens:.3g} raw tokens x keep {d.keep:.0%}")
            return tokens
        if not a.trains:
            return 0.0
        if a.from_scratch:
            tokens = constants.CHINCHILLA_TOKENS_PER_PARAM * float(self.count.active)
            self.notes.reason("data.tokens", tokens, "not given: 20 tokens per parameter, compute-optimal (Hoffmann et al. 2022)")
            return tokens
        self.notes.diag(
            codes.NO_DATA,
            "info",
            "data.tokens is not given: the plan has no training FLOPs, time or cost",
            "data",
            hint="write e.g. `tokens = 50M tokens` in the data block",
        )
        return 0.0

    def _batch_tokens(self) -> float:
        if self.p.train.batch:
            return float(self.p.train.batch)
        tokens = batch_tokens_for(float(self.count.total))
        a = self.r.adaptation
        if a.trains and not a.from_scratch and FINETUNE_BATCH_SEQUENCES * self.context < tokens:
            tokens = float(FINETUNE_BATCH_SEQUENCES * self.context)
            self.notes.reason(
                "train.batch",
                tokens,
                f"{FINETUNE_BATCH_SEQUENCES} sequences of {self.context} tokens, a fine-tuning batch (Hu et al. 2021, App. D.4); "
                "a pretraining batch would leave few optimizer steps",
            )
            return tokens
        self.notes.reason("train.batch", tokens, "GPT-3 Table 2.1 batch size for a model of this size (Brown et al. 2020)")
        return tokens

    # -- the configuration search ------------------------------------------------------

    def _case(self, dims, seq: int) -> ModelCase:
        count = self.r.architecture.count_params(dims)
        per_token = float(self.r.architecture.flops_per_token(dims, seq))
        return ModelCase(
            dims=dims,
            family=self.r.family,
            architecture=self.r.architecture,
            count=count,
            params=self._resident(count)[0],
            trainable=self._resident(count)[1],
            frozen_weight_bytes=self.frozen_weight_bytes,
            optimizer=self.r.optimizer,
            hardware=self.hw,
            seq=int(seq),
            global_batch_sequences=max(1, int(round(self.batch_tokens / seq))),
            flash=(self.p.train.attention or "flash") != "materialized",
            mfu=self.mfu,
            model_flops=per_token * self.tokens,
            largest_layer=float(count.largest_layer),
        )

    def _grid(self, case: ModelCase, devices: tuple[int, ...]) -> Grid:
        t = self.p.train
        strategies = (self.r.strategy,) if self.r.strategy is not None else self.r.strategies
        if not is_auto(t.micro_batch) and t.micro_batch:
            micro = (int(t.micro_batch),)
        else:
            cap = max(1, min(MAX_AUTO_MICRO_BATCH, math.ceil(case.global_batch_sequences / min(devices))))
            micro = powers_of_two(1, cap)
        recompute = (t.recompute,) if not is_auto(t.recompute) and t.recompute else RECOMPUTE_ORDER
        return Grid(precisions=(self.precision,), strategies=strategies, devices=devices, micro_batches=micro, recomputes=recompute)

    def _device_candidates(self, case: ModelCase) -> tuple[tuple[int, ...], str]:
        if self.devices_fixed is not None:
            return (self.devices_fixed,), ""
        b = self.p.budget
        if b.time is not None and case.model_flops > 0:
            need = int(cost_math.devices_for_time(case.model_flops, seconds=b.time.value, peak_flops=self.peak, mfu=self.mfu))
            why = (
                f"the {b.time.value / 86400:.3g}-day time budget needs {need} x {self.hw.key}: "
                f"{case.model_flops:.3g} model FLOPs / ({self.peak / 1e12:.0f} TFLOP/s x {self.mfu:.0%} MFU x {b.time.value:.3g} s)"
            )
        else:
            need, why = 1, "no time budget: the fewest devices that fit"
        return tuple(need * 2**k for k in range(MAX_DEVICE_DOUBLINGS + 1)), why

    def _fit_at(self, dims, seq: int) -> Fitted:
        case = self._case(dims, seq)
        devices, self._devices_why = self._device_candidates(case)
        grid = self._grid(case, devices)
        result = evaluate(case, grid)
        return Fitted(case=case, grid=grid, result=result, choice=choose(result))

    def _fit(self) -> Fitted:
        m = self.p.model
        if is_auto(m.context):
            fitted = self._fit_longest_context()
        else:
            fitted = self._fit_at(self.dims, self.context)
        self._fit_reasons(fitted)
        return fitted

    def _fit_longest_context(self) -> Fitted:
        cap = MAX_AUTO_CONTEXT
        if self.dims.positions == "learned":
            cap = min(cap, self.dims.position_table or self.dims.context)
        best = None
        for seq in reversed(powers_of_two(MIN_AUTO_CONTEXT, cap)):
            fitted = self._fit_at(self.dims.evolve(context=seq), seq)
            best = best or fitted
            if fitted.choice.fits:
                best = fitted
                break
        assert best is not None
        self.notes.reason(
            "model.context",
            best.case.seq,
            f"the longest context up to {cap} that fits with micro-batch {best.choice.micro_batch}"
            if best.choice.fits
            else f"no context from {MIN_AUTO_CONTEXT} up fits; planning the shortest",
        )
        return best

    def _fit_reasons(self, f: Fitted) -> None:
        c, g, res = f.choice, f.grid, f.result
        t = self.p.train
        cap = res.capacity
        total = float(res.total[c.index])
        if is_auto(t.sharding) or t.sharding is None:
            if c.fits:
                why = f"the cheapest strategy that fits: {total / 1e9:.3g} GB of {cap / 1e9:.3g} GB per device"
                # A cheaper strategy that fits at these devices lost only to full recomputation
                # (`search.preference_keys` ranks avoiding it above the strategy's cost).
                i, _, k, _, _ = c.index
                cheaper = g.strategies[: g.strategies.index(c.strategy)]
                full_only = [s.key for j, s in enumerate(cheaper) if res.fits[i, j, k].any()]
                no_fit = [s.key for s in cheaper if s.key not in full_only]
                parts = ([f"{', '.join(no_fit)} would not fit"] if no_fit else []) + (
                    [f"{', '.join(full_only)} would fit only with full recomputation"] if full_only else []
                )
                if parts:
                    why += f" ({'; '.join(parts)})"
            else:
                why = "nothing fits; the configuration that comes closest"
            self.notes.reason("train.sharding", c.strategy.key, why)
        if is_auto(t.micro_batch) or not t.micro_batch:
            biggest = max(g.micro_batches)
            if c.fits:
                why = f"the largest micro-batch that fits ({c.micro_batch} sequences of {f.case.seq} tokens per device)"
                if c.micro_batch == biggest:
                    why = f"one device's whole share of the global batch ({f.case.global_batch_sequences} sequences / {c.devices} devices), and it fits"
            else:
                why = "nothing fits; the smallest micro-batch"
            self.notes.reason("train.micro_batch", c.micro_batch, why)
        if is_auto(t.recompute) or not t.recompute:
            why = {
                "none": "no recomputation needed: the activations fit",
                "selective": "selective recomputation of the attention core (a few percent more compute, Korthikanti et al. 2022) makes it fit",
                "full": "only full recomputation (one more forward pass, about a third more compute) makes it fit",
            }.get(c.recompute, "")
            self.notes.reason("train.recompute", c.recompute, why)
        if self.devices_fixed is None:
            why = self._devices_why
            need = g.devices[0]
            if c.devices > need:
                why += f"; {c.devices} so that the model fits in memory"
            self.notes.reason("budget.devices", c.devices, why)

    # -- assembling --------------------------------------------------------------------

    def _assemble(self, f: Fitted | None) -> Plan:
        p, r = self.p, self.r
        dims = self.dims
        count = self.r.architecture.count_params(dims)
        self.count = count
        seq = self.context
        tokens = self.tokens
        n = float(count.active)
        family = r.family
        train_flops = float(flops_math.training_flops(n, tokens)) if r.adaptation.trains else 0.0
        per_token = float(r.architecture.flops_per_token(dims, seq))
        model_flops = per_token * tokens if r.adaptation.trains else 0.0
        if f is not None:
            c = f.choice
            recompute = c.recompute
            strategy, devices, micro = c.strategy.key, c.devices, c.micro_batch
        else:
            recompute, strategy, micro = "none", "none", 0
            devices = self.devices_fixed or 1
        hw_per_token = flops_math.hardware_flops_per_token(dims, family=family, context=seq, recompute=recompute)
        self.hardware_per_token = hw_per_token
        hardware_flops = model_flops + float(hw_per_token.recompute) * tokens if r.adaptation.trains else 0.0

        # time and cost
        seconds = float(cost_math.training_seconds(model_flops, devices=devices, peak_flops=self.peak, mfu=self.mfu)) if model_flops else 0.0
        hours = float(cost_math.device_hours(seconds, devices))
        usd = float(cost_math.cost_usd(hours, self.price)) if self.price is not None else None
        energy = (
            float(cost_math.energy_kwh(seconds, devices=devices, power_watts=self.hw.power_watts)) if self.hw.power_watts else None
        )
        b = p.budget
        budget = BudgetSection(
            time_seconds=b.time.value if b.time else None,
            cost_usd=b.cost.value if b.cost else None,
            time_ratio=seconds / b.time.value if b.time and b.time.value else None,
            cost_ratio=(usd / b.cost.value) if (b.cost and b.cost.value and usd is not None) else None,
        )

        # memory
        if f is not None:
            memory = self._memory_section(f)
        else:
            memory = self._prompt_memory(devices)

        # scaling
        c_opt = train_flops if train_flops > 0 else float(flops_math.training_flops(n, constants.CHINCHILLA_TOKENS_PER_PARAM * n))
        n_opt, d_opt = (float(x) for x in scaling.tokens_per_param_optimal(c_opt))
        # Chinchilla's L(N, D) describes pretraining: for a run from scratch D is this run's
        # tokens; for an adaptation, the base model's pretraining tokens (a fine-tune's
        # few million tokens do not move it along that curve).
        if r.adaptation.from_scratch:
            loss_tokens = tokens or None
        else:
            loss_tokens = r.preset.training_tokens if r.preset is not None else None
        loss = float(scaling.chinchilla_loss(n, loss_tokens)) if loss_tokens else math.inf
        budget_flops = getattr(self, "budget_model_flops", None)
        scaling_section = ScalingSection(
            optimal_params=n_opt,
            optimal_tokens=d_opt,
            tokens_per_param=tokens / n if n else 0.0,
            predicted_loss=loss,
            budget_flops=budget_flops,
            optimal_params_for_budget=getattr(self, "budget_optimum", (None, None))[0],
            optimal_tokens_for_budget=getattr(self, "budget_optimum", (None, None))[1],
            loss_tokens=loss_tokens,
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
        data = DataSection(
            tokens=tokens,
            raw_tokens=d.raw_tokens,
            keep=keep,
            raw_tokens_needed=float(raw_tokens_needed(d_opt, keep)) if keep else None,
            mix=mix,
            domain_tokens=domain_tokens,
        )
        self.epochs = float(epochs_over(tokens, usable_tokens(d.raw_tokens, keep))) if (d.raw_tokens and keep and tokens) else None

        t = p.train
        requested_seq = max(1, int(round(self.batch_tokens / seq)))
        accumulation = max(1, math.ceil(requested_seq / (max(micro, 1) * devices))) if micro else None
        # Every device runs whole micro-batches, so the batch actually trained is
        # accumulation x micro-batch x devices sequences; report that one, not the request.
        global_seq = accumulation * int(micro) * int(devices) if accumulation else requested_seq
        batch_tokens = float(global_seq * seq)
        if global_seq != requested_seq:
            self.notes.reason(
                "train.batch",
                batch_tokens,
                f"{self.batch_tokens:.3g} tokens ({requested_seq} sequences) rounded up to {global_seq} sequences"
                f" = {accumulation} accumulation step(s) x {int(micro)} x {int(devices)} devices",
            )
        train = TrainSection(
            precision=self.precision.key,
            optimizer=r.optimizer.key,
            strategy=strategy,
            devices=int(devices),
            hardware=self.hw.key,
            micro_batch=int(micro),
            recompute=recompute,
            mfu=self.mfu,
            attention=t.attention or "flash",
            adaptation=r.adaptation.key,
            global_batch_tokens=batch_tokens,
            global_batch_sequences=global_seq,
            grad_accumulation=accumulation,
            steps=int(math.ceil(tokens / batch_tokens)) if tokens and batch_tokens else None,
        )
        return Plan(
            spec_file=self.spec.filename,
            project=ProjectSection(name=p.name, task=r.task.key if r.task else p.task, scope=p.scope, domain=p.domain),
            model=ModelSection(
                family=family,
                objective=r.objective.key,
                params=float(count.total),
                layers=dims.layers,
                d_model=dims.d_model,
                heads=dims.heads,
                vocab=dims.vocab,
                context=int(seq),
                kv_heads=dims.n_kv_heads,
                head_dim=dims.d_head,
                d_ff=dims.d_ff,
                decoder_layers=dims.n_decoder_layers if family == "encoder_decoder" else None,
                ffn=dims.ffn,
                norm=dims.norm,
                positions=dims.positions,
                tied_embeddings=dims.tied_embeddings,
                biases=dims.biases,
                active_params=float(count.active),
                embedding_params=float(count.embedding),
                trainable_params=float(self.trainable),
                preset=r.preset.key if r.preset else None,
                params_breakdown=dict(count.breakdown),
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
            time=TimeSection(seconds=seconds, days=float(cost_math.seconds_to_days(seconds)), gpu_hours=hours),
            cost=CostSection(usd=usd, price_per_hour=self.price, energy_kwh=energy),
            budget=budget,
            inference=self._inference(),
        )

    def _breakdown(self, result: GridResult, idx: tuple[int, ...]) -> MemoryBreakdown:
        return MemoryBreakdown(
            weights=float(result.weights[idx]),
            gradients=float(result.gradients[idx]),
            optimizer=float(result.optimizer[idx]),
            activations=float(result.activations[idx]),
            overheads={k: float(v[idx]) for k, v in result.overheads.items()},
            total=float(result.total[idx]),
            host=float(result.host[idx]),
            peak_phase=PHASES[int(result.peak_phase[idx])],
        )

    def _memory_section(self, f: Fitted) -> MemorySection:
        chosen = self._breakdown(f.result, f.choice.index)
        return MemorySection(
            per_device=chosen,
            device_capacity=float(self.hw.memory_bytes),
            fits=bool(f.choice.fits),
            options=self._options(f),
        )

    def _options(self, f: Fitted) -> tuple[MemoryOption, ...]:
        """The same model under every strategy and every trainable precision the hardware
        runs, at the chosen device count and recomputation, each with its largest fitting
        micro-batch (1 when none fits)."""
        c = f.choice
        # The chosen precision, full fp32 (the teaching baseline) and fp8 where the hardware has it.
        precisions = [c.precision] + [
            p
            for p in self.r.precisions
            if p.trainable and p.key != c.precision.key and p.compute_dtype in self.hw.peak_flops and p.key in ("fp32", "fp8")
        ]
        grid = Grid(
            precisions=precisions,
            strategies=self.r.strategies,
            devices=(c.devices,),
            micro_batches=f.grid.micro_batches if len(f.grid.micro_batches) > 1 else powers_of_two(1, max(f.grid.micro_batches)),
            recomputes=(c.recompute,),
        )
        result = evaluate(f.case, grid)
        rows = []
        for i, prec in enumerate(grid.precisions):
            for j, strat in enumerate(grid.strategies):
                fits = result.fits[i, j, 0, :, 0]
                k = int(np.nonzero(fits)[0][-1]) if fits.any() else 0
                idx = (i, j, 0, k, 0)
                rows.append(
                    MemoryOption(
                        strategy=strat.key,
                        precision=prec.key,
                        recompute=c.recompute,
                        micro_batch=int(grid.micro_batches[k]),
                        per_device=self._breakdown(result, idx),
                        fits=bool(result.fits[idx]),
                        chosen=(prec.key == c.precision.key and strat.key == c.strategy.key),
                    )
                )
        return tuple(rows)

    def _prompt_memory(self, devices: int) -> MemorySection:
        inf = self._inference_memory(self.precision, self.context, 1)
        per = MemoryBreakdown(
            weights=float(inf.weights),
            gradients=0.0,
            optimizer=0.0,
            activations=float(inf.kv_cache + inf.workspace),
            overheads={k: float(v) for k, v in inf.overheads.items()},
            total=float(inf.total),
        )
        return MemorySection(per_device=per, device_capacity=float(self.hw.memory_bytes), fits=per.total <= self.hw.memory_bytes)

    def _inference_memory(self, precision: Precision, context: int, batch: int):
        return inference_memory(
            self.dims,
            params=float(self.count.total),
            family=self.r.family,
            weight_bytes=float(precision.weight_bytes),
            context=context,
            batch=batch,
            kv_bytes=float(precision.activation_bytes),
            activation_bytes=float(precision.activation_bytes),
        )

    def _inference(self) -> InferenceSection:
        serve = self.p.serve
        precision = self.r.serve_precision
        context = (serve.context if serve and serve.context else None) or self.context
        batch = (serve.batch if serve and serve.batch else None) or 1
        if serve is None:
            self.notes.reason("serve.precision", precision.key, "no serve block: one replica at bf16, batch 1, the training context")
        inf = self._inference_memory(precision, context, batch)
        self.inference_parts = inf
        total = float(inf.total)
        cap = float(self.hw.memory_bytes)
        return InferenceSection(
            precision=precision.key,
            context=int(context),
            batch=int(batch),
            memory=InferenceMemory(
                weights=float(inf.weights),
                kv_cache=float(inf.kv_cache),
                workspace=float(inf.workspace),
                runtime=float(inf.overheads.get("runtime", 0.0)),
                total=total,
            ),
            fits=total <= cap,
            devices_per_replica=max(1, math.ceil(total / cap)),
        )
