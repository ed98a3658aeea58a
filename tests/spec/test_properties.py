"""Properties: no input makes the spec package raise anything but SpecError, or take more
than linear time; valid specs survive formatting unchanged in meaning."""

from __future__ import annotations

import string
import time

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from genaisdk.diagnostics import Diagnostic, SpecError, render_all
from genaisdk.spec import check, diagnose, format_text, loads

from .conftest import SPECS

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
EXAMPLE_TEXTS = [p.read_text() for p in sorted(SPECS.glob("*.genai"))]

SNIPPETS = [
    "{", "}", "[", "]", '"', "=", "<=", ",", ";", "\n", "#", "//", "$", "x", "auto", "true", "-",
    "project", "model", "train", "budget", "genai", "1", "0", "2.5", "1e99", "60B", "7b", "45%",
    "tokens", "days", "GiB", "pf-days", "a100-80gb", "bf16", "\t", " ", "é", "\\", "'", "1__0",
    "precision", "mix", "{ a = 1 }", "[1, 2]", "requires", '"x"', "\r\n", "\x00",
    '"C:\\data"', '"\\n"', "\x1b[2J", "\u202e", "[/]", "[" * 40, "{" * 40, "0.5 tokens", "1e-300",
]


def assert_only_spec_errors(text: str, registry) -> None:
    diagnostics = check(text, "t.genai", registry=registry)
    assert all(isinstance(d, Diagnostic) for d in diagnostics)
    try:
        loads(text, "t.genai", registry=registry)
    except SpecError as exc:
        assert exc.diagnostics and any(d.is_error for d in exc.diagnostics)
        exc.render()
    try:
        format_text(text)
    except SpecError:
        pass


@FAST
@given(st.text(max_size=300))
def test_arbitrary_text_raises_only_spec_errors(builtin_registry, text):
    assert_only_spec_errors(text, builtin_registry)


@FAST
@given(st.lists(st.sampled_from(SNIPPETS), max_size=60).map(" ".join))
def test_token_soup_raises_only_spec_errors(builtin_registry, text):
    assert_only_spec_errors(text, builtin_registry)


@st.composite
def mutated_specs(draw):
    text = draw(st.sampled_from(EXAMPLE_TEXTS))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        start = draw(st.integers(min_value=0, max_value=len(text)))
        end = min(len(text), start + draw(st.integers(min_value=0, max_value=12)))
        action = draw(st.sampled_from(["delete", "insert", "replace", "duplicate-line"]))
        if action == "delete":
            text = text[:start] + text[end:]
        elif action == "insert":
            text = text[:start] + draw(st.sampled_from(SNIPPETS)) + text[start:]
        elif action == "replace":
            text = text[:start] + draw(st.text(alphabet=string.printable, max_size=6)) + text[end:]
        else:
            lines = text.split("\n")
            index = draw(st.integers(min_value=0, max_value=len(lines) - 1))
            lines.insert(index, lines[index])
            text = "\n".join(lines)
    return text


@FAST
@given(mutated_specs())
def test_mutated_specs_raise_only_spec_errors(builtin_registry, text):
    assert_only_spec_errors(text, builtin_registry)


# -- generated valid specs --------------------------------------------------------------

WORDS = st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=8).filter(
    lambda w: w not in ("auto", "none", "true", "false", "x")
)
COMMENT = st.one_of(st.just(""), st.text(alphabet=string.ascii_letters + " .,-", max_size=20).map(lambda c: "  # " + c))


def quantity(unit: str, low: int, high: int):
    return st.integers(min_value=low, max_value=high).map(lambda n: f"{n}{unit}")


@st.composite
def percentages(draw):
    names = draw(st.lists(WORDS, min_size=1, max_size=4, unique=True))
    shares = []
    left = 100
    for _ in names[:-1]:
        share = draw(st.integers(min_value=0, max_value=left))
        shares.append(share)
        left -= share
    shares.append(left)
    return "{ " + ", ".join(f"{n} = {s}%" for n, s in zip(names, shares)) + " }"


