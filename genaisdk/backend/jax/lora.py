"""LoRA adapters over a frozen base, and QLoRA's quantized base.

LoRA (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models", Sec. 4.1)
keeps a weight W frozen and trains a low-rank update: the product x·W becomes
x·W + (alpha / r)·(x·A)·B, with A [d_in, r] and B [r, d_out]. genaisdk's kernels are
einsum-shaped with their input axes first (q [e, h, d], o [h, d, e], wi [e, f]), so an
adapter of kernel [*in, *out] is A [*in, r] and B [r, *out], each with the kernel's leading
'layers' axis when the kernel is stacked:

- A starts Kaiming-uniform as PEFT's (`kaiming_uniform_(a=sqrt(5))`: U(-1/sqrt(fan_in),
  1/sqrt(fan_in)), fan_in the product of the input axes), B starts at zero, so the adapted
  model is the base model at step 0 (Hu et al. 2021, Sec. 4.1);
- dropout (`lora_dropout`) is applied to the adapter's input only, a fresh mask per adapted
  matrix, layer and micro-step;
- the adapted product never forms W + A·B: `LoraWeight` stands in for the kernel inside
  the parameter tree and `genaisdk.backend.jax.layers.einsum` asks it for the product, which
  is the frozen product plus the two thin ones. The train step differentiates the adapters
  alone, with the frozen base an input that is not differentiated (`Adapters.attach`), so no
  gradient of a base weight exists anywhere in the compiled step.

Targets are projection names (`genaisdk.estimate.adaptation`): q, k, v, o adapt the
attention projections (an encoder-decoder's cross-attention too, as the planner counts),
gate, up, down the feed-forward's `wi_gate`, `wi`, `wo`. A target the model lacks (gate
in a GELU FFN) adds nothing.

QLoRA (Dettmers et al. 2023, Sec. 3) stores the frozen base 4-bit NormalFloat with
double-quantized block constants; `adapt.frozen_precision = int8` stores it per-channel
int8 instead. Both are `genaisdk.backend.jax.quantize`'s formats and are dequantized in its
one place (`layers.dense`), one layer at a time inside the step. As bitsandbytes does for
QLoRA, only the blocks' linear layers are quantized: the embeddings, the output head, the
norms and biases stay in the compute dtype. The frozen base of any adapter run is kept in
the compute dtype (bf16 under mixed precision): it needs no fp32 master copy. The adapters
are created in the policy's `param_dtype`: fp32 under mixed precision, where they are
their own master copy (cast to the compute dtype inside each product, so their gradients
are fp32 too), the precision's dtype otherwise; the plan counts them by the same rule
(`genaisdk.estimate.adaptation.adapter_state_bytes`), and `genai measure` compares the two.

Sharding: an adapter follows its kernel's logical axes (A takes the kernel's input axes, B
its output axes; the rank axis is replicated), so a rule that shards the kernel shards its
adapters the same way. A quantized base is replicated on every device.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from genaisdk.backend.jax import layers as nn
from genaisdk.backend.jax.config import AdapterConfig, BackendError
from genaisdk.backend.jax.model import ParamSpec, is_spec, path_name

TARGET_LEAVES: dict[str, tuple[tuple[str, str], ...]] = {
    "q": (("attn", "q"), ("cross", "q")),
    "k": (("attn", "k"), ("cross", "k")),
    "v": (("attn", "v"), ("cross", "v")),
    "o": (("attn", "o"), ("cross", "o")),
    "gate": (("mlp", "wi_gate"),),
    "up": (("mlp", "wi"),),
    "down": (("mlp", "wo"),),
}
"""Projection name -> the (block, leaf) kernels it adapts in every block of every stack."""

INPUT_AXES = {"q": 1, "k": 1, "v": 1, "o": 2, "wi": 1, "wi_gate": 1, "wo": 1}
"""How many leading axes of each kernel are its input (contracted) axes: o [h, d, e] reads
the heads' outputs [h, d]; every other kernel reads the embedding or the FFN width."""

A, B = "lora_a", "lora_b"
RANK_AXIS = "lora_rank"
"""The logical name of the rank axis: no partition rule names it, so it is replicated."""



# ----------------------------------------------------------------------------- the adapted kernel


def _free_letter(spec: str) -> str:
    for letter in "rzyxwqpnmlkjiu":
        if letter not in spec:
            return letter
    raise ValueError(f"no free einsum letter in {spec!r}")


