"""Generation speed: the decode step's memory bandwidth, and the KV cache against recomputing.

    python benchmarks/bench_generate.py [--quick]

Two measurements, each printed as a ratio against its goal:

1. Bandwidth: a decoder whose weights (fp32) are far larger than the CPU's caches decodes
   with batch 1, where each step must read every weight and the whole KV cache once. The
   bandwidth the step achieves, (weight bytes + KV bytes) / step time, is divided by the
   host memcpy bandwidth measured in the same run (bytes read + written; on an
   accelerator, the datasheet bandwidth of its hardware record). Goal: >= 0.5.
2. KV cache vs recompute: a small decoder generates 256 new tokens after a 128-token
   prompt, once with the KV cache (prefill, then one cached step per token) and once
   recomputing a full forward pass over the whole sequence for every token
   (`Generator.run_by_recompute`); both end to end, first token included, compilation
   excluded. Goal: the cache >= 10x the tokens/s.

Both models have freshly initialized weights: speed does not depend on their values.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BANDWIDTH_GOAL = 0.5
SPEEDUP_GOAL = 10.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller models and fewer tokens (a smoke run)")
    parser.add_argument("--precision", default="fp32", help="serving precision of the bandwidth model")
    args = parser.parse_args()

    import jax

    from genaisdk.backend.jax.generate import Generator, bench, bench_recompute
    from genaisdk.backend.jax.runs import fresh_model
    from genaisdk.dims import Dimensions
    from genaisdk.core.numbers import fmt_bytes

    print(f"devices: {jax.devices()[0].device_kind} x {jax.device_count()}")

    # 1. bandwidth: 4 layers x d_model 1024 x d_ff 4096 = 50M parameters, 201 MB in fp32.
    big = Dimensions(layers=2 if args.quick else 4, d_model=1024, heads=16, d_ff=4096, vocab=384, context=1024, positions="rotary")
    generator = Generator(fresh_model(big, family="decoder"), args.precision)
    result = bench(generator, prompt_tokens=64, new_tokens=32 if args.quick else 64, batch=1, repeats=3)
    print(
        f"\n[bandwidth] decoder {big.layers} x {big.d_model}, {generator.model.num_params() / 1e6:.1f}M params, "
        f"{result.precision} weights {fmt_bytes(result.weight_bytes)}, KV cache {fmt_bytes(result.kv_bytes)}"
    )
    print(f"  decode step {result.decode_step_s * 1e3:.2f} ms, {result.decode_tokens_per_s:.1f} tokens/s, TTFT {result.ttft_s * 1e3:.1f} ms")
    print(
        f"  achieved {fmt_bytes(result.bandwidth)}/s vs {fmt_bytes(result.peak_bandwidth)}/s ({result.peak_source}): "
        f"ratio {result.bandwidth_fraction:.2f} (goal >= {BANDWIDTH_GOAL})"
    )
    print(
        f"  weights measured / planned: {result.weight_bytes / result.planned_weight_bytes:.4f}; "
        f"KV measured / planned: {result.kv_bytes / result.planned_kv_bytes:.4f}"
    )
    del generator

    # 2. KV cache vs full recompute, 256 new tokens.
    small = Dimensions(layers=4, d_model=256, heads=8, d_ff=1024, vocab=384, context=1024, positions="rotary")
    new_tokens = 64 if args.quick else 256
    prompt_tokens = 128
    generator = Generator(fresh_model(small, family="decoder"), "fp32")
    cached = bench(generator, prompt_tokens=prompt_tokens, new_tokens=new_tokens, repeats=3, peak=(1.0, "-"))
    cached_tps = new_tokens / (cached.ttft_s + cached.decode_step_s * (new_tokens - 1))
    recompute_tps = bench_recompute(generator, prompt_tokens=prompt_tokens, new_tokens=new_tokens)
    speedup = cached_tps / recompute_tps
    print(
        f"\n[kv cache] decoder {small.layers} x {small.d_model}, {prompt_tokens} prompt + {new_tokens} new tokens: "
        f"cached {cached_tps:,.0f} tokens/s, recompute {recompute_tps:,.1f} tokens/s"
    )
    print(f"  ratio {speedup:.1f}x (goal >= {SPEEDUP_GOAL:.0f}x)")
    ok = result.bandwidth_fraction >= BANDWIDTH_GOAL and speedup >= SPEEDUP_GOAL
    print(f"\n{'goals met' if ok else 'goal missed'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
