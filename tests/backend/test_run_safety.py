"""A run stays in its place: its output folder (slug, ownership, lock, unwritable disks), its
data (confined to the spec's folder, regular files only, listed), what it reads (no code),
and the limits it checks before JAX starts (steps, devices). None of these tests trains."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from genaisdk.backend.jax.errors import TrainError
from genaisdk.backend.jax.options import TrainOptions
from genaisdk.backend.jax.run_folder import (
    LOCK_FILE,
    RUN_SCHEMA,
    FolderLocked,
    RunFolder,
    RunLock,
    check_folder,
    default_out_dir,
    inspect,
)
from genaisdk.backend.jax.sources import DataError, DataScope, resolve_files
from genaisdk.cli import cli

ROOT = Path(__file__).resolve().parents[2]

SPEC = """genai 1

project "tiny-safety" {
  model {
    family  = decoder
    layers  = 1
    d_model = 32
    heads   = 2
    d_ff    = 64
    vocab   = 384
    context = 32 tokens
  }
  data {
    source = "SOURCE"
  }
  train {
    precision = fp32
    batch     = 256 tokens
    steps     = 2
  }
}
"""


def _spec(folder: Path, source: str = "synthetic") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tiny.genai"
    path.write_text(SPEC.replace("SOURCE", source))
    return path


def _train(*args):
    return CliRunner().invoke(cli, ["train", *map(str, args)], catch_exceptions=False)


# -- the default folder stays under runs/ --------------------------------------------------


@pytest.mark.parametrize("project", ["..", ".", "/etc", "a/../../b", "../../x", "...", "-", "", "~root", "a\\..\\b"])
def test_the_default_output_folder_is_a_slug_under_runs(project):
    folder = default_out_dir(project)
    assert folder.parent == Path("runs")
    assert folder.name not in ("", ".", "..") and "/" not in folder.name and not folder.name.startswith(".")
    resolved = (Path.cwd() / folder).resolve()
    assert resolved.parent == (Path.cwd() / "runs").resolve()


# -- only its own folders ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "files",
    [
        {"spec.genai": 'project "mine" {}'},
        {"run.json": '{"experiment": 7}'},
        {"metrics.jsonl": '{"step": 1}\n'},
        {"notes.txt": "mine"},
    ],
)
def test_a_folder_this_tool_did_not_write_is_refused(tmp_path, files):
    out = tmp_path / "out"
    out.mkdir()
    for name, text in files.items():
        (out / name).write_text(text)
    result = _train(_spec(tmp_path / "spec"), "--out", out)
    assert result.exit_code == 2, result.output
    assert f"{out} holds files genai train did not write ({', '.join(files)})" in result.output
    assert "choose another --out" in result.output and "Traceback" not in result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(files)  # untouched, no lock left
    for name, text in files.items():
        assert (out / name).read_text() == text
    # --resume does not make it a run folder either.
    assert _train(_spec(tmp_path / "spec"), "--out", out, "--resume").exit_code == 2


def test_out_dot_in_a_project_folder_is_refused(tmp_path, monkeypatch):
    spec = _spec(tmp_path)
    monkeypatch.chdir(tmp_path)
    result = _train(spec.name, "--out", ".")
    assert result.exit_code == 2 and "holds files genai train did not write (tiny.genai)" in result.output
    assert sorted(os.listdir(tmp_path)) == ["tiny.genai"]


def test_own_run_folders_empty_and_missing_folders_are_accepted(tmp_path):
    assert inspect(tmp_path / "missing").kind == "missing"
    (tmp_path / "empty").mkdir()
    assert inspect(tmp_path / "empty").kind == "empty"
    residue = tmp_path / "residue"  # a run killed before it wrote run.json
    (residue / "checkpoints").mkdir(parents=True)
    (residue / LOCK_FILE).write_text('{"pid": 1}')
    assert inspect(residue).kind == "empty"
    run = tmp_path / "run"
    (run / "checkpoints" / "5").mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"schema": RUN_SCHEMA}))
    state = inspect(run)
    assert (state.kind, state.latest_step) == ("run", 5)
    check_folder(state, resume=True)
    with pytest.raises(TrainError, match=r"already holds checkpoints \(latest step 5\): pass --resume") as info:
        check_folder(state, resume=False)
    assert info.value.exit_code == 2
    with pytest.raises(TrainError, match="is a file, not a folder"):
        inspect(tmp_path / "run" / "run.json")


# -- unwritable output ---------------------------------------------------------------------------


def test_an_output_folder_that_cannot_be_created_is_a_clean_error(tmp_path):
    (tmp_path / "file").write_text("x")
    result = _train(_spec(tmp_path / "spec"), "--out", tmp_path / "file" / "run")
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"error: cannot write to {tmp_path / 'file' / 'run'}: Not a directory")
    assert "Traceback" not in result.output


def test_a_read_only_file_system_is_a_clean_error(tmp_path, monkeypatch):
    def read_only(self, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    spec = _spec(tmp_path / "spec")
    monkeypatch.setattr(Path, "mkdir", read_only)
    result = _train(spec, "--out", tmp_path / "ro" / "run")
    assert result.exit_code == 1
    assert "cannot write to" in result.output and "Read-only file system" in result.output
    assert "choose a writable folder with --out" in result.output and "Traceback" not in result.output


# -- one run at a time -----------------------------------------------------------------------------

_HOLDER = """
import sys
from genaisdk.backend.jax.run_folder import RunLock
lock = RunLock(sys.argv[1]).acquire()
print("locked", flush=True)
sys.stdin.read()
lock.release()
"""


def test_a_second_run_on_a_locked_folder_is_refused_with_the_holders_pid(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        second = subprocess.run(
            [sys.executable, "-m", "genaisdk", "train", str(_spec(tmp_path / "spec")), "--out", str(out), "--plain"],
            capture_output=True, text=True, timeout=120, env=env,
        )
        assert second.returncode == 1, second.stdout + second.stderr
        assert f"{out} is in use by another run (pid {holder.pid}" in second.stderr
        assert "Traceback" not in second.stderr and not (out / "run.json").exists()
        with pytest.raises(FolderLocked) as info:  # and in this process too
            RunLock(out).acquire()
        assert info.value.holder["pid"] == holder.pid
    finally:
        holder.kill()  # SIGKILL: the lock file stays, its lock goes with the process
        holder.wait(timeout=30)
    assert holder.returncode == -signal.SIGKILL and (out / LOCK_FILE).exists()
    folder = RunFolder.open(out, project="p", resume=False)
    try:
        assert folder.lock.stale["pid"] == holder.pid
        assert folder.notes == [f"took over {LOCK_FILE} from pid {holder.pid}, which ended without releasing it"]
        assert json.loads((out / LOCK_FILE).read_text())["pid"] == os.getpid()
    finally:
        folder.close()
    assert not (out / LOCK_FILE).exists() and out.is_dir()  # released; the folder was there before: kept


# -- data stays inside the spec's folder -------------------------------------------------------------


@pytest.fixture
def tree(tmp_path):
    """spec/ with data/a.txt, data/sub/b.txt; outside/secret.txt next to it."""
    spec = tmp_path / "spec"
    (spec / "data" / "sub").mkdir(parents=True)
    (spec / "data" / "a.txt").write_text("alpha")
    (spec / "data" / "sub" / "b.txt").write_text("beta")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text("secret")
    return spec


def _scope(spec, **kwargs):
    return DataScope(roots=(spec,), **kwargs)


@pytest.mark.parametrize("entry", ["../../../../etc/passwd", "~/.bashrc", "/etc/*.conf", "../outside/secret.txt", "../outside"])
def test_data_outside_the_spec_folder_is_refused(tree, entry):
    with pytest.raises(DataError) as info:
        resolve_files([entry], tree, scope=_scope(tree))
    message = str(info.value)
    assert message.startswith(f"data source {entry!r}: ") and "is outside the spec's folder" in message
    assert "--set data.source=" in message and "--allow-data-outside" in message


def test_symlinks_are_checked_the_same_in_folder_and_glob_forms(tree):
    (tree / "data" / "sym").symlink_to(tree.parent / "outside")
    for entry in ("data", "data/**", "data/sym/**", "data/**/*.txt", "data/sym/secret.txt"):
        with pytest.raises(DataError, match=r"a link to .*outside.*outside the spec's folder"):
            resolve_files([entry], tree, scope=_scope(tree))
    # A link inside the folder is followed like any folder, and its files read once.
    (tree / "data" / "sym").unlink()
    (tree / "data" / "again").symlink_to(tree / "data" / "sub")
    (tree / "data" / "loop").symlink_to(tree / "data")
    names = lambda entry: sorted(p.name for p in resolve_files([entry], tree, scope=_scope(tree)))  # noqa: E731
    assert names("data") == names("data/**/*.txt") == ["a.txt", "b.txt"]


def test_the_user_can_allow_more_than_the_spec(tree):
    outside = str(tree.parent / "outside" / "secret.txt")
    assert resolve_files([outside], tree, scope=_scope(tree, anywhere=True))[0].name == "secret.txt"
    assert resolve_files([outside], tree, scope=_scope(tree, trusted={outside}))[0].name == "secret.txt"
    with pytest.raises(DataError):
        resolve_files([outside], tree, scope=_scope(tree, trusted={"other"}))


def test_entries_given_on_the_command_line_are_trusted_those_in_the_spec_are_not(tree):
    from genaisdk.backend.jax.train import data_scope, load_spec

    spec_file = _spec(tree, source="../outside/secret.txt")
    own = data_scope(load_spec(spec_file), TrainOptions())
    assert own.trusted == frozenset() and own.confines("../outside/secret.txt")
    typed = str(tree.parent / "outside" / "secret.txt")
    given = data_scope(load_spec(spec_file, [f'data.source="{typed}"']), TrainOptions())
    assert given.trusted == {typed}
    assert data_scope(load_spec(spec_file), TrainOptions(allow_data_outside=True)).anywhere


def test_an_empty_entry_is_an_error_not_the_whole_folder(tree):
    with pytest.raises(DataError, match=r"data source '' is empty"):
        resolve_files([""], tree, scope=_scope(tree))


def test_only_regular_files_are_read(tree):
    with pytest.raises(DataError, match=r"'/dev/zero': /dev/zero is a device, not a regular file"):
        resolve_files(["/dev/zero"], tree, scope=_scope(tree, anywhere=True))
    os.mkfifo(tree / "data" / "pipe")
    outcome = {}

    def resolve():
        try:
            resolve_files(["data/pipe"], tree, scope=_scope(tree))
        except DataError as exc:
            outcome["error"] = str(exc)

    worker = threading.Thread(target=resolve, daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive(), "a named pipe blocked"
    assert "data/pipe is a named pipe, not a regular file" in outcome["error"]
    with pytest.raises(DataError, match="named pipe"):
        resolve_files(["data"], tree, scope=_scope(tree))  # inside a folder too


def test_what_was_read_is_listed_with_sizes_and_hashes(tree):
    from genaisdk.backend.jax.data import build_pipeline

    (tree / "data" / "a.txt").write_text("alpha " * 40)
    (tree / "data" / "sub" / "b.txt").write_text("beta " * 40)
    pipe = build_pipeline(["data"], seq_len=8, rows_per_step=1, vocab_size=384, base_dir=tree, scope=_scope(tree))
    listed = {Path(f.path).name: (f.bytes, f.sha256) for f in pipe.files}
    for name, path in (("a.txt", tree / "data" / "a.txt"), ("b.txt", tree / "data" / "sub" / "b.txt")):
        raw = path.read_bytes()
        assert listed[name] == (len(raw), hashlib.sha256(raw).hexdigest())


def test_a_spec_reading_outside_its_folder_is_refused_by_genai_train(tmp_path):
    (tmp_path / "outside.txt").write_text("text " * 200)
    result = _train(_spec(tmp_path / "spec", source="../outside.txt"), "--out", tmp_path / "run", "--devices", "2")
    assert result.exit_code == 1, result.output
    assert result.output.startswith("error: data source '../outside.txt':") and "--allow-data-outside" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "run").exists()


# -- nothing read can run code ---------------------------------------------------------------------------


def test_no_module_loads_a_code_executing_format():
    pattern = ("import pickle", "import marshal", "import shelve", "import dill", "cloudpickle", "yaml.load(", "allow_pickle=True", "torch.load")
    offenders = [
        f"{path.relative_to(ROOT)}: {needle}"
        for path in (ROOT / "genaisdk").rglob("*.py")
        for needle in pattern
        if needle in path.read_text(encoding="utf-8")
    ]
    assert offenders == []


def test_measure_sends_its_subprocess_json_not_pickles():
    import genaisdk
    from genaisdk.backend.jax.measure import spec_from_request, spec_request

    spec = genaisdk.load(ROOT / "specs" / "tiny-gpt.genai", overrides=["train.sharding=fsdp"])
    request = json.loads(json.dumps(spec_request(spec, devices=4, fit_flops=False)))
    assert request["overrides"] == ["train.sharding=fsdp"] and request["devices"] == 4
    again = spec_from_request(request)
    assert again == spec and again.project.train.sharding == "fsdp"


def test_malformed_checkpoint_metadata_is_a_checkpoint_error():
    from genaisdk.backend.jax.checkpoint import CheckpointError, checked_meta

    assert checked_meta(3, {"data": {"fingerprint": "x"}, "fingerprint": [1, 2]})["data"] == {"fingerprint": "x"}
    for raw, field in (
        ({"data": "notadict"}, "'data' is str 'notadict', not an object"),
        ({"fingerprint": ["a"]}, "'fingerprint' is not a list of 32-bit integers"),
        ({"layout": 5}, "'layout' is int 5, not str"),
        (["a", "list"], "a list, not an object"),
    ):
        with pytest.raises(CheckpointError, match=f"step 3 has malformed metadata.*{field}"):
            checked_meta(3, raw)


# -- limits checked before JAX starts ----------------------------------------------------------------------


def test_step_counts_past_the_32_bit_counter_are_refused():
    from genaisdk.backend.jax.config import MAX_STEPS

    with pytest.raises(TrainError, match="steps must be at most 2,147,483,647") as info:
        TrainOptions(steps=3_000_000_000)
    assert info.value.exit_code == 2
    TrainOptions(steps=MAX_STEPS)


def test_a_spec_with_too_many_steps_is_a_dry_run_problem(tmp_path):
    spec = _spec(tmp_path)
    spec.write_text(spec.read_text().replace("steps     = 2", "steps     = 3000000000"))
    result = CliRunner().invoke(cli, ["train", str(spec), "--dry-run"])
    assert result.exit_code == 1
    assert "3,000,000,000 steps are more than a run can count (2,147,483,647" in result.output


def test_the_schedule_is_finite_for_any_step_count():
    pytest.importorskip("jax")
    import jax.numpy as jnp

    from genaisdk.backend.jax.optimizers import warmup_cosine

    schedule = warmup_cosine(1e-3, warmup_steps=2000, total_steps=2**31 - 1, min_ratio=0.1)
    values = [float(schedule(jnp.int32(s))) for s in (0, 1999, 2000, 2**30, 2**31 - 1)]
    assert all(0 < v <= 1e-3 * (1 + 1e-6) for v in values)  # float32
    assert values[2] == pytest.approx(1e-3) and values[-1] == pytest.approx(1e-4)


@pytest.mark.parametrize("text, expected", [("64MB", 64_000_000), ("80 GiB", 80 * 2**30), (1024, 1024)])
def test_device_memory_reads_sizes(text, expected, monkeypatch):
    assert TrainOptions(device_memory=text).device_memory == expected
    monkeypatch.setenv("GENAISDK_DEVICE_MEMORY", "2GB")
    assert TrainOptions().configured_device_memory() == (2_000_000_000, "GENAISDK_DEVICE_MEMORY")
    assert TrainOptions(device_memory=text).configured_device_memory() == (expected, "--device-memory")


def test_the_cheapest_fitting_configuration_comes_from_the_plans_options():
    import genaisdk
    from genaisdk.backend.jax.compile import fitting_configuration
    from genaisdk.planning.run_settings import run_settings

    spec = genaisdk.load(ROOT / "specs" / "tiny-gpt.genai")
    plan = genaisdk.plan(spec)
    settings = run_settings(plan, spec)
    option = next(o for o in plan.memory.options if o.chosen)
    p = option.per_device
    need = int(p.weights + p.gradients + p.optimizer + p.activations)  # XLA agrees with the plan: ratio 1
    state = p.weights + p.gradients + p.optimizer
    half = fitting_configuration(plan, settings, need, int(state + p.activations * 0.6), genaisdk.get_registry())
    assert (half.strategy, half.micro_batch, half.overrides) == ("ddp", option.micro_batch // 2, (f"train.micro_batch={option.micro_batch // 2}",))
    assert half.bytes == pytest.approx(state + p.activations / 2)
    assert fitting_configuration(plan, settings, need, int(state), genaisdk.get_registry()) is None


def test_a_process_cannot_ask_for_more_devices_than_one_can_have():
    from genaisdk.backend.jax.distributed import MAX_CPU_DEVICES, DistributedError, check_device_count

    check_device_count(MAX_CPU_DEVICES)
    started = time.perf_counter()
    with pytest.raises(DistributedError, match="--devices 100,000 is more devices than one process can have"):
        check_device_count(100_000)
    assert time.perf_counter() - started < 1
