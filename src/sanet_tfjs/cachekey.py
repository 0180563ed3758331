"""A CI cache key for artifacts/: a hash of everything that determines what the build makes.

    python -m sanet_tfjs.cachekey [pipeline.yaml]      (or: bash scripts/cache-key.sh)

Covers the settings, both lock files (tool versions), the checkpoint sums, and the code of
every stage and of the page. Restoring artifacts/ (doit's database included) under this key
into a fresh clone at any path makes `doit` execute nothing.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from sanet_tfjs.config import load_config
from sanet_tfjs.repo import ROOT

INPUT_FILES = ("dodo.py", "requirements.lock", "package-lock.json")
INPUT_TREES = ("tasks", "src", "web", "js")


def key_inputs(config_path: Path) -> list[Path]:
    config_path = Path(config_path).resolve()
    files = [ROOT / name for name in INPUT_FILES]
    for tree in INPUT_TREES:
        files += [
            path for path in (ROOT / tree).rglob("*")
            if path.is_file() and "__pycache__" not in path.parts
        ]  # fmt: skip
    files.append(config_path)
    lock = config_path.parent / load_config(config_path).fetch.lock_file
    if lock.exists():
        files.append(lock)
    return sorted(set(files))


def cache_key(config_path: Path) -> str:
    digest = hashlib.sha256()
    for path in key_inputs(config_path):
        name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else Path(path.name)
        digest.update(f"{name}\0".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return f"sanet-artifacts-{digest.hexdigest()[:40]}"


if __name__ == "__main__":
    print(cache_key(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "pipeline.yaml"))
