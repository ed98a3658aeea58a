"""The step-time model against published measurements: Megatron-LM on Selene (Narayanan et
al. 2021 Table 1, Korthikanti et al. 2022 Table 5), published GPU-hours of training runs,
the GEMM efficiency curve against measured GEMM throughput, and the collective volumes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from genaisdk.dims import Dimensions
from genaisdk.estimate import efficiency as eff
from genaisdk.estimate.frameworks import FRAMEWORKS, framework
from genaisdk.estimate.comm import (
    Cluster,
    all_gather_bytes,
    all_reduce_bytes,
    group_bandwidth,
    reduce_scatter_bytes,
)
from genaisdk.estimate.layouts import LayoutGrid, divisors, evaluate_layouts
from genaisdk.estimate.steptime import PARTS, step_time

FIXTURE = json.loads((Path(__file__).resolve().parent.parent / "fixtures" / "parallel.json").read_text())
SYSTEMS = {name: Cluster(**{k: v for k, v in fig.items() if k != "source"}) for name, fig in FIXTURE["systems"].items()}
SELENE = SYSTEMS["selene"]


def _megatron_gpt(heads, hidden, layers, vocab=51200):
    return Dimensions(layers=layers, d_model=hidden, heads=heads, d_ff=4 * hidden, vocab=vocab, context=2048)


def narayanan_flops(batch, seq, layers, hidden, vocab):
    """FLOPs per iteration as Narayanan et al. 2021 count them (Sec. 5.1, with activation
    recomputation): 96·B·s·l·h²·(1 + s/(6h) + V/(16·l·h))."""
    return 96 * batch * seq * layers * hidden**2 * (1 + seq / (6 * hidden) + vocab / (16 * layers * hidden))


# ------------------------------------------------------------------------------------------
# Narayanan et al. 2021, Table 1


def _narayanan_rows():
    table = FIXTURE["narayanan_table_1"]
    return [dict(zip(table["columns"], row)) for row in table["rows"]]


def _narayanan_ratio(row, virtual_stages):
    table = FIXTURE["narayanan_table_1"]
    dims = _megatron_gpt(row["heads"], row["hidden"], row["layers"], table["vocab"])
    t, p, n, batch = row["tensor"], row["pipeline"], row["gpus"], row["batch"]
    step = step_time(
        dims, SELENE, seq=table["seq"], global_batch=batch, micro_batch=1, tensor_parallel=t, pipeline_parallel=p,
        data_parallel=n // (t * p), virtual_stages=virtual_stages, recompute="full", flash=False,
    )
    ours = narayanan_flops(batch, table["seq"], row["layers"], row["hidden"], table["vocab"]) / (float(step.seconds) * n)
    return ours / (row["tflops_per_gpu"] * 1e12)


@pytest.mark.parametrize("row", _narayanan_rows(), ids=lambda r: f"{r['params_billion']}B")
def test_narayanan_table_1_within_15_percent(row):
    """Achieved teraFLOP/s per GPU with the paper's t, p, batch and GPU count: plain 1F1B and,
    where the stage's layers split in two, two interleaved chunks (Table 1 gives neither the
    micro-batch nor the interleaving; docs/accuracy.md lists both ratios)."""
    assert 0.85 <= _narayanan_ratio(row, 1) <= 1.15
    if row["pipeline"] > 1 and (row["layers"] // row["pipeline"]) % 2 == 0:
        assert 0.85 <= _narayanan_ratio(row, 2) <= 1.15


def test_narayanan_weak_scaling_is_not_flat_by_construction():
    """The model is not one constant: the rows' predicted per-GPU rates differ by >15%."""
    rates = [_narayanan_ratio(r, 1) * r["tflops_per_gpu"] for r in _narayanan_rows()]
    assert max(rates) / min(rates) > 1.15


# ------------------------------------------------------------------------------------------
# Korthikanti et al. 2022, Table 5 (iteration times, the configurations of Table 3)


def _korthikanti_rows():
    table = FIXTURE["korthikanti_table_5"]
    return [dict(zip(table["columns"], row)) for row in table["rows"]]


