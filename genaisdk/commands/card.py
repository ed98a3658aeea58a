"""`genai card SPEC [--run DIR] [--eval FILE] [-o README.md]`: a Hugging Face model card
from the spec, its plan, a training run and an evaluation (see genaisdk.render.card).

Exit status: 0 written; 1 the spec, the run folder or the evaluation file has errors;
2 bad usage.
"""

from __future__ import annotations

import re

import click


def _language(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    for code in value:
        if not re.fullmatch(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})?", code):
            raise click.BadParameter(f"{code!r} is not a language code; write an ISO 639-1 code such as en or fr")
    return value


@click.command(name="card")
@click.argument("spec_file", metavar="SPEC", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--run", "run_dir", metavar="DIR", type=click.Path(file_okay=False),
              help="A genai train output folder: its data, hyperparameters, time and held-out results.")
@click.option("--eval", "eval_file", metavar="FILE", type=click.Path(dir_okay=False),
              help="An evaluation file (eval.json): the results and the model-index metadata.")
@click.option("-o", "--output", default="README.md", show_default=True, metavar="FILE",
              help="Where to write the card ('-' for standard output).")
@click.option("--license", "license_id", metavar="ID", help="The license id the Hub knows, e.g. apache-2.0.")
@click.option("--language", "languages", multiple=True, metavar="CODE", callback=_language,
              help="A language of the training data, ISO 639-1 (repeatable), e.g. en.")
@click.option("--base-model", metavar="HUB_ID", help="The Hub id of the model this one was adapted from.")
@click.option("--name", metavar="NAME", help="The model's name in model-index (default: the project's).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a spec value, e.g. --set budget.carbon_intensity='350 g/kWh' (repeatable).")
@click.option("--force", is_flag=True,
              help="Replace the output file even if this command did not write it (a project's own README.md).")
def command(spec_file: str, run_dir: str | None, eval_file: str | None, output: str, license_id: str | None,
            languages: tuple[str, ...], base_model: str | None, name: str | None, overrides: tuple[str, ...],
            force: bool) -> None:
    """Write a Hugging Face model card for SPEC: YAML metadata (license, language, tags,
    datasets, base_model, pipeline_tag, model-index, co2_eq_emissions) and the sections Model
    Details, Uses, Bias / Risks / Limitations, Training Details, Evaluation, Environmental
    Impact. Facts come from the spec, the plan, --run and --eval; what needs a person's
    judgement is left as a [To fill: ...] prompt. An existing file that is not a card this
    command wrote is never replaced without --force.

    \b
    Examples:
      genai card specs/tiny-gpt.genai --run runs/tiny-gpt -o README.md
      genai card specs/legal.genai --eval eval.json --license apache-2.0 --language en
    """
    from genaisdk.commands._spec_input import load_spec_or_exit, plan_or_exit, read_inputs_or_exit

    spec = load_spec_or_exit(spec_file, overrides)
    the_plan = plan_or_exit(spec)
    run, evaluation = read_inputs_or_exit(run_dir, eval_file)

    from genaisdk.render.card import model_card

    text = model_card(spec, the_plan, run=run, evaluation=evaluation, license=license_id, languages=languages,
                      base_model=base_model, name=name)
    if output == "-":
        click.echo(text, nl=False)
        return
    from genaisdk.commands._output import is_card, write_output

    write_output(output, text, force=force, ours=is_card, what="model card")
    click.echo(f"wrote {output}", err=True)
