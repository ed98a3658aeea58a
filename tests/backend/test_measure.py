"""`genai measure`: XLA's compiled memory and FLOPs of the planned step, against the plan."""

from __future__ import annotations

import json

import numpy as np
import pytest

jax = pytest.importorskip("jax")

import genaisdk  # noqa: E402
from genaisdk.backend.jax.measure import _cost_flops, fitted_flops, measure, measure_config  # noqa: E402
from genaisdk.backend.jax.step import Trainer  # noqa: E402

GPT3_XL = """genai 1
project "gpt3-xl-measure" {
  task = text-generation
  model {
    preset = "gpt3-1.3b"
  }
  data {
    tokens = 26B tokens
  }
  train {
    precision   = fp32
    optimizer   = adamw
    sharding    = zero1
    batch       = 16384 tokens
    micro_batch = 1
  }
  budget {
    hardware = 8 x a100-80gb
  }
}
"""


def test_fitted_flops_equal_a_fully_unrolled_compile(make_config):
    """XLA counts a loop body once; the fit over shallow unrolled compiles must give the
    count of the real step unrolled in full."""
    dims = make_config("decoder").dims.evolve(layers=3)
    config = make_config("decoder", strategy="fsdp", dims=dims, micro_batch=2, accumulation=1)
    trainer = Trainer(config)
    fitted, points = fitted_flops(config, trainer.mesh)
    assert [p["layers"] for p in points] == [1, 2]
    unrolled = _cost_flops(Trainer(config, unroll=True).lower().compile())
    assert fitted == pytest.approx(unrolled, rel=1e-3)  # exact but for a few fused elementwise ops
    # XLA counts every FLOP of the step; the model-FLOPs formula only the matmuls.
    assert 0.9 < fitted / (trainer.flops_per_step / config.devices) < 1.5


def test_the_fit_recovers_depth_and_micro_step_terms(make_config, monkeypatch):
    """With a known cost c + o·L + A·(a + b·L) standing in for XLA's, the fit over depths
    1-2 and micro-steps 2-3 gives the cost at 12 layers and 8 micro-steps."""
    from genaisdk.backend.jax import step

    def cost(trainer) -> float:
        layers, micro = trainer.config.dims.layers, trainer.config.accumulation
        assert trainer.unroll
        return 7.0 + 5.0 * layers + micro * (3.0 + 11.0 * layers)

    class Compiled:
        def __init__(self, trainer):
            self.trainer = trainer

        def cost_analysis(self):
            return {"flops": cost(self.trainer)}

    class FakeTrainer:
        def __init__(self, config, mesh, unroll=False):
            self.config, self.unroll = config, unroll

        def lower(self):
            return self

        def compile(self):
            return Compiled(self)

    monkeypatch.setattr(step, "Trainer", FakeTrainer)
    config = make_config("decoder", dims=make_config("decoder").dims.evolve(layers=12), accumulation=8, global_batch=64)
    fitted, points = fitted_flops(config, mesh=None)
    assert {(p["layers"], p["accumulation"]) for p in points} == {(1, 2), (1, 3), (2, 2), (2, 3)}
    assert fitted == pytest.approx(7.0 + 5.0 * 12 + 8 * (3.0 + 11.0 * 12))


def test_fsdp_state_bytes_are_an_eighth_of_weights_and_adam_moments(make_config):
    config = make_config("encoder", strategy="fsdp", accumulation=1, micro_batch=2)
    result = measure_config(config, fit_flops=False)
    params = Trainer(config).model.num_params()
    expected = 3 * 4 * params / 8  # fp32 weights and two fp32 moments, split 8 ways
    assert expected <= result.xla["state"] < 1.05 * expected
    assert result.xla["aliased"] == pytest.approx(result.xla["state"], rel=0.01)  # the state is donated
    assert "flops" not in result.xla


def test_a_one_billion_parameter_plan_against_xla_on_eight_devices():
    result = measure(genaisdk.loads(GPT3_XL), devices=8)
    assert result.config["strategy"] == "zero1" and result.devices == 8
    assert result.row("parameters").ratio == 1.0
    # weights replicated + Adam moments split 8 ways: what the plan counts, byte for byte
    assert result.row("state (weights + optimizer)").ratio == pytest.approx(1.0, abs=0.01)
    assert 0.9 < result.row("FLOPs per device per step").ratio < 1.15
    assert result.xla["flops_loop_bodies_once"] < 0.2 * result.xla["flops"]  # 24 scanned layers
    assert 0.5 < result.row("total per device").ratio < 2.0
    json.dumps(result.to_json())


def test_cli_prints_json(tmp_path):
    from click.testing import CliRunner

    from genaisdk.cli import cli

    spec = tmp_path / "tiny.genai"
    spec.write_text(
        GPT3_XL.replace(
            'preset = "gpt3-1.3b"',
            "layers = 2\n    d_model = 64\n    heads = 4\n    d_ff = 128\n    vocab = 384\n    context = 64 tokens",
        ).replace("16384", "512")
    )
    result = CliRunner().invoke(cli, ["measure", str(spec), "--devices", "8", "--json", "--no-flops"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["devices"] == 8 and data["config"]["seq_len"] == 64
    rows = {r["name"]: r for r in data["rows"]}
    assert rows["parameters"]["ratio"] == 1.0
    assert np.isfinite(data["xla"]["temporaries"]) and data["xla"]["temporaries"] > 0


def test_more_devices_than_this_process_has_are_measured_in_a_subprocess():
    spec = genaisdk.loads(
        GPT3_XL.replace(
            'preset = "gpt3-1.3b"',
            "layers = 2\n    d_model = 64\n    heads = 4\n    d_ff = 128\n    vocab = 384\n    context = 64 tokens",
        ).replace("16384", "1024")
    )
    assert len(jax.devices()) == 8
    result = measure(spec, devices=16, fit_flops=False)
    assert result.devices == 16 and result.config["devices"] == 16
    assert result.row("parameters").ratio == 1.0
    assert result.xla["temporaries"] > 0


def test_an_unsupported_precision_measured_in_a_subprocess_is_a_one_line_error():
    from genaisdk.backend.jax.config import UnsupportedError

    # The layout is pinned to what the backend runs (8 sequences a step on 16 devices: the
    # planner would split each replica over two), so the precision is what is refused.
    pinned = "precision   = fp8\n    tensor      = 1\n    pipeline    = 1"
    spec = genaisdk.loads(GPT3_XL.replace("precision   = fp32", pinned).replace("a100-80gb", "h100-sxm"))
    assert len(jax.devices()) == 8  # JAX is up with fewer devices than asked: a subprocess measures
    with pytest.raises(UnsupportedError, match="fp8") as info:
        measure(spec, devices=16, fit_flops=False)
    assert "Traceback" not in str(info.value)


def test_cli_reports_unsupported_precisions_without_a_traceback(tmp_path):
    from click.testing import CliRunner

    from genaisdk.cli import cli

    spec = tmp_path / "fp8.genai"
    spec.write_text(GPT3_XL.replace("precision   = fp32", "precision   = fp8").replace("a100-80gb", "h100-sxm"))
    result = CliRunner().invoke(cli, ["measure", str(spec), "--devices", "8", "--no-flops"])
    assert result.exit_code == 1
    assert "fp8" in result.output and "Traceback" not in result.output
