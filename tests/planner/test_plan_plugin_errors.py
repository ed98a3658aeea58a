"""A plugin architecture that raises while planning becomes a GP008 diagnostic naming the
plugin (no traceback) unless GENAISDK_STRICT_PLUGINS asks for it; and how plain figures print."""

import attrs
import pytest

from genaisdk.diagnostics import SpecError
from genaisdk.planning import plan
from genaisdk.spec import loads
from genaisdk.testing import make_plugin, registry_with

SPEC = """genai 1

project "p" {
  model {
    family  = fragile-decoder
    layers  = 2
    d_model = 64
    heads   = 2
    d_ff    = 256
    vocab   = 512
    context = 128 tokens
  }
  data { tokens = 1M tokens }
  budget { hardware = 1 x a100-80gb }
}
"""


def _fragile():
    """A plugin whose decoder copies the built-in one but whose parameter count raises."""

    def architectures():
        with registry_with(install=False) as base:
            decoder = base.get("architectures", "decoder")

        def count_params(dims):
            raise ValueError("experts must divide the batch")

        return [attrs.evolve(decoder, name="fragile-decoder", provider="", count_params=count_params, aliases=())]

    return make_plugin("fragile", genaisdk_architectures=architectures)


def test_raising_plugin_is_a_diagnostic_naming_it():
    with registry_with(_fragile(), strict=False) as registry:
        spec = loads(SPEC, "p.genai", registry=registry)
        with pytest.raises(SpecError) as info:
            plan(spec, registry=registry)
    (d,) = [d for d in info.value.diagnostics if d.code == "GP008"]
    assert d.severity == "error"
    assert "fragile" in d.message and "ValueError: experts must divide the batch" in d.message
    assert d.span is not None and d.span.line == 5


def test_strict_plugins_reraise():
    with registry_with(_fragile(), strict=True) as registry:
        spec = loads(SPEC, "p.genai", registry=registry)
        with pytest.raises(ValueError, match="experts must divide"):
            plan(spec, registry=registry)


def test_zero_and_non_finite_figures_print_plainly():
    from genaisdk.core.numbers import _trim, fmt_bytes

    assert fmt_bytes(0.0) == "0 B"
    assert _trim(float("nan")) == "nan" and _trim(float("-inf")) == "-inf"
