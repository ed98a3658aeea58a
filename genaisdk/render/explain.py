"""`genai explain`: a plan's derivations, one topic per section, each line

    weights  = params × bytes per weight / shards
             = 6.74e9 params × 2 B (bf16) / 1
             = 13.5 GB
"""

from __future__ import annotations

import textwrap
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


def term_rows(term: Term, width: int | None = None) -> list[tuple[str, str]]:
    """The three-line form of one term as (part, line) pairs, part being `formula`,
    `substituted` or `value`. With `width`, a line longer than that wraps between words, its
    continuation indented under the text after `= `, so the equals signs stay in one column."""
    pad = " " * len(term.name)
    rows = [("formula", term.name, term.formula)]
    if term.substituted and term.substituted != term.formula:
        rows.append(("substituted", pad, term.substituted))
    rows.append(("value", pad, format_value(term.value, term.unit)))
    out: list[tuple[str, str]] = []
    for part, lead, text in rows:
        first = f"{lead} = "
        if width is None or len(first) + len(text) <= width or width - len(first) < 20:
            out.append((part, first + text))
            continue
        wrapped = textwrap.wrap(text, width=width - len(first), break_long_words=False, break_on_hyphens=False) or [""]
        out.append((part, first + wrapped[0]))
        out.extend((part, " " * len(first) + rest) for rest in wrapped[1:])
    return out


def term_lines(term: Term, width: int | None = None) -> list[str]:
    """The three-line form of one term (plain text; `term_rows`)."""
    return [line for _, line in term_rows(term, width)]


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
            for i, (part, line) in enumerate(term_rows(term, console.width)):
                text = Text(printable(line), style="dim" if part == "substituted" else "")
                if i == 0:
                    text.stylize("bold", 0, len(printable(term.name)))
                console.print(text)
            if term.source:
                console.print(Text(printable(f"    {term.source}"), style="dim italic"))
