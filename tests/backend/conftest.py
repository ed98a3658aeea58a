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


@pytest.fixture(scope="session", autouse=True)
def _jax_started_with_every_device():
    """JAX's CPU backend starts with all DEVICES devices before the first test: a run that
    asks for fewer (`--devices 2`) sets the CPU device count if it is the first to start
    JAX, and every later test in the process would then see only those."""
    if importlib.util.find_spec("jax") is not None:
        import jax

        jax.devices()
    yield


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


# ----------------------------------------------------------------------------- a trained model

_SUBJECTS = ("the licensee", "the author", "a contributor", "the recipient", "this licence", "the program")
_VERBS = ("grants", "may copy", "must keep", "shall not remove", "may distribute", "agrees to")
_OBJECTS = ("the source code", "every notice", "the copyright", "a copy of the work", "the warranty", "these terms")
_ENDINGS = ("without fee.", "in any medium.", "as stated above.", "under the same terms.", "at no charge.")


def licence_text(documents: int, seed: int) -> list[str]:
    """Short documents of licence-like sentences from a fixed grammar: a learnable text."""
    rng = np.random.default_rng(seed)
    pick = lambda words: words[rng.integers(len(words))]  # noqa: E731
    return [
        " ".join(f"{pick(_SUBJECTS).capitalize()} {pick(_VERBS)} {pick(_OBJECTS)} {pick(_ENDINGS)}" for _ in range(3))
        for _ in range(documents)
    ]


TRAINED_SPEC = """genai 1

project "tiny-serve" {{
  task = text-generation
  model {{
    family    = decoder
    layers    = 2
    d_model   = 32
    heads     = 4
    kv_heads  = 2
    d_ff      = 64
    vocab     = 384
    context   = 64 tokens
    positions = rotary
  }}
  data {{
    source   = "{source}"
    held_out = 10%
  }}
  train {{
    precision     = fp32
    sharding      = ddp
    batch         = 512 tokens
    steps         = 60
    learning_rate = 0.01
    warmup        = 5
    seed          = 0
  }}
}}
"""


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A tiny decoder trained for a few seconds on licence-like text, on one device:
    `out_dir` (the run directory), `eval_loss` (the training loop's final held-out loss)
    and `corpus`. Shared by the generation, evaluation and quantization tests, and trained
    once per test session: parallel workers wait for the first one's run."""
    import json
    import os
    import time
    from types import SimpleNamespace

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the folder every worker of this session shares
    folder = root / "trained-tiny-serve"
    ready, failed = folder / "ready.json", folder / "failed"
    try:
        os.close(os.open(root / "trained-tiny-serve.lock", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        owner = True
    except FileExistsError:
        owner = False
    if owner:
        try:
            ready.write_text(json.dumps(_train_tiny(folder)))
        except BaseException:
            folder.mkdir(parents=True, exist_ok=True)
            failed.touch()
            raise
    else:
        deadline = time.monotonic() + 900
        while not ready.exists():
            if failed.exists() or time.monotonic() > deadline:
                pytest.fail("the shared tiny training run failed in another worker")
            time.sleep(0.2)
    info = json.loads(ready.read_text())
    return SimpleNamespace(out_dir=folder / "run", eval_loss=info["eval_loss"], corpus=folder / "corpus.txt")


def _train_tiny(folder) -> dict:
    import os

    import jax

    from genaisdk.training import train

    # Start JAX with the suite's 8 devices before `train(devices=1)` could start it with one
    # (the device count is read once, when the CPU backend starts).
    assert jax.device_count() == DEVICES

    folder.mkdir(parents=True, exist_ok=True)
    corpus = folder / "corpus.txt"
    corpus.write_text("\n\n".join(licence_text(120, seed=0)), encoding="utf-8")
    spec = folder / "tiny-serve.genai"
    spec.write_text(TRAINED_SPEC.format(source=corpus.name))
    previous = os.environ.get("GENAISDK_COMPILATION_CACHE")
    os.environ["GENAISDK_COMPILATION_CACHE"] = "0"
    try:
        result = train(spec, out=folder / "run", devices=1, checkpoint_every=60, quiet=True)
    finally:
        if previous is None:
            os.environ.pop("GENAISDK_COMPILATION_CACHE", None)
        else:
            os.environ["GENAISDK_COMPILATION_CACHE"] = previous
    assert result.ok
    return {"eval_loss": result.eval_loss}


@pytest.fixture(scope="session")
def trained_model(trained_run):
    """The trained run loaded back (`genaisdk.backend.jax.runs.load`)."""
    from genaisdk.backend.jax.runs import load

    return load(trained_run.out_dir)


@pytest.fixture(scope="session")
def licence():
    """`licence(documents, seed)`: documents of the text the trained model learned."""
    return licence_text
