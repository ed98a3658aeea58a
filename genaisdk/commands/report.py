"""`genai report SPEC [--run DIR] [--eval FILE] [-o report.html]`: the plan as one
self-contained HTML page with plots (see genaisdk.render.report).

Exit status: 0 written; 1 the spec, the run folder or the evaluation file has errors (a plan
with errors is still written, then exits 1); 2 bad usage or the [report] extra missing.
"""

from __future__ import annotations

import sys

import click


@click.command(name="report")
@click.argument("spec_file", metavar="SPEC", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--run", "run_dir", metavar="DIR", type=click.Path(file_okay=False),
              help="A genai train output folder: adds its loss curves, throughput and memory.")
@click.option("--eval", "eval_file", metavar="FILE", type=click.Path(dir_okay=False),
              help="An evaluation file (eval.json): adds the evaluation table.")
@click.option("-o", "--output", default="report.html", show_default=True, metavar="FILE",
              help="Where to write the page ('-' for standard output).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a spec value, e.g. --set budget.hardware='128 x h100-sxm' (repeatable).")
@click.option("--force", is_flag=True, help="Replace the output file even if this command did not write it.")
def command(spec_file: str, run_dir: str | None, eval_file: str | None, output: str, overrides: tuple[str, ...],
            force: bool) -> None:
    """Write an HTML report of SPEC's plan: the verdict and key figures, the Select / Fit /
    Cost / Serve summary, memory per device by strategy and precision, IsoFLOP curves, time
    and cost against the number of devices, serving memory; with --run the training curves,
    with --eval the evaluation. One file, no network: open it in any browser, or print it.

    \b
    Examples:
      genai report specs/legal.genai -o legal.html
      genai report specs/tiny-gpt.genai --run runs/tiny-gpt --eval eval.json -o tiny.html
    """
    from genaisdk.render.report import MissingExtra, require_report_extra

    try:
        require_report_extra()
    except MissingExtra as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)

    from genaisdk.commands._spec_input import load_spec_or_exit, plan_or_exit, read_inputs_or_exit

    spec = load_spec_or_exit(spec_file, overrides)
    the_plan = plan_or_exit(spec)
    run, evaluation = read_inputs_or_exit(run_dir, eval_file)

    from genaisdk.render.report import render_report

    html = render_report(spec, the_plan, run=run, evaluation=evaluation)
    if output == "-":
        click.echo(html, nl=False)
    else:
        from genaisdk.commands._output import is_report, write_output

        write_output(output, html, force=force, ours=is_report, what="report")
        click.echo(f"wrote {output} ({len(html.encode()) / 1e3:,.0f} kB)", err=True)
    if the_plan.errors:
        sys.exit(1)