@jax.tree_util.register_pytree_node_class
class LoraWeight:
    """A frozen kernel `base` with its adapters `a` [*in, r] and `b` [r, *out] (each with a
    leading layers axis when stacked) and, for dropout, a raw PRNG key (uint32 [..., 2]).
    A pytree node, so `jax.lax.scan` slices all four one layer at a time."""

    def __init__(self, base: Any, a: Any, b: Any, key: Any = None, *, scale: float, rate: float = 0.0):
        self.base, self.a, self.b, self.key = base, a, b, key
        self.scale = float(scale)
        self.rate = float(rate)

    def tree_flatten(self) -> tuple[tuple, tuple]:
        return (self.base, self.a, self.b, self.key), (self.scale, self.rate)

    @classmethod
    def tree_unflatten(cls, aux: tuple, children: tuple) -> LoraWeight:
        return cls(*children, scale=aux[0], rate=aux[1])

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.base.shape)

    def adapted_einsum(self, spec: str, operands: tuple, index: int, *, policy: Any, out: Any = None) -> jax.Array:
        """`einsum(spec, *operands)` with this kernel as operand `index` (of two): the frozen
        product plus scale·((dropout(x)·A)·B), the adapter's two thin products."""
        inputs, result = spec.replace(" ", "").split("->")
        terms = inputs.split(",")
        if len(terms) != 2:
            raise ValueError(f"an adapted kernel takes part in two-operand products, not {spec!r}")
        frozen = list(operands)
        frozen[index] = self.base
        y = nn.einsum(spec, *frozen, policy=policy, out=out)
        x, x_terms, w_terms = operands[1 - index], terms[1 - index], terms[index]
        contracted = "".join(c for c in w_terms if c in x_terms)
        produced = "".join(c for c in w_terms if c not in x_terms)
        kept = "".join(c for c in x_terms if c not in contracted)
        r = _free_letter(spec)
        if self.rate > 0.0 and self.key is not None:
            keep = 1.0 - self.rate
            mask = jax.random.bernoulli(jax.random.wrap_key_data(self.key), keep, x.shape)
            x = jnp.where(mask, x / jnp.asarray(keep, x.dtype), jnp.zeros((), x.dtype))
        low = nn.einsum(f"{x_terms},{contracted}{r}->{kept}{r}", x, self.a, policy=policy)
        delta = nn.einsum(f"{kept}{r},{r}{produced}->{result}", low, self.b, policy=policy, out=out)
        return y + (delta * jnp.asarray(self.scale, delta.dtype)).astype(y.dtype)


# ----------------------------------------------------------------------------- the layout


def _get(tree: Mapping, path: tuple[str, ...]) -> Any:
    for key in path:
        tree = tree[key]
    return tree