@pytest.mark.parametrize("row", _korthikanti_rows(), ids=lambda r: r["name"])
def test_korthikanti_table_5_iteration_times_within_10_percent(row):
    table = FIXTURE["korthikanti_table_5"]
    dims = _megatron_gpt(row["heads"], row["hidden"], row["layers"], table["vocab"])
    common = dict(
        seq=table["seq"], global_batch=row["batch"], micro_batch=row["micro_batch"], tensor_parallel=row["tensor"],
        pipeline_parallel=row["pipeline"], data_parallel=row["gpus"] // (row["tensor"] * row["pipeline"]),
        virtual_stages=row["virtual_stages"], flash=False,
    )
    full = step_time(dims, SELENE, recompute="full", sequence_parallel=False, **common)
    seqsel = step_time(dims, SELENE, recompute="selective", sequence_parallel=True, **common)
    assert float(full.seconds) == pytest.approx(row["seconds_full"], rel=0.10)
    assert float(seqsel.seconds) == pytest.approx(row["seconds_sp_selective"], rel=0.10)
    # and the paper's point: sequence parallelism with selective recomputation is faster
    assert float(seqsel.seconds) < float(full.seconds)


# ------------------------------------------------------------------------------------------
# Published GPU-hours


def _run_result(run, presets):
    dims = presets[run["preset"]].dims
    cluster = SYSTEMS[run["system"]]
    n = run["gpus"]
    if "layout" in run:
        lay = run["layout"]
        grid = LayoutGrid(
            tensor=[lay["tensor"]], pipeline=[lay["pipeline"]], data=[lay["data"]], zero_stages=[lay["zero_stage"]],
            micro_batches=[lay["micro_batch"]], recomputes=[lay["recompute"]],
            sequence_parallel=[lay["sequence_parallel"]], virtual_stages=[lay["virtual_stages"]],
        )
    else:
        allowed = run["search"]
        grid = LayoutGrid(
            tensor=[t for t in allowed["tensor"] if n % t == 0], pipeline=[p for p in divisors(n) if p <= dims.layers],
            data=divisors(n), zero_stages=allowed["zero_stage"], micro_batches=allowed["micro_batch"],
            recomputes=allowed["recompute"], sequence_parallel=allowed["sequence_parallel"],
        )
    result = evaluate_layouts(
        dims, cluster, grid, seq=run["seq"], global_batch=run["global_batch"], devices=n,
        flash=run["flash"], dropout=run["dropout"], framework_efficiency=framework(run.get("framework")).efficiency,
    )
    index = result.fastest() if "search" in run else (0,) * 8
    steps = run["tokens"] / (run["global_batch"] * run["seq"])
    hours = steps * float(result.seconds[index]) * n / 3600.0
    return hours / run["gpu_hours"], result, index


def _runs(name=None):
    return [r for r in FIXTURE["gpu_hours"]["runs"] if name is None or r["name"] == name]


@pytest.fixture(scope="module")
def run_ratios(presets):
    return {run["name"]: _run_result(run, presets) for run in _runs()}


def test_gpt3_175b_gpu_hours_within_20_percent(run_ratios):
    """Patterson et al. 2021: 10,000 V100 x 14.8 days. Our fastest 2020-style layout that fits
    a 32 GB V100."""
    ratio, result, index = run_ratios["GPT-3 175B"]
    assert 0.80 <= ratio <= 1.20
    assert result.fits[index]
    assert float(result.memory[index]) <= SYSTEMS["microsoft_v100"].memory_bytes


def test_bloom_176b_gpu_hours_within_20_percent(run_ratios):
    """BLOOM's published layout (TP 4, PP 12, DP 8, micro-batch 2, ZeRO-1, full recomputation)
    on Megatron-DeepSpeed, whose pipeline engine runs at the measured 0.73 of the model's
    Megatron-LM step (`genaisdk.estimate.frameworks`, calibrated on MT-NLG, not on BLOOM). The
    published hours are 384 GPUs x the run's wall-clock, restarts and failures included
    (docs/accuracy.md, "Step time and GPU-hours")."""
    ratio, result, index = run_ratios["BLOOM-176B"]
    assert 0.80 <= ratio <= 1.20
    assert result.fits[index]


# ------------------------------------------------------------------------------------------
# Training software: DeepSpeed's pipeline engine against the Megatron-LM the model is calibrated on


