"""`genai train SPEC`: train the spec'd model with the JAX backend.

Exit status: 0 trained; 1 the spec has errors, the data cannot be read, or training
diverged (NaN/inf; the last good checkpoint is kept); 2 bad usage or the [jax] extra is
missing; 128 + N when stopped by signal N (SIGINT 130, SIGTERM 143) after saving a
checkpoint that `--resume` continues from.
"""

from __future__ import annotations

import sys

import click

from genaisdk.commands._spec_input import load_spec_or_exit


def _positive(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    if value is not None and value < 1:
        raise click.BadParameter("must be at least 1")
    return value


@click.command("train")
@click.argument("spec_file", metavar="SPEC")
@click.option("--steps", type=int, callback=_positive, help="Optimizer steps in all (default: train.steps, else data.tokens / batch).")
@click.option("--out", "out", type=click.Path(file_okay=False), help="Output folder (default: runs/<project>).")
@click.option("--resume", is_flag=True, help="Continue from the latest good checkpoint in --out.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a spec value, e.g. train.sharding=fsdp (repeatable).")
@click.option("--checkpoint-every", type=int, callback=_positive, metavar="N", help="Save a checkpoint every N steps (and always at the end).")
@click.option("--eval-every", type=int, callback=_positive, metavar="N", help="Held-out loss and perplexity every N steps (and always at the end).")
@click.option("--devices", type=int, callback=_positive, metavar="N", help="Devices per process (on CPU: creates N host devices).")
@click.option("--coordinator", metavar="HOST:PORT", help="Multi-host: address of process 0's coordinator.")
@click.option("--num-processes", type=int, metavar="N", help="Multi-host: number of processes.")
@click.option("--process-id", type=int, metavar="I", help="Multi-host: this process's rank, 0 .. N-1.")
@click.option("--dp-impl", type=click.Choice(["jit", "shard_map"]), help="How data parallelism is expressed (default jit).")
@click.option("--plain", is_flag=True, help="Plain progress lines even on a terminal.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
def command(
    spec_file: str,
    steps: int | None,
    out: str | None,
    resume: bool,
    overrides: tuple[str, ...],
    checkpoint_every: int | None,
    eval_every: int | None,
    devices: int | None,
    coordinator: str | None,
    num_processes: int | None,
    process_id: int | None,
    dp_impl: str | None,
    plain: bool,
    quiet: bool,
) -> None:
    """Train the model a spec describes, on the JAX devices at hand.

    \b
    Examples:
      genai train specs/tiny-gpt.genai --steps 40
      genai train specs/tiny-legal.genai --set train.sharding=fsdp --devices 8
      genai train specs/tiny-gpt.genai --out runs/a --resume
      genai train SPEC --coordinator host0:1234 --num-processes 2 --process-id 0
    """
    from genaisdk.backend.jax.train import TrainError, TrainingDiverged, require_jax

    try:
        require_jax()
    except TrainError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    # Checked here, before JAX starts, so a spec mistake is reported in a fraction of a second.
    spec = load_spec_or_exit(spec_file, overrides)

    from pathlib import Path

    from genaisdk.backend.jax.train import train
    from genaisdk.render.safe import printable

    try:
        result = train(
            spec.source if spec_file == "-" else Path(spec_file),  # a path, whatever its name holds
            overrides=list(overrides),
            steps=steps,
            out=out,
            resume=resume,
            checkpoint_every=checkpoint_every,
            eval_every=eval_every,
            devices=devices,
            coordinator=coordinator,
            num_processes=num_processes,
            process_id=process_id,
            dp_impl=dp_impl,
            quiet=quiet,
            progress=False if plain else None,
        )
    except TrainingDiverged as exc:
        click.echo(printable(f"error: {exc}"), err=True)
        sys.exit(exc.exit_code)
    except TrainError as exc:
        click.echo(printable(f"error: {exc}"), err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("aborted by a second interrupt; the latest finished checkpoint is kept", err=True)
        sys.exit(130)
    if result.status != "completed":
        sys.exit(result.exit_code)