def _set(tree: dict, path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


def _copy_dicts(tree: Any) -> Any:
    """The nested dicts of `tree` copied (leaves shared), so paths can be replaced."""
    if isinstance(tree, Mapping):
        return {k: _copy_dicts(v) for k, v in tree.items()}
    return tree


def base_dtype(policy: Any) -> Any:
    """The dtype a frozen base is kept in: the compute dtype (no fp32 master copy)."""
    return policy.compute_dtype


class Adapters:
    """The adapters of one model for one `AdapterConfig`: their specs, initialization,
    and how they join a frozen base (`attach`, `merge`)."""

    def __init__(self, model: Any, config: AdapterConfig):
        self.model = model
        self.config = config
        specs = model.specs()
        self._targets: list[tuple[tuple[str, ...], ParamSpec]] = []
        for stack, sub in specs.items():
            layers = sub.get("layers") if isinstance(sub, Mapping) else None
            if not isinstance(layers, Mapping):
                continue
            for target in config.targets:
                for block, leaf in TARGET_LEAVES[target]:
                    spec = layers.get(block, {}).get(leaf) if isinstance(layers.get(block), Mapping) else None
                    if spec is not None:
                        self._targets.append(((stack, "layers", block, leaf), spec))
        if not self._targets:
            raise BackendError(
                f"LoRA targets {', '.join(config.targets)} match no matrix of this model; "
                "choose among q, k, v, o, gate, up, down"
            )

    # -- specs --------------------------------------------------------------------------------

    def targets(self) -> list[tuple[tuple[str, ...], ParamSpec]]:
        """(path of the adapted kernel, its ParamSpec), in a stable order."""
        return list(self._targets)

    def paths(self) -> list[str]:
        return ["/".join(path) for path, _ in self._targets]

    def specs(self) -> dict:
        """The adapter tree with a ParamSpec at every leaf: at each adapted kernel's path,
        {'lora_a': [layers, *in, r], 'lora_b': [layers, r, *out]}."""
        r = self.config.rank
        tree: dict = {}
        for path, spec in self._targets:
            lead = 1 if spec.axes and spec.axes[0] == "layers" else 0
            n_in = INPUT_AXES[path[-1]]
            cut = lead + n_in
            name = "/".join(path)
            fan_in = int(math.prod(spec.shape[lead:cut]))
            _set(
                tree,
                path,
                {
                    A: ParamSpec(
                        shape=(*spec.shape[:cut], r),
                        axes=(*spec.axes[:cut], RANK_AXIS),
                        init="uniform",
                        std=1.0 / math.sqrt(fan_in),
                        name=f"{name}/{A}",
                    ),
                    B: ParamSpec(
                        shape=(*spec.shape[:lead], r, *spec.shape[cut:]),
                        axes=(*spec.axes[:lead], RANK_AXIS, *spec.axes[cut:]),
                        init="zeros",
                        name=f"{name}/{B}",
                    ),
                },
            )
        return tree

    def num_params(self) -> int:
        return int(sum(s.size for s in jax.tree.leaves(self.specs(), is_leaf=is_spec)))

    def abstract(self, dtype: Any = jnp.float32) -> dict:
        return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, dtype), self.specs(), is_leaf=is_spec)

    def init(self, rng: jax.Array, dtype: Any = jnp.float32, shardings: Any = None) -> dict:
        """Fresh adapters: A uniform in ±1/sqrt(fan_in) (PEFT's Kaiming-uniform), B zeros;
        each leaf drawn from its own key (a hash of its path), created in its sharding."""
        flat, treedef = jax.tree_util.tree_flatten(self.specs(), is_leaf=is_spec)
        places = [None] * len(flat) if shardings is None else treedef.flatten_up_to(shardings)
        leaves = []
        for spec, sharding in zip(flat, places, strict=True):
            leaves.append(_initializer(spec.init, spec.shape, jnp.dtype(dtype), spec.std, sharding)(
                rng, jnp.uint32(zlib.crc32(spec.name.encode()) & 0x7FFFFFFF)
            ))
        return jax.tree.unflatten(treedef, leaves)

    # -- the adapted model ------------------------------------------------------------------------

    def attach(self, base: Mapping, adapters: Mapping, key: jax.Array | None = None) -> dict:
        """The model's parameter tree with a `LoraWeight` (frozen kernel + adapters) at every
        adapted path; `key` (a PRNG key) draws the dropout masks, None: no dropout."""
        tree = _copy_dicts(base)
        rate = self.config.dropout if key is not None else 0.0
        for path, spec in self._targets:
            pair = _get(adapters, path)
            leaf_key = None
            if rate > 0.0:
                leaf_key = jax.random.fold_in(key, zlib.crc32("/".join(path).encode()) & 0x7FFFFFFF)
                if spec.axes and spec.axes[0] == "layers":
                    leaf_key = jax.random.split(leaf_key, spec.shape[0])
                leaf_key = jax.random.key_data(leaf_key)
            _set(tree, path, LoraWeight(_get(base, path), pair[A], pair[B], leaf_key, scale=self.config.scale, rate=rate))
        return tree

    def delta(self, adapters: Mapping, path: tuple[str, ...], dtype: Any = jnp.float32) -> jax.Array:
        """scale·A·B of one adapted kernel, in the kernel's shape and `dtype`."""
        pair = _get(adapters, path)
        a = jnp.asarray(pair[A], jnp.float32)
        b = jnp.asarray(pair[B], jnp.float32)
        r = self.config.rank
        n_in = INPUT_AXES[path[-1]]
        stacked = a.ndim - 1 - n_in
        outer = a.shape[:stacked]
        in_shape, out_shape = a.shape[stacked:-1], b.shape[stacked + 1 :]
        product = jnp.einsum(
            "...ir,...ro->...io",
            a.reshape(*outer, int(math.prod(in_shape)), r),
            b.reshape(*outer, r, int(math.prod(out_shape))),
            precision="highest",
        )
        return (self.config.scale * product).reshape(*outer, *in_shape, *out_shape).astype(dtype)

    def merge(self, base: Mapping, adapters: Mapping, dtype: Any = jnp.float32) -> dict:
        """Plain parameters W + scale·A·B at every adapted path (a quantized kernel
        dequantized first: the weights the adapters were trained against), in `dtype`;
        other leaves (dequantized where quantized) cast to `dtype`."""

        def plain(x: Any) -> Any:
            if hasattr(x, "dequantize"):
                return x.dequantize(dtype)
            return jnp.asarray(x).astype(dtype) if jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating) else x

        tree = jax.tree.map(plain, _copy_dicts(base), is_leaf=lambda x: hasattr(x, "dequantize"))
        for path, _ in self._targets:
            _set(tree, path, (_get(tree, path).astype(jnp.float32) + self.delta(adapters, path)).astype(dtype))
        return tree

    def step_keys(self, rng: jax.Array, step: jax.Array, count: int) -> jax.Array | None:
        """Dropout keys of one optimizer step's `count` micro-steps (None without dropout),
        drawn from the run's key data `rng` and the step number."""
        if self.config.dropout <= 0.0:
            return None
        key = jax.random.fold_in(jax.random.wrap_key_data(rng), step)
        return jax.random.split(key, count)

    # -- the frozen base --------------------------------------------------------------------------

    def quantized_paths(self, specs: Any = None) -> list[str]:
        """Parameter paths a k-bit base stores quantized (`_quantized_leaf`)."""
        specs = self.model.specs() if specs is None else specs
        flat = jax.tree_util.tree_flatten_with_path(specs, is_leaf=is_spec)[0]
        return [path_name(p) for p, s in flat if _quantized_leaf(path_name(p), s)]

    def freeze(self, params: Any) -> Any:
        """The frozen base as training keeps it: quantized (`config.frozen`) where a k-bit
        base is, else `params` unchanged. Quantizing runs on the host, one kernel at a time."""
        fmt = self.config.frozen
        if fmt is None:
            return params
        from genaisdk.backend.jax.quantize import quantize_int8, quantize_nf4
        from genaisdk.estimate.quantization import int8_contracted_axes

        flat, treedef = jax.tree_util.tree_flatten_with_path(params)
        specs = treedef.flatten_up_to(self.model.specs())
        out = []
        for (path, leaf), spec in zip(flat, specs, strict=True):
            if not _quantized_leaf(path_name(path), spec):
                out.append(leaf)
            elif fmt == "nf4":
                out.append(quantize_nf4(leaf, lead=1 if spec.axes[0] == "layers" else 0))
            else:
                out.append(quantize_int8(leaf, axes=int8_contracted_axes(spec.axes)))
        return jax.tree.unflatten(treedef, out)

    def abstract_frozen(self, dtype: Any) -> Any:
        """The frozen base as ShapeDtypeStructs (quantized kernels as `QuantizedArray`s of
        them), without computing anything: what `Trainer.lower` compiles against."""
        from genaisdk.backend.jax.quantize import abstract_quantized

        fmt = self.config.frozen
        flat, treedef = jax.tree_util.tree_flatten_with_path(self.model.specs(), is_leaf=is_spec)
        out = []
        for path, spec in flat:
            if fmt is not None and _quantized_leaf(path_name(path), spec):
                out.append(abstract_quantized(spec, fmt))
            else:
                out.append(jax.ShapeDtypeStruct(spec.shape, dtype))
        return jax.tree.unflatten(treedef, out)


