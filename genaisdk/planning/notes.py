"""What the planner writes down while it plans: reasons, assumptions and diagnostics,
each diagnostic pointing at the spec line it is about."""

from __future__ import annotations

from typing import Any

from genaisdk.core.codes import diagnostic
from genaisdk.diagnostics import Diagnostic, Span, sort_diagnostics
from genaisdk.plans import Assumption, Reason
from genaisdk.spec.model import Spec
from genaisdk.spec.validate import span_of


class Notes:
    """A mutable collector used during one `plan()` call (never shared, never returned):
    the stages append to it; the finished Plan holds frozen copies."""

    def __init__(self, spec: Spec, diagnostics: list[Diagnostic] | tuple[Diagnostic, ...] = ()):
        self.spec = spec
        self.reasons: list[Reason] = []
        self.assumptions: list[Assumption] = []
        self.diagnostics: list[Diagnostic] = sort_diagnostics([*(getattr(spec, "diagnostics", ()) or ()), *diagnostics])

    def span(self, path: str | None) -> Span | None:
        return span_of(self.spec, path)

    def reason(self, field: str, value: Any, text: str) -> None:
        self.reasons = [r for r in self.reasons if r.field != field]
        self.reasons.append(Reason(field=field, value=value, reason=text))

    def assume(self, name: str, value: Any, source: str, note: str = "") -> None:
        if not any(a.name == name for a in self.assumptions):
            self.assumptions.append(Assumption(name=name, value=value, source=source, note=note))

    def diag(self, code: str, message: str, path: str | None = None, hint: str | None = None) -> Diagnostic:
        """Record a diagnostic of `code` (its severity is the code's, genaisdk.core.codes)."""
        d = diagnostic(code, message, self.span(path), hint)
        self.diagnostics.append(d)
        return d

    @property
    def has_errors(self) -> bool:
        return any(d.is_error for d in self.diagnostics)
