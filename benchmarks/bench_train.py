"""Training-loop overhead: `genaisdk.train` against a minimal hand-written jitted JAX loop.

    python benchmarks/bench_train.py [--spec specs/tiny-gpt.genai] [--steps 30] [--rounds 5]

Both loops train the same model (the SDK's model and objective code, the spec's
dimensions) on the same batch shape, one forward/backward of the whole global batch per
step (the spec's micro-batch is raised to the per-device batch so neither accumulates):

- hand-written: `jax.jit` of value_and_grad + optax (global-norm clipping, AdamW, the same
  warmup-cosine schedule) over one batch already on the device, no metrics read, timed
  from the second step to the end of the last;
- SDK: `genaisdk.train(...)`, data pipeline, batch building, metrics and progress
  included, with its reported tokens/s (from the second step on). It checkpoints only at
  the end, outside the timed steps: how often to save is the user's trade-off between
  time and work lost to a crash, not loop overhead.

Rounds alternate the two so that drifting machine load hits both; the medians are
compared and the ratio printed against the goal (SDK / hand-written >= 0.95).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL = 0.95


def hand_written_tokens_per_s(trainer, steps: int) -> float:
    """Tokens/s of the simplest jitted loop over the trainer's own model and objective."""
    import jax
    import numpy as np
    import optax

    config = trainer.config
    model, objective, policy = trainer.model, trainer.objective, trainer.policy
    schedule = trainer.schedule
    tx = optax.chain(
        optax.clip_by_global_norm(config.grad_clip or 1.0),
        optax.adamw(schedule, weight_decay=config.weight_decay),
    )
    sharding = jax.sharding.NamedSharding(trainer.mesh, jax.sharding.PartitionSpec("data"))
    replicated = jax.sharding.NamedSharding(trainer.mesh, jax.sharding.PartitionSpec())
    params = jax.device_put(model.init(jax.random.key(0), policy.param_dtype), replicated)
    opt_state = jax.device_put(tx.init(params), replicated)

    rng = np.random.default_rng(0)
    rows = rng.integers(3, 259, size=(config.global_batch, trainer.row_length)).astype(np.int32)
    host = objective.make_batch(rows, rng)
    batch = {k: jax.device_put(v, sharding) for k, v in host.items()}

    def loss_fn(p, b):
        return objective.loss(model.apply, p, b, policy)[0]

    def train_step(p, s, b):
        loss, grads = jax.value_and_grad(loss_fn)(p, b)
        updates, s = tx.update(grads, s, p)
        return optax.apply_updates(p, updates), s, loss

    step = jax.jit(train_step, donate_argnums=(0, 1))
    params, opt_state, loss = step(params, opt_state, batch)  # compile
    jax.block_until_ready(loss)
    start = time.perf_counter()
    for _ in range(steps):
        params, opt_state, loss = step(params, opt_state, batch)
    jax.block_until_ready((params, loss))
    seconds = time.perf_counter() - start
    return steps * config.tokens_per_step / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default=str(ROOT / "specs" / "tiny-gpt.genai"))
    parser.add_argument("--steps", type=int, default=30, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--devices", type=int, default=None, help="devices (on CPU: host devices to create)")
    args = parser.parse_args()

    # Compilation is outside both measurements; a throwaway persistent cache saves the
    # rounds after the first from compiling again.
    cache = tempfile.mkdtemp(prefix="bench-train-xla-")
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", cache)
    from genaisdk.backend.jax import distributed

    runtime = distributed.setup(devices=args.devices)
    import genaisdk
    from genaisdk.backend.jax.config import RunConfig
    from genaisdk.backend.jax.sharding import make_mesh
    from genaisdk.backend.jax.step import Trainer

    from genaisdk.planning.run_settings import run_settings

    def config_for(spec):
        return RunConfig.from_settings(
            run_settings(genaisdk.plan(spec), spec, devices=runtime.global_devices, steps=args.steps + 1)
        )

    base = config_for(genaisdk.load(args.spec))
    per_device = base.global_batch // base.devices
    overrides = [f"train.micro_batch={per_device}"]
    spec = genaisdk.load(args.spec, overrides=overrides)
    config = config_for(spec)
    trainer = Trainer(config, make_mesh(distributed.training_devices(runtime)))

    print(
        f"model: {spec.project.name}, {config.architecture.name} {trainer.model.num_params() / 1e6:.2f}M params, "
        f"{config.precision.name}, {config.global_batch} x {config.seq_len} tokens per step "
        f"(accumulation {config.accumulation}), {runtime.global_devices} {runtime.platform} device(s)"
    )
    hand, sdk, wall = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for round_index in range(args.rounds):
            hand.append(hand_written_tokens_per_s(trainer, args.steps))
            start = time.perf_counter()
            result = genaisdk.train(
                args.spec,
                overrides=overrides,
                steps=args.steps + 1,
                out=Path(tmp) / f"round{round_index}",
                devices=args.devices,
                eval_batches=1,
                checkpoint_every=args.steps + 1,
                quiet=True,
            )
            wall.append(time.perf_counter() - start)
            sdk.append(result.tokens_per_s)
            print(
                f"round {round_index + 1}: hand-written {hand[-1]:,.0f} tok/s   SDK {sdk[-1]:,.0f} tok/s   "
                f"(SDK call {wall[-1]:.1f} s wall, compilation, evaluation and checkpoint included)"
            )
    hand_median, sdk_median = statistics.median(hand), statistics.median(sdk)
    ratio = sdk_median / hand_median
    print(f"hand-written jitted loop: {hand_median:,.0f} tok/s (median of {args.rounds} rounds of {args.steps} steps)")
    print(f"genaisdk.train loop:      {sdk_median:,.0f} tok/s")
    print(f"ratio SDK / hand-written: {ratio:.3f}  (goal >= {GOAL}: {'met' if ratio >= GOAL else 'NOT met'})")
    shutil.rmtree(cache, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
