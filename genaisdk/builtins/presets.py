"""Built-in presets: published models with their dimensions and sources.

A plugin module like any other (see `genaisdk.hookspecs.genaisdk_presets`). Each preset
carries the dimensions its paper (or released configuration) states, the parameter count the
source states, and, where the exact count of `genaisdk.estimate.params.count_params` differs
from it by more than 2%, a note saying why. `catalog()` builds them; the hook yields them.
"""

from __future__ import annotations

from collections.abc import Iterator

from genaisdk.dims import Dimensions
from genaisdk.hookspecs import hookimpl
from genaisdk.records import Preset

_GPT2 = "Radford et al. 2019, 'Language Models are Unsupervised Multitask Learners', Table 2; released configs (n_ctx 1024, vocab 50257)"
_GPT3 = "Brown et al. 2020, 'Language Models are Few-Shot Learners', arXiv:2005.14165, Table 2.1 (dims), Sec. 2.1 (d_ff = 4·d_model, n_ctx 2048), Table D.1 (300B tokens)"
_BERT = "Devlin et al. 2019, 'BERT', Sec. 3 (L, H, A, sizes); released configs (vocab 30522, 512 positions, 2 token types)"
_ROBERTA = "Liu et al. 2019, 'RoBERTa', Sec. 4 and fairseq release (vocab 50265, 514 positions); sizes 125M/355M from the release"
_T5 = "Raffel et al. 2020, 'Exploring the Limits of Transfer Learning with a Unified Text-to-Text Transformer', Sec. 3.7 (sizes, 1T pretraining tokens) and Sec. 2.1 (architecture); released configs (vocab 32128)"
_FLAN_T5 = "Chung et al. 2022, 'Scaling Instruction-Finetuned Language Models', Sec. 2 (sizes); T5 v1.1 released configs (gated GELU, untied output)"
_BART = "Lewis et al. 2020, 'BART', Sec. 2.1 and 3.1; fairseq release (bart.base 140M, bart.large 400M; 1024 + 2 positions, vocab 50265)"
_LLAMA = "Touvron et al. 2023, 'LLaMA: Open and Efficient Foundation Language Models', Table 2 (dims, tokens), Sec. 2.2 (SwiGLU 2/3·4d, RMSNorm, RoPE); released configs (d_ff)"
_LLAMA2 = "Touvron et al. 2023, 'Llama 2: Open Foundation and Fine-Tuned Chat Models', Table 1 (sizes, 4k context, 2.0T tokens, GQA for 70B) and Sec. 2.2; released configs (dims)"
_BLOOM = "BigScience 2022, 'BLOOM: A 176B-Parameter Open-Access Multilingual Language Model', Table 3 (dims) and Sec. 3.2 (ALiBi, embedding LayerNorm, vocab 250,680 padded to 250,880)"
_OPT = "Zhang et al. 2022, 'OPT: Open Pre-trained Transformer Language Models', Table 1 (dims) and Sec. 2 (180B tokens, 2048 context); released configs (vocab 50272, 2 extra positions)"
_CHINCHILLA = "Hoffmann et al. 2022, 'Training Compute-Optimal Large Language Models', Table 4 (dims, 1.4T tokens) and Sec. 4.1 (RMSNorm, relative positions, 32k vocabulary)"
_GOPHER = "Rae et al. 2021, 'Scaling Language Models: Methods, Analysis & Insights from Training Gopher', Table 1 (dims, 300B tokens) and Sec. 3 (RMSNorm, Transformer-XL relative positions, 32k vocabulary)"
_PALM = "Chowdhery et al. 2022, 'PaLM: Scaling Language Modeling with Pathways', Table 1 (dims, counts) and Sec. 2 (SwiGLU, parallel layers, multi-query, RoPE, shared embeddings, no biases, 256k vocabulary, head size 256)"
_BLOOMBERG = "Wu et al. 2023, 'BloombergGPT: A Large Language Model for Finance', Sec. 3 (70 layers, 40 heads, d_model 7680, vocab 131,072, ALiBi, embedding LayerNorm, 50.6B) and Sec. 2 (569B training tokens)"

_XL_NOTE = (
    "The exact count includes Transformer-XL's relative-position projection, one d_model x d_model matrix per "
    "layer (about 1/13 of the blocks), which is what brings 12·L·d² up to the published figure."
)


def _gpt2(name: str, layers: int, d_model: int, heads: int, published: float, note: str = "") -> Preset:
    return Preset(
        name=name,
        architecture="decoder",
        description=f"GPT-2, {layers} layers x {d_model}",
        source=_GPT2,
        dims=Dimensions(layers=layers, d_model=d_model, heads=heads, d_ff=4 * d_model, vocab=50257, context=1024),
        published_params=published,
        note=note,
        training_tokens=None,
    )


