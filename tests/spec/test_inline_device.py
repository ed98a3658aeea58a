"""A device that is not in the catalog, described where its name would go:
`hardware = 2 x { memory = 48 GB, bf16 = 150 TFLOP/s }`."""

from __future__ import annotations

import pytest

import genaisdk
from genaisdk.diagnostics import SpecError
from genaisdk.spec.model import DeviceSpec
from genaisdk.spec.units import parse_quantity


def spec(hardware: str, extra: str = "") -> str:
    return (
        'genai 1\nproject "p" {\n  model {\n    preset = llama-7b\n  }\n  data {\n    tokens = 10M tokens\n  }\n'
        f'  adapt {{\n    method = finetune\n  }}\n  budget {{\n    hardware = {hardware}\n{extra}  }}\n}}\n'
    )


def load(hardware: str, extra: str = ""):
    return genaisdk.loads(spec(hardware, extra), filename="t.genai")


def errors(hardware: str, extra: str = "") -> list:
    with pytest.raises(SpecError) as err:
        load(hardware, extra)
    return err.value.diagnostics


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("150 TFLOP/s", 150e12), ("150 TFLOPS", 150e12), ("150 TFLOPs", 150e12), ("150TFLOPs", 150e12),
        ("1.5 PFLOP/s", 1.5e15), ("624 TOPS", 624e12), ("800 GFLOP/s", 8e11),
        ("768 GB/s", 768e9), ("768GB/s", 768e9), ("3.35 TB/s", 3.35e12), ("1 GiB/s", 2**30), ("900 GBps", 900e9),
    ],
)
def test_rates_read_as_datasheets_write_them(text, value):
    assert parse_quantity(text).value == pytest.approx(value)


def test_flops_alone_is_still_an_amount_and_bits_are_refused():
    assert parse_quantity("3.1e23 FLOPs").dimension == "flops"
    assert parse_quantity("150 TFLOPs").dimension == "flop_rate"
    from genaisdk.spec.units import QuantityError

    with pytest.raises(QuantityError) as err:
        parse_quantity("768 Gb/s")
    assert "bits" in err.value.hint


@pytest.mark.parametrize(
    ("hardware", "devices"),
    [
        ("2 x { memory = 48 GB, bf16 = 150 TFLOPs }", 2),
        ("2x { memory = 48 GB, bf16 = 150 TFLOPs }", 2),
        ("{ memory = 48 GB, bf16 = 150 TFLOPs }", None),
        ("auto x { memory = 48 GB, bf16 = 150 TFLOP/s }", "auto"),
        ("4 x {\n      memory = 48 GB\n      bf16   = 150 TFLOP/s\n    }", 4),
    ],
)
def test_the_device_goes_where_its_name_would(hardware, devices):
    budget = load(hardware).project.budget
    assert isinstance(budget.hardware, DeviceSpec)
    assert budget.hardware.memory == 48e9 and budget.hardware.peak_flops == {"bf16": 150e12}
    assert (repr(budget.devices) == "AUTO") if devices == "auto" else budget.devices == devices


def test_every_figure_lands_in_the_record():
    d = load("2 x { name = My_Card, memory = 48 GiB, fp32 = 38.7 TFLOP/s, bf16 = 154.8 TFLOP/s, int8 = 309.7 TOPS, "
             "bandwidth = 768 GB/s, link = 32 GB/s, host_memory = 128 GiB, price_per_hour = $0.49 }").project.budget.hardware
    hw = d.record()
    assert hw.key == "my-card" and hw.memory_bytes == 48 * 2**30
    assert hw.peak_flops == {"fp32": 38.7e12, "bf16": 154.8e12, "int8": 309.7e12}
    assert hw.bandwidth_bytes_per_s == 768e9 and hw.intra_node_bytes_per_s == 32e9 and hw.host_memory_bytes == 128 * 2**30
    assert hw.price_per_hour == 0.49 and "inline" in hw.price_citation


def test_each_problem_is_reported_at_its_figure():
    found = errors("2 x { memroy = 48 GB, bf16 = 3 days, bandwidth = 768 Gb/s, bf16 = 1 TFLOP/s }")
    by_code = {d.code: d for d in found}
    assert {"GS211", "GS105", "GS201", "GS202", "GS104"} <= set(by_code)
    assert "did you mean `memory`?" in by_code["GS105"].hint
    assert by_code["GS211"].span.line == 13 and "memory" in by_code["GS211"].message
    assert "throughput" in by_code["GS201"].message


def test_a_device_count_from_time_needs_a_throughput():
    found = errors("auto x { memory = 48 GB }", "    time <= 3 days\n")
    assert [d.code for d in found] == ["GS211"] and "throughput" in found[0].message


def test_a_throughput_for_other_types_only_is_the_usual_warning():
    # As for a catalog device: a precision the device quotes no figure for is planned, its
    # time on the nearest format it quotes (here fp16 for bf16), and GS306 says so.
    loaded = genaisdk.loads(spec("2 x { memory = 48 GB, fp16 = 150 TFLOP/s }"), filename="t.genai", overrides={"train.precision": "bf16"})
    found = [d for d in loaded.diagnostics if d.code == "GS306"]
    assert found and found[0].severity == "warning" and "fp16" in found[0].hint
    plan = genaisdk.plan(loaded)
    assert plan.train.precision == "bf16" and plan.time.seconds is not None and plan.time.seconds > 0
    # precision = auto picks what the device computes in
    assert genaisdk.plan(load("2 x { memory = 48 GB, fp16 = 150 TFLOP/s }")).train.precision == "fp16"


def test_size_auto_cannot_be_sized_by_time_without_a_throughput():
    text = spec("1 x { memory = 80 GB }", "    time <= 30 days\n").replace("preset = llama-7b", "size = auto").replace(
        "    tokens = 10M tokens\n", "").replace("method = finetune", "method = pretrain")
    with pytest.raises(SpecError) as err:
        genaisdk.loads(text, filename="t.genai")
    d = next(d for d in err.value.diagnostics if d.code == "GP005")
    assert "no throughput" in d.message


def test_an_override_can_describe_the_device():
    s = genaisdk.loads(spec("1 x a100-80gb"), filename="t.genai", overrides={"budget.hardware": "2 x { memory = 24 GiB }"})
    assert s.project.budget.hardware.memory == 24 * 2**30 and s.project.budget.devices == 2


def test_fmt_keeps_the_device_and_is_idempotent():
    from genaisdk.spec.fmt import format_document
    from genaisdk.spec.parse import parse

    def format_source(text: str) -> str:
        return format_document(parse(text, "t.genai"))

    text = spec("2 x {\n      name = a6000\n      memory = 48 GB\n      bf16 = 150 TFLOPs\n    }")
    once = format_source(text)
    assert format_source(once) == once
    assert load("2 x { name = a6000, memory = 48 GB, bf16 = 150 TFLOPs }").project == genaisdk.loads(once, filename="t.genai").project