def _mt_nlg_ratios():
    run = FIXTURE["frameworks"]["mt_nlg"]
    dims = _megatron_gpt(run["heads"], run["hidden"], run["layers"], run["vocab"])
    ratios = []
    for servers, measured in run["rows"]:
        data = servers * 8 // (run["tensor"] * run["pipeline"])
        step = step_time(
            dims, SYSTEMS[run["system"]], seq=run["seq"], global_batch=run["batch"], micro_batch=run["micro_batch"],
            tensor_parallel=run["tensor"], pipeline_parallel=run["pipeline"], data_parallel=data, recompute="full", flash=False,
        )
        ratios.append(float(step.seconds) / measured)
    return ratios


def test_deepspeed_pipeline_efficiency_is_mt_nlgs_measured_over_modelled_time():
    """The frameworks table's 0.73 is MT-NLG's (Smith et al. 2022) modelled / measured
    iteration time, averaged over its three published scales; each scale is within 5% of it."""
    ratios = _mt_nlg_ratios()
    mean = sum(ratios) / len(ratios)
    for key in ("megatron-deepspeed", "gpt-neox"):
        assert FRAMEWORKS[key].efficiency == pytest.approx(mean, abs=0.01)
    assert all(abs(r / mean - 1) < 0.05 for r in ratios)
    assert framework(None).efficiency == 1.0


def _gpt_neox_20b_tflops(efficiency):
    run = FIXTURE["frameworks"]["gpt_neox_20b"]
    dims = Dimensions(layers=run["layers"], d_model=run["hidden"], heads=run["heads"], d_ff=4 * run["hidden"], vocab=run["vocab"],
                      context=run["seq"], positions="rotary", tied_embeddings=False)
    t, p, n = run["tensor"], run["pipeline"], run["gpus"]
    step = step_time(
        dims, SYSTEMS[run["system"]], seq=run["seq"], global_batch=run["batch"], micro_batch=run["micro_batch"],
        tensor_parallel=t, pipeline_parallel=p, data_parallel=n // (t * p), recompute="full", flash=False,
        framework_efficiency=efficiency,
    )
    flops = narayanan_flops(run["batch"], run["seq"], run["layers"], run["hidden"], run["vocab"])
    return flops / (float(step.seconds) * n) / 1e12


def test_gpt_neox_20b_throughput_within_5_percent_with_the_engines_efficiency():
    """A check the efficiency was not fitted to: GPT-NeoX-20B's 117 TFLOP/s per GPU (Black et al.
    2022). Timed as Megatron-LM it would be 36% faster than measured."""
    measured = FIXTURE["frameworks"]["gpt_neox_20b"]["tflops_per_gpu"]
    assert _gpt_neox_20b_tflops(FRAMEWORKS["gpt-neox"].efficiency) == pytest.approx(measured, rel=0.05)
    assert _gpt_neox_20b_tflops(1.0) > 1.25 * measured


def test_bloom_throughput_within_10_percent_with_the_engines_efficiency(run_ratios):
    """BigScience's about 150 TFLOP/s per GPU (recomputation counted) for BLOOM's layout."""
    _, result, index = run_ratios["BLOOM-176B"]
    step = result.step
    seconds = float(np.broadcast_to(step.seconds, result.grid.shape)[index])
    hardware = float(np.broadcast_to(step.hardware_flops, result.grid.shape)[index])
    tflops = hardware / (seconds * 384) / 1e12
    assert tflops == pytest.approx(FIXTURE["frameworks"]["bloom"]["tflops_per_gpu"], rel=0.10)


@pytest.mark.parametrize("name", ["LLaMA-7B", "LLaMA-13B", "LLaMA-33B", "LLaMA-65B"])
def test_llama_gpu_hours_within_20_percent(run_ratios, name):
    """Touvron et al. 2023, Table 15, on 2,048 A100-80GB with our fastest layout that fits."""
    ratio, result, index = run_ratios[name]
    assert 0.80 <= ratio <= 1.20
    assert result.fits[index]


# ------------------------------------------------------------------------------------------
# Efficiency curve and collectives


@pytest.mark.parametrize("row", FIXTURE["matmul_ceiling"]["rows"], ids=lambda r: r["device"])
def test_gemm_model_reproduces_measured_maximum_matmul_flops(row):
    m, n, k = row["shape"]
    seconds = eff.gemm_seconds(m, n, k, peak_flops=row["peak_flops"], memory_bandwidth=row["memory_bandwidth"])
    assert float(eff.gemm_flops(m, n, k) / seconds) == pytest.approx(row["tflops"] * 1e12, rel=0.02)


