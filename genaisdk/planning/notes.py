"""What the planner writes down while it plans: reasons, assumptions and diagnostics,
each diagnostic pointing at the spec line it is about."""

from __future__ import annotations

from typing import Any

from genaisdk.diagnostics import Diagnostic, Span
from genaisdk.plans import Assumption, Reason
from genaisdk.spec.model import Spec


class Notes:
    """A mutable collector used during one `plan()` call (never shared, never returned)."""

    def __init__(self, spec: Spec):
        self.spec = spec
        self.reasons: list[Reason] = []
        self.assumptions: list[Assumption] = []
        self.diagnostics: list[Diagnostic] = list(getattr(spec, "diagnostics", ()) or ())

    def span(self, path: str | None) -> Span | None:
        """Where `path` ("train.precision") was written; else its nearest written parent
        ("train"); else the project header; None for a spec built in code."""
        spans = self.spec.spans or {}
        while path:
            if path in spans:
                return spans[path]
            path = path.rpartition(".")[0]
        return spans.get("project") or spans.get("name")

    def reason(self, field: str, value: Any, text: str) -> None:
        self.reasons = [r for r in self.reasons if r.field != field]
        self.reasons.append(Reason(field=field, value=value, reason=text))

    def assume(self, name: str, value: Any, source: str, note: str = "") -> None:
        if not any(a.name == name for a in self.assumptions):
            self.assumptions.append(Assumption(name=name, value=value, source=source, note=note))

    def diag(self, code: str, severity: str, message: str, path: str | None = None, hint: str | None = None) -> Diagnostic:
        d = Diagnostic(code=code, severity=severity, message=message, span=self.span(path), hint=hint)
        self.diagnostics.append(d)
        return d

    @property
    def has_errors(self) -> bool:
        return any(d.is_error for d in self.diagnostics)
