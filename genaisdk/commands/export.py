"""`genai export RUN_OR_CHECKPOINT --format hf --out DIR`: a trained run (or a checkpoint) as a
Hugging Face checkpoint folder; of a LoRA or QLoRA run, its merged weights (`--merge`, the
default) or its adapters alone in PEFT's format (`--adapters`).

Exit status: 0 written; 1 the run or checkpoint cannot be read or the format cannot express
the model (one line naming the file and tensor); 2 bad usage or a missing extra.
"""

from __future__ import annotations

import importlib.util
import re
import sys

import click

DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
SIZE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}


def _size(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", value)
    if not match or match.group(2).lower() not in SIZE_UNITS or float(match.group(1)) <= 0:
        raise click.BadParameter("write a size such as 5GB, 500MB or 2GiB")
    return int(float(match.group(1)) * SIZE_UNITS[match.group(2).lower()])


def _missing_extras() -> list[str]:
    needed = (("jax", "jax"), ("orbax.checkpoint", "orbax-checkpoint"), ("safetensors", "safetensors"), ("tokenizers", "tokenizers"))
    missing = []
    for module, package in needed:
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            missing.append(package)
    return missing


@click.command("export")
@click.argument("source", metavar="RUN_OR_CHECKPOINT", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["hf"]), default="hf", show_default=True,
              help="hf: a Hugging Face checkpoint folder (config.json, model.safetensors, tokenizer).")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Folder to write.")
@click.option("--dtype", type=click.Choice(sorted(DTYPES)), help="Weights' dtype on disk (default: as trained or stored; --merge: as the base checkpoint stores its weights, e.g. bf16).")
@click.option("--max-shard-size", callback=_size, metavar="SIZE",
              help="Split the weights into shards of at most SIZE (default 5GB), with an index.")
@click.option("--step", type=int, help="The run's checkpoint step (default: the newest that verifies).")
@click.option("--adapters", is_flag=True,
              help="Of a LoRA or QLoRA run: its adapters alone, as PEFT's adapter_config.json + adapter_model.safetensors.")
@click.option("--merge", is_flag=True,
              help="Of a LoRA or QLoRA run: the base weights with the adapters merged in (W + alpha/r·B·A), a plain "
              "checkpoint (what --format hf writes of such a run), in the base checkpoint's dtype unless --dtype says.")
def command(
    source: str, fmt: str, out: str, dtype: str | None, max_shard_size: int | None, step: int | None, adapters: bool, merge: bool
) -> None:
    """Write a genai train run, or a checkpoint folder, in another format.

    \b
    Examples:
      genai export runs/tiny-gpt --out exports/tiny-gpt
      genai export runs/support --format hf --out exports/support --dtype bf16
      genai export path/to/checkpoint --out copy --max-shard-size 2GB
      genai export runs/support-lora --adapters --out exports/support-adapter
      genai export runs/support-lora --merge --out exports/support-merged
    """
    if adapters and merge:
        click.echo("error: --adapters and --merge exclude each other: the adapters alone, or merged into the base", err=True)
        sys.exit(2)
    missing = _missing_extras()
    if missing:
        click.echo(f"error: genai export needs {', '.join(missing)}: pip install 'genaisdk[jax,hf]'", err=True)
        sys.exit(2)
    from genaisdk.backend.jax.export import ExportOptions, export_model
    from genaisdk.backend.jax.load import load_model
    from genaisdk.backend.jax.tokenizer import TokenizerError
    from genaisdk.checkpoints import CheckpointFormatError

    try:
        loaded = load_model(source, step=step)
        if merge and loaded.adapter is None:
            raise CheckpointFormatError(f"{source} trained every weight: it has no adapters to merge (leave out --merge)")
        result = export_model(
            loaded, out, format="peft" if adapters else fmt, options=ExportOptions(dtype=DTYPES.get(dtype or ""), max_shard_bytes=max_shard_size)
        )
    except (CheckpointFormatError, TokenizerError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    origin = f"step {loaded.step} of {loaded.source}" if loaded.step is not None else str(loaded.source)
    click.echo(f"wrote {result.out} ({len(result.files)} files) from {origin}")
    for note in (*loaded.notes, *result.notes):
        click.echo(f"note: {note}")