def test_small_gemms_are_less_efficient():
    sizes = [64, 256, 1024, 4096, 16384]
    rates = [float(eff.gemm_flops(s, s, s) / eff.gemm_seconds(s, s, s, peak_flops=312e12, memory_bandwidth=2039e9))
             for s in sizes]
    assert rates == sorted(rates)
    assert rates[0] < 0.1 * 312e12 < 0.8 * 312e12 < rates[-1]


def test_ring_collective_volumes():
    assert float(all_reduce_bytes(8e9, 8)) == pytest.approx(2 * 7 / 8 * 8e9)
    assert float(reduce_scatter_bytes(8e9, 8)) == pytest.approx(7 / 8 * 8e9)
    assert float(all_gather_bytes(8e9, 8)) == pytest.approx(7 / 8 * 8e9)
    # reduce-scatter + all-gather moves what an all-reduce does (sequence parallelism, ZeRO)
    assert float(reduce_scatter_bytes(1e9, 16) + all_gather_bytes(1e9, 16)) == pytest.approx(float(all_reduce_bytes(1e9, 16)))


def test_group_bandwidth_by_placement():
    intra = 0.6 * 300e9
    nic = 0.9 * 25e9
    assert float(group_bandwidth(SELENE, size=8, stride=1)) == pytest.approx(intra)  # one node
    assert float(group_bandwidth(SELENE, size=32, stride=1)) == pytest.approx(min(intra, 8 * nic))  # 8 per node
    assert float(group_bandwidth(SELENE, size=16, stride=8)) == pytest.approx(nic)  # one per node
    assert float(group_bandwidth(SELENE, size=16, stride=4)) == pytest.approx(2 * nic)
    assert np.isinf(group_bandwidth(SELENE, size=1))


# ------------------------------------------------------------------------------------------
# Structure


def _gpt_layout(**kw):
    dims = _megatron_gpt(32, 4096, 32)
    base = dict(seq=2048, global_batch=512, micro_batch=1, tensor_parallel=4, pipeline_parallel=4, data_parallel=8,
                recompute="selective", sequence_parallel=True, flash=True)
    base.update(kw)
    return step_time(dims, SELENE, **base)


def test_parts_sum_to_the_step_and_mfu_is_derived():
    step = _gpt_layout()
    assert set(step.parts) == set(PARTS)
    assert float(sum(step.parts.values())) == pytest.approx(float(step.seconds))
    assert float(step.mfu) == pytest.approx(float(step.model_flops) / (float(step.seconds) * 128 * 312e12))
    assert 0.2 < float(step.mfu) < 0.8


def test_bubble_is_p_minus_one_slots_and_shrinks_with_interleaving():
    plain = _gpt_layout()
    chunks = _gpt_layout(virtual_stages=2)
    assert float(plain.parts["bubble"]) == pytest.approx(3 * float(plain.stage_seconds))
    assert float(chunks.parts["bubble"]) == pytest.approx(1.5 * float(chunks.stage_seconds))
    assert float(chunks.parts["pipeline_transfer"]) == pytest.approx(2 * float(plain.parts["pipeline_transfer"]))
    # bubble share (p-1)/(v·m + p-1) when the stage time is the step's only term
    m = float(plain.micro_batches)
    share = float(plain.parts["bubble"]) / (float(plain.parts["bubble"]) + m * float(plain.stage_seconds))
    assert share == pytest.approx(3 / (m + 3))


def test_no_parallelism_has_no_communication():
    step = _gpt_layout(tensor_parallel=1, pipeline_parallel=1, data_parallel=1, sequence_parallel=False)
    for part in ("tensor_parallel", "pipeline_transfer", "bubble", "data_parallel"):
        assert float(step.parts[part]) == 0.0


def test_recomputation_costs_time():
    none, selective, full = (_gpt_layout(recompute=r, flash=False) for r in ("none", "selective", "full"))
    assert float(none.parts["recompute"]) == 0.0
    assert float(none.seconds) < float(selective.seconds) < float(full.seconds)
    # full recomputation repeats about one forward pass: about a third more compute
    assert 0.2 < float(full.parts["recompute"]) / float(full.parts["compute"]) < 0.4


