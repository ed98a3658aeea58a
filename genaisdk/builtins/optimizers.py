"""Built-in optimizers: state bytes per trainable parameter, and the optax factory to build each.

`state_bytes` counts the optimizer's own moments only, in `state_dtype`; an fp32 master copy
of the weights belongs to the precision record (`master_bytes`). `update_buffers` counts the
parameter-sized temporaries one update materializes at the state dtype: PyTorch's
multi-tensor Adam computes sqrt(v̂) + ε for every parameter at once (`torch/optim/adam.py`,
`_multi_tensor_adam`: `exp_avg_sq_sqrt = torch._foreach_sqrt(...)`), and an optax update
returns a parameter-sized update tree; SGD updates in place. `defaults` are keyword
arguments of the optax factory, with the values the cited papers trained with.
"""

from __future__ import annotations

from collections.abc import Iterator

from genaisdk.hookspecs import hookimpl
from genaisdk.records import DTYPE_BYTES, Optimizer

_OPTAX = "genaisdk.backend.jax.optimizers:"

ADAFACTOR_MIN_MATRIX_SIDE = 512
"""The smallest matrix side the Adafactor state estimate below is written for."""


def adafactor_state_bytes(min_side: int = ADAFACTOR_MIN_MATRIX_SIDE, vector_share: float = 0.001) -> float:
    """Adafactor's state per parameter, an upper bound for transformer weights.

    Adafactor keeps no first moment (beta1 = 0) and factors the second moment of an n x m
    matrix into a row and a column accumulator, n + m fp32 values instead of n·m (Shazeer &
    Stern 2018, Sec. 3-4 and Algorithm 4). Per parameter that is 4·(1/n + 1/m) bytes, at most
    8 / min(n, m). Vectors (biases, norm scales) keep a full 4-byte second moment but are a
    small `vector_share` of a transformer's parameters (GPT-2 small: about 0.08%).
    With the defaults: 8/512 + 0.004 = 0.0196 bytes per parameter.
    """
    return 2 * DTYPE_BYTES["fp32"] / min_side + vector_share * DTYPE_BYTES["fp32"]


@hookimpl
def genaisdk_optimizers() -> Iterator[Optimizer]:
    yield Optimizer(
        name="adamw",
        description="Adam with decoupled weight decay",
        state_bytes=2 * DTYPE_BYTES["fp32"],
        update_buffers=1.0,
        state_note="first and second moments, fp32",
        optax_factory=_OPTAX + "adamw",
        defaults={"b1": 0.9, "b2": 0.95, "eps": 1e-8, "weight_decay": 0.1},
        source="Loshchilov & Hutter 2019, 'Decoupled Weight Decay Regularization', Algorithm 2; "
        "hyperparameters: Brown et al. 2020 (GPT-3), App. B",
    )
    yield Optimizer(
        name="adam",
        description="Adam (weight decay, if any, added to the gradient)",
        state_bytes=2 * DTYPE_BYTES["fp32"],
        update_buffers=1.0,
        state_note="first and second moments, fp32",
        optax_factory=_OPTAX + "adam",
        defaults={"b1": 0.9, "b2": 0.999, "eps": 1e-8},
        source="Kingma & Ba 2015, 'Adam: A Method for Stochastic Optimization', Algorithm 1",
    )
    yield Optimizer(
        name="sgd",
        description="Plain stochastic gradient descent",
        state_bytes=0.0,
        state_note="no state",
        optax_factory=_OPTAX + "sgd",
        defaults={},
        source="Robbins & Monro 1951",
    )
    yield Optimizer(
        name="sgd-momentum",
        description="SGD with heavy-ball momentum",
        state_bytes=DTYPE_BYTES["fp32"],
        state_note="one momentum buffer, fp32",
        optax_factory=_OPTAX + "sgd_momentum",
        defaults={"momentum": 0.9},
        source="Sutskever et al. 2013, 'On the importance of initialization and momentum in deep learning', Eq. 1-2",
        aliases=("momentum",),
    )
    yield Optimizer(
        name="adafactor",
        description="Adafactor: factored second moment, no first moment",
        state_bytes=adafactor_state_bytes(),
        update_buffers=1.0,
        state_note=(
            "row and column second-moment accumulators per matrix, 4·(1/n + 1/m) bytes per parameter; "
            "bounded for matrices with both sides >= 512, plus full second moments of vectors "
            "(0.1% of parameters); no first moment"
        ),
        optax_factory=_OPTAX + "adafactor",
        defaults={"decay_rate": 0.8, "clipping_threshold": 1.0},
        source="Shazeer & Stern 2018, 'Adafactor: Adaptive Learning Rates with Sublinear Memory Cost', "
        "Sec. 3-4, Algorithm 4",
    )
    yield Optimizer(
        name="lion",
        description="Lion: sign of an interpolated momentum",
        state_bytes=DTYPE_BYTES["fp32"],
        update_buffers=1.0,
        state_note="one momentum buffer, fp32",
        optax_factory=_OPTAX + "lion",
        defaults={"b1": 0.9, "b2": 0.99},
        source="Chen et al. 2023, 'Symbolic Discovery of Optimization Algorithms', Sec. 2, Program 1",
    )
    yield Optimizer(
        name="adam-8bit",
        description="Adam with block-wise 8-bit quantized moments",
        state_bytes=2 * DTYPE_BYTES["int8"],
        state_dtype="int8",
        state_note=(
            "two moments, 8 bits each; the fp32 absmax of each 2048-value block adds "
            "2·4/2048 = 0.004 bytes per parameter, not counted; the update dequantizes block by "
            "block inside one kernel, so it needs no parameter-sized temporary"
        ),
        optax_factory=_OPTAX + "adam_8bit",
        defaults={"b1": 0.9, "b2": 0.999, "eps": 1e-8},
        source="Dettmers et al. 2022, '8-bit Optimizers via Block-wise Quantization', ICLR, Sec. 2",
        aliases=("adam8bit",),
    )
