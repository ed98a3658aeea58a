"""Invariants of every built-in catalog, and the figures they must carry."""

from __future__ import annotations

import json
import math
from datetime import date
from pathlib import Path

import pytest

from genaisdk.builtins import BUILTIN_PLUGINS
from genaisdk.builtins.objectives import span_corruption_target_fraction
from genaisdk.builtins.optimizers import adafactor_state_bytes
from genaisdk.builtins.strategies import BATCH_RULES, SHARDED_STATE_RULES, TENSOR_RULES
from genaisdk.records import DTYPE_BYTES, DTYPES, FAMILIES, RECORD_KINDS
from genaisdk.registry.checks import non_finite
from genaisdk.testing import registry_with

PUBLISHED = json.loads((Path(__file__).parent / "published_hardware.json").read_text())

EXPECTED_NAMES = {
    "objectives": {"masked-lm", "causal-lm", "span-corruption"},
    "precisions": {"fp32", "tf32", "fp16", "bf16", "bf16-pure", "fp8", "int8", "int4"},
    "optimizers": {"adamw", "adam", "sgd", "sgd-momentum", "adafactor", "lion", "adam-8bit"},
    "strategies": {"ddp", "zero1", "zero2", "fsdp", "zero1-offload", "zero2-offload", "fsdp-offload"},
    "adaptations": {"prompt", "finetune", "lora", "qlora", "pretrain", "rlhf", "dpo"},
    "hardware": set(PUBLISHED["devices"]),
}


@pytest.fixture(scope="module")
def catalogs():
    with registry_with(install=False) as registry:
        return {kind: registry.catalog(kind) for kind in RECORD_KINDS}


@pytest.mark.parametrize("kind", sorted(EXPECTED_NAMES))
def test_the_documented_names_are_there(catalogs, kind: str) -> None:
    assert EXPECTED_NAMES[kind] <= set(catalogs[kind])


@pytest.mark.parametrize("kind", sorted(RECORD_KINDS))
def test_every_builtin_record_says_where_it_comes_from(catalogs, kind: str) -> None:
    for record in catalogs[kind].values():
        assert record.source.strip(), record.name
        assert record.description.strip() or kind == "presets", record.name
        assert record.provider in BUILTIN_PLUGINS or not record.provider.startswith("genaisdk.")


@pytest.mark.parametrize("kind", sorted(RECORD_KINDS))
def test_every_builtin_figure_is_finite(catalogs, kind: str) -> None:
    # The registry skips this walk for the built-ins (their load is on every command's path);
    # this test holds them to the rule every plugin's records meet at the registry's door.
    for record in catalogs[kind].values():
        assert non_finite(record) is None, (record.name, non_finite(record))


# -- precisions ---------------------------------------------------------------------------


def test_precision_bytes_match_their_dtypes(catalogs) -> None:
    for p in catalogs["precisions"].values():
        assert p.weight_bytes == DTYPE_BYTES[p.param_dtype], p.name
        # activations are stored at the compute dtype, but never below 16 bits (8-bit formats
        # only feed matrix products; norms, softmax and residuals stay in 16 bits)
        assert p.activation_bytes == max(DTYPE_BYTES[p.compute_dtype], 2), p.name
        if p.trainable:
            assert 0 < p.gradient_bytes <= 4, p.name
            assert p.master_bytes in (0, 4), p.name
            # a master copy only makes sense over lower-precision working weights
            assert p.master_bytes == 0 or p.weight_bytes < 4, p.name
        else:
            assert p.gradient_bytes == 0 and p.master_bytes == 0, p.name


