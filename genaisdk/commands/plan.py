"""`genai plan SPEC [--json | --markdown] [--set key=value ...] [--sweep]`."""

from __future__ import annotations

import sys

import click


@click.command(name="plan")
@click.argument("spec_file", metavar="SPEC", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--json", "as_json", is_flag=True, help="Print the stable JSON plan (docs/plan-json.md).")
@click.option("--markdown", "as_markdown", is_flag=True, help="Print the plan as Markdown tables.")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a spec value, e.g. --set train.precision=fp16 (repeatable).",
)
@click.option(
    "--sweep",
    is_flag=True,
    help="Search the configurations around the plan on every axis the spec leaves auto (size, precision, strategy, "
    "devices, micro-batch, recompute); print the Pareto front with the plan's own row marked.",
)
@click.option("--top", default=10, show_default=True, help="With --sweep: how many configurations to print.")
@click.option("--width", type=int, default=None, help="Terminal width for the text view.")
def command(
    spec_file: str,
    as_json: bool,
    as_markdown: bool,
    overrides: tuple[str, ...],
    sweep: bool,
    top: int,
    width: int | None,
) -> None:
    """Plan SPEC: architecture, size, memory per device, time, cost and serving.

    Every value the spec leaves `auto` is filled, with the reason. Exit status 1 if the spec
    has errors.
    """
    if as_json and as_markdown:
        raise click.UsageError("--json and --markdown are exclusive")
    from genaisdk.commands._spec_input import load_spec_or_exit

    spec = load_spec_or_exit(spec_file, overrides)

    from genaisdk.diagnostics import SpecError
    from genaisdk.planning.pipeline import plan_stages

    try:
        planned = plan_stages(spec)
    except SpecError as exc:
        from genaisdk.commands._spec_input import print_diagnostics

        print_diagnostics(exc.diagnostics, exc.source or spec.source)
        sys.exit(1)
    the_plan = planned.plan

    if sweep:
        from genaisdk.planning.sweep import run_sweep

        result = run_sweep(planned)
        if as_json:
            import json

            click.echo(json.dumps(result.to_json(top=top), indent=2, allow_nan=False))
        elif as_markdown:
            from genaisdk.render.sweep import sweep_markdown

            click.echo(sweep_markdown(result, top=top))
        else:
            from genaisdk.render.sweep import render_sweep
            from genaisdk.render.text import make_console

            render_sweep(result, make_console(width=width), top=top)
        return

    if as_json:
        from genaisdk.render.json import to_json_text

        click.echo(to_json_text(the_plan))
    elif as_markdown:
        from genaisdk.render.markdown import to_markdown
        from genaisdk.core.safe import printable

        click.echo(printable(to_markdown(the_plan), keep_newlines=True), nl=False)
    else:
        from genaisdk.render.text import make_console, render_text

        render_text(the_plan, make_console(width=width))
    if the_plan.errors:
        sys.exit(1)
