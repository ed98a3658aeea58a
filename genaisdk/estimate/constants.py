"""Constants the estimates rest on, each with where it comes from.

Published figures are quoted with their paper and table. Where a constant is an engineering
assumption rather than a published figure, its docstring says so and says why the value was
picked; the planner lists every one of them in the plan's `assumptions`.
"""

from __future__ import annotations

PF_DAY = 8.64e19
"""FLOPs in one petaflop/s-day: 1e15 FLOP/s x 86,400 s (Brown et al. 2020, Table D.1;
Kaplan et al. 2020, Sec. 1.3)."""

SECONDS_PER_DAY = 86_400.0
SECONDS_PER_HOUR = 3_600.0

DTYPE_BYTES: dict[str, float] = {
    "fp32": 4.0,
    "tf32": 4.0,
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "int4": 0.5,
}
"""Storage bytes per element. tf32 is a compute mode on fp32 storage (NVIDIA A100 whitepaper)."""

NF4_DOUBLE_QUANT_BYTES = (4 + 0.127) / 8
"""Bytes per parameter of a 4-bit NormalFloat base with double quantization: 4 bits plus
0.127 bits of quantization constants (Dettmers et al. 2023, QLoRA, Sec. 3 'Double
Quantization': blocks of 64 with fp32 constants cost 0.5 bit/param, double quantization with
8-bit constants in blocks of 256 brings that to 8/64 + 32/(64·256) = 0.127 bit/param)."""

ZERO_K_MIXED_ADAM = 12.0
"""ZeRO's K for mixed-precision Adam: fp32 master weights, momentum and variance, 4 bytes
each (Rajbhandari et al. 2020, Sec. 3.1)."""

KORTHIKANTI_SBH = 34.0
"""Activation bytes per s·b·h per transformer layer with 16-bit activations, no tensor
parallelism, excluding the attention scores (Korthikanti et al. 2022, Eq. 1 / Sec. 4.1)."""

KORTHIKANTI_AS2B = 5.0
"""Activation bytes per a·s²·b per layer: softmax output (2), dropout mask (1), dropout
output (2) (Korthikanti et al. 2022, Sec. 4.1)."""

SERVE_PREFILL_TOKENS = 2048
"""Tokens one serving step processes at most (prompt chunks and decoded tokens together):
vLLM's default token budget per scheduler step, `SchedulerConfig.DEFAULT_MAX_NUM_BATCHED_TOKENS
= 2048` (vllm/config/scheduler.py). With chunked prefill (Agrawal et al. 2023, "SARATHI")
a longer prompt is prefilled over several steps of at most this many tokens, so the
working memory of one step is bounded by it, not by context x batch."""

RUNTIME_CONTEXT_BYTES = 1.0e9
"""Device memory the runtime holds before the model allocates anything: the CUDA context
(about 0.8 GB observed under PyTorch, pytorch/pytorch issue 34323), cuBLAS and
NCCL workspaces. An assumption rounded to 1 GB; the spec or a hardware plugin can override
it. It is one line of the memory breakdown, never folded into bytes per parameter."""

ALLOCATOR_FRAGMENTATION = 0.05
"""Fraction added on top of the allocated peak for caching-allocator fragmentation. An
assumption: ZeRO (Rajbhandari et al. 2020, Sec. 3.2) reports out-of-memory with over 30% of
memory free in extreme cases; a few percent is the usual reserved-minus-allocated gap of a
steady training loop. Shown as its own line so it can be judged and changed."""

FSDP_GATHER_LAYERS = 2.0
"""Full (unsharded) layers a fully sharded data-parallel step holds at once: the one being
computed and the one prefetched (PyTorch FSDP's default backward/forward prefetch; ZeRO-3's
prefetch bucket of the next layer, Rajbhandari et al. 2020, Sec. 5.3)."""

DEFAULT_MFU = 0.40
"""Model-FLOPs utilization assumed when the spec does not give one. Chowdhery et al. 2022
(PaLM), Table 3 reports MFU for large training runs from 21.3% (GPT-3, V100) and 30.2%
(Megatron-Turing NLG, A100) to 46.2% (PaLM, TPU v4); 40% is a round figure inside the range
that current GPU stacks with flash attention reach. An assumption, shown in every plan."""

PUBLISHED_MFU: dict[str, float] = {
    "gpt3-175b": 0.213,
    "gopher-280b": 0.325,
    "mt-nlg-530b": 0.302,
    "palm-540b": 0.462,
}
"""MFU of published runs, Chowdhery et al. 2022 (PaLM), Table 3."""

CHINCHILLA_TOKENS_PER_PARAM = 20.0
"""Compute-optimal tokens per parameter, the rule of thumb of Hoffmann et al. 2022 (Table 3:
about 20 tokens per parameter for every size listed)."""