def test_the_precisions_the_memory_math_relies_on(catalogs) -> None:
    p = catalogs["precisions"]
    # ZeRO's mixed-precision accounting: 2 + 2 bytes of weights and gradients, 4 of master
    for name in ("bf16", "fp16"):
        assert (p[name].weight_bytes, p[name].gradient_bytes, p[name].master_bytes) == (2, 2, 4)
    assert p["fp16"].loss_scaling and not p["bf16"].loss_scaling
    assert [name for name, rec in p.items() if rec.loss_scaling] == ["fp16"]
    assert p["bf16-pure"].master_bytes == 0 and p["bf16-pure"].param_dtype == "bf16"
    assert (p["fp32"].weight_bytes, p["fp32"].gradient_bytes, p["fp32"].master_bytes) == (4, 4, 0)
    assert p["tf32"].compute_dtype == "tf32" and p["tf32"].weight_bytes == 4
    assert p["int8"].weight_bytes == 1 and not p["int8"].trainable
    assert p["int4"].weight_bytes == 0.5 and not p["int4"].trainable
    assert p["fp8"].compute_dtype == "fp8" and p["fp8"].trainable


# -- optimizers ---------------------------------------------------------------------------


def test_optimizer_state_bytes(catalogs) -> None:
    state = {name: o.state_bytes for name, o in catalogs["optimizers"].items()}
    assert {k: state[k] for k in ("adamw", "adam", "sgd", "sgd-momentum", "lion", "adam-8bit")} == {
        "adamw": 8,
        "adam": 8,
        "sgd": 0,
        "sgd-momentum": 4,
        "lion": 4,
        "adam-8bit": 2,
    }
    # factored second moment: far below one fp32 value per parameter
    assert 0 < state["adafactor"] < 0.05


def test_adafactor_bound_is_the_factored_accounting() -> None:
    # a 512 x 512 matrix: 1024 fp32 accumulators for 262,144 parameters
    assert adafactor_state_bytes(min_side=512, vector_share=0) == pytest.approx(4 * 1024 / 512**2)
    assert adafactor_state_bytes(min_side=4096, vector_share=0.01) == pytest.approx(8 / 4096 + 0.04)


def test_optimizers_name_their_optax_factory(catalogs) -> None:
    for key, o in catalogs["optimizers"].items():
        assert o.optax_factory == "genaisdk.backend.jax.optimizers:" + key.replace("-", "_")
        assert o.state_note


# -- strategies ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, sharded",
    [
        ("ddp", set()),
        ("zero1", {"opt_state"}),
        ("zero2", {"opt_state", "grads"}),
        ("fsdp", {"opt_state", "grads", "params"}),
        ("zero1-offload", {"opt_state"}),
        ("zero2-offload", {"opt_state", "grads"}),
        ("fsdp-offload", {"opt_state", "grads", "params"}),
    ],
)
def test_strategy_rule_tables(catalogs, name: str, sharded: set[str]) -> None:
    s = catalogs["strategies"][name]
    assert s.partition_rules["batch"] == BATCH_RULES == (("batch", "data"),)
    # Every kind of state is split over the tensor-parallel group first; the sharded ones
    # over the data axis too.
    assert set(s.partition_rules) == {"batch", "params", "grads", "opt_state"}
    for state in ("params", "grads", "opt_state"):
        assert s.partition_rules[state] == TENSOR_RULES + (SHARDED_STATE_RULES if state in sharded else ())
    assert (s.shards_optimizer, s.shards_gradients, s.shards_weights) == (
        "opt_state" in sharded,
        "grads" in sharded,
        "params" in sharded,
    )
    assert s.communication == (3.0 if "params" in sharded else 2.0)
    assert s.offload_optimizer == name.endswith("-offload")
    assert s.offload_weights == (name == "fsdp-offload")


def test_sharded_rules_never_split_layers_or_batch_of_state() -> None:
    logical = [axis for axis, _ in SHARDED_STATE_RULES]
    assert "layers" not in logical and "batch" not in logical
    assert logical == ["embed", "mlp", "vocab", "heads", "kv", "experts"]


def test_tensor_rules_split_what_megatron_splits_and_nothing_else() -> None:
    """Heads, d_ff and the vocabulary over the tensor-parallel group; K/V heads over its
    'tensor' axis only (copied over 'kv_replicas'); never the embedding, layers or batch."""
    rules = dict(TENSOR_RULES)
    assert rules == {
        "q_heads": ("tensor", "kv_replicas"),
        "kv_heads": "tensor",
        "mlp": ("tensor", "kv_replicas"),
        "vocab": ("tensor", "kv_replicas"),
    }


# -- hardware -----------------------------------------------------------------------------


