"""Where training text comes from: the entries of a spec's `data { source = [...] }`.

An entry is one of

- a path to a text file (read as bytes; ``.gz`` files are decompressed),
- a folder (every file under it),
- a glob (``corpus/*.txt``, ``**`` recurses; names starting with ``.`` match only a
  pattern that starts with ``.``),
- a JSON-lines file (``.jsonl``, ``.jsonl.gz``, ``.ndjson``): one JSON object per line, either
  a document (``{"text": ...}``, continued pretraining) or an instruction / chat example
  (``{"prompt": ..., "response": ...}`` or ``{"messages": [{"role": ..., "content": ...}, ...]}``)
  whose loss is on the response tokens only (`chat_segments` gives the template),
- ``synthetic`` or ``synthetic:<kind>``: generated tokens, see `genaisdk.backend.jax.synthetic`.

Relative paths are resolved against the spec file's folder (so a spec and its corpus move
together), or the working directory for a spec given as text.

What a spec may read is confined (`DataScope`): every file, after following its symbolic
links, must lie inside the spec's folder, so a spec downloaded from elsewhere cannot make
`genai train` read ``~/.ssh`` or ``/etc``. Symbolic links are followed the same way in
the folder and the glob forms, and a link that leads out of the folder is refused before
anything behind it is listed. The user (never the spec) may allow more: entries given on
the command line (`--set data.source=...`) and `--allow-data-outside`. Only regular files
are read: a device (``/dev/zero``), a named pipe or a socket is refused after a `stat`,
without opening it, and each file is opened without blocking and checked again. An empty
entry is an error, not the spec's whole folder. Every file read is listed with its size
and SHA-256 (`SourceFile`; `genai train` records them in run.json).

Every problem is a `DataError` whose message names the entry and the path, never a bare
traceback.
"""

from __future__ import annotations

import fnmatch
import glob
import gzip
import hashlib
import io
import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs

from genaisdk.core.jsonlines import JSONLineError, json_lines

JSONL_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")
TEXT_FIELD = "text"
SYNTHETIC = "synthetic"
ALLOW_FLAG = "--allow-data-outside"


class DataError(Exception):
    """A data source that cannot be read; the message says which and why."""


@attrs.frozen(kw_only=True)
class Document:
    """One document's raw bytes and where it came from (``path`` or ``path:line``).

    A chat example also has `segments`: its rendered text in order, each piece with
    whether it is response (carries loss) or prompt; `data` is their concatenation."""

    origin: str
    data: bytes
    segments: tuple[tuple[str, bool], ...] | None = None


ROLE_LABELS = {"system": "System", "user": "User", "assistant": "Assistant"}
"""The chat template's label per role; another role is labelled with its name capitalized."""
RESPONSE_ROLE = "assistant"


def chat_segments(messages: Sequence[tuple[str, str]]) -> tuple[tuple[str, bool], ...]:
    """The template that turns a conversation into prompt and response text.

    Each message is a line ``"<Label>: <content>\n"`` (labels `ROLE_LABELS`), except an
    assistant turn: its ``"Assistant:"`` label is prompt and ``" <content>"`` is response,
    followed by the tokenizer's EOS (added at tokenization, also response), so a model
    learns to answer after ``Assistant:`` and to stop. ``{"prompt": p, "response": r}`` is
    the conversation [user p, assistant r]: ``"User: p\nAssistant:"`` + ``" r"`` + EOS.
    The same fixed template serves every tokenizer (a checkpoint's own Jinja chat template
    is not applied), so a run's data is reproducible from this function alone. Returns
    (text, is_response) pieces in order; adjacent prompt pieces are merged.
    """
    pieces: list[tuple[str, bool]] = []

    def add(text: str, response: bool) -> None:
        if pieces and not pieces[-1][1] and not response:
            pieces[-1] = (pieces[-1][0] + text, False)
        else:
            pieces.append((text, response))

    for role, content in messages:
        label = ROLE_LABELS.get(role, role.capitalize())
        if role == RESPONSE_ROLE:
            add(f"{label}:", False)
            add(f" {content}", True)
        else:
            add(f"{label}: {content}\n", False)
    return tuple(pieces)


