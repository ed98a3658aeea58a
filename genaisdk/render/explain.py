"""`genai explain`: a plan's derivations, one topic per section, each line

    weights  = params × bytes per weight / shards
             = 6.74e9 params × 2 B (bf16) / 1
             = 13.5 GB
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from genaisdk.core.numbers import fmt_value
from genaisdk.core.safe import printable

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console

    from genaisdk.plans import Plan, Term

TOPIC_TITLES = {
    "params": "Parameters",
    "flops": "FLOPs",
    "memory": "Memory per device",
    "activations": "Activations",
    "scaling": "Scaling (Chinchilla)",
    "parallelism": "Parallel layout",
    "time": "Time",
    "cost": "Cost",
    "inference": "Inference (one serving replica)",
}


format_value = fmt_value
"""A term's result in its unit (`genaisdk.core.numbers.fmt_value`)."""


def term_lines(term: Term) -> list[str]:
    """The three-line form of one term (plain text)."""
    lines = [f"{term.name} = {term.formula}"]
    if term.substituted and term.substituted != term.formula:
        lines.append(f"{' ' * len(term.name)} = {term.substituted}")
    lines.append(f"{' ' * len(term.name)} = {format_value(term.value, term.unit)}")
    return lines


def explain_text(plan: Plan, topics: Sequence[str]) -> str:
    """All requested topics as plain text."""
    out: list[str] = []
    for topic in topics:
        terms = plan.derivations.get(topic, ())
        out.append(f"## {TOPIC_TITLES.get(topic, topic)}")
        for term in terms:
            out.extend(term_lines(term))
            if term.source:
                out.append(f"    ({term.source})")
        out.append("")
    return "\n".join(out)


def render_explain(plan: Plan, topics: Sequence[str], console: Console) -> None:
    """Print the topics' derivations to a rich Console (as written: no markup, control
    characters escaped)."""
    from rich.rule import Rule
    from rich.text import Text

    from genaisdk.render.text import heading

    console.print(heading(plan))
    for topic in topics:
        console.print(Rule(TOPIC_TITLES.get(topic, topic), align="left"))
        for term in plan.derivations.get(topic, ()):
            lines = [printable(line) for line in term_lines(term)]
            head = Text(lines[0])
            head.stylize("bold", 0, len(printable(term.name)))
            console.print(head)
            for line in lines[1:-1]:
                console.print(Text(line, style="dim"))
            console.print(Text(lines[-1]))
            if term.source:
                console.print(Text(printable(f"    {term.source}"), style="dim italic"))