def test_hardware_sizes_are_positive_and_binary(catalogs) -> None:
    for h in catalogs["hardware"].values():
        assert h.memory_bytes > 0 and h.memory_bytes % 2**30 == 0, h.name
        assert h.bandwidth_bytes_per_s > 0, h.name
        assert h.power_watts is None or h.power_watts > 0, h.name
        assert set(h.peak_flops) <= set(DTYPES) and h.peak_flops, h.name
        assert h.kind in ("gpu", "tpu") and h.vendor, h.name
        assert h.price_note, h.name  # where the price comes from, or why there is none


def test_peak_flops_order_by_dtype(catalogs) -> None:
    order = ("fp32", "tf32", "bf16", "fp8")
    for h in catalogs["hardware"].values():
        given = [h.peak_flops[d] for d in order if d in h.peak_flops]
        assert given == sorted(given), h.name
        if "fp32" in h.peak_flops and "bf16" in h.peak_flops:
            assert h.peak_flops["fp32"] < h.peak_flops["bf16"], h.name
        if "fp8" in h.peak_flops:
            assert h.peak_flops["bf16"] < h.peak_flops["fp8"], h.name
        if "fp16" in h.peak_flops and "bf16" in h.peak_flops:
            assert h.peak_flops["fp16"] == h.peak_flops["bf16"], h.name


@pytest.mark.parametrize("name", sorted(PUBLISHED["devices"]))
def test_hardware_figures_match_the_published_ones(catalogs, name: str) -> None:
    figures = PUBLISHED["devices"][name]
    h = catalogs["hardware"][name]
    assert h.memory_bytes == figures["memory_gib"] * 2**30
    assert h.bandwidth_bytes_per_s == pytest.approx(figures["bandwidth_gb_s"] * 1e9)
    if "tdp_w" in figures:
        assert h.power_watts == figures["tdp_w"]
    for dtype in DTYPES:
        if dtype in figures:
            assert h.peak_flops[dtype] == pytest.approx(figures[dtype] * 1e12), dtype


def test_prices_are_the_published_ones_with_their_source_and_date(catalogs) -> None:
    priced = {
        name: {"value": h.price_per_hour, "source": h.price_source, "date": h.price_date}
        for name, h in catalogs["hardware"].items()
        if h.price_per_hour is not None
    }
    assert priced == PUBLISHED["prices_usd_per_hour"]


def test_every_device_has_a_dated_sourced_price_or_says_why_not(catalogs) -> None:
    """A price needs who listed it and when; a device without one says why, and is a known exception."""
    unpriced = set(PUBLISHED["unpriced"])
    for name, h in catalogs["hardware"].items():
        if name in unpriced:
            assert h.price_per_hour is None and h.price_source == "" and h.price_date == "", name
            assert "no dated public" in h.price_note and "budget.price_per_hour" in h.price_note, name
            continue
        assert h.price_per_hour is not None, f"{name} has no price and is not a listed exception"
        assert math.isfinite(h.price_per_hour) and h.price_per_hour > 0, name
        assert h.price_source.strip() and h.price_note.strip(), name
        assert date.fromisoformat(h.price_date) <= date(2026, 12, 31), name


def test_a_newer_device_is_not_priced_below_its_predecessor(catalogs) -> None:
    price = {name: h.price_per_hour for name, h in catalogs["hardware"].items()}
    assert price["h100-sxm"] > price["a100-40gb"]
    assert price["h100-sxm"] > price["a100-80gb"]
    assert price["h200"] > price["h100-sxm"]
    assert price["b200"] > price["h200"]


def test_every_figure_is_finite_and_positive(catalogs) -> None:
    for h in catalogs["hardware"].values():
        figures = [h.memory_bytes, h.bandwidth_bytes_per_s, *h.peak_flops.values()]
        optional = (h.power_watts, h.intra_node_bytes_per_s, h.inter_node_bytes_per_s, h.devices_per_node,
                    h.host_memory_bytes, h.price_per_hour)  # fmt: skip
        for value in [*figures, *(v for v in optional if v is not None)]:
            assert math.isfinite(value) and value > 0, (h.name, value)
        assert h.memory_bytes % 2**30 == 0 and isinstance(h.memory_bytes, int), h.name


