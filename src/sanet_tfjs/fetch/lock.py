"""The sums of the checkpoints, recorded at their first fetch and enforced afterwards."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..files import write_json
from .fetcher import FetchError, FetchResult


@dataclass
class ChecksumLock:
    """`{lock_key: {file: {"sha256", "bytes"}}}`, committed by the user beside pipeline.yaml.

    The lock key names the set of checkpoints: "upstream", or the fixture's seed and width.
    """

    path: Path
    entries: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> ChecksumLock:
        path = Path(path)
        if not path.exists():
            return cls(path)
        try:
            data = json.loads(path.read_text())
            entries = data["checkpoints"]
            assert isinstance(entries, dict)
        except (ValueError, KeyError, AssertionError):
            raise FetchError(
                f"lock file {path} is not valid (expected JSON with a 'checkpoints' mapping); "
                f"restore it from git, or delete it to record new sums at the next fetch"
            ) from None
        return cls(path, entries)

    def describe_entry(self, key: str, name: str) -> str:
        """Where the entry for `name` is, for a message whose remedy is to delete it."""
        return f'the lock entry: {self.path}, "checkpoints" -> "{key}" -> "{name}"'

    def expected(self, key: str, name: str) -> str | None:
        return self.entries.get(key, {}).get(name, {}).get("sha256")

    def record(self, key: str, result: FetchResult) -> bool:
        """Add a sum not yet locked; return whether the lock changed."""
        if self.expected(key, result.name):
            return False
        self.entries.setdefault(key, {})[result.name] = {
            "sha256": result.sha256,
            "bytes": result.size,
        }
        return True

    def write(self) -> None:
        write_json(
            self.path,
            {
                "about": "sha256 of the SANet checkpoints, recorded at the first successful "
                "fetch and enforced afterwards. Commit this file.",
                "checkpoints": self.entries,
            },
        )
