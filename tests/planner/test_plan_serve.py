"""The Serve section: every memory term named, a bounded prefill step, the KV cache in its
own type, the serving precision checked against the hardware, advice that never repeats
the setting in use."""

from __future__ import annotations

import pytest

from tests.planner.conftest import ROOT

GIB = 2**30

QWEN3_1_7B = """
layers = 28
d_model = 2048
heads = 16
kv_heads = 8
head_dim = 128
d_ff = 6144
ffn = gated
vocab = 151936
tied_embeddings = true
norm = rmsnorm
positions = rotary
context = 1024 tokens
"""
"""Qwen3-1.7B's released config.json: 28 layers, hidden 2048, 16 heads, 8 KV heads of 128,
intermediate 6144 (SwiGLU), vocabulary 151,936, tied embeddings."""


def codes(plan) -> list[str]:
    return [d.code for d in plan.diagnostics]


def find(plan, code: str):
    return next(d for d in plan.diagnostics if d.code == code)


def qwen_serving(make_plan, serve: str = "", hardware: str = "rtx-4090"):
    return make_plan(
        model=QWEN3_1_7B,
        adapt="method = prompt",
        budget=f"hardware = 1 x {hardware}",
        serve="precision = bf16\ncontext = 1024 tokens\nbatch = 171\n" + serve,
    )


def test_qwen3_1_7b_serves_171_sequences_on_one_24_gib_card(make_plan):
    """171 sequences of 1,024 tokens at bf16: the cache is 2·28·8·128·1024·171·2 bytes =
    18.70 GiB, within 0.5% of the 18.78 GiB KV pool vLLM reports for this model on a 24 GiB
    card (which holds 171.7 such sequences); weights, a 2,048-token prefill step and the
    runtime fit beside it."""
    plan = qwen_serving(make_plan)
    i = plan.inference
    assert i.memory.kv_cache == 2 * 28 * 8 * 128 * 1024 * 171 * 2
    assert i.memory.kv_cache / GIB == pytest.approx(18.78, rel=0.005)
    assert i.prefill_tokens == 2048
    assert i.memory.workspace < 0.2e9  # 2,048 tokens x 2 B x (2048 + 2 x 6144) + 171 logits rows
    assert i.fits and i.devices_per_replica == 1
    assert "GP204" not in codes(plan)


def test_prefilling_every_cached_token_at_once_needs_two_cards_and_says_why(make_plan):
    plan = qwen_serving(make_plan, serve=f"prefill_tokens = {171 * 1024}")
    i = plan.inference
    assert i.prefill_tokens == 171 * 1024 and i.memory.workspace > 5e9
    assert not i.fits and i.devices_per_replica == 2
    d = find(plan, "GP204")
    for term in ("bf16 weights", "KV cache", "prefill workspace", "runtime", str(171 * 1024)):
        assert term in d.message, term
    assert "prefill_tokens = 512" in d.hint and "kv_precision = fp8" in d.hint


def test_fp8_kv_cache_halves_it(make_plan):
    """48 layers, 4 KV heads of 128, 100k tokens: 2·48·4·128·100,000 values, 9.83 GB at two
    bytes, 4.92 GB at one."""
    model = "layers = 48\nd_model = 4096\nheads = 32\nkv_heads = 4\nd_ff = 14336\nffn = gated\nvocab = 32000\ncontext = 4096 tokens"

    def serve(kv: str):
        return make_plan(model=model, adapt="method = prompt", budget="hardware = 1 x h100-sxm",
                         serve=f"context = 100k tokens\nbatch = 1{kv}")

    bf16, fp8 = serve(""), serve("\nkv_precision = fp8")
    assert bf16.inference.kv_precision == "bf16" and fp8.inference.kv_precision == "fp8"
    assert bf16.inference.memory.kv_cache == pytest.approx(9.83e9, rel=1e-3)
    assert fp8.inference.memory.kv_cache == pytest.approx(4.92e9, rel=1e-3)
    assert fp8.inference.memory.weights == bf16.inference.memory.weights
    kv = next(t for t in fp8.derivations["inference"] if t.name == "KV cache")
    assert "1 B (fp8)" in kv.substituted and kv.value == fp8.inference.memory.kv_cache


def test_explain_shows_each_serving_term_and_they_add_up(make_plan):
    plan = qwen_serving(make_plan)
    terms = {t.name: t for t in plan.derivations["inference"]}
    m = plan.inference.memory
    for name in ("weights", "KV cache", "prefill step", "logits", "workspace", "runtime", "total per replica", "devices per replica"):
        assert name in terms, name
    assert terms["workspace"].value == m.workspace == pytest.approx(terms["prefill step"].value + terms["logits"].value)
    assert terms["total per replica"].value == m.total == pytest.approx(m.weights + m.kv_cache + m.workspace + m.runtime)
    assert "2048 tokens" in terms["prefill step"].substituted


def test_gpt3_on_v100s_is_served_in_fp16_not_bf16():
    import genaisdk

    plan = genaisdk.plan(ROOT / "specs" / "gpt3-175b.genai")
    assert plan.inference.precision == "fp16" and plan.inference.kv_precision == "fp16"
    reason = next(r for r in plan.reasons if r.field == "serve.precision")
    assert "no bf16" in reason.reason
    assert "GP007" not in codes(plan)  # the spec asked for nothing: no warning, a reason


def test_asking_for_bf16_on_a_v100_is_a_warning_naming_the_key(make_plan):
    plan = make_plan(model="preset = gpt3-1.3b", adapt="method = prompt", budget="hardware = 1 x v100-32gb",
                     serve="precision = bf16\nkv_precision = bf16")
    assert plan.inference.precision == "fp16" and plan.inference.kv_precision == "fp16"
    warnings = [d for d in plan.diagnostics if d.code == "GP007"]
    assert {w.message.split("`")[1].split(" ")[0] for w in warnings} == {"serve.precision", "serve.kv_precision"}


def test_advice_never_suggests_the_setting_in_use(make_plan):
    plan = make_plan(model="preset = llama-65b", adapt="method = prompt", budget="hardware = 1 x rtx-4090",
                     serve="precision = int8\nkv_precision = fp8\ncontext = 2048 tokens")
    d = find(plan, "GP204")
    assert "`precision = int4`" in d.hint
    assert "`precision = int8`" not in d.hint and "kv_precision = fp8" not in d.hint
    assert "int8 weights" in d.message and "(fp8," in d.message


@pytest.mark.parametrize(
    ("serve", "code"),
    [("kv_precision = fp4", "GS206"), ("prefill_tokens = 0", "GS203"), ("prefill_tokens = 1.5k days", "GS201")],
)
def test_bad_serving_keys_are_clear_errors(serve, code):
    import genaisdk
    from genaisdk.diagnostics import SpecError

    from tests.planner.conftest import spec_text

    with pytest.raises(SpecError) as err:
        genaisdk.loads(spec_text(model="preset = gpt3-125m", serve=serve), filename="t.genai")
    assert code in [d.code for d in err.value.diagnostics]


@pytest.mark.parametrize("serve", ["", "prefill_tokens = 512\nkv_precision = fp8"])
def test_the_reports_serving_curves_pass_through_the_plans_point(make_plan, serve):
    from genaisdk.render.figures import serve_picture

    plan = qwen_serving(make_plan, serve=serve)
    picture = serve_picture(plan)
    m = plan.inference.memory
    assert picture.point[1] == pytest.approx(m.kv_cache) and picture.point[3] == pytest.approx(m.total)
    assert plan.inference.step_tokens == min(plan.inference.prefill_tokens, 1024 * 171)