@pytest.mark.parametrize("name", sorted(PUBLISHED["node"]))
def test_node_figures_match_their_reference_systems(catalogs, name: str) -> None:
    node = PUBLISHED["node"][name]
    h = catalogs["hardware"][name]
    assert h.system == node["system"]
    assert bool(h.system) == (h.devices_per_node is not None)  # a node needs its reference system named
    for field, key in (("intra_node_bytes_per_s", "intra_node_gb_s_one_direction"), ("inter_node_bytes_per_s", "inter_node_gb_s_one_direction")):
        expected = node.get(key)
        assert getattr(h, field) == (None if expected is None else pytest.approx(expected * 1e9)), field
    assert h.devices_per_node == node.get("devices_per_node")
    assert h.host_memory_bytes == node.get("host_memory_bytes")


def test_a_record_without_node_figures_says_so(catalogs) -> None:
    for h in catalogs["hardware"].values():
        node = (h.intra_node_bytes_per_s, h.inter_node_bytes_per_s, h.devices_per_node, h.host_memory_bytes)
        if None in node:
            assert "unset" in h.note, h.name
        if h.intra_node_bytes_per_s is not None:
            assert h.intra_node_link, h.name
        # links are quoted per direction: never above the bidirectional figure a vendor prints
        if h.intra_node_bytes_per_s and "bidirectional" in h.intra_node_link:
            assert h.intra_node_bytes_per_s < h.bandwidth_bytes_per_s * 2, h.name


# -- tasks, objectives, adaptations -------------------------------------------------------

TASK_FAMILIES = {
    "encoder": {
        "sentence-classification",
        "sentiment-analysis",
        "named-entity-recognition",
        "token-classification",
        "extractive-qa",
        "retrieval",
    },
    "decoder": {"text-generation", "essay-writing", "chat", "code-generation", "tool-calling"},
    "encoder_decoder": {"summarization", "translation", "generative-qa"},
}


def test_tasks_follow_the_family_mapping(catalogs) -> None:
    tasks, objectives = catalogs["tasks"], catalogs["objectives"]
    for family, names in TASK_FAMILIES.items():
        for name in names:
            task = tasks[name]
            assert task.family == family
            assert task.examples
            assert family in objectives[task.objective].families
    assert set(tasks) == set().union(*TASK_FAMILIES.values())


def test_objectives(catalogs) -> None:
    o = catalogs["objectives"]
    assert o["masked-lm"].families == ("encoder",)
    assert (o["masked-lm"].noise_density, o["masked-lm"].loss_fraction) == (0.15, 0.15)
    assert o["causal-lm"].families == ("decoder",) and o["causal-lm"].noise_density == 0
    sc = o["span-corruption"]
    assert sc.families == ("encoder_decoder",)
    assert (sc.noise_density, sc.mean_span) == (0.15, 3.0)
    assert sc.loss_fraction == pytest.approx(0.2) == span_corruption_target_fraction(0.15, 3)
    for record in o.values():
        assert set(record.families) <= set(FAMILIES)
        assert record.jax_loss == "genaisdk.backend.jax.objectives:" + record.key.replace("-", "_")


def test_adaptations(catalogs) -> None:
    a, precisions = catalogs["adaptations"], catalogs["precisions"]
    assert (a["lora"].default_rank, a["lora"].default_targets, a["lora"].full) == (8, ("q", "v"), False)
    assert a["lora"].trainable_fraction is None  # follows from rank and targets
    assert a["qlora"].frozen_precision == "int4" and not precisions["int4"].trainable
    assert not a["prompt"].trains and a["prompt"].trained_models == ()
    assert a["pretrain"].from_scratch and a["finetune"].full and not a["finetune"].from_scratch
    assert a["rlhf"].resident_models == ("policy", "value", "reference", "reward")
    assert a["rlhf"].trained_models == ("policy", "value")
    assert a["dpo"].resident_models == ("policy", "reference")
    for record in a.values():
        assert set(record.trained_models) <= set(record.resident_models), record.name
        assert record.resident_models[0] == "policy"