def chat_prompt(messages: Sequence[tuple[str, str]]) -> tuple[tuple[str, bool], ...]:
    """The template's pieces of a conversation up to where the assistant answers, as
    `chat_segments` renders them in training: `messages` (earlier assistant turns keep
    their response pieces) followed by the assistant's label, so the last piece ends with
    ``"Assistant:"``. ``[("user", p)]`` gives ``(("User: p\nAssistant:", False),)``, the
    prompt piece of the training example ``{"prompt": p, "response": ...}``."""
    return chat_segments([*messages, (RESPONSE_ROLE, "")])[:-1]  # without the empty response


@attrs.frozen(kw_only=True)
class SourceFile:
    """A file a run read: its path as found, its size in bytes and the SHA-256 of its bytes
    (of the compressed bytes for a ``.gz`` file)."""

    path: str
    bytes: int
    sha256: str

    def to_json(self) -> dict[str, object]:
        return attrs.asdict(self)


@attrs.frozen(kw_only=True)
class DataScope:
    """Where data entries may lead: inside `roots` (real paths, symbolic links resolved),
    except for the entries in `trusted` (given by the user on the command line) and
    everything when `anywhere`."""

    roots: tuple[Path, ...] = attrs.field(converter=lambda roots: tuple(Path(os.path.realpath(r)) for r in roots))
    trusted: frozenset[str] = attrs.field(default=frozenset(), converter=frozenset)
    anywhere: bool = False

    def confines(self, entry: str) -> bool:
        return not self.anywhere and entry not in self.trusted

    def allows(self, real: str | Path) -> bool:
        real = Path(real)
        return any(real == root or root in real.parents for root in self.roots)

    def describe(self) -> str:
        return " or ".join(str(r) for r in self.roots) or "nowhere"


def is_synthetic(entry: str) -> bool:
    return entry == SYNTHETIC or entry.startswith(SYNTHETIC + ":")


def _has_magic(entry: str) -> bool:
    return glob.has_magic(entry)


class _Walk:
    """Expands one entry into files, following symbolic links, refusing any that leads out
    of the scope (before listing what is behind it) and visiting each real folder once
    per path (a link back up the tree ends there)."""

    def __init__(self, entry: str, scope: DataScope | None):
        self.entry = entry
        self.scope = scope if scope is not None and scope.confines(entry) else None

    def check(self, path: str) -> str:
        """`path`'s real path, or DataError when the scope does not allow it."""
        real = os.path.realpath(path)
        if self.scope is not None and not self.scope.allows(real):
            shown = path if real == os.path.abspath(path) else f"{path} (a link to {real})"
            raise DataError(
                f"data source {self.entry!r}: {shown} is outside the spec's folder {self.scope.describe()}; "
                f"a spec reads only data inside its own folder. Move or link the data there (a link must point "
                f"inside too), give the entry on the command line (--set data.source=...), or pass {ALLOW_FLAG}"
            )
        return real

    def folder(self, path: str) -> Iterator[str]:
        """Every file under `path` (hidden ones too), in sorted order."""
        yield from self._tree(path, {self.check(path)}, hidden=True)

    def _tree(self, path: str, ancestors: set[str], *, hidden: bool) -> Iterator[str]:
        for name in _sorted_names(path):
            if not hidden and name.startswith("."):
                continue
            child = os.path.join(path, name)
            if os.path.isdir(child):
                real = self.check(child)
                if real not in ancestors:
                    yield from self._tree(child, ancestors | {real}, hidden=hidden)
            else:
                yield child

    def pattern(self, base: str, parts: list[str], ancestors: set[str]) -> Iterator[str]:
        """Paths under folder `base` that match the glob components `parts`."""
        if not parts:
            return
        part, rest = parts[0], parts[1:]
        if part == "**":
            yield from self.pattern(base, rest, ancestors)  # zero folders
            for name in _sorted_names(base):
                child = os.path.join(base, name)
                if name.startswith(".") or not os.path.isdir(child):
                    continue
                real = self.check(child)
                if real not in ancestors:
                    yield from self.pattern(child, parts, ancestors | {real})
            return
        if _has_magic(part):
            names = [n for n in _sorted_names(base) if fnmatch.fnmatchcase(n, part) and (part.startswith(".") or not n.startswith("."))]
        else:
            names = [part] if os.path.lexists(os.path.join(base, part)) else []
        for name in names:
            child = os.path.join(base, name)
            if not rest:
                yield child
            elif os.path.isdir(child):
                real = self.check(child)
                if real not in ancestors:
                    yield from self.pattern(child, rest, ancestors | {real})


