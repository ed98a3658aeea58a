"""The `genai` command line.

Each subcommand lives in its own module under `genaisdk.commands` and is imported only when
it runs, so `genai plan` pays for the planner and nothing else (never JAX).
Exit codes: 0 success, 1 the spec (or plan) has errors, 2 bad usage.
"""

from __future__ import annotations

import importlib
import sys

import click

# name -> (module under genaisdk.commands, one-line help shown by `genai --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "plan": ("plan", "Plan a spec: architecture, size, memory per device, time, cost, serving."),
    "explain": ("explain", "Show how each number of a plan is derived, values substituted."),
    "check": ("check", "Validate specs and report every problem."),
    "fmt": ("fmt", "Rewrite specs in the one canonical layout."),
    "plugins": ("plugins", "List installed plugins and their status."),
    "catalog": ("catalog", "List registered records of one kind (hardware, presets, ...)."),
    "train": ("train", "Train the spec'd model with the JAX backend."),
    "measure": ("measure", "Compile the planned training step and compare XLA's numbers to the plan."),
    "export": ("export", "Write a trained run or a checkpoint as a Hugging Face checkpoint folder."),
    "report": ("report", "Write the plan (and a run, an evaluation) as one HTML page with plots."),
    "card": ("card", "Write a Hugging Face model card from the spec, plan, run and evaluation."),
    "generate": ("generate", "Continue a prompt with a trained model (KV cache), or time it (--bench)."),
    "eval": ("evaluate", "Held-out loss, perplexity, bits per byte and the task's metric of a trained model."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module_name, _ = COMMANDS[name]
        try:
            module = importlib.import_module(f"genaisdk.commands.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"genaisdk.commands.{module_name}":
                raise
            return None
        return module.command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Show help lines without importing every command module.
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="genaisdk", prog_name="genai")
@click.option(
    "--no-plugins",
    is_flag=True,
    help="Load only the built-in plugins (same as GENAISDK_LOAD_PLUGINS='').",
)
def cli(no_plugins: bool) -> None:
    """genai: plan and run generative-AI projects from a declarative .genai spec.

    \b
    Quick start:
      genai check specs/legal.genai     validate a spec
      genai plan specs/legal.genai      size, fit and cost it
      genai catalog hardware            what GPUs and TPUs are known
    """
    if no_plugins:
        import os

        os.environ["GENAISDK_LOAD_PLUGINS"] = ""


def main() -> None:
    try:
        cli(prog_name="genai")
    except SystemExit as exc:
        # click answers a closed pipe (EPIPE) with exit status 1 after wrapping stdout in
        # its flush-pacifying wrapper; rich's consoles exit `PIPE_CLOSED` themselves
        # (`genaisdk.render.text.make_console`).
        if exc.code == 1 and type(sys.stdout).__name__ == "_PacifyFlushWrapper":
            from genaisdk.core.safe import PIPE_CLOSED

            raise SystemExit(PIPE_CLOSED) from None
        raise


if __name__ == "__main__":  # pragma: no cover
    main()
