"""A run's output folder: where it is, whether this run may write there, its lock, and the
files that describe the run.

The folder holds ``spec.genai`` (the spec as written), ``run.json`` (what ran: the plan's
settings, each deviation, the resolved configuration, the compiled step's memory, the data
files read with their sizes and hashes, devices, versions), ``metrics.jsonl``,
``result.json`` (what the run measured when it stopped, rewritten by every resume),
``checkpoints/`` and ``tokenizer/``.

Rules that keep one run from destroying another's work or anything else:

- **The default folder stays under ``runs/``.** ``runs/<slug>``, where the slug keeps
  letters, digits, ``.``, ``_`` and ``-`` of the project name and never is ``.`` or ``..``
  (`default_out_dir`), so ``project ".."`` or ``"/etc"`` cannot name a folder elsewhere.
- **Only its own folders.** A run writes into a folder that does not exist, an empty one,
  or one this tool wrote (its ``run.json`` says so). Any other folder (``--out .``, a
  folder with someone's ``spec.genai``, ``run.json`` or ``metrics.jsonl``) is refused,
  as is a run folder that holds checkpoints unless the run resumes it (`inspect`,
  `RunFolder.open`).
- **One run at a time.** The run holds an exclusive lock (`fcntl.flock`) on
  ``train.lock`` in the folder while it runs; a second run on the folder is refused with
  the holder's pid. The kernel releases the lock when its process ends, however it ends,
  so a lock left by a killed run is taken over (and said so), never waited on.
- **Clean errors.** A folder that cannot be created or written (a read-only or full disk)
  is a `TrainError` naming it, exit status 1.
"""

from __future__ import annotations

import errno
import json
import os
import re
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from genaisdk.backend.jax.errors import TrainError

RUN_FILE = "run.json"
RESULT_FILE = "result.json"
SPEC_COPY = "spec.genai"
CHECKPOINTS = "checkpoints"
METRICS_FILE = "metrics.jsonl"
TOKENIZER_COPY = "tokenizer"
LOCK_FILE = "train.lock"
DEFAULT_ROOT = "runs"
RUN_SCHEMA = "genaisdk.run-folder/1"
"""run.json's `schema`: what marks a folder as one this tool wrote."""

OWN_ENTRIES = frozenset({RUN_FILE, RESULT_FILE, SPEC_COPY, CHECKPOINTS, METRICS_FILE, METRICS_FILE + ".tmp", TOKENIZER_COPY, LOCK_FILE})


# ----------------------------------------------------------------------------- where


def slug(name: str) -> str:
    """A project name as one safe folder name: runs of other characters become ``-``,
    leading dots and dashes go (no ``.``, ``..`` or hidden name), ``run`` if nothing is left."""
    text = re.sub(r"[^A-Za-z0-9._-]+", "-", name)
    text = re.sub(r"\.{2,}", ".", text).strip("-.")
    return text[:100] or "run"


def default_out_dir(project: str, root: str | Path = DEFAULT_ROOT) -> Path:
    """``<root>/<slug(project)>``: always one folder directly under `root`."""
    folder = Path(root) / slug(project)
    assert folder.parent == Path(root) and folder.name not in ("", ".", "..")
    return folder


# ----------------------------------------------------------------------------- what is there


@attrs.frozen(kw_only=True)
class FolderState:
    """What an output folder holds: `kind` is 'missing', 'empty' (nothing, or only what a
    run writes before run.json: the lock, an empty checkpoints/), 'run' (this tool's run
    folder) or 'foreign' (anything else); `latest_step` the newest finalized checkpoint."""

    path: Path
    kind: str
    latest_step: int | None = None
    foreign: tuple[str, ...] = ()
    """For a foreign folder: the names that show it (run.json first)."""