def _sorted_names(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def _glob_start(pattern: str) -> tuple[str, list[str]]:
    """The folder before the first component with a wildcard, and the components after."""
    parts = pattern.split(os.sep)
    index = next(i for i, part in enumerate(parts) if _has_magic(part))
    base = os.sep.join(parts[:index]) or (os.sep if pattern.startswith(os.sep) else os.curdir)
    return base, [p for p in parts[index:] if p]


def resolve_files(entries: Sequence[str], base_dir: Path | None = None, *, scope: DataScope | None = None) -> list[Path]:
    """The files named by path, folder and glob entries, in a stable order, each file once.

    Folders and globs are expanded in sorted order; a file reached twice (two globs, or a
    symlink and its target, as ``/usr/share/common-licenses/GPL`` -> ``GPL-3``) is read
    once, so that a duplicated document does not leak between the training and held-out
    splits. `scope` None reads anywhere (for programs that pass their own paths); a
    `DataScope` confines the entries as the module docstring says. Raises DataError.
    """
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    files: list[Path] = []
    seen: set[str] = set()
    for entry in entries:
        if is_synthetic(entry):
            continue
        if not isinstance(entry, str) or not entry.strip():
            raise DataError(
                f"data source {entry!r} is empty: name a file, a folder or a glob (an empty entry is not the spec's folder)"
            )
        walk = _Walk(entry, scope)
        expanded = os.path.expanduser(entry)
        pattern = expanded if os.path.isabs(expanded) else os.path.join(str(base), expanded)
        pattern = os.path.normpath(pattern)
        # Confinement first: whether a path outside the folder exists is none of the spec's business.
        if _has_magic(pattern):
            start, parts = _glob_start(pattern)
            walk.check(start)
            if not os.path.isdir(start):
                raise DataError(_missing_message(entry, pattern, is_glob=True))
            matches = list(walk.pattern(start, parts, {os.path.realpath(start)}))
            matches = [m for m in matches if not os.path.isdir(m)]
            if not matches:
                raise DataError(_missing_message(entry, pattern, is_glob=True))
        else:
            walk.check(pattern)
            if not os.path.lexists(pattern):
                raise DataError(_missing_message(entry, pattern, is_glob=False))
            if os.path.isdir(pattern):
                matches = list(walk.folder(pattern))
                if not matches:
                    raise DataError(f"data source {entry!r}: the folder {pattern} holds no files")
            else:
                matches = [pattern]
        for match in matches:
            real = walk.check(match)
            _require_regular_file(entry, match, real)
            if real not in seen:
                seen.add(real)
                files.append(Path(match))
    return files


def _require_regular_file(entry: str, path: str, real: str) -> None:
    """A regular file, checked with `stat` (which never blocks, even on a pipe)."""
    try:
        info = os.stat(real)
    except OSError as exc:
        raise DataError(f"data source {entry!r}: cannot read {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise DataError(
            f"data source {entry!r}: {path} is {_kind(info.st_mode)}, not a regular file; only regular files are read"
        )


def _kind(mode: int) -> str:
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a file"


def _missing_message(entry: str, pattern: str, *, is_glob: bool) -> str:
    what = "no file matches" if is_glob else "no such file or folder:"
    message = f"data source {entry!r}: {what} {pattern}"
    if pattern.startswith("/usr/share/common-licenses"):
        message += (
            " (Debian-based systems ship their license texts there; on other systems point "
            "`data { source = ... }` at any folder of text files)"
        )
    return message


def _read_regular(path: Path) -> bytes:
    """The bytes of a regular file, opened without blocking (a file swapped for a pipe or a
    device after `resolve_files` looked is refused, not waited on)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise DataError(f"{path} is no longer a regular file; only regular files are read")
        return handle.read()


def _read_bytes(path: Path) -> tuple[bytes, SourceFile]:
    try:
        raw = _read_regular(path)
        data = gzip.GzipFile(fileobj=io.BytesIO(raw)).read() if path.suffix == ".gz" else raw
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read data file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    return data, SourceFile(path=str(path), bytes=len(raw), sha256=hashlib.sha256(raw).hexdigest())


_RECORD_FORMS = (
    "a JSON-lines record needs a 'text' field (a document), 'prompt' and 'response' fields, "
    "or a 'messages' list of {'role', 'content'} objects"
)


def chat_messages(where: str, record: dict, *, response: bool = True) -> list[tuple[str, str]]:
    """The (role, content) turns of a prompt/response or messages record; DataError names
    `where` (file:line) when the record is not one, or has no non-empty response (with
    `response` False: a prompt to be answered, ``{"prompt"}`` or ``{"messages"}`` with no
    response needed)."""
    if "messages" in record:
        turns = record["messages"]
        if not isinstance(turns, list) or not turns:
            raise DataError(f'{where}: "messages" must be a non-empty list of {{"role", "content"}} objects')
        messages = []
        for index, turn in enumerate(turns):
            if not isinstance(turn, dict) or not isinstance(turn.get("role"), str) or not isinstance(turn.get("content"), str):
                raise DataError(f'{where}: message {index} needs a string "role" and a string "content"')
            messages.append((turn["role"], turn["content"]))
        if response and not any(role == RESPONSE_ROLE and content.strip() for role, content in messages):
            raise DataError(f'{where}: the conversation has no non-empty "{RESPONSE_ROLE}" message, so nothing to learn')
        return messages
    if not response:
        if not isinstance(record.get("prompt"), str):
            raise DataError(f"{where}: a prompt record needs a string 'prompt' field or a 'messages' list")
        return [("user", record["prompt"])]
    for key in ("prompt", "response"):
        if key not in record:
            raise DataError(f"{where}: {_RECORD_FORMS}; this one lacks {key!r}")
        if not isinstance(record[key], str):
            raise DataError(f"{where}: the {key!r} field must be a string")
    if not record["response"].strip():
        raise DataError(f'{where}: the "response" is empty, so nothing to learn')
    return [("user", record["prompt"]), (RESPONSE_ROLE, record["response"])]


def is_document_record(record: dict) -> bool:
    """Whether a JSON-lines record is one `record_document` reads: a ``text`` document or
    a prompt/response or messages example."""
    return any(key in record for key in (TEXT_FIELD, "messages", "prompt", "response"))


def record_document(where: str, record: Any) -> Document:
    """The `Document` of one JSON-lines record (the module docstring's forms): a ``text``
    document, or a chat example with its `chat_segments`. `where` (``file:line``) names
    the record in the DataError raised for anything else."""
    if not isinstance(record, dict):
        raise DataError(f"{where}: {_RECORD_FORMS}")
    if TEXT_FIELD in record:
        text = record[TEXT_FIELD]
        if not isinstance(text, str):
            raise DataError(f"{where}: the {TEXT_FIELD!r} field must be a string")
        return Document(origin=where, data=text.encode("utf-8"))
    if not is_document_record(record):
        raise DataError(f"{where}: {_RECORD_FORMS}")
    segments = chat_segments(chat_messages(where, record))
    return Document(origin=where, data="".join(t for t, _ in segments).encode("utf-8"), segments=segments)


def json_records(path: Path, raw: bytes) -> Iterator[tuple[str, Any]]:
    """(``file:line``, the parsed record) of each non-blank line; DataError naming the
    file, line and column, with the decoder's reason, for one that is not UTF-8 JSON
    (`genaisdk.core.jsonlines`)."""
    records = json_lines(raw, str(path))
    while True:
        try:
            number, record = next(records)
        except StopIteration:
            return
        except JSONLineError as exc:
            raise DataError(str(exc)) from None
        yield f"{path}:{number}", record


def _json_lines(path: Path, raw: bytes) -> Iterator[Document]:
    for where, record in json_records(path, raw):
        yield record_document(where, record)


def is_json_lines(path: Path) -> bool:
    return path.name.lower().endswith(JSONL_SUFFIXES)


def read_sources(files: Sequence[Path]) -> tuple[list[Document], list[SourceFile]]:
    """Each file's documents (a text file is one document, a JSON-lines file one per line)
    and the list of files read, with their sizes and hashes."""
    documents: list[Document] = []
    read: list[SourceFile] = []
    for path in files:
        data, record = _read_bytes(path)
        read.append(record)
        if is_json_lines(path):
            documents.extend(_json_lines(path, data))
        else:
            documents.append(Document(origin=str(path), data=data))
    return documents, read


def read_documents(files: Sequence[Path]) -> Iterator[Document]:
    """Each file's documents: a text file is one document, a JSON-lines file one per line."""
    yield from read_sources(files)[0]


def corpus_fingerprint(documents: Sequence[Document]) -> str:
    """A short digest of the documents' bytes and order; a resumed run checks it is unchanged."""
    digest = hashlib.sha256()
    for doc in documents:
        digest.update(len(doc.data).to_bytes(8, "little"))
        digest.update(doc.data)
    return digest.hexdigest()[:16]
