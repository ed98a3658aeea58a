"""`genai train SPEC`: train the spec'd model with the JAX backend, exactly as `genai plan`
planned it; `--dry-run` prints that run (the plan JSON's names) without starting JAX, and
`--dry-run --compile` also compiles its step ahead of time and shows its memory.

Exit status: 0 trained (or, with --dry-run, the run can start), or the plan trains
nothing (`adapt.method = prompt`: the message says how to use the model; nothing is
written); 1 the spec or its plan has
errors, the JAX backend cannot run the plan, the compiled step does not fit the device, the
data cannot be read, another run holds the output folder, the output cannot be written (the
last good checkpoint is named), or training diverged (NaN/inf; the last good checkpoint is
kept); 2 bad usage (an output folder this tool did not write, a device count no process
can have) or the [jax] extra is missing; 128 + N when stopped by signal N (SIGINT 130,
SIGTERM 143) after saving a checkpoint that `--resume` continues from.
"""

from __future__ import annotations

import sys

import click

from genaisdk.backend.jax.config import MAX_STEPS
from genaisdk.backend.jax.options import DEVICE_MEMORY_ENV
from genaisdk.commands._spec_input import load_spec_or_exit


def _plan_or_exit(spec):
    from genaisdk.diagnostics import SpecError
    from genaisdk.planning.pipeline import plan as make_plan

    try:
        return make_plan(spec)
    except SpecError as exc:
        from genaisdk.commands._spec_input import print_diagnostics

        print_diagnostics(exc.diagnostics, exc.source or spec.source)
        sys.exit(1)


def _dry_run(spec, options, *, as_json: bool) -> None:
    """Print the run the plan describes (and each deviation a named option asks for),
    without starting JAX."""
    from genaisdk.backend.jax.config import BackendError, RunConfig
    from genaisdk.core.safe import printable
    from genaisdk.planning.run_settings import NothingToTrain, RunSettingsError, run_settings

    the_plan = _plan_or_exit(spec)
    processes = options.num_processes or 1
    devices = options.devices
    try:
        settings = run_settings(
            the_plan,
            spec,
            devices=devices * processes if devices is not None else None,
            tensor_parallel=options.tensor_parallel,
            sequence_parallel=options.sequence_parallel,
            steps=options.steps,
            precision=options.precision,
            adaptation=options.adaptation,
            devices_why=f"--devices {devices}" + (f" x {processes} processes" if processes > 1 else "") if devices else None,
        )
    except NothingToTrain as exc:
        _nothing_trains(str(exc), the_plan, as_json=as_json, quiet=options.quiet)
        return
    except RunSettingsError as exc:
        click.echo(printable(f"error: {exc}"), err=True)
        sys.exit(1)
    problems = [f"{d.code}: {d.message}" for d in the_plan.errors]
    try:
        RunConfig.from_settings(settings)  # what the backend refuses, without starting JAX
    except BackendError as exc:
        problems.append(str(exc))
    _print_run(settings, problems, None, as_json=as_json)


def _dry_run_compiled(spec, options, *, as_json: bool) -> None:
    """`--dry-run --compile`: the run, and its step compiled ahead of time on the run's
    devices (nothing allocated), XLA's memory per device next to the plan's and the
    device's; exit status 1 when it does not fit."""
    from genaisdk.backend.jax.compile import refusal
    from genaisdk.backend.jax.train import TrainError, compile_dry_run

    _plan_or_exit(spec)  # a spec the planner rejects: its diagnostics, as for the plain dry run
    try:
        settings, check = compile_dry_run(spec, options)
    except TrainError as exc:
        from genaisdk.core.safe import printable

        if exc.exit_code == 0:  # NothingTrains
            _nothing_trains(str(exc), None, as_json=as_json, quiet=options.quiet)
            return
        click.echo(printable(f"error: {exc}"), err=True)
        sys.exit(exc.exit_code)
    problems = [refusal(check)] if check.fits is False else []
    _print_run(settings, problems, check, as_json=as_json)