def _gpt3(name: str, layers: int, d_model: int, heads: int, head_dim: int, published: float, aliases=(), note="") -> Preset:
    return Preset(
        name=name,
        aliases=aliases,
        architecture="decoder",
        description=f"GPT-3 {name.split('-', 1)[1].upper()}, {layers} layers x {d_model}",
        source=_GPT3,
        dims=Dimensions(
            layers=layers, d_model=d_model, heads=heads, head_dim=head_dim, d_ff=4 * d_model, vocab=50257, context=2048
        ),
        published_params=published,
        note=note,
        training_tokens=300e9,
    )


def _bert(name: str, layers: int, d_model: int, heads: int, published: float, *, roberta: bool = False) -> Preset:
    return Preset(
        name=name,
        architecture="encoder",
        description=f"{'RoBERTa' if roberta else 'BERT'} {name.rsplit('-', 1)[1]}, {layers} layers x {d_model}",
        source=_ROBERTA if roberta else _BERT,
        dims=Dimensions(
            layers=layers,
            d_model=d_model,
            heads=heads,
            d_ff=4 * d_model,
            vocab=50265 if roberta else 30522,
            context=512,
            position_table=514 if roberta else None,
            token_types=1 if roberta else 2,
            embedding_norm=True,
            final_norm=False,
            pooler=True,
            mlm_head=True,
        ),
        published_params=published,
        note="Counted with the pooler and the masked-LM head (transform, norm, output bias; the output matrix is tied).",
        training_tokens=(2e12 if roberta else 250e9),
    )


def _t5(name: str, layers: int, d_model: int, heads: int, d_ff: int, published: float, note: str = "", head_dim: int = 64) -> Preset:
    return Preset(
        name=name,
        architecture="encoder-decoder",
        description=f"T5 {name.split('-', 1)[1]}, {layers}+{layers} layers x {d_model}",
        source=_T5,
        dims=Dimensions(
            layers=layers,
            d_model=d_model,
            heads=heads,
            head_dim=head_dim,
            d_ff=d_ff,
            vocab=32128,
            context=512,
            ffn="relu",
            norm="rmsnorm",
            positions="relative",
            biases=False,
        ),
        published_params=published,
        note=note,
        training_tokens=1e12,
    )


def _flan_t5(name: str, layers: int, d_model: int, heads: int, d_ff: int, published: float, note: str = "") -> Preset:
    return Preset(
        name=name,
        architecture="encoder-decoder",
        description=f"FLAN-T5 {name.rsplit('-', 1)[1].upper()}, {layers}+{layers} layers x {d_model}",
        source=_FLAN_T5,
        dims=Dimensions(
            layers=layers,
            d_model=d_model,
            heads=heads,
            head_dim=64,
            d_ff=d_ff,
            vocab=32128,
            context=512,
            ffn="gated",
            norm="rmsnorm",
            positions="relative",
            biases=False,
            tied_embeddings=False,
        ),
        published_params=published,
        note=note,
    )


def _bart(name: str, layers: int, d_model: int, heads: int, published: float) -> Preset:
    return Preset(
        name=name,
        architecture="encoder-decoder",
        description=f"BART {name.split('-', 1)[1]}, {layers}+{layers} layers x {d_model}",
        source=_BART,
        dims=Dimensions(
            layers=layers,
            d_model=d_model,
            heads=heads,
            d_ff=4 * d_model,
            vocab=50265,
            context=1024,
            position_table=1026,
            embedding_norm=True,
            final_norm=False,
        ),
        published_params=published,
    )


def _llama(name: str, layers: int, d_model: int, heads: int, d_ff: int, published: float, *, context: int, tokens: float, kv_heads=None, source=_LLAMA, note="") -> Preset:
    return Preset(
        name=name,
        architecture="decoder",
        description=f"{'Llama 2' if source is _LLAMA2 else 'LLaMA'} {name.rsplit('-', 1)[1].upper()}, {layers} layers x {d_model}",
        source=source,
        dims=Dimensions(
            layers=layers,
            d_model=d_model,
            heads=heads,
            kv_heads=kv_heads,
            d_ff=d_ff,
            vocab=32000,
            context=context,
            ffn="gated",
            norm="rmsnorm",
            positions="rotary",
            tied_embeddings=False,
            biases=False,
        ),
        published_params=published,
        note=note,
        training_tokens=tokens,
    )


