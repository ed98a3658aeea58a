"""`genai measure SPEC [--devices N] [--json] [--set k=v]`: XLA's compiled memory and FLOPs
of the planned training step, next to the plan's estimates.

Exit status: 0 measured; 1 the spec has errors or the step cannot be built for the JAX
backend (a precision or strategy only the planner models); 2 bad usage or JAX missing.
"""

from __future__ import annotations

import importlib.util
import json
import sys

import click

from genaisdk.commands._spec_input import load_spec_or_exit
from genaisdk.core.numbers import fmt_sci, fmt_value


def _shown(value: float | None, unit: str) -> str:
    """Bytes and FLOPs as `genai plan` shows them, parameters exactly."""
    if unit == "params":
        return "-" if value is None else f"{value:,.0f}"
    return fmt_value(value, unit)


def _render(measurement) -> None:
    from rich.console import Console
    from rich.table import Table

    config = measurement.config
    console = Console()
    console.print(
        f"[bold]{config['family']}[/] {config['layers']} layers × d_model {config['d_model']} · "
        f"{config['precision']} · {config['optimizer']} · {config['strategy']} · "
        f"{measurement.devices} devices · {config['micro_batch']} seq/device × {config['accumulation']} "
        f"micro-steps × {config['seq_len']} tokens · recompute {config['recompute']}"
    )
    table = Table(title="per device: plan vs XLA (compiled step, nothing allocated)")
    for column, justify in (("", "left"), ("plan", "right"), ("XLA", "right"), ("XLA / plan", "right"), ("", "left")):
        table.add_column(column, justify=justify)
    for row in measurement.rows:
        ratio = "-" if row.ratio is None else f"{row.ratio:.2f}"
        table.add_row(row.name, _shown(row.plan, row.unit), _shown(row.xla, row.unit), ratio, row.note)
    console.print(table)
    xla = measurement.xla
    console.print(
        "XLA memory_analysis: arguments {a}, outputs {o} (aliased {al}), temporaries {t}, generated code {g}".format(
            a=_shown(xla["arguments"], "bytes"),
            o=_shown(xla["outputs"], "bytes"),
            al=_shown(xla["aliased"], "bytes"),
            t=_shown(xla["temporaries"], "bytes"),
            g=_shown(xla["generated_code"], "bytes"),
        )
    )
    if "flops" in xla:
        console.print(
            f"XLA cost_analysis: {fmt_sci(xla['flops'])} FLOPs per device per step "
            f"(fitted over {len(measurement.fit_points)} unrolled compiles; loop bodies counted once: "
            f"{fmt_sci(xla['flops_loop_bodies_once'])}); model FLOPs {fmt_sci(xla['model_flops_per_device'])}"
        )
    for note in measurement.notes:
        console.print(f"note: {note}")


@click.command("measure")
@click.argument("spec_file", metavar="SPEC", type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "--devices", type=click.IntRange(min=1), metavar="N", help="Virtual devices to compile for (default: the plan's)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the measurement as one JSON object.")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a spec value, e.g. train.sharding=fsdp (repeatable).",
)
@click.option("--no-flops", is_flag=True, help="Skip the unrolled compiles that count FLOPs (memory only, faster).")
def command(spec_file: str, devices: int | None, as_json: bool, overrides: tuple[str, ...], no_flops: bool) -> None:
    """Compile the planned training step for N virtual CPU devices and compare XLA's
    memory_analysis() and cost_analysis() with the plan.

    \b
    Examples:
      genai measure specs/tiny-gpt.genai --devices 8
      genai measure specs/llama-65b.genai --devices 64 --set train.sharding=fsdp --json
    """
    if any(importlib.util.find_spec(module) is None for module in ("jax", "optax")):
        click.echo("error: `genai measure` needs the JAX extra: pip install 'genaisdk[jax]'", err=True)
        sys.exit(2)
    spec = load_spec_or_exit(spec_file, overrides)

    from genaisdk.backend.jax.config import BackendError
    from genaisdk.backend.jax.measure import measure
    from genaisdk.diagnostics import SpecError
    from genaisdk.planning.run_settings import NothingToTrain

    try:
        measurement = measure(spec, devices=devices, fit_flops=not no_flops)
    except NothingToTrain as exc:
        from genaisdk.core.safe import printable

        click.echo(printable(f"nothing to measure: no training step to compile. {exc}"))
        sys.exit(0)
    except SpecError as exc:
        from genaisdk.commands._spec_input import print_diagnostics

        print_diagnostics(exc.diagnostics, exc.source or spec.source)
        sys.exit(1)
    except BackendError as exc:
        from genaisdk.core.safe import printable

        click.echo(printable(f"error: {exc}"), err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(measurement.to_json(), indent=2))
    else:
        _render(measurement)
