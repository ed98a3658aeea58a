"""The JSON contract of DESIGN.md: every key present, with its documented meaning and units."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from genaisdk.plans import CONTRACT_KEYS, DIAGNOSTIC_KEYS, lookup

ROOT = Path(__file__).resolve().parents[2]
PF_DAY = 8.64e19


@pytest.fixture(scope="module")
def legal():
    import genaisdk

    plan = genaisdk.plan(str(ROOT / "specs" / "legal.genai"))
    return plan, plan.to_json()


def flat_keys(data, prefix=""):
    """Dotted keys of the JSON form; list items as `key[]`; free-form maps not descended."""
    for key, value in data.items():
        path = prefix + key
        if isinstance(value, dict) and key not in ("params_breakdown", "mix", "overheads"):
            yield from flat_keys(value, path + ".")
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            yield path + "[]"
            yield from flat_keys(value[0], path + "[].")
        else:
            yield path


def test_every_contract_key_is_present(legal):
    _, data = legal
    for key in CONTRACT_KEYS:
        lookup(data, key)  # raises KeyError naming the key


def test_design_md_contract_is_the_one_checked():
    """CONTRACT_KEYS lists exactly the keys of DESIGN.md's contract block (kept in sync by hand)."""
    expected = {
        "project.name", "project.task",
        "model.family", "model.objective", "model.params", "model.layers", "model.d_model", "model.heads", "model.vocab", "model.context",
        "data.tokens",
        "compute.flops", "compute.model_flops", "compute.hardware_flops", "compute.flops_per_token", "compute.pf_days",
        "scaling.optimal_params", "scaling.optimal_tokens", "scaling.tokens_per_param", "scaling.predicted_loss",
        "train.precision", "train.optimizer", "train.strategy", "train.devices", "train.hardware", "train.micro_batch",
        "train.recompute", "train.mfu",
        "memory.per_device.weights", "memory.per_device.gradients", "memory.per_device.optimizer",
        "memory.per_device.activations", "memory.per_device.total", "memory.device_capacity", "memory.fits",
        "time.seconds", "time.days", "time.gpu_hours", "cost.usd",
        "inference.memory.weights", "inference.memory.kv_cache", "inference.memory.total",
        "diagnostics",
    }
    assert set(CONTRACT_KEYS) == expected


def test_types_and_units(legal):
    _, d = legal
    for key in ("model.params", "model.layers", "model.d_model", "model.heads", "model.vocab", "model.context", "data.tokens",
                "train.devices", "train.micro_batch", "scaling.optimal_params", "scaling.optimal_tokens"):
        assert isinstance(lookup(d, key), int), key
    for key in ("memory.per_device.weights", "memory.per_device.gradients", "memory.per_device.optimizer",
                "memory.per_device.activations", "memory.per_device.total", "memory.device_capacity",
                "inference.memory.weights", "inference.memory.kv_cache", "inference.memory.total"):
        value = lookup(d, key)
        assert isinstance(value, int) and not isinstance(value, bool), f"{key} must be integer bytes"
    for key in ("compute.flops", "compute.model_flops", "compute.hardware_flops", "compute.flops_per_token", "compute.pf_days",
                "scaling.tokens_per_param", "scaling.predicted_loss", "train.mfu", "time.seconds", "time.days", "time.gpu_hours", "cost.usd"):
        assert isinstance(lookup(d, key), float), key
    for key in ("project.name", "project.task", "model.family", "model.objective", "train.precision", "train.optimizer",
                "train.strategy", "train.hardware", "train.recompute"):
        assert isinstance(lookup(d, key), str), key
    assert isinstance(d["memory"]["fits"], bool)
    assert isinstance(d["diagnostics"], list)
    assert 0 < d["train"]["mfu"] <= 1


def test_meanings(legal):
    """Each contract number means what DESIGN.md says it means."""
    plan, d = legal
    m, c, t = d["model"], d["compute"], d["train"]
    tokens = d["data"]["tokens"]
    n = plan.model.active_params
    assert c["flops"] == pytest.approx(6 * n * tokens, rel=1e-9)
    assert c["pf_days"] == pytest.approx(c["flops"] / PF_DAY, rel=1e-9)
    assert c["flops_per_token"] == pytest.approx(c["model_flops"] / tokens, rel=1e-9)
    assert c["hardware_flops"] >= c["model_flops"]
    peak = plan.assumptions[[a.name for a in plan.assumptions].index("peak_flops")].value
    assert d["time"]["seconds"] == pytest.approx(c["model_flops"] / (t["devices"] * peak * t["mfu"]), rel=1e-9)
    assert d["time"]["days"] == pytest.approx(d["time"]["seconds"] / 86400, rel=1e-9)
    assert d["time"]["gpu_hours"] == pytest.approx(d["time"]["seconds"] * t["devices"] / 3600, rel=1e-9)
    assert d["cost"]["usd"] == pytest.approx(d["time"]["gpu_hours"] * d["cost"]["price_per_hour"], rel=1e-9)
    s = d["scaling"]
    assert 6 * s["optimal_params"] * s["optimal_tokens"] == pytest.approx(c["flops"], rel=1e-6)
    assert s["optimal_tokens"] == pytest.approx(20 * s["optimal_params"], rel=1e-6)
    assert s["tokens_per_param"] == pytest.approx(tokens / n, rel=1e-9)
    # Chinchilla approach 3: E + A/N^a + B/D^b with the published constants.
    assert s["predicted_loss"] == pytest.approx(1.69 + 406.4 / n**0.34 + 410.7 / tokens**0.28, rel=1e-9)
    mem = d["memory"]
    assert mem["fits"] == (mem["per_device"]["total"] <= mem["device_capacity"])
    assert mem["per_device"]["total"] >= mem["per_device"]["weights"] + mem["per_device"]["gradients"] + mem["per_device"]["optimizer"]
    i = d["inference"]["memory"]
    assert i["total"] == pytest.approx(i["weights"] + i["kv_cache"] + i["workspace"] + i["runtime"], abs=4)
    assert m["params"] == sum(m["params_breakdown"].values())


def test_diagnostic_entries(legal):
    _, d = legal
    assert d["diagnostics"], "the legal spec gets at least one diagnostic"
    for entry in d["diagnostics"]:
        for key in DIAGNOSTIC_KEYS:
            assert key in entry
        assert entry["severity"] in ("error", "warning", "info")
        assert isinstance(entry["line"], int) and entry["line"] >= 1


def test_doc_lists_every_key(legal):
    """docs/plan-json.md names every key the JSON form has, and every planner code."""
    _, d = legal
    doc = (ROOT / "docs" / "plan-json.md").read_text()
    documented = set(re.findall(r"^\| `([a-z_\[\]\.]+)` \|", doc, flags=re.M))
    missing = [k for k in flat_keys(d) if k not in documented and k.removesuffix("[]") not in documented]
    assert not missing, f"undocumented keys: {missing}"
    for key in CONTRACT_KEYS:
        row = next(line for line in doc.splitlines() if line.startswith(f"| `{key}` |"))
        assert "**contract**" in row, key
    from genaisdk.planning.codes import CODES

    for code in CODES:
        assert f"| {code} |" in doc, code


def test_cli_json_is_the_contract(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "genaisdk", "plan", str(ROOT / "specs" / "legal.genai"), "--json"],
        capture_output=True, text=True, cwd=ROOT, check=True,
    )
    data = json.loads(out.stdout)
    for key in CONTRACT_KEYS:
        lookup(data, key)
    import genaisdk

    assert data == genaisdk.plan(str(ROOT / "specs" / "legal.genai")).to_json() | {"spec_file": data["spec_file"]}