def _bloom_like(name: str, layers: int, d_model: int, heads: int, vocab: int, published: float, tokens: float, source: str, description: str) -> Preset:
    return Preset(
        name=name,
        architecture="decoder",
        description=description,
        source=source,
        dims=Dimensions(
            layers=layers,
            d_model=d_model,
            heads=heads,
            d_ff=4 * d_model,
            vocab=vocab,
            context=2048,
            positions="alibi",
            embedding_norm=True,
        ),
        published_params=published,
        training_tokens=tokens,
    )


def _opt(name: str, layers: int, d_model: int, heads: int, published: float) -> Preset:
    return Preset(
        name=name,
        architecture="decoder",
        description=f"OPT {name.split('-', 1)[1].upper()}, {layers} layers x {d_model}",
        source=_OPT,
        dims=Dimensions(
            layers=layers,
            d_model=d_model,
            heads=heads,
            d_ff=4 * d_model,
            vocab=50272,
            context=2048,
            position_table=2050,
            ffn="relu",
        ),
        published_params=published,
        training_tokens=180e9,
    )


def _deepmind(name: str, layers: int, d_model: int, heads: int, published: float, tokens: float, source: str, description: str) -> Preset:
    return Preset(
        name=name,
        architecture="decoder",
        description=description,
        source=source,
        dims=Dimensions(
            layers=layers,
            d_model=d_model,
            heads=heads,
            head_dim=128,
            d_ff=4 * d_model,
            vocab=32000,
            context=2048,
            norm="rmsnorm",
            positions="xl-relative",
            biases=False,
        ),
        published_params=published,
        note=_XL_NOTE + " Output tying is not stated; counted tied (untied adds vocab x d_model, under 0.5%).",
        training_tokens=tokens,
    )


def _palm(name: str, layers: int, d_model: int, heads: int, published: float) -> Preset:
    return Preset(
        name=name,
        architecture="decoder",
        description=f"PaLM {name.split('-', 1)[1].upper()}, {layers} layers x {d_model}, multi-query",
        source=_PALM,
        dims=Dimensions(
            layers=layers,
            d_model=d_model,
            heads=heads,
            kv_heads=1,
            head_dim=256,
            d_ff=4 * d_model,
            vocab=256_000,
            context=2048,
            ffn="gated",
            positions="rotary",
            biases=False,
            parallel_block=True,
        ),
        published_params=published,
        training_tokens=780e9,
    )


