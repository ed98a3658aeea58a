"""`genai plan --sweep` varies only what the spec leaves `auto`, and the plan is one of its
rows with the plan's own numbers."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from genaisdk.cli import cli

from .conftest import ROOT


def _json(*args: str) -> dict:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.mark.parametrize(
    "name, held, varied",
    [
        # QLoRA of llama2-7b on one RTX 4090 in bf16 with full recomputation: only the
        # strategy and the micro-batch are the planner's to choose.
        ("chat-qlora", {"devices": 1, "precision": "bf16", "recompute": "full"}, ["strategy", "micro_batch"]),
        # 64 A100s, bf16, selective recomputation; the size is auto. An encoder-decoder: no
        # layout to vary (t = p = 1).
        ("legal", {"devices": 64, "precision": "bf16", "recompute": "selective", "tensor_parallel": 1, "pipeline_parallel": 1},
         ["size", "strategy", "micro_batch"]),
        # BLOOM: the spec fixes its published layout, strategy, micro-batch and recomputation: all held.
        ("bloom-176b", {"devices": 384, "tensor_parallel": 4, "pipeline_parallel": 12, "data_parallel": 8, "micro_batch": 2,
                        "strategy": "zero1", "recompute": "full"}, []),
        # LLaMA-65B fixes sequence parallelism and recomputation: the rest of the layout varies.
        ("llama-65b", {"devices": 2048, "sequence_parallel": True, "recompute": "selective"},
         ["strategy", "micro_batch", "tensor", "pipeline", "virtual_stages"]),
    ],
)
def test_the_sweep_holds_what_the_spec_fixes_and_contains_the_plan(name, held, varied):
    spec = str(ROOT / "specs" / f"{name}.genai")
    plan = _json("plan", spec, "--json")
    sweep = _json("plan", spec, "--sweep", "--json", "--top", "50")
    assert sweep["varied"] == varied
    rows = sweep["front"]
    for row in rows:
        for key, value in held.items():
            assert row[key] == value, (key, row)
        if "size" not in varied:
            assert row["params"] == plan["model"]["params"]
    (mine,) = [r for r in rows if r["is_plan"]]
    assert mine["params"] == plan["model"]["params"]
    assert (mine["layers"], mine["d_model"]) == (plan["model"]["layers"], plan["model"]["d_model"])
    for key in ("precision", "strategy", "devices", "micro_batch", "recompute", "tensor_parallel", "pipeline_parallel",
                "data_parallel", "sequence_parallel", "virtual_stages"):
        assert mine[key] == plan["train"][key], key
    assert mine["memory"] == plan["memory"]["per_device"]["total"]
    assert mine["fits"] == plan["memory"]["fits"]
    assert mine["loss"] == plan["scaling"]["predicted_loss"]
    assert mine["days"] == plan["time"]["days"] and mine["usd"] == plan["cost"]["usd"]
    assert mine["tokens"] == plan["data"]["tokens"]


def test_a_sweep_of_an_auto_size_tries_other_sizes_at_the_plans_tokens_rule():
    sweep = _json("plan", str(ROOT / "specs" / "legal.genai"), "--sweep", "--json", "--top", "50")
    sizes = {r["params"] for r in sweep["front"]}
    assert len(sizes) > 1


def test_the_plan_row_is_marked_in_the_table():
    result = CliRunner().invoke(cli, ["plan", str(ROOT / "specs" / "chat-qlora.genai"), "--sweep", "--markdown"])
    assert result.exit_code == 0
    rows = [line for line in result.output.splitlines() if line.startswith("| plan |")]
    assert len(rows) == 1 and "6.74B" in rows[0]
