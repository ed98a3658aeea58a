"""`genai card`: a Hugging Face model card whose metadata parses, whose model-index holds the
evaluation's numbers, with every section, and no placeholder numbers."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from click.testing import CliRunner

from genaisdk.cli import cli
from genaisdk.render.card import SECTIONS, model_card, pipeline_tag, to_yaml

from .conftest import EVAL, RUN, SPECS, ROOT

LEGAL = ROOT / "specs" / "legal.genai"
TINY = ROOT / "specs" / "tiny-gpt.genai"


def split_card(text: str) -> tuple[dict, str]:
    assert text.startswith("---\n")
    head, body = text[4:].split("\n---\n", 1)
    return yaml.safe_load(head), body


def assert_no_placeholders(text: str) -> None:
    for marker in ("[More Information Needed]", "TODO", "TBD", "XX", "None"):
        assert marker not in text, marker
    assert not re.search(r"\b(nan|inf)\b", text)
    for line in text.splitlines():
        if "[To fill:" in line:  # a prompt asks for words, it never stands in for a figure
            assert not re.search(r"\[To fill:[^\]]*\d", line), line


@pytest.fixture(scope="module")
def legal_card():
    """legal.genai with a grid intensity, the evaluation, a license and a language, from the CLI."""
    result = CliRunner().invoke(
        cli,
        ["card", str(LEGAL), "--set", "budget.carbon_intensity=400 g/kWh", "--eval", str(EVAL),
         "--license", "apache-2.0", "--language", "en", "-o", "-"],
    )
    assert result.exit_code == 0, result.output
    return result.output


def test_the_metadata_parses_and_holds_what_the_hub_expects(legal_card, planned):
    meta, body = split_card(legal_card)
    _, plan = planned["legal.genai"]
    assert meta["license"] == "apache-2.0" and meta["language"] == ["en"]
    assert meta["pipeline_tag"] == "summarization"
    assert {"genaisdk", "summarization", "legal", "encoder-decoder", "span-corruption"} <= set(meta["tags"])
    co2 = meta["co2_eq_emissions"]
    assert co2["emissions"] == pytest.approx(plan.cost.energy_kwh * 400, rel=1e-6)  # grams
    assert co2["training_type"] == "pre-training" and co2["hardware_used"] == "64 x a100-80gb"
    assert co2["hours_used"] == pytest.approx(plan.time.gpu_hours, rel=1e-6)
    assert "400 g/kWh" in co2["source"]
    assert "227 kg CO2-eq" in body


def test_model_index_has_the_evaluation_numbers_given(legal_card):
    meta, _ = split_card(legal_card)
    given = json.loads(EVAL.read_text())
    (entry,) = meta["model-index"]
    assert entry["name"] == "legal-summarizer"
    overall = entry["results"][0]
    assert overall["task"]["type"] == "summarization" and overall["dataset"]["split"] == "held-out 5%"
    assert {m["type"]: m["value"] for m in overall["metrics"]} == {"loss": given["loss"], "perplexity": given["perplexity"]}
    per_source = entry["results"][1]
    assert per_source["dataset"]["name"].endswith("synthetic")
    assert {m["type"]: m["value"] for m in per_source["metrics"]} == {
        k: v for k, v in given["sources"]["synthetic"].items() if k != "tokens"
    }
    for result in entry["results"]:
        assert result["dataset"]["type"] and result["dataset"]["name"]
        assert all(isinstance(m["value"], float) for m in result["metrics"])


def test_every_section_is_there_and_nothing_is_a_placeholder(legal_card):
    _, body = split_card(legal_card)
    headings = re.findall(r"^## (.+)$", body, flags=re.M)
    assert headings == list(SECTIONS)
    for sub in ("### Training Data", "#### Preprocessing", "#### Training Hyperparameters", "### Results",
                "**Training regime:** bf16 mixed precision", "**Carbon Emitted:**"):
        assert sub in body
    assert_no_placeholders(legal_card)
    assert "[To fill:" in body  # the sections that need judgement ask for it


def test_the_hub_library_loads_the_card(legal_card, tmp_path):
    hub = pytest.importorskip("huggingface_hub")
    path = tmp_path / "README.md"
    path.write_text(legal_card, encoding="utf-8")
    card = hub.ModelCard.load(path)  # a local path: nothing is fetched
    results = card.data.eval_results
    given = json.loads(EVAL.read_text())
    assert card.data.model_name == "legal-summarizer"
    assert [(r.metric_type, r.metric_value) for r in results[:2]] == [("loss", given["loss"]), ("perplexity", given["perplexity"])]
    assert card.data.to_dict()["co2_eq_emissions"]["training_type"] == "pre-training"
    assert card.data.license == "apache-2.0" and card.data.pipeline_tag == "summarization"


def test_a_run_alone_gives_its_held_out_results(run, planned):
    spec, plan = planned["tiny-gpt.genai"]
    text = model_card(spec, plan, run=run)
    meta, body = split_card(text)
    metrics = {m["type"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}
    assert metrics == {"loss": run.eval_loss, "perplexity": run.perplexity}
    assert "co2_eq_emissions" not in meta and "license" not in meta
    assert "not stated: the spec gives no grid carbon intensity" in body
    assert "no rated power is known for cpu devices" in body
    assert "| learning rate | 0.003 |" in body and "| steps run | 60 |" in body
    assert "[To fill: the license, passed as --license]" in body
    assert_no_placeholders(text)
    assert text == model_card(spec, plan, run=run)  # the same inputs, the same bytes


def test_a_run_on_known_hardware_gives_its_own_emissions(tmp_path, planned):
    import shutil

    import attrs

    from genaisdk.render.inputs import read_run

    folder = tmp_path / "run"
    shutil.copytree(RUN, folder)
    result = json.loads((folder / "result.json").read_text())
    result["hardware"] = "a100-80gb"  # as if the same run had been on an A100
    (folder / "result.json").write_text(json.dumps(result))
    spec, plan = planned["tiny-gpt.genai"]
    budget = attrs.evolve(spec.project.budget, carbon_intensity=400.0)
    spec = attrs.evolve(spec, project=attrs.evolve(spec.project, budget=budget))
    meta, body = split_card(model_card(spec, plan, run=read_run(folder)))
    co2 = meta["co2_eq_emissions"]
    kwh = result["seconds"] * 400 / 3.6e6  # one device at the A100 record's 400 W
    assert co2["emissions"] == pytest.approx(kwh * 400, abs=1e-3)
    assert co2["hours_used"] == pytest.approx(result["seconds"] / 3600, abs=1e-3)
    assert "the run's energy (1 x a100-80gb at 400 W" in co2["source"]


@pytest.mark.parametrize("name", [p.name for p in SPECS])
def test_every_spec_gives_a_card(planned, name):
    spec, plan = planned[name]
    text = model_card(spec, plan)
    meta, body = split_card(text)
    assert meta["pipeline_tag"] == pipeline_tag(plan)
    assert "model-index" not in meta  # nothing evaluated, nothing claimed
    assert re.findall(r"^## (.+)$", body, flags=re.M) == list(SECTIONS)
    assert_no_placeholders(text)


def test_an_adaptation_names_its_base_model(planned):
    spec, plan = planned["chat-qlora.genai"]
    meta, body = split_card(model_card(spec, plan, base_model="meta-llama/Llama-2-7b-hf"))
    assert meta["base_model"] == "meta-llama/Llama-2-7b-hf" and "qlora" in meta["tags"]
    assert "**Finetuned from model:** meta-llama/Llama-2-7b-hf" in body
    _, without = split_card(model_card(spec, plan))
    assert "llama2-7b (genaisdk preset; [To fill: its Hub id, passed as --base-model])" in without


def test_the_python_api_takes_paths():
    import genaisdk

    text = genaisdk.card(str(TINY), run=RUN, evaluation=str(EVAL))
    meta, _ = split_card(text)
    assert meta["model-index"][0]["results"][0]["metrics"][0]["value"] == json.loads(EVAL.read_text())["loss"]


def test_yaml_writer_round_trips():
    data = {"a": "x: y", "b": [1, 2.5, True, None], "c": [{"d": "é", "e": {"f": []}}], "model-index": []}
    assert yaml.safe_load(to_yaml(data)) == data


def test_a_bad_language_code_is_a_usage_error():
    result = CliRunner().invoke(cli, ["card", str(TINY), "--language", "English", "-o", "-"])
    assert result.exit_code == 2 and "ISO 639-1" in result.output


def test_a_file_the_command_did_not_write_is_never_replaced(tmp_path):
    """`-o README.md` is the default: a project's own README is refused, a card written
    before is replaced, and --force replaces anything."""
    readme = tmp_path / "README.md"
    readme.write_text("# My project\n\nHand-written.\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["card", str(TINY), "-o", str(readme)])
    assert result.exit_code == 1
    assert "already exists and is not a model card this command wrote" in result.output and "--force" in result.output
    assert readme.read_text(encoding="utf-8") == "# My project\n\nHand-written.\n"
    forced = CliRunner().invoke(cli, ["card", str(TINY), "-o", str(readme), "--force"])
    assert forced.exit_code == 0, forced.output
    card = readme.read_text(encoding="utf-8")
    assert card.startswith("---")
    again = CliRunner().invoke(cli, ["card", str(TINY), "-o", str(readme), "--language", "en"])
    assert again.exit_code == 0, again.output
    assert readme.read_text(encoding="utf-8") != card  # its own card is replaced without --force
