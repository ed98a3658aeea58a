"""How fast a Hugging Face checkpoint loads into the JAX backend, against safetensors itself.

    python benchmarks/bench_load.py [--layers 6] [--d-model 384] [--vocab 16000] [--dtype bf16]
                                    [--devices 1] [--runs 5] [--strict]

Writes a temporary LLaMA-shaped checkpoint (random weights, untied output; with the
defaults 23M parameters, 46 MB in bf16), never committed, then times, interleaved and
after one warm-up each (so both read from the page cache):

- `genaisdk.backend.jax.load.load_model(folder)`: config, header checks, every tensor read
  lazily, converted to genaisdk's layout (transposes) and placed on the devices (with
  `--devices N > 1`: sharded over N host devices by the FSDP rules), until every array is
  ready;
- `safetensors.numpy.load_file(model.safetensors)`: the same bytes read into NumPy arrays,
  no layout change, no device placement.

Every result is kept until the end of the runs, as a real load's is: otherwise the allocator
hands the next run the pages the last one freed, and `load_file` looks several times faster
than any load whose result is used.

Prints each one's median time and its throughput (bytes on disk / time, GB/s) and the
ratio load_model / load_file. Goal: <= 5x. load_model fills two fresh buffers where
load_file fills one (the host slice of each device, then the device array: on a CPU
backend both are host memory, each paid in page faults) and transposes every Linear
weight in its one copy from the file (a transposing copy runs several times slower than
a straight one). `--strict` exits 1 when the goal is missed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

RATIO_GOAL = 5.0


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--d-model", type=int, default=384)
    parser.add_argument("--vocab", type=int, default=16000)
    parser.add_argument("--dtype", choices=("fp32", "bf16"), default="bf16")
    parser.add_argument("--devices", type=int, default=1, help="host devices to shard over (FSDP rules)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--strict", action="store_true")
    return parser.parse_args()


def make_checkpoint(folder: Path, *, layers: int, d_model: int, vocab: int, dtype: str) -> int:
    """A random LLaMA-shaped checkpoint in `folder`; returns its weight bytes on disk."""
    import jax
    import jax.numpy as jnp

    from genaisdk.backend.jax.hf import export_hf
    from genaisdk.backend.jax.model import build
    from genaisdk.dims import Dimensions

    heads = max(1, d_model // 64)
    dims = Dimensions(
        layers=layers, d_model=d_model, heads=heads, kv_heads=max(1, heads // 2), d_ff=int(8 * d_model / 3) // 64 * 64,
        vocab=vocab, context=2048, ffn="gated", norm="rmsnorm", positions="rotary", tied_embeddings=False,
        biases=False, norm_eps=1e-5,
    )
    model = build(dims, family="decoder")
    params = model.init(jax.random.key(0), jnp.bfloat16 if dtype == "bf16" else jnp.float32)
    export_hf(folder, params=params, dims=dims, family="decoder")
    return (folder / "model.safetensors").stat().st_size


def main() -> int:
    args = _args()
    if args.devices > 1:
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={args.devices}"
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax
    from safetensors.numpy import load_file

    from genaisdk.backend.jax.load import load_model
    from genaisdk.backend.jax.sharding import SHARDED_AXES, make_mesh

    mesh = make_mesh(args.devices) if args.devices > 1 else None
    rules = SHARDED_AXES if mesh is not None else None

    def genaisdk_load(folder: Path):
        loaded = load_model(folder, mesh=mesh, rules=rules)
        return jax.block_until_ready(loaded.params)

    def safetensors_load(folder: Path):
        return load_file(str(folder / "model.safetensors"))

    with tempfile.TemporaryDirectory(prefix="genaisdk-bench-load-") as tmp:
        folder = Path(tmp)
        size = make_checkpoint(folder, layers=args.layers, d_model=args.d_model, vocab=args.vocab, dtype=args.dtype)
        print(f"checkpoint: {size / 1e6:.1f} MB ({args.dtype}), {args.layers} layers x d_model {args.d_model}, "
              f"vocab {args.vocab}; {args.devices} device(s)")
        runs: dict[str, list[float]] = {"load_model": [], "load_file": []}
        for fn in (genaisdk_load, safetensors_load):  # warm-up: page cache, JAX's first transfers
            fn(folder)
        kept = []  # results stay alive, as a real load's do: each run fills fresh memory
        for _ in range(args.runs):
            for name, fn in (("load_model", genaisdk_load), ("load_file", safetensors_load)):
                start = time.perf_counter()
                kept.append(fn(folder))
                runs[name].append(time.perf_counter() - start)
        del kept
    medians = {name: statistics.median(times) for name, times in runs.items()}
    for name, label in (("load_model", "genaisdk load_model"), ("load_file", "safetensors.numpy.load_file")):
        print(f"{label:30s} {medians[name] * 1e3:8.1f} ms  {size / medians[name] / 1e9:6.2f} GB/s")
    ratio = medians["load_model"] / medians["load_file"]
    verdict = "ok" if ratio <= RATIO_GOAL else "over the goal"
    print(f"ratio load_model / load_file: {ratio:.2f}x (goal <= {RATIO_GOAL:g}x: {verdict})")
    return 1 if args.strict and ratio > RATIO_GOAL else 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