def _nothing_trains(message: str, plan, *, as_json: bool, quiet: bool) -> None:
    """A plan that trains nothing (`adapt.method = prompt`) is not a failure: say so, and
    how the model is used instead; exit status 0, nothing written (with or without --dry-run)."""
    from genaisdk.core.safe import printable

    if as_json:
        import json

        data = {"trains": False, "message": message}
        if plan is not None:
            data = {"project": plan.project.name, "adaptation": plan.train.adaptation, **data}
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    elif not quiet:
        click.echo(printable(message))


def _print_run(settings, problems: list[str], check, *, as_json: bool) -> None:
    from genaisdk.core.safe import printable

    if as_json:
        import json

        data = {**settings.to_json(), "problems": problems}
        if check is not None:
            data["compiled"] = check.to_json()
        click.echo(json.dumps(data, indent=2, allow_nan=False))
    else:
        from genaisdk.render.run import compiled_text, run_settings_text

        click.echo(run_settings_text(settings))
        if check is not None:
            click.echo(compiled_text(check))
    for problem in problems:
        click.echo(printable(f"error: {problem}"), err=True)
    if problems:
        sys.exit(1)


@click.command("train")
@click.argument("spec_file", metavar="SPEC")
@click.option(
    "--steps",
    type=click.IntRange(min=1, max=MAX_STEPS),
    help="Optimizer steps in all (default: the plan's: train.steps, else data.tokens / batch).",
)
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False),
    help="Output folder (default: runs/<project>). It must be new, empty, or a run folder of this tool "
    "(then with --resume); a run holds a lock on it while it runs.",
)
@click.option("--resume", is_flag=True, help="Continue from the latest good checkpoint in --out.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a spec value, e.g. train.sharding=fsdp (repeatable); the plan is made with it.")
@click.option("--checkpoint-every", type=click.IntRange(min=1), metavar="N", help="Save a checkpoint every N steps (and always at the end).")
@click.option("--eval-every", type=click.IntRange(min=1), metavar="N", help="Held-out loss and perplexity every N steps (and always at the end).")
@click.option(
    "--devices",
    type=click.IntRange(min=1),
    metavar="N",
    help="Devices per process (on CPU: creates N host devices). Default: the plan's count; another count keeps the "
    "plan's global batch and is recorded as a deviation.",
)
@click.option(
    "--tensor-parallel",
    type=click.IntRange(min=1),
    metavar="N",
    help="Split each layer (attention heads, FFN columns, vocabulary) over groups of N devices; the devices / N "
    "groups are data parallel. Default: the plan's layout; another keeps the global batch and is recorded as a deviation.",
)
@click.option(
    "--sequence-parallel/--no-sequence-parallel",
    default=None,
    help="With --tensor-parallel: split the residual stream's positions (norms, residual additions) over the "
    "tensor-parallel group too. Default: the plan's; recorded as a deviation.",
)
@click.option("--precision", metavar="NAME", help="Train in another precision than the plan's (e.g. fp32 on a CPU); recorded as a deviation.")
@click.option(
    "--adapt",
    "adaptation",
    metavar="METHOD",
    help="Run with another adaptation method than the plan's: `finetune` trains every weight of a LoRA plan, "
    "`lora` or `qlora` trains adapters (the method's default rank and targets) on a fine-tuning plan; recorded "
    "as a deviation.",
)
@click.option("--coordinator", metavar="HOST:PORT", help="Multi-host: address of process 0's coordinator.")
@click.option("--num-processes", type=int, metavar="N", help="Multi-host: number of processes.")
@click.option("--process-id", type=int, metavar="I", help="Multi-host: this process's rank, 0 .. N-1.")
@click.option("--dp-impl", type=click.Choice(["jit", "shard_map"]), help="How data parallelism is expressed (default jit).")
@click.option(
    "--device-memory",
    metavar="SIZE",
    help="The memory of one device (e.g. 64MB, 80GiB) for the compiled step's check, instead of what the device "
    f"reports (also {DEVICE_MEMORY_ENV}).",
)
@click.option(
    "--allow-data-outside",
    is_flag=True,
    help="Read data.source entries outside the spec's folder (a spec alone can only read inside it).",
)
@click.option("--dry-run", is_flag=True, help="Print the run the plan describes, and any deviation, without starting JAX.")
@click.option(
    "--compile",
    "compile_step",
    is_flag=True,
    help="With --dry-run: also compile the step ahead of time on the run's devices (nothing allocated) and show "
    "XLA's memory per device next to the plan's and the device's.",
)
@click.option("--json", "as_json", is_flag=True, help="With --dry-run: one JSON object (the plan JSON's names).")
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
    tensor_parallel: int | None,
    sequence_parallel: bool | None,
    precision: str | None,
    adaptation: str | None,
    coordinator: str | None,
    num_processes: int | None,
    process_id: int | None,
    dp_impl: str | None,
    device_memory: str | None,
    allow_data_outside: bool,
    dry_run: bool,
    compile_step: bool,
    as_json: bool,
    plain: bool,
    quiet: bool,
) -> None:
    """Train the model a spec describes, as `genai plan` planned it.

    The run takes the plan's model, precision, strategy, devices, parallel layout, batch,
    micro-batch, accumulation and recomputation; --devices, --tensor-parallel,
    --sequence-parallel, --steps, --precision and --adapt change them, and every field that
    then differs from the plan is printed and recorded in run.json. A plan with pipeline
    stages is refused (exit status 1) with the --set that plans it without.

    Before step 0 the step is compiled ahead of time; a run whose compiled step needs more
    memory than a device has is refused (exit status 1) with the plan's cheapest
    configuration that fits. A spec reads data only inside its own folder.

    \b
    Examples:
      genai train specs/tiny-gpt.genai --dry-run
      genai train specs/tiny-gpt.genai --dry-run --compile
      genai train specs/tiny-gpt.genai --steps 40
      genai train specs/tiny-legal.genai --allow-data-outside --set train.sharding=fsdp --devices 8
      genai train specs/tiny-gpt.genai --devices 8 --tensor-parallel 2
      genai train specs/tiny-gpt.genai --out runs/a --resume
      genai train SPEC --coordinator host0:1234 --num-processes 2 --process-id 0
    """
    if as_json and not dry_run:
        raise click.UsageError("--json goes with --dry-run")
    if compile_step and not dry_run:
        raise click.UsageError("--compile goes with --dry-run (a run compiles its step before step 0 anyway)")

    from genaisdk.backend.jax.options import TrainOptions
    from genaisdk.backend.jax.errors import TrainError
    from genaisdk.core.safe import printable

    try:
        options = TrainOptions(
            overrides=overrides,
            steps=steps,
            out=out,
            resume=resume,
            checkpoint_every=checkpoint_every,
            eval_every=eval_every,
            devices=devices,
            tensor_parallel=tensor_parallel,
            sequence_parallel=sequence_parallel,
            precision=precision,
            adaptation=adaptation,
            coordinator=coordinator,
            num_processes=num_processes,
            process_id=process_id,
            dp_impl=dp_impl,
            device_memory=device_memory,
            allow_data_outside=allow_data_outside,
            quiet=quiet,
            progress=False if plain else None,
        )
    except TrainError as exc:
        click.echo(printable(f"error: {exc}"), err=True)
        sys.exit(exc.exit_code)
    if dry_run and not compile_step:
        spec = load_spec_or_exit(spec_file, overrides)
        _dry_run(spec, options, as_json=as_json)
        return

    from genaisdk.backend.jax.train import require_jax

    try:
        require_jax()
    except TrainError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    # Checked here, before JAX starts, so a spec mistake is reported in a fraction of a second.
    spec = load_spec_or_exit(spec_file, overrides)
    if dry_run:
        _dry_run_compiled(spec, options.evolve(overrides=()), as_json=as_json)
        return

    from pathlib import Path

    from genaisdk.diagnostics import SpecError
    from genaisdk.training import train

    try:
        # A path, whatever its name holds; the overrides are applied to it again there.
        result = train(spec.source if spec_file == "-" else Path(spec_file), options)
    except SpecError as exc:
        from genaisdk.commands._spec_input import print_diagnostics

        print_diagnostics(exc.diagnostics, exc.source or spec.source)
        sys.exit(1)
    except TrainError as exc:
        if exc.exit_code == 0:  # NothingTrains: a plan that trains nothing, by design
            _nothing_trains(str(exc), None, as_json=False, quiet=quiet)
            return
        click.echo(printable(f"error: {exc}"), err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("aborted by a second interrupt; the latest finished checkpoint is kept", err=True)
        sys.exit(130)
    if result.status != "completed":
        sys.exit(result.exit_code)
