"""Tensor parallelism: Megatron's split over the mesh's tensor-parallel group trains exactly as
DDP does, holds on each device the shares the rules give, and the per-device state the
planner's estimate (`genaisdk.estimate.parallel`) counts."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

jax = pytest.importorskip("jax")

from genaisdk.backend.jax.compile import compile_step  # noqa: E402
from genaisdk.backend.jax.config import BackendError  # noqa: E402
from genaisdk.backend.jax.measure import measure_config  # noqa: E402
from genaisdk.backend.jax.sharding import DATA_AXIS  # noqa: E402
from genaisdk.backend.jax.step import Trainer  # noqa: E402
from genaisdk.dims import Dimensions  # noqa: E402
from genaisdk.estimate.parallel import stage_memory  # noqa: E402

STEPS = 3
GQA = Dimensions(
    layers=2, d_model=32, heads=8, kv_heads=2, d_ff=64, vocab=384, context=32,
    positions="rotary", ffn="gated", norm="rmsnorm", biases=False, tied_embeddings=False,
)
"""8 query heads share 2 K/V heads: t = 2 splits the K/V heads, t = 4 copies each on 2 devices."""

LAYOUTS = (
    # strategy, tensor parallel, sequence parallel
    ("ddp", 2, False),
    ("ddp", 4, False),
    ("fsdp", 2, False),
    ("fsdp", 4, False),
    ("zero1", 4, True),
)
"""Every layout keeps 8 devices and the global batch: 8 / t data-parallel groups of t
sequences per micro-step, 2 micro-steps (the reference: 8 x 1 sequence, 2 micro-steps)."""


def _config(make_config, strategy="ddp", t=1, sp=False, family="decoder", dims=GQA):
    return make_config(family, strategy=strategy, dims=dims, tensor_parallel=t, sequence_parallel=sp, micro_batch=t)


def _train(trainer, params, rows_for, steps=STEPS, state=None):
    """Losses of `steps` steps from `params` (host arrays), on the same batches for every layout."""
    if state is None:
        state = trainer.init(params=jax.device_put(params, trainer.state_shardings.params))
    losses = []
    for i in range(steps):
        state, metrics = trainer.train_step(state, trainer.put_batch(trainer.make_batch(rows_for(trainer, i), i)))
        losses.append(float(metrics["loss"]))
    return np.asarray(losses), state


def _reference(make_config, rows_for, family="decoder", dims=GQA, steps=STEPS):
    """The DDP run a layout is compared with: its initial parameters (host) and its losses."""
    trainer = Trainer(_config(make_config, family=family, dims=dims))
    state = trainer.init()
    params = jax.device_get(state.params)
    losses, _ = _train(trainer, params, rows_for, steps=steps, state=state)
    return params, losses


def _shard(array) -> tuple[int, ...]:
    (shape,) = {tuple(s.data.shape) for s in array.addressable_shards}
    return shape


def check_shards_are_what_the_rules_say(state, strategy, t):
    """Per device: heads, d_ff and vocabulary split t ways (Megatron), the K/V heads g/t ways
    or, with fewer than t, one head each; FSDP splits the embedding over the 8 / t groups."""
    L, e, h, g, d, f, V = 2, GQA.d_model, GQA.heads, GQA.n_kv_heads, GQA.d_head, GQA.d_ff, GQA.vocab
    kv = max(g // t, 1)
    data = 8 // t if strategy == "fsdp" else 1
    layer = state.params["decoder"]["layers"]
    expected = {
        "q": (layer["attn"]["q"], (L, e // data, h // t, d)),  # column-parallel
        "k": (layer["attn"]["k"], (L, e // data, kv, d)),
        "wi_gate": (layer["mlp"]["wi_gate"], (L, e // data, f // t)),  # column-parallel
        "wo": (layer["mlp"]["wo"], (L, f // t, e // data)),  # row-parallel
        "embedding": (state.params["embed"]["token"], (V // t, e // data)),  # vocabulary-parallel
        "output": (state.params["output"]["kernel"], (e // data, V // t)),
        "norm": (layer["attn_norm"]["scale"], (L, e // data)),  # never split over 'tensor'
    }
    if strategy != "fsdp":
        expected["o"] = (layer["attn"]["o"], (L, h // t, d, e))  # row-parallel
    if strategy == "zero1":  # Adam's moments: split over the tensor-parallel group and the 8 / t groups
        mu = state.opt_state[0].mu["decoder"]["layers"]["attn"]["q"]
        expected["Adam mu of q"] = (mu, (L, e // (8 // t), h // t, d))
    for name, (array, shape) in expected.items():
        assert _shard(array) == shape, f"{strategy}, t={t}: {name} {array.shape} -> {_shard(array)}, not {shape}"


def check_measured_state_is_the_estimate(config, trainer, compiled):
    """XLA's per-device arguments (less the batch) are the fp32 weights split t ways plus
    Adam's two fp32 moments split t x d ways, as `estimate.parallel.stage_memory` counts them
    (the K/V projections: one head per device, copied on t / g devices)."""
    t, d = config.tensor_parallel, config.data_parallel
    result = measure_config(config, fit_flops=False, compiled=(trainer, compiled))
    assert result.config["tensor_parallel"] == t and result.config["sequence_parallel"] == config.sequence_parallel
    plan = stage_memory(
        GQA, family="decoder", seq=config.seq_len, global_batch=config.global_batch, micro_batch=config.micro_batch,
        tensor_parallel=t, data_parallel=d, zero_stage=1, recompute="none",
        weight_bytes=4.0, gradient_bytes=4.0, optimizer_bytes=8.0, master_bytes=0.0,
    )
    planned = float(plan.weights + plan.optimizer)
    assert planned <= result.xla["state"] < 1.005 * planned, (result.xla["state"], planned)  # + step, loss scale, rng
    # Weights whole on every device would be 4x: the estimate is not met by accident.
    assert result.xla["state"] < 0.3 * 12 * trainer.model.num_params()


def test_every_layout_trains_as_ddp_does_holds_its_share_and_the_estimated_state(make_config, rows_for):
    # One test, so that the reference run is compiled once (test workers do not share fixtures).
    params, ddp = _reference(make_config, rows_for)
    for strategy, t, sp in LAYOUTS:
        config = _config(make_config, strategy, t, sp)
        trainer = Trainer(config)
        assert not trainer.diagnostics  # 384 / 4 vocabulary rows, 2 K/V heads over gcd(2, t): all divide
        # ZeRO-1 runs the ahead-of-time compiled step that `genai measure` reads.
        compiled = compile_step(trainer) if strategy == "zero1" else None
        if compiled is not None:
            trainer.use_compiled(compiled.executable)
        losses, state = _train(trainer, params, rows_for)
        np.testing.assert_allclose(losses, ddp, rtol=0, atol=1e-5, err_msg=f"{strategy}, t={t}, sp={sp} vs ddp")
        check_shards_are_what_the_rules_say(state, strategy, t)
        if compiled is not None:
            check_measured_state_is_the_estimate(config, trainer, compiled)


@pytest.mark.parametrize(
    ("family", "strategy", "t", "sp"), [("encoder", "fsdp", 4, False), ("encoder-decoder", "zero2", 2, True)]
)
def test_encoders_and_encoder_decoders_split_by_the_same_rules(make_config, rows_for, tiny_dims, family, strategy, t, sp):
    """BERT-style (learned positions, LayerNorm with biases, MLM head) and T5-style (relative
    bias table split by heads, cross-attention over the encoder output) under t > 1."""
    dims = tiny_dims[family]
    params, ddp = _reference(make_config, rows_for, family=family, dims=dims, steps=2)
    trainer = Trainer(_config(make_config, strategy, t, sp, family=family, dims=dims))
    losses, state = _train(trainer, params, rows_for, steps=2)
    np.testing.assert_allclose(losses, ddp, rtol=0, atol=1e-5)
    stack = state.params["decoder" if family == "encoder-decoder" else "encoder"]
    assert _shard(stack["layers"]["attn"]["q"])[2] == dims.heads // t
    if family == "encoder-decoder":
        assert _shard(stack["layers"]["cross"]["k"])[2] == dims.n_kv_heads // t
        assert _shard(stack["relative_bias"]) == (dims.relative_buckets, dims.heads // t)


LORA_LAYOUTS = (("fsdp", 2, True),)
"""t = 2 with sequence parallelism, FSDP over the 4 data-parallel groups (one layout: each
costs two compiles; the split rules are those every layout above checks)."""


@pytest.mark.slow
def test_lora_adapters_split_as_their_kernels_and_train_as_ddp_does(make_config, rows_for):
    """LoRA under tensor parallelism: every adapter on the 7 projections takes its kernel's
    split (A its input dimensions, B its output dimensions; the rank never split), the
    losses equal the DDP run's within 1e-5 from the same base and adapters, and the frozen
    base comes back bit for bit."""
    from genaisdk.backend.jax.config import AdapterConfig
    from genaisdk.backend.jax.lora import iter_pairs

    adapter = AdapterConfig(method="lora", rank=4, alpha=8.0, targets=("q", "k", "v", "o", "gate", "up", "down"))

    def run(trainer, base, adapters):
        trainer.freeze(base)
        state = trainer.init()
        state = dataclasses.replace(state, params=jax.device_put(adapters, trainer.state_shardings.params))
        losses = []
        for i in range(2):
            batch = trainer.make_batch(rows_for(trainer, i), i)
            state, metrics = trainer.train_step(state, trainer.put_batch(batch))
            losses.append(float(metrics["loss"]))
        return np.asarray(losses), state

    one_micro_step = dict(global_batch=8, accumulation=1, adapter=adapter)  # the fewest programs to compile
    reference = Trainer(make_config("decoder", dims=GQA, **one_micro_step))
    # A random base drawn on the host (a checkpoint's weights would be given the same way).
    rng = np.random.default_rng(0)
    base = jax.tree.map(lambda s: (0.1 * rng.standard_normal(s.shape)).astype(np.float32), reference.abstract_frozen())
    reference.freeze(base)
    first = jax.device_get(reference.init().params)
    ddp, _ = run(reference, base, first)
    for strategy, t, sp in LORA_LAYOUTS:
        trainer = Trainer(_config(make_config, strategy, t, sp).evolve(**one_micro_step))
        losses, state = run(trainer, base, first)
        np.testing.assert_allclose(losses, ddp, rtol=0, atol=1e-5, err_msg=f"LoRA {strategy}, t={t}, sp={sp} vs ddp")
        frozen = jax.device_get(trainer.frozen)
        assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(frozen), jax.tree.leaves(base)))
        for path, pair in iter_pairs(state.params):
            kernel = trainer.frozen
            for key in path:
                kernel = kernel[key]
            a, b = _tensor_split(pair["lora_a"]), _tensor_split(pair["lora_b"])
            cut = len(a) - 1  # layers + the kernel's input axes
            assert a[-1] is None and b[1] is None, f"{strategy}, t={t}: {path}'s rank dimension is split"
            assert (a[:cut], b[2:]) == (_tensor_split(kernel)[:cut], _tensor_split(kernel)[cut:]), (
                f"{strategy}, t={t}: {path} A {a}, B {b}, kernel {_tensor_split(kernel)}"
            )
            assert any(a) or any(b), f"{strategy}, t={t}: {path}'s adapters are not split over 'tensor'"
        moments = state.opt_state[0].mu  # the optimizer's state takes the adapters' shardings
        for leaf, moment in zip(jax.tree.leaves(state.params), jax.tree.leaves(moments)):
            assert leaf.sharding.is_equivalent_to(moment.sharding, leaf.ndim)


def _tensor_split(array) -> list:
    """Per dimension, the tensor-parallel mesh axes that split it (data axes left out, which
    FSDP may add to an adapter and its kernel alike), or None."""
    spec = tuple(array.sharding.spec) + (None,) * (array.ndim - len(array.sharding.spec))
    out = []
    for entry in spec:
        names = (entry,) if isinstance(entry, str) else tuple(entry or ())
        kept = tuple(n for n in names if n != DATA_AXIS)
        out.append(kept or None)
    return out


def test_layouts_the_backend_refuses_say_why(make_config):
    dims = GQA.evolve(heads=6, kv_heads=2, d_model=24)
    with pytest.raises(BackendError, match=r"tensor parallel 4 must divide the model's query heads and d_ff \(heads = 6\)"):
        _config(make_config, "ddp", 4, dims=dims)
    with pytest.raises(BackendError, match="tensor parallel 3 does not divide the 8 devices"):
        _config(make_config, "ddp", 3)
    with pytest.raises(BackendError, match="shard_map.*tensor parallel 2 splits the layers"):
        make_config("decoder", dims=GQA, tensor_parallel=2, micro_batch=2, dp_impl="shard_map")
    with pytest.raises(BackendError, match="micro_batch × data-parallel groups × accumulation = 1 × 4 × 2 = 8"):
        make_config("decoder", dims=GQA, tensor_parallel=2, micro_batch=1)


CLI_SPEC = """genai 1