def test_overlapped_data_parallel_reduction_hides_behind_the_backward():
    exposed = _gpt_layout(pipeline_parallel=1, data_parallel=32, tensor_parallel=4)
    hidden = _gpt_layout(pipeline_parallel=1, data_parallel=32, tensor_parallel=4, overlap_data_parallel=True)
    assert float(hidden.parts["data_parallel"]) < float(exposed.parts["data_parallel"])
    zero3 = _gpt_layout(pipeline_parallel=1, data_parallel=32, tensor_parallel=4, zero_stage=3)
    assert float(zero3.parts["data_parallel"]) > float(exposed.parts["data_parallel"])  # 1.5x the volume, per micro-batch


def test_vectorized_grid_equals_single_layouts():
    dims = _megatron_gpt(32, 4096, 32)
    grid = LayoutGrid(tensor=(1, 2, 4), pipeline=(1, 2, 4), data=(2, 4), zero_stages=(0, 1, 3), micro_batches=(1, 2),
                      recomputes=("selective", "full"), sequence_parallel=(False, True), virtual_stages=(1, 2))
    result = evaluate_layouts(dims, SELENE, grid, seq=2048, global_batch=64)
    rng = np.random.default_rng(0)
    for flat in rng.choice(grid.size, size=12, replace=False):
        index = np.unravel_index(int(flat), grid.shape)
        lay = grid.layout(index)
        step = step_time(
            dims, SELENE, seq=2048, global_batch=64, micro_batch=lay["micro_batch"], tensor_parallel=lay["tensor"],
            pipeline_parallel=lay["pipeline"], data_parallel=lay["data"], virtual_stages=lay["virtual_stages"],
            sequence_parallel=lay["sequence_parallel"], recompute=lay["recompute"], zero_stage=lay["zero_stage"],
        )
        assert float(result.seconds[index]) == pytest.approx(float(step.seconds))
        assert result.parts_at(index) == pytest.approx({k: float(v) for k, v in step.parts.items()})
        assert float(result.part("bubble")[index]) == pytest.approx(float(step.parts["bubble"]))


def test_fastest_layout_fits_and_invalid_layouts_are_excluded():
    dims = _megatron_gpt(40, 5120, 40)  # 40 heads: t = 16 does not divide them
    grid = LayoutGrid(tensor=(1, 2, 4, 8, 16), pipeline=(1, 2, 4), data=(1, 2, 4, 8), micro_batches=(1, 2))
    result = evaluate_layouts(dims, SELENE, grid, seq=2048, global_batch=256, devices=16)
    assert not result.valid[4].any()
    best = result.fastest()
    assert best is not None and result.fits[best]
    assert int(result.devices[best]) == 16
    assert float(result.seconds[best]) == float(np.min(np.where(result.fits, result.seconds, np.inf)))


def test_explanation_terms_are_the_models_numbers():
    from genaisdk.estimate.derivations import parallelism_terms, step_time_terms

    step = _gpt_layout(zero_stage=1)
    terms = {term.name: term for term in step_time_terms(step)}
    for name, part in (("compute", "compute"), ("bubble", "bubble"), ("tensor parallel", "tensor_parallel"),
                       ("pipeline transfers", "pipeline_transfer"), ("data parallel", "data_parallel")):
        assert terms[name].value == pytest.approx(float(step.parts[part]))
    assert terms["step"].value == pytest.approx(float(step.seconds))
    assert terms["MFU"].value == pytest.approx(float(step.mfu))
    assert terms["bubble"].substituted.startswith("(4 − 1)/1 × ")
    layout = dict(seq=2048, global_batch=512, micro_batch=1, tensor_parallel=4, pipeline_parallel=4, data_parallel=8)
    memory_terms = parallelism_terms(_megatron_gpt(32, 4096, 32), **layout)
    stages = [t for t in memory_terms if t.name.startswith("stage ")]
    assert len(stages) == 4
    assert memory_terms[-1].value == max(t.value for t in stages)


def test_the_spec_offers_exactly_the_frameworks_table():
    from genaisdk.spec.schema import BLOCKS

    key = BLOCKS["train"].keys["framework"]
    assert set(key.words) == set(FRAMEWORKS)


# ------------------------------------------------------------------------------------------
# Adapters over a frozen base


