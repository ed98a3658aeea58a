"""Precision policies: which dtype the weights are stored in, which one the math runs in.

A policy is read off a `genaisdk.records.Precision` record, never from its name, so a
plugin precision with the same fields behaves the same way:

- ``master_bytes > 0`` (mixed precision): the trained weights are kept in fp32 (the
  "master copy" of Micikevicius et al. 2018, "Mixed Precision Training", Sec. 3.1) and cast
  to the compute dtype for each forward/backward pass; the optimizer updates the fp32 copy.
- otherwise the weights are stored in the record's ``param_dtype`` (fp32; pure bf16).
- logits, softmax, normalization statistics and the loss are always computed in fp32
  (Micikevicius et al. 2018, Sec. 3.3: reductions and large sums in fp32), whatever the
  compute dtype.
- ``loss_scaling``: the loss is multiplied by a dynamic scale before differentiation so that
  small fp16 gradients do not flush to zero (Micikevicius et al. 2018, Sec. 3.2); see
  `genaisdk.backend.jax.loss_scale`.
- fp32 matrix products run at full precision (``precision='highest'``); a ``tf32`` compute
  dtype asks for TensorFloat-32 products instead (NVIDIA A100 whitepaper, 2020: fp32
  range with a 10-bit mantissa). On a CPU both are plain fp32.

fp8 training needs per-tensor scaling recipes this backend does not implement, and int8 /
int4 records are for frozen or served weights only (``trainable=False``): both raise
`UnsupportedPrecision` with a message that says so.
"""

from __future__ import annotations

from typing import Any

import attrs
import jax
import jax.numpy as jnp

from genaisdk.backend.jax.config import UnsupportedError
from genaisdk.records import Precision

_DTYPES = {
    "fp32": jnp.float32,
    "tf32": jnp.float32,
    "bf16": jnp.bfloat16,
    "fp16": jnp.float16,
}


class UnsupportedPrecision(UnsupportedError):
    """The precision record names a format the JAX backend cannot train in."""


@attrs.frozen(kw_only=True)
class Policy:
    """Dtypes of one run. ``param_dtype`` is what the optimizer updates."""

    name: str
    param_dtype: Any = jnp.float32
    compute_dtype: Any = jnp.float32
    output_dtype: Any = jnp.float32
    """Logits, softmax, normalization statistics and loss."""
    loss_scaling: bool = False
    matmul_precision: str | None = "highest"
    """Passed to every einsum: 'highest' (fp32), 'tensorfloat32', or None (the dtype's default)."""

    @property
    def mixed(self) -> bool:
        return jnp.dtype(self.param_dtype) != jnp.dtype(self.compute_dtype)

    def cast_to_compute(self, tree: Any) -> Any:
        """The working copy: floating leaves cast to the compute dtype (a no-op when equal).
        Quantized weights (with a `dequantize` method) are left as they are: their scales
        keep their own dtype and they are dequantized where they are used."""
        dtype = self.compute_dtype

        def cast(x: Any) -> Any:
            if hasattr(x, "dequantize"):
                return x
            if jnp.issubdtype(x.dtype, jnp.floating) and x.dtype != dtype:
                return x.astype(dtype)
            return x

        return jax.tree.map(cast, tree, is_leaf=lambda x: hasattr(x, "dequantize"))

    def cast_to_param(self, tree: Any) -> Any:
        dtype = self.param_dtype
        return jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)


def _dtype(record: Precision, field: str) -> Any:
    value = getattr(record, field)
    if value not in _DTYPES:
        raise UnsupportedPrecision(
            f"precision '{record.name}' computes or stores weights in {value!r}, which the JAX backend "
            f"cannot train in (supported: {', '.join(sorted(_DTYPES))}); "
            "it remains available to `genai plan`"
        )
    return _DTYPES[value]


def policy_from_record(record: Precision) -> Policy:
    """The policy a Precision record asks for (see the module docstring for the rules)."""
    if not record.trainable:
        raise UnsupportedPrecision(
            f"precision '{record.name}' is for frozen or served weights only (trainable = false); "
            "train in fp32, bf16 or fp16 and serve in it"
        )
    compute = _dtype(record, "compute_dtype")
    param = jnp.float32 if record.master_bytes > 0 else _dtype(record, "param_dtype")
    if record.compute_dtype == "tf32":
        matmul = "tensorfloat32"
    elif jnp.dtype(compute) == jnp.float32:
        matmul = "highest"
    else:
        matmul = None
    return Policy(
        name=record.key,
        param_dtype=param,
        compute_dtype=compute,
        output_dtype=jnp.float32,
        loss_scaling=bool(record.loss_scaling),
        matmul_precision=matmul,
    )
