"""genaisdk: plan and run generative-AI projects from a declarative `.genai` spec.

    >>> import genaisdk
    >>> spec = genaisdk.load("specs/legal.genai")
    >>> plan = genaisdk.plan(spec)
    >>> plan.memory.per_device.total
    >>> result = genaisdk.train("specs/tiny-gpt.genai", out="runs/tiny")
    >>> genaisdk.generate("runs/tiny", "Once", max_new_tokens=20).text
    >>> genaisdk.evaluate("runs/tiny", precision="int8").perplexity

The public names are imported lazily so that `import genaisdk` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> "module:attribute"
_EXPORTS = {
    "load": "genaisdk.spec:load",
    "loads": "genaisdk.spec:loads",
    "check": "genaisdk.spec:check",
    "Spec": "genaisdk.spec.model:Spec",
    "AUTO": "genaisdk.spec.model:AUTO",
    "Diagnostic": "genaisdk.diagnostics:Diagnostic",
    "SpecError": "genaisdk.diagnostics:SpecError",
    "Span": "genaisdk.diagnostics:Span",
    "Dimensions": "genaisdk.dims:Dimensions",
    "hookimpl": "genaisdk.hookspecs:hookimpl",
    "get_registry": "genaisdk.registry:get_registry",
    "plan": "genaisdk.planning.pipeline:plan",
    "Plan": "genaisdk.plans:Plan",
    "train": "genaisdk.training:train",
    "TrainOptions": "genaisdk.backend.jax.options:TrainOptions",
    "report": "genaisdk.render.report:render_report",
    "card": "genaisdk.render.card:model_card",
    "generate": "genaisdk.backend.jax.generate:generate",
    "evaluate": "genaisdk.backend.jax.evaluate:evaluate",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'genaisdk' has no attribute {name!r}")
    module_name, attribute = target.split(":")
    value = getattr(importlib.import_module(module_name), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover
    from genaisdk.backend.jax.evaluate import evaluate
    from genaisdk.backend.jax.generate import generate
    from genaisdk.backend.jax.options import TrainOptions
    from genaisdk.diagnostics import Diagnostic, Span, SpecError
    from genaisdk.dims import Dimensions
    from genaisdk.hookspecs import hookimpl
    from genaisdk.plans import Plan
    from genaisdk.planning.pipeline import plan
    from genaisdk.registry import get_registry
    from genaisdk.render.card import model_card as card
    from genaisdk.render.report import render_report as report
    from genaisdk.spec import check, load, loads
    from genaisdk.spec.model import AUTO, Spec
    from genaisdk.training import train