def catalog() -> list[Preset]:
    """Every built-in preset, in a stable order."""
    return [
        _gpt2(
            "gpt2",
            12,
            768,
            12,
            117e6,
            note="The paper's Table 2 lists 117M; the released checkpoint holds 124,439,808 parameters, the exact "
            "count here (the 117M figure is known to leave out part of the embeddings).",
        ),
        _gpt2(
            "gpt2-medium",
            24,
            1024,
            16,
            345e6,
            note="The paper's Table 2 lists 345M; the released checkpoint holds 354,823,168, the exact count here.",
        ),
        _gpt2("gpt2-large", 36, 1280, 20, 762e6),
        _gpt2("gpt2-xl", 48, 1600, 25, 1542e6),
        _gpt3("gpt3-125m", 12, 768, 12, 64, 125e6, aliases=("gpt3-small",)),
        _gpt3("gpt3-350m", 24, 1024, 16, 64, 350e6, aliases=("gpt3-medium",)),
        _gpt3("gpt3-760m", 24, 1536, 16, 96, 760e6, aliases=("gpt3-large",)),
        _gpt3(
            "gpt3-1.3b",
            24,
            2048,
            16,
            128,
            1.3e9,
            aliases=("gpt3-xl",),
            note="Table 2.1 prints 24 heads of size 128, which does not fit d_model = 2048 (24 x 128 = 3072); Table D.1's "
            "1.32B total implies an attention width of d_model, counted here as 16 heads of 128.",
        ),
        _gpt3("gpt3-2.7b", 32, 2560, 32, 80, 2.7e9),
        _gpt3("gpt3-6.7b", 32, 4096, 32, 128, 6.7e9),
        _gpt3(
            "gpt3-13b",
            40,
            5140,
            40,
            128,
            13e9,
            note="Table 2.1 prints d_model = 5140 while 40 heads x 128 = 5120; kept as printed (attention width 5120).",
        ),
        _gpt3("gpt3-175b", 96, 12288, 96, 128, 175e9),
        _bert("bert-base", 12, 768, 12, 110e6),
        _bert("bert-large", 24, 1024, 16, 340e6),
        _bert("roberta-base", 12, 768, 12, 125e6, roberta=True),
        _bert("roberta-large", 24, 1024, 16, 355e6, roberta=True),
        _t5("t5-small", 6, 512, 8, 2048, 60e6),
        _t5("t5-base", 12, 768, 12, 3072, 220e6),
        _t5(
            "t5-large",
            24,
            1024,
            16,
            4096,
            770e6,
            note="The paper rounds its sizes ('about 770 million'); the released checkpoint's exact count is 737,668,096, "
            "as here.",
        ),
        _t5(
            "t5-3b",
            24,
            1024,
            32,
            16384,
            3e9,
            head_dim=128,
            note="The paper's '3B' is a round name; the released checkpoint's exact count is 2,851,598,336, as here.",
        ),
        _t5(
            "t5-11b",
            24,
            1024,
            128,
            65536,
            11e9,
            head_dim=128,
            note="'11B' is a round name; the released checkpoint's exact count is 11,307,321,344, as here.",
        ),
        _flan_t5("flan-t5-small", 8, 512, 6, 1024, 80e6, note="'80M' is a round name; the exact count is 76,961,152."),
        _flan_t5("flan-t5-base", 12, 768, 12, 2048, 250e6),
        _flan_t5("flan-t5-large", 24, 1024, 16, 2816, 780e6),
        _flan_t5(
            "flan-t5-xl",
            24,
            2048,
            32,
            5120,
            3e9,
            note="'3B' is a round name; the exact count of the released configuration is 2,849,757,184, as here.",
        ),
        _flan_t5("flan-t5-xxl", 24, 4096, 64, 10240, 11e9),
        _bart("bart-base", 6, 768, 12, 140e6),
        _bart("bart-large", 12, 1024, 16, 400e6),
        _llama("llama-7b", 32, 4096, 32, 11008, 6.7e9, context=2048, tokens=1.0e12),
        _llama("llama-13b", 40, 5120, 40, 13824, 13.0e9, context=2048, tokens=1.0e12),
        _llama("llama-33b", 60, 6656, 52, 17920, 32.5e9, context=2048, tokens=1.4e12),
        _llama("llama-65b", 80, 8192, 64, 22016, 65.2e9, context=2048, tokens=1.4e12),
        _llama(
            "llama2-7b",
            32,
            4096,
            32,
            11008,
            7e9,
            context=4096,
            tokens=2.0e12,
            source=_LLAMA2,
            note="'7B' is a round name; the shape is LLaMA 7B's, whose exact count is 6,738,415,616.",
        ),
        _llama("llama2-13b", 40, 5120, 40, 13824, 13e9, context=4096, tokens=2.0e12, source=_LLAMA2),
        _llama(
            "llama2-70b",
            80,
            8192,
            64,
            28672,
            70e9,
            context=4096,
            tokens=2.0e12,
            kv_heads=8,
            source=_LLAMA2,
            note="'70B' is a round name; with 8 key/value heads the exact count is 68,976,648,192.",
        ),
        _bloom_like("bloom-176b", 70, 14336, 112, 250880, 176e9, 366e9, _BLOOM, "BLOOM 176B, 70 layers x 14336, ALiBi"),
        _bloom_like("bloom-7b1", 30, 4096, 32, 250880, 7.1e9, 350e9, _BLOOM, "BLOOM 7.1B, 30 layers x 4096, ALiBi"),
        _opt("opt-125m", 12, 768, 12, 125e6),
        _opt("opt-1.3b", 24, 2048, 32, 1.3e9),
        _opt("opt-6.7b", 32, 4096, 32, 6.7e9),
        _opt("opt-13b", 40, 5120, 40, 13e9),
        _opt("opt-30b", 48, 7168, 56, 30e9),
        _opt("opt-66b", 64, 9216, 72, 66e9),
        _opt("opt-175b", 96, 12288, 96, 175e9),
        _deepmind("chinchilla-70b", 80, 8192, 64, 70e9, 1.4e12, _CHINCHILLA, "Chinchilla 70B, 80 layers x 8192"),
        _deepmind("gopher-280b", 80, 16384, 128, 280e9, 300e9, _GOPHER, "Gopher 280B, 80 layers x 16384"),
        _palm("palm-8b", 32, 4096, 16, 8.63e9),
        _palm("palm-62b", 64, 8192, 32, 62.50e9),
        _palm("palm-540b", 118, 18432, 48, 540.35e9),
        _bloom_like(
            "bloomberggpt-50b",
            70,
            7680,
            40,
            131072,
            50.6e9,
            569e9,
            _BLOOMBERG,
            "BloombergGPT 50B, 70 layers x 7680, ALiBi, trained on a 51% financial / 49% public mix",
        ),
    ]


@hookimpl
def genaisdk_presets() -> Iterator[Preset]:
    yield from catalog()
