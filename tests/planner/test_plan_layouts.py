"""Parallel layouts in the planner: the search over tensor x pipeline x data, every stage's
memory, the step-time model as the plan's time, and the refusals (what the estimators do
not model, what cannot run)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import genaisdk
from genaisdk.diagnostics import SpecError
from genaisdk.estimate.parallel import stage_memory
from genaisdk.estimate.steptime import step_time
from genaisdk.planning import plan_stages
from genaisdk.planning.grid import Grid, Layout, chosen_arguments, evaluate, offload_arguments

from .conftest import spec_text

LLAMA3_70B_ON_16 = dict(
    model="preset = llama3-70b\ncontext = 8192 tokens",
    data="tokens = 15T tokens",
    train="precision = bf16\nbatch = 1M tokens\nmicro_batch = 1\nrecompute = full",
    budget="hardware = 16 x h100-sxm",
)
"""Llama-3-70B's shape (80 layers, d_model 8192, 64 heads, 8 K/V heads, gated FFN 28,672,
vocabulary 128,256) pretraining at 8,192 tokens on 16 H100-SXM 80 GB, micro-batch 1, full
recomputation: the case people report no TP/PP setting fits."""


def _planned(**blocks):
    overrides = blocks.pop("overrides", None)
    return plan_stages(genaisdk.loads(spec_text(**blocks), filename="test.genai", overrides=overrides))


@pytest.fixture(scope="module")
def llama3_offload():
    return _planned(**LLAMA3_70B_ON_16)


@pytest.fixture(scope="module")
def llama3_zero1():
    return _planned(**LLAMA3_70B_ON_16, overrides=["train.sharding=zero1"])


def test_llama3_70b_on_16_h100s_fits_only_with_offload_and_says_which_layout(llama3_offload):
    plan, f = llama3_offload.plan, llama3_offload.stages.fitted
    t, mem = plan.train, plan.memory
    assert mem.fits and t.strategy.endswith("offload")
    assert "GP205" in [d.code for d in plan.diagnostics]
    assert t.tensor_parallel * t.pipeline_parallel * t.data_parallel == t.devices == 16
    # Every stage's memory, each fitting; the device's figure is the most loaded stage's.
    assert len(mem.stages) == t.pipeline_parallel and sum(s.layers for s in mem.stages) == 80
    assert all(s.fits for s in mem.stages)
    assert mem.per_device.total == max(s.total for s in mem.stages) == mem.stages[mem.most_loaded_stage].total
    # The step and its parts, summing to it; MFU derived from it.
    step = plan.time.step
    assert plan.time.model == "step-time" and step is not None
    assert sum(step.parts.values()) == pytest.approx(step.seconds, rel=1e-12)
    assert step.parts["bubble"] > 0 if t.pipeline_parallel > 1 else step.parts["bubble"] == 0
    assert t.mfu == pytest.approx(plan.compute.model_flops / (plan.time.seconds * 16 * 989.4e12), rel=1e-9)
    # Why: the fastest fitting layout, compared with the others.
    why = plan.reason("train.tensor").reason
    assert "is the fastest layout that fits" in why and ("slower" in why or "does not fit" in why)
    assert float(f.result.seconds[f.choice.index]) == pytest.approx(plan.time.seconds, rel=1e-9)


def test_llama3_70b_on_16_h100s_without_offload_fits_no_layout_and_says_by_how_much(llama3_zero1):
    plan = llama3_zero1.plan
    t, mem = plan.train, plan.memory
    assert not mem.fits
    assert t.tensor_parallel * t.pipeline_parallel * t.data_parallel == 16
    cap = mem.device_capacity
    assert all(s.total > cap for s in mem.stages) and sum(s.layers for s in mem.stages) == 80
    d = next(d for d in plan.diagnostics if d.code == "GP202")
    layout = f"t {t.tensor_parallel} x p {t.pipeline_parallel} x d {t.data_parallel}"
    assert layout in d.message
    for s in mem.stages:
        assert f"stage {s.stage}" in d.message
    assert "over by" in d.message
    # No layout on these 16 devices needs less (the search's closest is the least memory).
    f = llama3_zero1.stages.fitted
    assert mem.per_device.total == pytest.approx(float(np.min(np.where(f.result.valid, f.result.total, np.inf))))
    assert "nothing fits" in plan.reason("train.tensor").reason


def test_every_stage_is_the_estimators_stage(llama3_offload):
    f = llama3_offload.stages.fitted
    common, memory = chosen_arguments(f.case, f.grid, f.choice.index)
    for s in llama3_offload.plan.memory.stages:
        direct = stage_memory(f.case.dims, stage=s.stage, **common, **memory)
        assert s.total == pytest.approx(float(direct.total), rel=1e-12)
        assert s.weights == pytest.approx(float(direct.weights), rel=1e-12)
    step = step_time(f.case.dims, f.case.cluster, causal=True, **offload_arguments(memory), **common)
    assert llama3_offload.plan.time.step.seconds == pytest.approx(float(step.seconds), rel=1e-12)
    # ZeRO-Offload's transfers: each device's gradient shard down and weight shard up per step.
    assert llama3_offload.plan.time.step.parts["offload"] == pytest.approx(
        float(step.details["host_bytes"]) / f.case.cluster.host_bandwidth, rel=1e-12)
    assert llama3_offload.plan.time.step.parts["offload"] > 0


def test_a_grid_cell_is_the_direct_estimate():
    planned = _planned(model="size = 7B\ncontext = 2048 tokens", data="tokens = 140B tokens", budget="hardware = 16 x a100-80gb")
    f, ctx = planned.stages.fitted, planned.stages.ctx
    layouts = (Layout(), Layout(tensor=2, pipeline=2, sequence_parallel=True), Layout(tensor=4, pipeline=2, virtual_stages=2))
    grid = Grid(precisions=(ctx.precision,), strategies=ctx.resolved.strategies[:4], devices=(8, 16), micro_batches=(1, 2),
                recomputes=("selective", "full"), layouts=layouts)
    result = evaluate(f.case, grid)
    rng = np.random.default_rng(1)
    checked = 0
    for flat in rng.permutation(grid.size):
        index = tuple(int(i) for i in np.unravel_index(int(flat), grid.shape))
        if not result.valid[index]:
            continue
        common, memory = chosen_arguments(f.case, grid, index)
        p = int(common["pipeline_parallel"])
        totals = [float(stage_memory(f.case.dims, stage=r, **common, **memory).total) for r in (0, p - 1)]
        assert float(result.total[index]) == pytest.approx(max(totals), rel=1e-12)
        step = step_time(f.case.dims, f.case.cluster, causal=True, **common)
        assert float(result.step_seconds[index]) == pytest.approx(float(step.seconds), rel=1e-12)
        checked += 1
        if checked == 8:
            break
    assert checked == 8


def test_grouped_query_attention_with_fewer_kv_heads_than_t_replicates_k_and_v():
    # 2 K/V heads over t = 4: each device keeps one K/V head whole (each head twice over the
    # group), where 4 K/V heads would split one per device too: the same bytes per device.
    def weights(kv_heads: int) -> float:
        model = (f"family = decoder\nlayers = 4\nd_model = 1024\nheads = 16\nkv_heads = {kv_heads}\nd_ff = 4096\n"
                 "vocab = 32000\ncontext = 1024 tokens")
        plan = _planned(model=model, data="tokens = 1B tokens", train="tensor = 4\npipeline = 1\nsharding = ddp",
                        budget="hardware = 4 x a100-80gb").plan
        assert plan.train.tensor_parallel == 4
        return plan.memory.per_device.weights

    # The decoder family's defaults: gated FFN, RMSNorm, rotary positions, untied, no biases.
    h, q, f_, layers, vocab = 1024, 64, 4096, 4, 32000
    attention = (2 * h * 16 * q + 2 * h * 4 * q) / 4  # Q and O split; K and V one head per device
    block = attention + 3 * h * f_ / 4 + 2 * h
    extra = 2 * vocab * h / 4 + h  # embedding and untied output split over the vocabulary; final norm
    assert weights(2) == pytest.approx((block * layers + extra) * 2, rel=1e-12)
    assert weights(4) == weights(2)
    assert weights(8) > weights(2)  # 8 K/V heads: two per device


def test_an_encoder_decoder_keeps_t_p_1_with_a_reason():
    plan = _planned(task="summarization", model="size = 3B\ncontext = 1024 tokens", data="tokens = 60B tokens",
                    budget="hardware = 64 x a100-80gb").plan
    assert plan.model.family == "encoder_decoder"
    assert plan.train.tensor_parallel == plan.train.pipeline_parallel == 1
    assert "encoder-decoder" in plan.reason("train.tensor").reason
    assert plan.time.model == "default-mfu" and plan.time.step is None
    assert "step-time model does not apply" in plan.reason("train.mfu").reason
    with pytest.raises(SpecError) as err:
        _planned(task="summarization", model="size = 3B\ncontext = 1024 tokens", data="tokens = 60B tokens",
                 train="tensor = 2", budget="hardware = 64 x a100-80gb")
    d = err.value.diagnostics[0]
    assert d.code == "GP210" and "encoder-decoder" in d.message and d.span.line == 15


@pytest.mark.parametrize(
    ("train", "devices", "key", "words"),
    [
        ("tensor = 3", 24, "tensor", "does not divide the 32 heads"),
        ("pipeline = 64", 64, "pipeline", "more than the model's 32 layers"),
        ("tensor = 1\nsequence_parallel = true", 8, "sequence_parallel", "needs tensor > 1"),
        ("pipeline = 1\nvirtual_stages = 2", 8, "virtual_stages", "needs pipeline > 1"),
        ("tensor = 8\npipeline = 4", 48, "tensor", "does not divide the 48 devices"),
        ("pipeline = 2\nsharding = fsdp", 8, "pipeline", "runs with ddp or zero1"),
        ("micro_batch = 100000", 8, "micro_batch", "more than the global batch"),
    ],
)
def test_a_fixed_layout_that_cannot_run_is_an_error_at_its_line(train, devices, key, words):
    with pytest.raises(SpecError) as err:
        _planned(model="preset = llama-7b\ncontext = 2048 tokens", data="tokens = 100B tokens", train=train,
                 budget=f"hardware = {devices} x a100-80gb")
    d = next(d for d in err.value.diagnostics if d.code == "GP210")
    assert words in d.message and d.span is not None
    text = spec_text(model="preset = llama-7b\ncontext = 2048 tokens", data="tokens = 100B tokens", train=train,
                     budget=f"hardware = {devices} x a100-80gb")
    assert text.splitlines()[d.span.line - 1].strip().startswith(key)


def test_a_micro_batch_from_set_larger_than_the_global_batch_is_an_error_at_the_override():
    with pytest.raises(SpecError) as err:
        _planned(model="preset = llama-7b\ncontext = 2048 tokens", data="tokens = 100B tokens",
                 budget="hardware = 64 x a100-80gb", overrides=["train.micro_batch=100000"])
    d = next(d for d in err.value.diagnostics if d.code == "GP210")
    assert "train.micro_batch = 100000" in d.message and "global batch" in d.message
    assert d.span.file == "--set" and "at most" in d.hint


def test_a_spec_mfu_overrides_the_step_time_model_and_the_plan_says_so():
    planned = _planned(model="preset = llama-7b\ncontext = 2048 tokens", data="tokens = 100B tokens", train="mfu = 30%",
                       budget="hardware = 64 x a100-80gb")
    plan = planned.plan
    assert plan.time.model == "train.mfu" and plan.train.mfu == 0.30
    assert plan.time.step is not None and plan.time.step.mfu != pytest.approx(0.30)
    assert f"{plan.time.step.mfu:.1%}" in plan.reason("train.mfu").reason
    assert plan.time.seconds == pytest.approx(plan.compute.model_flops / (64 * 312e12 * 0.30), rel=1e-12)


def test_a_record_without_link_figures_times_with_the_mfu_and_names_them():
    several = _planned(model="preset = llama-7b\ncontext = 2048 tokens", data="tokens = 100B tokens",
                       budget="hardware = 16 x h100-pcie").plan
    assert several.time.model == "default-mfu" and several.time.step is None
    warning = next(d for d in several.diagnostics if d.code == "GP410")
    assert warning.severity == "warning"
    assert all(field in warning.message for field in ("intra_node_gb_s", "inter_node_gb_s", "devices_per_node"))
    # One device sends nothing: no link figure is needed, and the step-time model applies.
    one = _planned(model="size = 125M\ncontext = 1024 tokens", data="tokens = 2.5B tokens", budget="hardware = 1 x h100-pcie").plan
    assert one.time.model == "step-time" and "GP410" not in [d.code for d in one.diagnostics]


def test_a_device_without_throughput_searches_layouts_by_memory_and_has_no_time():
    """A device described by its memory alone: every layout is still searched and every
    stage's memory stated, but there is no time to rank them by (GP406, not GP410): the
    least model parallelism that fits wins, and the plan says so."""
    planned = _planned(**{**LLAMA3_70B_ON_16, "budget": "hardware = 16 x { name = h100-memory, memory = 80 GiB }"})
    plan, f = planned.plan, planned.stages.fitted
    t, mem = plan.train, plan.memory
    codes = [d.code for d in plan.diagnostics]
    assert "GP406" in codes and "GP410" not in codes
    assert plan.time.seconds is None and plan.time.model == "none" and plan.time.step is None
    assert plan.time.mfu_label == "MFU (unused)"
    assert mem.fits and len(mem.stages) == t.pipeline_parallel
    assert "no step-time model to rank layouts by speed" in plan.reason("train.tensor").reason
    # Among the configurations that fit without offload (none here) or with it, none has less model parallelism.
    fitting = f.result.fits & np.broadcast_to(
        np.asarray([s.key == t.strategy for s in f.grid.strategies]).reshape(1, -1, 1, 1, 1, 1), f.result.fits.shape)
    splits = np.asarray([x.model_parallel for x in f.grid.layouts]).reshape(1, 1, 1, 1, 1, -1)
    assert t.tensor_parallel * t.pipeline_parallel == int(np.min(np.where(fitting, splits, np.iinfo(np.int64).max)))


def test_devices_auto_is_the_fewest_whole_nodes_the_step_time_model_says_meet_the_budget():
    planned = _planned(model="preset = llama-7b\ncontext = 2048 tokens", data="tokens = 1T tokens",
                       budget="hardware = auto x a100-80gb\ntime = 30 days")
    plan, ctx = planned.plan, planned.stages.ctx
    n = plan.train.devices
    assert plan.time.days <= 30 * (1 + 1e-9) and plan.time.model == "step-time"
    assert n % 8 == 0
    fewer = _planned(model="preset = llama-7b\ncontext = 2048 tokens", data="tokens = 1T tokens",
                     budget=f"hardware = {n - 8} x a100-80gb\ntime = 30 days").plan
    assert (not fewer.memory.fits) or fewer.time.days > 30
    assert ctx.devices_fixed is None and plan.reason("budget.devices") is not None


# ------------------------------------------------------------------------------------------
# Properties over random dense models and layouts, through the planner's grid


@st.composite
def models(draw):
    heads = draw(st.sampled_from([8, 16, 32]))
    head_dim = draw(st.sampled_from([32, 64, 128]))
    kv = draw(st.sampled_from([1, 2, heads]))
    layers = draw(st.sampled_from([8, 12, 16, 24]))
    ffn = draw(st.sampled_from(["gelu", "gated"]))
    d_model = heads * head_dim
    d_ff = 4 * d_model if ffn == "gelu" else 8 * d_model // 3 // 64 * 64
    lines = [
        "family = decoder", f"layers = {layers}", f"d_model = {d_model}", f"heads = {heads}", f"kv_heads = {kv}",
        f"d_ff = {d_ff}", f"ffn = {ffn}", "vocab = 32000", "context = 2048 tokens",
    ]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def grid_of():
    cache: dict[str, tuple] = {}

    def make(model: str):
        if model not in cache:
            planned = _planned(model=model, data="tokens = 10B tokens", train="batch = 256K tokens", budget="hardware = 16 x a100-80gb")
            f, ctx = planned.stages.fitted, planned.stages.ctx
            layouts = tuple(
                Layout(tensor=t, pipeline=p, sequence_parallel=sp)
                for t in (1, 2, 4) for p in (1, 2, 4) for sp in (False, True) if t > 1 or not sp
            )
            grid = Grid(precisions=(ctx.precision,), strategies=ctx.resolved.strategies[:4], devices=(4, 8, 16, 32),
                        micro_batches=(1, 2), recomputes=("none", "selective", "full"), layouts=layouts)
            cache[model] = (f.case, grid, evaluate(f.case, grid))
        return cache[model]

    return make


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(model=models(), data=st.data())
def test_memory_never_grows_when_t_or_p_doubles_at_a_fixed_global_batch(grid_of, model, data):
    """With the same data-parallel degree, global batch, strategy, micro-batch and
    recomputation, doubling t (or p), and so the devices, never adds per-device memory, except
    the first stage's embedding mask for the extra micro-batches in flight that a longer
    pipeline holds (parallel.py's stated term)."""
    case, grid, result = grid_of(model)
    index = {x: i for i, x in enumerate(grid.layouts)}
    j = data.draw(st.integers(0, len(grid.strategies) - 1))
    mb = data.draw(st.integers(0, 1))
    rc = data.draw(st.integers(0, 2))
    n = data.draw(st.integers(0, len(grid.devices) - 2))  # devices n, then 2n: d is the same
    mask_per_sequence = case.dims.d_model * case.seq  # one byte per value (Korthikanti et al. 2022, Sec. 4.3)
    for lay, i in index.items():
        for bigger in (Layout(tensor=lay.tensor * 2, pipeline=lay.pipeline, sequence_parallel=lay.sequence_parallel),
                       Layout(tensor=lay.tensor, pipeline=lay.pipeline * 2, sequence_parallel=lay.sequence_parallel)):
            k = index.get(bigger)
            if k is None:
                continue
            a, b = (0, j, n, mb, rc, i), (0, j, n + 1, mb, rc, k)
            assert result.data_parallel[a] == result.data_parallel[b]
            if not (result.valid[a] and result.valid[b]):
                continue
            slack = 0.0
            if bigger.pipeline > lay.pipeline:
                micro = grid.micro_batches[mb]
                # p more micro-batches' embedding masks in flight, over t with sequence parallelism
                slack = bigger.pipeline * micro * mask_per_sequence / (bigger.tensor if bigger.sequence_parallel else 1) * 1.06
            assert float(result.total[b]) <= float(result.total[a]) + slack + 1.0, (lay, bigger)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(model=models())
def test_time_times_devices_is_never_below_the_compute_only_bound(grid_of, model):
    """Every valid configuration's seconds x devices is at least its model FLOPs at the
    peak: MFU (and HFU) <= 1, through the planner's grid and the plan's own time."""
    case, grid, result = grid_of(model)
    peak = case.cluster.peak_flops
    bound = case.model_flops / peak
    seconds = np.where(result.valid, result.seconds, np.inf)
    devices = np.asarray(grid.devices, dtype=float).reshape(1, 1, -1, 1, 1, 1)
    assert np.all(seconds * devices >= bound * (1 - 1e-12))
    hardware = np.broadcast_to(result.step.hardware_flops, grid.shape) / (np.broadcast_to(result.step.seconds, grid.shape) * devices * peak)
    assert np.all(np.where(result.valid, hardware, 0.0) <= 1.0)
    assert math.isfinite(float(np.min(seconds)))


def test_the_strategy_table_says_why_a_row_does_not_fit():
    """BLOOM's published layout has 12 pipeline stages: ZeRO-2/3 and FSDP cannot run with it
    ('not runnable', shown n/a with a note), DDP runs but is over the device's memory."""
    from genaisdk.render.text import options_note

    plan = genaisdk.plan(genaisdk.load(Path(__file__).resolve().parents[2] / "specs" / "bloom-176b.genai"))
    why = {(o.strategy, o.precision): o.why_not for o in plan.memory.options}
    assert why["zero1", "bf16"] == ""
    assert why["zero2", "bf16"] == why["fsdp", "bf16"] == "not runnable"
    assert why["ddp", "bf16"] == "over capacity"
    assert "a pipeline runs with ddp or zero1" in options_note(plan)


def test_a_framework_without_model_parallelism_warns_on_a_split_layout():
    """The Hugging Face Trainer shards data only: BLOOM's tensor 4 x pipeline 12 with
    `framework = hf-trainer` is a GP211 warning at train.framework; a data-parallel plan is not."""
    spec = Path(__file__).resolve().parents[2] / "specs" / "bloom-176b.genai"
    split = genaisdk.plan(genaisdk.load(spec, overrides=["train.framework=hf-trainer"]))
    (warning,) = [d for d in split.diagnostics if d.code == "GP211"]
    assert "tensor 4 x pipeline 12" in warning.message
    megatron = genaisdk.plan(genaisdk.load(spec))
    assert not [d for d in megatron.diagnostics if d.code == "GP211"]
