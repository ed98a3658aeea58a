"""How long the registry takes to answer its first question, against its 30 ms budget.

Each sample is a fresh interpreter (the registry loads once per process, so only a cold
start means anything). Before the clock starts the child imports what any command that
asks the registry has already imported: `genaisdk`, its records, and numpy (the estimators
and the planner need it; the built-in architectures bind estimators). It then times:

- import: `import genaisdk.registry` (pluggy and the hook specs);
- scan: reading the installed distributions' entry points;
- load: the first `catalog()` call: importing the built-in and installed plugin modules,
  registering them, calling every registration hook and checking every record.

"discovery" = scan + load, the work the registry does lazily on first use; "first query"
adds the import. Printed: the median of N samples and its ratio to the 30 ms limit
(below 1.0 is within budget), and the same for `importlib.metadata.entry_points`, the
standard scan the registry's own scan replaces.

    python benchmarks/bench_registry.py [--samples 15] [--no-bytecode]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

LIMIT_MS = 30.0

CHILD = r"""
import json, time
import numpy, attrs, genaisdk, genaisdk.records, genaisdk.dims
t0 = time.perf_counter()
import genaisdk.registry as registry_module
t1 = time.perf_counter()
registry_module.scan_entry_points(registry_module.ENTRY_POINT_GROUP)
t2 = time.perf_counter()
registry = registry_module.Registry()
registry.catalog("hardware")
t3 = time.perf_counter()
import importlib.metadata
t4 = time.perf_counter()
importlib.metadata.entry_points(group=registry_module.ENTRY_POINT_GROUP)
t5 = time.perf_counter()
print(json.dumps({
    "import": t1 - t0, "scan": t2 - t1, "load": t3 - t2,
    "stdlib_scan": t5 - t3, "plugins": len(registry.plugins),
    "records": sum(len(registry.catalog(k)) for k in genaisdk.records.RECORD_KINDS),
}))
"""


def sample(env: dict[str, str]) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=15)
    parser.add_argument(
        "--no-bytecode",
        action="store_true",
        help="compile every module from source on each start (as with PYTHONDONTWRITEBYTECODE=1)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="genaisdk-bench-pyc-") as cache:
        env = dict(os.environ)
        if args.no_bytecode:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        else:
            # An installed package starts from compiled bytecode; keep it out of the source tree.
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = cache
        sample(env)  # warm the file-system cache and write the .pyc files
        runs = [sample(env) for _ in range(args.samples)]
    print("bytecode: " + ("compiled from source each start" if args.no_bytecode else "cached (as installed)"))
    ms = {key: statistics.median(run[key] for run in runs) * 1e3 for key in ("import", "scan", "load", "stdlib_scan")}
    discovery = statistics.median((run["scan"] + run["load"]) * 1e3 for run in runs)
    first = statistics.median((run["import"] + run["scan"] + run["load"]) * 1e3 for run in runs)
    print(f"registry: {runs[0]['plugins']} plugins, {runs[0]['records']} records; median of {len(runs)} cold starts")
    print(f"  import genaisdk.registry  {ms['import']:7.1f} ms")
    print(
        f"  entry-point scan          {ms['scan']:7.1f} ms"
        f"   (importlib.metadata, import + scan: {ms['stdlib_scan']:.1f} ms)"
    )
    print(f"  load (plugins + records)  {ms['load']:7.1f} ms")
    for label, value in (("discovery (scan + load)  ", discovery), ("first query (with import)", first)):
        print(f"{label}   {value:7.1f} ms   ratio to the {LIMIT_MS:.0f} ms limit: {value / LIMIT_MS:.2f}")


if __name__ == "__main__":
    main()
