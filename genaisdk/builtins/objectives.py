"""Built-in pretraining objectives: masked LM, causal LM, span corruption.

`loss_fraction` is the number of positions that carry a loss per input token; it is what a
token of data is worth to the loss, and what sizes the output layer's work on the targets.
"""

from __future__ import annotations

from collections.abc import Iterator

from genaisdk.hookspecs import hookimpl
from genaisdk.records import Objective

_JAX = "genaisdk.backend.jax.objectives:"

MLM_MASK_RATE = 0.15
"""BERT masks 15% of tokens (80% [MASK], 10% random, 10% unchanged): Devlin et al. 2019, Sec. 3.1."""

T5_NOISE_DENSITY = 0.15
T5_MEAN_SPAN = 3.0
"""T5 corrupts 15% of tokens in spans of mean length 3: Raffel et al. 2020, Sec. 3.3.4 and Table 7."""


def span_corruption_target_fraction(noise_density: float, mean_span: float) -> float:
    """Target length per input token for span corruption.

    The targets hold the corrupted tokens (`noise_density` per input token) plus one
    sentinel per span (`noise_density / mean_span`), Raffel et al. 2020, Sec. 3.1.4 and
    Fig. 2; the closing end-of-sequence token is ignored. T5's defaults give 0.15 + 0.05 = 0.2.
    """
    return noise_density + noise_density / mean_span


@hookimpl
def genaisdk_objectives() -> Iterator[Objective]:
    yield Objective(
        name="masked-lm",
        description="Predict masked tokens from both sides (BERT's MLM)",
        families=("encoder",),
        noise_density=MLM_MASK_RATE,
        mean_span=1.0,
        loss_fraction=MLM_MASK_RATE,
        jax_loss=_JAX + "masked_lm",
        source="Devlin et al. 2019, 'BERT: Pre-training of Deep Bidirectional Transformers', Sec. 3.1 (Task #1)",
        aliases=("mlm",),
    )
    yield Objective(
        name="causal-lm",
        description="Predict every next token from the ones before it",
        families=("decoder",),
        noise_density=0.0,
        mean_span=1.0,
        loss_fraction=1.0,
        jax_loss=_JAX + "causal_lm",
        source="Radford et al. 2018, 'Improving Language Understanding by Generative Pre-Training', Sec. 3.1, Eq. 1",
        aliases=("clm", "next-token"),
    )
    yield Objective(
        name="span-corruption",
        description="Replace spans with sentinels; the decoder writes the missing spans (T5)",
        families=("encoder_decoder",),
        noise_density=T5_NOISE_DENSITY,
        mean_span=T5_MEAN_SPAN,
        loss_fraction=span_corruption_target_fraction(T5_NOISE_DENSITY, T5_MEAN_SPAN),
        jax_loss=_JAX + "span_corruption",
        source="Raffel et al. 2020, 'Exploring the Limits of Transfer Learning' (T5), Sec. 3.1.4 and 3.3.4",
        aliases=("t5-denoising",),
    )
