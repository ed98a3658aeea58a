"""The plugin hooks: what a plugin may implement, with the exact signature of each.

A plugin is any module or object with functions named after these hooks and marked with
`hookimpl`. It reaches the registry through an entry point in the group `genaisdk`:

    # pyproject.toml of the plugin's distribution
    [project.entry-points.genaisdk]
    my-gpus = "my_gpus"

The built-in catalogs (`genaisdk.builtins.*`) are plugin modules of exactly this shape.

Registration hooks take no arguments and return (or yield) records of one class from
`genaisdk.records`. Every implementation is called, in plugin order; the registry normalizes
names, fills `provider`, rejects duplicates (naming both providers) and sorts by name. A hook
that raises, or returns something that is not a record of its kind, marks its plugin as
failed: none of that plugin's records are used and one warning says why.

`genaisdk_validate(spec)` is the one hook with an argument: it receives the built `Spec` and
returns `Diagnostic`s (use codes that start with your plugin's own prefix).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    from genaisdk.diagnostics import Diagnostic
    from genaisdk.records import (
        Adaptation,
        Architecture,
        Hardware,
        Objective,
        Optimizer,
        Precision,
        Preset,
        Strategy,
        Task,
    )
    from genaisdk.spec.model import Spec

PROJECT = "genaisdk"
"""The pluggy project name; also the entry-point group."""

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
"""Mark a plugin function as the implementation of the hook of the same name."""


@hookspec
def genaisdk_tasks() -> Iterable[Task]:
    """Register tasks a project can name (`task = summarization`).

    Signature: `genaisdk_tasks() -> Iterable[genaisdk.records.Task]`.

    Example::

        @hookimpl
        def genaisdk_tasks():
            yield Task(name="contract-review", family="encoder", objective="masked-lm",
                       examples=("flag risky clauses",), source="definition")
    """


@hookspec
def genaisdk_architectures() -> Iterable[Architecture]:
    """Register model architectures: how to count, cost and build a `Dimensions`.

    Signature: `genaisdk_architectures() -> Iterable[genaisdk.records.Architecture]`.
    `count_params`, `flops_per_token` and `activation_bytes` are plain callables; a JAX
    model factory is named by a dotted path (`jax_model="pkg.module:build"`) so loading the
    registry never imports JAX. Extra spec keys go in `extra_dims`.

    Example::

        @hookimpl
        def genaisdk_architectures():
            yield Architecture(name="moe-decoder", family="decoder",
                               count_params=count, flops_per_token=flops,
                               activation_bytes=activations,
                               extra_dims=(DimensionField(name="experts"),))
    """


@hookspec
def genaisdk_objectives() -> Iterable[Objective]:
    """Register pretraining objectives and the families they fit.

    Signature: `genaisdk_objectives() -> Iterable[genaisdk.records.Objective]`.

    Example::

        @hookimpl
        def genaisdk_objectives():
            yield Objective(name="prefix-lm", families=("decoder",), loss_fraction=0.5,
                            source="Raffel et al. 2020, Sec. 3.2.1")
    """


@hookspec
def genaisdk_precisions() -> Iterable[Precision]:
    """Register numeric precisions: bytes per weight, gradient, master copy, activation.

    Signature: `genaisdk_precisions() -> Iterable[genaisdk.records.Precision]`.

    Example::

        @hookimpl
        def genaisdk_precisions():
            yield Precision(name="fp6", weight_bytes=0.75, gradient_bytes=0,
                            compute_dtype="fp8", param_dtype="fp8", trainable=False,
                            source="definition: 6 bits = 0.75 bytes")
    """


@hookspec
def genaisdk_optimizers() -> Iterable[Optimizer]:
    """Register optimizers: state bytes per trainable parameter, and an optax factory path.

    Signature: `genaisdk_optimizers() -> Iterable[genaisdk.records.Optimizer]`.

    Example::

        @hookimpl
        def genaisdk_optimizers():
            yield Optimizer(name="sophia", state_bytes=8.0,
                            state_note="momentum + Hessian estimate, fp32",
                            optax_factory="my_plugin.optim:sophia",
                            source="Liu et al. 2023, Algorithm 3")
    """


@hookspec
def genaisdk_strategies() -> Iterable[Strategy]:
    """Register distribution strategies: what is sharded, what is sent, JAX rule tables.

    Signature: `genaisdk_strategies() -> Iterable[genaisdk.records.Strategy]`.

    Example::

        @hookimpl
        def genaisdk_strategies():
            yield Strategy(name="zero1-bf16-comm", shards_optimizer=True, communication=1.0,
                           partition_rules={"batch": (("batch", "data"),),
                                            "opt_state": (("embed", "data"),)})
    """


@hookspec
def genaisdk_hardware() -> Iterable[Hardware]:
    """Register accelerators: memory, dense peak FLOP/s per dtype, bandwidth, power, node, price.

    Signature: `genaisdk_hardware() -> Iterable[genaisdk.records.Hardware]`.
    Link bandwidths are per device and in one direction; a price carries its source and
    date (`price_source`, `price_date`). Leave a figure no source gives unset (None).

    Example::

        @hookimpl
        def genaisdk_hardware():
            yield Hardware(name="gb200", vendor="NVIDIA", memory_bytes=186 * 2**30,
                           peak_flops={"bf16": 2.5e15, "fp8": 5e15},
                           bandwidth_bytes_per_s=8e12, power_watts=1200,
                           intra_node_bytes_per_s=900e9, devices_per_node=4,
                           source="NVIDIA GB200 datasheet")
    """


@hookspec
def genaisdk_presets() -> Iterable[Preset]:
    """Register published models: architecture name, dimensions, published parameter count.

    Signature: `genaisdk_presets() -> Iterable[genaisdk.records.Preset]`.

    Example::

        @hookimpl
        def genaisdk_presets():
            yield Preset(name="tiny-decoder", architecture="decoder",
                         dims=Dimensions(layers=2, d_model=128, heads=4, d_ff=512,
                                         vocab=1000, context=256),
                         source="definition")
    """


@hookspec
def genaisdk_adaptations() -> Iterable[Adaptation]:
    """Register adaptation methods: what trains, at what precision, which models stay resident.

    Signature: `genaisdk_adaptations() -> Iterable[genaisdk.records.Adaptation]`.

    Example::

        @hookimpl
        def genaisdk_adaptations():
            yield Adaptation(name="ia3", full=False, trainable_fraction=0.0001,
                             source="Liu et al. 2022, Sec. 3.3")
    """


@hookspec
def genaisdk_validate(spec: Spec) -> Iterable[Diagnostic]:
    """Check a built spec; return problems as Diagnostics (empty when all is well).

    Signature: `genaisdk_validate(spec: genaisdk.spec.model.Spec)
    -> Iterable[genaisdk.diagnostics.Diagnostic]`. Runs after the spec is built, for every
    spec, so return nothing for specs that do not concern the plugin.

    Example::

        @hookimpl
        def genaisdk_validate(spec):
            extra = spec.project.model.extra
            if extra.get("top_k", 1) > extra.get("experts", 1):
                yield Diagnostic(code="MOE001", severity="error",
                                 message="top_k cannot exceed the number of experts",
                                 span=spec.spans.get("model.top_k"))
    """


REGISTRATION_HOOKS: dict[str, str] = {
    "tasks": "genaisdk_tasks",
    "architectures": "genaisdk_architectures",
    "objectives": "genaisdk_objectives",
    "precisions": "genaisdk_precisions",
    "optimizers": "genaisdk_optimizers",
    "strategies": "genaisdk_strategies",
    "hardware": "genaisdk_hardware",
    "presets": "genaisdk_presets",
    "adaptations": "genaisdk_adaptations",
}
"""Catalog kind (a key of `records.RECORD_KINDS`) -> the hook that registers it."""

ALL_HOOKS: tuple[str, ...] = (*REGISTRATION_HOOKS.values(), "genaisdk_validate")
