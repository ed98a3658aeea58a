"""How fast `genai check` answers: cold as a whole process, warm in-process, and on large files.

    python benchmarks/bench_check.py [--runs 21] [--spec specs/legal.genai] [--breakdown] [--strict]
    python benchmarks/bench_check.py --scaling [--sizes 1,2,5,10,20] [--shape list|comments|blank|errors|all]

Cold: the median wall time of `genai check SPEC` as a fresh process, against a bare
`python -c pass` measured in the same run (runs interleaved, after warm-up runs that
write the bytecode and grammar caches, as any installed copy has them). Goals: <= 150 ms
and <= 4x the bare interpreter.

Warm: the median time of `genaisdk.spec.load(SPEC)` in a process that has loaded a spec
before (parser built, registry loaded). Goal: <= 5 ms.

Prints both ratios. `--breakdown` adds the median time of each phase of a cold check
(imports, Lark, grammar, registry, parse and check); `--strict` exits 1 when a goal is
missed.

Scaling (`--scaling`): check time and peak memory of generated specs of several sizes (MB
of text), each checked and rendered in a fresh process after a warm-up check, so the
figures are the file's own. Time per MB at every size, and the ratio of the largest size's
time per MB to the smallest's: 1.0 is linear, and the goal is <= 1.5. The shapes: `list`
(a `data.source` list of one path per line, with comments and blank lines, as a spec
listing many shards would have), `comments` (comment lines), `blank` (blank lines) and
`errors` (a key set again on every line: one diagnostic per line, rendered). Sizes above
the spec size limit (`genaisdk.spec.parse.MAX_SPEC_SIZE`) are checked with the limit
raised for the run (`GENAISDK_MAX_SPEC_SIZE`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COLD_LIMIT_S = 0.150
COLD_RATIO_LIMIT = 4.0
WARM_LIMIT_S = 0.005
LINEARITY_LIMIT = 1.5
SHAPES = ("list", "comments", "blank", "errors")


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    # Bytecode caching on, as in any normal install (some shells switch it off).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _genai_command(spec: str) -> list[str]:
    script = shutil.which("genai", path=str(Path(sys.executable).parent))
    if script:
        return [script, "check", spec]
    return [sys.executable, "-m", "genaisdk", "check", spec]


def _time(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    completed = subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if completed.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{completed.stderr.decode(errors='replace')}")
    return elapsed


def cold(spec: str, runs: int) -> tuple[float, float]:
    env = _child_env()
    check = _genai_command(spec)
    bare = [sys.executable, "-c", "pass"]
    for _ in range(2):  # warm-up: bytecode, grammar cache, OS file cache
        _time(check, env)
        _time(bare, env)
    check_times, bare_times = [], []
    for _ in range(runs):
        bare_times.append(_time(bare, env))
        check_times.append(_time(check, env))
    return statistics.median(check_times), statistics.median(bare_times)


def warm(spec: str, runs: int) -> float:
    from genaisdk.spec import load

    path = ROOT / spec
    load(path)  # builds the parser and loads the registry
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        load(path)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


_PHASES = r"""
import json, sys, time
marks = [("start", time.perf_counter())]
import click, genaisdk.cli, genaisdk.commands.check
marks.append(("cli and click", time.perf_counter()))
import genaisdk.spec, genaisdk.spec.build, genaisdk.spec.parse
marks.append(("spec package", time.perf_counter()))
genaisdk.spec.parse._import_lark()
marks.append(("lark import", time.perf_counter()))
genaisdk.spec.parse.get_parser()
marks.append(("grammar from cache", time.perf_counter()))
from genaisdk.registry import get_registry
get_registry().names("tasks")
marks.append(("registry and plugins", time.perf_counter()))
text = genaisdk.spec.read_spec_file(sys.argv[1])
genaisdk.spec.check(text, sys.argv[1])
marks.append(("first parse and check", time.perf_counter()))
print(json.dumps({b[0]: b[1] - a[1] for a, b in zip(marks, marks[1:])}))
"""


def breakdown(spec: str, runs: int) -> dict[str, float]:
    """Median seconds of each phase of a cold check, measured inside fresh processes
    (interpreter start-up excluded)."""
    import json

    env = _child_env()
    samples: dict[str, list[float]] = {}
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", _PHASES, spec], cwd=ROOT, env=env, capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(out.stderr)
        for phase, seconds in json.loads(out.stdout).items():
            samples.setdefault(phase, []).append(seconds)
    return {phase: statistics.median(values) for phase, values in samples.items()}


def big_spec(size: int, shape: str) -> str:
    """A spec of about `size` characters, grown in the given shape (see the docstring)."""
    head = 'genai 1\n\nproject "scaling" {\n  task = summarization\n  data {\n    tokens = 1B tokens\n'
    tail = "  }\n}\n"
    if shape == "list":
        head, tail = head + "    source = [\n", "    ]\n" + tail
    parts = [head]
    total, number = len(head) + len(tail), 0
    while total < size:
        number += 1
        if shape == "list":
            line = f'      "shards/part-{number:08d}.jsonl",' + ("  # a shard\n" if number % 10 == 0 else "\n")
            if number % 100 == 0:
                line += "\n"
        elif shape == "comments":
            line = f"    # note {number}: a comment line\n"
        elif shape == "blank":
            line = "\n"
        else:
            line = "    keep = 3%\n"
        parts.append(line)
        total += len(line)
    parts.append(tail)
    return "".join(parts)


_SCALING_CHILD = r"""
import json, os, resource, sys, time
sys.path.insert(0, sys.argv[3])
from bench_check import big_spec
from genaisdk.diagnostics import render_all
from genaisdk.spec import diagnose
diagnose("genai 1\nproject \"warm\" {\n  task = summarization\n}\n", "warm.genai")
text = big_spec(int(sys.argv[1]), sys.argv[2])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
start = time.perf_counter()
_, diagnostics, source = diagnose(text, "big.genai")
shown = render_all(diagnostics, source)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"seconds": seconds, "peak": peak, "base": before, "diagnostics": len(diagnostics), "chars": len(text)}))
"""


def scaling(sizes_mb: list[float], shape: str) -> float:
    """Check generated specs of `sizes_mb` in fresh processes; print time per MB and peak
    memory; return the ratio of the largest size's time per MB to the smallest's."""
    import json

    env = _child_env()
    # Raised for this run only: the default refuses files this large (as it should).
    env["GENAISDK_MAX_SPEC_SIZE"] = str(int(max(sizes_mb) * 1e6) + 1_000_000)
    per_mb = []
    print(f"shape `{shape}`:")
    for size in sizes_mb:
        out = subprocess.run(
            [sys.executable, "-c", _SCALING_CHILD, str(int(size * 1e6)), shape, str(Path(__file__).parent)],
            cwd=ROOT, env=env, capture_output=True, text=True,
        )
        if out.returncode != 0:
            raise SystemExit(out.stderr)
        result = json.loads(out.stdout)
        mb = result["chars"] / 1e6
        per_mb.append(result["seconds"] / mb)
        grown = result["peak"] - result["base"]
        print(f"  {mb:6.1f} MB: {result['seconds']:7.2f} s  = {per_mb[-1]:5.2f} s/MB; "
              f"peak memory {result['peak'] / 1e6:7.0f} MB ({grown / result['chars']:5.1f} bytes per character "
              f"above the {result['base'] / 1e6:.0f} MB before); {result['diagnostics']} diagnostics")
    ratio = per_mb[-1] / per_mb[0]
    print(f"  time per MB, largest / smallest size: {ratio:.2f}x (goal <= {LINEARITY_LIMIT}x: linear)")
    return ratio


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=21, help="cold runs of each command (default 21)")
    parser.add_argument("--warm-runs", type=int, default=200, help="in-process loads (default 200)")
    parser.add_argument("--spec", default="specs/legal.genai")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    parser.add_argument("--breakdown", action="store_true", help="also time each phase of a cold check")
    parser.add_argument("--scaling", action="store_true", help="time large generated specs instead (see above)")
    parser.add_argument("--sizes", default="1,2,5,10,20", help="with --scaling: sizes in MB (default 1,2,5,10,20)")
    parser.add_argument("--shape", default="list", choices=(*SHAPES, "all"), help="with --scaling: what the file is made of")
    args = parser.parse_args()

    if args.scaling:
        sizes = sorted(float(size) for size in args.sizes.split(","))
        ratios = [scaling(sizes, shape) for shape in (SHAPES if args.shape == "all" else (args.shape,))]
        missed = max(ratios) > LINEARITY_LIMIT
        print("all goals met" if not missed else "some goals missed")
        return 1 if (missed and args.strict) else 0

    check_s, bare_s = cold(args.spec, args.runs)
    ratio = check_s / bare_s
    warm_s = warm(args.spec, args.warm_runs)
    print(f"cold `genai check {args.spec}`: median {check_s * 1e3:.1f} ms over {args.runs} runs "
          f"(goal <= {COLD_LIMIT_S * 1e3:.0f} ms: {check_s / COLD_LIMIT_S:.2f}x of the limit)")
    print(f"bare `python -c pass`:            median {bare_s * 1e3:.1f} ms")
    print(f"cold ratio check / bare python:   {ratio:.2f}x (goal <= {COLD_RATIO_LIMIT:.0f}x)")
    print(f"warm in-process load:             median {warm_s * 1e3:.2f} ms over {args.warm_runs} loads "
          f"(goal <= {WARM_LIMIT_S * 1e3:.0f} ms: {warm_s / WARM_LIMIT_S:.2f}x of the limit)")
    if args.breakdown:
        print("where a cold check spends its time (medians, start-up excluded):")
        for phase, seconds in breakdown(args.spec, args.runs).items():
            print(f"  {phase:24s} {seconds * 1e3:7.1f} ms")
    missed = check_s > COLD_LIMIT_S or ratio > COLD_RATIO_LIMIT or warm_s > WARM_LIMIT_S
    print("all goals met" if not missed else "some goals missed")
    return 1 if (missed and args.strict) else 0


if __name__ == "__main__":
    sys.exit(main())
