"""`genai eval MODEL [--data FILE...]`: held-out loss, perplexity, bits per byte and the
task's metric of a trained model; writes eval.json.

Exit status: 0 evaluated; 1 the model or the data cannot be read or evaluated; 2 bad usage,
or a missing extra ([jax], or [eval] for a task metric).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from genaisdk.core.safe import printable


def _number(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _print(result, path: Path | None) -> None:
    from genaisdk.core.numbers import fmt_bytes

    head = printable(result.model)
    if result.step is not None:
        head += f" at step {result.step}"
    click.echo(f"{head}: {result.precision} ({result.weights} weights, {result.compute} compute)")
    names = {row["source"]: printable(row["source"]) for row in result.sources}
    names["all"] = "all"
    width = max([len("source")] + [len(name) for name in names.values()])
    click.echo(f"  {'source':<{width}}  {'loss':>8}  {'perplexity':>10}  {'bits/byte':>9}  {'tokens':>9}")
    rows = list(result.sources)
    if len(rows) > 1:
        rows.append({"source": "all", **result.overall})
    for row in rows:
        click.echo(
            f"  {names[row['source']]:<{width}}  {_number(row['loss']):>8}  {_number(row['perplexity'], 3):>10}  "
            f"{_number(row['bits_per_byte']):>9}  {row['tokens']:>9,}"
        )
    for row in rows:
        if row.get("scored", "all tokens") != "all tokens":
            click.echo(f"  {names[row['source']]}: loss, perplexity and bits/byte over the {row['scored']} only (the prompt is context)")
    if result.baseline is not None:
        base = result.baseline
        change = (base["perplexity_ratio"] - 1.0) * 100
        click.echo(
            f"  quality: perplexity {_number(base['perplexity'], 3)} in {base['precision']} -> "
            f"{_number(result.perplexity, 3)} in {result.precision} ({change:+.2f}%)"
        )
    memory = result.memory
    line = (
        f"  memory: weights {fmt_bytes(memory['weight_bytes'])} measured, {fmt_bytes(memory['planned_weight_bytes'])} "
        f"planned (x{memory['weight_bytes'] / memory['planned_weight_bytes']:.3f})"
    )
    if "kv_bytes_per_token" in memory:
        line += f"; KV cache {fmt_bytes(memory['kv_bytes_per_token'])} per position"
    click.echo(line)
    task = result.task
    if task is not None:
        if task["metric"] == "rouge":
            figures = "  ".join(f"{k} {task[k]:.4f}" for k in ("rouge1", "rouge2", "rougeL", "rougeLsum"))
            click.echo(f"  {task['name']} ({task['examples']} examples): {figures}")
            click.echo(f"    {task['signature']}")
        elif task["metric"] == "bleu":
            click.echo(f"  {task['name']} ({task['examples']} examples): BLEU {task['bleu']:.2f}  chrF {task['chrf']:.2f}")
            click.echo(f"    BLEU {task['bleu_signature']}")
            click.echo(f"    chrF {task['chrf_signature']}")
        else:
            click.echo(
                f"  {task['name']} ({task['examples']} examples): accuracy {task['accuracy']:.4f}  macro-F1 {task['f1']:.4f}"
            )
    for note in result.notes:
        click.echo(f"note: {printable(note)}")
    if path is not None:
        click.echo(f"  wrote {printable(str(path))}")
    else:
        click.echo("  eval.json not written: MODEL is not a run folder, and genai eval writes nothing into a checkpoint or "
                   "adapter folder it did not make; --out FILE writes it")


@click.command("eval")
@click.argument("model", metavar="MODEL")
@click.argument("files", nargs=-1, metavar="[FILE]...")
@click.option("--data", "data", multiple=True, metavar="FILE", help="A text, JSON-lines file, glob or folder to evaluate on (repeatable; default: the run's held-out split).")
@click.option("--task", metavar="T", help="Score the metric of task T (default: the run's spec task; 'none' to skip).")
@click.option("--precision", metavar="P", help="Serve the weights in fp32, bf16, fp16, int8 or int4 (NF4); default: the run's compute dtype.")
@click.option("--no-baseline", is_flag=True, help="Do not also measure the comparison precision (bf16 for int8/int4).")
@click.option("--max-new-tokens", type=click.IntRange(min=1), metavar="N", help="Generation budget for summarization and translation (default: longest target + 16).")
@click.option(
    "--adapters",
    type=click.Path(),
    metavar="DIR",
    help="A PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors) merged into MODEL first; "
    "DoRA, trained biases and modules_to_save are refused.",
)
@click.option("--out", type=click.Path(dir_okay=False), help="Where to write eval.json (default: RUN/eval.json for a run folder; nothing for a checkpoint folder).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def command(
    model: str,
    files: tuple[str, ...],
    data: tuple[str, ...],
    task: str | None,
    precision: str | None,
    no_baseline: bool,
    max_new_tokens: int | None,
    adapters: str | None,
    out: str | None,
    as_json: bool,
) -> None:
    """Evaluate the model of a `genai train` run directory: mean loss per token (nats),
    perplexity and bits per byte for each data source, and the task's metric (ROUGE for
    summarization, BLEU and chrF for translation, accuracy and F1 for classification) on
    JSON-lines records {"input": ..., "target": ...}. Instruction and chat lines
    ({"prompt", "response"} or {"messages": [...]}, as `genai train` reads them) are
    scored on their response tokens only, and a task's metric compares the model's answer
    to each prompt with its response.

    \b
    Examples:
      genai eval runs/tiny-legal                       the run's own held-out split
      genai eval runs/tiny-legal --data heldout.txt more/*.txt
      genai eval runs/t5 --data test.jsonl --task summarization --json
      genai eval runs/support-lora --data specs/data/support.jsonl --task summarization
      genai eval runs/tiny-legal --data heldout.txt --precision int8
      genai eval path/to/llama --adapters exports/support-adapter --data heldout.txt
    """
    from genaisdk.backend.jax.train import TrainError, require_jax

    try:
        require_jax()
    except TrainError as exc:
        click.echo(f"error: {printable(str(exc))}", err=True)
        sys.exit(exc.exit_code)

    from genaisdk.backend.jax.config import BackendError
    from genaisdk.backend.jax.evaluate import RESULT_FILE, evaluate, write_result
    from genaisdk.evaluation.metrics import MissingMetricError

    entries = list(data) + list(files)
    try:
        result = evaluate(
            model,
            entries or None,
            task=task,
            precision=precision,
            baseline=not no_baseline,
            max_new_tokens=max_new_tokens,
            adapters=adapters,
        )
    except MissingMetricError as exc:
        click.echo(f"error: {printable(str(exc))}", err=True)
        sys.exit(2)
    except BackendError as exc:
        click.echo(f"error: {printable(str(exc))}", err=True)
        sys.exit(1)
    # Written by default only into a run folder this tool made (never into a downloaded
    # checkpoint or adapter folder).
    from genaisdk.backend.jax.run_folder import is_run_folder

    home = Path(model)
    path = Path(out) if out else (home / RESULT_FILE if not adapters and is_run_folder(home) else None)
    if path is not None:
        try:
            write_result(result, path)
        except OSError as exc:
            click.echo(f"error: cannot write {printable(str(path))}: {exc.strerror or exc}", err=True)
            sys.exit(1)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2, ensure_ascii=False, default=str))
    else:
        _print(result, path)
