"""LoRA step time against a full fine-tune step of the same model, in the same run.

    python benchmarks/bench_lora.py [--spec specs/support-lora.genai] [--steps 10] [--rounds 3]

Both runs go through `genaisdk.train` on the same spec, data, batch and devices; only
`adapt.method` differs (the spec's LoRA or QLoRA against `finetune`). A full fine-tune
differentiates and updates every weight and keeps AdamW's two moments for each; LoRA
differentiates only the adapters (Hu et al. 2021, Sec. 4.2: the gradients and optimizer
state of the frozen weights are never built), so its step does less work: the backward pass
still propagates through the frozen weights (the activation gradients), but skips their
weight gradients, roughly a third of a step's FLOPs (Kaplan et al. 2020, Sec. 2.1: forward 2N,
backward 4N per token, half of it weight gradients), and the optimizer update over N weights.

Reported: each run's tokens/s (from the second step on, as the run reports it), the medians
over rounds (alternated so that drifting machine load hits both), and the ratio LoRA step
time / full fine-tune step time (expected below 1; on a model of kilobytes the fixed
per-step costs dominate and it can sit near or above 1).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", default=str(ROOT / "specs" / "support-lora.genai"))
    parser.add_argument("--steps", type=int, default=10, help="timed steps per run (one more compiles)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a spec override for both runs, e.g. --set train.batch='4096 tokens'")
    args = parser.parse_args(argv)

    import genaisdk

    spec = genaisdk.load(args.spec, overrides=args.overrides)
    plan = genaisdk.plan(spec)
    method = plan.adapt.method if getattr(plan, "adapt", None) is not None else spec.project.adapt.method
    if method not in ("lora", "qlora"):
        print(f"{args.spec} adapts with `{method}`; this benchmark compares LoRA or QLoRA with a full fine-tune")
        return 2
    runs = {method: list(args.overrides), "finetune": [*args.overrides, "adapt.method=finetune"]}
    speeds: dict[str, list[float]] = {name: [] for name in runs}
    with tempfile.TemporaryDirectory() as tmp:
        for round_index in range(args.rounds):
            for name, overrides in runs.items():
                result = genaisdk.train(
                    args.spec,
                    overrides=overrides,
                    steps=args.steps + 1,
                    out=Path(tmp) / f"{name}-{round_index}",
                    checkpoint_every=args.steps + 1,
                    eval_every=args.steps + 1,
                    eval_batches=1,
                    quiet=True,
                )
                speeds[name].append(result.tokens_per_s)
            print(
                f"round {round_index + 1}: {method} {speeds[method][-1]:,.0f} tok/s   "
                f"finetune {speeds['finetune'][-1]:,.0f} tok/s"
            )
    adapted, full = statistics.median(speeds[method]), statistics.median(speeds["finetune"])
    ratio = full / adapted  # step time is inversely proportional to tokens/s at a fixed batch
    print(f"{method}: {adapted:,.0f} tok/s, full fine-tune: {full:,.0f} tok/s (medians of {args.rounds} rounds of {args.steps} steps)")
    print(f"{method} step time / full fine-tune step time: {ratio:.3f}  (expected below 1: {'yes' if ratio < 1 else 'NO'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
