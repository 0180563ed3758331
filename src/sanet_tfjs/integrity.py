"""Are a stage's outputs still the bytes it wrote? sha256 sums, cached by file stat.

Every stage records the sum of each file it wrote; before its outputs are trusted again (by
a no-op build, a restored CI cache, a release) the sums are compared, so a file edited,
truncated or added on disk after the build is found and the stage rebuilds it.

Re-reading hundreds of MB on every no-op would be slow, so sums are cached by
(size, mtime_ns), as git's index does: a file whose stat is unchanged is not read again, and
a file restored with new mtimes is read once. Like git, a file modified within the last
`RACY_WINDOW_NS` is not cached: its mtime could repeat for a second edit of the same size.
"""

from __future__ import annotations

import atexit
import json
import time
from pathlib import Path

from sanet_tfjs.files import atomic_output, sha256_file

RACY_WINDOW_NS = 2_000_000_000


class HashCache:
    """sha256 of files by path, reused while a file's size and mtime are unchanged.

    Persisted as JSON at `path`, written once when the process exits (not once per file);
    a missing, unreadable or unsaved cache only costs re-hashing."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            entries = json.loads(self.path.read_text())
        except (OSError, ValueError):
            entries = {}
        self.entries: dict[str, list] = entries if isinstance(entries, dict) else {}
        self._save_registered = False

    def sha256(self, file: str | Path) -> str:
        stat = Path(file).stat()
        stamp = [stat.st_size, stat.st_mtime_ns]
        entry = self.entries.get(str(file))
        if isinstance(entry, list) and entry[:2] == stamp:
            return entry[2]
        digest = sha256_file(Path(file))
        if time.time_ns() - stat.st_mtime_ns > RACY_WINDOW_NS:
            self.entries[str(file)] = [*stamp, digest]
            if not self._save_registered:
                atexit.register(self.save)
                self._save_registered = True
        return digest

    def save(self) -> None:
        try:
            with atomic_output(self.path) as staged:
                staged.write_text(json.dumps(self.entries, sort_keys=True))
        except OSError:
            pass  # a cache that cannot be written only costs time


def output_files(outputs: list[str]) -> list[str]:
    """The files under `outputs` (files or folders), sorted. Hidden names (temporary and
    partial files) are not outputs."""
    files = []
    for output in outputs:
        path = Path(output)
        if path.is_dir():
            for file in path.rglob("*"):
                hidden = any(part.startswith(".") for part in file.relative_to(path).parts)
                if file.is_file() and not hidden:
                    files.append(str(file))
        elif path.is_file():
            files.append(output)
    return sorted(files)


def record_outputs(outputs: list[str], cache: HashCache) -> dict[str, str]:
    """file -> sha256 for every file a stage wrote under `outputs`."""
    return {file: cache.sha256(file) for file in output_files(outputs)}


def changed_outputs(outputs: list[str], recorded: dict[str, str], cache: HashCache) -> list[str]:
    """The files under `outputs` that differ from `recorded`: edited, missing or added."""
    present = output_files(outputs)
    changed = sorted(set(recorded) ^ set(present))
    changed += [
        file for file in present
        if file in recorded and cache.sha256(file) != recorded[file]
    ]  # fmt: skip
    return sorted(changed)
