"""One plan, one run: `genai train --dry-run` is the plan's configuration field by field,
and a run differs from it only where a named option asks (and then says so)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

import genaisdk
from genaisdk.cli import cli
from genaisdk.planning.run_settings import run_settings

from .conftest import ROOT, SPECS

MODEL_KEYS = ("family", "architecture", "objective", "params", "preset", "context", "dimensions")
TRAIN_KEYS = (
    "precision", "optimizer", "strategy", "devices", "hardware", "micro_batch", "recompute", "attention",
    "adaptation", "global_batch_tokens", "global_batch_sequences", "grad_accumulation", "steps",
    "tensor_parallel", "pipeline_parallel", "data_parallel", "sequence_parallel", "virtual_stages",
)


def _cli(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_the_dry_run_is_the_plan_field_by_field(path):
    plan = json.loads(_cli("plan", str(path), "--json").output)
    result = _cli("train", str(path), "--dry-run", "--json")
    run = json.loads(result.stdout)
    # The only deviation a spec alone makes: a train.steps that overrides its data.tokens,
    # where the run trains the plan's tokens, not the spec's.
    assert [d["field"] for d in run["deviations"]] in ([], ["tokens"])
    for deviation in run["deviations"]:
        assert deviation["run"] == plan["data"]["tokens"] and deviation["why"].startswith("train.steps = ")
        assert deviation["plan"] == genaisdk.load(path).project.data.tokens != deviation["run"]
    for key in MODEL_KEYS:
        assert run["model"][key] == plan["model"][key], key
    for key in TRAIN_KEYS:
        assert run["train"][key] == plan["train"][key], key
    assert run["adapt"] == plan["adapt"]
    # The batch multiplies out, and only the backend's limit (model parallelism: LoRA and
    # QLoRA plans run as planned) is a problem.
    t = run["train"]
    assert t["global_batch_sequences"] == t["micro_batch"] * t["data_parallel"] * t["grad_accumulation"]
    assert t["devices"] == t["tensor_parallel"] * t["pipeline_parallel"] * t["data_parallel"]
    assert result.exit_code == (1 if run["problems"] else 0)
    assert all("parallelism" in p for p in run["problems"])
    assert run["problems"] == [] or t["tensor_parallel"] * t["pipeline_parallel"] > 1


def test_named_options_are_the_only_deviations_and_are_listed():
    spec = str(ROOT / "specs" / "legal.genai")
    plan = json.loads(_cli("plan", spec, "--json").output)
    run = json.loads(_cli("train", spec, "--dry-run", "--json", "--devices", "2", "--steps", "5", "--precision", "fp32").stdout)
    deviations = {d["field"]: d for d in run["deviations"]}
    assert deviations["devices"] == {"field": "devices", "plan": 64, "run": 2, "why": "--devices 2"}
    assert deviations["steps"]["plan"] == plan["train"]["steps"] and deviations["steps"]["run"] == 5
    assert deviations["precision"] == {"field": "precision", "plan": "bf16", "run": "fp32", "why": "--precision fp32"}
    # The global batch is kept over fewer devices: more accumulation, micro-batch at most the plan's.
    t = run["train"]
    assert t["global_batch_sequences"] == plan["train"]["global_batch_sequences"] == 512
    assert t["micro_batch"] == plan["train"]["micro_batch"] and t["grad_accumulation"] == 512 // (2 * t["micro_batch"])
    assert "grad_accumulation" in deviations
    # Everything else is the plan's.
    for key in ("strategy", "recompute", "attention", "optimizer", "hardware"):
        assert t[key] == plan["train"][key]
    text = _cli("train", spec, "--dry-run", "--devices", "2").output
    assert "deviations from the plan:" in text and "devices" in text and "--devices 2" in text


def test_the_dry_run_needs_no_jax_and_is_fast():
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "genaisdk", "train", str(ROOT / "specs" / "gpt3-175b.genai"), "--dry-run", "--json"],
        capture_output=True, text=True, cwd=ROOT,
    )
    elapsed = time.perf_counter() - start
    names = {line.rsplit("|", 1)[1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")}
    assert not {n for n in names if n.split(".")[0] in ("jax", "jaxlib", "optax", "orbax")}
    run = json.loads(out.stdout)
    assert run["train"]["pipeline_parallel"] > 1 and run["train"]["tensor_parallel"] > 1
    # A pipeline the JAX backend cannot run yet: said before JAX starts, with the option
    # that plans it without, and exit status 1.
    assert out.returncode == 1, out.stderr[-2000:]
    assert len(run["problems"]) == 1 and "cannot run pipeline parallelism" in run["problems"][0]
    assert "--set train.pipeline=1" in out.stderr
    assert elapsed < 5.0  # a whole fresh process under -X importtime, on a loaded 2-core machine


def test_a_plan_without_a_pipeline_passes_its_tensor_layout_to_the_run():
    spec = str(ROOT / "specs" / "gpt3-175b.genai")
    result = _cli("train", spec, "--dry-run", "--json", "--set", "train.pipeline=1", "--set", "train.tensor=8")
    run = json.loads(result.stdout)
    assert run["train"]["pipeline_parallel"] == 1 and run["train"]["tensor_parallel"] == 8
    assert run["train"]["data_parallel"] * 8 == run["train"]["devices"]
    # The backend runs tensor parallelism: the plan's t is the run's, with nothing to refuse.
    assert run["deviations"] == [] and run["problems"] == [] and result.exit_code == 0


@pytest.mark.parametrize(
    "model",
    ["preset = bert-base\n    context = 128 tokens", "context = 128 tokens"],
    ids=["model.preset", "adapt.base"],
)
def test_bert_base_has_one_parameter_count_in_plan_and_run(model):
    text = (ROOT / "specs" / "bert-sentiment.genai").read_text()
    text = text.replace("preset  = bert-base\n    context = 128 tokens", model)
    if "adapt.base" not in model and "preset" not in model:
        text = text.replace("method = finetune", "method = finetune\n    base   = bert-base")
    spec = genaisdk.loads(text)
    plan = genaisdk.plan(spec)
    settings = run_settings(plan, spec)
    assert plan.model.params == settings.model.params == 110_104_890
    dims = settings.model.dims
    assert (dims.position_table, dims.token_types, dims.pooler, dims.final_norm) == (512, 2, True, False)


def test_a_plan_that_trains_nothing_has_no_run_and_that_is_not_a_failure():
    """Prompting is a valid plan: the dry run says nothing is trained and how the model is
    used instead (genai generate, genai eval), exit status 0, as --adapt prompt does."""
    spec = str(ROOT / "specs" / "bert-sentiment.genai")
    result = _cli("train", spec, "--dry-run", "--set", "adapt.method=prompt")
    assert result.exit_code == 0 and "nothing is trained" in result.output
    assert "genai generate" in result.output and "genai eval" in result.output and "error" not in result.output
    printed = json.loads(_cli("train", spec, "--dry-run", "--json", "--adapt", "prompt").stdout)
    assert printed["trains"] is False and printed["adaptation"] == "finetune" and "nothing is trained" in printed["message"]


def test_a_plan_that_does_not_fit_is_not_a_run(tmp_path):
    spec = tmp_path / "huge.genai"
    spec.write_text(
        'genai 1\nproject "huge" {\n  task = text-generation\n  model {\n    size = 500B\n  }\n  data {\n    tokens = 1T tokens\n  }\n'
        "  budget {\n    hardware = 1 x rtx-4090\n  }\n}\n"
    )
    result = CliRunner().invoke(cli, ["train", str(spec), "--dry-run", "--json"])
    assert result.exit_code == 1
    assert any(p.startswith("GP202") for p in json.loads(result.stdout)["problems"])


def test_other_devices_keep_the_plans_tensor_x_pipeline_or_are_refused():
    spec = str(ROOT / "specs" / "llama-65b.genai")
    plan = json.loads(_cli("plan", spec, "--json").output)["train"]
    split = plan["tensor_parallel"] * plan["pipeline_parallel"]
    assert split > 1
    run = json.loads(_cli("train", spec, "--dry-run", "--json", "--devices", str(split * 4)).stdout)
    deviations = {d["field"]: d for d in run["deviations"]}
    assert deviations["data_parallel"]["run"] == 4 and run["train"]["tensor_parallel"] == plan["tensor_parallel"]
    assert run["train"]["global_batch_sequences"] == run["train"]["micro_batch"] * 4 * run["train"]["grad_accumulation"]
    refused = _cli("train", spec, "--dry-run", "--devices", str(split + 1))
    assert refused.exit_code == 1
    assert f"tensor x pipeline = {plan['tensor_parallel']} x {plan['pipeline_parallel']}" in refused.output
