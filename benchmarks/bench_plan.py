"""Planner speed: cold `genai plan` as a whole process, and the configuration search rate.

    python benchmarks/bench_plan.py [--runs 21] [--spec specs/legal.genai]

Prints, measured in the same run:
- the median wall time of a bare `python -c pass` and of `genai plan SPEC` (text view and
  --json), each a fresh process, with the ratio to the bare interpreter and to the limits
  (200 ms and 5x);
- configurations per second of the vectorized search (`genaisdk.planning.grid.evaluate` and
  `choose`) over a grid of precisions x strategies x devices x micro-batches x
  recomputation x parallel layouts on `--search-spec`'s model, and of the whole `--sweep`
  (sizes added, Pareto front included), against the 1e6/s goal;
- modules JAX or its libraries would add (there must be none).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COLD_LIMIT_S = 0.200
COLD_RATIO_LIMIT = 5.0
RATE_GOAL = 1e6


def median_wall(args: list[str], runs: int, env: dict[str, str] | None = None) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT, env=env, check=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def genai_command() -> list[str]:
    script = shutil.which("genai")
    return [script] if script else [sys.executable, "-m", "genaisdk"]


def cold_start(spec: str, runs: int) -> None:
    env = dict(os.environ, COLUMNS="100")
    # Measure what an installed copy does: bytecode written once and read on every start.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    # Warm the file cache and the bytecode once.
    subprocess.run(genai_command() + ["plan", spec], stdout=subprocess.DEVNULL, cwd=ROOT, env=env, check=True)
    bare = median_wall([sys.executable, "-c", "pass"], runs)
    text = median_wall(genai_command() + ["plan", spec], runs, env)
    as_json = median_wall(genai_command() + ["plan", spec, "--json"], runs, env)
    print(f"cold start, median of {runs} fresh processes")
    print(f"  python -c pass             {bare * 1e3:7.1f} ms")
    for name, t in (("genai plan (text)", text), ("genai plan --json", as_json)):
        print(
            f"  {name:<26} {t * 1e3:7.1f} ms   {t / bare:4.1f}x python   "
            f"limit {COLD_LIMIT_S * 1e3:.0f} ms: {'ok' if t <= COLD_LIMIT_S else 'OVER'}   "
            f"limit {COLD_RATIO_LIMIT:.0f}x: {'ok' if t / bare <= COLD_RATIO_LIMIT else 'OVER'}"
        )


STAGES = """
import time, sys
t = [time.perf_counter()]
import genaisdk.cli, click; t.append(time.perf_counter())
import numpy; t.append(time.perf_counter())
from genaisdk.spec import load; spec = load(sys.argv[1]); t.append(time.perf_counter())
import genaisdk.planning.pipeline; t.append(time.perf_counter())
plan = genaisdk.planning.pipeline.plan(spec); t.append(time.perf_counter())
from genaisdk.render.json import to_json_text; to_json_text(plan); t.append(time.perf_counter())
from genaisdk.render.text import to_text; to_text(plan); t.append(time.perf_counter())
print(" ".join(f"{(b - a) * 1e3:.1f}" for a, b in zip(t, t[1:])))
"""
STAGE_NAMES = ("cli + click", "numpy", "spec: parse, registry, build", "import planner", "plan", "json", "text (rich)")


def stages(spec: str, runs: int) -> None:
    """Where a cold `genai plan` spends its time, each stage in a fresh process (median)."""
    rows = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", STAGES, spec], capture_output=True, text=True, cwd=ROOT, check=True)
        rows.append([float(x) for x in out.stdout.split()])
    medians = [statistics.median(col) for col in zip(*rows)]
    print("  stages (median ms): " + ", ".join(f"{n} {m:.0f}" for n, m in zip(STAGE_NAMES, medians)))


def no_jax(spec: str) -> None:
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "genaisdk", "plan", spec, "--json"],
        capture_output=True, text=True, cwd=ROOT, check=True,
    )
    names = [line.rsplit("|", 1)[1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")]
    heavy = sorted({n for n in names if n.split(".")[0] in ("jax", "jaxlib", "optax", "orbax")})
    print(f"modules imported by genai plan: {len(names)}; JAX-related: {heavy or 'none'}")


def search_rate(spec: str) -> None:
    import attrs

    import genaisdk
    from genaisdk.planning import plan_stages
    from genaisdk.planning.fit import layout_candidates
    from genaisdk.planning.grid import RECOMPUTE_ORDER, Grid, choose, evaluate, powers_of_two

    stages = plan_stages(genaisdk.load(spec)).stages
    case = stages.fitted.case
    r, hw = stages.ctx.resolved, stages.ctx.hardware
    precisions = tuple(p for p in r.precisions if p.trainable and p.compute_dtype in hw.peak_flops)
    devices = powers_of_two(1, 4096)
    grid = Grid(
        precisions=precisions,
        strategies=r.strategies,
        devices=devices,
        micro_batches=powers_of_two(1, 64),
        recomputes=RECOMPUTE_ORDER,
    )
    grid = attrs.evolve(grid, layouts=layout_candidates(stages.ctx, case, devices, free=True))
    evaluate(case, grid)
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < 2.0:
        choose(evaluate(case, grid))
        runs += 1
    elapsed = (time.perf_counter() - start) / runs
    rate = grid.size / elapsed
    print(
        f"search: {grid.size:,} configurations ({' x '.join(map(str, grid.shape))}, {len(grid.layouts)} layouts) evaluated and ranked in "
        f"{elapsed * 1e3:.1f} ms: {rate:,.0f} per second, {rate / RATE_GOAL:.1f}x the 1e6/s goal"
    )
    from genaisdk.planning.sweep import run_sweep

    planned = plan_stages(genaisdk.load(spec))
    run_sweep(planned)
    result = run_sweep(planned)
    print(
        f"--sweep ({', '.join(result.varied)} varied): {result.configurations:,} configurations in {result.seconds * 1e3:.1f} ms of search: "
        f"{result.rate:,.0f} per second, {result.rate / RATE_GOAL:.1f}x the goal; Pareto front of {len(result.front)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--spec", default="specs/legal.genai")
    parser.add_argument("--search-spec", default="specs/gpt3-175b.genai", help="the model whose layouts the search rate is measured on")
    args = parser.parse_args()
    spec = str(ROOT / args.spec)
    cold_start(spec, args.runs)
    stages(spec, max(5, args.runs // 2))
    no_jax(spec)
    search_rate(str(ROOT / args.search_spec))


if __name__ == "__main__":
    main()