BLOCK_KEYS = {
    "model": {
        "family": st.sampled_from(["auto", "decoder", "encoder", "encoder-decoder", "encoder_decoder"]),
        "size": st.one_of(st.just("auto"), quantity("M", 1, 999), quantity("B", 1, 500).map(lambda v: v + " params")),
        "context": st.sampled_from(["128 tokens", "2048 tokens", "4096", "8k tokens", "auto"]),
        "layers": st.integers(min_value=1, max_value=96).map(str),
        "d_ff": st.integers(min_value=1, max_value=50_000).map(lambda n: f"{n:_}"),
        "vocab": st.sampled_from(["384", "32_000", "50257", "256k"]),
        "ffn": st.sampled_from(["gelu", "relu", "gated"]),
        "norm": st.sampled_from(["layernorm", "rmsnorm"]),
        "tied_embeddings": st.sampled_from(["true", "false"]),
    },
    "data": {
        "tokens": st.one_of(quantity("B tokens", 1, 999), quantity("T tokens", 1, 15), quantity("M", 1, 999)),
        "keep": quantity("%", 1, 100),
        "mix": percentages(),
        "source": st.sampled_from(["synthetic", '"data/*.txt"', '["a.txt", "b.jsonl"]', "[synthetic]"]),
        "held_out": quantity("%", 0, 50),
    },
    "adapt": {
        "method": st.sampled_from(["pretrain", "finetune", "lora", "qlora", "dpo"]),
    },
    "train": {
        "precision": st.sampled_from(["auto", "bf16", "fp16", "fp32", "tf32", "bf16-pure"]),
        "optimizer": st.sampled_from(["adamw", "adam", "sgd", "lion", "adafactor", "adam-8bit"]),
        "sharding": st.sampled_from(["auto", "ddp", "zero1", "zero2", "fsdp", "fsdp-offload"]),
        "batch": st.sampled_from(["1M tokens", "4M tokens", "65_536 tokens", "2.5M tokens"]),
        "micro_batch": st.one_of(st.just("auto"), st.integers(min_value=1, max_value=64).map(str)),
        "recompute": st.sampled_from(["auto", "none", "selective", "full"]),
        "attention": st.sampled_from(["flash", "materialized"]),
        "mfu": quantity("%", 1, 100),
        "learning_rate": st.sampled_from(["3e-4", "1e-3", "6e-5", "0.01"]),
        "seed": st.integers(min_value=0, max_value=10**6).map(str),
        "grad_clip": st.sampled_from(["1.0", "none", "0.3"]),
    },
    "budget": {
        "hardware": st.sampled_from(["64 x a100-80gb", "auto x h100-sxm", "a100-40gb", "8x tpu-v5p", "h100"]),
        "time": st.sampled_from(["<= 30 days", "= 2 weeks", "<= 36 hours", "<= 90 min"]),
        "cost": st.sampled_from(["<= $250k", "= $5M", "<= $1_000", "<= 2500 USD"]),
        "compute": st.sampled_from(["<= 3640 pf-days", "<= 3.14e23 FLOPs"]),
        "price_per_hour": st.sampled_from(["$2.50", "$1"]),
        "carbon_intensity": st.sampled_from(["400 g/kWh", "0.2 kg/kWh", "35 gCO2e/kWh"]),
    },
    "serve": {
        "precision": st.sampled_from(["int8", "int4", "bf16", "fp8"]),
        "context": st.sampled_from(["4096 tokens", "512"]),
        "batch": st.integers(min_value=1, max_value=256).map(str),
    },
}


@st.composite
def valid_specs(draw):
    lines = [draw(st.sampled_from(["", "# a generated spec\n"])) + "genai 1", ""]
    lines.append(f'project "{draw(WORDS)}" {{{draw(COMMENT)}')
    lines.append(f"  task = {draw(st.sampled_from(['chat', 'summarization', 'translation', 'sentiment-analysis']))}")
    if draw(st.booleans()):
        lines.append(f"  domain = {draw(WORDS)}")
    blocks = draw(st.lists(st.sampled_from(sorted(BLOCK_KEYS)), unique=True, max_size=len(BLOCK_KEYS)))
    for block in blocks:
        keys = draw(st.lists(st.sampled_from(sorted(BLOCK_KEYS[block])), unique=True, max_size=6))
        separator = draw(st.sampled_from(["\n", "\n\n", ";"]))
        statements = []
        for key in keys:
            value = draw(BLOCK_KEYS[block][key])
            op = "" if value.startswith(("<=", "= ")) else "= "
            statements.append(f"    {key} {op}{value}{draw(COMMENT) if separator != ';' else ''}")
        body = separator.join(statements)
        lines.append(f"  {block} {{\n{body}\n  }}" if statements else f"  {block} {{}}")
    lines.append("}")
    return "\n".join(lines) + "\n"


