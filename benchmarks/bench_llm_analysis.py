"""Side by side with the peer `llm-analysis` (pip install llm-analysis; not a dependency).

    python benchmarks/bench_llm_analysis.py

Same models (LLaMA-7B and GPT-3 175B), same GPU (A100-SXM 80GB), same strategy grid
(DDP / ZeRO-1 / ZeRO-2 / ZeRO-3 = FSDP, data-parallel degree, micro-batch, recomputation),
mixed-precision Adam with 16-bit weights and activations and flash attention on both sides.

Prints
- configurations per second, ours / theirs, on the same grid (theirs: one `training()`
  call per configuration; a configuration that does not fit raises in theirs and is counted
  as evaluated);
- each memory component per device, ours vs theirs, and the relative difference; every
  difference above 10% is explained in docs/accuracy.md.
"""

from __future__ import annotations

import itertools
import logging
import sys
import time
import warnings

try:
    from llm_analysis.analysis import ActivationRecomputation, DSZeRO, LLMAnalysis
    from llm_analysis.config import ParallelismConfig, get_dtype_config_by_name, get_gpu_config_by_name, get_model_config_by_name
except ImportError:  # pragma: no cover
    sys.exit("this benchmark needs the peer: pip install llm-analysis")

import genaisdk
from genaisdk.planning import plan_stages
from genaisdk.planning.grid import Grid, evaluate

MODELS = {
    # ours (preset) -> theirs (model config)
    "llama-7b": "decapoda-research_llama-7b-hf",
    "gpt3-175b": "megatron-lm-175b",
}
STRATEGIES = {"ddp": DSZeRO.NONE, "zero1": DSZeRO.STAGE_1, "zero2": DSZeRO.STAGE_2, "fsdp": DSZeRO.STAGE_3}
RECOMPUTE = {"none": ActivationRecomputation.NONE, "selective": ActivationRecomputation.SELECTIVE, "full": ActivationRecomputation.FULL}
SEQ = 2048


def quiet_peer() -> None:
    import llm_analysis.logger as peer_logger

    peer_logger.logger.setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")


def our_case(preset: str, devices: int):
    text = f"""genai 1
project "bench" {{
  model {{
    preset = {preset}
    context = {SEQ} tokens
  }}
  data {{
    tokens = 1B tokens
  }}
  train {{
    precision = bf16
    optimizer = adam
    batch = 64M tokens
  }}
  budget {{
    hardware = {devices} x a100-80gb
  }}
}}
"""
    return plan_stages(genaisdk.loads(text)).stages


def our_grid(planner, devices, micro_batches, recomputes) -> tuple[Grid, object]:
    by_key = {s.key: s for s in planner.ctx.resolved.strategies}
    grid = Grid(
        precisions=(planner.ctx.precision,),
        strategies=tuple(by_key[k] for k in STRATEGIES),
        devices=tuple(devices),
        micro_batches=tuple(micro_batches),
        recomputes=tuple(recomputes),
    )
    return grid, evaluate(planner.fitted.case, grid)


def peer(model: str, dp: int) -> LLMAnalysis:
    return LLMAnalysis(
        get_model_config_by_name(model),
        get_gpu_config_by_name("a100-sxm-80gb"),
        get_dtype_config_by_name("w16a16e16"),
        ParallelismConfig(dp_size=dp),
        flops_efficiency=0.4,
        hbm_memory_efficiency=1.0,
    )


def peer_training(analysis: LLMAnalysis, strategy: str, micro: int, recompute: str):
    try:
        return analysis.training(
            batch_size_per_gpu=micro,
            gradient_accumulation_steps=1,
            seq_len=SEQ,
            activation_recomputation=RECOMPUTE[recompute],
            ds_zero=STRATEGIES[strategy],
            flash_attn=True,
            total_num_tokens=1e9,
        )
    except AssertionError:
        return None  # does not fit: the peer refuses the configuration


