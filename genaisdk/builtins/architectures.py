"""Built-in architectures: encoder, decoder and encoder-decoder transformers.

A plugin module like any other (see `genaisdk.hookspecs.genaisdk_architectures`). Each
record binds the exact counting, FLOP and activation-memory functions of
`genaisdk.estimate` to its family:

- `count_params`: `genaisdk.estimate.params.count_params` (embeddings, tied or untied
  output, biases, LayerNorm or RMSNorm, GELU or gated FFN, multi-head / multi-query /
  grouped-query attention, cross-attention);
- `flops_per_token`: model FLOPs per training token, 6·N + 12·L·H·Q·T (Chowdhery et al.
  2022, App. B), no causal halving;
- `activation_bytes`: Korthikanti et al. 2022's per-layer accounting, by part.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from genaisdk.dims import Dimensions
from genaisdk.hookspecs import hookimpl
from genaisdk.records import Architecture, ParamCount

JAX_MODEL = "genaisdk.backend.jax.model:build"


def _bind(family: str):
    """The three callables of one family, as named functions (readable in tracebacks).

    The estimators are imported when first called: they need numpy, and loading the
    registry (e.g. for `genai check`) must not pay for it."""

    def params(dims: Dimensions) -> ParamCount:
        from genaisdk.estimate.params import count_params

        return count_params(dims, family)

    def flops_per_token(dims: Dimensions, context: int) -> float:
        from genaisdk.estimate.flops import model_flops_per_token

        return float(model_flops_per_token(dims, family=family, context=context).total)

    def activations(
        dims: Dimensions,
        *,
        seq,
        micro_batch,
        recompute: str = "selective",
        flash: bool = True,
        bytes_per_value=2.0,
        tensor_parallel=1,
        **options,
    ) -> Mapping[str, float]:
        from genaisdk.estimate.activations import activation_memory

        return activation_memory(
            dims,
            family=family,
            seq=seq,
            micro_batch=micro_batch,
            recompute=recompute,
            flash=flash,
            bytes_per_value=bytes_per_value,
            tensor_parallel=tensor_parallel,
            **options,
        )

    for fn, name in ((params, "count_params"), (flops_per_token, "flops_per_token"), (activations, "activation_bytes")):
        fn.__name__ = fn.__qualname__ = f"{family}_{name}"
    return params, flops_per_token, activations


def _record(name: str, family: str, description: str, source: str, aliases: tuple[str, ...] = ()) -> Architecture:
    params, flops, activations = _bind(family)
    return Architecture(
        name=name,
        family=family,
        description=description,
        source=source,
        aliases=aliases,
        count_params=params,
        flops_per_token=flops,
        activation_bytes=activations,
        jax_model=JAX_MODEL,
    )


@hookimpl
def genaisdk_architectures() -> Iterator[Architecture]:
    yield _record(
        "encoder",
        "encoder",
        "Bidirectional transformer encoder (BERT, RoBERTa): classification, tagging, extractive QA, embeddings",
        "Devlin et al. 2019, 'BERT', Sec. 3; Vaswani et al. 2017, Sec. 3.1",
        aliases=("encoder-only",),
    )
    yield _record(
        "decoder",
        "decoder",
        "Causal transformer decoder (GPT, LLaMA, PaLM): generation, chat, code",
        "Radford et al. 2018/2019 (GPT, GPT-2); Brown et al. 2020, Sec. 2.1; Touvron et al. 2023, Sec. 2.2",
        aliases=("decoder-only",),
    )
    yield _record(
        "encoder-decoder",
        "encoder_decoder",
        "Encoder plus a causal decoder with cross-attention (T5, BART): summarization, translation, generative QA",
        "Vaswani et al. 2017, Sec. 3.1; Raffel et al. 2020 (T5), Sec. 3.2; Lewis et al. 2020 (BART), Sec. 2.1",
        aliases=("seq2seq",),
    )