@FAST
@given(valid_specs())
def test_generated_specs_survive_fmt_unchanged(builtin_registry, text):
    # Well-formed; the validation layer may still reject a combination (`size = auto` with
    # nothing to size from): then the formatted text must be rejected for the same reasons.
    spec, diagnostics, _ = diagnose(text, registry=builtin_registry)
    formatted = format_text(text)
    assert format_text(formatted) == formatted
    again, diagnostics_again, _ = diagnose(formatted, registry=builtin_registry)
    assert again == spec
    assert [(d.code, d.message) for d in diagnostics_again] == [(d.code, d.message) for d in diagnostics]
    assert spec is not None or all(d.code.startswith(("GS3", "GP", "GS2")) for d in diagnostics if d.is_error)


OVERRIDE_TEXT = st.one_of(
    st.text(max_size=30),
    st.tuples(
        st.sampled_from(["train.precision", "data.mix.legal", "task", "budget.hardware", "model", "x.y.z", "project.serve.batch"]),
        st.sampled_from(["=", "<=", " = ", ""]),
        st.lists(st.sampled_from(SNIPPETS), max_size=4).map(" ".join),
    ).map("".join),
)


@FAST
@given(st.lists(OVERRIDE_TEXT, max_size=3))
def test_arbitrary_overrides_raise_only_spec_errors(builtin_registry, overrides):
    text = EXAMPLE_TEXTS[0]
    diagnostics = check(text, "t.genai", overrides=overrides, registry=builtin_registry)
    assert all(isinstance(d, Diagnostic) for d in diagnostics)
    try:
        loads(text, "t.genai", overrides=overrides, registry=builtin_registry)
    except SpecError as exc:
        exc.render()


# -- large inputs: linear time ------------------------------------------------------------

MEGABYTE = 1_000_000
LINE = st.one_of(
    st.lists(st.sampled_from(SNIPPETS), max_size=8).map(" ".join),
    st.text(alphabet=string.printable, max_size=40),
    st.text(max_size=20),
)
TINY = next(t for t in EXAMPLE_TEXTS if 'project "tiny-gpt"' in t)


def _grown(line: str, size: int) -> str:
    """`line` repeated inside a real spec (in its `data.source` list if it is a list
    entry) until the spec is over `size` characters."""
    copies = size // (len(line) + 1) + 1
    if line.lstrip().startswith('"'):
        filler = "    source = [\n" + (line + "\n") * copies + "    ]\n"
        return TINY.replace("    source   = synthetic  # generated, learnable token patterns\n", filler)
    return TINY.replace("  task  = text-generation\n", "  task  = text-generation\n" + (line + "\n") * copies)


def _check_seconds(text: str, registry) -> float:
    """CPU seconds of this process (other work on the machine does not count)."""
    start = time.process_time()
    diagnostics = check(text, "big.genai", registry=registry)
    render_all(diagnostics, text)
    assert all(isinstance(d, Diagnostic) for d in diagnostics)
    return time.process_time() - start


@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(LINE)
@example("  # a comment line")  # a comment per line: once counted line by line (quadratic)
@example('      "shards/part-00000001.jsonl",')  # a long list, nothing wrong with it
def test_a_megabyte_spec_is_checked_in_linear_time(builtin_registry, line):
    """One drawn line repeated inside a real spec to 1 MB is checked (its diagnostics
    rendered) raising nothing but SpecError, in at most a few times ten times what a tenth
    of it takes: linear, with room for a busy machine. Anything quadratic (per line, per
    comment, per diagnostic) takes a hundred times as long, and minutes at this size.
    `benchmarks/bench_check.py --scaling` measures the same up to 20 MB."""
    small_text, big_text = _grown(line, MEGABYTE // 10), _grown(line, MEGABYTE)
    assert len(big_text) > MEGABYTE
    small = _check_seconds(small_text, builtin_registry)
    big = _check_seconds(big_text, builtin_registry)
    if big > 3 * 10 * small + 1.0:
        # Timed once more, keeping each size's faster time: caches and memory shared with
        # other work can slow one measurement, not both of a pair taken twice; quadratic
        # work stays slow.
        small = min(small, _check_seconds(small_text, builtin_registry))
        big = min(big, _check_seconds(big_text, builtin_registry))
    assert big <= 3 * 10 * small + 1.0, f"{big:.2f} s for 1 MB, {small:.2f} s for 0.1 MB"
