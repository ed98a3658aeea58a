"""Loading the SPEC argument of `genai plan`, `explain`, `train` and `measure`: a path or
`-` (stdin), with `--set key=value` overrides; problems are printed as diagnostics and
exit 1. A SPEC argument is always a path, whatever its name holds (`br{ace}.genai`)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:  # pragma: no cover
    from genaisdk.diagnostics import Diagnostic
    from genaisdk.spec.model import Spec


def print_diagnostics(diagnostics: Iterable[Diagnostic], source: str | Mapping[str, str] | None) -> None:
    """On stderr, rendered; `source` is the spec's text, or file -> text with `--set` overrides."""
    from genaisdk.diagnostics import render_all

    click.echo(render_all(list(diagnostics), source), err=True)


def load_spec_or_exit(spec_file: str, overrides: Sequence[str]) -> Spec:
    """The built Spec, or: the rendered diagnostics on stderr and exit status 1."""
    from genaisdk.diagnostics import SpecError

    for item in overrides:
        if "=" not in item:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--set")
    try:
        if spec_file == "-":
            from genaisdk.spec import loads, read_stdin

            spec = loads(read_stdin(), filename="<stdin>", overrides=list(overrides) or None)
        else:
            from genaisdk.spec import load

            spec = load(spec_file, overrides=list(overrides) or None)
    except SpecError as exc:
        print_diagnostics(exc.diagnostics, exc.source)
        sys.exit(1)
    except OSError as exc:
        from genaisdk.core.safe import printable

        click.echo(printable(f"error: cannot read {spec_file}: {exc.strerror or exc}"), err=True)
        sys.exit(1)
    return spec


def plan_or_exit(spec: Spec):
    """The spec's Plan, or: its diagnostics on stderr and exit status 1."""
    from genaisdk.diagnostics import SpecError
    from genaisdk.planning.pipeline import plan as make_plan

    try:
        return make_plan(spec)
    except SpecError as exc:
        print_diagnostics(exc.diagnostics, exc.source or spec.source)
        sys.exit(1)


def read_inputs_or_exit(run_dir: str | None, eval_file: str | None):
    """(Run or None, Evaluation or None) for `--run` and `--eval`; a folder or file that
    cannot be read is one line on stderr and exit status 1."""
    from genaisdk.render.inputs import InputError, read_eval, read_run

    try:
        run = read_run(run_dir) if run_dir else None
        evaluation = read_eval(eval_file) if eval_file else None
    except InputError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    return run, evaluation