def _quantized_leaf(name: str, spec: ParamSpec) -> bool:
    """Whether a k-bit base stores this parameter quantized: the blocks' matrices, by the
    planner's one rule (`genaisdk.estimate.quantization.kbit_base_quantized`), so the plan's
    frozen-weight bytes count exactly what is stored here."""
    from genaisdk.estimate.quantization import kbit_base_quantized

    return kbit_base_quantized(spec.axes)


_INITIALIZERS: dict = {}


def _initializer(init: str, shape: tuple, dtype: Any, bound: float, sharding: Any) -> Any:
    """A compiled initializer for one kind of adapter leaf (uniform in ±bound, or zeros)."""
    cache_key = (init, shape, dtype, bound, sharding)
    make = _INITIALIZERS.get(cache_key)
    if make is None:

        def draw(rng: jax.Array, path_hash: jax.Array) -> jax.Array:
            if init == "zeros":
                return jnp.zeros(shape, dtype)
            key = jax.random.fold_in(rng, path_hash)
            return jax.random.uniform(key, shape, jnp.float32, -bound, bound).astype(dtype)

        make = jax.jit(draw, out_shardings=sharding) if sharding is not None else jax.jit(draw)
        _INITIALIZERS[cache_key] = make
    return make


def iter_pairs(adapters: Mapping, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Mapping]]:
    """(kernel path, {'lora_a', 'lora_b'}) of every adapter in a tree."""
    for key, value in adapters.items():
        if isinstance(value, Mapping) and A in value and B in value:
            yield (*prefix, key), value
        elif isinstance(value, Mapping):
            yield from iter_pairs(value, (*prefix, key))


def host_tree(tree: Any) -> Any:
    """Every array of `tree` as a host NumPy array."""
    return jax.tree.map(lambda x: np.asarray(jax.device_get(x)), tree)
