"""The read audit: which repository and artifacts files a stage's action actually touched.

With SANET_AUDIT=1 every stage runs under a recorder (`sys.addaudithook`): each file the
process opens (its own threads included: the loopback servers that feed Chromium), each module
source it imports, and each path on the command line of a child process (node, Chromium). After
the action, any such path inside the repository or artifacts/ that is neither a declared input
of the stage nor one of its own outputs fails the stage, named: an input doit does not know
about is an input whose change would not rerun the stage. Bazel's sandbox, in spirit.

Tools are outside the audit (.venv, node_modules, the git metadata, the system): their
versions are declared through the lock files. So is the wiring (tasks/, dodo.py). Reads by
child processes are seen only as the paths handed to them; the scripts they import are
declared by `tasks.closure`.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

AUDIT_ENV = "SANET_AUDIT"
# Tools, and the wiring itself (its values are watched as each stage's arguments; Python's
# linecache reads it to print a warning raised under the action wrapper).
TOOL_DIRS = (".venv", "node_modules", ".git", "tasks", "dodo.py")


@dataclass
class Recording:
    """Paths touched while recording, as the process named them (made absolute)."""

    opened: set[str] = field(default_factory=set)
    handed_to_children: set[str] = field(default_factory=set)


_active: Recording | None = None
_hook_installed = False


def _absolute(path: str, cwd: str | None = None) -> str:
    return os.path.normpath(os.path.join(cwd or os.getcwd(), path))


def _hook(event: str, args: tuple) -> None:
    recording = _active
    if recording is None:
        return
    if event == "open":
        path, mode = args[0], args[1]
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        # os.open (mode None) of a relative path may be relative to a dir_fd the event does not
        # carry: shutil.rmtree removing a stage's own old output does that.
        if isinstance(path, str) and (mode is not None or os.path.isabs(path)):
            recording.opened.add(_absolute(path))
    elif event == "subprocess.Popen":
        _executable, argv, cwd, _env = args
        for arg in argv if isinstance(argv, list | tuple) else [argv]:
            text = os.fsdecode(arg) if isinstance(arg, bytes) else str(arg)
            value = text.split("=", 1)[1] if text.startswith("--") and "=" in text else text
            if value and not value.startswith("-") and os.path.exists(_absolute(value, cwd)):
                recording.handed_to_children.add(_absolute(value, cwd))


@contextlib.contextmanager
def recording() -> Iterator[Recording]:
    """Record what the process touches inside the block (one block at a time)."""
    global _active, _hook_installed
    if not _hook_installed:
        sys.addaudithook(_hook)  # cannot be removed: it records nothing outside a block
        _hook_installed = True
    _active = Recording()
    try:
        yield _active
    finally:
        _active = None


def _source_of(path: Path) -> Path:
    """A module's cached bytecode stands for its source file."""
    if path.suffix == ".pyc" and path.parent.name == "__pycache__":
        return path.parent.parent / f"{path.name.split('.')[0]}.py"
    return path


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _own_temporary(path: Path, outputs: Iterable[Path]) -> bool:
    # atomic_output stages an output as a sibling `.<name>.<random>.tmp` folder.
    return any(
        _within(path, output.parent)
        and path.relative_to(output.parent).parts[0].startswith(f".{output.name}.")
        for output in outputs
        if path != output.parent
    )


def undeclared(
    recorded: Recording,
    *,
    repository: Path,
    artifacts: Path,
    inputs: Iterable[Path],
    outputs: Iterable[Path],
) -> list[str]:
    """The recorded paths inside `repository` or `artifacts` that are neither under a
    declared input (a file, or a folder whose every file is an input) nor under an output."""
    repository, artifacts = repository.resolve(), artifacts.resolve()
    inputs = [Path(p).resolve() for p in inputs]
    outputs = [Path(p).resolve() for p in outputs]
    tools = [repository / name for name in TOOL_DIRS]
    found = set()
    for raw in recorded.opened | recorded.handed_to_children:
        path = _source_of(Path(raw)).resolve()
        if not (_within(path, repository) or _within(path, artifacts)):
            continue
        if any(_within(path, tool) for tool in tools) or (path.is_dir() and raw in recorded.opened):
            continue  # a tool, or a folder opened to list or remove it
        if any(_within(path, declared) for declared in [*inputs, *outputs]):
            continue
        if path.is_dir() and any(_within(declared, path) for declared in [*inputs, *outputs]):
            continue  # a folder holding declared inputs, handed to a child (unseen inside)
        if _own_temporary(path, outputs):
            continue
        found.add(os.path.relpath(path, repository))
    return sorted(found)