def rate_comparison(preset: str, model: str, devices: tuple[int, ...], micro: tuple[int, ...]) -> None:
    recomputes = tuple(RECOMPUTE)
    planner = our_case(preset, 8)
    grid, _ = our_grid(planner, devices, micro, recomputes)
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < 1.0:
        our_grid(planner, devices, micro, recomputes)
        runs += 1
    ours = grid.size * runs / (time.perf_counter() - start)

    configs = list(itertools.product(devices, STRATEGIES, micro, recomputes))
    start = time.perf_counter()
    analyses = {}
    for dp, strategy, mb, rc in configs:
        analysis = analyses.setdefault(dp, peer(model, dp))
        peer_training(analysis, strategy, mb, rc)
    theirs = len(configs) / (time.perf_counter() - start)
    print(
        f"{preset}: {grid.size} configurations (4 strategies x {len(devices)} device counts x {len(micro)} micro-batches "
        f"x 3 recomputation levels): ours {ours:,.0f}/s, theirs {theirs:,.0f}/s, ours / theirs = {ours / theirs:,.0f}x"
    )


def component_comparison(preset: str, model: str, dp: int) -> list[float]:
    planner = our_case(preset, dp)
    micro = (1, 2)
    grid, result = our_grid(planner, (dp,), micro, tuple(RECOMPUTE))
    analysis = peer(model, dp)
    print(f"\n{preset} on {dp} x A100-80GB, sequence {SEQ}, bf16 mixed-precision Adam, flash attention: bytes per device (GB = 1e9)")
    header = f"  {'strategy':<6} {'mb':>2} {'recompute':<9} | {'component':<11} {'ours':>9} {'theirs':>9} {'diff':>7}"
    print(header)
    diffs = []
    for j, strategy in enumerate(STRATEGIES):
        for mi, mb in enumerate(micro):
            for ri, rc in enumerate(RECOMPUTE):
                got = peer_training(analysis, strategy, mb, rc)
                if got is None:
                    print(f"  {strategy:<6} {mb:>2} {rc:<9} | the peer reports it does not fit")
                    continue
                idx = (0, j, 0, mi, ri)
                rows = (
                    ("weights", result.weights[idx], got["weight_memory_per_gpu"]),
                    ("gradients", result.gradients[idx], got["gradient_memory_per_gpu"]),
                    ("optimizer", result.optimizer[idx], got["optimizer_state_memory_per_gpu"]),
                    ("activations", result.activations[idx], got["activation_memory_per_gpu"]),
                    ("total", result.total[idx], got["(weight+op_state+grad+act)_memory_per_gpu"]),
                )
                for k, (name, ours, theirs) in enumerate(rows):
                    diff = (float(ours) - float(theirs)) / float(theirs)
                    diffs.append(abs(diff))
                    flag = "  >10%" if abs(diff) > 0.10 else ""
                    lead = f"  {strategy:<6} {mb:>2} {rc:<9}" if k == 0 else " " * (4 + 6 + 3 + 10)
                    print(f"{lead} | {name:<11} {float(ours) / 1e9:9.2f} {float(theirs) / 1e9:9.2f} {diff:+7.1%}{flag}")
    count = planner.fitted.case.count
    theirs_params = analysis.get_num_params_total()
    print(f"  parameters: ours {count.total:,} (exact), theirs {theirs_params:,} ({(count.total - theirs_params) / theirs_params:+.1%})")
    return diffs


def main() -> None:
    quiet_peer()
    for preset, model in MODELS.items():
        rate_comparison(preset, model, (8, 64), (1, 2, 4))
        rate_comparison(preset, model, tuple(2**k for k in range(13)), tuple(2**k for k in range(9)))
    component_comparison("llama-7b", "decapoda-research_llama-7b-hf", 8)
    component_comparison("gpt3-175b", "megatron-lm-175b", 64)


if __name__ == "__main__":
    main()