def _is_own_run_file(path: Path) -> bool:
    """Whether `path` is a run.json this tool wrote (its schema, or the version record of
    runs written before the schema was added). Read as JSON only."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(data, Mapping):
        return False
    if data.get("schema") == RUN_SCHEMA:
        return True
    versions = data.get("versions")
    return isinstance(versions, Mapping) and "genaisdk" in versions and "config" in data


def is_run_folder(folder: Path) -> bool:
    """Whether `folder` is a run folder this tool wrote (its run.json says so)."""
    return _is_own_run_file(Path(folder) / RUN_FILE)


def checkpoint_steps(folder: Path) -> list[int]:
    """Finalized checkpoint steps in `folder`/checkpoints (orbax names a finalized step by
    its number; a save in progress has a temporary name)."""
    directory = folder / CHECKPOINTS
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return sorted(int(name) for name in names if name.isdigit() and (directory / name).is_dir())


def inspect(path: Path) -> FolderState:
    """What `path` holds (see `FolderState`); TrainError (exit status 2) when it is a file."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return FolderState(path=path, kind="missing")
    if not path.is_dir():
        raise TrainError(f"--out {path} is a file, not a folder: choose a folder for the run", exit_code=2)
    try:
        names = sorted(os.listdir(path))
    except OSError as exc:
        raise TrainError(f"cannot read the output folder {path}: {exc.strerror or exc}") from None
    steps = checkpoint_steps(path)
    if RUN_FILE in names and _is_own_run_file(path / RUN_FILE):
        return FolderState(path=path, kind="run", latest_step=steps[-1] if steps else None)
    residue = set(names) <= {LOCK_FILE, CHECKPOINTS} and not steps and not _has_files(path / CHECKPOINTS)
    if not names or residue:
        return FolderState(path=path, kind="empty")
    shown = sorted(names, key=lambda n: (n not in OWN_ENTRIES, n))
    return FolderState(path=path, kind="foreign", foreign=tuple(shown), latest_step=steps[-1] if steps else None)


def _has_files(folder: Path) -> bool:
    try:
        return any(True for _ in os.scandir(folder))
    except OSError:
        return False


def check_folder(state: FolderState, *, resume: bool) -> None:
    """Refuses a folder this run must not write into (module docstring); TrainError with
    exit status 2 saying how to proceed."""
    if state.kind == "foreign":
        names = ", ".join(state.foreign[:4]) + (", ..." if len(state.foreign) > 4 else "")
        raise TrainError(
            f"{state.path} holds files genai train did not write ({names}); a run writes only into a new or empty "
            "folder, or resumes its own run folder (one with the run.json it wrote): choose another --out",
            exit_code=2,
        )
    if state.kind == "run" and state.latest_step is not None and not resume:
        raise TrainError(
            f"{state.path} already holds checkpoints (latest step {state.latest_step}): pass --resume to continue "
            "that run, or --out another folder",
            exit_code=2,
        )


# ----------------------------------------------------------------------------- the lock


