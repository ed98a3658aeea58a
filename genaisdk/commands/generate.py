"""`genai generate MODEL`: continue a prompt with a trained model (KV cache, compiled decode
loop), or time it with `--bench`.

Exit status: 0 generated; 1 the model cannot be loaded or the input cannot be generated
from (missing run directory, no checkpoint, an empty prompt, a tokenizer that does not
match); 2 bad usage or the [jax] extra is missing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from genaisdk.core.safe import printable


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"error: {printable(message)}", err=True)
    sys.exit(code)


def _read_prompts(prompt: str | None, prompt_file: str | None, batch_file: str | None, chat: bool = False) -> list:
    given = [name for name, value in (("--prompt", prompt), ("--prompt-file", prompt_file), ("--batch-file", batch_file)) if value is not None]
    if len(given) > 1:
        raise click.UsageError(f"give one of --prompt, --prompt-file and --batch-file, not {' and '.join(given)}")
    if prompt is not None:
        return [prompt]
    if prompt_file is not None:
        return [_read(prompt_file)]
    if batch_file is not None:
        return _batch_prompts(batch_file, chat)
    return []


def _read(path: str) -> str:
    try:
        return sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}")


def _batch_prompts(path: str, chat: bool = False) -> list:
    """One prompt per line; a JSON-lines file (.jsonl) gives each record's 'prompt' field,
    or with `chat` its turns: {"prompt"} is a user turn, {"messages": [...]} a conversation
    (`genaisdk.backend.jax.sources.chat_messages`)."""
    text = _read(path)
    if not path.endswith((".jsonl", ".ndjson")):
        return [line for line in text.splitlines() if line.strip()]
    from genaisdk.backend.jax.sources import DataError, chat_messages
    from genaisdk.core.jsonlines import JSONLineError, json_lines

    prompts: list = []
    try:
        for number, record in json_lines(text, path):
            if chat and isinstance(record, dict):
                prompts.append(chat_messages(f"{path}:{number}", record, response=False))
                continue
            if not isinstance(record, dict) or not isinstance(record.get("prompt"), str):
                _fail(f"{path}:{number}: a batch record needs a string 'prompt' field")
            prompts.append(record["prompt"])
    except (JSONLineError, DataError) as exc:
        _fail(str(exc))
    if not prompts:
        _fail(f"{path} holds no prompt")
    return prompts


def _fmt_bytes(value: float) -> str:
    from genaisdk.core.numbers import fmt_bytes

    return fmt_bytes(int(value))


def _print_bench(result) -> None:
    ratio = lambda a, b: f"x{a / b:.3f}" if b else "-"  # noqa: E731
    lines = [
        f"{result.precision} ({result.weights} weights, {result.kv_precision} KV cache) on {printable(result.device)}: batch {result.batch}, "
        f"{result.prompt_tokens} prompt tokens, {result.new_tokens} new tokens, cache of {result.cache_len} positions",
        f"  time to first token   {result.ttft_s * 1e3:.2f} ms   prompt {result.prompt_tokens_per_s:,.0f} tokens/s",
        f"  decode                {result.decode_step_s * 1e3:.3f} ms/step   {result.decode_tokens_per_s:,.1f} tokens/s",
        f"  weights               {_fmt_bytes(result.weight_bytes)} measured, {_fmt_bytes(result.planned_weight_bytes)} "
        f"planned ({ratio(result.weight_bytes, result.planned_weight_bytes)})",
        f"  KV cache              {_fmt_bytes(result.kv_bytes)} measured, {_fmt_bytes(result.planned_kv_bytes)} planned "
        f"({ratio(result.kv_bytes, result.planned_kv_bytes)}); {_fmt_bytes(result.kv_bytes_per_token)} per position",
        f"  decode bandwidth      {_fmt_bytes(result.bandwidth)}/s = {result.bandwidth_fraction:.2f} of "
        f"{_fmt_bytes(result.peak_bandwidth)}/s ({result.peak_source})",
    ]
    click.echo("\n".join(lines))


@click.command("generate")
@click.argument("model", metavar="MODEL")
@click.option("--prompt", help="The text to continue.")
@click.option("--prompt-file", type=click.Path(dir_okay=False, allow_dash=True), help="Read the prompt from a file ('-': stdin).")
@click.option("--batch-file", type=click.Path(dir_okay=False), help="Several prompts: one per line, or .jsonl records with a 'prompt' field.")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=64, show_default=True, metavar="N", help="Tokens to generate at most per prompt.")
@click.option("--temperature", type=click.FloatRange(min=0.0), default=0.0, show_default=True, metavar="T", help="0 is greedy; higher samples more freely.")
@click.option("--top-k", type=click.IntRange(min=0), default=0, show_default=True, metavar="K", help="Sample among the K likeliest tokens (0: all).")
@click.option("--top-p", type=float, default=1.0, show_default=True, metavar="P", help="Sample among the likeliest tokens whose probability reaches P (nucleus; 1: all).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sampling draws.")
@click.option("--precision", metavar="P", help="Serve the weights in fp32, bf16, fp16, int8 or int4 (NF4); default: the run's compute dtype.")
@click.option(
    "--kv-precision",
    type=click.Choice(["fp32", "bf16", "fp16", "fp8"]),
    help="Hold the KV cache in this type, as the plan's serve.kv_precision (default: the compute dtype); fp8 (E4M3) halves a 16-bit cache.",
)
@click.option(
    "--adapters",
    type=click.Path(),
    metavar="DIR",
    help="A PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors, as PEFT's save_pretrained "
    "or `genai export --adapters` write it) merged into MODEL first; DoRA, trained biases and modules_to_save are refused.",
)
@click.option(
    "--chat",
    is_flag=True,
    help="Render each prompt as a user turn of the training chat template (\"User: TEXT\\nAssistant:\", tokenized as "
    "genai train tokenized chat examples) and generate the answer, which ends at EOS; .jsonl batch records may "
    'give {"messages": [...]}. For models trained on prompt/response or messages JSON lines.',
)
@click.option("--json", "as_json", is_flag=True, help='Print {"prompt_ids", "ids", "text"} (one line per prompt).')
@click.option("--bench", is_flag=True, help="Time prefill and decode instead: tokens/s, time to first token, memory bandwidth.")
@click.option("--batch", "bench_batch", type=click.IntRange(min=1), default=1, show_default=True, metavar="B", help="--bench: sequences decoded together.")
@click.option("--prompt-tokens", type=click.IntRange(min=1), default=128, show_default=True, metavar="N", help="--bench: prompt length in tokens.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the generated text (no memory line on stderr).")
def command(
    model: str,
    prompt: str | None,
    prompt_file: str | None,
    batch_file: str | None,
    max_new_tokens: int,
    temperature: float,
    top_k: int,
    top_p: float,
    seed: int,
    precision: str | None,
    kv_precision: str | None,
    as_json: bool,
    bench: bool,
    bench_batch: int,
    prompt_tokens: int,
    quiet: bool,
    adapters: str | None,
    chat: bool,
) -> None:
    """Continue a prompt with the model of a `genai train` run directory (its latest good
    checkpoint) or of a Hugging Face checkpoint folder, greedy by default, stopping at the
    tokenizer's end-of-sequence id. --adapters applies a PEFT LoRA adapter to it first.
    --chat asks a model trained on chat examples: the prompt is rendered as training
    rendered a user turn, and the answer is what follows "Assistant:".

    \b
    Examples:
      genai generate runs/tiny-legal --prompt "Permission is hereby granted"
      genai generate runs/tiny-legal --prompt "The licensee" --temperature 0.8 --top-p 0.9 --seed 1
      genai generate runs/tiny-legal --batch-file prompts.txt --precision int8 --json
      genai generate runs/tiny-legal --bench --prompt-tokens 128 --max-new-tokens 128
      genai generate runs/tiny-legal --bench --precision int8 --kv-precision fp8
      genai generate runs/support-lora --chat --prompt "How do I reset my password?"
      genai generate path/to/llama --adapters exports/support-adapter --chat --prompt "How do I reset my password?"
    """
    from genaisdk.backend.jax.train import TrainError, require_jax

    try:
        require_jax()
    except TrainError as exc:
        _fail(str(exc), exc.exit_code)
    if not 0.0 < top_p <= 1.0:
        raise click.BadParameter("must be in (0, 1]", param_hint="--top-p")
    if chat and bench:
        raise click.UsageError("--chat renders prompts to answer; --bench times prompts of --prompt-tokens tokens: give one")
    prompts = _read_prompts(prompt, prompt_file, batch_file, chat)
    if not prompts and not bench:
        raise click.UsageError("give a prompt: --prompt TEXT, --prompt-file FILE or --batch-file FILE")

    from genaisdk.backend.jax.config import BackendError
    from genaisdk.backend.jax.generate import Generator, Sampling
    from genaisdk.backend.jax.generate import bench as run_bench

    try:
        generator = Generator(model, precision, kv_precision=kv_precision, adapters=adapters)
        if bench:
            result = run_bench(
                generator, prompt=prompts[0] if prompts else None, prompt_tokens=prompt_tokens, new_tokens=max_new_tokens, batch=bench_batch
            )
            click.echo(json.dumps(result.to_json(), indent=2)) if as_json else _print_bench(result)
            return
        sampling = Sampling(temperature=temperature, top_k=top_k, top_p=top_p)
        encoded = generator.chat_prompts(prompts) if chat else generator.encode_prompts(prompts)
        run = generator.run(encoded, max_new_tokens=max_new_tokens, sampling=sampling, seed=seed)
    except BackendError as exc:
        _fail(str(exc))
    texts = [p if isinstance(p, str) else None for p in prompts]
    generations = generator.generations(texts, encoded, run["tokens"])
    for index, generation in enumerate(generations):
        if as_json:
            click.echo(json.dumps(generation.to_json(), ensure_ascii=False))
        else:
            if index:
                click.echo("")
            # A byte-level model can write any byte, escape sequences included: the terminal
            # gets them escaped (--json keeps the text exact, JSON-escaped).
            click.echo(printable(generation.text, keep_newlines=True))
    if not quiet and not as_json:
        click.echo(
            f"[{generator.format.precision}: weights {_fmt_bytes(generator.weight_bytes)}, KV cache "
            f"{_fmt_bytes(run['kv_bytes'])} ({len(prompts)} x {run['cache_len']} positions)]",
            err=True,
        )
