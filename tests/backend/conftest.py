"""Backend tests run on 8 virtual CPU devices; without JAX the folder is skipped.

The device count must be set before JAX initializes its CPU backend, so it is set here, at
collection time, before any test module imports JAX.
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

DEVICES = 8
_FLAG = f"--xla_force_host_platform_device_count={DEVICES}"
_FAST_COMPILE = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
"""The test models are tiny: compiling them fast matters, optimizing the machine code does not
(LLVM's optimization of the random-number kernels alone takes seconds per compile)."""

if importlib.util.find_spec("jax") is None or importlib.util.find_spec("optax") is None:
    collect_ignore_glob = ["test_*.py"]
else:
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {_FLAG} {_FAST_COMPILE}".strip()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")


PERIOD = 17
"""Synthetic text repeats a 17-token cycle: easy to learn, so a loss must fall within a few steps."""


def synthetic_rows(rows: int, width: int, seed: int) -> np.ndarray:
    """[rows, width] byte-token ids: a repeating cycle, each row starting at a random phase."""
    rng = np.random.default_rng(seed)
    cycle = 3 + (np.arange(PERIOD) * 7) % 251
    starts = rng.integers(0, PERIOD, size=rows)
    index = (starts[:, None] + np.arange(width)[None, :]) % PERIOD
    return cycle[index].astype(np.int32)


@pytest.fixture(scope="session")
def rows_for():
    """`rows_for(trainer, seed)`: one step's synthetic packed rows for a trainer."""
    return lambda trainer, seed: synthetic_rows(trainer.config.global_batch, trainer.row_length, seed)


@pytest.fixture(scope="session")
def registry():
    from genaisdk.registry import get_registry

    return get_registry()


@pytest.fixture(scope="session")
def tiny_dims():
    """Small dimensions per family: 2 layers, d_model 32, 4 heads (2 kv heads for the decoder)."""
    from genaisdk.dims import Dimensions

    base = dict(layers=2, d_model=32, heads=4, d_ff=64, vocab=384, context=32)
    return {
        "decoder": Dimensions(**base, kv_heads=2, positions="rotary", ffn="gated", norm="rmsnorm", biases=False),
        "encoder": Dimensions(**base, positions="learned"),
        "encoder-decoder": Dimensions(**base, decoder_layers=1, positions="relative", norm="rmsnorm", biases=False),
    }


@pytest.fixture(scope="session")
def make_config(registry, tiny_dims):
    """RunConfig for a tiny model on the 8 devices: 16 sequences of 16 tokens per step in 2
    micro-steps of one sequence per device."""
    from genaisdk.backend.jax.config import RunConfig

    def make(family: str = "decoder", *, strategy: str = "ddp", dims=None, **fields):
        settings = dict(
            devices=DEVICES,
            global_batch=16,
            micro_batch=1,
            accumulation=2,
            seq_len=16,
            learning_rate=1e-2,
            warmup_steps=1,
            total_steps=40,
            weight_decay=0.0,
        )
        settings.update(fields)
        return RunConfig.from_names(
            dims=dims if dims is not None else tiny_dims[family],
            architecture=family,
            strategy=strategy,
            registry=registry,
            **settings,
        )

    return make


@pytest.fixture(scope="session")
def run_steps():
    """Train `steps` steps on the same synthetic batches for every caller; returns
    (losses, final state, metrics of every step)."""

    def run(trainer, steps: int, *, seed: int = 0, state=None):
        state = trainer.init() if state is None else state
        losses, history = [], []
        for step in range(steps):
            rows = synthetic_rows(trainer.config.global_batch, trainer.row_length, seed=1000 * seed + step)
            batch = trainer.make_batch(rows, np.random.default_rng(step))
            state, metrics = trainer.train_step(state, batch)
            metrics = {k: float(v) for k, v in metrics.items()}
            losses.append(metrics["loss"])
            history.append(metrics)
        return np.asarray(losses), state, history

    return run
