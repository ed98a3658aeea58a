"""Layout search speed: configurations per second of the parallel-layout evaluation.

    python benchmarks/bench_parallel.py [--spec specs/legal.genai] [--seconds 2]

Prints, measured in the same run:
- the rate of `genaisdk.estimate.layouts.evaluate_layouts` (memory of the first and last
  pipeline stage, step time and its parts, validity, fit, and the fastest fitting layout)
  over tensor x pipeline x data x ZeRO stage x micro-batch x recomputation x sequence
  parallelism x interleaving, for a 70B model on H100 nodes (layouts of 512 GPUs valid),
  against the 1e6/s goal;
- the rate of the planner's own search (`genaisdk.planning.grid.evaluate` and `choose`
  over precisions x strategies x devices x micro-batches x recomputation x layouts: every
  strategy record, the ZeRO stages with their offload variants) on the spec's model, the
  grid `genai plan` would search if every axis were `auto`, against the same goal.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RATE_GOAL = 1e6

H100_NODE = dict(
    peak_flops=989e12,  # H100 SXM dense bf16 (NVIDIA H100 datasheet)
    memory_bytes=80 * 2**30,
    memory_bandwidth=3350e9,  # HBM3
    intra_node_bandwidth=450e9,  # NVLink 4: 900 GB/s counting both directions
    inter_node_bandwidth=50e9,  # one 400 Gb/s NDR InfiniBand adapter per GPU
    devices_per_node=8,
)


def timed(fn, seconds: float) -> float:
    """Mean seconds per call of `fn` over about `seconds` of repeated calls (one warm-up)."""
    fn()
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        runs += 1
    return (time.perf_counter() - start) / runs


def layout_rate(seconds: float) -> None:
    from genaisdk.builtins.presets import catalog
    from genaisdk.estimate.comm import Cluster
    from genaisdk.estimate.layouts import LayoutGrid, evaluate_layouts
    from genaisdk.planning.grid import powers_of_two

    dims = {p.name: p for p in catalog()}["llama2-70b"].dims
    cluster = Cluster(**H100_NODE)
    grid = LayoutGrid(
        tensor=(1, 2, 4, 8),
        pipeline=(1, 2, 4, 8, 16),
        data=powers_of_two(1, 4096),
        zero_stages=(0, 1, 2, 3),
        micro_batches=(1, 2, 4, 8, 16),
        recomputes=("none", "selective", "full"),
        sequence_parallel=(False, True),
        virtual_stages=(1, 2),
    )

    def run():
        result = evaluate_layouts(
            dims, cluster, grid, seq=4096, global_batch=1024, devices=512, flash=True, dropout=False
        )
        return result.fastest()

    elapsed = timed(run, seconds)
    best = run()
    rate = grid.size / elapsed
    print(
        f"layouts: {grid.size:,} configurations ({' x '.join(map(str, grid.shape))}) evaluated and ranked in "
        f"{elapsed * 1e3:.1f} ms: {rate:,.0f} per second, {rate / RATE_GOAL:.1f}x the 1e6/s goal"
    )
    if best is not None:
        print(f"  fastest fitting layout of llama2-70b on 512 GPUs (4k context, 1024 sequences): {grid.layout(best)}")


def planner_rate(spec: str, seconds: float) -> None:
    import attrs

    import genaisdk
    from genaisdk.planning import plan_stages
    from genaisdk.planning.fit import layout_candidates
    from genaisdk.planning.grid import RECOMPUTE_ORDER, Grid, choose, evaluate, powers_of_two

    stages = plan_stages(genaisdk.load(spec)).stages
    case = stages.fitted.case
    r, hw = stages.ctx.resolved, stages.ctx.hardware
    precisions = tuple(p for p in r.precisions if p.trainable and p.compute_dtype in hw.peak_flops)
    devices = powers_of_two(64, 4096)
    grid = Grid(
        precisions=precisions,
        strategies=r.strategies,
        devices=devices,
        micro_batches=powers_of_two(1, 16),
        recomputes=RECOMPUTE_ORDER,
    )
    grid = attrs.evolve(grid, layouts=layout_candidates(stages.ctx, case, devices, free=True))
    elapsed = timed(lambda: choose(evaluate(case, grid)), seconds)
    rate = grid.size / elapsed
    print(
        f"planner search ({stages.dims.layers} layers x d_model {stages.dims.d_model}, {len(grid.layouts)} layouts): "
        f"{grid.size:,} configurations ({' x '.join(map(str, grid.shape))}) evaluated and chosen in "
        f"{elapsed * 1e3:.1f} ms: {rate:,.0f} per second, {rate / RATE_GOAL:.1f}x the 1e6/s goal"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="specs/llama-65b.genai")
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    layout_rate(args.seconds)
    planner_rate(str(ROOT / args.spec), args.seconds)


if __name__ == "__main__":
    main()
