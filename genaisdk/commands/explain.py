"""`genai explain SPEC [TOPIC]`: how each number of the plan is derived, values substituted."""

from __future__ import annotations

import sys

import click

TOPICS = ("params", "flops", "memory", "activations", "scaling", "parallelism", "time", "cost", "inference")
ALIASES = {"serve": "inference"}
"""Other names of a topic: the plan's section on serving is called Serve."""


@click.command(name="explain")
@click.argument("spec_file", metavar="SPEC", type=click.Path(dir_okay=False, allow_dash=True))
@click.argument("topic", metavar="[TOPIC]", required=False, type=click.Choice(TOPICS + tuple(ALIASES), case_sensitive=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a spec value (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the derivations as JSON.")
@click.option("--width", type=int, default=None, help="Terminal width.")
def command(spec_file: str, topic: str | None, overrides: tuple[str, ...], as_json: bool, width: int | None) -> None:
    """Show how the plan of SPEC is derived: for TOPIC (params, flops, memory, activations,
    scaling, parallelism, time, cost, inference or serve) or all of them, each number as its formula,
    the formula with the values put in, and the result. `parallelism` shows the layout and
    every pipeline stage's memory; `time` every term of the step-time model."""
    from genaisdk.commands._spec_input import load_spec_or_exit, print_diagnostics
    from genaisdk.diagnostics import SpecError
    from genaisdk.planning.pipeline import plan as make_plan

    spec = load_spec_or_exit(spec_file, overrides)
    try:
        the_plan = make_plan(spec)
    except SpecError as exc:
        print_diagnostics(exc.diagnostics, exc.source or spec.source)
        sys.exit(1)
    topics = [ALIASES.get(topic.lower(), topic.lower())] if topic else [t for t in TOPICS if t in the_plan.derivations]
    if as_json:
        import json

        from genaisdk.core.serialize import to_json

        data = {t: to_json(the_plan.derivations.get(t, ())) for t in topics}
        click.echo(json.dumps(data, indent=2, allow_nan=False))
        return
    from genaisdk.render.explain import render_explain
    from genaisdk.render.text import make_console

    render_explain(the_plan, topics, make_console(width=width))