class FolderLocked(TrainError):
    """Another live run holds the folder's lock; `.holder` is what it wrote (pid, host, started)."""

    def __init__(self, folder: Path, holder: Mapping[str, Any]):
        pid = holder.get("pid", "?")
        host = holder.get("host")
        started = holder.get("started")
        who = f"pid {pid}" + (f" on {host}" if host else "") + (f", started {started}" if started else "")
        super().__init__(
            f"{folder} is in use by another run ({who}): wait for it to finish or stop it, or --out another folder",
            exit_code=1,
        )
        self.holder = dict(holder)


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = json.loads(os.read(fd, 4096).decode("utf-8", "replace") or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


class RunLock:
    """An exclusive lock on a run folder: ``train.lock``, locked with `fcntl.flock` and
    holding the holder's pid, host and start time as JSON.

    `acquire` never waits: a held lock raises FolderLocked. A lock file left by a run that
    was killed is not locked by anyone (the kernel released it with the process), so it
    is taken over and `stale` records what the dead run wrote. Where the file system has no
    `flock` (some network file systems), the pid in the file decides: a live process on
    this host holds the folder. `release` removes the file.
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self.stale: dict[str, Any] | None = None
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> RunLock:
        import fcntl

        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise FolderLocked(self.folder, holder) from None
            except OSError as exc:
                if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                    os.close(fd)
                    raise
                holder = _read_holder(fd)
                if holder.get("host") == socket.gethostname() and holder.get("pid") != os.getpid() and _alive(holder.get("pid")):
                    os.close(fd)
                    raise FolderLocked(self.folder, holder) from None
            # The previous holder removes the file when it releases: if it did so between our
            # open and our lock, we hold a lock on a removed file. Open the path again.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        previous = _read_holder(fd)
        if previous.get("pid") is not None:
            self.stale = previous
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, (json.dumps(record) + "\n").encode())
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.unlink(self.path)  # while still locked: nobody can take a lock on it in between
        except OSError:
            pass
        os.close(fd)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


# ----------------------------------------------------------------------------- the folder


def _write_error(path: Path, exc: OSError) -> TrainError:
    reason = exc.strerror or str(exc)
    hint = {
        errno.EROFS: "the file system is read-only",
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "the disk quota is used up",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
    }.get(exc.errno or 0)
    return TrainError(
        f"cannot write to {path}: {reason}" + (f" ({hint})" if hint and hint.lower() != reason.lower() else "")
        + ": choose a writable folder with --out, or free space",
        exit_code=1,
    )


class RunFolder:
    """One run's output folder, opened for writing (see the module docstring)."""

    def __init__(self, path: Path, state: FolderState, *, created: bool):
        self.path = path
        self.state = state
        self.created = created
        self.lock: RunLock | None = None
        self.notes: list[str] = []

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def metrics(self) -> Path:
        return self.path / METRICS_FILE

    @classmethod
    def open(cls, out: str | Path | None, *, project: str, resume: bool, primary: bool = True) -> RunFolder:
        """The folder `out` (default `default_out_dir(project)`), checked (`check_folder`)
        and, on the primary process, created and locked. TrainError when it is refused,
        locked by a live run, or cannot be written."""
        path = (Path(out) if out is not None else default_out_dir(project)).absolute()
        state = inspect(path)
        check_folder(state, resume=resume)
        folder = cls(path, state, created=state.kind == "missing")
        if not primary:
            return folder
        try:
            path.mkdir(parents=True, exist_ok=True)
            folder.lock = RunLock(path).acquire()
        except FolderLocked:
            raise
        except OSError as exc:
            raise _write_error(path, exc) from None
        # Under the lock, look again: another run may have written here since.
        try:
            state = inspect(path)
            check_folder(state, resume=resume)
        except TrainError:
            folder.close()
            raise
        folder.state = state
        if folder.lock.stale is not None:
            pid = folder.lock.stale.get("pid")
            folder.notes.append(f"took over {LOCK_FILE} from pid {pid}, which ended without releasing it")
        return folder

    def close(self) -> None:
        """Releases the lock; removes the folder again if this run created it and wrote
        nothing (a run refused before its first output)."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None
        if self.created:
            try:
                if self.path.is_dir() and not any(self.path.iterdir()):
                    self.path.rmdir()
            except OSError:
                pass

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def write_run_files(self, record: Mapping[str, Any], *, spec_source: str, tokenizer: Any = None, ids: Any = None) -> None:
        """Writes ``spec.genai``, the tokenizer's files and ``run.json`` (`record` plus the
        schema and, for a tokenizer, where its copy is). TrainError if the disk refuses."""
        run = {"schema": RUN_SCHEMA, **record}
        try:
            if spec_source:
                (self.path / SPEC_COPY).write_text(spec_source, encoding="utf-8")
            if tokenizer is not None and tokenizer.files:
                copies = tokenizer.save(self.path / TOKENIZER_COPY)
                run["tokenizer"] = {"name": tokenizer.name, "file": f"{TOKENIZER_COPY}/{copies[0].name}", "ids": ids}
            _write_json(self.path / RUN_FILE, run)
        except OSError as exc:
            raise _write_error(self.path, exc) from None


    def write_result(self, record: Mapping[str, Any]) -> None:
        """Writes ``result.json``; TrainError if the disk refuses."""
        try:
            _write_json(self.path / RESULT_FILE, record, strict=True)
        except OSError as exc:
            raise _write_error(self.path, exc) from None


def _write_json(path: Path, data: Mapping[str, Any], *, strict: bool = False) -> None:
    """Writes through a temporary file and a rename, so a full disk never leaves half a run.json."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        text = json.dumps(data, indent=2) if strict else json.dumps(data, indent=2, default=str)
        tmp.write_text(text + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