def _lora_steps():
    from genaisdk.estimate.steptime import LoraTiming

    dims = Dimensions(layers=32, d_model=4096, heads=32, kv_heads=8, d_ff=14336, vocab=32000, context=4096, ffn="gated",
                      positions="rotary", tied_embeddings=False)
    kw = dict(seq=4096, global_batch=8, micro_batch=4, data_parallel=2, recompute="full", flash=True)
    full = step_time(dims, SELENE, **kw)
    lora = step_time(dims, SELENE, lora=LoraTiming(rank=16, targets=("q", "k", "v", "o")), **kw)
    qlora = step_time(dims, SELENE, lora=LoraTiming(rank=16, targets=("q", "k", "v", "o"), frozen_weight_bytes=0.53), **kw)
    return dims, full, lora, qlora


def test_a_lora_step_skips_the_frozen_weight_gradients_and_reduces_only_the_adapters():
    from genaisdk.estimate.adaptation import lora_flops_per_token, lora_params

    dims, full, lora, qlora = _lora_steps()
    # Backward of the frozen products: one product (input gradients) where training takes two.
    saved = float(full.details["layer_backward"]) - float(lora.details["layer_backward"])
    assert 0 < saved < float(full.details["layer_forward"])
    assert 0.70 < float(lora.seconds) / float(full.seconds) < 0.85
    # Gradients, their reduction and the optimizer: the adapters' parameters alone.
    adapters = lora_params(dims, rank=16, targets=("q", "k", "v", "o"))
    assert float(lora.details["stage_params"]) == adapters
    assert float(lora.parts["data_parallel"]) < 0.01 * float(full.parts["data_parallel"])
    assert float(lora.parts["optimizer"]) < 0.01 * float(full.parts["optimizer"])
    # Model FLOPs: the plan's rule (genaisdk.estimate.adaptation.lora_flops_per_token).
    skipped, added = lora_flops_per_token(dims, rank=16, targets=("q", "k", "v", "o"), context=4096)
    per_token = float(full.model_flops) / (8 * 4096)
    assert float(lora.model_flops) / (8 * 4096) == pytest.approx(per_token - skipped + added, rel=1e-12)
    # A k-bit base: dequantized before each use, a little slower; never faster.
    assert float(lora.seconds) < float(qlora.seconds) < 1.05 * float(lora.seconds)


def test_lora_timing_refuses_tensor_and_pipeline_parallelism():
    from genaisdk.estimate.steptime import LoraTiming

    dims, *_ = _lora_steps()
    with pytest.raises(ValueError, match="t = p = 1"):
        step_time(dims, SELENE, seq=4096, global_batch=8, micro_batch=1, tensor_parallel=2,
                  lora=LoraTiming(rank=8, targets=("q", "v")))


# ------------------------------------------------------------------------------------------
# Offloading strategies: their transfers over the host link


def test_offload_moves_the_shards_over_the_host_link_and_none_of_it_hides():
    """ZeRO-Offload (Ren et al. 2021, Sec. 4.1): per step each device's gradient shard goes
    down and its updated weight shard comes up (2 + 2 bytes per parameter / d); weights kept
    on the host come up for each micro-batch's forward and backward pass, gradients down.
    Without a host-link figure the part is 0 (the plan says so)."""
    import attrs

    dims = _megatron_gpt(64, 8192, 8)
    host = attrs.evolve(SELENE, host_bandwidth=32e9)
    kw = dict(seq=2048, global_batch=64, micro_batch=1, data_parallel=8, zero_stage=1, recompute="full", flash=True)
    plain = step_time(dims, host, **kw)
    optimizer = step_time(dims, host, offload_optimizer=True, **kw)
    weights = step_time(dims, host, offload_optimizer=True, offload_weights=True, **{**kw, "zero_stage": 3})
    shard = float(plain.details["stage_params"]) / 8
    assert float(plain.parts["offload"]) == 0.0
    assert float(optimizer.parts["offload"]) == pytest.approx(shard * (2 + 2) / 32e9, rel=1e-12)
    m = 64 / 8
    assert float(weights.parts["offload"]) == pytest.approx((shard * 4 + m * shard * (2 * 2 + 2)) / 32e9, rel=1e-12)
    assert float(optimizer.seconds) - float(plain.seconds) == pytest.approx(float(optimizer.parts["offload"]), rel=1e-9)
    unknown = step_time(dims, SELENE, offload_optimizer=True, **kw)
    assert float(unknown.parts["offload"]) == 0.0