project "tiny-tensor" {
  model {
    family  = decoder
    layers  = 1
    d_model = 32
    heads   = 4
    kv_heads = 2
    d_ff    = 64
    vocab   = 384
    context = 32 tokens
  }
  data {
    source = "synthetic"
  }
  train {
    precision     = fp32
    sharding      = zero1
    batch         = 512 tokens
    steps         = 2
    learning_rate = 0.01
  }
}
"""


def test_genai_train_runs_a_tensor_parallel_layout_given_as_a_deviation(tmp_path, monkeypatch):
    """`--tensor-parallel` and `--sequence-parallel` reach the run from the command line, and the
    change of layout is printed and recorded like `--devices` (the global batch is kept)."""
    pytest.importorskip("orbax.checkpoint")
    import json

    from click.testing import CliRunner

    from genaisdk.cli import cli

    monkeypatch.setenv("GENAISDK_COMPILATION_CACHE", "0")
    spec = tmp_path / "tiny.genai"
    spec.write_text(CLI_SPEC)
    layout = ["--devices", "4", "--tensor-parallel", "2", "--sequence-parallel"]
    dry = CliRunner().invoke(cli, ["train", str(spec), *layout, "--dry-run", "--json"], catch_exceptions=False)
    assert dry.exit_code == 0, dry.output
    settings = json.loads(dry.output)
    assert settings["train"]["tensor_parallel"] == 2 and settings["train"]["sequence_parallel"] is True
    assert settings["train"]["global_batch_sequences"] == 16  # 512 tokens / 32: kept over 2 data-parallel groups
    assert settings["train"]["micro_batch"] * 2 * settings["train"]["grad_accumulation"] == 16
    deviations = {d["field"]: d for d in settings["deviations"]}
    assert deviations["tensor_parallel"] == {
        "field": "tensor_parallel", "plan": 1, "run": 2, "why": "--devices 4, --tensor-parallel 2"
    }
    assert deviations["sequence_parallel"]["why"] == "--sequence-parallel"
    text = CliRunner().invoke(cli, ["train", str(spec), *layout, "--dry-run"], catch_exceptions=False).output
    assert "tensor parallel 2 x data parallel 2, sequence parallel" in text
    assert "x 2 data-parallel groups x" in text

    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["train", str(spec), *layout, "--out", str(out), "--plain"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "completed: tiny-tensor, steps 0 -> 2 of 2" in result.output
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["tensor_parallel"] == 2 and run["config"]["sequence_parallel"] is True
    assert {d["field"] for d in run["deviations"]} >= {"devices", "tensor_parallel", "sequence_parallel"}

    bad = CliRunner().invoke(cli, ["train", str(spec), "--devices", "4", "--tensor-parallel", "3", "--dry-run"])
    assert bad.exit_code == 1 and "tensor parallel 3 does not divide the 4 devices" in bad.output
